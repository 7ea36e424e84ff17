//! The behaviour every [`Store`] must have, written once and run against each
//! backend: `store_suite!(make)` in a backend's tests makes one `#[test]` per
//! case below, each on a fresh store from `make` (an `Option`: `None` skips,
//! as the PostgreSQL tests do without a database to run on).

use std::collections::BTreeSet;

use chrono::{TimeZone, Utc};

use super::{
    ClosedWhen, DeadLetter, Intent, LinkQuery, LinkStateFilter, Side, Store, StoreCounts,
    StoreError,
};
use crate::ledger::{GENESIS_HASH, LedgerEntry, LedgerFilter, LedgerRecord, Outcome};
use crate::model::{
    Agreed, Baseline, Comment, ConflictNote, ConflictPolicy, Direction, FieldChange,
    IncidentSnapshot, Link, LinkState, Timestamp,
};

/// A fresh store of some backend, as the suite's cases take it.
pub(crate) trait AsStore {
    fn as_store(&self) -> &dyn Store;
}

/// One `#[test]` per case of the suite, each on a store made by `$make`.
macro_rules! store_suite {
    ($make:expr) => {
        $crate::store::suite::store_suite!(@cases $make;
            link_round_trips_with_its_baseline,
            saving_a_link_again_replaces_it,
            link_by_ticket_prefers_the_active_link,
            links_are_ordered_by_pair_then_incident,
            links_for_incidents_returns_each_existing_link_once,
            newest_ticket_key_is_of_the_latest_link,
            watermarks_round_trip_per_pair_and_side,
            intents_begin_pending_finish,
            finishing_an_intent_twice_changes_nothing,
            dead_letters_count_attempts_and_come_due,
            synced_comments_are_recorded_once,
            incidents_seen_keep_the_last_read_without_comments_and_tags,
            ledger_appends_chain_and_verify,
            ledger_listing_honours_the_filter,
            ledger_listing_filters_by_ticket_action_and_time_range,
            ledger_listing_filters_by_actor_and_keeps_actors,
            ledger_listing_spans_many_fetches,
            ledger_listing_stops_at_the_callbacks_error,
            counts_group_links_dead_letters_pending_and_ledger,
            link_pages_filter_search_and_page
        );
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                use $crate::store::suite::AsStore as _;
                let Some(store) = $make else { return };
                $crate::store::suite::$case(store.as_store());
            }
        )*
    };
}
pub(crate) use store_suite;

impl AsStore for super::SqliteStore {
    fn as_store(&self) -> &dyn Store {
        self
    }
}

pub(crate) fn at(seconds: i64) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
}

pub(crate) fn link(pair: &str, incident_id: &str, ticket_key: &str) -> Link {
    let mut baseline = Baseline::new();
    baseline.insert(
        "status".to_owned(),
        Agreed {
            incident: Some("active".to_owned()),
            ticket: Some("In Progress".to_owned()),
            held: false,
        },
    );
    baseline.insert(
        "assignee".to_owned(),
        Agreed {
            incident: None,
            ticket: None,
            held: false,
        },
    );
    Link {
        ticket_version: Some("7".to_owned()),
        incident_version: None,
        pair: pair.to_owned(),
        incident_id: incident_id.to_owned(),
        incident_display_id: format!("#{incident_id}"),
        incident_url: format!("https://security.microsoft.com/incidents/{incident_id}"),
        ticket_key: ticket_key.to_owned(),
        ticket_id: format!("id-{ticket_key}"),
        ticket_url: format!("https://acme.atlassian.net/browse/{ticket_key}"),
        state: LinkState::Active,
        baseline,
        written_back: true,
        // Graph's 100 ns precision survives the round trip.
        incident_modified: at(10) + chrono::Duration::nanoseconds(123_456_700),
        ticket_modified: at(20),
        created: at(0),
        updated: at(30),
        merged_into: None,
    }
}

