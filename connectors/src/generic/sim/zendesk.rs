//! A strict simulator of Zendesk Support's tickets API (API-HELPDESKS.md §9), the
//! shape `mappings/zendesk.toml` describes:
//!
//! - `POST /api/v2/tickets` takes `{"ticket": {...}}` with a first `comment` (its
//!   `body` is required) and answers 201 `{"ticket": {...}, "audit": {...}}`.
//! - `GET /api/v2/tickets/{id}` answers `{"ticket": {...}}`.
//! - `PUT /api/v2/tickets/{id}` takes `{"ticket": {...}}`, changes the members it
//!   names, adds the `comment` if there is one, and answers `{"ticket", "audit"}`.
//! - `GET /api/v2/tickets?external_id=` answers `{"tickets", "next_page", "count"}`.
//! - `GET /api/v2/incremental/tickets/cursor.json?start_time=<unix seconds>` (or
//!   `cursor=`) answers `{"tickets", "after_url", "after_cursor", "end_of_stream"}`
//!   oldest change first, 100 a page; `after_url` is there on the last page too.
//!   Changes of the last minute are left out, as Zendesk does, unless
//!   [`ZendeskSim::set_export_delay`] says otherwise.
//! - `status` ∈ new, open, pending, hold, solved, closed and `priority` ∈ low,
//!   normal, high, urgent (strings); `custom_fields` is a list of `{"id", "value"}`
//!   with one dropdown, [`VERDICT_FIELD_ID`]. A value of the wrong type, an unknown
//!   value, a read-only member (`id`, `created_at`, `updated_at`, `url`,
//!   `description`) or an unknown one is refused with `422 {"error":
//!   "RecordInvalid", "description": "Record validation errors", "details":
//!   {field: [{"description"}]}}`. Times are whole seconds, UTC.
//! - HTTP Basic with `{email}/token` and an API token.
//!
//! Every write's body is kept ([`ZendeskSim::writes`]).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

use super::freshservice::FsWrite;
use crate::simkit::{self, basic_credentials, json_response};

pub const STATUSES: &[&str] = &["new", "open", "pending", "hold", "solved", "closed"];
pub const PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];
/// The id of the "Security verdict" dropdown, and its choices.
pub const VERDICT_FIELD_ID: i64 = 360_000_000_001;
pub const VERDICTS: &[&str] = &[
    "confirmed",
    "expected_activity",
    "false_positive",
    "inaccurate_data",
];
/// The user ids of the API token's owner (the bridge) and of a human agent.
pub const API_USER_ID: i64 = 3001;
pub const HUMAN_AGENT_ID: i64 = 4002;
const PAGE: usize = 100;

/// A comment on a ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct ZdComment {
    pub body: String,
    pub public: bool,
    pub author_id: i64,
}

/// A ticket as the simulator keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct ZdTicket {
    pub id: u64,
    pub subject: String,
    pub status: String,
    pub priority: Option<String>,
    pub external_id: Option<String>,
    pub tags: Vec<String>,
    pub verdict: Option<String>,
    pub assignee_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub comments: Vec<ZdComment>,
}

pub struct ZdState {
    base_url: String,
    tickets: Vec<ZdTicket>,
    next_id: u64,
    auth: Option<(String, String)>,
    writes: Vec<FsWrite>,
    export_delay: chrono::Duration,
}

impl simkit::VendorState for ZdState {
    const NAME: &'static str = "ZendeskSim";
}

/// A running Zendesk simulator.
pub type ZendeskSim = simkit::Sim<ZdState>;
type Shared = Arc<simkit::Shared<ZdState>>;

fn now() -> DateTime<Utc> {
    simkit::now().trunc_subsecs(0)
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn ticket_json(base: &str, t: &ZdTicket) -> Value {
    json!({
        "id": t.id,
        "url": format!("{base}/api/v2/tickets/{}.json", t.id),
        "subject": t.subject,
        "description": t.comments.first().map(|c| c.body.clone()).unwrap_or_default(),
        "status": t.status,
        "priority": t.priority,
        "external_id": t.external_id,
        "tags": t.tags,
        "assignee_id": t.assignee_id,
        "requester_id": API_USER_ID,
        "custom_fields": [{"id": VERDICT_FIELD_ID, "value": t.verdict}],
        "created_at": time(t.created_at),
        "updated_at": time(t.updated_at),
    })
}

/// A Zendesk error.
#[derive(Debug)]
pub struct ZdError {
    status: StatusCode,
    body: Value,
}

impl ZdError {
    fn invalid(field: &str, description: impl Into<String>) -> ZdError {
        ZdError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({"error": "RecordInvalid", "description": "Record validation errors",
                "details": {field: [{"description": description.into(), "error": "InvalidValue"}]}}),
        }
    }

    fn plain(status: StatusCode, error: &str, description: impl Into<String>) -> ZdError {
        ZdError {
            status,
            body: json!({"error": error, "description": description.into()}),
        }
    }
}

