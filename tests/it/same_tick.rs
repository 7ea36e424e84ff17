//! Edits made within the same tick of a remote's clock as the bridge's own
//! write to the same record (a ServiceNow second, a Jira or helpdesk
//! millisecond, a Graph or Sentinel 100 ns tick): an analyst's edit, a
//! server-side rule, a resolve or close. Each is carried to the other side by
//! the very next `run --once`, never left to a drift sweep: the bridge orders a
//! record's changes by its version where the API has one (ServiceNow
//! `sys_mod_count`, the Sentinel etag, the helpdesk's `version`) and compares a
//! tie in time field by field where it has none (Jira, Graph).

use crate::common::Env;

const JIRA_PAIR: &str = "defender->jira";
const SNOW_PAIR: &str = "sentinel->servicenow";
const DESK_PAIR: &str = "sentinel->helpdesk";

/// No drift sweep ran and nothing was repaired: the poll carried it.
fn assert_no_sweep(env: &Env) {
    let ledger = crate::common::stdout(&env.bridge(&["ledger", "export", "--db", env.db_arg()]));
    assert!(
        !ledger.contains("\"repair\"") && !ledger.contains("\"sweep\""),
        "{ledger}"
    );
}

// ---------------------------------------------------------------------------------
// Jira: milliseconds, no version

/// An edit stamped with the issue's own last `updated`: the millisecond of the
/// bridge's last write to it.
fn jira_same_tick(env: &Env, key: &str, edit: impl FnOnce()) {
    let at = env.sims.jira.issue(key).unwrap().updated;
    edit();
    env.sims.jira.backdate(key, at).unwrap();
    assert_eq!(env.sims.jira.issue(key).unwrap().updated, at);
}

#[test]
fn a_jira_resolve_in_the_millisecond_of_the_bridges_create_resolves_the_defender_incident() {
    let env = Env::start(3);
    env.sync();
    let id = env.active_defender()[0].clone();
    let key = env.ticket_in(Some(JIRA_PAIR), &id).unwrap();

    jira_same_tick(&env, &key, || {
        env.sims
            .jira
            .transition_as_analyst(&key, "Done", Some("Won't Do"))
            .unwrap();
    });
    env.sync();

    let incident = env.sims.graph.incident(&id).unwrap();
    assert_eq!(incident.status, "resolved");
    assert_eq!(incident.classification.as_deref(), Some("falsePositive"));
    assert_no_sweep(&env);
}

#[test]
fn a_jira_automation_in_the_millisecond_of_the_bridges_update_reaches_defender() {
    let env = Env::start(3);
    env.sync();
    let id = env.active_defender()[0].clone();
    let key = env.ticket_in(Some(JIRA_PAIR), &id).unwrap();
    // The bridge updates the issue (a severity change on Defender's side)...
    env.sims.graph.set_severity(&id, "high");
    env.sync();
    assert_eq!(env.sims.jira.issue(&key).unwrap().priority, "Highest");
    // ...and an automation rule starts work on it within that millisecond.
    jira_same_tick(&env, &key, || {
        env.sims
            .jira
            .transition_as_analyst(&key, "In Progress", None)
            .unwrap();
    });
    env.sync();
    assert_eq!(env.sims.graph.incident(&id).unwrap().status, "inProgress");
    assert_no_sweep(&env);
}

// ---------------------------------------------------------------------------------
// ServiceNow: whole seconds, `sys_mod_count`

#[test]
fn a_servicenow_business_rule_in_the_second_of_the_bridges_create_reaches_sentinel() {
    let env = Env::start_with(0, 3);
    // An async business rule starts work on every new incident, within the
    // second of the insert (the insert's answer does not show it yet).
    env.sims.servicenow.add_async_rule(|record| {
        if record.get("state").map(String::as_str) == Some("1") {
            record.insert("state".into(), "2".into());
        }
    });
    env.sync();
    let id = env.sentinel_in("New")[0].clone();
    let number = env.ticket_in(Some(SNOW_PAIR), &id).unwrap();
    let record = env.sims.servicenow.incident(&number).unwrap();
    assert_eq!(
        (record["state"].as_str(), record["sys_updated_by"].as_str()),
        ("2", "system")
    );
    assert_eq!(record["sys_updated_on"], record["sys_created_on"]);

    env.sync();
    assert_eq!(env.sims.sentinel.incident(&id).unwrap().status, "Active");
    assert_no_sweep(&env);
}

