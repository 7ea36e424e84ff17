//! The engine: the imperative shell around `reconcile`. One `run_cycle` polls a
//! pair's incident source and ticket system from their watermarks (with an overlap
//! window), streams the incidents page by page through `reconcile`, and carries the
//! plan out through the outbox: each remote write is committed as an intent first,
//! and its link baseline and ledger entry are committed together after it succeeded.
//! A failed action is recorded and isolated: its incident goes to the dead letters
//! and is retried on its own, from fresh reads, with a growing delay, while the
//! watermark moves on so one bad record never holds the pair back.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::Duration;
use serde::Serialize;

use crate::ledger::{LedgerRecord, Outcome};
use crate::mapping::{Mapping, MergePolicy};
use crate::model::{
    Agreed, Baseline, Comment, ConflictPolicy, Direction, FieldChange, Freshness, IncidentSnapshot,
    IncidentUpdate, Link, LinkState, TicketSnapshot, TicketUpdate, Timestamp, Version,
};
use crate::ports::{ConnectorError, ErrorKind, IncidentSource, Lookup, TicketSystem};
use crate::reconcile::{
    self, Action, Input, PairSpec, Plan, is_redirected as is_redirected_snapshot,
};
use crate::store::{DeadLetter, Intent, IntentId, Side, Store, StoreError};

/// Where the engine gets the time. The real one reads the system clock; tests pass
/// their own.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}

/// Everything needed to drive one `[[sync]]` pair.
#[derive(Clone)]
pub struct PairRuntime {
    /// `<source>-><ticket_system>`.
    pub pair: String,
    /// The `[[source]]` name.
    pub source_name: String,
    /// The source's tenant or workspace, which qualifies correlation ids.
    pub correlation_scope: String,
    pub source: Arc<dyn IncidentSource>,
    pub tickets: Arc<dyn TicketSystem>,
    pub mapping: Arc<Mapping>,
    pub policy: ConflictPolicy,
    /// Where the first poll starts.
    pub since: Timestamp,
    /// Each poll starts this far before the watermark (clock skew, lagging indexes).
    pub overlap: Duration,
    /// How long a create whose outcome is unknown waits for the ticket system's
    /// search index before the bridge concludes the ticket was not created.
    pub adopt_after: Duration,
}

impl std::fmt::Debug for PairRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairRuntime")
            .field("pair", &self.pair)
            .finish_non_exhaustive()
    }
}

/// What one cycle did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CycleReport {
    pub pair: String,
    pub incidents_seen: usize,
    pub tickets_seen: usize,
    pub tickets_created: usize,
    pub tickets_adopted: usize,
    pub tickets_updated: usize,
    pub incidents_updated: usize,
    pub write_backs: usize,
    pub conflicts: usize,
    /// Actions that failed; their incidents wait in the dead letters for a retry.
    pub failed: usize,
    /// Dead-lettered incidents that synced this time.
    pub recovered: usize,
    /// Incidents found merged into another, their tickets dealt with per the mapping.
    pub merged: usize,
    /// Comments carried across, either way.
    pub comments_copied: usize,
    /// This was a drift-repair sweep, not a polling cycle.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sweep: bool,
    /// A drift-repair sweep: the open links whose both sides it re-read.
    pub links_checked: usize,
    /// A drift-repair sweep: the links it found drifted and wrote to.
    pub repaired: usize,
    /// Creates whose answer was lost, waiting for the ticket system's search
    /// index to catch up before they are adopted or made again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<WaitingCreate>,
    /// Work this run could not finish, in words (counted in `failed` too).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unresolved: Vec<String>,
    /// In a dry run: what would have been done.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<Action>,
}

/// A create whose answer was lost, waiting for the ticket system's search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaitingCreate {
    pub incident_id: String,
    /// When the search can be trusted to show the ticket if it was made.
    pub ready_at: Timestamp,
}

impl CycleReport {
    pub fn writes(&self) -> usize {
        self.tickets_created
            + self.tickets_updated
            + self.incidents_updated
            + self.write_backs
            + self.merged
            + self.comments_copied
    }
}

/// A cycle that could not run: the store failed, or a poll failed (nothing after
/// the failed page was planned; the watermark did not move).
#[derive(Debug)]
pub enum EngineError {
    Store(StoreError),
    Poll(ConnectorError),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::Store(e) => write!(f, "{e}"),
            EngineError::Poll(e) => write!(f, "polling failed: {e}"),
        }
    }
}

impl std::error::Error for EngineError {}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        EngineError::Store(e)
    }
}

impl From<ConnectorError> for EngineError {
    fn from(e: ConnectorError) -> Self {
        EngineError::Poll(e)
    }
}

/// Runs one sync cycle of a pair.
pub async fn run_cycle(
    rt: &PairRuntime,
    store: &dyn Store,
    clock: &dyn Clock,
    dry_run: bool,
) -> Result<CycleReport, EngineError> {
    let mut cycle = Cycle::new(rt, store, clock, dry_run);
    cycle.recover().await?;
    // Incidents whose sync keeps failing wait out their delay; those due are
    // retried from fresh reads after the poll.
    let now = clock.now();
    let mut due = Vec::new();
    for letter in store.dead_letters(Some(&rt.pair), None)? {
        if letter.next_attempt <= now {
            due.push(letter.incident_id.clone());
            cycle.retry.insert(letter.incident_id);
        } else {
            cycle.held_back.insert(letter.incident_id);
        }
    }

    let incident_mark = store
        .watermark(&rt.pair, Side::Incidents)?
        .unwrap_or(rt.since);
    let ticket_mark = store
        .watermark(&rt.pair, Side::Tickets)?
        .unwrap_or(rt.since);
    let incident_from = (incident_mark - rt.overlap).max(rt.since);
    let ticket_from = (ticket_mark - rt.overlap).max(rt.since);

    // Changed tickets first, kept by key: usually few, and an incident page needs
    // its tickets' current state for a true three-way diff.
    let mut held: BTreeMap<String, TicketSnapshot> = BTreeMap::new();
    let mut max_ticket = ticket_mark;
    let mut page = rt.tickets.changed_since(ticket_from).await?;
    loop {
        for ticket in page.items {
            cycle.report.tickets_seen += 1;
            max_ticket = max_ticket.max(ticket.modified);
            let newer = held
                .get(&ticket.key)
                .is_none_or(|h| ticket.version().freshness(&h.version()) == Freshness::Newer);
            if newer && store.link_by_ticket(&rt.pair, &ticket.key)?.is_some() {
                held.insert(ticket.key.clone(), ticket);
            }
        }
        match page.next {
            Some(next) => page = rt.tickets.next_page(&next).await?,
            None => break,
        }
    }

    let mut max_incident = incident_mark;
    let mut page = rt.source.changed_since(incident_from).await?;
    loop {
        let incidents: Vec<IncidentSnapshot> = dedup_incidents(page.items)
            .into_iter()
            .filter(|i| !cycle.held_back.contains(&i.id))
            .collect();
        cycle.report.incidents_seen += incidents.len();
        for i in &incidents {
            max_incident = max_incident.max(i.modified);
        }
        let ids: Vec<String> = incidents.iter().map(|i| i.id.clone()).collect();
        cycle.touched.extend(ids.iter().cloned());
        let links = store.links_for_incidents(&rt.pair, &ids)?;
        let tickets: Vec<TicketSnapshot> = links
            .iter()
            .filter_map(|l| held.remove(&l.ticket_key))
            .collect();
        cycle
            .reconcile_and_apply(&incidents, &tickets, links)
            .await?;
        match page.next {
            Some(next) => page = rt.source.next_page(&next).await?,
            None => break,
        }
    }

    // Tickets whose incidents did not change.
    let tickets: Vec<TicketSnapshot> = held.into_values().collect();
    for chunk in tickets.chunks(200) {
        let mut links = Vec::with_capacity(chunk.len());
        for t in chunk {
            if let Some(link) = store.link_by_ticket(&rt.pair, &t.key)?
                && !cycle.held_back.contains(&link.incident_id)
            {
                // Only a ticket with something new counts as having had its look:
                // a due retry of its incident must still re-read it otherwise.
                if t.version()
                    .freshness(&link.ticket_seen())
                    .may_have_changed()
                {
                    cycle.touched.insert(link.incident_id.clone());
                }
                links.push(link);
            }
        }
        let chunk: Vec<TicketSnapshot> = chunk
            .iter()
            .filter(|t| links.iter().any(|l| l.ticket_key == t.key))
            .cloned()
            .collect();
        cycle.reconcile_and_apply(&[], &chunk, links).await?;
    }

    // Creates whose answer was lost this cycle: finished now where the ticket
    // system can tell at once.
    cycle.resolve_lost_creates().await?;

    // Due retries the poll did not bring: re-read both sides.
    let retry: Vec<String> = cycle
        .retry
        .iter()
        .filter(|id| !cycle.touched.contains(*id))
        .cloned()
        .collect();
    for incident_id in retry {
        cycle.touched.insert(incident_id.clone());
        cycle.resync(&incident_id).await?;
    }

    if !dry_run {
        for id in due {
            if cycle.touched.contains(&id) && !cycle.failed.contains(&id) {
                store.clear_failure(&rt.pair, &id)?;
                cycle.report.recovered += 1;
            }
        }
        // The watermark never waits for a failed incident: it is retried on its own.
        store.set_watermark(&rt.pair, Side::Incidents, max_incident.max(incident_mark))?;
        store.set_watermark(&rt.pair, Side::Tickets, max_ticket.max(ticket_mark))?;
    }
    Ok(cycle.report)
}

