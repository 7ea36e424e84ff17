//! A strict simulator of Freshservice's v2 tickets API (API-HELPDESKS.md §10), the
//! shape `mappings/freshservice.toml` describes:
//!
//! - `POST /api/v2/tickets` takes a flat ticket object and answers 201
//!   `{"ticket": {...}}`; `subject`, `description`, `status`, `priority` and a
//!   requester (`email` or `requester_id`) are required.
//! - `GET /api/v2/tickets/{id}[?include=conversations]` answers `{"ticket": {...}}`.
//! - `PUT /api/v2/tickets/{id}` changes the fields it names (`custom_fields`
//!   member by member) and answers `{"ticket": {...}}`.
//! - `GET /api/v2/tickets?updated_since=&per_page=&page=&order_type=` lists
//!   `{"tickets": [...]}` by creation time (newest first unless `order_type=asc`),
//!   30 a page by default and 100 at most, the next page in a `Link` header.
//! - `GET /api/v2/tickets/filter?query="field:'value'"` answers
//!   `{"tickets": [...], "total": n}`.
//! - `POST /api/v2/tickets/{id}/notes` takes `{"body", "private"}` and answers 201
//!   `{"conversation": {...}}`.
//! - `status` is an integer (2 Open, 3 Pending, 4 Resolved, 5 Closed), `priority`
//!   an integer (1 Low … 4 Urgent): a string is refused, as are read-only fields
//!   (`id`, `created_at`, `updated_at`, `conversations`, …) and unknown ones, each
//!   with `400 {"description": "Validation failed", "errors": [{"field",
//!   "message", "code"}]}`. Times are whole seconds, UTC.
//! - HTTP Basic with the API key as the user name and `X` as the password.
//!
//! Every write's body is kept ([`FreshserviceSim::writes`]) so tests can see what
//! was sent.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

use crate::simkit::{self, basic_credentials, json_response};

/// The statuses: Open, Pending, Resolved, Closed.
pub const STATUSES: &[i64] = &[2, 3, 4, 5];
/// The priorities: Low, Medium, High, Urgent.
pub const PRIORITIES: &[i64] = &[1, 2, 3, 4];
/// The custom fields this helpdesk has, and the choices of its dropdown.
pub const CORRELATION_FIELD: &str = "security_correlation";
pub const VERDICT_FIELD: &str = "security_verdict";
pub const VERDICTS: &[&str] = &[
    "confirmed",
    "expected_activity",
    "false_positive",
    "inaccurate_data",
];
/// The agent id of the API key's owner (the bridge) and of a human agent.
pub const API_AGENT_ID: i64 = 1001;
pub const HUMAN_AGENT_ID: i64 = 2002;

const WRITABLE: &[&str] = &[
    "subject",
    "description",
    "status",
    "priority",
    "email",
    "requester_id",
    "source",
    "tags",
    "custom_fields",
    "responder_id",
    "group_id",
];

/// A note on a ticket (a "conversation").
#[derive(Debug, Clone, PartialEq)]
pub struct FsNote {
    pub id: u64,
    pub body: String,
    pub user_id: i64,
    pub private: bool,
    pub created_at: DateTime<Utc>,
}

/// A ticket as the simulator keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct FsTicket {
    pub id: u64,
    pub subject: String,
    pub description: String,
    pub status: i64,
    pub priority: i64,
    pub source: i64,
    pub requester: String,
    pub responder_id: Option<i64>,
    pub tags: Vec<String>,
    pub custom_fields: Map<String, Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub conversations: Vec<FsNote>,
}

/// One write as it arrived: method, path and body.
#[derive(Debug, Clone, PartialEq)]
pub struct FsWrite {
    pub method: String,
    pub path: String,
    pub body: Value,
}

/// The simulator's model.
pub struct FsState {
    base_url: String,
    tickets: Vec<FsTicket>,
    next_id: u64,
    next_note_id: u64,
    api_key: Option<String>,
    writes: Vec<FsWrite>,
}

impl simkit::VendorState for FsState {
    const NAME: &'static str = "FreshserviceSim";
}

/// A running Freshservice simulator.
pub type FreshserviceSim = simkit::Sim<FsState>;
type Shared = Arc<simkit::Shared<FsState>>;

