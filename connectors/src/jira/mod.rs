//! Jira Cloud (REST v3) as a ticket system: the vendor's JSON (`wire`), plain text ⇄
//! Atlassian Document Format (`adf`), the client that implements the engine's
//! `TicketSystem` port (`client`), and a strict simulator of the API (`sim`).
//!
//! On Jira the bridge marks its issues with the label `itsm-bridge` and records the
//! incident in the label `itsm-bridge:<source>:<incident_id>` (searchable with JQL)
//! and in the entity property `itsm-bridge` (`{"source", "incidentId"}`,
//! authoritative but not searchable).

pub mod adf;
pub mod client;
pub mod doctor;
pub mod sim;
pub mod wire;

pub use client::JiraTickets;
pub use sim::JiraSim;
pub use wire::error_message;
#[cfg(test)]
mod fuzz;
