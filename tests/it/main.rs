//! The end-to-end tests, in one binary so that CI links one test crate instead of
//! thirteen. Each module runs the real `itsm-bridge` binary against the simulators
//! (`common` is the harness); `cargo test --test it <module>::` runs one file.

mod common;
mod daemon;

mod attribution;
mod bad_input;
mod calls;
mod crash;
mod dashboard;
mod deploy;
mod doctor;
mod drift;
mod examples;
mod faults;
mod graph_jira;
mod helpdesks;
mod identities;
mod ledger;
mod logs;
mod mapping_edits;
mod mapping_tools;
mod one_writer;
mod progress;
mod reload;
mod replicas;
mod same_tick;
mod sentinel_pairs;
mod server;
mod situations;
