//! The embedded store: [`SqliteStore`], the [`Store`] on one SQLite file
//! (rusqlite, bundled SQLite), and the small migration runner that brings the
//! file's schema up to date from `migrations/*.sql`, embedded at build time and
//! counted in `PRAGMA user_version`.
//!
//! Timestamps are stored as RFC 3339 UTC text with exactly six fractional digits
//! ([`ledger::canonical_time`]), so text order is time order; anything finer
//! than a microsecond is truncated. Enumerations are stored as their snake_case
//! names and checked when read: a value this version does not know is
//! [`StoreError::Corrupt`], never a silent default.
//!
//! Every write that must be atomic (finishing an intent, saving a link with its
//! ledger records, appending to the ledger) runs in one `BEGIN IMMEDIATE`
//! transaction, which also serialises the ledger's sequence numbers and hash
//! chain between processes sharing the file.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params, params_from_iter,
};
use serde::Serialize;

use super::browse;
use super::{
    DeadLetter, Intent, IntentId, LinkPage, LinkQuery, Side, Store, StoreCounts, StoreError,
    StoreResult, seen_from_json, seen_json,
};
use crate::ledger::{
    self, ChainVerifier, GENESIS_HASH, LedgerEntry, LedgerFilter, LedgerRecord, Outcome,
    VerifyReport,
};
use crate::model::{
    Baseline, Direction, FieldChange, IncidentSnapshot, Link, LinkState, Timestamp,
};

/// The schema migrations, in order: entry `i` takes the database from
/// `user_version` `i` to `i + 1`. Append only; never edit or reorder.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init",
        include_str!("../../../migrations/0001_init.sql"),
    ),
    (
        "0002_dead_letters",
        include_str!("../../../migrations/0002_dead_letters.sql"),
    ),
    (
        "0003_merged_into",
        include_str!("../../../migrations/0003_merged_into.sql"),
    ),
    (
        "0004_synced_comments",
        include_str!("../../../migrations/0004_synced_comments.sql"),
    ),
    (
        "0005_versions",
        include_str!("../../../migrations/0005_versions.sql"),
    ),
    (
        "0006_incidents_seen",
        include_str!("../../../migrations/0006_incidents_seen.sql"),
    ),
    (
        "0007_ledger_actors",
        include_str!("../../../migrations/0007_ledger_actors.sql"),
    ),
];

/// The ledger's append-only triggers as `migrations/0001_init.sql` creates them;
/// a store whose triggers differ is refused for writing.
const APPEND_ONLY_TRIGGERS: [(&str, &str); 2] = [
    (
        "ledger_no_update",
        "CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger BEGIN \
         SELECT RAISE(ABORT, 'the ledger is append-only'); END",
    ),
    (
        "ledger_no_delete",
        "CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger BEGIN \
         SELECT RAISE(ABORT, 'the ledger is append-only'); END",
    ),
];

/// The tables every itsm-bridge store has had since migration 0001.
const STORE_TABLES: [&str; 4] = ["links", "watermarks", "outbox", "ledger"];

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The most bound parameters one statement gets (SQLite's historical limit is 999).
const MAX_PARAMS_PER_STATEMENT: usize = 500;

const LINK_COLUMNS: &str = "pair, incident_id, incident_display_id, incident_url, ticket_key, \
     ticket_id, ticket_url, state, baseline, written_back, incident_modified, ticket_modified, \
     created, updated, merged_into, incident_version, ticket_version";

const LEDGER_COLUMNS: &str = "seq, time, pair, direction, action, incident_id, ticket_key, \
     changes, outcome, detail, prev_hash, hash, actors";

/// The [`Store`] on one SQLite database (a file, or memory for tests).
///
/// One connection behind a mutex: calls are serialised within the process, and
/// SQLite's locking (WAL mode, a busy timeout) handles other processes, such as
/// `itsm-bridge ledger list` reading while the daemon runs.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Forgets which comments were carried across, as a crash between writing a
    /// copy and recording it would. For tests of that crash.
    #[cfg(test)]
    pub(crate) fn forget_synced_comments_for_tests(&self) {
        self.conn()
            .execute("DELETE FROM synced_comments", [])
            .expect("delete");
    }

    /// Opens (creating if needed) the database at `path` for writing: checks it,
    /// migrates it to the current schema, and checks that the ledger is still
    /// append-only. The caller holds the store's [`StoreLock`](super::StoreLock).
    ///
    /// Missing parent directories are created owner-only (0700 on unix). A new
    /// database file is created readable and writable by its owner only (0600;
    /// SQLite gives its `-wal` and `-shm` files the same mode); an existing one
    /// that other users may read or write is opened with a warning. Before
    /// anything is written, an existing file is checked with `PRAGMA
    /// quick_check` (a damaged one is [`StoreError::Damaged`]) and must be an
    /// itsm-bridge store or empty ([`StoreError::NotAStore`]). A database written
    /// by a newer itsm-bridge (a schema version this build does not know) is
    /// refused with [`StoreError::Corrupt`]; one whose append-only triggers were
    /// dropped or changed with [`StoreError::Tampered`].
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        warn_if_exposed(path);
        if !path.exists() {
            create_migrated(path)?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        quick_check(&conn, path)?;
        refuse_foreign(&conn, path)?;
        let store = SqliteStore::init(conn, true)?;
        store.check_append_only()?;
        Ok(store)
    }

    /// Opens an existing store for reading only (`SQLITE_OPEN_READ_ONLY`), for
    /// the commands that only read (`links`, `ledger list|export|verify`, the
    /// dashboard). Nothing is created, migrated or written: a missing file is an
    /// I/O error, and a file that is not an itsm-bridge store (not SQLite, no
    /// schema version, or without the store's tables) is
    /// [`StoreError::NotAStore`], left as it was. A store at an older schema
    /// version is refused ([`StoreError::Corrupt`]): it is migrated by `run`.
    pub fn open_read_only(path: &Path) -> StoreResult<SqliteStore> {
        if !path.is_file() {
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{}: no such database file", path.display()),
            )));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let not_a_store = |why: &str| {
            StoreError::NotAStore(format!(
                "{}: {why}; it is not an itsm-bridge store, and was left as it is (pass the \
                 database named by [store] path)",
                path.display()
            ))
        };
        let version: i64 = match conn.pragma_query_value(None, "user_version", |row| row.get(0)) {
            Ok(version) => version,
            Err(e) if is_not_a_database(&e) => return Err(not_a_store("not an SQLite database")),
            Err(e) => return Err(e.into()),
        };
        if version == 0 {
            return Err(not_a_store("no itsm-bridge schema in it (user_version 0)"));
        }
        schema_version(&conn)?;
        let missing = missing_tables(&conn)?;
        if !missing.is_empty() {
            return Err(not_a_store(&format!(
                "no {} table in it",
                missing.join(", ")
            )));
        }
        let known = MIGRATIONS.len() as i64;
        if version < known {
            return Err(StoreError::Corrupt(format!(
                "{}: the store is at schema version {version} and this itsm-bridge reads \
                 version {known}; run `itsm-bridge run --once` on it once to migrate it, or \
                 read it with the itsm-bridge that wrote it",
                path.display()
            )));
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    /// Whether the ledger's append-only triggers are there as migration 0001
    /// made them: [`StoreError::Tampered`] if one was dropped or changed.
    pub fn check_append_only(&self) -> StoreResult<()> {
        let conn = self.conn();
        let mut problems = Vec::new();
        for (name, expected) in APPEND_ONLY_TRIGGERS {
            let sql: Option<String> = conn
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?1 \
                     AND tbl_name = 'ledger'",
                    [name],
                    |row| row.get(0),
                )
                .optional()?;
            match sql {
                None => problems.push(format!("{name} is missing")),
                Some(sql) if normalise_sql(&sql) != normalise_sql(expected) => {
                    problems.push(format!("{name} was changed"))
                }
                Some(_) => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Tampered(format!(
                "the ledger's append-only triggers were tampered with ({}); someone edited \
                 the store behind the bridge's back: keep it for investigation, check it with \
                 `itsm-bridge ledger verify --checkpoint`, and restore the store from a backup",
                problems.join(", ")
            )))
        }
    }

    /// A fresh database in memory, for tests and `--dry-run`.
    pub fn open_in_memory() -> StoreResult<SqliteStore> {
        let conn = Connection::open_in_memory()?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        SqliteStore::init(conn, false)
    }

    fn init(mut conn: Connection, on_disk: bool) -> StoreResult<SqliteStore> {
        // WAL lets readers (the CLI, the dashboard) run beside the daemon's writes;
        // with WAL, synchronous=NORMAL is durable across application crashes and
        // only risks the last transactions on power loss, never corruption.
        let journal_mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if on_disk && !journal_mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                journal_mode = %journal_mode,
                "the store could not switch to WAL mode; readers may block the daemon"
            );
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    /// The connection. A panic while it was held (in a `for_each_ledger_entry`
    /// callback, say) leaves it usable: any open transaction was rolled back when
    /// the panic dropped it, so poisoning is ignored.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Creates `path` with owner-only permissions if it does not exist, so SQLite
