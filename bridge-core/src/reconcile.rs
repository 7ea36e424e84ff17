//! Reconciliation: a pure function from what changed on both sides, the existing
//! links with their last-agreed baselines and the mapping, to a sorted plan of
//! actions. It never awaits, never reads the clock, never touches the store: the
//! engine gathers the input and carries the plan out.
//!
//! Per mapped field it runs a three-way diff against the baseline: a value changed
//! on one side only flows to the other (if the field's flow allows it); changed on
//! both sides to values that do not correspond is a conflict, settled by the field's
//! or the pair's policy and recorded; the bridge's own writes come back equal to the
//! baseline, so nothing echoes.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::mapping::{FieldRule, IncidentSide, Mapping, TemplateContext, ValueMap};
use crate::model::{
    Agreed, Baseline, ConflictNote, ConflictPolicy, Correlation, FieldChange, Freshness,
    IncidentSnapshot, IncidentUpdate, Link, LinkState, TicketCreate, TicketSnapshot, TicketUpdate,
    Timestamp, Version,
};
use crate::vocab::incident_attrs;

/// The pair being reconciled.
#[derive(Debug, Clone, Copy)]
pub struct PairSpec<'a> {
    /// `<source>-><ticket_system>`.
    pub pair: &'a str,
    /// The `[[source]]` name (it goes into correlation ids and templates).
    pub source: &'a str,
    /// The tenant or workspace of the source (it qualifies correlation ids).
    pub scope: &'a str,
    pub mapping: &'a Mapping,
    pub policy: ConflictPolicy,
}

/// What changed, and the links that concern it. Snapshots of the version their
/// link last synced from, or an older one, are ignored (overlap windows and
/// lagging search indexes return old versions); one stamped at the same time
/// with no version to tell is compared by content.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub incidents: &'a [IncidentSnapshot],
    pub tickets: &'a [TicketSnapshot],
    pub links: &'a [Link],
}

/// The plan: actions sorted by incident id, then by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub actions: Vec<Action>,
}

/// One thing to do. Each carries the baseline entries to record once it succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// A new incident: create its ticket (or adopt the one already there).
    CreateTicket {
        incident: Box<IncidentSnapshot>,
        create: TicketCreate,
        baseline: Baseline,
    },
    /// Write the ticket key back to the incident (tags and a comment).
    WriteBack {
        incident_id: String,
        ticket_key: String,
        tags: Vec<String>,
        comment: Option<String>,
    },
    UpdateTicket {
        incident_id: String,
        ticket_key: String,
        update: TicketUpdate,
        changes: Vec<FieldChange>,
        baseline: Baseline,
        incident_seen: Option<Version>,
        ticket_seen: Option<Version>,
    },
    UpdateIncident {
        incident_id: String,
        ticket_key: String,
        update: IncidentUpdate,
        changes: Vec<FieldChange>,
        baseline: Baseline,
        incident_seen: Option<Version>,
        ticket_seen: Option<Version>,
    },
    /// The incident source merged ("redirected") this incident into another: the
    /// engine follows the chain to the surviving incident, makes sure it has a
    /// ticket, and applies the mapping's merge policy to this incident's ticket.
    Merge {
        incident: Box<IncidentSnapshot>,
        /// The incident it was merged into, as the source names it (it may itself
        /// have been merged on); `None` when the source did not say.
        target_id: Option<String>,
    },
    /// No remote write: the baseline moves (a change that needs no sync, or both
    /// sides already agree).
    RecordBaseline {
        incident_id: String,
        ticket_key: String,
        changes: Vec<FieldChange>,
        baseline: Baseline,
        incident_seen: Option<Version>,
        ticket_seen: Option<Version>,
        note: String,
    },
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::CreateTicket { .. } => "create_ticket",
            Action::WriteBack { .. } => "write_back",
            Action::UpdateTicket { .. } => "update_ticket",
            Action::UpdateIncident { .. } => "update_incident",
            Action::RecordBaseline { .. } => "record_baseline",
            Action::Merge { .. } => "merge",
        }
    }

    pub fn incident_id(&self) -> &str {
        match self {
            Action::CreateTicket { incident, .. } | Action::Merge { incident, .. } => &incident.id,
            Action::WriteBack { incident_id, .. }
            | Action::UpdateTicket { incident_id, .. }
            | Action::UpdateIncident { incident_id, .. }
            | Action::RecordBaseline { incident_id, .. } => incident_id,
        }
    }

    /// Whether the action writes to a remote system.
    pub fn is_remote_write(&self) -> bool {
        !matches!(self, Action::RecordBaseline { .. })
    }

    /// A baseline that needs no write is recorded before the writes of the same
    /// link, so that what a write reads back has the last word.
    fn order(&self) -> u8 {
        match self {
            Action::CreateTicket { .. } | Action::Merge { .. } => 0,
            Action::RecordBaseline { .. } => 1,
            Action::WriteBack { .. } => 2,
            Action::UpdateTicket { .. } => 3,
            Action::UpdateIncident { .. } => 4,
        }
    }
}

