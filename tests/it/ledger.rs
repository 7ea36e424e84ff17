//! The auditor's commands, end to end with the real binary: read-only commands
//! never create, migrate or change a database; the CSV export never hands a
//! spreadsheet a formula and `ledger list` never hands the terminal an escape
//! sequence; signed checkpoints catch a ledger cut short, rewritten and
//! re-hashed, or reordered, which the hash chain alone lets through.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Env, assert_success, bridge_in, stderr, stdout};
use bridge_core::ledger::{self, GENESIS_HASH, LedgerEntry, LedgerFilter, LedgerRecord, Outcome};
use bridge_core::model::{Direction, FieldChange};
use bridge_core::store::{SqliteStore, Store};
use connectors::graph::sim::SeedIncident;

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
        actors: Default::default(),
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

// ---------------------------------------------------------------------------
// Checkpoints.

/// A synced store with a `[ledger]` table and a key made by `ledger keygen`.
fn anchored_env() -> (Env, String) {
    let env = Env::start(12);
    env.sync();
    let keygen = env.bridge(&["ledger", "keygen", "--out", "ledger.key"]);
    assert_success(&keygen);
    let public_key = stdout(&keygen)
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .expect("keygen prints the public key")
        .trim()
        .to_owned();
    let key_text = std::fs::read_to_string(env.dir.path().join("ledger.key")).unwrap();
    assert!(!stdout(&keygen).contains(key_text.lines().nth(1).unwrap()));
    let mut config = std::fs::read_to_string(&env.config).unwrap();
    config.push_str(
        "\n[ledger]\nsigning_key = { file = \"ledger.key\" }\ncheckpoint_dir = \"anchors\"\n",
    );
    std::fs::write(&env.config, config).unwrap();
    (env, public_key)
}

fn checkpoint_now(env: &Env) -> PathBuf {
    let out = env.bridge(&[
        "ledger",
        "checkpoint",
        "--config",
        env.config.to_str().unwrap(),
    ]);
    assert_success(&out);
    // The signing key never reaches the output.
    let key = std::fs::read_to_string(env.dir.path().join("ledger.key")).unwrap();
    let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!body.is_empty());
    for text in [stdout(&out), stderr(&out)] {
        assert!(
            !text.contains(&body) && !text.contains(&body[..16]),
            "{text}"
        );
    }
    let path = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("checkpoint written: "))
        .expect("the file is named")
        .trim()
        .to_owned();
    PathBuf::from(path)
}

/// A copy of the store, to tamper with.
fn copy_of(env: &Env, name: &str) -> PathBuf {
    let copy = env.dir.path().join(name);
    std::fs::copy(&env.db, &copy).unwrap();
    copy
}

fn entries(db: &Path) -> Vec<LedgerEntry> {
    let store = SqliteStore::open_read_only(db).unwrap();
    let mut out = Vec::new();
    store
        .for_each_ledger_entry(&LedgerFilter::default(), &mut |e| {
            out.push(e);
            Ok(())
        })
        .unwrap();
    out
}

/// Replaces the whole ledger with `records`, chained afresh: what a forger with
/// the database file (and the unkeyed hash) can do.
fn rewrite_and_rehash(db: &Path, records: &[LedgerRecord]) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "DROP TRIGGER ledger_no_update; DROP TRIGGER ledger_no_delete; DELETE FROM ledger;",
    )
    .unwrap();
    let mut prev = GENESIS_HASH.to_owned();
    for (i, record) in records.iter().enumerate() {
        let entry = ledger::seal_entry(&prev, i as i64 + 1, record.clone());
        conn.execute(
            "INSERT INTO ledger (seq, time, pair, direction, action, incident_id, ticket_key,
                                 changes, outcome, detail, prev_hash, hash, actors)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            rusqlite::params![
                entry.seq,
                ledger::canonical_time(&record.time),
                record.pair,
                record.direction.map(Direction::as_str),
                record.action,
                record.incident_id,
                record.ticket_key,
                serde_json::to_string(&record.changes).unwrap(),
                record.outcome.as_str(),
                record.detail,
                entry.prev_hash,
                entry.hash,
                (!record.actors.is_empty()).then(|| serde_json::to_string(&record.actors).unwrap()),
            ],
        )
        .unwrap();
        prev = entry.hash;
    }
}

fn verify(env: &Env, db: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["ledger", "verify", "--db", db.to_str().unwrap()];
    args.extend_from_slice(extra);
    env.bridge(&args)
}

