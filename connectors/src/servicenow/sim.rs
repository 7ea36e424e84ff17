//! A strict ServiceNow Table API simulator on loopback. Tables: `incident` (with
//! the baseline business rules and data policies that matter to the bridge),
//! `sys_journal_field` (work notes and comments), `sys_choice` (the Utah+ close
//! codes by default), `sys_user` and `sys_user_group`. It speaks the Table API as
//! API.md §5 describes it: every value a string; reference fields as
//! `{link, value}` or bare with `sysparm_exclude_reference_link=true`; display
//! values with `sysparm_display_value=true|all`; dot-walked `sysparm_fields`
//! (`assigned_to.email`); encoded queries (`=`, `!=`, `>=`, `<=`, `>`, `<`,
//! `STARTSWITH`, `ENDSWITH`, `LIKE`, `NOTLIKE`, `IN`, `NOT IN`, `ISEMPTY`,
//! `ISNOTEMPTY`, `^`, `^OR`, `^NQ`, `ORDERBY`, `ORDERBYDESC`) where — as on a real
//! instance — a condition on an unknown field is silently dropped; offset paging
//! with `Link` (first/prev/next/last, absolute on the simulator's host) and
//! `X-Total-Count`; HTTP Basic and OAuth client credentials (`/oauth_token.do`);
//! an hourly per-user rate limit (off by default); and ServiceNow's error bodies.
//!
//! **Time.** `sys_updated_on` has second precision, and, as on a real instance,
//! two writes to a record within one second share it: only `sys_mod_count`
//! (one more per write) tells them apart. A business rule registered with
//! [`ServiceNowSim::add_async_rule`] writes the record again right after each web
//! service write, within its second, as an async business rule or a flow does.
//! [`ServiceNowSim::set_same_second_bump`]`(true)` is a kinder, opt-in mode that
//! moves a record's second on with each write (nothing uses it by default).
//!
//! **Rules on `incident` writes** (web service writes and the analyst API; not
//! [`ServiceNowSim::set_state`], which acts like a server script): state 3 needs
//! `hold_reason`; states 6 and 7 need `close_code` and `close_notes` (403 "Data
//! Policy Exception"); choice fields take only their choices (`close_code`: the
//! active `sys_choice` rows); `priority` is calculated from impact × urgency;
//! `incident_state` mirrors `state`; writing `work_notes` or `comments` appends a
//! `sys_journal_field` row and the field reads back as `""`; an update that changes
//! nothing is not a write (no new `sys_updated_on`).
//!
//! Tests and the demo drive the analyst side through [`ServiceNowSim`]'s methods
//! and under `/_sim/` (no auth).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

use super::wire::{ErrorBody, TIME_FORMAT};
use crate::simkit::{self, Caller, json_response};

/// A record as stored: every value a string.
pub type SimRecord = BTreeMap<String, String>;

/// Close codes of Utah and later releases (the default `sys_choice` rows).
pub const CLOSE_CODES_UTAH: &[&str] = &[
    "Duplicate",
    "Known error",
    "No resolution provided",
    "Resolved by caller",
    "Resolved by change",
    "Resolved by problem",
    "Resolved by request",
    "Solution provided",
    "Workaround provided",
    "User error",
];

/// Close codes of releases before Utah.
pub const CLOSE_CODES_LEGACY: &[&str] = &[
    "Solved (Work Around)",
    "Solved (Permanently)",
    "Solved Remotely (Work Around)",
    "Solved Remotely (Permanently)",
    "Not Solved (Not Reproducible)",
    "Not Solved (Too Costly)",
    "Closed/Resolved by Caller",
];

/// Who the analyst API writes as.
pub const ANALYST: &str = "analyst";

const UNAUTHENTICATED: (&str, &str) = (
    "User Not Authenticated",
    "Required to provide Auth information",
);
const NO_RECORD: (&str, &str) = (
    "No Record found",
    "Record doesn't exist or ACL restricts the record retrieval",
);

