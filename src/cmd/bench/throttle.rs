//! `bench throttle` runs the real engine and connectors against simulators that
//! throttle like the real services — a Jira site with a per-second burst limit
//! shared by two pairs, and a Sentinel workspace with ARM's token buckets (scaled
//! down) — with the bridge's own limiter effectively off, then sized to the
//! simulator, and prints requests sent, 429s, the 429 rate and the throughput
//! achieved against the one allowed.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use bridge_core::config::RateLimitConfig;
use bridge_core::engine::{self, CycleReport, SystemClock};
use bridge_core::store::SqliteStore;
use bridge_core::vocab::TicketKind;
use chrono::Utc;
use connectors::http::{BucketLimit, LimiterStats, Limits};
use connectors::jira::sim::Workflow;
use connectors::limits::{LimiterRegistry, source_instance};
use connectors::sentinel::sim::{ArmRateLimit, BucketLimit as SimBucket};
use connectors::simkit::LoggedRequest;
use connectors::sims::{self, SimPorts, Sims};

use super::{Scratch, pairs_named};
use crate::CmdResult;
use crate::output::Table;

/// Which throttling simulator `bench throttle` runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Two pairs on one Jira site with a per-second burst limit.
    Jira,
    /// One pair on a Sentinel workspace with ARM's read and write buckets.
    Arm,
}

/// A rate limit the simulators cannot reach: the bridge's limiter is there but
/// never makes anyone wait (a 429 still pauses it).
const UNPACED: RateLimitConfig = RateLimitConfig {
    requests: 100_000,
    per: Duration::from_secs(1),
    burst: Some(100_000),
};

/// ARM's documented buckets (reads 250 deep/25 s⁻¹, writes 200 deep/10 s⁻¹), scaled
/// down about ten times so that a small backlog runs into them.
const ARM_SCALED: ArmRateLimit = ArmRateLimit {
    reads: SimBucket {
        capacity: 25,
        refill_per_second: 3,
    },
    writes: SimBucket {
        capacity: 20,
        refill_per_second: 1,
    },
    deletes: SimBucket {
        capacity: 20,
        refill_per_second: 1,
    },
};

