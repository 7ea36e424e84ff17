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
    Config, HttpConfig, LedgerConfig, PostgresStoreConfig, RateLimitConfig, SecretRef,
    SentinelWorkspace, ServerConfig, SourceConfig, StoreConfig, SyncConfig, TicketAuth,
    TicketSystemConfig,
};
use crate::diag::{Diagnostic, InputError, Reporter, line_col};
use crate::mapping;
use crate::model::ConflictPolicy;
use crate::schedule::Schedule;
use crate::vocab::{SourceKind, TicketKind};

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
    let mut check = |owner: String, key: &str, secret: &SecretRef| {
        if let Err(problem) = secret.resolve() {
            let fix = match secret {
                SecretRef::Env(_) => "set it in the bridge's environment",
                SecretRef::File(_) => "create the file or change the path",
            };
            diagnostics.push(Diagnostic {
                file: config.file.clone(),
                line: 0,
                column: 0,
                message: format!("{owner} {key}: {problem}; {fix}"),
            });
        }
    };
    if let Some(password) = config
        .store
        .postgres
        .as_ref()
        .and_then(|p| p.password.as_ref())
    {
        check("[store]".to_owned(), "password", password);
    }
    for source in &config.sources {
        check(
            format!("[[source]] `{}`", source.name),
            "client_secret",
            &source.client_secret,
        );
    }
    // The ledger key is read and parsed as a key: a file that is there but holds
    // no key is as missing as one that is not.
    let mut key_problem = None;
    if let Some(key) = &config.ledger.signing_key {
        match key.resolve() {
            Err(_) => check("[ledger]".to_owned(), "signing_key", key),
            Ok(text) => {
                use secrecy::ExposeSecret;
                key_problem = crate::checkpoint::SigningKey::from_pem(text.expose_secret()).err();
            }
        }
    }
    for system in &config.ticket_systems {
        let owner = format!("[[ticket_system]] `{}`", system.name);
        match &system.auth {
            TicketAuth::JiraToken { api_token, .. } => check(owner, "api_token", api_token),
            TicketAuth::Basic { password, .. } => check(owner, "password", password),
            TicketAuth::Bearer { token } => check(owner, "token", token),
            TicketAuth::OAuthClient { client_secret, .. } => {
                check(owner, "client_secret", client_secret)
            }
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
    tenant_id: Text,
    client_id: Text,
    client_secret: RawSecret,
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
}

/// What a `[[sync]]` check needs to know of the tables it names.
struct Named {
    line: usize,
    source_kind: Option<SourceKind>,
    mapping: Option<(PathBuf, SourceKind)>,
}

impl Checker<'_> {
    fn config(&mut self, raw: &RawConfig) -> Option<Parts> {
        let store = self.store(raw.store.as_ref());
        let server = self.server(raw.server.as_ref());
        let http = self.http(raw.http.as_ref());
        let ledger = self.ledger(raw.ledger.as_ref());

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

        Some(Parts {
            ledger: ledger?,
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
            "write {key} = {{ env = \"VARIABLE\" }} or {key} = {{ file = \"/path/to/secret\" }}"
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
        if let Some(other) = table.keys().find(|k| *k != "env" && *k != "file") {
            self.r
                .at(at, format!("unknown key `{other}` in {key}; {shape}"));
            return None;
        }
        match (table.get("env"), table.get("file")) {
            (Some(_), Some(_)) => {
                self.r
                    .at(at, format!("give {key} either `env` or `file`, not both"));
                None
            }
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
        if let Err(e) = crate::store::PgConnect::new(text, None) {
            self.r.at(url.span().start, format!("store url: {e}"));
            return None;
        }
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

    fn source(&mut self, span: Range<usize>, raw: &RawSource) -> Option<SourceConfig> {
        let header = span.start;
        let mut ok = true;
        let name = self.name("source", header, raw.name.as_ref());
        let kind = match &raw.kind {
            None => {
                self.r.at(
                    header,
                    "add kind = \"graph\" or kind = \"sentinel\" to this [[source]]",
                );
                None
            }
            Some(k) => {
                let kind = SourceKind::parse(k.get_ref());
                if kind.is_none() {
                    self.r.at(
                        k.span().start,
                        format!(
                            "unknown source kind `{}`; write \"graph\" or \"sentinel\"",
                            k.get_ref()
                        ),
                    );
                }
                kind
            }
        };
        let mut tenant_id = self.required(
            header,
            "tenant_id",
            "\"<Entra ID tenant id>\"",
            raw.tenant_id.as_ref(),
        );
        if let (Some(id), Some(v)) = (&tenant_id, &raw.tenant_id)
            && !is_guid(id)
            && !is_domain(id)
        {
            self.r.at(
                v.span().start,
                format!(
                    "tenant_id `{id}` is not a tenant id; copy the Directory (tenant) ID, a GUID like \"00000000-0000-0000-0000-000000000000\", from the app registration (or give the tenant's domain, e.g. \"contoso.onmicrosoft.com\")"
                ),
            );
            tenant_id = None;
            ok = false;
        }
        let client_id = self.required(
            header,
            "client_id",
            "\"<application (client) id>\"",
            raw.client_id.as_ref(),
        );
        let client_secret = match &raw.client_secret {
            None => {
                self.r.at(
                    header,
                    "add client_secret = { env = \"...\" } (the app registration's secret)",
                );
                None
            }
            Some(s) => self.secret("client_secret", s),
        };
        let authority_host = match &raw.authority_host {
            None => Some(DEFAULT_AUTHORITY_HOST.to_string()),
            Some(a) => match check_url(a.get_ref(), true) {
                Ok(url) => Some(url),
                Err(_) if a.get_ref().starts_with("http://") => {
                    self.r.at(
                        a.span().start,
                        "authority_host must be an https:// URL (azure_identity refuses http); to test against a local token service, serve it over TLS and trust its CA with [http] ca_bundle",
                    );
                    None
                }
                Err(problem) => {
                    self.r
                        .at(a.span().start, format!("authority_host {problem}"));
                    None
                }
            },
        };

        let sentinel_keys = [
            ("subscription_id", raw.subscription_id.as_ref()),
            ("resource_group", raw.resource_group.as_ref()),
            ("workspace_name", raw.workspace_name.as_ref()),
            ("api_version", raw.api_version.as_ref()),
        ];
        let mut workspace = None;
        let mut api_version = None;
        match kind {
            Some(SourceKind::Graph) => {
                let given: Vec<_> = sentinel_keys
                    .iter()
                    .map(|(k, v)| (*k, v.map(|v| v.span().start)))
                    .collect();
                let before = self.r.diagnostics.len();
                self.foreign_keys(&given, "kind = \"sentinel\"");
                ok &= self.r.diagnostics.len() == before;
            }
            Some(SourceKind::Sentinel) => {
                let hints = [
                    "\"<Azure subscription id>\"",
                    "\"<resource group>\"",
                    "\"<Log Analytics workspace name>\"",
                ];
                let mut values = Vec::new();
                for ((key, value), hint) in sentinel_keys.iter().take(3).zip(hints) {
                    let v = match value {
                        None => {
                            self.r.at(header, format!("add {key} = {hint} (kind = \"sentinel\" needs subscription_id, resource_group and workspace_name)"));
                            None
                        }
                        Some(spanned) => {
                            self.required(header, key, hint, *value).filter(
                                |v| match check_arm_name(key, v) {
                                    Ok(()) => true,
                                    Err(problem) => {
                                        self.r.at(spanned.span().start, problem);
                                        false
                                    }
                                },
                            )
                        }
                    };
                    values.push(v);
                }
                if let [
                    Some(subscription_id),
                    Some(resource_group),
                    Some(workspace_name),
                ] = values.as_slice()
                {
                    workspace = Some(SentinelWorkspace {
                        subscription_id: subscription_id.clone(),
                        resource_group: resource_group.clone(),
                        workspace_name: workspace_name.clone(),
                    });
                } else {
                    ok = false;
                }
                if let Some(v) = &raw.api_version {
                    api_version = self
                        .required(header, "api_version", "\"2025-09-01\"", Some(v))
                        .filter(|version| {
                            let fine = is_api_version(version);
                            if !fine {
                                self.r.at(
                                    v.span().start,
                                    format!("api_version `{version}` is not an ARM api-version; write a date, optionally with -preview, e.g. \"2025-09-01\" (remove it for the default)"),
                                );
                            }
                            fine
                        });
                    ok &= api_version.is_some();
                }
            }
            None => {}
        }

        let base_url = match (&raw.base_url, kind) {
            (Some(b), _) => self.credential_url(b, "bearer tokens"),
            (None, Some(SourceKind::Graph)) => Some(DEFAULT_GRAPH_URL.to_string()),
            (None, Some(SourceKind::Sentinel)) => Some(DEFAULT_ARM_URL.to_string()),
            (None, None) => None,
        };
        let scope = match (&raw.scope, &base_url) {
            (Some(s), _) => self.required(header, "scope", "\"<resource>/.default\"", Some(s)),
            (None, Some(base)) => Some(format!("{base}/.default")),
            (None, None) => None,
        };
        let rate_limit = self.rate_limit(raw.rate_limit.as_ref(), raw.burst.as_ref());
        ok &= rate_limit.is_ok();

        if !ok {
            return None;
        }
        Some(SourceConfig {
            name: name?,
            kind: kind?,
            tenant_id: tenant_id?,
            client_id: client_id?,
            client_secret: client_secret?,
            authority_host: authority_host?,
            base_url: base_url?,
            scope: scope?,
            workspace,
            api_version,
            rate_limit: rate_limit.ok()?,
        })
    }

    fn ticket_system(
        &mut self,
        span: Range<usize>,
        raw: &RawTicketSystem,
    ) -> Option<TicketSystemConfig> {
        let header = span.start;
        let mut ok = true;
        let name = self.name("ticket_system", header, raw.name.as_ref());
        let kind = match &raw.kind {
            None => {
                self.r.at(
                    header,
                    "add kind = \"jira\", \"servicenow\" or \"generic\" to this [[ticket_system]]",
                );
                None
            }
            Some(k) => {
                let kind = TicketKind::parse(k.get_ref());
                if kind.is_none() {
                    self.r.at(
                        k.span().start,
                        format!(
                            "unknown ticket system kind `{}`; write \"jira\", \"servicenow\" or \"generic\"",
                            k.get_ref()
                        ),
                    );
                }
                kind
            }
        };
        let base_url = match &raw.base_url {
            None => {
                self.r.at(
                    header,
                    "add base_url = \"https://...\" (the ticket system's address)",
                );
                None
            }
            Some(b) => self.credential_url(b, "credentials"),
        };

        let at = |v: &Option<Spanned<String>>| v.as_ref().map(|v| v.span().start);
        let secret_at = |v: &RawSecret| v.as_ref().map(|v| v.span().start);
        let jira_keys = [
            ("email", at(&raw.email)),
            ("api_token", secret_at(&raw.api_token)),
            ("project_key", at(&raw.project_key)),
            ("issue_type", at(&raw.issue_type)),
        ];
        let basic_keys = [
            ("username", at(&raw.username)),
            ("password", secret_at(&raw.password)),
        ];
        let token_key = [("token", secret_at(&raw.token))];
        let oauth_keys = [
            ("client_id", at(&raw.client_id)),
            ("client_secret", secret_at(&raw.client_secret)),
        ];

        let before = self.r.diagnostics.len();
        let mut project_key = None;
        let mut issue_type = None;
        let auth = match kind {
            None => None,
            Some(TicketKind::Jira) => {
                self.foreign_keys(&basic_keys, "kind = \"servicenow\" or \"generic\"");
                self.foreign_keys(&token_key, "kind = \"generic\"");
                self.foreign_keys(&oauth_keys, "kind = \"servicenow\"");
                let email = self.required(
                    header,
                    "email",
                    "\"bridge@example.com\" (the Jira account of the bridge)",
                    raw.email.as_ref(),
                );
                let api_token = match &raw.api_token {
                    None => {
                        self.r.at(
                            header,
                            "add api_token = { env = \"...\" } (an Atlassian API token)",
                        );
                        None
                    }
                    Some(s) => self.secret("api_token", s),
                };
                project_key = self.required(
                    header,
                    "project_key",
                    "\"SEC\" (the Jira project issues are created in)",
                    raw.project_key.as_ref(),
                );
                if let (Some(key), Some(v)) = (&project_key, &raw.project_key) {
                    if !valid_project_key(key) {
                        self.r.at(
                            v.span().start,
                            format!("`{key}` is not a Jira project key; project keys are an upper-case letter then upper-case letters, digits or `_`, e.g. \"SEC\""),
                        );
                    }
                }
                issue_type = match &raw.issue_type {
                    None => Some(DEFAULT_ISSUE_TYPE.to_string()),
                    Some(v) => self.required(header, "issue_type", "\"Task\"", Some(v)),
                };
                match (email, api_token) {
                    (Some(email), Some(api_token)) => {
                        Some(TicketAuth::JiraToken { email, api_token })
                    }
                    _ => None,
                }
            }
            Some(TicketKind::Servicenow) => {
                self.foreign_keys(&jira_keys, "kind = \"jira\"");
                self.foreign_keys(&token_key, "kind = \"generic\"");
                match (&raw.client_id, &raw.client_secret) {
                    (None, None) => self.basic_auth(header, raw),
                    (client_id, client_secret) => {
                        // OAuth client credentials (the instance's /oauth_token.do).
                        self.foreign_keys(&basic_keys, "Basic sign-in (without client_id)");
                        let client_id = self.required(
                            header,
                            "client_id",
                            "\"...\" (the OAuth application registry entry's client id)",
                            client_id.as_ref(),
                        );
                        let client_secret = match client_secret {
                            None => {
                                self.r.at(header, "add client_secret = { env = \"...\" }");
                                None
                            }
                            Some(s) => self.secret("client_secret", s),
                        };
                        Some(TicketAuth::OAuthClient {
                            client_id: client_id?,
                            client_secret: client_secret?,
                        })
                    }
                }
            }
            Some(TicketKind::Generic) => {
                self.foreign_keys(&jira_keys, "kind = \"jira\"");
                self.foreign_keys(&oauth_keys, "kind = \"servicenow\"");
                match (&raw.token, &raw.username, &raw.password) {
                    (Some(token), None, None) => self
                        .secret("token", token)
                        .map(|token| TicketAuth::Bearer { token }),
                    (Some(token), _, _) => {
                        self.r.at(
                            self.key_at("token", token.span().start),
                            "give either username + password or token, not both",
                        );
                        None
                    }
                    (None, None, None) => {
                        self.r.at(
                            header,
                            "add username = \"...\" and password = { env = \"...\" }, or token = { env = \"...\" }",
                        );
                        None
                    }
                    (None, _, _) => self.basic_auth(header, raw),
                }
            }
        };
        ok &= self.r.diagnostics.len() == before;

        // The mapping file, checked on its own; its kinds must fit this system.
        let mapping = match &raw.mapping {
            None => {
                self.r.at(
                    header,
                    "add mapping = \"mappings/<kind>.toml\" (the field mapping for this ticket system; see mappings/README.md)",
                );
                None
            }
            Some(m) if m.get_ref().trim().is_empty() => {
                self.r.at(
                    m.span().start,
                    "mapping is empty; give the path of a mapping file",
                );
                None
            }
            Some(m) => match mapping::load(&self.resolve(m.get_ref())) {
                Ok(mapping) => {
                    if kind.is_some_and(|k| k != mapping.ticket_kind) {
                        self.r.at(
                            m.span().start,
                            format!(
                                "{} is written for tickets = \"{}\", but this ticket system is kind = \"{}\"; use a mapping written for {}",
                                mapping.file.display(),
                                mapping.ticket_kind.as_str(),
                                kind.map_or("", TicketKind::as_str),
                                kind.map_or("", TicketKind::as_str),
                            ),
                        );
                        None
                    } else {
                        Some(mapping)
                    }
                }
                Err(e) => {
                    self.mapping_diagnostics.extend(e.diagnostics);
                    None
                }
            },
        };

        let rate_limit = self.rate_limit(raw.rate_limit.as_ref(), raw.burst.as_ref());
        ok &= rate_limit.is_ok();
        let search_lag = match &raw.search_lag {
            None => DEFAULT_SEARCH_LAG,
            Some(t) => match parse_duration(t.get_ref()) {
                Ok(d) => d,
                Err(problem) => {
                    self.r.at(t.span().start, format!("search_lag {problem}"));
                    ok = false;
                    DEFAULT_SEARCH_LAG
                }
            },
        };

        if !ok {
            return None;
        }
        Some(TicketSystemConfig {
            name: name?,
            kind: kind?,
            base_url: base_url?,
            auth: auth?,
            project_key,
            issue_type,
            mapping: mapping?,
            rate_limit: rate_limit.ok()?,
            search_lag,
        })
    }

    /// `rate_limit = "10/s"` and its optional `burst`. `Err` when either is bad
    /// (already reported).
    fn rate_limit(
        &mut self,
        rate: Option<&Spanned<String>>,
        burst: Option<&Spanned<i64>>,
    ) -> Result<Option<RateLimitConfig>, ()> {
        let burst = match (burst, rate) {
            (None, _) => None,
            (Some(b), None) => {
                self.r.at(
                    self.key_at("burst", b.span().start),
                    "burst needs a rate_limit beside it, e.g. rate_limit = \"10/s\"",
                );
                return Err(());
            }
            (Some(b), Some(_)) => match u32::try_from(*b.get_ref()) {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    self.r.at(
                        b.span().start,
                        "burst must be a whole number of requests, at least 1, e.g. burst = 20",
                    );
                    return Err(());
                }
            },
        };
        let Some(rate) = rate else {
            return Ok(None);
        };
        match parse_rate(rate.get_ref()) {
            Ok((requests, per)) => Ok(Some(RateLimitConfig {
                requests,
                per,
                burst,
            })),
            Err(problem) => {
                self.r.at(rate.span().start, problem);
                Err(())
            }
        }
    }

    fn basic_auth(&mut self, header: usize, raw: &RawTicketSystem) -> Option<TicketAuth> {
        let username = self.required(
            header,
            "username",
            "\"...\" (the account the bridge signs in as)",
            raw.username.as_ref(),
        );
        let password = match &raw.password {
            None => {
                self.r.at(header, "add password = { env = \"...\" }");
                None
            }
            Some(p) => self.secret("password", p),
        };
        Some(TicketAuth::Basic {
            username: username?,
            password: password?,
        })
    }

    fn sync(
        &mut self,
        span: Range<usize>,
        raw: &RawSync,
        sources: &BTreeMap<String, Named>,
        ticket_systems: &BTreeMap<String, Named>,
        pairs: &mut BTreeMap<(String, String), usize>,
    ) -> Option<SyncConfig> {
        let header = span.start;
        let mut ok = true;
        let source = match &raw.source {
            None => {
                self.r.at(
                    header,
                    "add source = \"...\" to this [[sync]]: the name of a [[source]]",
                );
                None
            }
            Some(s) => match sources.get(s.get_ref()) {
                Some(named) => Some((s.get_ref().clone(), named)),
                None => {
                    self.r.at(
                        s.span().start,
                        unknown_reference("source", s.get_ref(), sources),
                    );
                    None
                }
            },
        };
        let tickets = match &raw.tickets {
            None => {
                self.r.at(
                    header,
                    "add tickets = \"...\" to this [[sync]]: the name of a [[ticket_system]]",
                );
                None
            }
            Some(t) => match ticket_systems.get(t.get_ref()) {
                Some(named) => Some((t.get_ref().clone(), named, t.span().start)),
                None => {
                    self.r.at(
                        t.span().start,
                        unknown_reference("ticket_system", t.get_ref(), ticket_systems),
                    );
                    None
                }
            },
        };
        // The ticket system's mapping must read this source's vocabulary.
        if let (Some((source_name, source)), Some((tickets_name, tickets, at))) =
            (&source, &tickets)
        {
            if let (Some(kind), Some((file, mapping_kind))) = (source.source_kind, &tickets.mapping)
            {
                if kind != *mapping_kind {
                    self.r.at(
                        *at,
                        format!(
                            "ticket system `{tickets_name}` maps with {}, written for source = \"{}\", but source `{source_name}` is kind = \"{}\"; pair it with a [[ticket_system]] whose mapping has source = \"{}\"",
                            file.display(),
                            mapping_kind.as_str(),
                            kind.as_str(),
                            kind.as_str()
                        ),
                    );
                    ok = false;
                }
            }
            let pair = (source_name.clone(), tickets_name.clone());
            if let Some(first) = pairs.get(&pair) {
                self.r.at(
                    header,
                    format!("the pair {source_name} -> {tickets_name} is already synced by the [[sync]] on line {first}; keep one"),
                );
                ok = false;
            } else {
                pairs.insert(pair, self.line(header));
            }
        }
        let schedule = match &raw.schedule {
            None => {
                self.r.at(
                    header,
                    "add schedule = \"*/5 * * * *\" (cron: minute hour day month weekday, or 6 fields with seconds first)",
                );
                None
            }
            Some(s) => match Schedule::parse(s.get_ref()).and_then(fires) {
                Ok(schedule) => Some(schedule),
                Err(problem) => {
                    self.r.at(s.span().start, problem);
                    None
                }
            },
        };
        let sweep = match &raw.sweep {
            None => Some(Some(
                Schedule::parse(DEFAULT_SWEEP).expect("the default sweep schedule parses"),
            )),
            Some(s) if s.get_ref().trim().eq_ignore_ascii_case("off") => Some(None),
            Some(s) => match Schedule::parse(s.get_ref()).and_then(fires) {
                Ok(schedule) => Some(Some(schedule)),
                Err(problem) => {
                    self.r.at(
                        s.span().start,
                        format!("{problem} (sweep is a cron schedule, or \"off\")"),
                    );
                    None
                }
            },
        };
        let conflict = match &raw.conflict {
            None => Some(ConflictPolicy::NewestWins),
            Some(c) => {
                let policy = ConflictPolicy::parse(c.get_ref());
                if policy.is_none() {
                    self.r.at(
                        c.span().start,
                        format!(
                            "unknown conflict policy `{}`; write \"source_wins\", \"ticket_wins\" or \"newest_wins\"",
                            c.get_ref()
                        ),
                    );
                }
                policy
            }
        };
        let since = match &raw.since {
            None => {
                self.r.at(
                    header,
                    "add since = \"2026-11-01T00:00:00Z\" (how far back the first run reaches)",
                );
                None
            }
            Some(s) => {
                let text = match s.get_ref() {
                    toml::Value::String(text) => Some(text.clone()),
                    toml::Value::Datetime(dt) => Some(dt.to_string()),
                    _ => None,
                };
                match text.as_deref().map(chrono::DateTime::parse_from_rfc3339) {
                    Some(Ok(t)) if t > chrono::Utc::now() + SINCE_SKEW => {
                        self.r.at(
                            s.span().start,
                            format!(
                                "since {} is in the future; the first run would find nothing before then: give the earliest time to sync from, in the past",
                                t.to_rfc3339()
                            ),
                        );
                        None
                    }
                    Some(Ok(t)) => Some(t.with_timezone(&chrono::Utc)),
                    _ => {
                        self.r.at(
                            s.span().start,
                            "since must be an RFC 3339 timestamp with a time zone, e.g. \"2026-11-01T00:00:00Z\"",
                        );
                        None
                    }
                }
            }
        };
        if !ok {
            return None;
        }
        Some(SyncConfig {
            source: source?.0,
            tickets: tickets?.0,
            schedule: schedule?,
            sweep: sweep?,
            conflict: conflict?,
            since: since?,
        })
    }
}

// ---------------------------------------------------------------------------------
// Small helpers.

fn unknown_reference(table: &str, name: &str, known: &BTreeMap<String, Named>) -> String {
    if known.is_empty() {
        format!("there is no [[{table}]] named `{name}`")
    } else {
        let names: Vec<&str> = known.keys().map(String::as_str).collect();
        format!(
            "there is no [[{table}]] named `{name}`; the names are: {}",
            names.join(", ")
        )
    }
}

/// `[a-z0-9][a-z0-9_-]*`: names go into Jira labels and correlation ids.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn valid_project_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// An absolute http(s) URL without credentials, returned without a trailing `/`.
/// The error completes a sentence that starts with the key.
fn check_url(url: &str, https_only: bool) -> Result<String, String> {
    let expected = if https_only {
        "an https:// URL"
    } else {
        "an http:// or https:// URL"
    };
    let rest = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => rest,
        (None, Some(rest)) if !https_only => rest,
        _ => {
            return Err(format!(
                "must be {expected}, e.g. \"https://host.example.com\""
            ));
        }
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || url.chars().any(char::is_whitespace) {
        return Err(format!(
            "`{url}` is not a valid URL; write {expected} with a host name"
        ));
    }
    if authority.contains('@') {
        return Err(
            "must not carry a user name or password (credentials are not kept in the config file); remove them"
                .to_string(),
        );
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// A schedule that fires at least once in the next five years (so `0 0 30 2 *`,
/// February 30th, is refused; a leap day is not).
fn fires(schedule: Schedule) -> Result<Schedule, String> {
    let now = chrono::Utc::now();
    match schedule.next_after(now) {
        Some(t) if t - now <= chrono::Duration::days(5 * 366) => Ok(schedule),
        _ => Err(format!(
            "cron line `{}` never fires (no such date); check the day of month against the month",
            schedule.as_str()
        )),
    }
}

/// `8-4-4-4-12` hexadecimal digits.
fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A DNS name with at least two labels (a tenant's verified domain).
fn is_domain(text: &str) -> bool {
    let labels: Vec<&str> = text.split('.').collect();
    text.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Whether an http URL's authority (what follows `http://`) is loopback:
/// `localhost`, `127.0.0.0/8` or `[::1]`, with any port.
fn is_loopback_authority(rest: &str) -> bool {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Sentinel's ARM names, as Azure documents them: the subscription a GUID; a
/// resource group 1–90 letters, digits, `_`, `-`, `.` or `()`, not ending in
/// `.`; a Log Analytics workspace 4–63 letters, digits and `-`, starting and
/// ending with a letter or digit.
fn check_arm_name(key: &str, value: &str) -> Result<(), String> {
    let fine = match key {
        "subscription_id" => is_guid(value),
        "resource_group" => {
            (1..=90).contains(&value.chars().count())
                && !value.ends_with('.')
                && value
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '(' | ')'))
        }
        "workspace_name" => {
            (4..=63).contains(&value.len())
                && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !value.starts_with('-')
                && !value.ends_with('-')
        }
        _ => true,
    };
    if fine {
        return Ok(());
    }
    let grammar = match key {
        "subscription_id" => {
            "a subscription id is a GUID like \"33333333-3333-3333-3333-333333333333\""
        }
        "resource_group" => {
            "a resource group name is 1-90 letters, digits, `_`, `-`, `.` or parentheses, not ending in `.`"
        }
        _ => {
            "a workspace name is 4-63 letters, digits and `-`, starting and ending with a letter or digit"
        }
    };
    Err(format!(
        "{key} `{value}` is not a valid Azure name; {grammar} (copy it from the workspace's resource id)"
    ))
}

/// `YYYY-MM-DD`, optionally `-preview`: the shape of every ARM api-version.
fn is_api_version(text: &str) -> bool {
    let date = text.strip_suffix("-preview").unwrap_or(text);
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok() && date.len() == 10
}

/// Checks what `run` would do with `[http] ca_bundle`: the file can be read and
/// holds at least one PEM certificate whose base64 decodes to a DER sequence.
/// The error is the whole message.
fn check_ca_bundle(path: &Path) -> Result<(), String> {
    use base64::Engine;
    let text = std::fs::read(path).map_err(|e| {
        format!(
            "ca_bundle {}: cannot read it ({e}); check the path, or remove ca_bundle to trust only the system's CAs",
            path.display()
        )
    })?;
    let not_pem = || {
        format!(
            "ca_bundle {} is not a PEM certificate bundle; give a file of `-----BEGIN CERTIFICATE-----` blocks (convert DER with `openssl x509 -inform der -in ca.cer -out ca.pem`)",
            path.display()
        )
    };
    let text = String::from_utf8_lossy(&text);
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut certificates = 0;
    let mut rest = text.as_ref();
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let end = after.find(END).ok_or_else(not_pem)?;
        let body: String = after[..end].split_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| not_pem())?;
        if der.len() < 2 || der[0] != 0x30 {
            return Err(not_pem());
        }
        certificates += 1;
        rest = &after[end + END.len()..];
    }
    if certificates == 0 {
        return Err(not_pem());
    }
    Ok(())
}

/// `"16MiB"`, `"512KiB"`, `"1GiB"`, `"65536"` (bytes); `KB`, `MB`, `GB` are read
/// as their binary counterparts. The error completes a sentence that starts with
/// the key.
fn parse_size(text: &str) -> Result<u64, String> {
    let problem = || {
        format!(
            "`{text}` is not a size; write a number and a unit, e.g. \"16MiB\", \"512KiB\" or \"1GiB\""
        )
    };
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let number: u64 = number.parse().map_err(|_| problem())?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "KB" | "K" => 1 << 10,
        "MiB" | "MB" | "M" => 1 << 20,
        "GiB" | "GB" | "G" => 1 << 30,
        _ => return Err(problem()),
    };
    number.checked_mul(scale).ok_or_else(problem)
}

/// `"10/s"`, `"600/min"`, `"3600/h"` (`m`, `sec` and `hour` are understood too):
/// requests and the period they are counted over.
fn parse_rate(text: &str) -> Result<(u32, Duration), String> {
    let shape = "rate_limit must look like \"10/s\", \"600/min\" or \"3600/h\"";
    let Some((number, unit)) = text.split_once('/') else {
        return Err(format!("{shape}; `{text}` has no `/`"));
    };
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        other => return Err(format!("{shape}; `{other}` is not s, min or h")),
    };
    match number.trim().parse::<u32>() {
        Ok(0) => Err(format!(
            "{shape}, with at least 1 request; remove it for the kind's default"
        )),
        Ok(n) => Ok((n, per)),
        Err(_) => Err(format!(
            "{shape}; `{}` is not a whole number of requests",
            number.trim()
        )),
    }
}

/// `"500ms"`, `"30s"`, `"2m"`, `"1h"`. The error completes a sentence that starts
/// with the key.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let problem = || {
        format!(
            "`{text}` is not a duration; write a number and a unit: \"500ms\", \"30s\", \"2m\" or \"1h\""
        )
    };
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| problem())?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.checked_mul(60).ok_or_else(problem)?),
        "h" => Duration::from_secs(number.checked_mul(3600).ok_or_else(problem)?),
        _ => return Err(problem()),
    };
    if duration.is_zero() {
        return Err("must be more than zero, e.g. \"30s\"".to_string());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::vocab::TicketKind;

    const JIRA_MAPPING: &str = include_str!("../../../mappings/jira.toml");

    /// A directory with `mappings/jira.toml` (Graph → Jira) and
    /// `mappings/sentinel-jira.toml` (Sentinel → Jira) in it.
    fn workspace() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mappings")).unwrap();
        std::fs::write(dir.path().join("mappings/jira.toml"), JIRA_MAPPING).unwrap();
        std::fs::write(
            dir.path().join("mappings/sentinel-jira.toml"),
            "version = 1\nsource = \"sentinel\"\ntickets = \"jira\"\n[[field]]\ntemplate = \"{incident.title}\"\nticket = \"summary\"\n",
        )
        .unwrap();
        dir
    }

    const VALID: &str = r#"