// ---------------------------------------------------------------------------------
// Tables: `sim/tables.rs`.
mod tables;
pub use tables::*;

// ---------------------------------------------------------------------------------
// Encoded queries

/// The encoded-query subset the simulator understands. Parsing never fails: like
/// the instance, it drops what it cannot read.
pub mod encoded;

use encoded::{Condition, Query};

// ---------------------------------------------------------------------------------
// State

#[derive(Debug, Clone)]
struct OAuthClient {
    client_id: String,
    secret: String,
    user: String,
}

#[derive(Debug, Clone, Copy)]
struct RateWindow {
    start: i64,
    count: u32,
}

/// The simulator's model (what [`ServiceNowSim`] locks); opaque outside this module.
#[derive(Debug)]
pub struct SimState {
    base_url: String,
    credentials: Option<(String, String)>,
    oauth_clients: Vec<OAuthClient>,
    /// access token → (user, expiry).
    tokens: HashMap<String, (String, Instant)>,
    token_lifetime: Duration,
    tables: HashMap<&'static str, Vec<SimRecord>>,
    next_number: u64,
    /// Kinder than an instance: a write within a record's last second moves
    /// `sys_updated_on` one second on. Off unless a test opts in.
    same_second_bump: bool,
    /// Async business rules: each runs after every web service write to an
    /// incident, within that write's second.
    async_rules: Vec<AsyncRule>,
    rate_limit: Option<u32>,
    rate_windows: HashMap<String, RateWindow>,
    /// Fields whose query conditions are dropped (an ACL'd or renamed column).
    unqueryable: Vec<String>,
    /// A business rule that starts every new incident in state 1.
    insert_as_new: bool,
}

impl simkit::VendorState for SimState {
    const NAME: &'static str = "ServiceNowSim";
}

/// A running ServiceNow simulator.
pub type ServiceNowSim = simkit::Sim<SimState>;

/// What the handlers share: the state and the kit.
type Shared = Arc<simkit::Shared<SimState>>;

/// An async business rule (see [`ServiceNowSim::add_async_rule`]).
#[derive(Clone)]
struct AsyncRule(Arc<dyn Fn(&mut SimRecord) + Send + Sync>);

impl std::fmt::Debug for AsyncRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AsyncRule")
    }
}

impl SimState {
    /// Runs the async business rules after a web service write to incident `i`,
    /// each saved within that write's second.
    fn run_async_rules(&mut self, i: usize) {
        let rules = self.async_rules.clone();
        for rule in rules {
            let record = &self.rows("incident")[i];
            let (number, second) = (record["number"].clone(), record["sys_updated_on"].clone());
            if self
                .analyst_edit(&number, "system", |r| (rule.0)(r), false)
                .is_ok()
            {
                self.rows_mut("incident")[i].insert("sys_updated_on".into(), second);
            }
        }
    }
}

/// A refusal in ServiceNow's error shape.
#[derive(Debug)]
struct SnError {
    status: StatusCode,
    message: String,
    detail: Option<String>,
}

impl SnError {
    fn new(status: StatusCode, message: impl Into<String>, detail: Option<String>) -> SnError {
        SnError {
            status,
            message: message.into(),
            detail,
        }
    }

    fn bad(message: impl Into<String>, detail: impl Into<String>) -> SnError {
        SnError::new(StatusCode::BAD_REQUEST, message, Some(detail.into()))
    }

    fn not_found() -> SnError {
        SnError::new(
            StatusCode::NOT_FOUND,
            NO_RECORD.0,
            Some(NO_RECORD.1.to_string()),
        )
    }

    fn refused(detail: impl Into<String>) -> SnError {
        SnError::new(
            StatusCode::FORBIDDEN,
            "Operation Failed",
            Some(detail.into()),
        )
    }

