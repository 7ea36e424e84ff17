//! A mapping edit on a running daemon, as `mapping impact` foretells it: on a
//! store of 1,000 links, an edit over `[mapping] max_rewrites` is held (the
//! log, `/healthz` and the dashboard say so, and nothing is rewritten) until
//! `mapping accept`; then the daemon rewrites exactly the tickets the impact
//! counted. A template edit under the threshold applies at once, to exactly
//! the tickets its impact counted.

use std::net::SocketAddr;

use serde_json::Value;

use crate::common::{Env, assert_success, stdout};
use crate::daemon::{Daemon, eventually, get, with_listen};

const LINKS: usize = 1_000;
/// About one Defender incident in ten is seeded closed and gets no ticket.
const INCIDENTS: usize = 1_120;

fn edit_file(env: &Env, file: &str, from: &str, to: &str) {
    let path = env.dir.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} in {file}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// `mapping impact --json` of the edited jira.toml on the Defender pair.
fn impact(env: &Env, mapping: &std::path::Path) -> Value {
    let out = env.bridge(&[
        "mapping",
        "impact",
        "--config",
        env.config.to_str().unwrap(),
        "--mapping",
        mapping.to_str().unwrap(),
        "--pair",
        "defender->jira",
        "--json",
    ]);
    assert_success(&out);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    report[0].clone()
}

fn issues_where(env: &Env, f: impl Fn(&connectors::jira::sim::SimIssue) -> bool) -> usize {
    env.sims.jira.issues().iter().filter(|i| f(i)).count()
}

fn health(address: SocketAddr) -> (u16, Value) {
    let (code, _, body) = get(address, "/healthz");
    (code, serde_json::from_str(&body).unwrap())
}

#[test]
fn an_edit_over_max_rewrites_waits_for_accept_then_rewrites_what_impact_counted() {
    let env = Env::start(INCIDENTS);
    env.sync();
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        format!("{text}\n[mapping]\nmax_rewrites = 50\n"),
    )
    .unwrap();
    with_listen(&env, "127.0.0.1:0");

    // What the edit will do, foretold from the store with no remote call.
    let staged = env.dir.path().join("jira-staged.toml");
    let shipped = std::fs::read_to_string(env.dir.path().join("jira.toml")).unwrap();
    std::fs::write(
        &staged,
        shipped.replacen("high = \"Highest\"", "high = \"High\"", 1),
    )
    .unwrap();
    let foretold = impact(&env, &staged);
    let rewrites = foretold["ticket_writes"].as_u64().unwrap() as usize;
    assert!(rewrites > 50, "{foretold}");
    let followed = foretold["links"].as_u64().unwrap() + foretold["left_alone"].as_u64().unwrap();
    assert!(
        followed >= LINKS as u64,
        "a store of {LINKS} links: {foretold}"
    );

    let mut daemon = Daemon::start(&env);
    let address = daemon.address();
    let highest = issues_where(&env, |i| i.priority == "Highest");
    let high = issues_where(&env, |i| i.priority == "High");
    edit_file(&env, "jira.toml", "high = \"Highest\"", "high = \"High\"");
    let held = daemon.wait_for_log("mapping edit held: the mapping edit would rewrite");
    assert!(
        held.contains(&format!("rewrite {rewrites} record(s)")),
        "{held}"
    );
    let (code, body) = eventually("held on /healthz", || {
        let (code, body) = health(address);
        (body["status"] == "mapping edit held").then_some((code, body))
    });
    assert_eq!(code, 503, "{body}");
    let (_, _, page) = get(address, "/");
    assert!(page.contains("mapping edit held"), "{page}");
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        issues_where(&env, |i| i.priority == "High"),
        high,
        "nothing applied"
    );
    assert_eq!(issues_where(&env, |i| i.priority == "Highest"), highest);

    let out = env.bridge(&[
        "mapping",
        "accept",
        "--config",
        env.config.to_str().unwrap(),
    ]);
    assert_success(&out);
    daemon.wait_for_log("reload done");
    eventually("the accepted edit's rewrites", || {
        let n = issues_where(&env, |i| i.priority == "High");
        (n == high + rewrites).then_some(())
    });
    assert_eq!(
        issues_where(&env, |i| i.priority == "Highest"),
        highest - rewrites,
        "what impact counted is what was written"
    );
    assert_eq!(health(address).0, 200);

    // A template edit under the threshold applies at once.
    std::fs::write(
        &env.config,
        std::fs::read_to_string(&env.config).unwrap().replace(
            "max_rewrites = 50",
            &format!("max_rewrites = {}", 2 * LINKS),
        ),
    )
    .unwrap();
    daemon.wait_for_log("reload done");
    let shipped = std::fs::read_to_string(env.dir.path().join("jira.toml")).unwrap();
    let (from, to) = (
        "\"[Defender #{incident.display_id}] {incident.title}\"",
        "\"SOC {incident.display_id}: {incident.title}\"",
    );
    std::fs::write(&staged, shipped.replacen(from, to, 1)).unwrap();
    let foretold = impact(&env, &staged);
    let summaries = foretold["per_field"]["summary"].as_u64().unwrap() as usize;
    assert_eq!(foretold["undecided"], 0, "{foretold}");
    daemon.forget_log();
    edit_file(&env, "jira.toml", from, to);
    daemon.wait_for_log("reload done");
    eventually("the template edit's rewrites", || {
        let n = issues_where(&env, |i| i.summary.starts_with("SOC "));
        (n == summaries).then_some(())
    });
    let out = env.bridge(&["ledger", "list", "--db", env.db_arg()]);
    assert!(stdout(&out).contains("remap"), "a remap ledger entry");
    assert_eq!(daemon.terminate(), Some(0));
    // The edit's rewrites are the bridge's own doing, and the ledger says so.
    let out = env.bridge(&[
        "ledger",
        "export",
        "--db",
        env.db_arg(),
        "--action",
        "update_ticket",
    ]);
    let rewrites: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| {
            e["changes"].as_array().unwrap().iter().any(|c| {
                c["field"] == "summary" && c["new"].as_str().is_some_and(|s| s.starts_with("SOC "))
            })
        })
        .collect();
    assert_eq!(rewrites.len(), summaries);
    for entry in rewrites {
        assert_eq!(
            entry["actors"],
            serde_json::json!([{"name": "itsm-bridge", "side": "bridge"}]),
            "{entry}"
        );
    }
}
