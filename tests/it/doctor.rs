//! `itsm-bridge doctor` end to end: the real binary against the simulators. A
//! healthy setup passes with a line per check of every system and sends nothing but
//! token requests and GETs; each broken setting or missing permission (made by
//! editing the config or a secret, or injected through the simulators' fault switch)
//! fails its check with exit 1 and the advice that fixes it; a bad config exits 2
//! exactly as `check` does; and no configured secret ever reaches the output, even
//! when a server echoes one back.

use std::process::Output;

use crate::common::{Env, stderr, stdout};
use axum::http::Method;
use connectors::simkit::{Effect, FaultRule};
use connectors::sims;

fn doctor(env: &Env) -> Output {
    env.bridge(&["doctor", "--config", env.config.to_str().unwrap()])
}

/// Every secret the simulators' config references, as written by `write_config`.
const SECRETS: &[&str] = &[
    sims::GRAPH_CLIENT_SECRET,
    sims::ARM_CLIENT_SECRET,
    sims::JIRA_API_TOKEN,
    sims::SERVICENOW_PASSWORD,
    sims::GENERIC_TOKEN,
];

/// Neither stream holds any of `secrets`.
fn assert_no_secret(out: &Output, secrets: &[&str]) {
    let text = format!("{}{}", stdout(out), stderr(out));
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "the output holds the secret {secret:?}:\n{text}"
        );
    }
}

fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

/// The line of `check` in `system`'s section of the output.
fn line<'a>(text: &'a str, system: &str, check: &str) -> &'a str {
    let section = text
        .split("\n\n")
        .find(|s| s.starts_with(system))
        .unwrap_or_else(|| panic!("no section {system:?} in:\n{text}"));
    section
        .lines()
        .find(|l| l.len() > 8 && l[8..].starts_with(check))
        .unwrap_or_else(|| panic!("no check {check:?} under {system:?} in:\n{text}"))
}