pub(crate) fn record(pair: &str, incident_id: &str, seconds: i64) -> LedgerRecord {
    LedgerRecord {
        time: at(seconds),
        pair: pair.to_owned(),
        direction: Some(Direction::ToTicket),
        action: "update_ticket".to_owned(),
        incident_id: incident_id.to_owned(),
        ticket_key: Some("SEC-1".to_owned()),
        changes: vec![FieldChange {
            field: "status".to_owned(),
            old: Some("new".to_owned()),
            new: Some("active".to_owned()),
            conflict: Some(ConflictNote {
                tie: false,
                policy: ConflictPolicy::SourceWins,
                incident_value: Some("active".to_owned()),
                ticket_value: None,
            }),
        }],
        outcome: Outcome::Ok,
        detail: None,
        actors: Vec::new(),
    }
}

pub(crate) fn intent(pair: &str, incident_id: &str) -> Intent {
    Intent {
        known_ticket: Some("SEC-0".to_owned()),
        pair: pair.to_owned(),
        incident_id: incident_id.to_owned(),
        kind: "create_ticket".to_owned(),
        payload: r#"{"summary":"x"}"#.to_owned(),
        created: at(5),
    }
}

pub(crate) fn entries(store: &dyn Store, filter: &LedgerFilter) -> Vec<LedgerEntry> {
    let mut out = Vec::new();
    store
        .for_each_ledger_entry(filter, &mut |entry| {
            out.push(entry);
            Ok(())
        })
        .unwrap();
    out
}

pub(crate) fn link_round_trips_with_its_baseline(store: &dyn Store) {
    let original = link("defender->jira", "41877", "SEC-42");
    store.save_link(&original, &[]).unwrap();
    assert_eq!(
        store.link("defender->jira", "41877").unwrap(),
        Some(original)
    );
    assert_eq!(store.link("defender->jira", "41878").unwrap(), None);
    assert_eq!(store.link("sentinel->jira", "41877").unwrap(), None);
}

pub(crate) fn saving_a_link_again_replaces_it(store: &dyn Store) {
    let mut changed = link("defender->jira", "41877", "SEC-42");
    store.save_link(&changed, &[]).unwrap();
    changed.state = LinkState::Merged;
    changed.merged_into = Some("41900".to_owned());
    changed.written_back = false;
    changed.baseline.insert(
        "severity".to_owned(),
        Agreed {
            incident: Some("high".to_owned()),
            ticket: Some("P2".to_owned()),
            held: true,
        },
    );
    changed.updated = at(99);
    store.save_link(&changed, &[]).unwrap();
    assert_eq!(store.links(None).unwrap(), vec![changed]);
}

pub(crate) fn link_by_ticket_prefers_the_active_link(store: &dyn Store) {
    let mut merged = link("defender->jira", "1", "SEC-1");
    merged.state = LinkState::Merged;
    merged.updated = at(500);
    let active = link("defender->jira", "2", "SEC-1");
    store.save_link(&merged, &[]).unwrap();
    store.save_link(&active, &[]).unwrap();
    store
        .save_link(&link("sentinel->jira", "3", "SEC-9"), &[])
        .unwrap();
    assert_eq!(
        store.link_by_ticket("defender->jira", "SEC-1").unwrap(),
        Some(active)
    );
    assert_eq!(
        store.link_by_ticket("defender->jira", "SEC-9").unwrap(),
        None
    );
}

pub(crate) fn links_are_ordered_by_pair_then_incident(store: &dyn Store) {
    for (pair, id) in [("b", "2"), ("a", "2"), ("b", "1"), ("a", "1")] {
        store.save_link(&link(pair, id, "SEC-1"), &[]).unwrap();
    }
    let keys = |links: Vec<Link>| -> Vec<(String, String)> {
        links.into_iter().map(|l| (l.pair, l.incident_id)).collect()
    };
    let expected =
        [("a", "1"), ("a", "2"), ("b", "1"), ("b", "2")].map(|(p, i)| (p.to_owned(), i.to_owned()));
    assert_eq!(keys(store.links(None).unwrap()), expected);
    assert_eq!(keys(store.links(Some("b")).unwrap()), expected[2..]);
}