/// Reconciles one batch. A side whose version is the link's (or older) is taken
/// as unchanged; one tied in time without a version is compared with the
/// baseline, field by field.
pub fn reconcile(pair: PairSpec<'_>, input: Input<'_>) -> Plan {
    plan(pair, input, false)
}

/// Reconciles one batch for the drift-repair sweep: every given snapshot is
/// compared with the baseline whatever its modification time says, because the
/// changes the sweep is for are the ones whose times misled the poll (clock skew,
/// a lagging index, an edit stamped before the watermark).
pub fn reconcile_all(pair: PairSpec<'_>, input: Input<'_>) -> Plan {
    plan(pair, input, true)
}

/// Link positions by incident id or ticket key.
type IdMap<'a> = HashMap<&'a str, usize, foldhash::fast::RandomState>;

fn plan(pair: PairSpec<'_>, input: Input<'_>, ignore_times: bool) -> Plan {
    let links = input.links;
    // Each link by its position; where two links share an incident id or a
    // ticket key, the later one is the one that counts.
    // Hashed with foldhash rather than SipHash: these maps take every link of the
    // batch, and SipHash over their short ids was 3% of the bench's reconcile
    // instructions. Still seeded per process: the ids come from remote systems.
    let mut by_incident: IdMap<'_> =
        IdMap::with_capacity_and_hasher(links.len(), Default::default());
    let mut by_ticket: IdMap<'_> = IdMap::default();
    for (i, l) in links.iter().enumerate() {
        by_incident.insert(l.incident_id.as_str(), i);
    }
    // Only a batch with tickets in it looks links up by ticket.
    if !input.tickets.is_empty() {
        by_ticket.reserve(links.len());
        for (i, l) in links.iter().enumerate() {
            by_ticket.insert(l.ticket_key.as_str(), i);
        }
    }
    let unique_incidents = by_incident.len() == links.len();

    // Pair up each link's fresh snapshots, in a slot per link position.
    let mut work: Vec<(Option<&IncidentSnapshot>, Option<&TicketSnapshot>)> =
        vec![(None, None); links.len()];
    let mut touched: Vec<usize> = Vec::new();
    let mut actions = Vec::new();
    for incident in input.incidents {
        let at = by_incident.get(incident.id.as_str()).copied();
        if is_redirected(incident) {
            // A merged incident gets no ticket of its own and is no longer diffed;
            // one already marked merged has nothing left to do.
            let merged = at.is_some_and(|i| links[i].state == LinkState::Merged);
            if !merged {
                actions.push(Action::Merge {
                    incident: Box::new(incident.clone()),
                    target_id: incident.redirect_to.clone(),
                });
            }
            continue;
        }
        match at {
            Some(i) => {
                let link = &links[i];
                // A link whose write-back was interrupted is taken up again even when
                // the incident has not changed since.
                if ignore_times || !link.written_back || incident_may_have_changed(incident, link) {
                    if work[i].0.is_none() && work[i].1.is_none() {
                        touched.push(i);
                    }
                    work[i].0 = Some(incident);
                }
            }
            None => actions.extend(plan_create(pair, incident)),
        }
    }
    for ticket in input.tickets {
        if let Some(&t) = by_ticket.get(ticket.key.as_str())
            && (ignore_times || ticket_may_have_changed(ticket, &links[t]))
        {
            // The slot of the link that counts for this link's incident.
            let i = if unique_incidents {
                t
            } else {
                by_incident[links[t].incident_id.as_str()]
            };
            if work[i].0.is_none() && work[i].1.is_none() {
                touched.push(i);
            }
            work[i].1 = Some(ticket);
        }
    }

    let mut reads = Reads::new(pair.mapping);
    for i in touched {
        let (incident, ticket) = work[i];
        let link = &links[i];
        if link.state != LinkState::Active {
            continue;
        }
        if !link.written_back {
            actions.extend(plan_write_back(pair, link, incident));
        }
        plan_link(pair, &mut reads, link, incident, ticket, &mut actions);
    }

    Plan {
        actions: sorted(actions),
    }
}

/// The actions by incident id, then by kind, in a stable order. Sorts their
/// positions rather than the actions themselves (which are large to move), and
/// takes the common case of a batch already in order in one pass.
fn sorted(actions: Vec<Action>) -> Vec<Action> {
    fn key(a: &Action) -> (&str, u8) {
        (a.incident_id(), a.order())
    }
    if actions.windows(2).all(|w| key(&w[0]) <= key(&w[1])) {
        return actions;
    }
    let mut order: Vec<usize> = (0..actions.len()).collect();
    order.sort_by(|&a, &b| key(&actions[a]).cmp(&key(&actions[b])));
    let mut slots: Vec<Option<Action>> = actions.into_iter().map(Some).collect();
    order
        .into_iter()
        .map(|i| slots[i].take().expect("each position is taken once"))
        .collect()
}

