//! What every simulator shares: serving an axum router on loopback (plain HTTP, or
//! TLS with a certificate from a CA generated at start-up), a log of the requests it
//! answered (tests and the demo count API calls from it), scripted faults, and a
//! simple per-second throttle. Each simulator adds its own routes, state and error
//! bodies on top.
//!
//! A fault ([`FaultRule`]) matches requests by method and path substring, fires on
//! some of them ([`Trigger`]: the next N, only the n-th, every n-th, or with a
//! probability drawn from a seeded RNG so a test sees the same requests fail every
//! time) and says what happens to a request it fires on ([`Effect`]): a canned
//! status with `Retry-After` and body, an answer held back past the client's
//! timeout, a connection reset in the middle of the body, a body cut in half, or a
//! `200` whose body is not JSON. A fault can also run a hook when it fires (someone
//! else's concurrent edit, tokens expiring mid-run). The simple [`Fault`] (a status
//! for the next N requests) converts into a rule.
//!
//! The server shell the simulators share (state behind one lock, the running
//! [`Sim`], the [`Caller`], the admin request log, JSON answers) is in `shell.rs`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

mod incidents;
mod shell;

pub(crate) use incidents::seed_setters;
pub use incidents::{AnalystEdit, IncidentAdmin, admin_change, admin_get, admin_seed};
pub use shell::{
    Caller, Shared, Sim, VendorState, basic_credentials, json_response, json_response_as,
    plain_base_url,
};

/// A request a simulator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The status line sent (for a reset or truncated answer: the one sent before
    /// the body was cut).
    pub status: u16,
    /// The injected fault that shaped the answer ([`Effect::name`]), if one fired.
    pub fault: Option<&'static str>,
}

/// A scripted fault: the next `times` requests matching `method` and `path_contains`
/// get this answer instead of the real one. The simple form of a [`FaultRule`].
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: Option<Method>,
    pub path_contains: String,
    pub times: u32,
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
}

/// Which of the requests a fault matches it fires on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    /// The next `n` matching requests; then the fault is spent.
    Next(u32),
    /// Only the `n`-th matching request (counting from 1); then the fault is spent.
    Nth(u32),
    /// Every `n`-th matching request (the n-th, the 2n-th, …) until cleared;
    /// `EveryNth(1)` is every request: a persistent failure.
    EveryNth(u32),
    /// Each matching request with probability `p`, drawn from an RNG seeded with
    /// `seed`: the same seed fires on the same requests in every run.
    Probability { p: f64, seed: u64 },
}

/// What a fault does to a request it fires on.
#[derive(Debug, Clone)]
pub enum Effect {
    /// This status, `Retry-After` and JSON body; the simulator does not act.
    Status {
        status: u16,
        retry_after: Option<String>,
        body: String,
    },
    /// The simulator acts at once, but its answer leaves only after this delay: a
    /// client with a shorter timeout gives up on a request that took effect.
    Delay(Duration),
    /// The simulator acts; its status, headers and the first half of its body are
    /// sent, then the connection is dropped (no final chunk). Needs a status that
    /// carries a body (not 204/304).
    ResetMidBody,
    /// The simulator acts; its status and headers are kept, but only the first half
    /// of its body is sent, with a `Content-Length` that matches: the transport is
    /// fine, the JSON is cut short.
    TruncatedBody,
    /// `200 OK`, `Content-Type: application/json`, and a body that is not JSON (a
    /// misbehaving proxy or gateway); the simulator does not act.
    MalformedJson,
    /// The simulator answers as usual: only the fault's hook runs.
    Pass,
}

/// The body [`Effect::MalformedJson`] sends.
pub const MALFORMED_JSON: &str = r#"{"value": [{"id": "1",, "status": <html>Bad Gateway</html>"#;

impl Effect {
    /// A status with a small vendor-neutral JSON error body and no `Retry-After`.
    pub fn status(status: u16) -> Effect {
        Effect::Status {
            status,
            retry_after: None,
            body: error_body(status),
        }
    }

    /// A status with `Retry-After` (whole or fractional seconds, or an HTTP date).
    pub fn status_retry_after(status: u16, retry_after: &str) -> Effect {
        Effect::Status {
            status,
            retry_after: Some(retry_after.to_string()),
            body: error_body(status),
        }
    }