    fn summary(&self) -> String {
        match &self.detail {
            Some(d) => format!("{}: {d}", self.message),
            None => self.message.clone(),
        }
    }
}

impl IntoResponse for SnError {
    fn into_response(self) -> Response {
        json_response(
            self.status,
            serde_json::to_value(ErrorBody::new(self.message, self.detail)).unwrap_or_default(),
        )
    }
}

/// How a write is checked: web services and analysts meet the data policies;
/// server scripts (`set_state`) do not.
#[derive(Debug, Clone, Copy)]
struct WriteMode {
    input_display: bool,
    policies: bool,
}

impl SimState {
    fn new(base_url: String) -> SimState {
        let mut state = SimState {
            base_url,
            credentials: None,
            oauth_clients: Vec::new(),
            tokens: HashMap::new(),
            token_lifetime: Duration::from_secs(1800),
            tables: HashMap::new(),
            next_number: 10001,
            same_second_bump: false,
            async_rules: Vec::new(),
            rate_limit: None,
            rate_windows: HashMap::new(),
            unqueryable: Vec::new(),
            insert_as_new: false,
        };
        state.set_close_codes(CLOSE_CODES_UTAH);
        state
    }

    fn rows(&self, table: &str) -> &[SimRecord] {
        self.tables
            .get(table)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    fn rows_mut(&mut self, table: &'static str) -> &mut Vec<SimRecord> {
        self.tables.entry(table).or_default()
    }

    fn find(&self, table: &str, sys_id: &str) -> Option<usize> {
        self.rows(table)
            .iter()
            .position(|r| r.get("sys_id").map(String::as_str) == Some(sys_id))
    }

    fn incident_by_number(&self, number: &str) -> Option<usize> {
        self.rows("incident")
            .iter()
            .position(|r| r.get("number").map(String::as_str) == Some(number))
    }

    fn user_by_name(&self, user_name: &str) -> Option<&SimRecord> {
        self.rows("sys_user")
            .iter()
            .find(|u| u.get("user_name").map(String::as_str) == Some(user_name))
    }

    fn user_sys_id(&self, user_name: &str) -> String {
        self.user_by_name(user_name)
            .and_then(|u| u.get("sys_id").cloned())
            .unwrap_or_default()
    }

    fn insert_plain(&mut self, table: &'static str, fields: &[(&str, &str)]) -> String {
        let sys_id = new_sys_id();
        let t = now_second().format(TIME_FORMAT).to_string();
        let mut record: SimRecord = table_def(table)
            .map(|d| {
                d.fields
                    .iter()
                    .map(|f| (f.to_string(), String::new()))
                    .collect()
            })
            .unwrap_or_default();
        record.insert("sys_id".into(), sys_id.clone());
        for f in ["sys_created_on", "sys_updated_on"] {
            if record.contains_key(f) {
                record.insert(f.into(), t.clone());
            }
        }
        for (k, v) in fields {
            record.insert(k.to_string(), v.to_string());
        }
        self.rows_mut(table).push(record);
        sys_id
    }

    fn set_close_codes(&mut self, codes: &[&str]) {
        self.rows_mut("sys_choice").retain(|r| {
            !(r.get("name").map(String::as_str) == Some("incident")
                && r.get("element").map(String::as_str) == Some("close_code"))
        });
        for (i, code) in codes.iter().enumerate() {
            let sequence = (i * 10).to_string();
            self.insert_plain(
                "sys_choice",
                &[
                    ("name", "incident"),
                    ("element", "close_code"),
                    ("value", code),
                    ("label", code),
                    ("sequence", &sequence),
                    ("inactive", "false"),
                    ("language", "en"),
                ],
            );
        }
    }

    fn close_codes(&self) -> Vec<String> {
        self.rows("sys_choice")
            .iter()
            .filter(|r| {
                r.get("name").map(String::as_str) == Some("incident")
                    && r.get("element").map(String::as_str) == Some("close_code")
                    && r.get("inactive").map(String::as_str) != Some("true")
            })
            .filter_map(|r| r.get("value").cloned())
            .collect()
    }

    /// The value behind a field path (`assigned_to.email` walks the reference);
    /// `None` when the path names no field.
    fn resolve(&self, table: &TableDef, record: &SimRecord, path: &str) -> Option<String> {
        match path.split_once('.') {
            None => table
                .has(path)
                .then(|| record.get(path).cloned().unwrap_or_default()),
            Some((head, rest)) => {
                let target = table_def(table.reference(head)?)?;
                let id = record.get(head).cloned().unwrap_or_default();
                match self.find(target.name, &id) {
                    Some(i) => self.resolve(target, &self.rows(target.name)[i], rest),
                    None => self
                        .resolve(target, &SimRecord::new(), rest)
                        .map(|_| String::new()),
                }
            }
        }
    }

    fn queryable(&self, table: &TableDef, field: &str) -> bool {
        let head = field.split('.').next().unwrap_or(field);
        !self.unqueryable.iter().any(|f| f == head)
            && self.resolve(table, &SimRecord::new(), field).is_some()
    }

    fn matches(&self, table: &TableDef, record: &SimRecord, query: &Query) -> bool {
        let test = |c: &Condition| {
            let actual = self.resolve(table, record, &c.field).unwrap_or_default();
            c.op.test(&actual, &c.value)
        };
        query.groups.iter().any(|group| {
            group.iter().all(|alternatives| {
                // A condition on a field the table lacks is dropped, silently.
                let usable: Vec<&Condition> = alternatives
                    .iter()
                    .filter(|c| self.queryable(table, &c.field))
                    .collect();
                usable.is_empty() || usable.into_iter().any(test)
            })
        })
    }

    /// The display value of a field.
    fn display(&self, table: &TableDef, field: &str, value: &str) -> String {
        if let Some(target) = table.reference(field).and_then(table_def) {
            return self
                .find(target.name, value)
                .and_then(|i| self.rows(target.name)[i].get(target.display).cloned())
                .unwrap_or_default();
        }
        if table.name == "incident"
            && let Some(label) = choice_label(field, value)
        {
            return label.to_string();
        }
        value.to_string()
    }

    fn link_to(&self, table: &str, sys_id: &str) -> String {
        format!("{}/api/now/table/{table}/{sys_id}", self.base_url)
    }

    fn render(&self, table: &TableDef, record: &SimRecord, params: &Params) -> Value {
        let all: Vec<String>;
        let fields: &[String] = match &params.fields {
            Some(f) => f,
            None => {
                all = table.fields.iter().map(|f| f.to_string()).collect();
                &all
            }
        };
        let mut out = Map::new();
        for field in fields {
            let Some(value) = self.resolve(table, record, field) else {
                continue; // invalid fields are ignored
            };
            let reference = table.reference(field).filter(|_| !value.is_empty());
            let link = reference
                .filter(|_| !params.exclude_links)
                .map(|t| self.link_to(t, &value));
            let rendered = match params.display {
                DisplayMode::Raw => match link {
                    Some(link) => json!({ "link": link, "value": value }),
                    None => Value::String(value),
                },
                DisplayMode::Display => {
                    let display = self.display(table, field, &value);
                    match link {
                        Some(link) => json!({ "link": link, "display_value": display }),
                        None => Value::String(display),
                    }
                }
                DisplayMode::All => {
                    let mut both = json!({
                        "display_value": self.display(table, field, &value),
                        "value": value,
                    });
                    if let Some(link) = link {
                        both["link"] = Value::String(link);
                    }
                    both
                }
            };
            out.insert(field.clone(), rendered);
        }
        Value::Object(out)
    }

    /// The next `sys_updated_on` of a record last written at `previous`.
    fn next_time(&self, previous: Option<&str>) -> NaiveDateTime {
        let now = now_second();
        if self.same_second_bump
            && let Some(prev) =
                previous.and_then(|p| NaiveDateTime::parse_from_str(p, TIME_FORMAT).ok())
            && now <= prev
        {
            return prev + chrono::Duration::seconds(1);
        }
        now
    }
}

// ---------------------------------------------------------------------------------
// Writes to `incident`, data policies and business rules: `sim/writes.rs`.
mod writes;
use writes::*;

// ---------------------------------------------------------------------------------
// Request parameters: `sim/params.rs`.
mod params;
pub use params::*;

// ---------------------------------------------------------------------------------
// The server

impl ServiceNowSim {
    /// Serves the simulator on `listener` (plain HTTP). It starts with the Utah+
    /// close codes and no users, incidents or credentials: until
    /// [`ServiceNowSim::set_credentials`] (or an OAuth client) is set, every API
    /// request is refused with 401.
    pub async fn start(listener: TcpListener) -> ServiceNowSim {
        let sim = simkit::Shared::new(SimState::new(simkit::plain_base_url(&listener)), ());
        let api = simkit::Shared::router()
            .route("/api/now/{*rest}", any(table_api))
            .route("/oauth_token.do", post(oauth_token))
            .route("/_sim/incidents", get(admin_incidents))
            .route("/_sim/incidents/{number}/resolve", post(admin_resolve))
            .fallback(no_route)
            .layer(middleware::from_fn_with_state(sim.clone(), guard));
        ServiceNowSim::serve(listener, sim, api, |router| router).await
    }