/// Whether an incident read now may differ from the version its link last
/// synced from (the borrowed form of `Version::freshness`, without copying the
/// etags of a hundred thousand links).
fn incident_may_have_changed(incident: &IncidentSnapshot, link: &Link) -> bool {
    Version::compare(
        incident.modified,
        incident.etag.as_deref(),
        link.incident_modified,
        link.incident_version.as_deref(),
    )
    .may_have_changed()
}

/// The same for a ticket.
fn ticket_may_have_changed(ticket: &TicketSnapshot, link: &Link) -> bool {
    Version::compare(
        ticket.modified,
        ticket.version.as_deref(),
        link.ticket_modified,
        link.ticket_version.as_deref(),
    )
    .may_have_changed()
}

/// Whether the source merged this incident into another: Graph says `redirected`
/// (with `redirectIncidentId`); Sentinel closes it with a `Redirected` label.
pub fn is_redirected(incident: &IncidentSnapshot) -> bool {
    let status = crate::mapping::attr(&incident.attrs, "status").unwrap_or_default();
    incident.redirect_to.is_some()
        || status.eq_ignore_ascii_case("redirected")
        || (status.eq_ignore_ascii_case("closed")
            && incident
                .tags
                .iter()
                .any(|t| t.eq_ignore_ascii_case("redirected")))
}

/// The ticket side of the field diff of the incident as the source now shows it.
/// It is what closing a merged incident's ticket takes (its status maps to a
/// closed ticket status), and what follows on the ticket from the bridge's own
/// write to the incident (a template over an attribute the bridge just wrote).
pub fn plan_to_ticket(pair: PairSpec<'_>, link: &Link, incident: &IncidentSnapshot) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut reads = Reads::new(pair.mapping);
    plan_link(pair, &mut reads, link, Some(incident), None, &mut actions);
    actions.retain(|a| matches!(a, Action::UpdateTicket { .. }));
    actions
}

/// What closing a merged incident's ticket as a duplicate takes: the ticket side
/// of the field diff (its status maps to a closed ticket status), with the
/// mapping's `[merge] close_with` values over what the field rules map.
pub fn plan_close(pair: PairSpec<'_>, link: &Link, incident: &IncidentSnapshot) -> Vec<Action> {
    let mut actions = plan_to_ticket(pair, link, incident);
    let close_with = &pair.mapping.close_with;
    if close_with.is_empty() {
        return actions;
    }
    if actions.is_empty() {
        actions.push(Action::UpdateTicket {
            incident_id: link.incident_id.clone(),
            ticket_key: link.ticket_key.clone(),
            update: TicketUpdate::default(),
            changes: Vec::new(),
            baseline: Baseline::new(),
            incident_seen: Some(incident.version()),
            ticket_seen: None,
        });
    }
    if let Some(Action::UpdateTicket {
        update,
        changes,
        baseline,
        ..
    }) = actions.first_mut()
    {
        for (attr, value) in close_with {
            let rules: Vec<&FieldRule> = pair
                .mapping
                .fields
                .iter()
                .filter(|r| &r.ticket == attr)
                .collect();
            update.set.insert(attr.clone(), Some(value.clone()));
            changes.retain(|c| !rules.iter().any(|r| r.name == c.field));
            changes.push(FieldChange {
                field: rules.first().map_or(attr.clone(), |r| r.name.clone()),
                old: rules
                    .first()
                    .and_then(|r| link.baseline.get(&r.name))
                    .and_then(|a| a.ticket.clone()),
                new: Some(value.clone()),
                conflict: None,
            });
            for rule in rules {
                baseline.insert(
                    rule.name.clone(),
                    Agreed {
                        incident: rule.incident_value(incident, pair.source),
                        ticket: Some(value.clone()),
                        held: true,
                    },
                );
            }
        }
    }
    actions
}

/// A ticket to make for a new incident: what `Action::CreateTicket` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    pub incident: Box<IncidentSnapshot>,
    pub create: TicketCreate,
    pub baseline: Baseline,
}

impl From<NewTicket> for Action {
    fn from(new: NewTicket) -> Action {
        Action::CreateTicket {
            incident: new.incident,
            create: new.create,
            baseline: new.baseline,
        }
    }
}

/// A new incident: its ticket, rendered from the mapping.
pub fn plan_create(pair: PairSpec<'_>, incident: &IncidentSnapshot) -> Option<Action> {
    plan_new_ticket(pair, incident).map(Action::from)
}

