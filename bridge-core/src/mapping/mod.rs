//! The admin's field mapping (mapping TOML v1, documented in `mappings/README.md`),
//! in its checked form: which incident values go to which ticket attributes and
//! back, through templates and value maps, and what is written back to the incident.
//! `load` parses and validates a file; everything here is pure.

mod generic_api;
mod load;
mod spans;
mod template;

use std::path::PathBuf;

pub use generic_api::{
    Endpoint, ErrorShape, ExtraField, ExtraValue, GenericApi, HttpMethod, JsonPointer, More,
    NextPage, Placeholder, PointerError, SinceFormat, TextPart, TicketUrl, UpdateMode, UrlTemplate,
    ValueType, percent_encode,
};
pub use load::{load, parse};
pub use template::{Template, TemplateContext};

use crate::model::{ConflictPolicy, IncidentSnapshot};
use crate::vocab::{SourceKind, TicketKind};

/// A checked mapping file.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub file: PathBuf,
    /// The incident vocabulary the file was written for (`source = "graph"`).
    pub source_kind: SourceKind,
    /// The ticket vocabulary it targets (`tickets = "jira"`).
    pub ticket_kind: TicketKind,
    /// Field rules in file order; names are unique.
    pub fields: Vec<FieldRule>,
    /// Labels put on every ticket the bridge creates, rendered from the incident.
    pub labels: Vec<Template>,
    /// Incidents in these statuses get no new ticket (one already linked keeps syncing).
    pub skip_create_statuses: Vec<String>,
    pub write_back: WriteBack,
    /// What happens to a ticket when its incident is merged into another (`[merge]`).
    pub merge: MergePolicy,
    /// `[merge] raise_priority`: when a merged incident was more severe than the one
    /// it was merged into, the survivor's ticket takes the merged one's priority
    /// (every rule reading `severity` that flows to the ticket).
    pub raise_priority: bool,
    /// `[merge] close_with`: ticket attributes and values set when the merged
    /// incident's ticket is closed as a duplicate (a Jira resolution or a
    /// ServiceNow close code of "Duplicate"), over what the field rules map.
    pub close_with: Vec<(String, String)>,
    /// Which way comments are carried across (`[comments]`).
    pub comments: CommentSync,
    /// The generic ticket system's API description (`[api]`); set exactly when
    /// `ticket_kind` is `Generic`.
    pub api: Option<GenericApi>,
}

/// Which way comments are carried across; both off unless the mapping says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommentSync {
    /// Incident comments become ticket comments (work notes on ServiceNow).
    pub to_ticket: bool,
    /// Ticket comments become incident comments.
    pub to_incident: bool,
}

/// What the bridge does when the incident source merges ("redirects") an incident
/// into another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergePolicy {
    /// Close the merged incident's ticket as the mapping closes a redirected
    /// incident's ticket, comment on it with a link to the surviving incident's
    /// ticket, and comment on that ticket that it absorbed the other.
    #[default]
    CloseAsDuplicate,
    /// Only the two comments; the merged incident's ticket stays as it is.
    LinkOnly,
    /// Nothing is written; the link is marked merged (and no longer synced).
    KeepOpen,
}

impl MergePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            MergePolicy::CloseAsDuplicate => "close_as_duplicate",
            MergePolicy::LinkOnly => "link_only",
            MergePolicy::KeepOpen => "keep_open",
        }
    }
}

/// How one mapped field flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Both,
    ToTicket,
    ToIncident,
}

impl Flow {
    pub fn to_ticket(self) -> bool {
        matches!(self, Flow::Both | Flow::ToTicket)
    }
    pub fn to_incident(self) -> bool {
        matches!(self, Flow::Both | Flow::ToIncident)
    }
}

/// Where the incident side of a field comes from.
#[derive(Debug, Clone)]
pub enum IncidentSide {
    /// An incident attribute, read and (if the flow allows) written.
    Attr(String),
    /// A template over the incident; only flows to the ticket.
    Template(Template),
}

/// One mapped field.
#[derive(Debug, Clone)]
pub struct FieldRule {
    pub name: String,
    pub incident: IncidentSide,
    /// The ticket attribute.
    pub ticket: String,
    pub flow: Flow,
    /// Incident value → ticket value; `None` copies the value as it is.
    pub to_ticket: Option<ValueMap>,
    /// Ticket value → incident value; `None` copies the value as it is.
    pub to_incident: Option<ValueMap>,
    /// Overrides the pair's conflict policy for this field.
    pub conflict: Option<ConflictPolicy>,
}

