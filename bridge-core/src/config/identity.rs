//! How a Microsoft source (or `[azure]`, for Key Vault) signs in to Entra ID:
//! `auth = "client_secret" | "client_certificate" | "managed_identity" |
//! "workload_identity" | "azure_cli"` with the keys each one takes, checked. The
//! credentials themselves are built by the connectors (through azure_identity).

use std::path::PathBuf;
use std::time::Duration;

use super::SecretRef;

/// A way of signing in to Entra ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceAuth {
    /// The app registration's client secret (client-credentials grant).
    ClientSecret { client_secret: SecretRef },
    /// A certificate registered on the app, with its RSA private key: a PEM file
    /// (the key PKCS#8, PKCS#1 or encrypted PKCS#8) or a PKCS#12 file (`.pfx`,
    /// `.p12`); `password` opens an encrypted key or a PKCS#12 file. The bridge
    /// signs a client assertion with it.
    ClientCertificate {
        certificate: PathBuf,
        password: Option<SecretRef>,
    },
    /// The managed identity of the VM, App Service, Container App or Arc server
    /// the bridge runs on: system-assigned, or the user-assigned one named here.
    ManagedIdentity { user_assigned: Option<UserAssigned> },
    /// A Kubernetes service account token federated with the app (AKS workload
    /// identity): the file AKS mounts, re-read as it is rotated.
    WorkloadIdentity { token_file: PathBuf },
    /// The signed-in Azure CLI (`az account get-access-token`), for trying the
    /// bridge from a workstation.
    AzureCli,
}

/// A user-assigned managed identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAssigned {
    ClientId(String),
    ResourceId(String),
}

impl SourceAuth {
    /// The config's name of this choice.
    pub fn name(&self) -> &'static str {
        match self {
            SourceAuth::ClientSecret { .. } => "client_secret",
            SourceAuth::ClientCertificate { .. } => "client_certificate",
            SourceAuth::ManagedIdentity { .. } => "managed_identity",
            SourceAuth::WorkloadIdentity { .. } => "workload_identity",
            SourceAuth::AzureCli => "azure_cli",
        }
    }

    /// The secret reference it reads, with its key.
    pub fn secret(&self) -> Option<(&'static str, &SecretRef)> {
        match self {
            SourceAuth::ClientSecret { client_secret } => Some(("client_secret", client_secret)),
            SourceAuth::ClientCertificate {
                password: Some(password),
                ..
            } => Some(("certificate_password", password)),
            _ => None,
        }
    }
}

/// An identity to sign in with: where, which tenant and app, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureIdentity {
    pub authority_host: String,
    pub tenant_id: String,
    /// Empty for a system-assigned managed identity and the Azure CLI.
    pub client_id: String,
    pub auth: SourceAuth,
}

/// `[azure]`: the identity Key Vault secrets are fetched with, and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureConfig {
    /// `identity = "<source>"` (that source's identity) or the table's own keys.
    pub identity: Option<AzureIdentity>,
    /// Key Vault secrets are fetched again after this long (and after a 401 from
    /// the system they sign in to); `key_vault_refresh`, 1 h by default.
    pub key_vault_refresh: Duration,
    /// `key_vault_endpoint_override_for_tests`: every vault URL's origin replaced
    /// by this one. Only the simulators use it: a real vault is reached at its
    /// own `https://NAME.vault.azure.net`.
    pub key_vault_endpoint_override: Option<String>,
}

impl Default for AzureConfig {
    fn default() -> Self {
        AzureConfig {
            identity: None,
            key_vault_refresh: Duration::from_secs(3600),
            key_vault_endpoint_override: None,
        }
    }
}
