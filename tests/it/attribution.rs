//! Attribution in the ledger, end to end: an analyst's resolve in each ticket
//! system (Jira, ServiceNow) and in each source (Defender through Graph,
//! Sentinel) is carried and its ledger entry names that analyst, on the side
//! they worked on, at that side's time; the bridge's own writes name the bridge;
//! `ledger list --actor` and `ledger export --actor` find them, and older
//! entries without actors still verify.

use serde_json::Value;

use crate::common::{Env, assert_success, stdout};

const JIRA_PAIR: &str = "defender->jira";
const SNOW_PAIR: &str = "sentinel->servicenow";
/// The actors cell of a CSV row, its JSON quoted as RFC 4180 quotes.
const QUOTED_ANN: &str = r#""[{""name"":""Ann Jira"",""side"":""ticket""#;

/// The ledger as `ledger export` prints it (JSON lines), filtered by `args`.
fn export(env: &Env, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["ledger", "export", "--db", env.db_arg()];
    all.extend_from_slice(args);
    let out = env.bridge(&all);
    assert_success(&out);
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is one JSON object"))
        .collect()
}

/// The one entry of `action` on `incident` in `pair`, newest.
fn entry<'a>(ledger: &'a [Value], pair: &str, action: &str, incident: &str) -> &'a Value {
    ledger
        .iter()
        .rev()
        .find(|e| e["pair"] == pair && e["action"] == action && e["incident_id"] == incident)
        .unwrap_or_else(|| panic!("no {action} of {incident} in {pair}: {ledger:#?}"))
}