pub(crate) fn links_for_incidents_returns_each_existing_link_once(store: &dyn Store) {
    for i in 0..40 {
        store
            .save_link(&link("defender->jira", &i.to_string(), "SEC-1"), &[])
            .unwrap();
        store
            .save_link(&link("other->jira", &i.to_string(), "SEC-1"), &[])
            .unwrap();
    }
    // 0..30 exist, 5000.. do not, and some ids are asked for twice.
    let mut ids: Vec<String> = (0..30).map(|i| i.to_string()).collect();
    ids.extend((5000..5100).map(|i| i.to_string()));
    ids.extend(std::iter::repeat_n("7".to_owned(), 1500));
    let found: Vec<String> = store
        .links_for_incidents("defender->jira", &ids)
        .unwrap()
        .into_iter()
        .inspect(|l| assert_eq!(l.pair, "defender->jira"))
        .map(|l| l.incident_id)
        .collect();
    assert_eq!(found.len(), 30, "each link once");
    let expected: BTreeSet<String> = (0..30).map(|i| i.to_string()).collect();
    assert_eq!(found.into_iter().collect::<BTreeSet<_>>(), expected);
    assert!(
        store
            .links_for_incidents("defender->jira", &[])
            .unwrap()
            .is_empty()
    );
}

pub(crate) fn newest_ticket_key_is_of_the_latest_link(store: &dyn Store) {
    assert_eq!(store.newest_ticket_key("p").unwrap(), None);
    for (id, key, created) in [("1", "SEC-1", 0), ("2", "SEC-3", 20), ("3", "SEC-2", 10)] {
        let mut made = link("p", id, key);
        made.created = at(created);
        store.save_link(&made, &[]).unwrap();
    }
    assert_eq!(
        store.newest_ticket_key("p").unwrap().as_deref(),
        Some("SEC-3")
    );
    assert_eq!(store.newest_ticket_key("q").unwrap(), None);
}

pub(crate) fn watermarks_round_trip_per_pair_and_side(store: &dyn Store) {
    assert_eq!(store.watermark("p", Side::Incidents).unwrap(), None);
    store.set_watermark("p", Side::Incidents, at(1)).unwrap();
    store.set_watermark("p", Side::Tickets, at(2)).unwrap();
    store.set_watermark("q", Side::Incidents, at(3)).unwrap();
    let fine = at(4) + chrono::Duration::nanoseconds(100);
    store.set_watermark("p", Side::Incidents, fine).unwrap();
    assert_eq!(store.watermark("p", Side::Incidents).unwrap(), Some(fine));
    assert_eq!(store.watermark("p", Side::Tickets).unwrap(), Some(at(2)));
    assert_eq!(store.watermark("q", Side::Incidents).unwrap(), Some(at(3)));
    assert_eq!(store.watermark("q", Side::Tickets).unwrap(), None);
}

pub(crate) fn intents_begin_pending_finish(store: &dyn Store) {
    let pair = "defender->jira";
    let first = store.begin_intent(&intent(pair, "1")).unwrap();
    let second = store.begin_intent(&intent(pair, "2")).unwrap();
    assert!(second > first);
    assert_eq!(
        store.pending_intents().unwrap(),
        vec![(first, intent(pair, "1")), (second, intent(pair, "2"))]
    );

    let created = link(pair, "1", "SEC-1");
    let mut done = record(pair, "1", 6);
    done.action = "create_ticket".to_owned();
    store
        .finish_intent(first, Some(&created), std::slice::from_ref(&done))
        .unwrap();
    assert_eq!(
        store.pending_intents().unwrap(),
        vec![(second, intent(pair, "2"))]
    );
    assert_eq!(store.link(pair, "1").unwrap(), Some(created));
    let ledger = entries(store, &LedgerFilter::default());
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].record, done);

    // A failed write finishes with a ledger entry and no link.
    let mut failed = record(pair, "2", 7);
    failed.outcome = Outcome::Failed;
    failed.detail = Some("jira answered 400".to_owned());
    store.finish_intent(second, None, &[failed]).unwrap();
    assert!(store.pending_intents().unwrap().is_empty());
    assert_eq!(store.link(pair, "2").unwrap(), None);
    assert!(store.verify_ledger().unwrap().is_intact());

    // Ids are never reused.
    let third = store.begin_intent(&intent(pair, "1")).unwrap();
    assert!(third > second);
}

