//! The store for replicas: [`PgStore`], the [`Store`] on one PostgreSQL
//! database shared by several `itsm-bridge run` processes, and the migration
//! runner over `migrations/postgres/*.sql` (a version recorded in
//! `itsm_bridge_schema`; a newer schema is refused).
//!
//! The [`Store`] trait is synchronous and the engine calls it from tokio
//! workers, where the synchronous `postgres` client (which blocks on a runtime
//! of its own) must not run. So a `PgStore` owns one OS thread holding its
//! connection; each method sends that thread a job and waits for the answer.
//! Jobs run one at a time, as the SQLite store's mutex runs its calls.
//!
//! Values are encoded exactly as on SQLite (timestamps as fixed-width RFC 3339
//! text, enumerations as their names), so `store migrate` copies rows as they
//! are and the ledger's hashes stay the same.
//!
//! With a [`Fence`] (the daemon's), every write of a pair checks in its own
//! transaction that this replica still holds the pair's lease, with the token it
//! was given, unexpired by the database's clock; the lease row is locked `FOR
//! SHARE` until the commit, so a new holder's takeover waits for a commit under
//! way and every later commit of the old holder fails with
//! [`StoreError::LostLease`]. Ledger appends take `LOCK TABLE ledger IN
//! EXCLUSIVE MODE` first, so the appends of all replicas make one hash chain.

mod import;
mod lease;
#[cfg(test)]
mod tests;
mod tls;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls, Row, Transaction};
use secrecy::{ExposeSecret, SecretString};

pub use import::{ImportReport, import_sqlite};
pub use lease::{LeaseKeeper, LeaseSettings};
pub use tls::SslMode;

use super::sqlite::{
    parse_direction, parse_link_state, parse_outcome, parse_time, remote_time_text, time_text,
    to_json,
};
use super::{
    DeadLetter, Intent, IntentId, LeaseInfo, LinkPage, LinkQuery, Side, Store, StoreCounts,
    StoreError, StoreResult, seen_from_json, seen_json,
};
use crate::ledger::{
    self, ChainVerifier, GENESIS_HASH, LedgerEntry, LedgerFilter, LedgerRecord, VerifyReport,
};
use crate::model::{Baseline, Direction, FieldChange, IncidentSnapshot, Link, Timestamp};

/// The schema migrations, in order: entry `i` takes the schema from version `i`
/// to `i + 1`. Append only; never edit or reorder.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        "0002_incidents_seen",
        include_str!("../../../migrations/postgres/0002_incidents_seen.sql"),
    ),
    (
        "0003_ledger_actors",
        include_str!("../../../migrations/postgres/0003_ledger_actors.sql"),
    ),
];

/// The advisory lock the migration runner holds: two replicas starting at once
/// migrate once.
const MIGRATION_LOCK: i64 = 0x6974_736d_2d62_7264;

/// The tables every itsm-bridge PostgreSQL store has.
const STORE_TABLES: [&str; 8] = [
    "links",
    "watermarks",
    "outbox",
    "dead_letters",
    "synced_comments",
    "ledger",
    "leases",
    "replicas",
];

/// What the append-only function does, compared without regard to whitespace.
const APPEND_ONLY_BODY: &str = "BEGIN RAISE EXCEPTION 'the ledger is append-only'; END";

/// The ledger's append-only triggers: name, and what `pg_get_triggerdef` must
/// say of them (after the table name, which may be schema-qualified).
const APPEND_ONLY_TRIGGERS: [(&str, &str, &str); 2] = [
    (
        "ledger_no_change",
        "CREATE TRIGGER ledger_no_change BEFORE DELETE OR UPDATE ON",
        "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()",
    ),
    (
        "ledger_no_truncate",
        "CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON",
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()",
    ),
];

const LINK_COLUMNS: &str = "pair, incident_id, incident_display_id, incident_url, ticket_key, \
     ticket_id, ticket_url, state, baseline, written_back, incident_modified, ticket_modified, \
     created, updated, merged_into, incident_version, ticket_version";

const LEDGER_COLUMNS: &str = "seq, time, pair, direction, action, incident_id, ticket_key, \
     changes, outcome, detail, prev_hash, hash, actors";

const DEAD_LETTER_COLUMNS: &str = "pair, incident_id, ticket_key, action, last_error, attempts, \
     first_failed, last_failed, next_attempt";

/// How to reach the database: `[store] url` with the password resolved from
/// its secret reference. `Debug` and [`PgConnect::shown`] never show the
/// password.
#[derive(Clone)]
pub struct PgConnect {
    config: postgres::Config,
    shown: String,
    ssl_mode: SslMode,
    /// The CA bundle `verify-ca` and `verify-full` trust instead of the
    /// system's: `[store] ca_bundle`, else `[http] ca_bundle`.
    roots: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
}

impl std::fmt::Debug for PgConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnect")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl PgConnect {
    /// Parses a `postgres://user@host:port/db?…` URL (libpq's key=value form is
    /// accepted too). A password written into the URL is refused: it would be
    /// shown wherever the URL is; pass it as `password` (a secret reference in
    /// `[store]`). `sslmode` is libpq's (see [`SslMode`]): `disable`, `prefer`
    /// (the default), `require`, `verify-ca`, `verify-full`.
    pub fn new(url: &str, password: Option<&SecretString>) -> StoreResult<PgConnect> {
        let (rest, mode) = tls::split_sslmode(url);
        let ssl_mode = match mode {
            None => SslMode::Prefer,
            Some(text) => SslMode::parse(&text).ok_or_else(|| {
                StoreError::Config(format!(
                    "[store] url has sslmode={text}; use {}",
                    SslMode::NAMES
                ))
            })?,
        };
        let mut config: postgres::Config = rest
            .parse()
            .map_err(|e| StoreError::Config(format!("[store] url is not a PostgreSQL URL: {e}")))?;
        if config.get_password().is_some() {
            return Err(StoreError::Config(
                "[store] url holds a password; remove it from the URL and give it as \
                 [store] password = { env = \"…\" } (or { file = \"…\" })"
                    .into(),
            ));
        }
        config.ssl_mode(ssl_mode.client_mode());
        if let Some(password) = password {
            config.password(password.expose_secret());
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("itsm-bridge");
        let shown = shown_url(&config);
        Ok(PgConnect {
            config,
            shown,
            ssl_mode,
            roots: None,
        })
    }

    /// The CAs `sslmode=verify-ca` and `verify-full` trust, in place of the
    /// system's: a PEM bundle (`[store] ca_bundle`, else `[http] ca_bundle`).
    pub fn with_ca_bundle(mut self, pem: &[u8]) -> StoreResult<PgConnect> {
        let certs = tls::read_pem_bundle(pem)
            .map_err(|e| StoreError::Config(format!("the PostgreSQL CA bundle is {e}")))?;
        self.roots = Some(certs);
        Ok(self)
    }

    /// The `sslmode` this connection asks for.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    /// Sessions that give their locks up on their own when this process stops
    /// answering: a transaction left idle longer than `lease` (the process was
    /// paused or cut off mid-transaction, still holding a lease row `FOR SHARE`
    /// or the ledger's lock) is ended by the server, so the other replicas can
    /// take the pair over and append; and a statement waits for a lock at most
    /// three lease periods instead of for ever.
    pub fn with_lease(mut self, lease: Duration) -> PgConnect {
        let ms = lease.as_millis().max(1);
        let mut options = self.config.get_options().unwrap_or("").to_owned();
        if !options.is_empty() {
            options.push(' ');
        }
        options.push_str(&format!(
            "-c idle_in_transaction_session_timeout={ms} -c lock_timeout={}",
            ms * 3
        ));
        self.config.options(&options);
        self
    }

    /// The database, as it may be shown: user, hosts, port, database name.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn connect(&self) -> StoreResult<Client> {
        let connected = if self.ssl_mode == SslMode::Disable {
            self.config.connect(NoTls)
        } else {
            let tls = tls::client_config(self.ssl_mode, self.roots.as_deref()).map_err(|e| {
                StoreError::Config(format!(
                    "cannot set up TLS to the PostgreSQL store {}: {e}",
                    self.shown
                ))
            })?;
            self.config.connect(tls::MakeRustls::new(tls))
        };
        connected.map_err(|e| {
            let message = postgres_message(&e);
            let advice = certificate_advice(&message).unwrap_or_default();
            StoreError::Unreachable(format!(
                "cannot connect to the PostgreSQL store {}: {message}{advice}",
                self.shown,
            ))
        })
    }
}

