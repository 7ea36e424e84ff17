//! A strict Jira Cloud REST v3 simulator on loopback: projects with workflows
//! (transition ids differ per project), issues with ADF descriptions, labels,
//! comments and entity properties, `/search/jql` with a JQL subset, token paging and
//! an eventually consistent index (`reconcileIssues` forces read-after-write), the
//! 410 of the retired `/search`, the project (with its issue types) and
//! `mypermissions` lookups, HTTP Basic auth, burst and per-issue write limits
//! with `RateLimit-Reason`, and Jira's `ErrorCollection` bodies. It is never kinder
//! than Jira: where API.md marks behaviour unknown, it takes the stricter reading.
//! Tests and the demo drive the "analyst" side through the admin API on [`JiraSim`]
//! and under `/_sim/` (no auth).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

use crate::simkit::{self, Caller, Throttle, json_response};

/// How far search runs behind writes by default. Jira's search is eventually
/// consistent ("recent updates might not be immediately visible"), by an amount
/// Atlassian does not publish; integrators see seconds.
pub const DEFAULT_INDEX_LAG: Duration = Duration::from_secs(2);

/// Resolutions every project offers.
pub const RESOLUTIONS: &[&str] = &[
    "Done",
    "Won't Do",
    "Duplicate",
    "Declined",
    "Cannot Reproduce",
];
/// Priorities, highest first (ids 1–5).
pub const PRIORITIES: &[&str] = &["Highest", "High", "Medium", "Low", "Lowest"];
/// Issue types every project offers, with their ids.
pub const ISSUE_TYPES: &[(&str, &str)] = &[
    ("10001", "Task"),
    ("10002", "Bug"),
    ("10003", "Story"),
    ("10004", "Epic"),
    ("10005", "Incident"),
];
/// How many comments an issue's `comment` field embeds; the rest are behind
/// `GET …/comment` (offset paging). [U] Jira's own number is not published.
pub const EMBEDDED_COMMENTS: usize = 20;
/// Jira's per-issue comment limit (413 beyond it).
pub const MAX_COMMENTS: usize = 5000;

const NOT_FOUND: &str = "Issue does not exist or you do not have permission to see it.";
const UNAUTHENTICATED: &str = "Client must be authenticated to access this resource.";
const UNBOUNDED: &str =
    "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.";
const NOT_ADF: &str =
    "Operation value must be an Atlassian Document (see the Atlassian Document Format)";

// ---------------------------------------------------------------------------------
// Workflows: `sim/workflow.rs`.
mod workflow;
pub use workflow::*;

// ---------------------------------------------------------------------------------
// State

/// A user the simulator knows. Analysts added by `comment_as_analyst` may have no email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimUser {
    pub account_id: String,
    pub email: Option<String>,
    pub display_name: String,
}

/// A comment as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimComment {
    pub id: String,
    /// The author's accountId.
    pub author: String,
    /// ADF.
    pub body: Value,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// An issue as stored (the admin API hands out clones).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimIssue {
    pub id: u64,
    pub key: String,
    pub project: String,
    pub issue_type: String,
    pub summary: String,
    /// ADF, or `None` for null.
    pub description: Option<Value>,
    /// The status name; `status_category` is its category key.
    pub status: String,
    pub status_category: String,
    pub priority: String,
    pub resolution: Option<String>,
    pub resolution_date: Option<DateTime<Utc>>,
    /// accountIds.
    pub assignee: Option<String>,
    pub reporter: Option<String>,
    pub labels: Vec<String>,
    pub components: Vec<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub comments: Vec<SimComment>,
    pub properties: BTreeMap<String, Value>,
    /// Oldest first (`sim/changelog.rs`).
    pub changelog: Vec<SimHistory>,
}

impl SimIssue {
    fn number(&self) -> u64 {
        self.key
            .rsplit_once('-')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0)
    }
}

