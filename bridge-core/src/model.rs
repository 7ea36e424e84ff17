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
    /// Concurrency token where the API has one (Sentinel `etag`). It is also the
    /// incident's version: a different etag is a change whatever the time says.
    pub etag: Option<String>,
    /// Who made this version (Graph `lastModifiedBy`, Sentinel
    /// `systemData.lastModifiedBy`), for the ledger's attribution.
    #[serde(default, skip_serializing_if = "ModifiedBy::is_empty")]
    pub modified_by: ModifiedBy,
}

/// Who last changed a record, as far as the read that already happens tells:
/// no connector makes a call of its own for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModifiedBy {
    /// The author of the newest change (ServiceNow `sys_updated_by`, Graph
    /// `lastModifiedBy`, Sentinel `systemData.lastModifiedBy`, the author of
    /// the newest Jira changelog history); `None` where the API does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
    /// Per attribute (by its domain name, `status`, `resolution`), the author
    /// of the newest change to it, where the API keeps a per-field history (the
    /// Jira changelog returned with the read).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

impl ModifiedBy {
    /// Who changed `attr` last: its own author where known, else the record's.
    pub fn of(&self, attr: &str) -> Option<&str> {
        self.fields
            .get(attr)
            .map(String::as_str)
            .or(self.last.as_deref())
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_none() && self.fields.is_empty()
    }
}

impl IncidentSnapshot {
    /// Where this incident stands in its own history.
    pub fn version(&self) -> Version {
        Version::new(self.modified, self.etag.clone())
    }
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
    /// The record's version where the API counts them (ServiceNow
    /// `sys_mod_count`, a generic system's configured version field): it orders
    /// two writes within one tick of `modified`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Attributes by their domain names: `summary`, `description`, `status`,
    /// `priority`, `resolution`, `assignee`, …
    pub attrs: Attrs,
    pub labels: Vec<String>,
    /// The incident this ticket says it belongs to, if the bridge created it.
    pub correlation: Option<Correlation>,
    pub comments: Vec<Comment>,
    /// Who made this version (ServiceNow `sys_updated_by`; Jira per field from
    /// the changelog the read expanded), for the ledger's attribution.
    #[serde(default, skip_serializing_if = "ModifiedBy::is_empty")]
    pub modified_by: ModifiedBy,
}

impl TicketSnapshot {
    /// Where this ticket stands in its own history.
    pub fn version(&self) -> Version {
        Version::new(self.modified, self.version.clone())
    }
}

/// Where a record stands in its own history, as far as its API tells: the
/// modification time at the precision the API gives, and the version counter or
/// tag where it has one (ServiceNow `sys_mod_count`, Sentinel `etag`). Times
/// alone cannot order a record's changes: ServiceNow has whole seconds, and a
/// business rule or an analyst often writes a record within the second of the
/// bridge's own write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub modified: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// How a record read now compares with the version the bridge last synced from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// An older version (an overlap window, a lagging index): nothing new.
    Older,
    /// The very version already synced.
    Same,
    /// A later version: something changed.
    Newer,
    /// The same time and no version to tell them apart: maybe changed. Its
    /// content is compared with the baseline; it is never discarded unread.
    Tied,
}

impl Freshness {
    /// Whether the record must be looked at (compared with the baseline).
    pub fn may_have_changed(self) -> bool {
        matches!(self, Freshness::Newer | Freshness::Tied)
    }
}

impl Version {
    pub fn new(modified: Timestamp, tag: Option<String>) -> Version {
        Version { modified, tag }
    }

    /// How this version compares with `known`, the one last synced from. Where
    /// both carry a tag, the tags decide: equal is the same version; counters
    /// (digits) are compared as numbers; opaque tags (etags) that differ are a
    /// change unless this one is older in time. Without tags, time decides, and
    /// an equal time is [`Freshness::Tied`], never "not newer".
    pub fn freshness(&self, known: &Version) -> Freshness {
        Version::compare(
            self.modified,
            self.tag.as_deref(),
            known.modified,
            known.tag.as_deref(),
        )
    }