/// opens a private file instead of creating one with the process umask; the
/// directories it creates on the way are owner-only too (0700).
/// Makes a new store at `path` in one step: migrated under a name of its own
/// beside it, then renamed into place. A reader (`links`, the dashboard) never
/// finds a store that exists but has no schema yet. The caller holds the
/// store's lock, so no other writer races for the name.
fn create_migrated(path: &Path) -> StoreResult<()> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".creating-{}", std::process::id()));
    let creating = std::path::PathBuf::from(name);
    let _ = std::fs::remove_file(&creating);
    create_private_file(&creating)?;
    let made = Connection::open(&creating)
        .map_err(StoreError::from)
        .and_then(|conn| SqliteStore::init(conn, true));
    match made {
        // Dropping the store closes its connection, which folds the WAL back
        // into the file and removes it.
        Ok(store) => drop(store),
        Err(e) => {
            let _ = std::fs::remove_file(&creating);
            return Err(e);
        }
    }
    std::fs::rename(&creating, path).map_err(|e| {
        StoreError::Io(std::io::Error::new(
            e.kind(),
            format!("cannot move the new store into {}: {e}", path.display()),
        ))
    })
}

fn create_private_file(path: &Path) -> StoreResult<()> {
    let io_error = |action: &str, target: &Path, e: std::io::Error| {
        StoreError::Io(std::io::Error::new(
            e.kind(),
            format!("cannot {action} {}: {e}", target.display()),
        ))
    };
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        create_private_dir(parent).map_err(|e| io_error("create directory", parent, e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        // SQLite treats an empty file as an empty database.
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_error("create database file", path, e)),
    }
}

/// Creates `dir` and its missing parents owner-only (0700 on unix): they hold
/// the store, its lock and its write-ahead log. Existing folders are left as
/// they are.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Warns when an existing store may be read or written by users other than its
/// owner: it holds the mapping table and the ledger.
fn warn_if_exposed(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = std::fs::metadata(path) {
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = %format!("{mode:03o}"),
                    "the store can be read by other users; run chmod 600 on it (and its -wal and -shm files)"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// `PRAGMA quick_check` before anything is written: a damaged file (a broken
/// page, a file that is not SQLite) is refused as it is.
fn quick_check(conn: &Connection, path: &Path) -> StoreResult<()> {
    let damaged = |why: String| StoreError::Damaged(format!("{}: {why}", path.display()));
    let lines: Result<Vec<String>, rusqlite::Error> = conn
        .prepare("PRAGMA quick_check(10)")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get::<_, String>(0))?
                .collect()
        });
    match lines {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Ok(()),
        Ok(lines) => Err(damaged(format!("quick_check: {}", lines.join("; ")))),
        Err(e)
            if is_not_a_database(&e)
                || e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseCorrupt) =>
        {
            Err(damaged(e.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Refuses to migrate a database some other program made: schema version 0
/// with tables in it. An empty file (a new store) passes.
fn refuse_foreign(conn: &Connection, path: &Path) -> StoreResult<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version != 0 {
        return Ok(());
    }
    let objects: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
        [],
        |row| row.get(0),
    )?;
    if objects > 0 {
        return Err(StoreError::NotAStore(format!(
            "{}: an SQLite database without the itsm-bridge schema; it was left as it is: \
             point [store] path at a new file or at the bridge's own store",
            path.display()
        )));
    }
    Ok(())
}

fn is_not_a_database(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase)
}

/// The store tables missing from a database.
fn missing_tables(conn: &Connection) -> StoreResult<Vec<&'static str>> {
    let mut missing = Vec::new();
    for table in STORE_TABLES {
        let found: i64 = conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |row| row.get(0),
        )?;
        if found == 0 {
            missing.push(table);
        }
    }
    Ok(missing)
}

/// SQL text compared without regard to whitespace or a final `;`.
fn normalise_sql(sql: &str) -> String {
    sql.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches(';')
        .trim_end()
        .to_owned()
}

/// Applies the migrations the database has not seen yet, each in its own
/// transaction together with the `user_version` bump.
fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let known = MIGRATIONS.len() as i64;
    // Checked outside a write transaction first, so an up-to-date database (or a
    // read-only copy handed to an auditor) is opened without taking a write lock.
    if schema_version(conn)? == known {
        return Ok(());
    }
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Read again under the write lock: another process may have migrated.
        let version = schema_version(&tx)?;
        if version == known {
            return Ok(());
        }
        // `schema_version` has ruled out anything outside 0..known.
        let (name, sql) = MIGRATIONS[version as usize];
        if let Err(e) = tx.execute_batch(sql) {
            tracing::error!(migration = name, error = %e, "store migration failed");
            return Err(e.into());
        }
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
        tracing::info!(
            migration = name,
            version = version + 1,
            "applied store migration"
        );
    }
}

/// The database's schema version, refused if this build cannot handle it.
fn schema_version(conn: &Connection) -> StoreResult<i64> {
    let known = MIGRATIONS.len() as i64;
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > known {
        return Err(StoreError::Corrupt(format!(
            "database schema version {version} is newer than this itsm-bridge supports \
             ({known}); upgrade itsm-bridge"
        )));
    }
    if version < 0 {
        return Err(StoreError::Corrupt(format!(
            "database schema version {version} is not one itsm-bridge ever wrote; \
             is this an itsm-bridge database?"
        )));
    }
    Ok(version)
}