    /// The one user name + password accepted (HTTP Basic). The user is added to
    /// `sys_user` if it is not there.
    pub fn set_credentials(&self, user_name: &str, password: &str) {
        let mut state = self.lock();
        state.credentials = Some((user_name.to_string(), password.to_string()));
        if state.user_by_name(user_name).is_none() {
            state.insert_plain(
                "sys_user",
                &[
                    ("user_name", user_name),
                    ("name", user_name),
                    ("active", "true"),
                    ("time_zone", "GMT"),
                ],
            );
        }
    }

    /// An OAuth application whose client-credentials tokens act as `user_name`.
    pub fn set_oauth_client(&self, client_id: &str, client_secret: &str, user_name: &str) {
        let mut state = self.lock();
        state.oauth_clients.retain(|c| c.client_id != client_id);
        state.oauth_clients.push(OAuthClient {
            client_id: client_id.to_string(),
            secret: client_secret.to_string(),
            user: user_name.to_string(),
        });
        if state.user_by_name(user_name).is_none() {
            state.insert_plain(
                "sys_user",
                &[
                    ("user_name", user_name),
                    ("name", user_name),
                    ("active", "true"),
                ],
            );
        }
    }

    /// How long issued access tokens live (default 30 minutes).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().token_lifetime = lifetime;
    }

