//! The domain model: what an incident and a ticket look like to the sync engine,
//! the link between them with its last-agreed baseline, and the vocabulary used to
//! talk about a `[[sync]]` pair. Vendor JSON never reaches this module; connectors
//! convert their wire types into these snapshots.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Every instant the engine handles is UTC.
pub type Timestamp = DateTime<Utc>;

/// Named attribute values of one side, in that side's own vocabulary
/// (`"status" => "inProgress"` for Graph, `"status" => "indeterminate"` for Jira).
/// An absent key means the attribute is empty (null) on the remote side.
pub type Attrs = BTreeMap<String, String>;

/// A comment as read from either side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// The remote id where the API has one (Jira, Sentinel); Graph comments have none.
    pub id: Option<String>,
    pub author: Option<String>,
    pub created: Timestamp,
    pub text: String,
}

/// One incident as read from an incident source (Graph, Sentinel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentSnapshot {
    /// The source's id (`"41877"` on Graph, the incident GUID on Sentinel).
    pub id: String,
    /// What a person calls it (`"41877"`, Sentinel's incident number).
    pub display_id: String,
    /// The portal link to the incident (Graph `incidentWebUrl`, Sentinel `incidentUrl`).
    pub web_url: String,
    /// The Defender portal link when the incident comes from Defender XDR through
    /// Sentinel (`additionalData.providerIncidentUrl`).
    pub provider_url: Option<String>,
    pub created: Timestamp,
    /// The source's modification cursor (`lastUpdateDateTime`, `lastModifiedTimeUtc`).
    pub modified: Timestamp,
    /// Attributes by their domain names: `title`, `description`, `status`, `severity`,
    /// `classification`, `determination`, `assigned_to`, …
    pub attrs: Attrs,
    /// `customTags` on Graph, user `labels` on Sentinel.
    pub tags: Vec<String>,
    /// Set when the incident was merged into another one: the surviving incident's
    /// id as `get` takes it (Graph `redirectIncidentId`; for Sentinel, the incident
    /// the connector looked up from `mergedIncidentNumber` or the Defender link).
    /// `None` on a merged incident when the target is unknown or its lookup failed.
    pub redirect_to: Option<String>,
    pub comments: Vec<Comment>,
    /// Concurrency token where the API has one (Sentinel `etag`).
    pub etag: Option<String>,
}

/// One ticket as read from a ticket system (Jira, ServiceNow, generic REST).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketSnapshot {
    /// What people call it and what is written back to the incident (`SEC-42`, `INC0010042`).
    pub key: String,
    /// The API id (`10431`, a ServiceNow `sys_id`).
    pub id: String,
    /// A browser link to the ticket.
    pub url: String,
    pub created: Timestamp,
    pub modified: Timestamp,
    /// Attributes by their domain names: `summary`, `description`, `status`,
    /// `priority`, `resolution`, `assignee`, …
    pub attrs: Attrs,
    pub labels: Vec<String>,
    /// The incident this ticket says it belongs to, if the bridge created it.
    pub correlation: Option<Correlation>,
    pub comments: Vec<Comment>,
}

/// Identifies an incident across systems: the `[[source]]` name, the tenant or
/// workspace it lives in, and the source's incident id. Stored on the ticket (a Jira
/// label, ServiceNow `correlation_id`) so a ticket created before a crash can be
/// found and adopted instead of duplicated, and so two workspaces never collide.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Correlation {
    pub source: String,
    /// The Entra tenant (Graph) or the workspace (Sentinel); empty where a ticket
    /// system's representation does not carry it.
    #[serde(default)]
    pub scope: String,
    pub incident_id: String,
}

impl Correlation {
    pub fn new(source: impl Into<String>, incident_id: impl Into<String>) -> Self {
        Correlation {
            source: source.into(),
            scope: String::new(),
            incident_id: incident_id.into(),
        }
    }

    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }
}

/// A new ticket, fully rendered from an incident by the mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketCreate {
    pub correlation: Correlation,
    /// Ticket attributes by domain name (`summary`, `description`, `priority`,
    /// `status`, `assignee`, …). A connector that cannot set `status` on create
    /// moves the new ticket there right after creating it.
    pub attrs: Attrs,
    pub labels: Vec<String>,
}

/// Changes to an existing ticket. `None` clears the attribute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketUpdate {
    pub set: BTreeMap<String, Option<String>>,
    pub add_labels: Vec<String>,
}

/// Changes to an incident. `None` clears the attribute. Tags are added to the
/// existing set, never replace it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentUpdate {
    pub set: BTreeMap<String, Option<String>>,
    pub add_tags: Vec<String>,
}

impl TicketUpdate {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add_labels.is_empty()
    }
}

impl IncidentUpdate {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add_tags.is_empty()
    }
}

/// The values both sides last agreed on for one mapped field. `None` is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreed {
    pub incident: Option<String>,
    pub ticket: Option<String>,
    /// The ticket's value differs from what the mapping renders from the incident on
    /// purpose (an edit against a one-way field, accepted where it was made; a
    /// priority raised by a merge): it stays until the incident's value changes,
    /// and is not carried along with the ticket's next write.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
}

/// Per mapped field (by the mapping's field name), the last agreed values.
pub type Baseline = BTreeMap<String, Agreed>;

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Both sides are kept in step.
    Active,
    /// The incident was merged into another; its ticket is no longer synced.
    Merged,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Active => "active",
            LinkState::Merged => "merged",
        }
    }
}

/// The mapping-table row: one incident of one `[[sync]]` pair and its ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The `[[sync]]` pair, named `<source>-><ticket_system>`.
    pub pair: String,
    pub incident_id: String,
    pub incident_display_id: String,
    pub incident_url: String,
    pub ticket_key: String,
    pub ticket_id: String,
    pub ticket_url: String,
    pub state: LinkState,
    pub baseline: Baseline,
    /// The ticket key has been written back to the incident (tags and comment).
    pub written_back: bool,
    /// The last modification times the bridge synced from, per side.
    pub incident_modified: Timestamp,
    pub ticket_modified: Timestamp,
    pub created: Timestamp,
    pub updated: Timestamp,
    /// For a `Merged` link: the incident it was merged into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
}

/// Which way a change travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    ToTicket,
    ToIncident,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ToTicket => "to_ticket",
            Direction::ToIncident => "to_incident",
        }
    }
}

/// How a field changed on both sides since the last sync is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    SourceWins,
    TicketWins,
    NewestWins,
}

impl ConflictPolicy {
    /// The policy a config or mapping names (`"newest_wins"`), if any.
    pub fn parse(name: &str) -> Option<ConflictPolicy> {
        [
            ConflictPolicy::SourceWins,
            ConflictPolicy::TicketWins,
            ConflictPolicy::NewestWins,
        ]
        .into_iter()
        .find(|p| p.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::SourceWins => "source_wins",
            ConflictPolicy::TicketWins => "ticket_wins",
            ConflictPolicy::NewestWins => "newest_wins",
        }
    }
}

/// One field change, as recorded in the plan and the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The mapping's field name (`status`, `priority`, …).
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
    /// Set when both sides had changed: the value the losing side had, and the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<ConflictNote>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictNote {
    pub policy: ConflictPolicy,
    pub incident_value: Option<String>,
    pub ticket_value: Option<String>,
}

/// A page of results and the link to the next one, exactly as the API returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}
