//! `itsm-bridge links`: the mapping table, and the incidents whose sync keeps
//! failing (the dead letters), each with its next retry and last error, and the
//! intents still pending (writes begun whose outcome is not recorded yet).

use std::process::ExitCode;

use crate::CmdResult;
use crate::output::Table;
use crate::replicas::StoreAt;

pub fn run(db: &StoreAt, json: bool) -> CmdResult {
    let store = db.open_reader()?;
    let links = store.links(None)?;
    let failing = store.dead_letters(None, None)?;
    let pending = store.pending_intents()?;
    if json {
        for link in &links {
            println!(
                "{}",
                serde_json::to_string(link).map_err(anyhow::Error::from)?
            );
        }
        for letter in &failing {
            println!("{}", serde_json::json!({ "dead_letter": letter }));
        }
        for (id, intent) in &pending {
            println!(
                "{}",
                serde_json::json!({ "pending_intent": {
                    "id": id,
                    "pair": intent.pair,
                    "incident_id": intent.incident_id,
                    "kind": intent.kind,
                    "since": intent.created,
                }})
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
    if !failing.is_empty() {
        println!("\nFailing, retried on their own with a growing delay:");
        let mut table = Table::new(&[
            "pair",
            "incident",
            "ticket",
            "action",
            "attempts",
            "next try",
            "last error",
        ]);
        for letter in &failing {
            table.row(vec![
                letter.pair.clone(),
                letter.incident_id.clone(),
                letter.ticket_key.clone().unwrap_or_default(),
                letter.action.clone(),
                letter.attempts.to_string(),
                letter.next_attempt.format("%Y-%m-%d %H:%M:%S").to_string(),
                letter.last_error.clone(),
            ]);
        }
        print!("{table}");
    }
    if !pending.is_empty() {
        println!("\nPending: begun, outcome not recorded yet (the next run finishes them):");
        let mut table = Table::new(&["pair", "incident", "action", "since"]);
        for (_, intent) in &pending {
            table.row(vec![
                intent.pair.clone(),
                intent.incident_id.clone(),
                intent.kind.clone(),
                intent.created.format("%Y-%m-%d %H:%M:%S").to_string(),
            ]);
        }
        print!("{table}");
    }
    Ok(ExitCode::SUCCESS)
}