/// What to do about a server certificate `verify-ca` or `verify-full` refused.
fn certificate_advice(message: &str) -> Option<&'static str> {
    if !message.contains("invalid peer certificate") {
        return None;
    }
    Some(if message.contains("not valid for name") {
        "; sslmode=verify-full needs the certificate to name the host of [store] url: \
         connect by a name it bears, or use sslmode=verify-ca to check the CA only"
    } else {
        "; the server's certificate is not trusted: give the CA that signed it as \
         [store] ca_bundle (else [http] ca_bundle, else the system's CAs are used), \
         or use sslmode=require to encrypt without checking the certificate"
    })
}

fn shown_url(config: &postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let port = config
        .get_ports()
        .first()
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    format!(
        "postgres://{}@{}{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        port,
        config.get_dbname().unwrap_or("")
    )
}

/// A PostgreSQL error in words: the server's message and SQLSTATE where there
/// is one (the client's `Display` of a server error says only "db error").
pub(crate) fn postgres_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{} ({})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(": ");
                text.push_str(detail);
            }
            text
        }
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                text.push_str(": ");
                text.push_str(&inner.to_string());
                source = inner.source();
            }
            text
        }
    }
}

/// The leases this replica holds: pair → fencing token. Shared by the
/// [`LeaseKeeper`] (which takes, renews and gives them up) and the [`PgStore`]
/// (which checks them at every commit) and read by the daemon, which drives only
/// the pairs held here.
#[derive(Debug)]
pub struct Fence {
    holder: String,
    held: Mutex<BTreeMap<String, i64>>,
    /// Per pair held, until when its lease surely lasts by this process's
    /// clock: the start of the round that took or renewed it, plus the lease.
    lasts: Mutex<BTreeMap<String, std::time::Instant>>,
    /// Pairs whose cycle or sweep is under way: not given up by a rebalance
    /// until it ends.
    busy: Mutex<BTreeSet<String>>,
}

impl Fence {
    /// A fence for this process: `holder` names it in the lease table
    /// (`host:pid:random`, unique per process start).
    pub fn new(holder: String) -> Arc<Fence> {
        Arc::new(Fence {
            holder,
            held: Mutex::new(BTreeMap::new()),
            lasts: Mutex::new(BTreeMap::new()),
            busy: Mutex::new(BTreeSet::new()),
        })
    }

    /// A holder name for this process: its host, pid and a random part.
    pub fn holder_name() -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!(
            "{}:{}:{:06x}",
            super::lock::host_name(),
            std::process::id(),
            nanos & 0xff_ffff
        )
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The fencing token of `pair`, if this replica holds its lease.
    pub fn token(&self, pair: &str) -> Option<i64> {
        self.held().get(pair).copied()
    }

    pub fn holds(&self, pair: &str) -> bool {
        self.token(pair).is_some()
    }

    /// The pairs held, with their tokens.
    pub fn held_pairs(&self) -> Vec<(String, i64)> {
        self.held()
            .iter()
            .map(|(pair, token)| (pair.clone(), *token))
            .collect()
    }

    /// Marks `pair` as being driven until the guard drops; `None` if this
    /// replica does not hold it.
    pub fn enter(self: &Arc<Self>, pair: &str) -> Option<BusyPair> {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.holds(pair) {
            return None;
        }
        busy.insert(pair.to_owned());
        Some(BusyPair {
            fence: self.clone(),
            pair: pair.to_owned(),
        })
    }

    fn set(&self, pair: &str, token: i64) {
        self.held().insert(pair.to_owned(), token);
    }

    /// The lease of `pair` was taken or renewed by a statement sent at `sent`.
    fn lasts_until(&self, pair: &str, until: std::time::Instant) {
        self.lasts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(pair.to_owned(), until);
    }

    /// Whether `pair` is held and its lease has surely not run out by this
    /// process's clock.
    pub fn may_write(&self, pair: &str) -> bool {
        self.holds(pair)
            && self
                .lasts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(pair)
                .is_some_and(|until| std::time::Instant::now() < *until)
    }

    /// Forgets `pair`; true if it was held.
    fn lose(&self, pair: &str) -> bool {
        self.lasts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(pair);
        self.held().remove(pair).is_some()
    }

    fn held(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, i64>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A pair being driven (see [`Fence::enter`]).
#[derive(Debug)]
pub struct BusyPair {
    fence: Arc<Fence>,
    pair: String,
}

impl Drop for BusyPair {
    fn drop(&mut self) {
        self.fence
            .busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.pair);
    }
}

type Job = Box<dyn FnOnce(&mut Session) + Send>;

/// The connection, on the store's own thread; re-made when it broke.
struct Session {
    connect: PgConnect,
    client: Option<Client>,
    read_only: bool,
}

impl Session {
    fn client(&mut self) -> StoreResult<&mut Client> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            tracing::warn!(db = %self.connect.shown, "the PostgreSQL connection broke; connecting again");
            self.client = None;
        }
        if self.client.is_none() {
            let mut client = self.connect.connect()?;
            if self.read_only {
                client.batch_execute("SET default_transaction_read_only = on")?;
            }
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }
}

