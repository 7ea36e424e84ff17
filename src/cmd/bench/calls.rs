//! `bench calls` counts, from the simulators' request logs, the API calls each
//! pair makes per incident in each phase of its life: the first sync, the cycle
//! after it (the echo of its own writes), a one-field change on either side and
//! its echo, and a quiet cycle; and a playbook-style baseline against the same
//! simulators.

use std::process::ExitCode;

use anyhow::anyhow;
use bridge_core::engine::{self, CycleReport, PairRuntime, SystemClock};
use bridge_core::reconcile::{self, Action, Input, PairSpec};
use bridge_core::store::SqliteStore;
use chrono::Utc;
use connectors::limits::LimiterRegistry;
use connectors::simkit::{LoggedRequest, SimKit};
use connectors::sims::{SimPorts, Sims};

use super::{Scratch, pairs_named};
use crate::CmdResult;
use crate::output::Table;

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
