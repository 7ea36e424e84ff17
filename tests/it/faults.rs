//! Faults from the remote side, end to end: the real binary against simulators that
//! throttle, fail, stall, cut answers short, send garbage, page oddly, expire tokens
//! and race the bridge's writes. Each test injects one kind of fault (through the
//! simulators' fault switch, `connectors::simkit`) and then checks convergence as
//! the remote systems see it: every open incident has exactly one ticket (found by
//! its correlation id on the ticket system, not from the bridge's own links), one
//! write-back tag and one write-back comment, the planned changes arrived, a further
//! run has nothing to write, and the ledger verifies.
//!
//! The engine retries a dead letter after a minute; the tests do not wait that out:
//! they make the retry due through the store (`schedule_retry`), and a create whose
//! answer was lost is made old enough to be settled by backdating its outbox intent.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{Env, assert_success, stderr, stdout};
use axum::http::Method;
use bridge_core::store::{Side, SqliteStore, Store};
use connectors::simkit::{Effect, FaultRule, LoggedRequest, Trigger};

const JIRA_PAIR: &str = "defender->jira";
const SNOW_PAIR: &str = "sentinel->servicenow";
const DESK_PAIR: &str = "sentinel->helpdesk";

const GRAPH_LIST: &str = "/v1.0/security/incidents";
const JIRA_ISSUE: &str = "/rest/api/3/issue";
const JIRA_SEARCH: &str = "/rest/api/3/search/jql";
const SNOW_TABLE: &str = "/api/now/table/incident";
const TOKEN_PATH: &str = "/oauth2/v2.0/token";

// ---------------------------------------------------------------------------------
// Running the bridge

fn run(env: &Env) -> Output {
    env.bridge(&["run", "--once", "--config", env.config.to_str().unwrap()])
}

/// A run in which something failed: `run --once` exits 1.
fn run_with_failures(env: &Env) -> Output {
    let out = run(env);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Shortens the HTTP timeout the harness writes (`10s`).
fn set_timeout(env: &Env, timeout: &str) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    assert!(text.contains("timeout = \"10s\""), "{text}");
    let text = text.replace("timeout = \"10s\"", &format!("timeout = \"{timeout}\""));
    std::fs::write(&env.config, text).unwrap();
}

fn store(env: &Env) -> SqliteStore {
    SqliteStore::open(&env.db).expect("the bridge's database opens")
}

/// `links --json`'s dead letters, as JSON.
fn dead_letters(env: &Env) -> Vec<serde_json::Value> {
    env.links()
        .into_iter()
        .filter_map(|l| l.get("dead_letter").cloned())
        .collect()
}

// ---------------------------------------------------------------------------------
// The remote side, as it sees things

fn open_defender(env: &Env) -> BTreeSet<String> {
    env.sims
        .graph
        .incidents()
        .into_iter()
        .filter(|i| i.status != "resolved")
        .map(|i| i.id)
        .collect()
}

fn open_sentinel(env: &Env) -> BTreeSet<String> {
    env.sims
        .sentinel
        .incidents()
        .into_iter()
        .filter(|i| i.status != "Closed")
        .map(|i| i.name)
        .collect()
}

