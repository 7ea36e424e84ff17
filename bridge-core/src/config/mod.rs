//! The bridge's configuration (`bridge.toml`, the contract in DESIGN.md) in its
//! checked form. `load` parses the file with unknown keys refused, validates every
//! value (reporting all problems at once with file:line:column) and loads the mapping
//! files it names. Secrets are only references here; `SecretRef::resolve` reads them.

mod identity;
mod keyvault;
mod load;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

pub use identity::{AzureConfig, AzureIdentity, SourceAuth, UserAssigned};
pub use keyvault::{KeyVaultRef, forget_key_vault_values, publish_key_vault_value};
pub use load::{check_secrets, load, parse};

use crate::mapping::Mapping;
use crate::model::{ConflictPolicy, Timestamp};
use crate::schedule::Schedule;
use crate::vocab::{SourceKind, TicketKind};

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from; relative paths in it are relative to its directory.
    pub file: PathBuf,
    pub store: StoreConfig,
    pub server: ServerConfig,
    pub http: HttpConfig,
    pub sources: Vec<SourceConfig>,
    pub ticket_systems: Vec<TicketSystemConfig>,
    pub syncs: Vec<SyncConfig>,
    pub ledger: LedgerConfig,
    pub log: LogConfig,
    pub mapping: MappingEdits,
    /// `[azure]`: the identity Key Vault secrets are fetched with.
    pub azure: AzureConfig,
}

/// `[log]`: how `run` writes its log lines (`--log-format` and
/// `ITSM_BRIDGE_LOG_FORMAT` take precedence).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// One line of text per event, or one JSON object per line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    /// `"text"` or `"json"`.
    pub fn parse(text: &str) -> Option<LogFormat> {
        match text {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// `[ledger]`: the signed checkpoints that anchor the ledger's head outside the
/// store (see `crate::checkpoint`).
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// The Ed25519 key (PKCS#8 PEM) checkpoints are signed with; never in the store.
    pub signing_key: Option<SecretRef>,
    /// When `run` writes a checkpoint; `None`: only `ledger checkpoint` does.
    pub checkpoint: Option<Schedule>,
    /// Where checkpoint files go, resolved against the config's directory
    /// (`checkpoints/` by default).
    pub checkpoint_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Absolute, or resolved against the config file's directory.
    pub path: PathBuf,
    /// `[store] url`: a PostgreSQL database that replicas share, in place of
    /// the SQLite file at `path`.
    pub postgres: Option<PostgresStoreConfig>,
}

/// `[store] url = "postgres://user@host:port/db"`, its password and its leases.
#[derive(Debug, Clone)]
pub struct PostgresStoreConfig {
    /// The URL as written (checked: no password in it, `sslmode` one of
    /// libpq's five).
    pub url: String,
    /// `[store] password`, a secret reference like every other.
    pub password: Option<SecretRef>,
    /// `[store] lease`: how long a replica's lease on a pair lasts unless
    /// renewed (15 s by default); a dead replica's pairs are taken over within
    /// about this long.
    pub lease: Duration,
    /// The CAs `sslmode=verify-ca` and `verify-full` trust instead of the
    /// system's: `[store] ca_bundle`, else `[http] ca_bundle` (resolved against
    /// the config's directory).
    pub ca_bundle: Option<PathBuf>,
}

/// `[mapping]`: how the running daemon takes a mapping edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingEdits {
    /// A reload whose edit would rewrite more records than this (tickets and
    /// incidents, over every pair) is held until accepted.
    pub max_rewrites: u64,
}

impl MappingEdits {
    pub const DEFAULT_MAX_REWRITES: u64 = 100;
}

impl Default for MappingEdits {
    fn default() -> Self {
        MappingEdits {
            max_rewrites: MappingEdits::DEFAULT_MAX_REWRITES,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Health, metrics and the read-only dashboard; port 0 picks a free port.
    pub listen: Option<SocketAddr>,
}

/// Settings for every remote call.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Extra trusted CA certificates (PEM), resolved against the config's directory.
    pub ca_bundle: Option<PathBuf>,
    pub proxy: Option<String>,
    pub timeout: Duration,
    /// The largest response body the bridge reads (`max_body = "16MiB"`); a larger
    /// one fails its request as a remote fault.
    pub max_body: u64,
}

/// `[http] max_body` unless the config says otherwise.
pub const DEFAULT_MAX_BODY: u64 = 16 * 1024 * 1024;

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            ca_bundle: None,
            proxy: None,
            timeout: Duration::from_secs(30),
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

/// Where a secret comes from. Never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
    /// `{ key_vault = "https://NAME.vault.azure.net/secrets/NAME" }`: fetched over
    /// HTTP by the connectors, which hand the value to [`publish_key_vault_value`];
    /// this crate only reads what was handed over.
    KeyVault(KeyVaultRef),
}

