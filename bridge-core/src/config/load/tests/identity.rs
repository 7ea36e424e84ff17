//! `auth` choices, their keys, `[azure]` and Key Vault references.

use super::*;
use crate::config::{KeyVaultRef, UserAssigned};

const TENANT: &str = "00000000-0000-0000-0000-000000000000";
const PEM: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n";

fn source(auth_lines: &str) -> String {
    format!("[[source]]\nname = \"defender\"\nkind = \"graph\"\n{auth_lines}\n")
}

fn load_ok(text: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, Config) {
    let dir = workspace();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let config = parse(&dir.path().join("bridge.toml"), text).unwrap_or_else(|e| panic!("{e}"));
    (dir, config)
}

#[test]
fn each_auth_choice_is_read_with_its_keys() {
    let cert = source(&format!(
        "auth = \"client_certificate\"\ntenant_id = \"{TENANT}\"\nclient_id = \"c\"\ncertificate = \"app.pem\""
    ));
    let (dir, config) = load_ok(&format!("{cert}\n{TICKETS}\n{SYNC}"), &[("app.pem", PEM)]);
    assert_eq!(
        config.sources[0].auth,
        SourceAuth::ClientCertificate {
            certificate: dir.path().join("app.pem"),
            password: None,
        }
    );

    let mi = source(&format!(
        "auth = \"managed_identity\"\ntenant_id = \"{TENANT}\"\nclient_id = \"uami-client\""
    ));
    let (_dir, config) = load_ok(&format!("{mi}\n{TICKETS}\n{SYNC}"), &[]);
    assert_eq!(
        config.sources[0].auth,
        SourceAuth::ManagedIdentity {
            user_assigned: Some(UserAssigned::ClientId("uami-client".into()))
        }
    );
    let rid = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/bridge";
    let mi = source(&format!(
        "auth = \"managed_identity\"\ntenant_id = \"{TENANT}\"\nresource_id = \"{rid}\""
    ));
    let (_dir, config) = load_ok(&format!("{mi}\n{TICKETS}\n{SYNC}"), &[]);
    assert_eq!(
        config.sources[0].auth,
        SourceAuth::ManagedIdentity {
            user_assigned: Some(UserAssigned::ResourceId(rid.into()))
        }
    );
    assert_eq!(config.sources[0].client_id, "");

    let wi = source(&format!(
        "auth = \"workload_identity\"\ntenant_id = \"{TENANT}\"\nclient_id = \"c\"\ntoken_file = \"token\""
    ));
    let (dir, config) = load_ok(&format!("{wi}\n{TICKETS}\n{SYNC}"), &[]);
    assert_eq!(
        config.sources[0].auth,
        SourceAuth::WorkloadIdentity {
            token_file: dir.path().join("token")
        }
    );

    let cli = source(&format!("auth = \"azure_cli\"\ntenant_id = \"{TENANT}\""));
    let (_dir, config) = load_ok(&format!("{cli}\n{TICKETS}\n{SYNC}"), &[]);
    assert_eq!(config.sources[0].auth, SourceAuth::AzureCli);
}