/// The [`Store`] on a PostgreSQL database (see the module's documentation).
pub struct PgStore {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Option<JoinHandle<()>>,
    fence: Option<Arc<Fence>>,
    shown: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("db", &self.shown)
            .finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl PgStore {
    /// Connects for writing: refuses a schema that holds other tables and no
    /// itsm-bridge schema ([`StoreError::NotAStore`]) or a newer schema
    /// ([`StoreError::Corrupt`]), migrates, and refuses a ledger whose
    /// append-only triggers are missing, disabled or changed
    /// ([`StoreError::Tampered`]). Without a fence nothing checks leases: for
    /// tests, `store migrate` and single-process tools.
    pub fn open(connect: &PgConnect) -> StoreResult<PgStore> {
        let store = PgStore::start(connect, false)?;
        store.call(|client, _| {
            migrate(client)?;
            check_append_only(client)
        })?;
        Ok(store)
    }

    /// Connects for the commands that only read: every transaction is read-only
    /// (the database refuses a write), nothing is created or migrated, and a
    /// schema without the itsm-bridge tables, or at another schema version, is
    /// refused.
    pub fn open_read_only(connect: &PgConnect) -> StoreResult<PgStore> {
        let store = PgStore::start(connect, true)?;
        let shown = connect.shown.clone();
        store.call(move |client, _| {
            let not_a_store = |why: String| {
                StoreError::NotAStore(format!(
                    "{shown}: {why}; it is not an itsm-bridge store, and was left as it is \
                     (pass the database named by [store] url)"
                ))
            };
            let Some(version) = schema_version(client)? else {
                return Err(not_a_store("no itsm-bridge schema in it".into()));
            };
            let missing = missing_tables(client)?;
            if !missing.is_empty() {
                return Err(not_a_store(format!(
                    "no {} table in it",
                    missing.join(", ")
                )));
            }
            let known = MIGRATIONS.len() as i32;
            if version < known {
                return Err(StoreError::Corrupt(format!(
                    "{shown}: the store is at schema version {version} and this itsm-bridge \
                     reads version {known}; start `itsm-bridge run` on it once to migrate it"
                )));
            }
            Ok(())
        })?;
        Ok(store)
    }

    /// This store, checking `fence`'s leases at every commit.
    pub fn with_fence(mut self, fence: Arc<Fence>) -> PgStore {
        self.fence = Some(fence);
        self
    }

    fn start(connect: &PgConnect, read_only: bool) -> StoreResult<PgStore> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let mut session = Session {
            connect: connect.clone(),
            client: None,
            read_only,
        };
        // Connect on the store's thread: the client blocks on a runtime of its
        // own, which a tokio worker must not do.
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("pg-store".into())
            .spawn(move || {
                let connected = session.client().map(|_| ());
                let ok = connected.is_ok();
                let _ = ready_tx.send(connected);
                if !ok {
                    return;
                }
                while let Ok(job) = queue.recv() {
                    job(&mut session);
                }
            })
            .map_err(StoreError::Io)?;
        let connected = ready_rx.recv().unwrap_or_else(|_| {
            Err(StoreError::Unreachable(
                "the PostgreSQL store's thread stopped while connecting".into(),
            ))
        });
        let store = PgStore {
            jobs: Mutex::new(Some(jobs)),
            thread: Some(thread),
            fence: None,
            shown: connect.shown.clone(),
        };
        connected.map(|()| store)
    }

    /// Runs `f` on the store's thread and waits for its answer.
    fn call<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Client, Option<&Fence>) -> StoreResult<R> + Send + 'static,
    {
        let (answer_tx, answer_rx) = mpsc::sync_channel(1);
        self.submit(move |client, fence| {
            let _ = answer_tx.send(f(client, fence));
        })?;
        answer_rx.recv().unwrap_or_else(|_| {
            Err(StoreError::Unreachable(
                "the PostgreSQL store's thread stopped".into(),
            ))
        })
    }

    fn submit<F>(&self, f: F) -> StoreResult<()>
    where
        F: FnOnce(&mut Client, Option<&Fence>) + Send + 'static,
    {
        let fence = self.fence.clone();
        let job: Job = Box::new(move |session: &mut Session| match session.client() {
            Ok(client) => f(client, fence.as_deref()),
            Err(e) => {
                // The answer channel learns of the failure by being dropped with
                // `f`; say why in the log.
                tracing::error!(error = %e, "the PostgreSQL store cannot reach its database");
            }
        });
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        jobs.as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(|| StoreError::Unreachable("the PostgreSQL store was closed".into()))
    }

    /// Runs `f` in one transaction that first checks the leases of `pairs`.
    fn write<R, F>(&self, pairs: Vec<String>, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Transaction<'_>) -> StoreResult<R> + Send + 'static,
    {
        self.call(move |client, fence| {
            let mut tx = client.transaction()?;
            check_fence(&mut tx, fence, pairs.iter().map(String::as_str))?;
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    /// Drops everything in the schema this store uses, for tests that made a
    /// schema of their own.
    #[cfg(test)]
    pub(crate) fn execute_for_tests(&self, sql: &str) -> StoreResult<()> {
        let sql = sql.to_owned();
        self.call(move |client, _| Ok(client.batch_execute(&sql)?))
    }
}

/// Checks, inside `tx`, that this replica holds every pair's lease with the
/// token it was given and unexpired by the database's clock, and locks those
/// lease rows until the commit. Without a fence, nothing to check.
fn check_fence<'a>(
    tx: &mut Transaction<'_>,
    fence: Option<&Fence>,
    pairs: impl IntoIterator<Item = &'a str>,
) -> StoreResult<()> {
    let Some(fence) = fence else {
        return Ok(());
    };
    // Sorted, so two commits lock lease rows in one order.
    let pairs: BTreeSet<&str> = pairs.into_iter().collect();
    for pair in pairs {
        let lost = || StoreError::LostLease {
            pair: pair.to_owned(),
        };
        let token = fence.token(pair).ok_or_else(lost)?;
        let row = tx.query_opt(
            "SELECT 1 FROM leases WHERE pair = $1 AND holder = $2 AND token = $3 \
             AND expires_at > clock_timestamp() FOR SHARE",
            &[&pair, &fence.holder, &token],
        )?;
        if row.is_none() {
            if fence.lose(pair) {
                tracing::warn!(
                    pair,
                    token,
                    "lost the lease for pair {pair}: its commit was refused; another replica may drive it now"
                );
            }
            return Err(lost());
        }
    }
    Ok(())
}

/// Refuses a target that holds anything, or that a replica uses: `store
/// migrate` copies into an empty store only.
fn check_empty_and_unused(tx: &mut Transaction<'_>) -> StoreResult<()> {
    let row = tx.query_one(
        "SELECT (SELECT count(*) FROM links), (SELECT count(*) FROM outbox), \
         (SELECT count(*) FROM ledger), (SELECT count(*) FROM dead_letters), \
         (SELECT count(*) FROM watermarks), (SELECT count(*) FROM synced_comments), \
         (SELECT count(*) FROM leases WHERE expires_at > now()), \
         (SELECT count(*) FROM replicas WHERE seen_at > now() - interval '10 minutes')",
        &[],
    )?;
    let count = |i: usize| row.get::<_, i64>(i);
    if count(6) > 0 || count(7) > 0 {
        return Err(StoreError::Config(format!(
            "the PostgreSQL store is in use: {} replica(s) seen in the last 10 minutes, {} \
             lease(s) held; stop every `itsm-bridge run` on it first; nothing was copied",
            count(7),
            count(6)
        )));
    }
    let rows: i64 = (0..6).map(count).sum();
    if rows > 0 {
        return Err(StoreError::Config(format!(
            "the PostgreSQL store is not empty ({rows} row(s) in links, outbox, ledger, dead \
             letters, watermarks and synced comments); migrate into a new database or schema; \
             nothing was copied"
        )));
    }
    Ok(())
}

/// The schema version, or `None` when the schema has no `itsm_bridge_schema`.
fn schema_version(client: &mut impl GenericClient) -> StoreResult<Option<i32>> {
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = current_schema() \
             AND tablename = 'itsm_bridge_schema')",
            &[],
        )?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let version: i32 = client
        .query_one("SELECT version FROM itsm_bridge_schema", &[])?
        .get(0);
    let known = MIGRATIONS.len() as i32;
    if version > known {
        return Err(StoreError::Corrupt(format!(
            "database schema version {version} is newer than this itsm-bridge supports \
             ({known}); upgrade itsm-bridge"
        )));
    }
    Ok(Some(version))
}

