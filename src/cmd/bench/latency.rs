//! `bench latency`: how long an edit on one side takes to show on the other.
//! N open links (a first sync of N Defender incidents into Jira), then edits
//! on the Graph simulator at a steady rate (a new title each, on a different
//! incident each time) while the engine runs the pair's cycle every schedule
//! interval, as the daemon does. After each cycle the issues are looked at:
//! an edit has arrived when its issue's summary shows the new title. The time
//! of arrival is taken at the end of the cycle that carried it (an upper
//! bound: the write itself happened within that cycle).

use std::collections::VecDeque;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use bridge_core::config::RateLimitConfig;
use bridge_core::engine::{self, SystemClock};
use bridge_core::store::{SqliteStore, Store};
use chrono::Utc;
use connectors::limits::LimiterRegistry;
use connectors::sims::{SimPorts, Sims};

use super::{Scratch, pairs_named};
use crate::CmdResult;
use crate::output::Table;

/// An edit made and not yet seen on the issue.
struct Edit {
    key: String,
    title: String,
    at: Instant,
}

pub async fn latency(links: usize, per_second: u32, seconds: u64, interval: u64) -> CmdResult {
    if per_second == 0 || interval == 0 {
        return Err(anyhow!("--per-second and --interval must be above 0").into());
    }
    println!(
        "== latency: {links} Defender incidents linked to Jira, {per_second} title edits a second on Graph for {seconds}s, \
         the pair's cycle every {interval}s; from an edit to its issue's summary showing it"
    );
    let sims = Sims::start(SimPorts::default())
        .await
        .map_err(anyhow::Error::from)?;
    let scratch = Scratch::new("latency")?;
    let result = measure(&sims, &scratch, links, per_second, seconds, interval).await;
    sims.shutdown();
    let (mut waits, missing) = result?;
    waits.sort();
    let pick = |q: f64| {
        waits
            .get(((waits.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .map_or("-".into(), |d| format!("{:.2}s", d.as_secs_f64()))
    };
    let mut table = Table::new(&["edits", "arrived", "p50", "p99", "max", "goal p99"]);
    table.row(vec![
        (waits.len() + missing).to_string(),
        waits.len().to_string(),
        pick(0.50),
        pick(0.99),
        pick(1.0),
        format!("<= {}s (interval + 1s)", interval + 1),
    ]);
    print!("{table}");
    Ok(ExitCode::SUCCESS)
}

/// The waits of the edits that arrived, and how many had not when it ended.
async fn measure(
    sims: &Sims,
    scratch: &Scratch,
    links: usize,
    per_second: u32,
    seconds: u64,
    interval: u64,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    // The simulators' limits are lifted and the bridge does not pace: this
    // measures the bridge's own delay, not a quota's.
    sims.graph.set_rate_limit(None);
    let ids = sims.seed_incidents(links, Utc::now());
    let mut config = scratch.config(sims, "")?;
    let unpaced = RateLimitConfig {
        requests: 100_000,
        per: Duration::from_secs(1),
        burst: Some(100_000),
    };
    for source in &mut config.sources {
        source.rate_limit = Some(unpaced);
    }
    for system in &mut config.ticket_systems {
        system.rate_limit = Some(unpaced);
    }
    let limiters = LimiterRegistry::from_config(&config);
    let pairs = pairs_named(&config, &limiters, &["defender->jira"])?;
    let store = SqliteStore::open_in_memory()?;
    engine::run_cycle(&pairs[0], &store, &SystemClock, false).await?;
    let linked: Vec<(String, String)> = store
        .links(Some("defender->jira"))?
        .into_iter()
        .filter(|l| ids.contains(&l.incident_id))
        .map(|l| (l.incident_id, l.ticket_key))
        .collect();
    if linked.is_empty() {
        return Err(anyhow!("the first sync linked no incident"));
    }
    println!("   first sync done: {} links", linked.len());

    let started = Instant::now();
    let every = Duration::from_secs_f64(1.0 / f64::from(per_second));
    let mut pending: VecDeque<Edit> = VecDeque::new();
    let mut waits = Vec::new();
    let mut next_edit = started;
    let mut next_cycle = started + Duration::from_secs(interval);
    let mut made = 0usize;
    let editing = Duration::from_secs(seconds);
    // Edits until `seconds` have passed, then cycles until all arrived (at
    // most three intervals more).
    let end = editing + Duration::from_secs(3 * interval);
    while started.elapsed() < end && (started.elapsed() < editing || !pending.is_empty()) {
        let now = Instant::now();
        if now >= next_cycle {
            engine::run_cycle(&pairs[0], &store, &SystemClock, false).await?;
            let arrived_at = Instant::now();
            pending.retain(|e| {
                let shown = sims
                    .jira
                    .issue(&e.key)
                    .is_some_and(|i| i.summary.contains(&e.title));
                if shown {
                    waits.push(arrived_at - e.at);
                }
                !shown
            });
            next_cycle += Duration::from_secs(interval);
            continue;
        }
        if now >= next_edit && started.elapsed() < editing {
            let (id, key) = &linked[made % linked.len()];
            let title = format!("latency edit {made}");
            if sims.graph.set_title(id, &title) {
                pending.push_back(Edit {
                    key: key.clone(),
                    title,
                    at: Instant::now(),
                });
            }
            made += 1;
            next_edit += every;
            continue;
        }
        let wake = if started.elapsed() < editing {
            next_edit.min(next_cycle)
        } else {
            next_cycle
        };
        tokio::time::sleep(wake.saturating_duration_since(Instant::now())).await;
    }
    Ok((waits, pending.len()))
}