    /// [`Version::freshness`] over borrowed parts: a record's time and tag
    /// against the known ones, without building either version.
    pub fn compare(
        modified: Timestamp,
        tag: Option<&str>,
        known_modified: Timestamp,
        known_tag: Option<&str>,
    ) -> Freshness {
        use std::cmp::Ordering;
        if let (Some(tag), Some(known_tag)) = (tag, known_tag) {
            if tag == known_tag {
                return Freshness::Same;
            }
            if let (Ok(n), Ok(k)) = (tag.parse::<u64>(), known_tag.parse::<u64>()) {
                return if n > k {
                    Freshness::Newer
                } else {
                    Freshness::Older
                };
            }
            return if modified < known_modified {
                Freshness::Older
            } else {
                Freshness::Newer
            };
        }
        match modified.cmp(&known_modified) {
            Ordering::Greater => Freshness::Newer,
            Ordering::Less => Freshness::Older,
            Ordering::Equal => Freshness::Tied,
        }
    }

    /// The later of the two: the one to remember after reading or writing.
    pub fn later(self, other: Version) -> Version {
        match other.freshness(&self) {
            Freshness::Newer => other,
            Freshness::Tied if other.tag.is_some() => other,
            _ => self,
        }
    }
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
    /// The versions (counter or tag) that went with those times, where the API
    /// has them: a record read again at the same time but another version has
    /// changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_version: Option<String>,
    pub created: Timestamp,
    pub updated: Timestamp,
    /// For a `Merged` link: the incident it was merged into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
}

impl Link {
    /// The incident's version the bridge last synced from.
    pub fn incident_seen(&self) -> Version {
        Version::new(self.incident_modified, self.incident_version.clone())
    }

    /// The ticket's version the bridge last synced from.
    pub fn ticket_seen(&self) -> Version {
        Version::new(self.ticket_modified, self.ticket_version.clone())
    }

    /// Remembers a later incident version (an older one is ignored).
    pub fn saw_incident(&mut self, seen: Version) {
        let v = self.incident_seen().later(seen);
        self.incident_modified = v.modified;
        self.incident_version = v.tag;
    }

    /// Remembers a later ticket version (an older one is ignored).
    pub fn saw_ticket(&mut self, seen: Version) {
        let v = self.ticket_seen().later(seen);
        self.ticket_modified = v.modified;
        self.ticket_version = v.tag;
    }
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
    /// `newest_wins` met two changes stamped at the same time (at the coarser
    /// precision of the two systems): the incident's side won, by rule.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tie: bool,
}

/// A page of results and the link to the next one, exactly as the API returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};

    use super::{Freshness, Version};

    fn at(second: i64) -> Version {
        Version::new(
            Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap() + Duration::seconds(second),
            None,
        )
    }

    fn tagged(second: i64, tag: &str) -> Version {
        Version {
            tag: Some(tag.into()),
            ..at(second)
        }
    }

    #[test]
    fn a_counter_orders_writes_within_one_second() {
        assert_eq!(tagged(0, "5").freshness(&tagged(0, "4")), Freshness::Newer);
        assert_eq!(tagged(0, "4").freshness(&tagged(0, "5")), Freshness::Older);
        assert_eq!(tagged(0, "4").freshness(&tagged(0, "4")), Freshness::Same);
        // Counters compare as numbers, not text.
        assert_eq!(tagged(0, "10").freshness(&tagged(0, "9")), Freshness::Newer);
    }

    #[test]
    fn a_different_etag_at_the_same_time_is_a_change() {
        assert_eq!(
            tagged(0, "\"b\"").freshness(&tagged(0, "\"a\"")),
            Freshness::Newer
        );
        assert_eq!(
            tagged(-1, "\"b\"").freshness(&tagged(0, "\"a\"")),
            Freshness::Older
        );
    }

    #[test]
    fn without_versions_an_equal_time_is_a_tie_never_not_newer() {
        assert_eq!(at(0).freshness(&at(0)), Freshness::Tied);
        assert!(Freshness::Tied.may_have_changed());
        assert_eq!(at(1).freshness(&at(0)), Freshness::Newer);
        assert_eq!(at(-1).freshness(&at(0)), Freshness::Older);
        // A link made before versions were recorded: time decides.
        assert_eq!(tagged(0, "3").freshness(&at(0)), Freshness::Tied);
    }

    #[test]
    fn the_later_version_is_remembered() {
        assert_eq!(tagged(0, "4").later(tagged(0, "5")), tagged(0, "5"));
        assert_eq!(tagged(0, "5").later(tagged(0, "4")), tagged(0, "5"));
        assert_eq!(at(0).later(tagged(0, "2")), tagged(0, "2"));
        assert_eq!(at(1).later(at(0)), at(1));
    }
}
