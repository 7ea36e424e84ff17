//! The `[server]` endpoints of `itsm-bridge run`: `/livez`, `/healthz` (JSON),
//! `/metrics` (the Prometheus text exposition format 0.0.4, written by hand) and
//! the routes of the read-only HTML dashboard (`crate::dashboard`), with no
//! script and no external asset.
//!
//! The run loop records each job's outcome in a [`Status`] behind a mutex that is
//! only held to copy or update it. A handler copies the status, then reads the
//! store's counts (the dashboard: what its page shows) on the
//! blocking pool through a store connection of its own, so a scrape never waits
//! on the sync loop nor holds it up. The renderers are pure functions of those
//! copies.
//!
//! Nothing here shows a config value other than pair names: no API URL, no
//! account, no secret (the dashboard links to the portal URLs stored with each
//! link). Error messages and ledger details are shown; by the project's
//! invariants they never carry a secret either.
//!
//! There is no authentication, so the browser is kept at arm's length: every
//! answer says `nosniff` and carries a Content-Security-Policy that allows no
//! script, no frame around the page and nothing from elsewhere; a request whose
//! `Host` is not the bound address or a loopback name is refused with 421 (a DNS
//! rebinding page on another site cannot read the dashboard through the victim's
//! browser). A `listen` that is not loopback is warned about at start.

use std::fmt::{Display, Write as _};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use bridge_core::model::{LinkState, Timestamp};
use bridge_core::store::{Store, StoreCounts, StoreResult};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::reload::{ReloadState, SharedReload};
use crate::report::{JobStatus, PairStatus, RunKind, SharedStatus, Status};

/// The content type of the Prometheus text exposition format.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The policy of every answer: nothing but the page's own inline style, no
/// script, no frame around it, no base, forms (the dashboard's GET filters)
/// sent to this server only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// How long a stopping daemon waits for requests in flight.
const STOP_GRACE: Duration = Duration::from_secs(5);

fn links_of(counts: &StoreCounts, pair: &str, state: LinkState) -> u64 {
    counts
        .links
        .iter()
        .filter(|(p, s, _)| p == pair && *s == state)
        .map(|(_, _, n)| n)
        .sum()
}

fn dead_letters_of(counts: &StoreCounts, pair: &str) -> u64 {
    count_of(&counts.dead_letters, pair)
}

fn pending_of(counts: &StoreCounts, pair: &str) -> u64 {
    count_of(&counts.pending, pair)
}

fn count_of(per_pair: &[(String, u64)], pair: &str) -> u64 {
    per_pair
        .iter()
        .filter(|(p, _)| p == pair)
        .map(|(_, n)| n)
        .sum()
}

/// The configured pairs, then any other pair the store knows of (one removed
/// from the config keeps its links and dead letters).
fn all_pairs<'a>(status: &'a Status, counts: Option<&'a StoreCounts>) -> Vec<&'a str> {
    let mut pairs: Vec<&str> = status.pairs.iter().map(|p| p.pair.as_str()).collect();
    if let Some(counts) = counts {
        let stored = counts
            .links
            .iter()
            .map(|(p, _, _)| p.as_str())
            .chain(counts.dead_letters.iter().map(|(p, _)| p.as_str()));
        let mut others: Vec<&str> = stored.filter(|p| !pairs.contains(p)).collect();
        others.sort_unstable();
        others.dedup();
        pairs.extend(others);
    }
    pairs
}

fn rfc3339(time: &Timestamp) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

// ---- /healthz ----

