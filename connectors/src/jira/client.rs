//! The Jira Cloud client: [`JiraTickets`] implements the engine's `TicketSystem`
//! port over REST v3 (`/rest/api/3/...`, HTTP Basic with email + API token).
//! Changes are polled with `POST /search/jql` on the `updated` field and paged with
//! `nextPageToken`; the correlation lives in a label (`itsm-bridge:<source>:<id>`,
//! searchable) and an entity property (authoritative, not searchable); status moves
//! only through the transitions the workflow offers, whose ids differ per workflow:
//! they are looked up once per status (a client writes one project and issue type,
//! so one workflow) and kept; a transition the issue then refuses (the workflow was
//! edited, a condition holds on this issue) is looked up again before the error
//! counts. A status more than one transition away (Done → To Do → In Progress)
//! takes one lookup per status passed. Every literal
//! put into JQL is quoted and escaped, because project keys and incident ids are
//! not ours to trust.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bridge_core::model::{
    Comment, Correlation, Page, TicketCreate, TicketSnapshot, TicketUpdate, Timestamp,
};
use bridge_core::ports::{ConnectorError, ConnectorResult, ErrorKind, Lookup, TicketSystem};
use bridge_core::vocab::JIRA_STATUS_CATEGORY;
use chrono::Timelike;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use url::Url;

use super::adf::text_to_adf;
use super::wire::{
    self, CommentPage, CreatedIssue, IssueBean, IssueFields, MARKER_LABEL, MAX_LABEL_LEN, NamedRef,
    PROPERTY_KEY, SearchResponse, Status, StatusCategory, Transition, TransitionsResponse, User,
    WireComment,
};
use crate::http::{Api, Auth, Request};
use crate::misses::Misses;

/// How many issues after the last known key a lost create's lookup reads before
/// it leaves the answer to the search (see `find_created`).
const KEY_WALK_LIMIT: usize = 50;

pub use super::wire::error_message;

/// The system name in errors and logs.
pub const SYSTEM: &str = "jira";

/// The fields every search asks for (search returns only ids otherwise). The
/// `comment` field embeds an issue's comments up to a limit Jira states in the
/// page's `total`: a listed issue whose comments all came with it needs no read
/// of them (`listed_comments`).
pub const SEARCH_FIELDS: &[&str] = &[
    "summary",
    "description",
    "status",
    "priority",
    "resolution",
    "assignee",
    "labels",
    "created",
    "updated",
    "comment",
];

/// The version a fresh issue holds until a poll lists it: older than any
/// `updated` Jira gives, so that listing is always compared with the baseline
/// (see `JiraTickets::unread_issue`).
const NOT_READ_BACK: &str = "1970-01-01T00:00:00.000+0000";

/// Search page size: Jira's default, and well under its cap for many fields.
const PAGE_SIZE: u32 = 50;
/// Comment page size when an issue has more comments than it embeds.
const COMMENT_PAGE_SIZE: u32 = 100;

/// The attributes the bridge may write on a Jira issue.
const WRITABLE: &[&str] = &[
    "summary",
    "description",
    "status",
    "priority",
    "resolution",
    "assignee",
];

/// Builds the [`Api`] for a Jira site: `base_url` is the site
/// (`https://acme.atlassian.net`), signed with HTTP Basic `email:api_token`.
pub fn jira_api(
    base_url: &str,
    client: reqwest::Client,
    email: impl Into<String>,
    api_token: SecretString,
) -> Result<Api, String> {
    Api::new(
        SYSTEM,
        base_url,
        client,
        Auth::Basic {
            username: email.into(),
            password: api_token,
        },
        error_message,
    )
}

/// A JQL string literal: double-quoted, with `"` and `\` backslash-escaped and
/// control characters written as escapes, so no value can end the literal early
/// and add clauses of its own.
pub fn jql_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JQL date literal for `since`, floored to the minute (JQL's precision).
/// JQL reads it in the calling user's time zone: the bridge's Jira account should
/// use UTC, or the engine's overlap window must cover the offset.
pub fn jql_minute(since: Timestamp) -> String {
    let floored = since
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(since);
    floored.format("%Y-%m-%d %H:%M").to_string()
}

/// The JQL that lists the bridge's issues in `project_key` updated at or after `since`.
pub fn changed_since_jql(project_key: &str, since: Timestamp) -> String {
    format!(
        "project = {} AND labels = {} AND updated >= {} ORDER BY updated ASC, key ASC",
        jql_string(project_key),
        jql_string(MARKER_LABEL),
        jql_string(&jql_minute(since)),
    )
}

/// The JQL that finds the issue carrying `label` in `project_key`.
pub fn correlation_jql(project_key: &str, label: &str) -> String {
    format!(
        "project = {} AND labels = {} ORDER BY key ASC",
        jql_string(project_key),
        jql_string(label),
    )
}

/// Jira Cloud as a ticket system for one project.
pub struct JiraTickets {
    api: Api,
    project_key: String,
    issue_type: String,
    /// email (lowercase) → the user as Jira shows it (accountId, and the email
    /// unless hidden), for `assignee`.
    accounts: Mutex<HashMap<String, User>>,
    /// Emails (lowercase) no Jira user had, asked again only after
    /// [`crate::misses::MISS_TTL`]: a backlog assigned to someone Jira lacks
    /// costs one search, and a user added later is still found.
    unknown_accounts: Misses<String>,
    /// The account's time zone has been looked at (see `check_time_zone`).
    time_zone_checked: AtomicBool,
    /// Status name (lowercase) → the transitions the workflow offers out of it.
    transitions: Mutex<HashMap<String, Vec<Transition>>>,
    /// The status a created issue starts in (the workflow's initial status),
    /// read from the first issue this client creates.
    initial: Mutex<Option<StatusAt>>,
    /// Keys whose last listing did not embed all their comments.
    comments_cut: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for JiraTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JiraTickets")
            .field("api", &self.api)
            .field("project_key", &self.project_key)
            .field("issue_type", &self.issue_type)
            .finish_non_exhaustive()
    }
}

/// What a transition should do with the `resolution` field, if its screen has it:
/// `Set` applies to the step that enters done, `Clear` to the one that leaves it.
enum ResolutionOnScreen {
    Leave,
    Set(String),
    Clear,
}

/// The most transitions one status change may take (Done → To Do → In Progress
/// takes two in the standard workflow).
pub const MAX_TRANSITIONS: usize = 3;

/// Where an issue stands: its status name and status category key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StatusAt {
    name: String,
    category: String,
}

impl StatusAt {
    fn of(snapshot: &TicketSnapshot) -> StatusAt {
        let attr = |name: &str| snapshot.attrs.get(name).cloned().unwrap_or_default();
        StatusAt {
            name: attr("status_name"),
            category: attr("status"),
        }
    }
}

impl JiraTickets {
    /// `api`'s base is the Jira site URL, signed with `Auth::Basic { email, api_token }`
    /// and reading errors with [`error_message`] (see [`jira_api`]).
    pub fn new(api: Api, project_key: String, issue_type: String) -> JiraTickets {
        JiraTickets {
            api,
            project_key,
            issue_type,
            accounts: Mutex::new(HashMap::new()),
            unknown_accounts: Misses::default(),
            time_zone_checked: AtomicBool::new(false),
            transitions: Mutex::new(HashMap::new()),
            initial: Mutex::new(None),
            comments_cut: Mutex::new(HashSet::new()),
        }
    }

    pub fn project_key(&self) -> &str {
        &self.project_key
    }

    fn err(&self, kind: ErrorKind, message: impl Into<String>) -> ConnectorError {
        self.api.error(kind, message)
    }

    fn permanent(&self, message: impl Into<String>) -> ConnectorError {
        self.err(ErrorKind::Permanent, message)
    }

    /// `<base>/rest/api/3/<segments…>`, each segment percent-encoded (an issue key
    /// cannot smuggle `/`, `?` or `#` into the path).
    fn rest(&self, segments: &[&str]) -> Url {
        self.api.segments_url(
            ["rest", "api", "3"]
                .into_iter()
                .chain(segments.iter().copied()),
        )
    }

    fn snapshot(&self, issue: &IssueBean) -> ConnectorResult<TicketSnapshot> {
        wire::to_snapshot(issue, self.api.base())
            .map_err(|e| self.err(ErrorKind::InvalidPayload, e))
    }

    async fn search(&self, jql: &str, token: Option<&str>) -> ConnectorResult<SearchResponse> {
        let mut body = json!({
            "jql": jql,
            "maxResults": PAGE_SIZE,
            "fields": SEARCH_FIELDS,
            // Who changed each field, for the ledger, with the read already made.
            "expand": "changelog",
        });
        if let Some(token) = token {
            body["nextPageToken"] = json!(token);
        }
        // A search changes nothing: safe to repeat although it is a POST.
        let request =
            Request::with_body(Method::POST, self.rest(&["search", "jql"]), body).idempotent(true);
        self.api.send(request).await?.json(self.api.system())
    }

