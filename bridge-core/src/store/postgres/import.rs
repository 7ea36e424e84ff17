//! `itsm-bridge store migrate`: an SQLite store copied into an empty PostgreSQL
//! store, in one PostgreSQL transaction (all of it or nothing): links with their
//! baselines, watermarks, the outbox, dead letters, synced comments and the
//! ledger. Ledger rows are copied as they are (seq, prev_hash, hash), so the
//! chain verifies on the other side with the same head hash; the copy is
//! verified before it commits.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{PgStore, check_empty_and_unused};
use crate::ledger::{ChainVerifier, VerifyReport};
use crate::store::{SqliteStore, Store, StoreError, StoreResult};

/// What was copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub links: u64,
    pub watermarks: u64,
    pub outbox: u64,
    pub dead_letters: u64,
    pub synced_comments: u64,
    pub incidents_seen: u64,
    /// The ledger as verified on both sides: same entries, same head.
    pub ledger: VerifyReport,
}

fn copied(e: rusqlite::Error) -> StoreError {
    StoreError::Sqlite(e)
}

/// Copies the SQLite store at `from` into `to`, which must be empty and held
/// by no replica. The caller holds `from`'s store lock (no daemon writes it).
pub fn import_sqlite(from: &Path, to: &PgStore) -> StoreResult<ImportReport> {
    // The same checks as every reader: an itsm-bridge store at the current
    // schema, with its ledger intact.
    let source = SqliteStore::open_read_only(from)?;
    let source_ledger = source.verify_ledger()?;
    if let Some((seq, why)) = &source_ledger.first_break {
        return Err(StoreError::Corrupt(format!(
            "{}: the ledger does not verify at entry {seq} ({why}); nothing was copied: \
             investigate it with `itsm-bridge ledger verify` first",
            from.display()
        )));
    }
    drop(source);
    let path = from.to_owned();
    let expected = source_ledger.clone();
    to.call(move |client, _| {
        let mut sqlite =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(copied)?;
        let read = sqlite.transaction().map_err(copied)?;
        let mut tx = client.transaction()?;
        tx.batch_execute("LOCK TABLE links, outbox, ledger, leases IN EXCLUSIVE MODE")?;
        check_empty_and_unused(&mut tx)?;
        let mut report = ImportReport {
            links: 0,
            watermarks: 0,
            outbox: 0,
            dead_letters: 0,
            synced_comments: 0,
            incidents_seen: 0,
            ledger: expected.clone(),
        };

        report.links = copy_links(&read, &mut tx)?;
        report.watermarks = copy_text_rows(&read, &mut tx, "watermarks", ["pair", "side", "at"])?;
        report.outbox = copy_outbox(&read, &mut tx)?;
        report.dead_letters = copy_dead_letters(&read, &mut tx)?;
        report.synced_comments = copy_text_rows(
            &read,
            &mut tx,
            "synced_comments",
            ["pair", "incident_id", "fingerprint"],
        )?;
        report.incidents_seen = copy_text_rows(
            &read,
            &mut tx,
            "incidents_seen",
            ["pair", "incident_id", "snapshot"],
        )?;
        copy_ledger(&read, &mut tx)?;

        // The copy, read back inside the transaction, must verify to the same head.
        let mut verifier = ChainVerifier::new();
        for row in tx.query(
            &format!("SELECT {} FROM ledger ORDER BY seq", super::LEDGER_COLUMNS),
            &[],
        )? {
            match super::ledger_entry_from_row(&row) {
                Ok(entry) => verifier.check(&entry),
                Err(why) => {
                    return Err(StoreError::Corrupt(format!(
                        "a copied ledger entry cannot be read: {why}; nothing was copied"
                    )));
                }
            }
        }
        let copy = verifier.finish();
        if copy != expected {
            return Err(StoreError::Corrupt(format!(
                "the copied ledger does not verify as the original does (original: {} \
                 entries, head {}; copy: {} entries, head {}); nothing was copied",
                expected.entries, expected.head, copy.entries, copy.head
            )));
        }
        tx.commit()?;
        report.ledger = copy;
        Ok(report)
    })
}

/// Copies links with their baselines and versions; says how many rows.
fn copy_links(
    read: &rusqlite::Transaction<'_>,
    tx: &mut postgres::Transaction<'_>,
) -> StoreResult<u64> {
    let mut copied_rows = 0;
    let mut rows = read
        .prepare(
            "SELECT pair, incident_id, incident_display_id, incident_url, ticket_key,
                    ticket_id, ticket_url, state, baseline, written_back, incident_modified,
                    ticket_modified, created, updated, merged_into, incident_version,
                    ticket_version FROM links",
        )
        .map_err(copied)?;
    let insert = tx.prepare(
        "INSERT INTO links (pair, incident_id, incident_display_id, incident_url,
                ticket_key, ticket_id, ticket_url, state, baseline, written_back,
                incident_modified, ticket_modified, created, updated, merged_into,
                incident_version, ticket_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )?;
    let mut rows = rows.query([]).map_err(copied)?;
    while let Some(row) = rows.next().map_err(copied)? {
        let text = |i: usize| row.get::<_, String>(i).map_err(copied);
        let opt = |i: usize| row.get::<_, Option<String>>(i).map_err(copied);
        let written_back: bool = row.get(9).map_err(copied)?;
        tx.execute(
            &insert,
            &[
                &text(0)?,
                &text(1)?,
                &text(2)?,
                &text(3)?,
                &text(4)?,
                &text(5)?,
                &text(6)?,
                &text(7)?,
                &text(8)?,
                &written_back,
                &text(10)?,
                &text(11)?,
                &text(12)?,
                &text(13)?,
                &opt(14)?,
                &opt(15)?,
                &opt(16)?,
            ],
        )?;
        copied_rows += 1;
    }
    Ok(copied_rows)
}

