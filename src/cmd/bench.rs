//! `itsm-bridge bench`: speed figures, printed for a person to read, never asserted.
//!
//! `bench throttle` runs the real engine and connectors against simulators that
//! throttle like the real services — a Jira site with a per-second burst limit
//! shared by two pairs, and a Sentinel workspace with ARM's token buckets (scaled
//! down) — with the bridge's own limiter effectively off, then sized to the
//! simulator, and prints requests sent, 429s, the 429 rate and the throughput
//! achieved against the one allowed. `bench reconcile` times the pure reconcile over
//! a large synthetic link table. `bench calls` counts, from the simulators' request
//! logs, the API calls each pair makes per incident in each phase of its life: the
//! first sync, the cycle after it (the echo of its own writes), a one-field change
//! on either side and its echo, and a quiet cycle.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bridge_core::config::{self, Config, RateLimitConfig};
use bridge_core::engine::{self, CycleReport, PairRuntime, SystemClock};
use bridge_core::model::{
    Attrs, ConflictPolicy, IncidentSnapshot, Link, LinkState, TicketSnapshot, Timestamp,
};
use bridge_core::reconcile::{self, Action, Input, PairSpec};
use bridge_core::store::SqliteStore;
use bridge_core::vocab::TicketKind;
use chrono::{TimeZone, Utc};
use connectors::http::{BucketLimit, LimiterStats, Limits};
use connectors::jira::sim::Workflow;
use connectors::limits::{LimiterRegistry, source_instance};
use connectors::sentinel::sim::{ArmRateLimit, BucketLimit as SimBucket};
use connectors::simkit::{LoggedRequest, SimKit};
use connectors::sims::{self, SimPorts, Sims};
use connectors::wiring;

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

/// The pairs of `config` with these names, in this order.
fn pairs_named(
    config: &Config,
    limiters: &LimiterRegistry,
    names: &[&str],
) -> anyhow::Result<Vec<PairRuntime>> {
    let mut pairs = wiring::build_pairs_with(config, limiters).map_err(|e| anyhow!("{e}"))?;
    names
        .iter()
        .map(|name| {
            let i = pairs
                .iter()
                .position(|p| p.pair == *name)
                .ok_or_else(|| anyhow!("the simulators' config has no pair {name}"))?;
            Ok(pairs.swap_remove(i))
        })
        .collect()
}

