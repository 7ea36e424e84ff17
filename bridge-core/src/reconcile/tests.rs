//! Reconcile tests read as situations: an incident comes in, a ticket goes out.

use std::path::PathBuf;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::mapping::{Flow, IncidentSide, Template, ValueMap, WriteBack};
use crate::model::{Attrs, Direction};
use crate::vocab::{GRAPH_CLASSIFICATION, GRAPH_SEVERITY, GRAPH_STATUS, SourceKind, TicketKind};

pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap()
}

fn vmap(pairs: &[(&str, &str)], default: Option<&str>) -> Option<ValueMap> {
    Some(ValueMap {
        entries: pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        default: default.map(str::to_string),
    })
}

fn rule(name: &str, incident: &str, ticket: &str, flow: Flow) -> FieldRule {
    FieldRule {
        name: name.into(),
        incident: IncidentSide::Attr(incident.into()),
        ticket: ticket.into(),
        flow,
        to_ticket: None,
        to_incident: None,
        conflict: None,
    }
}

/// The shape of mappings/jira.toml, built by hand so these tests stand alone.
pub(crate) fn mapping() -> Mapping {
    let attrs = [
        "title",
        "severity",
        "status",
        "classification",
        "assigned_to",
    ];
    let summary =
        Template::parse("[Defender #{incident.id}] {incident.title}", &attrs, false).unwrap();
    let mut priority = rule("priority", "severity", "priority", Flow::ToTicket);
    priority.to_ticket = vmap(
        &[
            ("high", "Highest"),
            ("medium", "High"),
            ("low", "Medium"),
            ("informational", "Low"),
        ],
        Some("Medium"),
    );
    let mut status = rule("status", "status", "status", Flow::Both);
    status.to_ticket = vmap(
        &[
            ("active", "new"),
            ("inProgress", "indeterminate"),
            ("awaitingAction", "indeterminate"),
            ("resolved", "done"),
            ("redirected", "done"),
            ("unknownFutureValue", "new"),
        ],
        None,
    );
    status.to_incident = vmap(
        &[
            ("new", "active"),
            ("indeterminate", "inProgress"),
            ("done", "resolved"),
        ],
        None,
    );
    let mut classification = rule("classification", "classification", "resolution", Flow::Both);
    classification.to_incident = vmap(
        &[("Done", "truePositive"), ("Won't Do", "falsePositive")],
        Some("unknown"),
    );
    classification.to_ticket = vmap(&[("falsePositive", "Won't Do")], Some("Done"));
    Mapping {
        file: PathBuf::from("jira.toml"),
        source_kind: SourceKind::Graph,
        ticket_kind: TicketKind::Jira,
        fields: vec![
            FieldRule {
                name: "summary".into(),
                incident: IncidentSide::Template(summary),
                ticket: "summary".into(),
                flow: Flow::ToTicket,
                to_ticket: None,
                to_incident: None,
                conflict: None,
            },
            priority,
            status,
            classification,
            rule("assignee", "assigned_to", "assignee", Flow::ToTicket),
        ],
        labels: vec![Template::parse("soc", &attrs, false).unwrap()],
        skip_create_statuses: vec!["resolved".into(), "redirected".into()],
        write_back: WriteBack {
            tags: vec![Template::parse("ticket:{ticket.key}", &attrs, true).unwrap()],
            comment: Some(
                Template::parse("Jira {ticket.key}: {ticket.url}", &attrs, true).unwrap(),
            ),
        },
        merge: crate::mapping::MergePolicy::default(),
        raise_priority: false,
        close_with: Vec::new(),
        comments: crate::mapping::CommentSync {
            to_ticket: true,
            to_incident: true,
        },
        api: None,
    }
}

pub(crate) fn pair(mapping: &Mapping, policy: ConflictPolicy) -> PairSpec<'_> {
    PairSpec {
        pair: "defender->jira",
        source: "defender",
        scope: "tenant-1",
        mapping,
        policy,
    }
}

