//! The Entra ID token endpoint simulator (API.md §1): `POST
//! /{tenant}/oauth2/v2.0/token` with the client-credentials grant, served over TLS
//! because azure_identity refuses an `http://` authority host. It knows a set of
//! tenants and app registrations (client id + secret) and a set of resources
//! (audiences); it answers with Entra's success and error bodies, status for status,
//! and records every token it issues in the shared [`TokenRegistry`] so the Graph and
//! Sentinel simulators can check the bearer tokens they receive.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::post;

use tokio::net::TcpListener;

use super::registry::TokenRegistry;
use super::sim_assertion::{self, Federated, Registered};
use crate::simkit::{self, SimKit, SimServer, SimTls};

/// The resources a token can be requested for unless the test says otherwise.
pub const DEFAULT_AUDIENCES: [&str; 2] = [
    "https://graph.microsoft.com",
    "https://management.azure.com",
];

#[derive(Debug, Clone)]
struct App {
    tenant_id: String,
    client_id: String,
    /// `None`: the app has no client secret (certificates or federation only).
    client_secret: Option<String>,
    /// The secret's end date has passed (AADSTS7000222).
    secret_expired: bool,
    /// Registered certificates (DER).
    certificates: Vec<Vec<u8>>,
    federated: Vec<Federated>,
}

