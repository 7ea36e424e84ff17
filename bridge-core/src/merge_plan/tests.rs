//! The merge policy read as situations: an incident merged into another, both
//! with tickets (or not), under each `[merge]` setting; what the bridge would
//! write. No IO: the incidents and links are values.

use chrono::Duration;

use super::*;
use crate::mapping::Mapping;
use crate::model::ConflictPolicy;
use crate::reconcile::tests::{incident, link, mapping, pair, t0, ticket_for};
use crate::reconcile::{Input, reconcile};

/// An incident of this severity and the link to the ticket the bridge made for it.
fn linked(m: &Mapping, id: &str, severity: &str, key: &str) -> (IncidentSnapshot, Link) {
    let inc = incident(id, "active", severity, t0());
    let plan = reconcile(
        pair(m, ConflictPolicy::NewestWins),
        Input {
            incidents: std::slice::from_ref(&inc),
            tickets: &[],
            links: &[],
        },
    );
    let (ticket, baseline) = ticket_for(&plan, key, t0());
    let link = link(&inc, &ticket, baseline);
    (inc, link)
}

/// Incident 41877 (severity `merged_severity`, ticket SEC-1) merged into
/// 42000 (severity `survivor_severity`, ticket SEC-2), under `m`.
fn merge_into_linked(m: &Mapping, merged_severity: &str, survivor_severity: &str) -> MergePlan {
    let (mut merged, merged_link) = linked(m, "41877", merged_severity, "SEC-1");
    let (survivor, survivor_link) = linked(m, "42000", survivor_severity, "SEC-2");
    merged.attrs.insert("status".into(), "redirected".into());
    merged.redirect_to = Some("42000".into());
    merged.modified = t0() + Duration::minutes(5);
    let walk = WalkEnd {
        survivor: Some(survivor),
        problem: None,
    };
    let target = MergeTarget::new(walk, Some(survivor_link));
    plan_merge(
        pair(m, ConflictPolicy::NewestWins),
        &merged,
        &merged_link,
        &target,
    )
}

fn with(policy: MergePolicy, raise_priority: bool) -> Mapping {
    Mapping {
        merge: policy,
        raise_priority,
        ..mapping()
    }
}

fn set_on(action: &Action) -> (&str, &TicketUpdate, &Baseline) {
    let Action::UpdateTicket {
        ticket_key,
        update,
        baseline,
        ..
    } = action
    else {
        panic!("expected a ticket update, got {action:?}");
    };
    (ticket_key, update, baseline)
}

#[test]
fn a_merged_high_severity_incident_raises_the_survivors_ticket_to_highest() {
    let m = with(MergePolicy::CloseAsDuplicate, true);
    let plan = merge_into_linked(&m, "high", "low");
    let raise = plan.raise.expect("the survivor was less severe");
    let (key, update, baseline) = set_on(&raise.action);
    assert_eq!(key, "SEC-2");
    assert_eq!(update.set["priority"], Some("Highest".into()));
    assert_eq!(
        baseline["priority"],
        Agreed {
            incident: Some("low".into()),
            ticket: Some("Highest".into()),
            held: true,
        },
        "the raise is held until the survivor's own severity changes"
    );
    assert_eq!(
        raise.changes,
        vec![FieldChange {
            field: "target priority (SEC-2)".into(),
            old: Some("Medium".into()),
            new: Some("Highest".into()),
            conflict: None,
        }]
    );
    assert_eq!(raise.failure, "raising the priority of SEC-2 failed");
}

#[test]
fn a_less_or_equally_severe_merged_incident_raises_nothing() {
    let m = with(MergePolicy::CloseAsDuplicate, true);
    assert_eq!(merge_into_linked(&m, "low", "high").raise, None);
    assert_eq!(merge_into_linked(&m, "medium", "medium").raise, None);
}

#[test]
fn without_raise_priority_the_survivors_priority_stays() {
    let m = with(MergePolicy::CloseAsDuplicate, false);
    assert_eq!(merge_into_linked(&m, "high", "low").raise, None);
}

#[test]
fn a_priority_already_raised_is_not_raised_again() {
    let m = with(MergePolicy::LinkOnly, true);
    let (mut merged, merged_link) = linked(&m, "41877", "high", "SEC-1");
    let (survivor, mut survivor_link) = linked(&m, "42000", "low", "SEC-2");
    merged.redirect_to = Some("42000".into());
    if let Some(a) = survivor_link.baseline.get_mut("priority") {
        a.ticket = Some("Highest".into());
    }
    let target = MergeTarget::new(
        WalkEnd {
            survivor: Some(survivor),
            problem: None,
        },
        Some(survivor_link),
    );
    let plan = plan_merge(
        pair(&m, ConflictPolicy::NewestWins),
        &merged,
        &merged_link,
        &target,
    );
    assert_eq!(plan.raise, None);
}