    /// Forgets every issued token (as if they all expired).
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// Adds a `sys_user`; returns its sys_id.
    pub fn add_user(&self, user_name: &str, name: &str, email: &str) -> String {
        self.lock().insert_plain(
            "sys_user",
            &[
                ("user_name", user_name),
                ("name", name),
                ("email", email),
                ("active", "true"),
                ("time_zone", "GMT"),
            ],
        )
    }

    /// Adds a `sys_user_group`; returns its sys_id.
    pub fn add_group(&self, name: &str) -> String {
        self.lock()
            .insert_plain("sys_user_group", &[("name", name), ("active", "true")])
    }

    /// Replaces the active close codes (e.g. with [`CLOSE_CODES_LEGACY`]).
    pub fn set_close_codes(&self, codes: &[&str]) {
        self.lock().set_close_codes(codes);
    }

    /// Allows `per_hour` API requests per user per hour (429 beyond, with
    /// `Retry-After` and `X-RateLimit-*`); `None` (the default) lifts the limit.
    pub fn set_rate_limit(&self, per_hour: Option<u32>) {
        let mut state = self.lock();
        state.rate_limit = per_hour;
        state.rate_windows.clear();
    }

    /// `false` (the default): a record's writes within one second share its
    /// `sys_updated_on`, as on a real instance. `true` is kinder than an instance:
    /// each write to a record moves its time at least one second on.
    pub fn set_same_second_bump(&self, bump: bool) {
        self.lock().same_second_bump = bump;
    }