/// The health answer: 200 when every pair's last cycle and last sweep succeeded
/// or have not run yet and the store could be read, else 503; the body has the
/// detail per pair.
pub fn health(status: &Status, counts: Result<&StoreCounts, &str>) -> (StatusCode, Value) {
    let pairs: Vec<Value> = status
        .pairs
        .iter()
        .map(|p| {
            json!({
                "pair": p.pair,
                "ok": p.ok(),
                "last_run": p.last_run().map(|(_, last)| rfc3339(&last.finished)),
                "error": p.error(),
                "consecutive_failures": p.consecutive_failures(),
                "dead_letters": counts.ok().map(|c| dead_letters_of(c, &p.pair)),
                "pending_intents": counts.ok().map(|c| pending_of(c, &p.pair)),
                "cycle": job_json(&p.cycle),
                "sweep": p.sweep.as_ref().map(job_json),
            })
        })
        .collect();
    let store = match counts {
        Ok(c) => json!({ "ok": true, "ledger_entries": c.ledger_entries }),
        Err(e) => json!({ "ok": false, "error": e }),
    };
    let ok = counts.is_ok() && status.pairs.iter().all(PairStatus::ok);
    let body = json!({
        "status": if ok { "ok" } else { "failing" },
        "started": rfc3339(&status.started),
        "pairs": pairs,
        "store": store,
    });
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body)
}

fn job_json(job: &JobStatus) -> Value {
    let last = job.last.as_ref();
    json!({
        "ok": job.ok(),
        "runs": job.runs,
        "failed": job.failed,
        "consecutive_failures": job.consecutive_failures,
        "last_run": last.map(|l| rfc3339(&l.finished)),
        "duration_seconds": last.map(|l| l.duration.as_secs_f64()),
        "error": last.and_then(|l| l.outcome.as_ref().err()),
    })
}

// ---- /metrics ----

/// The Prometheus text exposition (format 0.0.4). The store's gauges are left out
/// when it could not be read (`itsm_bridge_store_up` says so).
pub fn render_metrics(status: &Status, counts: Option<&StoreCounts>) -> String {
    let mut m = Exposition::default();
    let per_job = |p: &PairStatus| -> Vec<(RunKind, JobStatus)> {
        p.jobs().map(|(kind, job)| (kind, job.clone())).collect()
    };

    m.family(
        "itsm_bridge_runs_total",
        "counter",
        "Cycles and sweeps run since the process started, per pair.",
    );
    for p in &status.pairs {
        for (kind, job) in per_job(p) {
            m.sample(&[("pair", &p.pair), ("kind", kind.as_str())], job.runs);
        }
    }
    m.family(
        "itsm_bridge_runs_failed_total",
        "counter",
        "Cycles and sweeps that failed (a poll or the store failed), per pair.",
    );
    for p in &status.pairs {
        for (kind, job) in per_job(p) {
            m.sample(&[("pair", &p.pair), ("kind", kind.as_str())], job.failed);
        }
    }
    m.family(
        "itsm_bridge_writes_total",
        "counter",
        "What the runs did since the process started, per pair and kind (conflicts settled and drift repairs included).",
    );
    for p in &status.pairs {
        for (kind, n) in p.done.writes() {
            m.sample(&[("pair", &p.pair), ("kind", kind)], n);
        }
    }
    m.family(
        "itsm_bridge_backlog",
        "gauge",
        "Tickets a pair's running cycle has planned to create and not made yet (a first sync's backlog, as far as its pages were read).",
    );
    for p in &status.pairs {
        let left = bridge_core::engine::progress::backlog(&p.pair).map_or(0, |b| b.left());
        m.sample(&[("pair", &p.pair)], left);
    }
    m.family(
        "itsm_bridge_actions_failed_total",
        "counter",
        "Actions that failed and set their incident aside as a dead letter, per pair.",
    );
    for p in &status.pairs {
        m.sample(&[("pair", &p.pair)], p.done.failed_actions);
    }
    m.family(
        "itsm_bridge_last_run_timestamp_seconds",
        "gauge",
        "When the last cycle or sweep of a pair finished (Unix time), failed or not.",
    );
    for p in &status.pairs {
        for (kind, job) in per_job(p) {
            if let Some(last) = &job.last {
                let at = last.finished.timestamp_millis() as f64 / 1000.0;
                m.sample(&[("pair", &p.pair), ("kind", kind.as_str())], at);
            }
        }
    }
    m.family(
        "itsm_bridge_last_run_duration_seconds",
        "gauge",
        "How long the last cycle or sweep of a pair took.",
    );
    for p in &status.pairs {
        for (kind, job) in per_job(p) {
            if let Some(last) = &job.last {
                let took = last.duration.as_secs_f64();
                m.sample(&[("pair", &p.pair), ("kind", kind.as_str())], took);
            }
        }
    }
    m.family(
        "itsm_bridge_last_run_success",
        "gauge",
        "1 if the last cycle or sweep of a pair succeeded, 0 if it failed.",
    );
    for p in &status.pairs {
        for (kind, job) in per_job(p) {
            if let Some(last) = &job.last {
                let ok = u8::from(last.outcome.is_ok());
                m.sample(&[("pair", &p.pair), ("kind", kind.as_str())], ok);
            }
        }
    }
    m.family(
        "itsm_bridge_consecutive_failures",
        "gauge",
        "Failed cycles or sweeps of a pair since the last that succeeded.",
    );
    for p in &status.pairs {
        for (kind, job) in per_job(p) {
            let n = job.consecutive_failures;
            m.sample(&[("pair", &p.pair), ("kind", kind.as_str())], n);
        }
    }
    m.family(
        "itsm_bridge_store_up",
        "gauge",
        "1 if the store could be read for this scrape, else 0 (and the store's gauges are left out).",
    );
    m.sample(&[], u8::from(counts.is_some()));
    if let Some(counts) = counts {
        let pairs = all_pairs(status, Some(counts));
        m.family(
            "itsm_bridge_links",
            "gauge",
            "Links (incident and ticket kept in step) per pair and state.",
        );
        for pair in &pairs {
            for state in [LinkState::Active, LinkState::Merged] {
                let n = links_of(counts, pair, state);
                m.sample(&[("pair", pair), ("state", state.as_str())], n);
            }
        }
        m.family(
            "itsm_bridge_dead_letters",
            "gauge",
            "Incidents set aside after failing, waiting for a retry, per pair.",
        );
        for pair in &pairs {
            m.sample(&[("pair", pair)], dead_letters_of(counts, pair));
        }
        m.family(
            "itsm_bridge_pending_intents",
            "gauge",
            "Remote writes begun and not yet recorded per pair (a create whose answer was lost waits here).",
        );
        for pair in &pairs {
            m.sample(&[("pair", pair)], pending_of(counts, pair));
        }
        m.family(
            "itsm_bridge_ledger_entries",
            "gauge",
            "Entries in the sync ledger.",
        );
        m.sample(&[], counts.ledger_entries);
    }
    m.text
}

