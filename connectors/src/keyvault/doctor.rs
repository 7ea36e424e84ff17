//! `itsm-bridge doctor`'s Key Vault probe: for each secret the config keeps in Key
//! Vault, a token for the `[azure]` identity and one read of the secret, with the
//! fix for each failure (the role to grant, the name to check, the network to
//! open). The value read is dropped at once.

use bridge_core::config::Config;

use crate::doctor::Check;
use crate::keyvault::client::KeyVaultProblem;

/// One check per Key Vault secret (none when the config has none).
pub async fn key_vault_checks(config: &Config, http: reqwest::Client) -> Vec<Check> {
    let mut references: Vec<_> = config
        .secret_refs()
        .into_iter()
        .filter_map(|(_, _, r)| r.key_vault().cloned())
        .collect();
    references.sort();
    references.dedup();
    if references.is_empty() {
        return Vec::new();
    }
    let client = match super::client_for(config, http) {
        Ok(Some(client)) => client,
        Ok(None) => {
            return vec![Check::fail(
                "Key Vault",
                "no [azure] identity",
                "add [azure] with identity = \"<a [[source]] name>\" or its own auth keys",
            )];
        }
        Err(e) => return vec![Check::fail("Key Vault", e, "fix the [azure] identity")],
    };
    let mut checks = Vec::new();
    for reference in references {
        let name = format!("Key Vault secret {}", reference.name);
        match client.get(&reference).await {
            Ok(value) => {
                // The other probes read it through its reference.
                bridge_core::config::publish_key_vault_value(&reference, &value);
                checks.push(Check::pass(
                    name,
                    format!("read from vault {}", reference.vault_name()),
                ))
            }
            Err(problem) => {
                let fix = client.describe(&reference, &problem);
                let seen = match &problem {
                    KeyVaultProblem::Token(_) => "no token for Key Vault",
                    KeyVaultProblem::Unauthorized(_) => "401: the token was refused",
                    KeyVaultProblem::Forbidden(_) => "403: the identity lacks the role",
                    KeyVaultProblem::NotFound(_) => "404: no such secret",
                    KeyVaultProblem::Unreachable(_) => "the vault cannot be reached",
                };
                checks.push(Check::fail(name, seen, fix));
            }
        }
    }
    checks
}