pub(crate) fn incident(
    id: &str,
    status: &str,
    severity: &str,
    modified: DateTime<Utc>,
) -> IncidentSnapshot {
    let mut attrs = Attrs::new();
    attrs.insert("title".into(), format!("Incident {id}"));
    attrs.insert("status".into(), status.into());
    attrs.insert("severity".into(), severity.into());
    attrs.insert("classification".into(), "unknown".into());
    IncidentSnapshot {
        modified_by: Default::default(),
        id: id.into(),
        display_id: id.into(),
        web_url: format!("https://security.microsoft.com/incidents/{id}"),
        provider_url: None,
        created: t0(),
        modified,
        attrs,
        tags: vec![],
        redirect_to: None,
        comments: vec![],
        etag: None,
    }
}

/// The ticket as the bridge would have created it for `incident`.
pub(crate) fn ticket_for(
    plan: &Plan,
    key: &str,
    modified: DateTime<Utc>,
) -> (TicketSnapshot, Baseline) {
    let Action::CreateTicket {
        create, baseline, ..
    } = &plan.actions[0]
    else {
        panic!("expected a create, got {plan:?}");
    };
    let ticket = TicketSnapshot {
        modified_by: Default::default(),
        version: None,
        key: key.into(),
        id: "10000".into(),
        url: format!("https://jira.example/browse/{key}"),
        created: t0(),
        modified,
        attrs: create.attrs.clone(),
        labels: create.labels.clone(),
        correlation: Some(create.correlation.clone()),
        comments: vec![],
    };
    (ticket, baseline.clone())
}

pub(crate) fn link(
    incident: &IncidentSnapshot,
    ticket: &TicketSnapshot,
    baseline: Baseline,
) -> Link {
    Link {
        ticket_version: None,
        incident_version: None,
        pair: "defender->jira".into(),
        incident_id: incident.id.clone(),
        incident_display_id: incident.display_id.clone(),
        incident_url: incident.web_url.clone(),
        ticket_key: ticket.key.clone(),
        ticket_id: ticket.id.clone(),
        ticket_url: ticket.url.clone(),
        state: LinkState::Active,
        baseline,
        written_back: true,
        incident_modified: incident.modified,
        ticket_modified: ticket.modified,
        created: t0(),
        updated: t0(),
        merged_into: None,
    }
}

/// An incident and its ticket, in step.
pub(crate) fn synced(status: &str) -> (IncidentSnapshot, TicketSnapshot, Link, Mapping) {
    let m = mapping();
    let inc = incident("41877", status, "high", t0());
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: std::slice::from_ref(&inc),
            tickets: &[],
            links: &[],
        },
    );
    let (ticket, baseline) = ticket_for(&plan, "SEC-1", t0());
    let link = link(&inc, &ticket, baseline);
    (inc, ticket, link, m)
}

#[test]
fn a_new_incident_creates_one_ticket_rendered_from_the_mapping() {
    let m = mapping();
    let inc = incident("41877", "inProgress", "high", t0());
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: &[inc],
            tickets: &[],
            links: &[],
        },
    );
    assert_eq!(plan.actions.len(), 1);
    let Action::CreateTicket {
        create, baseline, ..
    } = &plan.actions[0]
    else {
        panic!()
    };
    assert_eq!(
        create.correlation,
        Correlation::new("defender", "41877").with_scope("tenant-1")
    );
    assert_eq!(create.attrs["summary"], "[Defender #41877] Incident 41877");
    assert_eq!(create.attrs["priority"], "Highest");
    assert_eq!(create.attrs["status"], "indeterminate");
    assert_eq!(
        create.attrs["resolution"], "Done",
        "classification unknown maps through the default"
    );
    assert!(
        !create.attrs.contains_key("assignee"),
        "no assignee, nothing set"
    );
    assert_eq!(create.labels, vec!["soc".to_string()]);
    assert_eq!(
        baseline["status"],
        Agreed {
            incident: Some("inProgress".into()),
            ticket: Some("indeterminate".into()),
            held: false
        }
    );
}