/// The `fix:` text under a check (its wrapped lines joined).
fn fix_of(text: &str, system: &str, check: &str) -> String {
    let section = text.split("\n\n").find(|s| s.starts_with(system)).unwrap();
    let mut lines = section
        .lines()
        .skip_while(|l| !(l.len() > 8 && l[8..].starts_with(check)));
    lines.next();
    lines
        .take_while(|l| l.starts_with("        "))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

const SYSTEMS: &[&str] = &[
    "source defender (graph",
    "source sentinel (sentinel",
    "ticket system jira (jira",
    "ticket system servicenow (servicenow",
    "ticket system helpdesk (generic",
];

#[test]
fn a_healthy_setup_passes_every_check_and_writes_nothing() {
    let env = Env::start_with(3, 3);
    let out = doctor(&env);
    assert_exit(&out, 0);
    let text = stdout(&out);
    for system in SYSTEMS {
        assert!(text.contains(&format!("\n{system}")), "{system}:\n{text}");
    }
    for (system, check) in [
        ("source defender", "Entra ID token"),
        ("source defender", "list incidents"),
        ("source sentinel", "Entra ID token"),
        ("source sentinel", "list incidents"),
        ("ticket system jira", "sign in"),
        ("ticket system jira", "project SEC"),
        ("ticket system jira", "issue type Task"),
        ("ticket system jira", "permissions"),
        ("ticket system servicenow", "read incidents"),
        ("ticket system servicenow", "read work notes"),
        ("ticket system servicenow", "close codes"),
        ("ticket system helpdesk", "search endpoint"),
        ("ticket system helpdesk", "find endpoint"),
    ] {
        let l = line(&text, system, check);
        assert!(l.starts_with("  OK  "), "{system} / {check}: {l}\n{text}");
    }
    assert!(!text.contains("FAIL"), "{text}");
    assert!(text.contains(" 0 failed"), "{text}");
    assert_no_secret(&out, SECRETS);

    // Read-only: token requests and GETs, nothing else, and nothing changed.
    let kits = [
        ("graph", &env.sims.graph.kit),
        ("sentinel", &env.sims.sentinel.kit),
        ("jira", &env.sims.jira.kit),
        ("servicenow", &env.sims.servicenow.kit),
        ("generic", &env.sims.generic.kit),
    ];
    for (name, kit) in kits {
        let requests = kit.requests();
        assert!(!requests.is_empty(), "doctor never asked {name}");
        for r in requests {
            assert_eq!(r.method, "GET", "{name}: {} {}", r.method, r.path);
        }
    }
    for r in env.sims.login.kit.requests() {
        assert!(r.path.ends_with("/oauth2/v2.0/token"), "{r:?}");
    }
    assert_eq!(env.sims.jira.issues().len(), 0);
    assert_eq!(env.sims.servicenow.incidents().len(), 0);

    // Once the bridge has made tickets, the generic system's get endpoint is tried too.
    env.sync();
    let out = doctor(&env);
    assert_exit(&out, 0);
    let text = stdout(&out);
    let l = line(&text, "ticket system helpdesk", "get endpoint");
    assert!(l.starts_with("  OK  "), "{l}\n{text}");
}

#[test]
fn a_graph_403_asks_for_security_incident_read_write_all() {
    let env = Env::start(2);
    env.sims.graph.kit.inject(FaultRule::new(
        Some(Method::GET),
        "/v1.0/security/incidents",
        Effect::Status {
            status: 403,
            retry_after: None,
            body: r#"{"error":{"code":"Forbidden","message":"Missing application roles. API required roles: SecurityIncident.Read.All, SecurityIncident.ReadWrite.All."}}"#.into(),
        },
    ));
    let out = doctor(&env);
    assert_exit(&out, 1);
    let text = stdout(&out);
    let l = line(&text, "source defender", "list incidents");
    assert!(l.starts_with("  FAIL"), "{l}");
    assert!(l.contains("403"), "{l}");
    let fix = fix_of(&text, "source defender", "list incidents");
    assert!(fix.contains("SecurityIncident.ReadWrite.All"), "{fix}");
    assert!(fix.contains("admin consent"), "{fix}");
    assert!(fix.contains("SecurityIncident.Read.All"), "{fix}");
    // The other systems are still fine.
    assert!(line(&text, "source sentinel", "list incidents").starts_with("  OK  "));
    assert!(line(&text, "ticket system jira", "sign in").starts_with("  OK  "));
    assert!(text.contains(" 1 failed"), "{text}");
    assert_no_secret(&out, SECRETS);
}

#[test]
fn a_wrong_jira_token_asks_for_the_credentials_and_is_never_printed() {
    let env = Env::start(0);
    let wrong = "ATATT3x-wrong-jira-token-canary";
    std::fs::write(env.dir.path().join("secrets/jira-api-token"), wrong).unwrap();
    let out = doctor(&env);
    assert_exit(&out, 1);
    let text = stdout(&out);
    let l = line(&text, "ticket system jira", "sign in");
    assert!(l.starts_with("  FAIL") && l.contains("401"), "{l}");
    let fix = fix_of(&text, "ticket system jira", "sign in");
    assert!(fix.contains("api_token"), "{fix}");
    assert!(fix.contains(sims::JIRA_EMAIL), "{fix}");
    assert!(fix.contains("id.atlassian.com"), "{fix}");
    for check in ["project SEC", "issue type Task", "permissions"] {
        assert!(
            line(&text, "ticket system jira", check).starts_with("  SKIP"),
            "{check}\n{text}"
        );
    }
    assert!(line(&text, "ticket system servicenow", "read incidents").starts_with("  OK  "));
    assert_no_secret(&out, &[SECRETS, &[wrong]].concat());
}

#[test]
fn a_secret_echoed_by_a_server_is_blanked_out() {
    let env = Env::start(0);
    // A careless API that repeats the credentials it refused.
    env.sims.generic.kit.inject(
        FaultRule::new(
            None,
            "/api/tickets",
            Effect::Status {
                status: 401,
                retry_after: None,
                body: format!(r#"{{"error":"bad bearer token {}"}}"#, sims::GENERIC_TOKEN),
            },
        )
        // The HTTP layer asks once more after a 401 (with a fresh token, were it fetched).
        .times(2),
    );
    // And a Jira that says which password was wrong.
    env.sims.jira.kit.inject(FaultRule::new(
        None,
        "/rest/api/3/myself",
        Effect::Status {
            status: 401,
            retry_after: None,
            body: format!(
                r#"{{"errorMessages":["token {} is not valid for {}"],"errors":{{}}}}"#,
                sims::JIRA_API_TOKEN,
                sims::JIRA_EMAIL
            ),
        },
    ));
    let out = doctor(&env);
    assert_exit(&out, 1);
    let text = stdout(&out);
    let l = line(&text, "ticket system helpdesk", "search endpoint");
    assert!(l.starts_with("  FAIL") && l.contains("[redacted]"), "{l}");
    assert!(fix_of(&text, "ticket system helpdesk", "search endpoint").contains("token"));
    let l = line(&text, "ticket system jira", "sign in");
    assert!(l.contains("[redacted]"), "{l}");
    assert_no_secret(&out, SECRETS);
}

#[test]
fn a_sentinel_403_asks_for_the_responder_role_and_a_404_names_the_setting() {
    let env = Env::start_with(0, 2);
    env.sims.sentinel.kit.inject(FaultRule::new(
        Some(Method::GET),
        "/providers/Microsoft.SecurityInsights/incidents",
        Effect::Status {
            status: 403,
            retry_after: None,
            body: r#"{"error":{"code":"AuthorizationFailed","message":"The client does not have authorization to perform action 'Microsoft.SecurityInsights/incidents/read'."}}"#.into(),
        },
    ));
    let out = doctor(&env);
    assert_exit(&out, 1);
    let text = stdout(&out);
    assert!(line(&text, "source sentinel", "list incidents").starts_with("  FAIL"));
    let fix = fix_of(&text, "source sentinel", "list incidents");
    assert!(fix.contains("Microsoft Sentinel Responder"), "{fix}");
    assert!(fix.contains("Reader"), "{fix}");

    let config = std::fs::read_to_string(&env.config).unwrap();
    let config = config.replace(
        &format!("resource_group = \"{}\"", sims::RESOURCE_GROUP),
        "resource_group = \"soc-rg-typo\"",
    );
    std::fs::write(&env.config, config).unwrap();
    let out = doctor(&env);
    assert_exit(&out, 1);
    let text = stdout(&out);
    let fix = fix_of(&text, "source sentinel", "list incidents");
    assert!(fix.contains("resource_group"), "{fix}\n{text}");
    assert!(fix.contains("soc-rg-typo"), "{fix}");
}

#[test]
fn missing_jira_permissions_and_servicenow_close_codes_are_named() {
    let env = Env::start(0);
    env.sims.jira.kit.inject(FaultRule::new(
        Some(Method::GET),
        "/rest/api/3/mypermissions",
        Effect::Status {
            status: 200,
            retry_after: None,
            body: r#"{"permissions":{
                "BROWSE_PROJECTS":{"key":"BROWSE_PROJECTS","havePermission":true},
                "CREATE_ISSUES":{"key":"CREATE_ISSUES","havePermission":true},
                "EDIT_ISSUES":{"key":"EDIT_ISSUES","havePermission":true},
                "TRANSITION_ISSUES":{"key":"TRANSITION_ISSUES","havePermission":false},
                "RESOLVE_ISSUES":{"key":"RESOLVE_ISSUES","havePermission":true},
                "ASSIGN_ISSUES":{"key":"ASSIGN_ISSUES","havePermission":true},
                "ADD_COMMENTS":{"key":"ADD_COMMENTS","havePermission":true},
                "USER_PICKER":{"key":"USER_PICKER","havePermission":true}}}"#
                .into(),
        },
    ));
    env.sims
        .servicenow
        .set_close_codes(connectors::servicenow::sim::CLOSE_CODES_LEGACY);
    let out = doctor(&env);
    assert_exit(&out, 1);
    let text = stdout(&out);
    let l = line(&text, "ticket system jira", "permissions");
    assert!(
        l.starts_with("  FAIL") && l.contains("Transition Issues"),
        "{l}"
    );
    assert!(!l.contains("Edit Issues"), "{l}");
    let l = line(&text, "ticket system servicenow", "close codes");
    assert!(
        l.starts_with("  FAIL") && l.contains("Solution provided"),
        "{l}"
    );
    let fix = fix_of(&text, "ticket system servicenow", "close codes");
    assert!(fix.contains("servicenow.toml"), "{fix}");

    // A project key that does not exist.
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        config.replace("project_key = \"SEC\"", "project_key = \"NOPE\""),
    )
    .unwrap();
    let out = doctor(&env);
    assert_exit(&out, 1);
    let text = stdout(&out);
    assert!(line(&text, "ticket system jira", "project NOPE").starts_with("  FAIL"));
    let fix = fix_of(&text, "ticket system jira", "project NOPE");
    assert!(
        fix.contains("project_key") && fix.contains("Browse Projects"),
        "{fix}"
    );
}

