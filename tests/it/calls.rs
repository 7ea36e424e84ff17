//! The API calls a sync costs, counted from the simulators' request logs: each
//! remote API's quota is shared with the analysts' own tools, so a change that
//! adds a call per incident must show here. Counts, never times.

use connectors::simkit::LoggedRequest;

use crate::common::Env;

/// The simulators with the two pairs measured here only (`sentinel->helpdesk`,
/// the last `[[sync]]` of the simulators' config, would read Sentinel too).
fn env(defender: usize, sentinel: usize) -> Env {
    let env = Env::start_with(defender, sentinel);
    let text = std::fs::read_to_string(&env.config).unwrap();
    let last = text.rfind("[[sync]]").unwrap();
    assert!(text[last..].contains("tickets = \"helpdesk\""), "{text}");
    std::fs::write(&env.config, &text[..last]).unwrap();
    env
}

/// A request for one record (its id in the path), not a listing page.
fn per_record(r: &LoggedRequest, method: &str, suffix: &str) -> bool {
    r.method == method
        && r.path.ends_with(suffix)
        && r.query.as_deref().is_none_or(|q| !q.contains("filter"))
}

fn count(log: &[LoggedRequest], f: impl Fn(&LoggedRequest) -> bool) -> usize {
    log.iter().filter(|r| f(r)).count()
}

/// The path with its last segment dropped ends in `parent`: `…/incidents/{id}`.
fn under(r: &LoggedRequest, parent: &str) -> bool {
    r.path
        .rsplit_once('/')
        .is_some_and(|(head, _)| head.ends_with(parent))
}

fn linked(env: &Env, pair: &str) -> usize {
    env.links().iter().filter(|l| l["pair"] == pair).count()
}

#[test]
fn a_first_defender_sync_writes_each_incident_twice_and_reads_none_of_them_again() {
    let env = env(40, 0);
    env.sims.graph.kit.clear_log();
    env.sims.jira.kit.clear_log();
    env.sync();
    let n = linked(&env, "defender->jira");
    assert_eq!(n, 36, "every open incident of the seed has an issue");

    let graph = env.sims.graph.kit.requests();
    let gets = count(&graph, |r| {
        r.method == "GET" && under(r, "/security/incidents")
    });
    let patches = count(&graph, |r| r.method == "PATCH");
    let comments = count(&graph, |r| {
        r.method == "POST" && r.path.ends_with("/comments")
    });
    let listings = count(&graph, |r| {
        r.method == "GET" && r.path.ends_with("/security/incidents")
    });
    assert_eq!(
        (gets, patches, comments),
        (0, n, n),
        "Graph: one PATCH (the ticket's tag, merged into the listed tags) and one link \
         comment per incident, no GET of an incident the listing returned: {graph:#?}"
    );
    assert!(listings <= 2, "{listings} listing pages");

    let jira = env.sims.jira.kit.requests();
    let creates = count(&jira, |r| {
        r.method == "POST" && r.path.ends_with("/rest/api/3/issue")
    });
    let searches = count(&jira, |r| r.path.ends_with("/search/jql"));
    assert_eq!(creates, n, "one create per incident");
    assert!(
        searches <= 2,
        "a fresh create never searches first; {searches} searches (the poll's pages only)"
    );
    // No issue is read back after its create (but the first a client makes,
    // read once to learn the workflow's initial status). Of the 36, 8 start in
    // progress: the first is moved by a transition of its own (the transitions
    // out of To Do are looked up then, once, and it is read after the move,
    // which a lagging index could otherwise show undone); the other 7 take the
    // kept transition inside their create, and no index ever lists them in To
    // Do, so they are not read.
    let issue_gets = count(&jira, |r| {
        per_record(r, "GET", "") && under(r, "/rest/api/3/issue")
    });
    let transitions_read = count(&jira, |r| per_record(r, "GET", "/transitions"));
    let transitions = count(&jira, |r| per_record(r, "POST", "/transitions"));
    assert_eq!(
        (issue_gets, transitions_read, transitions),
        (1 + 1, 1, 1),
        "Jira reads per issue: {jira:#?}"
    );
    let moved: Vec<_> = env.sims.jira.posted_transitions();
    assert_eq!(
        moved.len(),
        8,
        "every issue that starts in progress is moved"
    );
    assert!(moved.iter().all(|t| t.to == "In Progress"), "{moved:#?}");
}