    /// The short name recorded in the request log.
    pub fn name(&self) -> &'static str {
        match self {
            Effect::Status { .. } => "status",
            Effect::Delay(_) => "delay",
            Effect::ResetMidBody => "reset",
            Effect::TruncatedBody => "truncated",
            Effect::MalformedJson => "malformed",
            Effect::Pass => "pass",
        }
    }
}

fn error_body(status: u16) -> String {
    format!(
        r#"{{"error":{{"code":"SimulatedFault","message":"HTTP {status} injected by the simulator"}}}}"#
    )
}

/// Something a fault does on the side when it fires, before the request is answered.
#[derive(Clone)]
pub struct Hook(Arc<dyn Fn() + Send + Sync>);

impl Hook {
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> Hook {
        Hook(Arc::new(f))
    }
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook(..)")
    }
}

/// A fault: which requests it matches, which of them it fires on, what it does.
#[derive(Debug, Clone)]
pub struct FaultRule {
    /// `None` matches every method.
    pub method: Option<Method>,
    pub path_contains: String,
    pub trigger: Trigger,
    pub effect: Effect,
    /// Runs each time the fault fires, before the answer.
    pub hook: Option<Hook>,
}

impl FaultRule {
    /// A fault on the next matching request; see [`FaultRule::when`].
    pub fn new(method: Option<Method>, path_contains: impl Into<String>, effect: Effect) -> Self {
        FaultRule {
            method,
            path_contains: path_contains.into(),
            trigger: Trigger::Next(1),
            effect,
            hook: None,
        }
    }

    pub fn when(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }

    /// Shorthand for `when(Trigger::Next(n))`.
    pub fn times(self, n: u32) -> Self {
        self.when(Trigger::Next(n))
    }

    /// Runs `f` each time the fault fires, before the request is answered.
    pub fn hook(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.hook = Some(Hook::new(f));
        self
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m == method) && path.contains(&self.path_contains)
    }
}

impl From<Fault> for FaultRule {
    fn from(fault: Fault) -> Self {
        FaultRule {
            method: fault.method,
            path_contains: fault.path_contains,
            trigger: Trigger::Next(fault.times),
            effect: Effect::Status {
                status: fault.status,
                retry_after: fault.retry_after,
                body: fault.body,
            },
            hook: None,
        }
    }
}

/// A fault and what it has seen so far.
#[derive(Debug)]
struct ArmedFault {
    rule: FaultRule,
    /// Matching requests seen (for `Nth` and `EveryNth`).
    matched: u64,
    /// Firings left (for `Next`).
    left: u32,
    rng: fastrand::Rng,
}

