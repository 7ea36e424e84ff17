//! Builds the connectors a config describes: one shared HTTP client, a token
//! provider per Microsoft source, one client per source and ticket system, one rate
//! limiter per remote instance (shared by every client that talks to it, so pairs
//! with a common tenant, subscription or ticket host share its budget), and a
//! `PairRuntime` per `[[sync]]`. This is where secrets are read.

use std::collections::HashMap;
use std::sync::Arc;

use bridge_core::config::{Config, HttpConfig, SourceConfig, TicketAuth, TicketSystemConfig};
use bridge_core::engine::PairRuntime;
use bridge_core::ports::{IncidentSource, TicketSystem};
use bridge_core::vocab::{SourceKind, TicketKind};

use crate::auth::EntraTokenProvider;
use crate::generic::GenericTickets;
use crate::graph::GraphSource;
use crate::http::{Api, Auth, HttpSettings, build_client};
use crate::jira::JiraTickets;
use crate::keyvault::cell::CellToken;
use crate::keyvault::{KeyVaultSecrets, SecretCell};
use crate::limits::LimiterRegistry;
use crate::sentinel::SentinelSource;
use crate::servicenow::ServiceNowTickets;

/// Why the connectors could not be built. `Input` problems (a missing secret, an
/// unreadable CA bundle, a kind this version cannot drive) are the admin's to fix.
#[derive(Debug)]
pub enum BuildError {
    Input(String),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Input(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for BuildError {}

fn input(message: impl Into<String>) -> BuildError {
    BuildError::Input(message.into())
}

/// Reads `[http]` into settings for the client (the CA bundle is read here).
pub fn http_settings(http: &HttpConfig) -> Result<HttpSettings, BuildError> {
    let ca_bundle_pem = match &http.ca_bundle {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            input(format!(
                "[http] ca_bundle {}: cannot read it: {e}",
                path.display()
            ))
        })?),
        None => None,
    };
    Ok(HttpSettings {
        ca_bundle_pem,
        proxy: http.proxy.clone(),
        timeout: Some(http.timeout),
    })
}

/// Every `[[sync]]` pair, ready to run (a config without Key Vault secrets).
pub fn build_pairs(config: &Config) -> Result<Vec<PairRuntime>, BuildError> {
    build_pairs_with(config, &LimiterRegistry::from_config(config))
}

/// Every `[[sync]]` pair, with the rate limiters taken from `limiters` (whose
/// counters the caller can read afterwards).
pub fn build_pairs_with(
    config: &Config,
    limiters: &LimiterRegistry,
) -> Result<Vec<PairRuntime>, BuildError> {
    build_pairs_with_secrets(config, limiters, &KeyVaultSecrets::default())
}

/// Fetches the config's Key Vault secrets (none: at once). A secret that cannot
/// be read stops start-up: the error names the vault, the secret and the role.
pub async fn fetch_key_vault_secrets(config: &Config) -> Result<KeyVaultSecrets, BuildError> {
    let client = build_client(&http_settings(&config.http)?).map_err(input)?;
    KeyVaultSecrets::fetch(config, client).await.map_err(input)
}

/// Every `[[sync]]` pair, its secrets read from `secrets` (Key Vault's, fetched
/// by [`fetch_key_vault_secrets`]) or their variable or file.
pub fn build_pairs_with_secrets(
    config: &Config,
    limiters: &LimiterRegistry,
    secrets: &KeyVaultSecrets,
) -> Result<Vec<PairRuntime>, BuildError> {
    let client = build_client(&http_settings(&config.http)?).map_err(input)?;
    let mut sources: HashMap<&str, Arc<dyn IncidentSource>> = HashMap::new();
    let mut tickets: HashMap<&str, Arc<dyn TicketSystem>> = HashMap::new();
    let mut pairs = Vec::new();
    for sync in &config.syncs {
        let source_config = config
            .source(&sync.source)
            .expect("validated by the config loader");
        let ticket_config = config
            .ticket_system(&sync.tickets)
            .expect("validated by the config loader");
        let source = match sources.get(source_config.name.as_str()) {
            Some(s) => s.clone(),
            None => {
                let s = build_source(
                    source_config,
                    &config.http,
                    client.clone(),
                    limiters,
                    secrets,
                )?;
                sources.insert(&source_config.name, s.clone());
                s
            }
        };
        let ticket_system = match tickets.get(ticket_config.name.as_str()) {
            Some(t) => t.clone(),
            None => {
                let t = build_tickets(
                    ticket_config,
                    &config.http,
                    client.clone(),
                    limiters,
                    secrets,
                )?;
                tickets.insert(&ticket_config.name, t.clone());
                t
            }
        };
        pairs.push(PairRuntime {
            pair: sync.pair_name(),
            source_name: sync.source.clone(),
            correlation_scope: correlation_scope(source_config),
            source,
            tickets: ticket_system,
            mapping: Arc::new(ticket_config.mapping.clone()),
            policy: sync.conflict,
            since: sync.since,
            overlap: chrono::Duration::minutes(5),
            adopt_after: chrono::Duration::from_std(ticket_config.search_lag)
                .unwrap_or(chrono::Duration::seconds(30)),
        });
    }
    Ok(pairs)
}

