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

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use bridge_core::config::Config;
use bridge_core::engine::PairRuntime;
use bridge_core::model::Timestamp;
use bridge_core::store::ClosedWhen;
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
/// which each pair's next job picks up.
#[derive(Debug)]
pub struct LivePairs(RwLock<Arc<Vec<PairRuntime>>>);

impl LivePairs {
    pub fn new(pairs: Vec<PairRuntime>) -> LivePairs {
        LivePairs(RwLock::new(Arc::new(pairs)))
    }

    pub fn current(&self) -> Arc<Vec<PairRuntime>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, pairs: Vec<PairRuntime>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(pairs);
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
    if state.failure.is_some() {
        body["status"] = json!("reload failed");
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

/// The files a config is read from: itself and its mapping files.
fn watched_files(config: &Config) -> Vec<PathBuf> {
    let mut files = vec![config.file.clone()];
    for tickets in &config.ticket_systems {
        if !files.contains(&tickets.mapping.file) {
            files.push(tickets.mapping.file.clone());
        }
    }
    files
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
}

impl Reloader {
    /// `config` is the one the daemon started with, read from `path`.
    pub fn new(
        path: PathBuf,
        config: Config,
        pairs: Arc<LivePairs>,
        state: SharedReload,
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
            let pairs = connectors::wiring::build_pairs(&config).map_err(|e| e.to_string())?;
            Ok((config, pairs))
        });
        let (config, built) = match checked {
            Ok(done) => done,
            Err(failure) => {
                self.failed(failure);
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
        let closed = closed_when(&next);
        self.pairs.replace(next);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.failure = None;
        state.reloaded = Some(chrono::Utc::now());
        state.restart_needed = refused;
        state.closed_when = closed;
        tracing::info!("reload done: the new config takes effect at each pair's next cycle");
        true
    }

    fn failed(&mut self, problems: String) {
        let problems: Vec<String> = problems.lines().map(str::to_owned).collect();
        for problem in &problems {
            tracing::error!("reload failed: {problem}");
        }
        tracing::error!("reload failed: still running the configuration loaded before");
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failure = Some(ReloadFailure {
            at: chrono::Utc::now(),
            problems,
        });
    }
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
                reloader.reload("SIGHUP");
            }
            _ = tokio::time::sleep(POLL_EVERY) => {
                if reloader.files_changed() {
                    reloader.reload("a watched file changed");
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
        });
        assert_eq!(
            add_to_health(&mut body, &state, StatusCode::OK),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(body["status"], "reload failed");
        assert_eq!(body["reload"]["problems"][0], "m.toml:3:7: unknown value");
    }
}