impl App {
    fn new(tenant_id: &str, client_id: &str) -> App {
        App {
            tenant_id: tenant_id.to_string(),
            client_id: client_id.to_string(),
            client_secret: None,
            secret_expired: false,
            certificates: Vec::new(),
            federated: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct SimState {
    /// The simulator's own URL: the audience client assertions must name.
    base_url: Mutex<String>,
    registry: Arc<TokenRegistry>,
    apps: Mutex<Vec<App>>,
    audiences: Mutex<Vec<String>>,
}

/// A running token endpoint simulator.
#[derive(Debug)]
pub struct TokenSim {
    pub server: SimServer,
    pub kit: Arc<SimKit>,
    pub registry: Arc<TokenRegistry>,
    /// The TLS identity it serves with; clients trust `tls.ca_pem`.
    pub tls: SimTls,
    state: Arc<SimState>,
}

impl TokenSim {
    /// Serves the token endpoint on `listener` over TLS, issuing tokens into `registry`.
    pub async fn start(
        listener: TcpListener,
        registry: Arc<TokenRegistry>,
        tls: SimTls,
    ) -> TokenSim {
        let kit = SimKit::new();
        let state = Arc::new(SimState {
            base_url: Mutex::new(String::new()),
            registry: registry.clone(),
            apps: Mutex::new(Vec::new()),
            audiences: Mutex::new(DEFAULT_AUDIENCES.iter().map(|a| a.to_string()).collect()),
        });
        let router = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .with_state(state.clone());
        let router = simkit::with_kit(router, kit.clone());
        let server = simkit::serve(listener, router, Some(tls.clone())).await;
        *state.base_url.lock().expect("token sim base url") = server.base_url.clone();
        TokenSim {
            server,
            kit,
            registry,
            tls,
            state,
        }
    }

    /// Registers an application (and its tenant, if new). Registering the same client
    /// id in the same tenant again replaces its secret (a secret rotation).
    pub fn register_app(&self, tenant_id: &str, client_id: &str, client_secret: &str) {
        self.with_app(tenant_id, client_id, |app| {
            app.client_secret = Some(client_secret.to_string());
            app.secret_expired = false;
        });
    }

    /// Registers a certificate (DER) on an app (created without a secret if new).
    pub fn register_certificate(&self, tenant_id: &str, client_id: &str, certificate_der: &[u8]) {
        self.with_app(tenant_id, client_id, |app| {
            app.certificates.push(certificate_der.to_vec())
        });
    }

    /// Removes every certificate of an app (as an admin deleting a revoked one).
    pub fn remove_certificates(&self, tenant_id: &str, client_id: &str) {
        self.with_app(tenant_id, client_id, |app| app.certificates.clear());
    }

    /// Lets the app's secret expire: Entra then answers AADSTS7000222.
    pub fn expire_secret(&self, tenant_id: &str, client_id: &str) {
        self.with_app(tenant_id, client_id, |app| app.secret_expired = true);
    }

    /// Registers a federated identity credential on an app: tokens of `issuer`
    /// for `subject` (e.g. `system:serviceaccount:soc:itsm-bridge`) with audience
    /// `api://AzureADTokenExchange`, signed by the simulator's issuer key.
    pub fn register_federated(
        &self,
        tenant_id: &str,
        client_id: &str,
        issuer: &str,
        subject: &str,
    ) {
        let issuer_cert =
            sim_assertion::pem_certificate_der(super::certificate::testdata::OTHER_PEM)
                .expect("the issuer's certificate");
        self.with_app(tenant_id, client_id, |app| {
            app.federated.push(Federated {
                issuer: issuer.to_string(),
                subject: subject.to_string(),
                issuer_cert,
            })
        });
    }

    /// A service account token as the cluster's OIDC issuer signs it (what AKS
    /// writes to `AZURE_FEDERATED_TOKEN_FILE`), valid for `lifetime_secs`.
    pub fn federated_token(&self, issuer: &str, subject: &str, lifetime_secs: i64) -> String {
        let key = super::certificate::ClientCertificate::from_pem(
            super::certificate::testdata::OTHER_PEM.as_bytes(),
            std::path::Path::new("issuer.pem"),
        )
        .expect("the issuer's key");
        let now = chrono::Utc::now().timestamp();
        key.sign(
            &serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "sim-issuer"}),
            &serde_json::json!({
                "iss": issuer,
                "sub": subject,
                "aud": [sim_assertion::FEDERATED_AUDIENCE],
                "iat": now,
                "nbf": now,
                "exp": now + lifetime_secs,
            }),
        )
        .expect("a signed token")
    }

    fn with_app(&self, tenant_id: &str, client_id: &str, change: impl FnOnce(&mut App)) {
        let mut apps = self.state.apps.lock().expect("token sim apps");
        let at = apps.iter().position(|a| {
            a.tenant_id.eq_ignore_ascii_case(tenant_id)
                && a.client_id.eq_ignore_ascii_case(client_id)
        });
        let at = at.unwrap_or_else(|| {
            apps.push(App::new(tenant_id, client_id));
            apps.len() - 1
        });
        change(&mut apps[at]);
    }

    /// Replaces the resources tokens can be requested for (`https://graph.microsoft.com`,
    /// …, without `/.default`).
    pub fn set_audiences(&self, audiences: &[&str]) {
        *self.state.audiences.lock().expect("token sim audiences") = audiences
            .iter()
            .map(|a| a.trim_end_matches('/').to_string())
            .collect();
    }

    /// `https://localhost:PORT`: what the bridge's `authority_host` points at.
    pub fn authority_host(&self) -> String {
        self.server.base_url.clone()
    }

    pub fn shutdown(&self) {
        self.server.shutdown();
    }
}

/// An Entra error: status, `error`, AADSTS number and the description's first line.
#[derive(Debug)]
pub(super) struct EntraError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
}

impl EntraError {
    pub(super) fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        description: impl Into<String>,
    ) -> EntraError {
        EntraError {
            status,
            error,
            code,
            description: description.into(),
        }
    }

    fn missing(parameter: &str) -> EntraError {
        EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{parameter}'."),
        )
    }

    fn invalid_scope(detail: String) -> EntraError {
        EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            format!("The provided value for the input parameter 'scope' is not valid. {detail}"),
        )
    }

    /// The body Entra sends: the description carries the AADSTS code and the trace,
    /// correlation and timestamp lines; the same values appear as fields.
    fn into_response(self, correlation_id: String) -> Response {
        let trace_id = guid();
        let timestamp = simkit::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
        let body = serde_json::json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
                self.code, self.description
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        entra_json(self.status, body)
    }
}