/// Jira requests for one issue or its comments (not the search, not users).
fn jira_record_reads(jira: &[LoggedRequest]) -> usize {
    count(jira, |r| {
        r.method == "GET" && r.path.contains("/rest/api/3/issue/")
    })
}

#[test]
fn the_cycle_after_a_defender_first_sync_does_not_read_back_the_bridges_own_writes() {
    let env = env(40, 0);
    env.sync();
    env.sims.graph.kit.clear_log();
    env.sims.jira.kit.clear_log();
    env.sync();
    let graph = env.sims.graph.kit.requests();
    let jira = env.sims.jira.kit.requests();
    let graph_reads = count(&graph, |r| {
        r.method == "GET" && under(r, "/security/incidents")
    });
    assert_eq!(
        graph_reads, 0,
        "the write-back's answer is the incident's version after the bridge's own \
         writes, and the listing has the comments: {graph:#?}"
    );
    assert_eq!(
        jira_record_reads(&jira),
        0,
        "the issues were not read back after their create: their listing (fields \
         and comments) is compared with the baseline instead: {jira:#?}"
    );
    let writes = count(&graph, |r| r.method != "GET")
        + count(&jira, |r| {
            r.method != "GET" && !r.path.ends_with("/search/jql")
        });
    assert_eq!(writes, 0, "nothing to write: {graph:#?} {jira:#?}");
}

#[test]
fn an_analysts_edit_and_comment_right_after_the_bridges_create_reach_defender_unread() {
    let env = env(3, 0);
    env.sync();
    // Not the first issue of the run (that one is read once, to learn the
    // workflow's initial status): the bridge never read this one back.
    let id = env.active_defender()[1].clone();
    let key = env.ticket_in(Some("defender->jira"), &id).unwrap();
    // An analyst resolves it and comments in the millisecond after the
    // bridge's last write to it: the same second.
    let at = env.sims.jira.issue(&key).unwrap().updated + chrono::Duration::milliseconds(1);
    env.sims
        .jira
        .transition_as_analyst(&key, "Done", Some("Won't Do"))
        .unwrap();
    env.sims
        .jira
        .comment_as_analyst(&key, "Bob Analyst", "false alarm, closing")
        .unwrap();
    env.sims.jira.backdate(&key, at).unwrap();
    env.sims.jira.kit.clear_log();
    env.sync();

    let incident = env.sims.graph.incident(&id).unwrap();
    assert_eq!(incident.status, "resolved");
    assert_eq!(incident.classification.as_deref(), Some("falsePositive"));
    assert!(
        incident
            .comments
            .iter()
            .any(|c| c.comment.contains("false alarm, closing")),
        "{:#?}",
        incident.comments
    );
    let jira = env.sims.jira.kit.requests();
    assert_eq!(
        jira_record_reads(&jira),
        0,
        "the listing had the fields and the comments: {jira:#?}"
    );
}

#[test]
fn a_first_sentinel_sync_puts_each_incident_once_without_reading_it_and_never_searches() {
    let env = env(0, 30);
    env.sims.sentinel.kit.clear_log();
    env.sims.servicenow.kit.clear_log();
    env.sync();
    let n = linked(&env, "sentinel->servicenow");
    assert!(n >= 25, "{n} linked");

    let arm = env.sims.sentinel.kit.requests();
    let incident_gets = count(&arm, |r| r.method == "GET" && under(r, "/incidents"));
    let comment_lists = count(&arm, |r| r.method == "GET" && r.path.ends_with("/comments"));
    let puts = count(&arm, |r| r.method == "PUT" && under(r, "/incidents"));
    let comment_puts = count(&arm, |r| r.method == "PUT" && under(r, "/comments"));
    assert_eq!(
        (incident_gets, comment_lists, puts, comment_puts),
        (0, 0, n, n),
        "Sentinel: the PUT with the listed etag and the link comment, nothing read \
         (the listing counted no comments): {arm:#?}"
    );

    let snow = env.sims.servicenow.kit.requests();
    let creates = count(&snow, |r| {
        r.method == "POST" && r.path.ends_with("/table/incident")
    });
    let correlation = count(&snow, |r| {
        r.method == "GET"
            && r.query
                .as_deref()
                .is_some_and(|q| q.contains("sysparm_query=correlation_id"))
    });
    assert_eq!(
        (creates, correlation),
        (n, 0),
        "ServiceNow: the create, and no correlation lookup before it: {snow:#?}"
    );
}