pub(crate) fn finishing_an_intent_twice_changes_nothing(store: &dyn Store) {
    let id = store.begin_intent(&intent("p", "1")).unwrap();
    store.finish_intent(id, None, &[]).unwrap();
    let again = store.finish_intent(id, Some(&link("p", "1", "SEC-1")), &[record("p", "1", 0)]);
    assert!(matches!(again, Err(StoreError::Corrupt(_))), "{again:?}");
    assert_eq!(store.link("p", "1").unwrap(), None);
    assert_eq!(store.verify_ledger().unwrap().entries, 0);
}

pub(crate) fn dead_letters_count_attempts_and_come_due(store: &dyn Store) {
    let letter = DeadLetter {
        pair: "p".into(),
        incident_id: "7".into(),
        ticket_key: None,
        action: "create_ticket".into(),
        last_error: "jira: HTTP 500".into(),
        attempts: 1,
        first_failed: at(0),
        last_failed: at(0),
        next_attempt: at(60),
    };
    assert_eq!(store.record_failure(&letter).unwrap(), letter);
    let again = DeadLetter {
        ticket_key: Some("SEC-1".into()),
        last_failed: at(70),
        ..letter.clone()
    };
    let stored = store.record_failure(&again).unwrap();
    assert_eq!(
        (stored.attempts, stored.first_failed, stored.last_failed),
        (2, at(0), at(70))
    );
    assert_eq!(stored.ticket_key.as_deref(), Some("SEC-1"));
    assert_eq!(
        stored.next_attempt,
        at(60),
        "a later failure keeps the schedule"
    );
    store.schedule_retry("p", "7", at(190)).unwrap();
    assert!(
        store
            .dead_letters(Some("p"), Some(at(100)))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.dead_letters(Some("p"), Some(at(190))).unwrap().len(),
        1
    );
    assert_eq!(store.dead_letters(None, None).unwrap().len(), 1);
    assert_eq!(store.dead_letters(Some("other"), None).unwrap().len(), 0);
    assert!(store.clear_failure("p", "7").unwrap());
    assert!(!store.clear_failure("p", "7").unwrap());
    assert!(store.dead_letters(None, None).unwrap().is_empty());
}

pub(crate) fn synced_comments_are_recorded_once(store: &dyn Store) {
    assert!(store.synced_comments("p", "1").unwrap().is_empty());
    let prints = vec!["i:a".to_owned(), "t:b".to_owned()];
    store
        .record_synced_comments("p", "1", &prints, &[record("p", "1", 0)])
        .unwrap();
    store
        .record_synced_comments("p", "1", &["t:b".to_owned(), "i:c".to_owned()], &[])
        .unwrap();
    let mut got: Vec<String> = store
        .synced_comments("p", "1")
        .unwrap()
        .into_iter()
        .collect();
    got.sort();
    assert_eq!(got, ["i:a", "i:c", "t:b"]);
    assert!(store.synced_comments("p", "2").unwrap().is_empty());
    assert_eq!(store.verify_ledger().unwrap().entries, 1);
}

