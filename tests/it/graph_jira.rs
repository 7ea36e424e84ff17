//! Defender (Graph) incidents ⇄ Jira issues, end to end: the real binary against
//! the simulators. Each test reads as a situation an ops team would recognise.

use crate::common::{Env, assert_success, stderr, stdout};
use connectors::jira::adf::adf_to_text;
use connectors::sims::{
    ANALYSTS, ARM_CLIENT_SECRET, GENERIC_TOKEN, GRAPH_CLIENT_SECRET, JIRA_API_TOKEN,
    SERVICENOW_PASSWORD, TENANT_ID,
};

fn open_incident_ids(env: &Env) -> Vec<String> {
    env.sims
        .graph
        .incidents()
        .into_iter()
        .filter(|i| i.status != "resolved")
        .map(|i| i.id)
        .collect()
}

#[test]
fn a_backlog_larger_than_two_pages_gets_exactly_one_issue_per_open_incident() {
    let env = Env::start(120);
    env.sync();

    let open = open_incident_ids(&env);
    assert_eq!(open.len(), 108, "the seed resolves every tenth incident");
    let issues = env.sims.jira.issues();
    assert_eq!(
        issues.len(),
        open.len(),
        "one issue per open incident, none for resolved ones"
    );
    for id in &open {
        let label = format!("itsm-bridge:defender:{id}");
        let mine: Vec<_> = issues
            .iter()
            .filter(|i| i.labels.contains(&label))
            .collect();
        assert_eq!(mine.len(), 1, "incident {id} has exactly one issue");
        let issue = mine[0];
        let description = adf_to_text(issue.description.as_ref().expect("a description"));
        let url = format!("https://security.microsoft.com/incidents/{id}?tid={TENANT_ID}");
        assert!(
            description.contains(&url),
            "the issue links the incident: {description}"
        );

        let incident = env.sims.graph.incident(id).unwrap();
        let tag = format!("ticket:{}", issue.key);
        assert!(
            incident.custom_tags.contains(&tag),
            "{id} tags: {:?}",
            incident.custom_tags
        );
        assert!(
            incident
                .comments
                .iter()
                .any(|c| c.comment.contains(&issue.key) && c.comment.contains("/browse/")),
            "{id} carries a comment with the issue link"
        );
    }
    let list_pages = env
        .sims
        .graph
        .kit
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/v1.0/security/incidents")
        .count();
    assert!(
        list_pages >= 3,
        "120 incidents take 3 pages of 50, got {list_pages}"
    );

    let verify = env.bridge(&["ledger", "verify", "--db", env.db_arg()]);
    assert_success(&verify);
    assert!(stdout(&verify).contains("ledger intact"));
}

