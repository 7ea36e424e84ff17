//! Entra ID tokens for the Microsoft sources: [`EntraTokenProvider`] wraps
//! azure_identity's `ClientSecretCredential`, sends its requests through the bridge's
//! own reqwest client (so `[http]` proxy, CA bundle and timeout apply to token
//! requests too) and turns its errors into [`ConnectorError`]s that carry Entra's
//! `error` and AADSTS code but never the secret. Also the token endpoint simulator
//! ([`sim`]) and the registry of issued tokens the other simulators check
//! ([`registry`]).

pub mod certificate;
mod credentials;
pub mod doctor;
#[cfg(test)]
mod identity_tests;
pub mod mi_sim;
pub mod registry;
pub mod sim;
pub mod sim_assertion;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::Bytes;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{TokenCredential, TokenRequestOptions};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{
    AsyncRawResponse, ClientMethodOptions, ClientOptions, Context, ExponentialRetryOptions,
    Request, RetryOptions, Transport, headers,
};
use bridge_core::config::{AzureIdentity, SourceAuth};
use bridge_core::ports::{ConnectorError, ConnectorResult, ErrorKind};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::http::TokenProvider;
use crate::keyvault::SecretCell;

/// The `system` named in errors from the token endpoint.
const SYSTEM: &str = "entra";

/// Bearer tokens from Entra ID for one identity (`auth`: client secret, client
/// certificate, managed identity, workload identity or the Azure CLI), each through
/// azure_identity's own credential.
///
/// azure_identity caches the token and fetches a new one five minutes before it
/// expires. Its cache cannot be cleared, so [`TokenProvider::invalidate`] replaces
/// the whole credential; the new one shares the same reqwest client (and pool). A
/// client secret is read from its [`SecretCell`] (a Key Vault secret may rotate).
pub struct EntraTokenProvider {
    identity: AzureIdentity,
    scope: String,
    client_options: ClientOptions,
    secret: Option<Arc<SecretCell>>,
    current: Mutex<Current>,
    /// A refusal that only the admin can fix (an expired secret, a revoked
    /// certificate): kept, and given again without asking Entra until the
    /// credential changes, so a broken credential makes no retry storm.
    refused: Mutex<Option<Refusal>>,
}

struct Current {
    credential: Arc<dyn TokenCredential>,
    /// The client secret the credential was built with.
    built_with: Option<SecretString>,
}

#[derive(Clone)]
struct Refusal {
    error: ConnectorError,
    /// The client secret that was refused (a new one is worth a try).
    secret: Option<SecretString>,
    /// The certificate file's modification time (a renewed file is worth a try).
    file_stamp: Option<std::time::SystemTime>,
}

impl std::fmt::Debug for EntraTokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraTokenProvider")
            .field("authority_host", &self.identity.authority_host)
            .field("tenant_id", &self.identity.tenant_id)
            .field("client_id", &self.identity.client_id)
            .field("auth", &self.identity.auth.name())
            .field("scope", &self.scope)
            .finish()
    }
}

/// The credential's own retries (429, 5xx, connection errors): few and short,
/// because the bridge's HTTP layer and the scheduler retry on top of them.
fn default_retry() -> RetryOptions {
    RetryOptions::exponential(ExponentialRetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(200),
        max_retries: 3,
        max_total_elapsed: azure_core::time::Duration::seconds(15),
        max_delay: azure_core::time::Duration::seconds(2),
    })
}

/// The AADSTS codes that mean the credential itself is dead: an invalid or
/// expired client secret, a certificate or assertion Entra refuses. Retrying
/// cannot help; renewing the credential does.
const DEAD_CREDENTIAL: [&str; 3] = ["AADSTS7000215", "AADSTS7000222", "AADSTS700027"];

