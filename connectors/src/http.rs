//! The one HTTP layer every connector uses: a reqwest client built from `[http]`
//! (CA bundle, proxy, timeout, rustls with the `ring` provider), authentication
//! (HTTP Basic or a bearer token from a [`TokenProvider`]), and polite retries:
//! `Retry-After` honoured on 429/503 (whole or fractional seconds, or an HTTP date),
//! bounded exponential backoff with jitter on 5xx and timeouts, one token refresh on
//! 401. Non-idempotent requests (creates) are never retried once they may have
//! reached the server. Next-page links are accepted only on the configured host.

use std::sync::{Arc, Once};
use std::time::Duration;

use async_trait::async_trait;
use bridge_core::ports::{ConnectorError, ConnectorResult, ErrorKind};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use url::Url;

/// `[http]` settings, already read from disk.
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    /// Extra trusted CA certificates, PEM.
    pub ca_bundle_pem: Option<Vec<u8>>,
    pub proxy: Option<String>,
    pub timeout: Option<Duration>,
}

static CRYPTO: Once = Once::new();

/// Installs rustls's `ring` provider as the process default (once). It builds much
/// faster than aws-lc and is all reqwest and azure_core need.
pub fn install_crypto_provider() {
    CRYPTO.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Builds the shared client. The error names the setting at fault.
pub fn build_client(settings: &HttpSettings) -> Result<reqwest::Client, String> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("itsm-bridge/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(settings.timeout.unwrap_or(Duration::from_secs(30)));
    if let Some(pem) = &settings.ca_bundle_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("[http] ca_bundle is not a PEM certificate bundle: {e}"))?;
        if certs.is_empty() {
            return Err("[http] ca_bundle holds no certificate".into());
        }
        builder = builder.tls_certs_merge(certs);
    }
    match &settings.proxy {
        Some(proxy) => {
            let proxy = reqwest::Proxy::all(proxy)
                .map_err(|e| format!("[http] proxy is not a usable proxy URL: {e}"))?;
            builder = builder.proxy(proxy);
        }
        // Only the configured proxy is used, never one from the environment, so
        // that what `check` shows is what runs.
        None => builder = builder.no_proxy(),
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Where bearer tokens come from (Entra ID through azure_identity, in production).
#[async_trait]
pub trait TokenProvider: Send + Sync {
    /// A valid token, from the cache when it has one.
    async fn token(&self) -> ConnectorResult<SecretString>;
    /// Forget the cached token (the server said 401).
    async fn invalidate(&self);
}

/// How requests are signed.
#[derive(Clone)]
pub enum Auth {
    None,
    Basic {
        username: String,
        password: SecretString,
    },
    Bearer(Arc<dyn TokenProvider>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("Auth::None"),
            Auth::Basic { username, .. } => write!(f, "Auth::Basic({username}, [redacted])"),
            Auth::Bearer(_) => f.write_str("Auth::Bearer([redacted])"),
        }
    }
}

/// Retry limits.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest `Retry-After` the bridge waits inside one call; longer waits are
    /// returned as `RateLimited` for the scheduler to honour.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// Pulls a human-readable message out of a vendor error body.
pub type ErrorMessageFn = fn(&[u8]) -> Option<String>;

/// A response that came back with a success status.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl Response {
    /// Decodes the body as JSON; a body that does not decode is `InvalidPayload`.
    pub fn json<T: DeserializeOwned>(&self, system: &str) -> ConnectorResult<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ConnectorError::new(
                ErrorKind::InvalidPayload,
                system,
                format!("unexpected response body ({e})"),
            )
        })
    }
}

/// One remote API: its base URL, its client, how to sign, how to read its errors.
#[derive(Debug, Clone)]
pub struct Api {
    system: String,
    base: Url,
    client: reqwest::Client,
    auth: Auth,
    retry: RetryPolicy,
    error_message: ErrorMessageFn,
}

/// A request to send. `idempotent` requests are retried after a failure that may
/// have reached the server; others only when the server certainly did not act on
/// them (429, connection refused).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: Url,
    pub body: Option<serde_json::Value>,
    pub headers: Vec<(&'static str, String)>,
    pub idempotent: bool,
}

