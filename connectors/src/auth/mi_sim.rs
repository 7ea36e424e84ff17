//! The managed identity endpoint simulator, App Service / Container Apps style
//! (what `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` point azure_identity at):
//! `GET {endpoint}?api-version=2019-08-01&resource=...[&client_id=...|&mi_res_id=...]`
//! with the `X-IDENTITY-HEADER` secret. Plain http on loopback, as the real one
//! is. It answers with the real shape (`expires_on` in Unix seconds, as a
//! string) and issues tokens into the shared [`TokenRegistry`].

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;

use super::registry::TokenRegistry;
use super::sim::DEFAULT_AUDIENCES;
use crate::simkit::{self, SimKit, SimServer};

/// The path the endpoint is served at.
pub const PATH: &str = "/msi/token";

#[derive(Debug)]
struct MiState {
    registry: Arc<TokenRegistry>,
    /// The value `IDENTITY_HEADER` holds.
    header_secret: String,
    /// The system-assigned identity is on.
    system_assigned: Mutex<bool>,
    /// User-assigned identities attached: (client id, resource id).
    user_assigned: Mutex<Vec<(String, String)>>,
    audiences: Vec<String>,
}

/// A running managed identity endpoint.
#[derive(Debug)]
pub struct ManagedIdentitySim {
    pub server: SimServer,
    pub kit: Arc<SimKit>,
    state: Arc<MiState>,
}

impl ManagedIdentitySim {
    /// Serves on `listener` with a system-assigned identity and `header_secret`.
    pub async fn start(
        listener: TcpListener,
        registry: Arc<TokenRegistry>,
        header_secret: &str,
    ) -> ManagedIdentitySim {
        let kit = SimKit::new();
        let mut audiences: Vec<String> = DEFAULT_AUDIENCES.iter().map(|a| a.to_string()).collect();
        audiences.push("https://vault.azure.net".into());
        let state = Arc::new(MiState {
            registry,
            header_secret: header_secret.to_string(),
            system_assigned: Mutex::new(true),
            user_assigned: Mutex::new(Vec::new()),
            audiences,
        });
        let router = Router::new()
            .route(PATH, get(token))
            .with_state(state.clone());
        let router = simkit::with_kit(router, kit.clone());
        let server = simkit::serve(listener, router, None).await;
        ManagedIdentitySim { server, kit, state }
    }

    /// `IDENTITY_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("{}{PATH}", self.server.base_url)
    }

    /// Attaches a user-assigned identity.
    pub fn attach_user_assigned(&self, client_id: &str, resource_id: &str) {
        self.state
            .user_assigned
            .lock()
            .expect("mi sim")
            .push((client_id.to_string(), resource_id.to_string()));
    }

    /// Turns the system-assigned identity on or off.
    pub fn set_system_assigned(&self, on: bool) {
        *self.state.system_assigned.lock().expect("mi sim") = on;
    }

    pub fn shutdown(&self) {
        self.server.shutdown();
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    simkit::json_response(
        status,
        serde_json::json!({
            "statusCode": status.as_u16(),
            "message": message,
            "correlationId": format!("{:032x}", fastrand::u128(..)),
        }),
    )
}

async fn token(
    State(state): State<Arc<MiState>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let secret = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok());
    if secret != Some(state.header_secret.as_str()) {
        return error(
            StatusCode::FORBIDDEN,
            "The X-IDENTITY-HEADER header is missing or wrong.",
        );
    }
    if param("api-version") != Some("2019-08-01") {
        return error(
            StatusCode::BAD_REQUEST,
            "The api-version is not supported: use api-version=2019-08-01.",
        );
    }
    let Some(resource) = param("resource").map(|r| r.trim_end_matches('/').to_string()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "The resource parameter is required.",
        );
    };
    let user_assigned = state.user_assigned.lock().expect("mi sim").clone();
    let client_id = match (param("client_id"), param("mi_res_id")) {
        (Some(_), Some(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Only one of client_id and mi_res_id may be given.",
            );
        }
        (Some(id), None) => user_assigned
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(id))
            .map(|(c, _)| c.clone()),
        (None, Some(rid)) => user_assigned
            .iter()
            .find(|(_, r)| r.eq_ignore_ascii_case(rid))
            .map(|(c, _)| c.clone()),
        (None, None) => {
            (*state.system_assigned.lock().expect("mi sim")).then(|| "system-assigned".to_string())
        }
    };
    let Some(client_id) = client_id else {
        return error(
            StatusCode::BAD_REQUEST,
            "No MSI found for specified ClientId/ResourceId.",
        );
    };
    if !state
        .audiences
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&resource))
    {
        return error(
            StatusCode::BAD_REQUEST,
            &format!(
                "AADSTS500011: The resource principal named {resource} was not found in the tenant."
            ),
        );
    }
    let (access_token, expires_in) = state.registry.issue_for(&resource, &client_id);
    let expires_on = chrono::Utc::now().timestamp() + expires_in as i64;
    simkit::json_response(
        StatusCode::OK,
        serde_json::json!({
            "access_token": access_token,
            "expires_on": expires_on.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simkit::bind_loopback;

    #[tokio::test]
    async fn answers_as_the_app_service_identity_endpoint() {
        let registry = TokenRegistry::new();
        let sim =
            ManagedIdentitySim::start(bind_loopback(0).await.unwrap(), registry.clone(), "h").await;
        sim.attach_user_assigned("uami", "/subscriptions/s/rg/uami");
        let client = crate::http::build_client(&crate::http::HttpSettings::default()).unwrap();
        let get = |query: &str, header: Option<&str>| {
            let mut request = client.get(format!("{}?{query}", sim.endpoint()));
            if let Some(h) = header {
                request = request.header("X-IDENTITY-HEADER", h);
            }
            async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.json::<serde_json::Value>().await.unwrap())
            }
        };
        let graph = "resource=https://graph.microsoft.com";
        let (status, body) = get(&format!("api-version=2019-08-01&{graph}"), Some("h")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["expires_on"].as_str().unwrap().parse::<i64>().is_ok());
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["resource"], "https://graph.microsoft.com");
        let header = format!("Bearer {}", body["access_token"].as_str().unwrap());
        assert_eq!(
            registry.check(Some(&header), "https://graph.microsoft.com"),
            Ok(())
        );
        let (status, body) = get(
            &format!("api-version=2019-08-01&{graph}&client_id=uami"),
            Some("h"),
        )
        .await;
        assert_eq!((status, body["client_id"].as_str()), (200, Some("uami")));

        assert_eq!(
            get(&format!("api-version=2019-08-01&{graph}"), None)
                .await
                .0,
            403
        );
        assert_eq!(
            get(&format!("api-version=2019-08-01&{graph}"), Some("x"))
                .await
                .0,
            403
        );
        assert_eq!(
            get(&format!("api-version=2018-02-01&{graph}"), Some("h"))
                .await
                .0,
            400
        );
        assert_eq!(get("api-version=2019-08-01", Some("h")).await.0, 400);
        let (status, body) = get(
            &format!("api-version=2019-08-01&{graph}&client_id=other"),
            Some("h"),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(
            body["message"],
            "No MSI found for specified ClientId/ResourceId."
        );
        sim.set_system_assigned(false);
        assert_eq!(
            get(&format!("api-version=2019-08-01&{graph}"), Some("h"))
                .await
                .0,
            400
        );
        sim.shutdown();
    }
}
