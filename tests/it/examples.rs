//! The examples the documentation points at are valid.

use std::path::Path;

use bridge_core::config::{self, TicketAuth};

fn example() -> (std::path::PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("bridge.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

#[test]
fn the_example_config_and_the_shipped_mappings_load() {
    let (path, _) = example();
    let config =
        config::load(&path).unwrap_or_else(|e| panic!("bridge.example.toml does not load:\n{e}"));
    assert_eq!(config.syncs.len(), 3);
    assert_eq!(
        config.sources[0].scope,
        "https://graph.microsoft.com/.default"
    );
    assert_eq!(
        config.sources[1].scope,
        "https://management.azure.com/.default"
    );
    assert!(config.ticket_systems[0].mapping.fields.len() >= 5);
    assert!(
        config
            .ticket_system("helpdesk")
            .unwrap()
            .mapping
            .api
            .is_some()
    );
}

#[test]
fn servicenow_can_sign_in_with_oauth_client_credentials() {
    let (path, text) = example();
    let oauth = text
        .replace(
            "username = \"itsm.bridge\"",
            "client_id = \"0123456789abcdef\"",
        )
        .replace(
            "password = { env = \"BRIDGE_SNOW_PASSWORD\" }",
            "client_secret = { env = \"BRIDGE_SNOW_CLIENT_SECRET\" }",
        );
    assert_ne!(oauth, text);
    let parsed = config::parse(&path, &oauth).unwrap_or_else(|e| panic!("{e}"));
    let snow = parsed.ticket_system("snow").unwrap();
    assert!(matches!(
        &snow.auth,
        TicketAuth::OAuthClient { client_id, .. } if client_id == "0123456789abcdef"
    ));
    // Both ways of signing in at once is a mistake, named where it stands.
    let both = oauth.replace(
        "client_id = \"0123456789abcdef\"",
        "client_id = \"0123456789abcdef\"\nusername = \"x\"",
    );
    let err = config::parse(&path, &both).unwrap_err().to_string();
    assert!(err.contains("`username`"), "{err}");
}

#[test]
fn each_auth_choice_and_key_vault_in_the_example_load() {
    let (path, text) = example();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("graph-app.pem");
    std::fs::write(&pem, connectors::auth::certificate::testdata::APP_PEM).unwrap();
    let secret_line = "client_secret = { env = \"BRIDGE_GRAPH_SECRET\" }";
    assert!(text.contains(secret_line));
    for auth in [
        format!("auth = \"client_certificate\"\ncertificate = \"{}\"", pem.display()),
        "auth = \"managed_identity\"\nresource_id = \"/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/bridge\"".to_string(),
        "auth = \"workload_identity\"\ntoken_file = \"/var/run/secrets/azure/tokens/azure-identity-token\"".to_string(),
    ] {
        let changed = text.replacen(secret_line, &auth, 1);
        let changed = if auth.contains("managed_identity") {
            changed.replacen("client_id = \"11111111-1111-1111-1111-111111111111\"\n", "", 1)
        } else {
            changed
        };
        config::parse(&path, &changed).unwrap_or_else(|e| panic!("{auth}: {e}"));
    }
    let cli = text
        .replacen(secret_line, "auth = \"azure_cli\"", 1)
        .replacen(
            "client_id = \"11111111-1111-1111-1111-111111111111\"\n",
            "",
            1,
        );
    config::parse(&path, &cli).unwrap_or_else(|e| panic!("{e}"));
    let key_vault = text
        .replace(
            "api_token = { env = \"BRIDGE_JIRA_TOKEN\" }",
            "api_token = { key_vault = \"https://contoso-kv.vault.azure.net/secrets/jira-token\" }",
        )
        .replace("# [azure]", "[azure]")
        .replace("# identity = \"defender\"", "identity = \"defender\"")
        .replace("# key_vault_refresh = \"1h\"", "key_vault_refresh = \"1h\"");
    let parsed = config::parse(&path, &key_vault).unwrap_or_else(|e| panic!("{e}"));
    assert!(parsed.azure.identity.is_some());
}