    fn page(&self, jql: &str, response: SearchResponse) -> ConnectorResult<Page<TicketSnapshot>> {
        {
            let mut cut = self.comments_cut.lock().expect("comments cut");
            for issue in &response.issues {
                let Some(key) = &issue.key else { continue };
                let whole =
                    issue.fields.comment.as_ref().is_some_and(|page| {
                        page.total.unwrap_or(0) as usize <= page.comments.len()
                    });
                if whole {
                    cut.remove(key);
                } else {
                    cut.insert(key.clone());
                }
            }
        }
        let items = response
            .issues
            .iter()
            .filter_map(|i| match self.snapshot(i) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(system = self.api.system(), issue = ?i.key, error = %e, "skipping an issue that does not convert");
                    None
                }
            })
            .collect();
        let next = match (response.is_last, response.next_page_token) {
            (Some(true), _) | (_, None) => None,
            (_, Some(token)) if token.is_empty() => None,
            // The token only means something with the same JQL: carry both.
            (_, Some(token)) => Some(format!("{}|{token}", URL_SAFE_NO_PAD.encode(jql))),
        };
        Ok(Page { items, next })
    }

    /// The issue as it is now, with all its comments.
    async fn read(&self, key: &str) -> ConnectorResult<TicketSnapshot> {
        let mut url = self.rest(&["issue", key]);
        let fields = SEARCH_FIELDS.join(",");
        url.query_pairs_mut()
            .append_pair("fields", &fields)
            // Who changed each field, for the ledger, with the read already made.
            .append_pair("expand", "changelog");
        let issue: IssueBean = self.api.get_json(url).await?;
        self.complete(key, issue).await
    }

    /// The snapshot of an issue as read, its comments read in full where the
    /// embedded page left some out.
    async fn complete(&self, key: &str, mut issue: IssueBean) -> ConnectorResult<TicketSnapshot> {
        if let Some(page) = issue.fields.comment.as_mut() {
            let total = page.total.unwrap_or(0) as usize;
            if total > page.comments.len() {
                page.comments = self.all_comments(key).await?;
            }
        }
        self.snapshot(&issue)
    }

    /// Every comment, oldest first, through the comment endpoint's offset paging.
    async fn all_comments(&self, key: &str) -> ConnectorResult<Vec<WireComment>> {
        let mut comments = Vec::new();
        loop {
            let mut url = self.rest(&["issue", key, "comment"]);
            url.query_pairs_mut()
                .append_pair("startAt", &comments.len().to_string())
                .append_pair("maxResults", &COMMENT_PAGE_SIZE.to_string())
                .append_pair("orderBy", "created");
            let page: CommentPage = self.api.get_json(url).await?;
            let got = page.comments.len();
            comments.extend(page.comments);
            let total = page.total.unwrap_or(0) as usize;
            if got == 0 || comments.len() >= total {
                return Ok(comments);
            }
        }
    }

    /// The user with this email as Jira shows it, if Jira knows one.
    async fn account(&self, email: &str) -> ConnectorResult<Option<User>> {
        let cache_key = email.to_lowercase();
        if let Some(user) = self.accounts.lock().expect("account cache").get(&cache_key) {
            return Ok(Some(user.clone()));
        }
        if self.unknown_accounts.known_missing(&cache_key) {
            return Ok(None);
        }
        let mut url = self.rest(&["user", "search"]);
        url.query_pairs_mut().append_pair("query", email);
        let users: Vec<User> = self.api.get_json(url).await?;
        let exact = users.iter().find(|u| {
            u.email_address
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        });
        // Email addresses can be hidden by privacy settings; then a single match
        // for the full address is the user.
        let found = exact.or(match users.as_slice() {
            [only] if only.email_address.is_none() => Some(only),
            _ => None,
        });
        match found {
            Some(user) => {
                self.accounts
                    .lock()
                    .expect("account cache")
                    .insert(cache_key, user.clone());
            }
            None => self.unknown_accounts.note(cache_key),
        }
        Ok(found.cloned())
    }

    /// The user to assign for the email, or `None` (logged) when no user has it.
    async fn assignee_user(&self, key: &str, email: &str) -> ConnectorResult<Option<User>> {
        let found = self.account(email).await?;
        if found.is_none() {
            tracing::warn!(
                system = self.api.system(),
                issue = key,
                assignee = email,
                "no Jira user has this email address; leaving the assignee unchanged"
            );
        }
        Ok(found)
    }

    /// `{"accountId": …}` for the email, or `None` (logged) when no user has it.
    async fn assignee_field(&self, key: &str, email: &str) -> ConnectorResult<Option<Value>> {
        let user = self.assignee_user(key, email).await?;
        Ok(user.map(|u| json!({ "accountId": u.account_id })))
    }

    /// JQL reads date literals in the calling user's time zone, and the bridge
    /// writes them in UTC. Once per client, look the account's zone up and warn
    /// when it is not UTC: west of UTC, updates in the offset would be missed.
    async fn check_time_zone(&self) {
        if self.time_zone_checked.swap(true, Ordering::Relaxed) {
            return;
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Myself {
            time_zone: Option<String>,
        }
        match self.api.get_json::<Myself>(self.rest(&["myself"])).await {
            Ok(Myself {
                time_zone: Some(zone),
            }) if !matches!(
                zone.as_str(),
                "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT" | "Etc/UCT" | "UCT" | "Etc/Zulu" | "Zulu"
            ) =>
            {
                tracing::warn!(
                    system = self.api.system(),
                    time_zone = %zone,
                    "the Jira account's time zone is not UTC, and JQL reads dates in it: \
                     set the account's time zone to UTC, or widen the polling overlap by \
                     the zone's offset"
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(system = self.api.system(), error = %e, "could not read the Jira account's time zone");
            }
        }
    }

    fn check_attr(&self, name: &str) -> ConnectorResult<()> {
        if WRITABLE.contains(&name) {
            Ok(())
        } else {
            Err(self.permanent(format!(
                "attribute {name:?} cannot be written to Jira (writable: {})",
                WRITABLE.join(", ")
            )))
        }
    }

    fn check_status(&self, status: &str) -> ConnectorResult<String> {
        JIRA_STATUS_CATEGORY
            .iter()
            .find(|c| c.eq_ignore_ascii_case(status))
            .map(|c| c.to_string())
            .ok_or_else(|| {
                self.permanent(format!(
                    "status {status:?} is not a Jira status category (use new, indeterminate or done)"
                ))
            })
    }

    fn check_label(&self, label: &str) -> ConnectorResult<()> {
        if label.is_empty()
            || label.chars().any(char::is_whitespace)
            || label.chars().count() > MAX_LABEL_LEN
        {
            return Err(self.permanent(format!(
                "label {label:?} is not a valid Jira label (no whitespace, 1 to {MAX_LABEL_LEN} characters)"
            )));
        }
        Ok(())
    }

    /// Moves the issue from its status `from` (name and category) to a status in
    /// category `target`, through the transitions it offers. Jira lists only the
    /// transitions out of the current status, so they are looked up again after
    /// each step. A transition straight to `target` is taken when there is one;
    /// otherwise a step to a status nearer to it (see [`choose_step`]), never back
    /// to a status already passed, at most [`MAX_TRANSITIONS`] in all. A chain cut
    /// short (an error after its first step) is safe to run again: the next call
    /// starts from wherever the issue then is. Returns whether a transition
    /// carried the resolution field.
    async fn transition_to(
        &self,
        key: &str,
        from: &StatusAt,
        target: &str,
        resolution: ResolutionOnScreen,
    ) -> ConnectorResult<bool> {
        let mut at = from.clone();
        let mut visited = vec![at.name.clone()];
        let mut taken: Vec<String> = Vec::new();
        let mut carried = false;
        loop {
            if taken.len() >= MAX_TRANSITIONS {
                return Err(self.permanent(format!(
                    "no transition of {key} leads to a status in category {target:?} \
                     within {MAX_TRANSITIONS} transitions (took {}); add one to the \
                     workflow or map the status differently",
                    taken.join(", then ")
                )));
            }
            let status = at.name.to_lowercase();
            let cached = self
                .transitions
                .lock()
                .expect("transitions")
                .get(&status)
                .cloned();
            let from_cache = cached.is_some();
            let offered = match cached {
                Some(transitions) => TransitionsResponse { transitions },
                None => {
                    let mut url = self.rest(&["issue", key, "transitions"]);
                    url.query_pairs_mut()
                        .append_pair("expand", "transitions.fields");
                    let offered: TransitionsResponse = self
                        .api
                        .get_json(url)
                        .await
                        .map_err(|e| cut_short(e, &taken, &at))?;
                    self.transitions
                        .lock()
                        .expect("transitions")
                        .insert(status.clone(), offered.transitions.clone());
                    offered
                }
            };
            let Some(step) = choose_step(&offered.transitions, &at.category, target, &visited)
            else {
                let available: Vec<String> = offered
                    .transitions
                    .iter()
                    .map(describe_transition)
                    .collect();
                let available = if available.is_empty() {
                    "none".to_string()
                } else {
                    available.join(", ")
                };
                let tried = if taken.is_empty() {
                    format!("available: {available}")
                } else {
                    format!(
                        "took {}; available from {}: {available}",
                        taken.join(", then "),
                        at.name
                    )
                };
                return Err(self.permanent(format!(
                    "no transition of {key} leads to a status in category {target:?} \
                     ({tried}); add one to the workflow or map the status differently"
                )));
            };
            let on_screen = step
                .fields
                .as_ref()
                .is_some_and(|f| f.contains_key("resolution"));
            let entering_done = is_category(&step.to.status_category.key, "done");
            let leaving_done = is_category(&at.category, "done") && !entering_done;
            let mut body = json!({ "transition": { "id": step.id } });
            if on_screen {
                // Only the step into done sets a resolution, and only the step out
                // of done clears it: an open status never gets one on the way.
                match &resolution {
                    ResolutionOnScreen::Set(name) if entering_done => {
                        body["fields"] = json!({ "resolution": { "name": name } });
                        carried = true;
                    }
                    ResolutionOnScreen::Clear if leaving_done => {
                        body["fields"] = json!({ "resolution": null });
                        carried = true;
                    }
                    _ => {}
                }
            }
            tracing::debug!(
                system = self.api.system(),
                issue = key,
                transition = %step.id,
                from = %at.name,
                to = %step.to.name,
                step = taken.len() + 1,
                "transitioning"
            );
            let request = Request::with_body(
                Method::POST,
                self.rest(&["issue", key, "transitions"]),
                body,
            );
            match self.api.send(request).await {
                Ok(_) => {}
                // Refused by this issue: look its transitions up afresh, once.
                Err(e) if from_cache && e.kind == ErrorKind::Permanent => {
                    self.transitions
                        .lock()
                        .expect("transitions")
                        .remove(&status);
                    continue;
                }
                Err(e) => return Err(cut_short(e, &taken, &at)),
            }
            taken.push(describe_transition(step));
            at = StatusAt {
                name: step.to.name.clone(),
                category: step.to.status_category.key.clone(),
            };
            if is_category(&at.category, target) {
                return Ok(carried);
            }
            visited.push(at.name.clone());
        }
    }

    /// Edits an issue and says what it then is, from the edit's own answer
    /// (`returnIssue=true`: 200 with the issue as a GET shows it), so no read
    /// follows the write. That answer is the version after the edit, which a
    /// lagging search's listing of the issue from before it is older than.
    async fn edit(&self, key: &str, body: Value) -> ConnectorResult<TicketSnapshot> {
        let mut url = self.rest(&["issue", key]);
        url.query_pairs_mut()
            .append_pair("returnIssue", "true")
            .append_pair("expand", "changelog");
        let request = Request::with_body(Method::PUT, url, body);
        let issue: IssueBean = self.api.send(request).await?.json(self.api.system())?;
        self.complete(key, issue).await
    }

    /// Moves a fresh issue to the status category the create asked for, and
    /// says what the issue then is. An issue left in the workflow's initial
    /// status is not read back (but the first one a client creates, read once to
    /// learn that status); an issue moved out of it is.
    ///
    /// Jira's create answers `{id, key, self}` only, so it does not say the
    /// issue's `updated` time. The link does not need it for an issue left as
    /// created: the snapshot returned holds what the bridge wrote at a version
    /// older than any Jira lists ([`NOT_READ_BACK`]), so the next poll's listing
    /// of the issue (full fields and comments) is compared with the baseline
    /// field by field. The bridge's own create compares equal and costs nothing;
    /// an edit made right after it (a workflow post-function, an automation
    /// rule, a person, in the same millisecond or later) differs and is carried.
    /// A search index lagging behind shows at worst the issue as created: the
    /// same fields again.
    ///
    /// Kept read: after a status move. A transition answers 204 with no body,
    /// and a lagging search index can still list the issue as it was created,
    /// in the initial status: compared by content, that older state would read
    /// as someone moving the issue back, and flow to the incident. The read
    /// gives the version after the move, which such a listing is older than.
    async fn settle_new_issue(
        &self,
        created: &CreatedIssue,
        sent: &IssueFields,
        ticket: &TicketCreate,
        target: Option<&str>,
    ) -> ConnectorResult<TicketSnapshot> {
        let key = created.key.as_str();
        let known = self.initial.lock().expect("initial status").clone();
        let (read, at) = match known {
            Some(at) => (None, at),
            None => {
                let snapshot = self.read(key).await?;
                let at = StatusAt::of(&snapshot);
                *self.initial.lock().expect("initial status") = Some(at.clone());
                (Some(snapshot), at)
            }
        };
        match target {
            Some(target) if !at.category.eq_ignore_ascii_case(target) => {
                let resolution = match (target, ticket.attrs.get("resolution")) {
                    ("done", Some(r)) => ResolutionOnScreen::Set(r.clone()),
                    _ => ResolutionOnScreen::Leave,
                };
                self.transition_to(key, &at, target, resolution).await?;
                self.read(key).await
            }
            _ => match read {
                Some(snapshot) => Ok(snapshot),
                None => {
                    let mut fields = sent.clone();
                    fields.status = Some(Status {
                        id: None,
                        name: at.name,
                        status_category: StatusCategory {
                            key: at.category,
                            ..StatusCategory::default()
                        },
                    });
                    self.unread_issue(created, fields)
                }
            },
        }
    }

    /// The transition a create can take in the same request (`transition` in
    /// `POST /issue`): one step from the workflow's initial status straight
    /// into a status of category `target`, among transitions this client has
    /// already looked up. Not into done: the resolution the workflow sets there
    /// is only known by reading the issue, so that move keeps its own
    /// transition (which can carry the resolution) and its read.
    fn step_on_create(&self, target: &str) -> Option<Transition> {
        let initial = self.initial.lock().expect("initial status").clone()?;
        if is_category(&initial.category, target) || is_category(target, "done") {
            return None;
        }
        let transitions = self.transitions.lock().expect("transitions");
        let offered = transitions.get(&initial.name.to_lowercase())?;
        direct_transition(offered, target, std::slice::from_ref(&initial.name)).cloned()
    }

    /// Settles a create that asked to be moved by `step` on its way. Taken
    /// (Jira answers the transition's part of the create with 204), the issue
    /// is what the bridge sent in `step`'s status, and is not read back: Jira
    /// made and moved it in one request, so no version of it in the initial
    /// status is ever listed, and the lagging-index race that keeps a read
    /// after a separate transition (see [`Self::settle_new_issue`]) cannot
    /// happen. Refused, or not answered for, the issue was still made: its
    /// transitions are looked up afresh and it is moved from wherever it is,
    /// then read.
    async fn settle_moved_on_create(
        &self,
        created: &CreatedIssue,
        mut sent: IssueFields,
        step: &Transition,
        target: &str,
    ) -> ConnectorResult<TicketSnapshot> {
        if created.transition.as_ref().is_some_and(|t| t.succeeded()) {
            sent.status = Some(Status {
                id: None,
                name: step.to.name.clone(),
                status_category: StatusCategory {
                    key: step.to.status_category.key.clone(),
                    ..StatusCategory::default()
                },
            });
            return self.unread_issue(created, sent);
        }
        let key = created.key.as_str();
        tracing::debug!(
            system = self.api.system(),
            issue = key,
            transition = %step.id,
            answer = ?created.transition,
            "the create's transition was not taken; moving the issue on its own"
        );
        if let Some(initial) = self.initial.lock().expect("initial status").as_ref() {
            self.transitions
                .lock()
                .expect("transitions")
                .remove(&initial.name.to_lowercase());
        }
        let current = self.read(key).await?;
        let at = StatusAt::of(&current);
        if is_category(&at.category, target) {
            return Ok(current);
        }
        self.transition_to(key, &at, target, ResolutionOnScreen::Leave)
            .await?;
        self.read(key).await
    }

    /// A snapshot of an issue from the fields the bridge wrote, converted as a
    /// listing of them would be, at the version [`NOT_READ_BACK`].
    fn unread_issue(
        &self,
        created: &CreatedIssue,
        mut fields: IssueFields,
    ) -> ConnectorResult<TicketSnapshot> {
        fields.created = Some(NOT_READ_BACK.to_string());
        fields.updated = Some(NOT_READ_BACK.to_string());
        let issue = IssueBean {
            id: created.id.clone(),
            key: Some(created.key.clone()),
            fields,
            ..IssueBean::default()
        };
        self.snapshot(&issue)
    }
}

/// The transition to a status in category `target`: one named like the category's
/// usual status ("To Do", "In Progress", "Done") if there is one, else the first.
pub fn choose_transition<'a>(
    transitions: &'a [Transition],
    target: &str,
) -> Option<&'a Transition> {
    direct_transition(transitions, target, &[])
}

