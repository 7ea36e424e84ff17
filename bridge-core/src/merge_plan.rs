//! The mapping's merge policy, decided: what a merge does to the merged
//! incident's ticket and to the survivor's. Pure: the merged incident and its
//! link, the survivor and its link (as the merge walk and the engine found
//! them) and the mapping's `[merge]` go in, a `MergePlan` comes out, which the
//! engine carries out in order (`engine/merge.rs`). No IO.

use crate::mapping::MergePolicy;
use crate::merge_walk::WalkEnd;
use crate::model::{Agreed, Baseline, FieldChange, IncidentSnapshot, Link, TicketUpdate};
use crate::reconcile::{self, Action, PairSpec};

/// Where a merge chain led, and the survivor's ticket if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeTarget {
    pub survivor: Option<IncidentSnapshot>,
    pub link: Option<Link>,
    /// Why there is no survivor to name (a loop, a chain too long, ...).
    pub problem: Option<String>,
    /// The survivor as the notes name it: its ticket, else its incident.
    pub where_to: String,
}

impl MergeTarget {
    pub fn new(walk: WalkEnd, link: Option<Link>) -> MergeTarget {
        let where_to = match (&walk.survivor, &link) {
            (_, Some(t)) => format!(
                "incident {} (ticket {}: {})",
                t.incident_display_id, t.ticket_key, t.ticket_url
            ),
            (Some(s), None) => format!("incident {} ({})", s.display_id, s.web_url),
            (None, None) => "another incident".to_string(),
        };
        MergeTarget {
            survivor: walk.survivor,
            link,
            problem: walk.problem,
            where_to,
        }
    }

    /// The ledger's detail for an incident merged before it had a ticket.
    pub fn unlinked_detail(&self) -> String {
        match &self.problem {
            Some(p) => format!("merged before it had a ticket; {p}"),
            None => format!(
                "merged into {} before it had a ticket; no ticket is made for it",
                self.where_to
            ),
        }
    }
}

/// A note the bridge writes on a ticket (once: a ticket already carrying the
/// text is left alone), and the change the ledger records when it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub ticket_key: String,
    pub text: String,
    pub change: FieldChange,
}

/// `[merge] raise_priority` on the survivor's ticket: the update to make
/// (its baseline holds the raised value), and what the ledger records once it
/// is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raise {
    /// An `Action::UpdateTicket` on the survivor's ticket.
    pub action: Action,
    /// The changes as the merge's ledger entry names them (`target priority (SEC-2)`).
    pub changes: Vec<FieldChange>,
    /// What the ledger says when the update fails.
    pub failure: String,
}

/// What a merge does, in the order it is done. The engine runs every `close`
/// action (one failing fails the merge, and nothing after the closing is
/// written), then both notes (a failing one fails the merge, but the other is
/// still written), then, if nothing failed, the `raise`. On success the link is
/// marked merged into `merged_into`, with `changes` (plus what the notes and
/// the raise add) and `detail` in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePlan {
    pub close: Vec<Action>,
    pub notes: Vec<Note>,
    pub raise: Option<Raise>,
    pub merged_into: Option<String>,
    /// The ledger's changes before anything is written: the link, now merged.
    pub changes: Vec<FieldChange>,
    /// The ledger's detail when the merge succeeds.
    pub detail: String,
}

/// What the ledger says when closing the merged incident's ticket failed.
pub const CLOSE_FAILED: &str = "closing its ticket failed";

/// Decides what the mapping's merge policy does to `merged` (whose ticket is
/// `merged_link`) and to the survivor `target` names.
pub fn plan_merge(
    pair: PairSpec<'_>,
    merged: &IncidentSnapshot,
    merged_link: &Link,
    target: &MergeTarget,
) -> MergePlan {
    let policy = pair.mapping.merge;
    let merged_into = target.survivor.as_ref().map(|s| s.id.clone());
    let changes = vec![FieldChange {
        field: "link".into(),
        old: Some("active".into()),
        new: Some(format!(
            "merged into {}",
            merged_into.as_deref().unwrap_or("?")
        )),
        conflict: None,
    }];
    let detail = match &target.problem {
        Some(p) => format!("policy {}; {p}", policy.as_str()),
        None => format!(
            "policy {}; merged into {}",
            policy.as_str(),
            target.where_to
        ),
    };
    let close = match policy {
        MergePolicy::CloseAsDuplicate => reconcile::plan_close(pair, merged_link, merged),
        MergePolicy::LinkOnly | MergePolicy::KeepOpen => Vec::new(),
    };
    let (notes, raise) = match policy {
        MergePolicy::KeepOpen => (Vec::new(), None),
        MergePolicy::CloseAsDuplicate | MergePolicy::LinkOnly => {
            let raise = match (&target.survivor, &target.link) {
                (Some(survivor), Some(link)) if pair.mapping.raise_priority => {
                    plan_raise(pair, merged, survivor, link)
                }
                _ => None,
            };
            (notes(merged, merged_link, target), raise)
        }
    };
    MergePlan {
        close,
        notes,
        raise,
        merged_into,
        changes,
        detail,
    }
}

