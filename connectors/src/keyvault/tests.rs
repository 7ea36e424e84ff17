//! The Key Vault simulator's answers over HTTP, and the client's reading of them.

use std::sync::Arc;

use bridge_core::config::KeyVaultRef;
use secrecy::{ExposeSecret, SecretString};

use super::client::{KeyVaultClient, KeyVaultProblem};
use super::sim::{AUDIENCE, KeyVaultSim};
use crate::auth::registry::TokenRegistry;
use crate::http::{HttpSettings, TokenProvider, build_client};
use crate::simkit::{SimTls, bind_loopback};

const TENANT: &str = "0b3c6f0e-1d2a-4e9c-9a7b-2f6d3c1e9e9c";

async fn start() -> (KeyVaultSim, reqwest::Client, Arc<TokenRegistry>) {
    let tls = SimTls::generate().unwrap();
    let registry = TokenRegistry::new();
    let sim = KeyVaultSim::start(
        bind_loopback(0).await.unwrap(),
        registry.clone(),
        tls.clone(),
        TENANT,
    )
    .await;
    let client = build_client(&HttpSettings {
        ca_bundle_pem: Some(tls.ca_pem.as_bytes().to_vec()),
        ..Default::default()
    })
    .unwrap();
    (sim, client, registry)
}

async fn get(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

#[tokio::test]
async fn the_simulator_answers_as_key_vault() {
    let (sim, client, registry) = start().await;
    let version = sim.set_secret("jira-token", "s3cr3t");
    let url = |path: &str| format!("{}{path}", sim.base_url());

    let (status, headers, body) =
        get(&client, url("/secrets/jira-token?api-version=7.4"), None).await;
    assert_eq!(status, 401, "{body}");
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert_eq!(
        challenge,
        format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{TENANT}\", resource=\"https://vault.azure.net\""
        )
    );
    let (graph, _) = registry.issue_for("https://graph.microsoft.com", "app");
    let (status, _, _) = get(
        &client,
        url("/secrets/jira-token?api-version=7.4"),
        Some(&graph),
    )
    .await;
    assert_eq!(status, 401, "a Graph token is not a vault token");

    let (token, _) = registry.issue_for(AUDIENCE, "app");
    let (status, _, body) = get(
        &client,
        url("/secrets/jira-token?api-version=7.4"),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["value"], "s3cr3t");
    assert!(
        body["id"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/secrets/jira-token/{version}"))
    );
    assert_eq!(body["attributes"]["enabled"], true);
    assert_eq!(body["contentType"], "text/plain");
    let (status, _, body) = get(
        &client,
        url(&format!("/secrets/jira-token/{version}?api-version=7.4")),
        Some(&token),
    )
    .await;
    assert_eq!((status, body["value"].as_str()), (200, Some("s3cr3t")));

    let (status, _, body) = get(&client, url("/secrets/nope?api-version=7.4"), Some(&token)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("SecretNotFound"))
    );
    let (status, _, body) = get(
        &client,
        url("/secrets/jira-token?api-version=6.0"),
        Some(&token),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("BadParameter"))
    );

    sim.set_readers(&["someone-else"]);
    let (status, _, body) = get(
        &client,
        url("/secrets/jira-token?api-version=7.4"),
        Some(&token),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "Forbidden");
    assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByRbac");
    sim.shutdown();
}

/// A token provider handing out registry tokens for Key Vault.
struct VaultTokens(Arc<TokenRegistry>, &'static str);

#[async_trait::async_trait]
impl TokenProvider for VaultTokens {
    async fn token(&self) -> bridge_core::ports::ConnectorResult<SecretString> {
        Ok(SecretString::from(self.0.issue_for(AUDIENCE, self.1).0))
    }
    async fn invalidate(&self) {}
}

#[tokio::test]
async fn the_client_reads_a_secret_and_names_the_role_it_lacks() {
    let (sim, http, registry) = start().await;
    sim.set_secret("jira-token", "v1");
    let client = KeyVaultClient::new(
        http,
        Arc::new(VaultTokens(registry, "app-1")),
        "app app-1".into(),
        Some(sim.base_url()),
    );
    let reference =
        KeyVaultRef::parse("https://contoso-kv.vault.azure.net/secrets/jira-token").unwrap();
    assert_eq!(client.get(&reference).await.unwrap().expose_secret(), "v1");

    sim.set_readers(&["app-2"]);
    let problem = client.get(&reference).await.unwrap_err();
    assert!(
        matches!(problem, KeyVaultProblem::Forbidden(_)),
        "{problem:?}"
    );
    let message = client.describe(&reference, &problem);
    assert!(
        message.starts_with(
            "Key Vault contoso-kv: secret jira-token: app app-1 may not read it (ForbiddenByRbac"
        ),
        "{message}"
    );
    assert!(
        message.contains("\"Key Vault Secrets User\" role on vault contoso-kv"),
        "{message}"
    );

    let missing = KeyVaultRef::parse("https://contoso-kv.vault.azure.net/secrets/other").unwrap();
    sim.set_readers(&["app-1"]);
    let problem = client.get(&missing).await.unwrap_err();
    assert!(
        matches!(problem, KeyVaultProblem::NotFound(_)),
        "{problem:?}"
    );
    sim.shutdown();
}