#[test]
fn resolved_incidents_get_no_new_ticket() {
    let m = mapping();
    let inc = incident("1", "resolved", "low", t0());
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: &[inc],
            tickets: &[],
            links: &[],
        },
    );
    assert!(plan.actions.is_empty());
}

#[test]
fn an_incident_status_change_flows_to_the_ticket() {
    let (mut inc, _ticket, link, m) = synced("active");
    inc.attrs.insert("status".into(), "inProgress".into());
    inc.modified = t0() + Duration::minutes(1);
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: &[inc],
            tickets: &[],
            links: &[link],
        },
    );
    assert_eq!(plan.actions.len(), 1, "{plan:?}");
    let Action::UpdateTicket {
        update,
        changes,
        baseline,
        ..
    } = &plan.actions[0]
    else {
        panic!("{plan:?}")
    };
    assert_eq!(update.set["status"], Some("indeterminate".into()));
    assert_eq!(changes[0].field, "status");
    assert_eq!(changes[0].old.as_deref(), Some("new"));
    assert_eq!(baseline["status"].incident.as_deref(), Some("inProgress"));
}

#[test]
fn resolving_the_ticket_resolves_the_incident_with_a_classification() {
    let (_inc, mut ticket, link, m) = synced("active");
    ticket.attrs.insert("status".into(), "done".into());
    ticket.attrs.insert("resolution".into(), "Won't Do".into());
    ticket.modified = t0() + Duration::minutes(2);
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: &[],
            tickets: &[ticket],
            links: &[link],
        },
    );
    assert_eq!(plan.actions.len(), 1, "{plan:?}");
    let Action::UpdateIncident { update, .. } = &plan.actions[0] else {
        panic!("{plan:?}")
    };
    assert_eq!(update.set["status"], Some("resolved".into()));
    assert_eq!(update.set["classification"], Some("falsePositive".into()));
}

#[test]
fn the_bridges_own_write_does_not_echo_back() {
    let (mut inc, ticket, link, m) = synced("active");
    inc.attrs.insert("status".into(), "inProgress".into());
    inc.modified = t0() + Duration::minutes(1);
    let spec = pair(&m, ConflictPolicy::NewestWins);
    let plan = reconcile(
        spec,
        Input {
            incidents: &[inc.clone()],
            tickets: &[],
            links: std::slice::from_ref(&link),
        },
    );
    let Action::UpdateTicket { baseline, .. } = &plan.actions[0] else {
        panic!()
    };
    // The bridge wrote the ticket; the link now holds the new baseline.
    let mut after = link.clone();
    after.baseline.extend(baseline.clone());
    after.incident_modified = inc.modified;
    let mut ticket = ticket;
    ticket.attrs.insert("status".into(), "indeterminate".into());
    ticket.modified = t0() + Duration::minutes(1);
    after.ticket_modified = ticket.modified;
    let again = reconcile(
        spec,
        Input {
            incidents: &[inc.clone()],
            tickets: &[ticket.clone()],
            links: &[after.clone()],
        },
    );
    assert!(again.actions.is_empty(), "{again:?}");
    // The next poll sees the ticket's write as a newer version: still nothing to write.
    ticket.modified = t0() + Duration::minutes(3);
    let later = reconcile(
        spec,
        Input {
            incidents: &[],
            tickets: &[ticket],
            links: &[after],
        },
    );
    assert!(
        later.actions.iter().all(|a| !a.is_remote_write()),
        "{later:?}"
    );
}

#[test]
fn stale_snapshots_from_a_lagging_index_are_ignored() {
    let (_inc, mut ticket, mut link, m) = synced("active");
    link.ticket_modified = t0() + Duration::minutes(5);
    ticket.attrs.insert("status".into(), "done".into());
    ticket.modified = t0() + Duration::minutes(4);
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: &[],
            tickets: &[ticket],
            links: &[link],
        },
    );
    assert!(plan.actions.is_empty(), "{plan:?}");
}