/// What qualifies a source's incident ids: its tenant, or its workspace.
fn correlation_scope(config: &SourceConfig) -> String {
    match &config.workspace {
        Some(w) => format!(
            "{}/{}/{}",
            w.subscription_id, w.resource_group, w.workspace_name
        ),
        None => config.tenant_id.clone(),
    }
}

fn secret(
    secrets: &KeyVaultSecrets,
    owner: &str,
    key: &str,
    r: &bridge_core::config::SecretRef,
) -> Result<Arc<SecretCell>, BuildError> {
    secrets
        .cell(r)
        .map_err(|e| input(format!("{owner}: {key}: {e}")))
}

fn build_source(
    config: &SourceConfig,
    http: &HttpConfig,
    client: reqwest::Client,
    limiters: &LimiterRegistry,
    secrets: &KeyVaultSecrets,
) -> Result<Arc<dyn IncidentSource>, BuildError> {
    let owner = format!("[[source]] {}", config.name);
    let secret = match config.auth.secret() {
        Some((key, reference)) => Some(secret(secrets, &owner, key, reference)?),
        None => None,
    };
    let tokens = EntraTokenProvider::for_identity(
        &config.identity(),
        secret,
        config.scope.clone(),
        client.clone(),
    )
    .map_err(|e| input(format!("{owner}: {}", e.message)))?;
    let auth = Auth::Bearer(Arc::new(tokens));
    let limiter = limiters.for_source(config);
    let max_body = http.max_body;
    match config.kind {
        SourceKind::Graph => {
            let api = Api::new(
                config.name.clone(),
                &config.base_url,
                client,
                auth,
                crate::graph::error_message,
            )
            .map_err(|e| input(format!("{owner}: {e}")))?
            .with_limiter(limiter)
            .with_max_body(max_body);
            Ok(Arc::new(GraphSource::new(api)))
        }
        SourceKind::Sentinel => {
            let workspace = config.workspace.clone().ok_or_else(|| {
                input(format!(
                    "{owner}: sentinel needs subscription_id, resource_group and workspace_name"
                ))
            })?;
            let api = Api::new(
                config.name.clone(),
                &config.base_url,
                client,
                auth,
                crate::sentinel::error_message,
            )
            .map_err(|e| input(format!("{owner}: {e}")))?
            .with_limiter(limiter)
            .with_max_body(max_body);
            Ok(Arc::new(SentinelSource::new(
                api,
                workspace,
                config.api_version.clone(),
            )))
        }
    }
}

fn build_tickets(
    config: &TicketSystemConfig,
    http: &HttpConfig,
    client: reqwest::Client,
    limiters: &LimiterRegistry,
    secrets: &KeyVaultSecrets,
) -> Result<Arc<dyn TicketSystem>, BuildError> {
    let owner = format!("[[ticket_system]] {}", config.name);
    let at = |e: String| input(format!("{owner}: {e}"));
    let auth = match &config.auth {
        TicketAuth::JiraToken { email, api_token } => Auth::BasicCell {
            username: email.clone(),
            password: secret(secrets, &owner, "api_token", api_token)?,
        },
        TicketAuth::Basic { username, password } => Auth::BasicCell {
            username: username.clone(),
            password: secret(secrets, &owner, "password", password)?,
        },
        TicketAuth::Bearer { token } => Auth::Bearer(Arc::new(CellToken(secret(
            secrets, &owner, "token", token,
        )?))),
        TicketAuth::OAuthClient {
            client_id,
            client_secret,
        } => {
            let cell = secret(secrets, &owner, "client_secret", client_secret)?;
            let provider = crate::servicenow::ClientCredentials::new(
                &config.base_url,
                client.clone(),
                client_id.clone(),
                cell.current(),
            )
            .map_err(at)?
            .with_secret_cell(cell);
            Auth::Bearer(Arc::new(provider))
        }
    };
    let limiter = limiters.for_tickets(config);
    let max_body = http.max_body;
    match config.kind {
        TicketKind::Jira => {
            let api = Api::new(
                config.name.clone(),
                &config.base_url,
                client,
                auth,
                crate::jira::error_message,
            )
            .map_err(at)?
            .with_limiter(limiter)
            .with_max_body(max_body);
            let project = config.project_key.clone().unwrap_or_default();
            let issue_type = config.issue_type.clone().unwrap_or_else(|| "Task".into());
            Ok(Arc::new(JiraTickets::new(api, project, issue_type)))
        }
        TicketKind::Servicenow => {
            let api = Api::new(
                config.name.clone(),
                &config.base_url,
                client,
                auth,
                crate::servicenow::error_message,
            )
            .map_err(at)?
            .with_limiter(limiter)
            .with_max_body(max_body);
            Ok(Arc::new(ServiceNowTickets::new(api)))
        }
        TicketKind::Generic => {
            let spec = config.mapping.api.clone().ok_or_else(|| {
                input(format!(
                    "{owner}: its mapping has no [api] table describing the REST API"
                ))
            })?;
            let api =
                crate::generic::generic_api(config.name.clone(), &config.base_url, client, auth)
                    .map_err(at)?
                    .with_limiter(limiter)
                    .with_max_body(max_body);
            Ok(Arc::new(GenericTickets::new(api, spec)))
        }
    }
}
