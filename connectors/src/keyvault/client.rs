//! A small Key Vault client: `GET {vault}/secrets/{name}[/{version}]?api-version=7.4`
//! with a bearer token for `https://vault.azure.net/.default` from the `[azure]`
//! identity. Errors name the vault, the secret and, for a 403, the role to grant;
//! never a value.

use std::sync::Arc;

use async_trait::async_trait;
use bridge_core::config::KeyVaultRef;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::cell::SecretFetch;
use crate::http::TokenProvider;

/// The Key Vault REST API version the bridge speaks.
pub const API_VERSION: &str = "7.4";
/// The scope of a Key Vault token, in every Azure cloud's public form.
pub const SCOPE: &str = "https://vault.azure.net/.default";
/// The built-in role that may read secret values.
pub const ROLE: &str = "Key Vault Secrets User";

/// Why a secret could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyVaultProblem {
    /// No token for Key Vault (the identity's own error).
    Token(String),
    /// 401 even with a fresh token.
    Unauthorized(String),
    /// 403: the identity lacks the role (or an access policy).
    Forbidden(String),
    /// 404: no such secret (or version) in the vault.
    NotFound(String),
    /// The vault could not be reached, or answered something else.
    Unreachable(String),
}

/// Fetches secrets for one identity.
pub struct KeyVaultClient {
    client: reqwest::Client,
    tokens: Arc<dyn TokenProvider>,
    /// Who the identity is, for messages ("app 1234…", "the managed identity").
    who: String,
    /// `[azure] key_vault_endpoint_override_for_tests`: the simulators' origin.
    endpoint_override: Option<String>,
}

impl std::fmt::Debug for KeyVaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVaultClient")
            .field("who", &self.who)
            .field("endpoint_override", &self.endpoint_override)
            .finish()
    }
}

#[derive(Deserialize)]
struct SecretBundle {
    value: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorDetail {
    code: String,
    message: String,
    innererror: Option<Box<ErrorDetail>>,
}

impl KeyVaultClient {
    pub fn new(
        client: reqwest::Client,
        tokens: Arc<dyn TokenProvider>,
        who: String,
        endpoint_override: Option<String>,
    ) -> KeyVaultClient {
        KeyVaultClient {
            client,
            tokens,
            who,
            endpoint_override,
        }
    }

    /// The URL a secret is read at.
    pub fn secret_url(&self, reference: &KeyVaultRef) -> String {
        let base = self
            .endpoint_override
            .as_deref()
            .unwrap_or(&reference.vault)
            .trim_end_matches('/');
        let path = match &reference.version {
            Some(v) => format!("/secrets/{}/{v}", reference.name),
            None => format!("/secrets/{}", reference.name),
        };
        format!("{base}{path}?api-version={API_VERSION}")
    }

    /// Fetches one secret's value; a 401 gets one more try with a fresh token.
    pub async fn get(&self, reference: &KeyVaultRef) -> Result<SecretString, KeyVaultProblem> {
        let mut refreshed = false;
        loop {
            let token = self
                .tokens
                .token()
                .await
                .map_err(|e| KeyVaultProblem::Token(e.message))?;
            let response = self
                .client
                .get(self.secret_url(reference))
                .bearer_auth(token.expose_secret())
                .send()
                .await
                .map_err(|e| KeyVaultProblem::Unreachable(format!("could not reach it ({e})")))?;
            let status = response.status().as_u16();
            let body = response
                .bytes()
                .await
                .map_err(|e| KeyVaultProblem::Unreachable(format!("the answer was cut ({e})")))?;
            if status == 200 {
                let bundle: SecretBundle = serde_json::from_slice(&body).map_err(|_| {
                    KeyVaultProblem::Unreachable("its answer is not a secret bundle".into())
                })?;
                return Ok(SecretString::from(bundle.value));
            }
            let detail = serde_json::from_slice::<ErrorBody>(&body)
                .map(|b| {
                    let inner = b.error.innererror.map(|i| i.code).unwrap_or_default();
                    let code = if inner.is_empty() {
                        b.error.code
                    } else {
                        inner
                    };
                    format!("{code}: {}", b.error.message)
                })
                .unwrap_or_else(|_| format!("HTTP {status}"));
            match status {
                401 if !refreshed => {
                    self.tokens.invalidate().await;
                    refreshed = true;
                }
                401 => return Err(KeyVaultProblem::Unauthorized(detail)),
                403 => return Err(KeyVaultProblem::Forbidden(detail)),
                404 => return Err(KeyVaultProblem::NotFound(detail)),
                _ => {
                    return Err(KeyVaultProblem::Unreachable(format!(
                        "HTTP {status} {detail}"
                    )));
                }
            }
        }
    }

    /// What to tell the admin about a failed fetch: the vault, the secret, what
    /// happened and what to do.
    pub fn describe(&self, reference: &KeyVaultRef, problem: &KeyVaultProblem) -> String {
        let vault = reference.vault_name();
        let at = format!(
            "Key Vault {vault}: secret {}{}",
            reference.name,
            reference
                .version
                .as_deref()
                .map(|v| format!(" version {v}"))
                .unwrap_or_default()
        );
        match problem {
            KeyVaultProblem::Token(e) => {
                format!("{at}: no token for Key Vault as {}: {e}", self.who)
            }
            KeyVaultProblem::Unauthorized(d) => format!(
                "{at}: the vault refused {}'s token ({d}); check the [azure] identity is in the vault's tenant",
                self.who
            ),
            KeyVaultProblem::Forbidden(d) => format!(
                "{at}: {} may not read it ({d}): grant it the \"{ROLE}\" role on vault {vault} (Access control (IAM) > Add role assignment), or a Get secret access policy if the vault uses access policies",
                self.who
            ),
            KeyVaultProblem::NotFound(d) => format!(
                "{at}: the vault has no such secret ({d}); check the name in the reference (and the version, if it names one), or create it"
            ),
            KeyVaultProblem::Unreachable(d) => format!(
                "{at}: {d}; check the vault URL, DNS and the firewall (the vault's Networking settings must let this machine in)"
            ),
        }
    }
}

#[async_trait]
impl SecretFetch for KeyVaultClient {
    async fn fetch(&self, reference: &KeyVaultRef) -> Result<SecretString, String> {
        self.get(reference)
            .await
            .map_err(|p| self.describe(reference, &p))
    }
}
