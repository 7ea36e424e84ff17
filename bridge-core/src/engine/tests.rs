//! Engine tests against in-memory fakes of both sides and a virtual clock: the
//! outbox, adoption after a lost answer, and watermarks that wait for failures.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};

use super::*;
use crate::mapping::{Flow, IncidentSide, Template, ValueMap, WriteBack};
use crate::model::{Attrs, Comment, Correlation, Page, TicketCreate, TicketUpdate};
use crate::ports::ConnectorResult;
use crate::store::SqliteStore;
use crate::vocab::{SourceKind, TicketKind};

pub(super) struct FakeClock(Mutex<Timestamp>);

impl FakeClock {
    pub(super) fn new() -> FakeClock {
        FakeClock(Mutex::new(
            Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap(),
        ))
    }
    pub(super) fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

/// Both remote systems' shared sense of time: every write moves it on a second,
/// unless the clock is whole-second (then writes share the current second until
/// time passes, as on ServiceNow: ties everywhere).
#[derive(Default)]
pub(super) struct Remote {
    pub(super) now: Mutex<i64>,
    pub(super) whole_second: std::sync::atomic::AtomicBool,
    /// Records carry a version (an etag over their content, as a Sentinel etag
    /// changes with every write) that tells same-second writes apart.
    pub(super) versioned: std::sync::atomic::AtomicBool,
}

impl Remote {
    pub(super) fn tick(&self) -> Timestamp {
        let mut n = self.now.lock().unwrap();
        if !self.whole_second.load(std::sync::atomic::Ordering::SeqCst) {
            *n += 1;
        }
        Utc.timestamp_opt(1_790_000_000 + *n, 0).unwrap()
    }

    /// A new comment's id where records are versioned (Sentinel, Jira and
    /// ServiceNow comments all have one); none otherwise (Graph's have none).
    pub(super) fn comment_id(&self) -> Option<String> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        self.versioned().then(|| {
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                .to_string()
        })
    }

