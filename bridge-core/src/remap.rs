//! A mapping edit, decided: what the edited mapping changes on the links that
//! already exist. Pure: the old and the new mapping, a link with its baseline
//! and the incident as last synced in; the writes out, as the engine's
//! `Action`s, and their sum as an [`Impact`] (`itsm-bridge mapping impact`).
//!
//! Only what the edit itself changes is written: for each field the new
//! mapping flows to the ticket, the value the new mapping renders from the
//! incident's last synced values is compared with what the old mapping
//! rendered. Where the two differ and the ticket does not already hold the new
//! value, the ticket is rewritten. A value the old mapping already left
//! unwritten (a Jira resolution an open issue cannot take) is not counted
//! again. Fields that flow to the incident are decided the same way from the
//! ticket's last agreed value. A field held on purpose (an edit against a
//! one-way field, a merge's priority raise) keeps its value.

use std::collections::BTreeMap;

use crate::mapping::{FieldRule, IncidentSide, Mapping};
use crate::model::Timestamp;
use crate::model::{
    Agreed, Baseline, FieldChange, IncidentSnapshot, IncidentUpdate, Link, LinkState, TicketUpdate,
};
use crate::reconcile::Action;

/// The two mappings of one pair, before and after the edit.
#[derive(Debug, Clone, Copy)]
pub struct Edit<'a> {
    /// The `[[source]]` name templates see as `{source}`.
    pub source: &'a str,
    pub old: &'a Mapping,
    pub new: &'a Mapping,
}

/// What an edit does to one link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkRemap {
    /// At most one write to each side, then a baseline record where the
    /// incident's rendering moved with no write (a template reworded to what
    /// the ticket already holds).
    pub actions: Vec<Action>,
    /// Fields the edit touches that cannot be decided without the incident's
    /// values (a template, for a link synced before those were kept).
    pub undecided: Vec<String>,
}

/// The writes an edit makes on one active link. `incident` is the incident as
/// the bridge last synced it, when the store has it.
pub fn plan_remap(edit: Edit<'_>, link: &Link, incident: Option<&IncidentSnapshot>) -> LinkRemap {
    let mut out = LinkRemap::default();
    if link.state != LinkState::Active {
        return out;
    }
    let mut ticket = Side::default();
    let mut incident_side = Side::default();
    let mut recorded = Baseline::new();
    for rule in &edit.new.fields {
        let old_rule = edit.old.fields.iter().find(|r| r.name == rule.name);
        let known = link.baseline.get(&rule.name).cloned().unwrap_or_default();
        if known.held {
            continue;
        }
        let Some(now) = incident_value(edit, rule, &known, incident) else {
            if old_rule.is_none_or(|old| !same_rule(old, rule)) {
                out.undecided.push(rule.name.clone());
            }
            continue;
        };
        let before = old_rule.and_then(|old| incident_value(edit, old, &known, incident));
        match decide(rule, old_rule, &known, now.as_deref(), before) {
            Decision::None => {}
            Decision::Record(agreed) => {
                recorded.insert(rule.name.clone(), agreed);
            }
            Decision::Ticket(value, agreed) => {
                ticket.push(rule, &rule.ticket, value, &known.ticket, agreed)
            }
            Decision::Incident(attr, value, agreed) => {
                incident_side.push(rule, &attr, value, &known.incident, agreed)
            }
        }
    }
    out.actions = actions(link, ticket, incident_side, recorded);
    out
}

/// One field's outcome under the edit.
enum Decision {
    None,
    /// No write; the baseline takes the incident's new rendering.
    Record(Agreed),
    Ticket(Option<String>, Agreed),
    Incident(String, Option<String>, Agreed),
}