impl EntraTokenProvider {
    /// A provider for `scope` (e.g. `https://graph.microsoft.com/.default`) signing
    /// in with a client secret, whose token requests go through `client`. Checks
    /// the settings but makes no request.
    pub fn new(
        authority_host: &str,
        tenant_id: &str,
        client_id: &str,
        client_secret: SecretString,
        scope: String,
        client: reqwest::Client,
    ) -> ConnectorResult<EntraTokenProvider> {
        let identity = AzureIdentity {
            authority_host: authority_host.to_string(),
            tenant_id: tenant_id.to_string(),
            client_id: client_id.to_string(),
            auth: SourceAuth::ClientSecret {
                // Not read: the value is the cell's.
                client_secret: bridge_core::config::SecretRef::Env(String::new()),
            },
        };
        EntraTokenProvider::for_identity(
            &identity,
            Some(SecretCell::fixed(client_secret)),
            scope,
            client,
        )
    }

    /// A provider for `scope` signing in as `identity`; `secret` holds the client
    /// secret when `identity.auth` is `client_secret`. Checks the settings (and
    /// reads a certificate file) but makes no request.
    pub fn for_identity(
        identity: &AzureIdentity,
        secret: Option<Arc<SecretCell>>,
        scope: String,
        client: reqwest::Client,
    ) -> ConnectorResult<EntraTokenProvider> {
        let config_error =
            |message: String| ConnectorError::new(ErrorKind::Permanent, SYSTEM, message);
        let authority_host = identity.authority_host.as_str();
        let url = url::Url::parse(authority_host).map_err(|e| {
            config_error(format!(
                "authority_host is not a URL ({e}): set it to e.g. https://login.microsoftonline.com"
            ))
        })?;
        if url.scheme() != "https" {
            return Err(config_error(format!(
                "authority_host must use https (got {}://{}): Entra ID is only reachable over TLS",
                url.scheme(),
                url.host_str().unwrap_or("")
            )));
        }
        if scope.trim().is_empty() {
            return Err(config_error(
                "scope is empty: set it to <base_url>/.default".into(),
            ));
        }
        if matches!(identity.auth, SourceAuth::ClientSecret { .. }) && secret.is_none() {
            return Err(config_error("client_secret is not set".into()));
        }
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = authority_host.trim_end_matches('/').to_string();
        let client_options = ClientOptions {
            cloud: Some(Arc::new(CloudConfiguration::Custom(cloud))),
            transport: Some(Transport::new(Arc::new(client))),
            retry: default_retry(),
            per_try_policies: vec![Arc::new(CaptureErrors)],
            ..Default::default()
        };
        let built_with = secret.as_ref().map(|s| s.current());
        let credential = credentials::build(identity, built_with.as_ref(), client_options.clone())?;
        Ok(EntraTokenProvider {
            identity: identity.clone(),
            scope,
            client_options,
            secret,
            current: Mutex::new(Current {
                credential,
                built_with,
            }),
            refused: Mutex::new(None),
        })
    }

    /// Replaces the credential's retry policy (tests use `RetryOptions::none()`).
    pub fn with_retry(mut self, retry: RetryOptions) -> ConnectorResult<EntraTokenProvider> {
        self.client_options.retry = retry;
        let built_with = self.secret.as_ref().map(|s| s.current());
        let credential = credentials::build(
            &self.identity,
            built_with.as_ref(),
            self.client_options.clone(),
        )?;
        *self.current.get_mut().expect("entra credential") = Current {
            credential,
            built_with,
        };
        Ok(self)
    }

    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The identity this provider signs in as.
    pub fn identity(&self) -> &AzureIdentity {
        &self.identity
    }

    /// The credential for `secret` (the client secret as it is now), rebuilt when
    /// the secret changed since it was built.
    fn credential_for(&self, secret: Option<&SecretString>) -> Arc<dyn TokenCredential> {
        let mut current = self.current.lock().expect("entra credential");
        let same = match (&current.built_with, secret) {
            (Some(a), Some(b)) => a.expose_secret() == b.expose_secret(),
            (None, None) => true,
            _ => false,
        };
        if !same {
            match credentials::build(&self.identity, secret, self.client_options.clone()) {
                Ok(credential) => {
                    *current = Current {
                        credential,
                        built_with: secret
                            .map(|s| SecretString::from(s.expose_secret().to_string())),
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error.message, "cannot rebuild the Entra ID credential")
                }
            }
        }
        current.credential.clone()
    }

