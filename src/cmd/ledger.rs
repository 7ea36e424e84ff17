//! `itsm-bridge ledger list|export|verify`: the auditor's view of the sync ledger.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use bridge_core::ledger::{LedgerEntry, LedgerFilter};
use bridge_core::store::Store;

use crate::CmdResult;
use crate::output::{Table, csv_field};

pub fn list(
    db: &Path,
    pair: Option<String>,
    incident: Option<String>,
    limit: Option<usize>,
) -> CmdResult {
    let store = super::open_existing_store(db)?;
    let filter = LedgerFilter {
        pair,
        incident_id: incident,
        since: None,
        limit,
    };
    let mut table = Table::new(&[
        "seq", "time", "pair", "action", "incident", "ticket", "outcome", "changes",
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
            let conflict = if c.conflict.is_some() {
                " (conflict)"
            } else {
                ""
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

pub fn export(db: &Path, csv: bool) -> CmdResult {
    let store = super::open_existing_store(db)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let io = |e: std::io::Error| bridge_core::store::StoreError::Io(e);
    if csv {
        writeln!(out, "seq,time,pair,direction,action,incident_id,ticket_key,outcome,changes,detail,prev_hash,hash").map_err(io)?;
    }
    store.for_each_ledger_entry(&LedgerFilter::default(), &mut |e| {
        if csv {
            let changes = serde_json::to_string(&e.record.changes).unwrap_or_default();
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
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            writeln!(out, "{}", line.join(",")).map_err(io)?;
        } else {
            let line = serde_json::to_string(&e).unwrap_or_default();
            writeln!(out, "{line}").map_err(io)?;
        }
        Ok(())
    })?;
    out.flush().map_err(io)?;
    Ok(ExitCode::SUCCESS)
}

pub fn verify(db: &Path) -> CmdResult {
    let store = super::open_existing_store(db)?;
    let report = store.verify_ledger()?;
    match &report.first_break {
        None => {
            println!(
                "ledger intact: {} entries, head {}",
                report.entries, report.head
            );
            Ok(ExitCode::SUCCESS)
        }
        Some((seq, why)) => {
            println!(
                "ledger BROKEN at entry {seq}: {why} ({} entries checked)",
                report.entries
            );
            Ok(ExitCode::from(1))
        }
    }
}