fn decide(
    rule: &FieldRule,
    old_rule: Option<&FieldRule>,
    known: &Agreed,
    now: Option<&str>,
    before: Option<Option<String>>,
) -> Decision {
    let agreed = |ticket: Option<String>| Agreed {
        incident: now.map(str::to_owned),
        ticket,
        held: false,
    };
    if rule.flow.to_ticket() {
        let desired = rule.map_to_ticket(now);
        let rendered_before = old_rule
            .filter(|old| old.flow.to_ticket() && old.ticket == rule.ticket)
            .map(|old| old.map_to_ticket(before.clone().flatten().as_deref()));
        let edited = rendered_before.as_ref() != Some(&desired);
        if edited && desired != known.ticket && !(now.is_some() && desired.is_none()) {
            return Decision::Ticket(desired.clone(), agreed(desired));
        }
    }
    if rule.flow.to_incident()
        && let Some(attr) = rule.incident_attr()
    {
        let desired = rule.map_to_incident(known.ticket.as_deref());
        let before = old_rule
            .filter(|old| old.flow.to_incident() && old.incident_attr() == Some(attr))
            .map(|old| old.map_to_incident(known.ticket.as_deref()));
        let edited = before.as_ref() != Some(&desired);
        if edited && desired.is_some() && desired.as_deref() != now {
            let agreed = Agreed {
                incident: desired.clone(),
                ticket: known.ticket.clone(),
                held: false,
            };
            return Decision::Incident(attr.to_string(), desired, agreed);
        }
    }
    if now != known.incident.as_deref() {
        return Decision::Record(agreed(known.ticket.clone()));
    }
    Decision::None
}

/// The incident side's value of a rule: an attribute from the incident as last
/// synced or, without it, from the baseline (where the same attribute was
/// mapped); a template rendered from the incident. `None`: not decidable.
fn incident_value(
    edit: Edit<'_>,
    rule: &FieldRule,
    known: &Agreed,
    incident: Option<&IncidentSnapshot>,
) -> Option<Option<String>> {
    match (&rule.incident, incident) {
        (_, Some(i)) => Some(rule.incident_value(i, edit.source)),
        (IncidentSide::Attr(name), None) => {
            let old = edit.old.fields.iter().find(|r| r.name == rule.name)?;
            (old.incident_attr() == Some(name.as_str())).then(|| known.incident.clone())
        }
        (IncidentSide::Template(_), None) => None,
    }
}

/// Two rules that map the same way (nothing to decide when they are equal).
fn same_rule(a: &FieldRule, b: &FieldRule) -> bool {
    let side = match (&a.incident, &b.incident) {
        (IncidentSide::Attr(x), IncidentSide::Attr(y)) => x == y,
        (IncidentSide::Template(x), IncidentSide::Template(y)) => x.as_str() == y.as_str(),
        _ => false,
    };
    side && a.ticket == b.ticket
        && a.flow == b.flow
        && a.to_ticket == b.to_ticket
        && a.to_incident == b.to_incident
}

/// The writes gathered for one side of a link.
#[derive(Default)]
struct Side {
    set: BTreeMap<String, Option<String>>,
    changes: Vec<FieldChange>,
    baseline: Baseline,
}

impl Side {
    fn push(
        &mut self,
        rule: &FieldRule,
        attr: &str,
        value: Option<String>,
        old: &Option<String>,
        agreed: Agreed,
    ) {
        self.set.insert(attr.to_string(), value.clone());
        self.changes.push(FieldChange {
            field: rule.name.clone(),
            old: old.clone(),
            new: value,
            conflict: None,
        });
        self.baseline.insert(rule.name.clone(), agreed);
    }
}

fn actions(link: &Link, ticket: Side, incident: Side, recorded: Baseline) -> Vec<Action> {
    let mut actions = Vec::new();
    if !ticket.set.is_empty() {
        actions.push(Action::UpdateTicket {
            incident_id: link.incident_id.clone(),
            ticket_key: link.ticket_key.clone(),
            update: TicketUpdate {
                set: ticket.set,
                add_labels: Vec::new(),
            },
            changes: ticket.changes,
            baseline: ticket.baseline,
            incident_seen: None,
            ticket_seen: Some(link.ticket_seen()),
        });
    }
    if !incident.set.is_empty() {
        actions.push(Action::UpdateIncident {
            incident_id: link.incident_id.clone(),
            ticket_key: link.ticket_key.clone(),
            update: IncidentUpdate {
                set: incident.set,
                add_tags: Vec::new(),
            },
            changes: incident.changes,
            baseline: incident.baseline,
            incident_seen: Some(link.incident_seen()),
            ticket_seen: None,
        });
    }
    if !recorded.is_empty() {
        actions.push(Action::RecordBaseline {
            incident_id: link.incident_id.clone(),
            ticket_key: link.ticket_key.clone(),
            changes: Vec::new(),
            baseline: recorded,
            incident_seen: None,
            ticket_seen: None,
            note: "the mapping was edited: the incident's values render anew".to_string(),
        });
    }
    actions
}

