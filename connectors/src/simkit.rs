//! What every simulator shares: serving an axum router on loopback (plain HTTP, or
//! TLS with a certificate from a CA generated at start-up), a log of the requests it
//! answered (tests and the demo count API calls from it), scripted faults (the next
//! N matching requests answer with a given status, `Retry-After` and body), and a
//! simple per-second throttle. Each simulator adds its own routes, state and error
//! bodies on top.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A request a simulator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
}

/// A scripted fault: the next `times` requests matching `method` and `path_contains`
/// get this answer instead of the real one.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: Option<Method>,
    pub path_contains: String,
    pub times: u32,
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
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
    faults: Mutex<Vec<Fault>>,
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

    /// Scripts a fault for the next matching requests.
    pub fn inject(&self, fault: Fault) {
        self.faults.lock().expect("sim faults").push(fault);
    }

    /// Limits requests per second; `None` lifts the limit.
    pub fn set_throttle(&self, throttle: Option<Throttle>) {
        *self.throttle.lock().expect("sim throttle") = throttle.map(|t| (t, Instant::now(), 0));
    }

    fn take_fault(&self, method: &Method, path: &str) -> Option<Fault> {
        let mut faults = self.faults.lock().expect("sim faults");
        let i = faults.iter().position(|f| {
            f.times > 0
                && f.method.as_ref().is_none_or(|m| m == method)
                && path.contains(&f.path_contains)
        })?;
        faults[i].times -= 1;
        let fault = faults[i].clone();
        if faults[i].times == 0 {
            faults.remove(i);
        }
        Some(fault)
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
}

/// Middleware: answers scripted faults and throttling, then logs every request.
async fn kit_layer(State(kit): State<Arc<SimKit>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    if path.starts_with("/_sim") {
        return next.run(request).await;
    }
    let response = if let Some(fault) = kit.take_fault(&method, &path) {
        canned(fault.status, fault.retry_after.as_deref(), fault.body)
    } else if let Some(t) = kit.throttled() {
        canned(429, Some(&t.retry_after), t.body)
    } else {
        next.run(request).await
    };
    kit.log.lock().expect("sim log").push(LoggedRequest {
        method: method.to_string(),
        path,
        query,
        status: response.status().as_u16(),
    });
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