/// How long a failing incident waits before its next retry: a minute, doubling
/// with each failure in a row, at most an hour, never less than the remote's
/// `Retry-After`.
fn retry_delay(attempts: u32, error: &ConnectorError) -> Duration {
    let base = Duration::minutes(1 << attempts.saturating_sub(1).min(6)).min(Duration::hours(1));
    match error.kind {
        ErrorKind::RateLimited(Some(wait)) => {
            base.max(Duration::from_std(wait).unwrap_or(Duration::hours(1)))
        }
        _ => base,
    }
}

/// Pages can repeat an incident (overlap, a list that shifted while paging): keep
/// the newest version of each.
fn dedup_incidents(items: Vec<IncidentSnapshot>) -> Vec<IncidentSnapshot> {
    let mut by_id: HashMap<String, IncidentSnapshot> = HashMap::with_capacity(items.len());
    for i in items {
        match by_id.get(&i.id) {
            Some(seen) if i.version().freshness(&seen.version()) != Freshness::Newer => {}
            _ => {
                by_id.insert(i.id.clone(), i);
            }
        }
    }
    let mut out: Vec<IncidentSnapshot> = by_id.into_values().collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

struct Cycle<'a> {
    rt: &'a PairRuntime,
    store: &'a dyn Store,
    clock: &'a dyn Clock,
    dry_run: bool,
    report: CycleReport,
    /// Incidents not planned this cycle: a create still waiting to be adopted, or a
    /// dead letter whose retry is not due yet.
    held_back: HashSet<String>,
    /// Incidents retried this cycle (due dead letters, interrupted intents): re-read
    /// at the end of the cycle if the poll did not bring them, and their comments
    /// compared whatever the modification times say (a failed copy left none).
    retry: BTreeSet<String>,
    /// Incidents planned this cycle.
    touched: HashSet<String>,
    /// Incidents with a failed action this cycle.
    failed: HashSet<String>,
    /// A drift-repair sweep: snapshots are compared with the baseline whatever
    /// their modification times say, comments included.
    sweeping: bool,
    /// The incident as the source returned it after the bridge's last write to it.
    written_incident: Option<IncidentSnapshot>,
    /// Both sides of a link as `get` read them this cycle (a sweep, a retry), by
    /// incident, until a write to the link or its comment sync.
    fetched: HashMap<String, (IncidentSnapshot, TicketSnapshot)>,
    /// Creates whose answer was lost this cycle: resolved at its end.
    lost_creates: Vec<IntentId>,
    /// The pair's newest linked ticket key, once read (see `newest_ticket`).
    newest_ticket: Option<Option<String>>,
}

/// What is known, before a create, of a ticket already made for the incident.
enum Prior {
    /// Nothing: look it up by correlation id first.
    Search,
    Found(Box<TicketSnapshot>),
    /// The ticket system said for certain there is none.
    Absent,
}