/// Now, in whole seconds (what the API shows).
fn now() -> DateTime<Utc> {
    simkit::now().trunc_subsecs(0)
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn note_json(n: &FsNote) -> Value {
    json!({
        "id": n.id,
        "body": n.body,
        "body_text": n.body,
        "user_id": n.user_id,
        "private": n.private,
        "incoming": false,
        "created_at": time(n.created_at),
        "updated_at": time(n.created_at),
    })
}

fn ticket_json(t: &FsTicket, conversations: bool) -> Value {
    let mut v = json!({
        "id": t.id,
        "subject": t.subject,
        "description": t.description,
        "description_text": t.description,
        "status": t.status,
        "priority": t.priority,
        "source": t.source,
        "requester_id": 7001,
        "responder_id": t.responder_id,
        "type": "Incident",
        "tags": t.tags,
        "custom_fields": t.custom_fields,
        "created_at": time(t.created_at),
        "updated_at": time(t.updated_at),
    });
    if conversations {
        v["conversations"] = t.conversations.iter().map(note_json).collect();
    }
    v
}

/// A Freshservice error: a status, a description and field-level errors.
#[derive(Debug)]
pub struct FsError {
    status: StatusCode,
    description: String,
    errors: Vec<(String, String, &'static str)>,
}

impl FsError {
    fn invalid(field: &str, message: impl Into<String>, code: &'static str) -> FsError {
        FsError {
            status: StatusCode::BAD_REQUEST,
            description: "Validation failed".into(),
            errors: vec![(field.to_string(), message.into(), code)],
        }
    }

    fn plain(status: StatusCode, description: impl Into<String>) -> FsError {
        FsError {
            status,
            description: description.into(),
            errors: Vec::new(),
        }
    }

    fn not_found() -> FsError {
        FsError::plain(StatusCode::NOT_FOUND, "Record not found")
    }
}

impl IntoResponse for FsError {
    fn into_response(self) -> Response {
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|(f, m, c)| json!({"field": f, "message": m, "code": c}))
            .collect();
        json_response(
            self.status,
            json!({"description": self.description, "errors": errors}),
        )
    }
}

type Reply = Result<Response, FsError>;

fn object(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, FsError> {
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    if !json {
        return Err(FsError::plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type header should have application/json",
        ));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(FsError::plain(
            StatusCode::BAD_REQUEST,
            "Request body has invalid json format",
        )),
    }
}

fn integer(field: &str, v: &Value, allowed: &[i64]) -> Result<i64, FsError> {
    let n = v
        .as_i64()
        .ok_or_else(|| FsError::invalid(field, "It should be a/an Integer", "datatype_mismatch"))?;
    if !allowed.contains(&n) {
        let list: Vec<String> = allowed.iter().map(i64::to_string).collect();
        return Err(FsError::invalid(
            field,
            format!("It should be one of these values: '{}'", list.join(",")),
            "invalid_value",
        ));
    }
    Ok(n)
}

fn text(field: &str, v: &Value) -> Result<String, FsError> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| FsError::invalid(field, "It should be a/an String", "datatype_mismatch"))
}

fn custom_fields(t: &mut FsTicket, v: &Value) -> Result<(), FsError> {
    let Some(map) = v.as_object() else {
        return Err(FsError::invalid(
            "custom_fields",
            "It should be a/an key/value pair",
            "datatype_mismatch",
        ));
    };
    for (name, value) in map {
        match name.as_str() {
            CORRELATION_FIELD if value.is_string() || value.is_null() => {}
            VERDICT_FIELD => match value {
                Value::Null => {}
                Value::String(s) if VERDICTS.contains(&s.as_str()) => {}
                _ => {
                    return Err(FsError::invalid(
                        name,
                        format!("It should be one of these values: '{}'", VERDICTS.join(",")),
                        "invalid_value",
                    ));
                }
            },
            CORRELATION_FIELD => {
                return Err(FsError::invalid(
                    name,
                    "It should be a/an String",
                    "datatype_mismatch",
                ));
            }
            _ => {
                return Err(FsError::invalid(
                    name,
                    "Unexpected/invalid field in request",
                    "invalid_field",
                ));
            }
        }
        t.custom_fields.insert(name.clone(), value.clone());
    }
    Ok(())
}