/// The ticket a new incident gets, rendered from the mapping; `None` for an
/// incident in a status the mapping makes no ticket for.
pub fn plan_new_ticket(pair: PairSpec<'_>, incident: &IncidentSnapshot) -> Option<NewTicket> {
    let status = incident
        .attrs
        .get("status")
        .map(String::as_str)
        .unwrap_or_default();
    if pair
        .mapping
        .skip_create_statuses
        .iter()
        .any(|s| s.eq_ignore_ascii_case(status))
    {
        return None;
    }
    let mut attrs = BTreeMap::new();
    let mut baseline = Baseline::new();
    for rule in &pair.mapping.fields {
        let incident_value = rule.incident_value(incident, pair.source);
        let ticket_value = if rule.flow.to_ticket() {
            rule.map_to_ticket(incident_value.as_deref())
        } else {
            None
        };
        if let Some(v) = &ticket_value {
            attrs.insert(rule.ticket.clone(), v.clone());
        }
        baseline.insert(
            rule.name.clone(),
            Agreed {
                incident: incident_value,
                ticket: ticket_value,
                held: false,
            },
        );
    }
    let ctx = TemplateContext {
        source: pair.source,
        incident: Some(incident),
        ticket: None,
    };
    let mut labels: Vec<String> = Vec::new();
    for label in &pair.mapping.labels {
        let l = label.render(&ctx);
        if !l.is_empty() && !labels.contains(&l) {
            labels.push(l);
        }
    }
    Some(NewTicket {
        incident: Box::new(incident.clone()),
        create: TicketCreate {
            correlation: Correlation::new(pair.source, incident.id.clone()).with_scope(pair.scope),
            attrs,
            labels,
        },
        baseline,
    })
}

/// What the mapping writes back to an incident once its ticket exists.
pub fn plan_write_back(
    pair: PairSpec<'_>,
    link: &Link,
    incident: Option<&IncidentSnapshot>,
) -> Option<Action> {
    let wb = &pair.mapping.write_back;
    if wb.tags.is_empty() && wb.comment.is_none() {
        return None;
    }
    let (tags, comment) = render_write_back(pair, &link_ticket(link), incident);
    Some(Action::WriteBack {
        incident_id: link.incident_id.clone(),
        ticket_key: link.ticket_key.clone(),
        tags,
        comment,
    })
}

/// The mapping's write-back rendered for a ticket: the tags the incident does
/// not carry yet and the marked comment, unless the incident already has it
/// (`None` for an incident not read: everything is rendered).
pub fn render_write_back(
    pair: PairSpec<'_>,
    ticket: &TicketSnapshot,
    incident: Option<&IncidentSnapshot>,
) -> (Vec<String>, Option<String>) {
    let wb = &pair.mapping.write_back;
    let ctx = TemplateContext {
        source: pair.source,
        incident,
        ticket: Some(ticket),
    };
    let tags: Vec<String> = wb
        .tags
        .iter()
        .map(|t| t.render(&ctx))
        .filter(|t| !t.is_empty())
        .filter(|t| incident.is_none_or(|i| !i.tags.iter().any(|x| x.eq_ignore_ascii_case(t))))
        .collect();
    let comment = wb
        .comment
        .as_ref()
        .map(|c| c.render(&ctx))
        .filter(|c| !c.trim().is_empty())
        .map(|c| crate::comments::marked(&c))
        .filter(|c| incident.is_none_or(|i| !i.comments.iter().any(|x| x.text.trim() == c.trim())));
    (tags, comment)
}

/// The ticket as a link remembers it (enough for write-back templates).
fn link_ticket(link: &Link) -> TicketSnapshot {
    TicketSnapshot {
        key: link.ticket_key.clone(),
        id: link.ticket_id.clone(),
        url: link.ticket_url.clone(),
        created: link.created,
        modified: link.ticket_modified,
        version: link.ticket_version.clone(),
        attrs: BTreeMap::new(),
        labels: Vec::new(),
        correlation: None,
        comments: Vec::new(),
        modified_by: Default::default(),
    }
}

/// Which side won a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Winner {
    Incident,
    Ticket,
}

/// What the three-way diff of one field decided: the whole per-field decision,
/// taken by [`decide`] and gathered by [`plan_link`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum FieldDecision {
    /// Unchanged on both sides. `pending` is a value the ticket never took (a
    /// Jira resolution on an open issue), carried along with the next write to
    /// the ticket, if there is one.
    Unchanged { pending: Option<FieldWrite> },
    /// The change flows to the ticket.
    ToTicket(FieldWrite),
    /// The change flows to the incident.
    ToIncident(FieldWrite),
    /// No write: the baseline moves to what both sides hold now (both changed to
    /// corresponding values, a change against the field's flow, a value the
    /// other side has no mapping for or already holds).
    Record {
        change: Option<FieldChange>,
        agreed: Agreed,
        note: Option<String>,
    },
}

/// One field's write to one side.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldWrite {
    /// The attribute written on that side.
    attr: String,
    value: Option<String>,
    change: FieldChange,
    /// What both sides agree on once the write succeeded.
    agreed: Agreed,
}

/// [`decide`] with the rule's attributes found by a search per field: how the
/// tests state one field's situation, and the reference the one-pass lookups of
/// [`Reads`] are checked against.
#[cfg(test)]
fn decide_field(
    pair: PairSpec<'_>,
    rule: &FieldRule,
    known: Option<&Agreed>,
    incident: Option<&IncidentSnapshot>,
    ticket: Option<&TicketSnapshot>,
) -> FieldDecision {
    let incident_attr = incident
        .zip(rule.incident_attr())
        .and_then(|(i, name)| i.attrs.get(name));
    let ticket_attr = ticket.and_then(|t| t.attrs.get(&rule.ticket));
    decide(
        pair,
        rule,
        known,
        incident,
        ticket,
        incident_attr.map(String::as_str),
        ticket_attr.map(String::as_str),
    )
}

