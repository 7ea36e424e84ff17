//! connectors: one module per remote system, each with the client that implements
//! a `bridge-core` port and the simulator that stands in for the real API in tests,
//! the demo and benchmarks; plus the shared HTTP layer and the simulator kit.

pub mod auth;
pub mod bucket;
pub mod doctor;
pub mod generic;
pub mod graph;
pub mod http;
pub mod jira;
pub mod keyvault;
pub mod limits;
pub mod misses;
pub mod sentinel;
pub mod servicenow;
pub mod simkit;
pub mod sims;
#[cfg(test)]
pub(crate) mod testkit;
pub mod wiring;