    /// Registers an async business rule (run as `system`): after every web
    /// service insert or update of an incident, `rule` edits the record as it now
    /// stands, and the edit is saved within the same second (one more
    /// `sys_mod_count`, the same `sys_updated_on`). The answer the caller got
    /// does not show it, as with a real async rule or flow.
    pub fn add_async_rule(&self, rule: impl Fn(&mut SimRecord) + Send + Sync + 'static) {
        self.lock().async_rules.push(AsyncRule(Arc::new(rule)));
    }

    /// Changes an incident as an analyst would, within the second of its last
    /// write (the bridge's own, say): `sys_mod_count` moves on, `sys_updated_on`
    /// does not.
    pub fn update_as_analyst_within_the_second(
        &self,
        number: &str,
        edit: impl FnOnce(&mut SimRecord),
    ) -> Result<(), String> {
        let mut state = self.lock();
        let i = state
            .incident_by_number(number)
            .ok_or_else(|| format!("no incident {number}"))?;
        let second = state.rows("incident")[i]["sys_updated_on"].clone();
        state.analyst_edit(number, ANALYST, edit, true)?;
        state.rows_mut("incident")[i].insert("sys_updated_on".into(), second);
        Ok(())
    }

    /// Query conditions on `field` are dropped from now on, as an instance does
    /// for a field it does not know or the caller may not read.
    pub fn ignore_query_field(&self, field: &str) {
        self.lock().unqueryable.push(field.to_string());
    }

    /// `true`: a business rule starts every new incident in state 1 (New),
    /// whatever the insert asked for, as some instances do. Default `false`.
    pub fn set_new_incidents_start_new(&self, on: bool) {
        self.lock().insert_as_new = on;
    }

    pub fn incident(&self, number: &str) -> Option<SimRecord> {
        let state = self.lock();
        state
            .incident_by_number(number)
            .map(|i| state.rows("incident")[i].clone())
    }

    pub fn incidents(&self) -> Vec<SimRecord> {
        self.lock().rows("incident").to_vec()
    }

    /// The incident's journal (work notes and comments), oldest first.
    pub fn journal(&self, number: &str) -> Vec<SimRecord> {
        let state = self.lock();
        let Some(i) = state.incident_by_number(number) else {
            return Vec::new();
        };
        let sys_id = state.rows("incident")[i]["sys_id"].clone();
        state
            .rows("sys_journal_field")
            .iter()
            .filter(|r| r.get("element_id") == Some(&sys_id))
            .cloned()
            .collect()
    }

    /// Creates an incident as an analyst would (not the bridge's: no correlation
    /// id unless given). Returns its number.
    pub fn create_as_analyst(&self, fields: &[(&str, &str)]) -> Result<String, String> {
        let mut state = self.lock();
        let body: Map<String, Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        let mode = WriteMode {
            input_display: false,
            policies: true,
        };
        let i = state
            .write_incident(None, &body, ANALYST, mode)
            .map_err(|e| e.summary())?;
        Ok(state.rows("incident")[i]["number"].clone())
    }

    /// Edits an incident as an analyst would in the form: `edit` changes the
    /// fields, then the change is saved with the business rules and data policies.
    pub fn update_as_analyst(
        &self,
        number: &str,
        edit: impl FnOnce(&mut SimRecord),
    ) -> Result<(), String> {
        self.lock().analyst_edit(number, ANALYST, edit, true)
    }