#[test]
fn an_analyst_moving_issues_costs_defender_one_patch_each_and_no_read() {
    let env = env(20, 0);
    env.sync();
    let moved: Vec<String> = env
        .links()
        .iter()
        .filter(|l| l["pair"] == "defender->jira")
        .map(|l| l["ticket_key"].as_str().unwrap().to_string())
        .filter(|key| env.sims.jira.issue(key).unwrap().status == "To Do")
        .take(3)
        .collect();
    assert_eq!(moved.len(), 3);
    for key in &moved {
        env.sims
            .jira
            .transition_as_analyst(key, "In Progress", None)
            .unwrap();
    }
    env.sims.graph.kit.clear_log();
    env.sync();
    let graph = env.sims.graph.kit.requests();
    let reads = count(&graph, |r| {
        r.method == "GET" && under(r, "/security/incidents")
    });
    let patches = count(&graph, |r| r.method == "PATCH");
    assert_eq!(
        (reads, patches),
        (0, 3),
        "one PATCH per moved issue; its answer has the comments: {graph:#?}"
    );
}

#[test]
fn the_cycle_after_a_sentinel_first_sync_reads_no_incident_no_comment_and_no_ticket_back() {
    let env = env(0, 30);
    env.sync();
    assert!(linked(&env, "sentinel->servicenow") >= 25);
    env.sims.sentinel.kit.clear_log();
    env.sims.servicenow.kit.clear_log();
    env.sync();
    let arm = env.sims.sentinel.kit.requests();
    let snow = env.sims.servicenow.kit.requests();
    // The listing of each side is all: the link comment moved each incident's
    // time and etag, and the comment's answer said when, so the bridge knows
    // that version for its own.
    let arm_reads = count(&arm, |r| {
        r.method == "GET" && (under(r, "/incidents") || r.path.ends_with("/comments"))
    });
    let snow_reads = count(&snow, |r| {
        r.method == "GET"
            && !r
                .query
                .as_deref()
                .is_some_and(|q| q.contains("sysparm_query=sys_updated_on"))
    });
    assert_eq!(
        (arm_reads, snow_reads),
        (0, 0),
        "no per-record read after the bridge's own writes: {arm:#?} {snow:#?}"
    );
    let writes = count(&arm, |r| r.method != "GET") + count(&snow, |r| r.method != "GET");
    assert_eq!(writes, 0, "nothing to write: {arm:#?} {snow:#?}");
}

#[test]
fn a_defender_field_change_costs_jira_one_edit_per_issue_and_no_read() {
    let env = env(20, 0);
    env.sync();
    env.sync();
    let changed: Vec<String> = env
        .sims
        .graph
        .incidents()
        .into_iter()
        .filter(|i| i.status == "active" && i.severity != "high")
        .map(|i| i.id)
        .filter(|id| env.ticket_in(Some("defender->jira"), id).is_some())
        .take(3)
        .collect();
    assert_eq!(changed.len(), 3);
    for id in &changed {
        assert!(env.sims.graph.set_severity(id, "high"));
    }
    env.sims.jira.kit.clear_log();
    env.sync();
    let jira = env.sims.jira.kit.requests();
    let edits = count(&jira, |r| {
        per_record(r, "PUT", "") && under(r, "/rest/api/3/issue")
    });
    let reads = count(&jira, |r| {
        per_record(r, "GET", "") && under(r, "/rest/api/3/issue")
    });
    let comment_reads = count(&jira, |r| per_record(r, "GET", "/comment"));
    // The edit answers with the issue (`returnIssue=true`): that is the version
    // the link holds, which a lagging index's listing of the issue before the
    // edit is older than, and its comments serve the comment sync. No read.
    assert_eq!(
        (edits, reads, comment_reads),
        (3, 0, 0),
        "Jira per changed incident: {jira:#?}"
    );
    assert!(
        jira.iter()
            .filter(|r| r.method == "PUT")
            .all(|r| r.query.as_deref() == Some("returnIssue=true&expand=changelog")),
        "{jira:#?}"
    );

    // The next cycle recognises the edit from its answer: nothing flows back.
    env.sims.graph.kit.clear_log();
    env.sims.jira.kit.clear_log();
    env.sync();
    let graph = env.sims.graph.kit.requests();
    let jira = env.sims.jira.kit.requests();
    let writes = count(&graph, |r| r.method != "GET") + count(&jira, |r| r.method == "PUT");
    assert_eq!(writes, 0, "nothing to write back: {graph:#?} {jira:#?}");
}