impl Request {
    pub fn get(url: Url) -> Request {
        Request {
            method: Method::GET,
            url,
            body: None,
            headers: Vec::new(),
            idempotent: true,
        }
    }

    pub fn with_body(method: Method, url: Url, body: serde_json::Value) -> Request {
        let idempotent = method != Method::POST;
        Request {
            method,
            url,
            body: Some(body),
            headers: Vec::new(),
            idempotent,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Request {
        self.headers.push((name, value.into()));
        self
    }

    pub fn idempotent(mut self, idempotent: bool) -> Request {
        self.idempotent = idempotent;
        self
    }
}

impl Api {
    pub fn new(
        system: impl Into<String>,
        base_url: &str,
        client: reqwest::Client,
        auth: Auth,
        error_message: ErrorMessageFn,
    ) -> Result<Api, String> {
        let mut base = Url::parse(base_url).map_err(|e| format!("bad base URL {base_url}: {e}"))?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Api {
            system: system.into(),
            base,
            client,
            auth,
            retry: RetryPolicy::default(),
            error_message,
        })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Api {
        self.retry = retry;
        self
    }

    pub fn system(&self) -> &str {
        &self.system
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `path` (no leading slash) joined to the base URL.
    pub fn url(&self, path: &str) -> Url {
        self.base
            .join(path.trim_start_matches('/'))
            .expect("a relative path joins onto an absolute URL")
    }

    /// A next-page link as returned by the API, accepted only if it points at the
    /// configured scheme, host and port: a token is never sent anywhere else.
    pub fn next_link(&self, link: &str) -> ConnectorResult<Url> {
        let url = Url::parse(link).map_err(|e| {
            self.error(
                ErrorKind::InvalidPayload,
                format!("next link is not a URL ({e})"),
            )
        })?;
        if url.scheme() != self.base.scheme()
            || url.host_str() != self.base.host_str()
            || url.port_or_known_default() != self.base.port_or_known_default()
        {
            return Err(self.error(
                ErrorKind::InvalidPayload,
                format!(
                    "refusing a next link to {}://{} (the configured base URL is {})",
                    url.scheme(),
                    url.host_str().unwrap_or(""),
                    self.base
                ),
            ));
        }
        Ok(url)
    }

    pub fn error(&self, kind: ErrorKind, message: impl Into<String>) -> ConnectorError {
        ConnectorError::new(kind, self.system.clone(), message)
    }

    /// GET and decode JSON.
    pub async fn get_json<T: DeserializeOwned>(&self, url: Url) -> ConnectorResult<T> {
        self.send(Request::get(url)).await?.json(&self.system)
    }

    /// Sends the request, retrying as the policy allows. Only 2xx is `Ok`.
    pub async fn send(&self, request: Request) -> ConnectorResult<Response> {
        let mut attempt = 0u32;
        let mut refreshed_token = false;
        loop {
            attempt += 1;
            let last = attempt >= self.retry.max_attempts;
            let outcome = self.send_once(&request).await;
            let (error, may_retry, wait) = match outcome {
                Ok(response) if response.status.is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status;
                    let retry_after = parse_retry_after(&response.headers);
                    let error = self.status_error(status, retry_after, &response.body);
                    if status == StatusCode::UNAUTHORIZED
                        && !refreshed_token
                        && let Auth::Bearer(provider) = &self.auth
                    {
                        provider.invalidate().await;
                        refreshed_token = true;
                        tracing::debug!(system = %self.system, "401: refreshing the token once");
                        continue;
                    }
                    match status.as_u16() {
                        // The server did not act on a throttled request: safe to repeat.
                        429 => (error, true, retry_after),
                        503 if retry_after.is_some() => (error, request.idempotent, retry_after),
                        500 | 502 | 503 | 504 => (error, request.idempotent, None),
                        _ => return Err(error),
                    }
                }
                // Transport trouble, or the token could not be had: only what may
                // pass on its own is tried again (never refused credentials).
                Err((error, sent)) => {
                    let wait = match error.kind {
                        ErrorKind::RateLimited(wait) => wait,
                        _ => None,
                    };
                    let retry = error.kind.is_retryable() && (request.idempotent || !sent);
                    (error, retry, wait)
                }
            };
            if last || !may_retry {
                return Err(error);
            }
            let wait = match wait {
                Some(w) if w > self.retry.max_retry_after => return Err(error),
                Some(w) => w,
                None => self.backoff(attempt),
            };
            tracing::debug!(
                system = %self.system,
                method = %request.method,
                path = %request.url.path(),
                attempt,
                wait_ms = wait.as_millis() as u64,
                error = %error.message,
                "retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Exponential backoff with full jitter, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .retry
            .base_delay
            .saturating_mul(1u32 << attempt.min(16));
        let cap = exp.min(self.retry.max_delay);
        cap.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    /// One attempt. The error side says whether the request may have reached the server.
    async fn send_once(&self, request: &Request) -> Result<Response, (ConnectorError, bool)> {
        let mut builder = self
            .client
            .request(request.method.clone(), request.url.clone());
        match &self.auth {
            Auth::None => {}
            Auth::Basic { username, password } => {
                builder = builder.basic_auth(username, Some(password.expose_secret()));
            }
            Auth::Bearer(provider) => {
                let token = provider.token().await.map_err(|e| (e, false))?;
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                    .map_err(|_| {
                        (
                            self.error(ErrorKind::Auth, "the token is not a valid header value"),
                            false,
                        )
                    })?;
                value.set_sensitive(true);
                builder = builder.header(AUTHORIZATION, value);
            }
        }
        builder = builder.header("Accept", "application/json");
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let response = builder.send().await.map_err(|e| {
            let sent = !e.is_connect();
            (
                self.error(ErrorKind::Transient, describe_transport_error(&e)),
                sent,
            )
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| {
            (
                self.error(ErrorKind::Transient, describe_transport_error(&e)),
                true,
            )
        })?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    fn status_error(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> ConnectorError {
        let kind = match status.as_u16() {
            429 => ErrorKind::RateLimited(retry_after),
            401 | 403 => ErrorKind::Auth,
            404 | 410 => ErrorKind::NotFound,
            409 | 412 => ErrorKind::Conflict,
            500..=599 => ErrorKind::Transient,
            _ => ErrorKind::Permanent,
        };
        let detail = (self.error_message)(body).unwrap_or_else(|| {
            String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .to_string()
        });
        let message = if detail.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {detail}")
        };
        self.error(kind, message)
    }
}

/// A transport error in words, without the URL's query (it may be long) and never
/// with a header.
fn describe_transport_error(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the response body was cut short"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut cause = String::new();
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    match e.url() {
        Some(url) if cause.is_empty() => format!("{what}: {}{}", host_of(url), url.path()),
        Some(url) => format!("{what}: {}{} ({cause})", host_of(url), url.path()),
        None => what.to_string(),
    }
}

fn host_of(url: &Url) -> String {
    match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_string(),
    }
}

/// `Retry-After` as seconds (fractional allowed, as Graph sends) or an HTTP date.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn retry_after_whole_fractional_and_garbage() {
        assert_eq!(
            parse_retry_after(&headers("3")),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after(&headers("0.25")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_retry_after(&headers("soon")), None);
        assert_eq!(parse_retry_after(&headers("-1")), None);
        assert_eq!(parse_retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn next_links_only_on_the_configured_host() {
        let client = build_client(&HttpSettings::default()).unwrap();
        let api = Api::new(
            "graph",
            "http://127.0.0.1:8080/v1.0",
            client,
            Auth::None,
            |_| None,
        )
        .unwrap();
        assert!(
            api.next_link("http://127.0.0.1:8080/v1.0/x?$skip=50")
                .is_ok()
        );
        assert!(api.next_link("http://evil.example/v1.0/x").is_err());
        assert!(api.next_link("http://127.0.0.1:9090/v1.0/x").is_err());
        assert!(api.next_link("https://127.0.0.1:8080/v1.0/x").is_err());
        assert_eq!(
            api.url("security/incidents").as_str(),
            "http://127.0.0.1:8080/v1.0/security/incidents"
        );
    }
}