impl SecretRef {
    /// Reads the secret. The error names the variable or file, never a value. A
    /// secret file that group or others may read or write gets a warning, as ssh
    /// gives for a private key (the secret is still read: refusing it would stop a
    /// running bridge over a mode).
    pub fn resolve(&self) -> Result<SecretString, String> {
        if let SecretRef::File(path) = self
            && let Some(warning) = secret_file_warning(path)
        {
            tracing::warn!("{warning}");
        }
        match self {
            SecretRef::Env(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(SecretString::from(v)),
                Ok(_) => Err(format!("environment variable {var} is empty")),
                Err(_) => Err(format!("environment variable {var} is not set")),
            },
            SecretRef::File(path) => match std::fs::read_to_string(path) {
                Ok(v) if !v.trim().is_empty() => Ok(SecretString::from(v.trim().to_string())),
                Ok(_) => Err(format!("secret file {} is empty", path.display())),
                Err(e) => Err(format!("cannot read secret file {}: {e}", path.display())),
            },
            SecretRef::KeyVault(reference) => keyvault::fetched_value(reference),
        }
    }

    /// The Key Vault secret this refers to, if it is one.
    pub fn key_vault(&self) -> Option<&KeyVaultRef> {
        match self {
            SecretRef::KeyVault(reference) => Some(reference),
            _ => None,
        }
    }
}

