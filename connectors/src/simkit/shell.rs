//! The one server shell every HTTP simulator is built on: its state behind one lock
//! ([`Shared`]), the running server with its kit ([`Sim`]: start, base URL,
//! shutdown), the caller a guard signed in ([`Caller`], from [`basic_credentials`]), the admin surface's request
//! log (`GET /_sim/requests`) and JSON answers ([`json_response`]). A simulator
//! supplies only its vendor's behaviour: its state type (a [`VendorState`]), what it
//! fixes at start ([`Shared::context`]), its routes and its guard. Each `*Sim` is an
//! alias of [`Sim`], so its vendor methods are inherent methods written beside the
//! vendor's code.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use serde::Serialize;
use tokio::net::TcpListener;

use super::{SimKit, SimServer, serve, with_kit};

/// A simulator's in-memory state: the vendor's model, locked as one.
pub trait VendorState: Send + 'static {
    /// The simulator's name (`"JiraSim"`), for `Debug` and a poisoned lock.
    const NAME: &'static str;
    /// The `Content-Type` of the simulator's JSON answers (vendors add parameters).
    const JSON_CONTENT_TYPE: &'static str = "application/json";
}

/// What a simulator's handlers share: its state behind one lock, its kit, and what
/// it fixed at start and reads without the lock (`C`: a token registry, a tenant).
#[derive(Debug)]
pub struct Shared<S, C = ()> {
    state: Mutex<S>,
    pub kit: Arc<SimKit>,
    pub context: C,
}

impl<S: VendorState, C> Shared<S, C> {
    pub fn new(state: S, context: C) -> Arc<Shared<S, C>> {
        Arc::new(Shared {
            state: Mutex::new(state),
            kit: SimKit::new(),
            context,
        })
    }

    /// A router with the shell's admin routes (`GET /_sim/requests`): the vendor
    /// adds its own routes, fallback and guard to it.
    pub fn router() -> Router<Arc<Shared<S, C>>>
    where
        C: Send + Sync + 'static,
    {
        Router::new().route("/_sim/requests", get(admin_requests::<S, C>))
    }

    /// The state. Handlers hold it for one step of the model and never across an
    /// await.
    pub fn lock(&self) -> MutexGuard<'_, S> {
        self.state
            .lock()
            .unwrap_or_else(|_| panic!("{} state lock poisoned", S::NAME))
    }
}

/// A running simulator: its server, its kit (request log, faults, throttle) and its
/// shared state. Dropping it does not stop it; call [`Sim::shutdown`].
pub struct Sim<S, C = ()> {
    pub server: SimServer,
    pub kit: Arc<SimKit>,
    shared: Arc<Shared<S, C>>,
}

impl<S: VendorState, C> std::fmt::Debug for Sim<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(S::NAME)
            .field("base_url", &self.server.base_url)
            .finish_non_exhaustive()
    }
}

impl<S: VendorState, C: Send + Sync + 'static> Sim<S, C> {
    /// Serves `api` (made from [`Shared::router`]: the vendor's routes, its guard
    /// layered on) on `listener` over plain HTTP, with the kit's faults, throttle and
    /// log around it all; `outer` wraps the result (a layer that must see the kit's
    /// own answers too).
    pub async fn serve(
        listener: TcpListener,
        shared: Arc<Shared<S, C>>,
        api: Router<Arc<Shared<S, C>>>,
        outer: impl FnOnce(Router) -> Router,
    ) -> Sim<S, C> {
        let router = api.with_state(shared.clone());
        let router = outer(with_kit(router, shared.kit.clone()));
        let server = serve(listener, router, None).await;
        Sim {
            server,
            kit: shared.kit.clone(),
            shared,
        }
    }

    /// `http://127.0.0.1:PORT`: [`plain_base_url`] of its listener.
    pub fn base_url(&self) -> String {
        self.server.base_url.clone()
    }

    pub fn shutdown(&self) {
        self.server.shutdown();
    }

    /// What the handlers share.
    pub(crate) fn shared(&self) -> &Arc<Shared<S, C>> {
        &self.shared
    }

    /// The state, as the admin methods change it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, S> {
        self.shared.lock()
    }
}

/// The base URL [`Sim::serve`] will serve `listener` at (`http://127.0.0.1:PORT`):
/// what a simulator puts in its `self` links and `Location` headers.
pub fn plain_base_url(listener: &TcpListener) -> String {
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    format!("http://127.0.0.1:{}", addr.port())
}

/// Who the request signed in as (an email, a user name, an API client): a guard
/// inserts it, a handler takes it as an argument (empty where no guard ran).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller(pub String);

impl<T: Send + Sync> FromRequestParts<T> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &T) -> Result<Caller, Infallible> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_default())
    }
}

/// The user and password of an HTTP Basic `Authorization` header, as sent (a
/// simulator compares them with the credentials it was given).
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// `status` with `body` as JSON (`application/json`).
pub fn json_response(status: StatusCode, body: impl Serialize) -> Response {
    json_response_as("application/json", status, body)
}

/// `status` with `body` as JSON under `content_type` (Graph's OData parameters,
/// ARM's charset).
pub fn json_response_as(
    content_type: &'static str,
    status: StatusCode,
    body: impl Serialize,
) -> Response {
    let body = serde_json::to_vec(&body).expect("simulator JSON serialises");
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// `GET /_sim/requests`: the request log (method, path, query, status), oldest first.
async fn admin_requests<S: VendorState, C: Send + Sync + 'static>(
    State(shared): State<Arc<Shared<S, C>>>,
) -> Response {
    let log: Vec<serde_json::Value> = shared
        .kit
        .requests()
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "method": r.method,
                "path": r.path,
                "query": r.query,
                "status": r.status,
            })
        })
        .collect();
    json_response_as(S::JSON_CONTENT_TYPE, StatusCode::OK, log)
}