fn conflict(policy: ConflictPolicy, ticket_newer: bool) -> Plan {
    let (mut inc, mut ticket, link, m) = synced("active");
    inc.attrs.insert("status".into(), "inProgress".into());
    ticket.attrs.insert("status".into(), "done".into());
    let (i, t) = if ticket_newer { (1, 2) } else { (2, 1) };
    inc.modified = t0() + Duration::minutes(i);
    ticket.modified = t0() + Duration::minutes(t);
    reconcile(
        pair(&m, policy),
        Input {
            incidents: &[inc],
            tickets: &[ticket],
            links: &[link],
        },
    )
}

fn written(plan: &Plan) -> Vec<(&'static str, String, Option<String>)> {
    let mut out = Vec::new();
    for a in &plan.actions {
        match a {
            Action::UpdateTicket { changes, .. } | Action::UpdateIncident { changes, .. } => {
                for c in changes {
                    assert!(
                        c.conflict.is_some(),
                        "a conflict is recorded with both values"
                    );
                    out.push((a.kind(), c.field.clone(), c.new.clone()));
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn conflicts_are_settled_by_the_pair_policy() {
    assert_eq!(
        written(&conflict(ConflictPolicy::SourceWins, true)),
        vec![(
            "update_ticket",
            "status".into(),
            Some("indeterminate".into())
        )]
    );
    assert_eq!(
        written(&conflict(ConflictPolicy::TicketWins, false)),
        vec![("update_incident", "status".into(), Some("resolved".into()))]
    );
    assert_eq!(
        written(&conflict(ConflictPolicy::NewestWins, true)),
        vec![("update_incident", "status".into(), Some("resolved".into()))]
    );
    assert_eq!(
        written(&conflict(ConflictPolicy::NewestWins, false)),
        vec![(
            "update_ticket",
            "status".into(),
            Some("indeterminate".into())
        )]
    );
}

#[test]
fn a_per_field_policy_overrides_the_pair() {
    let (mut inc, mut ticket, link, mut m) = synced("active");
    m.fields
        .iter_mut()
        .find(|f| f.name == "status")
        .unwrap()
        .conflict = Some(ConflictPolicy::TicketWins);
    inc.attrs.insert("status".into(), "inProgress".into());
    ticket.attrs.insert("status".into(), "done".into());
    inc.modified = t0() + Duration::minutes(3);
    ticket.modified = t0() + Duration::minutes(1);
    let plan = reconcile(
        pair(&m, ConflictPolicy::SourceWins),
        Input {
            incidents: &[inc],
            tickets: &[ticket],
            links: &[link],
        },
    );
    assert_eq!(
        written(&plan),
        vec![("update_incident", "status".into(), Some("resolved".into()))]
    );
}

#[test]
fn edits_against_a_one_way_field_are_recorded_not_synced() {
    let (_inc, mut ticket, link, m) = synced("active");
    ticket.attrs.insert("priority".into(), "Low".into());
    ticket.modified = t0() + Duration::minutes(1);
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: &[],
            tickets: &[ticket],
            links: &[link],
        },
    );
    assert_eq!(plan.actions.len(), 1);
    let Action::RecordBaseline {
        changes, baseline, ..
    } = &plan.actions[0]
    else {
        panic!("{plan:?}")
    };
    assert_eq!(changes[0].new.as_deref(), Some("Low"));
    assert_eq!(baseline["priority"].ticket.as_deref(), Some("Low"));
}

#[test]
fn an_edit_against_a_one_way_field_survives_the_tickets_next_write() {
    // The analyst lowers the priority by hand; later the incident moves on. The
    // status goes across, the analyst's priority stays.
    let (mut inc, mut ticket, mut link, m) = synced("active");
    ticket.attrs.insert("priority".into(), "Low".into());
    ticket.modified = t0() + Duration::minutes(1);
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: &[],
            tickets: std::slice::from_ref(&ticket),
            links: std::slice::from_ref(&link),
        },
    );
    let Action::RecordBaseline { baseline, .. } = &plan.actions[0] else {
        panic!("{plan:?}")
    };
    link.baseline.extend(baseline.clone());
    link.ticket_modified = ticket.modified;

    inc.attrs.insert("status".into(), "inProgress".into());
    inc.modified = t0() + Duration::minutes(2);
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: std::slice::from_ref(&inc),
            tickets: &[],
            links: std::slice::from_ref(&link),
        },
    );
    let Action::UpdateTicket { update, .. } = &plan.actions[0] else {
        panic!("{plan:?}")
    };
    assert_eq!(update.set["status"], Some("indeterminate".into()));
    assert!(!update.set.contains_key("priority"), "{update:?}");

    // When the incident's severity itself changes, the mapping speaks again.
    link.baseline.insert(
        "status".into(),
        Agreed {
            incident: Some("inProgress".into()),
            ticket: Some("indeterminate".into()),
            held: false,
        },
    );
    link.incident_modified = inc.modified;
    inc.attrs.insert("severity".into(), "medium".into());
    inc.modified = t0() + Duration::minutes(3);
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: &[inc],
            tickets: &[],
            links: &[link],
        },
    );
    let Action::UpdateTicket { update, .. } = &plan.actions[0] else {
        panic!("{plan:?}")
    };
    assert_eq!(update.set["priority"], Some("High".into()));
}

