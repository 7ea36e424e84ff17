//! `bench backfill`: the first sync of a Defender backlog into Jira against a
//! Graph simulator that enforces a per-minute limit (429 with `Retry-After`
//! beyond it), with the bridge pacing Graph at that same limit, as it paces the
//! real API at its documented 1,500 calls an hour. Graph's hourly limit is too
//! slow to run, so the pace is a setting (`--per-minute`); the figure that
//! carries over to the real limit is the ratio of the time taken to the bound:
//! incidents × Graph calls at the floor (2 per new ticket: the tag PATCH and the
//! link comment) ÷ the limit. A second run refuses a share of Graph's answers
//! with 429 and a fractional `Retry-After`, as Graph does under load.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use bridge_core::config::RateLimitConfig;
use bridge_core::engine::{self, SystemClock};
use bridge_core::store::SqliteStore;
use chrono::Utc;
use connectors::graph::sim::{RateLimit, throttle_body};
use connectors::limits::LimiterRegistry;
use connectors::simkit::{Effect, FaultRule, Trigger};
use connectors::sims::{SimPorts, Sims};

use super::{Scratch, pairs_named};
use crate::CmdResult;
use crate::output::Table;

/// Graph calls per new incident at the floor: the PATCH of the ticket's tag and
/// the link comment.
const FLOOR: f64 = 2.0;
/// Graph calls per new incident before issue 12's work (BENCHMARKS.md's "before").
const BEFORE: f64 = 4.02;
/// The `Retry-After` of the refused share: fractional seconds, as Graph sends.
const RETRY_AFTER: &str = "0.75";

/// What one backfill run measured.
struct Backfill {
    label: String,
    linked: usize,
    graph_calls: usize,
    throttled: usize,
    failed: usize,
    elapsed: Duration,
}

pub async fn backfill(incidents: usize, per_minute: u32, refused: f64) -> CmdResult {
    if per_minute == 0 || !(0.0..1.0).contains(&refused) {
        return Err(anyhow!(
            "--per-minute must be above 0 and --refused in [0, 1) (got {per_minute} and {refused})"
        )
        .into());
    }
    println!(
        "== backfill: {incidents} Defender incidents into Jira; the Graph simulator allows {per_minute} calls a minute \
         (429 + Retry-After beyond) and the bridge paces Graph at that limit; Jira is not limited"
    );
    let mut runs = vec![run(incidents, per_minute, 0.0).await?];
    if refused > 0.0 {
        runs.push(run(incidents, per_minute, refused).await?);
    }
    let rate = f64::from(per_minute) / 60.0;
    let mut table = Table::new(&[
        "run",
        "linked",
        "Graph calls",
        "per incident",
        "429s",
        "failed",
        "elapsed",
        "bound",
        "of bound",
        "bound before",
    ]);
    for r in &runs {
        let bound = r.linked as f64 * FLOOR / rate;
        let before = r.linked as f64 * BEFORE / rate;
        table.row(vec![
            r.label.clone(),
            r.linked.to_string(),
            r.graph_calls.to_string(),
            format!("{:.2}", r.graph_calls as f64 / r.linked.max(1) as f64),
            r.throttled.to_string(),
            r.failed.to_string(),
            format!("{:.1}s", r.elapsed.as_secs_f64()),
            format!("{bound:.1}s"),
            format!("{:.0}%", 100.0 * bound / r.elapsed.as_secs_f64().max(1e-9)),
            format!("{before:.1}s"),
        ]);
    }
    print!("{table}");
    println!(
        "   bound: linked incidents x {FLOOR} Graph calls (the floor) / the limit; \"of bound\" is bound / elapsed (goal >= 90%).\n   \
         bound before: the same at {BEFORE} Graph calls per incident, the cost before the calls were cut.\n   \
         At the real limit (1,500 an hour) the bound for 5,000 incidents is {:.1} h (before: {:.1} h).",
        5000.0 * FLOOR / 1500.0,
        5000.0 * BEFORE / 1500.0
    );
    Ok(ExitCode::SUCCESS)
}

async fn run(incidents: usize, per_minute: u32, refused: f64) -> anyhow::Result<Backfill> {
    let sims = Sims::start(SimPorts::default()).await?;
    let scratch = Scratch::new("backfill")?;
    let result = async {
        sims.seed_incidents(incidents, Utc::now());
        let mut config = scratch.config(&sims, "")?;
        // Steady pacing (a burst of 1): the simulator counts per minute window,
        // so a full minute's burst on top of the refill would be refused.
        let paced = RateLimitConfig {
            requests: per_minute,
            per: Duration::from_secs(60),
            burst: Some(1),
        };
        for source in &mut config.sources {
            source.rate_limit = Some(paced);
        }
        let limiters = LimiterRegistry::from_config(&config);
        let pairs = pairs_named(&config, &limiters, &["defender->jira"])?;
        let store = SqliteStore::open_in_memory()?;
        sims.graph.set_rate_limit(Some(RateLimit {
            per_minute,
            per_hour: per_minute.saturating_mul(60),
        }));
        if refused > 0.0 {
            sims.graph.kit.inject(
                FaultRule::new(
                    None,
                    "/v1.0/security/incidents",
                    Effect::Status {
                        status: 429,
                        retry_after: Some(RETRY_AFTER.into()),
                        body: throttle_body(),
                    },
                )
                .when(Trigger::Probability {
                    p: refused,
                    seed: 12,
                }),
            );
        }
        sims.graph.kit.clear_log();
        let started = Instant::now();
        let mut linked = 0;
        let mut failed = 0;
        // Until every incident the seed left open has its issue: a failed one is
        // retried by a later cycle, as the daemon would.
        for _ in 0..5 {
            let report = engine::run_cycle(&pairs[0], &store, &SystemClock, false).await?;
            linked += report.tickets_created + report.tickets_adopted;
            failed += report.failed;
            if report.failed == 0 {
                break;
            }
        }
        let elapsed = started.elapsed();
        let log = sims.graph.kit.requests();
        Ok(Backfill {
            label: if refused > 0.0 {
                format!(
                    "{:.0}% refused 429, Retry-After {RETRY_AFTER}",
                    refused * 100.0
                )
            } else {
                "paced, nothing refused".into()
            },
            linked,
            graph_calls: log.iter().filter(|r| r.status != 429).count(),
            throttled: log.iter().filter(|r| r.status == 429).count(),
            failed,
            elapsed,
        })
    }
    .await;
    sims.shutdown();
    result
}
