//! Live reload for `run`'s daemon: on SIGHUP, or when the config file or a
//! mapping file it names changes (their modification times and sizes polled
//! every few seconds), the config and its mappings are read again and checked
//! as `itsm-bridge check` checks them. Only a config that passes in full takes
//! effect, at each pair's next job; a bad edit keeps the running config, logs
//! every problem (file:line:column) and stands as "reload failed" on `/healthz`
//! and the dashboard until an edit passes.
//!
//! Some keys are read once at start and need a restart: `[store]`, `[server]`,
//! `[ledger]`, which `[[sync]]` pairs there are, and each pair's `schedule` and
//! `sweep`. A change to one of them is refused with a log line naming it (the
//! old value keeps running), and the rest of the edit still takes effect.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use bridge_core::config::Config;
use bridge_core::engine::{self, PairRuntime};
use bridge_core::mapping::Mapping;
use bridge_core::model::Timestamp;
use bridge_core::remap::Edit;
use bridge_core::store::ClosedWhen;
use bridge_core::store::Store;
use serde_json::{Value, json};

pub use crate::dashboard::ReloadFailure;

/// How often the watched files' modification times are looked at.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// What the server shows of reloads, and what the dashboard needs of the
/// running config.
#[derive(Debug, Clone, Default)]
pub struct ReloadState {
    /// The last reload failed: its problems, until one succeeds.
    pub failure: Option<ReloadFailure>,
    /// When the running config was last reloaded.
    pub reloaded: Option<Timestamp>,
    /// Changes to keys that only a restart applies, refused.
    pub restart_needed: Vec<String>,
    /// What a closed incident looks like per pair, from the running mappings.
    pub closed_when: Vec<ClosedWhen>,
}

pub type SharedReload = Arc<Mutex<ReloadState>>;

/// The pairs as the running config built them; a reload swaps in new ones,
/// which each pair's next job picks up. A pair whose mapping the reload
/// changed also waits for its remap: the mapping it ran before, taken by the
/// pair's next cycle job, which then rewrites what the edit changes.
#[derive(Debug)]
pub struct LivePairs {
    pairs: RwLock<Arc<Vec<PairRuntime>>>,
    remaps: Mutex<BTreeMap<String, Arc<Mapping>>>,
}

impl LivePairs {
    pub fn new(pairs: Vec<PairRuntime>) -> LivePairs {
        LivePairs {
            pairs: RwLock::new(Arc::new(pairs)),
            remaps: Mutex::default(),
        }
    }