pub(super) fn time_text(time: &Timestamp) -> String {
    ledger::canonical_time(time)
}

/// A remote modification time, kept exactly as the remote stamped it: Graph and
/// Sentinel stamp to 100 ns, and a time cut to microseconds would make the same
/// snapshot look newer than its link on every poll of the overlap window.
pub(super) fn remote_time_text(time: &Timestamp) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

pub(super) fn parse_time(column: &str, text: &str) -> Result<Timestamp, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|e| format!("{column} {text:?} is not an RFC 3339 time: {e}"))
}

pub(super) fn to_json<T: Serialize>(value: &T, what: &str) -> StoreResult<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode {what} as JSON: {e}")))
}

pub(super) fn parse_link_state(text: &str) -> Option<LinkState> {
    match text {
        "active" => Some(LinkState::Active),
        "merged" => Some(LinkState::Merged),
        _ => None,
    }
}

pub(super) fn parse_direction(text: &str) -> Option<Direction> {
    match text {
        "to_ticket" => Some(Direction::ToTicket),
        "to_incident" => Some(Direction::ToIncident),
        _ => None,
    }
}

pub(super) fn parse_outcome(text: &str) -> Option<Outcome> {
    match text {
        "ok" => Some(Outcome::Ok),
        "failed" => Some(Outcome::Failed),
        "skipped" => Some(Outcome::Skipped),
        _ => None,
    }
}

/// Decodes a row selected with [`LINK_COLUMNS`].
fn link_from_row(row: &Row<'_>) -> StoreResult<Link> {
    let pair: String = row.get(0)?;
    let incident_id: String = row.get(1)?;
    let corrupt = |what: String| StoreError::Corrupt(format!("link {pair} {incident_id}: {what}"));
    let state_text: String = row.get(7)?;
    let state = parse_link_state(&state_text)
        .ok_or_else(|| corrupt(format!("unknown state {state_text:?}")))?;
    let baseline_text: String = row.get(8)?;
    let baseline: Baseline = serde_json::from_str(&baseline_text)
        .map_err(|e| corrupt(format!("the baseline is not readable: {e}")))?;
    let time = |index: usize, column: &str| -> StoreResult<Timestamp> {
        let text: String = row.get(index)?;
        parse_time(column, &text).map_err(corrupt)
    };
    let incident_modified = time(10, "incident_modified")?;
    let ticket_modified = time(11, "ticket_modified")?;
    let created = time(12, "created")?;
    let updated = time(13, "updated")?;
    let merged_into: Option<String> = row.get(14)?;
    Ok(Link {
        merged_into,
        incident_version: row.get(15)?,
        ticket_version: row.get(16)?,
        incident_display_id: row.get(2)?,
        incident_url: row.get(3)?,
        ticket_key: row.get(4)?,
        ticket_id: row.get(5)?,
        ticket_url: row.get(6)?,
        state,
        baseline,
        written_back: row.get(9)?,
        incident_modified,
        ticket_modified,
        created,
        updated,
        pair,
        incident_id,
    })
}