#[test]
fn a_link_not_yet_written_back_gets_its_write_back() {
    let (mut inc, _ticket, mut link, m) = synced("active");
    link.written_back = false;
    inc.modified = t0() + Duration::minutes(1);
    inc.tags = vec!["TICKET:SEC-1".into()];
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: &[inc],
            tickets: &[],
            links: &[link],
        },
    );
    let Some(Action::WriteBack { tags, comment, .. }) = plan
        .actions
        .iter()
        .find(|a| matches!(a, Action::WriteBack { .. }))
    else {
        panic!("{plan:?}")
    };
    assert!(
        tags.is_empty(),
        "the tag is already there (compared case-insensitively)"
    );
    assert_eq!(
        comment.as_deref(),
        Some("[itsm-bridge] Jira SEC-1: https://jira.example/browse/SEC-1")
    );
}

#[test]
fn plans_are_sorted_by_incident_then_kind() {
    let m = mapping();
    let incidents = vec![
        incident("9", "active", "low", t0()),
        incident("10", "active", "low", t0()),
    ];
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: &incidents,
            tickets: &[],
            links: &[],
        },
    );
    let ids: Vec<&str> = plan.actions.iter().map(Action::incident_id).collect();
    assert_eq!(ids, vec!["10", "9"]);
    assert_eq!(Direction::ToTicket.as_str(), "to_ticket");
}

proptest! {
    /// Reconciling a pair that is already in step yields no remote write, however
    /// the incident looks and whenever either side was last touched.
    #[test]
    fn an_already_synced_pair_yields_no_writes(
        status in prop::sample::select(GRAPH_STATUS.iter().copied().filter(|s| *s != "resolved" && *s != "redirected").collect::<Vec<_>>()),
        severity in prop::sample::select(GRAPH_SEVERITY.to_vec()),
        classification in prop::sample::select(GRAPH_CLASSIFICATION.to_vec()),
        assignee in prop::option::of("[a-z]{1,8}@contoso\\.com"),
        title in "\\PC{0,40}",
        inc_later in 0i64..5,
        tic_later in 0i64..5,
        policy in prop::sample::select(vec![ConflictPolicy::SourceWins, ConflictPolicy::TicketWins, ConflictPolicy::NewestWins]),
    ) {
        let m = mapping();
        let mut inc = incident("7", status, severity, t0());
        inc.attrs.insert("classification".into(), classification.into());
        inc.attrs.insert("title".into(), title);
        if let Some(a) = assignee { inc.attrs.insert("assigned_to".into(), a); }
        let spec = pair(&m, policy);
        let plan = reconcile(spec, Input { incidents: &[inc.clone()], tickets: &[], links: &[] });
        let (mut ticket, baseline) = ticket_for(&plan, "SEC-7", t0());
        let link = link(&inc, &ticket, baseline);
        inc.modified = t0() + Duration::seconds(inc_later);
        ticket.modified = t0() + Duration::seconds(tic_later);
        let again = reconcile(spec, Input { incidents: &[inc], tickets: &[ticket], links: &[link] });
        prop_assert!(again.actions.iter().all(|a| !a.is_remote_write()), "{:?}", again);
    }
}

