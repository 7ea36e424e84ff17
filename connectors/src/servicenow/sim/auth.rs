//! The ServiceNow simulator's sign-in and limits: Basic or an OAuth bearer token
//! on every API request, the hourly rate limit and its headers, and
//! `POST /oauth_token.do` (client credentials).

use super::*;

/// Authentication (Basic or an OAuth bearer token) and the hourly rate limit on
/// every API request.
pub(super) async fn guard(State(sim): State<Shared>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if path.starts_with("/_sim") || path == "/oauth_token.do" {
        return next.run(request).await;
    }
    let user = {
        let mut state = sim.lock();
        let headers = request.headers();
        let basic = simkit::basic_credentials(headers).filter(|(u, p)| {
            state
                .credentials
                .as_ref()
                .is_some_and(|(cu, cp)| cu == u && cp == p)
        });
        let bearer = bearer_token(headers).and_then(|t| {
            let now = Instant::now();
            state.tokens.retain(|_, (_, expiry)| *expiry > now);
            state.tokens.get(&t).map(|(user, _)| user.clone())
        });
        match basic.map(|(u, _)| u).or(bearer) {
            Some(user) => user,
            None => {
                let mut response = SnError::new(
                    StatusCode::UNAUTHORIZED,
                    UNAUTHENTICATED.0,
                    Some(UNAUTHENTICATED.1.to_string()),
                )
                .into_response();
                response.headers_mut().insert(
                    "www-authenticate",
                    HeaderValue::from_static("BASIC realm=\"Service-now\""),
                );
                return response;
            }
        }
    };
    let limit = {
        let mut state = sim.lock();
        match state.rate_limit {
            None => None,
            Some(limit) => {
                let now = Utc::now().timestamp();
                let window = state
                    .rate_windows
                    .entry(user.clone())
                    .or_insert(RateWindow {
                        start: now,
                        count: 0,
                    });
                if now >= window.start + 3600 {
                    *window = RateWindow {
                        start: now,
                        count: 0,
                    };
                }
                let reset = window.start + 3600;
                if window.count >= limit {
                    let mut response = SnError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "Rate limit exceeded",
                        Some(format!(
                            "Rate limit of {limit} requests per hour for Table API exceeded"
                        )),
                    )
                    .into_response();
                    rate_headers(response.headers_mut(), limit, reset);
                    let wait = (reset - now).max(1).to_string();
                    if let Ok(v) = HeaderValue::from_str(&wait) {
                        response.headers_mut().insert("retry-after", v);
                    }
                    return response;
                }
                window.count += 1;
                Some((limit, reset))
            }
        }
    };
    request.extensions_mut().insert(Caller(user));
    let mut response = next.run(request).await;
    if let Some((limit, reset)) = limit {
        rate_headers(response.headers_mut(), limit, reset);
    }
    response
}

pub(super) fn rate_headers(headers: &mut HeaderMap, limit: u32, reset: i64) {
    for (name, value) in [
        ("x-ratelimit-limit", limit.to_string()),
        ("x-ratelimit-reset", reset.to_string()),
        (
            "x-ratelimit-rule",
            "d3b1a2c4e5f60718293a4b5c6d7e8f90".to_string(),
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

pub(super) fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// `POST /oauth_token.do` with `grant_type=client_credentials`.
pub(super) async fn oauth_token(
    State(sim): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let refuse = |status: StatusCode, error: &str, description: &str| {
        json_response(
            status,
            json!({ "error": error, "error_description": description }),
        )
    };
    if !form_type {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "form body expected",
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only client_credentials is enabled",
        );
    }
    let mut state = sim.lock();
    let client = state.oauth_clients.iter().find(|c| {
        Some(&c.client_id) == form.get("client_id") && Some(&c.secret) == form.get("client_secret")
    });
    let Some(client) = client.cloned() else {
        return refuse(StatusCode::UNAUTHORIZED, "server_error", "access_denied");
    };
    let token = format!("{}{}", new_sys_id(), new_sys_id());
    let lifetime = state.token_lifetime;
    state
        .tokens
        .insert(token.clone(), (client.user, Instant::now() + lifetime));
    json_response(
        StatusCode::OK,
        json!({
            "access_token": token,
            "scope": "useraccount",
            "token_type": "Bearer",
            "expires_in": lifetime.as_secs().saturating_sub(1),
        }),
    )
}
