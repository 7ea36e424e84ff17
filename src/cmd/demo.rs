//! `itsm-bridge demo`: the whole job on the built-in simulators. It starts them
//! in-process, seeds realistic backlogs (more than one page), writes a config for
//! them and runs the real bridge on it — Defender → Jira, Sentinel → ServiceNow and
//! Sentinel → a generic REST helpdesk — then plays analysts working in the ticket
//! systems and in Defender and Sentinel, and syncs until nothing is left to do.
//! Last, a change stamped behind the watermark slips past the poll and the drift
//! sweep repairs it. It prints both sides before and after, the API calls each pair
//! took, and where the database is.

use std::path::Path;
use std::process::ExitCode;

use bridge_core::engine::{self, CycleReport, PairRuntime, SystemClock};
use bridge_core::store::{SqliteStore, Store};
use connectors::sims::{ANALYSTS, RequestCounts, SimPorts, Sims};
use connectors::wiring;

use crate::output::Table;
use crate::{CmdResult, Failure};

const DEFENDER_BACKLOG: usize = 75;
const SENTINEL_BACKLOG: usize = 24;

pub async fn run(db: &Path) -> CmdResult {
    let dir = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    // The demo writes its store like `run` does: one writer per store, taken
    // before the old demo database is cleared away (this creates its folder,
    // owner-only).
    let _lock = super::lock_store(db)?;
    clear_old_store(db, &dir)?;

    let sims = Sims::start(SimPorts::default())
        .await
        .map_err(anyhow::Error::from)?;
    let now = chrono::Utc::now();
    let defender = sims.seed_incidents(DEFENDER_BACKLOG, now);
    let sentinel = sims.seed_sentinel_incidents(SENTINEL_BACKLOG, now);
    let config_path = sims.write_config(&dir, db).map_err(anyhow::Error::from)?;
    println!(
        "Simulators on loopback: Entra ID, Microsoft Graph, Microsoft Sentinel, Jira, ServiceNow and a REST helpdesk."
    );
    println!(
        "Seeded {} Defender incidents and {} Sentinel incidents (a few already closed). Config: {}\n",
        defender.len(),
        sentinel.len(),
        config_path.display()
    );

    let config = super::load_config(&config_path)?;
    let pairs = wiring::build_pairs(&config).map_err(|e| Failure::Input(e.to_string()))?;
    let store = SqliteStore::open(&config.store.path)?;

    let per_pair = first_sync(&sims, &store, &pairs).await?;
    show_defender(&sims, &store, &defender[..5])?;
    show_sentinel(&sims, &store, &sentinel[..5])?;

    println!("\n== 2. Meanwhile, people work on both sides");
    let touched_defender = work_in_defender_and_jira(&sims, &store, &defender)?;
    let touched_sentinel = work_in_sentinel_and_its_helpdesks(&sims, &store, &sentinel)?;

    sync_until_settled(&store, &pairs).await?;
    show_defender(&sims, &store, &touched_defender)?;
    show_sentinel(&sims, &store, &touched_sentinel)?;
    show_conversation(&sims, &store, &defender[2])?;

    repair_a_change_the_polls_miss(&sims, &store, &pairs, &defender[6]).await?;

    let report = store.verify_ledger()?;
    println!(
        "\n== Ledger: {} entries, hash chain {}",
        report.entries,
        if report.is_intact() {
            "intact"
        } else {
            "BROKEN"
        }
    );
    print_calls_per_ticket(&per_pair);
    println!("\nDatabase: {}", config.store.path.display());
    println!(
        "Explore it:\n  cargo run --release -- links --db {0}\n  cargo run --release -- ledger list --db {0} --limit 20\n  cargo run --release -- ledger verify --db {0}",
        db.display()
    );
    sims.shutdown();
    Ok(if report.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Clears the previous demo's database (and its WAL files) out of the way,
/// creating the folder it goes in.
fn clear_old_store(db: &Path, dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::Input(format!("{}: cannot create it: {e}", dir.display())))?;
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if file.exists() {
            std::fs::remove_file(&file).map_err(anyhow::Error::from)?;
        }
    }
    Ok(())
}

