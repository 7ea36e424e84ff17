//! Identities and Key Vault end to end: the Defender source signs in through each
//! `auth` choice (azure_identity's real credential against the simulators: the
//! token endpoint's client-assertion flow with a certificate and with a federated
//! token, the App Service style managed identity endpoint, a fake `az` that prints
//! what the real one prints) and syncs its incidents to Jira; and the Jira API
//! token kept in Key Vault, used and rotated while the daemon runs.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use connectors::auth::certificate::testdata::{
    APP_ENCRYPTED_PEM, APP_P12, APP_PEM, OTHER_PEM, PASSWORD,
};
use connectors::sims::{
    AKS_ISSUER, AKS_SUBJECT, GRAPH_AUDIENCE, GRAPH_CLIENT_ID, JIRA_API_TOKEN, JIRA_EMAIL,
    TENANT_ID, UAMI_CLIENT_ID, VAULT_URL,
};

use crate::common::{Env, assert_success, stderr, stdout};

/// The Defender source's secret lines, as the simulators' config writes them.
fn secret_lines() -> String {
    format!(
        "client_id = \"{GRAPH_CLIENT_ID}\"\nclient_secret = {{ file = \"secrets/graph-client-secret\" }}"
    )
}

/// Replaces the Defender source's client id and secret with `lines`.
fn defender_signs_in_with(env: &Env, lines: &str) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    assert!(text.contains(&secret_lines()));
    std::fs::write(&env.config, text.replacen(&secret_lines(), lines, 1)).unwrap();
}

fn run_once(env: &Env, vars: &[(&str, String)], path_first: Option<&std::path::Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_itsm-bridge"));
    command
        .args(["run", "--once", "--config", env.config.to_str().unwrap()])
        .current_dir(env.dir.path())
        .env("RUST_LOG", "warn");
    for (k, v) in vars {
        command.env(k, v);
    }
    if let Some(dir) = path_first {
        let path = std::env::var("PATH").unwrap_or_default();
        command.env("PATH", format!("{}:{path}", dir.display()));
    }
    command.output().unwrap()
}

/// Every active Defender incident has a Jira ticket.
fn assert_all_synced(env: &Env) {
    let active = env.active_defender();
    assert!(!active.is_empty());
    for id in active {
        assert!(env.ticket_of(&id).is_some(), "{id} has no ticket");
    }
}

fn certificate_lines() -> String {
    format!(
        "auth = \"client_certificate\"\nclient_id = \"{GRAPH_CLIENT_ID}\"\ncertificate = \"app.pem\""
    )
}

#[test]
fn a_certificate_signs_in_through_the_client_assertion_flow() {
    let env = Env::start(2);
    std::fs::write(env.dir.path().join("app.pem"), APP_PEM).unwrap();
    defender_signs_in_with(&env, &certificate_lines());
    assert_success(&run_once(&env, &[], None));
    assert_all_synced(&env);
}

