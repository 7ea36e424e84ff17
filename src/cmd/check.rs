//! `itsm-bridge check`: validate the config, its mapping files and its secrets.

use std::path::Path;
use std::process::ExitCode;

use bridge_core::config;

use crate::{CmdResult, Failure};

pub fn run(path: &Path) -> CmdResult {
    let config = super::load_config(path)?;
    config::check_secrets(&config).map_err(|e| Failure::Input(e.to_string()))?;
    // Said here too, not only when `run` starts: `check` is where an admin looks.
    if let Some(warning) = config.server.listen.and_then(crate::server::listen_warning) {
        tracing::warn!("{warning}");
    }
    println!(
        "{}: ok ({} source(s), {} ticket system(s), {} sync pair(s))",
        path.display(),
        config.sources.len(),
        config.ticket_systems.len(),
        config.syncs.len()
    );
    for sync in &config.syncs {
        let tickets = config.ticket_system(&sync.tickets).expect("validated");
        println!(
            "  {}  schedule \"{}\"  conflict {}  mapping {}",
            sync.pair_name(),
            sync.schedule.as_str(),
            sync.conflict.as_str(),
            tickets.mapping.file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
