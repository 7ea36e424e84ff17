//! OAuth 2.0 client credentials against an instance's `/oauth_token.do` (an
//! alternative to HTTP Basic for the integration user): a [`TokenProvider`] that
//! asks for a token with `grant_type=client_credentials`, caches it until a minute
//! before `expires_in` runs out, and forgets it when the API answers 401 (the
//! shared HTTP layer then asks once more). The client secret and the tokens never
//! reach a log line or an error message.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bridge_core::ports::{ConnectorError, ConnectorResult, ErrorKind};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use super::client::{SYSTEM, error_message};
use crate::http::{Api, Auth, TokenProvider};

/// A token is renewed this long before the instance says it expires.
const EARLY_RENEWAL: Duration = Duration::from_secs(60);

/// Client-credentials tokens for one OAuth application of one instance.
pub struct ClientCredentials {
    token_url: Url,
    client: reqwest::Client,
    client_id: String,
    /// Read per token request: a Key Vault secret may be rotated.
    client_secret: std::sync::Arc<crate::keyvault::SecretCell>,
    cached: Mutex<Option<(SecretString, Instant)>>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

impl ClientCredentials {
    /// Tokens from `<base_url>/oauth_token.do`.
    pub fn new(
        base_url: &str,
        client: reqwest::Client,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> Result<ClientCredentials, String> {
        let base = Url::parse(base_url).map_err(|e| format!("bad base URL {base_url}: {e}"))?;
        let token_url = base
            .join("/oauth_token.do")
            .map_err(|e| format!("bad base URL {base_url}: {e}"))?;
        Ok(ClientCredentials {
            token_url,
            client,
            client_id: client_id.into(),
            client_secret: crate::keyvault::SecretCell::fixed(client_secret),
            cached: Mutex::new(None),
        })
    }

    /// Reads the client secret from `cell` (a Key Vault secret) per token request.
    pub fn with_secret_cell(mut self, cell: std::sync::Arc<crate::keyvault::SecretCell>) -> Self {
        self.client_secret = cell;
        self
    }

    fn error(kind: ErrorKind, message: impl Into<String>) -> ConnectorError {
        ConnectorError::new(kind, SYSTEM, message)
    }

    async fn fetch(&self) -> ConnectorResult<(SecretString, Instant)> {
        let client_secret = self.client_secret.get().await;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", client_secret.expose_secret())
            .finish();
        let response = self
            .client
            .post(self.token_url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                Self::error(
                    ErrorKind::Transient,
                    format!(
                        "cannot reach the token endpoint {}: {}",
                        self.token_url.path(),
                        if e.is_timeout() {
                            "timed out"
                        } else {
                            "request failed"
                        }
                    ),
                )
            })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|_| Self::error(ErrorKind::Transient, "the token response was cut short"))?;
        if !status.is_success() {
            let reason = serde_json::from_slice::<TokenError>(&bytes)
                .ok()
                .and_then(|e| e.error_description.or(e.error))
                .or_else(|| error_message(&bytes))
                .unwrap_or_default();
            let kind = match status.as_u16() {
                400 | 401 | 403 => ErrorKind::Auth,
                429 => ErrorKind::RateLimited(None),
                500..=599 => ErrorKind::Transient,
                _ => ErrorKind::Permanent,
            };
            return Err(Self::error(
                kind,
                format!(
                    "the instance refused a token for OAuth client {} (HTTP {status}{}); check the client id and secret and that the client credentials grant is enabled",
                    self.client_id,
                    if reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {reason}")
                    }
                ),
            )
            .with_status(status.as_u16()));
        }
        let token: TokenResponse = serde_json::from_slice(&bytes).map_err(|_| {
            Self::error(
                ErrorKind::InvalidPayload,
                "the token endpoint answered without an access_token",
            )
        })?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(1800));
        let renew_at = Instant::now() + lifetime.saturating_sub(EARLY_RENEWAL);
        Ok((SecretString::from(token.access_token), renew_at))
    }
}

#[async_trait]
impl TokenProvider for ClientCredentials {
    async fn token(&self) -> ConnectorResult<SecretString> {
        let mut cached = self.cached.lock().await;
        if let Some((token, renew_at)) = cached.as_ref()
            && Instant::now() < *renew_at
        {
            return Ok(token.clone());
        }
        let (token, renew_at) = self.fetch().await?;
        *cached = Some((token.clone(), renew_at));
        Ok(token)
    }

    async fn invalidate(&self) {
        *self.cached.lock().await = None;
        self.client_secret.refetch().await;
    }
}

/// Builds the [`Api`] for an instance signed with client-credentials tokens.
pub fn servicenow_oauth_api(
    base_url: &str,
    client: reqwest::Client,
    client_id: impl Into<String>,
    client_secret: SecretString,
) -> Result<Api, String> {
    let provider = ClientCredentials::new(base_url, client.clone(), client_id, client_secret)?;
    Api::new(
        SYSTEM,
        base_url,
        client,
        Auth::Bearer(std::sync::Arc::new(provider)),
        error_message,
    )
}
