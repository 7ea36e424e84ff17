//! The `[server]` endpoints of the real daemon: `run` with `listen` on port 0
//! against the simulators, the address found in its log, then `/healthz`,
//! `/livez`, `/metrics` and the dashboard read over plain HTTP, and a clean stop
//! on SIGTERM. Also: a port already taken is a startup error naming it.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{Env, stderr};
use crate::daemon::{Daemon, PATIENCE, get, with_listen};

/// The value of one sample line (`name{labels} value`) of a text exposition.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a sample value is a number"))
}

/// Every secret the simulators' config points at.
fn secrets(env: &Env) -> Vec<String> {
    std::fs::read_dir(env.dir.path().join("secrets"))
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn the_daemon_serves_health_metrics_and_the_dashboard_while_it_syncs() {
    let env = Env::start(6);
    with_listen(&env, "127.0.0.1:0");
    let mut daemon = Daemon::start(&env);
    let address = daemon.address();
    assert_ne!(address.port(), 0, "port 0 picks a free port");

    // The first cycle runs at start; poll until its creates are counted.
    let created = r#"itsm_bridge_writes_total{pair="defender->jira",kind="tickets_created"}"#;
    let deadline = Instant::now() + PATIENCE;
    let metrics = loop {
        let (code, head, body) = get(address, "/metrics");
        assert_eq!(code, 200, "{body}");
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
        if sample(&body, created).is_some_and(|n| n > 0.0) {
            break body;
        }
        assert!(Instant::now() < deadline, "no ticket counted:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let tickets = env.sims.jira.issues().len() as f64;
    assert!(tickets > 0.0);
    assert_eq!(sample(&metrics, created), Some(tickets), "{metrics}");
    let runs = r#"itsm_bridge_runs_total{pair="defender->jira",kind="cycle"}"#;
    assert!(
        sample(&metrics, runs).is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    let active = r#"itsm_bridge_links{pair="defender->jira",state="active"}"#;
    assert_eq!(sample(&metrics, active), Some(tickets), "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            r#"itsm_bridge_dead_letters{pair="defender->jira"}"#
        ),
        Some(0.0)
    );
    assert!(sample(&metrics, "itsm_bridge_ledger_entries").is_some_and(|n| n >= tickets));
    assert!(metrics.contains("# TYPE itsm_bridge_writes_total counter\n"));

    let (code, head, body) = get(address, "/healthz");
    assert_eq!(code, 200, "{body}");
    assert!(
        head.to_ascii_lowercase().contains("application/json"),
        "{head}"
    );
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    let pairs = health["pairs"].as_array().unwrap();
    let names: Vec<&str> = pairs.iter().map(|p| p["pair"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "defender->jira",
            "sentinel->servicenow",
            "sentinel->helpdesk"
        ]
    );
    let jira = &pairs[0];
    assert_eq!(jira["ok"], true);
    assert!(jira["last_run"].is_string(), "{jira}");
    assert_eq!(jira["consecutive_failures"], 0);
    assert_eq!(jira["dead_letters"], 0);

    assert_eq!(get(address, "/livez").0, 200);

    let (code, head, page) = get(address, "/");
    assert_eq!(code, 200);
    assert!(head.contains("text/html"), "{head}");
    assert!(page.contains(">defender-&gt;jira</a></td>"), "{page}");
    assert!(
        page.contains("create_ticket"),
        "the newest ledger entries: {page}"
    );
    assert!(!page.contains("<script"));
    // The other pages: each a page of its own, none with a secret either.
    let mut pages = vec![page];
    for path in [
        "/links",
        "/links?state=open&q=1",
        "/ledger",
        "/dead-letters",
    ] {
        let (code, _, page) = get(address, path);
        assert_eq!(code, 200, "{path}: {page}");
        pages.push(page);
    }

    for secret in secrets(&env) {
        let named = pages.iter().map(|p| ("dashboard", p));
        for (what, text) in [("metrics", &metrics), ("health", &body)]
            .into_iter()
            .chain(named)
        {
            assert!(!text.contains(&secret), "a secret in the {what}");
        }
    }

    assert_eq!(daemon.terminate(), Some(0), "SIGTERM is a clean stop");
    assert!(
        TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err(),
        "the server stopped with the daemon"
    );
}

#[test]
fn a_listen_address_in_use_is_a_startup_error_naming_it() {
    let env = Env::start(0);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    with_listen(&env, &address.to_string());
    let out = env.bridge(&["run", "--config", env.config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains(&format!("cannot listen on {address}")),
        "{text}"
    );
}
