//! `decide_field` read as situations: one field, its last agreed values, what each
//! side holds now, and what the three-way diff decides. No IO: values in, a
//! decision out.

use super::*;

/// A value as the tests write it: `None` is empty.
type Value = Option<&'static str>;

/// Decides the field `name` of the Jira-shaped mapping, for a link that last
/// agreed on `base` (incident, ticket) and sides that now hold `now`.
fn decide(
    policy: ConflictPolicy,
    name: &str,
    base: Option<(Value, Value)>,
    now: (Value, Value),
) -> FieldDecision {
    let m = mapping();
    let rule = m
        .fields
        .iter()
        .find(|r| r.name == name)
        .expect("a mapped field");
    let mut inc = incident("41877", "active", "high", t0());
    let attr = rule.incident_attr().expect("an attribute field");
    match now.0 {
        Some(v) => inc.attrs.insert(attr.into(), v.into()),
        None => inc.attrs.remove(attr),
    };
    let mut ticket_attrs = Attrs::new();
    if let Some(v) = now.1 {
        ticket_attrs.insert(rule.ticket.clone(), v.into());
    }
    let tic = TicketSnapshot {
        modified_by: Default::default(),
        key: "SEC-1".into(),
        id: "10000".into(),
        url: "https://jira.example/browse/SEC-1".into(),
        created: t0(),
        modified: t0(),
        version: None,
        attrs: ticket_attrs,
        labels: vec![],
        correlation: None,
        comments: vec![],
    };
    let known = base.map(|(incident, ticket)| agreed(incident, ticket, false));
    decide_field(
        pair(&m, policy),
        rule,
        known.as_ref(),
        Some(&inc),
        Some(&tic),
    )
}

fn agreed(incident: Value, ticket: Value, held: bool) -> Agreed {
    Agreed {
        incident: incident.map(str::to_string),
        ticket: ticket.map(str::to_string),
        held,
    }
}

fn change(field: &str, old: Value, new: Value) -> FieldChange {
    FieldChange {
        field: field.into(),
        old: old.map(str::to_string),
        new: new.map(str::to_string),
        conflict: None,
    }
}

fn write(attr: &str, change: FieldChange, agreed: Agreed) -> FieldWrite {
    FieldWrite {
        attr: attr.into(),
        value: change.new.clone(),
        change,
        agreed,
    }
}

#[test]
fn a_field_unchanged_on_both_sides_decides_nothing() {
    let decision = decide(
        ConflictPolicy::NewestWins,
        "status",
        Some((Some("active"), Some("new"))),
        (Some("active"), Some("new")),
    );
    assert_eq!(decision, FieldDecision::Unchanged { pending: None });
}

#[test]
fn a_value_the_ticket_never_took_waits_for_the_next_ticket_write() {
    // A false positive on an open Jira issue: the resolution could not be set.
    let decision = decide(
        ConflictPolicy::NewestWins,
        "classification",
        Some((Some("falsePositive"), None)),
        (Some("falsePositive"), None),
    );
    assert_eq!(
        decision,
        FieldDecision::Unchanged {
            pending: Some(write(
                "resolution",
                change("classification", None, Some("Won't Do")),
                agreed(Some("falsePositive"), Some("Won't Do"), false),
            )),
        }
    );
}

#[test]
fn a_change_on_the_incident_flows_to_the_ticket() {
    let decision = decide(
        ConflictPolicy::NewestWins,
        "status",
        Some((Some("active"), Some("new"))),
        (Some("inProgress"), Some("new")),
    );
    assert_eq!(
        decision,
        FieldDecision::ToTicket(write(
            "status",
            change("status", Some("new"), Some("indeterminate")),
            agreed(Some("inProgress"), Some("indeterminate"), false),
        ))
    );
}

#[test]
fn a_change_on_the_ticket_flows_to_the_incident() {
    let decision = decide(
        ConflictPolicy::NewestWins,
        "status",
        Some((Some("active"), Some("new"))),
        (Some("active"), Some("done")),
    );
    assert_eq!(
        decision,
        FieldDecision::ToIncident(write(
            "status",
            change("status", Some("active"), Some("resolved")),
            agreed(Some("resolved"), Some("done"), false),
        ))
    );
}

