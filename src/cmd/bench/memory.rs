//! `bench memory`: the resident memory of the daemon (`itsm-bridge run`, a
//! child process of this one) with a store of N links, read from the child's
//! `/proc/<pid>/status` (`VmRSS` now, `VmHWM` its peak) once it has run its
//! first cycles against the simulators. The store grows between measurements
//! (same links, more of them), so the growth per 10,000 links shows.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bridge_core::model::{ConflictPolicy, Link, LinkState};
use bridge_core::reconcile::{self, Action, Input, PairSpec};
use bridge_core::store::{SqliteStore, Store};
use chrono::{TimeZone, Utc};
use connectors::sims::{self, SimPorts, Sims};

use super::Scratch;
use crate::CmdResult;
use crate::output::Table;

/// How long the daemon runs before it is measured: past the first tick of the
/// simulators' schedules (every 10 and 15 seconds), so every pair has cycled.
const SETTLE: Duration = Duration::from_secs(17);

pub async fn memory(links: usize) -> CmdResult {
    let sizes: Vec<usize> =
        [0, links / 4, links / 2, links]
            .into_iter()
            .fold(Vec::new(), |mut v, n| {
                if v.last() != Some(&n) {
                    v.push(n);
                }
                v
            });
    println!(
        "== memory of the daemon (`itsm-bridge run` on the simulators' config) with a store of N links; \
         measured {}s after start, once every pair has cycled",
        SETTLE.as_secs()
    );
    let sims = Sims::start(SimPorts::default())
        .await
        .map_err(anyhow::Error::from)?;
    let scratch = Scratch::new("memory")?;
    let result = measure(&sims, &scratch.0, &sizes).await;
    sims.shutdown();
    let rows = result?;
    let mut table = Table::new(&["links", "VmRSS", "VmHWM (peak)", "RssAnon (heap)", "fill"]);
    let mb = |kb: u64| format!("{:.1} MB", kb as f64 / 1024.0);
    for m in &rows {
        table.row(vec![
            m.links.to_string(),
            mb(m.rss),
            mb(m.peak),
            mb(m.anon),
            format!("{:.1}s", m.fill.as_secs_f64()),
        ]);
    }
    print!("{table}");
    if let (Some(first), Some(last)) = (rows.first(), rows.last())
        && last.links > first.links
    {
        let tens = (last.links - first.links) as f64 / 1e4;
        let per = |a: u64, b: u64| (b as f64 - a as f64) / 1024.0 / tens;
        println!(
            "   growth per 10,000 links: {:.2} MB resident, {:.2} MB peak, {:.2} MB heap (goal: <= 64 MB resident at 100,000 links)",
            per(first.rss, last.rss),
            per(first.peak, last.peak),
            per(first.anon, last.anon)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What the daemon held with one size of store, in kB.
struct Measured {
    links: usize,
    rss: u64,
    peak: u64,
    /// `RssAnon`: the heap and stacks, without the pages of mapped files.
    anon: u64,
    fill: Duration,
}

/// One [`Measured`] per size.
async fn measure(sims: &Sims, dir: &Path, sizes: &[usize]) -> anyhow::Result<Vec<Measured>> {
    sims.seed_incidents(50, Utc::now());
    let db = dir.join("bench.db");
    let config = sims.write_config(dir, &db)?;
    let mut rows = Vec::new();
    let mut have = 0;
    for &n in sizes {
        let started = Instant::now();
        {
            let store = SqliteStore::open(&db)?;
            for link in synthetic_links(have, n) {
                store.save_link(&link, &[])?;
            }
        }
        have = n;
        let fill = started.elapsed();
        let (rss, peak, anon) = daemon_memory(&config).await?;
        rows.push(Measured {
            links: n,
            rss,
            peak,
            anon,
            fill,
        });
    }
    Ok(rows)
}

/// Starts `run` on `config`, waits [`SETTLE`], reads its memory, stops it.
async fn daemon_memory(config: &Path) -> anyhow::Result<(u64, u64, u64)> {
    let exe = std::env::current_exe().context("this program's path")?;
    let mut child = Command::new(exe)
        .arg("run")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the daemon")?;
    tokio::time::sleep(SETTLE).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()));
    let exited = child.try_wait()?;
    let _ = child.kill();
    let _ = child.wait();
    if let Some(code) = exited {
        return Err(anyhow!("the daemon exited early ({code})"));
    }
    let status = status.context("reading the daemon's /proc status")?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| anyhow!("no {name} in /proc status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?, field("RssAnon:")?))
}

/// Links `from..to` of the `defender->jira` pair, made as the shipped Jira
/// mapping would make them (its baseline of five fields), for incidents the
/// simulator does not hold: the daemon's polls do not list them, so they are
/// the store's weight alone.
fn synthetic_links(from: usize, to: usize) -> Vec<Link> {
    let Ok(mapping) =
        bridge_core::mapping::parse(Path::new("mappings/jira.toml"), sims::JIRA_MAPPING)
    else {
        return Vec::new();
    };
    let spec = PairSpec {
        pair: "defender->jira",
        source: "defender",
        scope: sims::TENANT_ID,
        mapping: &mapping,
        policy: ConflictPolicy::NewestWins,
    };
    let t0 = Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap();
    let incidents: Vec<_> = (from..to)
        .map(|i| super::reconcile::incident(1_000_000 + i, t0))
        .collect();
    let plan = reconcile::reconcile(
        spec,
        Input {
            incidents: &incidents,
            tickets: &[],
            links: &[],
        },
    );
    plan.actions
        .into_iter()
        .zip(from..)
        .filter_map(|(action, i)| match action {
            Action::CreateTicket {
                incident, baseline, ..
            } => Some(Link {
                pair: spec.pair.to_string(),
                incident_id: incident.id.clone(),
                incident_display_id: incident.display_id.clone(),
                incident_url: incident.web_url.clone(),
                ticket_key: format!("BENCH-{}", i + 1),
                ticket_id: (1_000_000 + i).to_string(),
                ticket_url: format!("https://acme.atlassian.net/browse/BENCH-{}", i + 1),
                state: LinkState::Active,
                baseline,
                written_back: true,
                incident_modified: incident.modified,
                ticket_modified: t0,
                incident_version: None,
                ticket_version: None,
                created: t0,
                updated: t0,
                merged_into: None,
            }),
            _ => None,
        })
        .collect()
}
