//! Loading `bridge.toml`: the text is deserialized into raw structs that refuse
//! unknown keys and keep every value's position, then checked — names, kinds, URLs,
//! secret references, schedules, cross-references between `[[sync]]`,
//! `[[source]]` and `[[ticket_system]]` — reporting every problem at once with
//! file:line:column. The mapping files the config names are loaded and checked
//! too. Secrets stay references; `check_secrets` is the one place that reads them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{
    Config, HttpConfig, LedgerConfig, LogConfig, LogFormat, MappingEdits, PostgresStoreConfig,
    RateLimitConfig, SecretRef, SentinelWorkspace, ServerConfig, SourceConfig, StoreConfig,
    SyncConfig, TicketAuth, TicketSystemConfig,
};
use crate::diag::{Diagnostic, InputError, Reporter, line_col};
use crate::mapping;
use crate::model::ConflictPolicy;
use crate::schedule::Schedule;
use crate::store::SslMode;
use crate::vocab::{SourceKind, TicketKind};

mod azure;
mod checks;
mod pairs;
mod sources;
#[cfg(test)]
mod tests;
mod tickets;

use checks::*;

const DEFAULT_STORE_PATH: &str = "itsm-bridge.db";
const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com";
const DEFAULT_ARM_URL: &str = "https://management.azure.com";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longer than any API answers a single call in; past it a hung remote holds a
/// pair for that long.
const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// Bounds of `[http] max_body`: below, ordinary pages are refused; above, one
/// answer could take a good part of a small host's memory.
const MIN_MAX_BODY: u64 = 64 * 1024;
const MAX_MAX_BODY: u64 = 1024 * 1024 * 1024;
/// A `since` this far ahead of the clock is a mistake, not clock skew.
const SINCE_SKEW: chrono::Duration = chrono::Duration::minutes(5);
const DEFAULT_ISSUE_TYPE: &str = "Task";
/// How far a ticket system's search may run behind its writes, unless it says.
const DEFAULT_SEARCH_LAG: Duration = Duration::from_secs(30);
/// The drift-repair sweep, when a `[[sync]]` does not say: hourly, on the hour.
const DEFAULT_SWEEP: &str = "0 * * * *";
/// Where checkpoint files go, unless `[ledger] checkpoint_dir` says.
const DEFAULT_CHECKPOINT_DIR: &str = "checkpoints/";

/// Reads and checks a config file and the mapping files it names. An unreadable
/// file is one whole-file diagnostic.
pub fn load(path: &Path) -> Result<Config, InputError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(e) => {
            let mut r = Reporter::new(path, "");
            r.whole_file(format!(
                "cannot read the config file ({e}); check the path or pass --config"
            ));
            Err(r.into_error())
        }
    }
}

/// Checks the text of a config file read from `path` (whose directory anchors
/// relative paths), loading the mapping files it names. Secrets are not read.
pub fn parse(path: &Path, text: &str) -> Result<Config, InputError> {
    let mut r = Reporter::new(path, text);
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            let mut message = e
                .message()
                .trim()
                .replacen("unknown field", "unknown key", 1);
            // `[source]` where `[[source]]` is meant.
            let rest = text.get(at..).unwrap_or("");
            if message.ends_with("expected a sequence")
                && rest.starts_with('[')
                && !rest.starts_with("[[")
            {
                let table = rest[1..].split([']', '\n']).next().unwrap_or("");
                message =
                    format!("write [[{table}]] with double brackets: a config can have several");
            }
            r.at(at, message);
            return Err(r.into_error());
        }
    };
    let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut checker = Checker {
        r,
        text,
        dir,
        mapping_diagnostics: Vec::new(),
        key_vault_at: None,
    };
    let checked = checker.config(&raw);
    let Checker {
        mut r,
        mapping_diagnostics,
        ..
    } = checker;
    // The config's own problems in file order, then each mapping file's.
    r.diagnostics.sort_by_key(|d| (d.line, d.column));
    r.diagnostics.extend(mapping_diagnostics);
    match checked {
        Some(parts) if r.is_empty() => Ok(Config {
            file: path.to_path_buf(),
            store: parts.store,
            server: parts.server,
            http: parts.http,
            sources: parts.sources,
            ticket_systems: parts.ticket_systems,
            syncs: parts.syncs,
            ledger: parts.ledger,
            log: parts.log,
            mapping: parts.mapping,
            azure: parts.azure,
        }),
        _ => {
            debug_assert!(!r.is_empty(), "a config check failed without a diagnostic");
            Err(r.into_error())
        }
    }
}