/// [`choose_transition`], leaving out transitions to the statuses in `visited`.
fn direct_transition<'a>(
    transitions: &'a [Transition],
    target: &str,
    visited: &[String],
) -> Option<&'a Transition> {
    let preferred = usual_status_name(target);
    let candidates: Vec<&Transition> = open_transitions(transitions, visited)
        .filter(|t| is_category(&t.to.status_category.key, target))
        .collect();
    candidates
        .iter()
        .find(|t| t.to.name.eq_ignore_ascii_case(preferred))
        .or(candidates.first())
        .copied()
}

/// The transitions that can be taken and lead to none of the `visited` statuses.
fn open_transitions<'a>(
    transitions: &'a [Transition],
    visited: &[String],
) -> impl Iterator<Item = &'a Transition> {
    transitions
        .iter()
        .filter(|t| t.is_available != Some(false))
        .filter(|t| !visited.iter().any(|v| v.eq_ignore_ascii_case(&t.to.name)))
}

/// The next transition on the way from a status in category `from` to one in
/// category `target`: a transition straight to `target` (as [`choose_transition`]
/// picks it) if there is one; otherwise one to a status strictly nearer to
/// `target` (along new → indeterminate → done, where leaving done comes first
/// when `target` is not done), the nearest, preferring the category's usual
/// status name, then the workflow's order. Statuses in `visited` (names) are
/// never gone back to. `None` when no transition brings the issue nearer.
pub fn choose_step<'a>(
    transitions: &'a [Transition],
    from: &str,
    target: &str,
    visited: &[String],
) -> Option<&'a Transition> {
    if let Some(direct) = direct_transition(transitions, target, visited) {
        return Some(direct);
    }
    let here = category_distance(from, target);
    open_transitions(transitions, visited)
        .map(|t| (category_distance(&t.to.status_category.key, target), t))
        .filter(|(d, _)| *d < here)
        .min_by_key(|(d, t)| {
            let usual = usual_status_name(&t.to.status_category.key);
            (*d, !t.to.name.eq_ignore_ascii_case(usual))
        })
        .map(|(_, t)| t)
}

/// The name a category's status usually has in Jira's templates.
fn usual_status_name(category: &str) -> &'static str {
    match category.to_ascii_lowercase().as_str() {
        "new" => "To Do",
        "indeterminate" => "In Progress",
        "done" => "Done",
        _ => "",
    }
}

fn is_category(category: &str, want: &str) -> bool {
    category.eq_ignore_ascii_case(want)
}

/// How many steps a status in category `from` is from one in `target`: along
/// new → indeterminate → done, except that done is as far as it gets from any
/// other category (an issue leaves done before it moves on); an unknown category
/// is farther still.
fn category_distance(from: &str, target: &str) -> u8 {
    let rank = |c: &str| match c.to_ascii_lowercase().as_str() {
        "new" => Some(0u8),
        "indeterminate" => Some(1),
        "done" => Some(2),
        _ => None,
    };
    if is_category(from, target) {
        return 0;
    }
    match (rank(from), rank(target)) {
        (Some(2), Some(_)) => 2,
        (Some(f), Some(t)) => f.abs_diff(t),
        _ => 3,
    }
}

/// An error met on the way, saying which transitions went through before it and
/// where the issue now stands (where the next attempt starts).
fn cut_short(e: ConnectorError, taken: &[String], at: &StatusAt) -> ConnectorError {
    if taken.is_empty() {
        return e;
    }
    ConnectorError {
        message: format!(
            "{} (after {}; the next update goes on from {})",
            e.message,
            taken.join(", then "),
            at.name
        ),
        ..e
    }
}

/// `Reopen → To Do (new)`, as errors list transitions.
fn describe_transition(t: &Transition) -> String {
    format!(
        "{} → {} ({})",
        t.name.as_deref().unwrap_or(&t.id),
        t.to.name,
        t.to.status_category.key
    )
}

fn same_name(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        (None, None) => true,
        _ => false,
    }
}

#[async_trait]
impl TicketSystem for JiraTickets {
    async fn changed_since(&self, since: Timestamp) -> ConnectorResult<Page<TicketSnapshot>> {
        self.check_time_zone().await;
        let jql = changed_since_jql(&self.project_key, since);
        let response = self.search(&jql, None).await?;
        self.page(&jql, response)
    }

    async fn next_page(&self, next: &str) -> ConnectorResult<Page<TicketSnapshot>> {
        let malformed = || {
            self.err(
                ErrorKind::InvalidPayload,
                "next-page token was not made by the Jira connector",
            )
        };
        let (jql, token) = next.split_once('|').ok_or_else(malformed)?;
        let jql = URL_SAFE_NO_PAD
            .decode(jql)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(malformed)?;
        let response = self.search(&jql, Some(token)).await?;
        self.page(&jql, response)
    }

