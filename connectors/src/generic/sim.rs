//! The generic simulator: a plain REST ticket API on loopback, what an in-house
//! helpdesk might offer and what the `[api]` table of `mappings/generic.toml`
//! describes, so that the shipped example runs as it is.
//!
//! - `POST /api/tickets` opens a ticket (201, `Location`, the ticket);
//!   `GET /api/tickets/{id or key}` reads one (with its version as `ETag`); `PATCH`
//!   changes the fields it names (`null` clears); `PUT` replaces the writable fields
//!   (absent ones are cleared); either refuses a stale `If-Match` with 412;
//!   `GET|POST /api/tickets/{id or key}/comments` lists or adds comments.
//! - `GET /api/tickets?updated_since=&external_id=&q=&limit=&cursor=` lists tickets,
//!   oldest change first (`updated_at`, then `id`), `limit` per page (50 by default,
//!   at most 100), with `{"items": [...], "next": <absolute URL or null>}` and the
//!   same link in a `Link: <…>; rel="next"` header. `external_id` matches exactly;
//!   `q` is a loose, case-insensitive substring search over key, summary,
//!   description and external id.
//! - Tickets: `id` (a number), `key` (`HD-1`), `summary`, `description`, `status`
//!   (`open`, `in_progress`, `resolved`, `closed`), `priority` (`critical`, `high`,
//!   `medium`, `low`), `resolution`, `assignee`, `external_id` (255 characters at
//!   most), `labels`, `created_at`, `updated_at` (RFC 3339, milliseconds, UTC),
//!   `version` (1 on create, one more with every change), `web_url`, `comments`.
//!   A comment or any change moves `updated_at` on and counts in `version`.
//! - HTTP Basic or a bearer token, whichever is configured; nothing else gets in.
//! - Errors are `{"error": "…"}`: 400 malformed request, 401, 404, 405, 415 body not
//!   JSON, 422 a value the API does not take (an unknown status, field or priority).
//!
//! Tests and the demo act as the helpdesk's agents through the admin API on
//! [`GenericSim`] and under `/_sim/` (no auth).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

use crate::simkit::{self, Caller, json_response};

pub mod freshservice;
pub mod zendesk;

/// The statuses a ticket can have.
pub const STATUSES: &[&str] = &["open", "in_progress", "resolved", "closed"];
/// The priorities a ticket can have (or none).
pub const PRIORITIES: &[&str] = &["critical", "high", "medium", "low"];
/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest `limit` accepted.
pub const MAX_LIMIT: usize = 100;
/// The longest `external_id` accepted.
pub const MAX_EXTERNAL_ID: usize = 255;
/// Keys are `HD-<number>`.
pub const KEY_PREFIX: &str = "HD-";

/// Fields a client may write.
const WRITABLE: &[&str] = &[
    "summary",
    "description",
    "status",
    "priority",
    "resolution",
    "assignee",
    "external_id",
    "labels",
];
/// Fields only the server sets.
const READ_ONLY: &[&str] = &[
    "id",
    "key",
    "created_at",
    "updated_at",
    "version",
    "web_url",
    "comments",
];
const QUERY_PARAMS: &[&str] = &["updated_since", "external_id", "q", "limit", "cursor"];

/// A comment on a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimComment {
    pub id: u64,
    pub author: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// A ticket as the simulator stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTicket {
    pub id: u64,
    pub key: String,
    pub summary: String,
    pub description: Option<String>,
    pub status: String,
    pub priority: Option<String>,
    pub resolution: Option<String>,
    pub assignee: Option<String>,
    pub external_id: Option<String>,
    pub labels: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The ticket's revision: 1 on create, one more with every change.
    pub version: u64,
    pub comments: Vec<SimComment>,
}

/// How API callers must sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimAuth {
    Basic { username: String, password: String },
    Bearer { token: String },
}

/// The author name of comments made with a bearer token.
pub const BEARER_AUTHOR: &str = "api-client";

/// The simulator's model (what [`GenericSim`] locks); opaque outside this module.
pub struct SimState {
    base_url: String,
    tickets: Vec<SimTicket>,
    next_id: u64,
    next_comment_id: u64,
    auth: Option<SimAuth>,
}

impl simkit::VendorState for SimState {
    const NAME: &'static str = "GenericSim";
}