/// Reads every secret the config refers to and reports each one that is missing
/// (an unset or empty variable, an unreadable or empty file). The messages name the
/// variable or file, never a value; the secrets read are dropped at once.
pub fn check_secrets(config: &Config) -> Result<(), InputError> {
    let mut diagnostics = Vec::new();
    let mut key_problem = None;
    for (owner, key, secret) in config.secret_refs() {
        let fix = match secret {
            SecretRef::Env(_) => "set it in the bridge's environment",
            SecretRef::File(_) => "create the file or change the path",
            // Fetched over the network at start, where a failure names the vault,
            // the secret and the role to grant; `check` stays offline.
            SecretRef::KeyVault(_) => continue,
        };
        match secret.resolve() {
            Err(problem) => diagnostics.push(Diagnostic {
                file: config.file.clone(),
                line: 0,
                column: 0,
                message: format!("{owner} {key}: {problem}; {fix}"),
            }),
            // The ledger key is read and parsed as a key: a file that is there but
            // holds no key is as missing as one that is not.
            Ok(text) if key == "signing_key" => {
                use secrecy::ExposeSecret;
                key_problem = crate::checkpoint::SigningKey::from_pem(text.expose_secret()).err();
            }
            Ok(_) => {}
        }
    }
    if let Some(problem) = key_problem {
        diagnostics.push(Diagnostic {
            file: config.file.clone(),
            line: 0,
            column: 0,
            message: format!("[ledger] signing_key {problem}"),
        });
    }
    if diagnostics.is_empty() {
        Ok(())
    } else {
        Err(InputError { diagnostics })
    }
}

// ---------------------------------------------------------------------------------
// Raw shape: what serde reads. Keys are optional so that a missing one is our
// diagnostic (with a hint), and `[[source]]` / `[[ticket_system]]` hold every kind's
// keys so that a key of the wrong kind gets a message saying which kind it is for.

type Text = Option<Spanned<String>>;
/// A secret as written: `{ env = "..." }`, `{ file = "..." }`, or (refused) a string.
type RawSecret = Option<Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    store: Option<RawStore>,
    server: Option<RawServer>,
    http: Option<RawHttp>,
    #[serde(default)]
    source: Vec<Spanned<RawSource>>,
    #[serde(default)]
    ticket_system: Vec<Spanned<RawTicketSystem>>,
    #[serde(default)]
    sync: Vec<Spanned<RawSync>>,
    ledger: Option<Spanned<RawLedger>>,
    log: Option<RawLog>,
    mapping: Option<RawMappingEdits>,
    azure: Option<Spanned<RawAzure>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Text,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMappingEdits {
    max_rewrites: Option<Spanned<i64>>,
}

