//! Bad input gets exit code 2 and a message naming file, line and column, and
//! nothing is written.

mod common;

use common::{bridge_in, stderr};

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const MAPPING: &str = include_str!("../mappings/jira.toml");

fn config(extra_sync: &str) -> String {
    format!(
        r#"[store]
path = "bridge.db"

[[source]]
name = "defender"
kind = "graph"
tenant_id = "00000000-0000-0000-0000-000000000000"
client_id = "11111111-1111-1111-1111-111111111111"
client_secret = {{ env = "ITSM_BRIDGE_TEST_UNSET_SECRET" }}

[[ticket_system]]
name = "jira"
kind = "jira"
base_url = "https://acme.atlassian.net"
email = "bridge@acme.example"
api_token = {{ env = "ITSM_BRIDGE_TEST_UNSET_TOKEN" }}
project_key = "SEC"
mapping = "jira.toml"

[[sync]]
source = "defender"
tickets = "jira"
{extra_sync}
"#
    )
}

#[test]
fn a_malformed_config_exits_2_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "jira.toml", MAPPING);
    // Two mistakes in values: both are reported, each where it stands.
    let path = write(
        dir.path(),
        "bridge.toml",
        &config(
            "schedule = \"every minute\"\nconflict = \"source-wins\"\nsince = \"2026-11-01T00:00:00Z\"",
        ),
    );
    for command in ["check", "run"] {
        let out = bridge_in(dir.path(), &[command, "--config", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("bridge.toml:23:12:"),
            "the cron line is named: {err}"
        );
        assert!(
            err.contains("bridge.toml:24:12:"),
            "the conflict policy is named: {err}"
        );
    }
    // A key the contract does not know.
    let path = write(
        dir.path(),
        "bridge.toml",
        &config("schedule = \"*/5 * * * *\"\nsince = \"2026-11-01T00:00:00Z\"\ncolour = \"blue\""),
    );
    let out = bridge_in(dir.path(), &["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bridge.toml:25:1: unknown key `colour`"),
        "{}",
        stderr(&out)
    );
    assert!(
        !dir.path().join("bridge.db").exists(),
        "nothing was written"
    );
}

#[test]
fn a_mapping_that_forgets_a_status_is_refused_at_load_time() {
    let dir = tempfile::tempdir().unwrap();
    let forgetful = MAPPING.replacen("awaitingAction = \"indeterminate\"\n", "", 1);
    assert_ne!(forgetful, MAPPING);
    write(dir.path(), "jira.toml", &forgetful);
    let path = write(
        dir.path(),
        "bridge.toml",
        &config("schedule = \"*/5 * * * *\"\nsince = \"2026-11-01T00:00:00Z\""),
    );
    let out = bridge_in(dir.path(), &["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("jira.toml:") && err.contains("awaitingAction"),
        "{err}"
    );
}

#[test]
fn a_missing_secret_is_bad_input_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "jira.toml", MAPPING);
    let path = write(
        dir.path(),
        "bridge.toml",
        &config("schedule = \"*/5 * * * *\"\nsince = \"2026-11-01T00:00:00Z\""),
    );
    let out = bridge_in(
        dir.path(),
        &["run", "--once", "--config", path.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ITSM_BRIDGE_TEST_UNSET_SECRET"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("bridge.db").exists());
}

#[test]
fn bad_arguments_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = bridge_in(
        dir.path(),
        &["ledger", "export", "--format", "xml", "--db", "x.db"],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = bridge_in(dir.path(), &["links", "--db", "missing.db"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.db"));
}
