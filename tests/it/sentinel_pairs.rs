//! Sentinel incidents ⇄ ServiceNow incidents and ⇄ a generic REST helpdesk, end to
//! end: the real binary against the simulators, all three pairs in one process.

use crate::common::{Env, assert_success};
use connectors::sentinel::sim::SeedIncident as SentinelSeed;
use connectors::sims::ANALYSTS;

const SNOW: &str = "sentinel->servicenow";
const DESK: &str = "sentinel->helpdesk";

fn open_incidents(env: &Env) -> Vec<String> {
    env.sims
        .sentinel
        .incidents()
        .into_iter()
        .filter(|i| i.status != "Closed")
        .map(|i| i.name)
        .collect()
}

fn requests_that_write(log: Vec<connectors::simkit::LoggedRequest>, from: usize) -> Vec<String> {
    log.into_iter()
        .skip(from)
        .filter(|r| r.method != "GET" && !r.path.ends_with("/search/jql"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[test]
fn a_backlog_paged_on_the_ticket_side_gets_one_servicenow_incident_and_one_helpdesk_ticket_each() {
    let env = Env::start_with(0, 230);
    env.sync();
    let open = open_incidents(&env);
    assert_eq!(open.len(), 202, "the seed closes every eighth incident");
    assert_eq!(env.sims.servicenow.incidents().len(), open.len());
    assert_eq!(env.sims.generic.tickets().len(), open.len());

    let tickets = env.tickets_by_incident();
    let ticket = |pair: &str, id: &str| tickets.get(&(pair.to_string(), id.to_string())).cloned();
    for id in &open {
        let snow = ticket("sentinel->servicenow", id).expect("a ServiceNow incident");
        let desk = ticket("sentinel->helpdesk", id).expect("a helpdesk ticket");
        let incident = env.sims.sentinel.incident(id).unwrap();
        let labels: Vec<String> = incident.labels.iter().map(|l| l.name.clone()).collect();
        assert!(labels.contains(&format!("ticket:{snow}")), "{labels:?}");
        assert!(labels.contains(&format!("ticket:{desk}")), "{labels:?}");
        let comments = env.sims.sentinel.comments(id);
        assert!(
            comments.iter().any(|c| c.message.contains(&snow)),
            "a comment links {snow}"
        );
        let record = env.sims.servicenow.incident(&snow).unwrap();
        assert!(
            record["correlation_id"].starts_with("itsm-bridge:sentinel:"),
            "{record:?}"
        );
        let link = incident
            .provider_incident_url
            .clone()
            .unwrap_or_else(|| incident.title.clone());
        assert!(
            record["description"].contains(&link),
            "the ticket carries the Defender link when there is one"
        );
    }

    // The second run pages through 202 ServiceNow incidents (200 a page) and writes nothing.
    let seen = env.sims.request_counts();
    env.sync();
    assert_eq!(
        requests_that_write(env.sims.sentinel.kit.requests(), seen.sentinel),
        Vec::<String>::new()
    );
    assert_eq!(
        requests_that_write(env.sims.servicenow.kit.requests(), seen.servicenow),
        Vec::<String>::new()
    );
    assert_eq!(
        requests_that_write(env.sims.generic.kit.requests(), seen.generic),
        Vec::<String>::new()
    );
    let pages = env
        .sims
        .servicenow
        .kit
        .requests()
        .iter()
        .skip(seen.servicenow)
        .filter(|r| r.path.ends_with("/table/incident") && r.method == "GET")
        .count();
    assert!(pages >= 2, "the ServiceNow poll took {pages} page(s)");
}

#[test]
fn changes_flow_each_way_between_sentinel_and_servicenow() {
    let env = Env::start_with(0, 4);
    env.sync();
    let id = open_incidents(&env)[0].clone();
    let number = env.ticket_in(Some("sentinel->servicenow"), &id).unwrap();

    // Sentinel → ServiceNow: severity and owner.
    env.sims.sentinel.set_severity(&id, "High");
    env.sims.sentinel.assign(&id, Some(ANALYSTS[0].0));
    env.sync();
    let record = env.sims.servicenow.incident(&number).unwrap();
    assert_eq!(
        (record["impact"].as_str(), record["urgency"].as_str()),
        ("1", "1")
    );
    assert_eq!(
        record["priority"], "1",
        "the instance computes priority from impact and urgency"
    );

    // ServiceNow → Sentinel: an analyst starts work.
    env.sims.servicenow.set_state(&number, "2").unwrap();
    env.sync();
    assert_eq!(env.sims.sentinel.incident(&id).unwrap().status, "Active");
}

#[test]
fn resolving_in_servicenow_closes_the_sentinel_incident_with_a_matching_classification() {
    let env = Env::start_with(0, 4);
    env.sync();
    let id = open_incidents(&env)[0].clone();
    let number = env.ticket_in(Some("sentinel->servicenow"), &id).unwrap();

    env.sims
        .servicenow
        .resolve_as_analyst(
            &number,
            "No resolution provided",
            "Benign scanner, tuned the rule.",
        )
        .unwrap();
    env.sync();

    let incident = env.sims.sentinel.incident(&id).unwrap();
    assert_eq!(incident.status, "Closed");
    assert_eq!(incident.classification.as_deref(), Some("FalsePositive"));
    assert_eq!(
        incident.classification_reason.as_deref(),
        Some("IncorrectAlertLogic")
    );
    // The helpdesk pair follows the incident: its ticket is resolved too.
    let desk = env.ticket_in(Some("sentinel->helpdesk"), &id).unwrap();
    env.sync();
    assert_eq!(env.sims.generic.ticket(&desk).unwrap().status, "resolved");
    // The analyst's own close notes stand, though the classification the bridge
    // wrote changes what the mapping's close-notes template would say.
    let record = env.sims.servicenow.incident(&number).unwrap();
    assert_eq!(record["close_notes"], "Benign scanner, tuned the rule.");
}

#[test]
fn closing_in_sentinel_resolves_servicenow_with_close_code_and_notes() {
    let env = Env::start_with(0, 4);
    env.sync();
    let id = open_incidents(&env)[0].clone();
    let number = env.ticket_in(Some("sentinel->servicenow"), &id).unwrap();

    assert!(
        env.sims
            .sentinel
            .close(&id, "TruePositive", Some("SuspiciousActivity"))
    );
    env.sync();

    let record = env.sims.servicenow.incident(&number).unwrap();
    assert_eq!(record["state"], "6");
    assert_eq!(record["close_code"], "Solution provided");
    assert!(record["close_notes"].contains("TruePositive"), "{record:?}");
    let desk = env.ticket_in(Some("sentinel->helpdesk"), &id).unwrap();
    let ticket = env.sims.generic.ticket(&desk).unwrap();
    assert_eq!(
        (ticket.status.as_str(), ticket.resolution.as_deref()),
        ("resolved", Some("confirmed"))
    );
}

#[test]
fn the_helpdesk_resolves_and_sentinel_closes_with_a_valid_reason() {
    let env = Env::start_with(0, 4);
    env.sync();
    let id = open_incidents(&env)[0].clone();
    let desk = env.ticket_in(Some("sentinel->helpdesk"), &id).unwrap();

    env.sims
        .generic
        .resolve_as_agent(&desk, "inaccurate_data")
        .unwrap();
    env.sync();
    let incident = env.sims.sentinel.incident(&id).unwrap();
    assert_eq!(incident.status, "Closed");
    assert_eq!(incident.classification.as_deref(), Some("FalsePositive"));
    assert_eq!(
        incident.classification_reason.as_deref(),
        Some("InaccurateData")
    );

    // Everything settles: another run writes nothing anywhere.
    env.sync();
    let seen = env.sims.request_counts();
    let out = env.sync();
    assert_success(&out);
    assert_eq!(
        requests_that_write(env.sims.sentinel.kit.requests(), seen.sentinel),
        Vec::<String>::new()
    );
    assert_eq!(
        requests_that_write(env.sims.servicenow.kit.requests(), seen.servicenow),
        Vec::<String>::new()
    );
    assert_eq!(
        requests_that_write(env.sims.generic.kit.requests(), seen.generic),
        Vec::<String>::new()
    );
}

/// The ServiceNow incident's work notes (its journal), oldest first.
fn work_notes(env: &Env, number: &str) -> Vec<String> {
    env.sims
        .servicenow
        .journal(number)
        .into_iter()
        .filter(|r| r.get("element").map(String::as_str) == Some("work_notes"))
        .map(|r| r.get("value").cloned().unwrap_or_default())
        .collect()
}

/// The ledger's `merge` entries (`ledger export`, one JSON object a line).
fn merge_entries(env: &Env) -> Vec<serde_json::Value> {
    let out = env.bridge(&["ledger", "export", "--db", env.db_arg()]);
    assert_success(&out);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON lines"))
        .filter(|e| e["action"] == "merge")
        .collect()
}

/// Defender XDR incidents synced into the workspace, with these resource names and
/// Defender incident ids (stable API: the bridge finds a merged incident's survivor
/// through its Defender link). The engine plans by incident id, so tests merge both
/// ways round: the merged incident's id sorting before the survivor's, and after.
fn defender_incidents(env: &Env, incidents: &[(&str, &str)]) -> Vec<String> {
    incidents
        .iter()
        .map(|(id, defender)| {
            env.sims.sentinel.seed_incident(
                SentinelSeed::new(format!("Phishing campaign, Defender incident {defender}"))
                    .id(*id)
                    .severity("Medium")
                    .provider_incident_id(*defender),
            )
        })
        .collect()
}

#[test]
fn a_defender_merge_closes_the_merged_incidents_servicenow_ticket_as_a_duplicate_of_the_survivors()
{
    let env = Env::start_with(0, 0);
    let ids = defender_incidents(
        &env,
        &[
            ("10000000-0000-4000-8000-000000000001", "61001"),
            ("f0000000-0000-4000-8000-000000000002", "61002"),
            ("f0000000-0000-4000-8000-000000000003", "61003"),
            ("10000000-0000-4000-8000-000000000004", "61004"),
        ],
    );
    env.sync();
    // (merged, survivor): the merged one first in id order, then last.
    let merges = [
        (ids[0].clone(), ids[1].clone()),
        (ids[2].clone(), ids[3].clone()),
    ];
    let number = |id: &str| env.ticket_in(Some(SNOW), id).unwrap();
    let before: Vec<(String, String)> =
        merges.iter().map(|(m, s)| (number(m), number(s))).collect();
    for (merged, survivor) in &merges {
        assert!(env.sims.sentinel.merge(merged, survivor));
    }
    env.sync();

    let display = |id: &str| env.sims.sentinel.incident(id).unwrap().number.to_string();
    let links = env.links();
    for ((merged, survivor), (merged_number, survivor_number)) in merges.iter().zip(&before) {
        // The merged incident's ticket is resolved, says where the work went, and is
        // no longer synced; the survivor's stays open and says what it absorbed.
        let record = env.sims.servicenow.incident(merged_number).unwrap();
        assert_eq!(record["state"], "6", "{record:?}");
        assert_eq!(record["close_code"], "Duplicate");
        let notes = work_notes(&env, merged_number);
        assert!(
            notes.iter().any(|n| n.contains(&format!(
                "Incident {} was merged into incident {} (ticket {survivor_number}",
                display(merged),
                display(survivor)
            ))),
            "{notes:?}"
        );
        let survivor_record = env.sims.servicenow.incident(survivor_number).unwrap();
        assert_eq!(survivor_record["state"], "1", "{survivor_record:?}");
        let notes = work_notes(&env, survivor_number);
        assert!(
            notes.iter().any(|n| n.contains(&format!(
                "absorbed incident {} (ticket {merged_number}",
                display(merged)
            ))),
            "{notes:?}"
        );
        for pair in [SNOW, DESK] {
            let link = links
                .iter()
                .find(|l| l["pair"] == pair && l["incident_id"] == merged.as_str())
                .unwrap();
            assert_eq!(link["state"], "merged", "{pair}: {link}");
            assert_eq!(link["merged_into"], survivor.as_str(), "{pair}: {link}");
        }
        // The helpdesk pair follows the same policy.
        let desk = env.ticket_in(Some(DESK), merged).unwrap();
        assert_eq!(env.sims.generic.ticket(&desk).unwrap().status, "resolved");
    }
    assert_eq!(
        env.sims.servicenow.incidents().len(),
        4,
        "no ticket is made"
    );

    // Settled: the next run writes nothing anywhere.
    let seen = env.sims.request_counts();
    env.sync();
    assert_eq!(
        requests_that_write(env.sims.sentinel.kit.requests(), seen.sentinel),
        Vec::<String>::new()
    );
    assert_eq!(
        requests_that_write(env.sims.servicenow.kit.requests(), seen.servicenow),
        Vec::<String>::new()
    );
    assert_eq!(
        requests_that_write(env.sims.generic.kit.requests(), seen.generic),
        Vec::<String>::new()
    );
}

#[test]
fn a_merge_seen_before_the_first_sync_makes_one_ticket_for_the_survivor_only() {
    let env = Env::start_with(0, 3);
    env.sync();
    let before = env.sims.servicenow.incidents().len();
    let desk_before = env.sims.generic.tickets().len();

    // They appear and Defender merges them before the bridge has seen any.
    let ids = defender_incidents(
        &env,
        &[
            ("10000000-0000-4000-8000-000000000011", "61101"),
            ("f0000000-0000-4000-8000-000000000012", "61102"),
            ("f0000000-0000-4000-8000-000000000013", "61103"),
            ("10000000-0000-4000-8000-000000000014", "61104"),
        ],
    );
    let merges = [
        (ids[0].clone(), ids[1].clone()),
        (ids[2].clone(), ids[3].clone()),
    ];
    for (merged, survivor) in &merges {
        assert!(env.sims.sentinel.merge(merged, survivor));
    }
    env.sync();

    assert_eq!(env.sims.servicenow.incidents().len(), before + 2);
    assert_eq!(env.sims.generic.tickets().len(), desk_before + 2);
    let links = env.links();
    let ledger = merge_entries(&env);
    for (merged, survivor) in &merges {
        let number = env.ticket_in(Some(SNOW), survivor).expect("a ticket");
        let record = env.sims.servicenow.incident(&number).unwrap();
        assert_eq!(record["state"], "1", "{record:?}");
        assert!(env.ticket_in(Some(DESK), survivor).is_some());
        assert!(
            links.iter().all(|l| l["incident_id"] != merged.as_str()),
            "the merged incident gets no ticket in any pair"
        );
        // The ledger says where it went: the survivor was found, not unknown.
        for pair in [SNOW, DESK] {
            let entry = ledger
                .iter()
                .find(|e| e["pair"] == pair && e["incident_id"] == merged.as_str())
                .unwrap_or_else(|| panic!("{pair}: a merge entry in {ledger:?}"));
            assert_eq!(entry["outcome"], "ok", "{entry}");
            let detail = entry["detail"].as_str().unwrap();
            let survivor_number = env.sims.sentinel.incident(survivor).unwrap().number;
            assert!(
                detail.contains(&format!("merged into incident {survivor_number} (ticket ")),
                "{detail}"
            );
        }
    }

    // And it never does.
    env.sims.sentinel.set_severity(&merges[0].0, "High");
    env.sync();
    assert_eq!(env.sims.servicenow.incidents().len(), before + 2);
    assert!(env.ticket_in(None, &merges[0].0).is_none());
}

#[test]
fn a_slow_source_does_not_hold_up_the_pairs_of_another() {
    use connectors::simkit::{Effect, FaultRule};
    use std::time::{Duration, Instant};

    let env = Env::start_with(3, 3);
    // Graph answers its first incident listing only after 8 s.
    env.sims.graph.kit.inject(
        FaultRule::new(
            Some(axum::http::Method::GET),
            "/v1.0/security/incidents",
            Effect::Delay(Duration::from_secs(8)),
        )
        .times(1),
    );
    let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_itsm-bridge"))
        .args(["run", "--config", env.config.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The Sentinel pairs sync meanwhile (the Defender pair comes first in the config).
    let open = open_incidents(&env).len();
    let deadline = Instant::now() + Duration::from_secs(6);
    while env.sims.servicenow.incidents().len() < open && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let servicenow = env.sims.servicenow.incidents().len();
    let jira = env.sims.jira.issues().len();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = daemon.wait().unwrap();
    assert_eq!(
        (servicenow, jira),
        (open, 0),
        "Sentinel's pairs synced while Graph was still answering"
    );
    assert_eq!(status.code(), Some(0), "the stop waits for the slow cycle");
    assert!(!env.sims.jira.issues().is_empty(), "which then finished");
}
