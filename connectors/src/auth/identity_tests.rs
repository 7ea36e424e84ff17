//! Each `auth` choice through azure_identity's real credential against the
//! simulators, and a dead credential that is not asked about again.

use std::path::PathBuf;

use azure_core::http::RetryOptions;
use bridge_core::config::{AzureIdentity, SourceAuth};
use bridge_core::ports::ErrorKind;
use secrecy::{ExposeSecret, SecretString};

use super::certificate::testdata::{APP_PEM, OTHER_PEM, certificate_der};
use super::registry::TokenRegistry;
use super::sim::TokenSim;
use super::*;
use crate::http::{HttpSettings, build_client};
use crate::simkit::{SimTls, bind_loopback};

const TENANT: &str = "0b3c6f0e-1d2a-4e9c-9a7b-2f6d3c1e9e9c";
const CLIENT: &str = "11111111-1111-1111-1111-111111111111";
const GRAPH: &str = "https://graph.microsoft.com";
const ISSUER: &str = "https://oidc.prod-aks.azure.com/sim-cluster/";
const SUBJECT: &str = "system:serviceaccount:soc:itsm-bridge";

async fn start() -> (TokenSim, reqwest::Client, tempfile::TempDir) {
    let tls = SimTls::generate().unwrap();
    let sim = TokenSim::start(
        bind_loopback(0).await.unwrap(),
        TokenRegistry::new(),
        tls.clone(),
    )
    .await;
    let client = build_client(&HttpSettings {
        ca_bundle_pem: Some(tls.ca_pem.as_bytes().to_vec()),
        ..Default::default()
    })
    .unwrap();
    (sim, client, tempfile::tempdir().unwrap())
}

fn provider(sim: &TokenSim, client: reqwest::Client, auth: SourceAuth) -> EntraTokenProvider {
    let identity = AzureIdentity {
        authority_host: sim.authority_host(),
        tenant_id: TENANT.into(),
        client_id: CLIENT.into(),
        auth,
    };
    EntraTokenProvider::for_identity(&identity, None, format!("{GRAPH}/.default"), client)
        .unwrap()
        .with_retry(RetryOptions::none())
        .unwrap()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_registered_certificate_gets_a_token() {
    let (sim, client, dir) = start().await;
    sim.register_certificate(TENANT, CLIENT, &certificate_der(APP_PEM));
    let certificate = write(&dir, "app.pem", APP_PEM);
    let tokens = provider(
        &sim,
        client,
        SourceAuth::ClientCertificate {
            certificate,
            password: None,
        },
    );
    let token = tokens.token().await.unwrap();
    let header = format!("Bearer {}", token.expose_secret());
    assert_eq!(sim.registry.check(Some(&header), GRAPH), Ok(()));
    // The app has no secret at all: the assertion alone signed in.
    sim.shutdown();
}

#[tokio::test]
async fn an_unregistered_certificate_is_refused_once_and_not_asked_again() {
    let (sim, client, dir) = start().await;
    sim.register_certificate(TENANT, CLIENT, &certificate_der(APP_PEM));
    let certificate = write(&dir, "app.pem", OTHER_PEM);
    let tokens = provider(
        &sim,
        client,
        SourceAuth::ClientCertificate {
            certificate: certificate.clone(),
            password: None,
        },
    );
    let error = tokens.token().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Auth, "{error}");
    assert!(error.message.contains("AADSTS700027"), "{error}");
    assert!(
        error
            .message
            .contains(&format!("app {CLIENT} does not accept the certificate")),
        "{error}"
    );
    assert_eq!(sim.kit.request_count(), 1);
    // No retry storm: the same dead credential is not sent again.
    let again = tokens.token().await.unwrap_err();
    assert_eq!(again.message, error.message);
    assert_eq!(sim.kit.request_count(), 1);
    // A renewed file is worth a try.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&certificate, APP_PEM).unwrap();
    let file = std::fs::File::options()
        .append(true)
        .open(&certificate)
        .unwrap();
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(1))
        .unwrap();
    tokens.invalidate().await;
    tokens.token().await.unwrap();
    assert_eq!(sim.kit.request_count(), 2);
    sim.shutdown();
}