    fn versioned(&self) -> bool {
        self.versioned.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A content etag, when records are versioned.
    fn etag(&self, content: &impl serde::Serialize) -> Option<String> {
        use std::hash::{Hash, Hasher};
        if !self.versioned() {
            return None;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        serde_json::to_string(content).unwrap().hash(&mut h);
        Some(format!("\"{:016x}\"", h.finish()))
    }

    /// An incident as the remote shows it (with its etag when versioned).
    pub(super) fn show_incident(&self, mut i: IncidentSnapshot) -> IncidentSnapshot {
        i.etag = None;
        i.etag = self.etag(&i);
        i
    }

    /// A ticket as the remote shows it (with its version when versioned).
    pub(super) fn show_ticket(&self, mut t: TicketSnapshot) -> TicketSnapshot {
        t.version = None;
        t.version = self.etag(&t);
        t
    }
}

#[derive(Default)]
pub(super) struct FakeSource {
    pub(super) remote: std::sync::Arc<Remote>,
    pub(super) incidents: Mutex<BTreeMap<String, IncidentSnapshot>>,
    /// The next update meets a concurrent edit (as a stale Sentinel etag would).
    pub(super) race_next_update: Mutex<bool>,
}

impl FakeSource {
    pub(super) fn add(&self, id: &str, status: &str) {
        let mut attrs = Attrs::new();
        attrs.insert("title".into(), format!("Incident {id}"));
        attrs.insert("status".into(), status.into());
        let at = self.remote.tick();
        self.incidents.lock().unwrap().insert(
            id.into(),
            IncidentSnapshot {
                modified_by: Default::default(),
                id: id.into(),
                display_id: id.into(),
                web_url: format!("https://security.example/incidents/{id}"),
                provider_url: None,
                created: at,
                modified: at,
                attrs,
                tags: vec![],
                redirect_to: None,
                comments: vec![],
                etag: None,
            },
        );
    }
}

#[async_trait]
impl IncidentSource for FakeSource {
    async fn changed_since(&self, since: Timestamp) -> ConnectorResult<Page<IncidentSnapshot>> {
        let items = self
            .incidents
            .lock()
            .unwrap()
            .values()
            .filter(|i| i.modified >= since)
            .map(|i| self.remote.show_incident(i.clone()))
            .collect();
        Ok(Page { items, next: None })
    }
    async fn next_page(&self, _: &str) -> ConnectorResult<Page<IncidentSnapshot>> {
        unreachable!("one page")
    }
    async fn get(&self, id: &str) -> ConnectorResult<IncidentSnapshot> {
        Ok(self
            .remote
            .show_incident(self.incidents.lock().unwrap()[id].clone()))
    }
    async fn update(&self, id: &str, u: &IncidentUpdate) -> ConnectorResult<IncidentSnapshot> {
        let mut all = self.incidents.lock().unwrap();
        let i = all.get_mut(id).unwrap();
        if std::mem::take(&mut *self.race_next_update.lock().unwrap()) {
            i.attrs
                .insert("title".into(), "Renamed by an analyst meanwhile".into());
            i.modified = self.remote.tick();
            return Err(ConnectorError::new(
                ErrorKind::Conflict,
                "fake",
                "stale etag",
            ));
        }
        for (k, v) in &u.set {
            match v {
                Some(v) => i.attrs.insert(k.clone(), v.clone()),
                None => i.attrs.remove(k),
            };
        }
        i.tags.extend(u.add_tags.iter().cloned());
        i.modified = self.remote.tick();
        Ok(self.remote.show_incident(i.clone()))
    }
    async fn add_comment(&self, id: &str, text: &str) -> ConnectorResult<()> {
        let at = self.remote.tick();
        let mut all = self.incidents.lock().unwrap();
        let i = all.get_mut(id).unwrap();
        i.comments.push(Comment {
            id: self.remote.comment_id(),
            author: None,
            created: at,
            text: text.into(),
        });
        i.modified = at;
        Ok(())
    }
}

/// What the next create or update does.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Fault {
    /// The ticket is created, but the answer is lost (a timeout).
    CreatedButLost,
    /// Refused outright.
    Refused,
}

#[derive(Default)]
pub(super) struct FakeTickets {
    pub(super) remote: std::sync::Arc<Remote>,
    pub(super) tickets: Mutex<BTreeMap<String, TicketSnapshot>>,
    pub(super) create_faults: Mutex<Vec<Fault>>,
    pub(super) update_faults: Mutex<Vec<Fault>>,
    pub(super) creates: Mutex<usize>,
    /// The lookup behind `find_created` is a lagging search (Jira without a
    /// known key to walk from): it cannot say a ticket is absent.
    pub(super) search_only: std::sync::atomic::AtomicBool,
}

impl FakeTickets {
    pub(super) fn count(&self) -> usize {
        self.tickets.lock().unwrap().len()
    }
}

#[async_trait]
impl TicketSystem for FakeTickets {
    async fn changed_since(&self, since: Timestamp) -> ConnectorResult<Page<TicketSnapshot>> {
        let items = self
            .tickets
            .lock()
            .unwrap()
            .values()
            .filter(|t| t.modified >= since)
            .map(|t| self.remote.show_ticket(t.clone()))
            .collect();
        Ok(Page { items, next: None })
    }
    async fn next_page(&self, _: &str) -> ConnectorResult<Page<TicketSnapshot>> {
        unreachable!("one page")
    }
    async fn find_by_correlation(
        &self,
        c: &Correlation,
    ) -> ConnectorResult<Option<TicketSnapshot>> {
        Ok(self
            .tickets
            .lock()
            .unwrap()
            .values()
            .find(|t| t.correlation.as_ref() == Some(c))
            .map(|t| self.remote.show_ticket(t.clone())))
    }
    async fn find_created(
        &self,
        c: &Correlation,
        _known_ticket: Option<&str>,
    ) -> ConnectorResult<crate::ports::Lookup> {
        use crate::ports::Lookup;
        if self.search_only.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(Lookup::Unsure);
        }
        Ok(match self.find_by_correlation(c).await? {
            Some(t) => Lookup::Found(Box::new(t)),
            None => Lookup::Absent,
        })
    }
    async fn create(&self, t: &TicketCreate) -> ConnectorResult<TicketSnapshot> {
        *self.creates.lock().unwrap() += 1;
        let fault = self.create_faults.lock().unwrap().pop();
        if fault == Some(Fault::Refused) {
            return Err(ConnectorError::new(ErrorKind::Permanent, "fake", "refused"));
        }
        let at = self.remote.tick();
        let n = self.tickets.lock().unwrap().len() + 1;
        let ticket = TicketSnapshot {
            modified_by: Default::default(),
            version: None,
            key: format!("SEC-{n}"),
            id: n.to_string(),
            url: format!("https://tickets.example/SEC-{n}"),
            created: at,
            modified: at,
            attrs: t.attrs.clone(),
            labels: t.labels.clone(),
            correlation: Some(t.correlation.clone()),
            comments: vec![],
        };
        self.tickets
            .lock()
            .unwrap()
            .insert(ticket.key.clone(), ticket.clone());
        match fault {
            Some(Fault::CreatedButLost) => Err(ConnectorError::new(
                ErrorKind::Transient,
                "fake",
                "timed out",
            )),
            _ => Ok(self.remote.show_ticket(ticket)),
        }
    }
    async fn get(&self, key: &str) -> ConnectorResult<TicketSnapshot> {
        self.tickets
            .lock()
            .unwrap()
            .get(key)
            .map(|t| self.remote.show_ticket(t.clone()))
            .ok_or_else(|| ConnectorError::new(ErrorKind::NotFound, "fake", "no such ticket"))
    }
    async fn update(&self, key: &str, u: &TicketUpdate) -> ConnectorResult<TicketSnapshot> {
        if self.update_faults.lock().unwrap().pop().is_some() {
            return Err(ConnectorError::new(ErrorKind::Permanent, "fake", "refused"));
        }
        let at = self.remote.tick();
        let mut all = self.tickets.lock().unwrap();
        let t = all.get_mut(key).unwrap();
        for (k, v) in &u.set {
            match v {
                Some(v) => t.attrs.insert(k.clone(), v.clone()),
                None => t.attrs.remove(k),
            };
        }
        t.modified = at;
        Ok(self.remote.show_ticket(t.clone()))
    }
    async fn add_comment(&self, key: &str, text: &str) -> ConnectorResult<Comment> {
        let comment = Comment {
            id: self.remote.comment_id(),
            author: None,
            created: self.remote.tick(),
            text: text.into(),
        };
        let mut all = self.tickets.lock().unwrap();
        let t = all.get_mut(key).unwrap();
        t.comments.push(comment.clone());
        t.modified = comment.created;
        Ok(comment)
    }
}