[store]
path = "state/itsm-bridge.db"

[server]
listen = "127.0.0.1:0"

[http]
ca_bundle = "certs/ca.pem"
proxy = "http://proxy.internal:3128/"
timeout = "500ms"

[[source]]
name = "defender"
kind = "graph"
tenant_id = "00000000-0000-0000-0000-000000000000"
client_id = "11111111-1111-1111-1111-111111111111"
client_secret = { env = "BRIDGE_GRAPH_SECRET" }

[[source]]
name = "sentinel-prod"
kind = "sentinel"
tenant_id = "00000000-0000-0000-0000-000000000000"
client_id = "22222222-2222-2222-2222-222222222222"
client_secret = { file = "secrets/arm" }
base_url = "https://management.usgovcloudapi.net/"
authority_host = "https://login.microsoftonline.us"
subscription_id = "33333333-3333-3333-3333-333333333333"
resource_group = "soc-rg"
workspace_name = "soc-ws"

[[ticket_system]]
name = "jira"
kind = "jira"
base_url = "https://acme.atlassian.net"
email = "bridge@acme.example"
api_token = { env = "BRIDGE_JIRA_TOKEN" }
project_key = "SEC"
mapping = "mappings/jira.toml"

[[ticket_system]]
name = "jira-sentinel"
kind = "jira"
base_url = "https://acme.atlassian.net"
email = "bridge@acme.example"
api_token = { env = "BRIDGE_JIRA_TOKEN" }
project_key = "SOC"
issue_type = "Incident"
mapping = "mappings/sentinel-jira.toml"