/// Applies the fields a create or update names; read-only and unknown fields are refused.
fn apply(t: &mut FsTicket, body: &Map<String, Value>) -> Result<(), FsError> {
    for (name, v) in body {
        match name.as_str() {
            "subject" => t.subject = text(name, v)?,
            "description" => t.description = text(name, v)?,
            "status" => t.status = integer(name, v, STATUSES)?,
            "priority" => t.priority = integer(name, v, PRIORITIES)?,
            "source" => t.source = integer(name, v, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10])?,
            "email" => t.requester = text(name, v)?,
            "requester_id" => t.requester = v.to_string(),
            "responder_id" => t.responder_id = v.as_i64(),
            "group_id" => {}
            "tags" => {
                let tags = v.as_array().and_then(|list| {
                    list.iter()
                        .map(|x| x.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                });
                t.tags = tags.ok_or_else(|| {
                    FsError::invalid(name, "It should be a/an Array", "datatype_mismatch")
                })?;
            }
            "custom_fields" => custom_fields(t, v)?,
            _ => {
                return Err(FsError::invalid(
                    name,
                    "Unexpected/invalid field in request",
                    "invalid_field",
                ));
            }
        }
    }
    debug_assert!(body.keys().all(|k| WRITABLE.contains(&k.as_str())));
    Ok(())
}

impl FreshserviceSim {
    /// Serves the simulator on `listener`; until [`FreshserviceSim::set_api_key`]
    /// every request is refused.
    pub async fn start(listener: TcpListener) -> FreshserviceSim {
        let shared = simkit::Shared::new(
            FsState {
                base_url: simkit::plain_base_url(&listener),
                tickets: Vec::new(),
                next_id: 1,
                next_note_id: 1,
                api_key: None,
                writes: Vec::new(),
            },
            (),
        );
        let api = simkit::Shared::router()
            .route("/api/v2/tickets", get(list).post(create))
            .route("/api/v2/tickets/filter", get(filter))
            .route("/api/v2/tickets/{id}", get(read).put(update))
            .route("/api/v2/tickets/{id}/notes", post(add_note))
            .fallback(|r: Request| async move {
                FsError::plain(
                    StatusCode::NOT_FOUND,
                    format!("no route for {} {}", r.method(), r.uri().path()),
                )
            })
            .layer(middleware::from_fn_with_state(shared.clone(), guard));
        FreshserviceSim::serve(listener, shared, api, |r| r).await
    }

    /// Accept HTTP Basic with this API key as the user name (and any password,
    /// `X` by convention).
    pub fn set_api_key(&self, key: &str) {
        self.lock().api_key = Some(key.to_string());
    }

    pub fn tickets(&self) -> Vec<FsTicket> {
        self.lock().tickets.clone()
    }

    pub fn ticket(&self, id: u64) -> Option<FsTicket> {
        self.lock().tickets.iter().find(|t| t.id == id).cloned()
    }

    /// Every write so far, oldest first.
    pub fn writes(&self) -> Vec<FsWrite> {
        self.lock().writes.clone()
    }

    /// Edits a ticket as an agent would in the portal; `updated_at` moves on.
    pub fn update_as_agent(&self, id: u64, edit: impl FnOnce(&mut FsTicket)) -> Result<(), String> {
        let mut state = self.lock();
        let t = state
            .tickets
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or_else(|| format!("ticket {id} not found"))?;
        edit(t);
        if !STATUSES.contains(&t.status) || !PRIORITIES.contains(&t.priority) {
            return Err("status or priority out of range".into());
        }
        // Whole seconds, as Freshservice answers: an edit in the second of the
        // last write shares its time (there is no version to tell them apart).
        t.updated_at = now().max(t.updated_at);
        Ok(())
    }

    /// Resolves a ticket with a verdict, as an agent would.
    pub fn resolve_as_agent(&self, id: u64, verdict: &str) -> Result<(), String> {
        self.update_as_agent(id, |t| {
            t.status = 4;
            t.custom_fields
                .insert(VERDICT_FIELD.into(), Value::String(verdict.into()));
        })
    }
}