/// Decodes a row selected with [`LEDGER_COLUMNS`]; the error says what is wrong
/// with it (for `verify_ledger`, a break in the chain rather than a failure).
fn ledger_entry_from_row(row: &Row<'_>) -> Result<LedgerEntry, String> {
    let text = |index: usize| row.get::<_, String>(index).map_err(|e| e.to_string());
    let optional_text = |index: usize| {
        row.get::<_, Option<String>>(index)
            .map_err(|e| e.to_string())
    };

    let seq: i64 = row.get(0).map_err(|e| e.to_string())?;
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

/// Inserts or replaces the link of (`link.pair`, `link.incident_id`).
fn upsert_link(conn: &Connection, link: &Link) -> StoreResult<()> {
    let baseline = to_json(&link.baseline, "the link baseline")?;
    let mut statement = conn.prepare_cached(&format!(
        "INSERT INTO links ({LINK_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
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
    ))?;
    statement.execute(params![
        link.pair,
        link.incident_id,
        link.incident_display_id,
        link.incident_url,
        link.ticket_key,
        link.ticket_id,
        link.ticket_url,
        link.state.as_str(),
        baseline,
        link.written_back,
        remote_time_text(&link.incident_modified),
        remote_time_text(&link.ticket_modified),
        time_text(&link.created),
        time_text(&link.updated),
        link.merged_into,
        link.incident_version,
        link.ticket_version,
    ])?;
    Ok(())
}

/// Appends `records` after the current last entry. Must run inside a write
/// (`IMMEDIATE`) transaction so that reading the chain's head and appending to
/// it cannot interleave with another writer.
fn append_ledger_in(conn: &Connection, records: &[LedgerRecord]) -> StoreResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    let head: Option<(i64, String)> = conn
        .query_row(
            "SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let (mut seq, mut prev_hash) = head.unwrap_or_else(|| (0, GENESIS_HASH.to_owned()));
    let mut insert = conn.prepare_cached(&format!(
        "INSERT INTO ledger ({LEDGER_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    ))?;
    for record in records {
        seq += 1;
        let hash = ledger::entry_hash(&prev_hash, seq, record);
        let changes = to_json(&record.changes, "the ledger changes")?;
        let actors = match record.actors.is_empty() {
            true => None,
            false => Some(to_json(&record.actors, "the ledger actors")?),
        };
        insert.execute(params![
            seq,
            ledger::canonical_time(&record.time),
            record.pair,
            record.direction.map(Direction::as_str),
            record.action,
            record.incident_id,
            record.ticket_key,
            changes,
            record.outcome.as_str(),
            record.detail,
            prev_hash,
            hash,
            actors,
        ])?;
        prev_hash = hash;
    }
    Ok(())
}

fn where_clause(conditions: &[&str]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

impl Store for SqliteStore {
    fn link(&self, pair: &str, incident_id: &str) -> StoreResult<Option<Link>> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {LINK_COLUMNS} FROM links WHERE pair = ?1 AND incident_id = ?2"
        ))?;
        let mut rows = statement.query(params![pair, incident_id])?;
        rows.next()?.map(link_from_row).transpose()
    }

    /// If several links of the pair carry the key, the active one wins, then the
    /// most recently updated.
    fn link_by_ticket(&self, pair: &str, ticket_key: &str) -> StoreResult<Option<Link>> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {LINK_COLUMNS} FROM links WHERE pair = ?1 AND ticket_key = ?2
             ORDER BY state = 'active' DESC, updated DESC LIMIT 1"
        ))?;
        let mut rows = statement.query(params![pair, ticket_key])?;
        rows.next()?.map(link_from_row).transpose()
    }

    fn links_for_incidents(&self, pair: &str, incident_ids: &[String]) -> StoreResult<Vec<Link>> {
        // Deduplicated, so an id repeated across two chunks yields its link once.
        let unique: Vec<&str> = incident_ids
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let conn = self.conn();
        let mut links = Vec::with_capacity(unique.len());
        // One parameter per statement is the pair.
        for chunk in unique.chunks(MAX_PARAMS_PER_STATEMENT - 1) {
            let placeholders = vec!["?"; chunk.len()].join(", ");
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {LINK_COLUMNS} FROM links WHERE pair = ? AND incident_id IN ({placeholders})"
            ))?;
            let mut rows = statement.query(params_from_iter(
                std::iter::once(pair).chain(chunk.iter().copied()),
            ))?;
            while let Some(row) = rows.next()? {
                links.push(link_from_row(row)?);
            }
        }
        Ok(links)
    }

    fn save_incidents_seen(&self, pair: &str, incidents: &[IncidentSnapshot]) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut statement = tx.prepare_cached(
                "INSERT INTO incidents_seen (pair, incident_id, snapshot) VALUES (?1, ?2, ?3)
                 ON CONFLICT (pair, incident_id) DO UPDATE SET snapshot = excluded.snapshot",
            )?;
            for incident in incidents {
                statement.execute(params![pair, incident.id, seen_json(incident)?])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn incidents_seen(
        &self,
        pair: &str,
        incident_ids: &[String],
    ) -> StoreResult<Vec<IncidentSnapshot>> {
        let conn = self.conn();
        let mut out = Vec::with_capacity(incident_ids.len());
        for chunk in incident_ids.chunks(MAX_PARAMS_PER_STATEMENT - 1) {
            let placeholders = vec!["?"; chunk.len()].join(", ");
            let mut statement = conn.prepare_cached(&format!(
                "SELECT snapshot FROM incidents_seen WHERE pair = ? AND incident_id IN ({placeholders})"
            ))?;
            let mut rows = statement.query(params_from_iter(
                std::iter::once(pair).chain(chunk.iter().map(String::as_str)),
            ))?;
            while let Some(row) = rows.next()? {
                let text: String = row.get(0)?;
                out.push(seen_from_json(&text)?);
            }
        }
        Ok(out)
    }

    fn newest_ticket_key(&self, pair: &str) -> StoreResult<Option<String>> {
        let conn = self.conn();
        let key = conn
            .prepare_cached(
                "SELECT ticket_key FROM links WHERE pair = ?1 ORDER BY created DESC LIMIT 1",
            )?
            .query_row([pair], |row| row.get(0))
            .optional()?;
        Ok(key)
    }

    fn links(&self, pair: Option<&str>) -> StoreResult<Vec<Link>> {
        let conn = self.conn();
        // Two statements rather than `?1 IS NULL OR pair = ?1`, which the planner
        // cannot serve from the primary key index.
        let (mut statement, values) = match pair {
            Some(pair) => (
                conn.prepare_cached(&format!(
                    "SELECT {LINK_COLUMNS} FROM links WHERE pair = ?1 ORDER BY pair, incident_id"
                ))?,
                vec![pair],
            ),
            None => (
                conn.prepare_cached(&format!(
                    "SELECT {LINK_COLUMNS} FROM links ORDER BY pair, incident_id"
                ))?,
                vec![],
            ),
        };
        let mut rows = statement.query(params_from_iter(values))?;
        let mut links = Vec::new();
        while let Some(row) = rows.next()? {
            links.push(link_from_row(row)?);
        }
        Ok(links)
    }

    fn link_page(&self, query: &LinkQuery) -> StoreResult<LinkPage> {
        let (filter, values) = browse::where_clause(query, browse::Dialect::Sqlite);
        let conn = self.conn();
        let total: i64 = conn
            .prepare_cached(&format!("SELECT count(*) FROM links WHERE {filter}"))?
            .query_row(params_from_iter(&values), |row| row.get(0))?;
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {LINK_COLUMNS} FROM links WHERE {filter} ORDER BY pair, incident_id LIMIT {} OFFSET {}",
            query.limit.min(i64::MAX as u64),
            query.offset.min(i64::MAX as u64)
        ))?;
        let mut rows = statement.query(params_from_iter(&values))?;
        let mut links = Vec::new();
        while let Some(row) = rows.next()? {
            links.push(link_from_row(row)?);
        }
        Ok(LinkPage {
            links,
            total: total as u64,
        })
    }

    fn watermark(&self, pair: &str, side: Side) -> StoreResult<Option<Timestamp>> {
        let conn = self.conn();
        let text: Option<String> = conn
            .prepare_cached("SELECT at FROM watermarks WHERE pair = ?1 AND side = ?2")?
            .query_row(params![pair, side.as_str()], |row| row.get(0))
            .optional()?;
        text.map(|text| {
            parse_time("at", &text).map_err(|e| {
                StoreError::Corrupt(format!("watermark {pair} {}: {e}", side.as_str()))
            })
        })
        .transpose()
    }

    fn set_watermark(&self, pair: &str, side: Side, at: Timestamp) -> StoreResult<()> {
        let conn = self.conn();
        conn.prepare_cached(
            "INSERT INTO watermarks (pair, side, at) VALUES (?1, ?2, ?3)
             ON CONFLICT (pair, side) DO UPDATE SET at = excluded.at",
        )?
        .execute(params![pair, side.as_str(), remote_time_text(&at)])?;
        Ok(())
    }

    fn begin_intent(&self, intent: &Intent) -> StoreResult<IntentId> {
        let conn = self.conn();
        conn.prepare_cached(
            "INSERT INTO outbox (pair, incident_id, kind, payload, created, known_ticket)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            intent.pair,
            intent.incident_id,
            intent.kind,
            intent.payload,
            time_text(&intent.created),
            intent.known_ticket,
        ])?;
        Ok(conn.last_insert_rowid())
    }

    /// Oldest first, the order they were begun in.
    fn pending_intents(&self) -> StoreResult<Vec<(IntentId, Intent)>> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT id, pair, incident_id, kind, payload, created, known_ticket
             FROM outbox ORDER BY id",
        )?;
        let mut rows = statement.query([])?;
        let mut intents = Vec::new();
        while let Some(row) = rows.next()? {
            let id: IntentId = row.get(0)?;
            let created_text: String = row.get(5)?;
            let created = parse_time("created", &created_text)
                .map_err(|e| StoreError::Corrupt(format!("intent {id}: {e}")))?;
            let intent = Intent {
                pair: row.get(1)?,
                incident_id: row.get(2)?,
                kind: row.get(3)?,
                payload: row.get(4)?,
                created,
                known_ticket: row.get(6)?,
            };
            intents.push((id, intent));
        }
        Ok(intents)
    }

    /// Fails, changing nothing, if intent `id` is not in the outbox (it was
    /// finished already): finishing twice would record its effect twice.
    fn finish_intent(
        &self,
        id: IntentId,
        link: Option<&Link>,
        ledger: &[LedgerRecord],
    ) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let removed = tx
            .prepare_cached("DELETE FROM outbox WHERE id = ?1")?
            .execute([id])?;
        if removed == 0 {
            return Err(StoreError::Corrupt(format!(
                "intent {id} is not in the outbox; it was finished already or never begun"
            )));
        }
        if let Some(link) = link {
            upsert_link(&tx, link)?;
        }
        append_ledger_in(&tx, ledger)?;
        tx.commit()?;
        Ok(())
    }

    fn save_link(&self, link: &Link, ledger: &[LedgerRecord]) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        upsert_link(&tx, link)?;
        append_ledger_in(&tx, ledger)?;
        tx.commit()?;
        Ok(())
    }

    fn record_failure(&self, failure: &DeadLetter) -> StoreResult<DeadLetter> {
        let conn = self.conn();
        conn.prepare_cached(
            "INSERT INTO dead_letters (pair, incident_id, ticket_key, action, last_error,
                                       attempts, first_failed, last_failed, next_attempt)
             VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6, ?7)
             ON CONFLICT (pair, incident_id) DO UPDATE SET
                 ticket_key = coalesce(excluded.ticket_key, ticket_key),
                 action = excluded.action,
                 last_error = excluded.last_error,
                 attempts = attempts + 1,
                 last_failed = excluded.last_failed",
        )?
        .execute(params![
            failure.pair,
            failure.incident_id,
            failure.ticket_key,
            failure.action,
            failure.last_error,
            time_text(&failure.last_failed),
            time_text(&failure.next_attempt),
        ])?;
        let stored = conn
            .prepare_cached(&format!(
                "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE pair = ?1 AND incident_id = ?2"
            ))?
            .query_row(params![failure.pair, failure.incident_id], |row| {
                Ok(dead_letter_from_row(row))
            })??;
        Ok(stored)
    }

    fn schedule_retry(&self, pair: &str, incident_id: &str, at: Timestamp) -> StoreResult<()> {
        self.conn()
            .prepare_cached(
                "UPDATE dead_letters SET next_attempt = ?3 WHERE pair = ?1 AND incident_id = ?2",
            )?
            .execute(params![pair, incident_id, time_text(&at)])?;
        Ok(())
    }

    fn clear_failure(&self, pair: &str, incident_id: &str) -> StoreResult<bool> {
        let n = self
            .conn()
            .prepare_cached("DELETE FROM dead_letters WHERE pair = ?1 AND incident_id = ?2")?
            .execute(params![pair, incident_id])?;
        Ok(n > 0)
    }

    fn dead_letters(
        &self,
        pair: Option<&str>,
        due_by: Option<Timestamp>,
    ) -> StoreResult<Vec<DeadLetter>> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters
             WHERE (?1 IS NULL OR pair = ?1) AND (?2 IS NULL OR next_attempt <= ?2)
             ORDER BY pair, next_attempt, incident_id"
        ))?;
        let due = due_by.map(|t| time_text(&t));
        let mut rows = statement.query(params![pair, due])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(dead_letter_from_row(row)?);
        }
        Ok(out)
    }

    fn synced_comments(&self, pair: &str, incident_id: &str) -> StoreResult<HashSet<String>> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT fingerprint FROM synced_comments WHERE pair = ?1 AND incident_id = ?2",
        )?;
        let rows = statement.query_map(params![pair, incident_id], |row| row.get(0))?;
        let mut out = HashSet::new();
        for row in rows {
            out.insert(row?);
        }
        Ok(out)
    }

    fn record_synced_comments(
        &self,
        pair: &str,
        incident_id: &str,
        fingerprints: &[String],
        ledger: &[LedgerRecord],
    ) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut statement = tx.prepare_cached(
                "INSERT OR IGNORE INTO synced_comments (pair, incident_id, fingerprint) VALUES (?1, ?2, ?3)",
            )?;
            for fingerprint in fingerprints {
                statement.execute(params![pair, incident_id, fingerprint])?;
            }
        }
        append_ledger_in(&tx, ledger)?;
        tx.commit()?;
        Ok(())
    }

    fn append_ledger(&self, records: &[LedgerRecord]) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        append_ledger_in(&tx, records)?;
        tx.commit()?;
        Ok(())
    }

    /// Reads inside one read transaction (a consistent snapshot) and holds the
    /// store while `each` runs, so `each` must not call back into this store. An
    /// entry that cannot be decoded ends the listing with [`StoreError::Corrupt`]
    /// (`verify_ledger` says more).
    fn for_each_ledger_entry(
        &self,
        filter: &LedgerFilter,
        each: &mut dyn FnMut(LedgerEntry) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let mut conditions: Vec<&str> = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        if let Some(pair) = &filter.pair {
            conditions.push("pair = ?");
            values.push(Value::Text(pair.clone()));
        }
        if let Some(incident_id) = &filter.incident_id {
            conditions.push("incident_id = ?");
            values.push(Value::Text(incident_id.clone()));
        }
        if let Some(ticket_key) = &filter.ticket_key {
            conditions.push("ticket_key = ?");
            values.push(Value::Text(ticket_key.clone()));
        }
        if let Some(action) = &filter.action {
            conditions.push("action = ?");
            values.push(Value::Text(action.clone()));
        }
        if let Some(actor) = &filter.actor {
            conditions.push(
                "EXISTS (SELECT 1 FROM json_each(ledger.actors) \
                 WHERE json_extract(json_each.value, '$.name') = ?)",
            );
            values.push(Value::Text(actor.clone()));
        }
        // Fixed-width UTC text: string order is time order.
        if let Some(since) = &filter.since {
            conditions.push("time >= ?");
            values.push(Value::Text(time_text(since)));
        }
        if let Some(until) = &filter.until {
            conditions.push("time < ?");
            values.push(Value::Text(time_text(until)));
        }

        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if let Some(limit) = filter.limit {
            // The newest `limit` matches are those from the limit-th newest on; find
            // its seq first so the listing itself streams oldest first.
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let first: Option<i64> = tx.query_row(
                &format!(
                    "SELECT MIN(seq) FROM (SELECT seq FROM ledger{} ORDER BY seq DESC LIMIT ?)",
                    where_clause(&conditions)
                ),
                params_from_iter(values.iter().cloned().chain([Value::Integer(limit)])),
                |row| row.get(0),
            )?;
            let Some(first) = first else {
                return Ok(());
            };
            conditions.push("seq >= ?");
            values.push(Value::Integer(first));
        }

        let mut statement = tx.prepare(&format!(
            "SELECT {LEDGER_COLUMNS} FROM ledger{} ORDER BY seq",
            where_clause(&conditions)
        ))?;
        let mut rows = statement.query(params_from_iter(values))?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let entry = ledger_entry_from_row(row).map_err(|reason| {
                StoreError::Corrupt(format!(
                    "ledger entry {seq}: {reason}; run `itsm-bridge ledger verify`"
                ))
            })?;
            each(entry)?;
        }
        Ok(())
    }

    /// Streams the whole ledger through a [`ChainVerifier`]. A row that cannot be
    /// decoded is a break in the chain, not an error.
    fn verify_ledger(&self) -> StoreResult<VerifyReport> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut statement =
            tx.prepare(&format!("SELECT {LEDGER_COLUMNS} FROM ledger ORDER BY seq"))?;
        let mut rows = statement.query([])?;
        let mut verifier = ChainVerifier::new();
        while let Some(row) = rows.next()? {
            // `seq` is the rowid: always an integer.
            let seq: i64 = row.get(0)?;
            match ledger_entry_from_row(row) {
                Ok(entry) => verifier.check(&entry),
                Err(reason) => {
                    let hash = row.get::<_, Option<String>>(11).ok().flatten();
                    verifier.undecodable(seq, hash.as_deref(), &reason);
                }
            }
        }
        Ok(verifier.finish())
    }

    fn ledger_hash_at(&self, seq: i64) -> StoreResult<Option<String>> {
        Ok(self
            .conn()
            .prepare_cached("SELECT hash FROM ledger WHERE seq = ?1")?
            .query_row([seq], |row| row.get(0))
            .optional()?)
    }

    /// A scan of the hash column: the ledger has no index on it, and this is an
    /// auditor's question, asked once.
    fn ledger_seq_of(&self, hash: &str) -> StoreResult<Option<i64>> {
        Ok(self
            .conn()
            .prepare_cached("SELECT seq FROM ledger WHERE hash = ?1 ORDER BY seq LIMIT 1")?
            .query_row([hash], |row| row.get(0))
            .optional()?)
    }

    /// One read transaction, so the counts are of the same moment. The links
    /// are counted by pair and state without decoding a baseline; the ledger's
    /// length is its last `seq`, which has no gaps (the triggers refuse deletes,
    /// `verify_ledger` reports a gap), so it costs one index lookup however long
    /// the ledger is.
    fn check_append_only(&self) -> StoreResult<()> {
        SqliteStore::check_append_only(self)
    }

    fn counts(&self) -> StoreResult<StoreCounts> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut links = Vec::new();
        {
            let mut statement = tx.prepare_cached(
                "SELECT pair, state, COUNT(*) FROM links GROUP BY pair, state ORDER BY pair, state",
            )?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let pair: String = row.get(0)?;
                let state_text: String = row.get(1)?;
                let state = parse_link_state(&state_text).ok_or_else(|| {
                    StoreError::Corrupt(format!("links of {pair}: unknown state `{state_text}`"))
                })?;
                links.push((pair, state, row.get::<_, i64>(2)?.max(0) as u64));
            }
        }
        let mut dead_letters = Vec::new();
        {
            let mut statement = tx.prepare_cached(
                "SELECT pair, COUNT(*) FROM dead_letters GROUP BY pair ORDER BY pair",
            )?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                dead_letters.push((row.get(0)?, row.get::<_, i64>(1)?.max(0) as u64));
            }
        }
        let mut pending = Vec::new();
        {
            let mut statement =
                tx.prepare_cached("SELECT pair, COUNT(*) FROM outbox GROUP BY pair ORDER BY pair")?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                pending.push((row.get(0)?, row.get::<_, i64>(1)?.max(0) as u64));
            }
        }
        let ledger_entries: i64 =
            tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM ledger", [], |row| {
                row.get(0)
            })?;
        Ok(StoreCounts {
            links,
            dead_letters,
            pending,
            ledger_entries: ledger_entries.max(0) as u64,
        })
    }
}