    pub fn current(&self) -> Arc<Vec<PairRuntime>> {
        self.pairs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Swaps in new pairs; `edited` are the pairs whose mapping changed, with
    /// the mapping each ran before. Two edits before a pair's remap ran make one
    /// remap from the first mapping to the last.
    fn replace(&self, pairs: Vec<PairRuntime>, edited: Vec<(String, Arc<Mapping>)>) {
        // The pairs first: whoever takes a remap then finds the new mapping.
        *self.pairs.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(pairs);
        let mut remaps = self.remaps.lock().unwrap_or_else(PoisonError::into_inner);
        for (pair, old) in edited {
            remaps.entry(pair).or_insert(old);
        }
    }

    /// The mapping `pair` ran before an edit whose remap is still to run.
    pub fn take_remap(&self, pair: &str) -> Option<Arc<Mapping>> {
        self.remaps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(pair)
    }

    /// Puts back a remap that could not run (it runs after the next cycle).
    pub fn retry_remap(&self, pair: &str, old: Arc<Mapping>) {
        self.remaps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(pair.to_owned())
            .or_insert(old);
    }
}

/// Per pair, the mapped fields whose incident side is the status, with each
/// closed status of the pair's source.
pub fn closed_when(pairs: &[PairRuntime]) -> Vec<ClosedWhen> {
    let mut out = Vec::new();
    for pair in pairs {
        let fields = pair.mapping.fields.iter();
        for field in fields.filter(|f| f.incident_attr() == Some("status")) {
            for value in bridge_core::vocab::closed_statuses(pair.mapping.source_kind) {
                out.push(ClosedWhen {
                    pair: pair.pair.clone(),
                    field: field.name.clone(),
                    value: (*value).to_owned(),
                });
            }
        }
    }
    out
}

/// Adds the reload's state to the `/healthz` body: a failed reload makes it
/// 503 with status "reload failed" and the problems.
pub fn add_to_health(body: &mut Value, state: &ReloadState, code: StatusCode) -> StatusCode {
    let time = |t: &Timestamp| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    body["reload"] = json!({
        "ok": state.failure.is_none(),
        "failed_at": state.failure.as_ref().map(|f| time(&f.at)),
        "problems": state.failure.as_ref().map(|f| f.problems.clone()).unwrap_or_default(),
        "last_reload": state.reloaded.as_ref().map(time),
        "restart_needed": state.restart_needed,
    });
    if let Some(failure) = &state.failure {
        body["status"] = json!(if failure.held {
            "mapping edit held"
        } else {
            "reload failed"
        });
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        code
    }
}

/// The keys a restart is needed for that differ between the config the
/// process started with and `new`, in words.
pub fn restart_needed(started: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    // The sections are compared as their `Debug` text: every value in them is
    // plain data (paths, URLs, durations, secret references, never a secret).
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    if differs(&started.store, &new.store) {
        out.push("[store]".to_owned());
    }
    if differs(&started.server, &new.server) {
        out.push("[server]".to_owned());
    }
    if differs(&started.ledger, &new.ledger) {
        out.push("[ledger]".to_owned());
    }
    for sync in &new.syncs {
        let name = sync.pair_name();
        match started.syncs.iter().find(|s| s.pair_name() == name) {
            None => out.push(format!("[[sync]] {name} (added)")),
            Some(old) => {
                if old.schedule.as_str() != sync.schedule.as_str() {
                    out.push(format!("[[sync]] {name} schedule"));
                }
                let sweep = |s: &Option<bridge_core::schedule::Schedule>| {
                    s.as_ref().map(|s| s.as_str().to_owned())
                };
                if sweep(&old.sweep) != sweep(&sync.sweep) {
                    out.push(format!("[[sync]] {name} sweep"));
                }
            }
        }
    }
    for sync in &started.syncs {
        let name = sync.pair_name();
        if !new.syncs.iter().any(|s| s.pair_name() == name) {
            out.push(format!("[[sync]] {name} (removed; it keeps running)"));
        }
    }
    out
}

/// The files a config is read from (itself and its mapping files), and the
/// file `mapping accept` writes beside it.
fn watched_files(config: &Config) -> Vec<PathBuf> {
    let mut files = config.files();
    files.push(accepted_file(&config.file));
    files
}

/// Where `itsm-bridge mapping accept` writes the fingerprint of the edit it
/// accepts: beside the config, `<config>.accepted`.
pub fn accepted_file(config: &std::path::Path) -> PathBuf {
    let mut name = config.as_os_str().to_owned();
    name.push(".accepted");
    PathBuf::from(name)
}

/// What a file looks like from outside: modification time and size.
fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Reloads the config of a running daemon.
pub struct Reloader {
    path: PathBuf,
    started: Config,
    stamps: Vec<(PathBuf, Option<(SystemTime, u64)>)>,
    pairs: Arc<LivePairs>,
    state: SharedReload,
    /// Where a mapping edit's impact is read from (a connection of its own).
    store: Arc<dyn Store>,
}

impl Reloader {
    /// `config` is the one the daemon started with, read from `path`.
    pub fn new(
        path: PathBuf,
        config: Config,
        pairs: Arc<LivePairs>,
        state: SharedReload,
        store: Arc<dyn Store>,
    ) -> Reloader {
        let stamps = watched_files(&config)
            .into_iter()
            .map(|f| {
                let s = stamp(&f);
                (f, s)
            })
            .collect();
        state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed_when = closed_when(&pairs.current());
        Reloader {
            path,
            started: config,
            stamps,
            pairs,
            state,
            store,
        }
    }

    /// Whether a watched file changed since the last look (and remembers it).
    pub fn files_changed(&mut self) -> bool {
        let mut changed = false;
        for (path, seen) in &mut self.stamps {
            let now = stamp(path);
            if now != *seen {
                *seen = now;
                changed = true;
            }
        }
        changed
    }