#[test]
fn auth_problems_name_the_key_and_the_fix() {
    type AuthCase = (String, Vec<(&'static str, &'static str)>, &'static str);
    let cases: Vec<AuthCase> = vec![
        (
            source(&format!("auth = \"certificate\"\ntenant_id = \"{TENANT}\"")),
            vec![],
            "bridge.toml:4:8: unknown auth `certificate`; write \"client_secret\"",
        ),
        (
            source(&format!(
                "auth = \"azure_cli\"\ntenant_id = \"{TENANT}\"\nclient_secret = {{ env = \"S\" }}"
            )),
            vec![],
            "bridge.toml:6:1: `client_secret` is not used with auth = \"azure_cli\"; remove it",
        ),
        (
            source(&format!(
                "auth = \"client_certificate\"\ntenant_id = \"{TENANT}\"\nclient_id = \"c\""
            )),
            vec![],
            "bridge.toml:1:1: add certificate = \"/path/to/app.pem\"",
        ),
        (
            source(&format!(
                "auth = \"client_certificate\"\ntenant_id = \"{TENANT}\"\nclient_id = \"c\"\ncertificate = \"app.pfx\"\ncertificate_password = {{ env = \"P\" }}"
            )),
            vec![("app.pfx", "binary")],
            "app.pfx is neither PEM nor PKCS#12",
        ),
        (
            source(&format!(
                "auth = \"client_certificate\"\ntenant_id = \"{TENANT}\"\nclient_id = \"c\"\ncertificate = \"app.pem\""
            )),
            vec![(
                "app.pem",
                "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n-----BEGIN ENCRYPTED PRIVATE KEY-----\nMA==\n-----END ENCRYPTED PRIVATE KEY-----\n",
            )],
            "holds an encrypted private key; add certificate_password",
        ),
        (
            source(&format!(
                "auth = \"client_certificate\"\ntenant_id = \"{TENANT}\"\nclient_id = \"c\"\ncertificate = \"app.pem\""
            )),
            vec![(
                "app.pem",
                "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n",
            )],
            "app.pem holds no private key",
        ),
        (
            source(&format!(
                "auth = \"managed_identity\"\ntenant_id = \"{TENANT}\"\nclient_id = \"c\"\nresource_id = \"/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/b\""
            )),
            vec![],
            "bridge.toml:7:15: give a user-assigned identity's client_id or its resource_id, not both",
        ),
        (
            source(&format!(
                "auth = \"managed_identity\"\ntenant_id = \"{TENANT}\"\nresource_id = \"bridge-identity\""
            )),
            vec![],
            "bridge.toml:6:15: resource_id must be a user-assigned identity's resource id",
        ),
    ];
    for (config, files, says) in cases {
        let text = format!("{config}\n{TICKETS}\n{SYNC}");
        let found = errors(&text, &files);
        assert!(
            found.iter().any(|e| e.contains(says)),
            "{says}\nnot in\n{found:#?}\nfor\n{text}"
        );
    }
}

#[test]
fn key_vault_references_need_an_identity() {
    let kv = "{ key_vault = \"https://contoso-kv.vault.azure.net/secrets/jira-token\" }";
    let tickets = TICKETS.replace("{ env = \"T\" }", kv);
    let found = errors(&format!("{SOURCE}\n{tickets}\n{SYNC}"), &[]);
    assert!(
        found
            .iter()
            .any(|e| e.contains("bridge.toml:13:13: a Key Vault secret needs an identity")),
        "{found:#?}"
    );

    let named = format!(
        "{SOURCE}\n{tickets}\n{SYNC}\n[azure]\nidentity = \"defender\"\nkey_vault_refresh = \"10m\"\n"
    );
    let (_dir, config) = load_ok(&named, &[]);
    let identity = config.azure.identity.clone().unwrap();
    assert_eq!(identity.tenant_id, TENANT);
    assert_eq!(config.azure.key_vault_refresh, Duration::from_secs(600));
    let (key, secret) = config.ticket_systems[0].auth.secret();
    assert_eq!(key, "api_token");
    assert_eq!(
        secret,
        &SecretRef::KeyVault(
            KeyVaultRef::parse("https://contoso-kv.vault.azure.net/secrets/jira-token").unwrap()
        )
    );
    // `check` does not go to the network: a Key Vault reference is not read there.
    check_secrets(&config).unwrap_err(); // S (the source's secret) is not set
    let refs = config.secret_refs();
    assert!(refs.iter().any(|(_, _, r)| r.key_vault().is_some()));

    let unknown = format!("{SOURCE}\n{tickets}\n{SYNC}\n[azure]\nidentity = \"nope\"\n");
    let found = errors(&unknown, &[]);
    assert!(
        found
            .iter()
            .any(|e| e.contains("there is no [[source]] named `nope`")),
        "{found:#?}"
    );
    let own = format!(
        "{SOURCE}\n{tickets}\n{SYNC}\n[azure]\nauth = \"managed_identity\"\ntenant_id = \"{TENANT}\"\n"
    );
    let (_dir, config) = load_ok(&own, &[]);
    assert_eq!(
        config.azure.identity.unwrap().auth,
        SourceAuth::ManagedIdentity {
            user_assigned: None
        }
    );
    // The identity that reads Key Vault cannot keep its own secret there.
    let circular = SOURCE.replace(
        "{ env = \"S\" }",
        "{ key_vault = \"https://contoso-kv.vault.azure.net/secrets/graph\" }",
    );
    let found = errors(
        &format!("{circular}\n{tickets}\n{SYNC}\n[azure]\nidentity = \"defender\"\n"),
        &[],
    );
    assert!(
        found
            .iter()
            .any(|e| e.contains("so its client_secret cannot be kept there")),
        "{found:#?}"
    );
    let bad = TICKETS.replace(
        "{ env = \"T\" }",
        "{ key_vault = \"https://contoso-kv.example.com/secrets/x\" }",
    );
    let found = errors(&format!("{SOURCE}\n{bad}\n{SYNC}"), &[]);
    assert!(
        found.iter().any(|e| e.contains("is not a Key Vault host")),
        "{found:#?}"
    );
}
