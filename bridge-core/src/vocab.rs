//! What each kind of remote system calls its attributes, which of them the bridge can
//! write, and the closed sets of values an attribute can take. Mapping validation
//! checks every value map against these sets, so a value the mapping does not cover
//! is an error when the file is loaded, not a surprise at run time.

use serde::{Deserialize, Serialize};

/// The kinds of `[[source]]` (a closed set: a new one is a new variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Graph,
    Sentinel,
}

/// The kinds of `[[ticket_system]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TicketKind {
    Servicenow,
    Jira,
    Generic,
}

impl SourceKind {
    /// The precision of the source's modification times: Graph
    /// `lastUpdateDateTime` and Sentinel `lastModifiedTimeUtc` carry 100 ns ticks.
    pub fn time_precision(self) -> chrono::Duration {
        chrono::Duration::nanoseconds(100)
    }

    /// The kind a config or mapping names (`"graph"`), if any.
    pub fn parse(name: &str) -> Option<SourceKind> {
        [SourceKind::Graph, SourceKind::Sentinel]
            .into_iter()
            .find(|k| k.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Graph => "graph",
            SourceKind::Sentinel => "sentinel",
        }
    }
}

impl TicketKind {
    /// The precision of the system's modification times, as its API writes them:
    /// ServiceNow `sys_updated_on` has whole seconds, Jira `updated`
    /// milliseconds; a generic system is taken at whole seconds, the coarsest
    /// common format, so that `newest_wins` never reads rounding as order.
    pub fn time_precision(self) -> chrono::Duration {
        match self {
            TicketKind::Jira => chrono::Duration::milliseconds(1),
            TicketKind::Servicenow | TicketKind::Generic => chrono::Duration::seconds(1),
        }
    }

    /// The kind a config or mapping names (`"jira"`), if any.
    pub fn parse(name: &str) -> Option<TicketKind> {
        [
            TicketKind::Jira,
            TicketKind::Servicenow,
            TicketKind::Generic,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TicketKind::Servicenow => "servicenow",
            TicketKind::Jira => "jira",
            TicketKind::Generic => "generic",
        }
    }
}

/// One attribute of an incident or a ticket, in the domain's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttrSpec {
    pub name: &'static str,
    /// The bridge may change it through the API.
    pub writable: bool,
    /// The closed set of values, or `None` for free text / instance-defined values.
    pub values: Option<&'static [&'static str]>,
    /// Values that may be read but never written (Graph forbids clients to set `redirected`).
    pub read_only_values: &'static [&'static str],
}

const fn attr(name: &'static str, writable: bool) -> AttrSpec {
    AttrSpec {
        name,
        writable,
        values: None,
        read_only_values: &[],
    }
}