pub async fn throttle(incidents: usize, jira_per_second: u32, only: Option<Scenario>) -> CmdResult {
    let jira_per_second = jira_per_second.max(1);
    if only.is_none_or(|s| s == Scenario::Jira) {
        jira_scenario(incidents, jira_per_second).await?;
    }
    if only.is_none_or(|s| s == Scenario::Arm) {
        if only.is_none() {
            println!();
        }
        arm_scenario(incidents).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What one run measured.
#[derive(Debug)]
struct Run {
    label: String,
    /// Requests the throttled simulator answered, 429s included.
    requests: Vec<LoggedRequest>,
    elapsed: Duration,
    limiter: LimiterStats,
    reports: Vec<CycleReport>,
}

impl Run {
    fn throttled(&self) -> usize {
        self.requests.iter().filter(|r| r.status == 429).count()
    }

    fn accepted(&self, method: Option<&[&str]>) -> usize {
        self.requests
            .iter()
            .filter(|r| r.status != 429 && method.is_none_or(|m| m.contains(&r.method.as_str())))
            .count()
    }

    fn per_second(&self, n: usize) -> f64 {
        n as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn linked(&self) -> usize {
        self.reports
            .iter()
            .map(|r| r.tickets_created + r.tickets_adopted)
            .sum()
    }

    fn failed(&self) -> usize {
        self.reports.iter().map(|r| r.failed).sum()
    }

    fn common_cells(&self) -> Vec<String> {
        let sent = self.requests.len();
        let throttled = self.throttled();
        vec![
            self.label.clone(),
            sent.to_string(),
            throttled.to_string(),
            format!("{:.1}%", 100.0 * throttled as f64 / sent.max(1) as f64),
            format!("{:.1}s", self.elapsed.as_secs_f64()),
            format!("{:.1}", self.per_second(sent)),
        ]
    }
}

async fn jira_scenario(incidents: usize, per_second: u32) -> anyhow::Result<()> {
    println!(
        "== Jira: two pairs (defender->jira, defender->jira-ops) on one simulated Jira site that answers 429 beyond {per_second} requests a second (Retry-After: 1)"
    );
    println!(
        "   {incidents} Defender incidents, each gets an issue in both projects; Graph is not throttled. Figures count Jira requests only."
    );
    let under = ((f64::from(per_second) * 0.9).floor() as u32).max(1);
    let settings = [
        (format!("off ({}/s)", UNPACED.requests), UNPACED),
        (
            format!("{per_second}/s, burst {per_second}"),
            RateLimitConfig {
                requests: per_second,
                per: Duration::from_secs(1),
                burst: Some(per_second),
            },
        ),
        (
            format!("{under}/s, burst 1"),
            RateLimitConfig {
                requests: under,
                per: Duration::from_secs(1),
                burst: Some(1),
            },
        ),
    ];
    let mut table = Table::new(&[
        "bridge's Jira limit",
        "requests",
        "429s",
        "429 rate",
        "elapsed",
        "sent/s",
        "accepted/s",
        "of allowed",
        "limiter wait",
        "issues",
        "failed",
    ]);
    for (label, limit) in settings {
        let run = jira_run(incidents, per_second, label, limit).await?;
        let accepted = run.per_second(run.accepted(None));
        let mut cells = run.common_cells();
        cells.extend([
            format!("{accepted:.1}"),
            format!("{:.0}%", 100.0 * accepted / f64::from(per_second)),
            format!("{:.1}s", run.limiter.waited.as_secs_f64()),
            run.linked().to_string(),
            run.failed().to_string(),
        ]);
        table.row(cells);
    }
    print!("{table}");
    println!(
        "   allowed: {per_second}/s. limiter wait: time callers spent waiting for a token, summed over both pairs."
    );
    Ok(())
}

async fn jira_run(
    incidents: usize,
    sim_per_second: u32,
    label: String,
    bridge_limit: RateLimitConfig,
) -> anyhow::Result<Run> {
    let sims = Sims::start(SimPorts::default()).await?;
    let scratch = Scratch::new("jira")?;
    let result = async {
        sims.seed_incidents(incidents, Utc::now());
        sims.jira.add_project("OPS", Workflow::standard());
        let extra = format!(
            r#"
[[ticket_system]]
name = "jira-ops"
kind = "jira"
base_url = "{jira}"
email = "{email}"
api_token = {{ file = "secrets/jira-api-token" }}
project_key = "OPS"
mapping = "jira.toml"

[[sync]]
source = "defender"
tickets = "jira-ops"
schedule = "*/10 * * * * *"
since = "{since}"
"#,
            jira = sims.jira.base_url(),
            email = sims::JIRA_EMAIL,
            since = (Utc::now() - chrono::Duration::days(30)).format("%Y-%m-%dT%H:%M:%SZ"),
        );
        let mut config = scratch.config(&sims, &extra)?;
        for source in &mut config.sources {
            source.rate_limit = Some(UNPACED);
        }
        for system in &mut config.ticket_systems {
            system.rate_limit = Some(if system.kind == TicketKind::Jira {
                bridge_limit
            } else {
                UNPACED
            });
        }
        let limiters = LimiterRegistry::from_config(&config);
        let pairs = pairs_named(
            &config,
            &limiters,
            &["defender->jira", "defender->jira-ops"],
        )?;
        let store = SqliteStore::open_in_memory()?;
        sims.jira.kit.clear_log();
        sims.jira.set_burst_limit(Some(sim_per_second));
        let started = Instant::now();
        let (a, b) = tokio::join!(
            engine::run_cycle(&pairs[0], &store, &SystemClock, false),
            engine::run_cycle(&pairs[1], &store, &SystemClock, false),
        );
        let elapsed = started.elapsed();
        sims.jira.set_burst_limit(None);
        let limiter = limiters
            .limiters()
            .iter()
            .find(|l| l.name().starts_with("jira "))
            .map(|l| l.stats())
            .unwrap_or_default();
        Ok(Run {
            label,
            requests: sims.jira.kit.requests(),
            elapsed,
            limiter,
            reports: vec![a?, b?],
        })
    }
    .await;
    sims.shutdown();
    result
}

async fn arm_scenario(incidents: usize) -> anyhow::Result<()> {
    let (reads, writes) = (ARM_SCALED.reads, ARM_SCALED.writes);
    println!(
        "== ARM: sentinel->servicenow on a simulated Sentinel workspace with ARM's token buckets scaled down: reads {} deep, {}/s back; writes {} deep, {}/s back (429 + Retry-After when empty)",
        reads.capacity, reads.refill_per_second, writes.capacity, writes.refill_per_second
    );
    println!(
        "   {incidents} Sentinel incidents; ServiceNow is not throttled. Figures count ARM requests only."
    );
    let bucket = |b: SimBucket| BucketLimit {
        burst: b.capacity,
        per_second: f64::from(b.refill_per_second),
    };
    let settings = [
        (
            format!("off ({}/s)", UNPACED.requests),
            Limits::Shared(BucketLimit {
                burst: UNPACED.requests,
                per_second: f64::from(UNPACED.requests),
            }),
        ),
        (
            "ARM's buckets (scaled)".to_string(),
            Limits::Split {
                reads: bucket(reads),
                writes: bucket(writes),
            },
        ),
    ];
    let mut table = Table::new(&[
        "bridge's ARM limit",
        "requests",
        "429s",
        "429 rate",
        "elapsed",
        "sent/s",
        "reads ok",
        "writes ok",
        "writes ok/s",
        "limiter wait",
        "tickets",
        "failed",
    ]);
    for (label, limits) in settings {
        let run = arm_run(incidents, label, limits).await?;
        let writes_ok = run.accepted(Some(&["PUT", "POST", "PATCH", "DELETE"]));
        let mut cells = run.common_cells();
        cells.extend([
            run.accepted(Some(&["GET", "HEAD"])).to_string(),
            writes_ok.to_string(),
            format!("{:.1}", run.per_second(writes_ok)),
            format!("{:.1}s", run.limiter.waited.as_secs_f64()),
            run.linked().to_string(),
            run.failed().to_string(),
        ]);
        table.row(cells);
    }
    print!("{table}");
    println!(
        "   allowed after the first bursts: reads {}/s, writes {}/s.",
        reads.refill_per_second, writes.refill_per_second
    );
    Ok(())
}

async fn arm_run(incidents: usize, label: String, bridge_limits: Limits) -> anyhow::Result<Run> {
    let sims = Sims::start(SimPorts::default()).await?;
    let scratch = Scratch::new("arm")?;
    let result = async {
        sims.seed_sentinel_incidents(incidents, Utc::now());
        let mut config = scratch.config(&sims, "")?;
        for system in &mut config.ticket_systems {
            system.rate_limit = Some(UNPACED);
        }
        // ARM's read/write split is not something `rate_limit` can say: the
        // subscription's limiter is registered first, and the wiring shares it.
        let limiters = LimiterRegistry::new();
        let sentinel = config
            .source("sentinel")
            .ok_or_else(|| anyhow!("the simulators' config has no sentinel source"))?;
        let (system, instance) = source_instance(sentinel);
        let arm = limiters.limiter(system, &instance, Some(bridge_limits));
        let pairs = pairs_named(&config, &limiters, &["sentinel->servicenow"])?;
        let store = SqliteStore::open_in_memory()?;
        sims.sentinel.kit.clear_log();
        sims.sentinel.set_rate_limit(Some(ARM_SCALED));
        let started = Instant::now();
        let report = engine::run_cycle(&pairs[0], &store, &SystemClock, false).await;
        let elapsed = started.elapsed();
        sims.sentinel.set_rate_limit(None);
        Ok(Run {
            label,
            requests: sims.sentinel.kit.requests(),
            elapsed,
            limiter: arm.stats(),
            reports: vec![report?],
        })
    }
    .await;
    sims.shutdown();
    result
}