/// The per-field three-way decision: the field's `known` baseline (`None` for a
/// field added to the mapping after the link was made), what each side holds now
/// (a side not read this time is taken as its baseline; `incident_attr` and
/// `ticket_attr` are the rule's attributes on the sides read, as [`plan_link`]
/// finds them for all the fields at once), and the rule's flow and conflict
/// policy. Pure; it reads the snapshots' times only to settle a `newest_wins`
/// conflict.
fn decide(
    pair: PairSpec<'_>,
    rule: &FieldRule,
    known: Option<&Agreed>,
    incident: Option<&IncidentSnapshot>,
    ticket: Option<&TicketSnapshot>,
    incident_attr: Option<&str>,
    ticket_attr: Option<&str>,
) -> FieldDecision {
    // What each side holds now, borrowed where it can be (most fields of most
    // links are unchanged, and copying them is most of a batch's time); a side
    // not read this time is taken as its baseline.
    let base_incident = known.and_then(|b| b.incident.as_deref());
    let base_ticket = known.and_then(|b| b.ticket.as_deref());
    let rendered: String;
    let incident_now: Option<&str> = match (incident, &rule.incident) {
        (Some(i), IncidentSide::Template(template)) => {
            let ctx = TemplateContext {
                source: pair.source,
                incident: Some(i),
                ticket: None,
            };
            match base_incident {
                // The template renders to the text last agreed, checked in place:
                // that text is what the incident holds now, and no copy is made.
                // Only a template whose text changed is rendered.
                Some(agreed) if template.renders_to(&ctx, agreed) => Some(agreed),
                _ => {
                    rendered = template.render(&ctx);
                    Some(rendered.as_str())
                }
            }
        }
        (Some(_), IncidentSide::Attr(_)) => incident_attr,
        (None, _) => base_incident,
    };
    let ticket_now: Option<&str> = match ticket {
        Some(_) => ticket_attr,
        None => base_ticket,
    };
    let (inc_changed, tic_changed) = match known {
        Some(_) => (incident_now != base_incident, ticket_now != base_ticket),
        // A field added to the mapping after the link was made: bring it in step.
        None => (rule.flow.to_ticket(), !rule.flow.to_ticket()),
    };
    if !inc_changed && !tic_changed {
        let held = known.is_some_and(|b| b.held);
        return FieldDecision::Unchanged {
            pending: pending_for_ticket(rule, held, incident_now, ticket_now),
        };
    }

    let now = Agreed {
        incident: incident_now.map(str::to_owned),
        ticket: ticket_now.map(str::to_owned),
        held: false,
    };
    let (winner, conflict) = match (inc_changed, tic_changed) {
        (true, false) => (Winner::Incident, None),
        (false, true) => (Winner::Ticket, None),
        // Changed on both sides (an unchanged field returned above).
        _ if corresponds(rule, now.incident.as_deref(), now.ticket.as_deref()) => {
            let change = FieldChange {
                field: rule.name.clone(),
                old: base_ticket.map(str::to_owned),
                new: now.ticket.clone(),
                conflict: None,
            };
            let note = format!("{}: both sides changed to matching values", rule.name);
            return record(now, Some(change), Some(note));
        }
        _ => {
            let policy = rule.conflict.unwrap_or(pair.policy);
            let (winner, tie) = settle(pair, rule, policy, incident, ticket);
            let conflict = ConflictNote {
                policy,
                incident_value: now.incident.clone(),
                ticket_value: now.ticket.clone(),
                tie,
            };
            (winner, Some(conflict))
        }
    };

    match winner {
        Winner::Incident if rule.flow.to_ticket() => flow_to_ticket(rule, now, conflict),
        Winner::Ticket if rule.flow.to_incident() && rule.incident_attr().is_some() => {
            flow_to_incident(pair, rule, now, conflict)
        }
        // The change went against the field's flow: accept it where it was made.
        _ => {
            let (side, old, new) = if inc_changed {
                ("incident", base_incident, now.incident.clone())
            } else {
                ("ticket", base_ticket, now.ticket.clone())
            };
            let note = format!(
                "{}: changed on the {side}, which this field does not sync from",
                rule.name
            );
            let change = FieldChange {
                field: rule.name.clone(),
                old: old.map(str::to_owned),
                new,
                conflict,
            };
            // Kept on the ticket until the incident moves again.
            let now = Agreed {
                held: !inc_changed,
                ..now
            };
            record(now, Some(change), Some(note))
        }
    }
}

/// No write: the baseline moves to `now`.
fn record(now: Agreed, change: Option<FieldChange>, note: Option<String>) -> FieldDecision {
    FieldDecision::Record {
        change,
        agreed: now,
        note,
    }
}