#[test]
fn a_servicenow_resolve_in_the_second_of_the_bridges_update_closes_the_sentinel_incident() {
    let env = Env::start_with(0, 3);
    env.sync();
    let id = env.sentinel_in("New")[0].clone();
    let number = env.ticket_in(Some(SNOW_PAIR), &id).unwrap();
    // The bridge updates the ticket (severity → impact and urgency)...
    env.sims.sentinel.set_severity(&id, "High");
    env.sync();
    assert_eq!(
        env.sims.servicenow.incident(&number).unwrap()["impact"],
        "1"
    );
    // ...and an analyst resolves it within that second.
    let before = env.sims.servicenow.incident(&number).unwrap();
    env.sims
        .servicenow
        .update_as_analyst_within_the_second(&number, |r| {
            r.insert("state".into(), "6".into());
            r.insert("close_code".into(), "No resolution provided".into());
            r.insert("close_notes".into(), "Benign scanner.".into());
        })
        .unwrap();
    let after = env.sims.servicenow.incident(&number).unwrap();
    assert_eq!(after["sys_updated_on"], before["sys_updated_on"]);
    assert_ne!(after["sys_mod_count"], before["sys_mod_count"]);

    env.sync();
    let incident = env.sims.sentinel.incident(&id).unwrap();
    assert_eq!(incident.status, "Closed");
    assert_eq!(incident.classification.as_deref(), Some("FalsePositive"));
    assert_no_sweep(&env);
}

// ---------------------------------------------------------------------------------
// The helpdesk: milliseconds and a `version`

/// An edit stamped with the ticket's own last `updated_at`.
fn desk_same_tick(
    env: &Env,
    key: &str,
    edit: impl FnOnce(&mut connectors::generic::sim::SimTicket),
) {
    let at = env.sims.generic.ticket(key).unwrap().updated_at;
    env.sims.generic.update_as_agent(key, edit).unwrap();
    env.sims.generic.backdate(key, at).unwrap();
}

#[test]
fn a_helpdesk_resolve_in_the_millisecond_of_the_bridges_create_closes_the_sentinel_incident() {
    let env = Env::start_with(0, 3);
    env.sync();
    let id = env.sentinel_in("New")[0].clone();
    let key = env.ticket_in(Some(DESK_PAIR), &id).unwrap();
    desk_same_tick(&env, &key, |t| {
        t.status = "resolved".into();
        t.resolution = Some("inaccurate_data".into());
    });
    env.sync();
    let incident = env.sims.sentinel.incident(&id).unwrap();
    assert_eq!(incident.status, "Closed");
    assert_eq!(
        incident.classification_reason.as_deref(),
        Some("InaccurateData")
    );
    assert_no_sweep(&env);
}

#[test]
fn a_helpdesk_edit_in_the_millisecond_of_the_bridges_update_reaches_sentinel() {
    let env = Env::start_with(0, 3);
    env.sync();
    let id = env.sentinel_in("New")[0].clone();
    let key = env.ticket_in(Some(DESK_PAIR), &id).unwrap();
    env.sims.sentinel.set_severity(&id, "High");
    env.sync();
    desk_same_tick(&env, &key, |t| t.status = "in_progress".into());
    env.sync();
    assert_eq!(env.sims.sentinel.incident(&id).unwrap().status, "Active");
    assert_no_sweep(&env);
}

// ---------------------------------------------------------------------------------
// The sources: Graph (100 ns, no version) and Sentinel (100 ns and an etag)

#[test]
fn a_defender_change_in_the_tick_of_the_bridges_update_reaches_jira() {
    let env = Env::start(3);
    env.sync();
    let id = env.active_defender()[0].clone();
    let key = env.ticket_in(Some(JIRA_PAIR), &id).unwrap();
    // The bridge updates the incident (an analyst started work in Jira)...
    env.sims
        .jira
        .transition_as_analyst(&key, "In Progress", None)
        .unwrap();
    env.sync();
    let written = env.sims.graph.incident(&id).unwrap();
    assert_eq!(written.status, "inProgress");
    // ...and Defender changes the severity within that 100 ns tick.
    let (severity, priority) = if written.severity == "high" {
        ("low", "Medium")
    } else {
        ("high", "Highest")
    };
    env.sims
        .graph
        .update_as_defender_at(&id, written.updated, |i| i.severity = severity.into())
        .unwrap();
    env.sync();
    assert_eq!(env.sims.jira.issue(&key).unwrap().priority, priority);
    assert_no_sweep(&env);
}

#[test]
fn a_sentinel_close_in_the_tick_of_the_bridges_update_reaches_both_ticket_systems() {
    let env = Env::start_with(0, 3);
    env.sync();
    let id = env.sentinel_in("New")[0].clone();
    let number = env.ticket_in(Some(SNOW_PAIR), &id).unwrap();
    let key = env.ticket_in(Some(DESK_PAIR), &id).unwrap();
    // The bridge updates the incident (work started in ServiceNow)...
    env.sims.servicenow.set_state(&number, "2").unwrap();
    env.sync();
    let written = env.sims.sentinel.incident(&id).unwrap();
    assert_eq!(written.status, "Active");
    // ...and an analyst closes it within that tick (a new etag, the same time).
    let closed = env
        .sims
        .sentinel
        .update_as_analyst_at(&id, written.modified, |i| {
            i.status = "Closed".into();
            i.classification = Some("TruePositive".into());
            i.classification_reason = Some("SuspiciousActivity".into());
        })
        .unwrap();
    assert_eq!(closed.modified, written.modified);
    assert_ne!(closed.etag, written.etag);
    env.sync();
    assert_eq!(env.sims.servicenow.incident(&number).unwrap()["state"], "6");
    assert_eq!(env.sims.generic.ticket(&key).unwrap().status, "resolved");
    assert_no_sweep(&env);
}