#[test]
fn a_run_with_nothing_changed_writes_nothing() {
    let env = Env::start(12);
    env.sync();
    let ledger_before = env.ledger_len();
    let seen = (
        env.sims.graph.kit.request_count(),
        env.sims.jira.kit.request_count(),
    );

    env.sync();

    let writes = |log: Vec<connectors::simkit::LoggedRequest>, from: usize| {
        log.into_iter()
            .skip(from)
            .filter(|r| r.method != "GET" && !r.path.ends_with("/search/jql"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        writes(env.sims.graph.kit.requests(), seen.0),
        Vec::<String>::new()
    );
    assert_eq!(
        writes(env.sims.jira.kit.requests(), seen.1),
        Vec::<String>::new()
    );
    assert_eq!(env.ledger_len(), ledger_before, "nothing new in the ledger");
}

#[test]
fn resolving_the_issue_in_jira_resolves_the_incident_with_a_classification() {
    let env = Env::start(4);
    env.sync();
    let id = open_incident_ids(&env)[0].clone();
    let key = env.ticket_of(&id).expect("the incident is linked");

    env.sims
        .jira
        .transition_as_analyst(&key, "Done", Some("Won't Do"))
        .unwrap();
    env.sync();

    let incident = env.sims.graph.incident(&id).unwrap();
    assert_eq!(incident.status, "resolved");
    assert_eq!(incident.classification.as_deref(), Some("falsePositive"));
    let list = env.bridge(&["ledger", "list", "--db", env.db_arg(), "--incident", &id]);
    assert!(
        stdout(&list).contains("update_incident"),
        "{}",
        stdout(&list)
    );

    // And back: the analyst reopens it; the incident becomes active again.
    env.sims
        .jira
        .transition_as_analyst(&key, "To Do", None)
        .unwrap();
    env.sync();
    let incident = env.sims.graph.incident(&id).unwrap();
    assert_eq!(incident.status, "active");
    assert_eq!(
        incident.classification.as_deref(),
        Some("falsePositive"),
        "a reopen keeps the verdict"
    );
}

#[test]
fn title_severity_status_and_assignee_changes_on_the_incident_flow_to_the_issue() {
    let env = Env::start(4);
    env.sync();
    let id = open_incident_ids(&env)[0].clone();
    let key = env.ticket_of(&id).unwrap();
    let analyst = ANALYSTS[2].0;

    env.sims
        .graph
        .set_title(&id, "Cobalt Strike beacon on WS-0311");
    env.sims.graph.set_severity(&id, "high");
    env.sims.graph.set_status(&id, "inProgress");
    env.sims.graph.assign(&id, analyst);
    env.sync();

    let issue = env.sims.jira.issue(&key).unwrap();
    assert_eq!(
        issue.summary,
        format!("[Defender #{id}] Cobalt Strike beacon on WS-0311")
    );
    assert_eq!(issue.priority, "Highest");
    assert_eq!(issue.status_category, "indeterminate");
    let assignee =
        env.sims.jira.issue_json(&key).unwrap()["fields"]["assignee"]["emailAddress"].clone();
    assert_eq!(assignee, analyst);

    // Resolved in Defender: the issue is closed with the verdict as its resolution.
    env.sims.graph.update_as_defender(&id, |i| {
        i.status = "resolved".into();
        i.classification = Some("falsePositive".into());
    });
    env.sync();
    let issue = env.sims.jira.issue(&key).unwrap();
    assert_eq!(issue.status_category, "done");
    assert_eq!(issue.resolution.as_deref(), Some("Won't Do"));
}

#[test]
fn a_dry_run_plans_but_writes_nothing() {
    let env = Env::start(5);
    let out = env.bridge(&["run", "--dry-run", "--config", env.config.to_str().unwrap()]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("(dry run) create_ticket"),
        "{}",
        stdout(&out)
    );
    assert!(env.sims.jira.issues().is_empty());
    assert!(!env.db.exists(), "a dry run creates no database");
}

#[test]
fn links_show_the_mapping_table() {
    let env = Env::start(3);
    env.sync();
    let out = env.bridge(&["links", "--db", env.db_arg()]);
    assert_success(&out);
    let text = stdout(&out);
    for issue in env.sims.jira.issues() {
        assert!(text.contains(&issue.key), "{text}");
    }
    assert!(text.contains("3 link(s)"), "{text}");
}

#[test]
fn an_altered_ledger_row_fails_verification() {
    let env = Env::start(3);
    env.sync();
    assert_success(&env.bridge(&["ledger", "verify", "--db", env.db_arg()]));

    let conn = rusqlite::Connection::open(&env.db).unwrap();
    conn.execute_batch(
        "DROP TRIGGER ledger_no_update; UPDATE ledger SET detail = 'nothing to see' WHERE seq = 2;",
    )
    .unwrap();
    drop(conn);

    let out = env.bridge(&["ledger", "verify", "--db", env.db_arg()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("BROKEN at entry 2"),
        "{}",
        stdout(&out)
    );
}

const SECRETS: [&str; 5] = [
    GRAPH_CLIENT_SECRET,
    ARM_CLIENT_SECRET,
    JIRA_API_TOKEN,
    SERVICENOW_PASSWORD,
    GENERIC_TOKEN,
];

#[test]
fn secrets_never_reach_the_output_even_at_trace_level() {
    let env = Env::start_with(3, 3);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_itsm-bridge"))
        .args(["run", "--once", "--config", env.config.to_str().unwrap()])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert_success(&out);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(all.len() > 1000, "trace logging produced output");
    for secret in SECRETS {
        assert!(!all.contains(secret), "a secret leaked into the output");
    }
    let db = std::fs::read(&env.db).unwrap();
    for secret in SECRETS {
        assert!(
            !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a secret leaked into the database"
        );
    }
}

#[test]
fn the_daemon_syncs_on_start_and_stops_cleanly_on_sigterm() {
    let env = Env::start(6);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_itsm-bridge"))
        .args(["run", "--config", env.config.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let open = open_incident_ids(&env).len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while env.sims.jira.issues().len() < open && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let synced = env.sims.jira.issues().len();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(synced, open, "the first cycle runs at start");
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean stop");
}

#[test]
fn an_incident_that_always_fails_is_set_aside_while_the_others_sync() {
    let env = Env::start(6);
    let bad = open_incident_ids(&env)[0].clone();
    env.sims.graph.kit.inject(connectors::simkit::Fault {
        method: Some(axum::http::Method::PATCH),
        path_contains: format!("/security/incidents/{bad}"),
        times: 1000,
        status: 400,
        retry_after: None,
        body: r#"{"error":{"code":"BadRequest","message":"Invalid property value."}}"#.into(),
    });

    let out = env.bridge(&["run", "--once", "--config", env.config.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed action makes --once exit 1"
    );
    for id in open_incident_ids(&env).iter().filter(|id| **id != bad) {
        let tags = env.sims.graph.incident(id).unwrap().custom_tags;
        assert!(
            tags.iter().any(|t| t.starts_with("ticket:")),
            "{id} was written back"
        );
    }
    let links = env.bridge(&["links", "--db", env.db_arg()]);
    let text = stdout(&links);
    assert!(text.contains("Failing"), "{text}");
    assert!(
        text.contains(&bad)
            && text.contains("write_back")
            && text.contains("Invalid property value"),
        "{text}"
    );

    // The next run does not hammer it again before its delay, and the rest is
    // quiet; it says what it leaves undone, and so exits 1.
    let patches = |env: &Env| {
        env.sims
            .graph
            .kit
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.path.ends_with(&format!("/{bad}")))
            .count()
    };
    let before = patches(&env);
    let out = env.bridge(&["run", "--once", "--config", env.config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let said = stderr(&out);
    assert!(
        said.contains("left undone") && said.contains(&format!("incident {bad}: write_back")),
        "{said}"
    );
    assert!(
        stdout(&out).contains("nothing to write"),
        "{}",
        stdout(&out)
    );
    assert_eq!(patches(&env), before, "not retried before its delay");
}

#[test]
fn defender_merging_two_incidents_closes_one_issue_and_points_it_at_the_other() {
    let env = Env::start(6);
    env.sync();
    let open = open_incident_ids(&env);
    let (source, target) = (open[0].clone(), open[1].clone());
    let (source_key, target_key) = (
        env.ticket_of(&source).unwrap(),
        env.ticket_of(&target).unwrap(),
    );

    assert!(env.sims.graph.redirect(&source, &target));
    env.sync();

    let closed = env.sims.jira.issue(&source_key).unwrap();
    assert_eq!(closed.status_category, "done");
    assert_eq!(closed.resolution.as_deref(), Some("Duplicate"));
    let comments = |key: &str| -> Vec<String> {
        let issue = env.sims.jira.issue_json(key).unwrap();
        issue["fields"]["comment"]["comments"]
            .as_array()
            .map(|cs| cs.iter().map(|c| adf_to_text(&c["body"])).collect())
            .unwrap_or_default()
    };
    assert!(
        comments(&source_key)
            .iter()
            .any(|c| c.contains(&target_key)),
        "{:?}",
        comments(&source_key)
    );
    assert!(
        comments(&target_key)
            .iter()
            .any(|c| c.contains(&source_key)),
        "{:?}",
        comments(&target_key)
    );
    let links = env.links();
    let merged = links
        .iter()
        .find(|l| l["incident_id"] == source.as_str())
        .unwrap();
    assert_eq!(merged["state"], "merged");
    assert_eq!(merged["merged_into"], target.as_str());
    // The bridge never tries to set `redirected` itself, and nothing more happens.
    let seen = env.sims.graph.kit.request_count();
    env.sync();
    assert!(
        env.sims.graph.kit.requests()[seen..]
            .iter()
            .all(|r| r.method == "GET")
    );
}

#[test]
fn a_merge_raises_the_surviving_issues_priority_when_the_mapping_asks() {
    let env = Env::start(6);
    let mapping = env.dir.path().join("jira.toml");
    let text = std::fs::read_to_string(&mapping).unwrap();
    std::fs::write(
        &mapping,
        text.replace(
            "policy = \"close_as_duplicate\"",
            "policy = \"close_as_duplicate\"\nraise_priority = true",
        ),
    )
    .unwrap();
    let open = open_incident_ids(&env);
    let (source, target) = (open[0].clone(), open[1].clone());
    env.sims.graph.set_severity(&source, "high");
    env.sims.graph.set_severity(&target, "low");
    env.sync();
    let target_key = env.ticket_of(&target).unwrap();
    assert_eq!(env.sims.jira.issue(&target_key).unwrap().priority, "Medium");

    // The high-severity incident is merged into the low one: its issue carries on
    // at the merged incident's priority.
    assert!(env.sims.graph.redirect(&source, &target));
    env.sync();
    assert_eq!(
        env.sims.jira.issue(&target_key).unwrap().priority,
        "Highest"
    );

    // The raise holds: later work on the survivor goes across without undoing it.
    env.sims.graph.set_status(&target, "inProgress");
    env.sync();
    let issue = env.sims.jira.issue(&target_key).unwrap();
    assert_eq!(issue.status_category, "indeterminate");
    assert_eq!(issue.priority, "Highest");
    // Until Defender changes the survivor's own severity: then the mapping speaks.
    env.sims.graph.set_severity(&target, "medium");
    env.sync();
    assert_eq!(env.sims.jira.issue(&target_key).unwrap().priority, "High");
}

#[test]
fn secrets_never_reach_the_demo_or_a_failing_run_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let demo = std::process::Command::new(env!("CARGO_BIN_EXE_itsm-bridge"))
        .args(["demo", "--db", db.to_str().unwrap()])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert_success(&demo);
    let mut seen = format!("{}{}", stdout(&demo), stderr(&demo));

    // A run whose Jira token is refused: the errors it prints carry no secret either.
    let env = Env::start(3);
    let token = env.dir.path().join("secrets/jira-api-token");
    std::fs::write(&token, "a-wrong-token-that-is-also-secret").unwrap();
    let failing = std::process::Command::new(env!("CARGO_BIN_EXE_itsm-bridge"))
        .args(["run", "--once", "--config", env.config.to_str().unwrap()])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert_eq!(failing.status.code(), Some(1), "{}", stderr(&failing));
    assert!(
        stderr(&failing).contains("401")
            || stdout(&failing).contains("401")
            || stderr(&failing).contains("Auth"),
        "{}",
        stderr(&failing)
    );
    seen.push_str(&stdout(&failing));
    seen.push_str(&stderr(&failing));

    let mut files: Vec<Vec<u8>> = vec![std::fs::read(&db).unwrap()];
    if let Ok(wal) = std::fs::read(format!("{}-wal", db.display())) {
        files.push(wal);
    }
    files.push(std::fs::read(&env.db).unwrap_or_default());
    for secret in SECRETS
        .iter()
        .copied()
        .chain(["a-wrong-token-that-is-also-secret"])
    {
        assert!(!seen.contains(secret), "a secret leaked into the output");
        for file in &files {
            assert!(
                !file.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a secret leaked into a database"
            );
        }
    }
}