pub(crate) fn incidents_seen_keep_the_last_read_without_comments_and_tags(store: &dyn Store) {
    let incident = |id: &str, title: &str| IncidentSnapshot {
        modified_by: Default::default(),
        id: id.into(),
        display_id: id.into(),
        web_url: format!("https://security.example/incidents/{id}"),
        provider_url: None,
        created: at(0),
        modified: at(5),
        attrs: [("title".to_string(), title.to_string())].into(),
        tags: vec!["ticket:SEC-1".into()],
        redirect_to: None,
        comments: vec![Comment {
            id: Some("c1".into()),
            author: Some("Ana".into()),
            created: at(1),
            text: "long".into(),
        }],
        etag: Some("\"7\"".into()),
    };
    store
        .save_incidents_seen("p", &[incident("1", "first"), incident("2", "two")])
        .unwrap();
    store
        .save_incidents_seen("p", &[incident("1", "renamed")])
        .unwrap();
    store
        .save_incidents_seen("q", &[incident("1", "other pair")])
        .unwrap();
    let ids = ["1".to_string(), "2".to_string(), "3".to_string()];
    let mut seen = store.incidents_seen("p", &ids).unwrap();
    seen.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(seen.len(), 2, "3 was never seen");
    assert_eq!(seen[0].attrs["title"], "renamed");
    assert_eq!(seen[0].modified, at(5));
    assert_eq!(seen[0].etag.as_deref(), Some("\"7\""));
    assert!(seen[0].comments.is_empty() && seen[0].tags.is_empty());
    assert_eq!(seen[1].attrs["title"], "two");
}

pub(crate) fn ledger_appends_chain_and_verify(store: &dyn Store) {
    let empty = store.verify_ledger().unwrap();
    assert_eq!((empty.entries, empty.head.as_str()), (0, GENESIS_HASH));
    store
        .append_ledger(&[record("p", "1", 0), record("p", "2", 1)])
        .unwrap();
    store
        .save_link(&link("p", "1", "SEC-1"), &[record("p", "1", 2)])
        .unwrap();
    let id = store.begin_intent(&intent("p", "3")).unwrap();
    let mut bare = record("p", "3", 3);
    bare.direction = None;
    bare.ticket_key = None;
    bare.changes.clear();
    bare.outcome = Outcome::Skipped;
    bare.detail = Some("nothing to do".to_owned());
    store
        .finish_intent(id, None, std::slice::from_ref(&bare))
        .unwrap();

    let all = entries(store, &LedgerFilter::default());
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(all[0].prev_hash, GENESIS_HASH);
    for pair in all.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    assert_eq!(all[3].record, bare);
    let report = store.verify_ledger().unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.entries, 4);
    assert_eq!(report.head, all[3].hash);
    assert_eq!(store.ledger_hash_at(2).unwrap(), Some(all[1].hash.clone()));
    assert_eq!(store.ledger_hash_at(9).unwrap(), None);
    assert_eq!(store.ledger_seq_of(&all[2].hash).unwrap(), Some(3));
    assert_eq!(store.ledger_seq_of("feed").unwrap(), None);
}

pub(crate) fn ledger_listing_honours_the_filter(store: &dyn Store) {
    let records = [
        record("a", "1", 0),
        record("b", "1", 10),
        record("a", "2", 20),
        record("a", "1", 30),
        record("b", "2", 40),
    ];
    store.append_ledger(&records).unwrap();
    let seqs = |filter: LedgerFilter| -> Vec<i64> {
        entries(store, &filter).into_iter().map(|e| e.seq).collect()
    };
    let only =
        |pair: Option<&str>, incident: Option<&str>, since: Option<i64>, limit| LedgerFilter {
            pair: pair.map(str::to_owned),
            incident_id: incident.map(str::to_owned),
            since: since.map(at),
            limit,
            ..LedgerFilter::default()
        };
    assert_eq!(seqs(LedgerFilter::default()), [1, 2, 3, 4, 5]);
    assert_eq!(seqs(only(Some("a"), None, None, None)), [1, 3, 4]);
    assert_eq!(seqs(only(None, Some("2"), None, None)), [3, 5]);
    assert_eq!(seqs(only(None, None, Some(20), None)), [3, 4, 5]);
    assert_eq!(seqs(only(None, None, None, Some(2))), [4, 5]);
    assert_eq!(seqs(only(None, None, None, Some(0))), Vec::<i64>::new());
    assert_eq!(seqs(only(None, None, None, Some(99))), [1, 2, 3, 4, 5]);
    assert_eq!(seqs(only(Some("a"), Some("1"), Some(1), Some(1))), [4]);
    assert_eq!(seqs(only(Some("a"), None, None, Some(2))), [3, 4]);
    assert_eq!(
        seqs(only(Some("none"), None, None, Some(2))),
        Vec::<i64>::new()
    );
}

