//! The auditor's commands, end to end with the real binary: read-only commands
//! never create, migrate or change a database; the CSV export never hands a
//! spreadsheet a formula and `ledger list` never hands the terminal an escape
//! sequence.

mod common;

use std::path::Path;

use bridge_core::ledger::{LedgerEntry, LedgerRecord, Outcome};
use bridge_core::model::{Direction, FieldChange};
use bridge_core::store::{SqliteStore, Store};
use common::{assert_success, bridge_in, stderr, stdout};

/// Every file in `dir`, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn read_only_commands_refuse_a_foreign_file_and_leave_it_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&other).unwrap();
    conn.execute_batch(
        "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total TEXT);
         INSERT INTO invoices (total) VALUES ('42.00');",
    )
    .unwrap();
    drop(conn);
    std::fs::write(dir.path().join("notes.txt"), "not a database\n").unwrap();
    let before = files(dir.path());

    for file in ["other.db", "notes.txt"] {
        for args in [
            vec!["ledger", "verify", "--db", file],
            vec!["ledger", "list", "--db", file],
            vec!["ledger", "export", "--db", file],
            vec!["links", "--db", file],
        ] {
            let out = bridge_in(dir.path(), &args);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            assert!(
                stderr(&out).contains("it is not an itsm-bridge store, and was left as it is"),
                "{args:?}: {}",
                stderr(&out)
            );
            assert!(!stdout(&out).contains("intact"), "{args:?}");
        }
    }
    let out = bridge_in(dir.path(), &["ledger", "verify", "--db", "missing.db"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no such database"),
        "{}",
        stderr(&out)
    );

    assert_eq!(
        files(dir.path()),
        before,
        "no file created, and each byte for byte"
    );
}

fn hostile_record(i: i64) -> LedgerRecord {
    LedgerRecord {
        time: chrono::Utc::now(),
        pair: "defender->jira".to_owned(),
        direction: Some(Direction::ToTicket),
        action: "create_ticket".to_owned(),
        incident_id: format!("=HYPERLINK(\"http://evil.example/?{i}\",\"click\")"),
        ticket_key: Some("+SEC-1".to_owned()),
        changes: vec![FieldChange {
            field: "title".to_owned(),
            old: None,
            new: Some("\u{1b}]0;owned\u{7}\u{1b}[2JTitle\r\nforged line".to_owned()),
            conflict: None,
        }],
        outcome: Outcome::Failed,
        detail: Some("@SUM(A1:A9)\u{1b}[31m red".to_owned()),
    }
}

#[test]
fn exports_and_listings_neutralise_hostile_values() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bridge.db");
    let store = SqliteStore::open(&db).unwrap();
    store
        .append_ledger(&[hostile_record(1), hostile_record(2)])
        .unwrap();
    drop(store);

    let csv = bridge_in(
        dir.path(),
        &["ledger", "export", "--db", "bridge.db", "--format", "csv"],
    );
    assert_success(&csv);
    let text = stdout(&csv);
    assert!(
        text.contains(",\"'=HYPERLINK(\"\"http://evil.example/?1\"\",\"\"click\"\")\","),
        "{text}"
    );
    assert!(text.contains(",'+SEC-1,"), "{text}");
    assert!(text.contains("'@SUM(A1:A9)"), "{text}");
    for line in text.lines().skip(1) {
        // No cell (after a comma or a quote opening it) starts a formula.
        for cell in line.split(',') {
            let cell = cell.trim_start_matches('"');
            assert!(
                !cell.starts_with(['=', '+', '@']),
                "cell {cell:?} in {line}"
            );
        }
    }

    // JSONL is the exact export.
    let jsonl = bridge_in(dir.path(), &["ledger", "export", "--db", "bridge.db"]);
    assert_success(&jsonl);
    let first: LedgerEntry = serde_json::from_str(stdout(&jsonl).lines().next().unwrap()).unwrap();
    assert_eq!(first.record.incident_id, hostile_record(1).incident_id);
    assert_eq!(first.record.ticket_key.as_deref(), Some("+SEC-1"));
    assert_eq!(first.record.detail, hostile_record(1).detail);

    // The table on a terminal: escapes shown, never obeyed.
    let list = bridge_in(dir.path(), &["ledger", "list", "--db", "bridge.db"]);
    assert_success(&list);
    let shown = stdout(&list);
    assert!(
        !shown.contains('\u{1b}') && !shown.contains('\u{7}'),
        "{shown:?}"
    );
    assert!(!shown.contains('\r'), "{shown:?}");
    assert!(shown.contains("\\u{1b}]0;owned\\u{7}"), "{shown}");
    assert_eq!(shown.lines().count(), 3, "a header and two rows: {shown}");
}