/// A text exposition being written: one family (`# HELP`, `# TYPE`, samples) at
/// a time.
#[derive(Default)]
struct Exposition {
    text: String,
    family: &'static str,
}

impl Exposition {
    fn family(&mut self, name: &'static str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        self.family = name;
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: impl Display) {
        self.text.push_str(self.family);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{name}=\"{}\"", escape_label_value(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// A label value in the text format: backslash, double quote and line feed are
/// escaped.
fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A `# HELP` text: backslash and line feed are escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

// ---- serving ----

/// What every handler reads: the run loop's status, the store (through a
/// connection of the server's own) and the config reload's state.
#[derive(Clone)]
pub(crate) struct AppState {
    status: SharedStatus,
    store: Arc<dyn Store>,
    reload: SharedReload,
}

impl AppState {
    pub(crate) fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn reload(&self) -> ReloadState {
        self.reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs a store read on the blocking pool.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&dyn Store) -> StoreResult<T> + Send + 'static,
    ) -> Result<T, String> {
        let store = self.store.clone();
        let result = match tokio::task::spawn_blocking(move || read(store.as_ref())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("the store read did not finish: {e}")),
        };
        if let Err(e) = &result {
            tracing::warn!(error = %e, "the server could not read the store");
        }
        result
    }
}

/// The endpoints, on a status, a store to read and the reload's state.
pub fn router(status: SharedStatus, store: Arc<dyn Store>, reload: SharedReload) -> Router {
    Router::new()
        .merge(crate::dashboard::routes())
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .route("/metrics", get(metrics))
        .with_state(AppState {
            status,
            store,
            reload,
        })
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn healthz(State(app): State<AppState>) -> Response {
    let status = app.status();
    let counts = app.read(|store| store.counts()).await;
    let (code, mut body) = health(&status, counts.as_ref().map_err(String::as_str));
    if let Ok(leases) = app.read(|store| store.leases()).await {
        crate::replicas::add_leases_to_health(&mut body, &leases);
    }
    let code = crate::reload::add_to_health(&mut body, &app.reload(), code);
    (code, Json(body)).into_response()
}

async fn metrics(State(app): State<AppState>) -> Response {
    let status = app.status();
    let counts = app.read(|store| store.counts()).await;
    let mut text = render_metrics(&status, counts.as_ref().ok());
    if let Ok(leases) = app.read(|store| store.leases()).await {
        text.push_str(&crate::replicas::lease_metrics(&leases));
    }
    ([(CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response()
}

/// Whether a request's `Host` header names the server: `localhost`, the bound
/// IP address, any loopback address when bound to loopback, any IP address when
/// bound to all of them (`0.0.0.0`, `::`). A DNS name other than `localhost` is
/// refused: it is what a DNS rebinding attack sends.
pub fn host_allowed(host: Option<&str>, bound: SocketAddr) -> bool {
    let Some(host) = host else { return false };
    let name = match host.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((name, _)) => name,
            None => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) => {
            ip == bound.ip()
                || bound.ip().is_unspecified()
                || (ip.is_loopback() && bound.ip().is_loopback())
        }
        Err(_) => false,
    }
}

/// The warning logged at start when the endpoints are reachable from other hosts.
pub fn listen_warning(listen: SocketAddr) -> Option<String> {
    (!listen.ip().is_loopback()).then(|| {
        format!(
            "[server] listen {listen} is not a loopback address: the dashboard, /healthz and /metrics have no authentication, so anyone who reaches it reads pair names, errors and ledger entries; listen on 127.0.0.1 or put an authenticating proxy in front"
        )
    })
}

/// Refuses a foreign `Host` (421) and adds the security headers to every answer.
async fn guard(
    bound: SocketAddr,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::HeaderValue;
    use axum::http::header::{
        CONTENT_SECURITY_POLICY as CSP, HOST, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
        X_FRAME_OPTIONS,
    };
    let host = request.headers().get(HOST).and_then(|h| h.to_str().ok());
    let mut response = if host_allowed(host, bound) {
        next.run(request).await
    } else {
        (
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "unknown host; open this server by its address, e.g. http://{bound}/ (names other than localhost are refused against DNS rebinding)\n"
            ),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(CSP, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// Serves the endpoints on `listener` until `shutdown` completes, then lets the
/// requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    status: SharedStatus,
    store: Arc<dyn Store>,
    reload: SharedReload,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let bound = listener.local_addr()?;
    let app =
        router(status, store, reload).layer(axum::middleware::from_fn(move |request, next| {
            guard(bound, request, next)
        }));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The server of a running daemon.
#[derive(Debug)]
pub struct Server {
    task: JoinHandle<()>,
}

/// Binds `listen` (port 0 picks a free port), logs the address bound and serves
/// until `stop` turns true.
pub async fn start(
    listen: SocketAddr,
    status: SharedStatus,
    store: Arc<dyn Store>,
    reload: SharedReload,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Server> {
    let listener = TcpListener::bind(listen).await.with_context(|| {
        format!(
            "cannot listen on {listen} ([server] listen); free that port or choose another address"
        )
    })?;
    let address = listener
        .local_addr()
        .with_context(|| format!("cannot tell which address {listen} was bound to"))?;
    tracing::info!(listen = %address, "serving /healthz, /livez, /metrics and the dashboard");
    if let Some(warning) = listen_warning(address) {
        tracing::warn!("{warning}");
    }
    let shutdown = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    let task = tokio::spawn(async move {
        if let Err(e) = serve(listener, status, store, reload, shutdown).await {
            tracing::error!(error = %e, "the health and metrics server stopped");
        }
    });
    Ok(Server { task })
}

impl Server {
    /// Waits, a few seconds at most, for the requests in flight once the stop
    /// signal came.
    pub async fn stopped(self) {
        if tokio::time::timeout(STOP_GRACE, self.task).await.is_err() {
            tracing::warn!(
                "the health and metrics server was still answering when the daemon stopped"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use bridge_core::engine::CycleReport;
    use chrono::TimeZone;

    use super::*;

    fn at(seconds: i64) -> Timestamp {
        chrono::Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap()
            + chrono::Duration::seconds(seconds)
    }

    fn report(pair: &str, created: usize, updated: usize) -> CycleReport {
        CycleReport {
            pair: pair.to_owned(),
            incidents_seen: created + updated,
            tickets_created: created,
            tickets_updated: updated,
            write_backs: created,
            ..CycleReport::default()
        }
    }

    /// Two pairs, the second with a sweep; nothing run yet.
    fn status() -> Status {
        Status::new(
            [
                ("defender->jira".to_owned(), false),
                ("sentinel->servicenow".to_owned(), true),
            ],
            at(0),
        )
    }

    fn counts() -> StoreCounts {
        StoreCounts {
            links: vec![
                ("defender->jira".to_owned(), LinkState::Active, 5),
                ("defender->jira".to_owned(), LinkState::Merged, 1),
                ("old->pair".to_owned(), LinkState::Active, 2),
            ],
            dead_letters: vec![("sentinel->servicenow".to_owned(), 3)],
            pending: vec![("defender->jira".to_owned(), 1)],
            ledger_entries: 42,
        }
    }

    fn lines_of<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| {
                l.starts_with(&format!("{family}{{")) || l.starts_with(&format!("{family} "))
            })
            .collect()
    }

    #[test]
    fn health_is_ok_before_any_run_and_after_successes() {
        let mut s = status();
        let (code, body) = health(&s, Ok(&counts()));
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["pairs"][0]["last_run"], Value::Null);
        assert_eq!(body["pairs"][1]["dead_letters"], 3);
        assert_eq!(body["pairs"][0]["pending_intents"], 1);
        assert_eq!(body["store"]["ledger_entries"], 42);

        s.record(
            0,
            RunKind::Cycle,
            at(10),
            Duration::from_millis(1500),
            Ok(&report("defender->jira", 2, 1)),
        );
        let (code, body) = health(&s, Ok(&counts()));
        assert_eq!(code, StatusCode::OK);
        let pair = &body["pairs"][0];
        assert_eq!(pair["pair"], "defender->jira");
        assert_eq!(pair["ok"], true);
        assert_eq!(pair["last_run"], "2026-11-01T08:00:10.000Z");
        assert_eq!(pair["error"], Value::Null);
        assert_eq!(pair["consecutive_failures"], 0);
        assert_eq!(pair["dead_letters"], 0);
        assert_eq!(pair["cycle"]["runs"], 1);
        assert_eq!(pair["cycle"]["duration_seconds"], 1.5);
        assert_eq!(pair["sweep"], Value::Null, "the pair has no sweep");
    }

    #[test]
    fn a_failed_cycle_or_sweep_is_503_until_that_job_succeeds_again() {
        let mut s = status();
        s.record(
            1,
            RunKind::Cycle,
            at(10),
            Duration::ZERO,
            Err("polling failed: 503 from the source".into()),
        );
        s.record(
            1,
            RunKind::Cycle,
            at(40),
            Duration::ZERO,
            Err("polling failed: 503 from the source".into()),
        );
        let (code, body) = health(&s, Ok(&counts()));
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "failing");
        let pair = &body["pairs"][1];
        assert_eq!(pair["ok"], false);
        assert_eq!(pair["error"], "cycle: polling failed: 503 from the source");
        assert_eq!(pair["consecutive_failures"], 2);
        assert_eq!(pair["cycle"]["failed"], 2);
        assert_eq!(body["pairs"][0]["ok"], true, "the other pair is fine");

        s.record(
            1,
            RunKind::Cycle,
            at(70),
            Duration::ZERO,
            Ok(&report("sentinel->servicenow", 0, 0)),
        );
        assert_eq!(health(&s, Ok(&counts())).0, StatusCode::OK);

        // A failed sweep is not hidden by the cycles that succeed after it.
        s.record(
            1,
            RunKind::Sweep,
            at(80),
            Duration::ZERO,
            Err("database error: disk full".into()),
        );
        s.record(
            1,
            RunKind::Cycle,
            at(90),
            Duration::ZERO,
            Ok(&report("sentinel->servicenow", 0, 0)),
        );
        let (code, body) = health(&s, Ok(&counts()));
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body["pairs"][1]["error"],
            "sweep: database error: disk full"
        );
        assert_eq!(body["pairs"][1]["last_run"], "2026-11-01T08:01:30.000Z");
        assert_eq!(body["pairs"][1]["sweep"]["consecutive_failures"], 1);
    }

    #[test]
    fn an_unreadable_store_is_503() {
        let (code, body) = health(&status(), Err("database error: locked"));
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["store"]["ok"], false);
        assert_eq!(body["store"]["error"], "database error: locked");
        assert_eq!(body["pairs"][0]["dead_letters"], Value::Null);
    }

    #[test]
    fn metrics_follow_the_text_format() {
        let mut s = status();
        s.record(
            0,
            RunKind::Cycle,
            at(10),
            Duration::from_millis(250),
            Ok(&report("defender->jira", 3, 0)),
        );
        s.record(
            0,
            RunKind::Cycle,
            at(20),
            Duration::from_millis(250),
            Ok(&report("defender->jira", 1, 2)),
        );
        s.record(
            1,
            RunKind::Sweep,
            at(30),
            Duration::from_secs(2),
            Err("polling failed".into()),
        );
        let text = render_metrics(&s, Some(&counts()));

        // Every family has its HELP and TYPE, once, right before its samples.
        let mut families = Vec::new();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            let help = line
                .strip_prefix("# HELP ")
                .expect("a family starts with HELP");
            let name = help.split(' ').next().unwrap();
            let kind = lines
                .next()
                .unwrap()
                .strip_prefix(&format!("# TYPE {name} "))
                .unwrap();
            assert!(kind == "counter" || kind == "gauge", "{kind}");
            assert_eq!(name.ends_with("_total"), kind == "counter", "{name}");
            assert!(!families.contains(&name), "{name} twice");
            families.push(name);
            while lines.peek().is_some_and(|l| !l.starts_with('#')) {
                let sample = lines.next().unwrap();
                assert!(sample.starts_with(name), "{sample} under {name}");
                let value = sample.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "{sample}");
            }
        }
        assert!(text.ends_with('\n'));

        assert_eq!(
            lines_of(&text, "itsm_bridge_runs_total"),
            [
                r#"itsm_bridge_runs_total{pair="defender->jira",kind="cycle"} 2"#,
                r#"itsm_bridge_runs_total{pair="sentinel->servicenow",kind="cycle"} 0"#,
                r#"itsm_bridge_runs_total{pair="sentinel->servicenow",kind="sweep"} 1"#,
            ]
        );
        assert!(text.contains(
            "itsm_bridge_runs_failed_total{pair=\"sentinel->servicenow\",kind=\"sweep\"} 1\n"
        ));
        assert!(text.contains(
            "itsm_bridge_writes_total{pair=\"defender->jira\",kind=\"tickets_created\"} 4\n"
        ));
        assert!(text.contains(
            "itsm_bridge_writes_total{pair=\"defender->jira\",kind=\"tickets_updated\"} 2\n"
        ));
        assert!(text.contains(
            "itsm_bridge_writes_total{pair=\"defender->jira\",kind=\"write_backs\"} 4\n"
        ));
        assert!(text.contains(
            "itsm_bridge_writes_total{pair=\"sentinel->servicenow\",kind=\"drift_repairs\"} 0\n"
        ));
        assert_eq!(
            lines_of(&text, "itsm_bridge_last_run_timestamp_seconds"),
            [
                r#"itsm_bridge_last_run_timestamp_seconds{pair="defender->jira",kind="cycle"} 1793520020"#,
                r#"itsm_bridge_last_run_timestamp_seconds{pair="sentinel->servicenow",kind="sweep"} 1793520030"#,
            ],
            "only jobs that ran have a last run"
        );
        assert!(text.contains(
            "itsm_bridge_last_run_duration_seconds{pair=\"defender->jira\",kind=\"cycle\"} 0.25\n"
        ));
        assert!(text.contains(
            "itsm_bridge_last_run_success{pair=\"sentinel->servicenow\",kind=\"sweep\"} 0\n"
        ));
        assert!(text.contains(
            "itsm_bridge_consecutive_failures{pair=\"sentinel->servicenow\",kind=\"sweep\"} 1\n"
        ));
        assert!(text.contains("itsm_bridge_store_up 1\n"));
        assert_eq!(
            lines_of(&text, "itsm_bridge_links"),
            [
                r#"itsm_bridge_links{pair="defender->jira",state="active"} 5"#,
                r#"itsm_bridge_links{pair="defender->jira",state="merged"} 1"#,
                r#"itsm_bridge_links{pair="sentinel->servicenow",state="active"} 0"#,
                r#"itsm_bridge_links{pair="sentinel->servicenow",state="merged"} 0"#,
                r#"itsm_bridge_links{pair="old->pair",state="active"} 2"#,
                r#"itsm_bridge_links{pair="old->pair",state="merged"} 0"#,
            ],
            "configured pairs first, then the store's others"
        );
        assert!(text.contains("itsm_bridge_dead_letters{pair=\"sentinel->servicenow\"} 3\n"));
        assert!(text.contains("itsm_bridge_dead_letters{pair=\"defender->jira\"} 0\n"));
        assert!(text.contains("itsm_bridge_pending_intents{pair=\"defender->jira\"} 1\n"));
        assert!(text.contains("itsm_bridge_ledger_entries 42\n"));
    }

    #[test]
    fn metrics_leave_out_the_store_gauges_when_it_cannot_be_read() {
        let text = render_metrics(&status(), None);
        assert!(text.contains("itsm_bridge_store_up 0\n"));
        assert!(!text.contains("itsm_bridge_links"));
        assert!(!text.contains("itsm_bridge_ledger_entries"));
        assert!(
            text.contains("itsm_bridge_runs_total{pair=\"defender->jira\",kind=\"cycle\"} 0\n")
        );
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("line\nnext"), r"line\nnext");
        assert_eq!(escape_label_value("defender->jira"), "defender->jira");
        assert_eq!(escape_help("a\\b\nc \"quoted\""), "a\\\\b\\nc \"quoted\"");

        let s = Status::new([("we\"ird\\pa\nir".to_owned(), false)], at(0));
        let text = render_metrics(&s, None);
        assert!(
            text.contains(
                "itsm_bridge_runs_total{pair=\"we\\\"ird\\\\pa\\nir\",kind=\"cycle\"} 0\n"
            ),
            "{text}"
        );
        assert!(text.lines().all(|l| !l.is_empty()), "no raw line feed");
    }

    /// A GET over a plain socket: the status code and the body.
    async fn get(address: SocketAddr, path: &str) -> (u16, String, String) {
        get_as(address, path, "localhost").await
    }

    /// A GET with this `Host` header.
    async fn get_as(address: SocketAddr, path: &str, host: &str) -> (u16, String, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let code = head.split(' ').nth(1).unwrap().parse().unwrap();
        (code, head.to_owned(), body.to_owned())
    }

    #[test]
    fn only_the_bound_address_and_loopback_names_are_hosts() {
        let loopback: SocketAddr = "127.0.0.1:9464".parse().unwrap();
        let public: SocketAddr = "10.1.2.3:9464".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9464".parse().unwrap();
        for host in [
            "localhost",
            "LOCALHOST:9464",
            "127.0.0.1:9464",
            "127.0.0.1",
            "[::1]:9464",
        ] {
            assert!(host_allowed(Some(host), loopback), "{host}");
        }
        for host in [
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.nip.io:9464",
            "[::1",
            "",
        ] {
            assert!(!host_allowed(Some(host), loopback), "{host}");
        }
        assert!(!host_allowed(None, loopback), "no Host at all");
        assert!(host_allowed(Some("10.1.2.3:9464"), public));
        assert!(!host_allowed(Some("10.1.2.4:9464"), public));
        assert!(!host_allowed(Some("bridge.corp.example"), public));
        assert!(host_allowed(Some("192.168.0.7:9464"), any));
        assert!(!host_allowed(Some("bridge.corp.example"), any));

        assert_eq!(listen_warning(loopback), None);
        assert_eq!(listen_warning("[::1]:0".parse().unwrap()), None);
        let warning = listen_warning(any).unwrap();
        assert!(
            warning.contains("0.0.0.0:9464 is not a loopback address"),
            "{warning}"
        );
        assert!(warning.contains("no authentication"), "{warning}");
    }

    #[tokio::test]
    async fn the_router_serves_every_endpoint_and_stops_on_shutdown() {
        let store = bridge_core::store::SqliteStore::open_in_memory().unwrap();
        let shared: SharedStatus = Arc::new(std::sync::Mutex::new(status()));
        let reload = SharedReload::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            shared.clone(),
            Arc::new(store),
            reload.clone(),
            async {
                let _ = stopped.await;
            },
        ));