#[test]
fn a_bad_config_exits_2_with_checks_message() {
    let env = Env::start(0);
    std::fs::remove_file(env.dir.path().join("secrets/servicenow-password")).unwrap();
    let check = env.bridge(&["check", "--config", env.config.to_str().unwrap()]);
    let out = doctor(&env);
    assert_exit(&check, 2);
    assert_exit(&out, 2);
    assert_eq!(stderr(&out), stderr(&check));
    assert!(stderr(&out).contains("password"), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    // Nothing was asked of any system.
    assert_eq!(env.sims.request_counts(), Default::default());

    std::fs::write(&env.config, "[[source]]\nname = 1\n").unwrap();
    let check = env.bridge(&["check", "--config", env.config.to_str().unwrap()]);
    let out = doctor(&env);
    assert_exit(&out, 2);
    assert_eq!(stderr(&out), stderr(&check));
}

#[test]
fn servicenow_oauth_clients_get_their_own_token_check() {
    let env = Env::start(0);
    let client_id = "0123456789abcdef0123456789abcdef";
    let secret = "sim-servicenow-oauth-secret-value";
    env.sims
        .servicenow
        .set_oauth_client(client_id, secret, sims::SERVICENOW_USER);
    let config = std::fs::read_to_string(&env.config).unwrap();
    let basic = format!(
        "username = \"{}\"\npassword = {{ file = \"secrets/servicenow-password\" }}",
        sims::SERVICENOW_USER
    );
    assert!(config.contains(&basic), "{config}");
    let oauth = format!(
        "client_id = \"{client_id}\"\nclient_secret = {{ file = \"secrets/servicenow-oauth\" }}"
    );
    std::fs::write(&env.config, config.replace(&basic, &oauth)).unwrap();
    let secret_file = env.dir.path().join("secrets/servicenow-oauth");

    let wrong = "wrong-servicenow-oauth-secret-canary";
    std::fs::write(&secret_file, wrong).unwrap();
    let out = doctor(&env);
    assert_exit(&out, 1);
    let text = stdout(&out);
    assert!(line(&text, "ticket system servicenow", "OAuth token").starts_with("  FAIL"));
    let fix = fix_of(&text, "ticket system servicenow", "OAuth token");
    assert!(
        fix.contains("client_secret") && fix.contains("Application Registry"),
        "{fix}"
    );
    assert!(line(&text, "ticket system servicenow", "read incidents").starts_with("  SKIP"));
    assert_no_secret(&out, &[SECRETS, &[wrong, secret]].concat());

    std::fs::write(&secret_file, secret).unwrap();
    let out = doctor(&env);
    assert_exit(&out, 0);
    let text = stdout(&out);
    for check in [
        "OAuth token",
        "read incidents",
        "read work notes",
        "close codes",
    ] {
        let l = line(&text, "ticket system servicenow", check);
        assert!(l.starts_with("  OK  "), "{l}\n{text}");
    }
    assert_no_secret(&out, &[SECRETS, &[secret]].concat());
}