pub(super) fn mapping() -> Mapping {
    let summary = Template::parse("{incident.title}", &["title"], false).unwrap();
    Mapping {
        file: PathBuf::from("test.toml"),
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
            FieldRule {
                name: "status".into(),
                incident: IncidentSide::Attr("status".into()),
                ticket: "status".into(),
                flow: Flow::Both,
                to_ticket: Some(ValueMap {
                    entries: vec![
                        ("active".into(), "new".into()),
                        ("resolved".into(), "done".into()),
                        ("redirected".into(), "done".into()),
                    ],
                    default: Some("new".into()),
                }),
                to_incident: Some(ValueMap {
                    entries: vec![
                        ("new".into(), "active".into()),
                        ("done".into(), "resolved".into()),
                    ],
                    default: None,
                }),
                conflict: None,
            },
        ],
        labels: vec![],
        skip_create_statuses: vec![],
        write_back: WriteBack {
            tags: vec![Template::parse("ticket:{ticket.key}", &[], true).unwrap()],
            comment: None,
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

use crate::mapping::FieldRule;

pub(super) struct World {
    pub(super) source: std::sync::Arc<FakeSource>,
    pub(super) tickets: std::sync::Arc<FakeTickets>,
    pub(super) store: SqliteStore,
    pub(super) clock: FakeClock,
    pub(super) rt: PairRuntime,
}

pub(super) fn world() -> World {
    world_with(mapping())
}

pub(super) fn world_with(mapping: Mapping) -> World {
    let remote = std::sync::Arc::new(Remote::default());
    let source = std::sync::Arc::new(FakeSource {
        remote: remote.clone(),
        ..FakeSource::default()
    });
    let tickets = std::sync::Arc::new(FakeTickets {
        remote,
        ..FakeTickets::default()
    });
    let rt = PairRuntime {
        pair: "defender->jira".into(),
        source_name: "defender".into(),
        correlation_scope: "tenant-1".into(),
        source: source.clone(),
        tickets: tickets.clone(),
        mapping: std::sync::Arc::new(mapping),
        policy: ConflictPolicy::NewestWins,
        since: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
        overlap: Duration::minutes(5),
        adopt_after: Duration::seconds(30),
    };
    World {
        source,
        tickets,
        store: SqliteStore::open_in_memory().unwrap(),
        clock: FakeClock::new(),
        rt,
    }
}

impl World {
    pub(super) async fn cycle(&self) -> CycleReport {
        run_cycle(&self.rt, &self.store, &self.clock, false)
            .await
            .unwrap()
    }
    pub(super) fn ledger_actions(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.store
            .for_each_ledger_entry(&Default::default(), &mut |e| {
                out.push(format!("{} {}", e.record.action, e.record.outcome.as_str()));
                Ok(())
            })
            .unwrap();
        out
    }
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_adopted_in_the_same_cycle_where_records_can_be_read() {
    let w = world();
    w.source.add("1", "active");
    w.tickets
        .create_faults
        .lock()
        .unwrap()
        .push(Fault::CreatedButLost);

    // The lookup reads the records themselves (a ServiceNow table): the end of
    // the cycle finds the ticket the lost answer made, without waiting.
    let first = w.cycle().await;
    assert_eq!(
        (first.tickets_created, first.tickets_adopted, first.failed),
        (0, 1, 0)
    );
    assert!(first.waiting.is_empty());
    assert_eq!(w.tickets.count(), 1, "no duplicate");
    assert_eq!(*w.tickets.creates.lock().unwrap(), 1);
    assert!(w.store.pending_intents().unwrap().is_empty());
    let link = w.store.link("defender->jira", "1").unwrap().unwrap();
    assert_eq!(link.ticket_key, "SEC-1");
    assert!(link.written_back);
    assert!(w.ledger_actions().contains(&"adopt_ticket ok".to_string()));
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_waits_out_a_lagging_search_then_is_adopted_never_duplicated()
 {
    let w = world();
    w.tickets
        .search_only
        .store(true, std::sync::atomic::Ordering::SeqCst);
    w.source.add("1", "active");
    w.tickets
        .create_faults
        .lock()
        .unwrap()
        .push(Fault::CreatedButLost);

    let first = w.cycle().await;
    assert_eq!((first.tickets_created, first.tickets_adopted), (0, 0));
    assert_eq!(
        first.waiting,
        vec![crate::engine::WaitingCreate {
            incident_id: "1".into(),
            ready_at: w.clock.now() + Duration::seconds(30),
        }],
        "the report says until when it waits"
    );
    assert_eq!(
        w.tickets.count(),
        1,
        "the ticket exists, the bridge does not know it yet"
    );
    assert_eq!(
        w.store.pending_intents().unwrap().len(),
        1,
        "the intent stays pending"
    );

    // Within the search index's lag the bridge waits instead of creating again.
    w.clock.advance(Duration::seconds(10));
    let waiting = w.cycle().await;
    assert_eq!(waiting.tickets_created + waiting.tickets_adopted, 0);
    assert_eq!(waiting.waiting.len(), 1);
    assert_eq!(*w.tickets.creates.lock().unwrap(), 1);

    w.clock.advance(Duration::seconds(30));
    let adopted = w.cycle().await;
    assert_eq!(adopted.tickets_adopted, 1);
    assert!(adopted.waiting.is_empty());
    assert_eq!(w.tickets.count(), 1, "no duplicate");
    assert_eq!(*w.tickets.creates.lock().unwrap(), 1);
    assert!(w.store.pending_intents().unwrap().is_empty());
    let link = w.store.link("defender->jira", "1").unwrap().unwrap();
    assert_eq!(link.ticket_key, "SEC-1");
    assert!(
        w.source.incidents.lock().unwrap()["1"]
            .tags
            .contains(&"ticket:SEC-1".to_string())
    );
    assert!(w.ledger_actions().contains(&"adopt_ticket ok".to_string()));
    assert!(w.store.verify_ledger().unwrap().is_intact());
}

#[tokio::test]
async fn a_refused_create_waits_in_the_dead_letters_while_the_pair_moves_on() {
    let w = world();
    w.source.add("1", "active");
    w.source.add("2", "active");
    w.tickets.create_faults.lock().unwrap().push(Fault::Refused);

    let first = w.cycle().await;
    assert_eq!((first.tickets_created, first.failed), (1, 1));
    let letters = w.store.dead_letters(Some("defender->jira"), None).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].incident_id.as_str(), letters[0].attempts),
        ("1", 1)
    );
    let mark = w
        .store
        .watermark("defender->jira", Side::Incidents)
        .unwrap()
        .unwrap();
    let failing = w.source.incidents.lock().unwrap()["1"].modified;
    assert!(
        mark > failing,
        "the watermark moved past the failing incident"
    );

    // Not retried before its delay, even when the incident changes meanwhile.
    w.source
        .incidents
        .lock()
        .unwrap()
        .get_mut("1")
        .unwrap()
        .modified = w.source.remote.tick();
    assert_eq!(w.cycle().await.tickets_created, 0);

    w.clock.advance(Duration::seconds(61));
    let retried = w.cycle().await;
    assert_eq!((retried.tickets_created, retried.recovered), (1, 1));
    assert_eq!(w.tickets.count(), 2);
    assert!(w.store.dead_letters(None, None).unwrap().is_empty());
    assert_eq!(w.cycle().await.writes(), 0, "then nothing is left to do");
}

#[tokio::test]
async fn a_failed_update_is_retried_from_fresh_reads_after_its_delay() {
    let w = world();
    w.source.add("1", "active");
    w.cycle().await;
    {
        let mut all = w.source.incidents.lock().unwrap();
        let i = all.get_mut("1").unwrap();
        i.attrs.insert("status".into(), "resolved".into());
        i.modified = w.source.remote.tick();
    }
    w.tickets.update_faults.lock().unwrap().push(Fault::Refused);

    let failed = w.cycle().await;
    assert_eq!((failed.tickets_updated, failed.failed), (0, 1));
    // The poll no longer brings the incident (the watermark moved past it); the
    // retry re-reads it once due.
    w.clock.advance(Duration::seconds(61));
    let retried = w.cycle().await;
    assert_eq!(
        (retried.tickets_updated, retried.recovered),
        (1, 1),
        "{retried:?}"
    );
    assert_eq!(
        w.tickets.tickets.lock().unwrap()["SEC-1"].attrs["status"],
        "done"
    );
    assert_eq!(w.cycle().await.writes(), 0);
}

#[tokio::test]
async fn a_persistent_failure_backs_off_longer_each_time() {
    let w = world();
    w.source.add("1", "active");
    for _ in 0..3 {
        w.tickets.create_faults.lock().unwrap().push(Fault::Refused);
    }
    w.cycle().await;
    w.clock.advance(Duration::seconds(61));
    w.cycle().await;
    let letter = &w.store.dead_letters(None, None).unwrap()[0];
    assert_eq!(letter.attempts, 2);
    assert_eq!(letter.next_attempt - w.clock.now(), Duration::minutes(2));
    w.clock.advance(Duration::seconds(61));
    w.cycle().await;
    assert_eq!(
        w.store.dead_letters(None, None).unwrap()[0].attempts,
        2,
        "not due yet"
    );
}

#[tokio::test]
async fn an_update_interrupted_by_a_crash_is_replanned_from_fresh_reads() {
    let w = world();
    w.source.add("1", "active");
    w.cycle().await;
    w.store
        .begin_intent(&Intent {
            known_ticket: None,
            pair: "defender->jira".into(),
            incident_id: "1".into(),
            kind: "update_ticket".into(),
            payload: "{}".into(),
            created: w.clock.now(),
        })
        .unwrap();
    w.cycle().await;
    assert!(w.store.pending_intents().unwrap().is_empty());
    assert!(
        w.ledger_actions()
            .contains(&"update_ticket skipped".to_string())
    );
}

#[tokio::test]
async fn a_dry_run_plans_without_writing_or_moving_watermarks() {
    let w = world();
    w.source.add("1", "active");
    let report = run_cycle(&w.rt, &w.store, &w.clock, true).await.unwrap();
    assert_eq!(report.planned.len(), 1);
    assert_eq!(w.tickets.count(), 0);
    assert_eq!(
        w.store
            .watermark("defender->jira", Side::Incidents)
            .unwrap(),
        None
    );
    assert!(w.ledger_actions().is_empty());
}

#[tokio::test]
async fn a_concurrent_change_makes_the_engine_re_read_and_re_plan() {
    let w = world();
    w.source.add("1", "active");
    w.cycle().await;
    {
        let mut tickets = w.tickets.tickets.lock().unwrap();
        let t = tickets.get_mut("SEC-1").unwrap();
        t.attrs.insert("status".into(), "done".into());
        t.modified = w.tickets.remote.tick();
    }
    *w.source.race_next_update.lock().unwrap() = true;

    let report = w.cycle().await;
    assert_eq!(report.incidents_updated, 1, "{report:?}");
    let incident = w.source.incidents.lock().unwrap()["1"].clone();
    assert_eq!(incident.attrs["status"], "resolved");
    assert_eq!(
        incident.attrs["title"], "Renamed by an analyst meanwhile",
        "the concurrent edit survives"
    );
    assert_eq!(
        w.tickets.tickets.lock().unwrap()["SEC-1"].attrs["summary"],
        "Renamed by an analyst meanwhile",
        "and is synced in the re-plan"
    );
    let actions = w.ledger_actions();
    assert!(
        actions.contains(&"update_incident skipped".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"update_incident ok".to_string()),
        "{actions:?}"
    );
    assert_eq!(w.cycle().await.writes(), 0);
}

#[tokio::test]
async fn two_rules_reading_one_ticket_attribute_do_not_echo_the_bridges_write() {
    // Like ServiceNow's close code, which gives both the classification and its reason.
    let map = |pairs: &[(&str, &str)]| {
        Some(ValueMap {
            entries: pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            default: None,
        })
    };
    let mut m = mapping();
    m.fields.push(FieldRule {
        name: "classification".into(),
        incident: IncidentSide::Attr("classification".into()),
        ticket: "close_code".into(),
        flow: Flow::Both,
        to_ticket: map(&[("FalsePositive", "Not a threat")]),
        to_incident: map(&[("Not a threat", "FalsePositive")]),
        conflict: None,
    });
    m.fields.push(FieldRule {
        name: "reason".into(),
        incident: IncidentSide::Attr("classification_reason".into()),
        ticket: "close_code".into(),
        flow: Flow::ToIncident,
        to_ticket: None,
        to_incident: map(&[("Not a threat", "IncorrectAlertLogic")]),
        conflict: None,
    });
    let w = world_with(m);
    w.source.add("1", "active");
    w.cycle().await;
    {
        let mut all = w.source.incidents.lock().unwrap();
        let i = all.get_mut("1").unwrap();
        i.attrs
            .insert("classification".into(), "FalsePositive".into());
        i.attrs
            .insert("classification_reason".into(), "InaccurateData".into());
        i.modified = w.source.remote.tick();
    }
    assert_eq!(w.cycle().await.tickets_updated, 1);
    assert_eq!(
        w.tickets.tickets.lock().unwrap()["SEC-1"].attrs["close_code"],
        "Not a threat"
    );

    // Later, an unrelated edit on the ticket: the close code is still the bridge's own.
    {
        let mut tickets = w.tickets.tickets.lock().unwrap();
        let t = tickets.get_mut("SEC-1").unwrap();
        t.attrs.insert("priority".into(), "High".into());
        t.modified = w.tickets.remote.tick();
    }
    let next = w.cycle().await;
    assert_eq!(next.writes(), 0, "{next:?}");
    let reason = w.source.incidents.lock().unwrap()["1"].attrs["classification_reason"].clone();
    assert_eq!(
        reason, "InaccurateData",
        "the analyst's reason is not overwritten by an echo"
    );
}

impl FakeSource {
    /// Defender merges `from` into `into`.
    fn redirect(&self, from: &str, into: &str) {
        let at = self.remote.tick();
        let mut all = self.incidents.lock().unwrap();
        let i = all.get_mut(from).unwrap();
        i.attrs.insert("status".into(), "redirected".into());
        i.redirect_to = Some(into.into());
        i.modified = at;
    }
}

impl World {
    pub(super) fn ticket(&self, key: &str) -> TicketSnapshot {
        self.tickets.tickets.lock().unwrap()[key].clone()
    }
    pub(super) fn key_of(&self, incident: &str) -> String {
        self.store
            .link("defender->jira", incident)
            .unwrap()
            .unwrap()
            .ticket_key
    }
}

#[tokio::test]
async fn a_merge_after_the_first_sync_closes_the_ticket_and_points_to_the_survivor() {
    let w = world();
    w.source.add("1", "active");
    w.source.add("2", "active");
    w.cycle().await;
    let (k1, k2) = (w.key_of("1"), w.key_of("2"));

    w.source.redirect("1", "2");
    let report = w.cycle().await;
    assert_eq!(report.merged, 1, "{report:?}");

    let closed = w.ticket(&k1);
    assert_eq!(closed.attrs["status"], "done");
    assert!(
        closed.comments.iter().any(|c| c.text.contains(&k2)),
        "{:?}",
        closed.comments
    );
    let survivor = w.ticket(&k2);
    assert!(
        survivor.comments.iter().any(|c| c.text.contains(&k1)),
        "{:?}",
        survivor.comments
    );
    let link = w.store.link("defender->jira", "1").unwrap().unwrap();
    assert_eq!(
        (link.state, link.merged_into.as_deref()),
        (LinkState::Merged, Some("2"))
    );

    // Later changes to the merged incident are not synced into its closed ticket.
    w.source
        .incidents
        .lock()
        .unwrap()
        .get_mut("1")
        .unwrap()
        .modified = w.source.remote.tick();
    assert_eq!(w.cycle().await.writes(), 0);
    assert_eq!(w.tickets.count(), 2, "no ticket was made for anything");
}

#[tokio::test]
async fn a_merge_seen_before_either_incident_was_synced_makes_one_ticket_for_the_survivor() {
    let w = world();
    w.source.add("3", "active");
    w.source.add("4", "active");
    w.source.redirect("3", "4");
    let report = w.cycle().await;
    assert_eq!(w.tickets.count(), 1, "{report:?}");
    assert!(w.store.link("defender->jira", "3").unwrap().is_none());
    assert!(w.store.link("defender->jira", "4").unwrap().is_some());
    assert!(w.ledger_actions().contains(&"merge ok".to_string()));
    assert_eq!(w.cycle().await.writes(), 0);
}

#[tokio::test]
async fn a_merge_chain_is_followed_to_the_surviving_incident() {
    let w = world();
    w.source.add("5", "active");
    w.source.add("6", "active");
    w.cycle().await;
    let (k5, k6) = (w.key_of("5"), w.key_of("6"));
    w.source.add("7", "active");
    w.source.redirect("5", "6");
    w.source.redirect("6", "7");

    w.cycle().await;
    let k7 = w.key_of("7");
    for k in [&k5, &k6] {
        let t = w.ticket(k);
        assert_eq!(t.attrs["status"], "done");
        assert!(
            t.comments.iter().any(|c| c.text.contains(&k7)),
            "{k} points at {k7}: {:?}",
            t.comments
        );
    }
    for id in ["5", "6"] {
        let link = w.store.link("defender->jira", id).unwrap().unwrap();
        assert_eq!(link.merged_into.as_deref(), Some("7"));
    }
    assert_eq!(w.tickets.count(), 3);
}

#[tokio::test]
async fn a_merge_chain_that_loops_is_recorded_not_followed_forever() {
    let w = world();
    w.source.add("8", "active");
    w.source.add("9", "active");
    w.cycle().await;
    w.source.redirect("8", "9");
    w.source.redirect("9", "8");
    w.cycle().await;
    let mut details = Vec::new();
    w.store
        .for_each_ledger_entry(&Default::default(), &mut |e| {
            if e.record.action == "merge" {
                details.push(e.record.detail.unwrap_or_default());
            }
            Ok(())
        })
        .unwrap();
    assert!(details.iter().any(|d| d.contains("loops")), "{details:?}");
}

impl FakeSource {
    pub(super) fn comment(&self, id: &str, author: &str, text: &str) {
        let at = self.remote.tick();
        let mut all = self.incidents.lock().unwrap();
        let i = all.get_mut(id).unwrap();
        i.comments.push(Comment {
            id: self.remote.comment_id(),
            author: Some(author.into()),
            created: at,
            text: text.into(),
        });
        i.modified = at;
    }
}

#[tokio::test]
async fn comments_cross_each_way_once_and_never_echo() {
    let w = world();
    w.source.add("1", "active");
    w.source.comment("1", "Ana Ruiz", "Triaged, escalating.");
    w.cycle().await;
    let key = w.key_of("1");
    let on_ticket = |w: &World| {
        w.ticket(&key)
            .comments
            .iter()
            .map(|c| c.text.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        on_ticket(&w).len(),
        1,
        "the existing comment came along with the new ticket"
    );
    assert!(
        on_ticket(&w)[0].contains("Ana Ruiz wrote in Microsoft Defender")
            && on_ticket(&w)[0].contains("Triaged, escalating.")
    );

    // An analyst answers in the ticket.
    {
        let mut tickets = w.tickets.tickets.lock().unwrap();
        let t = tickets.get_mut(&key).unwrap();
        t.comments.push(Comment {
            id: Some("c-9".into()),
            author: Some("Li Wei".into()),
            created: w.tickets.remote.tick(),
            text: "Isolated the host.".into(),
        });
        t.modified = w.tickets.remote.tick();
    }
    w.cycle().await;
    let incident_comments: Vec<String> = w.source.incidents.lock().unwrap()["1"]
        .comments
        .iter()
        .map(|c| c.text.clone())
        .collect();
    assert!(
        incident_comments
            .iter()
            .any(|c| c.contains("Li Wei wrote in Jira") && c.contains("Isolated the host.")),
        "{incident_comments:?}"
    );

    // Several more cycles: nothing is copied again, either way.
    for _ in 0..3 {
        assert_eq!(w.cycle().await.comments_copied, 0);
    }
    assert_eq!(on_ticket(&w).len(), 2, "{:?}", on_ticket(&w));
    let on_incident = w.source.incidents.lock().unwrap()["1"].comments.len();
    assert_eq!(on_incident, 2, "the original and the copy from the ticket");
}

#[tokio::test]
async fn a_comment_whose_record_was_lost_is_not_written_twice() {
    let w = world();
    w.source.add("1", "active");
    w.cycle().await;
    let key = w.key_of("1");
    w.source.comment("1", "Ana Ruiz", "Second look: benign.");
    w.cycle().await;
    assert_eq!(w.ticket(&key).comments.len(), 1);
    // As if the bridge died after writing the copy but before recording it.
    rusqlite_forget_comments(&w);
    w.source.comment("1", "Ana Ruiz", "nudge");
    w.cycle().await;
    let texts: Vec<String> = w
        .ticket(&key)
        .comments
        .iter()
        .map(|c| c.text.clone())
        .collect();
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.contains("Second look: benign."))
            .count(),
        1,
        "{texts:?}"
    );
}