/// Step 1: one cycle of every pair. Says, per pair, how many tickets it linked
/// and how many requests that took.
async fn first_sync(
    sims: &Sims,
    store: &SqliteStore,
    pairs: &[PairRuntime],
) -> Result<Vec<(String, usize, usize)>, Failure> {
    println!("== 1. First sync: every open incident gets a ticket, its key is written back");
    let mut per_pair = Vec::new();
    for pair in pairs {
        let before = sims.request_counts();
        let report = cycle(pair, store).await?;
        let calls = pair_calls(&pair.pair, before, sims.request_counts());
        per_pair.push((
            pair.pair.clone(),
            report.tickets_created + report.tickets_adopted,
            calls,
        ));
    }
    Ok(per_pair)
}

/// The ticket key the pair linked to an incident, if any.
fn key_of(store: &SqliteStore, pair: &str, id: &str) -> Option<String> {
    store.link(pair, id).ok().flatten().map(|l| l.ticket_key)
}

/// Step 2 on the Defender side: a Jira resolve, a severity raise, an
/// assignment, a status change, a merge and a conversation. Says which
/// incidents were touched.
fn work_in_defender_and_jira(
    sims: &Sims,
    store: &SqliteStore,
    defender: &[String],
) -> Result<Vec<String>, Failure> {
    let mut touched = Vec::new();
    if let Some(k) = key_of(store, "defender->jira", &defender[0]) {
        sims.jira
            .transition_as_analyst(&k, "Done", Some("Won't Do"))
            .map_err(anyhow::Error::msg)?;
        println!("  Jira: {k} resolved as \"Won't Do\" (a false positive)");
        touched.push(defender[0].clone());
    }
    sims.graph.set_severity(&defender[2], "high");
    sims.graph.assign(&defender[2], ANALYSTS[1].0);
    println!(
        "  Defender: incident {} raised to high and assigned to {}",
        defender[2], ANALYSTS[1].0
    );
    sims.graph.set_status(&defender[4], "inProgress");
    println!("  Defender: incident {} moved to inProgress", defender[4]);
    sims.graph.redirect(&defender[3], &defender[2]);
    println!(
        "  Defender: correlation merged incident {} into {} (it is now `redirected`)",
        defender[3], defender[2]
    );
    touched.extend([
        defender[2].clone(),
        defender[3].clone(),
        defender[4].clone(),
    ]);
    sims.graph.add_comment_as(
        &defender[2],
        "Ana Ruiz",
        "Host WS-0142 isolated; collecting a memory image.",
    );
    println!("  Defender: Ana Ruiz comments on incident {}", defender[2]);
    if let Some(k) = key_of(store, "defender->jira", &defender[2]) {
        sims.jira
            .comment_as_analyst(
                &k,
                ANALYSTS[1].1,
                "Image received. Cobalt Strike beacon confirmed.",
            )
            .map_err(anyhow::Error::msg)?;
        println!("  Jira: {} answers on {k}", ANALYSTS[1].1);
    }
    Ok(touched)
}

/// Step 2 on the Sentinel side: a ServiceNow resolve, a helpdesk resolve, a
/// severity raise with an assignment. Says which incidents were touched.
fn work_in_sentinel_and_its_helpdesks(
    sims: &Sims,
    store: &SqliteStore,
    sentinel: &[String],
) -> Result<Vec<String>, Failure> {
    let mut touched = Vec::new();
    if let Some(k) = key_of(store, "sentinel->servicenow", &sentinel[0]) {
        sims.servicenow
            .resolve_as_analyst(
                &k,
                "Solution provided",
                "Blocked the sender, purged the mailboxes.",
            )
            .map_err(anyhow::Error::msg)?;
        println!("  ServiceNow: {k} resolved with \"Solution provided\"");
        touched.push(sentinel[0].clone());
    }
    if let Some(k) = key_of(store, "sentinel->helpdesk", &sentinel[1]) {
        sims.generic
            .resolve_as_agent(&k, "false_positive")
            .map_err(anyhow::Error::msg)?;
        println!("  Helpdesk: {k} resolved as a false positive");
        touched.push(sentinel[1].clone());
    }
    sims.sentinel.set_severity(&sentinel[3], "High");
    sims.sentinel.assign(&sentinel[3], Some(ANALYSTS[2].0));
    println!(
        "  Sentinel: incident {} raised to High and assigned to {}",
        number(sims, &sentinel[3]),
        ANALYSTS[2].0
    );
    touched.push(sentinel[3].clone());
    Ok(touched)
}