/// A transition carried out through `POST /issue/{key}/transitions`, as posted.
#[derive(Debug, Clone, PartialEq)]
pub struct PostedTransition {
    pub key: String,
    pub id: String,
    pub name: String,
    /// Status names before and after.
    pub from: String,
    pub to: String,
    /// The request's `fields`, if it had any.
    pub fields: Option<Value>,
}

#[derive(Debug)]
struct Project {
    id: u64,
    key: String,
    workflow: Workflow,
    next_number: u64,
    components: Vec<String>,
}

/// An issue and the versions the search index may still be showing, each with the
/// index-clock time it was written.
#[derive(Debug)]
struct Record {
    current: SimIssue,
    history: VecDeque<(Duration, SimIssue)>,
}

/// The simulator's model (what [`JiraSim`] locks); opaque outside this module.
#[derive(Debug)]
pub struct SimState {
    base_url: String,
    users: Vec<SimUser>,
    credentials: Option<(String, String)>,
    projects: Vec<Project>,
    records: Vec<Record>,
    by_key: HashMap<String, usize>,
    last_updated: Option<DateTime<Utc>>,
    next_comment_id: u64,
    epoch: Instant,
    index_skew: Duration,
    index_lag: Duration,
    per_issue_limit: Option<u32>,
    writes: HashMap<u64, VecDeque<Instant>>,
    posted_transitions: Vec<PostedTransition>,
    /// The accountId the change being committed is made by, set under the lock
    /// by the handler or analyst call that makes it (taken by `commit`).
    acting: Option<String>,
    next_history_id: u64,
}

impl simkit::VendorState for SimState {
    const NAME: &'static str = "JiraSim";
}

/// A running Jira simulator.
pub type JiraSim = simkit::Sim<SimState>;

/// What the handlers share: the state and the kit.
type Shared = Arc<simkit::Shared<SimState>>;

const FIRST_ISSUE_ID: u64 = 10000;

impl SimState {
    fn new(base_url: String) -> SimState {
        SimState {
            base_url,
            users: Vec::new(),
            credentials: None,
            projects: Vec::new(),
            records: Vec::new(),
            by_key: HashMap::new(),
            last_updated: None,
            next_comment_id: 10000,
            epoch: Instant::now(),
            index_skew: Duration::ZERO,
            index_lag: DEFAULT_INDEX_LAG,
            per_issue_limit: None,
            writes: HashMap::new(),
            posted_transitions: Vec::new(),
            acting: None,
            next_history_id: 10000,
        }
    }

    /// The next write time: now to the millisecond, strictly after the previous one.
    fn tick(&mut self) -> DateTime<Utc> {
        let now = simkit::now();
        let now = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        let t = match self.last_updated {
            Some(last) if now <= last => last + chrono::Duration::milliseconds(1),
            _ => now,
        };
        self.last_updated = Some(t);
        t
    }

    fn index_now(&self) -> Duration {
        self.epoch.elapsed() + self.index_skew
    }

    fn find(&self, id_or_key: &str) -> Option<usize> {
        if let Ok(id) = id_or_key.parse::<u64>() {
            let i = id.checked_sub(FIRST_ISSUE_ID)? as usize;
            return (i < self.records.len()).then_some(i);
        }
        self.by_key.get(&id_or_key.to_ascii_uppercase()).copied()
    }

    fn issue(&self, id_or_key: &str) -> Result<usize, JiraError> {
        self.find(id_or_key).ok_or_else(JiraError::issue_not_found)
    }

    fn project(&self, key: &str) -> Option<&Project> {
        self.projects
            .iter()
            .find(|p| p.key.eq_ignore_ascii_case(key) || p.id.to_string() == key)
    }

    fn workflow(&self, issue: &SimIssue) -> &Workflow {
        &self
            .project(&issue.project)
            .expect("an issue's project exists")
            .workflow
    }

