//! JSON logs, end to end: `run --once` against the simulators with
//! `--log-format json`, `ITSM_BRIDGE_LOG_FORMAT=json` or `[log] format =
//! "json"` writes nothing on stderr but JSON objects, one a line, whose lines
//! about a ticket carry the pair, the incident and the ticket as fields, and
//! never a secret.

use std::process::{Command, Output};

use crate::common::{Env, assert_success, stderr};
use connectors::sims;

/// The binary's default levels, set explicitly so a `RUST_LOG` in the test's
/// environment changes nothing.
const LEVELS: &str = "warn,itsm_bridge=info,bridge_core=info,connectors=info";

fn run_once(env: &Env, extra: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_itsm-bridge"));
    command
        .args(["run", "--once", "--config", env.config.to_str().unwrap()])
        .args(extra)
        .current_dir(env.dir.path())
        .env("RUST_LOG", LEVELS)
        .env_remove("ITSM_BRIDGE_LOG_FORMAT");
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().expect("the itsm-bridge binary runs")
}

/// Every stderr line, each parsed as one JSON object (a line that is not fails).
fn json_lines(out: &Output) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let text = stderr(out);
    assert!(!text.trim().is_empty(), "no log line at all");
    text.lines()
        .map(|line| match serde_json::from_str(line) {
            Ok(serde_json::Value::Object(object)) => object,
            _ => panic!("not one JSON object: {line:?}\nall of stderr:\n{text}"),
        })
        .collect()
}

fn assert_no_secret(out: &Output) {
    let text = format!("{}{}", stderr(out), String::from_utf8_lossy(&out.stdout));
    for secret in [
        sims::GRAPH_CLIENT_SECRET,
        sims::JIRA_API_TOKEN,
        sims::ARM_CLIENT_SECRET,
        sims::SERVICENOW_PASSWORD,
        sims::GENERIC_TOKEN,
    ] {
        assert!(!text.contains(secret), "a secret in the output:\n{text}");
    }
}

#[test]
fn json_logs_name_the_pair_incident_and_ticket_as_fields() {
    let env = Env::start_with(3, 2);
    let out = run_once(&env, &["--log-format", "json"], &[]);
    assert_success(&out);
    assert_no_secret(&out);
    let lines = json_lines(&out);
    for line in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line.contains_key(key), "{key} missing: {line:?}");
        }
    }
    let linked: Vec<_> = lines
        .iter()
        .filter(|line| line["message"] == "ticket linked")
        .collect();
    let tickets = env.tickets_by_incident();
    assert_eq!(linked.len(), tickets.len(), "one per link: {lines:?}");
    for line in linked {
        let field = |key: &str| {
            line.get(key)
                .and_then(|v| v.as_str())
                .unwrap_or_else(|| panic!("no {key} field: {line:?}"))
                .to_owned()
        };
        assert_eq!(line["spans"], serde_json::json!(["cycle"]), "{line:?}");
        let (pair, incident) = (field("pair"), field("incident"));
        assert_eq!(
            tickets.get(&(pair.clone(), incident.clone())),
            Some(&field("ticket")),
            "the line names the ticket the store linked: {line:?}"
        );
    }
    let pairs: std::collections::BTreeSet<_> = lines
        .iter()
        .filter_map(|line| line.get("pair")?.as_str())
        .collect();
    assert!(pairs.contains("defender->jira"), "{pairs:?}");
    assert!(pairs.contains("sentinel->servicenow"), "{pairs:?}");
}

#[test]
fn the_variable_and_the_config_choose_json_and_the_flag_wins() {
    let env = Env::start_with(2, 0);
    // At every level, the HTTP and token crates' lines included: still one
    // object a line, and neither a configured secret nor a token.
    let vars = [("ITSM_BRIDGE_LOG_FORMAT", "json"), ("RUST_LOG", "trace")];
    let out = run_once(&env, &[], &vars);
    assert_success(&out);
    assert!(json_lines(&out).iter().any(|l| l.contains_key("incident")));
    assert_no_secret(&out);
    assert!(!stderr(&out).contains("Bearer "), "a token in the logs");

    let mut text = std::fs::read_to_string(&env.config).unwrap();
    text.push_str("\n[log]\nformat = \"json\"\n");
    std::fs::write(&env.config, text).unwrap();
    env.sims.seed_incidents(1, chrono::Utc::now());
    let out = run_once(&env, &[], &[]);
    assert_success(&out);
    assert!(json_lines(&out).iter().any(|l| l.contains_key("incident")));
    assert_no_secret(&out);

    // The flag over the variable and the config: text again.
    env.sims.seed_incidents(1, chrono::Utc::now());
    let out = run_once(
        &env,
        &["--log-format", "text"],
        &[("ITSM_BRIDGE_LOG_FORMAT", "json")],
    );
    assert_success(&out);
    let said = stderr(&out);
    assert!(said.lines().all(|line| !line.starts_with('{')), "{said}");
    assert!(said.contains("ticket linked"), "{said}");
}

#[test]
fn a_bad_log_format_is_bad_input_naming_where() {
    let env = Env::start_with(1, 0);
    let out = run_once(&env, &[], &[("ITSM_BRIDGE_LOG_FORMAT", "xml")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ITSM_BRIDGE_LOG_FORMAT"),
        "{}",
        stderr(&out)
    );

    let out = run_once(&env, &["--log-format", "xml"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--log-format"), "{}", stderr(&out));

    let mut text = std::fs::read_to_string(&env.config).unwrap();
    let line = text.lines().count() + 3;
    text.push_str("\n[log]\nformat = \"yaml\"\n");
    std::fs::write(&env.config, text).unwrap();
    for command in ["run", "check"] {
        let out = env.bridge(&[command, "--config", env.config.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let said = stderr(&out);
        assert!(
            said.contains(&format!(":{line}:10")) && said.contains("[log] format `yaml`"),
            "{said}"
        );
    }
    assert!(!env.db.exists(), "nothing written");
}