/// Step 3: cycles of every pair until a round writes nothing (at most five).
async fn sync_until_settled(store: &SqliteStore, pairs: &[PairRuntime]) -> Result<(), Failure> {
    println!("\n== 3. Syncing until both sides agree");
    let mut round = 0;
    loop {
        round += 1;
        let mut writes = 0;
        for pair in pairs {
            writes += cycle(pair, store).await?.writes();
        }
        if writes == 0 || round == 5 {
            println!("  (round {round}: nothing left to write)");
            return Ok(());
        }
        println!(
            "  (round {round}: {writes} write(s); changes made by one pair can give another work)"
        );
    }
}

/// Step 4: a Defender change stamped behind the watermark, which the polls walk
/// past and the drift sweep repairs.
async fn repair_a_change_the_polls_miss(
    sims: &Sims,
    store: &SqliteStore,
    pairs: &[PairRuntime],
    late: &str,
) -> Result<(), Failure> {
    println!("\n== 4. A change the polls cannot see, repaired by the drift sweep");
    // Defender's change reaches the API stamped two hours back (a replica running
    // late): every poll from the watermark walks past it.
    let stamped = chrono::Utc::now() - chrono::Duration::hours(2);
    sims.graph.update_as_defender_at(late, stamped, |i| {
        i.severity = "high".into();
        i.status = "inProgress".into();
    });
    println!(
        "  Defender: incident {late} raised to high and moved to inProgress, stamped {}",
        stamped.format("%H:%M")
    );
    let defender_pair = pairs
        .iter()
        .find(|p| p.pair == "defender->jira")
        .expect("the demo config has defender->jira");
    cycle(defender_pair, store).await?;
    let before = sims.request_counts();
    let report = engine::run_sweep(defender_pair, store, &SystemClock, false)
        .await
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("{}: {e}", defender_pair.pair)))?;
    let calls = pair_calls(&defender_pair.pair, before, sims.request_counts());
    super::run::print_report(&report, false);
    println!(
        "  (the sweep took {calls} requests, {:.1} per open link)",
        calls as f64 / report.links_checked.max(1) as f64
    );
    show_defender(sims, store, &[late.to_string()])
}

/// The first sync's requests per pair, per ticket linked.
fn print_calls_per_ticket(per_pair: &[(String, usize, usize)]) {
    println!("API calls in the first sync, per ticket created (token requests not counted):");
    for (pair, linked, calls) in per_pair {
        println!(
            "  {pair:<22} {linked:>3} tickets, {calls:>4} requests, {:.1} per incident",
            *calls as f64 / (*linked).max(1) as f64
        );
    }
}

/// Requests a pair's two systems answered between two counts.
fn pair_calls(pair: &str, before: RequestCounts, after: RequestCounts) -> usize {
    let source = match pair.split("->").next() {
        Some("defender") => after.graph - before.graph,
        _ => after.sentinel - before.sentinel,
    };
    let tickets = match pair.split("->").nth(1) {
        Some("jira") => after.jira - before.jira,
        Some("servicenow") => after.servicenow - before.servicenow,
        _ => after.generic - before.generic,
    };
    source + tickets
}

async fn cycle(pair: &PairRuntime, store: &SqliteStore) -> Result<CycleReport, Failure> {
    let report = engine::run_cycle(pair, store, &SystemClock, false)
        .await
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("{}: {e}", pair.pair)))?;
    super::run::print_report(&report, false);
    Ok(report)
}

fn number(sims: &Sims, id: &str) -> String {
    sims.sentinel
        .incident(id)
        .map(|i| i.number.to_string())
        .unwrap_or_default()
}