/// A running generic ticket system simulator.
pub type GenericSim = simkit::Sim<SimState>;

/// What the handlers share: the state and the kit.
type Shared = Arc<simkit::Shared<SimState>>;

impl SimState {
    fn find(&self, id_or_key: &str) -> Option<usize> {
        self.tickets
            .iter()
            .position(|t| t.key.eq_ignore_ascii_case(id_or_key) || t.id.to_string() == id_or_key)
    }

    fn add_comment(&mut self, i: usize, author: &str, body: &str) -> SimComment {
        let ticket = &mut self.tickets[i];
        let created_at = stamp(Some(ticket.updated_at));
        let comment = SimComment {
            id: self.next_comment_id,
            author: author.to_string(),
            body: body.to_string(),
            created_at,
        };
        self.next_comment_id += 1;
        ticket.comments.push(comment.clone());
        ticket.updated_at = created_at;
        ticket.version += 1;
        comment
    }
}

/// Now, to the millisecond (what the API shows), and later than `after`.
fn stamp(after: Option<DateTime<Utc>>) -> DateTime<Utc> {
    let now = simkit::now().trunc_subsecs(3);
    match after {
        Some(t) if now <= t => t + chrono::Duration::milliseconds(1),
        _ => now,
    }
}

fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn comment_json(c: &SimComment) -> Value {
    json!({
        "id": c.id,
        "author": c.author,
        "body": c.body,
        "created_at": format_time(c.created_at),
    })
}

fn ticket_json(base_url: &str, t: &SimTicket) -> Value {
    json!({
        "id": t.id,
        "key": t.key,
        "summary": t.summary,
        "description": t.description,
        "status": t.status,
        "priority": t.priority,
        "resolution": t.resolution,
        "assignee": t.assignee,
        "external_id": t.external_id,
        "labels": t.labels,
        "created_at": format_time(t.created_at),
        "updated_at": format_time(t.updated_at),
        "version": t.version,
        "web_url": format!("{base_url}/tickets/{}", t.key),
        "comments": t.comments.iter().map(comment_json).collect::<Vec<_>>(),
    })
}

// ---------------------------------------------------------------------------------
// Errors

/// An error answer: `{"error": message}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    fn no_ticket(id_or_key: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("ticket {id_or_key} not found"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

type Reply = Result<Response, ApiError>;

/// The body as a JSON object (415 when it is not sent as JSON, 400 when it is not an object).
fn parse_object(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON (Content-Type: application/json)",
        ));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad("the body must be a JSON object")),
        Err(e) => Err(ApiError::bad(format!("the body is not valid JSON: {e}"))),
    }
}

// ---------------------------------------------------------------------------------
// Validation of written fields

fn optional_text(name: &str, v: &Value) -> Result<Option<String>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(ApiError::invalid(format!(
            "`{name}` must be a string or null"
        ))),
    }
}

fn one_of(name: &str, v: &str, values: &[&str]) -> Result<String, ApiError> {
    if values.contains(&v) {
        return Ok(v.to_string());
    }
    let (init, last) = values.split_at(values.len() - 1);
    Err(ApiError::invalid(format!(
        "unknown {name} {v:?}; use {} or {}",
        init.join(", "),
        last[0]
    )))
}