/// (pair, incident id) → the keys of the tickets that carry its correlation id.
fn tickets_on_the_systems(env: &Env) -> BTreeMap<(&'static str, String), Vec<String>> {
    let mut out: BTreeMap<(&'static str, String), Vec<String>> = BTreeMap::new();
    for issue in env.sims.jira.issues() {
        for label in &issue.labels {
            if let Some(id) = label.strip_prefix("itsm-bridge:defender:") {
                out.entry((JIRA_PAIR, id.to_string()))
                    .or_default()
                    .push(issue.key.clone());
            }
        }
    }
    for row in env.sims.servicenow.incidents() {
        if let Some(c) = row
            .get("correlation_id")
            .and_then(|c| c.strip_prefix("itsm-bridge:sentinel:"))
        {
            // The workspace qualifies the id: the incident GUID is last.
            let id = c.rsplit(':').next().unwrap_or(c);
            out.entry((SNOW_PAIR, id.to_string()))
                .or_default()
                .push(row["number"].clone());
        }
    }
    for ticket in env.sims.generic.tickets() {
        if let Some(c) = &ticket.external_id {
            let id = c.rsplit(':').next().unwrap_or(c);
            out.entry((DESK_PAIR, id.to_string()))
                .or_default()
                .push(ticket.key.clone());
        }
    }
    out
}

/// The one ticket an incident has on its ticket system.
fn only_ticket(env: &Env, pair: &'static str, incident_id: &str) -> String {
    let tickets = tickets_on_the_systems(env);
    let keys = tickets
        .get(&(pair, incident_id.to_string()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(keys.len(), 1, "{pair} {incident_id}: {keys:?}");
    keys[0].clone()
}

/// Converged: every open incident has exactly one ticket on its ticket system (and
/// none for another), the bridge links that ticket, the incident carries exactly
/// one write-back tag and one write-back comment for it, the ticket carries the
/// incident's title, nothing is failing or pending, a further run has nothing to
/// write, and the ledger verifies.
fn assert_converged(env: &Env) {
    let tickets = tickets_on_the_systems(env);
    let links = env.tickets_by_incident();
    let defender = open_defender(env);
    let sentinel = open_sentinel(env);
    let mut expected: BTreeSet<(&str, String)> = BTreeSet::new();
    expected.extend(defender.iter().map(|id| (JIRA_PAIR, id.clone())));
    for pair in [SNOW_PAIR, DESK_PAIR] {
        expected.extend(sentinel.iter().map(|id| (pair, id.clone())));
    }
    let found: BTreeSet<(&str, String)> = tickets.keys().cloned().collect();
    assert_eq!(
        found, expected,
        "tickets exist for exactly the open incidents"
    );
    for ((pair, id), keys) in &tickets {
        assert_eq!(keys.len(), 1, "{pair} {id} has one ticket, not {keys:?}");
        let key = &keys[0];
        assert_eq!(
            links.get(&(pair.to_string(), id.clone())),
            Some(key),
            "the bridge links {pair} {id} to {key}"
        );
        let opened = format!("{key} was opened");
        let tag = format!("ticket:{key}");
        if *pair == JIRA_PAIR {
            let incident = env.sims.graph.incident(id).unwrap();
            let tags = incident.custom_tags.iter().filter(|t| **t == tag).count();
            let comments = incident
                .comments
                .iter()
                .filter(|c| c.comment.contains(&opened))
                .count();
            assert_eq!((tags, comments), (1, 1), "{id} write-back: {incident:?}");
            let issue = env.sims.jira.issue(key).unwrap();
            let want = (
                jira_status_category(&incident.status),
                jira_priority(&incident.severity),
            );
            assert_eq!(
                (issue.status_category.as_str(), issue.priority.as_str()),
                want,
                "{key} is in step with {id} ({} / {})",
                incident.status,
                incident.severity
            );
            let title = incident.display_name.unwrap_or_default();
            assert!(issue.summary.ends_with(&title), "{}", issue.summary);
        } else {
            let incident = env.sims.sentinel.incident(id).unwrap();
            let tags = incident.labels.iter().filter(|l| l.name == tag).count();
            let comments = env
                .sims
                .sentinel
                .comments(id)
                .iter()
                .filter(|c| c.message.contains(&opened))
                .count();
            assert_eq!((tags, comments), (1, 1), "{pair} {id} write-back");
            let summary = if *pair == SNOW_PAIR {
                env.sims.servicenow.incident(key).unwrap()["short_description"].clone()
            } else {
                env.sims
                    .generic
                    .tickets()
                    .into_iter()
                    .find(|t| t.key == *key)
                    .unwrap()
                    .summary
            };
            assert!(summary.ends_with(&incident.title), "{summary}");
        }
    }
    assert_eq!(dead_letters(env), Vec::<serde_json::Value>::new());
    assert_eq!(store(env).pending_intents().unwrap().len(), 0);

    let out = env.sync();
    let text = stdout(&out);
    assert!(
        text.lines().all(|l| l.ends_with("nothing to write")),
        "a further run writes nothing:\n{text}"
    );
    assert_success(&env.bridge(&["ledger", "verify", "--db", env.db_arg()]));
}

/// The Jira status category the shipped mapping gives a Defender status.
fn jira_status_category(status: &str) -> &'static str {
    match status {
        "active" => "new",
        "resolved" | "redirected" => "done",
        _ => "indeterminate",
    }
}

/// The Jira priority the shipped mapping gives a Defender severity.
fn jira_priority(severity: &str) -> &'static str {
    match severity {
        "high" => "Highest",
        "medium" => "High",
        "informational" => "Low",
        _ => "Medium",
    }
}

/// A request a fault fired on (or that was refused with 401), and whether the same
/// method and path was later answered with success: the client repeated it and got
/// through.
#[derive(Debug, PartialEq)]
struct Faulted {
    request: String,
    fault: Option<&'static str>,
    status: u16,
    repeated: bool,
}

fn faulted_then_repeated(log: &[LoggedRequest]) -> Vec<Faulted> {
    log.iter()
        .enumerate()
        .filter(|(_, r)| r.fault.is_some() || r.status == 401)
        .map(|(i, r)| Faulted {
            request: format!("{} {}", r.method, r.path),
            fault: r.fault,
            status: r.status,
            repeated: log[i + 1..].iter().any(|later| {
                later.method == r.method
                    && later.path == r.path
                    && (200..300).contains(&later.status)
                    && later.fault.is_none()
            }),
        })
        .collect()
}

fn count(log: &[LoggedRequest], method: &str, path: &str, status: u16) -> usize {
    log.iter()
        .filter(|r| r.method == method && r.path == path && r.status == status)
        .count()
}

// ---------------------------------------------------------------------------------
// 429 with Retry-After

#[test]
fn a_throttled_create_waits_a_whole_second_retry_after_and_is_made_once() {
    let env = Env::start_with(6, 2);
    env.sims.jira.kit.inject(
        FaultRule::new(
            Some(Method::POST),
            JIRA_ISSUE,
            Effect::status_retry_after(429, "1"),
        )
        .times(1),
    );
    let started = Instant::now();
    env.sync();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the bridge waited out Retry-After: 1"
    );
    let log = env.sims.jira.kit.requests();
    // A throttled request was not acted on: repeating even a create is safe.
    assert_eq!(
        faulted_then_repeated(&log),
        [Faulted {
            request: format!("POST {JIRA_ISSUE}"),
            fault: Some("status"),
            status: 429,
            repeated: true,
        }]
    );
    assert_eq!(count(&log, "POST", JIRA_ISSUE, 201), 6);
    assert_converged(&env);
}