impl ArmedFault {
    fn new(rule: FaultRule) -> ArmedFault {
        let (left, seed) = match rule.trigger {
            Trigger::Next(n) => (n, 0),
            Trigger::Probability { seed, .. } => (0, seed),
            _ => (0, 0),
        };
        ArmedFault {
            rule,
            matched: 0,
            left,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// Counts a matching request and says whether the fault fires on it.
    fn fires(&mut self) -> bool {
        self.matched += 1;
        match self.rule.trigger {
            Trigger::Next(_) if self.left > 0 => {
                self.left -= 1;
                true
            }
            Trigger::Next(_) => false,
            Trigger::Nth(n) => self.matched == u64::from(n),
            Trigger::EveryNth(n) => self.matched % u64::from(n.max(1)) == 0,
            Trigger::Probability { p, .. } => self.rng.f64() < p,
        }
    }

    /// Will never fire again.
    fn spent(&self) -> bool {
        match self.rule.trigger {
            Trigger::Next(_) => self.left == 0,
            Trigger::Nth(n) => self.matched >= u64::from(n),
            Trigger::EveryNth(_) | Trigger::Probability { .. } => false,
        }
    }
}

/// Requests per second allowed before 429 (the simplest model of a burst limit).
#[derive(Debug, Clone)]
pub struct Throttle {
    pub per_second: u32,
    pub retry_after: String,
    pub body: String,
}

/// The shared, inspectable part of a simulator.
#[derive(Debug, Default)]
pub struct SimKit {
    log: Mutex<Vec<LoggedRequest>>,
    faults: Mutex<Vec<ArmedFault>>,
    throttle: Mutex<Option<(Throttle, Instant, u32)>>,
}

impl SimKit {
    pub fn new() -> Arc<SimKit> {
        Arc::new(SimKit::default())
    }

    /// Every request answered so far (admin requests under `/_sim` excluded).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.log.lock().expect("sim log").clone()
    }

    /// How many requests were answered (admin requests excluded).
    pub fn request_count(&self) -> usize {
        self.log.lock().expect("sim log").len()
    }

    pub fn clear_log(&self) {
        self.log.lock().expect("sim log").clear();
    }

    /// Arms a fault. Faults are checked in the order they were injected; a request
    /// is counted by each matching fault up to the first one that fires on it, and
    /// gets that one's effect.
    pub fn inject(&self, fault: impl Into<FaultRule>) {
        let armed = ArmedFault::new(fault.into());
        if !armed.spent() {
            self.faults.lock().expect("sim faults").push(armed);
        }
    }

    /// Disarms every fault (a persistent failure goes away).
    pub fn clear_faults(&self) {
        self.faults.lock().expect("sim faults").clear();
    }

    /// Faults still armed.
    pub fn armed_faults(&self) -> usize {
        self.faults.lock().expect("sim faults").len()
    }

    /// Limits requests per second; `None` lifts the limit.
    pub fn set_throttle(&self, throttle: Option<Throttle>) {
        *self.throttle.lock().expect("sim throttle") = throttle.map(|t| (t, Instant::now(), 0));
    }

    fn take_fault(&self, method: &Method, path: &str) -> Option<FaultRule> {
        let mut faults = self.faults.lock().expect("sim faults");
        let mut fired = None;
        for (i, armed) in faults.iter_mut().enumerate() {
            if armed.rule.matches(method, path) && armed.fires() {
                fired = Some(i);
                break;
            }
        }
        let i = fired?;
        let rule = faults[i].rule.clone();
        if faults[i].spent() {
            faults.remove(i);
        }
        Some(rule)
    }

    fn throttled(&self) -> Option<Throttle> {
        let mut guard = self.throttle.lock().expect("sim throttle");
        let (throttle, window, count) = guard.as_mut()?;
        if window.elapsed() >= Duration::from_secs(1) {
            *window = Instant::now();
            *count = 0;
        }
        *count += 1;
        (*count > throttle.per_second).then(|| throttle.clone())
    }

    /// The simulator's own answer: throttled, or from its routes.
    async fn answer(&self, request: Request, next: Next) -> Response {
        match self.throttled() {
            Some(t) => canned(429, Some(&t.retry_after), t.body),
            None => next.run(request).await,
        }
    }
}

/// Middleware: answers scripted faults and throttling, then logs every request.
async fn kit_layer(State(kit): State<Arc<SimKit>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    if path.starts_with("/_sim") {
        return next.run(request).await;
    }
    let fault = kit.take_fault(&method, &path);
    if let Some(hook) = fault.as_ref().and_then(|f| f.hook.as_ref()) {
        (hook.0)();
    }
    let effect = fault.map(|f| f.effect);
    let name = effect.as_ref().map(Effect::name);
    let mut delay = None;
    let response = match effect {
        Some(Effect::Status {
            status,
            retry_after,
            body,
        }) => canned(status, retry_after.as_deref(), body),
        Some(Effect::MalformedJson) => canned(200, None, MALFORMED_JSON.to_string()),
        Some(Effect::Delay(wait)) => {
            delay = Some(wait);
            kit.answer(request, next).await
        }
        Some(Effect::ResetMidBody) => reset_mid_body(kit.answer(request, next).await).await,
        Some(Effect::TruncatedBody) => truncate_body(kit.answer(request, next).await).await,
        Some(Effect::Pass) | None => kit.answer(request, next).await,
    };
    // Logged before any delay: a client that gives up drops this future, and the
    // log still shows what was (to be) answered.
    kit.log.lock().expect("sim log").push(LoggedRequest {
        method: method.to_string(),
        path,
        query,
        status: response.status().as_u16(),
        fault: name,
    });
    if let Some(wait) = delay {
        tokio::time::sleep(wait).await;
    }
    response
}

fn canned(status: u16, retry_after: Option<&str>, body: String) -> Response {
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("content-type", "application/json")],
        Body::from(body),
    )
        .into_response();
    if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert("retry-after", v);
    }
    response
}

/// The first half of the answer's body, then an error: hyper sends the status,
/// the headers and that half as a chunk, then aborts the connection without the
/// final chunk.
async fn reset_mid_body(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let half = bytes.slice(..bytes.len() / 2);
    parts.headers.remove(CONTENT_LENGTH);
    let first = futures::stream::once(async move { Ok::<_, std::io::Error>(half) });
    let reset = futures::stream::once(async {
        // Pending for a moment first, so hyper flushes what it has: the client sees
        // the head and the first half before the connection goes.
        tokio::time::sleep(Duration::from_millis(20)).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by the simulator",
        ))
    });
    Response::from_parts(parts, Body::from_stream(first.chain(reset)))
}