async fn guard(State(sim): State<Shared>, request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/_sim") {
        return next.run(request).await;
    }
    let key = sim.lock().api_key.clone();
    let ok = match (key, basic_credentials(request.headers())) {
        (Some(key), Some((user, _))) => user == key,
        _ => false,
    };
    if !ok {
        return FsError::plain(
            StatusCode::UNAUTHORIZED,
            "You have to be logged in to perform this action.",
        )
        .into_response();
    }
    next.run(request).await
}

fn log_write(state: &mut FsState, method: &str, path: String, body: &Map<String, Value>) {
    state.writes.push(FsWrite {
        method: method.into(),
        path,
        body: Value::Object(body.clone()),
    });
}

async fn create(State(sim): State<Shared>, headers: HeaderMap, body: Bytes) -> Reply {
    let body = object(&headers, &body)?;
    let mut state = sim.lock();
    log_write(&mut state, "POST", "/api/v2/tickets".into(), &body);
    for field in ["subject", "description", "status", "priority"] {
        if !body.contains_key(field) {
            return Err(FsError::invalid(
                field,
                "It should be a/an String",
                "missing_field",
            ));
        }
    }
    if !body.contains_key("email") && !body.contains_key("requester_id") {
        return Err(FsError::invalid(
            "requester_id",
            "Please fill at least 1 of requester_id, phone, email fields",
            "missing_field",
        ));
    }
    let at = now();
    let mut t = FsTicket {
        id: state.next_id,
        subject: String::new(),
        description: String::new(),
        status: 2,
        priority: 1,
        source: 2,
        requester: String::new(),
        responder_id: None,
        tags: Vec::new(),
        custom_fields: Map::from_iter([
            (CORRELATION_FIELD.to_string(), Value::Null),
            (VERDICT_FIELD.to_string(), Value::Null),
        ]),
        created_at: at,
        updated_at: at,
        conversations: Vec::new(),
    };
    apply(&mut t, &body)?;
    state.next_id += 1;
    let json = ticket_json(&t, false);
    state.tickets.push(t);
    Ok(json_response(
        StatusCode::CREATED,
        json!({ "ticket": json }),
    ))
}

fn find(state: &FsState, id: &str) -> Result<usize, FsError> {
    state
        .tickets
        .iter()
        .position(|t| t.id.to_string() == id)
        .ok_or_else(FsError::not_found)
}

async fn read(State(sim): State<Shared>, Path(id): Path<String>, RawQuery(q): RawQuery) -> Reply {
    let include = match q.as_deref() {
        None | Some("") => false,
        Some("include=conversations") => true,
        Some(other) => {
            return Err(FsError::invalid(
                "include",
                format!("It should be one of these values: 'conversations' ({other})"),
                "invalid_value",
            ));
        }
    };
    let state = sim.lock();
    let i = find(&state, &id)?;
    Ok(json_response(
        StatusCode::OK,
        json!({ "ticket": ticket_json(&state.tickets[i], include) }),
    ))
}

async fn update(
    State(sim): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let body = object(&headers, &body)?;
    let mut state = sim.lock();
    log_write(&mut state, "PUT", format!("/api/v2/tickets/{id}"), &body);
    let i = find(&state, &id)?;
    let mut t = state.tickets[i].clone();
    apply(&mut t, &body)?;
    if t != state.tickets[i] {
        t.updated_at = now();
        state.tickets[i] = t;
    }
    Ok(json_response(
        StatusCode::OK,
        json!({ "ticket": ticket_json(&state.tickets[i], false) }),
    ))
}

async fn add_note(
    State(sim): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let body = object(&headers, &body)?;
    let mut state = sim.lock();
    log_write(
        &mut state,
        "POST",
        format!("/api/v2/tickets/{id}/notes"),
        &body,
    );
    let i = find(&state, &id)?;
    for name in body.keys() {
        if !matches!(name.as_str(), "body" | "private" | "notify_emails") {
            return Err(FsError::invalid(
                name,
                "Unexpected/invalid field in request",
                "invalid_field",
            ));
        }
    }
    let text = match body.get("body").and_then(Value::as_str) {
        Some(t) if !t.trim().is_empty() => t.to_string(),
        _ => {
            return Err(FsError::invalid(
                "body",
                "It should not be blank",
                "missing_field",
            ));
        }
    };
    let private = match body.get("private") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(FsError::invalid(
                "private",
                "It should be a/an Boolean",
                "datatype_mismatch",
            ));
        }
    };
    let note = FsNote {
        id: state.next_note_id,
        body: text,
        user_id: API_AGENT_ID,
        private,
        created_at: now(),
    };
    state.next_note_id += 1;
    let t = &mut state.tickets[i];
    t.conversations.push(note.clone());
    t.updated_at = note.created_at;
    Ok(json_response(
        StatusCode::CREATED,
        json!({ "conversation": note_json(&note) }),
    ))
}