/// Entra's JSON answers: with a charset, and never cached.
fn entra_json(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = simkit::json_response_as("application/json; charset=utf-8", status, body);
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// A random GUID-shaped id, as Entra's trace and correlation ids are.
fn guid() -> String {
    let a = fastrand::u128(..);
    let hex = format!("{a:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `POST /{tenant}/oauth2/v2.0/token`.
async fn token(
    State(state): State<Arc<SimState>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Entra reports the caller's `client-request-id` as the correlation id.
    let correlation_id = headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64)
        .map(str::to_string)
        .unwrap_or_else(guid);
    match issue(&state, &tenant, &headers, &body) {
        Ok(response) => response,
        Err(error) => error.into_response(correlation_id),
    }
}

fn issue(
    state: &SimState,
    tenant: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, EntraError> {
    let known_tenant = state
        .apps
        .lock()
        .expect("token sim apps")
        .iter()
        .any(|a| a.tenant_id.eq_ignore_ascii_case(tenant));
    if !known_tenant {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        ));
    }

    // A body that is not form-encoded has no parameters at all, as Entra sees it.
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    let form: Vec<(String, String)> = if is_form {
        url::form_urlencoded::parse(body).into_owned().collect()
    } else {
        Vec::new()
    };
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let basic = basic_credentials(headers);

    let grant_type = field("grant_type").ok_or_else(|| EntraError::missing("grant_type"))?;
    if grant_type != "client_credentials" {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant_type}'."),
        ));
    }
    let client_id = field("client_id")
        .map(str::to_string)
        .or_else(|| basic.as_ref().map(|(id, _)| id.clone()))
        .ok_or_else(|| EntraError::missing("client_id"))?;
    let scope = field("scope").ok_or_else(|| EntraError::missing("scope"))?;
    let resource = scope_resource(scope)?;

    let app = state
        .apps
        .lock()
        .expect("token sim apps")
        .iter()
        .find(|a| {
            a.tenant_id.eq_ignore_ascii_case(tenant) && a.client_id.eq_ignore_ascii_case(&client_id)
        })
        .cloned()
        .ok_or_else(|| {
            EntraError::new(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                700016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
                ),
            )
        })?;

    // The secret from the form, or from HTTP Basic (RFC 6749 §2.3.1) for the same client.
    let secret = field("client_secret").map(str::to_string).or_else(|| {
        basic
            .as_ref()
            .filter(|(id, _)| id.eq_ignore_ascii_case(&client_id))
            .map(|(_, secret)| secret.clone())
    });
    authenticate(
        state,
        tenant,
        &app,
        secret,
        field("client_assertion"),
        field("client_assertion_type"),
    )?;

    let audience = state
        .audiences
        .lock()
        .expect("token sim audiences")
        .iter()
        .find(|a| a.eq_ignore_ascii_case(&resource))
        .cloned()
        .ok_or_else(|| {
            EntraError::invalid_scope(format!(
                "The scope '{scope}' names a resource that does not exist in the tenant."
            ))
        })?;

    let (access_token, expires_in) = state.registry.issue_for(&audience, &app.client_id);
    let body = serde_json::json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": access_token,
    });
    Ok(entra_json(StatusCode::OK, body))
}

/// The client is who it says: its secret (neither wrong nor expired) or its
/// client assertion (a certificate's or a federated token, `sim_assertion`).
fn authenticate(
    state: &SimState,
    tenant: &str,
    app: &App,
    secret: Option<String>,
    assertion: Option<&str>,
    assertion_type: Option<&str>,
) -> Result<(), EntraError> {
    match (secret, assertion) {
        (None, Some(assertion)) => {
            let token_endpoint = format!(
                "{}/{tenant}/oauth2/v2.0/token",
                state.base_url.lock().expect("token sim base url")
            );
            sim_assertion::check(
                assertion_type,
                assertion,
                &Registered {
                    client_id: &app.client_id,
                    certificates: &app.certificates,
                    federated: &app.federated,
                    token_endpoint: &token_endpoint,
                    now: chrono::Utc::now().timestamp(),
                },
            )?;
        }
        (None, None) => {
            return Err(EntraError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
            ));
        }
        (Some(secret), _) if Some(&secret) != app.client_secret.as_ref() => {
            return Err(EntraError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                    app.client_id
                ),
            ));
        }
        (Some(_), _) if app.secret_expired => {
            return Err(EntraError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000222,
                format!(
                    "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.",
                    app.client_id
                ),
            ));
        }
        (Some(_), _) => {}
    }
    Ok(())
}