/// The answer with only the first half of its body (and a matching length).
async fn truncate_body(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes.slice(..bytes.len() / 2)))
}

/// Wraps a simulator's router with the kit's fault, throttle and logging layer.
pub fn with_kit(router: Router, kit: Arc<SimKit>) -> Router {
    router.layer(middleware::from_fn_with_state(kit, kit_layer))
}

/// A CA and a server certificate for `localhost` / `127.0.0.1`, made at start-up.
#[derive(Clone)]
pub struct SimTls {
    /// The CA certificate (PEM): what a client trusts (`[http] ca_bundle`).
    pub ca_pem: String,
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for SimTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimTls").finish_non_exhaustive()
    }
}

impl SimTls {
    pub fn generate() -> Result<SimTls, String> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        crate::http::install_crypto_provider();
        let err = |e: rcgen::Error| format!("cannot generate the simulator certificate: {e}");
        let ca_key = KeyPair::generate().map_err(err)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "itsm-bridge simulator CA");
        let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().map_err(err)?;
        let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .map_err(err)?;
        let cert = params.signed_by(&key, &issuer).map_err(err)?;

        let chain = vec![cert.der().clone()];
        let private_key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| format!("simulator key: {e}"))?;
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, private_key)
            .map_err(|e| format!("simulator TLS config: {e}"))?;
        Ok(SimTls {
            ca_pem: ca_cert.pem(),
            config: Arc::new(config),
        })
    }
}

/// A running simulator server. Dropping it does not stop it; call `shutdown`.
#[derive(Debug)]
pub struct SimServer {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT` or `https://localhost:PORT`.
    pub base_url: String,
    stop: watch::Sender<bool>,
}

