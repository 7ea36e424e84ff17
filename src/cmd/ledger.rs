//! `itsm-bridge ledger list|export|verify|checkpoint|keygen`: the auditor's view
//! of the sync ledger, and its anchors (signed checkpoints of its head, see
//! `bridge_core::checkpoint`). Every command but `checkpoint` only reads the
//! store, opened read-only.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bridge_core::checkpoint::{self, Checkpoint, SigningKey, Verdict};
use bridge_core::config::Config;
use bridge_core::ledger::{GENESIS_HASH, LedgerEntry, LedgerFilter, actors_label};
use bridge_core::model::Timestamp;
use bridge_core::store::{Store, StoreError};
use secrecy::ExposeSecret;

use crate::output::{Table, csv_field};
use crate::replicas::StoreAt;
use crate::{CmdResult, Failure};

/// The filters `ledger list` and `ledger export` share.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only this [[sync]] pair (`<source>-><ticket_system>`).
    #[arg(long)]
    pair: Option<String>,
    /// Only entries about this incident id.
    #[arg(long)]
    incident: Option<String>,
    /// Only entries about this ticket key.
    #[arg(long)]
    ticket: Option<String>,
    /// Only this action (create_ticket, update_ticket, update_incident, write_back, …).
    #[arg(long)]
    action: Option<String>,
    /// Entries at or after this time: RFC 3339 (2026-11-01T08:00:00Z) or a UTC
    /// date (2026-11-01, from its start).
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    since: Option<Timestamp>,
    /// Entries before this time: RFC 3339, or a UTC date (2026-11-30, up to its
    /// end: the day is included).
    #[arg(long, value_name = "TIME", value_parser = parse_until)]
    until: Option<Timestamp>,
    /// Only entries with this actor: the person who made a change the entry
    /// carried, by the exact name their system gives (`Ann Analyst`,
    /// `ann@contoso.com`), or `itsm-bridge` for the bridge's own writes.
    #[arg(long, value_name = "NAME")]
    actor: Option<String>,
}

impl FilterArgs {
    pub fn with_limit(self, limit: Option<usize>) -> LedgerFilter {
        LedgerFilter {
            actor: self.actor,
            pair: self.pair,
            incident_id: self.incident,
            ticket_key: self.ticket,
            action: self.action,
            since: self.since,
            until: self.until,
            limit,
        }
    }
}

/// `--since`: an RFC 3339 time, or a date meaning its first instant (UTC).
fn parse_since(text: &str) -> Result<Timestamp, String> {
    parse_time(text, 0)
}

/// `--until`: an RFC 3339 time, or a date meaning up to its end (UTC), so
/// `--since D --until D` is the whole day D.
fn parse_until(text: &str) -> Result<Timestamp, String> {
    parse_time(text, 1)
}

fn parse_time(text: &str, days_after: i64) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&chrono::Utc));
    }
    match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(date) => Ok((date + chrono::Duration::days(days_after))
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()),
        Err(_) => Err(
            "expected an RFC 3339 time (2026-11-01T08:00:00Z, with its offset) or a date \
             (2026-11-01)"
                .to_owned(),
        ),
    }
}

pub fn list(db: &StoreAt, filter: LedgerFilter) -> CmdResult {
    let store = db.open_reader()?;
    let mut table = Table::new(&[
        "seq", "time", "pair", "action", "incident", "ticket", "outcome", "actor", "changes",
    ]);
    store.for_each_ledger_entry(&filter, &mut |e| {
        table.row(vec![
            e.seq.to_string(),
            e.record.time.format("%Y-%m-%d %H:%M:%S").to_string(),
            e.record.pair.clone(),
            e.record.action.clone(),
            e.record.incident_id.clone(),
            e.record.ticket_key.clone().unwrap_or_default(),
            e.record.outcome.as_str().to_string(),
            actors_label(&e.record.actors),
            describe_changes(&e),
        ]);
        Ok(())
    })?;
    print!("{table}");
    Ok(ExitCode::SUCCESS)
}