#[test]
fn a_value_the_ticket_could_not_take_is_sent_with_the_next_write() {
    // The analyst classified the incident while its issue was open; Jira kept no
    // resolution on the open issue. When the incident is resolved, the resolution
    // travels with the transition.
    let (mut inc, _ticket, mut link, m) = synced("active");
    inc.attrs
        .insert("classification".into(), "falsePositive".into());
    link.baseline.insert(
        "classification".into(),
        Agreed {
            incident: Some("falsePositive".into()),
            ticket: None,
            held: false,
        },
    );
    inc.attrs.insert("status".into(), "resolved".into());
    inc.modified = t0() + Duration::minutes(1);
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: &[inc],
            tickets: &[],
            links: &[link],
        },
    );
    let Action::UpdateTicket { update, .. } = &plan.actions[0] else {
        panic!("{plan:?}")
    };
    assert_eq!(update.set["status"], Some("done".into()));
    assert_eq!(update.set["resolution"], Some("Won't Do".into()));
}

#[test]
fn a_reopened_ticket_does_not_clear_the_incident_classification() {
    let (_inc, mut ticket, link, m) = synced("active");
    ticket.attrs.remove("resolution");
    ticket.modified = t0() + Duration::minutes(1);
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: &[],
            tickets: &[ticket],
            links: &[link],
        },
    );
    assert!(
        plan.actions.iter().all(|a| !a.is_remote_write()),
        "{plan:?}"
    );
}

#[test]
fn an_interrupted_write_back_is_taken_up_even_without_a_newer_incident() {
    let (inc, _ticket, mut link, m) = synced("active");
    link.written_back = false;
    // The same version of the incident the link was made from.
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: &[inc],
            tickets: &[],
            links: &[link],
        },
    );
    assert_eq!(plan.actions.len(), 1, "{plan:?}");
    assert!(matches!(plan.actions[0], Action::WriteBack { .. }));
}

/// A ServiceNow-like ticket: whole-second times and a modification counter.
fn versioned(ticket: &mut TicketSnapshot, link: &mut Link, count: u64) {
    ticket.version = Some(count.to_string());
    link.ticket_version = Some(count.to_string());
}

#[test]
fn an_edit_in_the_same_second_as_the_bridges_write_is_carried_by_its_version() {
    let (_inc, mut ticket, mut link, m) = synced("active");
    versioned(&mut ticket, &mut link, 3);
    // A business rule or an analyst resolves the ticket within the second of
    // the bridge's write: same `sys_updated_on`, one more `sys_mod_count`.
    ticket.attrs.insert("status".into(), "done".into());
    ticket.attrs.insert("resolution".into(), "Won't Do".into());
    ticket.version = Some("4".into());
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: &[],
            tickets: std::slice::from_ref(&ticket),
            links: std::slice::from_ref(&link),
        },
    );
    let Action::UpdateIncident {
        update,
        ticket_seen,
        ..
    } = &plan.actions[0]
    else {
        panic!("{plan:?}")
    };
    assert_eq!(update.set["status"], Some("resolved".into()));
    assert_eq!(ticket_seen.as_ref().unwrap().tag.as_deref(), Some("4"));
}

