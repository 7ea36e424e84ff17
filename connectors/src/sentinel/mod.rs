//! Microsoft Sentinel incidents (Azure Resource Manager, `Microsoft.SecurityInsights`,
//! API.md §3), in the shape every connector module has: [`wire`] (Sentinel's JSON),
//! [`convert`] (pure conversion to the domain's `IncidentSnapshot`), [`client`] (the
//! `IncidentSource` over HTTP: full-replacement PUTs with the body etag) and [`sim`]
//! (a strict simulator of one workspace's incidents API).

pub mod client;
pub mod convert;
pub mod doctor;
pub mod sim;
pub mod wire;

pub use client::{SentinelSource, error_message};
pub use sim::SentinelSim;

/// Shared test setup: a simulator on loopback and a client holding a valid token.
#[cfg(test)]
pub(crate) mod testkit {
    use std::sync::Arc;

    use async_trait::async_trait;
    use bridge_core::config::SentinelWorkspace;
    use bridge_core::ports::ConnectorResult;
    use secrecy::SecretString;

    use super::{SentinelSim, SentinelSource, client};
    use crate::auth::registry::TokenRegistry;
    use crate::http::{Api, Auth, HttpSettings, TokenProvider, build_client};
    use crate::simkit::bind_loopback;

    pub const AUDIENCE: &str = "https://management.azure.com";
    pub const API_VERSION: &str = "2025-09-01";

    pub fn workspace() -> SentinelWorkspace {
        SentinelWorkspace {
            subscription_id: "33333333-3333-3333-3333-333333333333".into(),
            resource_group: "soc-rg".into(),
            workspace_name: "soc-ws".into(),
        }
    }

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
        pub sim: SentinelSim,
        pub source: SentinelSource,
        pub registry: Arc<TokenRegistry>,
        /// A valid ARM token, for raw requests.
        pub token: String,
        pub http: reqwest::Client,
    }

    pub async fn harness() -> Harness {
        let registry = TokenRegistry::new();
        let listener = bind_loopback(0).await.expect("bind loopback");
        let sim = SentinelSim::start(listener, registry.clone(), workspace()).await;
        let (token, _) = registry.issue(AUDIENCE);
        let source = source_with(&sim, &token, None);
        let http = build_client(&HttpSettings::default()).expect("client");
        Harness {
            sim,
            source,
            registry,
            token,
            http,
        }
    }

    pub fn source_with(
        sim: &SentinelSim,
        token: &str,
        api_version: Option<&str>,
    ) -> SentinelSource {
        let http = build_client(&HttpSettings::default()).expect("client");
        let auth = Auth::Bearer(Arc::new(StaticToken(token.to_string())));
        let api = Api::new(
            "sentinel",
            &sim.base_url(),
            http,
            auth,
            client::error_message,
        )
        .expect("api");
        SentinelSource::new(api, workspace(), api_version.map(str::to_string))
    }

    impl Harness {
        /// The incidents collection path (no query).
        pub fn incidents(&self) -> String {
            self.sim.incidents_path()
        }

        /// A raw request with this token: status, headers and JSON body (`Null` when
        /// there is none).
        pub async fn raw_with(
            &self,
            token: &str,
            method: reqwest::Method,
            path_and_query: &str,
            body: Option<serde_json::Value>,
        ) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
            let url = if path_and_query.starts_with("http") {
                path_and_query.to_string()
            } else {
                format!("{}{path_and_query}", self.sim.base_url())
            };
            let mut request = self.http.request(method, url).bearer_auth(token);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.expect("send");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let bytes = response.bytes().await.expect("body");
            let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            (status, headers, json)
        }

        pub async fn raw(
            &self,
            method: reqwest::Method,
            path_and_query: &str,
            body: Option<serde_json::Value>,
        ) -> (u16, serde_json::Value) {
            let (status, _, json) = self
                .raw_with(&self.token, method, path_and_query, body)
                .await;
            (status, json)
        }

        pub async fn get(&self, path_and_query: &str) -> (u16, serde_json::Value) {
            self.raw(reqwest::Method::GET, path_and_query, None).await
        }
    }
}
#[cfg(test)]
mod fuzz;
