//! `itsm-bridge bench export`: shows that `ledger export` streams. It fills
//! SQLite stores of a tenth of `--rows` and of `--rows` entries, runs the real
//! `ledger export` of this binary on each as a child process, reads its output
//! to the end, and prints rows per second and the child's peak resident memory
//! (`VmHWM`, sampled from `/proc` while it streams). Constant memory means both
//! peaks are alike though one ledger is ten times the other. Nothing is asserted.

use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, anyhow};
use bridge_core::ledger::{LedgerRecord, Outcome};
use bridge_core::model::{Direction, FieldChange};
use bridge_core::store::Store;
use chrono::{TimeZone, Utc};

use crate::CmdResult;

/// Entries appended per transaction while filling a store.
const FILL_BATCH: usize = 10_000;

pub fn run(rows: usize) -> CmdResult {
    let dir = ScratchDir::new()?;
    let sizes = [(rows / 10).max(1), rows];
    println!("== ledger export, JSON lines, streamed to a reader that counts them");
    println!(
        "{:>10}  {:>9}  {:>12}  {:>14}",
        "entries", "fill s", "export rows/s", "peak RSS MiB"
    );
    for (i, size) in sizes.into_iter().enumerate() {
        let db = dir.path().join(format!("ledger-{i}.db"));
        let filled = Instant::now();
        fill(&db, size)?;
        let fill_seconds = filled.elapsed().as_secs_f64();
        let measured = export(&db)?;
        if measured.lines != size as u64 {
            return Err(anyhow!(
                "ledger export wrote {} lines for {size} entries",
                measured.lines
            )
            .into());
        }
        let rate = measured.lines as f64 / measured.seconds.max(f64::EPSILON);
        let peak = measured.peak_kib.map_or_else(
            || "n/a".to_owned(),
            |kib| format!("{:.1}", kib as f64 / 1024.0),
        );
        println!("{size:>10}  {fill_seconds:>9.1}  {rate:>12.0}  {peak:>14}");
    }
    println!("(peak RSS is the export process's own high-water mark, VmHWM, read from /proc)");
    Ok(ExitCode::SUCCESS)
}

/// Appends `size` entries of a realistic shape (two field changes, a ticket key)
/// to a new store at `db`.
fn fill(db: &Path, size: usize) -> anyhow::Result<()> {
    let store = bridge_core::store::SqliteStore::open(db)?;
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut batch = Vec::with_capacity(FILL_BATCH);
    for n in 0..size {
        batch.push(entry(n, start));
        if batch.len() == FILL_BATCH {
            store.append_ledger(&batch)?;
            batch.clear();
        }
    }
    store.append_ledger(&batch)?;
    Ok(())
}

/// The stores' directory, removed when the bench ends.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new() -> anyhow::Result<ScratchDir> {
        let path = std::env::temp_dir().join(format!(
            "itsm-bridge-bench-export-{}-{}",
            std::process::id(),
            Utc::now().timestamp_micros()
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("{}", path.display()))?;
        Ok(ScratchDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn entry(n: usize, start: chrono::DateTime<Utc>) -> LedgerRecord {
    let change = |field: &str, old: &str, new: &str| FieldChange {
        field: field.to_owned(),
        old: Some(old.to_owned()),
        new: Some(new.to_owned()),
        conflict: None,
    };
    LedgerRecord {
        time: start + chrono::Duration::milliseconds(n as i64 * 250),
        pair: ["defender->jira", "sentinel->servicenow"][n % 2].to_owned(),
        direction: Some(Direction::ToTicket),
        action: "update_ticket".to_owned(),
        incident_id: format!("{}", 10_000 + n / 4),
        ticket_key: Some(format!("SEC-{}", 1 + n / 4)),
        changes: vec![
            change("status", "new", "active"),
            change("priority", "Medium", "High"),
        ],
        outcome: Outcome::Ok,
        detail: None,
    }
}

struct Measured {
    lines: u64,
    seconds: f64,
    peak_kib: Option<u64>,
}

/// Runs this binary's `ledger export --db <db>` and reads its output to the end.
fn export(db: &Path) -> anyhow::Result<Measured> {
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(["ledger", "export", "--db"])
        .arg(db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start `ledger export`")?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut buffer = vec![0u8; 64 * 1024];
    let (mut lines, mut peak_kib) = (0u64, None);
    loop {
        let read = stdout.read(&mut buffer).context("cannot read the export")?;
        if read == 0 {
            break;
        }
        lines += buffer[..read].iter().filter(|&&b| b == b'\n').count() as u64;
        // The high-water mark only grows: the last reading before the end is
        // the peak, up to what the last 64 KiB of output took.
        if let Some(kib) = high_water_kib(&status_file) {
            peak_kib = Some(kib);
        }
    }
    let status = child.wait().context("cannot wait for `ledger export`")?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        return Err(anyhow!("`ledger export` failed: {status}"));
    }
    Ok(Measured {
        lines,
        seconds,
        peak_kib,
    })
}

/// `VmHWM` of a running process, in KiB (Linux only).
fn high_water_kib(status_file: &str) -> Option<u64> {
    let text = std::fs::read_to_string(status_file).ok()?;
    let line = text.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
