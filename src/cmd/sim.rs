//! `itsm-bridge sim`: the simulators on loopback until interrupted, seeded, with
//! their admin surfaces (`/_sim/...`) for poking at them by hand, and optionally
//! a ready-to-run config that points the bridge at them.

use std::path::PathBuf;
use std::process::ExitCode;

use connectors::sims::{SimPorts, Sims};

use crate::CmdResult;

pub use connectors::sims::SimPorts as Ports;

pub async fn run(ports: SimPorts, incidents: usize, write_config: Option<PathBuf>) -> CmdResult {
    let sims = Sims::start(ports).await.map_err(anyhow::Error::from)?;
    let now = chrono::Utc::now();
    sims.seed_incidents(incidents, now);
    sims.seed_sentinel_incidents(incidents / 3, now);
    println!(
        "Entra ID token endpoint (TLS): {}",
        sims.login.authority_host()
    );
    println!("Microsoft Graph:               {}", sims.graph.base_url());
    println!(
        "Microsoft Sentinel (ARM):      {}",
        sims.sentinel.base_url()
    );
    println!("Jira Cloud:                    {}", sims.jira.base_url());
    println!(
        "ServiceNow:                    {}",
        sims.servicenow.base_url()
    );
    println!("Generic REST helpdesk:         {}", sims.generic.base_url());
    println!(
        "Seeded {incidents} Defender and {} Sentinel incidents. Each simulator has an admin surface under /_sim/ (GET /_sim/requests on any of them).",
        incidents / 3
    );
    if let Some(dir) = write_config {
        let path = sims
            .write_config(&dir, &dir.join("bridge.db"))
            .map_err(anyhow::Error::from)?;
        println!(
            "Config for the bridge: {0}  (itsm-bridge run --config {0})",
            path.display()
        );
    }
    println!("Ctrl-C to stop.");
    let _ = tokio::signal::ctrl_c().await;
    sims.shutdown();
    Ok(ExitCode::SUCCESS)
}