#[test]
fn a_servicenow_field_change_reads_only_the_journal_of_each_ticket() {
    let env = env(0, 30);
    env.sync();
    env.sync();
    let numbers: Vec<String> = env
        .links()
        .iter()
        .filter(|l| l["pair"] == "sentinel->servicenow")
        .map(|l| l["ticket_key"].as_str().unwrap().to_string())
        .filter(|n| env.sims.servicenow.incident(n).unwrap()["state"] == "1")
        .take(3)
        .collect();
    assert_eq!(numbers.len(), 3);
    for number in &numbers {
        env.sims
            .servicenow
            .update_as_analyst(number, |r| {
                r.insert("state".into(), "2".into());
            })
            .unwrap();
    }
    env.sims.servicenow.kit.clear_log();
    env.sync();
    let snow = env.sims.servicenow.kit.requests();
    let journal = count(&snow, |r| {
        r.method == "GET" && r.path.ends_with("/table/sys_journal_field")
    });
    let by_number = count(&snow, |r| {
        r.method == "GET"
            && r.query
                .as_deref()
                .is_some_and(|q| q.contains("sysparm_query=number"))
    });
    assert_eq!(
        (journal, by_number),
        (3, 0),
        "the listing named each ticket's sys_id: its journal is all the comment \
         sync reads: {snow:#?}"
    );
}

#[test]
fn a_quiet_cycle_costs_each_side_its_listing_and_nothing_else() {
    let env = env(20, 20);
    env.sync();
    env.sync();
    let kits = [
        ("graph", &env.sims.graph.kit),
        ("jira", &env.sims.jira.kit),
        ("sentinel", &env.sims.sentinel.kit),
        ("servicenow", &env.sims.servicenow.kit),
    ];
    for (_, kit) in &kits {
        kit.clear_log();
    }
    env.sync();
    for (name, kit) in &kits {
        // Jira's account time zone is looked at once per process, and each
        // `sync` here is a process of its own (a daemon asks once).
        let log: Vec<LoggedRequest> = kit
            .requests()
            .into_iter()
            .filter(|r| !r.path.ends_with("/rest/api/3/myself"))
            .collect();
        let listings = count(&log, |r| {
            (r.method == "GET"
                && (r.path.ends_with("/security/incidents")
                    || r.path.ends_with("/incidents")
                    || r.path.ends_with("/table/incident")))
                || r.path.ends_with("/search/jql")
        });
        assert_eq!(
            (log.len(), listings),
            (1, 1),
            "{name}: one listing page, no read, no write: {log:#?}"
        );
    }
}

#[test]
fn a_sentinel_field_change_costs_servicenow_one_patch_and_one_journal_read_per_ticket() {
    let env = env(0, 30);
    env.sync();
    env.sync();
    let changed: Vec<String> = env
        .sims
        .sentinel
        .incidents()
        .into_iter()
        .filter(|i| i.status == "New" && i.severity != "High")
        .map(|i| i.name)
        .filter(|name| env.ticket_in(Some("sentinel->servicenow"), name).is_some())
        .take(3)
        .collect();
    assert_eq!(changed.len(), 3);
    for name in &changed {
        assert!(env.sims.sentinel.set_severity(name, "High"));
    }
    env.sims.servicenow.kit.clear_log();
    env.sync();
    let snow = env.sims.servicenow.kit.requests();
    let patches = count(&snow, |r| r.method == "PATCH");
    let journal = count(&snow, |r| {
        r.method == "GET" && r.path.ends_with("/table/sys_journal_field")
    });
    let record_reads = count(&snow, |r| r.method == "GET" && under(r, "/table/incident"));
    // The journal read serves the comment sync: a PATCH answers the record,
    // not its journal, and a comment made between the listing and the write
    // would otherwise be passed over once the write's sys_mod_count is held.
    assert_eq!(
        (patches, journal, record_reads),
        (3, 3, 0),
        "ServiceNow per changed incident: {snow:#?}"
    );
}
