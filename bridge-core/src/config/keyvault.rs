//! Key Vault secret references (`{ key_vault = "https://NAME.vault.azure.net/secrets/NAME" }`)
//! and the values the connectors fetched for them. This crate does no HTTP: the
//! connectors fetch each secret and publish it here, so that every reader of a
//! [`SecretRef`](super::SecretRef) (the store's password, the ledger's key) sees
//! the current value through `resolve`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use secrecy::{ExposeSecret, SecretString};

/// A secret in Key Vault: its vault, name and (optionally) version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyVaultRef {
    /// `https://NAME.vault.azure.net` (any Azure cloud's vault suffix).
    pub vault: String,
    pub name: String,
    pub version: Option<String>,
}

impl KeyVaultRef {
    /// Parses `https://NAME.vault.azure.net/secrets/NAME[/VERSION]`. The error
    /// says what is wrong and what to write.
    pub fn parse(url: &str) -> Result<KeyVaultRef, String> {
        let shape = "write the secret's identifier, e.g. \"https://contoso-kv.vault.azure.net/secrets/jira-token\"";
        let Some(rest) = url.strip_prefix("https://") else {
            return Err(format!("`{url}` is not a Key Vault secret URL; {shape}"));
        };
        let mut parts = rest.trim_end_matches('/').split('/');
        let host = parts.next().unwrap_or("");
        let (vault_name, suffix) = host.split_once('.').unwrap_or((host, ""));
        let known_suffix = [
            "vault.azure.net",
            "vault.usgovcloudapi.net",
            "vault.azure.cn",
            "vault.microsoftazure.de",
        ]
        .contains(&suffix.to_ascii_lowercase().as_str());
        if !known_suffix {
            return Err(format!(
                "`{host}` is not a Key Vault host (NAME.vault.azure.net); {shape}"
            ));
        }
        if !valid_vault_name(vault_name) {
            return Err(format!(
                "`{vault_name}` is not a vault name (3-24 letters, digits and dashes, starting with a letter)"
            ));
        }
        if parts.next() != Some("secrets") {
            return Err(format!("`{url}` names no secret; {shape}"));
        }
        let name = parts.next().unwrap_or("");
        if !valid_secret_name(name) {
            return Err(format!(
                "`{name}` is not a secret name (1-127 letters, digits and dashes); {shape}"
            ));
        }
        let version = parts.next().map(str::to_string);
        if let Some(v) = &version
            && (v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(format!("`{v}` is not a secret version; {shape}"));
        }
        if parts.next().is_some() || url.contains(['?', '#']) {
            return Err(format!(
                "`{url}` has more than a secret and a version; {shape}"
            ));
        }
        Ok(KeyVaultRef {
            vault: format!("https://{}", host.to_ascii_lowercase()),
            name: name.to_string(),
            version,
        })
    }

    /// The vault's name (`contoso-kv` of `https://contoso-kv.vault.azure.net`).
    pub fn vault_name(&self) -> &str {
        let host = self.vault.trim_start_matches("https://");
        host.split('.').next().unwrap_or(host)
    }

    /// The secret's identifier, as written.
    pub fn url(&self) -> String {
        match &self.version {
            Some(v) => format!("{}/secrets/{}/{v}", self.vault, self.name),
            None => format!("{}/secrets/{}", self.vault, self.name),
        }
    }
}

impl std::fmt::Display for KeyVaultRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url())
    }
}

fn valid_vault_name(name: &str) -> bool {
    (3..=24).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && !name.ends_with('-')
        && !name.contains("--")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn valid_secret_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The values fetched so far, by secret URL.
fn fetched() -> &'static Mutex<HashMap<String, SecretString>> {
    static FETCHED: OnceLock<Mutex<HashMap<String, SecretString>>> = OnceLock::new();
    FETCHED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Hands over the value fetched for `reference` (at start and at every refetch).
pub fn publish_key_vault_value(reference: &KeyVaultRef, value: &SecretString) {
    fetched().lock().expect("key vault values").insert(
        reference.url(),
        SecretString::from(value.expose_secret().to_string()),
    );
}

/// Forgets every fetched value (tests, and a reload that fetches them again).
pub fn forget_key_vault_values() {
    fetched().lock().expect("key vault values").clear();
}

pub(super) fn fetched_value(reference: &KeyVaultRef) -> Result<SecretString, String> {
    fetched()
        .lock()
        .expect("key vault values")
        .get(&reference.url())
        .map(|v| SecretString::from(v.expose_secret().to_string()))
        .ok_or_else(|| {
            format!(
                "Key Vault secret {reference} has not been fetched (the bridge fetches it at start with the [azure] identity)"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_secret_identifiers() {
        let r =
            KeyVaultRef::parse("https://Contoso-KV.vault.azure.net/secrets/jira-token").unwrap();
        assert_eq!(r.vault, "https://contoso-kv.vault.azure.net");
        assert_eq!(r.vault_name(), "contoso-kv");
        assert_eq!(r.name, "jira-token");
        assert_eq!(r.version, None);
        let v = KeyVaultRef::parse("https://kv1.vault.azure.net/secrets/a/0123abcd").unwrap();
        assert_eq!(v.version.as_deref(), Some("0123abcd"));
        assert_eq!(v.url(), "https://kv1.vault.azure.net/secrets/a/0123abcd");
        for bad in [
            "http://kv1.vault.azure.net/secrets/a",
            "https://kv1.example.com/secrets/a",
            "https://kv1.vault.azure.net/keys/a",
            "https://kv1.vault.azure.net/secrets/",
            "https://kv1.vault.azure.net/secrets/a_b",
            "https://kv1.vault.azure.net/secrets/a/v1/x",
            "https://k.vault.azure.net/secrets/a",
            "https://kv1.vault.azure.net/secrets/a?api-version=7.4",
        ] {
            assert!(KeyVaultRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_value_is_readable_once_published() {
        let r = KeyVaultRef::parse("https://kvpub.vault.azure.net/secrets/only-here").unwrap();
        let before = super::super::SecretRef::KeyVault(r.clone())
            .resolve()
            .unwrap_err();
        assert!(before.contains("has not been fetched"), "{before}");
        publish_key_vault_value(&r, &SecretString::from("v1".to_string()));
        let value = super::super::SecretRef::KeyVault(r).resolve().unwrap();
        assert_eq!(value.expose_secret(), "v1");
    }
}
