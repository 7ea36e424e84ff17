//! The merge walk read as situations: which incidents the source holds, where a
//! merge chain leads, and what is read on the way. No IO: the "source" is a map.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};

use super::*;
use crate::model::Attrs;

/// An incident; merged into `into` when given (as Graph says it: `redirected`).
fn incident(id: &str, into: Option<&str>) -> IncidentSnapshot {
    let at = Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap();
    let mut attrs = Attrs::new();
    let status = if into.is_some() {
        "redirected"
    } else {
        "active"
    };
    attrs.insert("status".into(), status.into());
    IncidentSnapshot {
        modified_by: Default::default(),
        id: id.into(),
        display_id: id.into(),
        web_url: format!("https://security.microsoft.com/incidents/{id}"),
        provider_url: None,
        created: at,
        modified: at,
        attrs,
        tags: vec![],
        redirect_to: into.map(str::to_string),
        comments: vec![],
        etag: None,
    }
}

/// Walks from `from` (merged into `into`) over `source`; says how it ended and
/// what it read.
fn walk(from: &str, into: Option<&str>, source: &[IncidentSnapshot]) -> (WalkEnd, Vec<String>) {
    let source: BTreeMap<&str, &IncidentSnapshot> =
        source.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut walk = MergeWalk::new(from, into.map(str::to_string));
    let mut reads = Vec::new();
    loop {
        match walk.poll() {
            Step::Done(end) => return (*end, reads),
            Step::Read(id) => {
                let found = match source.get(id.as_str()) {
                    Some(i) => Found::Incident(Box::new((*i).clone())),
                    None => Found::Nothing,
                };
                reads.push(id);
                walk.handle(found);
            }
        }
    }
}

#[test]
fn a_chain_leads_to_the_incident_that_survived() {
    let source = [incident("2", Some("3")), incident("3", None)];
    let (end, reads) = walk("1", Some("2"), &source);
    assert_eq!(reads, vec!["2", "3"]);
    assert_eq!(end.survivor.map(|s| s.id).as_deref(), Some("3"));
    assert_eq!(end.problem, None);
}

#[test]
fn a_merge_into_an_unnamed_incident_ends_without_a_read() {
    let (end, reads) = walk("1", None, &[]);
    assert_eq!(reads, Vec::<String>::new());
    assert_eq!(end.survivor, None);
    assert_eq!(
        end.problem.as_deref(),
        Some("the source closed it as merged without naming the incident it was merged into")
    );
}

#[test]
fn a_loop_is_recorded_not_followed() {
    let source = [incident("1", Some("2")), incident("2", Some("1"))];
    let (end, reads) = walk("1", Some("2"), &source);
    assert_eq!(reads, vec!["2"]);
    assert_eq!(end.survivor, None);
    assert_eq!(
        end.problem.as_deref(),
        Some("the merge chain 1 → 2 → 1 loops")
    );
}

#[test]
fn a_chain_longer_than_the_limit_is_not_followed_to_its_end() {
    let source: Vec<IncidentSnapshot> = (2..30)
        .map(|n| incident(&n.to_string(), Some(&(n + 1).to_string())))
        .collect();
    let (end, reads) = walk("1", Some("2"), &source);
    assert_eq!(reads.len(), MAX_CHAIN);
    assert_eq!(end.survivor, None);
    assert_eq!(
        end.problem.as_deref(),
        Some("the merge chain 1 → 2 → 3 → 4 → 5 → 6 → 7 → 8 → 9 is longer than 8")
    );
}

#[test]
fn a_chain_ending_at_an_incident_that_does_not_exist_is_recorded() {
    let source = [incident("2", Some("3"))];
    let (end, reads) = walk("1", Some("2"), &source);
    assert_eq!(reads, vec!["2", "3"]);
    assert_eq!(end.survivor, None);
    assert_eq!(
        end.problem.as_deref(),
        Some("the merge chain 1 → 2 → 3 ends at an incident that does not exist")
    );
}