impl SimServer {
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

/// Serves `router` on `listener` until shut down; TLS when `tls` is given.
pub async fn serve(listener: TcpListener, router: Router, tls: Option<SimTls>) -> SimServer {
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    let (stop, mut stopped) = watch::channel(false);
    let base_url = match &tls {
        Some(_) => format!("https://localhost:{}", addr.port()),
        None => format!("http://127.0.0.1:{}", addr.port()),
    };
    match tls {
        None => {
            tokio::spawn(async move {
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await;
            });
        }
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
            tokio::spawn(async move {
                loop {
                    let (stream, _) = tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok(s) => s,
                            Err(_) => continue,
                        },
                        _ = stopped.wait_for(|s| *s) => break,
                    };
                    let acceptor = acceptor.clone();
                    let router = router.clone();
                    tokio::spawn(async move {
                        let Ok(stream) = acceptor.accept(stream).await else {
                            return;
                        };
                        let service = hyper_util::service::TowerToHyperService::new(router);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        }
    }
    SimServer {
        addr,
        base_url,
        stop,
    }
}

/// Binds `127.0.0.1:port` (0 picks a free port).
pub async fn bind_loopback(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).await
}

/// The current time as the simulators see it (wall clock, UTC).
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A body long enough that half of it is clearly not all of it.
    const ITEMS: &str = r#"{"value":[{"id":"a"},{"id":"b"},{"id":"c"},{"id":"d"}]}"#;

    struct Harness {
        kit: Arc<SimKit>,
        server: SimServer,
        /// How many requests reached the routes (the simulator acted).
        acted: Arc<AtomicUsize>,
        client: reqwest::Client,
    }

    impl Harness {
        async fn start() -> Harness {
            let kit = SimKit::new();
            let acted = Arc::new(AtomicUsize::new(0));
            let counter = acted.clone();
            let router = Router::new()
                .route(
                    "/items",
                    get(|| async { ([("content-type", "application/json")], ITEMS) }).post(
                        move || {
                            counter.fetch_add(1, Ordering::SeqCst);
                            async {
                                (
                                    StatusCode::CREATED,
                                    [("content-type", "application/json")],
                                    ITEMS,
                                )
                            }
                        },
                    ),
                )
                .route("/_sim/state", get(|| async { "admin" }));
            let router = with_kit(router, kit.clone());
            let server = serve(bind_loopback(0).await.unwrap(), router, None).await;
            crate::http::install_crypto_provider();
            let client = reqwest::Client::builder()
                .timeout(Duration::from_millis(300))
                .no_proxy()
                .build()
                .unwrap();
            Harness {
                kit,
                server,
                acted,
                client,
            }
        }

        fn url(&self, path: &str) -> String {
            format!("{}{path}", self.server.base_url)
        }

        async fn get(&self, path: &str) -> (u16, String) {
            let response = self.client.get(self.url(path)).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }

        async fn post(&self) -> Result<(u16, String), reqwest::Error> {
            let response = self.client.post(self.url("/items")).send().await?;
            let status = response.status().as_u16();
            Ok((status, response.text().await?))
        }

        fn faults_logged(&self) -> Vec<Option<&'static str>> {
            self.kit.requests().iter().map(|r| r.fault).collect()
        }

        /// Which of `n` GETs of `/items` a fault fired on (answered 503).
        async fn pattern(&self, n: usize) -> Vec<bool> {
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(self.get("/items").await.0 == 503);
            }
            out
        }
    }

    #[tokio::test]
    async fn a_simple_fault_answers_the_next_matching_requests_then_the_routes_do() {
        let h = Harness::start().await;
        h.kit.inject(Fault {
            method: Some(Method::GET),
            path_contains: "/items".into(),
            times: 2,
            status: 429,
            retry_after: Some("1.5".into()),
            body: r#"{"error":"slow down"}"#.into(),
        });
        // Another method does not match and does not use the fault up.
        assert_eq!(h.post().await.unwrap().0, 201);
        let response = h.client.get(h.url("/items")).send().await.unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "1.5");
        assert_eq!(response.text().await.unwrap(), r#"{"error":"slow down"}"#);
        assert_eq!(h.get("/items").await.0, 429);
        assert_eq!(h.get("/items").await, (200, ITEMS.to_string()));
        assert_eq!(h.kit.armed_faults(), 0, "spent faults are dropped");

        let statuses: Vec<u16> = h.kit.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [201, 429, 429, 200]);
        assert_eq!(
            h.faults_logged(),
            [None, Some("status"), Some("status"), None]
        );
    }

    #[tokio::test]
    async fn nth_and_every_nth_count_only_the_requests_they_match() {
        let h = Harness::start().await;
        h.kit.inject(
            FaultRule::new(Some(Method::GET), "/items", Effect::status(503)).when(Trigger::Nth(3)),
        );
        assert_eq!(h.pattern(5).await, [false, false, true, false, false]);
        assert_eq!(h.kit.armed_faults(), 0);

        h.kit
            .inject(FaultRule::new(None, "/items", Effect::status(503)).when(Trigger::EveryNth(2)));
        assert_eq!(h.get("/other").await.0, 404, "a path that does not match");
        assert_eq!(h.pattern(6).await, [false, true, false, true, false, true]);
        assert_eq!(h.kit.armed_faults(), 1, "every n-th stays armed");
        h.kit.clear_faults();
        assert_eq!(h.pattern(2).await, [false, false]);
    }

    #[tokio::test]
    async fn a_seeded_probability_fires_on_the_same_requests_every_time() {
        let rule = |seed| {
            FaultRule::new(None, "/items", Effect::status(503))
                .when(Trigger::Probability { p: 0.3, seed })
        };
        let mut patterns = Vec::new();
        for seed in [7, 7, 8] {
            let h = Harness::start().await;
            h.kit.inject(rule(seed));
            patterns.push(h.pattern(40).await);
        }
        assert_eq!(patterns[0], patterns[1], "same seed, same requests");
        assert_ne!(patterns[0], patterns[2], "another seed, other requests");
        let fired = patterns[0].iter().filter(|f| **f).count();
        assert!((4..=20).contains(&fired), "about 30% of 40, got {fired}");

        let h = Harness::start().await;
        h.kit.inject(
            FaultRule::new(None, "/items", Effect::status(503))
                .when(Trigger::Probability { p: 0.0, seed: 1 }),
        );
        assert_eq!(h.pattern(10).await, [false; 10]);
        h.kit.clear_faults();
        h.kit.inject(
            FaultRule::new(None, "/items", Effect::status(503))
                .when(Trigger::Probability { p: 1.0, seed: 1 }),
        );
        assert_eq!(h.pattern(10).await, [true; 10]);
    }

    #[tokio::test]
    async fn a_delayed_answer_times_the_client_out_after_the_simulator_acted() {
        let h = Harness::start().await;
        h.kit.inject(FaultRule::new(
            Some(Method::POST),
            "/items",
            Effect::Delay(Duration::from_millis(800)),
        ));
        let error = h.post().await.unwrap_err();
        assert!(error.is_timeout(), "{error:?}");
        assert_eq!(h.acted.load(Ordering::SeqCst), 1, "the create happened");
        assert_eq!(h.kit.requests()[0].status, 201);
        assert_eq!(h.faults_logged(), [Some("delay")]);
        assert_eq!(h.post().await.unwrap().0, 201, "the next one is on time");
    }

    #[tokio::test]
    async fn a_reset_sends_the_head_and_half_the_body_then_drops_the_connection() {
        let h = Harness::start().await;
        h.kit
            .inject(FaultRule::new(None, "/items", Effect::ResetMidBody).times(2));

        // On the wire: the status line, then one chunk with the first half, then
        // the connection closes without the final zero-length chunk.
        let mut stream = tokio::net::TcpStream::connect(h.server.addr).await.unwrap();
        stream
            .write_all(b"GET /items HTTP/1.1\r\nHost: sim\r\n\r\n")
            .await
            .unwrap();
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw).await;
        let raw = String::from_utf8_lossy(&raw);
        assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
        assert!(raw.contains("transfer-encoding: chunked"), "{raw}");
        assert!(raw.contains(&ITEMS[..ITEMS.len() / 2]), "{raw}");
        assert!(!raw.contains(&ITEMS[ITEMS.len() / 2..]), "{raw}");
        assert!(!raw.ends_with("0\r\n\r\n"), "{raw}");

        // A client sees the status, then a body error; a create still happened.
        let response = h.client.post(h.url("/items")).send().await.unwrap();
        assert_eq!(response.status(), 201);
        assert!(response.bytes().await.is_err());
        assert_eq!(h.acted.load(Ordering::SeqCst), 1);
        assert_eq!(h.faults_logged(), [Some("reset"), Some("reset")]);
        assert_eq!(h.get("/items").await, (200, ITEMS.to_string()));
    }

    #[tokio::test]
    async fn a_truncated_body_keeps_status_and_headers_and_is_not_json() {
        let h = Harness::start().await;
        h.kit.inject(FaultRule::new(
            Some(Method::POST),
            "/items",
            Effect::TruncatedBody,
        ));
        let (status, body) = h.post().await.unwrap();
        assert_eq!(status, 201);
        assert_eq!(body, &ITEMS[..ITEMS.len() / 2]);
        assert!(serde_json::from_str::<serde_json::Value>(&body).is_err());
        assert_eq!(h.acted.load(Ordering::SeqCst), 1);
        assert_eq!(h.faults_logged(), [Some("truncated")]);
    }

    #[tokio::test]
    async fn malformed_json_is_a_200_from_a_simulator_that_did_not_act() {
        let h = Harness::start().await;
        h.kit.inject(FaultRule::new(
            Some(Method::POST),
            "/items",
            Effect::MalformedJson,
        ));
        let response = h.client.post(h.url("/items")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body = response.text().await.unwrap();
        assert_eq!(body, MALFORMED_JSON);
        assert!(serde_json::from_str::<serde_json::Value>(&body).is_err());
        assert_eq!(h.acted.load(Ordering::SeqCst), 0);
        assert_eq!(h.faults_logged(), [Some("malformed")]);
    }

    #[tokio::test]
    async fn a_hook_runs_when_its_fault_fires_and_pass_keeps_the_real_answer() {
        let h = Harness::start().await;
        let hooked = Arc::new(AtomicUsize::new(0));
        let seen = hooked.clone();
        h.kit.inject(
            FaultRule::new(Some(Method::GET), "/items", Effect::Pass)
                .when(Trigger::EveryNth(2))
                .hook(move || {
                    seen.fetch_add(1, Ordering::SeqCst);
                }),
        );
        for _ in 0..4 {
            assert_eq!(h.get("/items").await, (200, ITEMS.to_string()));
        }
        assert_eq!(hooked.load(Ordering::SeqCst), 2);
        assert_eq!(h.faults_logged(), [None, Some("pass"), None, Some("pass")]);
    }

    #[tokio::test]
    async fn admin_requests_are_neither_faulted_nor_logged() {
        let h = Harness::start().await;
        h.kit
            .inject(FaultRule::new(None, "/", Effect::status(500)).when(Trigger::EveryNth(1)));
        assert_eq!(h.get("/_sim/state").await, (200, "admin".to_string()));
        assert_eq!(h.kit.request_count(), 0);
        assert_eq!(h.get("/items").await.0, 500);
    }
}