fn rusqlite_forget_comments(w: &World) {
    w.store.forget_synced_comments_for_tests();
}

// Small helpers for analysts' edits, shared with the interleavings property.

impl Remote {
    /// Time passes on the remote systems without anything being written.
    pub(super) fn advance(&self, seconds: i64) {
        *self.now.lock().unwrap() += seconds;
    }
}

impl FakeSource {
    /// A new incident with exactly these attributes.
    pub(super) fn add_with(&self, id: &str, attrs: Attrs) {
        let at = self.remote.tick();
        self.incidents.lock().unwrap().insert(
            id.into(),
            IncidentSnapshot {
                modified_by: Default::default(),
                id: id.into(),
                display_id: id.into(),
                web_url: format!("https://security.example/incidents/{id}"),
                provider_url: None,
                created: at,
                modified: at,
                attrs,
                tags: vec![],
                redirect_to: None,
                comments: vec![],
                etag: None,
            },
        );
    }

    /// An analyst sets (or, with `None`, clears) one attribute of an incident.
    pub(super) fn set_attr(&self, id: &str, attr: &str, value: Option<&str>) {
        let at = self.remote.tick();
        let mut all = self.incidents.lock().unwrap();
        let i = all.get_mut(id).unwrap();
        match value {
            Some(v) => i.attrs.insert(attr.into(), v.into()),
            None => i.attrs.remove(attr),
        };
        i.modified = at;
    }
}