#[test]
fn graph_throttling_with_a_fractional_retry_after_is_waited_out() {
    let env = Env::start(6);
    env.sims
        .graph
        .kit
        .inject(connectors::graph::sim::throttle_fault(2, "0.4"));
    let started = Instant::now();
    env.sync();
    assert!(started.elapsed() >= Duration::from_millis(800));
    let log = env.sims.graph.kit.requests();
    let throttled: Vec<_> = faulted_then_repeated(&log);
    assert_eq!(throttled.len(), 2, "{throttled:?}");
    assert!(throttled.iter().all(|f| f.status == 429 && f.repeated));
    assert_converged(&env);
}

// ---------------------------------------------------------------------------------
// 500, 502, 503, 504

#[test]
fn server_errors_on_reads_and_idempotent_writes_are_retried_and_converge() {
    let env = Env::start_with(8, 4);
    let graph = &env.sims.graph.kit;
    graph.inject(FaultRule::new(
        Some(Method::GET),
        GRAPH_LIST,
        Effect::status(500),
    ));
    // Every third write-back PATCH: the repeat is the next matching request.
    graph.inject(
        FaultRule::new(Some(Method::PATCH), GRAPH_LIST, Effect::status(503))
            .when(Trigger::EveryNth(3)),
    );
    env.sims.jira.kit.inject(FaultRule::new(
        Some(Method::POST),
        JIRA_SEARCH,
        Effect::status(502),
    ));
    env.sims.jira.kit.inject(
        FaultRule::new(Some(Method::GET), JIRA_ISSUE, Effect::status(504)).when(Trigger::Nth(2)),
    );
    env.sims.servicenow.kit.inject(FaultRule::new(
        Some(Method::GET),
        SNOW_TABLE,
        Effect::status(500),
    ));
    env.sims.sentinel.kit.inject(
        FaultRule::new(Some(Method::PUT), "/incidents/", Effect::status(502)).when(Trigger::Nth(2)),
    );

    env.sync();
    let mut seen = Vec::new();
    for kit in [
        &env.sims.graph.kit,
        &env.sims.jira.kit,
        &env.sims.servicenow.kit,
        &env.sims.sentinel.kit,
    ] {
        for Faulted {
            request,
            status,
            repeated,
            ..
        } in faulted_then_repeated(&kit.requests())
        {
            assert!(repeated, "{request} answered {status} was repeated");
            seen.push(status);
        }
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, [500, 502, 503, 504]);
    assert_converged(&env);
}

#[test]
fn a_create_that_gets_a_500_is_not_repeated_and_is_made_once_in_the_same_run() {
    let env = Env::start(6);
    env.sims.jira.kit.inject(FaultRule::new(
        Some(Method::POST),
        JIRA_ISSUE,
        Effect::status(500),
    ));
    // Whether Jira made it is unknown, and it is the pair's first create: no
    // key to read on from, and Jira's search lags. The run waits out the
    // search's lag, says so, looks again and only then makes it: once.
    let out = env.sync();
    let text = stdout(&out);
    assert!(
        text.contains("waiting") && text.contains("Jira's search"),
        "{text}"
    );
    let log = env.sims.jira.kit.requests();
    assert_eq!(count(&log, "POST", JIRA_ISSUE, 500), 1);
    assert_eq!(count(&log, "POST", JIRA_ISSUE, 201), 6, "made once, later");
    assert_eq!(env.sims.jira.issues().len(), 6);
    assert!(store(&env).pending_intents().unwrap().is_empty());
    let ledger = stdout(&env.bridge(&["ledger", "export", "--db", env.db_arg()]));
    assert!(ledger.contains("the ticket may exist"), "{ledger}");
    assert_converged(&env);
}
// ---------------------------------------------------------------------------------
// Timeouts