impl<'a> Cycle<'a> {
    fn new(
        rt: &'a PairRuntime,
        store: &'a dyn Store,
        clock: &'a dyn Clock,
        dry_run: bool,
    ) -> Cycle<'a> {
        Cycle {
            rt,
            store,
            clock,
            dry_run,
            report: CycleReport {
                pair: rt.pair.clone(),
                ..CycleReport::default()
            },
            held_back: HashSet::new(),
            retry: BTreeSet::new(),
            touched: HashSet::new(),
            failed: HashSet::new(),
            sweeping: false,
            written_incident: None,
            fetched: HashMap::new(),
            lost_creates: Vec::new(),
            newest_ticket: None,
        }
    }

    fn spec(&self) -> PairSpec<'_> {
        PairSpec {
            pair: &self.rt.pair,
            source: &self.rt.source_name,
            scope: &self.rt.correlation_scope,
            mapping: &self.rt.mapping,
            policy: self.rt.policy,
        }
    }

    /// A ledger record for this pair, now; callers fill in what happened.
    fn record(
        &self,
        action: &str,
        direction: Option<Direction>,
        incident_id: &str,
        ticket_key: Option<&str>,
    ) -> LedgerRecord {
        LedgerRecord {
            time: self.clock.now(),
            pair: self.rt.pair.clone(),
            direction,
            action: action.to_string(),
            incident_id: incident_id.to_string(),
            ticket_key: ticket_key.map(str::to_string),
            changes: Vec::new(),
            outcome: Outcome::Ok,
            detail: None,
        }
    }

    /// Re-runs the intents a previous process left behind.
    async fn recover(&mut self) -> Result<(), EngineError> {
        if self.dry_run {
            return Ok(());
        }
        for (id, intent) in self.store.pending_intents()? {
            if intent.pair != self.rt.pair {
                continue;
            }
            let action: Option<Action> = serde_json::from_str(&intent.payload).ok();
            match action {
                Some(Action::CreateTicket {
                    incident,
                    create,
                    baseline,
                }) => {
                    // Whatever the incident did meanwhile is read afresh afterwards.
                    self.resolve_create(id, &intent, *incident, create, baseline)
                        .await?;
                }
                _ => {
                    // Updates are re-planned from fresh reads: the poll will see both
                    // sides as they are now and the baseline as it was.
                    let record = LedgerRecord { changes: Vec::new(), outcome: Outcome::Skipped, detail: Some("interrupted before its outcome was recorded; re-planned from fresh reads".into()), ..self.record(&intent.kind, None, &intent.incident_id, None) };
                    self.store.finish_intent(id, None, &[record])?;
                    // The watermark may have moved past it: read it afresh this cycle.
                    self.retry.insert(intent.incident_id);
                }
            }
        }
        Ok(())
    }

    /// A create whose outcome is unknown (a crash, a lost answer): adopts the
    /// ticket it made, or makes it, as soon as the ticket system can say which.
    /// A system that can only tell through a lagging search index holds it back
    /// until `adopt_after` has passed since the create began (the report says
    /// until when); a lookup that fails leaves it pending for the next cycle.
    async fn resolve_create(
        &mut self,
        id: IntentId,
        intent: &Intent,
        incident: IncidentSnapshot,
        create: crate::model::TicketCreate,
        baseline: Baseline,
    ) -> Result<Option<Link>, EngineError> {
        let lookup = self
            .rt
            .tickets
            .find_created(&create.correlation, intent.known_ticket.as_deref())
            .await;
        let ready_at = intent.created + self.rt.adopt_after;
        let prior = match lookup {
            Ok(Lookup::Found(ticket)) => Prior::Found(ticket),
            Ok(Lookup::Absent) => Prior::Absent,
            Ok(Lookup::Unsure) if self.clock.now() >= ready_at => Prior::Search,
            Ok(Lookup::Unsure) => {
                self.held_back.insert(incident.id.clone());
                self.report.waiting.push(WaitingCreate {
                    incident_id: incident.id,
                    ready_at,
                });
                return Ok(None);
            }
            Err(e) => {
                tracing::warn!(pair = %self.rt.pair, incident = %incident.id, error = %e, "cannot tell yet whether a create whose answer was lost made a ticket");
                self.held_back.insert(incident.id.clone());
                self.report.failed += 1;
                self.report.unresolved.push(format!(
                    "incident {}: a create whose answer was lost is still unresolved ({e})",
                    incident.id
                ));
                return Ok(None);
            }
        };
        self.retry.insert(incident.id.clone());
        self.create_ticket(Some(id), incident, create, baseline, prior)
            .await
    }

    /// Resolves the creates whose answer was lost earlier in this cycle, so that
    /// one `run --once` finishes them: a system whose lookup reads its records
    /// answers now; one that only has a lagging search is reported as waiting.
    async fn resolve_lost_creates(&mut self) -> Result<(), EngineError> {
        if self.lost_creates.is_empty() {
            return Ok(());
        }
        let lost = std::mem::take(&mut self.lost_creates);
        for (id, intent) in self.store.pending_intents()? {
            if !lost.contains(&id) {
                continue;
            }
            let Ok(Action::CreateTicket {
                incident,
                create,
                baseline,
            }) = serde_json::from_str::<Action>(&intent.payload)
            else {
                continue;
            };
            let link = self
                .resolve_create(id, &intent, *incident, create, baseline)
                .await?;
            let comments = self.rt.mapping.comments;
            if let Some(link) = link
                && (comments.to_ticket || comments.to_incident)
            {
                self.sync_comments(&link, false).await?;
            }
        }
        Ok(())
    }

    async fn reconcile_and_apply(
        &mut self,
        incidents: &[IncidentSnapshot],
        tickets: &[TicketSnapshot],
        links: Vec<Link>,
    ) -> Result<(), EngineError> {
        let input = Input {
            incidents,
            tickets,
            links: &links,
        };
        let plan: Plan = if self.sweeping {
            reconcile::reconcile_all(self.spec(), input)
        } else {
            reconcile::reconcile(self.spec(), input)
        };
        if self.dry_run {
            self.report.planned.extend(plan.actions);
            return Ok(());
        }
        // Links whose incident or ticket moved: their comments may have too.
        let comments = self.rt.mapping.comments;
        let mut moved = BTreeSet::new();
        if comments.to_ticket || comments.to_incident {
            for link in &links {
                let incident_moved = incidents.iter().any(|i| {
                    i.id == link.incident_id
                        && i.version().freshness(&link.incident_seen()) == Freshness::Newer
                });
                let ticket_moved = tickets.iter().any(|t| {
                    t.key == link.ticket_key
                        && t.version().freshness(&link.ticket_seen()) == Freshness::Newer
                });
                let retried = self.retry.contains(&link.incident_id);
                if incident_moved || ticket_moved || retried || self.sweeping {
                    moved.insert(link.incident_id.clone());
                }
            }
        }
        let known: HashSet<String> = links.iter().map(|l| l.incident_id.clone()).collect();
        let mut links: HashMap<String, Link> = links
            .into_iter()
            .map(|l| (l.incident_id.clone(), l))
            .collect();
        for action in plan.actions {
            // Whatever the plan writes, comments are read afresh afterwards.
            self.fetched.remove(action.incident_id());
            self.apply(action, &mut links, true).await?;
        }
        if comments.to_ticket || comments.to_incident {
            // New tickets take the incident's existing comments with them.
            let new: BTreeSet<String> = links
                .keys()
                .filter(|id| !known.contains(*id))
                .cloned()
                .collect();
            moved.extend(new.iter().cloned());
            for id in moved {
                if let Some(link) = links.get(&id).filter(|l| l.state == LinkState::Active) {
                    let link = link.clone();
                    self.sync_comments(&link, new.contains(&id)).await?;
                }
            }
        }
        Ok(())
    }

    /// Carries new comments across, each way the mapping allows, as
    /// `comments::plan_copies` says: each copy is written (or an earlier copy
    /// claimed), then the fingerprints and ledger entries of those made are
    /// recorded in one transaction; the first failed write ends the link's turn.
    /// A ticket made this cycle holds only what the bridge wrote: its comments are
    /// not read back (`new_ticket`).
    async fn sync_comments(&mut self, link: &Link, new_ticket: bool) -> Result<(), EngineError> {
        use crate::comments::{Claim, CopyRules, plan_copies, ticket_fingerprint};
        let (incident_id, key) = (link.incident_id.as_str(), link.ticket_key.as_str());
        let known = self.store.synced_comments(&self.rt.pair, incident_id)?;
        let (on_incident, on_ticket) = match self.read_comments(incident_id, key, new_ticket).await
        {
            Ok(sides) => sides,
            Err(e) => {
                self.report.failed += 1;
                return self.note_failure(incident_id, Some(key), "sync_comments", &e);
            }
        };
        let rules = CopyRules {
            sync: self.rt.mapping.comments,
            source_name: source_system_name(self.rt.mapping.source_kind),
            ticket_name: ticket_system_name(self.rt.mapping.ticket_kind),
            ticket_limit: comment_limit(self.rt.mapping.ticket_kind),
        };
        let mut fingerprints = Vec::new();
        let mut records = Vec::new();
        let mut failure = None;
        for copy in plan_copies(&rules, &known, &on_incident, &on_ticket) {
            let copy_fingerprint = match (copy.direction, copy.claim) {
                (_, Some(Claim::TicketComment { fingerprint })) => Some(fingerprint),
                (_, Some(Claim::IncidentCopy)) => None,
                (Direction::ToTicket, None) => {
                    match self.rt.tickets.add_comment(key, &copy.text).await {
                        Ok(written) => Some(ticket_fingerprint(&written)),
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                (Direction::ToIncident, None) => {
                    if let Err(e) = self.rt.source.add_comment(incident_id, &copy.text).await {
                        failure = Some(e);
                        break;
                    }
                    None
                }
            };
            fingerprints.push(copy.fingerprint);
            fingerprints.extend(copy_fingerprint);
            records.push(LedgerRecord {
                changes: vec![FieldChange {
                    field: "comment".into(),
                    old: None,
                    new: Some(copy.text),
                    conflict: None,
                }],
                ..self.record("copy_comment", Some(copy.direction), incident_id, Some(key))
            });
        }
        if !fingerprints.is_empty() {
            self.report.comments_copied += records.len();
            self.store.record_synced_comments(
                &self.rt.pair,
                incident_id,
                &fingerprints,
                &records,
            )?;
        }
        if let Some(e) = failure {
            self.report.failed += 1;
            return self.note_failure(incident_id, Some(key), "sync_comments", &e);
        }
        Ok(())
    }

    /// The comments on both sides of a link: as `get` just read them (a sweep, a
    /// retry) when their comments came with them, otherwise read now. A ticket
    /// made this cycle (`new_ticket`) holds none but the bridge's.
    async fn read_comments(
        &mut self,
        incident_id: &str,
        key: &str,
        new_ticket: bool,
    ) -> Result<(Vec<Comment>, Vec<Comment>), ConnectorError> {
        let fetched = self.fetched.remove(incident_id);
        let (got_incident, got_ticket) = match fetched {
            Some((i, t)) => (
                self.rt.source.get_has_comments().then_some(i.comments),
                self.rt.tickets.get_has_comments().then_some(t.comments),
            ),
            None => (None, None),
        };
        let on_incident = match got_incident {
            Some(c) => c,
            None => self.rt.source.comments(incident_id).await?,
        };
        let on_ticket = match (new_ticket, got_ticket) {
            (true, _) => Vec::new(),
            (false, Some(c)) => c,
            (false, None) => self.rt.tickets.comments(key).await?,
        };
        Ok((on_incident, on_ticket))
    }

    async fn begin(&mut self, action: &Action) -> Result<IntentId, StoreError> {
        let known_ticket = match action {
            Action::CreateTicket { .. } => self.newest_ticket()?,
            _ => None,
        };
        self.store.begin_intent(&Intent {
            pair: self.rt.pair.clone(),
            incident_id: action.incident_id().to_string(),
            kind: action.kind().to_string(),
            payload: serde_json::to_string(action).expect("actions serialize"),
            created: self.clock.now(),
            known_ticket,
        })
    }

    /// The ticket key of the pair's newest link, read once a cycle and kept up
    /// to date as the cycle links tickets.
    fn newest_ticket(&mut self) -> Result<Option<String>, StoreError> {
        if self.newest_ticket.is_none() {
            self.newest_ticket = Some(self.store.newest_ticket_key(&self.rt.pair)?);
        }
        Ok(self.newest_ticket.clone().flatten())
    }

    /// Carries out one action. A concurrent change on the remote side (a stale
    /// etag, a conflicting edit) makes the engine re-read both sides and re-plan
    /// the link once, when `replan` allows.
    async fn apply(
        &mut self,
        action: Action,
        links: &mut HashMap<String, Link>,
        replan: bool,
    ) -> Result<(), EngineError> {
        match action {
            Action::Merge {
                incident,
                target_id,
            } => self.merge(*incident, target_id, links).await?,
            Action::CreateTicket {
                incident,
                create,
                baseline,
            } => {
                // A merge earlier in this plan may have made its ticket already.
                if links.contains_key(&incident.id) {
                    return Ok(());
                }
                let intent = self
                    .begin(&Action::CreateTicket {
                        incident: incident.clone(),
                        create: create.clone(),
                        baseline: baseline.clone(),
                    })
                    .await?;
                if let Some(link) = self
                    .create_ticket(Some(intent), *incident, create, baseline, Prior::Search)
                    .await?
                {
                    links.insert(link.incident_id.clone(), link);
                }
            }
            action @ Action::WriteBack { .. } => {
                let Some(link) = links.get(action.incident_id()).cloned() else {
                    return Ok(());
                };
                if let Some(link) = self.write_back(link, action, None).await? {
                    links.insert(link.incident_id.clone(), link);
                }
            }
            action @ (Action::UpdateTicket { .. } | Action::UpdateIncident { .. }) => {
                let Some(link) = links.get(action.incident_id()).cloned() else {
                    return Ok(());
                };
                let to_incident = matches!(action, Action::UpdateIncident { .. });
                match self.update(link, action, replan).await? {
                    Applied::Done(mut link) => {
                        // What the bridge just wrote to the incident may change what
                        // the ticket shows (a template over a written attribute):
                        // that follows now, not when the incident next moves.
                        if let Some(incident) = self.written_incident.take().filter(|_| to_incident)
                        {
                            // A ticket value held on purpose (an analyst's own close
                            // notes) stays: the bridge's write moved what its template
                            // shows, not an analyst.
                            let mut rebased = false;
                            for rule in &self.rt.mapping.fields {
                                let render = rule.incident_value(&incident, &self.rt.source_name);
                                if let Some(agreed) = link.baseline.get_mut(&rule.name)
                                    && agreed.held
                                    && agreed.incident != render
                                {
                                    agreed.incident = render;
                                    rebased = true;
                                }
                            }
                            if rebased {
                                self.store.save_link(&link, &[])?;
                            }
                            for follow in reconcile::plan_to_ticket(self.spec(), &link, &incident) {
                                if let Applied::Done(l) =
                                    self.update(link.clone(), follow, false).await?
                                {
                                    link = l;
                                }
                            }
                        }
                        links.insert(link.incident_id.clone(), link);
                    }
                    Applied::Failed => {}
                    Applied::Conflict(link) => Box::pin(self.replan(link, links)).await?,
                }
            }
            Action::RecordBaseline {
                incident_id,
                ticket_key,
                changes,
                baseline,
                incident_seen,
                ticket_seen,
                note,
            } => {
                let Some(mut link) = links.get(&incident_id).cloned() else {
                    return Ok(());
                };
                link.baseline.extend(baseline);
                advance(&mut link, incident_seen, ticket_seen, self.clock.now());
                let records = if changes.is_empty() && note.is_empty() {
                    Vec::new()
                } else {
                    vec![LedgerRecord {
                        changes,
                        outcome: Outcome::Ok,
                        detail: (!note.is_empty()).then_some(note),
                        ..self.record("record_baseline", None, &incident_id, Some(&ticket_key))
                    }]
                };
                self.store.save_link(&link, &records)?;
                links.insert(incident_id, link);
            }
        }
        Ok(())
    }

    /// Creates (or adopts) the ticket of a new incident, then writes back.
    /// `prior` says what is already known of a ticket made for it.
    async fn create_ticket(
        &mut self,
        intent: Option<IntentId>,
        incident: IncidentSnapshot,
        create: crate::model::TicketCreate,
        baseline: Baseline,
        prior: Prior,
    ) -> Result<Option<Link>, EngineError> {
        let tickets = self.rt.tickets.clone();
        let found = match prior {
            Prior::Found(ticket) => Some(*ticket),
            Prior::Absent => None,
            Prior::Search => match tickets.find_by_correlation(&create.correlation).await {
                Ok(found) => found,
                Err(e) => return self.fail_create(intent, &incident, e).await,
            },
        };
        // Whether an adopted ticket was worked on before the bridge found it: then
        // its differences from what the create meant are someone's changes, to be
        // synced as such, not undone.
        let mut worked_on = false;
        let (ticket, adopted) = match found {
            Some(t) if t.modified > t.created => {
                worked_on = true;
                (t, true)
            }
            Some(t) => {
                // A ticket whose create answer was lost may not have been finished
                // (a Jira issue left in To Do before its transition), or was made
                // from an older look at the incident: bring it to what was meant
                // before recording the two sides as agreed.
                let mut finish = TicketUpdate::default();
                for (attr, wanted) in &create.attrs {
                    if t.attrs.get(attr) != Some(wanted) {
                        finish.set.insert(attr.clone(), Some(wanted.clone()));
                    }
                }
                if finish.is_empty() {
                    (t, true)
                } else {
                    match tickets.update(&t.key, &finish).await {
                        Ok(finished) => (finished, true),
                        Err(e) => return self.fail_create(intent, &incident, e).await,
                    }
                }
            }
            None => match tickets.create(&create).await {
                Ok(t) => (t, false),
                // The request may have reached the ticket system: whether the ticket
                // exists is unknown until its search index has caught up.
                Err(e) if e.kind == ErrorKind::Transient && intent.is_some() => {
                    let intent = intent.expect("checked above");
                    return self.create_outcome_unknown(intent, &incident, e);
                }
                Err(e) => return self.fail_create(intent, &incident, e).await,
            },
        };
        let now = self.clock.now();
        let mut baseline = baseline;
        if !worked_on {
            for rule in &self.rt.mapping.fields {
                let entry = baseline.entry(rule.name.clone()).or_default();
                entry.ticket = ticket.attrs.get(&rule.ticket).cloned();
            }
        }
        let link = Link {
            pair: self.rt.pair.clone(),
            incident_id: incident.id.clone(),
            incident_display_id: incident.display_id.clone(),
            incident_url: incident.web_url.clone(),
            ticket_key: ticket.key.clone(),
            ticket_id: ticket.id.clone(),
            ticket_url: ticket.url.clone(),
            state: LinkState::Active,
            baseline,
            written_back: false,
            incident_modified: incident.modified,
            incident_version: incident.etag.clone(),
            // A ticket worked on before adoption is read again as changed.
            ticket_modified: if worked_on {
                ticket.created
            } else {
                ticket.modified
            },
            ticket_version: if worked_on {
                None
            } else {
                ticket.version.clone()
            },
            created: now,
            updated: now,
            merged_into: None,
        };
        let changes = create
            .attrs
            .iter()
            .map(|(k, v)| FieldChange {
                field: k.clone(),
                old: None,
                new: Some(v.clone()),
                conflict: None,
            })
            .collect();
        let (action, detail) = if adopted {
            (
                "adopt_ticket",
                Some(format!(
                    "found {} by its correlation id; not created again",
                    ticket.key
                )),
            )
        } else {
            ("create_ticket", None)
        };
        let record = LedgerRecord {
            changes,
            outcome: Outcome::Ok,
            detail,
            ..self.record(
                action,
                Some(Direction::ToTicket),
                &incident.id,
                Some(&ticket.key),
            )
        };
        match intent {
            Some(id) => self.store.finish_intent(id, Some(&link), &[record])?,
            None => self.store.save_link(&link, &[record])?,
        }
        if adopted {
            self.report.tickets_adopted += 1;
        } else {
            self.report.tickets_created += 1;
        }
        self.newest_ticket = Some(Some(ticket.key.clone()));
        tracing::info!(pair = %self.rt.pair, incident = %incident.id, ticket = %ticket.key, adopted, "ticket linked");

        let write_back = reconcile::plan_write_back(self.spec(), &link, Some(&incident));
        match write_back {
            Some(action) => Ok(self
                .write_back(link.clone(), action, Some(&incident))
                .await?
                .or(Some(link))),
            None => Ok(Some(link)),
        }
    }

    /// Leaves the create's intent pending: the end of this cycle (or a later one,
    /// once the ticket system can tell) looks the ticket up and adopts it, or
    /// creates it then. Nothing after this incident's watermark is given up
    /// meanwhile.
    fn create_outcome_unknown(
        &mut self,
        intent: IntentId,
        incident: &IncidentSnapshot,
        error: ConnectorError,
    ) -> Result<Option<Link>, EngineError> {
        tracing::warn!(pair = %self.rt.pair, incident = %incident.id, error = %error, "ticket create outcome unknown; will look for it before trying again");
        self.lost_creates.push(intent);
        self.held_back.insert(incident.id.clone());
        let record = LedgerRecord {
            outcome: Outcome::Failed,
            detail: Some(format!(
                "{error}; the ticket may exist: it will be looked up by correlation id before any new attempt"
            )),
            ..self.record(
                "create_ticket",
                Some(Direction::ToTicket),
                &incident.id,
                None,
            )
        };
        self.store.append_ledger(&[record])?;
        Ok(None)
    }

    async fn fail_create(
        &mut self,
        intent: Option<IntentId>,
        incident: &IncidentSnapshot,
        error: ConnectorError,
    ) -> Result<Option<Link>, EngineError> {
        tracing::warn!(pair = %self.rt.pair, incident = %incident.id, error = %error, "ticket create failed");
        self.report.failed += 1;
        self.note_failure(&incident.id, None, "create_ticket", &error)?;
        let record = LedgerRecord {
            changes: Vec::new(),
            outcome: Outcome::Failed,
            detail: Some(error.to_string()),
            ..self.record(
                "create_ticket",
                Some(Direction::ToTicket),
                &incident.id,
                None,
            )
        };
        match intent {
            Some(id) => self.store.finish_intent(id, None, &[record])?,
            None => self.store.append_ledger(&[record])?,
        }
        Ok(None)
    }

    /// Adds the ticket's tags and comment to the incident. The comment is not added
    /// twice: the incident as returned by the tag update (or re-read) is checked first.
    async fn write_back(
        &mut self,
        mut link: Link,
        action: Action,
        incident: Option<&IncidentSnapshot>,
    ) -> Result<Option<Link>, EngineError> {
        let Action::WriteBack {
            incident_id,
            ticket_key,
            tags,
            comment,
        } = &action
        else {
            return Ok(None);
        };
        let intent = self.begin(&action).await?;
        let source = &self.rt.source;
        let result: Result<Vec<FieldChange>, ConnectorError> = async {
            let mut changes = Vec::new();
            let mut current = incident.cloned();
            if !tags.is_empty() {
                let update = IncidentUpdate {
                    set: BTreeMap::new(),
                    add_tags: tags.clone(),
                };
                current = Some(source.update(incident_id, &update).await?);
                changes.push(FieldChange {
                    field: "tags".into(),
                    old: None,
                    new: Some(tags.join(", ")),
                    conflict: None,
                });
            }
            if let Some(text) = comment {
                let current = match current {
                    Some(c) => c,
                    None => source.get(incident_id).await?,
                };
                if !current.comments.iter().any(|c| &c.text == text) {
                    source.add_comment(incident_id, text).await?;
                    changes.push(FieldChange {
                        field: "comment".into(),
                        old: None,
                        new: Some(text.clone()),
                        conflict: None,
                    });
                }
            }
            Ok(changes)
        }
        .await;
        match result {
            Ok(changes) => {
                link.written_back = true;
                link.updated = self.clock.now();
                let record = LedgerRecord {
                    changes,
                    outcome: Outcome::Ok,
                    detail: None,
                    ..self.record(
                        "write_back",
                        Some(Direction::ToIncident),
                        incident_id,
                        Some(ticket_key),
                    )
                };
                self.store.finish_intent(intent, Some(&link), &[record])?;
                self.report.write_backs += 1;
                Ok(Some(link))
            }
            Err(e) => {
                tracing::warn!(pair = %self.rt.pair, incident = %incident_id, error = %e, "write-back failed");
                self.report.failed += 1;
                self.note_failure(incident_id, Some(ticket_key), "write_back", &e)?;
                let record = LedgerRecord {
                    changes: Vec::new(),
                    outcome: Outcome::Failed,
                    detail: Some(e.to_string()),
                    ..self.record(
                        "write_back",
                        Some(Direction::ToIncident),
                        incident_id,
                        Some(ticket_key),
                    )
                };
                self.store.finish_intent(intent, None, &[record])?;
                Ok(None)
            }
        }
    }

    /// Updates one side and records the other side's new agreement.
    async fn update(
        &mut self,
        mut link: Link,
        action: Action,
        replan: bool,
    ) -> Result<Applied, EngineError> {
        self.written_incident = None;
        let intent = self.begin(&action).await?;
        let now = self.clock.now();
        let (direction, changes, result) = match &action {
            Action::UpdateTicket {
                ticket_key,
                update,
                changes,
                baseline,
                incident_seen,
                ..
            } => {
                let result = self.rt.tickets.update(ticket_key, update).await.map(|t| {
                    let mut baseline = baseline.clone();
                    let detail = read_back(
                        &self.rt.mapping,
                        &mut baseline,
                        &link.baseline,
                        |rule| update.set.contains_key(&rule.ticket),
                        |rule| t.attrs.get(&rule.ticket).cloned(),
                        |a| &mut a.ticket,
                    );
                    link.baseline.extend(baseline);
                    // The version the write produced is the bridge's own: what
                    // comes after it, even within the same second, is someone
                    // else's.
                    advance(&mut link, incident_seen.clone(), Some(t.version()), now);
                    detail
                });
                (Direction::ToTicket, changes.clone(), result)
            }
            Action::UpdateIncident {
                incident_id,
                update,
                changes,
                baseline,
                ticket_seen,
                ..
            } => {
                let result = self.rt.source.update(incident_id, update).await.map(|i| {
                    self.written_incident = Some(i.clone());
                    let mut baseline = baseline.clone();
                    let source = self.rt.source_name.as_str();
                    let detail = read_back(
                        &self.rt.mapping,
                        &mut baseline,
                        &link.baseline,
                        |rule| {
                            rule.incident_attr()
                                .is_some_and(|a| update.set.contains_key(a))
                        },
                        |rule| rule.incident_value(&i, source),
                        |a| &mut a.incident,
                    );
                    link.baseline.extend(baseline);
                    advance(&mut link, Some(i.version()), ticket_seen.clone(), now);
                    detail
                });
                (Direction::ToIncident, changes.clone(), result)
            }
            _ => return Ok(Applied::Failed),
        };
        let conflicts = changes.iter().filter(|c| c.conflict.is_some()).count();
        match result {
            Ok(detail) => {
                let record = LedgerRecord {
                    changes,
                    outcome: Outcome::Ok,
                    detail,
                    ..self.record(
                        action.kind(),
                        Some(direction),
                        &link.incident_id,
                        Some(&link.ticket_key),
                    )
                };
                self.store.finish_intent(intent, Some(&link), &[record])?;
                self.report.conflicts += conflicts;
                match direction {
                    Direction::ToTicket => self.report.tickets_updated += 1,
                    Direction::ToIncident => self.report.incidents_updated += 1,
                }
                Ok(Applied::Done(link))
            }
            Err(e) if e.kind == ErrorKind::Conflict && replan => {
                tracing::info!(pair = %self.rt.pair, incident = %link.incident_id, ticket = %link.ticket_key, error = %e, "concurrent change; re-reading both sides");
                let record = LedgerRecord {
                    changes,
                    outcome: Outcome::Skipped,
                    detail: Some(format!("{e}; re-read both sides and re-planned")),
                    ..self.record(
                        action.kind(),
                        Some(direction),
                        &link.incident_id,
                        Some(&link.ticket_key),
                    )
                };
                self.store.finish_intent(intent, None, &[record])?;
                Ok(Applied::Conflict(link))
            }
            Err(e) => {
                tracing::warn!(pair = %self.rt.pair, incident = %link.incident_id, ticket = %link.ticket_key, error = %e, "{} failed", action.kind());
                self.report.failed += 1;
                let (incident_id, ticket_key) = (link.incident_id.clone(), link.ticket_key.clone());
                self.note_failure(&incident_id, Some(&ticket_key), action.kind(), &e)?;
                let partly = self.partly_applied(&mut link, &action).await;
                let mut detail = e.to_string();
                if !partly.is_empty() {
                    detail.push_str(&format!(
                        "; partly applied, the ticket now holds {}",
                        partly.join(", ")
                    ));
                }
                let record = LedgerRecord {
                    changes,
                    outcome: Outcome::Failed,
                    detail: Some(detail),
                    ..self.record(
                        action.kind(),
                        Some(direction),
                        &link.incident_id,
                        Some(&link.ticket_key),
                    )
                };
                let saved = (!partly.is_empty()).then_some(&link);
                self.store.finish_intent(intent, saved, &[record])?;
                Ok(Applied::Failed)
            }
        }
    }

    /// A ticket update that failed may have got part of the way (a Jira status
    /// reached through several transitions, cut short): what the bridge itself
    /// wrote must not read as an analyst's change on the retry, or it could win a
    /// conflict against the incident it came from. Re-reads the ticket and takes
    /// the fields the update was writing that moved as the bridge's own, in the
    /// link's baseline. Returns what moved, for the ledger.
    async fn partly_applied(&self, link: &mut Link, action: &Action) -> Vec<String> {
        let Action::UpdateTicket { update, .. } = action else {
            return Vec::new();
        };
        let Ok(ticket) = self.rt.tickets.get(&link.ticket_key).await else {
            return Vec::new();
        };
        let mut moved = Vec::new();
        for rule in &self.rt.mapping.fields {
            if !update.set.contains_key(&rule.ticket) {
                continue;
            }
            let now = ticket.attrs.get(&rule.ticket).cloned();
            if let Some(agreed) = link.baseline.get_mut(&rule.name)
                && agreed.ticket != now
            {
                moved.push(format!(
                    "{} = {}",
                    rule.ticket,
                    now.as_deref().unwrap_or("(empty)")
                ));
                agreed.ticket = now;
            }
        }
        moved
    }

    /// Sets a failing incident aside: counted in the dead letters, retried after a
    /// delay that grows with each failure in a row.
    fn note_failure(
        &mut self,
        incident_id: &str,
        ticket_key: Option<&str>,
        action: &str,
        error: &ConnectorError,
    ) -> Result<(), EngineError> {
        self.failed.insert(incident_id.to_string());
        let now = self.clock.now();
        let letter = DeadLetter {
            pair: self.rt.pair.clone(),
            incident_id: incident_id.to_string(),
            ticket_key: ticket_key.map(str::to_string),
            action: action.to_string(),
            last_error: error.to_string(),
            attempts: 1,
            first_failed: now,
            last_failed: now,
            next_attempt: now + retry_delay(1, error),
        };
        let stored = self.store.record_failure(&letter)?;
        if stored.attempts > 1 {
            let at = now + retry_delay(stored.attempts, error);
            self.store.schedule_retry(&self.rt.pair, incident_id, at)?;
        }
        Ok(())
    }

    /// Re-reads an incident (and its ticket) and reconciles them.
    async fn resync(&mut self, incident_id: &str) -> Result<(), EngineError> {
        let incident = match self.rt.source.get(incident_id).await {
            Ok(i) => i,
            Err(e) => {
                self.report.failed += 1;
                return self.note_failure(incident_id, None, "re-read", &e);
            }
        };
        let link = self.store.link(&self.rt.pair, incident_id)?;
        let mut tickets = Vec::new();
        if let Some(l) = &link {
            match self.rt.tickets.get(&l.ticket_key).await {
                Ok(t) => tickets.push(t),
                Err(e) => {
                    self.report.failed += 1;
                    return self.note_failure(incident_id, Some(&l.ticket_key), "re-read", &e);
                }
            }
        }
        if let Some(ticket) = tickets.first() {
            self.fetched
                .insert(incident_id.to_string(), (incident.clone(), ticket.clone()));
        }
        let links: Vec<Link> = link.into_iter().collect();
        self.reconcile_and_apply(std::slice::from_ref(&incident), &tickets, links)
            .await
    }

    /// A merged ("redirected") incident: follows the chain to the surviving incident
    /// (bounded; a loop or a dangling end is recorded, not followed), makes sure the
    /// survivor has a ticket, then applies the mapping's merge policy to the merged
    /// incident's ticket and marks its link merged, so it is no longer synced.
    async fn merge(
        &mut self,
        source: IncidentSnapshot,
        target_id: Option<String>,
        links: &mut HashMap<String, Link>,
    ) -> Result<(), EngineError> {
        const MAX_CHAIN: usize = 8;
        let pair = self.rt.pair.clone();
        let mut survivor: Option<IncidentSnapshot> = None;
        let mut problem: Option<String> = None;
        // A listing may carry a merged incident whose target it could not look up:
        // read it once on its own, where a failure is this incident's alone and
        // sends it to the dead letters, before concluding the target is unknown.
        let target_id = match target_id {
            Some(id) => Some(id),
            None => match self.rt.source.get(&source.id).await {
                Ok(fresh) => fresh.redirect_to,
                Err(e) => {
                    self.report.failed += 1;
                    return self.note_failure(&source.id, None, "merge", &e);
                }
            },
        };
        match target_id {
            None => {
                problem = Some(
                    "the source closed it as merged without naming the incident it was merged into"
                        .into(),
                );
            }
            Some(first) => {
                let mut chain = vec![source.id.clone()];
                let mut next = first;
                loop {
                    if chain.contains(&next) {
                        chain.push(next);
                        problem = Some(format!("the merge chain {} loops", chain.join(" → ")));
                        break;
                    }
                    if chain.len() > MAX_CHAIN {
                        problem = Some(format!(
                            "the merge chain {} is longer than {MAX_CHAIN}",
                            chain.join(" → ")
                        ));
                        break;
                    }
                    match self.rt.source.get(&next).await {
                        Ok(snapshot) => {
                            chain.push(next.clone());
                            match snapshot.redirect_to.clone() {
                                Some(further) if is_redirected_snapshot(&snapshot) => {
                                    next = further
                                }
                                _ => {
                                    survivor = Some(snapshot);
                                    break;
                                }
                            }
                        }
                        Err(e) if e.kind == ErrorKind::NotFound => {
                            problem = Some(format!(
                                "the merge chain {} → {next} ends at an incident that does not exist",
                                chain.join(" → ")
                            ));
                            break;
                        }
                        Err(e) => {
                            self.report.failed += 1;
                            return self.note_failure(&source.id, None, "merge", &e);
                        }
                    }
                }
            }
        }

        // The survivor needs a ticket, whichever order the bridge saw things in.
        let mut target_link = None;
        if let Some(survivor) = &survivor {
            target_link = match links.get(&survivor.id).cloned() {
                Some(l) => Some(l),
                None => self.store.link(&pair, &survivor.id)?,
            };
            if target_link.is_none()
                && let Some(Action::CreateTicket {
                    incident,
                    create,
                    baseline,
                }) = reconcile::plan_create(self.spec(), survivor)
            {
                let action = Action::CreateTicket {
                    incident,
                    create,
                    baseline,
                };
                let intent = self.begin(&action).await?;
                let Action::CreateTicket {
                    incident,
                    create,
                    baseline,
                } = action
                else {
                    unreachable!()
                };
                target_link = self
                    .create_ticket(Some(intent), *incident, create, baseline, Prior::Search)
                    .await?;
            }
            if let Some(l) = &target_link {
                links.insert(l.incident_id.clone(), l.clone());
            }
        }
        let merged_into = survivor.as_ref().map(|s| s.id.clone());
        let where_to = match (&survivor, &target_link) {
            (_, Some(t)) => format!(
                "incident {} (ticket {}: {})",
                t.incident_display_id, t.ticket_key, t.ticket_url
            ),
            (Some(s), None) => format!("incident {} ({})", s.display_id, s.web_url),
            (None, None) => "another incident".to_string(),
        };

        let source_link = match links.get(&source.id).cloned() {
            Some(l) => Some(l),
            None => self.store.link(&pair, &source.id)?,
        };
        let Some(mut source_link) = source_link else {
            // Merged before it ever had a ticket: nothing to close, and it never gets one.
            let record = LedgerRecord {
                outcome: if problem.is_some() {
                    Outcome::Failed
                } else {
                    Outcome::Ok
                },
                detail: Some(match &problem {
                    Some(p) => format!("merged before it had a ticket; {p}"),
                    None => format!(
                        "merged into {where_to} before it had a ticket; no ticket is made for it"
                    ),
                }),
                ..self.record("merge", None, &source.id, None)
            };
            // The poll's overlap window shows it again: say it once, and again
            // only if what there is to say changed.
            if self.last_ledger_detail(&source.id, "merge")? != record.detail {
                self.store.append_ledger(&[record])?;
            }
            return Ok(());
        };
        if source_link.state == LinkState::Merged {
            return Ok(());
        }

        let policy = self.rt.mapping.merge;
        let intent = self
            .begin(&Action::Merge {
                incident: Box::new(source.clone()),
                target_id: merged_into.clone(),
            })
            .await?;
        let mut changes = vec![FieldChange {
            field: "link".into(),
            old: Some("active".into()),
            new: Some(format!(
                "merged into {}",
                merged_into.as_deref().unwrap_or("?")
            )),
            conflict: None,
        }];
        let mut failure = None;
        if policy == MergePolicy::CloseAsDuplicate {
            for action in reconcile::plan_close(self.spec(), &source_link, &source) {
                match self.update(source_link.clone(), action, false).await? {
                    Applied::Done(link) => source_link = link,
                    Applied::Failed | Applied::Conflict(_) => {
                        failure = Some("closing its ticket failed".to_string())
                    }
                }
            }
        }
        if policy != MergePolicy::KeepOpen && failure.is_none() {
            let label = &source.display_id;
            let to_source = format!(
                "[itsm-bridge] Incident {label} was merged into {where_to}. Work continues there; this ticket is no longer synced."
            );
            if let Err(e) = self.comment_once(&source_link.ticket_key, &to_source).await {
                failure = Some(e.to_string());
            } else {
                changes.push(FieldChange {
                    field: "comment".into(),
                    old: None,
                    new: Some(to_source),
                    conflict: None,
                });
            }
            if let Some(target) = &target_link {
                let to_target = format!(
                    "[itsm-bridge] This incident absorbed incident {label} (ticket {}: {}).",
                    source_link.ticket_key, source_link.ticket_url
                );
                match self.comment_once(&target.ticket_key, &to_target).await {
                    Err(e) => failure = Some(e.to_string()),
                    Ok(()) => changes.push(FieldChange {
                        field: "target_comment".into(),
                        old: None,
                        new: Some(to_target),
                        conflict: None,
                    }),
                }
            }
        }
        if self.rt.mapping.raise_priority
            && policy != MergePolicy::KeepOpen
            && failure.is_none()
            && let (Some(survivor), Some(target)) = (&survivor, &target_link)
        {
            match self
                .raise_priority(&source, survivor, target.clone())
                .await?
            {
                Ok(Some((raised, link))) => {
                    changes.extend(raised);
                    links.insert(link.incident_id.clone(), link);
                }
                Ok(None) => {}
                Err(e) => failure = Some(e),
            }
        }
        if let Some(error) = failure {
            self.report.failed += 1;
            let record = LedgerRecord {
                changes,
                outcome: Outcome::Failed,
                detail: Some(error.clone()),
                ..self.record(
                    "merge",
                    Some(Direction::ToTicket),
                    &source.id,
                    Some(&source_link.ticket_key),
                )
            };
            self.store.finish_intent(intent, None, &[record])?;
            let e = ConnectorError::new(ErrorKind::Transient, self.rt.pair.clone(), error);
            return self.note_failure(&source.id, Some(&source_link.ticket_key), "merge", &e);
        }
        source_link.state = LinkState::Merged;
        source_link.merged_into = merged_into;
        source_link.saw_incident(source.version());
        source_link.updated = self.clock.now();
        let record = LedgerRecord {
            changes,
            outcome: Outcome::Ok,
            detail: Some(match &problem {
                Some(p) => format!("policy {}; {p}", policy.as_str()),
                None => format!("policy {}; merged into {where_to}", policy.as_str()),
            }),
            ..self.record(
                "merge",
                Some(Direction::ToTicket),
                &source.id,
                Some(&source_link.ticket_key),
            )
        };
        self.store
            .finish_intent(intent, Some(&source_link), &[record])?;
        self.report.merged += 1;
        links.insert(source_link.incident_id.clone(), source_link);
        Ok(())
    }

    /// `[merge] raise_priority`: when the merged incident was more severe than the
    /// survivor, the survivor's ticket takes the merged one's priority. The raised
    /// value is held (see `Agreed::held`): it stays until the survivor's own
    /// severity changes. `Err` says why the raise failed.
    async fn raise_priority(
        &mut self,
        merged: &IncidentSnapshot,
        survivor: &IncidentSnapshot,
        target: Link,
    ) -> Result<Result<Option<(Vec<FieldChange>, Link)>, String>, EngineError> {
        let source = self.rt.source_name.as_str();
        let rank = |v: &Option<String>| v.as_deref().and_then(crate::vocab::severity_rank);
        let mut update = TicketUpdate::default();
        let mut changes = Vec::new();
        let mut baseline = Baseline::new();
        for rule in self
            .rt
            .mapping
            .fields
            .iter()
            .filter(|r| r.flow.to_ticket() && r.incident_attr() == Some("severity"))
        {
            let theirs = rule.incident_value(merged, source);
            let ours = rule.incident_value(survivor, source);
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
            return Ok(Ok(None));
        }
        let action = Action::UpdateTicket {
            incident_id: target.incident_id.clone(),
            ticket_key: target.ticket_key.clone(),
            update,
            changes: changes.clone(),
            baseline,
            incident_seen: None,
            ticket_seen: None,
        };
        let key = target.ticket_key.clone();
        Ok(match self.update(target, action, false).await? {
            Applied::Done(link) => {
                for c in &mut changes {
                    c.field = format!("target {} ({key})", c.field);
                }
                Ok(Some((changes, link)))
            }
            Applied::Failed | Applied::Conflict(_) => {
                Err(format!("raising the priority of {key} failed"))
            }
        })
    }

    /// The detail of the newest ledger entry of this pair with this action for the
    /// incident (read through the ledger's incident index).
    fn last_ledger_detail(
        &self,
        incident_id: &str,
        action: &str,
    ) -> Result<Option<String>, EngineError> {
        let filter = crate::ledger::LedgerFilter {
            pair: Some(self.rt.pair.clone()),
            incident_id: Some(incident_id.to_string()),
            ..Default::default()
        };
        let mut last = None;
        self.store.for_each_ledger_entry(&filter, &mut |e| {
            if e.record.action == action {
                last = e.record.detail;
            }
            Ok(())
        })?;
        Ok(last)
    }

    /// Adds a comment to a ticket unless the ticket already carries that exact text
    /// (a retried merge must not say it twice).
    async fn comment_once(&self, key: &str, text: &str) -> Result<(), ConnectorError> {
        let ticket = self.rt.tickets.get(key).await?;
        if ticket.comments.iter().any(|c| c.text.trim() == text.trim()) {
            return Ok(());
        }
        self.rt.tickets.add_comment(key, text).await.map(|_| ())
    }

    /// Re-reads both sides of a link and carries out what a fresh plan says, once.
    async fn replan(
        &mut self,
        link: Link,
        links: &mut HashMap<String, Link>,
    ) -> Result<(), EngineError> {
        let incident = self.rt.source.get(&link.incident_id).await;
        let ticket = self.rt.tickets.get(&link.ticket_key).await;
        let (incident, ticket) = match (incident, ticket) {
            (Ok(i), Ok(t)) => (i, t),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(pair = %self.rt.pair, incident = %link.incident_id, error = %e, "re-read failed");
                self.report.failed += 1;
                self.note_failure(&link.incident_id, Some(&link.ticket_key), "re-read", &e)?;
                return Ok(());
            }
        };
        let plan = reconcile::reconcile(
            self.spec(),
            Input {
                incidents: std::slice::from_ref(&incident),
                tickets: std::slice::from_ref(&ticket),
                links: std::slice::from_ref(&link),
            },
        );
        for action in plan.actions {
            self.apply(action, links, false).await?;
        }
        Ok(())
    }
}