/// `[azure]`: the identity Key Vault secrets are fetched with.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAzure {
    /// The name of a `[[source]]` whose identity to use.
    identity: Text,
    auth: Text,
    tenant_id: Text,
    client_id: Text,
    client_secret: RawSecret,
    certificate: Text,
    certificate_password: RawSecret,
    resource_id: Text,
    token_file: Text,
    authority_host: Text,
    key_vault_refresh: Text,
    key_vault_endpoint_override_for_tests: Text,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLedger {
    signing_key: RawSecret,
    checkpoint: Text,
    checkpoint_dir: Text,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Text,
    url: Text,
    password: RawSecret,
    lease: Text,
    ca_bundle: Text,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Text,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    ca_bundle: Text,
    proxy: Text,
    timeout: Text,
    max_body: Text,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: Text,
    kind: Text,
    auth: Text,
    tenant_id: Text,
    client_id: Text,
    client_secret: RawSecret,
    certificate: Text,
    certificate_password: RawSecret,
    resource_id: Text,
    token_file: Text,
    authority_host: Text,
    base_url: Text,
    scope: Text,
    subscription_id: Text,
    resource_group: Text,
    workspace_name: Text,
    api_version: Text,
    rate_limit: Text,
    burst: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTicketSystem {
    name: Text,
    kind: Text,
    base_url: Text,
    mapping: Text,
    email: Text,
    api_token: RawSecret,
    project_key: Text,
    issue_type: Text,
    username: Text,
    password: RawSecret,
    token: RawSecret,
    client_id: Text,
    client_secret: RawSecret,
    rate_limit: Text,
    burst: Option<Spanned<i64>>,
    search_lag: Text,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSync {
    source: Text,
    tickets: Text,
    schedule: Text,
    /// The drift-repair sweep's schedule, or "off".
    sweep: Text,
    conflict: Text,
    /// A string or a TOML date-time.
    since: Option<Spanned<toml::Value>>,
}

// ---------------------------------------------------------------------------------
// Checking.

struct Parts {
    ledger: LedgerConfig,
    log: LogConfig,
    mapping: MappingEdits,
    azure: super::AzureConfig,
    store: StoreConfig,
    server: ServerConfig,
    http: HttpConfig,
    sources: Vec<SourceConfig>,
    ticket_systems: Vec<TicketSystemConfig>,
    syncs: Vec<SyncConfig>,
}

struct Checker<'a> {
    r: Reporter<'a>,
    text: &'a str,
    /// The config file's directory: relative paths are resolved against it.
    dir: PathBuf,
    /// Problems in the mapping files, which name those files.
    mapping_diagnostics: Vec<Diagnostic>,
    /// Where the first Key Vault reference is: it needs an identity to be fetched with.
    key_vault_at: Option<usize>,
}

/// What a `[[sync]]` check needs to know of the tables it names.
struct Named {
    line: usize,
    source_kind: Option<SourceKind>,
    mapping: Option<(PathBuf, SourceKind)>,
}

impl Checker<'_> {
    fn config(&mut self, raw: &RawConfig) -> Option<Parts> {
        let mut store = self.store(raw.store.as_ref());
        let server = self.server(raw.server.as_ref());
        let http = self.http(raw.http.as_ref());
        // TLS to PostgreSQL trusts [store] ca_bundle, else the one of [http].
        if let (
            Some(StoreConfig {
                postgres: Some(pg), ..
            }),
            Some(http),
        ) = (&mut store, &http)
        {
            if pg.ca_bundle.is_none() {
                pg.ca_bundle.clone_from(&http.ca_bundle);
            }
        }
        let ledger = self.ledger(raw.ledger.as_ref());
        let log = self.log(raw.log.as_ref());
        let mapping = self.mapping_edits(raw.mapping.as_ref());

        let mut sources = Vec::new();
        let mut source_names: BTreeMap<String, Named> = BTreeMap::new();
        for s in &raw.source {
            let checked = self.source(s.span(), s.get_ref());
            if let Some(name) = self.unique_name("source", s.get_ref().name.as_ref(), &source_names)
            {
                let kind = s
                    .get_ref()
                    .kind
                    .as_ref()
                    .and_then(|k| SourceKind::parse(k.get_ref()));
                let line = self.line(s.span().start);
                source_names.insert(
                    name,
                    Named {
                        line,
                        source_kind: kind,
                        mapping: None,
                    },
                );
            }
            sources.push(checked);
        }

        let mut ticket_systems = Vec::new();
        let mut ticket_names: BTreeMap<String, Named> = BTreeMap::new();
        for t in &raw.ticket_system {
            let checked = self.ticket_system(t.span(), t.get_ref());
            if let Some(name) =
                self.unique_name("ticket_system", t.get_ref().name.as_ref(), &ticket_names)
            {
                let mapping = checked
                    .as_ref()
                    .map(|c: &TicketSystemConfig| (c.mapping.file.clone(), c.mapping.source_kind));
                let line = self.line(t.span().start);
                ticket_names.insert(
                    name,
                    Named {
                        line,
                        source_kind: None,
                        mapping,
                    },
                );
            }
            ticket_systems.push(checked);
        }

        let mut syncs = Vec::new();
        let mut pairs: BTreeMap<(String, String), usize> = BTreeMap::new();
        for s in &raw.sync {
            syncs.push(self.sync(
                s.span(),
                s.get_ref(),
                &source_names,
                &ticket_names,
                &mut pairs,
            ));
        }
        if raw.sync.is_empty() {
            self.r.whole_file(
                "add a [[sync]] table (source = \"...\", tickets = \"...\", schedule, since): without one the bridge has nothing to do",
            );
        }

        let azure = self.azure(raw.azure.as_ref(), &raw.source, &sources);

        Some(Parts {
            azure: azure?,
            ledger: ledger?,
            log: log?,
            mapping: mapping?,
            store: store?,
            server: server?,
            http: http?,
            sources: sources.into_iter().collect::<Option<_>>()?,
            ticket_systems: ticket_systems.into_iter().collect::<Option<_>>()?,
            syncs: syncs.into_iter().collect::<Option<_>>()?,
        })
    }

    fn line(&self, offset: usize) -> usize {
        line_col(self.text, offset).0
    }

    /// A relative path is relative to the config file's directory.
    fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.dir.join(path)
        }
    }

    /// The offset of `key` on the line where its value starts (the value's offset
    /// when the key is written some other way, as a dotted or quoted key).
    fn key_at(&self, key: &str, value_at: usize) -> usize {
        let line_start = self.text[..value_at].rfind('\n').map_or(0, |i| i + 1);
        match self.text[line_start..value_at].find(key) {
            Some(i) => line_start + i,
            None => value_at,
        }
    }

    /// A name's own problems, and whether an earlier table of the same kind has it.
    /// Returns the name when it can be referred to.
    fn unique_name(
        &mut self,
        table: &str,
        name: Option<&Spanned<String>>,
        seen: &BTreeMap<String, Named>,
    ) -> Option<String> {
        let name = name?;
        if !valid_name(name.get_ref()) {
            return None;
        }
        if let Some(first) = seen.get(name.get_ref()) {
            self.r.at(
                name.span().start,
                format!(
                    "the [[{table}]] name `{}` is already used on line {}; give each [[{table}]] its own name",
                    name.get_ref(),
                    first.line
                ),
            );
            return None;
        }
        Some(name.get_ref().clone())
    }

    /// Checks a name's spelling; reports a missing one at the table's header.
    fn name(
        &mut self,
        table: &str,
        header: usize,
        name: Option<&Spanned<String>>,
    ) -> Option<String> {
        let Some(name) = name else {
            self.r.at(
                header,
                format!("add name = \"...\" to this [[{table}]] (lowercase letters, digits, `-` and `_`)"),
            );
            return None;
        };
        if !valid_name(name.get_ref()) {
            self.r.at(
                name.span().start,
                format!(
                    "invalid name `{}`; use lowercase letters, digits, `-` and `_`, starting with a letter or digit (names end up in Jira labels and correlation ids)",
                    name.get_ref()
                ),
            );
            return None;
        }
        Some(name.get_ref().clone())
    }

    /// A required text value: missing is reported at the table's header.
    fn required(
        &mut self,
        header: usize,
        key: &str,
        hint: &str,
        value: Option<&Spanned<String>>,
    ) -> Option<String> {
        match value {
            None => {
                self.r.at(header, format!("add {key} = {hint}"));
                None
            }
            Some(v) if v.get_ref().trim().is_empty() => {
                self.r
                    .at(v.span().start, format!("{key} is empty; give it a value"));
                None
            }
            Some(v) => Some(v.get_ref().clone()),
        }
    }

    /// Reports each key given that the kind does not use.
    fn foreign_keys(&mut self, keys: &[(&str, Option<usize>)], kind_note: &str) {
        for (key, at) in keys {
            if let Some(at) = at {
                let key_at = self.key_at(key, *at);
                self.r.at(
                    key_at,
                    format!("`{key}` is only valid for {kind_note}; remove it"),
                );
            }
        }
    }

    fn url(&mut self, key: &str, value: &Spanned<String>, https_only: bool) -> Option<String> {
        match check_url(value.get_ref(), https_only) {
            Ok(url) => Some(url),
            Err(problem) => {
                self.r.at(value.span().start, format!("{key} {problem}"));
                None
            }
        }
    }

    /// The URL of a system the bridge sends a credential to: https, or plain http
    /// on loopback only (the simulators); anything else would put `what` on the
    /// wire in clear text.
    fn credential_url(&mut self, value: &Spanned<String>, what: &str) -> Option<String> {
        let url = self.url("base_url", value, false)?;
        if let Some(rest) = url.strip_prefix("http://")
            && !is_loopback_authority(rest)
        {
            self.r.at(
                value.span().start,
                format!(
                    "base_url `{url}` is plain http: the bridge would send its {what} unencrypted; use https:// (plain http is accepted on loopback only, for the simulators)"
                ),
            );
            return None;
        }
        Some(url)
    }

    fn secret(&mut self, key: &str, value: &Spanned<toml::Value>) -> Option<SecretRef> {
        let at = value.span().start;
        let shape = format!(
            "write {key} = {{ env = \"VARIABLE\" }}, {key} = {{ file = \"/path/to/secret\" }} or {key} = {{ key_vault = \"https://NAME.vault.azure.net/secrets/NAME\" }}"
        );
        let toml::Value::Table(table) = value.get_ref() else {
            let message = if value.get_ref().is_str() {
                format!(
                    "put secrets in an environment variable or a file: {key} = {{ env = \"...\" }}"
                )
            } else {
                shape
            };
            self.r.at(at, message);
            return None;
        };
        if let Some(other) = table
            .keys()
            .find(|k| !["env", "file", "key_vault"].contains(&k.as_str()))
        {
            self.r
                .at(at, format!("unknown key `{other}` in {key}; {shape}"));
            return None;
        }
        if table.len() > 1 {
            self.r.at(
                at,
                format!("give {key} one of `env`, `file` or `key_vault`, not several"),
            );
            return None;
        }
        if let Some(vault) = table.get("key_vault") {
            let parsed = match vault {
                toml::Value::String(url) => super::KeyVaultRef::parse(url),
                _ => Err(shape.clone()),
            };
            return match parsed {
                Ok(reference) => {
                    self.key_vault_at.get_or_insert(at);
                    Some(SecretRef::KeyVault(reference))
                }
                Err(problem) => {
                    self.r.at(at, format!("{key}: {problem}"));
                    None
                }
            };
        }
        match (table.get("env"), table.get("file")) {
            (Some(toml::Value::String(var)), None) if var.is_empty() => {
                self.r.at(at, format!("give {key} the name of an environment variable: {key} = {{ env = \"VARIABLE\" }}"));
                None
            }
            (Some(toml::Value::String(var)), None) => {
                if var.is_empty()
                    || var.contains(['=', '\0'])
                    || var.chars().any(char::is_whitespace)
                {
                    self.r.at(
                        at,
                        format!("`{var}` is not an environment variable name; {shape}"),
                    );
                    return None;
                }
                Some(SecretRef::Env(var.clone()))
            }
            (None, Some(toml::Value::String(file))) if !file.trim().is_empty() => {
                Some(SecretRef::File(self.resolve(file)))
            }
            _ => {
                self.r.at(at, shape);
                None
            }
        }
    }

    fn store(&mut self, raw: Option<&RawStore>) -> Option<StoreConfig> {
        let path = match raw.and_then(|s| s.path.as_ref()) {
            None => self.resolve(DEFAULT_STORE_PATH),
            Some(p) if p.get_ref().trim().is_empty() => {
                self.r.at(
                    p.span().start,
                    "store path is empty; give a file name, e.g. \"itsm-bridge.db\"",
                );
                return None;
            }
            Some(p) => {
                let path = self.resolve(p.get_ref());
                if path.is_dir() {
                    self.r.at(
                        p.span().start,
                        format!(
                            "store path {} is a folder; give the database file's name, e.g. \"{}\"",
                            path.display(),
                            Path::new(p.get_ref()).join(DEFAULT_STORE_PATH).display()
                        ),
                    );
                    return None;
                }
                path
            }
        };
        let postgres = match raw {
            Some(raw) => self.postgres_store(raw)?,
            None => None,
        };
        Some(StoreConfig { path, postgres })
    }

    /// `[store] url` with its `password` and `lease` (see `PostgresStoreConfig`).
    fn postgres_store(&mut self, raw: &RawStore) -> Option<Option<PostgresStoreConfig>> {
        let Some(url) = &raw.url else {
            for (key, at) in [
                ("password", raw.password.as_ref().map(|p| p.span().start)),
                ("lease", raw.lease.as_ref().map(|l| l.span().start)),
                ("ca_bundle", raw.ca_bundle.as_ref().map(|c| c.span().start)),
            ] {
                if let Some(at) = at {
                    self.r.at(
                        at,
                        format!("store {key} is for a PostgreSQL store; add url = \"postgres://user@host/db\" or remove {key}"),
                    );
                    return None;
                }
            }
            return Some(None);
        };
        if let Some(path) = &raw.path {
            self.r.at(
                path.span().start,
                "give the store a path (SQLite) or a url (PostgreSQL), not both",
            );
            return None;
        }
        let text = url.get_ref().trim();
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            self.r.at(
                url.span().start,
                "store url must be a PostgreSQL URL, e.g. \"postgres://bridge@db.internal:5432/itsm\"",
            );
            return None;
        }
        let ssl_mode = match crate::store::PgConnect::new(text, None) {
            Ok(connect) => connect.ssl_mode(),
            Err(e) => {
                self.r.at(url.span().start, format!("store url: {e}"));
                return None;
            }
        };
        let ca_bundle = match &raw.ca_bundle {
            None => None,
            Some(p) if p.get_ref().trim().is_empty() => {
                self.r.at(
                    p.span().start,
                    "store ca_bundle is empty; give the path of a PEM file or remove it",
                );
                return None;
            }
            Some(_) if !matches!(ssl_mode, SslMode::VerifyCa | SslMode::VerifyFull) => {
                self.r.at(
                    url.span().start,
                    "store ca_bundle is used only to check the server's certificate; add sslmode=verify-full (or verify-ca) to [store] url, or remove ca_bundle",
                );
                return None;
            }
            Some(p) => {
                let path = self.resolve(p.get_ref());
                if let Err(problem) = check_ca_bundle(&path) {
                    self.r.at(p.span().start, format!("store {problem}"));
                    return None;
                }
                Some(path)
            }
        };
        let password = match &raw.password {
            Some(value) => Some(self.secret("password", value)?),
            None => None,
        };
        let lease = match &raw.lease {
            None => Duration::from_secs(15),
            Some(t) => match parse_duration(t.get_ref()) {
                Ok(lease) if lease >= Duration::from_secs(1) => lease,
                Ok(_) => {
                    self.r.at(t.span().start, "store lease must be at least 1s");
                    return None;
                }
                Err(e) => {
                    self.r.at(t.span().start, format!("store lease: {e}"));
                    return None;
                }
            },
        };
        Some(Some(PostgresStoreConfig {
            url: text.to_owned(),
            password,
            lease,
            ca_bundle,
        }))
    }

    fn ledger(&mut self, raw: Option<&Spanned<RawLedger>>) -> Option<LedgerConfig> {
        let Some(spanned) = raw else {
            return Some(LedgerConfig {
                signing_key: None,
                checkpoint: None,
                checkpoint_dir: self.resolve(DEFAULT_CHECKPOINT_DIR),
            });
        };
        let raw = spanned.get_ref();
        let mut ok = true;
        let signing_key = match &raw.signing_key {
            Some(value) => {
                let key = self.secret("signing_key", value);
                ok &= key.is_some();
                key
            }
            None => None,
        };
        let checkpoint = match &raw.checkpoint {
            None => None,
            Some(c) => match Schedule::parse(c.get_ref()) {
                Ok(schedule) => {
                    if raw.signing_key.is_none() {
                        let at = self.key_at("checkpoint", c.span().start);
                        self.r.at(
                            at,
                            "a checkpoint schedule needs a key to sign with: add signing_key = { file = \"/path/to/ledger.key\" } to [ledger] (make one with `itsm-bridge ledger keygen --out FILE`)",
                        );
                        ok = false;
                    }
                    Some(schedule)
                }
                Err(problem) => {
                    self.r.at(
                        c.span().start,
                        format!("{problem} (checkpoint is a cron schedule)"),
                    );
                    ok = false;
                    None
                }
            },
        };
        let checkpoint_dir = match &raw.checkpoint_dir {
            None => self.resolve(DEFAULT_CHECKPOINT_DIR),
            Some(d) if d.get_ref().trim().is_empty() => {
                self.r.at(
                    d.span().start,
                    "checkpoint_dir is empty; give a folder, e.g. \"checkpoints/\"",
                );
                ok = false;
                PathBuf::new()
            }
            Some(d) => self.resolve(d.get_ref()),
        };
        ok.then_some(LedgerConfig {
            signing_key,
            checkpoint,
            checkpoint_dir,
        })
    }

    fn log(&mut self, raw: Option<&RawLog>) -> Option<LogConfig> {
        let Some(format) = raw.and_then(|l| l.format.as_ref()) else {
            return Some(LogConfig::default());
        };
        match LogFormat::parse(format.get_ref()) {
            Some(format) => Some(LogConfig { format }),
            None => {
                self.r.at(
                    format.span().start,
                    format!(
                        "[log] format `{}` is not a log format; write \"text\" or \"json\"",
                        format.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn mapping_edits(&mut self, raw: Option<&RawMappingEdits>) -> Option<MappingEdits> {
        let Some(max) = raw.and_then(|m| m.max_rewrites.as_ref()) else {
            return Some(MappingEdits::default());
        };
        match u64::try_from(*max.get_ref()) {
            Ok(max_rewrites) => Some(MappingEdits { max_rewrites }),
            Err(_) => {
                self.r.at(
                    max.span().start,
                    format!(
                        "max_rewrites {} is negative; give how many records a mapping edit may \
                         rewrite before it waits to be accepted (0 holds every edit that \
                         rewrites anything)",
                        max.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn server(&mut self, raw: Option<&RawServer>) -> Option<ServerConfig> {
        let listen = match raw.and_then(|s| s.listen.as_ref()) {
            None => None,
            Some(l) => match l.get_ref().parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.r.at(
                        l.span().start,
                        format!(
                            "listen `{}` is not an address and port; write an IP address and a port, e.g. \"127.0.0.1:9464\" (port 0 picks a free one)",
                            l.get_ref()
                        ),
                    );
                    return None;
                }
            },
        };
        Some(ServerConfig { listen })
    }

    fn http(&mut self, raw: Option<&RawHttp>) -> Option<HttpConfig> {
        let Some(raw) = raw else {
            return Some(HttpConfig::default());
        };
        let mut ok = true;
        let ca_bundle = match &raw.ca_bundle {
            Some(p) if p.get_ref().trim().is_empty() => {
                self.r.at(
                    p.span().start,
                    "ca_bundle is empty; give the path of a PEM file or remove it",
                );
                ok = false;
                None
            }
            Some(p) => {
                let path = self.resolve(p.get_ref());
                if let Err(problem) = check_ca_bundle(&path) {
                    self.r.at(p.span().start, problem);
                    ok = false;
                }
                Some(path)
            }
            None => None,
        };
        let proxy = match &raw.proxy {
            Some(p) => {
                let url = self.url("proxy", p, false);
                ok &= url.is_some();
                url
            }
            None => None,
        };
        let timeout = match &raw.timeout {
            None => DEFAULT_TIMEOUT,
            Some(t) => match parse_duration(t.get_ref()) {
                Ok(d) if d > MAX_TIMEOUT => {
                    self.r.at(
                        t.span().start,
                        format!(
                            "timeout `{}` is longer than 10m; a hung remote would hold its pair that long: give a few seconds, e.g. \"30s\"",
                            t.get_ref()
                        ),
                    );
                    ok = false;
                    DEFAULT_TIMEOUT
                }
                Ok(d) => d,
                Err(problem) => {
                    self.r.at(t.span().start, format!("timeout {problem}"));
                    ok = false;
                    DEFAULT_TIMEOUT
                }
            },
        };
        let max_body = match &raw.max_body {
            None => super::DEFAULT_MAX_BODY,
            Some(m) => match parse_size(m.get_ref()) {
                Ok(n) if (MIN_MAX_BODY..=MAX_MAX_BODY).contains(&n) => n,
                Ok(_) => {
                    self.r.at(
                        m.span().start,
                        format!(
                            "max_body `{}` is out of bounds; give between \"64KiB\" and \"1GiB\" (the default is \"16MiB\")",
                            m.get_ref()
                        ),
                    );
                    ok = false;
                    0
                }
                Err(problem) => {
                    self.r.at(m.span().start, format!("max_body {problem}"));
                    ok = false;
                    0
                }
            },
        };
        ok.then_some(HttpConfig {
            ca_bundle,
            proxy,
            timeout,
            max_body,
        })
    }
}
