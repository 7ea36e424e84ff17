//! Identities: a `[[source]]`'s (or `[azure]`'s) `auth` choice with the keys it
//! takes — and refuses — and `[azure]`, the identity Key Vault secrets are fetched
//! with. AKS's workload identity variables (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//! `AZURE_FEDERATED_TOKEN_FILE`) fill in what `workload_identity` leaves out.

use super::*;
use crate::config::{AzureConfig, AzureIdentity, SourceAuth, UserAssigned};

const AUTH_CHOICES: &str = "\"client_secret\", \"client_certificate\", \"managed_identity\", \"workload_identity\" or \"azure_cli\"";

/// The identity keys of a `[[source]]` or of `[azure]`, as written.
pub(super) struct IdentityKeys<'r> {
    pub auth: Option<&'r Spanned<String>>,
    pub tenant_id: Option<&'r Spanned<String>>,
    pub client_id: Option<&'r Spanned<String>>,
    pub client_secret: Option<&'r Spanned<toml::Value>>,
    pub certificate: Option<&'r Spanned<String>>,
    pub certificate_password: Option<&'r Spanned<toml::Value>>,
    pub resource_id: Option<&'r Spanned<String>>,
    pub token_file: Option<&'r Spanned<String>>,
}

impl<'r> IdentityKeys<'r> {
    pub(super) fn of_source(raw: &'r RawSource) -> IdentityKeys<'r> {
        IdentityKeys {
            auth: raw.auth.as_ref(),
            tenant_id: raw.tenant_id.as_ref(),
            client_id: raw.client_id.as_ref(),
            client_secret: raw.client_secret.as_ref(),
            certificate: raw.certificate.as_ref(),
            certificate_password: raw.certificate_password.as_ref(),
            resource_id: raw.resource_id.as_ref(),
            token_file: raw.token_file.as_ref(),
        }
    }

    fn of_azure(raw: &'r RawAzure) -> IdentityKeys<'r> {
        IdentityKeys {
            auth: raw.auth.as_ref(),
            tenant_id: raw.tenant_id.as_ref(),
            client_id: raw.client_id.as_ref(),
            client_secret: raw.client_secret.as_ref(),
            certificate: raw.certificate.as_ref(),
            certificate_password: raw.certificate_password.as_ref(),
            resource_id: raw.resource_id.as_ref(),
            token_file: raw.token_file.as_ref(),
        }
    }

    /// Where each key was given, for "not used by this choice" reports.
    fn given(&self) -> [(&'static str, Option<usize>); 7] {
        let at = |v: Option<&Spanned<String>>| v.map(|v| v.span().start);
        let at_value = |v: Option<&Spanned<toml::Value>>| v.map(|v| v.span().start);
        [
            ("tenant_id", at(self.tenant_id)),
            ("client_id", at(self.client_id)),
            ("client_secret", at_value(self.client_secret)),
            ("certificate", at(self.certificate)),
            ("certificate_password", at_value(self.certificate_password)),
            ("resource_id", at(self.resource_id)),
            ("token_file", at(self.token_file)),
        ]
    }
}

/// An environment variable AKS sets, when it is set and not empty.
fn aks_env(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

impl Checker<'_> {
    /// The tenant, client id and `auth` of an identity, each key checked against
    /// the choice. `None` after reporting a problem.
    pub(super) fn identity_keys(
        &mut self,
        header: usize,
        keys: &IdentityKeys,
    ) -> Option<(String, String, SourceAuth)> {
        let choice = match keys.auth {
            None => "client_secret".to_string(),
            Some(a) => a.get_ref().clone(),
        };
        let uses: &[&str] = match choice.as_str() {
            "client_secret" => &["tenant_id", "client_id", "client_secret"],
            "client_certificate" => &[
                "tenant_id",
                "client_id",
                "certificate",
                "certificate_password",
            ],
            "managed_identity" => &["tenant_id", "client_id", "resource_id"],
            "workload_identity" => &["tenant_id", "client_id", "token_file"],
            "azure_cli" => &["tenant_id"],
            other => {
                let at = keys.auth.map_or(header, |a| a.span().start);
                self.r
                    .at(at, format!("unknown auth `{other}`; write {AUTH_CHOICES}"));
                return None;
            }
        };
        let before = self.r.diagnostics.len();
        for (key, at) in keys.given() {
            if let Some(at) = at
                && !uses.contains(&key)
            {
                let key_at = self.key_at(key, at);
                self.r.at(
                    key_at,
                    format!("`{key}` is not used with auth = \"{choice}\"; remove it"),
                );
            }
        }
        let tenant_id = self.identity_tenant(header, keys, &choice);
        let client_id = self.identity_client(header, keys, &choice);
        let auth = match choice.as_str() {
            "client_secret" => self.client_secret(header, keys.client_secret),
            "client_certificate" => self.certificate(header, keys),
            "managed_identity" => self.managed_identity(keys, client_id.as_deref()),
            "workload_identity" => self.token_file(header, keys.token_file),
            _ => Some(SourceAuth::AzureCli),
        };
        if self.r.diagnostics.len() != before {
            return None;
        }
        Some((tenant_id?, client_id?, auth?))
    }

    /// `tenant_id`: a GUID or the tenant's domain; from `AZURE_TENANT_ID` for
    /// workload identity.
    fn identity_tenant(
        &mut self,
        header: usize,
        keys: &IdentityKeys,
        choice: &str,
    ) -> Option<String> {
        if keys.tenant_id.is_none()
            && choice == "workload_identity"
            && let Some(tenant) = aks_env("AZURE_TENANT_ID")
        {
            return Some(tenant);
        }
        let hint = if choice == "workload_identity" {
            "\"<Entra ID tenant id>\" (or set AZURE_TENANT_ID, as AKS does)"
        } else {
            "\"<Entra ID tenant id>\""
        };
        let tenant_id = self.required(header, "tenant_id", hint, keys.tenant_id);
        if let (Some(id), Some(v)) = (&tenant_id, keys.tenant_id)
            && !is_guid(id)
            && !is_domain(id)
        {
            self.r.at(
                v.span().start,
                format!(
                    "tenant_id `{id}` is not a tenant id; copy the Directory (tenant) ID, a GUID like \"00000000-0000-0000-0000-000000000000\", from the app registration (or give the tenant's domain, e.g. \"contoso.onmicrosoft.com\")"
                ),
            );
            return None;
        }
        tenant_id
    }

    /// `client_id`: required for an app registration, optional (user-assigned)
    /// for a managed identity, from `AZURE_CLIENT_ID` for workload identity, and
    /// none for the Azure CLI.
    fn identity_client(
        &mut self,
        header: usize,
        keys: &IdentityKeys,
        choice: &str,
    ) -> Option<String> {
        match choice {
            "client_secret" | "client_certificate" => self.required(
                header,
                "client_id",
                "\"<application (client) id>\"",
                keys.client_id,
            ),
            "managed_identity" => match keys.client_id {
                None => Some(String::new()),
                Some(v) => self.required(header, "client_id", "\"<client id>\"", Some(v)),
            },
            "workload_identity" => match keys.client_id {
                None => aks_env("AZURE_CLIENT_ID").or_else(|| {
                    self.r.at(
                        header,
                        "add client_id = \"<application (client) id>\" (or set AZURE_CLIENT_ID, as AKS does)",
                    );
                    None
                }),
                Some(v) => self.required(header, "client_id", "\"<client id>\"", Some(v)),
            },
            _ => Some(String::new()),
        }
    }

    fn client_secret(
        &mut self,
        header: usize,
        value: Option<&Spanned<toml::Value>>,
    ) -> Option<SourceAuth> {
        match value {
            None => {
                self.r.at(
                    header,
                    "add client_secret = { env = \"...\" } (the app registration's secret), or choose another auth",
                );
                None
            }
            Some(s) => Some(SourceAuth::ClientSecret {
                client_secret: self.secret("client_secret", s)?,
            }),
        }
    }

    /// `certificate`: a PEM file with the certificate and its key (an encrypted
    /// key needs `certificate_password`), or a PKCS#12 file. Whether the key
    /// opens is the connectors' to say (`check` reads no key material).
    fn certificate(&mut self, header: usize, keys: &IdentityKeys) -> Option<SourceAuth> {
        let password = match keys.certificate_password {
            Some(p) => Some(self.secret("certificate_password", p)?),
            None => None,
        };
        let Some(c) = keys.certificate else {
            self.r.at(
                header,
                "add certificate = \"/path/to/app.pem\" (the certificate registered on the app, with its private key)",
            );
            return None;
        };
        let path = self.resolve(c.get_ref());
        let problem = match std::fs::read(&path) {
            Err(e) => Some(format!("cannot read {}: {e}", path.display())),
            Ok(bytes) => certificate_file_problem(&bytes, password.is_some())
                .map(|p| format!("{} {p}", path.display())),
        };
        if let Some(problem) = problem {
            self.r.at(c.span().start, format!("certificate: {problem}"));
            return None;
        }
        Some(SourceAuth::ClientCertificate {
            certificate: path,
            password,
        })
    }

    fn managed_identity(
        &mut self,
        keys: &IdentityKeys,
        client_id: Option<&str>,
    ) -> Option<SourceAuth> {
        let resource_id = match keys.resource_id {
            None => None,
            Some(r) => {
                let id = r.get_ref().trim();
                let lower = id.to_ascii_lowercase();
                if !lower.starts_with("/subscriptions/")
                    || !lower
                        .contains("/providers/microsoft.managedidentity/userassignedidentities/")
                {
                    self.r.at(
                        r.span().start,
                        "resource_id must be a user-assigned identity's resource id: \"/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>\"",
                    );
                    return None;
                }
                Some(id.to_string())
            }
        };
        let user_assigned = match (client_id.filter(|c| !c.is_empty()), resource_id) {
            (Some(_), Some(_)) => {
                let at = keys.resource_id.map_or(0, |r| r.span().start);
                self.r.at(
                    at,
                    "give a user-assigned identity's client_id or its resource_id, not both",
                );
                return None;
            }
            (Some(c), None) => Some(UserAssigned::ClientId(c.to_string())),
            (None, Some(r)) => Some(UserAssigned::ResourceId(r)),
            (None, None) => None,
        };
        Some(SourceAuth::ManagedIdentity { user_assigned })
    }

    /// `token_file`: the federated token AKS mounts (`AZURE_FEDERATED_TOKEN_FILE`).
    fn token_file(&mut self, header: usize, value: Option<&Spanned<String>>) -> Option<SourceAuth> {
        let token_file = match value {
            Some(v) if v.get_ref().trim().is_empty() => {
                self.r.at(
                    v.span().start,
                    "token_file is empty; give the federated token's path",
                );
                return None;
            }
            Some(v) => self.resolve(v.get_ref()),
            None => match aks_env("AZURE_FEDERATED_TOKEN_FILE") {
                Some(path) => PathBuf::from(path),
                None => {
                    self.r.at(
                        header,
                        "add token_file = \"/var/run/secrets/azure/tokens/azure-identity-token\" (or set AZURE_FEDERATED_TOKEN_FILE, as AKS does)",
                    );
                    return None;
                }
            },
        };
        Some(SourceAuth::WorkloadIdentity { token_file })
    }

    /// `[azure]`, checked once every secret is: a Key Vault reference needs it.
    pub(super) fn azure(
        &mut self,
        raw: Option<&Spanned<RawAzure>>,
        raw_sources: &[Spanned<RawSource>],
        sources: &[Option<SourceConfig>],
    ) -> Option<AzureConfig> {
        let needs_identity = "a Key Vault secret needs an identity to fetch it with: add [azure] with identity = \"<a [[source]] name>\" or its own auth keys";
        let Some(spanned) = raw else {
            if let Some(at) = self.key_vault_at {
                self.r.at(at, needs_identity);
                return None;
            }
            return Some(AzureConfig::default());
        };
        let raw = spanned.get_ref();
        let mut config = AzureConfig {
            identity: self.azure_identity(spanned, raw_sources, sources)?,
            ..AzureConfig::default()
        };
        if config.identity.is_none()
            && let Some(at) = self.key_vault_at
        {
            self.r.at(at, needs_identity);
            return None;
        }
        if let Some(r) = &raw.key_vault_refresh {
            match parse_duration(r.get_ref()) {
                Ok(d) if d >= Duration::from_secs(60) => config.key_vault_refresh = d,
                Ok(_) => {
                    self.r.at(r.span().start, "key_vault_refresh must be at least 1m: Key Vault throttles a vault's readers");
                    return None;
                }
                Err(problem) => {
                    self.r
                        .at(r.span().start, format!("key_vault_refresh {problem}"));
                    return None;
                }
            }
        }
        if let Some(o) = &raw.key_vault_endpoint_override_for_tests {
            config.key_vault_endpoint_override =
                Some(self.url("key_vault_endpoint_override_for_tests", o, true)?);
        }
        Some(config)
    }

    /// `[azure]`'s identity: a named source's, or its own keys. The identity that
    /// reads Key Vault cannot keep its own secret there.
    fn azure_identity(
        &mut self,
        spanned: &Spanned<RawAzure>,
        raw_sources: &[Spanned<RawSource>],
        sources: &[Option<SourceConfig>],
    ) -> Option<Option<AzureIdentity>> {
        let raw = spanned.get_ref();
        let keys = IdentityKeys::of_azure(raw);
        let own_keys = keys.auth.is_some() || keys.given().iter().any(|(_, at)| at.is_some());
        let (identity, at) = match (&raw.identity, own_keys) {
            (Some(name), true) => {
                self.r.at(
                    name.span().start,
                    "give [azure] identity = \"<source>\" or its own auth keys, not both",
                );
                return None;
            }
            (Some(name), false) => {
                let found = raw_sources.iter().zip(sources).find(|(raw, _)| {
                    raw.get_ref().name.as_ref().map(|n| n.get_ref()) == Some(name.get_ref())
                });
                match found {
                    Some((_, Some(source))) => (source.identity(), name.span().start),
                    // That source has problems of its own, already reported.
                    Some((_, None)) => return None,
                    None => {
                        let names: Vec<String> = raw_sources
                            .iter()
                            .filter_map(|s| s.get_ref().name.as_ref().map(|n| n.get_ref().clone()))
                            .collect();
                        self.r.at(
                            name.span().start,
                            format!(
                                "there is no [[source]] named `{}`; the names are: {}",
                                name.get_ref(),
                                names.join(", ")
                            ),
                        );
                        return None;
                    }
                }
            }
            (None, true) => {
                let header = spanned.span().start;
                let authority_host = self.authority_host(raw.authority_host.as_ref());
                let (tenant_id, client_id, auth) = self.identity_keys(header, &keys)?;
                let at = keys.client_secret.map_or(header, |s| s.span().start);
                let identity = AzureIdentity {
                    authority_host: authority_host?,
                    tenant_id,
                    client_id,
                    auth,
                };
                (identity, at)
            }
            (None, false) => return Some(None),
        };
        if let Some((key, secret)) = identity.auth.secret()
            && secret.key_vault().is_some()
        {
            self.r.at(
                at,
                format!("the [azure] identity reads Key Vault, so its {key} cannot be kept there: use {{ env = \"...\" }} or {{ file = \"...\" }}, or another auth"),
            );
            return None;
        }
        Some(Some(identity))
    }
}

/// What is wrong with a certificate file, by its shape: PEM needs a certificate
/// and a private key (an encrypted one, a password); anything else must look
/// like PKCS#12 (DER: a SEQUENCE). `None`: it may be used.
fn certificate_file_problem(bytes: &[u8], has_password: bool) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    if !text.contains("-----BEGIN") {
        return (bytes.first() != Some(&0x30)).then(|| {
            "is neither PEM nor PKCS#12 (.pfx, .p12); export the certificate with its private \
             key"
            .to_owned()
        });
    }
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Some("holds no PEM certificate; add the certificate registered on the app".into());
    }
    let encrypted = text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----");
    if !encrypted
        && !text.contains("-----BEGIN PRIVATE KEY-----")
        && !text.contains("-----BEGIN RSA PRIVATE KEY-----")
    {
        return Some("holds no private key; add the certificate's RSA private key".into());
    }
    (encrypted && !has_password).then(|| {
        "holds an encrypted private key; add certificate_password = { env = \"...\" } (or a \
         file or Key Vault secret) to open it"
            .to_owned()
    })
}