impl IntoResponse for ZdError {
    fn into_response(self) -> Response {
        json_response(self.status, self.body)
    }
}

type Reply = Result<Response, ZdError>;

/// The `ticket` member of a request body.
fn ticket_of(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, ZdError> {
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    let bad = |d: &str| ZdError::plain(StatusCode::BAD_REQUEST, "InvalidEndpoint", d);
    if !json {
        return Err(bad("Content-Type must be application/json"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut top)) => match top.remove("ticket") {
            Some(Value::Object(t)) if top.is_empty() => Ok(t),
            _ => Err(bad("the body must be {\"ticket\": {...}}")),
        },
        _ => Err(bad("the body is not a JSON object")),
    }
}

fn one_of(field: &str, v: &Value, allowed: &[&str]) -> Result<String, ZdError> {
    match v.as_str() {
        Some(s) if allowed.contains(&s) => Ok(s.to_string()),
        _ => Err(ZdError::invalid(
            field,
            format!("{field}: {v} is not one of {}", allowed.join(", ")),
        )),
    }
}

fn comment_of(v: &Value) -> Result<ZdComment, ZdError> {
    let body = v.get("body").and_then(Value::as_str).unwrap_or("");
    if body.trim().is_empty() {
        return Err(ZdError::invalid(
            "description",
            "Description: cannot be blank",
        ));
    }
    let public = match v.get("public") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ZdError::invalid("public", "public: is not a boolean")),
    };
    Ok(ZdComment {
        body: body.to_string(),
        public,
        author_id: API_USER_ID,
    })
}

fn verdict_of(v: &Value) -> Result<Option<String>, ZdError> {
    let mut verdict = None;
    for item in v.as_array().into_iter().flatten() {
        if item.get("id").and_then(Value::as_i64) != Some(VERDICT_FIELD_ID) {
            return Err(ZdError::invalid(
                "custom_fields",
                "custom_fields: unknown field id",
            ));
        }
        verdict = match item.get("value") {
            None | Some(Value::Null) => None,
            Some(v) => Some(one_of("custom_fields", v, VERDICTS)?),
        };
    }
    Ok(verdict)
}

/// Applies the members a create or update names.
fn apply(t: &mut ZdTicket, body: &Map<String, Value>) -> Result<(), ZdError> {
    for (name, v) in body {
        match name.as_str() {
            "subject" => match v.as_str() {
                Some(s) => t.subject = s.to_string(),
                None => return Err(ZdError::invalid(name, "subject: is not a string")),
            },
            "status" => t.status = one_of(name, v, STATUSES)?,
            "priority" => {
                t.priority = match v {
                    Value::Null => None,
                    _ => Some(one_of(name, v, PRIORITIES)?),
                }
            }
            "external_id" => match v {
                Value::Null => t.external_id = None,
                Value::String(s) => t.external_id = Some(s.clone()),
                _ => return Err(ZdError::invalid(name, "external_id: is not a string")),
            },
            "tags" => {
                t.tags = v
                    .as_array()
                    .and_then(|l| l.iter().map(|x| x.as_str().map(str::to_string)).collect())
                    .ok_or_else(|| ZdError::invalid(name, "tags: is not a list of strings"))?;
            }
            "custom_fields" => t.verdict = verdict_of(v)?,
            "assignee_id" => t.assignee_id = v.as_i64(),
            "comment" => t.comments.push(comment_of(v)?),
            "id" | "url" | "created_at" | "updated_at" | "description" => {
                return Err(ZdError::invalid(name, format!("{name}: is read-only")));
            }
            _ => {
                return Err(ZdError::invalid(
                    name,
                    format!("{name}: is not a ticket field"),
                ));
            }
        }
    }
    Ok(())
}

fn written(t: &ZdTicket, base: &str, status: StatusCode) -> Response {
    json_response(
        status,
        json!({"ticket": ticket_json(base, t), "audit": {"author_id": API_USER_ID}}),
    )
}

