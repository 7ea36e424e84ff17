//! `deploy/itsm-bridge.service`: `systemd-analyze verify` says nothing about it
//! (where the tool exists), it asks for the hardening the README promises, and
//! its `ExecStartPre` and `ExecStart`, with its environment, run here against
//! the simulators with `deploy/systemd/bridge.toml` installed where the unit
//! reads it and the credentials where systemd puts them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{Root, config_for_the_simulators, repo, served_at, stop, wait_until};
use crate::common::{Env, assert_success, stderr, stdout};

const UNIT: &str = "deploy/itsm-bridge.service";
const BINARY: &str = "/usr/local/bin/itsm-bridge";

/// Every `Key=Value` of the unit's `[Service]` section, in order.
fn service_settings() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join(UNIT)).unwrap();
    let mut section = "";
    let mut settings = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]" && !line.starts_with('#') {
            if let Some((key, value)) = line.split_once('=') {
                settings.push((key.to_owned(), value.to_owned()));
            }
        }
    }
    settings
}

fn values(settings: &[(String, String)], key: &str) -> Vec<String> {
    settings
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

fn one(settings: &[(String, String)], key: &str) -> String {
    let all = values(settings, key);
    assert_eq!(all.len(), 1, "{key}: {all:?}");
    all[0].clone()
}

#[test]
fn the_unit_verifies_without_a_word_and_is_hardened() {
    let settings = service_settings();
    for (key, value) in [
        ("Type", "simple"),
        ("Restart", "on-failure"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "itsm-bridge"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
    ] {
        assert_eq!(one(&settings, key), value, "{key}");
    }
    let credentials = values(&settings, "LoadCredential");
    assert_eq!(credentials.len(), 2, "{credentials:?}");

    let tool = Path::new("/usr/bin/systemd-analyze");
    if !tool.exists() {
        eprintln!("systemd-analyze verify: skipped: /usr/bin/systemd-analyze is not installed");
        return;
    }
    // The binary where this test built it: verify checks that ExecStart's exists.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("itsm-bridge.service");
    let text = std::fs::read_to_string(repo().join(UNIT)).unwrap();
    std::fs::write(
        &unit,
        text.replace(BINARY, env!("CARGO_BIN_EXE_itsm-bridge")),
    )
    .unwrap();
    let out = Command::new(tool)
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{said}");
    let about_it: Vec<&str> = said
        .lines()
        .filter(|line| line.contains("itsm-bridge"))
        .collect();
    assert!(about_it.is_empty(), "systemd-analyze warns: {about_it:?}");
}

/// An `Exec*=` line as arguments, the binary's path taken where the test built it.
fn exec(line: &str, root: &Root) -> Vec<String> {
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some(BINARY), "{line}");
    root.command(&words.map(str::to_owned).collect::<Vec<_>>())
}

fn environment(settings: &[(String, String)]) -> Vec<(String, String)> {
    values(settings, "Environment")
        .iter()
        .map(|assignment| {
            let (name, value) = assignment.split_once('=').expect("NAME=value");
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn the_unit_runs_its_commands_on_the_simulators() {
    let settings = service_settings();
    let env = Env::start(4);
    let root = Root::empty();
    root.put("deploy/systemd/bridge.toml", "/etc/itsm-bridge/bridge.toml");
    root.put("mappings/jira.toml", "/etc/itsm-bridge/mappings/jira.toml");
    // systemd's credentials directory, one file per LoadCredential.
    let credentials = "/run/credentials/itsm-bridge.service";
    let more = [("127.0.0.1:9464".to_owned(), "127.0.0.1:0".to_owned())];
    let config = "/etc/itsm-bridge/bridge.toml";
    config_for_the_simulators(&root, &env, config, credentials, &more);
    for credential in values(&settings, "LoadCredential") {
        let (name, _) = credential.split_once(':').unwrap();
        assert!(
            root.path(&format!("{credentials}/{name}")).is_file(),
            "{name}"
        );
    }
    let state = format!("/var/lib/{}", one(&settings, "StateDirectory"));
    std::fs::create_dir_all(root.path(&state)).unwrap();
    assert_eq!(one(&settings, "WorkingDirectory"), state);

    let run = |args: &[String]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_itsm-bridge"));
        command
            .args(args)
            .current_dir(root.path(&state))
            .env_remove("RUST_LOG")
            .env_remove("ITSM_BRIDGE_LOG_FORMAT")
            .envs(environment(&settings));
        command
    };
    let out = run(&exec(&one(&settings, "ExecStartPre"), &root))
        .output()
        .unwrap();
    assert_success(&out);

    let log = root.path("/journal.log");
    let child = run(&exec(&one(&settings, "ExecStart"), &root))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let daemon = super::Running(child);
    let address = served_at(&log);
    let db = root.path(&format!("{state}/itsm-bridge.db"));
    wait_until(
        "every incident has its ticket",
        Duration::from_secs(90),
        || {
            let out = env.bridge(&["links", "--json", "--db", db.to_str().unwrap()]);
            out.status.success() && stdout(&out).lines().count() == 4
        },
    );
    let out = env.bridge(&["health", "--url", &format!("http://{address}/livez")]);
    assert_success(&out);
    stop(daemon);
    let journal = std::fs::read_to_string(&log).unwrap();
    for line in journal.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "Environment= asks for JSON logs: {line}"
        );
    }
    for secret in [
        connectors::sims::GRAPH_CLIENT_SECRET,
        connectors::sims::JIRA_API_TOKEN,
    ] {
        assert!(!journal.contains(secret));
    }
}