    async fn find_by_correlation(
        &self,
        correlation: &Correlation,
    ) -> ConnectorResult<Option<TicketSnapshot>> {
        let label = wire::correlation_label(correlation).map_err(|e| self.permanent(e))?;
        let jql = correlation_jql(&self.project_key, &label);
        let response = self.search(&jql, None).await?;
        // Trust, but verify: only an issue that really carries the label counts.
        let mut found = Vec::new();
        for issue in &response.issues {
            let carries = issue
                .fields
                .labels
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|l| l.eq_ignore_ascii_case(&label));
            if carries {
                found.push(self.snapshot(issue)?);
            } else {
                tracing::warn!(
                    system = self.api.system(),
                    issue = issue.key.as_deref().unwrap_or(&issue.id),
                    label = %label,
                    "search returned an issue without the correlation label; ignoring it"
                );
            }
        }
        if found.len() > 1 {
            tracing::warn!(
                system = self.api.system(),
                label = %label,
                issues = ?found.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(),
                "several issues carry one correlation label; adopting the oldest"
            );
        }
        Ok(found.into_iter().next())
    }

    /// Jira's search lags its writes by seconds, so a miss there says nothing.
    /// Reading an issue by key does not lag, and keys are numbered in the order
    /// issues are made: the issue a lost create made, if any, is among the keys
    /// after `known_ticket`. They are read one by one until the correlation label
    /// turns up, or two keys in a row do not exist (a deleted issue leaves one
    /// hole; the next key is not made yet). Without a key to start from, or past
    /// [`KEY_WALK_LIMIT`] issues made by others meanwhile, only the search can
    /// tell, once it has caught up.
    async fn find_created(
        &self,
        correlation: &Correlation,
        known_ticket: Option<&str>,
    ) -> ConnectorResult<Lookup> {
        if let Some(found) = self.find_by_correlation(correlation).await? {
            return Ok(Lookup::Found(Box::new(found)));
        }
        let prefix = format!("{}-", self.project_key);
        let Some(mut number) = known_ticket
            .and_then(|k| k.strip_prefix(&prefix))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            return Ok(Lookup::Unsure);
        };
        let label = wire::correlation_label(correlation).map_err(|e| self.permanent(e))?;
        let mut missing_in_a_row = 0;
        for _ in 0..KEY_WALK_LIMIT {
            number += 1;
            match self.read(&format!("{prefix}{number}")).await {
                Ok(issue) => {
                    missing_in_a_row = 0;
                    if issue.labels.iter().any(|l| l.eq_ignore_ascii_case(&label)) {
                        return Ok(Lookup::Found(Box::new(issue)));
                    }
                }
                Err(e) if e.kind == ErrorKind::NotFound => {
                    missing_in_a_row += 1;
                    if missing_in_a_row == 2 {
                        return Ok(Lookup::Absent);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Lookup::Unsure)
    }

    async fn create(&self, ticket: &TicketCreate) -> ConnectorResult<TicketSnapshot> {
        let label = wire::correlation_label(&ticket.correlation).map_err(|e| self.permanent(e))?;
        for name in ticket.attrs.keys() {
            self.check_attr(name)?;
        }
        let target = ticket
            .attrs
            .get("status")
            .map(|s| self.check_status(s))
            .transpose()?;
        let mut labels: Vec<String> = Vec::new();
        for l in ticket
            .labels
            .iter()
            .map(String::as_str)
            .chain([MARKER_LABEL, label.as_str()])
        {
            self.check_label(l)?;
            if !labels.iter().any(|x| x == l) {
                labels.push(l.to_string());
            }
        }

        let mut fields = Map::new();
        fields.insert("project".into(), json!({ "key": self.project_key }));
        fields.insert("issuetype".into(), json!({ "name": self.issue_type }));
        // What the issue holds once made, as a listing would show it.
        let mut sent = IssueFields {
            labels: Some(labels.clone()),
            ..IssueFields::default()
        };
        if let Some(summary) = ticket.attrs.get("summary") {
            fields.insert("summary".into(), json!(summary));
            sent.summary = Some(summary.clone());
        }
        if let Some(description) = ticket.attrs.get("description") {
            let adf = text_to_adf(description);
            fields.insert("description".into(), adf.clone());
            sent.description = Some(adf);
        }
        if let Some(priority) = ticket.attrs.get("priority") {
            fields.insert("priority".into(), json!({ "name": priority }));
            sent.priority = Some(NamedRef {
                id: None,
                name: priority.clone(),
            });
        }
        if let Some(email) = ticket.attrs.get("assignee")
            && let Some(user) = self.assignee_user(&label, email).await?
        {
            fields.insert("assignee".into(), json!({ "accountId": user.account_id }));
            sent.assignee = Some(user);
        }
        fields.insert("labels".into(), json!(labels));
        let step = target.as_deref().and_then(|t| self.step_on_create(t));
        let mut body = json!({
            "fields": fields,
            "properties": [{
                "key": PROPERTY_KEY,
                "value": {
                    "source": ticket.correlation.source,
                    "incidentId": ticket.correlation.incident_id,
                },
            }],
        });
        if let Some(step) = &step {
            body["transition"] = json!({ "id": step.id });
        }
        // Not idempotent: a lost response must be settled by searching for the
        // correlation label, never by posting again.
        let request = Request::with_body(Method::POST, self.rest(&["issue"]), body);
        let created: CreatedIssue = self.api.send(request).await?.json(self.api.system())?;
        tracing::debug!(system = self.api.system(), issue = %created.key, label = %label, "created issue");
        let settled = match (step, target.as_deref()) {
            (Some(step), Some(target)) => {
                self.settle_moved_on_create(&created, sent, &step, target)
                    .await
            }
            _ => {
                self.settle_new_issue(&created, &sent, ticket, target.as_deref())
                    .await
            }
        };
        settled.map_err(|e| ConnectorError {
            message: format!(
                "created {} but could not finish setting it up: {}",
                created.key, e.message
            ),
            ..e
        })
    }

    async fn get(&self, key: &str) -> ConnectorResult<TicketSnapshot> {
        self.read(key).await
    }

    /// The search embeds the `comment` field: every comment, unless the page's
    /// `total` said some were left out.
    fn listed_comments(&self, listed: &TicketSnapshot) -> Option<Vec<Comment>> {
        let cut = self.comments_cut.lock().expect("comments cut");
        (!cut.contains(&listed.key)).then(|| listed.comments.clone())
    }

    /// `update` ends with a read of the issue with all its comments.
    fn written_comments(&self, written: &TicketSnapshot) -> Option<Vec<Comment>> {
        Some(written.comments.clone())
    }

    async fn update(&self, key: &str, update: &TicketUpdate) -> ConnectorResult<TicketSnapshot> {
        // Validate everything before the first write.
        for name in update.set.keys() {
            self.check_attr(name)?;
        }
        for label in &update.add_labels {
            self.check_label(label)?;
        }
        let target = match update.set.get("status") {
            Some(Some(status)) => Some(self.check_status(status)?),
            Some(None) => return Err(self.permanent("a Jira status cannot be cleared")),
            None => None,
        };
        let resolution = update.set.get("resolution").cloned();

        let mut fields = Map::new();
        for (name, value) in &update.set {
            let value = match (name.as_str(), value) {
                ("summary", v) => json!(v),
                ("description", Some(text)) => text_to_adf(text),
                ("priority", Some(p)) => json!({ "name": p }),
                ("assignee", Some(email)) => match self.assignee_field(key, email).await? {
                    Some(v) => v,
                    None => continue,
                },
                ("description" | "priority" | "assignee", None) => Value::Null,
                _ => continue, // status and resolution: below
            };
            fields.insert(name.clone(), value);
        }
        let mut body = Map::new();
        if !fields.is_empty() {
            body.insert("fields".into(), Value::Object(fields));
        }
        if !update.add_labels.is_empty() {
            let adds: Vec<Value> = update
                .add_labels
                .iter()
                .map(|l| json!({ "add": l }))
                .collect();
            body.insert("update".into(), json!({ "labels": adds }));
        }
        let edited = match body.is_empty() {
            true => None,
            false => Some(self.edit(key, Value::Object(body)).await?),
        };
        let mut current = match edited {
            Some(edited) => edited,
            None => self.read(key).await?,
        };
        if target.is_none() && resolution.is_none() {
            return Ok(current);
        }
        let mut carried = false;
        if let Some(target) = target.as_deref() {
            let from = current.attrs.get("status").cloned();
            let from = from.as_deref();
            if !from.is_some_and(|f| f.eq_ignore_ascii_case(target)) {
                let on_screen = match (target, &resolution) {
                    ("done", Some(Some(r))) => ResolutionOnScreen::Set(r.clone()),
                    (t, Some(None)) | (t, None) if t != "done" && from == Some("done") => {
                        ResolutionOnScreen::Clear
                    }
                    _ => ResolutionOnScreen::Leave,
                };
                carried = self
                    .transition_to(key, &StatusAt::of(&current), target, on_screen)
                    .await?
                    && resolution.is_some();
                current = self.read(key).await?;
            }
        }
        // Jira counts any issue with a resolution as resolved: a resolution is only
        // written on a done issue (an open one keeps none; the engine carries the
        // wanted value along with the later move to done).
        let done = current.attrs.get("status").is_some_and(|s| s == "done");
        if let Some(want) = resolution
            && !carried
            && done
            && !same_name(
                current.attrs.get("resolution").map(String::as_str),
                want.as_deref(),
            )
        {
            let value = match want {
                Some(name) => json!({ "name": name }),
                None => Value::Null,
            };
            current = self
                .edit(key, json!({ "fields": { "resolution": value } }))
                .await?;
        }
        Ok(current)
    }

    async fn add_comment(&self, key: &str, text: &str) -> ConnectorResult<Comment> {
        let request = Request::with_body(
            Method::POST,
            self.rest(&["issue", key, "comment"]),
            json!({ "body": text_to_adf(text) }),
        );
        let comment: WireComment = self.api.send(request).await?.json(self.api.system())?;
        wire::to_comment(&comment).map_err(|e| self.err(ErrorKind::InvalidPayload, e))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bridge_core::model::Attrs;
    use reqwest::StatusCode;

    use super::*;
    use crate::http::{HttpSettings, RetryPolicy, build_client};
    use crate::jira::sim::{JiraSim, Workflow, jql};
    use crate::simkit::{Effect, Fault, FaultRule, Trigger, bind_loopback};
    use bridge_core::ports::Lookup;

    const EMAIL: &str = "bridge@acme.example";
    const TOKEN: &str = "jira-api-token";

    async fn start() -> JiraSim {
        let sim = JiraSim::start(bind_loopback(0).await.unwrap()).await;
        sim.set_credentials(EMAIL, TOKEN);
        sim.add_user(EMAIL, "ITSM Bridge");
        sim.add_project("SEC", Workflow::standard());
        sim
    }

    fn tickets_with(sim: &JiraSim, project: &str, token: &str) -> JiraTickets {
        let client = build_client(&HttpSettings::default()).unwrap();
        let api = Api::new(
            "jira",
            &sim.base_url(),
            client,
            Auth::Basic {
                username: EMAIL.into(),
                password: SecretString::from(token),
            },
            error_message,
        )
        .unwrap()
        .with_retry(RetryPolicy {
            base_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        });
        JiraTickets::new(api, project.into(), "Task".into())
    }

    fn tickets(sim: &JiraSim) -> JiraTickets {
        tickets_with(sim, "SEC", TOKEN)
    }

    fn ticket(source: &str, id: &str, attrs: &[(&str, &str)]) -> TicketCreate {
        TicketCreate {
            correlation: Correlation::new(source, id),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Attrs>(),
            labels: vec!["soc".into()],
        }
    }

    /// A Defender incident's ticket that must start in progress.
    fn in_progress(id: &str) -> TicketCreate {
        ticket(
            "defender",
            id,
            &[("summary", "s"), ("status", "indeterminate")],
        )
    }

    fn set(pairs: &[(&str, Option<&str>)]) -> TicketUpdate {
        TicketUpdate {
            set: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
            add_labels: Vec::new(),
        }
    }

    /// A search straight against the simulator, bypassing the client.
    async fn raw_search(sim: &JiraSim, body: Value) -> (StatusCode, Value) {
        let response = build_client(&HttpSettings::default())
            .unwrap()
            .post(format!("{}/rest/api/3/search/jql", sim.base_url()))
            .basic_auth(EMAIL, Some(TOKEN))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    fn keys(issues: &Value) -> Vec<String> {
        issues["issues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["key"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn jql_strings_escape_hostile_values() {
        let hostile = [
            "plain",
            "",
            "\" OR project != \"SEC",
            "x\"OR\"labels\"!=\"zz",
            "trailing backslash \\",
            "\\\" OR 1=1 OR \"",
            "it's 'quoted'",
            "line\nbreak\r\tand\u{1}control",
            "ünïcödé ✓ 🚨",
            "ORDER BY key DESC",
        ];
        for value in hostile {
            let literal = jql_string(value);
            // One string token that decodes back to the value, whatever it holds.
            assert_eq!(
                jql::tokenize(&literal).unwrap(),
                vec![jql::Tok::Str(value.to_string())],
                "{literal}"
            );
            let query = jql::parse(&format!("labels = {literal} ORDER BY key ASC")).unwrap();
            assert_eq!(
                query.filter,
                Some(jql::Expr::Clause {
                    field: "labels".into(),
                    op: jql::Op::Eq,
                    values: vec![value.to_string()],
                })
            );
        }
        assert_eq!(jql_string("a\"b\\c"), r#""a\"b\\c""#);
    }

    #[test]
    fn changed_since_jql_floors_to_the_minute() {
        let since = chrono::DateTime::parse_from_rfc3339("2026-11-01T08:00:59.999Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            changed_since_jql("SEC", since),
            r#"project = "SEC" AND labels = "itsm-bridge" AND updated >= "2026-11-01 08:00" ORDER BY updated ASC, key ASC"#
        );
    }

    #[tokio::test]
    async fn create_then_get_round_trips_fields_labels_and_property() {
        let sim = start().await;
        let jira = tickets(&sim);
        let t = ticket(
            "defender",
            "41877",
            &[
                ("summary", "[Defender #41877] Suspicious sign-in"),
                (
                    "description",
                    "Severity: High\n\nSource: https://security.microsoft.com/incidents/41877",
                ),
                ("priority", "High"),
            ],
        );
        let created = jira.create(&t).await.unwrap();
        assert_eq!(created.key, "SEC-1");
        assert_eq!(created.id, "10000");
        assert_eq!(created.url, format!("{}/browse/SEC-1", sim.base_url()));
        assert_eq!(
            created.attrs["summary"],
            "[Defender #41877] Suspicious sign-in"
        );
        assert_eq!(created.attrs["description"], t.attrs["description"]);
        assert_eq!(created.attrs["priority"], "High");
        assert_eq!(created.attrs["status"], "new");
        assert_eq!(created.attrs["status_name"], "To Do");
        assert!(!created.attrs.contains_key("resolution"));
        assert!(!created.attrs.contains_key("assignee"));
        assert_eq!(
            created.labels,
            vec!["soc", "itsm-bridge", "itsm-bridge:defender:41877"]
        );
        assert_eq!(created.correlation, Some(t.correlation.clone()));

        let got = jira.get("SEC-1").await.unwrap();
        assert_eq!(got, created);

        let stored = sim.issue("SEC-1").unwrap();
        assert_eq!(
            stored.properties["itsm-bridge"],
            json!({"source": "defender", "incidentId": "41877"})
        );
        assert_eq!(stored.description.unwrap()["type"], "doc");
        assert_eq!(stored.issue_type, "Task");
        // The create was one POST, never repeated.
        let posts = sim
            .kit
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/rest/api/3/issue")
            .count();
        assert_eq!(posts, 1);
    }

    #[tokio::test]
    async fn assignee_is_looked_up_by_email_once_and_unknown_users_stay_unassigned_and_are_not_asked_for_again()
     {
        let sim = start().await;
        sim.add_user("ann@acme.example", "Ann Analyst");
        let jira = tickets(&sim);
        let a = jira
            .create(&ticket(
                "defender",
                "1",
                &[("summary", "a"), ("assignee", "Ann@acme.example")],
            ))
            .await
            .unwrap();
        assert_eq!(a.attrs["assignee"], "ann@acme.example");
        let b = jira
            .create(&ticket(
                "defender",
                "2",
                &[("summary", "b"), ("assignee", "ann@acme.example")],
            ))
            .await
            .unwrap();
        assert_eq!(b.attrs["assignee"], "ann@acme.example");
        let lookups = |sim: &JiraSim| {
            sim.kit
                .requests()
                .iter()
                .filter(|r| r.path == "/rest/api/3/user/search")
                .count()
        };
        assert_eq!(lookups(&sim), 1, "the accountId is cached");

        let c = jira
            .create(&ticket(
                "defender",
                "3",
                &[("summary", "c"), ("assignee", "nobody@acme.example")],
            ))
            .await
            .unwrap();
        assert!(!c.attrs.contains_key("assignee"));
        // A second issue for the unknown user: the miss is remembered.
        let d = jira
            .create(&ticket(
                "defender",
                "4",
                &[("summary", "d"), ("assignee", "Nobody@acme.example")],
            ))
            .await
            .unwrap();
        assert!(!d.attrs.contains_key("assignee"));
        assert_eq!(
            lookups(&sim),
            2,
            "one search for the known, one for the unknown"
        );

        let unassigned = jira
            .update("SEC-1", &set(&[("assignee", None)]))
            .await
            .unwrap();
        assert!(!unassigned.attrs.contains_key("assignee"));
    }

    #[tokio::test]
    async fn a_lost_create_is_found_by_key_while_the_search_still_lags() {
        let sim = start().await;
        sim.set_index_lag(std::time::Duration::from_secs(3600));
        let jira = tickets(&sim);
        jira.create(&ticket("defender", "1", &[("summary", "known")]))
            .await
            .unwrap();
        // Made by the lost create, and one an analyst made after it.
        jira.create(&ticket("defender", "2", &[("summary", "lost")]))
            .await
            .unwrap();
        jira.create(&ticket("defender", "3", &[("summary", "other")]))
            .await
            .unwrap();
        let lost = Correlation::new("defender", "2");
        assert_eq!(
            jira.find_by_correlation(&lost).await.unwrap(),
            None,
            "the search cannot see it yet"
        );
        match jira.find_created(&lost, Some("SEC-1")).await.unwrap() {
            Lookup::Found(t) => assert_eq!(t.key, "SEC-2"),
            other => panic!("{other:?}"),
        }
        // Never made: the keys after the last known one run out.
        let never = Correlation::new("defender", "9");
        assert_eq!(
            jira.find_created(&never, Some("SEC-1")).await.unwrap(),
            Lookup::Absent
        );
        // Without a key to start from, only the search can tell.
        assert_eq!(
            jira.find_created(&never, None).await.unwrap(),
            Lookup::Unsure
        );
        // A key of another project is no place to start.
        assert_eq!(
            jira.find_created(&never, Some("OPS-1")).await.unwrap(),
            Lookup::Unsure
        );
    }

    #[tokio::test]
    async fn find_by_correlation_finds_the_ticket_and_not_another_incident() {
        let sim = start().await;
        // About what search finds, not when: no index lag.
        sim.set_index_lag(std::time::Duration::ZERO);
        let jira = tickets(&sim);
        jira.create(&ticket("defender", "41877", &[("summary", "x")]))
            .await
            .unwrap();
        jira.create(&ticket("sentinel", "41877", &[("summary", "y")]))
            .await
            .unwrap();
        let found = jira
            .find_by_correlation(&Correlation::new("defender", "41877"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.key, "SEC-1");
        assert_eq!(
            found.correlation,
            Some(Correlation::new("defender", "41877"))
        );
        let other = jira
            .find_by_correlation(&Correlation::new("sentinel", "41877"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(other.key, "SEC-2");
        assert_eq!(
            jira.find_by_correlation(&Correlation::new("defender", "41878"))
                .await
                .unwrap(),
            None
        );
        // A prefix of an id is another id.
        assert_eq!(
            jira.find_by_correlation(&Correlation::new("defender", "4187"))
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn index_lag_hides_fresh_issues_until_reconciled_or_indexed() {
        let sim = start().await;
        // Long enough that a slow machine cannot outrun it; `pass_index_time`
        // stands in for waiting.
        sim.set_index_lag(Duration::from_secs(30));
        let jira = tickets(&sim);
        let c = Correlation::new("defender", "7");
        let created = jira
            .create(&ticket("defender", "7", &[("summary", "fresh")]))
            .await
            .unwrap();
        // Read-your-write by key, but not by search.
        assert_eq!(jira.get("SEC-1").await.unwrap().attrs["summary"], "fresh");
        assert_eq!(jira.find_by_correlation(&c).await.unwrap(), None);
        let jql = correlation_jql("SEC", "itsm-bridge:defender:7");
        let (status, body) = raw_search(&sim, json!({"jql": jql, "fields": ["summary"]})).await;
        assert_eq!(status, StatusCode::OK);
        assert!(keys(&body).is_empty());
        let (_, body) = raw_search(
            &sim,
            json!({"jql": jql, "fields": ["summary"], "reconcileIssues": [created.id.parse::<u64>().unwrap()]}),
        )
        .await;
        assert_eq!(keys(&body), vec!["SEC-1"]);

        // Once the lag has passed, search sees it …
        sim.pass_index_time(Duration::from_secs(31));
        assert_eq!(
            jira.find_by_correlation(&c).await.unwrap().unwrap().key,
            "SEC-1"
        );
        // … and a later edit shows up in search only after the lag again.
        sim.edit_as_analyst("SEC-1", "summary", json!("edited"))
            .unwrap();
        let stale = jira.find_by_correlation(&c).await.unwrap().unwrap();
        assert_eq!(stale.attrs["summary"], "fresh");
        let (_, body) = raw_search(
            &sim,
            json!({"jql": jql, "fields": ["summary"], "reconcileIssues": ["SEC-1"]}),
        )
        .await;
        assert_eq!(body["issues"][0]["fields"]["summary"], "edited");
        sim.pass_index_time(Duration::from_secs(31));
        let fresh = jira.find_by_correlation(&c).await.unwrap().unwrap();
        assert_eq!(fresh.attrs["summary"], "edited");
    }

    #[tokio::test]
    async fn status_moves_through_looked_up_transitions_in_two_projects() {
        let sim = start().await;
        sim.add_project("OPS", Workflow::standard());
        let transition_ids = |project: &str| {
            let sim = &sim;
            let project = project.to_string();
            async move {
                let issue = sim
                    .issues()
                    .into_iter()
                    .find(|i| i.project == project)
                    .unwrap();
                let response = build_client(&HttpSettings::default())
                    .unwrap()
                    .get(format!(
                        "{}/rest/api/3/issue/{}/transitions",
                        sim.base_url(),
                        issue.key
                    ))
                    .basic_auth(EMAIL, Some(TOKEN))
                    .send()
                    .await
                    .unwrap();
                let body: Value = response.json().await.unwrap();
                body["transitions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["id"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            }
        };
        for project in ["SEC", "OPS"] {
            let jira = tickets_with(&sim, project, TOKEN);
            let created = jira
                .create(&ticket("defender", project, &[("summary", "s")]))
                .await
                .unwrap();
            let done = jira
                .update(
                    &created.key,
                    &set(&[("status", Some("done")), ("resolution", Some("Won't Do"))]),
                )
                .await
                .unwrap();
            assert_eq!(done.attrs["status"], "done", "{project}");
            assert_eq!(done.attrs["status_name"], "Done");
            assert_eq!(done.attrs["resolution"], "Won't Do");
            assert!(done.modified > created.modified);
        }
        let sec = transition_ids("SEC").await;
        let ops = transition_ids("OPS").await;
        assert_eq!(sec.len(), 1);
        assert_ne!(sec, ops, "transition ids differ between projects");

        // Created straight into a status: new → indeterminate right after the create.
        let jira = tickets(&sim);
        let started = jira
            .create(&ticket(
                "defender",
                "started",
                &[("summary", "s"), ("status", "indeterminate")],
            ))
            .await
            .unwrap();
        assert_eq!(started.attrs["status"], "indeterminate");
        assert_eq!(started.attrs["status_name"], "In Progress");
        // Created as done with a resolution.
        let closed = jira
            .create(&ticket(
                "defender",
                "closed",
                &[
                    ("summary", "s"),
                    ("status", "done"),
                    ("resolution", "Duplicate"),
                ],
            ))
            .await
            .unwrap();
        assert_eq!(closed.attrs["status"], "done");
        assert_eq!(closed.attrs["resolution"], "Duplicate");
        // Done without a resolution given: the workflow's default.
        let plain = jira
            .update(&started.key, &set(&[("status", Some("done"))]))
            .await
            .unwrap();
        assert_eq!(plain.attrs["resolution"], "Done");
    }

    #[tokio::test]
    async fn reopen_clears_resolution() {
        let sim = start().await;
        sim.add_project("REO", Workflow::with_reopen_screen());
        for project in ["SEC", "REO"] {
            let jira = tickets_with(&sim, project, TOKEN);
            let created = jira
                .create(&ticket("defender", project, &[("summary", "s")]))
                .await
                .unwrap();
            let key = created.key;
            jira.update(
                &key,
                &set(&[("status", Some("done")), ("resolution", Some("Won't Do"))]),
            )
            .await
            .unwrap();
            let reopened = jira
                .update(&key, &set(&[("status", Some("new"))]))
                .await
                .unwrap();
            assert_eq!(reopened.attrs["status"], "new", "{project}");
            assert_eq!(reopened.attrs["status_name"], "To Do");
            assert!(!reopened.attrs.contains_key("resolution"), "{project}");
            assert_eq!(sim.issue(&key).unwrap().resolution, None);
            assert_eq!(sim.issue(&key).unwrap().resolution_date, None);
        }
        // Changing the resolution of a done issue is an edit, not a transition.
        let jira = tickets(&sim);
        jira.update("SEC-1", &set(&[("status", Some("done"))]))
            .await
            .unwrap();
        let changed = jira
            .update("SEC-1", &set(&[("resolution", Some("Declined"))]))
            .await
            .unwrap();
        assert_eq!(changed.attrs["status"], "done");
        assert_eq!(changed.attrs["resolution"], "Declined");
    }

    #[tokio::test]
    async fn an_open_issue_never_gets_a_resolution() {
        let sim = start().await;
        let jira = tickets(&sim);
        let created = jira
            .create(&ticket("defender", "SEC", &[("summary", "s")]))
            .await
            .unwrap();
        let after = jira
            .update(&created.key, &set(&[("resolution", Some("Won't Do"))]))
            .await
            .unwrap();
        assert_eq!(after.attrs["status"], "new");
        assert!(!after.attrs.contains_key("resolution"));
        assert_eq!(sim.issue(&created.key).unwrap().resolution, None);
    }

    /// (method, path) of every request the simulator answered since its log was cleared.
    fn calls(sim: &JiraSim) -> Vec<(String, String)> {
        sim.kit
            .requests()
            .into_iter()
            .map(|r| (r.method, r.path))
            .collect()
    }

    fn call(method: &str, path: &str) -> (String, String) {
        (method.to_string(), path.to_string())
    }

    /// (transition name, from, to, fields) of the transitions posted since `skip`.
    fn posted(sim: &JiraSim, skip: usize) -> Vec<(String, String, String, Option<Value>)> {
        sim.posted_transitions()
            .into_iter()
            .skip(skip)
            .map(|t| (t.name, t.from, t.to, t.fields))
            .collect()
    }

    fn step(
        name: &str,
        from: &str,
        to: &str,
        fields: Option<Value>,
    ) -> (String, String, String, Option<Value>) {
        (name.into(), from.into(), to.into(), fields)
    }

    #[tokio::test]
    async fn transitions_are_looked_up_once_per_status_and_again_when_refused() {
        let sim = start().await;
        let jira = tickets(&sim);
        sim.kit.clear_log();
        for n in ["1", "2", "3"] {
            jira.create(&in_progress(n)).await.unwrap();
        }
        let lookups = |sim: &JiraSim| {
            sim.kit
                .requests()
                .iter()
                .filter(|r| r.method == "GET" && r.path.ends_with("/transitions"))
                .count()
        };
        assert_eq!(
            lookups(&sim),
            1,
            "three issues, one status left: one lookup"
        );

        // The issue refuses the kept transition (the workflow was edited, a
        // condition holds on it): the transitions are looked up again and the
        // move goes on.
        let created = jira
            .create(&ticket("defender", "4", &[("summary", "s")]))
            .await
            .unwrap();
        sim.kit.inject(
            FaultRule::new(Some(Method::POST), "/transitions", Effect::status(400))
                .when(Trigger::Nth(1)),
        );
        sim.kit.clear_log();
        let moved = jira
            .update(&created.key, &set(&[("status", Some("indeterminate"))]))
            .await
            .unwrap();
        assert_eq!(moved.attrs["status"], "indeterminate");
        assert_eq!(lookups(&sim), 1);
        let posts = sim
            .kit
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/transitions"))
            .map(|r| r.status)
            .collect::<Vec<_>>();
        assert_eq!(posts, vec![400, 204]);
    }

    #[tokio::test]
    async fn a_create_takes_a_known_transition_in_the_same_request_and_is_not_read_back() {
        let sim = start().await;
        let jira = tickets(&sim);
        // The first move out of To Do is learned: create, read, look up, move, read.
        jira.create(&in_progress("1")).await.unwrap();
        sim.kit.clear_log();

        let created = jira.create(&in_progress("2")).await.unwrap();
        assert_eq!(created.attrs["status"], "indeterminate");
        assert_eq!(created.attrs["status_name"], "In Progress");
        let log = sim.kit.requests();
        let calls: Vec<String> = log
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert_eq!(calls, ["POST /rest/api/3/issue"], "one request: {calls:?}");
        let posted = sim.posted_transitions();
        let last = posted.last().unwrap();
        assert_eq!(
            (last.key.as_str(), last.id.as_str()),
            (created.key.as_str(), "11")
        );
        let issue = sim.issue(&created.key).unwrap();
        assert_eq!(issue.status, "In Progress");
        assert_eq!(issue.resolution, None);

        // Nothing is moved into done on the way: the workflow's resolution
        // there is only known by reading.
        sim.kit.clear_log();
        let done = jira
            .create(&ticket(
                "defender",
                "3",
                &[("summary", "s"), ("status", "done")],
            ))
            .await
            .unwrap();
        assert_eq!(done.attrs["status"], "done");
        let moves = sim
            .kit
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/transitions"))
            .count();
        assert_eq!(moves, 1, "moved into done by a transition of its own");
    }

    #[tokio::test]
    async fn a_create_whose_transition_is_refused_is_moved_on_its_own() {
        let sim = start().await;
        let jira = tickets(&sim);
        jira.create(&in_progress("1")).await.unwrap();
        // An admin renumbers Start Progress: the kept id 11 is no longer offered.
        let mut edited = Workflow::standard();
        for t in &mut edited.transitions {
            if t.name == "Start Progress" {
                t.id = 12;
            }
        }
        sim.edit_workflow("SEC", edited);
        sim.kit.clear_log();

        let created = jira.create(&in_progress("2")).await.unwrap();
        assert_eq!(created.attrs["status"], "indeterminate");
        assert_eq!(sim.issue(&created.key).unwrap().status, "In Progress");
        let calls: Vec<String> = sim
            .kit
            .requests()
            .iter()
            .map(|r| format!("{} {} {}", r.method, r.path, r.status))
            .collect();
        let key = &created.key;
        assert_eq!(
            calls,
            [
                "POST /rest/api/3/issue 201".to_string(),
                format!("GET /rest/api/3/issue/{key} 200"),
                format!("GET /rest/api/3/issue/{key}/transitions 200"),
                format!("POST /rest/api/3/issue/{key}/transitions 204"),
                format!("GET /rest/api/3/issue/{key} 200"),
            ]
        );
    }

    #[tokio::test]
    async fn done_to_in_progress_takes_reopen_then_start_progress() {
        let sim = start().await;
        sim.add_project("REO", Workflow::with_reopen_screen());
        // The standard Reopen has no screen (its post-function clears the
        // resolution); the REO one shows `resolution`, and the client clears it.
        for (project, reopen_fields) in
            [("SEC", None), ("REO", Some(json!({ "resolution": null })))]
        {
            let jira = tickets_with(&sim, project, TOKEN);
            let created = jira
                .create(&ticket("defender", project, &[("summary", "s")]))
                .await
                .unwrap();
            let key = created.key;
            jira.update(
                &key,
                &set(&[("status", Some("done")), ("resolution", Some("Won't Do"))]),
            )
            .await
            .unwrap();
            let before = sim.posted_transitions().len();
            sim.kit.clear_log();

            let started = jira
                .update(
                    &key,
                    &set(&[("status", Some("indeterminate")), ("resolution", None)]),
                )
                .await
                .unwrap();
            assert_eq!(started.attrs["status"], "indeterminate", "{project}");
            assert_eq!(started.attrs["status_name"], "In Progress");
            assert!(!started.attrs.contains_key("resolution"), "{project}");
            let issue = sim.issue(&key).unwrap();
            assert_eq!((issue.resolution, issue.resolution_date), (None, None));

            let issue_path = format!("/rest/api/3/issue/{key}");
            let transitions_path = format!("{issue_path}/transitions");
            assert_eq!(
                calls(&sim),
                // The transitions out of Done are looked up; those out of To Do
                // were when the issue was closed, and are kept.
                vec![
                    call("GET", &issue_path),
                    call("GET", &transitions_path),
                    call("POST", &transitions_path),
                    call("POST", &transitions_path),
                    call("GET", &issue_path),
                ],
                "{project}"
            );
            // Each look-up asks for the screens' fields.
            for r in sim.kit.requests().iter().filter(|r| r.method == "GET") {
                if r.path == transitions_path {
                    assert_eq!(r.query.as_deref(), Some("expand=transitions.fields"));
                }
            }
            assert_eq!(
                posted(&sim, before),
                vec![
                    step("Reopen", "Done", "To Do", reopen_fields),
                    step("Start Progress", "To Do", "In Progress", None),
                ],
                "{project}"
            );
        }
    }

    #[tokio::test]
    async fn a_status_two_steps_away_carries_the_resolution_on_the_step_into_done() {
        let sim = start().await;
        let mut workflow = Workflow::standard();
        // Only To Do → In Progress → Done: no shortcut to done.
        workflow.transitions.retain(|t| t.id != 21);
        sim.add_project("STEP", workflow);
        let jira = tickets_with(&sim, "STEP", TOKEN);
        let created = jira
            .create(&ticket("defender", "1", &[("summary", "s")]))
            .await
            .unwrap();
        let done = jira
            .update(
                &created.key,
                &set(&[("status", Some("done")), ("resolution", Some("Duplicate"))]),
            )
            .await
            .unwrap();
        assert_eq!(done.attrs["status_name"], "Done");
        assert_eq!(done.attrs["resolution"], "Duplicate");
        assert_eq!(
            posted(&sim, 0),
            vec![
                step("Start Progress", "To Do", "In Progress", None),
                step(
                    "Done",
                    "In Progress",
                    "Done",
                    Some(json!({ "resolution": { "name": "Duplicate" } }))
                ),
            ]
        );
        // A ticket created straight into done takes the same way.
        let closed = jira
            .create(&ticket(
                "defender",
                "2",
                &[
                    ("summary", "s"),
                    ("status", "done"),
                    ("resolution", "Won't Do"),
                ],
            ))
            .await
            .unwrap();
        assert_eq!(closed.attrs["status_name"], "Done");
        assert_eq!(closed.attrs["resolution"], "Won't Do");
        assert_eq!(
            posted(&sim, 2)
                .into_iter()
                .map(|(name, from, ..)| format!("{from}: {name}"))
                .collect::<Vec<_>>(),
            vec!["To Do: Start Progress", "In Progress: Done"]
        );
    }

    #[tokio::test]
    async fn a_status_no_transition_reaches_is_a_permanent_error() {
        let sim = start().await;
        let mut workflow = Workflow::standard();
        // From To Do only Done: nothing leads towards In Progress.
        workflow.transitions.retain(|t| t.id == 21 || t.id == 51);
        sim.add_project("STEP", workflow);
        let jira = tickets_with(&sim, "STEP", TOKEN);
        let created = jira
            .create(&ticket("defender", "1", &[("summary", "s")]))
            .await
            .unwrap();
        let err = jira
            .update(&created.key, &set(&[("status", Some("indeterminate"))]))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(
            err.message.contains(
                "no transition of STEP-1 leads to a status in category \"indeterminate\" \
                 (available: Done → Done (done))"
            ),
            "{}",
            err.message
        );
        // Nothing was transitioned: a step away from the target is never taken.
        assert_eq!(sim.issue("STEP-1").unwrap().status, "To Do");
        assert!(sim.posted_transitions().is_empty());
    }

    #[tokio::test]
    async fn a_chain_ending_in_a_dead_end_says_how_far_it_got() {
        let sim = start().await;
        let mut workflow = Workflow::standard();
        // To Do ⇄ In Progress, and no way into Done.
        workflow.transitions.retain(|t| t.id == 11 || t.id == 41);
        sim.add_project("LOOP", workflow);
        let jira = tickets_with(&sim, "LOOP", TOKEN);
        jira.create(&ticket("defender", "1", &[("summary", "s")]))
            .await
            .unwrap();
        sim.kit.clear_log();
        let err = jira
            .update("LOOP-1", &set(&[("status", Some("done"))]))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(
            err.message.contains(
                "no transition of LOOP-1 leads to a status in category \"done\" \
                 (took Start Progress → In Progress (indeterminate); available from \
                 In Progress: Stop Progress → To Do (new))"
            ),
            "{}",
            err.message
        );
        // The step nearer to done was taken, and To Do was never gone back to.
        assert_eq!(
            posted(&sim, 0),
            vec![step("Start Progress", "To Do", "In Progress", None)]
        );
        assert_eq!(sim.issue("LOOP-1").unwrap().status, "In Progress");
        let transitions_path = "/rest/api/3/issue/LOOP-1/transitions";
        assert_eq!(
            calls(&sim),
            vec![
                call("GET", "/rest/api/3/issue/LOOP-1"),
                call("GET", transitions_path),
                call("POST", transitions_path),
                call("GET", transitions_path),
            ]
        );
        // Asked again, it starts from In Progress and moves nothing.
        let err = jira
            .update("LOOP-1", &set(&[("status", Some("done"))]))
            .await
            .unwrap_err();
        assert!(
            err.message
                .contains("(available: Stop Progress → To Do (new))"),
            "{}",
            err.message
        );
        assert_eq!(sim.posted_transitions().len(), 1);
    }

    #[tokio::test]
    async fn a_chain_cut_short_after_its_first_step_completes_on_the_next_update() {
        let sim = start().await;
        let jira = tickets(&sim);
        jira.create(&ticket("defender", "1", &[("summary", "s")]))
            .await
            .unwrap();
        jira.update(
            "SEC-1",
            &set(&[("status", Some("done")), ("resolution", Some("Won't Do"))]),
        )
        .await
        .unwrap();
        let before = sim.posted_transitions().len();
        let transitions_path = "/rest/api/3/issue/SEC-1/transitions";
        // Reopen goes through; Start Progress gets a 500 (a POST: not retried).
        sim.kit.inject(
            FaultRule::new(Some(Method::POST), transitions_path, Effect::status(500))
                .when(Trigger::Nth(2)),
        );
        let update = set(&[("status", Some("indeterminate")), ("resolution", None)]);
        let err = jira.update("SEC-1", &update).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transient);
        assert!(
            err.message
                .contains("after Reopen → To Do (new); the next update goes on from To Do"),
            "{}",
            err.message
        );
        let issue = sim.issue("SEC-1").unwrap();
        assert_eq!((issue.status.as_str(), issue.resolution), ("To Do", None));
        assert_eq!(
            posted(&sim, before),
            vec![step("Reopen", "Done", "To Do", None)]
        );

        // The retry starts from To Do: one step, no Reopen again (the
        // transitions out of To Do are known from the first attempt).
        sim.kit.clear_log();
        let started = jira.update("SEC-1", &update).await.unwrap();
        assert_eq!(started.attrs["status_name"], "In Progress");
        assert!(!started.attrs.contains_key("resolution"));
        assert_eq!(
            calls(&sim),
            vec![
                call("GET", "/rest/api/3/issue/SEC-1"),
                call("POST", transitions_path),
                call("GET", "/rest/api/3/issue/SEC-1"),
            ]
        );
        assert_eq!(
            posted(&sim, before),
            vec![
                step("Reopen", "Done", "To Do", None),
                step("Start Progress", "To Do", "In Progress", None),
            ]
        );
        // And once more changes nothing.
        sim.kit.clear_log();
        jira.update("SEC-1", &update).await.unwrap();
        assert_eq!(calls(&sim), vec![call("GET", "/rest/api/3/issue/SEC-1")]);
        assert_eq!(sim.posted_transitions().len(), before + 2);
    }

    fn offered(id: &str, to: &str, category: &str) -> Transition {
        Transition {
            id: id.into(),
            name: Some(format!("to {to}")),
            to: wire::TransitionTarget {
                id: None,
                name: to.into(),
                status_category: wire::StatusCategory {
                    key: category.into(),
                    ..Default::default()
                },
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_step_goes_straight_to_the_target_or_nearer_to_it() {
        let ids = |t: Option<&Transition>| t.map(|t| t.id.clone());
        let visited = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        // Straight there, preferring the usual name.
        let from_done = [
            offered("1", "Reopened", "new"),
            offered("2", "Under Review", "indeterminate"),
            offered("3", "In Progress", "indeterminate"),
        ];
        assert_eq!(
            ids(choose_step(
                &from_done,
                "done",
                "indeterminate",
                &visited(&["Done"])
            )),
            Some("3".into())
        );
        // Out of done first, towards new when that is all there is.
        let reopen_only = [offered("51", "To Do", "new")];
        assert_eq!(
            ids(choose_step(
                &reopen_only,
                "done",
                "indeterminate",
                &visited(&["Done"])
            )),
            Some("51".into())
        );
        // Never back to a status already passed, never farther away.
        let from_progress = [
            offered("41", "To Do", "new"),
            offered("9", "Won't Fix", "new"),
        ];
        assert_eq!(
            ids(choose_step(
                &from_progress,
                "indeterminate",
                "done",
                &visited(&["To Do", "In Progress"])
            )),
            None
        );
        assert_eq!(
            ids(choose_step(
                &[offered("5", "Done", "done")],
                "new",
                "indeterminate",
                &visited(&["To Do"])
            )),
            None
        );
        // The nearest step, the usual name among equals, unavailable ones skipped.
        let mut blocked = offered("7", "In Progress", "indeterminate");
        blocked.is_available = Some(false);
        let from_done = [
            offered("6", "Backlog", "new"),
            blocked,
            offered("8", "To Do", "new"),
        ];
        assert_eq!(
            ids(choose_step(
                &from_done,
                "done",
                "indeterminate",
                &visited(&["Done"])
            )),
            Some("8".into())
        );
        assert_eq!(category_distance("done", "indeterminate"), 2);
        assert_eq!(category_distance("new", "done"), 2);
        assert_eq!(category_distance("Indeterminate", "indeterminate"), 0);
    }

    #[tokio::test]
    async fn update_edits_fields_and_adds_labels() {
        let sim = start().await;
        let jira = tickets(&sim);
        jira.create(&ticket(
            "defender",
            "1",
            &[("summary", "old"), ("description", "old text")],
        ))
        .await
        .unwrap();
        let update = TicketUpdate {
            set: [
                ("summary".to_string(), Some("new".to_string())),
                ("description".to_string(), Some("new\ntext".to_string())),
                ("priority".to_string(), Some("Highest".to_string())),
            ]
            .into(),
            add_labels: vec!["merged-into-SEC-9".into()],
        };
        let updated = jira.update("SEC-1", &update).await.unwrap();
        assert_eq!(updated.attrs["summary"], "new");
        assert_eq!(updated.attrs["description"], "new\ntext");
        assert_eq!(updated.attrs["priority"], "Highest");
        assert!(updated.labels.contains(&"merged-into-SEC-9".to_string()));
        assert!(
            updated
                .labels
                .contains(&"itsm-bridge:defender:1".to_string())
        );

        let cleared = jira
            .update("SEC-1", &set(&[("description", None)]))
            .await
            .unwrap();
        assert!(!cleared.attrs.contains_key("description"));

        let err = jira
            .update("SEC-1", &set(&[("priority", Some("Urgent"))]))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(err.message.contains("priority"), "{}", err.message);

        let err = jira.get("SEC-99").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert!(
            err.message.contains("Issue does not exist"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn bad_requests_are_refused_before_anything_is_sent() {
        let sim = start().await;
        let jira = tickets(&sim);
        jira.create(&ticket("defender", "1", &[("summary", "s")]))
            .await
            .unwrap();
        sim.kit.clear_log();
        let cases = [
            set(&[("status_name", Some("Done"))]),
            set(&[("colour", Some("red"))]),
            set(&[("status", Some("closed"))]),
            set(&[("status", None)]),
            TicketUpdate {
                set: Default::default(),
                add_labels: vec!["has space".into()],
            },
        ];
        for update in cases {
            let err = jira.update("SEC-1", &update).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::Permanent, "{update:?}");
        }
        for bad in [
            ticket("defender", "has space", &[("summary", "s")]),
            ticket("Defender", "1", &[("summary", "s")]),
            ticket("defender", "1", &[("summary", "s"), ("status_name", "x")]),
        ] {
            let err = jira.create(&bad).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::Permanent, "{bad:?}");
        }
        assert_eq!(sim.kit.request_count(), 0);
    }

    #[tokio::test]
    async fn changed_since_pages_through_120_issues_exactly_once() {
        let sim = start().await;
        // About what search finds, not when: no index lag.
        sim.set_index_lag(std::time::Duration::ZERO);
        let jira = tickets(&sim);
        let since = chrono::Utc::now() - chrono::Duration::minutes(1);
        for n in 0..120 {
            jira.create(&ticket("defender", &n.to_string(), &[("summary", "s")]))
                .await
                .unwrap();
        }
        let mut page = jira.changed_since(since).await.unwrap();
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            pages += 1;
            seen.extend(page.items.iter().map(|t| t.key.clone()));
            let Some(next) = page.next else { break };
            page = jira.next_page(&next).await.unwrap();
        }
        assert_eq!(pages, 3);
        assert_eq!(seen.len(), 120);
        let unique: std::collections::BTreeSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), 120);
        // Oldest update first.
        assert_eq!(seen.first().unwrap(), "SEC-1");
        assert_eq!(seen.last().unwrap(), "SEC-120");
        assert!(jira.next_page("not-a-token").await.is_err());
    }

    #[tokio::test]
    async fn changed_since_filters_older_updates_and_other_issues() {
        let sim = start().await;
        // About what search finds, not when: no index lag.
        sim.set_index_lag(std::time::Duration::ZERO);
        let jira = tickets(&sim);
        for n in 1..=3 {
            jira.create(&ticket("defender", &n.to_string(), &[("summary", "s")]))
                .await
                .unwrap();
        }
        // An issue that is not the bridge's (no marker label).
        sim.edit_as_analyst("SEC-3", "labels", json!(["unrelated"]))
            .unwrap();
        let base = jql_minute_floor(chrono::Utc::now() - chrono::Duration::hours(2));
        sim.backdate("SEC-1", base - chrono::Duration::hours(1))
            .unwrap();
        sim.backdate("SEC-2", base + chrono::Duration::seconds(30))
            .unwrap();
        // 45 s past the minute: floored, so SEC-2 (30 s past) is still in.
        let page = jira
            .changed_since(base + chrono::Duration::seconds(45))
            .await
            .unwrap();
        let keys: Vec<&str> = page.items.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, vec!["SEC-2"]);
        assert_eq!(page.next, None);

        let page = jira
            .changed_since(base - chrono::Duration::days(1))
            .await
            .unwrap();
        let keys: Vec<&str> = page.items.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, vec!["SEC-1", "SEC-2"]);
    }

    fn jql_minute_floor(t: Timestamp) -> Timestamp {
        t.with_second(0).unwrap().with_nanosecond(0).unwrap()
    }

    #[tokio::test]
    async fn hostile_correlation_id_cannot_widen_the_search() {
        let sim = start().await;
        // About what search finds, not when: no index lag.
        sim.set_index_lag(std::time::Duration::ZERO);
        let jira = tickets(&sim);
        jira.create(&ticket("defender", "1", &[("summary", "s")]))
            .await
            .unwrap();
        let hostile = "x\"OR\"labels\"!=\"zz";
        // Pasted into JQL unescaped, the id would match every issue …
        let naive = format!(
            "project = \"SEC\" AND labels = \"itsm-bridge:defender:{hostile}\" ORDER BY key ASC"
        );
        let (status, body) = raw_search(&sim, json!({"jql": naive, "fields": ["labels"]})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(keys(&body), vec!["SEC-1"], "the attack works on naive JQL");
        // … but the client's JQL keeps it one label value.
        let label = wire::correlation_label(&Correlation::new("defender", hostile)).unwrap();
        let (status, body) = raw_search(
            &sim,
            json!({"jql": correlation_jql("SEC", &label), "fields": ["labels"]}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(keys(&body).is_empty());
        assert_eq!(
            jira.find_by_correlation(&Correlation::new("defender", hostile))
                .await
                .unwrap(),
            None
        );
        // A ticket with that very id is found, and only it.
        jira.create(&ticket("defender", hostile, &[("summary", "h")]))
            .await
            .unwrap();
        let found = jira
            .find_by_correlation(&Correlation::new("defender", hostile))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.key, "SEC-2");
        assert_eq!(
            found.correlation,
            Some(Correlation::new("defender", hostile))
        );
    }

    #[tokio::test]
    async fn hostile_project_key_cannot_widen_the_search() {
        let sim = start().await;
        tickets(&sim)
            .create(&ticket("defender", "1", &[("summary", "s")]))
            .await
            .unwrap();
        for project in ["SEC\" OR project != \"X", "SEC\\", "SEC\" OR \"1\" = \"1"] {
            let jira = tickets_with(&sim, project, TOKEN);
            let err = jira
                .changed_since(chrono::Utc::now() - chrono::Duration::hours(1))
                .await
                .unwrap_err();
            assert_eq!(err.kind, ErrorKind::Permanent, "{project}");
            assert!(
                err.message
                    .contains("does not exist for the field 'project'"),
                "{}",
                err.message
            );
        }
    }

    #[tokio::test]
    async fn bad_credentials_are_an_auth_error() {
        let sim = start().await;
        let jira = tickets_with(&sim, "SEC", "wrong-token");
        let err = jira.get("SEC-1").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Auth);
        assert!(
            err.message
                .contains("Client must be authenticated to access this resource."),
            "{}",
            err.message
        );
        assert!(!err.message.contains("wrong-token"));
        let err = jira.changed_since(chrono::Utc::now()).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Auth);
    }

    #[tokio::test]
    async fn scripted_429_with_retry_after_is_retried_for_a_get() {
        let sim = start().await;
        let jira = tickets(&sim);
        jira.create(&ticket("defender", "1", &[("summary", "s")]))
            .await
            .unwrap();
        sim.kit.clear_log();
        sim.kit.inject(Fault {
            method: Some(Method::GET),
            path_contains: "/rest/api/3/issue/SEC-1".into(),
            times: 1,
            status: 429,
            retry_after: Some("1".into()),
            body: r#"{"errorMessages":["Rate limit exceeded."],"errors":{}}"#.into(),
        });
        let started = std::time::Instant::now();
        let got = jira.get("SEC-1").await.unwrap();
        assert_eq!(got.key, "SEC-1");
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "Retry-After honoured"
        );
        let statuses: Vec<u16> = sim.kit.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![429, 200]);
    }

    #[tokio::test]
    async fn a_create_that_gets_a_500_is_not_retried() {
        let sim = start().await;
        let jira = tickets(&sim);
        sim.kit.inject(Fault {
            method: Some(Method::POST),
            path_contains: "/rest/api/3/issue".into(),
            times: 1,
            status: 500,
            retry_after: None,
            body: r#"{"errorMessages":["Internal server error"],"errors":{}}"#.into(),
        });
        let err = jira
            .create(&ticket("defender", "1", &[("summary", "s")]))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transient);
        let posts = sim
            .kit
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/rest/api/3/issue")
            .count();
        assert_eq!(posts, 1);
        assert!(sim.issues().is_empty());
    }

    #[tokio::test]
    async fn comments_are_added_as_adf_and_read_back_in_full() {
        let sim = start().await;
        let jira = tickets(&sim);
        jira.create(&ticket("defender", "1", &[("summary", "s")]))
            .await
            .unwrap();
        let comment = jira
            .add_comment(
                "SEC-1",
                "Incident closed in Defender.\n\nClassification: truePositive",
            )
            .await
            .unwrap();
        assert!(comment.id.is_some());
        assert_eq!(comment.author.as_deref(), Some("ITSM Bridge"));
        assert_eq!(
            comment.text,
            "Incident closed in Defender.\n\nClassification: truePositive"
        );
        assert_eq!(sim.issue("SEC-1").unwrap().comments[0].body["type"], "doc");
        for n in 0..25 {
            sim.comment_as_analyst("SEC-1", "Ann Analyst", &format!("note {n}"))
                .unwrap();
        }
        let got = jira.get("SEC-1").await.unwrap();
        assert_eq!(got.comments.len(), 26);
        assert_eq!(got.comments[0], comment);
        assert_eq!(got.comments[25].text, "note 24");
        assert_eq!(got.comments[25].author.as_deref(), Some("Ann Analyst"));
        // Comments bump `updated`, so the engine's poll sees them.
        assert!(got.modified >= got.comments[25].created);
    }
}