/// How people call the systems, in copied comments.
fn source_system_name(kind: crate::vocab::SourceKind) -> &'static str {
    match kind {
        crate::vocab::SourceKind::Graph => "Microsoft Defender",
        crate::vocab::SourceKind::Sentinel => "Microsoft Sentinel",
    }
}

/// What people call a kind of ticket system, in messages.
pub fn ticket_system_name(kind: crate::vocab::TicketKind) -> &'static str {
    match kind {
        crate::vocab::TicketKind::Jira => "Jira",
        crate::vocab::TicketKind::Servicenow => "ServiceNow",
        crate::vocab::TicketKind::Generic => "the helpdesk",
    }
}

/// The longest comment a ticket system takes (Jira allows 32,767 characters; a
/// ServiceNow journal entry is kept well under its column size).
fn comment_limit(kind: crate::vocab::TicketKind) -> usize {
    match kind {
        crate::vocab::TicketKind::Jira => 32_000,
        _ => 4_000,
    }
}

/// How an update ended.
enum Applied {
    Done(Link),
    Failed,
    /// The remote side changed concurrently: nothing was written.
    Conflict(Link),
}

/// Replaces the written side of each baseline entry with what the remote system
/// holds after the write, and says where that differs from what was asked.
///
/// Rules the write did not ask about but whose attribute it wrote (two rules can
/// read one attribute: a ServiceNow close code gives both the classification and
/// its reason) get their written side refreshed too; otherwise the next poll
/// would take the bridge's own write for someone else's change and echo it.
fn read_back(
    mapping: &Mapping,
    baseline: &mut Baseline,
    link_baseline: &Baseline,
    wrote: impl Fn(&crate::mapping::FieldRule) -> bool,
    observed: impl Fn(&crate::mapping::FieldRule) -> Option<String>,
    side: impl Fn(&mut crate::model::Agreed) -> &mut Option<String>,
) -> Option<String> {
    let mut kept = Vec::new();
    for rule in &mapping.fields {
        match baseline.get_mut(&rule.name) {
            Some(agreed) => {
                let now = observed(rule);
                let slot = side(agreed);
                if *slot != now {
                    kept.push(format!(
                        "{} stayed {} (asked {})",
                        rule.name,
                        crate::ledger::plain_value(now.as_deref()),
                        crate::ledger::plain_value(slot.as_deref())
                    ));
                    *slot = now;
                }
            }
            None if wrote(rule) => {
                let mut agreed = link_baseline.get(&rule.name).cloned().unwrap_or_default();
                *side(&mut agreed) = observed(rule);
                baseline.insert(rule.name.clone(), agreed);
            }
            None => {}
        }
    }
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// Remembers the versions of both sides the bridge has now synced from (the
/// later of what the link knew and what was read or written).
fn advance(link: &mut Link, incident: Option<Version>, ticket: Option<Version>, now: Timestamp) {
    if let Some(v) = incident {
        link.saw_incident(v);
    }
    if let Some(v) = ticket {
        link.saw_ticket(v);
    }
    link.updated = now;
}

mod sweep;
pub use sweep::run_sweep;

#[cfg(test)]
mod interleavings;
#[cfg(test)]
mod tests;