#[test]
fn reads_and_writes_that_time_out_are_retried_and_applied_once() {
    let env = Env::start(6);
    set_timeout(&env, "1s");
    let late = Effect::Delay(Duration::from_millis(1500));
    let graph = &env.sims.graph.kit;
    graph.inject(FaultRule::new(Some(Method::GET), GRAPH_LIST, late.clone()));
    // Graph applied the tags; the answer came too late; the PATCH is repeated.
    graph.inject(FaultRule::new(Some(Method::PATCH), GRAPH_LIST, late).when(Trigger::Nth(2)));
    env.sync();
    let faulted = faulted_then_repeated(&graph.requests());
    assert_eq!(faulted.len(), 2, "{faulted:?}");
    assert!(
        faulted
            .iter()
            .all(|f| f.fault == Some("delay") && f.repeated)
    );
    assert_converged(&env);
}

#[test]
fn a_create_that_times_out_after_jira_made_it_is_adopted_in_the_same_run_not_made_twice() {
    let env = Env::start(6);
    set_timeout(&env, "1s");
    // The third create: the pair already knows two keys, so the issue the lost
    // answer made is found by reading the keys after them, which Jira serves
    // at once, with no wait for its search.
    env.sims.jira.kit.inject(
        FaultRule::new(
            Some(Method::POST),
            JIRA_ISSUE,
            Effect::Delay(Duration::from_millis(1500)),
        )
        .when(Trigger::Nth(3)),
    );
    let out = env.sync();
    let text = stdout(&out);
    assert!(text.contains("1 adopted"), "{text}");
    assert!(!text.contains("waiting"), "{text}");
    assert_eq!(env.sims.jira.issues().len(), 6, "Jira made six, once each");
    assert_eq!(
        env.tickets_by_incident().len(),
        6,
        "the bridge knows all six"
    );
    assert!(store(&env).pending_intents().unwrap().is_empty());
    assert_converged(&env);
}
// ---------------------------------------------------------------------------------
// Connection reset mid-body

#[test]
fn reads_cut_off_by_a_connection_reset_are_retried() {
    let env = Env::start_with(6, 3);
    env.sims.graph.kit.inject(FaultRule::new(
        Some(Method::GET),
        GRAPH_LIST,
        Effect::ResetMidBody,
    ));
    env.sims
        .jira
        .kit
        .inject(FaultRule::new(Some(Method::POST), JIRA_SEARCH, Effect::ResetMidBody).times(2));
    env.sims.servicenow.kit.inject(FaultRule::new(
        Some(Method::GET),
        SNOW_TABLE,
        Effect::ResetMidBody,
    ));
    env.sync();
    for kit in [
        &env.sims.graph.kit,
        &env.sims.jira.kit,
        &env.sims.servicenow.kit,
    ] {
        let faulted = faulted_then_repeated(&kit.requests());
        assert!(!faulted.is_empty());
        assert!(
            faulted
                .iter()
                .all(|f| f.fault == Some("reset") && f.repeated),
            "{faulted:?}"
        );
    }
    assert_converged(&env);
}

#[test]
fn a_create_whose_answer_is_cut_off_is_not_repeated_and_is_adopted_in_the_same_run() {
    let env = Env::start(6);
    let first = open_defender(&env).into_iter().next().unwrap();
    env.sims.jira.kit.inject(FaultRule::new(
        Some(Method::POST),
        JIRA_ISSUE,
        Effect::ResetMidBody,
    ));
    let out = env.sync();
    let text = stdout(&out);
    assert!(text.contains("1 adopted"), "{text}");
    let log = env.sims.jira.kit.requests();
    assert_eq!(
        count(&log, "POST", JIRA_ISSUE, 201),
        6,
        "Jira made six issues, the bridge posted no seventh"
    );
    only_ticket(&env, JIRA_PAIR, &first);
    assert!(store(&env).pending_intents().unwrap().is_empty());
    let ledger = stdout(&env.bridge(&["ledger", "export", "--db", env.db_arg()]));
    assert!(ledger.contains("adopt_ticket"), "{ledger}");
    assert_converged(&env);
}

#[test]
fn a_servicenow_create_whose_answer_is_cut_off_is_adopted_in_the_same_run_without_waiting() {
    let env = Env::start_with(0, 4);
    env.sims.servicenow.kit.inject(
        FaultRule::new(Some(Method::POST), SNOW_TABLE, Effect::ResetMidBody).when(Trigger::Nth(2)),
    );
    let out = env.sync();
    let text = stdout(&out);
    // The correlation lookup reads the table itself: no search to wait for.
    assert!(text.contains("1 adopted"), "{text}");
    assert!(!text.contains("waiting"), "{text}");
    let log = env.sims.servicenow.kit.requests();
    assert_eq!(count(&log, "POST", SNOW_TABLE, 201), 4, "made once each");
    assert!(store(&env).pending_intents().unwrap().is_empty());
    assert_converged(&env);
}