    /// Edits an incident as the named user (`sys_updated_by`) would in the
    /// form, with the business rules and data policies.
    pub fn update_as(
        &self,
        number: &str,
        user_name: &str,
        edit: impl FnOnce(&mut SimRecord),
    ) -> Result<(), String> {
        self.lock().analyst_edit(number, user_name, edit, true)
    }

    /// Resolves an incident (state 6) with a close code and notes.
    pub fn resolve_as_analyst(
        &self,
        number: &str,
        close_code: &str,
        close_notes: &str,
    ) -> Result<(), String> {
        self.update_as_analyst(number, |r| {
            r.insert("state".into(), "6".into());
            r.insert("close_code".into(), close_code.into());
            r.insert("close_notes".into(), close_notes.into());
        })
    }

    /// Adds a work note by `author` (a user name).
    pub fn add_work_note_as(&self, number: &str, author: &str, text: &str) -> Result<(), String> {
        self.lock().analyst_edit(
            number,
            author,
            |r| {
                r.insert("work_notes".into(), text.into());
            },
            true,
        )
    }

    /// Sets the state as a server script would: the business rules run, the data
    /// policies do not.
    pub fn set_state(&self, number: &str, state: &str) -> Result<(), String> {
        self.lock().analyst_edit(
            number,
            ANALYST,
            |r| {
                r.insert("state".into(), state.into());
            },
            false,
        )
    }

    /// Test hook: pretends the incident was last written at `updated` (and
    /// created no later).
    pub fn backdate(&self, number: &str, updated: DateTime<Utc>) -> Result<(), String> {
        let mut state = self.lock();
        let i = state
            .incident_by_number(number)
            .ok_or_else(|| format!("no incident {number}"))?;
        let t = updated.naive_utc().format(TIME_FORMAT).to_string();
        let record = &mut state.rows_mut("incident")[i];
        if record.get("sys_created_on").is_some_and(|c| *c > t) {
            record.insert("sys_created_on".into(), t.clone());
        }
        record.insert("sys_updated_on".into(), t);
        Ok(())
    }
}

async fn no_route() -> Response {
    SnError::new(
        StatusCode::BAD_REQUEST,
        "Requested URI does not represent any resource",
        None,
    )
    .into_response()
}

type Reply = Result<Response, SnError>;

/// `/api/now/[v1|v2/]table/{table}[/{sys_id}]`.
async fn table_api(
    State(sim): State<Shared>,
    method: Method,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    caller: Caller,
    body: Bytes,
) -> Reply {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let segments = match segments.as_slice() {
        ["v1" | "v2", "table", rest @ ..] | ["table", rest @ ..] => rest.to_vec(),
        _ => return Ok(no_route().await),
    };
    let (table, sys_id) = match segments.as_slice() {
        [table] => (*table, None),
        [table, sys_id] => (*table, Some(*sys_id)),
        _ => return Ok(no_route().await),
    };
    let Some(def) = table_def(table) else {
        return Err(SnError::bad(
            format!("Invalid table {table}"),
            format!("Invalid table {table}"),
        ));
    };
    let params = Params::parse(&query);
    let caller = caller.0;
    let path = format!("/api/now/{rest}");
    match (method.as_str(), sys_id) {
        ("GET", None) => Ok(list(&sim, def, &params, &path)),
        ("GET", Some(id)) => {
            let state = sim.lock();
            let i = state.find(def.name, id).ok_or_else(SnError::not_found)?;
            let value = state.render(def, &state.rows(def.name)[i], &params);
            Ok(json_response(StatusCode::OK, json!({ "result": value })))
        }
        ("POST", None) => {
            writable(def, "Insert")?;
            let body = parse_body(&headers, &body)?;
            let mut state = sim.lock();
            let mode = WriteMode {
                input_display: params.input_display,
                policies: true,
            };
            let i = state.write_incident(None, &body, &caller, mode)?;
            let record = state.rows("incident")[i].clone();
            let location = state.link_to("incident", &record["sys_id"]);
            let mut response = answer(&state, &headers, StatusCode::CREATED, &record, &params);
            if let Ok(v) = HeaderValue::from_str(&location) {
                response.headers_mut().insert("location", v);
            }
            state.run_async_rules(i);
            Ok(response)
        }
        ("PATCH" | "PUT", Some(id)) => {
            writable(def, "Update")?;
            let body = parse_body(&headers, &body)?;
            let mut state = sim.lock();
            let i = state.find("incident", id).ok_or_else(SnError::not_found)?;
            let mode = WriteMode {
                input_display: params.input_display,
                policies: true,
            };
            let i = state.write_incident(Some(i), &body, &caller, mode)?;
            let record = state.rows("incident")[i].clone();
            let response = answer(&state, &headers, StatusCode::OK, &record, &params);
            state.run_async_rules(i);
            Ok(response)
        }
        ("DELETE", Some(id)) => {
            writable(def, "Delete")?;
            let mut state = sim.lock();
            let i = state.find("incident", id).ok_or_else(SnError::not_found)?;
            state.rows_mut("incident").remove(i);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(SnError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not Supported",
            Some(format!("{method} is not supported on this resource")),
        )),
    }
}

