//! Who the engine's ledger entries name, against the in-memory fakes of
//! `engine/tests.rs`: a carried change names its author on the side it came
//! from (per field where the ticket keeps a per-field history), the bridge's
//! own writes and what no one on either side changed name the bridge.

use super::tests::{Fault, mapping, world};
use super::*;
use crate::ledger::{Actor, ActorSide};

fn entries(w: &super::tests::World) -> Vec<LedgerRecord> {
    let mut out = Vec::new();
    w.store
        .for_each_ledger_entry(&Default::default(), &mut |e| {
            out.push(e.record);
            Ok(())
        })
        .unwrap();
    out
}

fn last(w: &super::tests::World, action: &str) -> LedgerRecord {
    entries(w)
        .into_iter()
        .rev()
        .find(|r| r.action == action)
        .unwrap_or_else(|| panic!("no {action} entry"))
}

fn actor(name: &str, side: ActorSide, at: Timestamp, fields: &[&str]) -> Actor {
    Actor {
        name: name.into(),
        side,
        at: Some(at),
        fields: fields.iter().map(|f| (*f).to_string()).collect(),
    }
}

#[tokio::test]
async fn a_carried_change_names_who_made_it_on_its_side_and_the_bridges_writes_the_bridge() {
    let w = world();
    w.source.add("1", "active");
    let made = {
        let mut all = w.source.incidents.lock().unwrap();
        let i = all.get_mut("1").unwrap();
        i.modified_by.last = Some("Microsoft 365 Defender".into());
        i.modified
    };
    w.cycle().await;
    assert_eq!(
        last(&w, "create_ticket").actors,
        [Actor {
            fields: Vec::new(),
            ..actor("Microsoft 365 Defender", ActorSide::Incident, made, &[])
        }]
    );
    assert_eq!(last(&w, "write_back").actors, [Actor::bridge()]);
    let key = w.store.link(&w.rt.pair, "1").unwrap().unwrap().ticket_key;

    // Ann resolves the incident: its status reaches the ticket as hers.
    w.source.set_attr("1", "status", Some("resolved"));
    let resolved = {
        let mut all = w.source.incidents.lock().unwrap();
        let i = all.get_mut("1").unwrap();
        i.modified_by.last = Some("Ann".into());
        i.modified
    };
    w.cycle().await;
    assert_eq!(
        last(&w, "update_ticket").actors,
        [actor("Ann", ActorSide::Incident, resolved, &["status"])]
    );

    // Tom reopens the ticket; its history names him for the status, though
    // someone else changed the ticket last.
    w.tickets.set_attr(&key, "status", Some("new"));
    let reopened = {
        let mut all = w.tickets.tickets.lock().unwrap();
        let t = all.get_mut(&key).unwrap();
        t.modified_by.last = Some("Someone else".into());
        t.modified_by.fields.insert("status".into(), "Tom".into());
        t.modified
    };
    w.cycle().await;
    assert_eq!(
        last(&w, "update_incident").actors,
        [actor("Tom", ActorSide::Ticket, reopened, &["status"])]
    );

    // A change that fails to go across still says whose it was.
    w.source.set_attr("1", "title", Some("Renamed"));
    let renamed = {
        let mut all = w.source.incidents.lock().unwrap();
        let i = all.get_mut("1").unwrap();
        i.modified_by.last = Some("Bea".into());
        i.modified
    };
    w.tickets.update_faults.lock().unwrap().push(Fault::Refused);
    w.cycle().await;
    let failed = last(&w, "update_ticket");
    assert_eq!(failed.outcome, Outcome::Failed);
    assert_eq!(
        failed.actors,
        [actor("Bea", ActorSide::Incident, renamed, &["summary"])]
    );
}

#[tokio::test]
async fn a_mapping_edits_rewrites_are_the_bridges() {
    let mut w = world();
    for id in ["1", "2"] {
        w.source.add(id, "active");
    }
    w.cycle().await;
    w.cycle().await;
    {
        // Whoever last touched the incidents did not write what follows.
        let mut all = w.source.incidents.lock().unwrap();
        for i in all.values_mut() {
            i.modified_by.last = Some("Ann".into());
        }
    }
    let old = mapping();
    w.rt.mapping = std::sync::Arc::new(super::remap_tests::edited());
    // (A poll that meets an edit at the incident's synced time, tied, writes
    // it as the bridge's too: `tests/it/mapping_edits.rs`.)
    let (report, _) = run_remap(&w.rt, &old, &w.store, &w.clock, false)
        .await
        .unwrap();
    assert_eq!(report.tickets_updated, 2);
    for entry in entries(&w)
        .iter()
        .filter(|r| r.action == "update_ticket")
        .rev()
        .take(2)
    {
        assert_eq!(entry.actors, [Actor::bridge()], "{entry:?}");
    }
}

#[tokio::test]
async fn a_late_edit_the_sweep_finds_names_its_author() {
    let w = world();
    w.source.add("1", "active");
    w.cycle().await;
    w.cycle().await;
    // Resolved by Ann, stamped before the last sync (a replica running late):
    // the poll cannot see it, the sweep does.
    let late = {
        let mut all = w.source.incidents.lock().unwrap();
        let i = all.get_mut("1").unwrap();
        i.attrs.insert("status".into(), "resolved".into());
        i.modified -= Duration::seconds(1);
        i.modified_by.last = Some("Ann".into());
        i.modified
    };
    let sweep = run_sweep(&w.rt, &w.store, &w.clock, false).await.unwrap();
    assert_eq!(sweep.tickets_updated, 1, "{sweep:?}");
    assert_eq!(
        last(&w, "update_ticket").actors,
        [actor("Ann", ActorSide::Incident, late, &["status"])]
    );
    assert_eq!(last(&w, "repair").actors, [Actor::bridge()]);
}