#[test]
fn a_helpdesk_create_that_gets_a_500_is_made_once_in_the_same_run_without_waiting() {
    let env = Env::start_with(0, 4);
    env.sims.generic.kit.inject(
        FaultRule::new(Some(Method::POST), "/api/tickets", Effect::status(500))
            .when(Trigger::Nth(2)),
    );
    let out = env.sync();
    let text = stdout(&out);
    assert!(!text.contains("waiting"), "{text}");
    let log = env.sims.generic.kit.requests();
    assert_eq!(count(&log, "POST", "/api/tickets", 500), 1);
    assert_eq!(
        count(&log, "POST", "/api/tickets", 201),
        4,
        "the lookup found nothing, so it was made, once"
    );
    assert_eq!(env.sims.generic.tickets().len(), 4);
    assert!(store(&env).pending_intents().unwrap().is_empty());
    assert_converged(&env);
}
#[test]
fn an_adopted_issue_gets_the_status_its_lost_create_would_have_set() {
    let env = Env::start(6);
    // The incident is in progress: after the POST, the create moves the new issue
    // to In Progress. The POST's answer is lost, so that step never runs.
    let first = open_defender(&env).into_iter().next().unwrap();
    env.sims.graph.set_status(&first, "inProgress");
    env.sims.jira.kit.inject(FaultRule::new(
        Some(Method::POST),
        JIRA_ISSUE,
        Effect::ResetMidBody,
    ));
    let out = env.sync();
    assert!(stdout(&out).contains("1 adopted"), "{}", stdout(&out));
    let issue = env
        .sims
        .jira
        .issue(&only_ticket(&env, JIRA_PAIR, &first))
        .unwrap();
    assert_eq!(issue.status, "In Progress");
    assert_converged(&env);
}
// ---------------------------------------------------------------------------------
// Truncated and malformed JSON

#[test]
fn a_truncated_page_fails_the_poll_and_the_next_run_catches_up() {
    let env = Env::start_with(6, 3);
    env.sims.graph.kit.inject(FaultRule::new(
        Some(Method::GET),
        GRAPH_LIST,
        Effect::TruncatedBody,
    ));
    let out = run_with_failures(&env);
    assert!(
        stderr(&out).contains("defender->jira: polling failed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        env.sims.jira.issues().len(),
        0,
        "nothing planned past the bad page"
    );
    assert_eq!(
        store(&env).watermark(JIRA_PAIR, Side::Incidents).unwrap(),
        None,
        "the watermark did not move past what was never read"
    );
    assert_eq!(
        env.sims.servicenow.incidents().len(),
        3,
        "the other pairs ran"
    );
    env.sync();
    assert_converged(&env);
}

#[test]
fn a_write_whose_answer_is_truncated_is_set_aside_then_finished_without_repeats() {
    let env = Env::start(6);
    env.sims.graph.kit.inject(FaultRule::new(
        Some(Method::PATCH),
        GRAPH_LIST,
        Effect::TruncatedBody,
    ));
    run_with_failures(&env);
    let letters = dead_letters(&env);
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["action"], "write_back");
    let id = letters[0]["incident_id"].as_str().unwrap().to_string();
    let key = only_ticket(&env, JIRA_PAIR, &id);
    let tags = env.sims.graph.incident(&id).unwrap().custom_tags;
    assert!(
        tags.contains(&format!("ticket:{key}")),
        "Graph applied the PATCH"
    );

    env.make_retry_due(JIRA_PAIR, &id);
    let out = env.sync();
    assert!(
        stdout(&out).contains("1 recovered from earlier failures"),
        "{}",
        stdout(&out)
    );
    assert_converged(&env);
}

#[test]
fn malformed_json_fails_the_poll_and_the_next_run_catches_up() {
    let env = Env::start_with(6, 3);
    env.sims.jira.kit.inject(FaultRule::new(
        Some(Method::POST),
        JIRA_SEARCH,
        Effect::MalformedJson,
    ));
    env.sims.sentinel.kit.inject(FaultRule::new(
        Some(Method::GET),
        "/incidents",
        Effect::MalformedJson,
    ));
    let out = run_with_failures(&env);
    let err = stderr(&out);
    assert!(err.contains("defender->jira: polling failed"), "{err}");
    assert!(
        err.contains("sentinel->servicenow: polling failed"),
        "{err}"
    );
    assert_eq!(env.sims.jira.issues().len(), 0);
    assert_eq!(env.sims.servicenow.incidents().len(), 0);
    assert_eq!(env.sims.generic.tickets().len(), 3, "the third pair ran");
    env.sync();
    assert_converged(&env);
}

