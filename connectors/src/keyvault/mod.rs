//! Key Vault: secrets referenced as `{ key_vault = "https://NAME.vault.azure.net/secrets/NAME" }`
//! anywhere a secret is accepted. [`KeyVaultSecrets::fetch`] reads every one at
//! start with the `[azure]` identity (stopping start-up with the vault, the
//! secret and the role to grant when one cannot be read) and keeps each in a
//! [`SecretCell`] the clients read per request, so a rotated secret is picked up
//! without a restart. `client.rs` is the REST client, `sim.rs` the simulator,
//! `doctor.rs` doctor's probe. A value is never logged, stored or put in the ledger.

pub mod cell;
pub mod client;
pub mod doctor;
pub mod sim;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use bridge_core::config::{AzureIdentity, Config, KeyVaultRef, SecretRef, SourceAuth};

pub use cell::{SecretCell, SecretFetch};
pub use client::KeyVaultClient;

use crate::auth::EntraTokenProvider;

/// The Key Vault secrets of a config, fetched.
#[derive(Debug, Default)]
pub struct KeyVaultSecrets {
    cells: BTreeMap<KeyVaultRef, Arc<SecretCell>>,
}

/// How an identity is named in messages.
pub fn who(identity: &AzureIdentity) -> String {
    match &identity.auth {
        SourceAuth::ManagedIdentity { .. } if identity.client_id.is_empty() => {
            "the system-assigned managed identity".to_string()
        }
        SourceAuth::ManagedIdentity { .. } => {
            format!("the managed identity {}", identity.client_id)
        }
        SourceAuth::AzureCli => "the Azure CLI's signed-in account".to_string(),
        _ => format!("app {}", identity.client_id),
    }
}

/// The Key Vault client of the `[azure]` identity (`None` when there is none).
pub fn client_for(
    config: &Config,
    http: reqwest::Client,
) -> Result<Option<KeyVaultClient>, String> {
    let Some(identity) = &config.azure.identity else {
        return Ok(None);
    };
    let secret = match identity.auth.secret() {
        None => None,
        Some((key, SecretRef::KeyVault(_))) => {
            return Err(format!(
                "[azure] {key}: the identity that reads Key Vault cannot keep its own secret there; use an env or file reference, or another auth"
            ));
        }
        Some((key, reference)) => Some(SecretCell::fixed(
            reference
                .resolve()
                .map_err(|e| format!("[azure] identity {key}: {e}"))?,
        )),
    };
    let tokens =
        EntraTokenProvider::for_identity(identity, secret, client::SCOPE.into(), http.clone())
            .map_err(|e| format!("[azure] identity: {}", e.message))?;
    Ok(Some(KeyVaultClient::new(
        http,
        Arc::new(tokens),
        who(identity),
        config.azure.key_vault_endpoint_override.clone(),
    )))
}

/// Fetches one Key Vault secret for a command that reads it once, outside the
/// daemon (the store's password, the ledger's key), on a thread and runtime of
/// its own so that it can be called from anywhere; a value already fetched is
/// kept. The value is then read through its `SecretRef`.
pub fn fetch_one_blocking(config: &Config, reference: &KeyVaultRef) -> Result<(), String> {
    if SecretRef::KeyVault(reference.clone()).resolve().is_ok() {
        return Ok(());
    }
    let config = config.clone();
    let reference = reference.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime to read Key Vault: {e}"))?;
        runtime.block_on(async {
            let settings = crate::wiring::http_settings(&config.http).map_err(|e| e.to_string())?;
            let http = crate::http::build_client(&settings)?;
            let client = client_for(&config, http)?
                .ok_or("Key Vault secrets need an [azure] identity to be fetched with")?;
            let value = client
                .get(&reference)
                .await
                .map_err(|p| client.describe(&reference, &p))?;
            bridge_core::config::publish_key_vault_value(&reference, &value);
            Ok(())
        })
    })
    .join()
    .map_err(|_| "reading Key Vault failed".to_string())?
}

impl KeyVaultSecrets {
    /// Fetches every Key Vault secret `config` refers to. The error lists each
    /// one that could not be read, with its vault, name and what to do.
    pub async fn fetch(config: &Config, http: reqwest::Client) -> Result<KeyVaultSecrets, String> {
        let references: std::collections::BTreeSet<KeyVaultRef> = config
            .secret_refs()
            .into_iter()
            .filter_map(|(_, _, r)| r.key_vault().cloned())
            .collect();
        if references.is_empty() {
            return Ok(KeyVaultSecrets::default());
        }
        let Some(client) = client_for(config, http)? else {
            return Err("Key Vault secrets need an [azure] identity to be fetched with".into());
        };
        let client = Arc::new(client);
        let mut cells = BTreeMap::new();
        let mut problems = Vec::new();
        for reference in references {
            match client.get(&reference).await {
                Ok(value) => {
                    let cell = SecretCell::key_vault(
                        value,
                        reference.clone(),
                        client.clone(),
                        config.azure.key_vault_refresh,
                    );
                    cells.insert(reference, cell);
                }
                Err(problem) => problems.push(client.describe(&reference, &problem)),
            }
        }
        if problems.is_empty() {
            Ok(KeyVaultSecrets { cells })
        } else {
            Err(problems.join("\n"))
        }
    }

    /// The cell a secret reference is read from: the fetched Key Vault secret's,
    /// or a fixed one for an environment variable or a file.
    pub fn cell(&self, reference: &SecretRef) -> Result<Arc<SecretCell>, String> {
        match reference.key_vault() {
            Some(kv) => self
                .cells
                .get(kv)
                .cloned()
                .ok_or_else(|| format!("Key Vault secret {kv} has not been fetched")),
            None => reference.resolve().map(SecretCell::fixed),
        }
    }
}
