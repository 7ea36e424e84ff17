//! Persistence behind a trait: the mapping table (links with their baselines),
//! watermarks, the outbox of intended remote writes, and the hash-chained ledger.
//! `SqliteStore` is the embedded default; `PgStore` keeps the same on a
//! PostgreSQL database that several replicas share, each pair driven by the
//! holder of its lease.

mod browse;
mod lock;
pub mod postgres;
mod sqlite;
#[cfg(test)]
mod suite;

pub use browse::{ClosedWhen, LinkPage, LinkQuery, LinkStateFilter};
pub use lock::{LockError, StoreLock};
pub use postgres::{Fence, LeaseKeeper, LeaseSettings, PgConnect, PgStore, SslMode};
pub use sqlite::SqliteStore;
pub(crate) use sqlite::create_private_dir;

use crate::ledger::{LedgerEntry, LedgerFilter, LedgerRecord, VerifyReport};
use crate::model::{IncidentSnapshot, Link, LinkState, Timestamp};

/// A store failure: the database could not be read or written. The rusqlite and
/// io errors stay reachable through `Error::source`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database holds something this version cannot read.
    #[error("database content is not readable: {0}")]
    Corrupt(String),
    #[error("database file error: {0}")]
    Io(#[source] std::io::Error),
    /// A read-only command was pointed at a file that is not an itsm-bridge store
    /// (another SQLite database, or not a database at all); it was not changed.
    #[error("{0}")]
    NotAStore(String),
    /// `PRAGMA quick_check` found the file damaged; nothing was written to it.
    #[error(
        "the database is damaged ({0}); nothing was written to it: restore it from a \
         backup, or move it aside to start a new store"
    )]
    Damaged(String),
    /// The ledger's append-only triggers were removed or changed: someone edited
    /// the store behind the bridge's back.
    #[error("{0}")]
    Tampered(String),
    /// A PostgreSQL statement failed. The message already has the server's
    /// words and the client's causes (its own `Display` says only "db error"),
    /// so the client's error is not a `source` to be said again.
    #[error("database error: {}", postgres::postgres_message(.0))]
    Postgres(::postgres::Error),
    /// `[store] url` (or what goes with it) cannot be used; nothing was opened.
    #[error("{0}")]
    Config(String),
    /// The database cannot be reached (connection refused, timed out, closed).
    #[error("{0}")]
    Unreachable(String),
    /// This replica no longer holds the lease of `pair` (it expired while the
    /// process was paused or cut off, or another replica took it): the commit
    /// was refused and nothing of it was written.
    #[error(
        "lost the lease for pair {pair}: another replica drives it now, and nothing of this \
         commit was written"
    )]
    LostLease { pair: String },
}

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> Self {
        StoreError::Postgres(e)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// An incident as `incidents_seen` keeps it: without its comments and tags,
/// which no template reads.
pub(crate) fn seen_json(incident: &IncidentSnapshot) -> StoreResult<String> {
    let kept = IncidentSnapshot {
        comments: Vec::new(),
        tags: Vec::new(),
        ..incident.clone()
    };
    serde_json::to_string(&kept).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn seen_from_json(text: &str) -> StoreResult<IncidentSnapshot> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("an incident as last seen: {e}")))
}

/// Who drives a pair (PostgreSQL stores): the replica holding its lease, the
/// lease's fencing token and how long it has left by the database's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseInfo {
    pub pair: String,
    pub holder: String,
    pub token: i64,
    pub expires_in: std::time::Duration,
}

/// Which side of a pair a watermark belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Incidents,
    Tickets,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Incidents => "incidents",
            Side::Tickets => "tickets",
        }
    }
}

/// A remote write the bridge intends to make, committed before it is attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub pair: String,
    pub incident_id: String,
    /// What kind of action (`create_ticket`, `update_ticket`, …).
    pub kind: String,
    /// The action itself, as JSON, so it can be re-run after a crash.
    pub payload: String,
    pub created: Timestamp,
    /// For a create: the newest ticket key the pair had linked when it began
    /// (a ticket the create made comes after it; see
    /// [`crate::ports::TicketSystem::find_created`]).
    pub known_ticket: Option<String>,
}

/// An incident whose sync keeps failing: set aside so the pair moves on, retried
/// on its own with a growing delay.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    pub pair: String,
    pub incident_id: String,
    pub ticket_key: Option<String>,
    pub action: String,
    pub last_error: String,
    pub attempts: u32,
    pub first_failed: Timestamp,
    pub last_failed: Timestamp,
    pub next_attempt: Timestamp,
}

/// Row counts for the health endpoint, the metrics and the dashboard: cheap to
/// read at every scrape (no link is decoded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Links per pair and state, ordered by pair then state (pairs and states with
    /// none are left out).
    pub links: Vec<(String, LinkState, u64)>,
    /// Dead letters per pair, ordered by pair (pairs with none are left out).
    pub dead_letters: Vec<(String, u64)>,
    /// Intents still pending per pair (writes under way, or creates whose answer
    /// was lost and that wait for the ticket system to tell), ordered by pair.
    pub pending: Vec<(String, u64)>,
    /// Entries in the ledger.
    pub ledger_entries: u64,
}

/// The outbox row id of an intent.
pub type IntentId = i64;

