//! A mapping edit over links in step: only what the edit changes is written.

use super::*;
use crate::mapping::{Template, ValueMap};
use crate::reconcile::tests::synced;

fn edit<'a>(old: &'a Mapping, new: &'a Mapping) -> Edit<'a> {
    Edit {
        source: "defender",
        old,
        new,
    }
}

fn rule_mut<'a>(m: &'a mut Mapping, name: &str) -> &'a mut FieldRule {
    m.fields.iter_mut().find(|r| r.name == name).unwrap()
}

fn ticket_set(remap: &LinkRemap) -> BTreeMap<String, Option<String>> {
    remap
        .actions
        .iter()
        .find_map(|a| match a {
            Action::UpdateTicket { update, .. } => Some(update.set.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[test]
fn an_unchanged_mapping_writes_nothing() {
    let (inc, _, link, m) = synced("active");
    let remap = plan_remap(edit(&m, &m), &link, Some(&inc));
    assert_eq!(remap, LinkRemap::default());
    let remap = plan_remap(edit(&m, &m), &link, None);
    assert_eq!(remap, LinkRemap::default(), "nothing is undecided either");
}

#[test]
fn a_value_map_edit_rewrites_the_tickets_whose_value_it_changes() {
    let (inc, _, link, old) = synced("active");
    let mut new = old.clone();
    // high was "Highest"; now "Critical".
    rule_mut(&mut new, "priority").to_ticket = Some(ValueMap {
        entries: vec![("high".into(), "Critical".into())],
        default: Some("Medium".into()),
    });
    // Without the incident's values too: the attribute is in the baseline.
    for incident in [Some(&inc), None] {
        let remap = plan_remap(edit(&old, &new), &link, incident);
        assert_eq!(
            ticket_set(&remap),
            BTreeMap::from([("priority".to_string(), Some("Critical".to_string()))])
        );
        let Action::UpdateTicket {
            changes, baseline, ..
        } = &remap.actions[0]
        else {
            panic!("{remap:?}")
        };
        assert_eq!(changes[0].old.as_deref(), Some("Highest"));
        assert_eq!(baseline["priority"].ticket.as_deref(), Some("Critical"));
        assert!(remap.undecided.is_empty());
    }
}

#[test]
fn a_value_map_edit_that_does_not_touch_this_links_value_writes_nothing() {
    let (inc, _, link, old) = synced("active");
    let mut new = old.clone();
    // Only "low" changes; the link's incident is "high".
    let map = rule_mut(&mut new, "priority").to_ticket.as_mut().unwrap();
    map.entries.retain(|(k, _)| k != "low");
    map.entries.push(("low".into(), "Lowest".into()));
    assert!(
        plan_remap(edit(&old, &new), &link, Some(&inc))
            .actions
            .is_empty()
    );
}

#[test]
fn a_template_edit_needs_the_incident_and_rewrites_the_summary() {
    let (inc, _, link, old) = synced("active");
    let mut new = old.clone();
    let attrs = ["title"];
    rule_mut(&mut new, "summary").incident =
        IncidentSide::Template(Template::parse("SOC: {incident.title}", &attrs, false).unwrap());
    let remap = plan_remap(edit(&old, &new), &link, Some(&inc));
    assert_eq!(
        ticket_set(&remap),
        BTreeMap::from([(
            "summary".to_string(),
            Some("SOC: Incident 41877".to_string())
        )])
    );
    let remap = plan_remap(edit(&old, &new), &link, None);
    assert!(remap.actions.is_empty());
    assert_eq!(remap.undecided, vec!["summary".to_string()]);
}

#[test]
fn a_reworded_template_with_the_same_output_moves_the_baseline_only() {
    let (inc, _, link, old) = synced("active");
    let mut new = old.clone();
    let attrs = ["title", "id"];
    // The same text, written another way.
    rule_mut(&mut new, "summary").incident = IncidentSide::Template(
        Template::parse("[Defender #{incident.id}] {incident.title}", &attrs, false).unwrap(),
    );
    let remap = plan_remap(edit(&old, &new), &link, Some(&inc));
    assert!(remap.actions.is_empty(), "{remap:?}");
}

#[test]
fn a_held_value_is_kept_and_a_merged_link_is_left_alone() {
    let (inc, _, mut link, old) = synced("active");
    let mut new = old.clone();
    rule_mut(&mut new, "priority").to_ticket = Some(ValueMap {
        entries: vec![],
        default: Some("Low".into()),
    });
    link.baseline.get_mut("priority").unwrap().held = true;
    assert!(
        plan_remap(edit(&old, &new), &link, Some(&inc))
            .actions
            .is_empty()
    );
    link.baseline.get_mut("priority").unwrap().held = false;
    link.state = LinkState::Merged;
    assert!(
        plan_remap(edit(&old, &new), &link, Some(&inc))
            .actions
            .is_empty()
    );
}

#[test]
fn a_to_incident_map_edit_rewrites_the_incident() {
    let (inc, _, mut link, old) = synced("active");
    // The ticket was resolved as Won't Do and the incident took falsePositive.
    let agreed = link.baseline.get_mut("classification").unwrap();
    agreed.ticket = Some("Won't Do".into());
    agreed.incident = Some("falsePositive".into());
    let mut inc = inc;
    inc.attrs
        .insert("classification".into(), "falsePositive".into());
    let mut new = old.clone();
    let rule = rule_mut(&mut new, "classification");
    rule.to_incident = Some(ValueMap {
        entries: vec![("Won't Do".into(), "informationalExpectedActivity".into())],
        default: Some("unknown".into()),
    });
    let remap = plan_remap(edit(&old, &new), &link, Some(&inc));
    let Some(Action::UpdateIncident { update, .. }) = remap.actions.first() else {
        panic!("{remap:?}")
    };
    assert_eq!(
        update.set.get("classification"),
        Some(&Some("informationalExpectedActivity".to_string()))
    );
}

#[test]
fn the_impact_sums_writes_fields_and_transitions() {
    let (inc, _, link, old) = synced("active");
    let mut new = old.clone();
    rule_mut(&mut new, "priority").to_ticket = Some(ValueMap {
        entries: vec![],
        default: Some("P2".into()),
    });
    let mut impact = Impact::default();
    for _ in 0..3 {
        impact.add(&link, &plan_remap(edit(&old, &new), &link, Some(&inc)));
    }
    assert_eq!(impact.links, 3);
    assert_eq!(impact.writes(), 3);
    assert_eq!(impact.per_field["priority"], 3);
    assert_eq!(
        impact.transitions[&(
            "priority".to_string(),
            "\"Highest\"".to_string(),
            "\"P2\"".to_string()
        )],
        3
    );
    assert_eq!(impact.sample.len(), 3);
}