fn missing_tables(client: &mut impl GenericClient) -> StoreResult<Vec<&'static str>> {
    let present: HashSet<String> = client
        .query(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
            &[],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    Ok(STORE_TABLES
        .into_iter()
        .filter(|t| !present.contains(*t))
        .collect())
}

/// Applies the migrations the schema has not seen, each in its own transaction
/// under the migration lock, together with the version bump.
fn migrate(client: &mut Client) -> StoreResult<()> {
    let known = MIGRATIONS.len() as i32;
    loop {
        let mut tx = client.transaction()?;
        let schema: Option<String> = tx.query_one("SELECT current_schema()", &[])?.get(0);
        let Some(schema) = schema else {
            return Err(StoreError::Config(
                "the PostgreSQL search_path names no schema that exists; create it, or \
                 fix the search_path given in [store] url"
                    .into(),
            ));
        };
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        let version = match schema_version(&mut tx)? {
            Some(version) => version,
            None => {
                let tables: i64 = tx
                    .query_one(
                        "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()",
                        &[],
                    )?
                    .get(0);
                if tables > 0 {
                    return Err(StoreError::NotAStore(format!(
                        "schema {schema} holds {tables} table(s) and no itsm-bridge schema; it \
                         was left as it is: point [store] url at an empty schema or database, \
                         or at the bridge's own"
                    )));
                }
                0
            }
        };
        if version == known {
            return Ok(());
        }
        let (name, sql) = MIGRATIONS[version as usize];
        if let Err(e) = tx.batch_execute(sql) {
            tracing::error!(migration = name, error = %postgres_message(&e), "store migration failed");
            return Err(e.into());
        }
        tx.execute(
            "UPDATE itsm_bridge_schema SET version = $1",
            &[&(version + 1)],
        )?;
        tx.commit()?;
        tracing::info!(
            migration = name,
            version = version + 1,
            "applied store migration"
        );
    }
}