impl ZendeskSim {
    /// Serves the simulator on `listener`; until [`ZendeskSim::set_api_token`]
    /// every request is refused.
    pub async fn start(listener: TcpListener) -> ZendeskSim {
        let shared = simkit::Shared::new(
            ZdState {
                base_url: simkit::plain_base_url(&listener),
                tickets: Vec::new(),
                next_id: 1,
                auth: None,
                writes: Vec::new(),
                export_delay: chrono::Duration::seconds(60),
            },
            (),
        );
        let api = simkit::Shared::router()
            .route("/api/v2/tickets", get(list).post(create))
            .route("/api/v2/tickets/{id}", get(read).put(update))
            .route("/api/v2/incremental/tickets/cursor.json", get(export))
            .fallback(|r: Request| async move {
                ZdError::plain(
                    StatusCode::NOT_FOUND,
                    "InvalidEndpoint",
                    format!("no route for {} {}", r.method(), r.uri().path()),
                )
            })
            .layer(middleware::from_fn_with_state(shared.clone(), guard));
        ZendeskSim::serve(listener, shared, api, |r| r).await
    }

    /// Accept `{email}/token` with this API token (only).
    pub fn set_api_token(&self, email: &str, token: &str) {
        self.lock().auth = Some((format!("{email}/token"), token.to_string()));
    }

    /// Kinder switch: how recent a change the incremental export still leaves
    /// out (Zendesk: one minute). The end-to-end tests play a minute's changes in
    /// a second and set it to zero, saying so where they do.
    pub fn set_export_delay(&self, delay: Duration) {
        self.lock().export_delay =
            chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero());
    }

    pub fn tickets(&self) -> Vec<ZdTicket> {
        self.lock().tickets.clone()
    }

    pub fn ticket(&self, id: u64) -> Option<ZdTicket> {
        self.lock().tickets.iter().find(|t| t.id == id).cloned()
    }

    /// Every write so far, oldest first.
    pub fn writes(&self) -> Vec<FsWrite> {
        self.lock().writes.clone()
    }

    /// Edits a ticket as an agent would; `updated_at` moves on.
    pub fn update_as_agent(&self, id: u64, edit: impl FnOnce(&mut ZdTicket)) -> Result<(), String> {
        let mut state = self.lock();
        let t = state
            .tickets
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or_else(|| format!("ticket {id} not found"))?;
        edit(t);
        // Whole seconds: an edit in the second of the last write shares its time.
        t.updated_at = now().max(t.updated_at);
        Ok(())
    }

    /// Solves a ticket with a verdict, as an agent would.
    pub fn solve_as_agent(&self, id: u64, verdict: &str) -> Result<(), String> {
        self.update_as_agent(id, |t| {
            t.status = "solved".into();
            t.verdict = Some(verdict.into());
        })
    }
}

async fn guard(State(sim): State<Shared>, request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/_sim") {
        return next.run(request).await;
    }
    let auth = sim.lock().auth.clone();
    let ok = match (auth, basic_credentials(request.headers())) {
        (Some(expected), Some(sent)) => expected == sent,
        _ => false,
    };
    if !ok {
        return ZdError {
            status: StatusCode::UNAUTHORIZED,
            body: json!({"error": "Couldn't authenticate you"}),
        }
        .into_response();
    }
    next.run(request).await
}

fn log_write(state: &mut ZdState, method: &str, path: String, ticket: &Map<String, Value>) {
    state.writes.push(FsWrite {
        method: method.into(),
        path,
        body: json!({ "ticket": ticket }),
    });
}

async fn create(State(sim): State<Shared>, headers: HeaderMap, body: Bytes) -> Reply {
    let fields = ticket_of(&headers, &body)?;
    let mut state = sim.lock();
    log_write(&mut state, "POST", "/api/v2/tickets".into(), &fields);
    if !fields.contains_key("comment") {
        return Err(ZdError::invalid(
            "description",
            "Description: cannot be blank",
        ));
    }
    let at = now();
    let mut t = ZdTicket {
        id: state.next_id,
        subject: String::new(),
        status: "new".into(),
        priority: None,
        external_id: None,
        tags: Vec::new(),
        verdict: None,
        assignee_id: None,
        created_at: at,
        updated_at: at,
        comments: Vec::new(),
    };
    apply(&mut t, &fields)?;
    state.next_id += 1;
    let response = written(&t, &state.base_url, StatusCode::CREATED);
    state.tickets.push(t);
    Ok(response)
}