fn answer(
    state: &SimState,
    headers: &HeaderMap,
    status: StatusCode,
    record: &SimRecord,
    params: &Params,
) -> Response {
    let quiet = headers
        .get("x-no-response-body")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if quiet {
        return status.into_response();
    }
    let value = state.render(&INCIDENT, record, params);
    json_response(status, json!({ "result": value }))
}

fn list(sim: &Shared, def: &TableDef, params: &Params, path: &str) -> Response {
    let state = sim.lock();
    let mut rows: Vec<&SimRecord> = state
        .rows(def.name)
        .iter()
        .filter(|r| state.matches(def, r, &params.query))
        .collect();
    let order: Vec<&(String, bool)> = params
        .query
        .order
        .iter()
        .filter(|(f, _)| state.resolve(def, &SimRecord::new(), f).is_some())
        .collect();
    rows.sort_by(|a, b| {
        for (field, descending) in &order {
            let x = state.resolve(def, a, field).unwrap_or_default();
            let y = state.resolve(def, b, field).unwrap_or_default();
            let o = encoded::compare(&x, &y);
            let o = if *descending { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    let total = rows.len();
    let start = params.offset.min(total);
    let end = params.offset.saturating_add(params.limit).min(total);
    let result: Vec<Value> = rows[start..end]
        .iter()
        .map(|r| state.render(def, r, params))
        .collect();
    let mut response = json_response(StatusCode::OK, json!({ "result": result }));
    if !params.no_count && !params.suppress_pagination {
        let base = state.base_url.as_str();
        let limit = params.limit;
        let mut links = vec![params.page_link(base, path, 0, "first")];
        if params.offset > 0 {
            links.push(params.page_link(base, path, params.offset.saturating_sub(limit), "prev"));
        }
        if params.offset.saturating_add(limit) < total {
            links.push(params.page_link(base, path, params.offset + limit, "next"));
        }
        let last = if total == 0 {
            0
        } else {
            (total - 1) / limit * limit
        };
        links.push(params.page_link(base, path, last, "last"));
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&links.join(",")) {
            headers.insert("link", v);
        }
        headers.insert("x-total-count", HeaderValue::from(total));
    }
    response
}

// ---------------------------------------------------------------------------------
// Sign-in (Basic, OAuth client credentials) and the hourly limit: `sim/auth.rs`.
mod auth;
use auth::*;

// ---------------------------------------------------------------------------------
// Handlers: the admin surface under /_sim/ (no auth): `sim/admin.rs`.
mod admin;
use admin::*;

#[cfg(test)]
mod tests;
