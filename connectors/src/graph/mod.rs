//! Microsoft Graph security incidents (the Defender XDR unified queue, API.md §2),
//! in the shape every connector module has: [`wire`] (Graph's JSON), [`convert`]
//! (pure conversion to the domain's `IncidentSnapshot`), [`client`] (the
//! `IncidentSource` over HTTP) and [`sim`] (a strict simulator of the API).

pub mod client;
pub mod convert;
pub mod doctor;
pub mod sim;
pub mod wire;

pub use client::{GraphSource, error_message};
pub use sim::GraphSim;

/// Shared test setup: a simulator on loopback and a client holding a valid token.
#[cfg(test)]
pub(crate) mod testkit {
    use std::sync::Arc;

    use async_trait::async_trait;
    use bridge_core::ports::ConnectorResult;
    use secrecy::SecretString;

    use super::{GraphSim, GraphSource, client};
    use crate::auth::registry::TokenRegistry;
    use crate::http::{Api, Auth, HttpSettings, TokenProvider, build_client};
    use crate::simkit::bind_loopback;

    pub const TENANT: &str = "0b3c5e1a-0000-4000-8000-00000000e9c0";

    /// Always the same token (the registry decides whether it is any good).
    struct StaticToken(String);

    #[async_trait]
    impl TokenProvider for StaticToken {
        async fn token(&self) -> ConnectorResult<SecretString> {
            Ok(SecretString::from(self.0.clone()))
        }
        async fn invalidate(&self) {}
    }

    pub struct Harness {
        pub sim: GraphSim,
        pub source: GraphSource,
        pub registry: Arc<TokenRegistry>,
        /// A valid Graph token, for raw requests.
        pub token: String,
        pub http: reqwest::Client,
    }

    pub async fn harness() -> Harness {
        let registry = TokenRegistry::new();
        let listener = bind_loopback(0).await.expect("bind loopback");
        let sim = GraphSim::start(listener, registry.clone(), TENANT).await;
        let (token, _) = registry.issue("https://graph.microsoft.com");
        let source = source_with_token(&sim, &token);
        let http = build_client(&HttpSettings::default()).expect("client");
        Harness {
            sim,
            source,
            registry,
            token,
            http,
        }
    }

    pub fn source_with_token(sim: &GraphSim, token: &str) -> GraphSource {
        let http = build_client(&HttpSettings::default()).expect("client");
        let auth = Auth::Bearer(Arc::new(StaticToken(token.to_string())));
        let api =
            Api::new("graph", &sim.base_url(), http, auth, client::error_message).expect("api");
        GraphSource::new(api)
    }

    impl Harness {
        /// A raw request (no `Prefer` unless given), returning status and JSON body.
        pub async fn raw(
            &self,
            method: reqwest::Method,
            path_and_query: &str,
            prefer: bool,
            body: Option<serde_json::Value>,
        ) -> (u16, serde_json::Value) {
            let url = format!("{}{path_and_query}", self.sim.base_url());
            let mut request = self.http.request(method, url).bearer_auth(&self.token);
            if prefer {
                request = request.header("Prefer", "include-unknown-enum-members");
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.expect("send");
            let status = response.status().as_u16();
            let bytes = response.bytes().await.expect("body");
            let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            (status, json)
        }

        pub async fn get(&self, path_and_query: &str) -> (u16, serde_json::Value) {
            self.raw(reqwest::Method::GET, path_and_query, false, None)
                .await
        }
    }
}
#[cfg(test)]
mod fuzz;