/// Applies a write to a ticket: `replace` (PUT) clears the writable fields the body
/// leaves out and ignores read-only ones; otherwise (POST, PATCH) only the named
/// fields change and naming a read-only one is an error.
fn apply_fields(
    ticket: &mut SimTicket,
    body: &Map<String, Value>,
    replace: bool,
) -> Result<(), ApiError> {
    for name in body.keys() {
        if READ_ONLY.contains(&name.as_str()) {
            if !replace {
                return Err(ApiError::invalid(format!(
                    "`{name}` is read-only: the server sets it"
                )));
            }
        } else if !WRITABLE.contains(&name.as_str()) {
            return Err(ApiError::invalid(format!(
                "unknown field `{name}`; tickets have: {}",
                WRITABLE.join(", ")
            )));
        }
    }
    if replace {
        for required in ["summary", "status"] {
            if !body.contains_key(required) {
                return Err(ApiError::invalid(format!(
                    "`{required}` is required when a ticket is replaced"
                )));
            }
        }
    }
    for name in WRITABLE {
        let value = match body.get(*name) {
            Some(v) => v,
            None if replace => &Value::Null,
            None => continue,
        };
        match *name {
            "summary" => match value.as_str().map(str::trim) {
                Some(s) if !s.is_empty() => ticket.summary = s.to_string(),
                _ => {
                    return Err(ApiError::invalid("`summary` must be a non-empty string"));
                }
            },
            "status" => match value.as_str() {
                Some(s) => ticket.status = one_of("status", s, STATUSES)?,
                None => return Err(ApiError::invalid("`status` must be a string")),
            },
            "priority" => {
                ticket.priority = match optional_text("priority", value)? {
                    Some(p) => Some(one_of("priority", &p, PRIORITIES)?),
                    None => None,
                }
            }
            "description" => ticket.description = optional_text(name, value)?,
            "resolution" => ticket.resolution = optional_text(name, value)?,
            "assignee" => ticket.assignee = optional_text(name, value)?,
            "external_id" => {
                let id = optional_text(name, value)?;
                if id
                    .as_ref()
                    .is_some_and(|id| id.chars().count() > MAX_EXTERNAL_ID)
                {
                    return Err(ApiError::invalid(format!(
                        "`external_id` is longer than {MAX_EXTERNAL_ID} characters"
                    )));
                }
                ticket.external_id = id;
            }
            "labels" => {
                let labels = match value {
                    Value::Null => Vec::new(),
                    Value::Array(items) => items
                        .iter()
                        .map(|l| match l.as_str() {
                            Some(s) if !s.is_empty() && !s.chars().any(char::is_whitespace) => {
                                Ok(s.to_string())
                            }
                            _ => Err(ApiError::invalid(
                                "`labels` must be a list of non-empty strings without spaces",
                            )),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    _ => {
                        return Err(ApiError::invalid("`labels` must be a list of strings"));
                    }
                };
                ticket.labels = labels;
            }
            _ => unreachable!("every writable field is handled"),
        }
    }
    Ok(())
}

/// The fields an agent may change, checked as the API checks them.
fn check_agent_edit(ticket: &SimTicket) -> Result<(), String> {
    if ticket.summary.trim().is_empty() {
        return Err("a ticket needs a summary".into());
    }
    one_of("status", &ticket.status, STATUSES).map_err(|e| e.message)?;
    if let Some(p) = &ticket.priority {
        one_of("priority", p, PRIORITIES).map_err(|e| e.message)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// The server

impl GenericSim {
    /// Serves the simulator on `listener` (plain HTTP). It starts with no tickets
    /// and no credentials: until [`GenericSim::set_auth`] is called every API
    /// request is refused with 401.
    pub async fn start(listener: TcpListener) -> GenericSim {
        let sim = simkit::Shared::new(
            SimState {
                base_url: simkit::plain_base_url(&listener),
                tickets: Vec::new(),
                next_id: 1,
                next_comment_id: 1,
                auth: None,
            },
            (),
        );
        let api = simkit::Shared::router()
            .route("/api/tickets", get(list_tickets).post(create_ticket))
            .route(
                "/api/tickets/{ticket}",
                get(get_ticket)
                    .patch(patch_ticket)
                    .put(put_ticket)
                    .fallback(method_not_allowed),
            )
            .route(
                "/api/tickets/{ticket}/comments",
                get(list_comments)
                    .post(add_comment)
                    .fallback(method_not_allowed),
            )
            .route("/_sim/tickets", get(admin_tickets))
            .fallback(no_route)
            .layer(middleware::from_fn_with_state(sim.clone(), guard));
        GenericSim::serve(listener, sim, api, |router| router).await
    }

    /// The one way API callers may sign in.
    pub fn set_auth(&self, auth: SimAuth) {
        self.lock().auth = Some(auth);
    }

    /// Accept HTTP Basic with this username and password (only).
    pub fn set_basic_auth(&self, username: &str, password: &str) {
        self.set_auth(SimAuth::Basic {
            username: username.into(),
            password: password.into(),
        });
    }

    /// Accept this bearer token (only).
    pub fn set_bearer_token(&self, token: &str) {
        self.set_auth(SimAuth::Bearer {
            token: token.into(),
        });
    }

    /// Every ticket, oldest first.
    pub fn tickets(&self) -> Vec<SimTicket> {
        self.lock().tickets.clone()
    }

    /// The ticket with this key (or id).
    pub fn ticket(&self, key: &str) -> Option<SimTicket> {
        let state = self.lock();
        state.find(key).map(|i| state.tickets[i].clone())
    }

    /// The ticket as `GET /api/tickets/{key}` shows it.
    pub fn ticket_json(&self, key: &str) -> Option<Value> {
        let state = self.lock();
        state
            .find(key)
            .map(|i| ticket_json(&state.base_url, &state.tickets[i]))
    }

    /// Opens a ticket as an agent would (no external id: not the bridge's).
    pub fn create_as_agent(&self, summary: &str) -> SimTicket {
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        let now = stamp(None);
        let ticket = SimTicket {
            id,
            key: format!("{KEY_PREFIX}{id}"),
            summary: summary.to_string(),
            description: None,
            status: "open".into(),
            priority: None,
            resolution: None,
            assignee: None,
            external_id: None,
            labels: Vec::new(),
            created_at: now,
            updated_at: now,
            version: 1,
            comments: Vec::new(),
        };
        state.tickets.push(ticket.clone());
        ticket
    }

    /// Edits a ticket as an agent would in the UI: `edit` changes any field; the
    /// result is checked like an API write (known status and priority, a summary)
    /// and `updated_at` moves on. Returns the ticket as it is afterwards.
    pub fn update_as_agent(
        &self,
        key: &str,
        edit: impl FnOnce(&mut SimTicket),
    ) -> Result<SimTicket, String> {
        let mut state = self.lock();
        let i = state
            .find(key)
            .ok_or_else(|| format!("ticket {key} not found"))?;
        let mut ticket = state.tickets[i].clone();
        edit(&mut ticket);
        check_agent_edit(&ticket)?;
        ticket.updated_at = stamp(Some(state.tickets[i].updated_at));
        ticket.version = state.tickets[i].version + 1;
        state.tickets[i] = ticket.clone();
        Ok(ticket)
    }

    /// Test hook: a closure that assigns the ticket to an agent, for a fault's hook
    /// to run between the bridge's read and its write.
    pub fn agent_edit_hook(&self, key: &str) -> impl Fn() + Send + Sync + 'static {
        let shared = self.shared().clone();
        let key = key.to_string();
        move || {
            let mut state = shared.lock();
            if let Some(i) = state.find(&key) {
                let t = &mut state.tickets[i];
                t.assignee = Some("li.wei@contoso.example".into());
                t.updated_at = stamp(Some(t.updated_at));
                t.version += 1;
            }
        }
    }

    /// Resolves a ticket with a resolution, as an agent would.
    pub fn resolve_as_agent(&self, key: &str, resolution: &str) -> Result<SimTicket, String> {
        self.update_as_agent(key, |t| {
            t.status = "resolved".into();
            t.resolution = Some(resolution.to_string());
        })
    }

    /// Adds a comment by `author`, as an agent would.
    pub fn comment_as_agent(
        &self,
        key: &str,
        author: &str,
        text: &str,
    ) -> Result<SimComment, String> {
        let mut state = self.lock();
        let i = state
            .find(key)
            .ok_or_else(|| format!("ticket {key} not found"))?;
        Ok(state.add_comment(i, author, text))
    }

    /// Test hook: pretends the ticket last changed at `updated_at` (and was created
    /// no later).
    pub fn backdate(&self, key: &str, updated_at: DateTime<Utc>) -> Result<(), String> {
        let mut state = self.lock();
        let i = state
            .find(key)
            .ok_or_else(|| format!("ticket {key} not found"))?;
        let ticket = &mut state.tickets[i];
        ticket.updated_at = updated_at.trunc_subsecs(3);
        if ticket.created_at > ticket.updated_at {
            ticket.created_at = ticket.updated_at;
        }
        Ok(())
    }
}

/// Signs every API request in with the configured credentials.
async fn guard(State(sim): State<Shared>, mut request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/_sim") {
        return next.run(request).await;
    }
    let auth = sim.lock().auth.clone();
    let header = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (scheme, credentials) = header.split_once(' ').unwrap_or((header, ""));
    let caller = match &auth {
        Some(SimAuth::Basic { username, password }) if scheme.eq_ignore_ascii_case("basic") => {
            STANDARD
                .decode(credentials.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|d| {
                    let (u, p) = d.split_once(':')?;
                    (u == username && p == password).then(|| u.to_string())
                })
        }
        Some(SimAuth::Bearer { token }) if scheme.eq_ignore_ascii_case("bearer") => {
            (credentials.trim() == token).then(|| BEARER_AUTHOR.to_string())
        }
        _ => None,
    };
    let Some(caller) = caller else {
        let message = if header.is_empty() {
            "authentication required"
        } else {
            "invalid credentials"
        };
        let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
        let challenge = match auth {
            Some(SimAuth::Bearer { .. }) => "Bearer realm=\"helpdesk\"",
            _ => "Basic realm=\"helpdesk\"",
        };
        response
            .headers_mut()
            .insert("www-authenticate", HeaderValue::from_static(challenge));
        return response;
    };
    request.extensions_mut().insert(Caller(caller));
    next.run(request).await
}

async fn no_route(request: Request) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
    .into_response()
}

async fn method_not_allowed(request: Request) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
    .into_response()
}