/// Defender incidents and their Jira issues, as they are now on the simulators.
fn show_defender(sims: &Sims, store: &SqliteStore, ids: &[String]) -> Result<(), Failure> {
    let mut table = Table::new(&[
        "defender",
        "severity",
        "status",
        "classification",
        "jira",
        "priority",
        "status",
        "resolution",
    ]);
    for id in ids {
        let Some(incident) = sims.graph.incident(id) else {
            continue;
        };
        let link = store.link("defender->jira", id)?;
        let issue = link.as_ref().and_then(|l| sims.jira.issue(&l.ticket_key));
        table.row(vec![
            id.clone(),
            incident.severity.clone(),
            incident.status.clone(),
            incident.classification.clone().unwrap_or_default(),
            link.map(|l| l.ticket_key)
                .unwrap_or_else(|| "(none)".into()),
            issue
                .as_ref()
                .map(|i| i.priority.clone())
                .unwrap_or_default(),
            issue.as_ref().map(|i| i.status.clone()).unwrap_or_default(),
            issue
                .as_ref()
                .and_then(|i| i.resolution.clone())
                .unwrap_or_default(),
        ]);
    }
    print!("\n{}", indent(&table.to_string()));
    Ok(())
}

/// Sentinel incidents, their ServiceNow incidents and their helpdesk tickets.
fn show_sentinel(sims: &Sims, store: &SqliteStore, ids: &[String]) -> Result<(), Failure> {
    let mut table = Table::new(&[
        "sentinel",
        "severity",
        "status",
        "classification",
        "servicenow",
        "state",
        "close code",
        "helpdesk",
        "status",
    ]);
    for id in ids {
        let Some(incident) = sims.sentinel.incident(id) else {
            continue;
        };
        let snow = store.link("sentinel->servicenow", id)?;
        let record = snow
            .as_ref()
            .and_then(|l| sims.servicenow.incident(&l.ticket_key));
        let desk = store.link("sentinel->helpdesk", id)?;
        let ticket = desk
            .as_ref()
            .and_then(|l| sims.generic.ticket(&l.ticket_key));
        let field = |name: &str| {
            record
                .as_ref()
                .and_then(|r| r.get(name).cloned())
                .unwrap_or_default()
        };
        table.row(vec![
            incident.number.to_string(),
            incident.severity.clone(),
            incident.status.clone(),
            incident.classification.clone().unwrap_or_default(),
            snow.map(|l| l.ticket_key)
                .unwrap_or_else(|| "(none)".into()),
            state_name(&field("state")).to_string(),
            field("close_code"),
            desk.map(|l| l.ticket_key)
                .unwrap_or_else(|| "(none)".into()),
            ticket.map(|t| t.status).unwrap_or_default(),
        ]);
    }
    print!("\n{}", indent(&table.to_string()));
    Ok(())
}

/// The comments of one incident and of its issue: each side has the other's.
fn show_conversation(sims: &Sims, store: &SqliteStore, id: &str) -> Result<(), Failure> {
    let Some(link) = store.link("defender->jira", id)? else {
        return Ok(());
    };
    println!(
        "\n  The conversation on incident {id} and {}:",
        link.ticket_key
    );
    let short = |text: &str| {
        text.replace('\n', " ")
            .chars()
            .take(110)
            .collect::<String>()
    };
    if let Some(incident) = sims.graph.incident(id) {
        for c in &incident.comments {
            println!("    Defender  {}", short(&c.comment));
        }
    }
    if let Some(issue) = sims.jira.issue_json(&link.ticket_key) {
        for c in issue["fields"]["comment"]["comments"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let text = connectors::jira::adf::adf_to_text(&c["body"]);
            println!("    Jira      {}", short(&text));
        }
    }
    Ok(())
}

fn state_name(code: &str) -> &str {
    match code {
        "1" => "New",
        "2" => "In Progress",
        "3" => "On Hold",
        "6" => "Resolved",
        "7" => "Closed",
        "8" => "Canceled",
        other => other,
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}