pub(crate) fn ledger_listing_filters_by_ticket_action_and_time_range(store: &dyn Store) {
    let with = |seconds: i64, ticket: Option<&str>, action: &str| LedgerRecord {
        ticket_key: ticket.map(str::to_owned),
        action: action.to_owned(),
        ..record("a", "1", seconds)
    };
    store
        .append_ledger(&[
            with(0, None, "record_baseline"),
            with(10, Some("SEC-1"), "create_ticket"),
            with(20, Some("SEC-1"), "update_ticket"),
            with(30, Some("SEC-2"), "update_ticket"),
            with(40, Some("SEC-2"), "update_incident"),
        ])
        .unwrap();
    let seqs = |filter: LedgerFilter| -> Vec<i64> {
        entries(store, &filter).into_iter().map(|e| e.seq).collect()
    };
    let ticket = |key: &str| LedgerFilter {
        ticket_key: Some(key.to_owned()),
        ..LedgerFilter::default()
    };
    let action = |name: &str| LedgerFilter {
        action: Some(name.to_owned()),
        ..LedgerFilter::default()
    };
    let between = |since: Option<i64>, until: Option<i64>| LedgerFilter {
        since: since.map(at),
        until: until.map(at),
        ..LedgerFilter::default()
    };
    assert_eq!(seqs(ticket("SEC-1")), [2, 3]);
    assert_eq!(seqs(ticket("SEC-9")), Vec::<i64>::new());
    assert_eq!(seqs(action("update_ticket")), [3, 4]);
    // `since` is inclusive, `until` exclusive: back-to-back ranges never overlap.
    assert_eq!(seqs(between(Some(10), Some(30))), [2, 3]);
    assert_eq!(seqs(between(Some(30), None)), [4, 5]);
    assert_eq!(seqs(between(None, Some(10))), [1]);
    assert_eq!(seqs(between(Some(30), Some(30))), Vec::<i64>::new());
    // A time with microseconds compares as the stored time does.
    let just_after = at(20) + chrono::Duration::microseconds(1);
    let after_20 = LedgerFilter {
        since: Some(just_after),
        ..LedgerFilter::default()
    };
    assert_eq!(seqs(after_20), [4, 5]);
    let all = LedgerFilter {
        pair: Some("a".to_owned()),
        incident_id: Some("1".to_owned()),
        ticket_key: Some("SEC-2".to_owned()),
        action: Some("update_ticket".to_owned()),
        since: Some(at(0)),
        until: Some(at(40)),
        limit: Some(5),
        actor: None,
    };
    assert_eq!(seqs(all), [4]);
}

pub(crate) fn ledger_listing_filters_by_actor_and_keeps_actors(store: &dyn Store) {
    use crate::ledger::{Actor, ActorSide};
    let by = |name: &str, side: ActorSide, fields: &[&str]| Actor {
        name: name.to_owned(),
        side,
        at: Some(at(5)),
        fields: fields.iter().map(|f| (*f).to_owned()).collect(),
    };
    let with = |seconds: i64, actors: Vec<Actor>| LedgerRecord {
        actors,
        ..record("a", "1", seconds)
    };
    let records = [
        // Written before attribution existed: no actors.
        with(0, Vec::new()),
        with(10, vec![by("Ann Analyst", ActorSide::Ticket, &["status"])]),
        with(20, vec![Actor::bridge()]),
        with(
            30,
            vec![
                by("bob", ActorSide::Incident, &["status"]),
                by("Ann Analyst", ActorSide::Incident, &["severity"]),
            ],
        ),
        // A name that only contains another's is not that actor.
        with(40, vec![by("Ann Analyst Jr", ActorSide::Ticket, &[])]),
    ];
    store.append_ledger(&records).unwrap();
    let listed = entries(store, &LedgerFilter::default());
    let kept: Vec<_> = listed.iter().map(|e| e.record.clone()).collect();
    assert_eq!(kept, records, "actors round-trip, none stays none");
    assert!(store.verify_ledger().unwrap().is_intact());
    let seqs = |name: &str, limit: Option<usize>| -> Vec<i64> {
        let filter = LedgerFilter {
            actor: Some(name.to_owned()),
            limit,
            ..LedgerFilter::default()
        };
        entries(store, &filter).into_iter().map(|e| e.seq).collect()
    };
    assert_eq!(seqs("Ann Analyst", None), [2, 4]);
    assert_eq!(seqs("Ann Analyst", Some(1)), [4]);
    assert_eq!(seqs("bob", None), [4]);
    assert_eq!(seqs("itsm-bridge", None), [3]);
    assert_eq!(seqs("ann analyst", None), Vec::<i64>::new());
    assert_eq!(seqs("Ann", None), Vec::<i64>::new());
}