async fn create_ticket(State(sim): State<Shared>, headers: HeaderMap, body: Bytes) -> Reply {
    let fields = parse_object(&headers, &body)?;
    if !fields.contains_key("summary") {
        return Err(ApiError::invalid("`summary` is required"));
    }
    let mut state = sim.lock();
    let now = stamp(None);
    let mut ticket = SimTicket {
        id: state.next_id,
        key: format!("{KEY_PREFIX}{}", state.next_id),
        summary: String::new(),
        description: None,
        status: "open".into(),
        priority: None,
        resolution: None,
        assignee: None,
        external_id: None,
        labels: Vec::new(),
        created_at: now,
        updated_at: now,
        version: 1,
        comments: Vec::new(),
    };
    apply_fields(&mut ticket, &fields, false)?;
    state.next_id += 1;
    let json = ticket_json(&state.base_url, &ticket);
    let location = format!("/api/tickets/{}", ticket.key);
    state.tickets.push(ticket);
    let mut response = json_response(StatusCode::CREATED, json);
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert("location", v);
    }
    Ok(response)
}

async fn get_ticket(State(sim): State<Shared>, Path(id_or_key): Path<String>) -> Reply {
    let state = sim.lock();
    let i = state
        .find(&id_or_key)
        .ok_or_else(|| ApiError::no_ticket(&id_or_key))?;
    let mut response = json_response(
        StatusCode::OK,
        ticket_json(&state.base_url, &state.tickets[i]),
    );
    if let Ok(v) = HeaderValue::from_str(&etag(&state.tickets[i])) {
        response.headers_mut().insert("etag", v);
    }
    Ok(response)
}