        let (code, _, body) = get(address, "/livez").await;
        assert_eq!((code, body.as_str()), (200, "ok\n"));
        let (code, head, body) = get(address, "/healthz").await;
        assert_eq!(code, 200, "{body}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json")
        );
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["pairs"][0]["dead_letters"], 0);

        shared.lock().unwrap().record(
            0,
            RunKind::Cycle,
            at(1),
            Duration::ZERO,
            Err("polling failed".into()),
        );
        assert_eq!(get(address, "/healthz").await.0, 503);

        let (code, head, body) = get(address, "/metrics").await;
        assert_eq!(code, 200);
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
        assert!(
            body.contains(
                "itsm_bridge_runs_failed_total{pair=\"defender->jira\",kind=\"cycle\"} 1\n"
            )
        );
        assert!(body.contains("itsm_bridge_ledger_entries 0\n"));

        let (code, head, body) = get(address, "/").await;
        assert_eq!(code, 200);
        assert!(head.contains("text/html"), "{head}");
        assert!(body.contains("failed: polling failed"));

        assert_eq!(get(address, "/nothing-here").await.0, 404);
        for path in [
            "/links?pair=defender-%3Ejira&state=open&q=7",
            "/links/defender-%3Ejira/7",
            "/ledger?pair=defender-%3Ejira",
            "/dead-letters",
        ] {
            let (code, head, body) = get(address, path).await;
            assert_eq!(code, 200, "{path}: {body}");
            assert!(head.contains("text/html"), "{head}");
        }
        let (_, _, body) = get(address, "/links/defender-%3Ejira/7").await;
        assert!(
            body.contains("No link of pair defender-&gt;jira for incident 7"),
            "{body}"
        );

        // A failed reload is 503 on /healthz and a banner on every page, until
        // a reload succeeds.
        reload.lock().unwrap().failure = Some(crate::reload::ReloadFailure {
            at: at(2),
            problems: vec!["mappings/jira.toml:12:5: unknown field `sevrity`".to_owned()],
            held: false,
        });
        let (code, _, body) = get(address, "/healthz").await;
        assert_eq!(code, 503, "{body}");
        let health: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["status"], "reload failed");
        assert_eq!(
            health["reload"]["problems"][0],
            "mappings/jira.toml:12:5: unknown field `sevrity`"
        );
        let (_, _, body) = get(address, "/ledger").await;
        assert!(body.contains("reload failed"), "{body}");
        assert!(body.contains("mappings/jira.toml:12:5"), "{body}");
        reload.lock().unwrap().failure = None;

        // Every answer keeps the browser at arm's length.
        let head = head.to_ascii_lowercase();
        assert!(head.contains("x-content-type-options: nosniff"), "{head}");
        assert!(
            head.contains("content-security-policy: default-src 'none';"),
            "{head}"
        );
        assert!(head.contains("frame-ancestors 'none'"), "{head}");
        // A DNS rebinding page sends its own name as Host: refused, even for /livez.
        for path in ["/", "/healthz", "/livez"] {
            let (code, head, body) = get_as(address, path, "rebind.evil.example:9464").await;
            assert_eq!(code, 421, "{path}: {body}");
            assert!(
                head.to_ascii_lowercase()
                    .contains("x-content-type-options: nosniff")
            );
            assert!(!body.contains("defender"), "{body}");
        }
        assert_eq!(get_as(address, "/livez", &address.to_string()).await.0, 200);
        assert_eq!(get_as(address, "/livez", "127.0.0.2").await.0, 200);

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }
}