#[test]
fn the_version_the_bridge_last_synced_from_is_not_read_as_a_change() {
    let (_inc, mut ticket, mut link, m) = synced("active");
    versioned(&mut ticket, &mut link, 4);
    // What a lagging read shows: an older version (count 3) with other values.
    let mut older = ticket.clone();
    older.version = Some("3".into());
    older.attrs.insert("status".into(), "done".into());
    for t in [ticket, older] {
        let plan = reconcile(
            pair(&m, ConflictPolicy::NewestWins),
            Input {
                incidents: &[],
                tickets: &[t],
                links: std::slice::from_ref(&link),
            },
        );
        assert!(plan.actions.is_empty(), "{plan:?}");
    }
}

#[test]
fn a_tie_in_time_without_a_version_is_compared_by_content_never_discarded() {
    // Jira: no counter, and an edit stamped at the very millisecond of the
    // bridge's own write.
    let (_inc, mut ticket, link, m) = synced("active");
    let quiet = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: &[],
            tickets: std::slice::from_ref(&ticket),
            links: std::slice::from_ref(&link),
        },
    );
    assert!(
        quiet.actions.is_empty(),
        "the same content at the same time is no change: {quiet:?}"
    );
    ticket.attrs.insert("status".into(), "done".into());
    ticket.attrs.insert("resolution".into(), "Won't Do".into());
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: &[],
            tickets: &[ticket],
            links: &[link],
        },
    );
    let Action::UpdateIncident { update, .. } = &plan.actions[0] else {
        panic!("{plan:?}")
    };
    assert_eq!(update.set["status"], Some("resolved".into()));
}

#[test]
fn newest_wins_gives_a_tie_to_the_incident_and_says_so() {
    let (mut inc, mut ticket, link, mut m) = synced("active");
    // A ServiceNow-like ticket system: whole seconds. The incident's
    // 08:05:00.700 and the ticket's 08:05:00 tie at that precision.
    m.ticket_kind = TicketKind::Servicenow;
    inc.attrs.insert("status".into(), "inProgress".into());
    inc.modified = t0() + Duration::minutes(5) + Duration::milliseconds(700);
    ticket.attrs.insert("status".into(), "done".into());
    ticket.modified = t0() + Duration::minutes(5);
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: &[inc.clone()],
            tickets: std::slice::from_ref(&ticket),
            links: std::slice::from_ref(&link),
        },
    );
    let update = plan
        .actions
        .iter()
        .find_map(|a| match a {
            Action::UpdateTicket { changes, .. } => Some(changes),
            _ => None,
        })
        .expect("the incident's side wins the tie");
    let note = update[0].conflict.as_ref().unwrap();
    assert!(note.tie, "the ledger records the tie: {note:?}");

    // One second later on the ticket is not a tie: the ticket is newer.
    ticket.modified = t0() + Duration::minutes(5) + Duration::seconds(1);
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: &[inc],
            tickets: &[ticket],
            links: &[link],
        },
    );
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::UpdateIncident { .. })),
        "{plan:?}"
    );
}

#[test]
fn a_value_with_no_mapping_is_noted_in_plain_words() {
    let (mut inc, _ticket, link, m) = synced("active");
    inc.attrs.insert("status".into(), "newStatus2027".into());
    inc.modified = t0() + Duration::minutes(1);
    let plan = reconcile(
        pair(&m, ConflictPolicy::NewestWins),
        Input {
            incidents: &[inc],
            tickets: &[],
            links: &[link],
        },
    );
    let notes: Vec<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::RecordBaseline { note, .. } => Some(note.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        notes,
        vec!["status: no ticket value is mapped for \"newStatus2027\""],
        "{plan:?}"
    );
}

mod decide_field;