/// The note on the merged incident's ticket (work continues elsewhere) and, when
/// the survivor has a ticket, the note on it (it absorbed the other).
fn notes(merged: &IncidentSnapshot, merged_link: &Link, target: &MergeTarget) -> Vec<Note> {
    let label = &merged.display_id;
    let where_to = &target.where_to;
    let to_merged = format!(
        "[itsm-bridge] Incident {label} was merged into {where_to}. Work continues there; this ticket is no longer synced."
    );
    let mut notes = vec![note(&merged_link.ticket_key, to_merged, "comment")];
    if let Some(survivor) = &target.link {
        let to_survivor = format!(
            "[itsm-bridge] This incident absorbed incident {label} (ticket {}: {}).",
            merged_link.ticket_key, merged_link.ticket_url
        );
        notes.push(note(&survivor.ticket_key, to_survivor, "target_comment"));
    }
    notes
}

fn note(ticket_key: &str, text: String, field: &str) -> Note {
    Note {
        ticket_key: ticket_key.to_string(),
        change: FieldChange {
            field: field.into(),
            old: None,
            new: Some(text.clone()),
            conflict: None,
        },
        text,
    }
}

/// `[merge] raise_priority`: when the merged incident was more severe than the
/// survivor, the survivor's ticket takes the merged one's priority (every rule
/// reading `severity` that flows to the ticket). The raised value is held (see
/// `Agreed::held`): it stays until the survivor's own severity changes. `None`:
/// nothing to raise.
pub fn plan_raise(
    pair: PairSpec<'_>,
    merged: &IncidentSnapshot,
    survivor: &IncidentSnapshot,
    target: &Link,
) -> Option<Raise> {
    let rank = |v: &Option<String>| v.as_deref().and_then(crate::vocab::severity_rank);
    let mut update = TicketUpdate::default();
    let mut changes = Vec::new();
    let mut baseline = Baseline::new();
    for rule in pair
        .mapping
        .fields
        .iter()
        .filter(|r| r.flow.to_ticket() && r.incident_attr() == Some("severity"))
    {
        let theirs = rule.incident_value(merged, pair.source);
        let ours = rule.incident_value(survivor, pair.source);
        if rank(&theirs) <= rank(&ours) {
            continue;
        }
        let Some(raised) = rule.map_to_ticket(theirs.as_deref()) else {
            continue;
        };
        let now = target
            .baseline
            .get(&rule.name)
            .and_then(|a| a.ticket.clone());
        if now.as_deref() == Some(raised.as_str()) {
            continue;
        }
        update.set.insert(rule.ticket.clone(), Some(raised.clone()));
        changes.push(FieldChange {
            field: rule.name.clone(),
            old: now,
            new: Some(raised.clone()),
            conflict: None,
        });
        baseline.insert(
            rule.name.clone(),
            Agreed {
                incident: ours,
                ticket: Some(raised),
                held: true,
            },
        );
    }
    if update.is_empty() {
        return None;
    }
    let key = &target.ticket_key;
    let recorded = changes
        .iter()
        .map(|c| FieldChange {
            field: format!("target {} ({key})", c.field),
            ..c.clone()
        })
        .collect();
    Some(Raise {
        action: Action::UpdateTicket {
            incident_id: target.incident_id.clone(),
            ticket_key: key.clone(),
            update,
            changes,
            baseline,
            incident_seen: None,
            ticket_seen: None,
        },
        changes: recorded,
        failure: format!("raising the priority of {key} failed"),
    })
}

#[cfg(test)]
mod tests;
