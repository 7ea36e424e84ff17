//! `itsm-bridge check`: validate the config, its mapping files and its secrets.

use std::path::Path;
use std::process::ExitCode;

use bridge_core::config::{self, Config};

use crate::{CmdResult, Failure};

pub fn run(path: &Path) -> CmdResult {
    let config = checked(path).map_err(Failure::Input)?;
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

/// What `check` checks, for `check` itself and for `run`'s live reload: the
/// config, the mapping files it names and its secrets. Every problem, one a
/// line, each naming its file:line:column.
pub fn checked(path: &Path) -> Result<Config, String> {
    let config = config::load(path).map_err(|e| e.to_string())?;
    config::check_secrets(&config).map_err(|e| e.to_string())?;
    Ok(config)
}