#[tokio::test]
async fn a_federated_token_file_gets_a_token() {
    let (sim, client, dir) = start().await;
    sim.register_federated(TENANT, CLIENT, ISSUER, SUBJECT);
    let token_file = write(&dir, "token", &sim.federated_token(ISSUER, SUBJECT, 3600));
    let tokens = provider(
        &sim,
        client.clone(),
        SourceAuth::WorkloadIdentity { token_file },
    );
    let token = tokens.token().await.unwrap();
    let header = format!("Bearer {}", token.expose_secret());
    assert_eq!(sim.registry.check(Some(&header), GRAPH), Ok(()));

    // Another service account's token matches no federated credential.
    let other = write(
        &dir,
        "other",
        &sim.federated_token(ISSUER, "system:serviceaccount:x:y", 3600),
    );
    let tokens = provider(
        &sim,
        client,
        SourceAuth::WorkloadIdentity { token_file: other },
    );
    let error = tokens.token().await.unwrap_err();
    assert!(error.message.contains("AADSTS70021"), "{error}");
    sim.shutdown();
}

#[tokio::test]
async fn an_expired_secret_names_the_app_and_what_to_renew() {
    let (sim, client, _dir) = start().await;
    sim.register_app(TENANT, CLIENT, "the-secret");
    sim.expire_secret(TENANT, CLIENT);
    let tokens = EntraTokenProvider::new(
        &sim.authority_host(),
        TENANT,
        CLIENT,
        SecretString::from("the-secret".to_string()),
        format!("{GRAPH}/.default"),
        client,
    )
    .unwrap();
    let error = tokens.token().await.unwrap_err();
    assert!(error.message.contains("AADSTS7000222"), "{error}");
    assert!(
        error.message.contains(&format!(
            "app {CLIENT}'s client secret is expired or revoked: create a new one"
        )),
        "{error}"
    );
    assert!(!error.message.contains("the-secret"), "{error}");
    tokens.token().await.unwrap_err();
    tokens.invalidate().await;
    tokens.token().await.unwrap_err();
    assert_eq!(sim.kit.request_count(), 1, "a dead secret is sent once");
    sim.shutdown();
}

/// Key Vault, as far as a cell sees it: whatever `value` holds now.
struct Vault(std::sync::Mutex<String>);

#[async_trait::async_trait]
impl crate::keyvault::SecretFetch for Vault {
    async fn fetch(&self, _: &bridge_core::config::KeyVaultRef) -> Result<SecretString, String> {
        Ok(SecretString::from(self.0.lock().unwrap().clone()))
    }
}

#[tokio::test]
async fn a_client_secret_rotated_in_key_vault_is_fetched_again_when_entra_refuses_the_old_one() {
    let (sim, client, _dir) = start().await;
    let vault = std::sync::Arc::new(Vault(std::sync::Mutex::new("old-secret".into())));
    let cell = crate::keyvault::SecretCell::key_vault(
        SecretString::from("old-secret".to_string()),
        bridge_core::config::KeyVaultRef::parse("https://kvrot.vault.azure.net/secrets/graph")
            .unwrap(),
        vault.clone(),
        std::time::Duration::from_secs(3600),
    );
    let identity = AzureIdentity {
        authority_host: sim.authority_host(),
        tenant_id: TENANT.into(),
        client_id: CLIENT.into(),
        auth: SourceAuth::ClientSecret {
            client_secret: bridge_core::config::SecretRef::Env("UNUSED".into()),
        },
    };
    let tokens = EntraTokenProvider::for_identity(
        &identity,
        Some(cell.clone()),
        format!("{GRAPH}/.default"),
        client,
    )
    .unwrap()
    .with_retry(RetryOptions::none())
    .unwrap();
    // Rotated since it was fetched: the app takes only the new secret, which the
    // vault holds. Entra's AADSTS7000215 makes the provider fetch it and try again.
    sim.register_app(TENANT, CLIENT, "new-secret");
    *vault.0.lock().unwrap() = "new-secret".into();
    cell.age_by(std::time::Duration::from_secs(10));
    let token = tokens.token().await.unwrap();
    assert_eq!(sim.kit.request_count(), 2, "refused once, then signed in");
    let header = format!("Bearer {}", token.expose_secret());
    assert_eq!(sim.registry.check(Some(&header), GRAPH), Ok(()));
    sim.shutdown();
}
