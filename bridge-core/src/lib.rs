//! bridge-core: the domain, the admin's config and mapping, the pure reconcile
//! engine and scheduler, and the store and ledger. It knows nothing of HTTP: the
//! remote systems are reached through the traits in [`ports`], which the
//! `connectors` crate implements.

pub mod checkpoint;
pub mod comments;
pub mod config;
pub mod diag;
pub mod engine;
pub mod ledger;
pub mod mapping;
pub mod merge_plan;
pub mod merge_walk;
pub mod model;
pub mod ports;
pub mod reconcile;
pub mod remap;
pub mod schedule;
pub mod store;
pub mod vocab;