    fn certificate_stamp(&self) -> Option<std::time::SystemTime> {
        match &self.identity.auth {
            SourceAuth::ClientCertificate { certificate, .. } => std::fs::metadata(certificate)
                .and_then(|m| m.modified())
                .ok(),
            SourceAuth::WorkloadIdentity { token_file } => std::fs::metadata(token_file)
                .and_then(|m| m.modified())
                .ok(),
            _ => None,
        }
    }

    /// The kept refusal, unless the credential changed since.
    fn kept_refusal(&self, secret: Option<&SecretString>) -> Option<ConnectorError> {
        let refused = self.refused.lock().expect("entra refusal");
        let refusal = refused.as_ref()?;
        let same_secret = match (&refusal.secret, secret) {
            (Some(a), Some(b)) => a.expose_secret() == b.expose_secret(),
            (None, None) => true,
            _ => false,
        };
        (same_secret && refusal.file_stamp == self.certificate_stamp())
            .then(|| refusal.error.clone())
    }
}

impl EntraTokenProvider {
    /// A token signing in with `secret` (the client secret as it is now, if any).
    async fn token_with(&self, secret: Option<SecretString>) -> ConnectorResult<SecretString> {
        if let Some(error) = self.kept_refusal(secret.as_ref()) {
            return Err(error);
        }
        let credential = self.credential_for(secret.as_ref());
        // The capture policy leaves Entra's error response here (see `CaptureErrors`).
        let slot = Arc::new(CapturedError::default());
        let options = TokenRequestOptions {
            method_options: ClientMethodOptions {
                context: Context::new().with_value(slot.clone()),
            },
        };
        let error = match credential
            .get_token(&[self.scope.as_str()], Some(options))
            .await
        {
            Ok(token) => return Ok(SecretString::from(token.token.secret().to_string())),
            Err(error) => error,
        };
        let captured = slot.0.lock().expect("captured entra error").take();
        let mut error = describe_error(
            &error,
            captured,
            &self.identity.authority_host,
            &self.identity.tenant_id,
        );
        if let Some(secret) = &secret {
            error = redact(error, secret.expose_secret());
        }
        if DEAD_CREDENTIAL
            .iter()
            .any(|code| error.message.contains(code))
        {
            error.message = format!("{}; {}", error.message, renew_advice(&self.identity));
            tracing::error!(
                tenant = %self.identity.tenant_id,
                app = %self.identity.client_id,
                error = %error.message,
                "Entra ID refused the credential"
            );
            *self.refused.lock().expect("entra refusal") = Some(Refusal {
                error: error.clone(),
                secret,
                file_stamp: self.certificate_stamp(),
            });
        }
        Err(error)
    }
}

/// What the admin renews for a dead credential of `identity`.
fn renew_advice(identity: &AzureIdentity) -> String {
    let app = &identity.client_id;
    match &identity.auth {
        SourceAuth::ClientSecret { .. } => format!(
            "app {app}'s client secret is expired or revoked: create a new one (app registration > Certificates & secrets) and put its value where client_secret points; the bridge will not ask Entra ID again with this one"
        ),
        SourceAuth::ClientCertificate { certificate, .. } => format!(
            "app {app} does not accept the certificate in {}: upload its current certificate to the app registration (Certificates & secrets), or renew it and replace the file; the bridge will not ask Entra ID again until the file changes",
            certificate.display()
        ),
        SourceAuth::WorkloadIdentity { token_file } => format!(
            "app {app} does not accept the federated token in {}: check the app's federated credential (issuer, subject system:serviceaccount:<namespace>:<service account>, audience api://AzureADTokenExchange)",
            token_file.display()
        ),
        _ => format!("renew the credential of app {app}"),
    }
}