#[test]
fn both_sides_changed_to_corresponding_values_is_recorded_not_a_conflict() {
    let decision = decide(
        ConflictPolicy::TicketWins,
        "status",
        Some((Some("active"), Some("new"))),
        (Some("resolved"), Some("done")),
    );
    assert_eq!(
        decision,
        FieldDecision::Record {
            change: Some(change("status", Some("new"), Some("done"))),
            agreed: agreed(Some("resolved"), Some("done"), false),
            note: Some("status: both sides changed to matching values".into()),
        }
    );
}

#[test]
fn a_conflict_is_settled_by_the_policy_and_noted_on_the_change() {
    let base = Some((Some("active"), Some("new")));
    let now = (Some("inProgress"), Some("done"));
    let FieldDecision::ToIncident(won_by_ticket) =
        decide(ConflictPolicy::TicketWins, "status", base, now)
    else {
        panic!("ticket_wins writes the incident");
    };
    assert_eq!(won_by_ticket.value.as_deref(), Some("resolved"));
    let note = won_by_ticket.change.conflict.expect("a conflict note");
    assert_eq!(note.policy, ConflictPolicy::TicketWins);
    assert_eq!(note.incident_value.as_deref(), Some("inProgress"));
    assert_eq!(note.ticket_value.as_deref(), Some("done"));
    assert!(!note.tie);

    let FieldDecision::ToTicket(won_by_incident) =
        decide(ConflictPolicy::NewestWins, "status", base, now)
    else {
        panic!("a tie under newest_wins goes to the incident");
    };
    assert_eq!(won_by_incident.value.as_deref(), Some("indeterminate"));
    assert!(
        won_by_incident
            .change
            .conflict
            .expect("a conflict note")
            .tie
    );
}

#[test]
fn a_change_against_the_fields_flow_is_held_where_it_was_made() {
    // Priority flows to the ticket only; an analyst raised it on the ticket.
    let decision = decide(
        ConflictPolicy::NewestWins,
        "priority",
        Some((Some("high"), Some("Highest"))),
        (Some("high"), Some("Medium")),
    );
    assert_eq!(
        decision,
        FieldDecision::Record {
            change: Some(change("priority", Some("Highest"), Some("Medium"))),
            agreed: agreed(Some("high"), Some("Medium"), true),
            note: Some(
                "priority: changed on the ticket, which this field does not sync from".into()
            ),
        }
    );
}

#[test]
fn a_held_value_is_not_pushed_back_while_the_incident_stays() {
    let m = mapping();
    let rule = m.fields.iter().find(|r| r.name == "priority").unwrap();
    let inc = incident("41877", "active", "high", t0());
    let held = agreed(Some("high"), Some("Medium"), true);
    let decision = decide_field(
        pair(&m, ConflictPolicy::NewestWins),
        rule,
        Some(&held),
        Some(&inc),
        None,
    );
    assert_eq!(decision, FieldDecision::Unchanged { pending: None });
}

#[test]
fn a_field_added_to_the_mapping_after_the_link_is_brought_in_step() {
    let decision = decide(
        ConflictPolicy::NewestWins,
        "priority",
        None,
        (Some("low"), Some("Highest")),
    );
    assert_eq!(
        decision,
        FieldDecision::ToTicket(write(
            "priority",
            change("priority", Some("Highest"), Some("Medium")),
            agreed(Some("low"), Some("Medium"), false),
        ))
    );
}

#[test]
fn a_value_with_no_mapping_on_the_other_side_is_recorded_with_a_note() {
    let decision = decide(
        ConflictPolicy::NewestWins,
        "status",
        Some((Some("active"), Some("new"))),
        (Some("newStatus2027"), Some("new")),
    );
    assert_eq!(
        decision,
        FieldDecision::Record {
            change: None,
            agreed: agreed(Some("newStatus2027"), Some("new"), false),
            note: Some("status: no ticket value is mapped for \"newStatus2027\"".into()),
        }
    );
}

#[test]
fn a_ticket_emptying_an_enumerated_incident_attribute_leaves_it_alone() {
    // A Jira reopen clears the resolution; the classification stays.
    let decision = decide(
        ConflictPolicy::NewestWins,
        "classification",
        Some((Some("truePositive"), Some("Done"))),
        (Some("truePositive"), None),
    );
    assert_eq!(
        decision,
        FieldDecision::Record {
            change: None,
            agreed: agreed(Some("truePositive"), None, false),
            note: None,
        }
    );
}