const fn closed(name: &'static str, writable: bool, values: &'static [&'static str]) -> AttrSpec {
    AttrSpec {
        name,
        writable,
        values: Some(values),
        read_only_values: &[],
    }
}

/// Graph `incidentStatus`.
pub const GRAPH_STATUS: &[&str] = &[
    "active",
    "resolved",
    "inProgress",
    "redirected",
    "awaitingAction",
    "unknownFutureValue",
];
/// Graph `alertSeverity`.
pub const GRAPH_SEVERITY: &[&str] = &[
    "unknown",
    "informational",
    "low",
    "medium",
    "high",
    "unknownFutureValue",
];
/// Graph `alertClassification`.
pub const GRAPH_CLASSIFICATION: &[&str] = &[
    "unknown",
    "falsePositive",
    "truePositive",
    "informationalExpectedActivity",
    "unknownFutureValue",
];
/// Graph `alertDetermination`, with the resource doc's names (the update doc's
/// synonyms are accepted on read and normalised by the connector).
pub const GRAPH_DETERMINATION: &[&str] = &[
    "unknown",
    "apt",
    "malware",
    "securityPersonnel",
    "securityTesting",
    "unwantedSoftware",
    "other",
    "multiStagedAttack",
    "compromisedUser",
    "phishing",
    "maliciousUserActivity",
    "clean",
    "insufficientData",
    "confirmedUserActivity",
    "lineOfBusinessApplication",
    "unknownFutureValue",
];

const GRAPH_ATTRS: &[AttrSpec] = &[
    attr("title", false),
    attr("description", false),
    AttrSpec {
        name: "status",
        writable: true,
        values: Some(GRAPH_STATUS),
        read_only_values: &["redirected", "awaitingAction", "unknownFutureValue"],
    },
    closed("severity", false, GRAPH_SEVERITY),
    closed("classification", true, GRAPH_CLASSIFICATION),
    closed("determination", true, GRAPH_DETERMINATION),
    attr("assigned_to", true),
];

/// Sentinel `IncidentStatus`, `IncidentSeverity`, `IncidentClassification`.
pub const SENTINEL_STATUS: &[&str] = &["New", "Active", "Closed"];
pub const SENTINEL_SEVERITY: &[&str] = &["High", "Medium", "Low", "Informational"];
pub const SENTINEL_CLASSIFICATION: &[&str] = &[
    "Undetermined",
    "TruePositive",
    "BenignPositive",
    "FalsePositive",
];
pub const SENTINEL_CLASSIFICATION_REASON: &[&str] = &[
    "SuspiciousActivity",
    "SuspiciousButExpected",
    "IncorrectAlertLogic",
    "InaccurateData",
];

const SENTINEL_ATTRS: &[AttrSpec] = &[
    attr("title", true),
    attr("description", true),
    closed("status", true, SENTINEL_STATUS),
    closed("severity", true, SENTINEL_SEVERITY),
    closed("classification", true, SENTINEL_CLASSIFICATION),
    closed(
        "classification_reason",
        true,
        SENTINEL_CLASSIFICATION_REASON,
    ),
    attr("classification_comment", true),
    attr("assigned_to", true),
];

/// Jira status categories (`statusCategory.key`): the ticket's `status` attribute.
pub const JIRA_STATUS_CATEGORY: &[&str] = &["new", "indeterminate", "done"];

const JIRA_ATTRS: &[AttrSpec] = &[
    attr("summary", true),
    attr("description", true),
    closed("status", true, JIRA_STATUS_CATEGORY),
    attr("status_name", false),
    attr("priority", true),
    attr("resolution", true),
    attr("assignee", true),
];

/// ServiceNow `state` codes.
pub const SERVICENOW_STATE: &[&str] = &["1", "2", "3", "6", "7", "8"];

const SERVICENOW_ATTRS: &[AttrSpec] = &[
    attr("summary", true),
    attr("description", true),
    closed("status", true, SERVICENOW_STATE),
    closed("impact", true, &["1", "2", "3"]),
    closed("urgency", true, &["1", "2", "3"]),
    attr("priority", false),
    attr("close_code", true),
    attr("close_notes", true),
    attr("hold_reason", true),
    attr("assignee", true),
    attr("assignment_group", true),
];

const GENERIC_ATTRS: &[AttrSpec] = &[
    attr("summary", true),
    attr("description", true),
    attr("status", true),
    attr("priority", true),
    attr("resolution", true),
    attr("assignee", true),
];

pub fn incident_attrs(kind: SourceKind) -> &'static [AttrSpec] {
    match kind {
        SourceKind::Graph => GRAPH_ATTRS,
        SourceKind::Sentinel => SENTINEL_ATTRS,
    }
}

pub fn ticket_attrs(kind: TicketKind) -> &'static [AttrSpec] {
    match kind {
        TicketKind::Jira => JIRA_ATTRS,
        TicketKind::Servicenow => SERVICENOW_ATTRS,
        TicketKind::Generic => GENERIC_ATTRS,
    }
}

/// Looks an attribute up by name.
/// Whether an incident status means the incident is done with: Graph `resolved`
/// or `redirected`, Sentinel `Closed` (any case).
pub fn is_closed_status(kind: SourceKind, status: &str) -> bool {
    closed_statuses(kind)
        .iter()
        .any(|c| c.eq_ignore_ascii_case(status.trim()))
}

/// The statuses of a closed incident, per source (compared without case).
pub fn closed_statuses(kind: SourceKind) -> &'static [&'static str] {
    match kind {
        SourceKind::Graph => &["resolved", "redirected"],
        SourceKind::Sentinel => &["Closed"],
    }
}

/// How severe an incident severity is, either source's spelling: informational 0
/// up to high 3; `None` for unknown values, which rank below every known one.
pub fn severity_rank(value: &str) -> Option<u8> {
    ["informational", "low", "medium", "high"]
        .iter()
        .position(|s| s.eq_ignore_ascii_case(value.trim()))
        .map(|i| i as u8)
}

pub fn find(attrs: &'static [AttrSpec], name: &str) -> Option<&'static AttrSpec> {
    attrs.iter().find(|a| a.name == name)
}

/// The template variables an incident offers to ticket templates
/// (`{incident.title}`, …), besides its attributes. `link` is the Defender portal
/// link when the incident has one (`provider_url`), its own `url` otherwise.
pub const INCIDENT_TEMPLATE_VARS: &[&str] = &[
    "id",
    "display_id",
    "url",
    "provider_url",
    "link",
    "source",
    "created",
    "modified",
];

/// The template variables a ticket offers to write-back templates (`{ticket.key}`, …).
pub const TICKET_TEMPLATE_VARS: &[&str] = &["key", "id", "url"];
