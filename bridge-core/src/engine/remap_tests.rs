//! A mapping edit carried out: the writes `mapping impact` counts are the
//! writes made, each through the outbox, and the next cycle echoes none.

use super::tests::{mapping, world};
use super::*;
use crate::mapping::ValueMap;

pub(super) fn edited() -> Mapping {
    let mut m = mapping();
    let status = m.fields.iter_mut().find(|r| r.name == "status").unwrap();
    // "active" was "new"; now "triage".
    status.to_ticket = Some(ValueMap {
        entries: vec![
            ("active".into(), "triage".into()),
            ("resolved".into(), "done".into()),
            ("redirected".into(), "done".into()),
        ],
        default: Some("new".into()),
    });
    m
}

#[tokio::test]
async fn a_value_map_edit_rewrites_what_its_impact_counted_and_nothing_echoes() {
    let mut w = world();
    for id in ["1", "2", "3"] {
        w.source.add(id, "active");
    }
    w.source.add("4", "resolved");
    w.cycle().await;
    w.cycle().await;
    let old = mapping();
    w.rt.mapping = std::sync::Arc::new(edited());

    let (_, planned) = run_remap(&w.rt, &old, &w.store, &w.clock, true)
        .await
        .unwrap();
    assert_eq!(planned.ticket_writes, 3, "{planned:?}");
    assert!(
        w.ledger_actions().iter().all(|a| !a.starts_with("remap")),
        "a dry run writes nothing"
    );

    let (report, done) = run_remap(&w.rt, &old, &w.store, &w.clock, false)
        .await
        .unwrap();
    assert_eq!(done.ticket_writes, planned.ticket_writes);
    assert_eq!(report.tickets_updated, 3);
    for id in ["1", "2", "3"] {
        let key = w.store.link(&w.rt.pair, id).unwrap().unwrap().ticket_key;
        assert_eq!(
            w.tickets.tickets.lock().unwrap()[&key].attrs["status"],
            "triage"
        );
        let link = w.store.link(&w.rt.pair, id).unwrap().unwrap();
        assert_eq!(link.baseline["status"].ticket.as_deref(), Some("triage"));
    }
    assert!(w.ledger_actions().contains(&"remap ok".to_string()));
    assert!(w.store.pending_intents().unwrap().is_empty());

    // The bridge's own rewrites are not read back as analysts' edits.
    let next = w.cycle().await;
    assert_eq!(next.writes(), 0, "{next:?}");
    let again = run_remap(&w.rt, &edited(), &w.store, &w.clock, false)
        .await
        .unwrap();
    assert_eq!(again.1.writes(), 0, "an unchanged mapping rewrites nothing");
}

#[tokio::test]
async fn a_template_edit_is_rendered_from_the_incidents_the_polls_kept() {
    let mut w = world();
    for id in ["1", "2"] {
        w.source.add(id, "active");
    }
    w.cycle().await;
    let old = mapping();
    let mut new = mapping();
    new.fields[0].incident = crate::mapping::IncidentSide::Template(
        crate::mapping::Template::parse("SOC: {incident.title}", &["title"], false).unwrap(),
    );
    w.rt.mapping = std::sync::Arc::new(new);
    let (report, impact) = run_remap(&w.rt, &old, &w.store, &w.clock, false)
        .await
        .unwrap();
    assert_eq!(
        (impact.undecided, report.tickets_updated),
        (0, 2),
        "{impact:?}"
    );
    let key = w.store.link(&w.rt.pair, "1").unwrap().unwrap().ticket_key;
    assert_eq!(
        w.tickets.tickets.lock().unwrap()[&key].attrs["summary"],
        "SOC: Incident 1"
    );
    assert_eq!(w.cycle().await.writes(), 0, "nothing echoes");
}