proptest! {
    /// The one-pass lookups of [`Reads`] decide every field as a search per field
    /// does, whichever fields the baseline has, whichever attributes each side
    /// holds (extra ones included) and whichever sides were read.
    #[test]
    fn one_pass_lookups_decide_as_a_search_per_field(
        baseline in prop::collection::btree_map(
            prop::sample::select(vec!["summary", "priority", "status", "classification", "assignee", "gone", "a", "zz"]),
            (prop::option::of(prop::sample::select(vec!["active", "high", "x", "Done", "[Defender #7] t"])),
             prop::option::of(prop::sample::select(vec!["new", "Highest", "x", "Done", "[Defender #7] t"])),
             any::<bool>()),
            0..8,
        ),
        incident_attrs in prop::collection::btree_map(
            prop::sample::select(vec!["title", "status", "severity", "classification", "assigned_to", "a", "determination", "zz"]),
            prop::sample::select(vec!["t", "active", "inProgress", "high", "unknown", "falsePositive", "x"]),
            0..8,
        ),
        ticket_attrs in prop::collection::btree_map(
            prop::sample::select(vec!["summary", "status", "priority", "resolution", "assignee", "a", "labels", "zz"]),
            prop::sample::select(vec!["[Defender #7] t", "new", "done", "Highest", "Won't Do", "x"]),
            0..8,
        ),
        read in prop::sample::select(vec![(true, true), (true, false), (false, true)]),
    ) {
        let m = mapping();
        let spec = pair(&m, ConflictPolicy::NewestWins);
        let mut inc = incident("7", "active", "high", t0());
        inc.attrs = incident_attrs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut tic = TicketSnapshot {
            key: "SEC-7".into(),
            id: "10007".into(),
            url: "https://jira.example/browse/SEC-7".into(),
            created: t0(),
            modified: t0(),
            version: None,
            attrs: Attrs::new(),
            labels: vec![],
            correlation: None,
            comments: vec![],
            modified_by: Default::default(),
        };
        tic.attrs = ticket_attrs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let baseline: Baseline = baseline
            .into_iter()
            .map(|(k, (i, t, held))| {
                let agreed = Agreed { incident: i.map(str::to_string), ticket: t.map(str::to_string), held };
                (k.to_string(), agreed)
            })
            .collect();
        let link = link(&inc, &tic, baseline);
        let (incident, ticket) = (read.0.then_some(&inc), read.1.then_some(&tic));
        let mut reads = Reads::new(&m);
        let found = reads.find(&link, incident, ticket);
        for (n, rule) in m.fields.iter().enumerate() {
            let one_pass = decide(
                spec,
                rule,
                found.known[n],
                incident,
                ticket,
                found.incident[n].map(String::as_str),
                found.ticket[n].map(String::as_str),
            );
            let searched = decide_field(spec, rule, link.baseline.get(&rule.name), incident, ticket);
            prop_assert_eq!(one_pass, searched, "field {}", rule.name);
        }
    }
}

proptest! {
    /// A templated field is compared with its baseline in place and rendered only
    /// when its text changed: the summary is written exactly when the rendered
    /// text differs from the one last agreed, and then with that text.
    #[test]
    fn a_templated_field_is_written_exactly_when_its_text_changed(
        old_title in "[a-c ]{0,4}",
        new_title in "[a-c ]{0,4}",
    ) {
        let m = mapping();
        let spec = pair(&m, ConflictPolicy::NewestWins);
        let mut inc = incident("7", "active", "high", t0());
        inc.attrs.insert("title".into(), old_title.clone());
        let plan = reconcile(spec, Input { incidents: std::slice::from_ref(&inc), tickets: &[], links: &[] });
        let (_, baseline) = ticket_for(&plan, "SEC-7", t0());
        let link = link(&inc, &ticket_for(&plan, "SEC-7", t0()).0, baseline);
        inc.attrs.insert("title".into(), new_title.clone());
        inc.modified = t0() + Duration::seconds(1);
        let again = reconcile(spec, Input { incidents: &[inc], tickets: &[], links: &[link] });
        let summary = again.actions.iter().find_map(|a| match a {
            Action::UpdateTicket { update, .. } => update.set.get("summary").cloned(),
            _ => None,
        });
        let want = (old_title != new_title).then(|| Some(format!("[Defender #7] {new_title}")));
        prop_assert_eq!(summary, want, "{:?}", again);
    }
}