#[async_trait]
impl TokenProvider for EntraTokenProvider {
    async fn token(&self) -> ConnectorResult<SecretString> {
        let secret = match &self.secret {
            Some(cell) => Some(cell.get().await),
            None => None,
        };
        match self.token_with(secret).await {
            // A secret kept in Key Vault may have been rotated there (and the old
            // one revoked): one fetch of it, and one more try if it changed.
            Err(error)
                if DEAD_CREDENTIAL.iter().any(|c| error.message.contains(c))
                    && self.secret.as_ref().is_some_and(|c| c.is_key_vault()) =>
            {
                let cell = self.secret.as_ref().expect("checked above");
                if cell.refetch().await {
                    self.token_with(Some(cell.current())).await
                } else {
                    Err(error)
                }
            }
            outcome => outcome,
        }
    }

    async fn invalidate(&self) {
        // A Key Vault secret may have been rotated: fetch it again first.
        if let Some(cell) = &self.secret {
            cell.refetch().await;
        }
        let secret = self.secret.as_ref().map(|s| s.current());
        match credentials::build(&self.identity, secret.as_ref(), self.client_options.clone()) {
            Ok(credential) => {
                *self.current.lock().expect("entra credential") = Current {
                    credential,
                    built_with: secret,
                }
            }
            // The settings were checked in `for_identity`, so this does not happen.
            Err(error) => {
                tracing::warn!(error = %error.message, "cannot rebuild the Entra ID credential")
            }
        }
    }
}

/// An error response from the token endpoint, as it came over the wire.
#[derive(Debug, Clone)]
struct ErrorResponse {
    status: u16,
    retry_after: Option<String>,
    body: Bytes,
}

/// Where [`CaptureErrors`] leaves the last error response of one `get_token` call.
#[derive(Debug, Default)]
struct CapturedError(Mutex<Option<ErrorResponse>>);

/// A per-try pipeline policy that keeps a copy of every non-2xx response in the
/// call's [`CapturedError`] slot. azure_identity 1.0 cannot read a real Entra error
/// body: it borrows `error_description` as `&str`, which serde_json refuses for a
/// string with escapes, and Entra's always holds `\r\n` before its Trace ID line. The
/// SDK then reports only a JSON error and drops the status and body; this copy is
/// what the bridge's error message is made from.
#[derive(Debug)]
struct CaptureErrors;

#[async_trait]
impl Policy for CaptureErrors {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let response = next[0].send(ctx, request, &next[1..]).await?;
        let Some(slot) = ctx.value::<Arc<CapturedError>>() else {
            return Ok(response);
        };
        if response.status().is_success() {
            return Ok(response);
        }
        let (status, response_headers, body) = response.deconstruct();
        let body = body.collect().await?;
        *slot.0.lock().expect("captured entra error") = Some(ErrorResponse {
            status: u16::from(status),
            retry_after: response_headers.get_optional_string(&headers::RETRY_AFTER),
            body: body.clone(),
        });
        Ok(AsyncRawResponse::from_bytes(status, response_headers, body))
    }
}

/// Entra's error body, as much of it as an error message needs.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EntraErrorBody {
    error: String,
    error_description: String,
    error_codes: Vec<i64>,
    trace_id: String,
    correlation_id: String,
}

/// What to tell the admin for the AADSTS codes that mean a setting is wrong.
fn hint(code: i64) -> Option<&'static str> {
    Some(match code {
        7000215 => {
            "check client_secret: it must be the secret's value, not its id, and not expired"
        }
        7000216 => "set client_secret",
        700016 => "check client_id and tenant_id: the app is not registered in that tenant",
        90002 => "check tenant_id and authority_host",
        70011 | 28000 | 500011 => "check scope: it must be <resource>/.default for one resource",
        _ => return None,
    })
}

