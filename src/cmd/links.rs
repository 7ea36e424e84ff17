//! `itsm-bridge links`: the mapping table.

use std::path::Path;
use std::process::ExitCode;

use bridge_core::store::Store;

use crate::CmdResult;
use crate::output::Table;

pub fn run(db: &Path, json: bool) -> CmdResult {
    let store = super::open_existing_store(db)?;
    let links = store.links(None)?;
    if json {
        for link in &links {
            println!(
                "{}",
                serde_json::to_string(link).map_err(anyhow::Error::from)?
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        "pair",
        "incident",
        "ticket",
        "state",
        "status",
        "synced",
        "ticket url",
    ]);
    for link in &links {
        let status = link.baseline.get("status").map(|a| {
            format!(
                "{} / {}",
                a.incident.as_deref().unwrap_or("-"),
                a.ticket.as_deref().unwrap_or("-")
            )
        });
        table.row(vec![
            link.pair.clone(),
            link.incident_display_id.clone(),
            link.ticket_key.clone(),
            link.state.as_str().to_string(),
            status.unwrap_or_default(),
            link.updated.format("%Y-%m-%d %H:%M:%S").to_string(),
            link.ticket_url.clone(),
        ]);
    }
    print!("{table}");
    println!("{} link(s)", links.len());
    Ok(ExitCode::SUCCESS)
}