/// The certificate as Windows admins export it: a PKCS#12 file with a password,
/// the password from the environment; and a PEM whose key is encrypted.
#[test]
fn a_pkcs12_certificate_and_an_encrypted_key_sign_in_with_their_password() {
    for (file, bytes) in [
        ("app.pfx", APP_P12.to_vec()),
        ("app.pem", APP_ENCRYPTED_PEM.as_bytes().to_vec()),
    ] {
        let env = Env::start(2);
        std::fs::write(env.dir.path().join(file), bytes).unwrap();
        defender_signs_in_with(
            &env,
            &format!(
                "auth = \"client_certificate\"\nclient_id = \"{GRAPH_CLIENT_ID}\"\ncertificate = \"{file}\"\ncertificate_password = {{ env = \"CERT_PASSWORD\" }}"
            ),
        );
        let out = run_once(&env, &[("CERT_PASSWORD", PASSWORD.to_owned())], None);
        assert_success(&out);
        assert_all_synced(&env);
        assert!(!stderr(&out).contains(PASSWORD) && !stdout(&out).contains(PASSWORD));

        // The wrong password is bad input: one clear error naming the file,
        // exit 2, before anything is synced.
        let out = run_once(&env, &[("CERT_PASSWORD", "wrong".to_owned())], None);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(file), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("does not open with certificate_password"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn a_certificate_the_app_does_not_know_is_one_clear_error_and_no_retry_storm() {
    let env = Env::start(1);
    std::fs::write(env.dir.path().join("app.pem"), OTHER_PEM).unwrap();
    defender_signs_in_with(&env, &certificate_lines());
    let out = run_once(&env, &[], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("AADSTS700027"), "{text}");
    assert!(
        text.contains(&format!(
            "app {GRAPH_CLIENT_ID} does not accept the certificate"
        )),
        "{text}"
    );
    let refused = env
        .sims
        .login
        .kit
        .requests()
        .iter()
        .filter(|r| r.status == 401)
        .count();
    assert_eq!(refused, 1, "the refused certificate is sent once");
}

#[test]
fn a_federated_token_file_signs_in_as_aks_workload_identity() {
    let env = Env::start(2);
    let token = env
        .sims
        .login
        .federated_token(AKS_ISSUER, AKS_SUBJECT, 3600);
    std::fs::write(env.dir.path().join("azure-identity-token"), token).unwrap();
    // Tenant, client id and token file from the variables AKS injects.
    defender_signs_in_with(&env, "auth = \"workload_identity\"");
    let text = std::fs::read_to_string(&env.config).unwrap();
    let tenant_line = format!("tenant_id = \"{TENANT_ID}\"\n");
    std::fs::write(&env.config, text.replacen(&tenant_line, "", 1)).unwrap();
    let vars = [
        ("AZURE_TENANT_ID", TENANT_ID.to_string()),
        ("AZURE_CLIENT_ID", GRAPH_CLIENT_ID.to_string()),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            env.dir
                .path()
                .join("azure-identity-token")
                .display()
                .to_string(),
        ),
    ];
    assert_success(&run_once(&env, &vars, None));
    assert_all_synced(&env);
}

#[test]
fn a_managed_identity_signs_in_through_the_identity_endpoint() {
    for (lines, who) in [
        ("auth = \"managed_identity\"".to_string(), "system-assigned"),
        (
            format!("auth = \"managed_identity\"\nclient_id = \"{UAMI_CLIENT_ID}\""),
            UAMI_CLIENT_ID,
        ),
    ] {
        let env = Env::start(2);
        defender_signs_in_with(&env, &lines);
        let vars = env.sims.managed_identity_env();
        let vars: Vec<(&str, String)> = vars.iter().map(|(k, v)| (*k, v.clone())).collect();
        assert_success(&run_once(&env, &vars, None));
        assert_all_synced(&env);
        let requests = env.sims.managed_identity.kit.requests();
        assert!(
            !requests.is_empty(),
            "{who}: the identity endpoint was asked"
        );
        assert!(requests.iter().all(|r| r.status == 200), "{who}");
    }
}

#[test]
fn the_azure_cli_signs_in_with_what_az_prints() {
    let env = Env::start(2);
    let (token, _) = env
        .sims
        .registry
        .issue_for(GRAPH_AUDIENCE, "admin@contoso.example");
    let bin = env.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let expires = chrono::Utc::now().timestamp() + 3600;
    // What `az account get-access-token -o json --scope S --tenant T` prints,
    // and an error for anything else.
    let script = format!(
        "#!/bin/sh\ncase \"$*\" in\n  \"account get-access-token -o json --scope {GRAPH_AUDIENCE}/.default --tenant {TENANT_ID}\")\n    printf '%s\\n' '{{\"accessToken\": \"{token}\", \"expiresOn\": \"2099-01-01 00:00:00.000000\", \"expires_on\": {expires}, \"subscription\": \"3b5c7d9e-1f2a-4b6c-8d0e-2f4a6b8c0d1e\", \"tenant\": \"{TENANT_ID}\", \"tokenType\": \"Bearer\"}}'\n    ;;\n  *) echo \"ERROR: unexpected arguments: $*\" >&2; exit 2 ;;\nesac\n"
    );
    let az = bin.join("az");
    std::fs::write(&az, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
    defender_signs_in_with(&env, "auth = \"azure_cli\"");
    assert_success(&run_once(&env, &[], Some(&bin)));
    assert_all_synced(&env);
}

/// The Jira API token in Key Vault, fetched with the Defender source's identity.
fn jira_token_in_key_vault(env: &Env) {
    env.sims
        .keyvault
        .set_secret("jira-api-token", JIRA_API_TOKEN);
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text.replacen(
        "api_token = { file = \"secrets/jira-api-token\" }",
        &format!("api_token = {{ key_vault = \"{VAULT_URL}/secrets/jira-api-token\" }}"),
        1,
    );
    let text = format!(
        "{text}\n[azure]\nidentity = \"defender\"\nkey_vault_endpoint_override_for_tests = \"{}\"\n",
        env.sims.keyvault.base_url()
    );
    std::fs::write(&env.config, text).unwrap();
    std::fs::remove_file(env.dir.path().join("secrets/jira-api-token")).unwrap();
}

/// Waits until Jira holds at least `issues` issues; false after a minute.
fn wait_for_issues(env: &Env, issues: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if env.sims.jira.issues().len() >= issues {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Stops the daemon; its output.
fn stop(daemon: std::process::Child) -> String {
    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    let out = daemon.wait_with_output().unwrap();
    format!("{}{}", stdout(&out), stderr(&out))
}

#[test]
fn a_key_vault_secret_is_used_and_its_rotation_picked_up_without_a_restart() {
    let env = Env::start(3);
    jira_token_in_key_vault(&env);
    let daemon = Command::new(env!("CARGO_BIN_EXE_itsm-bridge"))
        .args(["run", "--config", env.config.to_str().unwrap()])
        .current_dir(env.dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if !wait_for_issues(&env, env.active_defender().len()) {
        panic!(
            "before the rotation: not every incident got a ticket\n{}",
            stop(daemon)
        );
    }
    let fetched_at_start = env.sims.keyvault.kit.request_count();
    assert!(fetched_at_start >= 1);
    // A 401 refetches only once the value is a few seconds old.
    std::thread::sleep(Duration::from_secs(6));

    // Rotate: a new version in the vault, and Jira accepts only the new token.
    let rotated = "sim-jira-api-token-rotated";
    env.sims.keyvault.set_secret("jira-api-token", rotated);
    env.sims.jira.set_credentials(JIRA_EMAIL, rotated);
    // A new incident, raised now: its ticket needs the new token.
    let before = env.sims.jira.issues().len();
    env.sims
        .seed_incidents(1, chrono::Utc::now() + chrono::Duration::minutes(7));
    if !wait_for_issues(&env, before + 1) {
        panic!(
            "after the rotation: the new incident got no ticket\n{}",
            stop(daemon)
        );
    }
    assert!(
        env.sims.keyvault.kit.request_count() > fetched_at_start,
        "the 401 made the bridge fetch the secret again"
    );
    assert!(
        env.sims.jira.kit.requests().iter().any(|r| r.status == 401),
        "Jira refused the old token"
    );

    let text = stop(daemon);
    assert!(text.contains("Key Vault secret changed"), "{text}");
    let db = std::fs::read(&env.db).unwrap();
    for secret in [JIRA_API_TOKEN, rotated] {
        assert!(
            !text.contains(secret),
            "a Key Vault secret leaked into the log"
        );
        assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
}

#[test]
fn a_key_vault_secret_that_cannot_be_read_stops_start_up_naming_the_role() {
    let env = Env::start(1);
    jira_token_in_key_vault(&env);
    env.sims.keyvault.set_readers(&["someone-else"]);
    let out = run_once(&env, &[], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("Key Vault contoso-soc-kv: secret jira-api-token"),
        "{text}"
    );
    assert!(text.contains("ForbiddenByRbac"), "{text}");
    assert!(
        text.contains(&format!("app {GRAPH_CLIENT_ID} may not read it")),
        "{text}"
    );
    assert!(
        text.contains("\"Key Vault Secrets User\" role on vault contoso-soc-kv"),
        "{text}"
    );
    assert_eq!(env.sims.jira.kit.request_count(), 0, "nothing ran");

    // A secret that is not there.
    let text = std::fs::read_to_string(&env.config).unwrap();
    let typo = text.replace("secrets/jira-api-token\"", "secrets/jira-token-typo\"");
    std::fs::write(&env.config, typo).unwrap();
    env.sims.keyvault.set_readers(&[GRAPH_CLIENT_ID]);
    let out = run_once(&env, &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("SecretNotFound"), "{}", stderr(&out));
}

#[test]
fn an_expired_secret_makes_its_pairs_unhealthy_without_a_retry_storm() {
    use std::io::BufRead;
    let env = Env::start(2);
    env.sims.login.expire_secret(TENANT_ID, GRAPH_CLIENT_ID);
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text.replacen(
        "\n[http]\n",
        "\n[server]\nlisten = \"127.0.0.1:0\"\n\n[http]\n",
        1,
    );
    std::fs::write(&env.config, text).unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_itsm-bridge"))
        .args(["run", "--config", env.config.to_str().unwrap()])
        .current_dir(env.dir.path())
        .env("RUST_LOG", "warn,itsm_bridge=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(daemon.stderr.take().unwrap()).lines();
    let address: std::net::SocketAddr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("listen=").map(str::to_string))
        })
        .expect("the daemon logs its address")
        .parse()
        .unwrap();
    std::thread::spawn(move || for _ in lines {});
    // Two cycles of the Defender pair (every 10 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        let (code, _, body) = crate::daemon::get(address, "/healthz");
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        let runs = health["pairs"][0]["cycle"]["runs"].as_u64().unwrap_or(0);
        if code == 503 && runs >= 2 {
            break health;
        }
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(250));
    };
    let _ = daemon.kill();
    let _ = daemon.wait();
    let defender = &body["pairs"][0];
    assert_eq!(defender["pair"], "defender->jira");
    assert_eq!(defender["ok"], false);
    let error = defender["error"].as_str().unwrap();
    assert!(error.contains("AADSTS7000222"), "{error}");
    assert!(
        error.contains(&format!(
            "app {GRAPH_CLIENT_ID}'s client secret is expired or revoked: create a new one"
        )),
        "{error}"
    );
    // The Sentinel pairs sign in with another app and stay healthy.
    assert_eq!(body["pairs"][1]["ok"], true, "{body}");
    let refused = env
        .sims
        .login
        .kit
        .requests()
        .iter()
        .filter(|r| r.status == 401)
        .count();
    assert_eq!(
        refused, 1,
        "the expired secret was sent once, not at every cycle"
    );
}

#[test]
fn doctor_reads_each_key_vault_secret_and_names_the_missing_role() {
    let env = Env::start(1);
    jira_token_in_key_vault(&env);
    let doctor = |env: &Env| {
        Command::new(env!("CARGO_BIN_EXE_itsm-bridge"))
            .args(["doctor", "--config", env.config.to_str().unwrap()])
            .current_dir(env.dir.path())
            .output()
            .unwrap()
    };
    let out = doctor(&env);
    let text = stdout(&out);
    assert!(text.contains("Key Vault secret jira-api-token"), "{text}");
    assert!(text.contains("read from vault contoso-soc-kv"), "{text}");
    assert!(!text.contains(JIRA_API_TOKEN), "{text}");

    env.sims.keyvault.set_readers(&["someone-else"]);
    let out = doctor(&env);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("403: the identity lacks the role"), "{text}");
    assert!(text.contains("Key Vault Secrets User"), "{text}");
}

#[test]
fn the_ledger_signing_key_can_live_in_key_vault() {
    let env = Env::start(1);
    let key_file = env.dir.path().join("ledger.key");
    assert_success(&env.bridge(&["ledger", "keygen", "--out", key_file.to_str().unwrap()]));
    let pem = std::fs::read_to_string(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    env.sims.keyvault.set_secret("ledger-signing-key", &pem);
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = format!(
        "{text}\n[ledger]\nsigning_key = {{ key_vault = \"{VAULT_URL}/secrets/ledger-signing-key\" }}\n\n[azure]\nidentity = \"defender\"\nkey_vault_endpoint_override_for_tests = \"{}\"\n",
        env.sims.keyvault.base_url()
    );
    std::fs::write(&env.config, text).unwrap();
    env.sync();
    let out = env.bridge(&[
        "ledger",
        "checkpoint",
        "--config",
        env.config.to_str().unwrap(),
    ]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("checkpoint written"),
        "{}",
        stdout(&out)
    );
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains("PRIVATE KEY"), "{all}");
}