/// Turns a failed `get_token` into a `ConnectorError`: an answer from Entra becomes
/// `Auth` (400/401/403), `RateLimited` (429), `Transient` (5xx) or `Permanent`; a
/// network or TLS failure becomes `Transient`.
fn describe_error(
    error: &azure_core::Error,
    captured: Option<ErrorResponse>,
    authority_host: &str,
    tenant_id: &str,
) -> ConnectorError {
    use azure_core::error::ErrorKind as AzureKind;
    let prefix = format!("token request to {authority_host} for tenant {tenant_id} failed");

    // azure_identity wraps the pipeline's error in a `Credential` error; walk down.
    let mut from_sdk = None;
    let mut transport = false;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut deepest = error.to_string();
    while let Some(e) = source {
        if let Some(azure) = e.downcast_ref::<azure_core::Error>() {
            match azure.kind() {
                AzureKind::HttpResponse {
                    status,
                    raw_response: Some(raw),
                    ..
                } if from_sdk.is_none() => {
                    from_sdk = Some(ErrorResponse {
                        status: u16::from(*status),
                        retry_after: raw.headers().get_optional_string(&headers::RETRY_AFTER),
                        body: Bytes::copy_from_slice(raw.body().as_ref()),
                    });
                }
                AzureKind::Io | AzureKind::Connection => transport = true,
                _ => {}
            }
        }
        deepest = e.to_string();
        source = e.source();
    }

    if let Some(response) = captured.or(from_sdk) {
        return describe_response(&prefix, &response);
    }
    if transport {
        return ConnectorError::new(
            ErrorKind::Transient,
            SYSTEM,
            format!("{prefix}: could not reach the token endpoint ({deepest})"),
        );
    }
    // A failure inside the SDK (say, a 200 whose body is not a token): worth another
    // try later.
    ConnectorError::new(
        ErrorKind::Transient,
        SYSTEM,
        format!(
            "{prefix}: {}",
            error.to_string().lines().next().unwrap_or("")
        ),
    )
}

fn describe_response(prefix: &str, response: &ErrorResponse) -> ConnectorError {
    let status = response.status;
    let retry_after = response
        .retry_after
        .as_deref()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64);
    let kind = match status {
        400 | 401 | 403 => ErrorKind::Auth,
        429 => ErrorKind::RateLimited(retry_after),
        500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    };
    let mut message = format!("{prefix}: HTTP {status}");
    match serde_json::from_slice::<EntraErrorBody>(&response.body) {
        Ok(body) => {
            if !body.error.is_empty() {
                message.push_str(&format!(" {}", body.error));
            }
            // The description's first line holds the AADSTS code and text; the trace
            // and correlation ids follow on lines of their own.
            let description = body.error_description.lines().next().unwrap_or("").trim();
            if !description.is_empty() {
                message.push_str(&format!(": {description}"));
            }
            let ids: Vec<String> = [
                ("trace id", &body.trace_id),
                ("correlation id", &body.correlation_id),
            ]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
            if !ids.is_empty() {
                message.push_str(&format!(" ({})", ids.join(", ")));
            }
            if let Some(hint) = body.error_codes.first().copied().and_then(hint) {
                message.push_str(&format!("; {hint}"));
            }
        }
        // Not Entra's JSON: a proxy's error page, say.
        Err(_) => {
            let text = String::from_utf8_lossy(&response.body[..response.body.len().min(200)]);
            let text = text.trim();
            if !text.is_empty() {
                message.push_str(&format!(": {text}"));
            }
        }
    }
    ConnectorError::new(kind, SYSTEM, message).with_status(status)
}

/// Belt and braces: a secret never leaves in an error message, whatever the server
/// or the SDK put in it.
fn redact(mut error: ConnectorError, secret: &str) -> ConnectorError {
    error.message = bridge_core::ports::redact_secret(&error.message, secret);
    error
}

#[cfg(test)]
mod tests {
    use super::registry::TokenRegistry;
    use super::sim::TokenSim;
    use super::*;
    use crate::http::{HttpSettings, build_client};
    use crate::simkit::{Fault, SimTls, bind_loopback};
    use azure_core::http::FixedRetryOptions;

    const TENANT: &str = "0b3c6f0e-1d2a-4e9c-9a7b-2f6d3c1e9e9c";
    const CLIENT: &str = "11111111-1111-1111-1111-111111111111";
    const SECRET: &str = "Qx8~correct.horse-battery_staple";
    const GRAPH: &str = "https://graph.microsoft.com";

