//! Sentinel incidents ⇄ ServiceNow incidents and ⇄ a generic REST helpdesk, end to
//! end: the real binary against the simulators, all three pairs in one process.

mod common;

use common::{Env, assert_success};
use connectors::sims::ANALYSTS;

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
