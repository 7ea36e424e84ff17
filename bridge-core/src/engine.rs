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
use tracing::Instrument;

use crate::ledger::{LedgerRecord, Outcome};
use crate::mapping::Mapping;
use crate::model::{
    Baseline, Comment, ConflictPolicy, Direction, FieldChange, Freshness, IncidentSnapshot,
    IncidentUpdate, Link, LinkState, TicketSnapshot, TicketUpdate, Timestamp, Version,
};
use crate::ports::{ConnectorError, ErrorKind, IncidentSource, Lookup, TicketSystem};
use crate::reconcile::{self, Action, Input, PairSpec, Plan};
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
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("polling failed: {0}")]
    Poll(#[from] ConnectorError),
}

/// Runs one sync cycle of a pair.
/// Its logs are in a `cycle` span that names the pair.
pub async fn run_cycle(
    rt: &PairRuntime,
    store: &dyn Store,
    clock: &dyn Clock,
    dry_run: bool,
) -> Result<CycleReport, EngineError> {
    let span = tracing::info_span!("cycle", pair = %rt.pair);
    let result = cycle(rt, store, clock, dry_run).instrument(span).await;
    progress::cycle_ended(&rt.pair);
    result
}

async fn cycle(
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
    let (mut held, max_ticket) = cycle.poll_tickets(ticket_from, ticket_mark).await?;
    let max_incident = cycle
        .poll_incidents(incident_from, incident_mark, &mut held)
        .await?;
    // Tickets whose incidents did not change.
    cycle
        .reconcile_tickets(held.into_values().collect())
        .await?;

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

impl Cycle<'_> {
    /// The changed tickets of linked incidents since `from`, the newest version of
    /// each by key, and the newest modification time seen (at least `mark`).
    async fn poll_tickets(
        &mut self,
        from: Timestamp,
        mark: Timestamp,
    ) -> Result<(BTreeMap<String, TicketSnapshot>, Timestamp), EngineError> {
        let (rt, store) = (self.rt, self.store);
        let mut held: BTreeMap<String, TicketSnapshot> = BTreeMap::new();
        let mut max_ticket = mark;
        let mut page = rt.tickets.changed_since(from).await?;
        loop {
            for ticket in page.items {
                self.report.tickets_seen += 1;
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
        Ok((held, max_ticket))
    }

    /// Streams the changed incidents since `from` page by page through
    /// `reconcile`, each page with the held tickets of its links (taken out of
    /// `held`). Returns the newest modification time seen (at least `mark`).
    async fn poll_incidents(
        &mut self,
        from: Timestamp,
        mark: Timestamp,
        held: &mut BTreeMap<String, TicketSnapshot>,
    ) -> Result<Timestamp, EngineError> {
        let (rt, store) = (self.rt, self.store);
        let mut max_incident = mark;
        let mut page = rt.source.changed_since(from).await?;
        loop {
            let incidents: Vec<IncidentSnapshot> = dedup_incidents(page.items)
                .into_iter()
                .filter(|i| !self.held_back.contains(&i.id))
                .collect();
            self.report.incidents_seen += incidents.len();
            for i in &incidents {
                max_incident = max_incident.max(i.modified);
            }
            let ids: Vec<String> = incidents.iter().map(|i| i.id.clone()).collect();
            self.touched.extend(ids.iter().cloned());
            let links = store.links_for_incidents(&rt.pair, &ids)?;
            let tickets: Vec<TicketSnapshot> = links
                .iter()
                .filter_map(|l| held.remove(&l.ticket_key))
                .collect();
            self.reconcile_and_apply(&incidents, &tickets, links)
                .await?;
            if !self.dry_run {
                store.save_incidents_seen(&rt.pair, &incidents)?;
            }
            match page.next {
                Some(next) => page = rt.source.next_page(&next).await?,
                None => break,
            }
        }
        Ok(max_incident)
    }

    /// Reconciles changed tickets whose incidents did not change, in chunks.
    async fn reconcile_tickets(&mut self, tickets: Vec<TicketSnapshot>) -> Result<(), EngineError> {
        let (rt, store) = (self.rt, self.store);
        for chunk in tickets.chunks(200) {
            let mut links = Vec::with_capacity(chunk.len());
            for t in chunk {
                if let Some(link) = store.link_by_ticket(&rt.pair, &t.key)?
                    && !self.held_back.contains(&link.incident_id)
                {
                    // Only a ticket with something new counts as having had its look:
                    // a due retry of its incident must still re-read it otherwise.
                    if t.version()
                        .freshness(&link.ticket_seen())
                        .may_have_changed()
                    {
                        self.touched.insert(link.incident_id.clone());
                    }
                    links.push(link);
                }
            }
            let chunk: Vec<TicketSnapshot> = chunk
                .iter()
                .filter(|t| links.iter().any(|l| l.ticket_key == t.key))
                .cloned()
                .collect();
            self.reconcile_and_apply(&[], &chunk, links).await?;
        }
        Ok(())
    }
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
    /// The incident as this cycle read it (its poll, or a re-read), while an
    /// action on it is carried out: a write to it starts from this instead of
    /// reading it again (`IncidentSource::update_listed`).
    listed: HashMap<String, IncidentSnapshot>,
    /// Incidents the bridge updated in the plan being applied, as the write
    /// returned them: their comments, where the answer had them all.
    wrote: HashMap<String, IncidentSnapshot>,
    /// The comments of tickets the bridge updated in the plan being applied, as
    /// the update's answer had them all (`TicketSystem::written_comments`): the
    /// version the link now holds was read with them.
    wrote_ticket: HashMap<String, Vec<Comment>>,
    /// The sides the bridge wrote this cycle, by incident: the version a write
    /// returned is the newest the bridge knows of that side, so a version the
    /// poll saw before it is never recorded over it (two opaque etags of one
    /// second cannot be ordered by themselves).
    written_sides: HashSet<(Direction, String)>,
    /// Creates whose answer was lost this cycle: resolved at its end.
    lost_creates: Vec<IntentId>,
    /// The pair's newest linked ticket key, once read (see `newest_ticket`).
    newest_ticket: Option<Option<String>>,
    /// Who made the versions read of both sides, by incident, while an action
    /// on them is carried out: the ledger entries' actors.
    authors: HashMap<String, attribution::Authors>,
}

/// What is known, before a create, of a ticket already made for the incident.
enum Prior {
    /// Nothing: look it up by correlation id first.
    Search,
    Found(Box<TicketSnapshot>),
    /// There is none: the ticket system said so for certain, or no create was
    /// ever begun for the incident (a fresh create).
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
            listed: HashMap::new(),
            wrote: HashMap::new(),
            wrote_ticket: HashMap::new(),
            written_sides: HashSet::new(),
            lost_creates: Vec::new(),
            newest_ticket: None,
            authors: HashMap::new(),
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
            // The bridge's own unless the caller says whose changes it carried.
            actors: vec![crate::ledger::Actor::bridge()],
        }
    }

    async fn begin(&mut self, action: &Action) -> Result<IntentId, StoreError> {
        let known_ticket = match action {
            Action::CreateTicket { .. } => self.newest_ticket()?,
            _ => None,
        };
        let intent = self.store.begin_intent(&Intent {
            pair: self.rt.pair.clone(),
            incident_id: action.incident_id().to_string(),
            kind: action.kind().to_string(),
            payload: serde_json::to_string(action).expect("actions serialize"),
            created: self.clock.now(),
            known_ticket,
        })?;
        // The remote write follows at once: a replica paused since the commit
        // (past its lease) stops here; the intent waits for the replica that
        // took over, which finds out whether it was carried out.
        self.store.check_lease(&self.rt.pair)?;
        Ok(intent)
    }

    /// The ticket key of the pair's newest link, read once a cycle and kept up
    /// to date as the cycle links tickets.
    fn newest_ticket(&mut self) -> Result<Option<String>, StoreError> {
        if self.newest_ticket.is_none() {
            self.newest_ticket = Some(self.store.newest_ticket_key(&self.rt.pair)?);
        }
        Ok(self.newest_ticket.clone().flatten())
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
}

/// What people call a kind of ticket system, in messages.
pub fn ticket_system_name(kind: crate::vocab::TicketKind) -> &'static str {
    match kind {
        crate::vocab::TicketKind::Jira => "Jira",
        crate::vocab::TicketKind::Servicenow => "ServiceNow",
        crate::vocab::TicketKind::Generic => "the helpdesk",
    }
}

mod apply;
mod attribution;
mod comments;
mod merge;
pub mod progress;
mod recover;
mod remap;
mod sweep;
pub use remap::{plan_edit, run_remap};
pub use sweep::run_sweep;

#[cfg(test)]
mod attribution_tests;
#[cfg(test)]
mod interleavings;
#[cfg(test)]
mod remap_tests;
#[cfg(test)]
mod tests;