    async fn start() -> (TokenSim, reqwest::Client) {
        let tls = SimTls::generate().unwrap();
        let listener = bind_loopback(0).await.unwrap();
        let sim = TokenSim::start(listener, TokenRegistry::new(), tls.clone()).await;
        sim.register_app(TENANT, CLIENT, SECRET);
        // The production path: the simulator's CA is trusted through `[http] ca_bundle`.
        let client = build_client(&HttpSettings {
            ca_bundle_pem: Some(tls.ca_pem.as_bytes().to_vec()),
            ..Default::default()
        })
        .unwrap();
        (sim, client)
    }

    fn provider(
        sim: &TokenSim,
        client: reqwest::Client,
        secret: &str,
        scope: &str,
    ) -> EntraTokenProvider {
        EntraTokenProvider::new(
            &sim.authority_host(),
            TENANT,
            CLIENT,
            SecretString::from(secret.to_string()),
            scope.to_string(),
            client,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn gets_caches_and_refreshes_a_token() {
        let (sim, client) = start().await;
        let provider = provider(&sim, client, SECRET, &format!("{GRAPH}/.default"));

        let token = provider.token().await.unwrap();
        let header = format!("Bearer {}", token.expose_secret());
        assert_eq!(sim.registry.check(Some(&header), GRAPH), Ok(()));
        assert!(
            sim.registry
                .check(Some(&header), "https://management.azure.com")
                .is_err()
        );
        assert_eq!(sim.kit.request_count(), 1);
        let requests = sim.kit.requests();
        assert_eq!(requests[0].method, "POST");
        assert_eq!(requests[0].path, format!("/{TENANT}/oauth2/v2.0/token"));

        // Served from the credential's cache.
        let again = provider.token().await.unwrap();
        assert_eq!(again.expose_secret(), token.expose_secret());
        assert_eq!(sim.kit.request_count(), 1);

        // After a 401 somewhere else the next token is a fresh one.
        provider.invalidate().await;
        let fresh = provider.token().await.unwrap();
        assert_eq!(sim.kit.request_count(), 2);
        assert_ne!(fresh.expose_secret(), token.expose_secret());
        let header = format!("Bearer {}", fresh.expose_secret());
        assert_eq!(sim.registry.check(Some(&header), GRAPH), Ok(()));

        // The Debug output holds no secret.
        assert!(!format!("{provider:?}").contains(SECRET));
        sim.shutdown();
    }

    // Also the guard for `CaptureErrors`: azure_identity 1.0 alone reports a JSON
    // error here, without the status or the AADSTS code.
    #[tokio::test]
    async fn wrong_secret_is_an_auth_error_without_the_secret() {
        let (sim, client) = start().await;
        let wrong = "Zz9~not-the-right-one.secret_value";
        let provider = provider(&sim, client, wrong, &format!("{GRAPH}/.default"));
        let error = provider.token().await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Auth, "{error}");
        let text = error.to_string();
        assert!(text.contains("AADSTS7000215"), "{text}");
        assert!(text.contains("invalid_client"), "{text}");
        assert!(text.contains("HTTP 401"), "{text}");
        assert!(text.contains("client_secret"), "{text}");
        assert!(!text.contains(wrong), "{text}");
        assert!(!text.contains(SECRET), "{text}");
        assert!(!format!("{error:?}").contains(wrong));
        // 4xx is not retried by the credential.
        assert_eq!(sim.kit.request_count(), 1);
        sim.shutdown();
    }

    #[tokio::test]
    async fn unknown_scope_and_unknown_tenant_are_auth_errors() {
        let (sim, client) = start().await;
        let provider_ = provider(
            &sim,
            client.clone(),
            SECRET,
            "https://vault.azure.net/.default",
        );
        let error = provider_.token().await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Auth);
        assert!(error.message.contains("AADSTS70011"), "{error}");
        assert!(error.message.contains("invalid_scope"), "{error}");

        let other_tenant = EntraTokenProvider::new(
            &sim.authority_host(),
            "contoso.example",
            CLIENT,
            SecretString::from(SECRET.to_string()),
            format!("{GRAPH}/.default"),
            client,
        )
        .unwrap();
        let error = other_tenant.token().await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Auth);
        assert!(error.message.contains("AADSTS90002"), "{error}");
        assert!(error.message.contains("tenant_id"), "{error}");
        sim.shutdown();
    }

    #[tokio::test]
    async fn throttling_and_server_errors_are_retryable() {
        let (sim, client) = start().await;
        let provider = provider(&sim, client, SECRET, &format!("{GRAPH}/.default"))
            .with_retry(RetryOptions::none())
            .unwrap();
        let fault = |status: u16, retry_after: Option<&str>, body: &str| Fault {
            method: None,
            path_contains: "/oauth2/v2.0/token".into(),
            times: 1,
            status,
            retry_after: retry_after.map(str::to_string),
            body: body.into(),
        };

        sim.kit.inject(fault(429, Some("7"), "{}"));
        let error = provider.token().await.unwrap_err();
        assert_eq!(
            error.kind,
            ErrorKind::RateLimited(Some(Duration::from_secs(7))),
            "{error}"
        );

        // A proxy's HTML error page: the status survives, the SDK's JSON error does not.
        sim.kit
            .inject(fault(502, None, "<html><body>bad gateway</body></html>"));
        let error = provider.token().await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Transient, "{error}");
        assert!(error.message.contains("HTTP 502"), "{error}");
        assert!(error.message.contains("bad gateway"), "{error}");

        // The next call goes through.
        let token = provider.token().await.unwrap();
        let header = format!("Bearer {}", token.expose_secret());
        assert_eq!(sim.registry.check(Some(&header), GRAPH), Ok(()));
        assert_eq!(sim.kit.request_count(), 3);
        sim.shutdown();
    }

    #[tokio::test]
    async fn the_credential_retries_server_errors_itself() {
        let (sim, client) = start().await;
        let provider = provider(&sim, client, SECRET, &format!("{GRAPH}/.default"))
            .with_retry(RetryOptions::fixed(FixedRetryOptions {
                delay: azure_core::time::Duration::milliseconds(1),
                max_retries: 2,
                ..Default::default()
            }))
            .unwrap();
        sim.kit.inject(Fault {
            method: None,
            path_contains: "/oauth2/v2.0/token".into(),
            times: 1,
            status: 503,
            retry_after: None,
            body: "{}".into(),
        });
        provider.token().await.unwrap();
        assert_eq!(sim.kit.request_count(), 2);
        sim.shutdown();
    }

    #[tokio::test]
    async fn tls_is_verified_by_default() {
        let (sim, _) = start().await;
        // A client without the simulator's CA in its bundle must refuse the server.
        let untrusting = build_client(&HttpSettings::default()).unwrap();
        let provider = provider(&sim, untrusting, SECRET, &format!("{GRAPH}/.default"))
            .with_retry(RetryOptions::none())
            .unwrap();
        let error = provider.token().await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Transient, "{error}");
        assert!(error.message.contains("could not reach"), "{error}");
        assert!(!error.message.contains(SECRET));
        assert_eq!(sim.kit.request_count(), 0);
        sim.shutdown();
    }

    #[tokio::test]
    async fn rejects_bad_settings() {
        let client = build_client(&HttpSettings::default()).unwrap();
        let make = |authority: &str, tenant: &str, secret: &str| {
            EntraTokenProvider::new(
                authority,
                tenant,
                CLIENT,
                SecretString::from(secret.to_string()),
                format!("{GRAPH}/.default"),
                client.clone(),
            )
        };
        let error = make("http://127.0.0.1:8080", TENANT, SECRET).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Permanent);
        assert!(
            error.message.contains("authority_host must use https"),
            "{error}"
        );
        let error = make("login.microsoftonline.com", TENANT, SECRET).unwrap_err();
        assert!(error.message.contains("authority_host"), "{error}");
        let error = make("https://login.microsoftonline.com", "not a tenant", SECRET).unwrap_err();
        assert!(error.message.contains("tenant_id"), "{error}");
        let error = make("https://login.microsoftonline.com", TENANT, "").unwrap_err();
        assert!(error.message.contains("client_secret"), "{error}");
        assert!(make("https://login.microsoftonline.com/", TENANT, SECRET).is_ok());
    }
}
