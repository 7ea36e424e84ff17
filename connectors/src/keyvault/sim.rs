//! The Key Vault simulator (TLS, like the token simulator): `GET
//! /secrets/{name}[/{version}]?api-version=…` answering the secret bundle
//! (`value`, `id`, `attributes`) for a bearer token issued for
//! `https://vault.azure.net`, the 401 challenge (`WWW-Authenticate: Bearer
//! authorization=…, resource=…`) without one, 403 `ForbiddenByRbac` for a caller
//! without the "Key Vault Secrets User" role, and 404 `SecretNotFound`, with the
//! real service's bodies. Tests change a secret (a new version) while the bridge
//! runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::auth::registry::TokenRegistry;
use crate::simkit::{self, SimKit, SimServer, SimTls};

/// The audience Key Vault tokens are issued for.
pub const AUDIENCE: &str = "https://vault.azure.net";

#[derive(Debug, Clone)]
struct Version {
    id: String,
    value: String,
    created: i64,
}

#[derive(Debug)]
struct VaultState {
    registry: Arc<TokenRegistry>,
    tenant_id: String,
    /// Versions of each secret, oldest first.
    secrets: Mutex<BTreeMap<String, Vec<Version>>>,
    /// The principals holding "Key Vault Secrets User"; `None`: every caller.
    readers: Mutex<Option<Vec<String>>>,
    base_url: Mutex<String>,
}

/// A running Key Vault simulator.
#[derive(Debug)]
pub struct KeyVaultSim {
    pub server: SimServer,
    pub kit: Arc<SimKit>,
    state: Arc<VaultState>,
}

impl KeyVaultSim {
    pub async fn start(
        listener: TcpListener,
        registry: Arc<TokenRegistry>,
        tls: SimTls,
        tenant_id: &str,
    ) -> KeyVaultSim {
        let kit = SimKit::new();
        let state = Arc::new(VaultState {
            registry,
            tenant_id: tenant_id.to_string(),
            secrets: Mutex::new(BTreeMap::new()),
            readers: Mutex::new(None),
            base_url: Mutex::new(String::new()),
        });
        let router = Router::new()
            .route("/secrets/{name}", get(latest))
            .route("/secrets/{name}/{version}", get(versioned))
            .with_state(state.clone());
        let router = simkit::with_kit(router, kit.clone());
        let server = simkit::serve(listener, router, Some(tls)).await;
        *state.base_url.lock().expect("vault") = server.base_url.clone();
        KeyVaultSim { server, kit, state }
    }

    /// `https://localhost:PORT`: what `[azure] key_vault_endpoint_override_for_tests` names.
    pub fn base_url(&self) -> String {
        self.server.base_url.clone()
    }

    /// Sets a secret (a new current version); returns the version id.
    pub fn set_secret(&self, name: &str, value: &str) -> String {
        let id = format!("{:032x}", fastrand::u128(..));
        self.state
            .secrets
            .lock()
            .expect("vault")
            .entry(name.to_string())
            .or_default()
            .push(Version {
                id: id.clone(),
                value: value.to_string(),
                created: chrono::Utc::now().timestamp(),
            });
        id
    }

    /// Only these principals (client ids) hold "Key Vault Secrets User".
    pub fn set_readers(&self, principals: &[&str]) {
        *self.state.readers.lock().expect("vault") =
            Some(principals.iter().map(|p| p.to_string()).collect());
    }

    pub fn shutdown(&self) {
        self.server.shutdown();
    }
}

fn error(status: StatusCode, code: &str, message: &str, inner: Option<&str>) -> Response {
    let mut error = serde_json::json!({"code": code, "message": message});
    if let Some(inner) = inner {
        error["innererror"] = serde_json::json!({"code": inner});
    }
    simkit::json_response_as(
        "application/json; charset=utf-8",
        status,
        serde_json::json!({"error": error}),
    )
}

async fn latest(
    state: State<Arc<VaultState>>,
    Path(name): Path<String>,
    query: Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    serve(&state, &name, None, &query, &headers)
}

async fn versioned(
    state: State<Arc<VaultState>>,
    Path((name, version)): Path<(String, String)>,
    query: Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    serve(&state, &name, Some(&version), &query, &headers)
}

fn serve(
    state: &VaultState,
    name: &str,
    version: Option<&str>,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(problem) = state.registry.check(authorization, AUDIENCE) {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            &match authorization {
                None => "AKV10000: Request is missing a Bearer or PoP token.".to_string(),
                Some(_) => format!("AKV10022: {}", problem.message()),
            },
            None,
        );
        let challenge = format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{}\", resource=\"{AUDIENCE}\"",
            state.tenant_id
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&challenge).expect("a header value"),
        );
        return response;
    }
    match query.get("api-version").map(String::as_str) {
        Some("7.0" | "7.1" | "7.2" | "7.3" | "7.4" | "7.5" | "7.6") => {}
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                &format!(
                    "The specified version ({other}) is not recognized. Consider using the latest supported version (7.6)."
                ),
                None,
            );
        }
        None => {
            return error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "AKV10000: Request is missing api-version.",
                None,
            );
        }
    }
    let principal = state.registry.principal(authorization).unwrap_or_default();
    let allowed = match &*state.readers.lock().expect("vault") {
        None => true,
        Some(readers) => readers.iter().any(|r| r.eq_ignore_ascii_case(&principal)),
    };
    if !allowed {
        let vault = state.base_url.lock().expect("vault").clone();
        return error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={principal}\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: '{vault}/secrets/{name}'\r\nAssignment: (not found)\r\nVault: {vault}"
            ),
            Some("ForbiddenByRbac"),
        );
    }
    let secrets = state.secrets.lock().expect("vault");
    let found = secrets.get(name).and_then(|versions| match version {
        None => versions.last(),
        Some(v) => versions.iter().find(|x| x.id == v),
    });
    let Some(found) = found else {
        let message = match version {
            None => format!(
                "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
            ),
            Some(v) => {
                format!("A secret with (name/id) {name}/{v} was not found in this key vault.")
            }
        };
        return error(StatusCode::NOT_FOUND, "SecretNotFound", &message, None);
    };
    let base = state.base_url.lock().expect("vault").clone();
    simkit::json_response_as(
        "application/json; charset=utf-8",
        StatusCode::OK,
        serde_json::json!({
            "value": found.value,
            "id": format!("{base}/secrets/{name}/{}", found.id),
            "attributes": {
                "enabled": true,
                "created": found.created,
                "updated": found.created,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            },
            "contentType": "text/plain",
            "tags": {},
        }),
    )
}