fn describe_changes(e: &LedgerEntry) -> String {
    let mut parts: Vec<String> = e
        .record
        .changes
        .iter()
        .map(|c| {
            let conflict = match &c.conflict {
                Some(note) if note.tie => " (conflict, a tie in time: the incident's side won)",
                Some(_) => " (conflict)",
                None => "",
            };
            format!(
                "{}: {} → {}{conflict}",
                c.field,
                shorten(c.old.as_deref().unwrap_or("∅")),
                shorten(c.new.as_deref().unwrap_or("∅"))
            )
        })
        .collect();
    if let Some(d) = &e.record.detail {
        parts.push(shorten(d));
    }
    parts.join("; ")
}

fn shorten(s: &str) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() > 48 {
        format!("{}…", one_line.chars().take(47).collect::<String>())
    } else {
        one_line
    }
}

pub fn export(db: &StoreAt, filter: &LedgerFilter, csv: bool) -> CmdResult {
    let store = db.open_reader()?;
    let stdout = std::io::stdout();
    let out = std::io::BufWriter::new(stdout.lock());
    export_to(store.as_ref(), filter, csv, out)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the entries `filter` selects to `out` one at a time as the store
/// streams them: nothing but the current entry is held.
pub fn export_to(
    store: &dyn Store,
    filter: &LedgerFilter,
    csv: bool,
    mut out: impl Write,
) -> Result<(), StoreError> {
    let io = StoreError::Io;
    if csv {
        writeln!(out, "seq,time,pair,direction,action,incident_id,ticket_key,outcome,changes,detail,prev_hash,hash,actors").map_err(io)?;
    }
    store.for_each_ledger_entry(filter, &mut |e| {
        if csv {
            let changes = serde_json::to_string(&e.record.changes).unwrap_or_default();
            // A JSON array of actors, as in the JSON lines; empty when none.
            let actors = match e.record.actors.is_empty() {
                true => String::new(),
                false => serde_json::to_string(&e.record.actors).unwrap_or_default(),
            };
            let fields = [
                e.seq.to_string(),
                e.record.time.to_rfc3339(),
                e.record.pair.clone(),
                e.record
                    .direction
                    .map(|d| d.as_str().to_string())
                    .unwrap_or_default(),
                e.record.action.clone(),
                e.record.incident_id.clone(),
                e.record.ticket_key.clone().unwrap_or_default(),
                e.record.outcome.as_str().to_string(),
                changes,
                e.record.detail.clone().unwrap_or_default(),
                e.prev_hash.clone(),
                e.hash.clone(),
                actors,
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            writeln!(out, "{}", line.join(",")).map_err(io)?;
        } else {
            let line = serde_json::to_string(&e).unwrap_or_default();
            writeln!(out, "{line}").map_err(io)?;
        }
        Ok(())
    })?;
    out.flush().map_err(io)
}

pub fn verify(
    db: &StoreAt,
    checkpoints: &[PathBuf],
    expect_heads: &[String],
    public_key: Option<&str>,
) -> CmdResult {
    // Read before the store is opened: a checkpoint that cannot be read is bad
    // input, whatever the ledger holds.
    let mut anchors = Vec::new();
    for path in checkpoints {
        anchors.push((path, Checkpoint::read(path).map_err(Failure::Input)?));
    }
    let store = db.open_reader()?;
    if let Err(e) = store.check_append_only() {
        eprintln!("warning: {e}");
    }
    let report = store.verify_ledger()?;
    let mut intact = true;
    match &report.first_break {
        None => println!(
            "ledger intact: {} entries, head {}",
            report.entries, report.head
        ),
        Some((seq, why)) => {
            intact = false;
            println!(
                "ledger BROKEN at entry {seq}: {why} ({} entries checked)",
                report.entries
            );
        }
    }
    for (path, anchor) in &anchors {
        let name = path.display();
        if let Err(why) = anchor.check_signature() {
            intact = false;
            println!("checkpoint {name} REFUSED: {why}");
            continue;
        }
        if let Some(key) = public_key {
            if !anchor.signed_by(key) {
                intact = false;
                println!(
                    "checkpoint {name} REFUSED: signed by key {}, not by {key}",
                    anchor.key_id
                );
                continue;
            }
        }
        let hash = store.ledger_hash_at(anchor.seq)?;
        match checkpoint::judge(anchor, &report, hash.as_deref()) {
            Verdict::Holds { after } => println!(
                "checkpoint {name} holds: entries 1 to {} are the ones signed at {} by key {}; \
                 {after} entries after it are chained to it but covered by no checkpoint yet",
                anchor.seq, anchor.time, anchor.key_id
            ),
            Verdict::Broken(why) => {
                intact = false;
                println!("checkpoint {name} BROKEN: {why}");
            }
        }
    }
    for head in expect_heads {
        let head = head.trim().to_ascii_lowercase();
        match store.ledger_seq_of(&head)? {
            Some(seq) => println!(
                "head {head} found at entry {seq}; {} entries after it",
                report
                    .entries
                    .saturating_sub(u64::try_from(seq).unwrap_or(0))
            ),
            None if head == GENESIS_HASH => println!("head {head} is the empty ledger's"),
            None => {
                intact = false;
                println!(
                    "head {head} BROKEN: no entry has this hash any more; the ledger was cut \
                     short before it, or rewritten"
                );
            }
        }
    }
    Ok(if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `ledger checkpoint`: signs the head now and writes the file.
pub fn checkpoint(config_path: &Path) -> CmdResult {
    let config = super::load_config(config_path)?;
    let Some(key) = signing_key(&config)? else {
        return Err(Failure::Input(format!(
            "{}: [ledger] has no signing_key; add signing_key = {{ file = \"/path/to/ledger.key\" }} \
             (make one with `itsm-bridge ledger keygen --out FILE`)",
            config.file.display()
        )));
    };
    let store = StoreAt::of(&config)?.open_reader()?;
    let (path, anchor) = checkpoint::write_checkpoint(
        store.as_ref(),
        &key,
        &config.ledger.checkpoint_dir,
        chrono::Utc::now(),
    )
    .map_err(|e| Failure::Runtime(anyhow::anyhow!(e)))?;
    println!("checkpoint written: {}", path.display());
    println!(
        "  entries 1 to {}, head {}, signed at {} by key {}",
        anchor.seq, anchor.head, anchor.time, anchor.key_id
    );
    Ok(ExitCode::SUCCESS)
}

/// The `[ledger] signing_key`, read and parsed; a problem is bad input. The
/// message names the file or variable, never the key.
pub fn signing_key(config: &Config) -> Result<Option<SigningKey>, Failure> {
    let Some(reference) = &config.ledger.signing_key else {
        return Ok(None);
    };
    let file = config.file.display();
    if let Some(kv) = reference.key_vault() {
        connectors::keyvault::fetch_one_blocking(config, kv)
            .map_err(|e| Failure::Input(format!("{file}: [ledger] signing_key: {e}")))?;
    }
    let text = reference
        .resolve()
        .map_err(|e| Failure::Input(format!("{file}: [ledger] signing_key: {e}")))?;
    SigningKey::from_pem(text.expose_secret())
        .map(Some)
        .map_err(|e| Failure::Input(format!("{file}: [ledger] signing_key {e}")))
}

/// `ledger keygen --out FILE`: a new key, owner-only; prints the public key.
pub fn keygen(out: &Path) -> CmdResult {
    let (key, pem) = SigningKey::generate().map_err(|e| Failure::Runtime(anyhow::anyhow!(e)))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::Input(format!(
                "{}: already exists; a key is never overwritten: choose another --out",
                out.display()
            ))
        } else {
            Failure::Runtime(anyhow::anyhow!("cannot create {}: {e}", out.display()))
        }
    })?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot write {}: {e}", out.display())))?;
    println!("signing key written: {} (owner-only)", out.display());
    println!("public key: {}", key.public_key_hex());
    println!("key id:     {}", key.key_id());
    println!(
        "Keep the key off the store's disk backups; give auditors the public key, to pass as \
         `ledger verify --public-key`."
    );
    Ok(ExitCode::SUCCESS)
}