    fn user(&self, account_id: &str) -> Option<&SimUser> {
        self.users.iter().find(|u| u.account_id == account_id)
    }

    fn user_by_email(&self, email: &str) -> Option<&SimUser> {
        self.users.iter().find(|u| {
            u.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
    }

    fn add_user(&mut self, email: Option<&str>, display_name: &str) -> String {
        let account_id = format!(
            "712020:{:08x}-sim{:04}",
            fastrand::u32(..),
            self.users.len()
        );
        self.users.push(SimUser {
            account_id: account_id.clone(),
            email: email.map(str::to_string),
            display_name: display_name.to_string(),
        });
        account_id
    }

    /// Records a new version of issue `i` (the index sees it after the lag).
    fn commit(&mut self, i: usize, mut issue: SimIssue) {
        let old = self.records[i].current.clone();
        self.record_history(&old, &mut issue);
        let at = self.index_now();
        let lag = self.index_lag;
        let record = &mut self.records[i];
        record.current = issue.clone();
        record.history.push_back((at, issue));
        while record.history.len() > 1 && record.history[1].0 + lag <= at {
            record.history.pop_front();
        }
    }

    /// The version of `record` the search index shows now.
    fn indexed<'a>(&self, record: &'a Record, reconcile: bool) -> Option<&'a SimIssue> {
        if reconcile {
            return Some(&record.current);
        }
        let now = self.index_now();
        record
            .history
            .iter()
            .rev()
            .find(|(at, _)| *at + self.index_lag <= now)
            .map(|(_, issue)| issue)
    }

    fn add_comment(&mut self, issue: &mut SimIssue, author: String, body: Value) -> SimComment {
        let now = self.tick();
        let comment = SimComment {
            id: self.next_comment_id.to_string(),
            author,
            body,
            created: now,
            updated: now,
        };
        self.next_comment_id += 1;
        issue.comments.push(comment.clone());
        issue.updated = now;
        comment
    }
}

// ---------------------------------------------------------------------------------
// Errors

/// An `ErrorCollection` answer.
#[derive(Debug)]
struct JiraError {
    status: StatusCode,
    messages: Vec<String>,
    errors: BTreeMap<String, String>,
}

impl JiraError {
    fn new(status: StatusCode, message: impl Into<String>) -> JiraError {
        JiraError {
            status,
            messages: vec![message.into()],
            errors: BTreeMap::new(),
        }
    }

    fn bad(message: impl Into<String>) -> JiraError {
        JiraError::new(StatusCode::BAD_REQUEST, message)
    }

    fn fields(errors: BTreeMap<String, String>) -> JiraError {
        JiraError {
            status: StatusCode::BAD_REQUEST,
            messages: Vec::new(),
            errors,
        }
    }

    fn field(field: &str, message: impl Into<String>) -> JiraError {
        JiraError::fields(BTreeMap::from([(field.to_string(), message.into())]))
    }

    fn issue_not_found() -> JiraError {
        JiraError::new(StatusCode::NOT_FOUND, NOT_FOUND)
    }

    fn summary(&self) -> String {
        self.messages
            .iter()
            .cloned()
            .chain(self.errors.iter().map(|(f, m)| format!("{f}: {m}")))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl IntoResponse for JiraError {
    fn into_response(self) -> Response {
        let body = json!({ "errorMessages": self.messages, "errors": self.errors });
        (self.status, axum::Json(body)).into_response()
    }
}

fn error_body(message: &str) -> String {
    json!({ "errorMessages": [message], "errors": {} }).to_string()
}

type Reply = Result<Response, JiraError>;

fn parse_body(body: &[u8]) -> Result<Map<String, Value>, JiraError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(JiraError::bad(
            "Can not deserialize instance of the request bean out of a non-object value",
        )),
        Err(e) => Err(JiraError::bad(format!(
            "Unexpected character in the request body: {e}"
        ))),
    }
}

