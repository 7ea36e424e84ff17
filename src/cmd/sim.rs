//! `itsm-bridge sim`: the simulators on loopback until interrupted, seeded, with
//! their admin surfaces (`/_sim/...`) for poking at them by hand.

use std::path::PathBuf;
use std::process::ExitCode;

use connectors::sims::{SimPorts, Sims};

use crate::CmdResult;

pub use connectors::sims::SimPorts as Ports;

pub async fn run(ports: SimPorts, incidents: usize, write_config: Option<PathBuf>) -> CmdResult {
    let sims = Sims::start(ports).await.map_err(anyhow::Error::from)?;
    sims.seed_incidents(incidents, chrono::Utc::now());
    println!(
        "Entra ID token endpoint (TLS): {}",
        sims.login.authority_host()
    );
    println!("Microsoft Graph:               {}", sims.graph.base_url());
    println!("Jira Cloud:                    {}", sims.jira.base_url());
    println!(
        "Seeded {incidents} incidents. Admin: GET {}/_sim/incidents, GET {}/_sim/issues",
        sims.graph.base_url(),
        sims.jira.base_url()
    );
    if let Some(dir) = write_config {
        let path = sims
            .write_config(&dir, &dir.join("bridge.db"))
            .map_err(anyhow::Error::from)?;
        println!(
            "Config for the bridge: {}  (itsm-bridge run --config {})",
            path.display(),
            path.display()
        );
    }
    println!("Ctrl-C to stop.");
    let _ = tokio::signal::ctrl_c().await;
    sims.shutdown();
    Ok(ExitCode::SUCCESS)
}