impl FieldRule {
    /// The incident side's current value.
    pub fn incident_value(&self, incident: &IncidentSnapshot, source: &str) -> Option<String> {
        match &self.incident {
            IncidentSide::Attr(name) => incident.attrs.get(name).cloned(),
            IncidentSide::Template(t) => Some(t.render(&TemplateContext {
                source,
                incident: Some(incident),
                ticket: None,
            })),
        }
    }

    /// The incident attribute this rule writes, if any.
    pub fn incident_attr(&self) -> Option<&str> {
        match &self.incident {
            IncidentSide::Attr(name) => Some(name),
            IncidentSide::Template(_) => None,
        }
    }

    /// What the ticket should hold for an incident value.
    pub fn map_to_ticket(&self, value: Option<&str>) -> Option<String> {
        map_value(self.to_ticket.as_ref(), value)
    }

    /// What the incident should hold for a ticket value.
    pub fn map_to_incident(&self, value: Option<&str>) -> Option<String> {
        map_value(self.to_incident.as_ref(), value)
    }
}

/// `a.cmp(b)` for the short names of fields and attributes, byte by byte in
/// place: such names mostly differ in their first byte, which is decided here
/// without the call to `memcmp` that `str::cmp` makes (most of the cost of
/// comparing them, and a reconcile compares names for every field of every link).
pub(crate) fn cmp_names(a: &str, b: &str) -> std::cmp::Ordering {
    for (x, y) in a.bytes().zip(b.bytes()) {
        if x != y {
            return x.cmp(&y);
        }
    }
    a.len().cmp(&b.len())
}

/// `attrs.get(name)`, walking the (few) attributes in order with [`cmp_names`].
pub(crate) fn attr<'a>(attrs: &'a crate::model::Attrs, name: &str) -> Option<&'a str> {
    for (k, v) in attrs {
        match cmp_names(k, name) {
            std::cmp::Ordering::Less => continue,
            std::cmp::Ordering::Equal => return Some(v),
            std::cmp::Ordering::Greater => return None,
        }
    }
    None
}

fn map_value(map: Option<&ValueMap>, value: Option<&str>) -> Option<String> {
    match (map, value) {
        (_, None) => None,
        (None, Some(v)) => Some(v.to_string()),
        // A map entry of "" means: leave the attribute empty.
        (Some(m), Some(v)) => m.get(v).filter(|v| !v.is_empty()).map(str::to_string),
    }
}

/// A value map. Keys match case-insensitively (the remote APIs' label and status
/// names are compared that way); `default` catches values the entries do not name.
/// A value of `""` leaves the target attribute empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValueMap {
    pub entries: Vec<(String, String)>,
    pub default: Option<String>,
}

impl ValueMap {
    pub fn get(&self, value: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(value))
            .map(|(_, v)| v.as_str())
            .or(self.default.as_deref())
    }
}

/// What the bridge writes to the incident once its ticket exists.
#[derive(Debug, Clone, Default)]
pub struct WriteBack {
    /// Tags added to the incident (`customTags` / labels), e.g. `ticket:{ticket.key}`.
    pub tags: Vec<Template>,
    /// A comment added to the incident, e.g. `Jira issue {ticket.key}: {ticket.url}`.
    pub comment: Option<Template>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The in-place comparison orders names as `str::cmp` does, and the walk
        /// finds what `BTreeMap::get` finds, for any text (not only ASCII names).
        #[test]
        fn cmp_names_and_attr_agree_with_the_standard_ones(
            a in "\\PC{0,6}",
            b in "\\PC{0,6}",
            attrs in prop::collection::btree_map("[a-e_]{0,4}", "[a-z]{0,3}", 0..8),
            name in "[a-e_]{0,4}",
        ) {
            prop_assert_eq!(cmp_names(&a, &b), a.cmp(&b));
            prop_assert_eq!(cmp_names(&a, &a), std::cmp::Ordering::Equal);
            prop_assert_eq!(attr(&attrs, &name), attrs.get(&name).map(String::as_str));
        }
    }
}
