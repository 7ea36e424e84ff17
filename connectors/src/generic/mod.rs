//! A generic REST ticket system, for in-house systems without a connector of their
//! own: everything about the API is described in the mapping file's `[api]` table
//! (checked by `bridge_core::mapping`, documented in `mappings/README.md`). The
//! module has the usual shape, with the wire format read from that table instead of
//! vendor types: `convert` (ticket objects ⇄ snapshots through JSON pointers, the
//! correlation value), `client` (the `TicketSystem` port), `doctor` (its probe for
//! `itsm-bridge doctor`), and `sim` (a plain REST ticket API that the shipped
//! `mappings/generic.toml` describes; `sim/freshservice.rs` and `sim/zendesk.rs`, the
//! two real helpdesks `mappings/freshservice.toml` and `mappings/zendesk.toml`
//! describe).
//!
//! The bridge marks its tickets with the correlation value
//! `<source>:<scope tag>:<incident id>` at the `correlation` pointer; the scope tag
//! is a short hash of the source's tenant or workspace, so two workspaces never
//! adopt each other's tickets.

pub mod client;
pub mod convert;
pub mod doctor;
pub mod sim;

pub use client::{GenericTickets, bearer, error_message, generic_api};
pub use sim::GenericSim;
pub use sim::freshservice::FreshserviceSim;
pub use sim::zendesk::ZendeskSim;
#[cfg(test)]
mod fuzz;