/// Copies the outbox, its ids kept; says how many rows.
fn copy_outbox(
    read: &rusqlite::Transaction<'_>,
    tx: &mut postgres::Transaction<'_>,
) -> StoreResult<u64> {
    let mut copied_rows = 0;
    let mut rows = read
        .prepare(
            "SELECT id, pair, incident_id, kind, payload, created, known_ticket
                 FROM outbox ORDER BY id",
        )
        .map_err(copied)?;
    let mut rows = rows.query([]).map_err(copied)?;
    while let Some(row) = rows.next().map_err(copied)? {
        let id: i64 = row.get(0).map_err(copied)?;
        let text = |i: usize| row.get::<_, String>(i).map_err(copied);
        let known: Option<String> = row.get(6).map_err(copied)?;
        tx.execute(
            "INSERT INTO outbox (id, pair, incident_id, kind, payload, created, known_ticket)
                 OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &id,
                &text(1)?,
                &text(2)?,
                &text(3)?,
                &text(4)?,
                &text(5)?,
                &known,
            ],
        )?;
        copied_rows += 1;
    }
    // Ids go on after the last one SQLite gave (its AUTOINCREMENT never reuses one).
    let last: Option<i64> = read
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'",
            [],
            |row| row.get(0),
        )
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .map_err(copied)?;
    if let Some(last) = last.filter(|last| *last > 0) {
        tx.execute(
            "SELECT setval(pg_get_serial_sequence('outbox', 'id'), $1)",
            &[&last],
        )?;
    }
    Ok(copied_rows)
}

/// Copies dead letters; says how many rows.
fn copy_dead_letters(
    read: &rusqlite::Transaction<'_>,
    tx: &mut postgres::Transaction<'_>,
) -> StoreResult<u64> {
    let mut copied_rows = 0;
    let mut rows = read
        .prepare(
            "SELECT pair, incident_id, ticket_key, action, last_error, attempts,
                    first_failed, last_failed, next_attempt FROM dead_letters",
        )
        .map_err(copied)?;
    let mut rows = rows.query([]).map_err(copied)?;
    while let Some(row) = rows.next().map_err(copied)? {
        let text = |i: usize| row.get::<_, String>(i).map_err(copied);
        let ticket_key: Option<String> = row.get(2).map_err(copied)?;
        let attempts: i64 = row.get(5).map_err(copied)?;
        let attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO dead_letters (pair, incident_id, ticket_key, action, last_error,
                    attempts, first_failed, last_failed, next_attempt)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &text(0)?,
                &text(1)?,
                &ticket_key,
                &text(3)?,
                &text(4)?,
                &attempts,
                &text(6)?,
                &text(7)?,
                &text(8)?,
            ],
        )?;
        copied_rows += 1;
    }
    Ok(copied_rows)
}

/// Copies a table of three text columns as it is (watermarks, synced
/// comments' fingerprints, the incidents as last seen); says how many rows.
fn copy_text_rows(
    read: &rusqlite::Transaction<'_>,
    tx: &mut postgres::Transaction<'_>,
    table: &str,
    columns: [&str; 3],
) -> StoreResult<u64> {
    let mut copied_rows = 0;
    let columns = columns.join(", ");
    let mut rows = read
        .prepare(&format!("SELECT {columns} FROM {table}"))
        .map_err(copied)?;
    let mut rows = rows.query([]).map_err(copied)?;
    let insert = tx.prepare(&format!(
        "INSERT INTO {table} ({columns}) VALUES ($1, $2, $3)"
    ))?;
    while let Some(row) = rows.next().map_err(copied)? {
        let values: [String; 3] = [
            row.get(0).map_err(copied)?,
            row.get(1).map_err(copied)?,
            row.get(2).map_err(copied)?,
        ];
        tx.execute(&insert, &[&values[0], &values[1], &values[2]])?;
        copied_rows += 1;
    }
    Ok(copied_rows)
}

/// Copies the ledger, rows as they are (seq, prev_hash, hash, actors).
fn copy_ledger(
    read: &rusqlite::Transaction<'_>,
    tx: &mut postgres::Transaction<'_>,
) -> StoreResult<()> {
    let mut rows = read
        .prepare(
            "SELECT seq, time, pair, direction, action, incident_id, ticket_key,
                    changes, outcome, detail, prev_hash, hash, actors FROM ledger ORDER BY seq",
        )
        .map_err(copied)?;
    let insert = tx.prepare(
        "INSERT INTO ledger (seq, time, pair, direction, action, incident_id, ticket_key,
                changes, outcome, detail, prev_hash, hash, actors)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )?;
    let mut rows = rows.query([]).map_err(copied)?;
    while let Some(row) = rows.next().map_err(copied)? {
        let seq: i64 = row.get(0).map_err(copied)?;
        let text = |i: usize| row.get::<_, String>(i).map_err(copied);
        let opt = |i: usize| row.get::<_, Option<String>>(i).map_err(copied);
        tx.execute(
            &insert,
            &[
                &seq,
                &text(1)?,
                &text(2)?,
                &opt(3)?,
                &text(4)?,
                &text(5)?,
                &opt(6)?,
                &text(7)?,
                &text(8)?,
                &opt(9)?,
                &text(10)?,
                &text(11)?,
                &opt(12)?,
            ],
        )?;
    }
    Ok(())
}