[[sync]]
source = "defender"
tickets = "jira"
schedule = "*/30 * * * * *"
since = "2026-11-01T00:00:00Z"

[[sync]]
source = "sentinel-prod"
tickets = "jira-sentinel"
schedule = "*/5 * * * *"
sweep = "off"
conflict = "ticket_wins"
since = 2026-10-01T12:00:00+02:00
"#;

    #[test]
    fn valid_config_loads_with_defaults_and_resolved_paths() {
        let dir = workspace();
        let path = dir.path().join("bridge.toml");
        std::fs::write(&path, VALID).unwrap();
        std::fs::create_dir(dir.path().join("certs")).unwrap();
        std::fs::write(dir.path().join("certs/ca.pem"), FAKE_CA).unwrap();
        let config = load(&path).unwrap_or_else(|e| panic!("{e}"));
        let d = dir.path();

        assert_eq!(config.file, path);
        assert_eq!(config.store.path, d.join("state/itsm-bridge.db"));
        assert_eq!(config.server.listen, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(config.http.ca_bundle, Some(d.join("certs/ca.pem")));
        assert_eq!(
            config.http.proxy.as_deref(),
            Some("http://proxy.internal:3128")
        );
        assert_eq!(config.http.timeout, Duration::from_millis(500));
        assert_eq!(config.http.max_body, 16 * 1024 * 1024, "the default");

        let graph = config.source("defender").unwrap();
        assert_eq!(graph.kind, SourceKind::Graph);
        assert_eq!(
            graph.client_secret,
            SecretRef::Env("BRIDGE_GRAPH_SECRET".into())
        );
        assert_eq!(graph.authority_host, "https://login.microsoftonline.com");
        assert_eq!(graph.base_url, "https://graph.microsoft.com");
        assert_eq!(graph.scope, "https://graph.microsoft.com/.default");
        assert!(graph.workspace.is_none() && graph.api_version.is_none());

        let sentinel = config.source("sentinel-prod").unwrap();
        assert_eq!(
            sentinel.client_secret,
            SecretRef::File(d.join("secrets/arm"))
        );
        assert_eq!(sentinel.base_url, "https://management.usgovcloudapi.net");
        assert_eq!(
            sentinel.scope,
            "https://management.usgovcloudapi.net/.default"
        );
        assert_eq!(sentinel.authority_host, "https://login.microsoftonline.us");
        assert_eq!(
            sentinel.workspace,
            Some(SentinelWorkspace {
                subscription_id: "33333333-3333-3333-3333-333333333333".into(),
                resource_group: "soc-rg".into(),
                workspace_name: "soc-ws".into(),
            })
        );

        let jira = config.ticket_system("jira").unwrap();
        assert_eq!(jira.kind, TicketKind::Jira);
        assert_eq!(jira.project_key.as_deref(), Some("SEC"));
        assert_eq!(jira.issue_type.as_deref(), Some("Task"));
        assert_eq!(jira.mapping.file, d.join("mappings/jira.toml"));
        assert!(matches!(
            &jira.auth,
            TicketAuth::JiraToken { email, api_token: SecretRef::Env(var) }
                if email == "bridge@acme.example" && var == "BRIDGE_JIRA_TOKEN"
        ));
        assert_eq!(
            config
                .ticket_system("jira-sentinel")
                .unwrap()
                .issue_type
                .as_deref(),
            Some("Incident")
        );

        assert_eq!(config.syncs.len(), 2);
        let first = &config.syncs[0];
        assert_eq!(first.pair_name(), "defender->jira");
        assert_eq!(first.conflict, ConflictPolicy::NewestWins);
        assert_eq!(first.schedule.as_str(), "*/30 * * * * *");
        assert_eq!(
            first.sweep.as_ref().map(|s| s.as_str()),
            Some(DEFAULT_SWEEP),
            "the sweep runs hourly unless told otherwise"
        );
        assert_eq!(first.since.to_rfc3339(), "2026-11-01T00:00:00+00:00");
        let second = &config.syncs[1];
        assert!(second.sweep.is_none(), "sweep = \"off\" switches it off");
        assert_eq!(second.conflict, ConflictPolicy::TicketWins);
        assert_eq!(second.since.to_rfc3339(), "2026-10-01T10:00:00+00:00");
    }

    #[test]
    fn minimal_config_takes_every_default() {
        let dir = workspace();
        let path = dir.path().join("bridge.toml");
        let text = "[[source]]\nname = \"d\"\nkind = \"graph\"\ntenant_id = \"00000000-0000-0000-0000-000000000000\"\nclient_id = \"c\"\nclient_secret = { env = \"S\" }\n\n[[ticket_system]]\nname = \"snow\"\nkind = \"generic\"\nbase_url = \"http://127.0.0.1:8080\"\ntoken = { env = \"T\" }\nmapping = \"mappings/generic.toml\"\n\n[[sync]]\nsource = \"d\"\ntickets = \"snow\"\nschedule = \"* * * * *\"\nsince = \"2026-11-01T00:00:00Z\"\n";
        std::fs::write(
            dir.path().join("mappings/generic.toml"),
            "version = 1\nsource = \"graph\"\ntickets = \"generic\"\n[[field]]\ntemplate = \"{incident.title}\"\nticket = \"summary\"\n[api]\ncreate = { path = \"/t\" }\nget = { path = \"/t/{id}\" }\nupdate = { path = \"/t/{id}\" }\nsearch = { path = \"/t?since={since}\" }\nfind = { path = \"/t?c={correlation}\" }\ncomment = { path = \"/t/{id}/c\", text = \"/body\" }\nitems = \"\"\nid = \"/id\"\ncreated = \"/created\"\nupdated = \"/updated\"\ncorrelation = \"/ext\"\n[api.fields]\nsummary = \"/summary\"\n",
        )
        .unwrap();
        let config = parse(&path, text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.store.path, dir.path().join("itsm-bridge.db"));
        assert_eq!(config.server.listen, None);
        assert_eq!(config.http.timeout, Duration::from_secs(30));
        assert_eq!(
            config.ticket_systems[0].search_lag,
            Duration::from_secs(30),
            "a lost create is looked up after 30 s unless the ticket system says"
        );
        assert!(config.http.ca_bundle.is_none() && config.http.proxy.is_none());
        let system = config.ticket_system("snow").unwrap();
        assert!(
            matches!(&system.auth, TicketAuth::Bearer { token: SecretRef::Env(v) } if v == "T")
        );
        assert!(system.project_key.is_none() && system.issue_type.is_none());
    }

    /// A PEM block whose base64 is a DER sequence: enough for `check_ca_bundle`.
    const FAKE_CA: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n";

    #[test]
    fn what_run_refuses_check_refuses_with_a_position() {
        let dir = workspace();
        std::fs::write(dir.path().join("ca.pem"), FAKE_CA).unwrap();
        let sentinel = SOURCE
            .replace("\"graph\"", "\"sentinel\"")
            .replace("defender", "arm")
            + "subscription_id = \"not-a-guid\"\nresource_group = \"rg.\"\nworkspace_name = \"ws\"\napi_version = \"latest\"\n";
        let text = format!(
            "[store]\npath = \"mappings\"\n[http]\nca_bundle = \"not-pem.pem\"\ntimeout = \"11m\"\nmax_body = \"16 MB of it\"\n\n{}\n{sentinel}\n{}\n{}",
            SOURCE.replace("00000000-0000-0000-0000-000000000000", "my-tenant"),
            TICKETS.replace(
                "https://acme.atlassian.net",
                "http://jira.acme.example:8080"
            ),
            SYNC.replace("*/5 * * * *", "0 0 30 2 *")
                .replace("2026-11-01T00:00:00Z", "2999-01-01T00:00:00Z"),
        );
        assert_eq!(
            errors(&text, &[("not-pem.pem", "hello\n")]),
            vec![
                "DIR/bridge.toml:2:8: store path DIR/mappings is a folder; give the database file's name, e.g. \"mappings/itsm-bridge.db\"",
                "DIR/bridge.toml:4:13: ca_bundle DIR/not-pem.pem is not a PEM certificate bundle; give a file of `-----BEGIN CERTIFICATE-----` blocks (convert DER with `openssl x509 -inform der -in ca.cer -out ca.pem`)",
                "DIR/bridge.toml:5:11: timeout `11m` is longer than 10m; a hung remote would hold its pair that long: give a few seconds, e.g. \"30s\"",
                "DIR/bridge.toml:6:12: max_body `16 MB of it` is not a size; write a number and a unit, e.g. \"16MiB\", \"512KiB\" or \"1GiB\"",
                "DIR/bridge.toml:11:13: tenant_id `my-tenant` is not a tenant id; copy the Directory (tenant) ID, a GUID like \"00000000-0000-0000-0000-000000000000\", from the app registration (or give the tenant's domain, e.g. \"contoso.onmicrosoft.com\")",
                "DIR/bridge.toml:21:19: subscription_id `not-a-guid` is not a valid Azure name; a subscription id is a GUID like \"33333333-3333-3333-3333-333333333333\" (copy it from the workspace's resource id)",
                "DIR/bridge.toml:22:18: resource_group `rg.` is not a valid Azure name; a resource group name is 1-90 letters, digits, `_`, `-`, `.` or parentheses, not ending in `.` (copy it from the workspace's resource id)",
                "DIR/bridge.toml:23:18: workspace_name `ws` is not a valid Azure name; a workspace name is 4-63 letters, digits and `-`, starting and ending with a letter or digit (copy it from the workspace's resource id)",
                "DIR/bridge.toml:24:15: api_version `latest` is not an ARM api-version; write a date, optionally with -preview, e.g. \"2025-09-01\" (remove it for the default)",
                "DIR/bridge.toml:29:12: base_url `http://jira.acme.example:8080` is plain http: the bridge would send its credentials unencrypted; use https:// (plain http is accepted on loopback only, for the simulators)",
                "DIR/bridge.toml:38:12: cron line `0 0 30 2 *` never fires (no such date); check the day of month against the month",
                "DIR/bridge.toml:39:9: since 2999-01-01T00:00:00+00:00 is in the future; the first run would find nothing before then: give the earliest time to sync from, in the past",
            ]
        );
        // The same shapes, well written, pass; so does plain http on loopback.
        let good = format!(
            "[http]\nca_bundle = \"ca.pem\"\nmax_body = \"512KiB\"\ntimeout = \"10m\"\n\n{}\n{}\n{}",
            SOURCE.replace(
                "00000000-0000-0000-0000-000000000000",
                "contoso.onmicrosoft.com"
            ),
            TICKETS.replace("https://acme.atlassian.net", "http://[::1]:8080"),
            SYNC.replace("*/5 * * * *", "0 0 29 2 *"),
        );
        let config =
            parse(&dir.path().join("bridge.toml"), &good).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.http.max_body, 512 * 1024);
        for url in ["http://localhost:1/x", "http://127.9.0.1", "http://[::1]/"] {
            assert!(
                is_loopback_authority(url.trim_start_matches("http://")),
                "{url}"
            );
        }
        for url in [
            "http://localhost.evil.example",
            "http://10.0.0.1:80",
            "http://127.0.0.1.nip.io",
        ] {
            assert!(
                !is_loopback_authority(url.trim_start_matches("http://")),
                "{url}"
            );
        }
        assert!(is_api_version("2025-09-01") && is_api_version("2024-01-01-preview"));
        assert!(!is_api_version("2025-13-01") && !is_api_version("2025-9-1"));
    }

    /// The config parts the bad-input table builds on.
    const SOURCE: &str = "[[source]]\nname = \"defender\"\nkind = \"graph\"\ntenant_id = \"00000000-0000-0000-0000-000000000000\"\nclient_id = \"c\"\nclient_secret = { env = \"S\" }\n";
    const TICKETS: &str = "[[ticket_system]]\nname = \"jira\"\nkind = \"jira\"\nbase_url = \"https://acme.atlassian.net\"\nemail = \"b@acme.example\"\napi_token = { env = \"T\" }\nproject_key = \"SEC\"\nmapping = \"mappings/jira.toml\"\n";
    const SYNC: &str = "[[sync]]\nsource = \"defender\"\ntickets = \"jira\"\nschedule = \"*/5 * * * *\"\nsince = \"2026-11-01T00:00:00Z\"\n";

    /// The diagnostics for `text` as `file:line:column: message` lines, with the
    /// temporary directory written as `DIR`.
    fn errors(text: &str, files: &[(&str, &str)]) -> Vec<String> {
        let dir = workspace();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let path = dir.path().join("bridge.toml");
        let err = parse(&path, text).expect_err("the config should be refused");
        let prefix = format!("{}/", dir.path().display());
        err.diagnostics
            .iter()
            .map(|d| d.to_string().replace(&prefix, "DIR/"))
            .collect()
    }

    #[test]
    fn the_valid_parts_are_valid() {
        let dir = workspace();
        parse(
            &dir.path().join("bridge.toml"),
            &format!("{SOURCE}\n{TICKETS}\n{SYNC}"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// A config text, extra files to write beside it, and the diagnostics expected.
    type Case = (String, Vec<(&'static str, String)>, Vec<&'static str>);

    #[test]
    fn bad_inputs_name_file_line_and_column() {
        let graph_mapping_for = |tickets: &str| {
            format!(
                "version = 1\nsource = \"graph\"\ntickets = \"{tickets}\"\n[[field]]\ntemplate = \"{{incident.title}}\"\nticket = \"summary\"\n"
            )
        };
        let cases: Vec<Case> = vec![
            // 1. an unknown key
            (
                format!("{SOURCE}timeout = 3\n\n{TICKETS}\n{SYNC}"),
                vec![],
                vec!["DIR/bridge.toml:7:1: unknown key `timeout`, expected one of `name`, `kind`, `tenant_id`, `client_id`, `client_secret`, `authority_host`, `base_url`, `scope`, `subscription_id`, `resource_group`, `workspace_name`, `api_version`, `rate_limit`, `burst`"],
            ),
            // 2. a bad kind
            (
                format!("{}\n{TICKETS}\n{SYNC}", SOURCE.replace("\"graph\"", "\"defender\"")),
                vec![],
                vec!["DIR/bridge.toml:3:8: unknown source kind `defender`; write \"graph\" or \"sentinel\""],
            ),
            // 3. a secret written into the file
            (
                format!("{}\n{TICKETS}\n{SYNC}", SOURCE.replace("{ env = \"S\" }", "\"hunter2\"")),
                vec![],
                vec!["DIR/bridge.toml:6:17: put secrets in an environment variable or a file: client_secret = { env = \"...\" }"],
            ),
            // 4. a bad cron line
            (
                format!("{SOURCE}\n{TICKETS}\n{}", SYNC.replace("*/5 * * * *", "every 5 minutes")),
                vec![],
                vec!["DIR/bridge.toml:20:12: cron line `every 5 minutes` has 3 fields; write 5 (min hour day month weekday) or 6 (with seconds first)"],
            ),
            // 5. a sync naming a source that does not exist
            (
                format!("{SOURCE}\n{TICKETS}\n{}", SYNC.replace("\"defender\"", "\"defendr\"")),
                vec![],
                vec!["DIR/bridge.toml:18:10: there is no [[source]] named `defendr`; the names are: defender"],
            ),
            // 6. duplicate names, duplicate pairs
            (
                format!("{SOURCE}\n{SOURCE}\n{TICKETS}\n{SYNC}\n{SYNC}"),
                vec![],
                vec![
                    "DIR/bridge.toml:9:8: the [[source]] name `defender` is already used on line 1; give each [[source]] its own name",
                    "DIR/bridge.toml:30:1: the pair defender -> jira is already synced by the [[sync]] on line 24; keep one",
                ],
            ),
            // 7. a bad timeout, a bad listen address, an unknown section
            (
                format!("[http]\ntimeout = \"30 seconds\"\n[server]\nlisten = \"localhost:9464\"\n\n{SOURCE}\n{TICKETS}\n{SYNC}"),
                vec![],
                vec![
                    "DIR/bridge.toml:2:11: timeout `30 seconds` is not a duration; write a number and a unit: \"500ms\", \"30s\", \"2m\" or \"1h\"",
                    "DIR/bridge.toml:4:10: listen `localhost:9464` is not an address and port; write an IP address and a port, e.g. \"127.0.0.1:9464\" (port 0 picks a free one)",
                ],
            ),
            // 8. an http authority host, a URL with credentials
            (
                format!("{}authority_host = \"http://127.0.0.1:8443\"\nbase_url = \"https://u:p@graph.example\"\n\n{TICKETS}\n{SYNC}", SOURCE),
                vec![],
                vec![
                    "DIR/bridge.toml:7:18: authority_host must be an https:// URL (azure_identity refuses http); to test against a local token service, serve it over TLS and trust its CA with [http] ca_bundle",
                    "DIR/bridge.toml:8:12: base_url must not carry a user name or password (credentials are not kept in the config file); remove them",
                ],
            ),
            // 9. a sentinel source without its workspace; a sentinel key on graph
            (
                format!("{}\n{}resource_group = \"rg\"\n\n{TICKETS}\n{SYNC}", SOURCE.replace("\"graph\"", "\"sentinel\""), SOURCE.replace("defender", "g")),
                vec![],
                vec![
                    "DIR/bridge.toml:1:1: add subscription_id = \"<Azure subscription id>\" (kind = \"sentinel\" needs subscription_id, resource_group and workspace_name)",
                    "DIR/bridge.toml:1:1: add resource_group = \"<resource group>\" (kind = \"sentinel\" needs subscription_id, resource_group and workspace_name)",
                    "DIR/bridge.toml:1:1: add workspace_name = \"<Log Analytics workspace name>\" (kind = \"sentinel\" needs subscription_id, resource_group and workspace_name)",
                    "DIR/bridge.toml:14:1: `resource_group` is only valid for kind = \"sentinel\"; remove it",
                    "DIR/bridge.toml:27:11: ticket system `jira` maps with DIR/mappings/jira.toml, written for source = \"graph\", but source `defender` is kind = \"sentinel\"; pair it with a [[ticket_system]] whose mapping has source = \"sentinel\"",
                ],
            ),
            // 10. keys of another ticket kind; a missing mapping file
            (
                format!("{SOURCE}\n{}username = \"bridge\"\n\n{SYNC}", TICKETS.replace("mappings/jira.toml", "mappings/nope.toml")),
                vec![],
                vec![
                    "DIR/bridge.toml:16:1: `username` is only valid for kind = \"servicenow\" or \"generic\"; remove it",
                    "DIR/mappings/nope.toml: cannot read the mapping file (No such file or directory (os error 2)); check the path",
                ],
            ),
            // 11. a mapping for another ticket kind; a mapping for another source kind
            (
                format!("{SOURCE}\n{}\n{}\n{SYNC}", TICKETS.replace("mappings/jira.toml", "snow.toml"), TICKETS.replace("\"jira\"\nkind", "\"jira2\"\nkind").replace("mappings/jira.toml", "mappings/sentinel-jira.toml")) + &SYNC.replace("\"jira\"", "\"jira2\""),
                vec![("snow.toml", graph_mapping_for("servicenow"))],
                vec![
                    "DIR/bridge.toml:15:11: DIR/snow.toml is written for tickets = \"servicenow\", but this ticket system is kind = \"jira\"; use a mapping written for jira",
                    "DIR/bridge.toml:33:11: ticket system `jira2` maps with DIR/mappings/sentinel-jira.toml, written for source = \"sentinel\", but source `defender` is kind = \"graph\"; pair it with a [[ticket_system]] whose mapping has source = \"graph\"",
                ],
            ),
            // 12. bad secrets, a bad name, conflict and since values
            (
                format!("{}\n{}\n{}", SOURCE.replace("{ env = \"S\" }", "{ env = \"S\", file = \"f\" }").replace("\"defender\"", "\"Defender\""), TICKETS.replace("{ env = \"T\" }", "{ vault = \"x\" }"), SYNC.replace("since = \"2026-11-01T00:00:00Z\"", "since = \"2026-11-01\"\nconflict = \"incident_wins\"")),
                vec![],
                vec![
                    "DIR/bridge.toml:2:8: invalid name `Defender`; use lowercase letters, digits, `-` and `_`, starting with a letter or digit (names end up in Jira labels and correlation ids)",
                    "DIR/bridge.toml:6:17: give client_secret either `env` or `file`, not both",
                    "DIR/bridge.toml:13:13: unknown key `vault` in api_token; write api_token = { env = \"VARIABLE\" } or api_token = { file = \"/path/to/secret\" }",
                    "DIR/bridge.toml:18:10: there is no [[source]] named `defender`",
                    "DIR/bridge.toml:21:9: since must be an RFC 3339 timestamp with a time zone, e.g. \"2026-11-01T00:00:00Z\"",
                    "DIR/bridge.toml:22:12: unknown conflict policy `incident_wins`; write \"source_wins\", \"ticket_wins\" or \"newest_wins\"",
                ],
            ),
            // 13. no [[sync]] at all; missing keys reported at the table header
            (
                format!("{SOURCE}\n[[ticket_system]]\nname = \"jira\"\nkind = \"jira\"\n"),
                vec![],
                vec![
                    "DIR/bridge.toml: add a [[sync]] table (source = \"...\", tickets = \"...\", schedule, since): without one the bridge has nothing to do",
                    "DIR/bridge.toml:8:1: add base_url = \"https://...\" (the ticket system's address)",
                    "DIR/bridge.toml:8:1: add email = \"bridge@example.com\" (the Jira account of the bridge)",
                    "DIR/bridge.toml:8:1: add api_token = { env = \"...\" } (an Atlassian API token)",
                    "DIR/bridge.toml:8:1: add project_key = \"SEC\" (the Jira project issues are created in)",
                    "DIR/bridge.toml:8:1: add mapping = \"mappings/<kind>.toml\" (the field mapping for this ticket system; see mappings/README.md)",
                ],
            ),
            // 14. a TOML syntax error
            (
                format!("{SOURCE}tenant_id = \"x\"\n"),
                vec![],
                vec!["DIR/bridge.toml:7:1: duplicate key"],
            ),
            // 15. a single table where an array of tables is meant
            (
                format!("{SOURCE}\n{TICKETS}\n[sync]\nsource = \"defender\"\n"),
                vec![],
                vec!["DIR/bridge.toml:17:1: write [[sync]] with double brackets: a config can have several"],
            ),
            // 16. mapping problems come with the mapping file's own positions
            (
                format!("{SOURCE}\n{TICKETS}\n{SYNC}"),
                vec![("mappings/jira.toml", "version = 2\nsource = \"graph\"\ntickets = \"jira\"\n[[field]]\ntemplate = \"{incident.title}\"\nticket = \"summary\"\n".to_string())],
                vec!["DIR/mappings/jira.toml:1:11: unsupported mapping version 2; this bridge reads version = 1"],
            ),
        ];
        for (i, (text, files, expected)) in cases.iter().enumerate() {
            let files: Vec<(&str, &str)> = files.iter().map(|(n, c)| (*n, c.as_str())).collect();
            let got = errors(text, &files);
            let expected: Vec<String> = expected.iter().map(|e| e.to_string()).collect();
            assert_eq!(got, expected, "case {}:\n{text}", i + 1);
        }
    }

    #[test]
    fn rate_limits_are_read_and_checked() {
        let dir = workspace();
        let text = format!(
            "{}rate_limit = \"1000/s\"\n\n{}rate_limit = \"600/min\"\nburst = 20\n\n{SYNC}",
            SOURCE, TICKETS
        );
        let config =
            parse(&dir.path().join("bridge.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
        let source = config.source("defender").unwrap();
        assert_eq!(
            source.rate_limit,
            Some(RateLimitConfig {
                requests: 1000,
                per: Duration::from_secs(1),
                burst: None
            })
        );
        assert_eq!(source.rate_limit.unwrap().burst_or_default(), 1000);
        let jira = config.ticket_system("jira").unwrap().rate_limit.unwrap();
        assert_eq!(jira.per_second(), 10.0);
        assert_eq!(jira.burst, Some(20));
        assert!(
            parse(
                &dir.path().join("bridge.toml"),
                &format!("{SOURCE}\n{TICKETS}\n{SYNC}")
            )
            .unwrap()
            .ticket_system("jira")
            .unwrap()
            .rate_limit
            .is_none(),
            "no rate_limit: the kind's default"
        );

        let bad = format!(
            "{}rate_limit = \"10 per second\"\n\n{}rate_limit = \"0/s\"\n\n{}rate_limit = \"5/day\"\nburst = 0\n\n{}burst = 5\n\n{SYNC}",
            SOURCE,
            TICKETS,
            TICKETS.replace("\"jira\"\nkind", "\"jira2\"\nkind"),
            TICKETS.replace("\"jira\"\nkind", "\"jira3\"\nkind"),
        );
        assert_eq!(
            errors(&bad, &[]),
            vec![
                "DIR/bridge.toml:7:14: rate_limit must look like \"10/s\", \"600/min\" or \"3600/h\"; `10 per second` has no `/`",
                "DIR/bridge.toml:17:14: rate_limit must look like \"10/s\", \"600/min\" or \"3600/h\", with at least 1 request; remove it for the kind's default",
                "DIR/bridge.toml:28:9: burst must be a whole number of requests, at least 1, e.g. burst = 20",
                "DIR/bridge.toml:38:1: burst needs a rate_limit beside it, e.g. rate_limit = \"10/s\"",
            ]
        );
        assert_eq!(
            parse_rate("5/day").unwrap_err(),
            "rate_limit must look like \"10/s\", \"600/min\" or \"3600/h\"; `day` is not s, min or h"
        );
        assert_eq!(parse_rate("3600/h"), Ok((3600, Duration::from_secs(3600))));
        assert_eq!(
            parse_rate("ten/s").unwrap_err(),
            "rate_limit must look like \"10/s\", \"600/min\" or \"3600/h\"; `ten` is not a whole number of requests"
        );
    }

    #[test]
    fn durations_and_urls() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert!(parse_size("lots").is_err() && parse_size("99999999999999GiB").is_err());
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5 s").is_err());
        assert_eq!(
            check_url("https://a.example/x/", true),
            Ok("https://a.example/x".into())
        );
        assert!(check_url("http://a.example", true).is_err());
        assert!(check_url("https:///x", false).is_err());
        assert!(check_url("ftp://a.example", false).is_err());
    }

    #[test]
    fn load_names_an_unreadable_file() {
        let err = load(Path::new("/nonexistent/bridge.toml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/nonexistent/bridge.toml: cannot read the config file (No such file or directory (os error 2)); check the path or pass --config"
        );
    }

    #[test]
    fn check_secrets_names_what_is_missing_and_never_a_value() {
        let dir = workspace();
        std::fs::write(dir.path().join("arm"), "s3cret-value\n").unwrap();
        let text = format!(
            "{}\n{}\n{SYNC}",
            SOURCE.replace("{ env = \"S\" }", "{ file = \"arm\" }"),
            TICKETS.replace(
                "{ env = \"T\" }",
                "{ env = \"ITSM_BRIDGE_TEST_SURELY_UNSET\" }"
            ),
        );
        let config =
            parse(&dir.path().join("bridge.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
        let err = check_secrets(&config).unwrap_err();
        let shown = err.to_string();
        assert_eq!(err.diagnostics.len(), 1, "{shown}");
        assert!(
            shown.ends_with("bridge.toml: [[ticket_system]] `jira` api_token: environment variable ITSM_BRIDGE_TEST_SURELY_UNSET is not set; set it in the bridge's environment"),
            "{shown}"
        );
        assert!(!shown.contains("s3cret"));
    }

    #[test]
    fn the_ledger_table_is_read_with_its_defaults() {
        let dir = workspace();
        let path = dir.path().join("bridge.toml");
        let base = format!("{SOURCE}\n{TICKETS}\n{SYNC}");
        let config = parse(&path, &base).unwrap_or_else(|e| panic!("{e}"));
        assert!(config.ledger.signing_key.is_none() && config.ledger.checkpoint.is_none());
        assert_eq!(
            config.ledger.checkpoint_dir,
            dir.path().join("checkpoints/")
        );

        let text = format!(
            "{base}\n[ledger]\nsigning_key = {{ file = \"keys/ledger.key\" }}\ncheckpoint = \"0 * * * *\"\ncheckpoint_dir = \"/var/lib/itsm-bridge/anchors\"\n"
        );
        let config = parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.ledger.signing_key,
            Some(SecretRef::File(dir.path().join("keys/ledger.key")))
        );
        assert_eq!(config.ledger.checkpoint.unwrap().as_str(), "0 * * * *");
        assert_eq!(
            config.ledger.checkpoint_dir,
            PathBuf::from("/var/lib/itsm-bridge/anchors")
        );
    }

    /// Bad `[ledger]` input, each with the exact diagnostic (candidates for the
    /// bad-input table of `tests/it/bad_input.rs`).
    #[test]
    fn bad_ledger_input_names_file_line_and_column() {
        let base = format!("{SOURCE}\n{TICKETS}\n{SYNC}\n[ledger]\n");
        // Line 24 is the first key of [ledger].
        let cases: Vec<(String, &str)> = vec![
            (
                format!("{base}signing_key = \"-----BEGIN PRIVATE KEY-----\"\n"),
                "DIR/bridge.toml:24:15: put secrets in an environment variable or a file: signing_key = { env = \"...\" }",
            ),
            (
                format!("{base}signing_key = {{ path = \"k\" }}\n"),
                "DIR/bridge.toml:24:15: unknown key `path` in signing_key; write signing_key = { env = \"VARIABLE\" } or signing_key = { file = \"/path/to/secret\" }",
            ),
            (
                format!("{base}checkpoint = \"0 * * * *\"\n"),
                "DIR/bridge.toml:24:1: a checkpoint schedule needs a key to sign with: add signing_key = { file = \"/path/to/ledger.key\" } to [ledger] (make one with `itsm-bridge ledger keygen --out FILE`)",
            ),
            (
                format!("{base}signing_key = {{ file = \"k\" }}\ncheckpoint = \"hourly\"\n"),
                "DIR/bridge.toml:25:14: ",
            ),
            (
                format!("{base}checkpoint_dir = \"\"\n"),
                "DIR/bridge.toml:24:18: checkpoint_dir is empty; give a folder, e.g. \"checkpoints/\"",
            ),
            (
                format!("{base}anchor = \"x\"\n"),
                "DIR/bridge.toml:24:1: unknown key `anchor`, expected one of `signing_key`, `checkpoint`, `checkpoint_dir`",
            ),
        ];
        for (text, expected) in cases {
            let got = errors(&text, &[]);
            assert_eq!(got.len(), 1, "{text}\n{got:?}");
            assert!(
                got[0].starts_with(expected),
                "{text}\ngot:  {}\nwant: {expected}",
                got[0]
            );
        }
        let bad_cron = errors(
            &format!("{base}signing_key = {{ file = \"k\" }}\ncheckpoint = \"hourly\"\n"),
            &[],
        );
        assert!(
            bad_cron[0].ends_with("(checkpoint is a cron schedule)"),
            "{bad_cron:?}"
        );
    }

    #[test]
    fn a_ledger_key_that_is_not_a_key_is_refused_without_being_shown() {
        let dir = workspace();
        std::fs::write(dir.path().join("ledger.key"), "not-a-key-s3cret\n").unwrap();
        let text = format!(
            "{SOURCE}\n{TICKETS}\n{SYNC}\n[ledger]\nsigning_key = {{ file = \"ledger.key\" }}\n"
        );
        let config =
            parse(&dir.path().join("bridge.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
        let err = check_secrets(&config).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains("[ledger] signing_key is not an Ed25519 private key in PKCS#8 PEM"),
            "{shown}"
        );
        assert!(!shown.contains("s3cret"), "{shown}");

        std::fs::remove_file(dir.path().join("ledger.key")).unwrap();
        let shown = check_secrets(&config).unwrap_err().to_string();
        assert!(
            shown.contains("[ledger] signing_key: cannot read secret file"),
            "{shown}"
        );
    }
}