const DEAD_LETTER_COLUMNS: &str = "pair, incident_id, ticket_key, action, last_error, attempts, \
     first_failed, last_failed, next_attempt";

fn dead_letter_from_row(row: &rusqlite::Row<'_>) -> StoreResult<DeadLetter> {
    let time = |i: usize, name: &str| -> StoreResult<Timestamp> {
        let text: String = row.get(i)?;
        parse_time(name, &text).map_err(|e| StoreError::Corrupt(format!("dead letter {name}: {e}")))
    };
    Ok(DeadLetter {
        pair: row.get(0)?,
        incident_id: row.get(1)?,
        ticket_key: row.get(2)?,
        action: row.get(3)?,
        last_error: row.get(4)?,
        attempts: row.get::<_, i64>(5)? as u32,
        first_failed: time(6, "first_failed")?,
        last_failed: time(7, "last_failed")?,
        next_attempt: time(8, "next_attempt")?,
    })
}

#[cfg(test)]
mod tests {

    use sha2::Digest;

    use super::*;
    use crate::model::Agreed;
    use crate::store::suite::{at, entries, record};

    fn link(pair: &str, incident_id: &str, ticket_key: &str) -> Link {
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
            ticket_version: None,
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

    fn intent(incident_id: &str) -> Intent {
        Intent {
            known_ticket: None,
            pair: "defender->jira".to_owned(),
            incident_id: incident_id.to_owned(),
            kind: "create_ticket".to_owned(),
            payload: r#"{"summary":"x"}"#.to_owned(),
            created: at(5),
        }
    }

    fn store_with_ledger(count: i64) -> SqliteStore {
        let store = SqliteStore::open_in_memory().unwrap();
        let records: Vec<_> = (0..count)
            .map(|i| record("defender->jira", "1", i))
            .collect();
        store.append_ledger(&records).unwrap();
        store
    }

    fn drop_ledger_triggers(store: &SqliteStore) {
        store
            .conn()
            .execute_batch("DROP TRIGGER ledger_no_update; DROP TRIGGER ledger_no_delete;")
            .unwrap();
    }

    fn user_version(store: &SqliteStore) -> i64 {
        store
            .conn()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn store_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SqliteStore>();
    }

    #[test]
    fn migrations_apply_and_reopen_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bridge.db");
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(user_version(&store), MIGRATIONS.len() as i64);
        let journal_mode: String = store
            .conn()
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(journal_mode, "wal");
        store
            .save_link(&link("defender->jira", "1", "SEC-1"), &[])
            .unwrap();
        drop(store);

        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(user_version(&store), MIGRATIONS.len() as i64);
        assert!(store.link("defender->jira", "1").unwrap().is_some());
    }