    /// Reads the config and its mappings again; applies them only if they pass
    /// the whole check. True when they did.
    pub fn reload(&mut self, why: &str) -> bool {
        tracing::info!(config = %self.path.display(), "reloading the config ({why})");
        let checked = crate::cmd::check::checked(&self.path).and_then(|config| {
            let pairs = build_with_key_vault(&config)?;
            Ok((config, pairs))
        });
        let (config, built) = match checked {
            Ok(done) => done,
            Err(failure) => {
                self.failed(failure, false);
                return false;
            }
        };
        self.stamps = watched_files(&config)
            .into_iter()
            .map(|f| {
                let s = stamp(&f);
                (f, s)
            })
            .collect();
        let refused = restart_needed(&self.started, &config);
        for key in &refused {
            tracing::warn!(key = %key, "reload: {key} changed; it needs a restart, the running value stays");
        }
        // The running pairs, each replaced by its new build; a pair the new
        // config adds waits for a restart, one it removes keeps running.
        let mut built: Vec<Option<PairRuntime>> = built.into_iter().map(Some).collect();
        let current = self.pairs.current();
        let next: Vec<PairRuntime> = current
            .iter()
            .map(|old| {
                built
                    .iter_mut()
                    .find(|b| b.as_ref().is_some_and(|b| b.pair == old.pair))
                    .and_then(Option::take)
                    .unwrap_or_else(|| old.clone())
            })
            .collect();
        let edited = edited_mappings(&current, &next);
        if let Err(problems) = self.gate(&config, &next, &edited) {
            self.failed(problems, true);
            return false;
        }
        let closed = closed_when(&next);
        self.pairs.replace(next, edited);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.failure = None;
        state.reloaded = Some(chrono::Utc::now());
        state.restart_needed = refused;
        state.closed_when = closed;
        tracing::info!("reload done: the new config takes effect at each pair's next cycle");
        true
    }

    /// A mapping edit's impact over the stored links of the pairs it changes,
    /// held when it rewrites more than `[mapping] max_rewrites` and the edit
    /// was not accepted (`mapping accept` wrote its fingerprint). `Err`: why
    /// the reload is held, in lines.
    fn gate(
        &self,
        config: &Config,
        next: &[PairRuntime],
        edited: &[(String, Arc<Mapping>)],
    ) -> Result<(), String> {
        let now = chrono::Utc::now();
        let mut writes = 0;
        let mut lines = Vec::new();
        for (name, old) in edited {
            let Some(pair) = next.iter().find(|p| &p.pair == name) else {
                continue;
            };
            let edit = Edit {
                source: &pair.source_name,
                old,
                new: &pair.mapping,
            };
            let (impact, _) = engine::plan_edit(self.store.as_ref(), name, edit, now)
                .map_err(|e| format!("the mapping edit's impact could not be read: {e}"))?;
            writes += impact.writes();
            lines.push(format!(
                "{name}: {} ticket(s) and {} incident(s) rewritten",
                impact.ticket_writes, impact.incident_writes
            ));
        }
        let max = config.mapping.max_rewrites;
        if writes as u64 <= max {
            if !edited.is_empty() {
                tracing::info!(
                    writes,
                    max_rewrites = max,
                    "the mapping edit rewrites {writes} record(s); the pairs' next cycles carry it out"
                );
            }
            return Ok(());
        }
        let fingerprint = config
            .fingerprint()
            .map_err(|e| format!("the config's files could not be read again: {e}"))?;
        if accepted(&config.file).as_deref() == Some(fingerprint.as_str()) {
            tracing::info!(
                writes,
                max_rewrites = max,
                "the mapping edit rewrites {writes} record(s), over max_rewrites, and was accepted"
            );
            return Ok(());
        }
        lines.insert(
            0,
            format!(
                "the mapping edit would rewrite {writes} record(s), over [mapping] max_rewrites = \
                 {max}: not applied"
            ),
        );
        lines.push(format!(
            "to apply it: itsm-bridge mapping accept --config {} (or raise max_rewrites and send \
             SIGHUP); the edit's fingerprint begins {}",
            config.file.display(),
            &fingerprint[..12]
        ));
        Err(lines.join("\n"))
    }

    fn failed(&mut self, problems: String, held: bool) {
        let problems: Vec<String> = problems.lines().map(str::to_owned).collect();
        let what = if held {
            "mapping edit held"
        } else {
            "reload failed"
        };
        for problem in &problems {
            tracing::error!("{what}: {problem}");
        }
        tracing::error!("{what}: still running the configuration loaded before");
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failure = Some(ReloadFailure {
            at: chrono::Utc::now(),
            problems,
            held,
        });
    }
}

/// The pairs a reloaded config makes, its Key Vault secrets fetched anew: a
/// secret that cannot be read fails the reload as it would fail start-up.
/// Runs on the blocking pool (the reload does), so it may wait for the fetch.
fn build_with_key_vault(config: &Config) -> Result<Vec<PairRuntime>, String> {
    use connectors::wiring;
    let fetch = wiring::fetch_key_vault_secrets(config);
    let secrets = match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime.block_on(fetch),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(fetch),
    }
    .map_err(|e| e.to_string())?;
    let limiters = connectors::limits::LimiterRegistry::from_config(config);
    wiring::build_pairs_with_secrets(config, &limiters, &secrets).map_err(|e| e.to_string())
}