/// The ticket's entity tag: its version, quoted.
fn etag(ticket: &SimTicket) -> String {
    format!("\"{}\"", ticket.version)
}

fn write_ticket(
    sim: &Shared,
    id_or_key: &str,
    headers: &HeaderMap,
    fields: &Map<String, Value>,
    replace: bool,
) -> Reply {
    let mut state = sim.lock();
    let i = state
        .find(id_or_key)
        .ok_or_else(|| ApiError::no_ticket(id_or_key))?;
    if let Some(wanted) = headers.get("if-match").and_then(|v| v.to_str().ok())
        && wanted != etag(&state.tickets[i])
    {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "the ticket changed since it was read (If-Match)",
        ));
    }
    let mut ticket = state.tickets[i].clone();
    apply_fields(&mut ticket, fields, replace)?;
    if ticket != state.tickets[i] {
        ticket.updated_at = stamp(Some(ticket.updated_at));
        ticket.version += 1;
        state.tickets[i] = ticket;
    }
    Ok(json_response(
        StatusCode::OK,
        ticket_json(&state.base_url, &state.tickets[i]),
    ))
}

async fn patch_ticket(
    State(sim): State<Shared>,
    Path(id_or_key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let fields = parse_object(&headers, &body)?;
    write_ticket(&sim, &id_or_key, &headers, &fields, false)
}

async fn put_ticket(
    State(sim): State<Shared>,
    Path(id_or_key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let fields = parse_object(&headers, &body)?;
    write_ticket(&sim, &id_or_key, &headers, &fields, true)
}

async fn list_comments(State(sim): State<Shared>, Path(id_or_key): Path<String>) -> Reply {
    let state = sim.lock();
    let i = state
        .find(&id_or_key)
        .ok_or_else(|| ApiError::no_ticket(&id_or_key))?;
    let items: Vec<Value> = state.tickets[i].comments.iter().map(comment_json).collect();
    Ok(json_response(StatusCode::OK, json!({ "items": items })))
}

async fn add_comment(
    State(sim): State<Shared>,
    Path(id_or_key): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let fields = parse_object(&headers, &body)?;
    for name in fields.keys() {
        match name.as_str() {
            "body" => {}
            "id" | "author" | "created_at" => {
                return Err(ApiError::invalid(format!(
                    "`{name}` is read-only: the server sets it"
                )));
            }
            _ => {
                return Err(ApiError::invalid(format!(
                    "unknown field `{name}`; a comment has: body"
                )));
            }
        }
    }
    let text = match fields.get("body").and_then(Value::as_str) {
        Some(t) if !t.trim().is_empty() => t.to_string(),
        _ => return Err(ApiError::invalid("`body` must be a non-empty string")),
    };
    let author = caller.0;
    let mut state = sim.lock();
    let i = state
        .find(&id_or_key)
        .ok_or_else(|| ApiError::no_ticket(&id_or_key))?;
    let comment = state.add_comment(i, &author, &text);
    Ok(json_response(StatusCode::CREATED, comment_json(&comment)))
}

/// A position in the listing order: after the ticket changed at `updated` with `id`.
fn encode_cursor(updated: DateTime<Utc>, id: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{id}", updated.timestamp_millis()))
}

fn decode_cursor(cursor: &str) -> Option<(DateTime<Utc>, u64)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (millis, id) = raw.split_once(':')?;
    Some((
        DateTime::from_timestamp_millis(millis.parse().ok()?)?,
        id.parse().ok()?,
    ))
}

async fn list_tickets(State(sim): State<Shared>, RawQuery(query): RawQuery) -> Reply {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let mut params: Vec<(&str, &str)> = Vec::new();
    for (name, value) in &pairs {
        if !QUERY_PARAMS.contains(&name.as_str()) {
            return Err(ApiError::bad(format!(
                "unknown query parameter `{name}`; use updated_since, external_id, q, limit or cursor"
            )));
        }
        if params.iter().any(|(n, _)| n == name) {
            return Err(ApiError::bad(format!(
                "query parameter `{name}` is given twice"
            )));
        }
        params.push((name, value));
    }
    let param = |name: &str| params.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let since = match param("updated_since") {
        Some(s) => Some(
            DateTime::parse_from_rfc3339(s)
                .map_err(|_| {
                    ApiError::bad(format!(
                        "`updated_since` must be an RFC 3339 time such as 2026-11-01T08:00:00Z, not {s:?}"
                    ))
                })?
                .with_timezone(&Utc),
        ),
        None => None,
    };
    let limit = match param("limit") {
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad(format!(
                    "`limit` must be a number from 1 to {MAX_LIMIT}"
                )));
            }
        },
        None => DEFAULT_LIMIT,
    };
    let after = match param("cursor") {
        Some(c) => Some(
            decode_cursor(c).ok_or_else(|| ApiError::bad("`cursor` is not one this API made"))?,
        ),
        None => None,
    };
    let external_id = param("external_id");
    let q = param("q").map(str::to_lowercase);

    let state = sim.lock();
    let mut matching: Vec<&SimTicket> = state
        .tickets
        .iter()
        .filter(|t| since.is_none_or(|s| t.updated_at >= s))
        .filter(|t| external_id.is_none_or(|e| t.external_id.as_deref() == Some(e)))
        .filter(|t| {
            q.as_ref().is_none_or(|q| {
                [
                    Some(t.key.as_str()),
                    Some(t.summary.as_str()),
                    t.description.as_deref(),
                    t.external_id.as_deref(),
                ]
                .into_iter()
                .flatten()
                .any(|text| text.to_lowercase().contains(q.as_str()))
            })
        })
        .filter(|t| after.is_none_or(|a| (t.updated_at, t.id) > a))
        .collect();
    matching.sort_by_key(|t| (t.updated_at, t.id));
    let more = matching.len() > limit;
    matching.truncate(limit);
    let items: Vec<Value> = matching
        .iter()
        .map(|t| ticket_json(&state.base_url, t))
        .collect();
    let next = match (more, matching.last()) {
        (true, Some(last)) => {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in &params {
                if *name != "cursor" {
                    query.append_pair(name, value);
                }
            }
            query.append_pair("cursor", &encode_cursor(last.updated_at, last.id));
            Some(format!("{}/api/tickets?{}", state.base_url, query.finish()))
        }
        _ => None,
    };
    let mut response = json_response(StatusCode::OK, json!({ "items": items, "next": next }));
    if let Some(next) = &next
        && let Ok(v) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\""))
    {
        response.headers_mut().insert("link", v);
    }
    Ok(response)
}