/// The entry's actors as `(name, side)`.
fn actors(entry: &Value) -> Vec<(String, String)> {
    entry["actors"]
        .as_array()
        .unwrap_or_else(|| panic!("no actors on {entry:#}"))
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["side"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn fields_of(entry: &Value, name: &str) -> Vec<String> {
    entry["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .map(|a| {
            a["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The bridge's own writes (creates' write-backs) say so plainly.
fn assert_write_backs_are_the_bridges(env: &Env, pair: &str, incident: &str) {
    let ledger = export(env, &["--pair", pair, "--incident", incident]);
    let write_back = entry(&ledger, pair, "write_back", incident);
    assert_eq!(
        actors(write_back),
        [("itsm-bridge".to_string(), "bridge".to_string())]
    );
    let own = export(env, &["--actor", "itsm-bridge", "--pair", pair]);
    assert!(own.iter().any(|e| e["action"] == "write_back"), "{own:#?}");
    assert!(
        own.iter().all(|e| e["actors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "itsm-bridge" && a["side"] == "bridge")),
        "{own:#?}"
    );
}

#[test]
fn a_jira_analysts_resolve_is_in_the_ledger_under_their_name() {
    let env = Env::start(2);
    env.sync();
    let id = env.active_defender()[0].clone();
    let key = env.ticket_in(Some(JIRA_PAIR), &id).unwrap();
    env.sims
        .jira
        .transition_as(&key, "Ann Jira", "Done", Some("Won't Do"))
        .unwrap();
    let resolved_at = env.sims.jira.issue(&key).unwrap().updated;
    env.sync();
    assert_eq!(env.sims.graph.incident(&id).unwrap().status, "resolved");

    let ledger = export(&env, &[]);
    let update = entry(&ledger, JIRA_PAIR, "update_incident", &id);
    assert_eq!(
        actors(update),
        [("Ann Jira".to_string(), "ticket".to_string())]
    );
    assert!(
        fields_of(update, "Ann Jira").contains(&"status".to_string()),
        "{update:#}"
    );
    let at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(update["actors"][0]["at"].clone()).unwrap();
    assert_eq!(at, resolved_at, "the ticket's modification time");
    // `--actor` finds it in both commands; a name it only contains does not.
    let by_ann = export(&env, &["--actor", "Ann Jira"]);
    assert_eq!(by_ann.len(), 1, "{by_ann:#?}");
    assert_eq!(by_ann[0]["action"], "update_incident");
    assert!(export(&env, &["--actor", "Ann"]).is_empty());
    let listed = stdout(&env.bridge(&[
        "ledger",
        "list",
        "--db",
        env.db_arg(),
        "--actor",
        "Ann Jira",
    ]));
    assert!(listed.contains("Ann Jira (ticket)"), "{listed}");
    assert!(listed.contains("update_incident"), "{listed}");
    assert_eq!(
        listed.lines().count(),
        2,
        "a header and one entry: {listed}"
    );
    let csv = stdout(&env.bridge(&[
        "ledger",
        "export",
        "--db",
        env.db_arg(),
        "--actor",
        "Ann Jira",
        "--format",
        "csv",
    ]));
    let mut lines = csv.lines();
    assert!(
        lines.next().unwrap().ends_with(",prev_hash,hash,actors"),
        "{csv}"
    );
    let row = lines.next().unwrap();
    assert!(row.contains(QUOTED_ANN), "{csv}");
    assert_eq!(lines.next(), None, "{csv}");
    assert_write_backs_are_the_bridges(&env, JIRA_PAIR, &id);
    assert_success(&env.bridge(&["ledger", "verify", "--db", env.db_arg()]));
}

#[test]
fn a_defender_analysts_resolve_is_in_the_ledger_under_their_name() {
    let env = Env::start(2);
    env.sync();
    let id = env.active_defender()[0].clone();
    let key = env.ticket_in(Some(JIRA_PAIR), &id).unwrap();
    let changed = env
        .sims
        .graph
        .update_as_defender(&id, |i| {
            i.status = "resolved".into();
            i.classification = Some("falsePositive".into());
            i.last_modified_by = Some("Dana Defender".into());
        })
        .unwrap();
    env.sync();
    assert_eq!(env.sims.jira.issue(&key).unwrap().status_category, "done");

    let ledger = export(&env, &[]);
    let update = entry(&ledger, JIRA_PAIR, "update_ticket", &id);
    assert_eq!(
        actors(update),
        [("Dana Defender".to_string(), "incident".to_string())]
    );
    assert!(fields_of(update, "Dana Defender").contains(&"status".to_string()));
    let at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(update["actors"][0]["at"].clone()).unwrap();
    assert_eq!(at, changed.updated, "the incident's lastUpdateDateTime");
    // The bridge's own write to Jira reads back in the changelog as the
    // bridge's user: the next run carries nothing and attributes nothing to it.
    env.sync();
    let again = export(&env, &["--actor", "ITSM Bridge"]);
    assert!(again.is_empty(), "{again:#?}");
    assert_write_backs_are_the_bridges(&env, JIRA_PAIR, &id);
}

#[test]
fn a_servicenow_analysts_resolve_is_in_the_ledger_under_their_user_name() {
    let env = Env::start_with(0, 2);
    env.sync();
    let id = env.sentinel_in("New")[0].clone();
    let number = env.ticket_in(Some(SNOW_PAIR), &id).unwrap();
    env.sims
        .servicenow
        .update_as(&number, "sam.servicedesk", |r| {
            r.insert("state".into(), "6".into());
            r.insert("close_code".into(), "No resolution provided".into());
            r.insert("close_notes".into(), "Benign scanner.".into());
        })
        .unwrap();
    env.sync();
    assert_eq!(env.sims.sentinel.incident(&id).unwrap().status, "Closed");

    let ledger = export(&env, &["--pair", SNOW_PAIR]);
    let update = entry(&ledger, SNOW_PAIR, "update_incident", &id);
    assert_eq!(
        actors(update),
        [("sam.servicedesk".to_string(), "ticket".to_string())]
    );
    assert!(fields_of(update, "sam.servicedesk").contains(&"status".to_string()));
    let by_sam = export(&env, &["--actor", "sam.servicedesk"]);
    assert_eq!(by_sam.len(), 1, "{by_sam:#?}");
    assert_write_backs_are_the_bridges(&env, SNOW_PAIR, &id);
}

#[test]
fn a_sentinel_analysts_close_is_in_the_ledger_under_their_name() {
    let env = Env::start_with(0, 2);
    env.sync();
    let id = env.sentinel_in("New")[0].clone();
    let number = env.ticket_in(Some(SNOW_PAIR), &id).unwrap();
    let change = connectors::sentinel::sim::AnalystChange {
        by: Some("sid@contoso.com".into()),
        status: Some("Closed".into()),
        classification: Some(Some("TruePositive".into())),
        classification_reason: Some(Some("SuspiciousActivity".into())),
        ..Default::default()
    };
    let closed = env.sims.sentinel.apply_analyst_change(&id, change).unwrap();
    env.sync();
    assert_eq!(env.sims.servicenow.incident(&number).unwrap()["state"], "6");

    let ledger = export(&env, &["--pair", SNOW_PAIR]);
    let update = entry(&ledger, SNOW_PAIR, "update_ticket", &id);
    assert_eq!(
        actors(update),
        [("sid@contoso.com".to_string(), "incident".to_string())]
    );
    let at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(update["actors"][0]["at"].clone()).unwrap();
    assert_eq!(at, closed.modified, "the incident's lastModifiedTimeUtc");
    // The helpdesk pair carried the same close: both entries are Sid's.
    let by_sid = export(&env, &["--actor", "sid@contoso.com"]);
    let pairs: Vec<&str> = by_sid.iter().map(|e| e["pair"].as_str().unwrap()).collect();
    assert!(pairs.contains(&SNOW_PAIR), "{by_sid:#?}");
    assert!(pairs.contains(&"sentinel->helpdesk"), "{by_sid:#?}");
    assert_write_backs_are_the_bridges(&env, SNOW_PAIR, &id);
}