fn reject_unknown(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), JiraError> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(JiraError::bad(format!(
            "Unrecognized field \"{k}\" (not marked as ignorable)"
        ))),
        None => Ok(()),
    }
}

fn query_pairs(query: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn query_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Comma-separated or repeated parameters, as Jira accepts both.
fn query_list(pairs: &[(String, String)], name: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == name)
        .flat_map(|(_, v)| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

// ---------------------------------------------------------------------------------
// Field validation (shared by create, edit and the analyst API): `sim/fields.rs`.
mod fields;
use fields::*;

// ---------------------------------------------------------------------------------
// Rendering: `sim/render.rs`.
mod render;
use render::*;

// ---------------------------------------------------------------------------------
// The changelog: `sim/changelog.rs`.
mod changelog;
pub use changelog::{DEFAULT_ANALYST, EMBEDDED_HISTORIES, SimHistory, SimHistoryItem};
use changelog::{changelog_json, expands_changelog};

// ---------------------------------------------------------------------------------
// The server

impl JiraSim {
    /// Serves the simulator on `listener` (plain HTTP). It starts with no users,
    /// no projects and no credentials: until [`JiraSim::set_credentials`] is called
    /// every API request is refused with 401.
    pub async fn start(listener: TcpListener) -> JiraSim {
        let sim = simkit::Shared::new(SimState::new(simkit::plain_base_url(&listener)), ());
        let api = simkit::Shared::router()
            .route("/rest/api/3/issue", post(create_issue))
            .route("/rest/api/3/issue/{key}", get(get_issue).put(edit_issue))
            .route(
                "/rest/api/3/issue/{key}/transitions",
                get(get_transitions).post(do_transition),
            )
            .route(
                "/rest/api/3/issue/{key}/comment",
                get(get_comments).post(add_comment),
            )
            .route(
                "/rest/api/3/issue/{key}/properties/{property}",
                get(get_property).put(put_property),
            )
            .route("/rest/api/3/user/search", get(user_search))
            .route("/rest/api/3/myself", get(myself))
            .route("/rest/api/3/project/{key}", get(get_project))
            .route("/rest/api/3/mypermissions", get(my_permissions))
            .route("/rest/api/3/search", get(search_gone).post(search_gone))
            .route("/rest/api/3/search/jql", get(search_get).post(search_post))
            .route("/_sim/issues", get(admin_issues))
            .route("/_sim/issues/{key}/transition", post(admin_transition))
            .fallback(no_route)
            .layer(middleware::from_fn_with_state(sim.clone(), guard));
        // Outside the kit: its burst-limit 429s carry Jira's reason header too.
        JiraSim::serve(listener, sim, api, |router| {
            router.layer(middleware::map_response(tag_rate_limits))
        })
        .await
    }

    /// Adds a user; returns the accountId.
    pub fn add_user(&self, email: &str, display_name: &str) -> String {
        self.lock().add_user(Some(email), display_name)
    }

    /// The one email + API token pair accepted (HTTP Basic).
    pub fn set_credentials(&self, email: &str, api_token: &str) {
        self.lock().credentials = Some((email.to_string(), api_token.to_string()));
    }

    /// Adds a project. The workflow's transition ids are offset by 100 for each
    /// project added before this one, as ids differ between real workflows.
    ///
    /// Panics if the workflow has no status or a transition names a status it
    /// does not define (a mistake in the test or demo that builds it).
    pub fn add_project(&self, key: &str, mut workflow: Workflow) {
        assert!(!workflow.statuses.is_empty(), "a workflow needs a status");
        for t in &workflow.transitions {
            for name in t.from.iter().chain([&t.to]) {
                assert!(
                    workflow.status(name).is_some(),
                    "transition {} names the unknown status {name:?}",
                    t.id
                );
            }
        }
        let mut state = self.lock();
        let n = state.projects.len() as u32;
        for t in &mut workflow.transitions {
            t.id += 100 * n;
        }
        let id = 10000 + u64::from(n);
        state.projects.push(Project {
            id,
            key: key.to_string(),
            workflow,
            next_number: 1,
            components: Vec::new(),
        });
    }

    /// An admin's edit of a project's workflow: its transitions are replaced by
    /// `workflow`'s (ids as given, not offset), so a client's kept transition ids
    /// may no longer be offered. Statuses are kept; issues stay where they are.
    ///
    /// Panics if the project does not exist or a transition names a status the
    /// project's workflow does not define.
    pub fn edit_workflow(&self, project: &str, workflow: Workflow) {
        let mut state = self.lock();
        let p = state
            .projects
            .iter_mut()
            .find(|p| p.key.eq_ignore_ascii_case(project))
            .expect("the project exists");
        for t in &workflow.transitions {
            for name in t.from.iter().chain([&t.to]) {
                assert!(
                    p.workflow.status(name).is_some(),
                    "transition {} names the unknown status {name:?}",
                    t.id
                );
            }
        }
        p.workflow.transitions = workflow.transitions;
    }

    /// Adds a component to a project (components on create/edit must exist).
    pub fn add_component(&self, project: &str, name: &str) {
        let mut state = self.lock();
        if let Some(p) = state
            .projects
            .iter_mut()
            .find(|p| p.key.eq_ignore_ascii_case(project))
        {
            p.components.push(name.to_string());
        }
    }

    /// How stale search is: it sees each issue as it was `lag` ago, and not at all
    /// if it was created less than `lag` ago (unless listed in `reconcileIssues`).
    /// Versions older than the lag in force at write time are forgotten.
    /// [`DEFAULT_INDEX_LAG`] unless set; `Duration::ZERO` is kinder than Jira.
    pub fn set_index_lag(&self, lag: Duration) {
        self.lock().index_lag = lag;
    }

    /// Lets the search index's clock run ahead by `by`, as if that much time had
    /// passed (tests use it instead of sleeping out the lag).
    pub fn pass_index_time(&self, by: Duration) {
        self.lock().index_skew += by;
    }

    /// A per-second burst limit for all API requests (429, `Retry-After: 1`,
    /// `RateLimit-Reason: jira-burst-based`); `None` lifts it.
    pub fn set_burst_limit(&self, per_second: Option<u32>) {
        self.kit.set_throttle(per_second.map(|n| Throttle {
            per_second: n,
            retry_after: "1".into(),
            body: error_body("Rate limit exceeded."),
        }));
    }

    /// More than `writes` writes to one issue within a second get 429 with
    /// `RateLimit-Reason: jira-per-issue-on-write`; `None` (the default) lifts it.
    pub fn set_per_issue_write_limit(&self, writes: Option<u32>) {
        let mut state = self.lock();
        state.per_issue_limit = writes;
        state.writes.clear();
    }

    pub fn issue(&self, key: &str) -> Option<SimIssue> {
        let state = self.lock();
        state.find(key).map(|i| state.records[i].current.clone())
    }

    pub fn issues(&self) -> Vec<SimIssue> {
        let state = self.lock();
        state.records.iter().map(|r| r.current.clone()).collect()
    }

    /// The transitions clients carried out over REST, oldest first (an analyst's
    /// moves are not listed).
    pub fn posted_transitions(&self) -> Vec<PostedTransition> {
        self.lock().posted_transitions.clone()
    }

    /// The issue as `GET /issue/{key}?fields=*all&properties=*all` renders it.
    pub fn issue_json(&self, key: &str) -> Option<Value> {
        let state = self.lock();
        let i = state.find(key)?;
        Some(issue_json(
            &state,
            &state.records[i].current,
            &FieldSelection::all(),
            &["*all".to_string()],
        ))
    }

    /// Moves the issue to the named status as an analyst would (the workflow's
    /// post-functions apply: done sets `resolution`, default "Done"; leaving done
    /// clears it), without checking that a transition leads there.
    pub fn transition_as_analyst(
        &self,
        key: &str,
        to_status_name: &str,
        resolution: Option<&str>,
    ) -> Result<(), String> {
        analyst_transition(self.shared(), key, None, to_status_name, resolution)
    }

    /// [`JiraSim::transition_as_analyst`] by the user `who` (a display name or
    /// email; a new user of that name if unknown), the changelog's author.
    pub fn transition_as(
        &self,
        key: &str,
        who: &str,
        to_status_name: &str,
        resolution: Option<&str>,
    ) -> Result<(), String> {
        analyst_transition(self.shared(), key, Some(who), to_status_name, resolution)
    }

    /// [`JiraSim::edit_as_analyst`] by the user `who` (a display name or email;
    /// a new user of that name if unknown), the changelog's author.
    pub fn edit_as(&self, key: &str, who: &str, field: &str, value: Value) -> Result<(), String> {
        let account = self.lock().account_named(who);
        self.edit_by(key, Some(account), field, value)
    }

    /// Edits one field as an analyst would in the UI. Besides Jira's own shapes,
    /// `description` takes plain text, `priority`/`resolution` a name, `assignee`
    /// an email or accountId.
    pub fn edit_as_analyst(&self, key: &str, field: &str, value: Value) -> Result<(), String> {
        self.edit_by(key, None, field, value)
    }

    fn edit_by(
        &self,
        key: &str,
        account: Option<String>,
        field: &str,
        value: Value,
    ) -> Result<(), String> {
        let mut state = self.lock();
        let i = state.find(key).ok_or(NOT_FOUND)?;
        let value = match (field, value) {
            ("description", Value::String(text)) => super::adf::text_to_adf(&text),
            ("priority" | "resolution", Value::String(name)) => json!({ "name": name }),
            ("assignee", Value::String(who)) => {
                let id = state
                    .user_by_email(&who)
                    .map(|u| u.account_id.clone())
                    .unwrap_or(who);
                json!({ "accountId": id })
            }
            (_, v) => v,
        };
        let fields = Map::from_iter([(field.to_string(), value)]);
        state.acting = account;
        apply_edit(&mut state, i, &fields, &Map::new())
            .map(|_| ())
            .map_err(|e| e.summary())
    }

    /// Adds a comment by `author` (an email or display name of a known user, or a
    /// new user of that display name). Returns the comment id.
    pub fn comment_as_analyst(
        &self,
        key: &str,
        author: &str,
        text: &str,
    ) -> Result<String, String> {
        let mut state = self.lock();
        let i = state.find(key).ok_or(NOT_FOUND)?;
        let known = state
            .users
            .iter()
            .find(|u| {
                u.display_name == author
                    || u.email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(author))
            })
            .map(|u| u.account_id.clone());
        let account = match known {
            Some(id) => id,
            None => state.add_user(None, author),
        };
        let mut issue = state.records[i].current.clone();
        let comment = state.add_comment(&mut issue, account, super::adf::text_to_adf(text));
        state.commit(i, issue);
        Ok(comment.id)
    }

    /// Test hook: pretends the issue was last written at `updated` (and created no
    /// later), long enough ago that the search index shows it.
    pub fn backdate(&self, key: &str, updated: DateTime<Utc>) -> Result<(), String> {
        let mut state = self.lock();
        let i = state.find(key).ok_or(NOT_FOUND)?;
        let at = state.index_now().saturating_sub(state.index_lag);
        let record = &mut state.records[i];
        record.current.updated = updated;
        if record.current.created > updated {
            record.current.created = updated;
        }
        record.history = VecDeque::from([(at, record.current.clone())]);
        Ok(())
    }
}

/// Basic auth on every API request and the per-issue write limit.
async fn guard(State(sim): State<Shared>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if path.starts_with("/_sim") {
        return next.run(request).await;
    }
    let caller = {
        let state = sim.lock();
        match simkit::basic_credentials(request.headers()) {
            Some((email, token))
                if state
                    .credentials
                    .as_ref()
                    .is_some_and(|(e, t)| e.eq_ignore_ascii_case(&email) && *t == token) =>
            {
                email
            }
            _ => {
                let mut response =
                    JiraError::new(StatusCode::UNAUTHORIZED, UNAUTHENTICATED).into_response();
                response.headers_mut().insert(
                    "www-authenticate",
                    HeaderValue::from_static("Basic realm=\"protected-area\""),
                );
                return response;
            }
        }
    };
    if request.method() != Method::GET
        && request.method() != Method::HEAD
        && let Some(rest) = path.strip_prefix("/rest/api/3/issue/")
    {
        let id_or_key = rest.split('/').next().unwrap_or("");
        let mut state = sim.lock();
        if let (Some(limit), Some(i)) = (state.per_issue_limit, state.find(id_or_key)) {
            let id = state.records[i].current.id;
            let now = Instant::now();
            let writes = state.writes.entry(id).or_default();
            while writes
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
            {
                writes.pop_front();
            }
            if writes.len() >= limit as usize {
                let mut response = JiraError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many writes to this issue. Please try again later.",
                )
                .into_response();
                let headers = response.headers_mut();
                headers.insert("retry-after", HeaderValue::from_static("1"));
                headers.insert(
                    "ratelimit-reason",
                    HeaderValue::from_static("jira-per-issue-on-write"),
                );
                return response;
            }
            writes.push_back(now);
        }
    }
    request.extensions_mut().insert(Caller(caller));
    next.run(request).await
}

