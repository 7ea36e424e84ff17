//! `itsm-bridge bench export`: shows that `ledger export` streams. It fills
//! stores of a tenth of `--rows` and of `--rows` entries (SQLite files, or with
//! `--pg URL` schemas of their own in that PostgreSQL database, dropped
//! afterwards), runs the real `ledger export` of this binary on each as a child
//! process, reads its output to the end, and prints rows per second and the
//! child's peak resident memory (`VmHWM`, sampled from `/proc` while it
//! streams). Constant memory means both peaks are alike though one ledger is
//! ten times the other. Nothing is asserted.

use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, anyhow};
use bridge_core::ledger::{LedgerRecord, Outcome};
use bridge_core::model::{Direction, FieldChange};
use bridge_core::store::{PgConnect, PgStore, Store};
use chrono::{TimeZone, Utc};

use crate::CmdResult;

/// Entries appended per transaction while filling a store.
const FILL_BATCH: usize = 10_000;

pub fn run(rows: usize, pg: Option<&str>) -> CmdResult {
    // On a thread of its own: the synchronous PostgreSQL client runs a runtime
    // of its own, which cannot start on one of the async workers.
    std::thread::scope(|scope| scope.spawn(|| bench(rows, pg)).join())
        .unwrap_or_else(|_| Err(anyhow!("the bench panicked").into()))
}

fn bench(rows: usize, pg: Option<&str>) -> CmdResult {
    let dir = ScratchDir::new()?;
    let sizes = [(rows / 10).max(1), rows];
    let backend = if pg.is_some() { "PostgreSQL" } else { "SQLite" };
    println!("== ledger export on {backend}, JSON lines, streamed to a reader that counts them");
    println!(
        "{:>10}  {:>9}  {:>12}  {:>14}",
        "entries", "fill s", "export rows/s", "peak RSS MiB"
    );
    for (i, size) in sizes.into_iter().enumerate() {
        let filled = Instant::now();
        let (store_args, _schema) = match pg {
            None => {
                let db = dir.path().join(format!("ledger-{i}.db"));
                fill(&bridge_core::store::SqliteStore::open(&db)?, size)?;
                (vec!["--db".to_owned(), db.display().to_string()], None)
            }
            Some(url) => {
                let schema = Schema::new(url, i)?;
                fill(&PgStore::open(&PgConnect::new(&schema.url, None)?)?, size)?;
                let config = dir.path().join(format!("bench-{i}.toml"));
                write_pg_config(&config, &schema.url)?;
                let args = vec!["--config".to_owned(), config.display().to_string()];
                (args, Some(schema))
            }
        };
        let fill_seconds = filled.elapsed().as_secs_f64();
        let measured = export(&store_args)?;
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

/// A schema of the bench's own in the `--pg` database, dropped when done (the
/// ledger is append-only: a schema is the only way to take it away again).
struct Schema {
    base: String,
    name: String,
    url: String,
}

impl Schema {
    fn new(base: &str, i: usize) -> anyhow::Result<Schema> {
        let name = format!("itsm_bench_export_{}_{i}", std::process::id());
        let mut client = postgres::Client::connect(base, postgres::NoTls)
            .with_context(|| format!("cannot connect to {base}"))?;
        client.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
        ))?;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{name}");
        Ok(Schema {
            base: base.to_owned(),
            name,
            url,
        })
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.base, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// The smallest config `ledger export --config` takes for a PostgreSQL store:
/// one pair, whose remotes the export never calls.
fn write_pg_config(path: &Path, url: &str) -> anyhow::Result<()> {
    let dir = path.parent().expect("a file in the scratch directory");
    std::fs::write(dir.join("jira.toml"), connectors::sims::JIRA_MAPPING)?;
    let text = format!(
        r#"[store]
url = "{url}"

[[source]]
name = "defender"
kind = "graph"
tenant_id = "{tenant}"
client_id = "{client}"
client_secret = {{ env = "ITSM_BRIDGE_BENCH_UNUSED" }}

[[ticket_system]]
name = "jira"
kind = "jira"
base_url = "https://bench.atlassian.net"
email = "bench@example.com"
api_token = {{ env = "ITSM_BRIDGE_BENCH_UNUSED" }}
project_key = "SEC"
mapping = "jira.toml"

[[sync]]
source = "defender"
tickets = "jira"
schedule = "*/10 * * * * *"
since = "2026-01-01T00:00:00Z"
"#,
        tenant = connectors::sims::TENANT_ID,
        client = connectors::sims::GRAPH_CLIENT_ID,
    );
    std::fs::write(path, text)?;
    Ok(())
}

/// Appends `size` entries of a realistic shape (two field changes, a ticket key)
/// to a new store at `db`.
fn fill(store: &dyn Store, size: usize) -> anyhow::Result<()> {
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
    let time = start + chrono::Duration::milliseconds(n as i64 * 250);
    LedgerRecord {
        // Who made the change, as every carried change now records.
        actors: vec![bridge_core::ledger::Actor {
            name: format!("analyst{}@contoso.example", n % 40),
            side: bridge_core::ledger::ActorSide::Incident,
            at: Some(time - chrono::Duration::seconds(20)),
            fields: vec!["status".to_owned(), "priority".to_owned()],
        }],
        time,
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

/// Runs this binary's `ledger export <store_args>` and reads its output to the end.
fn export(store_args: &[String]) -> anyhow::Result<Measured> {
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(["ledger", "export"])
        .args(store_args)
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