// ---------------------------------------------------------------------------------
// An empty page with a next link

#[test]
fn empty_pages_with_a_next_link_are_followed_to_the_end() {
    let env = Env::start(60);
    env.sims.graph.set_empty_pages(true);
    env.sync();
    let pages = env
        .sims
        .graph
        .kit
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == GRAPH_LIST)
        .count();
    assert_eq!(
        pages, 3,
        "2 pages of incidents and an empty one between them"
    );
    assert_eq!(open_defender(&env).len(), 54);
    assert_converged(&env);
}

// ---------------------------------------------------------------------------------
// Tokens that expire

#[test]
fn tokens_that_expire_mid_run_are_refreshed_once_and_the_request_repeated() {
    let env = Env::start_with(6, 3);
    // Every token dies just before Graph answers its fourth request, and again
    // before Sentinel answers its third: each source gets one 401 mid-run.
    for (kit, nth) in [(&env.sims.graph.kit, 4), (&env.sims.sentinel.kit, 3)] {
        let registry = env.sims.registry.clone();
        kit.inject(
            FaultRule::new(None, "/", Effect::Pass)
                .when(Trigger::Nth(nth))
                .hook(move || registry.expire_all()),
        );
    }
    env.sync();
    for kit in [&env.sims.graph.kit, &env.sims.sentinel.kit] {
        let refused: Vec<_> = faulted_then_repeated(&kit.requests())
            .into_iter()
            .filter(|f| f.status == 401)
            .collect();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(
            refused[0].repeated,
            "repeated with a new token: {refused:?}"
        );
    }
    let tokens = env
        .sims
        .login
        .kit
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(TOKEN_PATH))
        .count();
    assert_eq!(tokens, 4, "one token and one refresh for each source");
    assert_converged(&env);
}

// ---------------------------------------------------------------------------------
// Concurrent edits: 409

#[test]
fn a_stale_sentinel_etag_is_a_409_and_both_changes_survive_the_re_plan() {
    let env = Env::start_with(0, 6);
    env.sync();
    // An incident an analyst can start work on, not High yet.
    let id = env
        .sims
        .sentinel
        .incidents()
        .into_iter()
        .find(|i| i.status == "New" && i.severity != "High")
        .expect("a New incident below High")
        .name;
    let number = only_ticket(&env, SNOW_PAIR, &id);
    env.sims.servicenow.set_state(&number, "2").unwrap();
    // Between the bridge's read and its PUT, an analyst raises the severity.
    env.sims
        .sentinel
        .on_next_put(&id, |incident| incident.severity = "High".into());
    let seen = env.sims.sentinel.kit.request_count();
    env.sync();

    let log = &env.sims.sentinel.kit.requests()[seen..];
    let puts: Vec<u16> = log
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with(&id))
        .map(|r| r.status)
        .collect();
    assert_eq!(
        puts,
        [409, 200],
        "refused on the stale etag, then re-planned"
    );
    let incident = env.sims.sentinel.incident(&id).unwrap();
    assert_eq!(incident.status, "Active", "the ticket's change arrived");
    assert_eq!(incident.severity, "High", "the analyst's change was kept");
    let record = env.sims.servicenow.incident(&number).unwrap();
    assert_eq!(
        (record["impact"].as_str(), record["urgency"].as_str()),
        ("1", "1"),
        "and reached the ticket"
    );
    assert_converged(&env);
}

#[test]
fn a_jira_409_on_a_concurrent_edit_is_re_planned_and_both_changes_survive() {
    let env = Arc::new(Env::start(6));
    env.sync();
    let incident = env
        .sims
        .graph
        .incidents()
        .into_iter()
        .find(|i| i.status == "active" && i.severity != "high")
        .expect("an active incident below high");
    let key = only_ticket(&env, JIRA_PAIR, &incident.id);
    env.sims.graph.set_severity(&incident.id, "high");
    // As the bridge writes the priority, an analyst starts work on the issue and
    // Jira refuses the bridge's edit.
    let analyst = env.clone();
    let analyst_key = key.clone();
    env.sims.jira.kit.inject(
        FaultRule::new(
            Some(Method::PUT),
            format!("{JIRA_ISSUE}/{key}"),
            Effect::Status {
                status: 409,
                retry_after: None,
                body: r#"{"errorMessages":["The issue was changed by someone else; reload it and try again."],"errors":{}}"#.into(),
            },
        )
        .hook(move || {
            analyst
                .sims
                .jira
                .transition_as_analyst(&analyst_key, "In Progress", None)
                .unwrap();
        }),
    );
    let seen = env.sims.jira.kit.request_count();
    env.sync();

    let log = &env.sims.jira.kit.requests()[seen..];
    let puts: Vec<u16> = log
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with(&format!("/{key}")))
        .map(|r| r.status)
        .collect();
    // The second edit answers with the issue (`returnIssue=true`): 200.
    assert_eq!(
        puts,
        [409, 200],
        "refused, then re-planned from fresh reads"
    );
    let issue = env.sims.jira.issue(&key).unwrap();
    assert_eq!(issue.priority, "Highest", "the incident's change arrived");
    assert_eq!(issue.status, "In Progress", "the analyst's change was kept");
    assert_eq!(
        env.sims.graph.incident(&incident.id).unwrap().status,
        "inProgress",
        "and reached the incident"
    );
    assert_converged(&env);
}