/// 429s from the burst limit carry Jira's reason header.
async fn tag_rate_limits(mut response: Response) -> Response {
    if response.status() == StatusCode::TOO_MANY_REQUESTS
        && !response.headers().contains_key("ratelimit-reason")
    {
        response.headers_mut().insert(
            "ratelimit-reason",
            HeaderValue::from_static("jira-burst-based"),
        );
    }
    response
}

async fn no_route(request: Request) -> Response {
    JiraError::new(
        StatusCode::NOT_FOUND,
        format!("null for uri: {}", request.uri().path()),
    )
    .into_response()
}

// ---------------------------------------------------------------------------------
// The issue handlers: `sim/issues.rs`.
mod issues;
use issues::*;

async fn user_search(State(sim): State<Shared>, RawQuery(query): RawQuery) -> Reply {
    let pairs = query_pairs(&query);
    let state = sim.lock();
    let by_query = query_value(&pairs, "query").map(str::to_lowercase);
    let by_id = query_value(&pairs, "accountId");
    if by_query.is_none() && by_id.is_none() {
        return Err(JiraError::bad(
            "The query parameter 'query' or 'accountId' must be provided.",
        ));
    }
    let users: Vec<Value> = state
        .users
        .iter()
        .filter(|u| by_id.is_none_or(|id| u.account_id == id))
        .filter(|u| {
            by_query.as_deref().is_none_or(|q| {
                u.email
                    .as_deref()
                    .is_some_and(|e| e.to_lowercase().starts_with(q))
                    || u.display_name.to_lowercase().contains(q)
            })
        })
        .take(50)
        .map(|u| user_json(&state, &u.account_id))
        .collect();
    Ok(json_response(StatusCode::OK, Value::Array(users)))
}