/// Everything the engine keeps between runs.
pub trait Store: Send + Sync {
    fn link(&self, pair: &str, incident_id: &str) -> StoreResult<Option<Link>>;
    fn link_by_ticket(&self, pair: &str, ticket_key: &str) -> StoreResult<Option<Link>>;
    /// The links of the given incidents that exist (in any order).
    fn links_for_incidents(&self, pair: &str, incident_ids: &[String]) -> StoreResult<Vec<Link>>;
    /// All links, of one pair or of all, ordered by pair then incident id.
    fn links(&self, pair: Option<&str>) -> StoreResult<Vec<Link>>;
    /// One page of the links a filter selects (the dashboard's table), ordered
    /// by pair then incident id, and how many it selects in all.
    fn link_page(&self, query: &LinkQuery) -> StoreResult<LinkPage>;
    /// The ticket key of the pair's most recently made link.
    fn newest_ticket_key(&self, pair: &str) -> StoreResult<Option<String>>;
    /// Keeps the incidents as a poll or a sweep read them (comments and tags
    /// left out), over what was kept before: what an edited template is
    /// rendered from by `mapping impact` and a reload's remap.
    fn save_incidents_seen(&self, pair: &str, incidents: &[IncidentSnapshot]) -> StoreResult<()>;
    /// The incidents of these ids as last kept (those never kept are absent).
    fn incidents_seen(
        &self,
        pair: &str,
        incident_ids: &[String],
    ) -> StoreResult<Vec<IncidentSnapshot>>;

    fn watermark(&self, pair: &str, side: Side) -> StoreResult<Option<Timestamp>>;
    fn set_watermark(&self, pair: &str, side: Side, at: Timestamp) -> StoreResult<()>;

    /// Commits an intent to the outbox before its remote write is attempted.
    fn begin_intent(&self, intent: &Intent) -> StoreResult<IntentId>;
    /// Intents whose outcome is unknown (the process stopped between begin and finish).
    fn pending_intents(&self) -> StoreResult<Vec<(IntentId, Intent)>>;
    /// In one transaction: upserts the link (if any), appends the ledger records and
    /// removes the intent from the outbox.
    fn finish_intent(
        &self,
        id: IntentId,
        link: Option<&Link>,
        ledger: &[LedgerRecord],
    ) -> StoreResult<()>;
    /// Upserts a link and appends ledger records in one transaction, with no intent
    /// (a baseline that changed without a remote write).
    fn save_link(&self, link: &Link, ledger: &[LedgerRecord]) -> StoreResult<()>;

    /// Records a failed sync of one incident (inserting or counting one more
    /// attempt) and returns the row as it now stands. `next_attempt` is only used
    /// for a new row; `schedule_retry` sets it for later ones.
    fn record_failure(&self, failure: &DeadLetter) -> StoreResult<DeadLetter>;
    fn schedule_retry(&self, pair: &str, incident_id: &str, at: Timestamp) -> StoreResult<()>;
    /// Forgets a failure once the incident synced; true if there was one.
    fn clear_failure(&self, pair: &str, incident_id: &str) -> StoreResult<bool>;
    /// Dead letters of one pair or all, optionally only those due by a time.
    fn dead_letters(
        &self,
        pair: Option<&str>,
        due_by: Option<Timestamp>,
    ) -> StoreResult<Vec<DeadLetter>>;

    /// The fingerprints of the comments already carried across for one link
    /// (`i:…` on the incident, `t:…` on the ticket): originals and copies alike.
    fn synced_comments(
        &self,
        pair: &str,
        incident_id: &str,
    ) -> StoreResult<std::collections::HashSet<String>>;
    /// Records carried-across comments and their ledger entries in one transaction.
    fn record_synced_comments(
        &self,
        pair: &str,
        incident_id: &str,
        fingerprints: &[String],
        ledger: &[LedgerRecord],
    ) -> StoreResult<()>;

    fn append_ledger(&self, records: &[LedgerRecord]) -> StoreResult<()>;
    /// Ledger entries in sequence order, streamed to `each` (the ledger can be large).
    fn for_each_ledger_entry(
        &self,
        filter: &LedgerFilter,
        each: &mut dyn FnMut(LedgerEntry) -> StoreResult<()>,
    ) -> StoreResult<()>;
    /// Re-computes the hash chain from the first entry and reports the first break.
    fn verify_ledger(&self) -> StoreResult<VerifyReport>;
    /// The stored hash of entry `seq`, if there is one (for checkpoints).
    fn ledger_hash_at(&self, seq: i64) -> StoreResult<Option<String>>;
    /// The sequence number of the entry whose stored hash is `hash`, if any
    /// (for `ledger verify --expect-head`).
    fn ledger_seq_of(&self, hash: &str) -> StoreResult<Option<i64>>;

    /// Links per pair and state, dead letters per pair and the ledger's length, of
    /// one moment, without reading any link or entry in full.
    fn counts(&self) -> StoreResult<StoreCounts>;

    /// Whether the ledger's append-only triggers are there as the migrations
    /// made them: [`StoreError::Tampered`] if one was dropped, disabled or changed.
    fn check_append_only(&self) -> StoreResult<()>;

    /// Whether this process may still write to the remote systems for `pair`,
    /// checked right before a remote write, after its intent was committed: a
    /// replica paused past its lease (a stopped process, a frozen VM) learns it
    /// here, by its own clock, before a write another replica may already have
    /// made ([`StoreError::LostLease`]). A store of one process always may.
    fn check_lease(&self, _pair: &str) -> StoreResult<()> {
        Ok(())
    }

    /// The pairs' leases, ordered by pair: which replica drives which pair. A
    /// store of one process (SQLite) has none.
    fn leases(&self) -> StoreResult<Vec<LeaseInfo>> {
        Ok(Vec::new())
    }
}