impl FakeTickets {
    /// An analyst sets (or, with `None`, clears) one attribute of a ticket.
    pub(super) fn set_attr(&self, key: &str, attr: &str, value: Option<&str>) {
        let at = self.remote.tick();
        let mut all = self.tickets.lock().unwrap();
        let t = all.get_mut(key).unwrap();
        match value {
            Some(v) => t.attrs.insert(attr.into(), v.into()),
            None => t.attrs.remove(attr),
        };
        t.modified = at;
    }

    /// An analyst comments on a ticket.
    pub(super) fn comment(&self, key: &str, author: &str, text: &str) {
        let at = self.remote.tick();
        let mut all = self.tickets.lock().unwrap();
        let t = all.get_mut(key).unwrap();
        t.comments.push(Comment {
            id: self.remote.comment_id(),
            author: Some(author.into()),
            created: at,
            text: text.into(),
        });
        t.modified = at;
    }
}

#[tokio::test]
async fn a_sweep_repairs_drift_and_leaves_dead_letters_merges_and_deleted_tickets_alone() {
    let w = world();
    for id in ["1", "2", "3", "4", "5"] {
        w.source.add(id, "active");
    }
    w.cycle().await;
    w.cycle().await;
    assert_eq!(w.tickets.count(), 5);
    let key = |id: &str| w.store.link(&w.rt.pair, id).unwrap().unwrap().ticket_key;

    // 1: resolved, but the change is stamped before the last sync (a replica
    //    running late): the poll cannot see it.
    {
        let mut incidents = w.source.incidents.lock().unwrap();
        let one = incidents.get_mut("1").unwrap();
        one.attrs.insert("status".into(), "resolved".into());
        one.modified -= Duration::seconds(1);
    }
    // 2: waiting in the dead letters; its retry is its own business.
    let now = w.clock.now();
    w.store
        .record_failure(&DeadLetter {
            pair: w.rt.pair.clone(),
            incident_id: "2".into(),
            ticket_key: Some(key("2")),
            action: "update_ticket".into(),
            last_error: "refused".into(),
            attempts: 1,
            first_failed: now,
            last_failed: now,
            next_attempt: now + Duration::minutes(10),
        })
        .unwrap();
    // 3: merged away: no longer synced.
    let mut merged = w.store.link(&w.rt.pair, "3").unwrap().unwrap();
    merged.state = LinkState::Merged;
    w.store.save_link(&merged, &[]).unwrap();

    let poll = w.cycle().await;
    assert_eq!(poll.writes(), 0, "the poll sees nothing new: {poll:?}");
    // 4: its ticket was deleted in the ticket system.
    w.tickets.tickets.lock().unwrap().remove(&key("4"));
    // 6: resolved and in step for over a week: left to the polls.
    w.source.add("6", "resolved");
    let mut settled = w.store.link(&w.rt.pair, "5").unwrap().unwrap();
    settled.incident_id = "6".into();
    settled.ticket_key = "SEC-6".into();
    settled.baseline.get_mut("status").unwrap().incident = Some("resolved".into());
    settled.updated = now - Duration::days(8);
    w.store.save_link(&settled, &[]).unwrap();
    assert_eq!(
        w.tickets.tickets.lock().unwrap()[&key("1")].attrs["status"],
        "new"
    );

    let sweep = run_sweep(&w.rt, &w.store, &w.clock, false).await.unwrap();
    assert!(sweep.sweep);
    assert_eq!(
        (
            sweep.links_checked,
            sweep.repaired,
            sweep.tickets_updated,
            sweep.failed
        ),
        (3, 1, 1, 0),
        "1, 4 and 5 are read; 2 waits, 3 is merged, 6 has settled: {sweep:?}"
    );
    assert_eq!(
        w.tickets.tickets.lock().unwrap()[&key("1")].attrs["status"],
        "done"
    );
    let actions = w.ledger_actions();
    let tail: Vec<&str> = actions
        .iter()
        .rev()
        .take(4)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        vec!["update_ticket ok", "repair ok", "sweep failed", "sweep ok"],
        "the repair and its entry, the deleted ticket, the totals"
    );
    let mut last = None;
    w.store
        .for_each_ledger_entry(&Default::default(), &mut |e| {
            last = e.record.detail;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        last.as_deref(),
        Some(
            "checked 3 open link(s); repaired 1; 1 closed for over 7 days left to the polls; 1 could not be read (deleted on one side)"
        )
    );

    // In step now: a second sweep repairs nothing.
    let again = run_sweep(&w.rt, &w.store, &w.clock, false).await.unwrap();
    assert_eq!((again.repaired, again.writes()), (0, 0), "{again:?}");
}