/// Unchanged, but maybe never agreed (a value the other side could not take at
/// the time, like a Jira resolution on an open issue): carried along with the
/// next write to the ticket. A value held on the ticket on purpose is not.
fn pending_for_ticket(
    rule: &FieldRule,
    held: bool,
    incident_now: Option<&str>,
    ticket_now: Option<&str>,
) -> Option<FieldWrite> {
    if !rule.flow.to_ticket() || held {
        return None;
    }
    let desired = mapped(rule.to_ticket.as_ref(), incident_now);
    if desired.is_none() || desired == ticket_now {
        return None;
    }
    let desired = desired.map(str::to_owned);
    Some(FieldWrite {
        attr: rule.ticket.clone(),
        value: desired.clone(),
        change: FieldChange {
            field: rule.name.clone(),
            old: ticket_now.map(str::to_owned),
            new: desired.clone(),
            conflict: None,
        },
        agreed: Agreed {
            incident: incident_now.map(str::to_owned),
            ticket: desired,
            held: false,
        },
    })
}

/// [`FieldRule::map_to_ticket`] without the copy: the value a map gives (an
/// entry of `""` gives none), or the value itself where there is no map.
fn mapped<'a>(map: Option<&'a ValueMap>, value: Option<&'a str>) -> Option<&'a str> {
    match (map, value) {
        (_, None) => None,
        (None, Some(v)) => Some(v),
        (Some(m), Some(v)) => m.get(v).filter(|v| !v.is_empty()),
    }
}

/// The incident's side won: its value, mapped, goes to the ticket, unless the
/// mapping has no ticket value for it or the ticket already holds it.
fn flow_to_ticket(rule: &FieldRule, now: Agreed, conflict: Option<ConflictNote>) -> FieldDecision {
    let desired = rule.map_to_ticket(now.incident.as_deref());
    if now.incident.is_some() && desired.is_none() {
        let note = format!(
            "{}: no ticket value is mapped for {}",
            rule.name,
            crate::ledger::plain_value(now.incident.as_deref())
        );
        return record(now, None, Some(note));
    }
    if desired == now.ticket {
        return record(now, None, None);
    }
    FieldDecision::ToTicket(FieldWrite {
        attr: rule.ticket.clone(),
        value: desired.clone(),
        change: FieldChange {
            field: rule.name.clone(),
            old: now.ticket,
            new: desired.clone(),
            conflict,
        },
        agreed: Agreed {
            incident: now.incident,
            ticket: desired,
            held: false,
        },
    })
}

/// The ticket's side won: its value, mapped, goes to the incident attribute,
/// unless the ticket emptied an enumerated attribute (which keeps its value),
/// the mapping has no incident value for it, or the incident already holds it.
fn flow_to_incident(
    pair: PairSpec<'_>,
    rule: &FieldRule,
    now: Agreed,
    conflict: Option<ConflictNote>,
) -> FieldDecision {
    let Some(attr) = rule.incident_attr() else {
        return record(now, None, None);
    };
    let desired = rule.map_to_incident(now.ticket.as_deref());
    let closed = crate::vocab::find(incident_attrs(pair.mapping.source_kind), attr)
        .is_some_and(|a| a.values.is_some());
    if desired.is_none() && closed {
        // Emptied on the ticket (a Jira reopen clears the resolution): an
        // enumerated incident attribute keeps its value.
        return record(now, None, None);
    }
    if now.ticket.is_some() && desired.is_none() {
        let note = format!(
            "{}: no incident value is mapped for {}",
            rule.name,
            crate::ledger::plain_value(now.ticket.as_deref())
        );
        return record(now, None, Some(note));
    }
    if desired == now.incident {
        return record(now, None, None);
    }
    FieldDecision::ToIncident(FieldWrite {
        attr: attr.to_string(),
        value: desired.clone(),
        change: FieldChange {
            field: rule.name.clone(),
            old: now.incident,
            new: desired.clone(),
            conflict,
        },
        agreed: Agreed {
            incident: desired,
            ticket: now.ticket,
            held: false,
        },
    })
}

/// The writes to one side gathered from the fields' decisions.
#[derive(Debug, Default)]
struct SideWrites {
    set: BTreeMap<String, Option<String>>,
    changes: Vec<FieldChange>,
    baseline: Baseline,
}

impl SideWrites {
    fn push(&mut self, rule: &FieldRule, write: FieldWrite) {
        self.set.insert(write.attr, write.value);
        self.changes.push(write.change);
        self.baseline.insert(rule.name.clone(), write.agreed);
    }
}

/// The baseline moves that need no write, with their changes and notes.
#[derive(Debug, Default)]
struct Recorded {
    changes: Vec<FieldChange>,
    baseline: Baseline,
    notes: Vec<String>,
}

/// What the fold over a link's fields gathers.
#[derive(Debug, Default)]
struct LinkWrites<'r> {
    ticket: SideWrites,
    incident: SideWrites,
    recorded: Recorded,
    /// Values the ticket never took, sent only if the ticket is written anyway.
    pending_ticket: Vec<(&'r FieldRule, FieldWrite)>,
}