// ---------------------------------------------------------------------------------
// Admin HTTP

async fn admin_tickets(State(sim): State<Shared>) -> Response {
    let state = sim.lock();
    let tickets: Vec<Value> = state
        .tickets
        .iter()
        .map(|t| ticket_json(&state.base_url, t))
        .collect();
    json_response(StatusCode::OK, Value::Array(tickets))
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::*;
    use crate::simkit::bind_loopback;

    const TOKEN: &str = "helpdesk-token";

    async fn start() -> GenericSim {
        let sim = GenericSim::start(bind_loopback(0).await.unwrap()).await;
        sim.set_bearer_token(TOKEN);
        sim
    }

    struct Answer {
        status: u16,
        headers: reqwest::header::HeaderMap,
        body: Value,
    }

    /// `url` is a path on the simulator or an absolute URL (a next link).
    async fn call(sim: &GenericSim, method: Method, url: &str, body: Option<Value>) -> Answer {
        let client = crate::http::build_client(&crate::http::HttpSettings::default()).unwrap();
        let url = if url.starts_with("http") {
            url.to_string()
        } else {
            format!("{}{url}", sim.base_url())
        };
        let mut request = client.request(method, url).bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    fn keys(body: &Value) -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["key"].as_str().unwrap().to_string())
            .collect()
    }

    #[tokio::test]
    async fn lists_oldest_change_first_in_pages_of_at_most_100() {
        let sim = start().await;
        for n in 0..3 {
            sim.create_as_agent(&format!("s{n}"));
        }
        // The first ticket changed last, so it lists last.
        let t0 = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 1, 8, 0, 0).unwrap();
        for (key, seconds) in [("HD-2", 0), ("HD-3", 1), ("HD-1", 2)] {
            sim.backdate(key, t0 + chrono::Duration::seconds(seconds))
                .unwrap();
        }
        let a = call(&sim, Method::GET, "/api/tickets?limit=2", None).await;
        assert_eq!(a.status, 200);
        assert_eq!(keys(&a.body), vec!["HD-2", "HD-3"]);
        let next = a.body["next"].as_str().unwrap().to_string();
        assert!(next.starts_with(&format!("{}/api/tickets?limit=2&cursor=", sim.base_url())));
        assert_eq!(
            a.headers["link"].to_str().unwrap(),
            format!("<{next}>; rel=\"next\"")
        );
        let a = call(&sim, Method::GET, &next, None).await;
        assert_eq!(keys(&a.body), vec!["HD-1"]);
        assert_eq!(a.body["next"], Value::Null);
        assert!(a.headers.get("link").is_none());
        // `updated_since` is RFC 3339 and includes its own instant.
        let since = sim.ticket("HD-1").unwrap().updated_at;
        let a = call(
            &sim,
            Method::GET,
            &format!(
                "/api/tickets?updated_since={}",
                url::form_urlencoded::byte_serialize(format_time(since).as_bytes())
                    .collect::<String>()
            ),
            None,
        )
        .await;
        assert_eq!(keys(&a.body), vec!["HD-1"]);
        // `q` is loose: a case-insensitive substring of key, summary, description.
        let a = call(&sim, Method::GET, "/api/tickets?q=S1", None).await;
        assert_eq!(keys(&a.body), vec!["HD-2"]);
        for query in [
            "limit=101",
            "limit=0",
            "page=2",
            "limit=1&limit=2",
            "cursor=nonsense",
            "updated_since=yesterday",
        ] {
            let a = call(&sim, Method::GET, &format!("/api/tickets?{query}"), None).await;
            assert_eq!(a.status, 400, "{query}");
            assert!(a.body["error"].is_string(), "{query}: {}", a.body);
        }
        // 50 by default.
        for n in 0..60 {
            sim.create_as_agent(&format!("more {n}"));
        }
        let a = call(&sim, Method::GET, "/api/tickets", None).await;
        assert_eq!(keys(&a.body).len(), DEFAULT_LIMIT);
    }

    #[tokio::test]
    async fn errors_have_one_shape_and_their_own_status() {
        let sim = start().await;
        let client = crate::http::build_client(&crate::http::HttpSettings::default()).unwrap();
        let response = client
            .get(format!("{}/api/tickets", sim.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"helpdesk\""
        );
        let response = client
            .post(format!("{}/api/tickets", sim.base_url()))
            .bearer_auth(TOKEN)
            .header("content-type", "text/plain")
            .body("summary=x")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 415);
        let long = "x".repeat(MAX_EXTERNAL_ID + 1);
        for (method, path, body, status) in [
            (Method::GET, "/api/tickets/HD-9", None, 404),
            (Method::DELETE, "/api/tickets/HD-9", None, 405),
            (
                Method::POST,
                "/api/tickets",
                Some(json!({"status": "open"})),
                422,
            ),
            (
                Method::POST,
                "/api/tickets",
                Some(json!({"summary": "s", "status": "done"})),
                422,
            ),
            (
                Method::POST,
                "/api/tickets",
                Some(json!({"summary": "s", "colour": "red"})),
                422,
            ),
            (
                Method::POST,
                "/api/tickets",
                Some(json!({"summary": "s", "external_id": long})),
                422,
            ),
            (Method::POST, "/api/tickets", Some(json!(["s"])), 400),
        ] {
            let a = call(&sim, method.clone(), path, body.clone()).await;
            assert_eq!(a.status, status, "{method} {path} {body:?}: {}", a.body);
            assert!(a.body["error"].is_string(), "{method} {path}: {}", a.body);
        }
        assert!(sim.tickets().is_empty());
    }

    #[tokio::test]
    async fn every_change_moves_updated_at_on_and_counts_in_version() {
        let sim = start().await;
        let a = call(
            &sim,
            Method::POST,
            "/api/tickets",
            Some(json!({"summary": "s", "priority": "high"})),
        )
        .await;
        assert_eq!(a.status, 201, "{}", a.body);
        assert_eq!(a.headers["location"], "/api/tickets/HD-1");
        let mut last = a.body["updated_at"].as_str().unwrap().to_string();
        assert_eq!(last.len(), "2026-11-01T08:00:00.000Z".len(), "{last}");
        let patch = |body: Value| call(&sim, Method::PATCH, "/api/tickets/HD-1", Some(body));
        // A change, a comment, a PUT that clears what it leaves out: each moves
        // updated_at on; a PATCH that changes nothing does not.
        for step in 0..3 {
            let a = match step {
                0 => patch(json!({"status": "in_progress"})).await,
                1 => {
                    call(
                        &sim,
                        Method::POST,
                        "/api/tickets/HD-1/comments",
                        Some(json!({"body": "looking"})),
                    )
                    .await;
                    call(&sim, Method::GET, "/api/tickets/HD-1", None).await
                }
                _ => {
                    call(
                        &sim,
                        Method::PUT,
                        "/api/tickets/HD-1",
                        Some(json!({"summary": "s", "status": "in_progress"})),
                    )
                    .await
                }
            };
            let now = a.body["updated_at"].as_str().unwrap().to_string();
            assert!(now > last, "step {step}: {now} after {last}");
            last = now;
            // `version` counts every change: 1 on create.
            assert_eq!(a.body["version"], step + 2, "step {step}");
        }
        assert_eq!(sim.ticket("HD-1").unwrap().priority, None, "PUT cleared it");
        let a = patch(json!({"status": "in_progress"})).await;
        assert_eq!(a.body["updated_at"], last.as_str());
        assert_eq!(a.body["version"], 4);
        // The server sets it.
        let a = patch(json!({"version": 9})).await;
        assert_eq!(a.status, 422, "{}", a.body);
    }
}