/// Longer than a PostgreSQL listing's fetch batch, so the batches join up.
pub(crate) fn ledger_listing_spans_many_fetches(store: &dyn Store) {
    let records: Vec<_> = (0..2_503).map(|i| record("p", "1", i)).collect();
    store.append_ledger(&records).unwrap();
    let seqs: Vec<i64> = entries(store, &LedgerFilter::default())
        .into_iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=2_503).collect::<Vec<_>>());
    let since = LedgerFilter {
        since: Some(at(1_000)),
        ..LedgerFilter::default()
    };
    assert_eq!(entries(store, &since).len(), 1_503);
}

pub(crate) fn ledger_listing_stops_at_the_callbacks_error(store: &dyn Store) {
    let records: Vec<_> = (0..600).map(|i| record("p", "1", i)).collect();
    store.append_ledger(&records).unwrap();
    let mut seen = 0;
    let result = store.for_each_ledger_entry(&LedgerFilter::default(), &mut |_| {
        seen += 1;
        Err(StoreError::Corrupt("stop".to_owned()))
    });
    assert!(result.is_err());
    assert_eq!(seen, 1);
    // The store goes on answering after a listing was cut short.
    assert_eq!(store.verify_ledger().unwrap().entries, 600);
}

pub(crate) fn counts_group_links_dead_letters_pending_and_ledger(store: &dyn Store) {
    assert_eq!(store.counts().unwrap(), StoreCounts::default());
    for (pair, id) in [("b->x", "1"), ("a->x", "1"), ("a->x", "2"), ("a->x", "3")] {
        store.save_link(&link(pair, id, "SEC-1"), &[]).unwrap();
    }
    let mut merged = link("a->x", "3", "SEC-3");
    merged.state = LinkState::Merged;
    store.save_link(&merged, &[]).unwrap();
    for (pair, id) in [("b->x", "1"), ("b->x", "9"), ("a->x", "1")] {
        store
            .record_failure(&DeadLetter {
                pair: pair.into(),
                incident_id: id.into(),
                ticket_key: None,
                action: "create_ticket".into(),
                last_error: "refused".into(),
                attempts: 1,
                first_failed: at(0),
                last_failed: at(0),
                next_attempt: at(60),
            })
            .unwrap();
    }
    let records: Vec<_> = (0..7).map(|i| record("a->x", "1", i)).collect();
    store.append_ledger(&records).unwrap();
    store.begin_intent(&intent("b->x", "9")).unwrap();
    assert_eq!(
        store.counts().unwrap(),
        StoreCounts {
            links: vec![
                ("a->x".to_owned(), LinkState::Active, 2),
                ("a->x".to_owned(), LinkState::Merged, 1),
                ("b->x".to_owned(), LinkState::Active, 1),
            ],
            dead_letters: vec![("a->x".to_owned(), 1), ("b->x".to_owned(), 2)],
            pending: vec![("b->x".to_owned(), 1)],
            ledger_entries: 7,
        }
    );
    assert!(
        store.leases().unwrap().is_empty(),
        "no replica holds a lease"
    );
}