fn params(q: Option<String>, known: &[&str]) -> Result<Vec<(String, String)>, FsError> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    for (name, _) in &pairs {
        if !known.contains(&name.as_str()) {
            return Err(FsError::invalid(
                name,
                "Unexpected/invalid field in request",
                "invalid_field",
            ));
        }
    }
    Ok(pairs)
}

async fn list(State(sim): State<Shared>, RawQuery(q): RawQuery) -> Reply {
    let pairs = params(q, &["updated_since", "per_page", "page", "order_type"])?;
    let param = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let since = match param("updated_since") {
        None => None,
        Some(s) => Some(
            DateTime::parse_from_rfc3339(s)
                .map_err(|_| {
                    FsError::invalid(
                        "updated_since",
                        "It should be in the 'valid date time' format",
                        "invalid_value",
                    )
                })?
                .with_timezone(&Utc),
        ),
    };
    let number = |n: &str, default: usize, max: usize| match param(n) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|x| (1..=max).contains(x))
            .ok_or_else(|| {
                FsError::invalid(
                    n,
                    format!("It should be a Positive Integer less than or equal to {max}"),
                    "invalid_value",
                )
            }),
    };
    let per_page = number("per_page", 30, 100)?;
    let page = number("page", 1, 10_000)?;
    let asc = match param("order_type") {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => {
            return Err(FsError::invalid(
                "order_type",
                "It should be one of these values: 'asc,desc'",
                "invalid_value",
            ));
        }
    };
    let state = sim.lock();
    let mut matching: Vec<&FsTicket> = state
        .tickets
        .iter()
        .filter(|t| since.is_none_or(|s| t.updated_at >= s))
        .collect();
    matching.sort_by_key(|t| (t.created_at, t.id));
    if !asc {
        matching.reverse();
    }
    let start = (page - 1) * per_page;
    let items: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(per_page)
        .map(|t| ticket_json(t, false))
        .collect();
    let mut response = json_response(StatusCode::OK, json!({ "tickets": items }));
    if matching.len() > start + per_page {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            if k != "page" {
                query.append_pair(k, v);
            }
        }
        query.append_pair("page", &(page + 1).to_string());
        let link = format!(
            "<{}/api/v2/tickets?{}>; rel=\"next\"",
            state.base_url,
            query.finish()
        );
        if let Ok(v) = HeaderValue::from_str(&link) {
            response.headers_mut().insert("link", v);
        }
    }
    Ok(response)
}

/// `query="field:'value'"` or `query="field:number"`, one condition.
async fn filter(State(sim): State<Shared>, RawQuery(q): RawQuery) -> Reply {
    let pairs = params(q, &["query", "page"])?;
    let query = pairs
        .iter()
        .find(|(k, _)| k == "query")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let bad = || {
        FsError::invalid(
            "query",
            "It should be a/an String in double quotes",
            "invalid_value",
        )
    };
    let inner = query
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .ok_or_else(bad)?;
    let (field, value) = inner.split_once(':').ok_or_else(bad)?;
    let wanted = match value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        Some(s) => Value::String(s.to_string()),
        None => Value::from(value.parse::<i64>().map_err(|_| bad())?),
    };
    let state = sim.lock();
    let items: Vec<Value> = state
        .tickets
        .iter()
        .filter(|t| {
            let have = match field {
                "status" => Some(Value::from(t.status)),
                "priority" => Some(Value::from(t.priority)),
                other => t.custom_fields.get(other).cloned(),
            };
            have.as_ref() == Some(&wanted)
        })
        .map(|t| ticket_json(t, false))
        .collect();
    let total = items.len();
    Ok(json_response(
        StatusCode::OK,
        json!({ "tickets": items, "total": total }),
    ))
}

#[cfg(test)]
mod tests;