/// The pairs whose mapping the reload changes, with the mapping each ran.
/// Mappings are compared as their `Debug` text (plain data: rules, maps,
/// templates' text).
fn edited_mappings(current: &[PairRuntime], next: &[PairRuntime]) -> Vec<(String, Arc<Mapping>)> {
    current
        .iter()
        .filter(|old| {
            next.iter().any(|new| {
                new.pair == old.pair && format!("{:?}", new.mapping) != format!("{:?}", old.mapping)
            })
        })
        .map(|old| (old.pair.clone(), old.mapping.clone()))
        .collect()
}

/// The fingerprint `mapping accept` wrote beside the config, if any.
fn accepted(config: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(accepted_file(config)).ok()?;
    text.lines().next().map(|l| l.trim().to_owned())
}

/// A reload on the blocking pool: it reads files and, for a mapping edit,
/// every stored link of the pairs it changes.
async fn off_the_workers(mut reloader: Reloader, why: &'static str) -> Reloader {
    tokio::task::spawn_blocking(move || {
        reloader.reload(why);
        reloader
    })
    .await
    .expect("the reload does not panic")
}

/// Reloads on SIGHUP and on a change to a watched file, until the stop signal.
#[cfg(unix)]
pub async fn watch(
    mut reloader: Reloader,
    mut hangup: tokio::signal::unix::Signal,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                reloader.files_changed();
                reloader = off_the_workers(reloader, "SIGHUP").await;
            }
            _ = tokio::time::sleep(POLL_EVERY) => {
                if reloader.files_changed() {
                    reloader = off_the_workers(reloader, "a watched file changed").await;
                }
            }
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The shipped example, edited as `edit` says, read as the daemon would.
    fn example(edit: impl FnOnce(String) -> String) -> Config {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(dir.join("bridge.example.toml")).unwrap();
        bridge_core::config::parse(&dir.join("bridge.example.toml"), &edit(text)).unwrap()
    }

    #[test]
    fn restart_keys_are_named_and_the_rest_is_not() {
        let started = example(|t| t);
        assert_eq!(
            restart_needed(&started, &example(|t| t)),
            Vec::<String>::new()
        );
        let moved = example(|t| {
            t.replace("path = \"itsm-bridge.db\"", "path = \"elsewhere.db\"")
                .replace("schedule = \"*/1 * * * *\"", "schedule = \"*/2 * * * *\"")
                .replace("sweep = \"0 * * * *\"", "sweep = \"5 * * * *\"")
        });
        let refused = restart_needed(&started, &moved);
        assert_eq!(refused.len(), 3, "{refused:?}");
        assert_eq!(refused[0], "[store]");
        assert!(
            refused[1].ends_with(" sweep") || refused[1].ends_with(" schedule"),
            "{refused:?}"
        );
        assert!(
            refused.iter().any(|k| k.ends_with(" schedule")),
            "{refused:?}"
        );
        // A timeout is read again at every reload: not a restart key.
        let timeout = example(|t| t.replacen("timeout = \"30s\"", "timeout = \"41s\"", 1));
        assert_eq!(restart_needed(&started, &timeout), Vec::<String>::new());
    }

    #[test]
    fn a_failed_reload_is_503_with_its_problems_until_one_succeeds() {
        let mut state = ReloadState::default();
        let mut body = json!({ "status": "ok" });
        assert_eq!(
            add_to_health(&mut body, &state, StatusCode::OK),
            StatusCode::OK
        );
        assert_eq!(body["status"], "ok");
        assert_eq!(body["reload"]["ok"], true);
        state.failure = Some(ReloadFailure {
            at: chrono::Utc::now(),
            problems: vec!["m.toml:3:7: unknown value".to_owned()],
            held: false,
        });
        assert_eq!(
            add_to_health(&mut body, &state, StatusCode::OK),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(body["status"], "reload failed");
        assert_eq!(body["reload"]["problems"][0], "m.toml:3:7: unknown value");
    }
}