#[test]
fn keep_open_writes_nothing() {
    let m = with(MergePolicy::KeepOpen, true);
    let plan = merge_into_linked(&m, "high", "low");
    assert!(plan.close.is_empty(), "{plan:?}");
    assert!(plan.notes.is_empty(), "{plan:?}");
    assert_eq!(plan.raise, None, "keep_open raises nothing either");
    assert_eq!(plan.merged_into.as_deref(), Some("42000"));
    assert_eq!(
        plan.detail,
        "policy keep_open; merged into incident 42000 (ticket SEC-2: https://jira.example/browse/SEC-2)"
    );
}

#[test]
fn close_as_duplicate_closes_the_merged_ticket_and_notes_both_tickets() {
    let m = with(MergePolicy::CloseAsDuplicate, false);
    let plan = merge_into_linked(&m, "medium", "medium");
    assert_eq!(plan.close.len(), 1, "{plan:?}");
    let (key, update, _) = set_on(&plan.close[0]);
    assert_eq!(key, "SEC-1");
    assert_eq!(update.set["status"], Some("done".into()));
    let notes: Vec<(&str, &str, &str)> = plan
        .notes
        .iter()
        .map(|n| {
            (
                n.ticket_key.as_str(),
                n.change.field.as_str(),
                n.text.as_str(),
            )
        })
        .collect();
    assert_eq!(
        notes,
        vec![
            (
                "SEC-1",
                "comment",
                "[itsm-bridge] Incident 41877 was merged into incident 42000 (ticket SEC-2: https://jira.example/browse/SEC-2). Work continues there; this ticket is no longer synced."
            ),
            (
                "SEC-2",
                "target_comment",
                "[itsm-bridge] This incident absorbed incident 41877 (ticket SEC-1: https://jira.example/browse/SEC-1)."
            ),
        ]
    );
    assert_eq!(
        plan.changes,
        vec![FieldChange {
            field: "link".into(),
            old: Some("active".into()),
            new: Some("merged into 42000".into()),
            conflict: None,
        }]
    );
}

#[test]
fn link_only_writes_both_notes_and_leaves_the_merged_ticket_open() {
    let m = with(MergePolicy::LinkOnly, false);
    let plan = merge_into_linked(&m, "medium", "medium");
    assert!(plan.close.is_empty(), "{plan:?}");
    assert_eq!(plan.notes.len(), 2);
    assert!(
        plan.detail
            .starts_with("policy link_only; merged into incident 42000")
    );
}

#[test]
fn a_survivor_without_a_ticket_is_named_by_its_incident_and_gets_no_note() {
    let m = with(MergePolicy::CloseAsDuplicate, true);
    let (merged, merged_link) = linked(&m, "41877", "high", "SEC-1");
    let survivor = incident("42000", "resolved", "low", t0());
    let target = MergeTarget::new(
        WalkEnd {
            survivor: Some(survivor),
            problem: None,
        },
        None,
    );
    let plan = plan_merge(
        pair(&m, ConflictPolicy::NewestWins),
        &merged,
        &merged_link,
        &target,
    );
    assert_eq!(plan.notes.len(), 1, "only the merged ticket hears of it");
    assert!(
        plan.notes[0].text.contains(
            "merged into incident 42000 (https://security.microsoft.com/incidents/42000)"
        ),
        "{}",
        plan.notes[0].text
    );
    assert_eq!(plan.raise, None, "no ticket to raise");
}

#[test]
fn a_merge_loop_is_recorded_with_no_survivor_to_name() {
    let m = with(MergePolicy::CloseAsDuplicate, false);
    let (merged, merged_link) = linked(&m, "41877", "high", "SEC-1");
    let target = MergeTarget::new(
        WalkEnd {
            survivor: None,
            problem: Some("merge chain loops back to 41877".into()),
        },
        None,
    );
    let plan = plan_merge(
        pair(&m, ConflictPolicy::NewestWins),
        &merged,
        &merged_link,
        &target,
    );
    assert_eq!(plan.merged_into, None);
    assert_eq!(plan.changes[0].new.as_deref(), Some("merged into ?"));
    assert_eq!(
        plan.detail,
        "policy close_as_duplicate; merge chain loops back to 41877"
    );
    assert!(plan.notes[0].text.contains("merged into another incident."));
    assert_eq!(
        target.unlinked_detail(),
        "merged before it had a ticket; merge chain loops back to 41877"
    );
}