// ---------------------------------------------------------------------------------
// A persistent failure

#[test]
fn an_incident_whose_comment_always_500s_is_set_aside_and_the_rest_keeps_syncing() {
    let env = Env::start(6);
    let bad = open_defender(&env).into_iter().next().unwrap();
    let comments = format!("{GRAPH_LIST}/{bad}/comments");
    env.sims.graph.kit.inject(
        FaultRule::new(Some(Method::POST), comments.clone(), Effect::status(500))
            .when(Trigger::EveryNth(1)),
    );
    run_with_failures(&env);
    let text = stdout(&env.bridge(&["links", "--db", env.db_arg()]));
    assert!(text.contains("Failing") && text.contains(&bad), "{text}");
    let letter = dead_letters(&env).remove(0);
    assert_eq!(
        (letter["action"].as_str(), letter["attempts"].as_u64()),
        (Some("write_back"), Some(1))
    );
    let first_retry =
        chrono::DateTime::parse_from_rfc3339(letter["next_attempt"].as_str().unwrap()).unwrap();
    assert!(first_retry > chrono::Utc::now() + chrono::Duration::seconds(50));
    only_ticket(&env, JIRA_PAIR, &bad);

    // Meanwhile: a new incident and a change to another one sync; the failing one
    // is left alone until its retry is due, and the watermark moves past it.
    let other = open_defender(&env)
        .into_iter()
        .find(|id| *id != bad)
        .unwrap();
    env.sims.graph.set_severity(&other, "high");
    let new = env.sims.graph.seed_incident(
        connectors::graph::sim::SeedIncident::new("Raised while another one was failing")
            .severity("low"),
    );
    // As the poll will see it (the write-back bumps it afterwards).
    let newest = env.sims.graph.incident(&new).unwrap().updated;
    let posts = env.sims.graph.kit.request_count();
    // The run says what it leaves undone, and so exits 1.
    let out = run_with_failures(&env);
    let said = stderr(&out);
    assert!(
        said.contains("left undone") && said.contains(&format!("incident {bad}: write_back")),
        "{said}"
    );
    let log = &env.sims.graph.kit.requests()[posts..];
    assert_eq!(
        log.iter().filter(|r| r.path == comments).count(),
        0,
        "not due yet"
    );
    only_ticket(&env, JIRA_PAIR, &new);
    let issue = env
        .sims
        .jira
        .issue(&only_ticket(&env, JIRA_PAIR, &other))
        .unwrap();
    assert_eq!(issue.priority, "Highest");
    let mark = store(&env)
        .watermark(JIRA_PAIR, Side::Incidents)
        .unwrap()
        .unwrap();
    // The store keeps microseconds; the simulator stamps in 100 ns.
    assert!(
        mark.timestamp_micros() >= newest.timestamp_micros(),
        "the watermark {mark} moved up to {newest}"
    );

    // Due again and still failing: retried once, then set aside for longer.
    env.make_retry_due(JIRA_PAIR, &bad);
    run_with_failures(&env);
    let letter = dead_letters(&env).remove(0);
    assert_eq!(letter["attempts"].as_u64(), Some(2));
    let second_retry =
        chrono::DateTime::parse_from_rfc3339(letter["next_attempt"].as_str().unwrap()).unwrap();
    assert!(
        second_retry > chrono::Utc::now() + chrono::Duration::seconds(110),
        "the delay doubles: {second_retry}"
    );

    // Fixed on the remote side: the next due retry finishes it.
    env.sims.graph.kit.clear_faults();
    env.make_retry_due(JIRA_PAIR, &bad);
    let out = env.sync();
    assert!(stdout(&out).contains("1 recovered"), "{}", stdout(&out));
    let posts = env
        .sims
        .graph
        .kit
        .requests()
        .iter()
        .filter(|r| r.path == comments)
        .map(|r| r.status)
        .collect::<Vec<_>>();
    assert_eq!(
        posts,
        [500, 500, 200],
        "one POST per attempt, never repeated inline"
    );
    assert_converged(&env);
}