/// Whether the ledger's append-only triggers and their function are there,
/// enabled, as migration 0001 made them.
fn check_append_only(client: &mut Client) -> StoreResult<()> {
    let rows = client.query(
        "SELECT t.tgname::text, t.tgenabled::text, pg_get_triggerdef(t.oid), p.prosrc \
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
         JOIN pg_proc p ON p.oid = t.tgfoid \
         WHERE c.relname = 'ledger' AND c.relnamespace = current_schema()::regnamespace \
         AND NOT t.tgisinternal",
        &[],
    )?;
    let mut problems = Vec::new();
    for (name, head, tail) in APPEND_ONLY_TRIGGERS {
        let found = rows.iter().find(|row| row.get::<_, String>(0) == name);
        match found {
            None => problems.push(format!("{name} is missing")),
            Some(row) => {
                let enabled: String = row.get(1);
                let definition = normalise_sql(&row.get::<_, String>(2));
                let body = normalise_sql(&row.get::<_, String>(3));
                if enabled != "O" && enabled != "A" {
                    problems.push(format!("{name} is disabled"));
                } else if !definition.starts_with(head)
                    || !definition.ends_with(tail)
                    || body != APPEND_ONLY_BODY
                {
                    problems.push(format!("{name} was changed"));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Tampered(format!(
            "the ledger's append-only triggers were tampered with ({}); someone edited the \
             store behind the bridge's back: keep it for investigation, check it with \
             `itsm-bridge ledger verify --checkpoint`, and restore the store from a backup",
            problems.join(", ")
        )))
    }
}

fn normalise_sql(sql: &str) -> String {
    sql.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches(';')
        .trim()
        .to_owned()
}

/// Decodes a row selected with [`LINK_COLUMNS`].
fn link_from_row(row: &Row) -> StoreResult<Link> {
    let pair: String = row.try_get(0)?;
    let incident_id: String = row.try_get(1)?;
    let corrupt = |what: String| StoreError::Corrupt(format!("link {pair} {incident_id}: {what}"));
    let state_text: String = row.try_get(7)?;
    let state = parse_link_state(&state_text)
        .ok_or_else(|| corrupt(format!("unknown state {state_text:?}")))?;
    let baseline_text: String = row.try_get(8)?;
    let baseline: Baseline = serde_json::from_str(&baseline_text)
        .map_err(|e| corrupt(format!("the baseline is not readable: {e}")))?;
    let time = |index: usize, column: &str| -> StoreResult<Timestamp> {
        let text: String = row.try_get(index)?;
        parse_time(column, &text).map_err(corrupt)
    };
    Ok(Link {
        incident_display_id: row.try_get(2)?,
        incident_url: row.try_get(3)?,
        ticket_key: row.try_get(4)?,
        ticket_id: row.try_get(5)?,
        ticket_url: row.try_get(6)?,
        state,
        baseline,
        written_back: row.try_get(9)?,
        incident_modified: time(10, "incident_modified")?,
        ticket_modified: time(11, "ticket_modified")?,
        created: time(12, "created")?,
        updated: time(13, "updated")?,
        merged_into: row.try_get(14)?,
        incident_version: row.try_get(15)?,
        ticket_version: row.try_get(16)?,
        pair,
        incident_id,
    })
}

/// Decodes a row selected with [`LEDGER_COLUMNS`]; the error says what is wrong.
fn ledger_entry_from_row(row: &Row) -> Result<LedgerEntry, String> {
    let text = |index: usize| row.try_get::<_, String>(index).map_err(|e| e.to_string());
    let optional_text = |index: usize| {
        row.try_get::<_, Option<String>>(index)
            .map_err(|e| e.to_string())
    };
    let seq: i64 = row.try_get(0).map_err(|e| e.to_string())?;
    let time = parse_time("time", &text(1)?)?;
    let direction = match optional_text(3)? {
        None => None,
        Some(name) => {
            Some(parse_direction(&name).ok_or_else(|| format!("unknown direction {name:?}"))?)
        }
    };
    let changes: Vec<FieldChange> = serde_json::from_str(&text(7)?)
        .map_err(|e| format!("changes are not a list of field changes: {e}"))?;
    let outcome_name = text(8)?;
    let outcome =
        parse_outcome(&outcome_name).ok_or_else(|| format!("unknown outcome {outcome_name:?}"))?;
    Ok(LedgerEntry {
        seq,
        record: LedgerRecord {
            time,
            pair: text(2)?,
            direction,
            action: text(4)?,
            incident_id: text(5)?,
            ticket_key: optional_text(6)?,
            changes,
            outcome,
            detail: optional_text(9)?,
            actors: match optional_text(12)? {
                None => Vec::new(),
                Some(json) => serde_json::from_str(&json)
                    .map_err(|e| format!("actors are not a list of actors: {e}"))?,
            },
        },
        prev_hash: text(10)?,
        hash: text(11)?,
    })
}

fn dead_letter_from_row(row: &Row) -> StoreResult<DeadLetter> {
    let time = |i: usize, name: &str| -> StoreResult<Timestamp> {
        let text: String = row.try_get(i)?;
        parse_time(name, &text).map_err(|e| StoreError::Corrupt(format!("dead letter {name}: {e}")))
    };
    Ok(DeadLetter {
        pair: row.try_get(0)?,
        incident_id: row.try_get(1)?,
        ticket_key: row.try_get(2)?,
        action: row.try_get(3)?,
        last_error: row.try_get(4)?,
        attempts: row.try_get::<_, i32>(5)?.max(0) as u32,
        first_failed: time(6, "first_failed")?,
        last_failed: time(7, "last_failed")?,
        next_attempt: time(8, "next_attempt")?,
    })
}

fn upsert_link(tx: &mut Transaction<'_>, link: &Link) -> StoreResult<()> {
    let baseline = to_json(&link.baseline, "the link baseline")?;
    tx.execute(
        &format!(
            "INSERT INTO links ({LINK_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
             ON CONFLICT (pair, incident_id) DO UPDATE SET
                 incident_display_id = excluded.incident_display_id,
                 incident_url = excluded.incident_url,
                 ticket_key = excluded.ticket_key,
                 ticket_id = excluded.ticket_id,
                 ticket_url = excluded.ticket_url,
                 state = excluded.state,
                 baseline = excluded.baseline,
                 written_back = excluded.written_back,
                 incident_modified = excluded.incident_modified,
                 ticket_modified = excluded.ticket_modified,
                 created = excluded.created,
                 updated = excluded.updated,
                 merged_into = excluded.merged_into,
                 incident_version = excluded.incident_version,
                 ticket_version = excluded.ticket_version"
        ),
        &[
            &link.pair,
            &link.incident_id,
            &link.incident_display_id,
            &link.incident_url,
            &link.ticket_key,
            &link.ticket_id,
            &link.ticket_url,
            &link.state.as_str(),
            &baseline,
            &link.written_back,
            &remote_time_text(&link.incident_modified),
            &remote_time_text(&link.ticket_modified),
            &time_text(&link.created),
            &time_text(&link.updated),
            &link.merged_into,
            &link.incident_version,
            &link.ticket_version,
        ],
    )?;
    Ok(())
}

/// Appends `records` after the chain's head. Takes the ledger's table lock
/// first, so appends from every replica are one after another and the chain
/// stays one chain; the lock is held until the transaction ends.
fn append_ledger_in(tx: &mut Transaction<'_>, records: &[LedgerRecord]) -> StoreResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    tx.batch_execute("LOCK TABLE ledger IN EXCLUSIVE MODE")?;
    let head = tx.query_opt(
        "SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1",
        &[],
    )?;
    let (mut seq, mut prev_hash) = match head {
        Some(row) => (row.try_get::<_, i64>(0)?, row.try_get::<_, String>(1)?),
        None => (0, GENESIS_HASH.to_owned()),
    };
    let insert = tx.prepare(&format!(
        "INSERT INTO ledger ({LEDGER_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))?;
    for record in records {
        seq += 1;
        let hash = ledger::entry_hash(&prev_hash, seq, record);
        let changes = to_json(&record.changes, "the ledger changes")?;
        let actors = match record.actors.is_empty() {
            true => None,
            false => Some(to_json(&record.actors, "the ledger actors")?),
        };
        tx.execute(
            &insert,
            &[
                &seq,
                &ledger::canonical_time(&record.time),
                &record.pair,
                &record.direction.map(Direction::as_str),
                &record.action,
                &record.incident_id,
                &record.ticket_key,
                &changes,
                &record.outcome.as_str(),
                &record.detail,
                &prev_hash,
                &hash,
                &actors,
            ],
        )?;
        prev_hash = hash;
    }
    Ok(())
}

/// The pairs of some ledger records, for the fence.
fn pairs_of(records: &[LedgerRecord]) -> Vec<String> {
    records.iter().map(|r| r.pair.clone()).collect()
}

/// A value bound to a statement built at run time.
type Param = Box<dyn ToSql + Sync + Send>;

/// The `WHERE` of a ledger listing, numbering its parameters from `$1`.
fn ledger_conditions(filter: &LedgerFilter) -> (Vec<String>, Vec<Param>) {
    let mut conditions = Vec::new();
    let mut values: Vec<Param> = Vec::new();
    if let Some(pair) = &filter.pair {
        values.push(Box::new(pair.clone()));
        conditions.push(format!("pair = ${}", values.len()));
    }
    if let Some(incident_id) = &filter.incident_id {
        values.push(Box::new(incident_id.clone()));
        conditions.push(format!("incident_id = ${}", values.len()));
    }
    if let Some(ticket_key) = &filter.ticket_key {
        values.push(Box::new(ticket_key.clone()));
        conditions.push(format!("ticket_key = ${}", values.len()));
    }
    if let Some(action) = &filter.action {
        values.push(Box::new(action.clone()));
        conditions.push(format!("action = ${}", values.len()));
    }
    if let Some(actor) = &filter.actor {
        values.push(Box::new(actor.clone()));
        conditions.push(format!(
            "actors::jsonb @> jsonb_build_array(jsonb_build_object('name', ${}::text))",
            values.len()
        ));
    }
    if let Some(since) = &filter.since {
        values.push(Box::new(time_text(since)));
        conditions.push(format!("time >= ${}", values.len()));
    }
    if let Some(until) = &filter.until {
        values.push(Box::new(time_text(until)));
        conditions.push(format!("time < ${}", values.len()));
    }
    (conditions, values)
}

fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

fn refs(values: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|v| v.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// Streams the ledger entries `filter` selects to `send`, in one read-only
/// snapshot; stops early when `send` says the reader is gone.
fn stream_ledger(
    client: &mut Client,
    filter: &LedgerFilter,
    send: &mut dyn FnMut(LedgerEntry) -> bool,
) -> StoreResult<()> {
    let (mut conditions, mut values) = ledger_conditions(filter);
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    if let Some(limit) = filter.limit {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        values.push(Box::new(limit));
        let first: Option<i64> = tx
            .query_one(
                &format!(
                    "SELECT MIN(seq) FROM (SELECT seq FROM ledger{} ORDER BY seq DESC LIMIT ${}) newest",
                    where_clause(&conditions),
                    values.len()
                ),
                &refs(&values),
            )?
            .get(0);
        values.pop();
        let Some(first) = first else {
            return Ok(());
        };
        values.push(Box::new(first));
        conditions.push(format!("seq >= ${}", values.len()));
    }
    let sql = format!(
        "SELECT {LEDGER_COLUMNS} FROM ledger{} ORDER BY seq",
        where_clause(&conditions)
    );
    // A portal fetched in batches: the server keeps the cursor, and no more than
    // one batch of rows is ever held here, however long the ledger.
    let portal = tx.bind(&sql, &refs(&values))?;
    loop {
        let rows = tx.query_portal(&portal, LEDGER_FETCH_ROWS)?;
        let last_batch = rows.len() < LEDGER_FETCH_ROWS as usize;
        for row in rows {
            let seq: i64 = row.try_get(0)?;
            let entry = ledger_entry_from_row(&row).map_err(|reason| {
                StoreError::Corrupt(format!(
                    "ledger entry {seq}: {reason}; run `itsm-bridge ledger verify`"
                ))
            })?;
            if !send(entry) {
                return Ok(());
            }
        }
        if last_batch {
            return Ok(());
        }
    }
}

/// How many ledger rows one fetch from a listing's portal brings.
const LEDGER_FETCH_ROWS: i32 = 1000;

impl Store for PgStore {
    fn link(&self, pair: &str, incident_id: &str) -> StoreResult<Option<Link>> {
        let (pair, incident_id) = (pair.to_owned(), incident_id.to_owned());
        self.call(move |client, _| {
            client
                .query_opt(
                    &format!(
                        "SELECT {LINK_COLUMNS} FROM links WHERE pair = $1 AND incident_id = $2"
                    ),
                    &[&pair, &incident_id],
                )?
                .map(|row| link_from_row(&row))
                .transpose()
        })
    }

    /// If several links of the pair carry the key, the active one wins, then the
    /// most recently updated.
    fn link_by_ticket(&self, pair: &str, ticket_key: &str) -> StoreResult<Option<Link>> {
        let (pair, ticket_key) = (pair.to_owned(), ticket_key.to_owned());
        self.call(move |client, _| {
            client
                .query_opt(
                    &format!(
                        "SELECT {LINK_COLUMNS} FROM links WHERE pair = $1 AND ticket_key = $2
                         ORDER BY state = 'active' DESC, updated DESC LIMIT 1"
                    ),
                    &[&pair, &ticket_key],
                )?
                .map(|row| link_from_row(&row))
                .transpose()
        })
    }

    fn links_for_incidents(&self, pair: &str, incident_ids: &[String]) -> StoreResult<Vec<Link>> {
        let unique: Vec<String> = incident_ids
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let pair = pair.to_owned();
        self.call(move |client, _| {
            client
                .query(
                    &format!(
                        "SELECT {LINK_COLUMNS} FROM links WHERE pair = $1 AND incident_id = ANY($2)"
                    ),
                    &[&pair, &unique],
                )?
                .iter()
                .map(link_from_row)
                .collect()
        })
    }

    fn save_incidents_seen(&self, pair: &str, incidents: &[IncidentSnapshot]) -> StoreResult<()> {
        let pair = pair.to_owned();
        let rows: Vec<(String, String)> = incidents
            .iter()
            .map(|i| Ok((i.id.clone(), seen_json(i)?)))
            .collect::<StoreResult<_>>()?;
        self.write(vec![pair.clone()], move |tx| {
            let statement = tx.prepare(
                "INSERT INTO incidents_seen (pair, incident_id, snapshot) VALUES ($1, $2, $3)
                 ON CONFLICT (pair, incident_id) DO UPDATE SET snapshot = excluded.snapshot",
            )?;
            for (id, snapshot) in &rows {
                tx.execute(&statement, &[&pair, id, snapshot])?;
            }
            Ok(())
        })
    }

    fn incidents_seen(
        &self,
        pair: &str,
        incident_ids: &[String],
    ) -> StoreResult<Vec<IncidentSnapshot>> {
        let pair = pair.to_owned();
        let ids = incident_ids.to_vec();
        self.call(move |client, _| {
            client
                .query(
                    "SELECT snapshot FROM incidents_seen WHERE pair = $1 AND incident_id = ANY($2)",
                    &[&pair, &ids],
                )?
                .iter()
                .map(|row| seen_from_json(row.get::<_, &str>(0)))
                .collect()
        })
    }

    fn links(&self, pair: Option<&str>) -> StoreResult<Vec<Link>> {
        let pair = pair.map(str::to_owned);
        self.call(move |client, _| {
            let rows = match &pair {
                Some(pair) => client.query(
                    &format!(
                        "SELECT {LINK_COLUMNS} FROM links WHERE pair = $1 ORDER BY pair, incident_id"
                    ),
                    &[pair],
                )?,
                None => client.query(
                    &format!("SELECT {LINK_COLUMNS} FROM links ORDER BY pair, incident_id"),
                    &[],
                )?,
            };
            rows.iter().map(link_from_row).collect()
        })
    }

    fn link_page(&self, query: &LinkQuery) -> StoreResult<LinkPage> {
        let (filter, values) = super::browse::where_clause(query, super::browse::Dialect::Postgres);
        let (limit, offset) = (
            query.limit.min(i64::MAX as u64),
            query.offset.min(i64::MAX as u64),
        );
        self.call(move |client, _| {
            let params: Vec<&(dyn ToSql + Sync)> =
                values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            let total: i64 = client
                .query_one(
                    &format!("SELECT count(*) FROM links WHERE {filter}"),
                    &params,
                )?
                .get(0);
            let rows = client.query(
                &format!(
                    "SELECT {LINK_COLUMNS} FROM links WHERE {filter} \
                     ORDER BY pair, incident_id LIMIT {limit} OFFSET {offset}"
                ),
                &params,
            )?;
            Ok(LinkPage {
                links: rows.iter().map(link_from_row).collect::<StoreResult<_>>()?,
                total: total as u64,
            })
        })
    }

    fn newest_ticket_key(&self, pair: &str) -> StoreResult<Option<String>> {
        let pair = pair.to_owned();
        self.call(move |client, _| {
            Ok(client
                .query_opt(
                    "SELECT ticket_key FROM links WHERE pair = $1 ORDER BY created DESC LIMIT 1",
                    &[&pair],
                )?
                .map(|row| row.get(0)))
        })
    }

    fn watermark(&self, pair: &str, side: Side) -> StoreResult<Option<Timestamp>> {
        let pair = pair.to_owned();
        self.call(move |client, _| {
            let text: Option<String> = client
                .query_opt(
                    "SELECT at FROM watermarks WHERE pair = $1 AND side = $2",
                    &[&pair, &side.as_str()],
                )?
                .map(|row| row.get(0));
            text.map(|text| {
                parse_time("at", &text).map_err(|e| {
                    StoreError::Corrupt(format!("watermark {pair} {}: {e}", side.as_str()))
                })
            })
            .transpose()
        })
    }

    fn set_watermark(&self, pair: &str, side: Side, at: Timestamp) -> StoreResult<()> {
        let pair = pair.to_owned();
        self.write(vec![pair.clone()], move |tx| {
            tx.execute(
                "INSERT INTO watermarks (pair, side, at) VALUES ($1, $2, $3)
                 ON CONFLICT (pair, side) DO UPDATE SET at = excluded.at",
                &[&pair, &side.as_str(), &remote_time_text(&at)],
            )?;
            Ok(())
        })
    }

    fn begin_intent(&self, intent: &Intent) -> StoreResult<IntentId> {
        let intent = intent.clone();
        self.write(vec![intent.pair.clone()], move |tx| {
            Ok(tx
                .query_one(
                    "INSERT INTO outbox (pair, incident_id, kind, payload, created, known_ticket)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    &[
                        &intent.pair,
                        &intent.incident_id,
                        &intent.kind,
                        &intent.payload,
                        &time_text(&intent.created),
                        &intent.known_ticket,
                    ],
                )?
                .get(0))
        })
    }

    /// Oldest first, the order they were begun in.
    fn pending_intents(&self) -> StoreResult<Vec<(IntentId, Intent)>> {
        self.call(|client, _| {
            client
                .query(
                    "SELECT id, pair, incident_id, kind, payload, created, known_ticket
                     FROM outbox ORDER BY id",
                    &[],
                )?
                .iter()
                .map(|row| {
                    let id: IntentId = row.try_get(0)?;
                    let created_text: String = row.try_get(5)?;
                    let created = parse_time("created", &created_text)
                        .map_err(|e| StoreError::Corrupt(format!("intent {id}: {e}")))?;
                    Ok((
                        id,
                        Intent {
                            pair: row.try_get(1)?,
                            incident_id: row.try_get(2)?,
                            kind: row.try_get(3)?,
                            payload: row.try_get(4)?,
                            created,
                            known_ticket: row.try_get(6)?,
                        },
                    ))
                })
                .collect()
        })
    }

    /// Fails, changing nothing, if intent `id` is not in the outbox, or if this
    /// replica no longer holds the lease of the intent's pair.
    fn finish_intent(
        &self,
        id: IntentId,
        link: Option<&Link>,
        ledger: &[LedgerRecord],
    ) -> StoreResult<()> {
        let link = link.cloned();
        let ledger = ledger.to_vec();
        self.call(move |client, fence| {
            let mut tx = client.transaction()?;
            let pair: Option<String> = tx
                .query_opt("DELETE FROM outbox WHERE id = $1 RETURNING pair", &[&id])?
                .map(|row| row.get(0));
            let Some(pair) = pair else {
                return Err(StoreError::Corrupt(format!(
                    "intent {id} is not in the outbox; it was finished already or never begun"
                )));
            };
            let mut pairs = pairs_of(&ledger);
            pairs.push(pair);
            pairs.extend(link.iter().map(|l| l.pair.clone()));
            check_fence(&mut tx, fence, pairs.iter().map(String::as_str))?;
            if let Some(link) = &link {
                upsert_link(&mut tx, link)?;
            }
            append_ledger_in(&mut tx, &ledger)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn save_link(&self, link: &Link, ledger: &[LedgerRecord]) -> StoreResult<()> {
        let link = link.clone();
        let ledger = ledger.to_vec();
        let mut pairs = pairs_of(&ledger);
        pairs.push(link.pair.clone());
        self.write(pairs, move |tx| {
            upsert_link(tx, &link)?;
            append_ledger_in(tx, &ledger)
        })
    }

    fn record_failure(&self, failure: &DeadLetter) -> StoreResult<DeadLetter> {
        let failure = failure.clone();
        self.write(vec![failure.pair.clone()], move |tx| {
            let row = tx.query_one(
                &format!(
                    "INSERT INTO dead_letters AS d (pair, incident_id, ticket_key, action,
                         last_error, attempts, first_failed, last_failed, next_attempt)
                     VALUES ($1, $2, $3, $4, $5, 1, $6, $6, $7)
                     ON CONFLICT (pair, incident_id) DO UPDATE SET
                         ticket_key = coalesce(excluded.ticket_key, d.ticket_key),
                         action = excluded.action,
                         last_error = excluded.last_error,
                         attempts = d.attempts + 1,
                         last_failed = excluded.last_failed
                     RETURNING {DEAD_LETTER_COLUMNS}"
                ),
                &[
                    &failure.pair,
                    &failure.incident_id,
                    &failure.ticket_key,
                    &failure.action,
                    &failure.last_error,
                    &time_text(&failure.last_failed),
                    &time_text(&failure.next_attempt),
                ],
            )?;
            dead_letter_from_row(&row)
        })
    }

    fn schedule_retry(&self, pair: &str, incident_id: &str, at: Timestamp) -> StoreResult<()> {
        let (pair, incident_id) = (pair.to_owned(), incident_id.to_owned());
        self.write(vec![pair.clone()], move |tx| {
            tx.execute(
                "UPDATE dead_letters SET next_attempt = $3 WHERE pair = $1 AND incident_id = $2",
                &[&pair, &incident_id, &time_text(&at)],
            )?;
            Ok(())
        })
    }

    fn clear_failure(&self, pair: &str, incident_id: &str) -> StoreResult<bool> {
        let (pair, incident_id) = (pair.to_owned(), incident_id.to_owned());
        self.write(vec![pair.clone()], move |tx| {
            Ok(tx.execute(
                "DELETE FROM dead_letters WHERE pair = $1 AND incident_id = $2",
                &[&pair, &incident_id],
            )? > 0)
        })
    }

    fn dead_letters(
        &self,
        pair: Option<&str>,
        due_by: Option<Timestamp>,
    ) -> StoreResult<Vec<DeadLetter>> {
        let pair = pair.map(str::to_owned);
        let due = due_by.map(|t| time_text(&t));
        self.call(move |client, _| {
            client
                .query(
                    &format!(
                        "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters
                         WHERE ($1::text IS NULL OR pair = $1) AND ($2::text IS NULL OR next_attempt <= $2)
                         ORDER BY pair, next_attempt, incident_id"
                    ),
                    &[&pair, &due],
                )?
                .iter()
                .map(dead_letter_from_row)
                .collect()
        })
    }

    fn synced_comments(&self, pair: &str, incident_id: &str) -> StoreResult<HashSet<String>> {
        let (pair, incident_id) = (pair.to_owned(), incident_id.to_owned());
        self.call(move |client, _| {
            Ok(client
                .query(
                    "SELECT fingerprint FROM synced_comments WHERE pair = $1 AND incident_id = $2",
                    &[&pair, &incident_id],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect())
        })
    }

    fn record_synced_comments(
        &self,
        pair: &str,
        incident_id: &str,
        fingerprints: &[String],
        ledger: &[LedgerRecord],
    ) -> StoreResult<()> {
        let (pair, incident_id) = (pair.to_owned(), incident_id.to_owned());
        let fingerprints = fingerprints.to_vec();
        let ledger = ledger.to_vec();
        let mut pairs = pairs_of(&ledger);
        pairs.push(pair.clone());
        self.write(pairs, move |tx| {
            tx.execute(
                "INSERT INTO synced_comments (pair, incident_id, fingerprint)
                 SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING",
                &[&pair, &incident_id, &fingerprints],
            )?;
            append_ledger_in(tx, &ledger)
        })
    }

    fn append_ledger(&self, records: &[LedgerRecord]) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let records = records.to_vec();
        self.write(pairs_of(&records), move |tx| append_ledger_in(tx, &records))
    }

    /// Streams from one read-only snapshot; `each` runs on the caller's thread
    /// while the store's thread reads ahead (a bounded queue of entries).
    fn for_each_ledger_entry(
        &self,
        filter: &LedgerFilter,
        each: &mut dyn FnMut(LedgerEntry) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let filter = filter.clone();
        let (entries_tx, entries_rx) = mpsc::sync_channel::<LedgerEntry>(256);
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        self.submit(move |client, _| {
            let result =
                stream_ledger(client, &filter, &mut |entry| entries_tx.send(entry).is_ok());
            drop(entries_tx);
            let _ = done_tx.send(result);
        })?;
        for entry in entries_rx.iter() {
            each(entry)?;
        }
        done_rx.recv().unwrap_or_else(|_| {
            Err(StoreError::Unreachable(
                "the PostgreSQL store's thread stopped".into(),
            ))
        })
    }

    /// Streams the whole ledger through a [`ChainVerifier`] on the store's
    /// thread, from one snapshot. A row that cannot be decoded is a break.
    fn verify_ledger(&self) -> StoreResult<VerifyReport> {
        self.call(|client, _| {
            let mut tx = client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let mut verifier = ChainVerifier::new();
            let no_params: [&(dyn ToSql + Sync); 0] = [];
            let mut rows = tx.query_raw(
                &format!("SELECT {LEDGER_COLUMNS} FROM ledger ORDER BY seq"),
                no_params,
            )?;
            use postgres::fallible_iterator::FallibleIterator;
            while let Some(row) = rows.next()? {
                let seq: i64 = row.try_get(0)?;
                match ledger_entry_from_row(&row) {
                    Ok(entry) => verifier.check(&entry),
                    Err(reason) => {
                        let hash = row.try_get::<_, Option<String>>(11).ok().flatten();
                        verifier.undecodable(seq, hash.as_deref(), &reason);
                    }
                }
            }
            Ok(verifier.finish())
        })
    }

    fn ledger_hash_at(&self, seq: i64) -> StoreResult<Option<String>> {
        self.call(move |client, _| {
            Ok(client
                .query_opt("SELECT hash FROM ledger WHERE seq = $1", &[&seq])?
                .map(|row| row.get(0)))
        })
    }

    fn ledger_seq_of(&self, hash: &str) -> StoreResult<Option<i64>> {
        let hash = hash.to_owned();
        self.call(move |client, _| {
            Ok(client
                .query_opt(
                    "SELECT seq FROM ledger WHERE hash = $1 ORDER BY seq LIMIT 1",
                    &[&hash],
                )?
                .map(|row| row.get(0)))
        })
    }

    /// One read-only snapshot, so the counts are of the same moment.
    fn counts(&self) -> StoreResult<StoreCounts> {
        self.call(|client, _| {
            let mut tx = client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let mut links = Vec::new();
            for row in tx.query(
                "SELECT pair, state, COUNT(*) FROM links GROUP BY pair, state ORDER BY pair, state",
                &[],
            )? {
                let pair: String = row.try_get(0)?;
                let state_text: String = row.try_get(1)?;
                let state = parse_link_state(&state_text).ok_or_else(|| {
                    StoreError::Corrupt(format!("links of {pair}: unknown state `{state_text}`"))
                })?;
                links.push((pair, state, row.try_get::<_, i64>(2)?.max(0) as u64));
            }
            let per_pair =
                |tx: &mut Transaction<'_>, sql: &str| -> StoreResult<Vec<(String, u64)>> {
                    tx.query(sql, &[])?
                        .iter()
                        .map(|row| Ok((row.try_get(0)?, row.try_get::<_, i64>(1)?.max(0) as u64)))
                        .collect()
                };
            let dead_letters = per_pair(
                &mut tx,
                "SELECT pair, COUNT(*) FROM dead_letters GROUP BY pair ORDER BY pair",
            )?;
            let pending = per_pair(
                &mut tx,
                "SELECT pair, COUNT(*) FROM outbox GROUP BY pair ORDER BY pair",
            )?;
            let ledger_entries: i64 = tx
                .query_one("SELECT COALESCE(MAX(seq), 0) FROM ledger", &[])?
                .try_get(0)?;
            Ok(StoreCounts {
                links,
                dead_letters,
                pending,
                ledger_entries: ledger_entries.max(0) as u64,
            })
        })
    }

    fn check_append_only(&self) -> StoreResult<()> {
        self.call(|client, _| check_append_only(client))
    }

    fn check_lease(&self, pair: &str) -> StoreResult<()> {
        match &self.fence {
            Some(fence) if !fence.may_write(pair) => Err(StoreError::LostLease {
                pair: pair.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// The lease table as the database has it now, with each lease's time left
    /// by the database's clock.
    fn leases(&self) -> StoreResult<Vec<LeaseInfo>> {
        self.call(|client, _| {
            client
                .query(
                    "SELECT pair, holder, token, \
                     GREATEST(EXTRACT(EPOCH FROM (expires_at - now())), 0)::float8 \
                     FROM leases ORDER BY pair",
                    &[],
                )?
                .iter()
                .map(|row| {
                    Ok(LeaseInfo {
                        pair: row.try_get(0)?,
                        holder: row.try_get(1)?,
                        token: row.try_get(2)?,
                        expires_in: Duration::from_secs_f64(row.try_get::<_, f64>(3)?),
                    })
                })
                .collect()
        })
    }
}
