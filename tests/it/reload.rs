//! Live reload of a running daemon: a value map edited in a mapping file takes
//! effect at the next cycle; a broken edit keeps the running mapping and shows
//! "reload failed" with file:line:column on `/healthz` until it is fixed; an
//! edit the file poll cannot see is loaded on SIGHUP; a key that needs a
//! restart is refused by name.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::common::Env;
use crate::daemon::{Daemon, eventually, get, with_listen};

/// Every pair every second, so each step shows within a second or two.
fn every_second(env: &Env) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text
        .replace(
            "schedule = \"*/10 * * * * *\"",
            "schedule = \"* * * * * *\"",
        )
        .replace(
            "schedule = \"*/15 * * * * *\"",
            "schedule = \"* * * * * *\"",
        );
    std::fs::write(&env.config, text).unwrap();
}

/// Replaces `from` by `to` in a file of the config's directory.
fn edit(env: &Env, file: &str, from: &str, to: &str) {
    let path = env.dir.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} in {file}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

fn priority(env: &Env, key: &str) -> String {
    env.sims.jira.issue(key).unwrap().priority
}

/// Waits for the analyst's severity change to reach the ticket as `expected`.
fn severity_gives(env: &Env, id: &str, key: &str, severity: &str, expected: &str) {
    assert!(env.sims.graph.set_severity(id, severity));
    eventually(&format!("{severity} to become {expected}"), || {
        (priority(env, key) == expected).then_some(())
    });
}

fn health(address: SocketAddr) -> (u16, Value) {
    let (code, _, body) = get(address, "/healthz");
    (code, serde_json::from_str(&body).unwrap())
}

#[test]
fn a_mapping_edit_takes_effect_a_bad_one_is_refused_until_fixed_and_sighup_reloads() {
    let env = Env::start(1);
    let id = env.sims.graph.incidents()[0].id.clone();
    every_second(&env);
    with_listen(&env, "127.0.0.1:0");
    let mut daemon = Daemon::start(&env);
    let address = daemon.address();
    let key = eventually("the first ticket", || env.ticket_of(&id));
    severity_gives(&env, &id, &key, "low", "Medium");

    // An edited value map: the next change of severity goes by it.
    edit(&env, "jira.toml", "low = \"Medium\"", "low = \"Lowest\"");
    daemon.wait_for_log("reload done");
    severity_gives(&env, &id, &key, "medium", "High");
    severity_gives(&env, &id, &key, "low", "Lowest");
    assert_eq!(health(address).0, 200);

    // A broken edit (a misspelt attribute, and a new value for medium): refused
    // whole, with the problem's place; the running mapping stays.
    daemon.forget_log();
    edit(&env, "jira.toml", "medium = \"High\"", "medium = \"Low\"");
    edit(
        &env,
        "jira.toml",
        "incident = \"severity\"",
        "incident = \"sevrity\"",
    );
    let logged = daemon.wait_for_log("reload failed: ");
    assert!(logged.contains("jira.toml:"), "{logged}");
    let (code, body) = eventually("reload failed on /healthz", || {
        let (code, body) = health(address);
        (body["status"] == "reload failed").then_some((code, body))
    });
    assert_eq!(code, 503, "{body}");
    let problems = body["reload"]["problems"].as_array().unwrap();
    let problem = problems[0].as_str().unwrap();
    let place = problem.split(": ").next().unwrap();
    let mut parts = place.rsplitn(3, ':');
    let (column, line) = (parts.next().unwrap(), parts.next().unwrap());
    assert!(parts.next().unwrap().ends_with("jira.toml"), "{problem}");
    assert!(
        line.parse::<u32>().is_ok() && column.parse::<u32>().is_ok(),
        "{problem}"
    );
    assert!(problem.contains("sevrity"), "{problem}");
    let (_, _, page) = get(address, "/");
    assert!(page.contains("reload failed"), "{page}");
    severity_gives(&env, &id, &key, "medium", "High");

    // Fixed: healthy again, and the fixed mapping is the one in use.
    edit(
        &env,
        "jira.toml",
        "incident = \"sevrity\"",
        "incident = \"severity\"",
    );
    eventually("healthy again", || {
        let (code, body) = health(address);
        (code == 200 && body["reload"]["ok"] == true).then_some(())
    });
    severity_gives(&env, &id, &key, "low", "Lowest");
    severity_gives(&env, &id, &key, "medium", "Low");

    // An edit of the same size whose modification time is put back: the poll
    // cannot see it, SIGHUP loads it.
    let mapping = env.dir.path().join("jira.toml");
    let before = std::fs::metadata(&mapping).unwrap().modified().unwrap();
    edit(&env, "jira.toml", "low = \"Lowest\"", "low = \"Medium\"");
    let file = std::fs::File::options().write(true).open(&mapping).unwrap();
    file.set_modified(before).unwrap();
    drop(file);
    std::thread::sleep(Duration::from_secs(3));
    severity_gives(&env, &id, &key, "low", "Lowest");
    daemon.forget_log();
    daemon.signal("HUP");
    daemon.wait_for_log("reloading the config (SIGHUP)");
    daemon.wait_for_log("reload done");
    severity_gives(&env, &id, &key, "medium", "Low");
    severity_gives(&env, &id, &key, "low", "Medium");

    // A key read once at start: refused by name, the rest still applies.
    daemon.forget_log();
    edit(
        &env,
        "bridge.toml",
        "path = ",
        "path = \"elsewhere.db\"\n# was: path = ",
    );
    let refused = daemon.wait_for_log("needs a restart");
    assert!(refused.contains("[store]"), "{refused}");
    daemon.wait_for_log("reload done");
    let (code, body) = health(address);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["reload"]["restart_needed"][0], "[store]");
    assert!(SystemTime::now() > before);
    assert_eq!(daemon.terminate(), Some(0));
}