/// The one resource a client-credentials `scope` asks for: every space-separated
/// scope must be `{resource}/.default`, all for the same resource.
fn scope_resource(scope: &str) -> Result<String, EntraError> {
    let mut resource: Option<String> = None;
    for item in scope.split(' ').filter(|s| !s.is_empty()) {
        let Some(this) = item.strip_suffix("/.default") else {
            return Err(EntraError::invalid_scope(format!(
                "The scope '{scope}' is not valid: the client credentials flow needs '{{resource}}/.default'."
            )));
        };
        let this = this.trim_end_matches('/').to_string();
        match &resource {
            Some(r) if !r.eq_ignore_ascii_case(&this) => {
                // Entra answers a mix of resources with AADSTS28000. [O]
                return Err(EntraError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    28000,
                    format!(
                        "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope {scope} is not valid."
                    ),
                ));
            }
            _ => resource = Some(this),
        }
    }
    resource
        .filter(|r| !r.is_empty())
        .ok_or_else(|| EntraError::invalid_scope(format!("The scope '{scope}' is not valid.")))
}

/// `Authorization: Basic` client credentials: base64 of the form-encoded id and
/// secret joined by `:` (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let (id, secret) = simkit::basic_credentials(headers)?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(&id), unescape(&secret)))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;
    use crate::http::{HttpSettings, build_client};

    const TENANT: &str = "0b3c6f0e-1d2a-4e9c-9a7b-2f6d3c1e9e9c";
    const CLIENT: &str = "11111111-1111-1111-1111-111111111111";
    const SECRET: &str = "s3cr3t~value+with/odd=chars";

    async fn start() -> (TokenSim, reqwest::Client) {
        let tls = SimTls::generate().unwrap();
        let listener = simkit::bind_loopback(0).await.unwrap();
        let sim = TokenSim::start(listener, TokenRegistry::new(), tls.clone()).await;
        sim.register_app(TENANT, CLIENT, SECRET);
        let client = build_client(&HttpSettings {
            ca_bundle_pem: Some(tls.ca_pem.as_bytes().to_vec()),
            ..Default::default()
        })
        .unwrap();
        (sim, client)
    }

    async fn post(
        sim: &TokenSim,
        client: &reqwest::Client,
        tenant: &str,
        form: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let url = format!("{}/{tenant}/oauth2/v2.0/token", sim.authority_host());
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    fn form<'a>(secret: &'a str, scope: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("client_secret", secret),
            ("scope", scope),
        ]
    }

    fn assert_error(body: &serde_json::Value, error: &str, code: u64) {
        assert_eq!(body["error"], error, "{body}");
        assert_eq!(body["error_codes"], serde_json::json!([code]), "{body}");
        let description = body["error_description"].as_str().unwrap();
        assert!(
            description.starts_with(&format!("AADSTS{code}: ")),
            "{body}"
        );
        let trace_id = body["trace_id"].as_str().unwrap();
        let correlation_id = body["correlation_id"].as_str().unwrap();
        let timestamp = body["timestamp"].as_str().unwrap();
        assert!(description.contains(&format!("\r\nTrace ID: {trace_id}\r\n")));
        assert!(description.contains(&format!("\r\nCorrelation ID: {correlation_id}\r\n")));
        assert!(description.ends_with(&format!("\r\nTimestamp: {timestamp}")));
        assert_eq!(timestamp.len(), "2025-01-09 02:02:12Z".len());
        assert_eq!(
            body["error_uri"],
            format!("https://login.microsoftonline.com/error?code={code}")
        );
    }

    #[tokio::test]
    async fn issues_tokens_for_known_audiences() {
        let (sim, client) = start().await;
        let (status, body) = post(
            &sim,
            &client,
            TENANT,
            &form(SECRET, "https://graph.microsoft.com/.default"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3599);
        assert_eq!(body["ext_expires_in"], 3599);
        let token = body["access_token"].as_str().unwrap();
        let header = format!("Bearer {token}");
        assert_eq!(
            sim.registry
                .check(Some(&header), "https://graph.microsoft.com"),
            Ok(())
        );
        assert!(
            sim.registry
                .check(Some(&header), "https://management.azure.com")
                .is_err()
        );
        // The tenant may be given in any case; the kit logged the request.
        let (status, _) = post(
            &sim,
            &client,
            &TENANT.to_uppercase(),
            &form(SECRET, "https://management.azure.com//.default"),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(sim.kit.request_count(), 2);
        sim.shutdown();
    }

    #[tokio::test]
    async fn accepts_http_basic_client_authentication() {
        let (sim, client) = start().await;
        let url = format!("{}/{TENANT}/oauth2/v2.0/token", sim.authority_host());
        let escape =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            escape(CLIENT),
            escape(SECRET)
        ));
        let response = client
            .post(&url)
            .header("authorization", format!("Basic {basic}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                "grant_type=client_credentials&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        sim.shutdown();
    }

    #[tokio::test]
    async fn an_assertion_without_a_thumbprint_must_be_a_federated_token() {
        let (sim, client) = start().await;
        let assertion = [
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("scope", "https://graph.microsoft.com/.default"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"),
        ];
        let (status, body) = post(&sim, &client, TENANT, &assertion).await;
        assert_eq!(status, 401);
        assert_error(&body, "invalid_client", 700212);
        // A body that is not form-encoded carries no parameters at all.
        let url = format!("{}/{TENANT}/oauth2/v2.0/token", sim.authority_host());
        let response = client
            .post(url)
            .json(&serde_json::json!({"grant_type": "client_credentials"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_error(&body, "invalid_request", 900144);
        sim.shutdown();
    }

    #[tokio::test]
    async fn errors_follow_the_documented_table() {
        let (sim, client) = start().await;
        let graph = "https://graph.microsoft.com/.default";

        let (status, body) = post(&sim, &client, TENANT, &form("wrong", graph)).await;
        assert_eq!(status, 401);
        assert_error(&body, "invalid_client", 7000215);
        assert!(!body.to_string().contains(SECRET));

        let no_secret = [
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("scope", graph),
        ];
        let (status, body) = post(&sim, &client, TENANT, &no_secret).await;
        assert_eq!(status, 400);
        assert_error(&body, "invalid_request", 7000216);

        let (status, body) = post(
            &sim,
            &client,
            TENANT,
            &form(SECRET, "https://vault.azure.net/.default"),
        )
        .await;
        assert_eq!(status, 400);
        assert_error(&body, "invalid_scope", 70011);

        let (status, body) = post(
            &sim,
            &client,
            TENANT,
            &form(
                SECRET,
                "https://graph.microsoft.com/SecurityIncident.Read.All",
            ),
        )
        .await;
        assert_eq!(status, 400);
        assert_error(&body, "invalid_scope", 70011);

        let mixed = "https://graph.microsoft.com/.default https://management.azure.com/.default";
        let (status, body) = post(&sim, &client, TENANT, &form(SECRET, mixed)).await;
        assert_eq!(status, 400);
        assert_error(&body, "invalid_scope", 28000);

        let unknown_app = [
            ("grant_type", "client_credentials"),
            ("client_id", "99999999-9999-9999-9999-999999999999"),
            ("client_secret", SECRET),
            ("scope", graph),
        ];
        let (status, body) = post(&sim, &client, TENANT, &unknown_app).await;
        assert_eq!(status, 400);
        assert_error(&body, "unauthorized_client", 700016);

        let (status, body) = post(&sim, &client, "contoso.example", &form(SECRET, graph)).await;
        assert_eq!(status, 400);
        assert_error(&body, "invalid_request", 90002);

        let wrong_grant = [
            ("grant_type", "password"),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("scope", graph),
        ];
        let (status, body) = post(&sim, &client, TENANT, &wrong_grant).await;
        assert_eq!(status, 400);
        assert_error(&body, "unsupported_grant_type", 70003);

        let (status, body) = post(&sim, &client, TENANT, &[("client_id", CLIENT)]).await;
        assert_eq!(status, 400);
        assert_error(&body, "invalid_request", 900144);

        // Audiences are configurable.
        sim.set_audiences(&["https://vault.azure.net"]);
        let (status, _) = post(
            &sim,
            &client,
            TENANT,
            &form(SECRET, "https://vault.azure.net/.default"),
        )
        .await;
        assert_eq!(status, 200);
        let (status, _) = post(&sim, &client, TENANT, &form(SECRET, graph)).await;
        assert_eq!(status, 400);
        sim.shutdown();
    }
}