impl<'r> LinkWrites<'r> {
    fn add(&mut self, rule: &'r FieldRule, decision: FieldDecision) {
        match decision {
            FieldDecision::Unchanged { pending } => {
                self.pending_ticket.extend(pending.map(|w| (rule, w)));
            }
            FieldDecision::ToTicket(write) => self.ticket.push(rule, write),
            FieldDecision::ToIncident(write) => self.incident.push(rule, write),
            FieldDecision::Record {
                change,
                agreed,
                note,
            } => {
                self.recorded.changes.extend(change);
                self.recorded.baseline.insert(rule.name.clone(), agreed);
                self.recorded.notes.extend(note);
            }
        }
    }

    /// A ticket write carries along the values the ticket never took.
    fn finish(&mut self) {
        if !self.ticket.set.is_empty() {
            for (rule, write) in std::mem::take(&mut self.pending_ticket) {
                if !self.ticket.set.contains_key(&write.attr) {
                    self.ticket.push(rule, write);
                }
            }
        }
    }
}

/// Finds the values a link's fields are decided on: each field's baseline and
/// the attribute it reads on each side read. The keys are sorted once per batch
/// so that each map (baseline, ticket attributes, incident attributes) is read in
/// one ordered pass rather than one search per field (each search compared the
/// wanted name with several keys: a fifth of a re-read's instructions went to
/// those comparisons when nothing had changed).
struct Reads<'a> {
    /// Field names, sorted, with each field's position in the mapping.
    names: Vec<(&'a str, usize)>,
    /// The ticket attribute of each field, sorted.
    ticket_attrs: Vec<(&'a str, usize)>,
    /// The incident attribute of each attribute field, sorted (a template reads
    /// what it needs as it is compared).
    incident_attrs: Vec<(&'a str, usize)>,
    found: Found<'a>,
}

/// What [`Reads::find`] found for one link, by field position.
struct Found<'a> {
    known: Vec<Option<&'a Agreed>>,
    ticket: Vec<Option<&'a String>>,
    incident: Vec<Option<&'a String>>,
}

impl<'a> Reads<'a> {
    fn new(mapping: &'a Mapping) -> Reads<'a> {
        let sorted = |mut keys: Vec<(&'a str, usize)>| {
            keys.sort_unstable();
            keys
        };
        let fields = || mapping.fields.iter().enumerate();
        let n = mapping.fields.len();
        Reads {
            names: sorted(fields().map(|(i, r)| (r.name.as_str(), i)).collect()),
            ticket_attrs: sorted(fields().map(|(i, r)| (r.ticket.as_str(), i)).collect()),
            incident_attrs: sorted(
                fields()
                    .filter_map(|(i, r)| Some((r.incident_attr()?, i)))
                    .collect(),
            ),
            found: Found {
                known: vec![None; n],
                ticket: vec![None; n],
                incident: vec![None; n],
            },
        }
    }

    /// The link's values, by field position; a side not read finds nothing.
    fn find(
        &mut self,
        link: &'a Link,
        incident: Option<&'a IncidentSnapshot>,
        ticket: Option<&'a TicketSnapshot>,
    ) -> &Found<'a> {
        let found = &mut self.found;
        find_sorted(&link.baseline, &self.names, &mut found.known);
        match ticket {
            Some(t) => find_sorted(&t.attrs, &self.ticket_attrs, &mut found.ticket),
            None => found.ticket.fill(None),
        }
        match incident {
            Some(i) => find_sorted(&i.attrs, &self.incident_attrs, &mut found.incident),
            None => found.incident.fill(None),
        }
        found
    }
}

/// Looks each of the sorted `keys` up in `map` in one pass over both (a merge of
/// two sorted lists), writing the value found, or `None`, at the key's position
/// in `out`. A key may appear more than once.
fn find_sorted<'a, V>(
    map: &'a BTreeMap<String, V>,
    keys: &[(&str, usize)],
    out: &mut [Option<&'a V>],
) {
    let mut entries = map.iter().peekable();
    for &(key, at) in keys {
        out[at] = loop {
            match entries.peek() {
                Some((k, v)) => match crate::mapping::cmp_names(k, key) {
                    std::cmp::Ordering::Less => {
                        entries.next();
                    }
                    std::cmp::Ordering::Equal => break Some(*v),
                    std::cmp::Ordering::Greater => break None,
                },
                None => break None,
            }
        };
    }
}

/// The three-way diff of one link: [`decide`] over each mapped field,
/// then at most one write to each side and one baseline record, added to
/// `actions` (the batch's plan: no list of its own per link).
fn plan_link<'a>(
    pair: PairSpec<'a>,
    reads: &mut Reads<'a>,
    link: &'a Link,
    incident: Option<&'a IncidentSnapshot>,
    ticket: Option<&'a TicketSnapshot>,
    actions: &mut Vec<Action>,
) {
    let found = reads.find(link, incident, ticket);
    // Made at the first field that is not unchanged: most links of a re-read
    // have none, and then there is nothing to make or drop.
    let mut writes: Option<LinkWrites> = None;
    for (n, rule) in pair.mapping.fields.iter().enumerate() {
        let decision = decide(
            pair,
            rule,
            found.known[n],
            incident,
            ticket,
            found.incident[n].map(String::as_str),
            found.ticket[n].map(String::as_str),
        );
        if !matches!(decision, FieldDecision::Unchanged { pending: None }) {
            writes.get_or_insert_default().add(rule, decision);
        }
    }
    // Whether a side was read at a later version than the link last synced from.
    let moved = incident.is_some_and(|i| {
        Version::compare(
            i.modified,
            i.etag.as_deref(),
            link.incident_modified,
            link.incident_version.as_deref(),
        ) == Freshness::Newer
    }) || ticket.is_some_and(|t| {
        Version::compare(
            t.modified,
            t.version.as_deref(),
            link.ticket_modified,
            link.ticket_version.as_deref(),
        ) == Freshness::Newer
    });
    if writes.is_none() && !moved {
        // The common case of a re-read: nothing to do.
        return;
    }
    let mut writes = writes.unwrap_or_default();
    writes.finish();
    let no_writes = writes.ticket.set.is_empty()
        && writes.incident.set.is_empty()
        && writes.recorded.baseline.is_empty();
    if no_writes && !moved {
        return;
    }
    let incident_seen = incident.map(IncidentSnapshot::version);
    let ticket_seen = ticket.map(TicketSnapshot::version);
    let written = actions.len();
    if !writes.ticket.set.is_empty() {
        actions.push(Action::UpdateTicket {
            incident_id: link.incident_id.clone(),
            ticket_key: link.ticket_key.clone(),
            update: TicketUpdate {
                set: writes.ticket.set,
                add_labels: Vec::new(),
            },
            changes: writes.ticket.changes,
            baseline: writes.ticket.baseline,
            incident_seen: incident_seen.clone(),
            ticket_seen: ticket_seen.clone(),
        });
    }
    if !writes.incident.set.is_empty() {
        actions.push(Action::UpdateIncident {
            incident_id: link.incident_id.clone(),
            ticket_key: link.ticket_key.clone(),
            update: IncidentUpdate {
                set: writes.incident.set,
                add_tags: Vec::new(),
            },
            changes: writes.incident.changes,
            baseline: writes.incident.baseline,
            incident_seen: incident_seen.clone(),
            ticket_seen: ticket_seen.clone(),
        });
    }
    if !writes.recorded.baseline.is_empty() || (actions.len() == written && moved) {
        actions.push(Action::RecordBaseline {
            incident_id: link.incident_id.clone(),
            ticket_key: link.ticket_key.clone(),
            changes: writes.recorded.changes,
            baseline: writes.recorded.baseline,
            incident_seen,
            ticket_seen,
            note: writes.recorded.notes.join("; "),
        });
    }
}