#[test]
fn an_idempotent_write_that_always_500s_is_tried_five_times_then_set_aside() {
    let env = Env::start(6);
    let bad = open_defender(&env).into_iter().next().unwrap();
    let path = format!("{GRAPH_LIST}/{bad}");
    env.sims.graph.kit.inject(
        FaultRule::new(Some(Method::PATCH), path.clone(), Effect::status(500))
            .when(Trigger::EveryNth(1)),
    );
    run_with_failures(&env);
    let patches = |env: &Env| {
        env.sims
            .graph
            .kit
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.path == path)
            .map(|r| r.status)
            .collect::<Vec<_>>()
    };
    assert_eq!(patches(&env), [500; 5], "the HTTP layer's five attempts");
    let letter = dead_letters(&env).remove(0);
    assert_eq!(letter["incident_id"], bad.as_str());
    assert_eq!(letter["action"], "write_back");
    assert!(
        letter["last_error"].as_str().unwrap().contains("500"),
        "{letter}"
    );
    let text = stdout(&env.bridge(&["links", "--db", env.db_arg()]));
    assert!(text.contains("Failing") && text.contains(&bad), "{text}");
    // Everything else is in step, and a run before the retry is due leaves the
    // failing incident alone.
    for id in open_defender(&env).iter().filter(|id| **id != bad) {
        let key = only_ticket(&env, JIRA_PAIR, id);
        let incident = env.sims.graph.incident(id).unwrap();
        assert!(incident.custom_tags.contains(&format!("ticket:{key}")));
    }
    only_ticket(&env, JIRA_PAIR, &bad);
    let out = run_with_failures(&env);
    assert!(stderr(&out).contains("left undone"), "{}", stderr(&out));
    assert_eq!(patches(&env).len(), 5, "not due yet");
    assert_success(&env.bridge(&["ledger", "verify", "--db", env.db_arg()]));
}

#[test]
fn a_due_retry_of_a_failed_write_back_writes_it_back() {
    let env = Env::start(6);
    let bad = open_defender(&env).into_iter().next().unwrap();
    // Refused outright (no retries inside the run): Graph applied nothing, so the
    // incident does not change.
    env.sims.graph.kit.inject(
        FaultRule::new(
            Some(Method::PATCH),
            format!("{GRAPH_LIST}/{bad}"),
            Effect::status(400),
        )
        .when(Trigger::EveryNth(1)),
    );
    run_with_failures(&env);
    assert_eq!(dead_letters(&env).len(), 1);
    env.sims.graph.kit.clear_faults();
    env.make_retry_due(JIRA_PAIR, &bad);
    env.sync();
    let key = only_ticket(&env, JIRA_PAIR, &bad);
    let tags = env.sims.graph.incident(&bad).unwrap().custom_tags;
    assert!(tags.contains(&format!("ticket:{key}")), "{tags:?}");
    assert_converged(&env);
}

// ---------------------------------------------------------------------------------
// Random faults from a seeded RNG

#[test]
fn seeded_random_server_errors_on_every_system_still_converge() {
    // Enough incidents that a one-in-ten fault fires a few times on every system.
    let env = Env::start_with(30, 15);
    let flaky = |method: Method, path: &str, status: u16, seed: u64| {
        FaultRule::new(Some(method), path, Effect::status(status))
            .when(Trigger::Probability { p: 0.1, seed })
    };
    let kits = [
        &env.sims.graph.kit,
        &env.sims.jira.kit,
        &env.sims.sentinel.kit,
        &env.sims.servicenow.kit,
        &env.sims.generic.kit,
    ];
    kits[0].inject(flaky(Method::GET, GRAPH_LIST, 502, 1));
    kits[0].inject(flaky(Method::PATCH, GRAPH_LIST, 503, 2));
    kits[1].inject(flaky(Method::POST, JIRA_SEARCH, 500, 3));
    kits[1].inject(flaky(Method::GET, JIRA_ISSUE, 504, 4));
    kits[2].inject(flaky(Method::GET, "/incidents", 500, 5));
    kits[3].inject(flaky(Method::GET, SNOW_TABLE, 502, 6));
    kits[4].inject(flaky(Method::GET, "/api/tickets", 503, 7));
    // Only reads and idempotent writes fail: the HTTP layer repeats them. A request
    // unlucky five times in a row would fail its incident (or the poll); that run
    // exits 1 and the clean run below picks it up.
    let first = run(&env);
    let faulted: Vec<Faulted> = kits
        .iter()
        .flat_map(|kit| faulted_then_repeated(&kit.requests()))
        .collect();
    assert!(faulted.len() >= 3, "the seeds fire on some requests");
    if first.status.success() {
        assert!(faulted.iter().all(|f| f.repeated), "{faulted:?}");
    }
    for kit in kits {
        kit.clear_faults();
    }
    for letter in dead_letters(&env) {
        let id = letter["incident_id"].as_str().unwrap();
        env.make_retry_due(letter["pair"].as_str().unwrap(), id);
    }
    env.sync();
    assert_converged(&env);
}