/// How long a link whose incident closed is still followed: swept for drift,
/// and rewritten by a mapping edit.
pub const SETTLED_AFTER: chrono::Duration = chrono::Duration::days(7);

/// Whether both sides last agreed that the link's incident is closed (by the
/// baseline of the fields that map the incident's `status`).
pub fn incident_closed(mapping: &Mapping, link: &Link) -> bool {
    mapping
        .fields
        .iter()
        .filter(|r| r.incident_attr() == Some("status"))
        .filter_map(|r| link.baseline.get(&r.name)?.incident.as_deref())
        .any(|status| crate::vocab::is_closed_status(mapping.source_kind, status))
}

/// Whether an edit reaches the link: active, and its incident open or closed
/// for less than [`SETTLED_AFTER`] — the links the drift sweep follows.
pub fn reaches(mapping: &Mapping, link: &Link, now: Timestamp) -> bool {
    link.state == LinkState::Active
        && (link.updated >= now - SETTLED_AFTER || !incident_closed(mapping, link))
}

/// The sum of an edit over a pair's links: what `mapping impact` prints and
/// what a reload is held back by (`[mapping] max_rewrites`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Impact {
    /// The links the edit reaches ([`reaches`]).
    pub links: usize,
    /// Links left alone: merged, or closed for over [`SETTLED_AFTER`].
    pub left_alone: usize,
    /// Remote writes: one per side of each link rewritten.
    pub ticket_writes: usize,
    pub incident_writes: usize,
    /// Per field, the links whose value the edit changes.
    pub per_field: BTreeMap<String, usize>,
    /// Per field and value transition (`old → new`), how many links.
    pub transitions: BTreeMap<(String, String, String), usize>,
    /// Links that cannot be decided without the incident's values.
    pub undecided: usize,
    /// The first links rewritten: (incident id, ticket key, changes).
    pub sample: Vec<(String, String, Vec<FieldChange>)>,
}

impl Impact {
    /// How many links of the sample are kept.
    pub const SAMPLE: usize = 10;

    /// Remote writes the edit causes.
    pub fn writes(&self) -> usize {
        self.ticket_writes + self.incident_writes
    }

    /// Adds one link's remap.
    pub fn add(&mut self, link: &Link, remap: &LinkRemap) {
        self.links += 1;
        if !remap.undecided.is_empty() {
            self.undecided += 1;
        }
        let mut changes = Vec::new();
        for action in &remap.actions {
            let list = match action {
                Action::UpdateTicket { changes, .. } => {
                    self.ticket_writes += 1;
                    changes
                }
                Action::UpdateIncident { changes, .. } => {
                    self.incident_writes += 1;
                    changes
                }
                _ => continue,
            };
            for c in list {
                *self.per_field.entry(c.field.clone()).or_default() += 1;
                let key = (c.field.clone(), shown(&c.old), shown(&c.new));
                *self.transitions.entry(key).or_default() += 1;
                changes.push(c.clone());
            }
        }
        if !changes.is_empty() && self.sample.len() < Impact::SAMPLE {
            self.sample
                .push((link.incident_id.clone(), link.ticket_key.clone(), changes));
        }
    }
}

/// A value as the impact report shows it.
fn shown(value: &Option<String>) -> String {
    crate::ledger::plain_value(value.as_deref())
}

#[cfg(test)]
mod tests;