    #[test]
    fn newer_schema_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bridge.db");
        drop(SqliteStore::open(&path).unwrap());
        let newer = MIGRATIONS.len() as i64 + 1;
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", newer)
            .unwrap();

        let error = SqliteStore::open(&path).unwrap_err();
        let StoreError::Corrupt(message) = error else {
            panic!("expected Corrupt, got {error:?}")
        };
        assert_eq!(
            message,
            format!(
                "database schema version {newer} is newer than this itsm-bridge supports ({}); \
                 upgrade itsm-bridge",
                MIGRATIONS.len()
            )
        );
    }

    #[cfg(unix)]
    #[test]
    fn database_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bridge.db");
        let store = SqliteStore::open(&path).unwrap();
        store.append_ledger(&[record("p", "1", 0)]).unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        // SQLite gives the write-ahead log the database file's mode.
        let wal = dir.path().join("bridge.db-wal");
        assert!(
            wal.exists(),
            "WAL mode keeps a -wal file while the store is open"
        );
        assert_eq!(mode(&wal), 0o600);
    }

    #[test]
    fn parent_directories_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("nested").join("bridge.db");
        SqliteStore::open(&path).unwrap();
        assert!(path.is_file());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for folder in [dir.path().join("state"), dir.path().join("state/nested")] {
                let mode = std::fs::metadata(&folder).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o700, "{} is owner-only", folder.display());
            }
        }
    }

    /// Every file in `dir` with its length and a digest of its bytes.
    fn snapshot(dir: &Path) -> Vec<(String, usize, String)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let bytes = std::fs::read(e.path()).unwrap();
                let digest = sha2::Sha256::digest(&bytes);
                (
                    e.file_name().to_string_lossy().into_owned(),
                    bytes.len(),
                    format!("{digest:x}"),
                )
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn read_only_open_refuses_what_is_not_a_store_and_leaves_it_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other.db");
        let conn = Connection::open(&other).unwrap();
        conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');")
            .unwrap();
        drop(conn);
        std::fs::write(
            dir.path().join("random.bin"),
            b"not a database at all, just bytes",
        )
        .unwrap();
        std::fs::write(dir.path().join("empty.db"), b"").unwrap();
        let labelled = dir.path().join("labelled.db");
        let conn = Connection::open(&labelled).unwrap();
        conn.execute_batch("PRAGMA user_version = 4; CREATE TABLE links (x);")
            .unwrap();
        drop(conn);
        let before = snapshot(dir.path());

        for (name, why) in [
            ("other.db", "no itsm-bridge schema in it"),
            ("random.bin", "not an SQLite database"),
            ("empty.db", "no itsm-bridge schema in it"),
            ("labelled.db", "no watermarks, outbox, ledger table in it"),
        ] {
            let error = SqliteStore::open_read_only(&dir.path().join(name)).unwrap_err();
            let StoreError::NotAStore(message) = &error else {
                panic!("{name}: expected NotAStore, got {error:?}")
            };
            assert!(message.contains(why), "{name}: {message}");
            assert!(message.contains("left as it is"), "{name}: {message}");
        }
        let missing = SqliteStore::open_read_only(&dir.path().join("missing.db")).unwrap_err();
        assert!(matches!(missing, StoreError::Io(_)), "{missing:?}");
        let cause = std::error::Error::source(&missing).expect("the io error is kept");
        assert!(cause.is::<std::io::Error>(), "{cause:?}");
        assert!(
            missing.to_string().contains(&cause.to_string()),
            "the message still says it: {missing}"
        );
        assert_eq!(
            snapshot(dir.path()),
            before,
            "nothing created, migrated or changed"
        );
    }

    #[test]
    fn open_for_writing_refuses_another_programs_database() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other.db");
        let conn = Connection::open(&other).unwrap();
        conn.execute_batch("CREATE TABLE notes (body TEXT);")
            .unwrap();
        drop(conn);
        let before = std::fs::read(&other).unwrap();
        let error = SqliteStore::open(&other).unwrap_err();
        assert!(matches!(error, StoreError::NotAStore(_)), "{error:?}");
        assert_eq!(std::fs::read(&other).unwrap(), before);
    }

    #[test]
    fn read_only_open_reads_a_store_without_changing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bridge.db");
        let store = SqliteStore::open(&path).unwrap();
        store.append_ledger(&[record("p", "1", 0)]).unwrap();
        drop(store);
        let before = snapshot(dir.path());
        let reader = SqliteStore::open_read_only(&path).unwrap();
        assert!(reader.verify_ledger().unwrap().is_intact());
        assert_eq!(reader.counts().unwrap().ledger_entries, 1);
        assert!(
            reader.append_ledger(&[record("p", "2", 1)]).is_err(),
            "read-only"
        );
        drop(reader);
        // SQLite's WAL mode gives a reader its shared-memory index (`-shm`) and an
        // empty `-wal` beside a store; the database itself is as it was.
        let after: Vec<_> = snapshot(dir.path())
            .into_iter()
            .filter(|(name, len, _)| {
                !(name.ends_with("-shm") || name.ends_with("-wal") && *len == 0)
            })
            .collect();
        assert_eq!(after, before);

        // Beside a writer too.
        let writer = SqliteStore::open(&path).unwrap();
        writer.append_ledger(&[record("p", "2", 1)]).unwrap();
        let reader = SqliteStore::open_read_only(&path).unwrap();
        assert_eq!(reader.counts().unwrap().ledger_entries, 2);
    }

    #[test]
    fn a_damaged_database_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bridge.db");
        let store = SqliteStore::open(&path).unwrap();
        let records: Vec<_> = (0..400).map(|i| record("defender->jira", "1", i)).collect();
        store.append_ledger(&records).unwrap();
        drop(store);
        let mut bytes = std::fs::read(&path).unwrap();
        let page_size = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
        let pages = bytes.len() / page_size;
        assert!(pages > 8, "{pages} pages");
        // Scribble over a page in the middle of the ledger's b-tree.
        let middle = pages / 2 * page_size;
        for (i, byte) in bytes[middle..middle + page_size].iter_mut().enumerate() {
            *byte = (i * 7 + 13) as u8;
        }
        std::fs::write(&path, &bytes).unwrap();

        let error = SqliteStore::open(&path).unwrap_err();
        let StoreError::Damaged(message) = &error else {
            panic!("expected Damaged, got {error:?}")
        };
        assert!(message.contains("bridge.db"), "{message}");
        assert!(
            error.to_string().contains("nothing was written to it"),
            "{error}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "not a byte written");
    }

    #[test]
    fn removed_or_changed_append_only_triggers_are_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bridge.db");
        drop(SqliteStore::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute_batch("DROP TRIGGER ledger_no_delete;")
            .unwrap();
        let error = SqliteStore::open(&path).unwrap_err();
        let StoreError::Tampered(message) = &error else {
            panic!("expected Tampered, got {error:?}")
        };
        assert!(message.contains("ledger_no_delete is missing"), "{message}");

        // A trigger of the same name that lets everything through is no better.
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger BEGIN SELECT 1; END;",
            )
            .unwrap();
        let error = SqliteStore::open(&path).unwrap_err();
        assert!(
            error.to_string().contains("ledger_no_delete was changed"),
            "{error}"
        );
        // Readers still open it, so an auditor can look.
        SqliteStore::open_read_only(&path).unwrap();
    }

    #[test]
    fn link_by_ticket_finds_the_link() {
        let store = SqliteStore::open_in_memory().unwrap();
        let wanted = link("defender->jira", "1", "SEC-1");
        store.save_link(&wanted, &[]).unwrap();
        store
            .save_link(&link("defender->jira", "2", "SEC-2"), &[])
            .unwrap();
        store
            .save_link(&link("sentinel->jira", "3", "SEC-1"), &[])
            .unwrap();
        assert_eq!(
            store.link_by_ticket("defender->jira", "SEC-1").unwrap(),
            Some(wanted)
        );
        assert_eq!(
            store.link_by_ticket("defender->jira", "SEC-3").unwrap(),
            None
        );
    }

    #[test]
    fn links_for_incidents_spans_several_statements() {
        let store = SqliteStore::open_in_memory().unwrap();
        {
            let mut conn = store.conn();
            let tx = conn.transaction().unwrap();
            for i in 0..1200 {
                upsert_link(&tx, &link("defender->jira", &i.to_string(), "SEC-1")).unwrap();
                upsert_link(&tx, &link("other->jira", &i.to_string(), "SEC-1")).unwrap();
            }
            tx.commit().unwrap();
        }
        // 0..1100 exist, 5000.. do not, and some ids are asked for twice.
        let mut ids: Vec<String> = (0..1100).map(|i| i.to_string()).collect();
        ids.extend((5000..5100).map(|i| i.to_string()));
        ids.extend((0..10).map(|i| i.to_string()));
        let found = store.links_for_incidents("defender->jira", &ids).unwrap();
        let found: BTreeSet<String> = found
            .into_iter()
            .inspect(|l| assert_eq!(l.pair, "defender->jira"))
            .map(|l| l.incident_id)
            .collect();
        let expected: BTreeSet<String> = (0..1100).map(|i| i.to_string()).collect();
        assert_eq!(found, expected);
        assert!(
            store
                .links_for_incidents("defender->jira", &[])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn links_for_incidents_returns_each_link_once() {
        let store = SqliteStore::open_in_memory().unwrap();
        store.save_link(&link("p", "7", "SEC-7"), &[]).unwrap();
        let ids: Vec<String> = std::iter::repeat_n("7".to_owned(), 1500).collect();
        assert_eq!(store.links_for_incidents("p", &ids).unwrap().len(), 1);
    }

    #[test]
    fn counts_group_links_by_pair_and_state_and_count_dead_letters_and_ledger() {
        let store = SqliteStore::open_in_memory().unwrap();
        assert_eq!(store.counts().unwrap(), StoreCounts::default());

        for (pair, id) in [("b->x", "1"), ("a->x", "1"), ("a->x", "2"), ("a->x", "3")] {
            store.save_link(&link(pair, id, "SEC-1"), &[]).unwrap();
        }
        let mut merged = link("a->x", "3", "SEC-3");
        merged.state = LinkState::Merged;
        merged.merged_into = Some("2".to_owned());
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
        store
            .begin_intent(&Intent {
                pair: "b->x".to_owned(),
                ..intent("9")
            })
            .unwrap();

        let counts = store.counts().unwrap();
        assert_eq!(
            counts,
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
        assert_eq!(
            counts.ledger_entries,
            store.verify_ledger().unwrap().entries,
            "the ledger's length is its last seq"
        );
    }

    #[test]
    fn intent_ids_are_never_reused() {
        let store = SqliteStore::open_in_memory().unwrap();
        let first = store.begin_intent(&intent("1")).unwrap();
        store.finish_intent(first, None, &[]).unwrap();
        let second = store.begin_intent(&intent("1")).unwrap();
        assert!(second > first);
    }

    #[test]
    fn finishing_an_unknown_intent_changes_nothing() {
        let store = SqliteStore::open_in_memory().unwrap();
        let id = store.begin_intent(&intent("1")).unwrap();
        store.finish_intent(id, None, &[]).unwrap();
        let again = store.finish_intent(
            id,
            Some(&link("defender->jira", "1", "SEC-1")),
            &[record("defender->jira", "1", 0)],
        );
        assert!(matches!(again, Err(StoreError::Corrupt(_))), "{again:?}");
        assert_eq!(store.link("defender->jira", "1").unwrap(), None);
        assert_eq!(store.verify_ledger().unwrap().entries, 0);
    }

    #[test]
    fn finish_intent_is_all_or_nothing() {
        let store = SqliteStore::open_in_memory().unwrap();
        let id = store.begin_intent(&intent("1")).unwrap();
        // Make the ledger append, the last step, fail.
        store
            .conn()
            .execute_batch(
                "CREATE TEMP TRIGGER fail_append BEFORE INSERT ON ledger
                 BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
            )
            .unwrap();
        let result = store.finish_intent(
            id,
            Some(&link("defender->jira", "1", "SEC-1")),
            &[record("defender->jira", "1", 0)],
        );
        assert!(matches!(result, Err(StoreError::Sqlite(_))), "{result:?}");
        assert_eq!(
            store.pending_intents().unwrap().len(),
            1,
            "the intent is still pending"
        );
        assert_eq!(
            store.link("defender->jira", "1").unwrap(),
            None,
            "no link was written"
        );

        store
            .conn()
            .execute_batch("DROP TRIGGER fail_append")
            .unwrap();
        store.finish_intent(id, None, &[]).unwrap();
    }

    #[test]
    fn ledger_time_finer_than_a_microsecond_still_verifies() {
        let store = SqliteStore::open_in_memory().unwrap();
        let mut fine = record("p", "1", 0);
        fine.time += chrono::Duration::nanoseconds(1_234_567);
        store.append_ledger(&[fine]).unwrap();
        assert!(store.verify_ledger().unwrap().is_intact());
        let stored = entries(&store, &LedgerFilter::default());
        assert_eq!(
            stored[0].record.time,
            at(0) + chrono::Duration::microseconds(1_234)
        );
    }

    #[test]
    fn ledger_refuses_update_and_delete() {
        let store = store_with_ledger(2);
        let conn = store.conn();
        for sql in [
            "UPDATE ledger SET detail = 'x' WHERE seq = 1",
            "DELETE FROM ledger WHERE seq = 2",
        ] {
            let error = conn.execute(sql, []).unwrap_err();
            assert!(
                error.to_string().contains("the ledger is append-only"),
                "{error}"
            );
        }
    }

    #[test]
    fn verify_reports_a_changed_field() {
        let store = store_with_ledger(3);
        drop_ledger_triggers(&store);
        store
            .conn()
            .execute("UPDATE ledger SET detail = 'x' WHERE seq = 2", [])
            .unwrap();
        let report = store.verify_ledger().unwrap();
        let (seq, reason) = report.first_break.expect("a break");
        assert_eq!(seq, 2);
        assert!(reason.contains("altered"), "{reason}");
        assert_eq!(report.entries, 3);
    }

    #[test]
    fn verify_reports_a_deleted_entry() {
        let store = store_with_ledger(3);
        drop_ledger_triggers(&store);
        store
            .conn()
            .execute("DELETE FROM ledger WHERE seq = 2", [])
            .unwrap();
        let report = store.verify_ledger().unwrap();
        let (seq, reason) = report.first_break.expect("a break");
        assert_eq!(seq, 2);
        assert!(reason.contains("missing"), "{reason}");
    }

    #[test]
    fn verify_reports_a_changed_hash() {
        let store = store_with_ledger(3);
        drop_ledger_triggers(&store);
        store
            .conn()
            .execute(
                "UPDATE ledger SET hash = lower(hex(randomblob(32))) WHERE seq = 2",
                [],
            )
            .unwrap();
        assert_eq!(
            store.verify_ledger().unwrap().first_break.map(|b| b.0),
            Some(2)
        );
    }

    #[test]
    fn verify_reports_an_unreadable_entry() {
        let store = store_with_ledger(3);
        drop_ledger_triggers(&store);
        store
            .conn()
            .execute("UPDATE ledger SET outcome = 'maybe' WHERE seq = 3", [])
            .unwrap();
        let report = store.verify_ledger().unwrap();
        let (seq, reason) = report.first_break.expect("a break");
        assert_eq!(seq, 3);
        assert!(reason.contains("maybe"), "{reason}");

        // Listing stops at the unreadable entry with an error.
        let result = store.for_each_ledger_entry(&LedgerFilter::default(), &mut |_| Ok(()));
        assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    }

    #[test]
    fn verify_ignores_json_layout() {
        // The hash covers the canonical encoding, not the stored JSON text.
        let store = store_with_ledger(1);
        drop_ledger_triggers(&store);
        store
            .conn()
            .execute(
                "UPDATE ledger SET changes = json_pretty(changes) WHERE seq = 1",
                [],
            )
            .unwrap();
        assert!(store.verify_ledger().unwrap().is_intact());
    }

    /// The behaviour every store shares, on SQLite.
    mod shared_suite {
        crate::store::suite::store_suite!(Some(
            crate::store::SqliteStore::open_in_memory().unwrap()
        ));
    }
}
