//! `itsm-bridge demo`: the whole job on the built-in simulators. It starts them
//! in-process, seeds a realistic backlog (more than one page), writes a config for
//! them and runs the real bridge on it: the first sync, then an analyst resolving
//! tickets in Jira and Defender changing incidents, then a run where nothing
//! changed. It prints the state of both sides before and after, the API calls it
//! took, and where the database is.

use std::path::Path;
use std::process::ExitCode;

use bridge_core::engine::{self, CycleReport, PairRuntime, SystemClock};
use bridge_core::store::{SqliteStore, Store};
use connectors::sims::{SimPorts, Sims};
use connectors::wiring;

use crate::output::Table;
use crate::{CmdResult, Failure};

const BACKLOG: usize = 75;

pub async fn run(db: &Path) -> CmdResult {
    let dir = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::Input(format!("{}: cannot create it: {e}", dir.display())))?;
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if file.exists() {
            std::fs::remove_file(&file).map_err(anyhow::Error::from)?;
        }
    }

    let sims = Sims::start(SimPorts::default())
        .await
        .map_err(anyhow::Error::from)?;
    let ids = sims.seed_incidents(BACKLOG, chrono::Utc::now());
    let config_path = sims.write_config(&dir, db).map_err(anyhow::Error::from)?;
    println!(
        "Simulators on loopback: Entra ID {}, Graph {}, Jira {}",
        sims.login.authority_host(),
        sims.graph.base_url(),
        sims.jira.base_url()
    );
    println!(
        "Seeded {} Defender incidents ({} already resolved). Config: {}\n",
        ids.len(),
        ids.len() / 10,
        config_path.display()
    );

    let config = super::load_config(&config_path)?;
    let pairs = wiring::build_pairs(&config).map_err(|e| Failure::Input(e.to_string()))?;
    let store = SqliteStore::open(&config.store.path)?;
    let pair = &pairs[0];

    println!("== 1. First sync: every open incident gets a Jira issue");
    let first = cycle(pair, &store).await?;
    let synced = first.tickets_created + first.tickets_adopted;
    let (login_calls, graph_calls, jira_calls) = sims.request_counts();
    show_sample(&sims, &store, pair, &ids[..6])?;

    println!("\n== 2. Meanwhile: analysts work in Jira, Defender updates incidents");
    let links = store.links(Some(&pair.pair))?;
    let key_of = |id: &str| {
        links
            .iter()
            .find(|l| l.incident_id == id)
            .map(|l| l.ticket_key.clone())
    };
    let mut touched = Vec::new();
    if let Some(key) = key_of(&ids[0]) {
        sims.jira
            .transition_as_analyst(&key, "Done", Some("Won't Do"))
            .map_err(anyhow::Error::msg)?;
        println!("  Jira: {key} resolved as \"Won't Do\" (a false positive)");
        touched.push(ids[0].clone());
    }
    if let Some(key) = key_of(&ids[1]) {
        sims.jira
            .transition_as_analyst(&key, "Done", Some("Done"))
            .map_err(anyhow::Error::msg)?;
        println!("  Jira: {key} resolved as \"Done\"");
        touched.push(ids[1].clone());
    }
    sims.graph.set_severity(&ids[2], "high");
    sims.graph.assign(&ids[2], connectors::sims::ANALYSTS[1].0);
    println!(
        "  Defender: incident {} raised to high severity and assigned to {}",
        ids[2],
        connectors::sims::ANALYSTS[1].0
    );
    sims.graph.set_status(&ids[4], "inProgress");
    println!("  Defender: incident {} moved to inProgress", ids[4]);
    sims.graph.set_title(
        &ids[5],
        "Ransomware precursor: Cobalt Strike beacon on WS-0311",
    );
    println!("  Defender: incident {} retitled", ids[5]);
    touched.extend([ids[2].clone(), ids[4].clone(), ids[5].clone()]);

    println!("\n== 3. Second sync: the changes cross over");
    cycle(pair, &store).await?;
    show_sample(&sims, &store, pair, &touched)?;

    println!("\n== 4. Third sync: nothing changed, so nothing is written");
    let before = sims.request_counts();
    let third = cycle(pair, &store).await?;
    let after = sims.request_counts();
    println!(
        "  writes: {}; read requests: {} (polling only)",
        third.writes(),
        (after.1 - before.1) + (after.2 - before.2)
    );

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
    let per_incident = (graph_calls + jira_calls) as f64 / synced.max(1) as f64;
    println!(
        "First sync: {synced} incidents linked with {graph_calls} Graph + {jira_calls} Jira requests ({per_incident:.1} per incident) and {login_calls} token request(s)"
    );
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

async fn cycle(pair: &PairRuntime, store: &SqliteStore) -> Result<CycleReport, Failure> {
    let report = engine::run_cycle(pair, store, &SystemClock, false)
        .await
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("{}: {e}", pair.pair)))?;
    super::run::print_report(&report, false);
    Ok(report)
}

/// Prints both sides of some incidents as they are now on the simulators.
fn show_sample(
    sims: &Sims,
    store: &SqliteStore,
    pair: &PairRuntime,
    ids: &[String],
) -> Result<(), Failure> {
    let mut table = Table::new(&[
        "incident",
        "severity",
        "status",
        "classification",
        "ticket",
        "priority",
        "ticket status",
        "resolution",
        "incident tags",
    ]);
    for id in ids {
        let Some(incident) = sims.graph.incident(id) else {
            continue;
        };
        let link = store.link(&pair.pair, id)?;
        let issue = link.as_ref().and_then(|l| sims.jira.issue(&l.ticket_key));
        table.row(vec![
            id.clone(),
            incident.severity.clone(),
            incident.status.clone(),
            incident.classification.clone().unwrap_or_default(),
            link.as_ref()
                .map(|l| l.ticket_key.clone())
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
            incident.custom_tags.join(","),
        ]);
    }
    print!("{}", indent(&table.to_string()));
    Ok(())
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}