#[test]
fn a_ledger_cut_short_rewritten_or_reordered_is_caught_against_a_checkpoint() {
    let (env, public_key) = anchored_env();
    let original = entries(&env.db);
    assert!(original.len() >= 10, "{} entries", original.len());
    let anchor = checkpoint_now(&env);
    assert!(anchor.starts_with(env.dir.path().join("anchors")));
    let anchor_arg = anchor.to_str().unwrap();
    let head = original.last().unwrap().hash.clone();
    let records: Vec<LedgerRecord> = original.iter().map(|e| e.record.clone()).collect();

    // The untouched ledger holds against it, with its key pinned.
    let out = verify(
        &env,
        &env.db,
        &[
            "--checkpoint",
            anchor_arg,
            "--public-key",
            &public_key,
            "--expect-head",
            &head,
        ],
    );
    assert_success(&out);
    assert!(
        stdout(&out).contains("holds: entries 1 to"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out)
            .contains("0 entries after it are chained to it but covered by no checkpoint yet"),
        "{}",
        stdout(&out)
    );

    // Truncated: the last three entries deleted. The chain alone still passes.
    let truncated = copy_of(&env, "truncated.db");
    rewrite_and_rehash(&truncated, &records[..records.len() - 3]);
    assert_success(&verify(&env, &truncated, &[]));
    let out = verify(&env, &truncated, &["--checkpoint", anchor_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("BROKEN"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("were removed (the ledger was cut short)"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("append-only triggers were tampered with"),
        "{}",
        stderr(&out)
    );
    let out = verify(&env, &truncated, &["--expect-head", &head]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));

    // Rewritten and re-hashed: one entry's ticket key changed, the chain recomputed.
    let rewritten = copy_of(&env, "rewritten.db");
    let mut forged = records.clone();
    forged[2].ticket_key = Some("SEC-9999".to_owned());
    rewrite_and_rehash(&rewritten, &forged);
    assert_success(&verify(&env, &rewritten, &[]));
    let out = verify(&env, &rewritten, &["--checkpoint", anchor_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("were rewritten, re-hashed, reordered"),
        "{}",
        stdout(&out)
    );

    // Reordered and re-hashed: two entries swapped.
    let reordered = copy_of(&env, "reordered.db");
    let mut swapped = records.clone();
    swapped.swap(1, 5);
    rewrite_and_rehash(&reordered, &swapped);
    assert_success(&verify(&env, &reordered, &[]));
    let out = verify(&env, &reordered, &["--checkpoint", anchor_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));

    // A forger's own checkpoint, signed with another key, is refused once the
    // auditor pins the key.
    let other = env.bridge(&["ledger", "keygen", "--out", "other.key"]);
    assert_success(&other);
    let config = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace("ledger.key", "other.key")
        .replace("\"anchors\"", "\"forged\"")
        .replace(env.db.to_str().unwrap(), rewritten.to_str().unwrap());
    let forged_config = env.dir.path().join("forged.toml");
    std::fs::write(&forged_config, config).unwrap();
    // The forger restores the triggers first, or the store is refused.
    rusqlite::Connection::open(&rewritten)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
             BEGIN
                 SELECT RAISE(ABORT, 'the ledger is append-only');
             END;
             CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
             BEGIN
                 SELECT RAISE(ABORT, 'the ledger is append-only');
             END;",
        )
        .unwrap();
    let out = env.bridge(&[
        "ledger",
        "checkpoint",
        "--config",
        forged_config.to_str().unwrap(),
    ]);
    assert_success(&out);
    let forged_anchor = std::fs::read_dir(env.dir.path().join("forged"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let out = verify(
        &env,
        &rewritten,
        &[
            "--checkpoint",
            forged_anchor.to_str().unwrap(),
            "--public-key",
            &public_key,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("REFUSED: signed by key"),
        "{}",
        stdout(&out)
    );

    // An edited checkpoint file fails its signature.
    let edited = env.dir.path().join("edited.json");
    let text = std::fs::read_to_string(&anchor).unwrap();
    let seq = original.len();
    std::fs::write(
        &edited,
        text.replace(&format!("\"seq\": {seq}"), &format!("\"seq\": {}", seq - 3)),
    )
    .unwrap();
    let out = verify(
        &env,
        &truncated,
        &["--checkpoint", edited.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("edited or forged"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn entries_after_the_checkpoint_are_reported_and_broken_ledgers_are_never_signed() {
    let (env, _) = anchored_env();
    let anchor = checkpoint_now(&env);
    let before = entries(&env.db).len();
    // More entries after the checkpoint.
    env.sims
        .graph
        .seed_incident(SeedIncident::new("Raised after the checkpoint").severity("high"));
    env.sync();
    let after = entries(&env.db).len();
    assert!(after > before);
    let out = verify(&env, &env.db, &["--checkpoint", anchor.to_str().unwrap()]);
    assert_success(&out);
    assert!(
        stdout(&out).contains(&format!(
            "{} entries after it are chained to it but covered by no checkpoint yet",
            after - before
        )),
        "{}",
        stdout(&out)
    );

    // A broken chain is not signed.
    let conn = rusqlite::Connection::open(&env.db).unwrap();
    conn.execute_batch(
        "DROP TRIGGER ledger_no_update; UPDATE ledger SET ticket_key = 'X-1' WHERE seq = 2;",
    )
    .unwrap();
    drop(conn);
    let out = env.bridge(&[
        "ledger",
        "checkpoint",
        "--config",
        env.config.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("refusing to sign a ledger that does not verify (entry 2"),
        "{}",
        stderr(&out)
    );

    // And `run` refuses a store whose append-only triggers were removed.
    let out = env.bridge(&["run", "--once", "--config", env.config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "the ledger's append-only triggers were tampered with (ledger_no_update is missing)"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_daemon_writes_checkpoints_on_its_schedule() {
    let (env, _) = anchored_env();
    let config = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace("[ledger]\n", "[ledger]\ncheckpoint = \"* * * * * *\"\n");
    std::fs::write(&env.config, config).unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_itsm-bridge"))
        .args(["run", "--config", env.config.to_str().unwrap()])
        .current_dir(env.dir.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let anchors = env.dir.path().join("anchors");
    let deadline = Instant::now() + Duration::from_secs(60);
    let found = loop {
        let found: Vec<PathBuf> = std::fs::read_dir(&anchors)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        let done: Vec<PathBuf> = found
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        if !done.is_empty() || Instant::now() > deadline {
            break done;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(!found.is_empty(), "no checkpoint written within a minute");
    let out = verify(&env, &env.db, &["--checkpoint", found[0].to_str().unwrap()]);
    assert_success(&out);
}

/// An auditor's ledger: two pairs, three incidents, creates then updates, over
/// three days (1 to 3 November 2026, at 08:00 and 20:00 UTC).
fn audit_trail() -> Vec<LedgerRecord> {
    let day = |d: u32, h: u32| {
        use chrono::TimeZone;
        chrono::Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
    };
    let entry = |time, pair: &str, action: &str, incident: &str, ticket: &str| LedgerRecord {
        actors: Default::default(),
        time,
        pair: pair.to_owned(),
        direction: Some(Direction::ToTicket),
        action: action.to_owned(),
        incident_id: incident.to_owned(),
        ticket_key: Some(ticket.to_owned()),
        changes: Vec::new(),
        outcome: Outcome::Ok,
        detail: None,
    };
    vec![
        entry(day(1, 8), "defender->jira", "create_ticket", "101", "SEC-1"),
        entry(
            day(1, 20),
            "sentinel->servicenow",
            "create_ticket",
            "7",
            "INC0010001",
        ),
        entry(day(2, 8), "defender->jira", "update_ticket", "101", "SEC-1"),
        entry(
            day(2, 20),
            "defender->jira",
            "create_ticket",
            "102",
            "SEC-2",
        ),
        entry(
            day(3, 8),
            "sentinel->servicenow",
            "update_incident",
            "7",
            "INC0010001",
        ),
        entry(
            day(3, 20),
            "defender->jira",
            "update_ticket",
            "102",
            "SEC-2",
        ),
    ]
}

/// The seqs `ledger list` and `ledger export` (both formats) print for `filter`;
/// all three must agree.
fn seqs_selected(dir: &Path, filter: &[&str]) -> Vec<i64> {
    let run = |command: &[&str]| {
        let mut args = vec!["ledger"];
        args.extend_from_slice(command);
        args.extend_from_slice(&["--db", "bridge.db"]);
        args.extend_from_slice(filter);
        let out = bridge_in(dir, &args);
        assert_success(&out);
        stdout(&out)
    };
    let jsonl: Vec<i64> = run(&["export"])
        .lines()
        .map(|line| serde_json::from_str::<LedgerEntry>(line).unwrap().seq)
        .collect();
    let csv: Vec<i64> = run(&["export", "--format", "csv"])
        .lines()
        .skip(1)
        .map(|line| line.split(',').next().unwrap().parse().unwrap())
        .collect();
    let listed: Vec<i64> = run(&["list"])
        .lines()
        .filter_map(|line| line.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(jsonl, csv, "{filter:?}: export as CSV");
    assert_eq!(jsonl, listed, "{filter:?}: list");
    jsonl
}

#[test]
fn list_and_export_take_the_same_filters() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("bridge.db")).unwrap();
    store.append_ledger(&audit_trail()).unwrap();
    drop(store);
    let seqs = |filter: &[&str]| seqs_selected(dir.path(), filter);

    assert_eq!(seqs(&[]), [1, 2, 3, 4, 5, 6]);
    assert_eq!(seqs(&["--pair", "sentinel->servicenow"]), [2, 5]);
    assert_eq!(seqs(&["--incident", "101"]), [1, 3]);
    assert_eq!(seqs(&["--ticket", "SEC-2"]), [4, 6]);
    assert_eq!(seqs(&["--action", "create_ticket"]), [1, 2, 4]);
    // A date is a whole UTC day: from its start with --since, to its end with --until.
    assert_eq!(
        seqs(&["--since", "2026-11-02", "--until", "2026-11-02"]),
        [3, 4]
    );
    assert_eq!(seqs(&["--since", "2026-11-03"]), [5, 6]);
    assert_eq!(seqs(&["--until", "2026-11-01"]), [1, 2]);
    // RFC 3339 with an offset: 09:00+01:00 is 08:00Z, included by --since and
    // excluded by --until.
    assert_eq!(
        seqs(&["--since", "2026-11-02T09:00:00+01:00"]),
        [3, 4, 5, 6]
    );
    assert_eq!(seqs(&["--until", "2026-11-02T09:00:00+01:00"]), [1, 2]);
    assert_eq!(
        seqs(&[
            "--pair",
            "defender->jira",
            "--action",
            "update_ticket",
            "--since",
            "2026-11-02T12:00:00Z",
        ]),
        [6]
    );
    assert_eq!(seqs(&["--ticket", "SEC-404"]), Vec::<i64>::new());

    // --limit stays list's: the newest N of what the filters select.
    let out = bridge_in(
        dir.path(),
        &[
            "ledger",
            "list",
            "--db",
            "bridge.db",
            "--pair",
            "defender->jira",
            "--limit",
            "2",
        ],
    );
    assert_success(&out);
    let text = stdout(&out);
    let listed: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(listed, ["4", "6"]);
}

#[test]
fn a_bad_time_is_bad_input_naming_its_flag() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("bridge.db")).unwrap();
    store.append_ledger(&audit_trail()).unwrap();
    drop(store);
    for (command, flag, value) in [
        ("list", "--since", "yesterday"),
        ("export", "--since", "2026-13-01"),
        ("list", "--until", "2026-11-02 08:00"),
        ("export", "--until", "1730448000"),
    ] {
        let out = bridge_in(
            dir.path(),
            &["ledger", command, "--db", "bridge.db", flag, value],
        );
        assert_eq!(out.status.code(), Some(2), "{command} {flag} {value}");
        let said = stderr(&out);
        assert!(said.contains(flag) && said.contains(value), "{said}");
        assert!(said.contains("RFC 3339"), "{said}");
        assert!(
            stdout(&out).is_empty(),
            "nothing half-written: {}",
            stdout(&out)
        );
    }
}

/// `bench export` runs the real export on both sizes and prints its figures (a
/// smoke test: the figures themselves are for people, nothing is timed here).
#[test]
fn bench_export_prints_rate_and_peak_memory_for_both_sizes() {
    let mut runs = vec![vec!["bench", "export", "--rows", "3000"]];
    let pg = std::env::var("ITSM_BRIDGE_TEST_PG").unwrap_or_default();
    if !pg.is_empty() {
        runs.push(vec!["bench", "export", "--rows", "3000", "--pg", &pg]);
    }
    let dir = tempfile::tempdir().unwrap();
    for args in runs {
        // Its scratch stores go to TMPDIR: here, to see them removed.
        let out = Command::new(env!("CARGO_BIN_EXE_itsm-bridge"))
            .args(&args)
            .env("TMPDIR", dir.path())
            .output()
            .unwrap();
        assert_success(&out);
        let text = stdout(&out);
        let rows: Vec<Vec<&str>> = text
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .filter(|words| words.len() == 4 && words[0].parse::<u64>().is_ok())
            .collect();
        assert_eq!(rows.len(), 2, "{text}");
        assert_eq!((rows[0][0], rows[1][0]), ("300", "3000"), "{text}");
        for row in rows {
            assert!(row[2].parse::<f64>().unwrap() > 0.0, "{text}");
            assert!(
                row[3].parse::<f64>().unwrap() > 1.0,
                "peak RSS in MiB: {text}"
            );
        }
    }
    assert!(
        files(dir.path()).is_empty(),
        "the scratch stores are removed"
    );
}