/// Whether two values already say the same thing through the field's maps.
fn corresponds(rule: &FieldRule, incident: Option<&str>, ticket: Option<&str>) -> bool {
    (rule.flow.to_ticket() && rule.map_to_ticket(incident).as_deref() == ticket)
        || (rule.flow.to_incident() && rule.map_to_incident(ticket).as_deref() == incident)
}

/// Settles a conflict; a one-way field always goes its way. Also says whether
/// `newest_wins` met a tie.
///
/// `newest_wins` compares the two modification times at the coarser precision
/// of the two systems (a ServiceNow second against Sentinel's 100 ns ticks: the
/// ticket's `12:00:00` may be later than the incident's `12:00:00.7`). Equal
/// there is a tie, and a tie goes to the incident's side: the source of record
/// for a security incident, and one fixed rule that does not depend on which
/// side the bridge read first.
fn settle(
    pair: PairSpec<'_>,
    rule: &FieldRule,
    policy: ConflictPolicy,
    incident: Option<&IncidentSnapshot>,
    ticket: Option<&TicketSnapshot>,
) -> (Winner, bool) {
    if !rule.flow.to_incident() || rule.incident_attr().is_none() {
        return (Winner::Incident, false);
    }
    if !rule.flow.to_ticket() {
        return (Winner::Ticket, false);
    }
    match policy {
        ConflictPolicy::SourceWins => (Winner::Incident, false),
        ConflictPolicy::TicketWins => (Winner::Ticket, false),
        ConflictPolicy::NewestWins => match (incident, ticket) {
            (Some(i), Some(t)) => {
                let tick = pair
                    .mapping
                    .source_kind
                    .time_precision()
                    .max(pair.mapping.ticket_kind.time_precision());
                let (i_at, t_at) = (truncate(i.modified, tick), truncate(t.modified, tick));
                match t_at.cmp(&i_at) {
                    std::cmp::Ordering::Greater => (Winner::Ticket, false),
                    std::cmp::Ordering::Equal => (Winner::Incident, true),
                    std::cmp::Ordering::Less => (Winner::Incident, false),
                }
            }
            _ => (Winner::Incident, false),
        },
    }
}

/// `at` cut down to a whole number of `tick`s since the epoch.
fn truncate(at: Timestamp, tick: chrono::Duration) -> Timestamp {
    use chrono::DurationRound;
    at.duration_trunc(tick).unwrap_or(at)
}

#[cfg(test)]
pub(crate) mod tests;