fn find(state: &ZdState, id: &str) -> Result<usize, ZdError> {
    state
        .tickets
        .iter()
        .position(|t| t.id.to_string() == id)
        .ok_or_else(|| ZdError::plain(StatusCode::NOT_FOUND, "RecordNotFound", "Not found"))
}

async fn read(State(sim): State<Shared>, Path(id): Path<String>) -> Reply {
    let state = sim.lock();
    let i = find(&state, &id)?;
    Ok(json_response(
        StatusCode::OK,
        json!({ "ticket": ticket_json(&state.base_url, &state.tickets[i]) }),
    ))
}

async fn update(
    State(sim): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let fields = ticket_of(&headers, &body)?;
    let mut state = sim.lock();
    log_write(&mut state, "PUT", format!("/api/v2/tickets/{id}"), &fields);
    let i = find(&state, &id)?;
    let mut t = state.tickets[i].clone();
    apply(&mut t, &fields)?;
    if t != state.tickets[i] {
        t.updated_at = now();
        state.tickets[i] = t;
    }
    Ok(written(&state.tickets[i], &state.base_url, StatusCode::OK))
}

fn query(q: Option<String>, known: &[&str]) -> Result<Vec<(String, String)>, ZdError> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    for (name, _) in &pairs {
        if !known.contains(&name.as_str()) {
            return Err(ZdError::plain(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                format!("unknown parameter {name}"),
            ));
        }
    }
    Ok(pairs)
}

async fn list(State(sim): State<Shared>, RawQuery(q): RawQuery) -> Reply {
    let pairs = query(q, &["external_id"])?;
    let external = pairs
        .iter()
        .find(|(k, _)| k == "external_id")
        .map(|(_, v)| v.clone());
    let state = sim.lock();
    let items: Vec<Value> = state
        .tickets
        .iter()
        .filter(|t| external.is_none() || t.external_id == external)
        .map(|t| ticket_json(&state.base_url, t))
        .collect();
    let count = items.len();
    Ok(json_response(
        StatusCode::OK,
        json!({"tickets": items, "next_page": null, "previous_page": null, "count": count}),
    ))
}

fn cursor(updated: DateTime<Utc>, id: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{id}", updated.timestamp()))
}

fn uncursor(c: &str) -> Option<(DateTime<Utc>, u64)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
    let (secs, id) = raw.split_once(':')?;
    Some((
        DateTime::from_timestamp(secs.parse().ok()?, 0)?,
        id.parse().ok()?,
    ))
}

async fn export(State(sim): State<Shared>, RawQuery(q): RawQuery) -> Reply {
    let pairs = query(q, &["start_time", "cursor"])?;
    let param = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let bad = |d: &str| ZdError::plain(StatusCode::BAD_REQUEST, "InvalidValue", d);
    let after: (DateTime<Utc>, u64) = match (param("start_time"), param("cursor")) {
        (Some(s), None) => {
            let secs: i64 = s
                .parse()
                .map_err(|_| bad("start_time must be a Unix time in seconds"))?;
            let at = DateTime::from_timestamp(secs, 0)
                .ok_or_else(|| bad("start_time is out of range"))?;
            (at - chrono::Duration::seconds(1), u64::MAX)
        }
        (None, Some(c)) => uncursor(c).ok_or_else(|| bad("cursor is not one this API made"))?,
        _ => return Err(bad("give start_time or cursor")),
    };
    let state = sim.lock();
    let until = now() - state.export_delay;
    let mut matching: Vec<&ZdTicket> = state
        .tickets
        .iter()
        .filter(|t| (t.updated_at, t.id) > after && t.updated_at <= until)
        .collect();
    matching.sort_by_key(|t| (t.updated_at, t.id));
    let end = matching.len() <= PAGE;
    matching.truncate(PAGE);
    let last = matching.last().map_or(after, |t| (t.updated_at, t.id));
    let c = cursor(last.0, last.1);
    let items: Vec<Value> = matching
        .iter()
        .map(|t| ticket_json(&state.base_url, t))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({
            "tickets": items,
            "after_cursor": c,
            "after_url": format!("{}/api/v2/incremental/tickets/cursor.json?cursor={c}", state.base_url),
            "before_cursor": null,
            "before_url": null,
            "end_of_stream": end,
        }),
    ))
}

#[cfg(test)]
mod tests;