pub(crate) fn link_pages_filter_search_and_page(store: &dyn Store) {
    // Five links of one pair: 1 and 2 open, 3 resolved, 4 merged; 5 failing and
    // pending; and one of another pair whose "resolved" is not a closed status.
    for (id, key) in [
        ("1", "SEC-1"),
        ("2", "SEC-2"),
        ("3", "SEC-3"),
        ("4", "SEC-4"),
        ("5", "OPS_5"),
    ] {
        let mut l = link("defender->jira", id, key);
        if id == "3" {
            l.baseline.get_mut("status").unwrap().incident = Some("Resolved".to_owned());
        }
        if id == "4" {
            l.state = LinkState::Merged;
        }
        store.save_link(&l, &[]).unwrap();
    }
    let mut other = link("sentinel->jira", "9", "SEC-9");
    other.baseline.get_mut("status").unwrap().incident = Some("resolved".to_owned());
    store.save_link(&other, &[]).unwrap();
    store
        .record_failure(&DeadLetter {
            pair: "defender->jira".to_owned(),
            incident_id: "5".to_owned(),
            ticket_key: Some("OPS_5".to_owned()),
            action: "update_ticket".to_owned(),
            last_error: "refused".to_owned(),
            attempts: 1,
            first_failed: at(1),
            last_failed: at(1),
            next_attempt: at(60),
        })
        .unwrap();
    store.begin_intent(&intent("defender->jira", "5")).unwrap();

    let ids = |query: LinkQuery| -> (Vec<String>, u64) {
        let page = store.link_page(&query).unwrap();
        let ids = page
            .links
            .iter()
            .map(|l| format!("{}/{}", l.pair, l.incident_id))
            .collect();
        (ids, page.total)
    };
    let all = LinkQuery {
        limit: 100,
        closed_when: vec![ClosedWhen {
            pair: "defender->jira".to_owned(),
            field: "status".to_owned(),
            value: "resolved".to_owned(),
        }],
        ..LinkQuery::default()
    };
    let (everything, total) = ids(all.clone());
    assert_eq!(total, 6);
    assert_eq!(everything[0], "defender->jira/1");
    assert_eq!(
        everything[5], "sentinel->jira/9",
        "ordered by pair, then incident"
    );

    let state = |s| LinkQuery {
        pair: Some("defender->jira".to_owned()),
        state: Some(s),
        ..all.clone()
    };
    let d = |ids: &[&str]| -> Vec<String> {
        ids.iter().map(|i| format!("defender->jira/{i}")).collect()
    };
    assert_eq!(ids(state(LinkStateFilter::Open)), (d(&["1", "2", "5"]), 3));
    assert_eq!(ids(state(LinkStateFilter::Closed)), (d(&["3"]), 1));
    assert_eq!(ids(state(LinkStateFilter::Merged)), (d(&["4"]), 1));
    assert_eq!(ids(state(LinkStateFilter::Failing)), (d(&["5"]), 1));
    assert_eq!(ids(state(LinkStateFilter::Pending)), (d(&["5"]), 1));
    // Closed is per pair: the other pair's "resolved" is not one of its closed values.
    let closed_anywhere = LinkQuery {
        state: Some(LinkStateFilter::Closed),
        ..all.clone()
    };
    assert_eq!(ids(closed_anywhere).1, 1);

    // Search: any part of the incident id, display id or ticket key, without
    // case; `_` and `%` are literal.
    let search = |s: &str| LinkQuery {
        search: Some(s.to_owned()),
        ..all.clone()
    };
    assert_eq!(ids(search("sec-2")), (d(&["2"]), 1));
    assert_eq!(ids(search("#3")).0, d(&["3"]));
    assert_eq!(ids(search("S_5")).1, 1);
    assert_eq!(ids(search("C_1")).1, 0, "an underscore is not a wildcard");
    assert_eq!(ids(search("%")).1, 0);

    // Pages: the total stays, the rows move on.
    let page = |offset| LinkQuery {
        offset,
        limit: 2,
        ..all.clone()
    };
    assert_eq!(ids(page(0)), (d(&["1", "2"]), 6));
    assert_eq!(ids(page(4)).0, ["defender->jira/5", "sentinel->jira/9"]);
    assert_eq!(ids(page(6)), (vec![], 6));
}