async fn myself(State(sim): State<Shared>, caller: Caller) -> Reply {
    let state = sim.lock();
    let email = caller.0;
    match state.user_by_email(&email) {
        Some(u) => Ok(json_response(
            StatusCode::OK,
            user_json(&state, &u.account_id),
        )),
        None => Ok(json_response(
            StatusCode::OK,
            json!({"accountId": "", "emailAddress": email, "displayName": email, "active": true, "timeZone": "UTC"}),
        )),
    }
}

/// `GET /project/{projectIdOrKey}`: the project with the issue types it offers.
async fn get_project(State(sim): State<Shared>, Path(key): Path<String>) -> Reply {
    let state = sim.lock();
    let project = state.project(&key).ok_or_else(|| {
        JiraError::new(
            StatusCode::NOT_FOUND,
            format!("No project could be found with key '{key}'."),
        )
    })?;
    let base = &state.base_url;
    let issue_types: Vec<Value> = ISSUE_TYPES
        .iter()
        .map(|(id, name)| {
            json!({
                "self": format!("{base}/rest/api/3/issuetype/{id}"),
                "id": id,
                "name": name,
                "subtask": false,
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({
            "self": format!("{base}/rest/api/3/project/{}", project.id),
            "id": project.id.to_string(),
            "key": project.key,
            "name": project.key,
            "projectTypeKey": "software",
            "issueTypes": issue_types,
        }),
    ))
}

/// The project permissions `GET /mypermissions` answers for (the simulator has no
/// permission scheme: the caller holds them all).
const PERMISSION_KEYS: &[(&str, &str)] = &[
    ("BROWSE_PROJECTS", "Browse Projects"),
    ("CREATE_ISSUES", "Create Issues"),
    ("EDIT_ISSUES", "Edit Issues"),
    ("TRANSITION_ISSUES", "Transition Issues"),
    ("RESOLVE_ISSUES", "Resolve Issues"),
    ("ASSIGN_ISSUES", "Assign Issues"),
    ("ADD_COMMENTS", "Add Comments"),
    ("USER_PICKER", "Browse users and groups"),
];

/// `GET /mypermissions?projectKey=…&permissions=A,B`: whether the caller holds each
/// permission named (`permissions` is required, as on Jira Cloud).
async fn my_permissions(State(sim): State<Shared>, RawQuery(query): RawQuery) -> Reply {
    let pairs = query_pairs(&query);
    let state = sim.lock();
    if let Some(key) = query_value(&pairs, "projectKey")
        && state.project(key).is_none()
    {
        return Err(JiraError::new(
            StatusCode::NOT_FOUND,
            format!("No project could be found with key '{key}'."),
        ));
    }
    let wanted = query_value(&pairs, "permissions")
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| JiraError::bad("The permissions query parameter is required."))?;
    let mut permissions = Map::new();
    for key in wanted.split(',').map(str::trim) {
        let (key, name) = PERMISSION_KEYS
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .ok_or_else(|| JiraError::bad(format!("Invalid permission key: {key}")))?;
        let kind = if *key == "USER_PICKER" {
            "GLOBAL"
        } else {
            "PROJECT"
        };
        permissions.insert(
            key.to_string(),
            json!({"key": key, "name": name, "type": kind, "havePermission": true}),
        );
    }
    Ok(json_response(
        StatusCode::OK,
        json!({ "permissions": permissions }),
    ))
}

async fn search_gone() -> Reply {
    Err(JiraError::new(
        StatusCode::GONE,
        "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API.",
    ))
}

// ---------------------------------------------------------------------------------
// Search: `sim/search.rs`.
mod search;
use search::*;

// ---------------------------------------------------------------------------------
// Admin HTTP: `sim/admin.rs`.
mod admin;
use admin::*;

// ---------------------------------------------------------------------------------
// JQL

/// The JQL subset the simulator understands: clauses on `project`, `labels`, `key`
/// (`issuekey`), `id`, `updated`, `created`, `summary` (`~`), `status`,
/// `statusCategory`, `resolution`, `assignee`; `AND`, `OR`, `NOT`, parentheses,
/// `IN (…)`, `NOT IN (…)`; `ORDER BY` up to 7 fields. Strings are `"…"` or `'…'`
/// with backslash escapes.
pub(crate) mod jql;

#[cfg(test)]
mod tests;