/// A directory for one run's config, secrets and mappings, removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!(
            "itsm-bridge-bench-{}-{name}-{}",
            std::process::id(),
            Utc::now().timestamp_micros()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
        Ok(Scratch(dir))
    }

    /// The simulators' config with `extra` appended, loaded and checked.
    fn config(&self, sims: &Sims, extra: &str) -> anyhow::Result<Config> {
        let path = sims.write_config(&self.0, &self.0.join("bench.db"))?;
        if !extra.is_empty() {
            let mut text = std::fs::read_to_string(&path)?;
            text.push_str(extra);
            std::fs::write(&path, text)?;
        }
        config::load(&path).map_err(|e| anyhow!("{e}"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------
// reconcile

pub fn reconcile(links: usize) -> CmdResult {
    let mapping = bridge_core::mapping::parse(Path::new("mappings/jira.toml"), sims::JIRA_MAPPING)
        .map_err(|e| anyhow!("{e}"))?;
    let spec = PairSpec {
        pair: "defender->jira",
        source: "defender",
        scope: sims::TENANT_ID,
        mapping: &mapping,
        policy: ConflictPolicy::NewestWins,
    };
    let t0 = Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap();
    let t1 = t0 + chrono::Duration::minutes(5);
    let incidents: Vec<IncidentSnapshot> = (0..links).map(|i| incident(i, t0)).collect();
    println!(
        "== reconcile over {links} links (mappings/jira.toml: 5 fields, templates, write-back); best of 3 runs each"
    );

    let (creates, new_ms) = best_of_3(|| {
        reconcile::reconcile(
            spec,
            Input {
                incidents: &incidents,
                tickets: &[],
                links: &[],
            },
        )
    });
    let created = creates.actions.len();
    // The issues those creates would have made, and their links.
    let mut tickets = Vec::with_capacity(links);
    let mut table_links = Vec::with_capacity(links);
    for (i, action) in creates.actions.into_iter().enumerate() {
        let Action::CreateTicket {
            incident,
            create,
            baseline,
        } = action
        else {
            continue;
        };
        let ticket = TicketSnapshot {
            version: None,
            key: format!("SEC-{}", i + 1),
            id: (10_000 + i).to_string(),
            url: format!("https://acme.atlassian.net/browse/SEC-{}", i + 1),
            created: t0,
            modified: t0,
            attrs: create.attrs,
            labels: create.labels,
            correlation: Some(create.correlation),
            comments: Vec::new(),
        };
        table_links.push(Link {
            incident_version: None,
            ticket_version: None,
            pair: spec.pair.to_string(),
            incident_id: incident.id.clone(),
            incident_display_id: incident.display_id.clone(),
            incident_url: incident.web_url.clone(),
            ticket_key: ticket.key.clone(),
            ticket_id: ticket.id.clone(),
            ticket_url: ticket.url.clone(),
            state: LinkState::Active,
            baseline,
            written_back: true,
            incident_modified: incident.modified,
            ticket_modified: ticket.modified,
            created: t0,
            updated: t0,
            merged_into: None,
        });
        tickets.push(ticket);
    }

    let changed_incidents: Vec<IncidentSnapshot> = incidents
        .iter()
        .map(|inc| {
            let mut inc = inc.clone();
            inc.attrs.insert("status".into(), "inProgress".into());
            inc.modified = t1;
            inc
        })
        .collect();
    let changed_tickets: Vec<TicketSnapshot> = tickets
        .iter()
        .map(|t| {
            let mut t = t.clone();
            t.attrs.insert("status".into(), "done".into());
            t.attrs.insert("resolution".into(), "Won't Do".into());
            t.modified = t1;
            t
        })
        .collect();
    let one_in_100: Vec<IncidentSnapshot> =
        changed_incidents.iter().step_by(100).cloned().collect();

    let mut table = Table::new(&[
        "situation",
        "incidents",
        "tickets",
        "links",
        "actions",
        "ms",
    ]);
    table.row(vec![
        "every incident new: plan the creates".into(),
        links.to_string(),
        "0".into(),
        "0".into(),
        created.to_string(),
        format!("{new_ms:.0}"),
    ]);
    let situations: [(&str, &[IncidentSnapshot], &[TicketSnapshot]); 4] = [
        (
            "re-read, nothing changed (overlap window)",
            &incidents,
            &tickets,
        ),
        ("1 incident in 100 changed status", &one_in_100, &[]),
        ("every incident changed status", &changed_incidents, &[]),
        ("every ticket resolved", &[], &changed_tickets),
    ];
    for (what, incidents, tickets) in situations {
        let input = Input {
            incidents,
            tickets,
            links: &table_links,
        };
        let (plan, ms) = best_of_3(|| reconcile::reconcile(spec, input));
        table.row(vec![
            what.to_string(),
            incidents.len().to_string(),
            tickets.len().to_string(),
            table_links.len().to_string(),
            plan.actions.len().to_string(),
            format!("{ms:.0}"),
        ]);
    }
    print!("{table}");
    Ok(ExitCode::SUCCESS)
}

/// Runs `f` three times; the last result and the fastest time in milliseconds.
fn best_of_3<T>(mut f: impl FnMut() -> T) -> (T, f64) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..3 {
        let started = Instant::now();
        let value = f();
        best = best.min(started.elapsed().as_secs_f64() * 1000.0);
        out = Some(value);
    }
    (out.expect("ran three times"), best)
}

fn incident(i: usize, t0: Timestamp) -> IncidentSnapshot {
    const SEVERITIES: [&str; 4] = ["high", "medium", "low", "informational"];
    let id = (100_000 + i).to_string();
    let mut attrs = Attrs::new();
    attrs.insert(
        "title".into(),
        format!("Suspicious sign-in followed by mailbox rule creation ({i})"),
    );
    attrs.insert(
        "description".into(),
        "Alerts from Microsoft Defender for Endpoint.".into(),
    );
    attrs.insert("status".into(), "active".into());
    attrs.insert("severity".into(), SEVERITIES[i % SEVERITIES.len()].into());
    attrs.insert("classification".into(), "unknown".into());
    if i % 3 == 0 {
        attrs.insert("assigned_to".into(), "ana.ruiz@contoso.example".into());
    }
    IncidentSnapshot {
        web_url: format!("https://security.microsoft.com/incidents/{id}"),
        display_id: id.clone(),
        id,
        provider_url: None,
        created: t0,
        modified: t0,
        attrs,
        tags: Vec::new(),
        redirect_to: None,
        comments: Vec::new(),
        etag: None,
    }
}

// ---------------------------------------------------------------------------------
// calls

/// The phases `bench calls` measures, in the order it runs them.
const PHASES: &[&str] = &[
    "first sync",
    "echo of the first sync",
    "one field changed on the incident",
    "echo of that update",
    "one field changed on the ticket",
    "echo of that update",
    "quiet, nothing changed",
];

/// What one phase of one pair cost, from the simulators' request logs.
struct PhaseCalls {
    phase: &'static str,
    /// The records the phase is about (incidents created, edited or written).
    records: usize,
    source: Vec<LoggedRequest>,
    tickets: Vec<LoggedRequest>,
}

/// Token requests are not the bridge's choice to make per incident: they go to the
/// token endpoint (a simulator of its own, not counted) or, for ServiceNow with
/// OAuth, to `/oauth_token.do`.
fn counted(log: Vec<LoggedRequest>) -> Vec<LoggedRequest> {
    log.into_iter()
        .filter(|r| !r.path.contains("oauth_token"))
        .collect()
}

/// `bench calls`: the API calls each pair makes per incident, per phase, from the
/// simulators' request logs (token requests excluded).
pub async fn calls(incidents: usize, detail: bool) -> CmdResult {
    let defender_n = incidents.max(1);
    let sentinel_n = (incidents * 3 / 5).max(1);
    let sims = Sims::start(SimPorts::default())
        .await
        .map_err(anyhow::Error::from)?;
    let scratch = Scratch::new("calls")?;
    let result = async {
        let now = Utc::now();
        let defender = sims.seed_incidents(defender_n, now);
        let sentinel = sims.seed_sentinel_incidents(sentinel_n, now);
        let config = scratch.config(&sims, "")?;
        let limiters = LimiterRegistry::from_config(&config);
        let pairs = pairs_named(
            &config,
            &limiters,
            &["defender->jira", "sentinel->servicenow"],
        )?;
        let store = SqliteStore::open_in_memory()?;
        let graph = pair_phases(&sims, &store, &pairs[0], &defender).await?;
        let arm = pair_phases(&sims, &store, &pairs[1], &sentinel).await?;
        Ok::<_, anyhow::Error>([("defender->jira", graph), ("sentinel->servicenow", arm)])
    }
    .await;
    sims.shutdown();
    let measured = result?;
    println!(
        "== API calls per incident: {defender_n} Defender incidents to Jira, {sentinel_n} Sentinel incidents to ServiceNow (comments on, shipped mappings)"
    );
    println!(
        "   counted from the simulators' request logs, every request except tokens; per record = calls / records"
    );
    let mut table = Table::new(&[
        "pair",
        "phase",
        "records",
        "source calls",
        "per record",
        "ticket calls",
        "per record",
        "all per record",
    ]);
    for (pair, phases) in &measured {
        for p in phases {
            let per = |n: usize| {
                if p.records == 0 {
                    "-".to_string()
                } else {
                    format!("{:.2}", n as f64 / p.records as f64)
                }
            };
            table.row(vec![
                pair.to_string(),
                p.phase.to_string(),
                p.records.to_string(),
                p.source.len().to_string(),
                per(p.source.len()),
                p.tickets.len().to_string(),
                per(p.tickets.len()),
                per(p.source.len() + p.tickets.len()),
            ]);
        }
    }
    print!("{table}");

    let playbook = playbook_baseline(defender_n, sentinel_n).await?;
    println!(
        "\n== Playbook-style baseline: one Logic App run per incident (read the incident, create the ticket, then tag and comment the incident), same simulators, same incidents"
    );
    let mut table = Table::new(&[
        "pair",
        "runs",
        "source calls",
        "per incident",
        "ticket calls",
        "per incident",
        "all per incident",
        "bridge's first sync",
    ]);
    for ((pair, runs, source, tickets), (_, phases)) in playbook.iter().zip(&measured) {
        let per = |n: usize| format!("{:.2}", n as f64 / (*runs).max(1) as f64);
        let first = &phases[0];
        table.row(vec![
            pair.to_string(),
            runs.to_string(),
            source.len().to_string(),
            per(source.len()),
            tickets.len().to_string(),
            per(tickets.len()),
            per(source.len() + tickets.len()),
            format!(
                "{:.2}",
                (first.source.len() + first.tickets.len()) as f64 / first.records.max(1) as f64
            ),
        ]);
    }
    print!("{table}");
    println!(
        "   the playbook copies no comments, keeps no link and never syncs a later change back; its figures are its first sync only."
    );
    println!("\n== Where they go (requests per record, by method and path; ids shown as {{id}})");
    for (pair, phases) in &measured {
        for p in phases {
            if p.source.is_empty() && p.tickets.is_empty() {
                continue;
            }
            if !detail && p.phase.starts_with("quiet") {
                continue;
            }
            println!("  {pair}, {}:", p.phase);
            for (side, log) in [("source", &p.source), ("tickets", &p.tickets)] {
                for (what, n) in request_kinds(log) {
                    let per = if p.records == 0 {
                        n as f64
                    } else {
                        n as f64 / p.records as f64
                    };
                    println!("    {side:<8} {per:>6.2}  {what}  ({n})");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a playbook does per incident, as a Logic App run triggered by the new
/// incident: it reads the incident (the trigger gives its id), creates the ticket,
/// then adds the ticket's tag (a read-merge-write: the run knows nothing of the
/// tags) and a comment with the ticket's key. Driven through the same clients
/// the bridge uses, without its engine, on fresh simulators with the same seed.
/// Per pair: (name, runs, source requests, ticket requests).
async fn playbook_baseline(
    defender_n: usize,
    sentinel_n: usize,
) -> anyhow::Result<Vec<(&'static str, usize, Vec<LoggedRequest>, Vec<LoggedRequest>)>> {
    use bridge_core::model::IncidentUpdate;
    let sims = Sims::start(SimPorts::default()).await?;
    let scratch = Scratch::new("playbook")?;
    let result = async {
        let now = Utc::now();
        let defender = sims.seed_incidents(defender_n, now);
        let sentinel = sims.seed_sentinel_incidents(sentinel_n, now);
        let config = scratch.config(&sims, "")?;
        let limiters = LimiterRegistry::from_config(&config);
        let pairs = pairs_named(
            &config,
            &limiters,
            &["defender->jira", "sentinel->servicenow"],
        )?;
        let mut out = Vec::new();
        for (name, pair, ids) in [
            ("defender->jira", &pairs[0], &defender),
            ("sentinel->servicenow", &pairs[1], &sentinel),
        ] {
            let (source_kit, ticket_kit) = if name.starts_with("defender") {
                (sims.graph.kit.clone(), sims.jira.kit.clone())
            } else {
                (sims.sentinel.kit.clone(), sims.servicenow.kit.clone())
            };
            source_kit.clear_log();
            ticket_kit.clear_log();
            let spec = PairSpec {
                pair: &pair.pair,
                source: &pair.source_name,
                scope: &pair.correlation_scope,
                mapping: &pair.mapping,
                policy: pair.policy,
            };
            let mut runs = 0;
            for id in ids {
                let incident = pair.source.get(id).await.map_err(|e| anyhow!("{e}"))?;
                let plan = reconcile::reconcile(
                    spec,
                    Input {
                        incidents: std::slice::from_ref(&incident),
                        tickets: &[],
                        links: &[],
                    },
                );
                // A closed incident starts no run, as the bridge makes no ticket for it.
                let Some(Action::CreateTicket { create, .. }) = plan.actions.into_iter().next()
                else {
                    continue;
                };
                runs += 1;
                let ticket = pair
                    .tickets
                    .create(&create)
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                let tag = IncidentUpdate {
                    set: Default::default(),
                    add_tags: vec![format!("ticket:{}", ticket.key)],
                };
                pair.source
                    .update(id, &tag)
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                pair.source
                    .add_comment(id, &format!("Ticket {} opened: {}", ticket.key, ticket.url))
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
            }
            // The run's own reads of the incident count; the simulator's list of
            // the incidents to start runs for (the trigger) does not.
            out.push((
                name,
                runs,
                counted(source_kit.requests()),
                counted(ticket_kit.requests()),
            ));
        }
        Ok::<_, anyhow::Error>(out)
    }
    .await;
    sims.shutdown();
    result
}

/// Runs the phases of one pair, each one cycle, counting its two systems' requests.
async fn pair_phases(
    sims: &Sims,
    store: &SqliteStore,
    pair: &PairRuntime,
    seeded: &[String],
) -> anyhow::Result<Vec<PhaseCalls>> {
    use bridge_core::store::Store;
    let defender = pair.pair.starts_with("defender");
    let (source_kit, ticket_kit) = if defender {
        (sims.graph.kit.clone(), sims.jira.kit.clone())
    } else {
        (sims.sentinel.kit.clone(), sims.servicenow.kit.clone())
    };
    let kits = (source_kit, ticket_kit);
    let mut out = Vec::new();
    let first = measure(&kits, store, pair, PHASES[0], None, &mut out).await?;
    let created = first.tickets_created + first.tickets_adopted;
    out[0].records = created;
    measure(&kits, store, pair, PHASES[1], Some(created), &mut out).await?;

    // One field on a tenth of the linked incidents: their severity.
    let linked: Vec<_> = seeded
        .iter()
        .filter_map(|id| store.link(&pair.pair, id).ok().flatten())
        .collect();
    let k = (linked.len() / 10).max(1).min(linked.len());
    let mut edited = 0;
    for link in linked.iter().take(k) {
        let changed = if defender {
            let now = sims.graph.incident(&link.incident_id).map(|i| i.severity);
            let to = if now.as_deref() == Some("low") {
                "medium"
            } else {
                "low"
            };
            sims.graph.set_severity(&link.incident_id, to)
        } else {
            let now = sims
                .sentinel
                .incident(&link.incident_id)
                .map(|i| i.severity);
            let to = if now.as_deref() == Some("Low") {
                "Medium"
            } else {
                "Low"
            };
            sims.sentinel.set_severity(&link.incident_id, to)
        };
        edited += usize::from(changed);
    }
    let report = measure(&kits, store, pair, PHASES[2], Some(edited), &mut out).await?;
    let written = report.tickets_updated + report.incidents_updated;
    measure(&kits, store, pair, PHASES[3], Some(written), &mut out).await?;

    // One field on a tenth of the tickets: an open one moved to in progress.
    let mut edited = 0;
    for link in &linked {
        if edited == k {
            break;
        }
        let moved = if defender {
            sims.jira
                .issue(&link.ticket_key)
                .filter(|i| i.status == "To Do")
                .map(|_| {
                    sims.jira
                        .transition_as_analyst(&link.ticket_key, "In Progress", None)
                })
        } else {
            sims.servicenow
                .incident(&link.ticket_key)
                .filter(|r| r.get("state").map(String::as_str) == Some("1"))
                .map(|_| sims.servicenow.set_state(&link.ticket_key, "2"))
        };
        if let Some(result) = moved {
            result.map_err(|e| anyhow!("{}: {e}", link.ticket_key))?;
            edited += 1;
        }
    }
    let report = measure(&kits, store, pair, PHASES[4], Some(edited), &mut out).await?;
    let written = report.tickets_updated + report.incidents_updated;
    measure(&kits, store, pair, PHASES[5], Some(written), &mut out).await?;
    measure(&kits, store, pair, PHASES[6], Some(0), &mut out).await?;
    Ok(out)
}

/// One cycle of `pair`, its two systems' requests counted into `out`.
async fn measure(
    (source, tickets): &(std::sync::Arc<SimKit>, std::sync::Arc<SimKit>),
    store: &SqliteStore,
    pair: &PairRuntime,
    phase: &'static str,
    records: Option<usize>,
    out: &mut Vec<PhaseCalls>,
) -> anyhow::Result<CycleReport> {
    source.clear_log();
    tickets.clear_log();
    let report = engine::run_cycle(pair, store, &SystemClock, false)
        .await
        .map_err(|e| anyhow!("{}: {e}", pair.pair))?;
    out.push(PhaseCalls {
        phase,
        records: records.unwrap_or(0),
        source: counted(source.requests()),
        tickets: counted(tickets.requests()),
    });
    Ok(report)
}

/// The requests of a log grouped by method and path shape, most frequent first.
fn request_kinds(log: &[LoggedRequest]) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for r in log {
        *counts.entry(request_kind(r)).or_default() += 1;
    }
    let mut kinds: Vec<_> = counts.into_iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    kinds
}

/// `GET /incidents/{id}`: the method, the path with its ids replaced (Sentinel's
/// long ARM prefix cut), and what a query filters on (`$filter=lastModifiedDateTime`,
/// `sysparm_query=correlation_id`), never its values.
pub fn request_kind(r: &LoggedRequest) -> String {
    let path = match r.path.find("/providers/Microsoft.SecurityInsights") {
        Some(i) => format!(
            "…{}",
            &r.path[i + "/providers/Microsoft.SecurityInsights".len()..]
        ),
        None => r.path.clone(),
    };
    let shape: Vec<String> = path
        .split('/')
        .map(|seg| {
            let digits = seg.chars().any(|c| c.is_ascii_digit());
            let version =
                seg.starts_with('v') && seg[1..].chars().all(|c| c.is_ascii_digit() || c == '.');
            if digits && !version && seg.len() > 2 {
                "{id}".to_string()
            } else {
                seg.to_string()
            }
        })
        .collect();
    let mut kind = format!("{} {}", r.method, shape.join("/"));
    if let Some(query) = &r.query {
        let mut filters = Vec::new();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(name);
            if matches!(name.as_str(), "$filter" | "sysparm_query" | "jql") {
                let value = percent_decode(value);
                let field: String = value
                    .trim_start_matches(['(', ' '])
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                    .collect();
                filters.push(format!("{name}={field}…"));
            }
        }
        if !filters.is_empty() {
            kind.push_str(&format!("?{}", filters.join("&")));
        }
    }
    kind
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                }
                Err(_) => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