/// Why a secret file's mode is too open, if it is: readable or writable by group
/// or others. `None` on systems without Unix modes or when the file cannot be read.
pub fn secret_file_warning(path: &std::path::Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o066 != 0).then(|| {
            format!(
                "secret file {} is readable or writable by group or others (mode {mode:o}); restrict it with chmod 600 {}",
                path.display(),
                path.display()
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// A `[[source]]`.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub kind: SourceKind,
    pub tenant_id: String,
    /// The app registration's (or user-assigned identity's) client id; empty for
    /// a system-assigned managed identity and the Azure CLI, which have none to give.
    pub client_id: String,
    /// How the source signs in (`auth`, `client_secret` by default).
    pub auth: SourceAuth,
    /// Entra ID authority, `https://login.microsoftonline.com` by default.
    pub authority_host: String,
    /// `https://graph.microsoft.com` / `https://management.azure.com` by default.
    pub base_url: String,
    /// Token scope, `<base_url>/.default` by default.
    pub scope: String,
    /// Sentinel only.
    pub workspace: Option<SentinelWorkspace>,
    /// Sentinel only: the ARM `api-version`.
    pub api_version: Option<String>,
    /// The bridge's own pace towards this source; `None`: the kind's default.
    pub rate_limit: Option<RateLimitConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelWorkspace {
    pub subscription_id: String,
    pub resource_group: String,
    pub workspace_name: String,
}

/// A `[[ticket_system]]`.
#[derive(Debug, Clone)]
pub struct TicketSystemConfig {
    pub name: String,
    pub kind: TicketKind,
    pub base_url: String,
    pub auth: TicketAuth,
    /// Jira only.
    pub project_key: Option<String>,
    /// Jira only, `Task` by default.
    pub issue_type: Option<String>,
    pub mapping: Mapping,
    /// The bridge's own pace towards this system; `None`: the kind's default.
    pub rate_limit: Option<RateLimitConfig>,
    /// How far the system's search may run behind its writes (`search_lag`, 30 s
    /// by default): a create whose answer was lost is looked up after this long,
    /// so the ticket is found and adopted rather than made twice.
    pub search_lag: Duration,
}

/// `rate_limit = "10/s"` (with an optional `burst = 20`): at most `requests` per
/// `per`, on average, from every pair that talks to the same instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub requests: u32,
    /// One second, minute or hour.
    pub per: Duration,
    /// How many may go at once after a quiet spell; `None`: one second's worth
    /// (at least one).
    pub burst: Option<u32>,
}

impl RateLimitConfig {
    pub fn per_second(&self) -> f64 {
        f64::from(self.requests) / self.per.as_secs_f64()
    }

    /// The burst given, or one second's worth of requests (at least one).
    pub fn burst_or_default(&self) -> u32 {
        self.burst
            .unwrap_or_else(|| (self.per_second().floor() as u32).max(1))
    }
}

/// How the bridge signs in to a ticket system.
#[derive(Debug, Clone)]
pub enum TicketAuth {
    /// Jira Cloud: `email` + `api_token`, sent as HTTP Basic.
    JiraToken { email: String, api_token: SecretRef },
    /// ServiceNow and generic: `username` + `password`, sent as HTTP Basic.
    Basic {
        username: String,
        password: SecretRef,
    },
    /// Generic: a bearer token.
    Bearer { token: SecretRef },
    /// ServiceNow: OAuth client credentials against the instance's `/oauth_token.do`.
    OAuthClient {
        client_id: String,
        client_secret: SecretRef,
    },
}

impl TicketAuth {
    /// The key and reference of the secret this way of signing in uses.
    pub fn secret(&self) -> (&'static str, &SecretRef) {
        match self {
            TicketAuth::JiraToken { api_token, .. } => ("api_token", api_token),
            TicketAuth::Basic { password, .. } => ("password", password),
            TicketAuth::Bearer { token } => ("token", token),
            TicketAuth::OAuthClient { client_secret, .. } => ("client_secret", client_secret),
        }
    }
}

/// A `[[sync]]` pair.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub source: String,
    pub tickets: String,
    pub schedule: Schedule,
    /// When the drift-repair sweep re-reads both sides of every open link
    /// (`sweep`, default hourly); `None` when switched off.
    pub sweep: Option<Schedule>,
    pub conflict: ConflictPolicy,
    /// How far back the first run reaches.
    pub since: Timestamp,
}

impl SyncConfig {
    /// The pair's name in the store, the ledger and the logs: `<source>-><tickets>`.
    pub fn pair_name(&self) -> String {
        format!("{}->{}", self.source, self.tickets)
    }
}

impl SourceConfig {
    /// The identity this source signs in with.
    pub fn identity(&self) -> AzureIdentity {
        AzureIdentity {
            authority_host: self.authority_host.clone(),
            tenant_id: self.tenant_id.clone(),
            client_id: self.client_id.clone(),
            auth: self.auth.clone(),
        }
    }
}

impl Config {
    /// The files the config is read from: itself, then each mapping file once.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.file.clone()];
        for tickets in &self.ticket_systems {
            if !files.contains(&tickets.mapping.file) {
                files.push(tickets.mapping.file.clone());
            }
        }
        files
    }

    /// SHA-256 over the text of [`Config::files`], in hex: what names one
    /// edit of them (a held mapping edit is accepted by it).
    pub fn fingerprint(&self) -> std::io::Result<String> {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for file in self.files() {
            let text = std::fs::read(&file)?;
            hash.update((text.len() as u64).to_be_bytes());
            hash.update(&text);
        }
        Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Every secret reference in the config, with the table and key that hold it.
    pub fn secret_refs(&self) -> Vec<(String, &'static str, &SecretRef)> {
        let mut refs = Vec::new();
        if let Some(password) = self
            .store
            .postgres
            .as_ref()
            .and_then(|p| p.password.as_ref())
        {
            refs.push(("[store]".to_owned(), "password", password));
        }
        if let Some(key) = &self.ledger.signing_key {
            refs.push(("[ledger]".to_owned(), "signing_key", key));
        }
        let azure = self
            .azure
            .identity
            .as_ref()
            .map(|i| ("[azure]".to_owned(), i));
        let sources = self
            .sources
            .iter()
            .map(|s| (format!("[[source]] `{}`", s.name), &s.auth));
        for (owner, auth) in sources.chain(azure.iter().map(|(o, i)| (o.clone(), &i.auth))) {
            if let Some((key, secret)) = auth.secret() {
                refs.push((owner, key, secret));
            }
        }
        for system in &self.ticket_systems {
            let owner = format!("[[ticket_system]] `{}`", system.name);
            let (key, secret) = system.auth.secret();
            refs.push((owner, key, secret));
        }
        refs
    }

    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }

    pub fn ticket_system(&self, name: &str) -> Option<&TicketSystemConfig> {
        self.ticket_systems.iter().find(|t| t.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_secret_file_others_can_read_gets_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let warning = secret_file_warning(&file).expect("a warning");
        assert!(
            warning.contains("mode 644") && warning.contains("chmod 600"),
            "{warning}"
        );
        assert!(!warning.contains("s3cret"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(secret_file_warning(&file), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o620)).unwrap();
        assert!(
            secret_file_warning(&file).is_some(),
            "writable by the group"
        );
    }
}
