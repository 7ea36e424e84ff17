//! The ServiceNow client: [`ServiceNowTickets`] implements the engine's
//! `TicketSystem` port over the Table API (`/api/now/table/incident`), signed with
//! HTTP Basic (or an OAuth bearer token, see `oauth`).
//!
//! - **Keys.** A ticket's `key` is its `number` (`INC0010042`) and its `id` the
//!   `sys_id`. The engine passes keys; the client accepts a number or a sys_id and
//!   resolves a number with `number=<key>` (verified, then cached: numbers never
//!   change).
//! - **Polling.** `sys_updated_on>=<since>^correlation_idSTARTSWITHitsm-bridge:
//!   ^ORDERBYsys_updated_on^ORDERBYsys_id`, 200 per page, paged by following the
//!   `Link: rel="next"` header exactly (host-checked). `sys_updated_on` literals are
//!   read in the integration user's time zone: give that user GMT.
//! - **Adoption.** `find_by_correlation` queries `correlation_id=<id>` and then
//!   checks every row, because an instance silently drops a condition it cannot
//!   apply (an unknown or unreadable field) and returns everything. A row whose
//!   `correlation_id` is another value altogether proves the condition was dropped:
//!   that is an error, never "not found" (which would make the engine create a
//!   duplicate) and never an adoption.
//! - **Queries.** Every literal put into `sysparm_query` goes through
//!   [`wire::query_literal`]: encoded queries cannot escape `^`, so such values are
//!   refused (correlation ids are encoded so they never contain one).
//! - **Writes.** `PATCH` with the mapped fields as strings (`None` is `""`).
//!   `assignee` is an email, a user name or a sys_id (looked up in `sys_user`);
//!   `assignment_group` a group name or sys_id (`sys_user_group`), each looked up
//!   once (a name the instance does not know, once per [`MISS_TTL`]); they are read
//!   back through dot-walked fields as the user's email (else user name, else
//!   sys_id) and the group's name, so a mapped value round-trips. A close code is
//!   checked against the instance's `sys_choice` list first. ServiceNow incidents
//!   have no labels: `labels` and `add_labels` are ignored (logged at debug).
//! - **Errors.** A 403 that is a data policy or business rule (`Operation Failed`,
//!   no ACL involved) is `Permanent`, not `Auth`: the request is wrong, not the
//!   credentials.
//! - **Notes.** `add_comment` appends a work note (`PATCH {"work_notes": …}`),
//!   unless the record's journal already holds one with the same text (a retried
//!   call adds nothing). `get` reads the journal (`sys_journal_field`) into
//!   `comments`; list pages do not.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bridge_core::model::{
    Comment, Correlation, Page, TicketCreate, TicketSnapshot, TicketUpdate, Timestamp,
};
use bridge_core::ports::{ConnectorError, ConnectorResult, ErrorKind, TicketSystem};
use bridge_core::vocab::SERVICENOW_STATE;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use url::Url;

use super::wire::{
    self, CORRELATION_PREFIX, FieldValue, INCIDENT_FIELDS, JOURNAL_ELEMENTS, JOURNAL_FIELDS,
    ListResponse, Record, RecordResponse, is_sys_id, text,
};
use crate::http::{Api, Auth, Request, Response};
use crate::misses::Misses;

pub use super::wire::error_message;

/// The system name in errors and logs.
pub const SYSTEM: &str = "servicenow";
/// Incidents per list page.
pub const PAGE_SIZE: u32 = 200;
/// Journal entries per page (an incident with more is paged through `Link`).
const JOURNAL_PAGE_SIZE: u32 = 1000;
/// Remembered number → sys_id pairs before the cache starts over.
const MAX_CACHED_KEYS: usize = 10_000;

/// The attributes the bridge may write on an incident.
const WRITABLE: &[&str] = &[
    "summary",
    "description",
    "status",
    "impact",
    "urgency",
    "close_code",
    "close_notes",
    "hold_reason",
    "assignee",
    "assignment_group",
];

/// The incident field an attribute is written to.
fn field_of(attr: &str) -> &'static str {
    match attr {
        "summary" => "short_description",
        "description" => "description",
        "status" => "state",
        "impact" => "impact",
        "urgency" => "urgency",
        "close_code" => "close_code",
        "close_notes" => "close_notes",
        "hold_reason" => "hold_reason",
        "assignee" => "assigned_to",
        "assignment_group" => "assignment_group",
        _ => "",
    }
}

/// Builds the [`Api`] for an instance (`https://acme.service-now.com`), signed with
/// HTTP Basic.
pub fn servicenow_api(
    base_url: &str,
    client: reqwest::Client,
    username: impl Into<String>,
    password: SecretString,
) -> Result<Api, String> {
    Api::new(
        SYSTEM,
        base_url,
        client,
        Auth::Basic {
            username: username.into(),
            password,
        },
        error_message,
    )
}

/// The instance's close codes, once read.
enum CloseCodes {
    Known(Vec<String>),
    /// `sys_choice` cannot be read with these credentials: codes are not checked.
    Unreadable,
}

pub use crate::misses::MISS_TTL;

/// A ServiceNow instance's `incident` table as a ticket system.
pub struct ServiceNowTickets {
    api: Api,
    /// number → sys_id.
    sys_ids: Mutex<HashMap<String, String>>,
    /// email or user name (lowercase) → sys_user sys_id.
    users: Mutex<HashMap<String, String>>,
    /// group name (lowercase) → sys_user_group sys_id.
    groups: Mutex<HashMap<String, String>>,
    /// Names (lowercase, per table) the instance had no single record for, and
    /// when they were looked up: asked again only after [`MISS_TTL`], so a backlog
    /// assigned to someone ServiceNow does not know costs one lookup, not one per
    /// incident, and a user added later is still found.
    misses: Misses<(&'static str, String)>,
    close_codes: Mutex<Option<CloseCodes>>,
}

impl std::fmt::Debug for ServiceNowTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceNowTickets")
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

/// Reads the 403s that are about the request, not the caller: a data policy or a
/// business rule refusing the change answers `Operation Failed` (ACL refusals name
/// the ACL, or say "not authorized").
fn classify(e: ConnectorError) -> ConnectorError {
    if e.kind != ErrorKind::Auth || e.status != Some(403) {
        return e;
    }
    let lower = e.message.to_ascii_lowercase();
    let acl = lower.contains("acl")
        || lower.contains("not authorized")
        || lower.contains("insufficient rights")
        || lower.contains("security constraints");
    if !acl && (lower.contains("data policy") || lower.contains("operation failed")) {
        return ConnectorError {
            kind: ErrorKind::Permanent,
            ..e
        };
    }
    e
}

impl ServiceNowTickets {
    /// `api`'s base is the instance URL, signed with Basic auth (see
    /// [`servicenow_api`]) or a bearer token, reading errors with [`error_message`].
    pub fn new(api: Api) -> ServiceNowTickets {
        ServiceNowTickets {
            api,
            sys_ids: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
            misses: Misses::default(),
            close_codes: Mutex::new(None),
        }
    }

    fn err(&self, kind: ErrorKind, message: impl Into<String>) -> ConnectorError {
        self.api.error(kind, message)
    }

    fn permanent(&self, message: impl Into<String>) -> ConnectorError {
        self.err(ErrorKind::Permanent, message)
    }

    /// `<base>/api/now/table/<segments…>`, each segment percent-encoded.
    fn table_url(&self, segments: &[&str]) -> Url {
        self.api.segments_url(
            ["api", "now", "table"]
                .into_iter()
                .chain(segments.iter().copied()),
        )
    }

    fn list_url(&self, table: &str, query: &str, fields: &[&str], limit: u32) -> Url {
        let mut url = self.table_url(&[table]);
        url.query_pairs_mut()
            .append_pair("sysparm_query", query)
            .append_pair("sysparm_fields", &fields.join(","))
            .append_pair("sysparm_limit", &limit.to_string())
            .append_pair("sysparm_exclude_reference_link", "true");
        url
    }

    /// The query parameters every incident read and write carries.
    fn with_incident_fields(mut url: Url) -> Url {
        url.query_pairs_mut()
            .append_pair("sysparm_fields", &INCIDENT_FIELDS.join(","))
            .append_pair("sysparm_exclude_reference_link", "true");
        url
    }

    async fn send(&self, request: Request) -> ConnectorResult<Response> {
        self.api.send(request).await.map_err(classify)
    }

    /// One list page and the `rel="next"` link, exactly as the instance gave it.
    async fn list_page(&self, url: Url) -> ConnectorResult<(Vec<Record>, Option<String>)> {
        let response = self.send(Request::get(url)).await?;
        let list: ListResponse = response.json(self.api.system())?;
        let link: Vec<&str> = response
            .headers
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let next = wire::next_link(&link.join(","));
        Ok((list.result, next))
    }

    /// A literal for `sysparm_query`, or a `Permanent` error.
    fn literal<'a>(&self, value: &'a str) -> ConnectorResult<&'a str> {
        wire::query_literal(value).map_err(|e| self.permanent(e))
    }

    fn remember(&self, number: &str, sys_id: &str) {
        let mut cache = self.sys_ids.lock().expect("sys_id cache");
        if cache.len() >= MAX_CACHED_KEYS && !cache.contains_key(number) {
            cache.clear();
        }
        cache.insert(number.to_string(), sys_id.to_string());
    }

    fn snapshot(&self, record: &Record) -> ConnectorResult<TicketSnapshot> {
        let snapshot = wire::to_snapshot(record, self.api.base())
            .map_err(|e| self.err(ErrorKind::InvalidPayload, e))?;
        self.remember(&snapshot.key, &snapshot.id);
        Ok(snapshot)
    }

    fn page(
        &self,
        (records, next): (Vec<Record>, Option<String>),
    ) -> ConnectorResult<Page<TicketSnapshot>> {
        let full = records.len() >= PAGE_SIZE as usize;
        let items = records
            .iter()
            .filter_map(|r| match self.snapshot(r) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(system = self.api.system(), error = %e, "skipping a record that does not convert");
                    None
                }
            })
            .collect();
        if full && next.is_none() {
            tracing::warn!(
                system = self.api.system(),
                "a full page came without a Link rel=\"next\" header; if a proxy strips it, later changes are missed until the next poll"
            );
        }
        Ok(Page { items, next })
    }

    /// The incident record for a number or sys_id.
    async fn fetch(&self, key: &str) -> ConnectorResult<Record> {
        if is_sys_id(key) {
            let url = Self::with_incident_fields(self.table_url(&["incident", key]));
            let response = self.send(Request::get(url)).await?;
            return Ok(response.json::<RecordResponse>(self.api.system())?.result);
        }
        let number = self.literal(key)?;
        let url = self.list_url("incident", &format!("number={number}"), INCIDENT_FIELDS, 2);
        let (records, _) = self.list_page(url).await?;
        // Trust, but verify: only the record with exactly this number.
        records
            .into_iter()
            .find(|r| text(r, "number").as_deref() == Some(key))
            .ok_or_else(|| {
                self.err(
                    ErrorKind::NotFound,
                    format!("no incident has the number {key}"),
                )
            })
    }

    /// The sys_id behind a key.
    async fn sys_id_of(&self, key: &str) -> ConnectorResult<String> {
        if is_sys_id(key) {
            return Ok(key.to_string());
        }
        if let Some(id) = self.sys_ids.lock().expect("sys_id cache").get(key) {
            return Ok(id.clone());
        }
        let record = self.fetch(key).await?;
        Ok(self.snapshot(&record)?.id)
    }

    /// The incident's work notes and comments, oldest first.
    async fn journal(&self, sys_id: &str) -> ConnectorResult<Vec<Record>> {
        let id = self.literal(sys_id)?;
        let query = format!(
            "name=incident^element_id={id}^elementIN{}^ORDERBYsys_created_on",
            JOURNAL_ELEMENTS.join(",")
        );
        let mut url = self.list_url(
            "sys_journal_field",
            &query,
            JOURNAL_FIELDS,
            JOURNAL_PAGE_SIZE,
        );
        let mut rows = Vec::new();
        loop {
            let (page, next) = self.list_page(url).await?;
            // Only this record's notes, whatever the instance made of the query.
            rows.extend(page.into_iter().filter(|r| {
                text(r, "element_id").as_deref() == Some(sys_id)
                    && text(r, "name").as_deref() == Some("incident")
                    && text(r, "element").is_some_and(|e| JOURNAL_ELEMENTS.contains(&e.as_str()))
            }));
            match next {
                Some(next) => url = self.api.next_link(&next)?,
                None => return Ok(rows),
            }
        }
    }

    async fn with_comments(&self, mut snapshot: TicketSnapshot) -> ConnectorResult<TicketSnapshot> {
        snapshot.comments = self
            .journal(&snapshot.id)
            .await?
            .iter()
            .map(wire::to_comment)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(ErrorKind::InvalidPayload, e))?;
        Ok(snapshot)
    }

    /// `name` as a sys_id: itself if it is one, else from `cache`, else found once
    /// by `find` (given `name` as a query literal) and remembered. `None` when the
    /// instance has not exactly one.
    async fn lookup_sys_id<'a, Fut>(
        &self,
        (table, cache): (&'static str, &Mutex<HashMap<String, String>>),
        name: &'a str,
        find: impl FnOnce(&'a str) -> Fut,
    ) -> ConnectorResult<Option<String>>
    where
        Fut: std::future::Future<Output = ConnectorResult<Option<String>>>,
    {
        if is_sys_id(name) {
            return Ok(Some(name.to_string()));
        }
        let cache_key = name.to_lowercase();
        if let Some(id) = cache.lock().expect("sys_id cache").get(&cache_key) {
            return Ok(Some(id.clone()));
        }
        let miss_key = (table, cache_key.clone());
        if self.misses.known_missing(&miss_key) {
            return Ok(None);
        }
        let Ok(literal) = wire::query_literal(name) else {
            return Ok(None);
        };
        let found = find(literal).await?;
        match &found {
            Some(id) => {
                cache
                    .lock()
                    .expect("sys_id cache")
                    .insert(cache_key, id.clone());
            }
            None => self.misses.note(miss_key),
        }
        Ok(found)
    }

    /// The sys_user for an email, user name or sys_id, if the instance has exactly one.
    async fn user_sys_id(&self, who: &str) -> ConnectorResult<Option<String>> {
        self.lookup_sys_id(("sys_user", &self.users), who, |literal: &str| async move {
            // `=` may compare case-sensitively; addresses are usually stored in lower
            // case, so ask for both spellings (indexed equality, no LIKE scan).
            let lower = literal.to_lowercase();
            let mut spellings = vec![literal];
            if lower != literal {
                spellings.push(&lower);
            }
            let query = spellings
                .iter()
                .flat_map(|v| [format!("email={v}"), format!("user_name={v}")])
                .collect::<Vec<_>>()
                .join("^OR");
            let url = self.list_url("sys_user", &query, &["sys_id", "email", "user_name"], 5);
            let (users, _) = self.list_page(url).await?;
            let matches = |field: &str| -> Vec<String> {
                users
                    .iter()
                    .filter(|u| text(u, field).is_some_and(|v| v.eq_ignore_ascii_case(who)))
                    .filter_map(|u| text(u, "sys_id"))
                    .collect()
            };
            let by_email = matches("email");
            Ok(
                match (by_email.as_slice(), matches("user_name").as_slice()) {
                    ([one], _) => Some(one.clone()),
                    ([], [one]) => Some(one.clone()),
                    _ => None,
                },
            )
        })
        .await
    }

    /// The sys_user_group for a name or sys_id, if the instance has exactly one.
    async fn group_sys_id(&self, name: &str) -> ConnectorResult<Option<String>> {
        self.lookup_sys_id(
            ("sys_user_group", &self.groups),
            name,
            |literal: &str| async move {
                // Group names are mixed case and the table is small: match loosely, then
                // keep only a name equal but for case.
                let url = self.list_url(
                    "sys_user_group",
                    &format!("nameLIKE{literal}"),
                    &["sys_id", "name"],
                    50,
                );
                let (groups, _) = self.list_page(url).await?;
                let found: Vec<String> = groups
                    .iter()
                    .filter(|g| text(g, "name").is_some_and(|v| v.eq_ignore_ascii_case(name)))
                    .filter_map(|g| text(g, "sys_id"))
                    .collect();
                Ok(match found.as_slice() {
                    [one] => Some(one.clone()),
                    _ => None,
                })
            },
        )
        .await
    }

    async fn load_close_codes(&self) -> ConnectorResult<()> {
        let url = self.list_url(
            "sys_choice",
            "name=incident^element=close_code^inactive=false",
            &["value", "label", "inactive"],
            1000,
        );
        let codes = match self.list_page(url).await {
            Ok((rows, _)) => CloseCodes::Known(
                rows.iter()
                    .filter(|r| text(r, "inactive").as_deref() != Some("true"))
                    .filter_map(|r| text(r, "value"))
                    .collect(),
            ),
            Err(e) if matches!(e.kind, ErrorKind::Auth | ErrorKind::NotFound) => {
                tracing::warn!(
                    system = self.api.system(),
                    error = %e,
                    "cannot read the instance's close codes (sys_choice); close codes are sent unchecked"
                );
                CloseCodes::Unreadable
            }
            Err(e) => return Err(e),
        };
        *self.close_codes.lock().expect("close codes") = Some(codes);
        Ok(())
    }

    /// The instance's own spelling of a close code, or a `Permanent` error naming
    /// the codes it offers. The list is read once, and again when a code is missing.
    async fn check_close_code(&self, code: &str) -> ConnectorResult<String> {
        let lookup = |this: &Self| -> Option<Result<String, Vec<String>>> {
            match this.close_codes.lock().expect("close codes").as_ref()? {
                CloseCodes::Unreadable => Some(Ok(code.to_string())),
                CloseCodes::Known(codes) => Some(
                    codes
                        .iter()
                        .find(|c| c.as_str() == code)
                        .or_else(|| codes.iter().find(|c| c.eq_ignore_ascii_case(code)))
                        .cloned()
                        .ok_or_else(|| codes.clone()),
                ),
            }
        };
        if let Some(Ok(found)) = lookup(self) {
            return Ok(found);
        }
        self.load_close_codes().await?;
        match lookup(self) {
            Some(Ok(found)) => Ok(found),
            Some(Err(codes)) => Err(self.permanent(format!(
                "close code {code:?} is not offered by this instance (it offers: {}); fix the mapping's close_code values",
                codes.join(", ")
            ))),
            None => Ok(code.to_string()),
        }
    }

    /// Checks an attribute before anything is sent.
    fn check_attr(&self, name: &str, value: Option<&str>) -> ConnectorResult<()> {
        if !WRITABLE.contains(&name) {
            let hint = if name == "priority" {
                " (ServiceNow calculates priority from impact and urgency: map those)".to_string()
            } else {
                format!(" (writable: {})", WRITABLE.join(", "))
            };
            return Err(self.permanent(format!(
                "attribute {name:?} cannot be written to ServiceNow{hint}"
            )));
        }
        let allowed: Option<&[&str]> = match name {
            "status" => Some(SERVICENOW_STATE),
            "impact" | "urgency" => Some(&["1", "2", "3"]),
            _ => None,
        };
        if let Some(allowed) = allowed {
            match value {
                None => {
                    return Err(self.permanent(format!(
                        "the ServiceNow {name} cannot be cleared; map it to one of {}",
                        allowed.join(", ")
                    )));
                }
                Some(v) if !allowed.contains(&v) => {
                    return Err(self.permanent(format!(
                        "{v:?} is not a ServiceNow {name} (use one of {})",
                        allowed.join(", ")
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The request body for a set of attributes (checked before): field → string,
    /// `None` → `""`. An assignee or group the instance does not know is left out
    /// (logged), as the rest of the change is still worth making.
    async fn fields_body<'a>(
        &self,
        key: &str,
        attrs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> ConnectorResult<Map<String, Value>> {
        let mut body = Map::new();
        for (name, value) in attrs {
            let value = match (name, value) {
                ("assignee", Some(who)) => match self.user_sys_id(who).await? {
                    Some(id) => id,
                    None => {
                        tracing::warn!(
                            system = self.api.system(),
                            incident = key,
                            assignee = who,
                            "no ServiceNow user has this email or user name; leaving the assignee unchanged"
                        );
                        continue;
                    }
                },
                ("assignment_group", Some(group)) => match self.group_sys_id(group).await? {
                    Some(id) => id,
                    None => {
                        tracing::warn!(
                            system = self.api.system(),
                            incident = key,
                            group,
                            "no ServiceNow group has this name; leaving the assignment group unchanged"
                        );
                        continue;
                    }
                },
                ("close_code", Some(code)) if !code.is_empty() => {
                    self.check_close_code(code).await?
                }
                (_, v) => v.unwrap_or_default().to_string(),
            };
            body.insert(field_of(name).to_string(), Value::String(value));
        }
        Ok(body)
    }

    /// Forgets the close codes after the instance refused one, so that the next
    /// write reads them again (an admin may have changed the choices).
    fn refused_close_code(&self, e: ConnectorError) -> ConnectorError {
        if e.kind == ErrorKind::Permanent && e.message.contains("close_code") {
            *self.close_codes.lock().expect("close codes") = None;
        }
        e
    }

    async fn patch(&self, sys_id: &str, body: Map<String, Value>) -> ConnectorResult<Record> {
        let url = Self::with_incident_fields(self.table_url(&["incident", sys_id]));
        let request = Request::with_body(Method::PATCH, url, Value::Object(body));
        let response = self
            .send(request)
            .await
            .map_err(|e| self.refused_close_code(e))?;
        Ok(response.json::<RecordResponse>(self.api.system())?.result)
    }
}

/// The attributes as a create sends them.
fn create_pairs(ticket: &TicketCreate) -> Vec<(&str, Option<&str>)> {
    ticket
        .attrs
        .iter()
        .map(|(k, v)| (k.as_str(), Some(v.as_str())))
        .collect()
}

fn same_correlation(a: &str, b: &str) -> bool {
    // An instance compares with its database collation: case and trailing spaces
    // may not count there. They count here.
    a.trim_end().eq_ignore_ascii_case(b.trim_end())
}

#[async_trait]
impl TicketSystem for ServiceNowTickets {
    async fn changed_since(&self, since: Timestamp) -> ConnectorResult<Page<TicketSnapshot>> {
        let query = format!(
            "sys_updated_on>={}^correlation_idSTARTSWITH{CORRELATION_PREFIX}^ORDERBYsys_updated_on^ORDERBYsys_id",
            wire::format_time(since)
        );
        let url = self.list_url("incident", &query, INCIDENT_FIELDS, PAGE_SIZE);
        let page = self.list_page(url).await?;
        self.page(page)
    }

    async fn next_page(&self, next: &str) -> ConnectorResult<Page<TicketSnapshot>> {
        let url = self.api.next_link(next)?;
        let page = self.list_page(url).await?;
        self.page(page)
    }

    async fn find_by_correlation(
        &self,
        correlation: &Correlation,
    ) -> ConnectorResult<Option<TicketSnapshot>> {
        let id = wire::correlation_id(correlation).map_err(|e| self.permanent(e))?;
        let literal = self.literal(&id)?;
        let url = self.list_url(
            "incident",
            &format!("correlation_id={literal}^ORDERBYsys_created_on^ORDERBYnumber"),
            INCIDENT_FIELDS,
            2,
        );
        let (records, _) = self.list_page(url).await?;
        let mut found = Vec::new();
        for record in &records {
            let theirs = text(record, "correlation_id").unwrap_or_default();
            if theirs == id {
                found.push(self.snapshot(record)?);
            } else if same_correlation(&theirs, &id) {
                tracing::warn!(
                    system = self.api.system(),
                    incident = text(record, "number").as_deref().unwrap_or("?"),
                    correlation_id = %theirs,
                    wanted = %id,
                    "ignoring an incident whose correlation id differs only in case or spacing"
                );
            } else {
                // `correlation_id=…` cannot match this row: the instance dropped the
                // condition (it does that silently for a field it cannot use). An
                // answer of "not found" would make the engine create a duplicate.
                return Err(self.permanent(format!(
                    "the instance ignored the correlation_id condition (it returned {} with correlation id {theirs:?} when asked for {id:?}); check that the integration user may read and query incident.correlation_id",
                    text(record, "number").as_deref().unwrap_or("an incident"),
                )));
            }
        }
        if found.len() > 1 {
            tracing::warn!(
                system = self.api.system(),
                correlation_id = %id,
                incidents = ?found.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(),
                "several incidents carry one correlation id; adopting the oldest"
            );
        }
        match found.into_iter().next() {
            Some(snapshot) => self.with_comments(snapshot).await.map(Some),
            None => Ok(None),
        }
    }

    async fn create(&self, ticket: &TicketCreate) -> ConnectorResult<TicketSnapshot> {
        let correlation_id =
            wire::correlation_id(&ticket.correlation).map_err(|e| self.permanent(e))?;
        for (name, value) in create_pairs(ticket) {
            self.check_attr(name, value)?;
        }
        if !ticket.labels.is_empty() {
            tracing::debug!(
                system = self.api.system(),
                labels = ?ticket.labels,
                "ServiceNow incidents have no labels; not setting them"
            );
        }
        let mut body = self
            .fields_body(&correlation_id, create_pairs(ticket))
            .await?;
        body.insert("correlation_id".into(), json!(correlation_id));
        body.insert(
            "correlation_display".into(),
            json!(wire::correlation_display(&ticket.correlation.source)),
        );
        // Not idempotent: a lost answer is settled by `find_by_correlation`, never
        // by posting again.
        let url = Self::with_incident_fields(self.table_url(&["incident"]));
        let request = Request::with_body(Method::POST, url, Value::Object(body.clone()));
        let response = self
            .send(request)
            .await
            .map_err(|e| self.refused_close_code(e))?;
        let record = response.json::<RecordResponse>(self.api.system())?.result;
        let created = self.snapshot(&record)?;
        tracing::debug!(system = self.api.system(), incident = %created.key, correlation_id = %correlation_id, "created incident");
        if text(&record, "correlation_id").as_deref() != Some(correlation_id.as_str()) {
            tracing::warn!(
                system = self.api.system(),
                incident = %created.key,
                correlation_id = %correlation_id,
                stored = ?text(&record, "correlation_id"),
                "the instance did not keep the correlation id (a business rule?); after a crash this incident cannot be found and adopted"
            );
        }
        // Some instances force a new incident to New whatever the insert said:
        // move it where it was asked to be, with the fields that state needs.
        let wanted = ticket.attrs.get("status");
        if wanted.is_none() || created.attrs.get("status") == wanted {
            return Ok(created);
        }
        let settle: Map<String, Value> = ["state", "hold_reason", "close_code", "close_notes"]
            .iter()
            .filter_map(|f| body.get(*f).map(|v| (f.to_string(), v.clone())))
            .collect();
        tracing::debug!(
            system = self.api.system(),
            incident = %created.key,
            from = ?created.attrs.get("status"),
            to = ?wanted,
            "the instance did not take the state on insert; setting it"
        );
        let record = self
            .patch(&created.id, settle)
            .await
            .map_err(|e| ConnectorError {
                message: format!(
                    "created {} but could not set its state: {}",
                    created.key, e.message
                ),
                ..e
            })?;
        self.snapshot(&record)
    }

    async fn get(&self, key: &str) -> ConnectorResult<TicketSnapshot> {
        let record = self.fetch(key).await?;
        let snapshot = self.snapshot(&record)?;
        self.with_comments(snapshot).await
    }

    async fn update(&self, key: &str, update: &TicketUpdate) -> ConnectorResult<TicketSnapshot> {
        // Check everything before the first request.
        for (name, value) in &update.set {
            self.check_attr(name, value.as_deref())?;
        }
        if !update.add_labels.is_empty() {
            tracing::debug!(
                system = self.api.system(),
                incident = key,
                labels = ?update.add_labels,
                "ServiceNow incidents have no labels; not adding them"
            );
        }
        let sys_id = self.sys_id_of(key).await?;
        let pairs: Vec<(&str, Option<&str>)> = update
            .set
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        let body = self.fields_body(key, pairs).await?;
        if body.is_empty() {
            return self.get(&sys_id).await;
        }
        let record = self.patch(&sys_id, body).await?;
        let snapshot = self.snapshot(&record)?;
        self.with_comments(snapshot).await
    }

    /// The journal alone: the record is not needed for its comments, and its
    /// `sys_id` is known from the listing that named it.
    async fn comments(&self, key: &str) -> ConnectorResult<Vec<Comment>> {
        let sys_id = self.sys_id_of(key).await?;
        self.journal(&sys_id)
            .await?
            .iter()
            .map(wire::to_comment)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(ErrorKind::InvalidPayload, e))
    }

    /// `get` reads the journal too (`with_comments`).
    fn get_has_comments(&self) -> bool {
        true
    }

    /// `update` answers with the record and its whole journal (`with_comments`).
    fn written_comments(&self, written: &TicketSnapshot) -> Option<Vec<Comment>> {
        Some(written.comments.clone())
    }

    async fn add_comment(&self, key: &str, note: &str) -> ConnectorResult<Comment> {
        if note.trim().is_empty() {
            return Err(self.permanent("ServiceNow does not save an empty work note"));
        }
        let sys_id = self.sys_id_of(key).await?;
        let wanted = note.trim_end();
        let is_ours = |r: &Record| {
            text(r, "element").as_deref() == Some("work_notes")
                && r.get("value")
                    .and_then(FieldValue::value)
                    .is_some_and(|v| v.trim_end() == wanted)
        };
        // A retried call (the answer to the first was lost) must not add it twice.
        if let Some(row) = self
            .journal(&sys_id)
            .await?
            .iter()
            .rev()
            .find(|r| is_ours(r))
        {
            tracing::debug!(
                system = self.api.system(),
                incident = key,
                "the work note is already in the journal"
            );
            return wire::to_comment(row).map_err(|e| self.err(ErrorKind::InvalidPayload, e));
        }
        let url = {
            let mut url = self.table_url(&["incident", &sys_id]);
            url.query_pairs_mut()
                .append_pair("sysparm_fields", "sys_id");
            url
        };
        let request = Request::with_body(Method::PATCH, url, json!({ "work_notes": note }));
        self.send(request).await?;
        let journal = self.journal(&sys_id).await?;
        let row = journal.iter().rev().find(|r| is_ours(r)).ok_or_else(|| {
            self.err(
                ErrorKind::InvalidPayload,
                format!("the work note was sent to {key} but its journal does not show it"),
            )
        })?;
        wire::to_comment(row).map_err(|e| self.err(ErrorKind::InvalidPayload, e))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use bridge_core::model::Attrs;
    use chrono::Utc;

    use super::*;
    use crate::http::{HttpSettings, RetryPolicy, build_client};
    use crate::servicenow::oauth::servicenow_oauth_api;
    use crate::servicenow::sim::{CLOSE_CODES_LEGACY, ServiceNowSim};
    use crate::simkit::{Fault, bind_loopback};

    const USER: &str = "bridge";
    const PASSWORD: &str = "snow-password";
    const SCOPE: &str = "/subscriptions/1/resourceGroups/soc/providers/Microsoft.OperationalInsights/workspaces/soc-a";

    async fn start() -> ServiceNowSim {
        let sim = ServiceNowSim::start(bind_loopback(0).await.unwrap()).await;
        sim.set_credentials(USER, PASSWORD);
        sim.add_user("ana.ruiz", "Ana Ruiz", "ana@contoso.com");
        sim
    }

    fn fast(api: Api) -> Api {
        api.with_retry(RetryPolicy {
            base_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        })
    }

    fn tickets_with(sim: &ServiceNowSim, password: &str) -> ServiceNowTickets {
        let client = build_client(&HttpSettings::default()).unwrap();
        let api =
            servicenow_api(&sim.base_url(), client, USER, SecretString::from(password)).unwrap();
        ServiceNowTickets::new(fast(api))
    }

    fn tickets(sim: &ServiceNowSim) -> ServiceNowTickets {
        tickets_with(sim, PASSWORD)
    }

    fn correlation(id: &str) -> Correlation {
        Correlation::new("sentinel", id).with_scope(SCOPE)
    }

    fn ticket(id: &str, attrs: &[(&str, &str)]) -> TicketCreate {
        TicketCreate {
            correlation: correlation(id),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Attrs>(),
            labels: vec!["itsm-bridge".into()],
        }
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

    fn count(sim: &ServiceNowSim, method: &str, path: &str) -> usize {
        sim.kit
            .requests()
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }

    /// The `sysparm_query` values of the requests to `path`, decoded.
    fn queries(sim: &ServiceNowSim, path: &str) -> Vec<String> {
        sim.kit
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .filter_map(|r| {
                url::form_urlencoded::parse(r.query.as_deref().unwrap_or("").as_bytes())
                    .find(|(k, _)| k == "sysparm_query")
                    .map(|(_, v)| v.into_owned())
            })
            .collect()
    }

    /// A list call straight against the simulator, bypassing the client.
    async fn raw_numbers(sim: &ServiceNowSim, query: &str) -> Vec<String> {
        let mut url = Url::parse(&format!("{}/api/now/table/incident", sim.base_url())).unwrap();
        url.query_pairs_mut()
            .append_pair("sysparm_query", query)
            .append_pair("sysparm_fields", "number");
        let body: Value = build_client(&HttpSettings::default())
            .unwrap()
            .get(url)
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["number"].as_str().unwrap().to_string())
            .collect()
    }

    /// Adds a bridge incident straight into the simulator (fast seeding).
    fn seed(sim: &ServiceNowSim, id: &str) -> String {
        let cid = wire::correlation_id(&correlation(id)).unwrap();
        sim.create_as_analyst(&[
            ("short_description", &format!("incident {id}")),
            ("correlation_id", &cid),
        ])
        .unwrap()
    }

    const INCIDENTS: &str = "/api/now/table/incident";

    #[tokio::test]
    async fn create_then_get_round_trips_fields_and_correlation() {
        let sim = start().await;
        let snow = tickets(&sim);
        let t = ticket(
            "6f0c2b8e-7c1a-4a53-9a0e-2d3f4b5c6d7e",
            &[
                ("summary", "[Sentinel #8812] Suspicious sign-in"),
                (
                    "description",
                    "Severity: High\n\nhttps://portal.azure.com/#x",
                ),
                ("status", "2"),
                ("impact", "1"),
                ("urgency", "2"),
                ("assignee", "ana@contoso.com"),
            ],
        );
        let created = snow.create(&t).await.unwrap();
        assert_eq!(created.key, "INC0010001");
        assert!(is_sys_id(&created.id));
        assert_eq!(
            created.url,
            format!(
                "{}/nav_to.do?uri=incident.do?sys_id={}",
                sim.base_url(),
                created.id
            )
        );
        assert_eq!(
            created.attrs["summary"],
            "[Sentinel #8812] Suspicious sign-in"
        );
        assert_eq!(created.attrs["description"], t.attrs["description"]);
        assert_eq!(created.attrs["status"], "2");
        assert_eq!(created.attrs["impact"], "1");
        assert_eq!(created.attrs["urgency"], "2");
        assert_eq!(created.attrs["priority"], "2", "calculated by the instance");
        assert_eq!(created.attrs["assignee"], "ana@contoso.com");
        assert!(created.labels.is_empty(), "ServiceNow has no labels");
        // The scope is not readable back from its tag.
        assert_eq!(
            created.correlation,
            Some(Correlation::new(
                "sentinel",
                "6f0c2b8e-7c1a-4a53-9a0e-2d3f4b5c6d7e"
            ))
        );
        let stored = sim.incident("INC0010001").unwrap();
        assert_eq!(
            stored["correlation_id"],
            wire::correlation_id(&t.correlation).unwrap()
        );
        assert!(
            stored["correlation_id"].starts_with("itsm-bridge:sentinel:")
                && stored["correlation_id"].len() <= 100
        );
        assert_eq!(stored["correlation_display"], "itsm-bridge: sentinel");
        assert_eq!(stored["sys_created_by"], USER);

        assert_eq!(snow.get("INC0010001").await.unwrap(), created);
        assert_eq!(snow.get(&created.id).await.unwrap(), created);
        assert_eq!(
            count(&sim, "POST", INCIDENTS),
            1,
            "one POST, never repeated"
        );
    }

    #[tokio::test]
    async fn a_create_in_a_resolved_state_needs_its_close_fields() {
        let sim = start().await;
        let snow = tickets(&sim);
        let resolved = snow
            .create(&ticket(
                "1",
                &[
                    ("summary", "s"),
                    ("status", "6"),
                    ("close_code", "Solution provided"),
                    ("close_notes", "Closed in Sentinel"),
                ],
            ))
            .await
            .unwrap();
        assert_eq!(resolved.attrs["status"], "6");
        let err = snow
            .create(&ticket("2", &[("summary", "s"), ("status", "6")]))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(
            err.message
                .contains("The following fields are mandatory: Resolution code, Resolution notes"),
            "{}",
            err.message
        );
        assert_eq!(sim.incidents().len(), 1);
    }

    #[tokio::test]
    async fn an_instance_that_starts_incidents_as_new_gets_the_state_set_after_insert() {
        let sim = start().await;
        sim.set_new_incidents_start_new(true);
        let snow = tickets(&sim);
        let created = snow
            .create(&ticket("1", &[("summary", "s"), ("status", "2")]))
            .await
            .unwrap();
        assert_eq!(created.attrs["status"], "2");
        assert_eq!(sim.incident(&created.key).unwrap()["state"], "2");
        assert_eq!(count(&sim, "POST", INCIDENTS), 1);
        let patch = format!("{INCIDENTS}/{}", created.id);
        assert_eq!(count(&sim, "PATCH", &patch), 1);
    }

    #[tokio::test]
    async fn find_by_correlation_finds_the_ticket_and_no_other_incident_or_workspace() {
        let sim = start().await;
        let snow = tickets(&sim);
        let a = snow
            .create(&ticket("41877", &[("summary", "a")]))
            .await
            .unwrap();
        let mut other_ws = ticket("41877", &[("summary", "b")]);
        other_ws.correlation = other_ws.correlation.with_scope("another workspace");
        let b = snow.create(&other_ws).await.unwrap();
        let mut unscoped = ticket("41877", &[("summary", "c")]);
        unscoped.correlation = Correlation::new("defender", "41877");
        let c = snow.create(&unscoped).await.unwrap();
        // Not the bridge's: another integration's correlation id.
        sim.create_as_analyst(&[
            ("short_description", "x"),
            ("correlation_id", "sentinel:41877"),
        ])
        .unwrap();

        let found = snow
            .find_by_correlation(&correlation("41877"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.key, a.key);
        assert_eq!(
            snow.find_by_correlation(&other_ws.correlation)
                .await
                .unwrap()
                .unwrap()
                .key,
            b.key
        );
        assert_eq!(
            snow.find_by_correlation(&unscoped.correlation)
                .await
                .unwrap()
                .unwrap()
                .key,
            c.key
        );
        for missing in ["41878", "4187", "418770"] {
            assert_eq!(
                snow.find_by_correlation(&correlation(missing))
                    .await
                    .unwrap(),
                None,
                "{missing}"
            );
        }
    }

    #[tokio::test]
    async fn find_by_correlation_never_adopts_a_row_the_instance_returned_by_dropping_the_condition()
     {
        let sim = start().await;
        let snow = tickets(&sim);
        let first = seed(&sim, "1");
        seed(&sim, "2");
        // The trap: a condition on a field the instance cannot use is dropped, and
        // the query then matches every incident.
        assert_eq!(
            raw_numbers(&sim, "corelation_id=itsm-bridge:sentinel:x:1")
                .await
                .len(),
            2
        );
        // The same happens to the real field when the instance cannot apply it
        // (an ACL on the column, say).
        sim.ignore_query_field("correlation_id");
        let cid = wire::correlation_id(&correlation("3")).unwrap();
        assert_eq!(
            raw_numbers(&sim, &format!("correlation_id={cid}"))
                .await
                .len(),
            2
        );
        // The client sees rows that cannot match, and refuses to conclude anything:
        // no adoption of a wrong ticket, and no "not found" (a duplicate would follow).
        let err = snow
            .find_by_correlation(&correlation("3"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(
            err.message.contains("ignored the correlation_id condition")
                && err.message.contains(&first),
            "{}",
            err.message
        );
        // Even for an incident that has a ticket: the other row gives it away.
        let err = snow
            .find_by_correlation(&correlation("2"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
    }

    #[tokio::test]
    async fn find_by_correlation_skips_rows_that_differ_only_in_case() {
        let sim = start().await;
        let snow = tickets(&sim);
        let cid = wire::correlation_id(&correlation("abc")).unwrap();
        // An instance whose collation ignores case hands back a look-alike.
        let body = json!({"result":[{
            "sys_id":"0123456789abcdef0123456789abcdef","number":"INC0099999",
            "correlation_id": cid.to_uppercase(),
            "sys_created_on":"2025-05-02 08:00:00","sys_updated_on":"2025-05-02 08:00:00"}]});
        sim.kit.inject(Fault {
            method: Some(Method::GET),
            path_contains: INCIDENTS.into(),
            times: 1,
            status: 200,
            retry_after: None,
            body: body.to_string(),
        });
        assert_eq!(
            snow.find_by_correlation(&correlation("abc")).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn changed_since_pages_450_incidents_through_link_exactly_once() {
        let sim = start().await;
        let snow = tickets(&sim);
        let since = Utc::now() - chrono::Duration::minutes(1);
        for n in 0..450 {
            seed(&sim, &n.to_string());
        }
        // Not the bridge's: no correlation id, or another integration's.
        sim.create_as_analyst(&[("short_description", "by hand")])
            .unwrap();
        sim.create_as_analyst(&[("short_description", "x"), ("correlation_id", "sentinel:1")])
            .unwrap();
        sim.kit.clear_log();

        let mut page = snow.changed_since(since).await.unwrap();
        let mut seen = Vec::new();
        let mut nexts = Vec::new();
        loop {
            seen.extend(
                page.items
                    .iter()
                    .map(|t| (t.modified, t.id.clone(), t.key.clone())),
            );
            let Some(next) = page.next else { break };
            assert!(next.starts_with(&format!("{}/api/now/table/incident?", sim.base_url())));
            nexts.push(next.clone());
            page = snow.next_page(&next).await.unwrap();
        }
        assert_eq!(nexts.len(), 2, "three pages");
        assert!(nexts[0].contains("sysparm_offset=200") && nexts[1].contains("sysparm_offset=400"));
        assert_eq!(seen.len(), 450);
        let unique: BTreeSet<&String> = seen.iter().map(|(_, _, key)| key).collect();
        assert_eq!(unique.len(), 450, "every incident exactly once");
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted, "ordered by sys_updated_on, then sys_id");
        assert_eq!(count(&sim, "GET", INCIDENTS), 3);
        let query = &queries(&sim, INCIDENTS)[0];
        assert!(
            query.ends_with(
                "^correlation_idSTARTSWITHitsm-bridge:^ORDERBYsys_updated_on^ORDERBYsys_id"
            ),
            "{query}"
        );
        // A next link is followed only on the instance's own host.
        let err = snow
            .next_page("https://evil.example/api/now/table/incident?sysparm_offset=200")
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidPayload);
    }

    #[tokio::test]
    async fn changed_since_filters_on_sys_updated_on() {
        let sim = start().await;
        let snow = tickets(&sim);
        let (one, two, three) = (seed(&sim, "1"), seed(&sim, "2"), seed(&sim, "3"));
        let base = wire::parse_time("2026-11-01 08:00:00").unwrap();
        sim.backdate(&one, base - chrono::Duration::hours(1))
            .unwrap();
        sim.backdate(&two, base + chrono::Duration::seconds(30))
            .unwrap();
        sim.backdate(&three, base + chrono::Duration::seconds(31))
            .unwrap();
        let keys = |page: Page<TicketSnapshot>| -> Vec<String> {
            page.items.into_iter().map(|t| t.key).collect()
        };
        // Inclusive, and a sub-second `since` is floored to its second.
        let since = base + chrono::Duration::milliseconds(30_900);
        assert_eq!(
            keys(snow.changed_since(since).await.unwrap()),
            vec![two.clone(), three.clone()]
        );
        assert_eq!(
            keys(
                snow.changed_since(base + chrono::Duration::seconds(31))
                    .await
                    .unwrap()
            ),
            vec![three.clone()]
        );
        assert_eq!(
            keys(
                snow.changed_since(base - chrono::Duration::days(1))
                    .await
                    .unwrap()
            ),
            vec![one, two, three]
        );
        let query = queries(&sim, INCIDENTS).remove(0);
        assert!(
            query.starts_with("sys_updated_on>=2026-11-01 08:00:30^"),
            "{query}"
        );
    }

    #[tokio::test]
    async fn resolving_without_close_fields_is_a_permanent_data_policy_error() {
        let sim = start().await;
        let snow = tickets(&sim);
        let created = snow
            .create(&ticket("1", &[("summary", "s")]))
            .await
            .unwrap();
        let err = snow
            .update(&created.key, &set(&[("status", Some("6"))]))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent, "{}", err.message);
        assert!(
            err.message.contains("HTTP 403")
                && err
                    .message
                    .contains("Data Policy Exception: The following fields are mandatory: Resolution code, Resolution notes"),
            "{}",
            err.message
        );
        assert_eq!(sim.incident(&created.key).unwrap()["state"], "1");
        let err = snow
            .update(&created.key, &set(&[("status", Some("3"))]))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(err.message.contains("On hold reason"), "{}", err.message);
    }

    #[tokio::test]
    async fn resolving_with_a_close_code_and_notes_sets_state_6() {
        let sim = start().await;
        let snow = tickets(&sim);
        let created = snow
            .create(&ticket("1", &[("summary", "s")]))
            .await
            .unwrap();
        let resolved = snow
            .update(
                &created.key,
                &set(&[
                    ("status", Some("6")),
                    // The instance's spelling is used whatever the mapping's case.
                    ("close_code", Some("solution provided")),
                    ("close_notes", Some("Closed in Sentinel as TruePositive")),
                ]),
            )
            .await
            .unwrap();
        assert_eq!(resolved.attrs["status"], "6");
        assert_eq!(resolved.attrs["close_code"], "Solution provided");
        assert_eq!(
            resolved.attrs["close_notes"],
            "Closed in Sentinel as TruePositive"
        );
        let stored = sim.incident(&created.key).unwrap();
        assert_eq!(
            (stored["state"].as_str(), stored["incident_state"].as_str()),
            ("6", "6")
        );
        assert!(!stored["resolved_at"].is_empty());
        assert!(resolved.modified >= created.modified);
        assert_eq!(
            (created.version.as_deref(), resolved.version.as_deref()),
            (Some("0"), Some("1")),
            "each write counts in sys_mod_count, whatever the second"
        );

        // A code the instance does not offer is refused before anything is sent.
        sim.kit.clear_log();
        let err = snow
            .update(&created.key, &set(&[("close_code", Some("Fixed it"))]))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(
            err.message
                .contains("\"Fixed it\" is not offered by this instance")
                && err
                    .message
                    .contains("Solution provided, Workaround provided"),
            "{}",
            err.message
        );
        assert_eq!(
            count(&sim, "PATCH", &format!("{INCIDENTS}/{}", created.id)),
            0
        );
        // The choices change (an older release's codes): a code the client still
        // knows is refused by the instance, and the list is read again ...
        sim.set_close_codes(CLOSE_CODES_LEGACY);
        let err = snow
            .update(
                &created.key,
                &set(&[("close_code", Some("Workaround provided"))]),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(
            err.message
                .contains("Invalid choice value 'Workaround provided'"),
            "{}",
            err.message
        );
        let err = snow
            .update(
                &created.key,
                &set(&[("close_code", Some("Workaround provided"))]),
            )
            .await
            .unwrap_err();
        assert!(
            err.message.contains("Solved (Permanently)"),
            "{}",
            err.message
        );
        // ... so a code of the new list is taken.
        let legacy = snow
            .update(
                &created.key,
                &set(&[("close_code", Some("Solved (Permanently)"))]),
            )
            .await
            .unwrap();
        assert_eq!(legacy.attrs["close_code"], "Solved (Permanently)");
    }

    #[tokio::test]
    async fn work_notes_append_and_read_back_empty_on_the_incident() {
        let sim = start().await;
        let snow = tickets(&sim);
        let created = snow
            .create(&ticket("1", &[("summary", "s")]))
            .await
            .unwrap();
        let note = snow
            .add_comment(
                &created.key,
                "Sentinel incident 8812 closed by ana@contoso.com",
            )
            .await
            .unwrap();
        assert!(note.id.as_deref().is_some_and(is_sys_id));
        assert_eq!(note.author.as_deref(), Some(USER));
        assert_eq!(
            note.text,
            "Sentinel incident 8812 closed by ana@contoso.com"
        );
        assert_eq!(sim.incident(&created.key).unwrap()["work_notes"], "");
        sim.add_work_note_as(&created.key, "ana.ruiz", "looking at it")
            .unwrap();
        let journal = sim.journal(&created.key);
        assert_eq!(journal.len(), 2);
        assert_eq!(journal[0]["element"], "work_notes");
        assert_eq!(journal[0]["value"], note.text);

        let got = snow.get(&created.key).await.unwrap();
        assert!(!got.attrs.contains_key("work_notes"));
        assert_eq!(got.comments.len(), 2);
        assert_eq!(got.comments[0], note);
        assert_eq!(got.comments[1].author.as_deref(), Some("ana.ruiz"));
        assert_eq!(got.comments[1].text, "looking at it");
        // Notes bump sys_updated_on, so the engine's poll sees them.
        assert!(got.modified >= got.comments[1].created);
    }

    #[tokio::test]
    async fn add_comment_twice_with_the_same_text_adds_one_journal_entry() {
        let sim = start().await;
        let snow = tickets(&sim);
        let created = snow
            .create(&ticket("1", &[("summary", "s")]))
            .await
            .unwrap();
        let first = snow
            .add_comment(&created.key, "closed in Sentinel")
            .await
            .unwrap();
        let again = snow
            .add_comment(&created.key, "closed in Sentinel")
            .await
            .unwrap();
        assert_eq!(first, again);
        assert_eq!(sim.journal(&created.key).len(), 1);
        assert_eq!(
            count(&sim, "PATCH", &format!("{INCIDENTS}/{}", created.id)),
            1
        );
        // Another text is another note; an empty one is refused.
        snow.add_comment(&created.key, "reopened").await.unwrap();
        assert_eq!(sim.journal(&created.key).len(), 2);
        let err = snow.add_comment(&created.key, "  ").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
    }

    #[tokio::test]
    async fn hostile_correlation_ids_cannot_widen_a_query() {
        let sim = start().await;
        let snow = tickets(&sim);
        snow.create(&ticket("1", &[("summary", "s")]))
            .await
            .unwrap();
        let hostile = "x^NQsys_idISNOTEMPTY";
        let tag = wire::scope_tag(SCOPE);
        // Pasted into the query as it is, the id would match every incident ...
        let naive = format!("correlation_id=itsm-bridge:sentinel:{tag}:{hostile}");
        assert_eq!(raw_numbers(&sim, &naive).await, vec!["INC0010001"]);
        // ... but the client's correlation id keeps it one value.
        sim.kit.clear_log();
        assert_eq!(
            snow.find_by_correlation(&correlation(hostile))
                .await
                .unwrap(),
            None
        );
        let query = queries(&sim, INCIDENTS).remove(0);
        assert_eq!(query.matches('^').count(), 2, "{query}");
        assert!(query.starts_with(&format!(
            "correlation_id=itsm-bridge:sentinel:{tag}:x%5ENQsys_idISNOTEMPTY^"
        )));
        // A ticket with that very id is found, and only it.
        let h = snow
            .create(&ticket(hostile, &[("summary", "h")]))
            .await
            .unwrap();
        let found = snow
            .find_by_correlation(&correlation(hostile))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.key, h.key);
        assert_eq!(
            found.correlation,
            Some(Correlation::new("sentinel", hostile))
        );
        for other in [
            "a^ORcorrelation_idISNOTEMPTY",
            "line\nbreak",
            "javascript:gs.log(1)",
        ] {
            assert_eq!(
                snow.find_by_correlation(&correlation(other)).await.unwrap(),
                None
            );
        }
        // Keys and names that would reach a query as they are are refused.
        sim.kit.clear_log();
        for key in ["INC0010001^NQsys_idISNOTEMPTY", "INC1\n", "javascript:x"] {
            let err = snow.get(key).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::Permanent, "{key:?}");
        }
        assert_eq!(sim.kit.request_count(), 0);
        // An assignee that cannot be queried is just not found.
        let t = snow
            .update(
                "INC0010001",
                &set(&[("assignee", Some("ana@contoso.com^NQactive=true"))]),
            )
            .await
            .unwrap();
        assert!(!t.attrs.contains_key("assignee"));
        assert!(queries(&sim, "/api/now/table/sys_user").is_empty());
    }

    #[tokio::test]
    async fn bad_credentials_are_an_auth_error() {
        let sim = start().await;
        let snow = tickets_with(&sim, "wrong-password");
        let err = snow.get("INC0010001").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Auth);
        assert!(
            err.message
                .contains("User Not Authenticated: Required to provide Auth information"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("wrong-password"));
        let err = snow.changed_since(Utc::now()).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Auth);
    }

    #[tokio::test]
    async fn updates_take_a_number_or_sys_id_clear_with_empty_and_refuse_what_cannot_be_written() {
        let sim = start().await;
        let snow = tickets(&sim);
        let created = snow
            .create(&ticket("1", &[("summary", "s"), ("description", "d")]))
            .await
            .unwrap();
        let fresh = tickets(&sim); // no cached number
        let updated = fresh
            .update(
                &created.key,
                &set(&[
                    ("description", None),
                    ("impact", Some("2")),
                    ("urgency", Some("1")),
                ]),
            )
            .await
            .unwrap();
        assert!(!updated.attrs.contains_key("description"));
        assert_eq!(updated.attrs["priority"], "2");
        assert_eq!(sim.incident(&created.key).unwrap()["description"], "");
        let by_id = fresh
            .update(&created.id, &set(&[("summary", Some("by id"))]))
            .await
            .unwrap();
        assert_eq!(by_id.attrs["summary"], "by id");

        sim.kit.clear_log();
        for bad in [
            set(&[("priority", Some("1"))]),
            set(&[("status", None)]),
            set(&[("status", Some("5"))]),
            set(&[("impact", Some("High"))]),
            set(&[("colour", Some("red"))]),
        ] {
            let err = snow.update(&created.key, &bad).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::Permanent, "{bad:?}");
        }
        assert_eq!(sim.kit.request_count(), 0);
        // Labels have nowhere to go: nothing is written.
        let labels_only = TicketUpdate {
            set: Default::default(),
            add_labels: vec!["merged".into()],
        };
        snow.update(&created.key, &labels_only).await.unwrap();
        assert_eq!(
            count(&sim, "PATCH", &format!("{INCIDENTS}/{}", created.id)),
            0
        );

        let err = snow.get("INC0099999").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        let err = snow
            .get("0123456789abcdef0123456789abcdef")
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert!(err.message.contains("No Record found"), "{}", err.message);
    }

    #[tokio::test]
    async fn assignees_and_groups_are_looked_up_once() {
        let sim = start().await;
        let soc = sim.add_group("SOC Tier 1");
        let snow = tickets(&sim);
        let a = snow
            .create(&ticket(
                "1",
                &[
                    ("summary", "a"),
                    ("assignee", "Ana@Contoso.com"),
                    ("assignment_group", "soc tier 1"),
                ],
            ))
            .await
            .unwrap();
        assert_eq!(a.attrs["assignee"], "ana@contoso.com");
        assert_eq!(a.attrs["assignment_group"], "SOC Tier 1");
        assert_eq!(sim.incident(&a.key).unwrap()["assignment_group"], soc);
        let b = snow
            .create(&ticket("2", &[("summary", "b"), ("assignee", "ana.ruiz")]))
            .await
            .unwrap();
        assert_eq!(b.attrs["assignee"], "ana@contoso.com");
        assert_eq!(
            queries(&sim, "/api/now/table/sys_user").len(),
            2,
            "email and user name"
        );
        snow.create(&ticket(
            "3",
            &[("summary", "c"), ("assignee", "ana@contoso.com")],
        ))
        .await
        .unwrap();
        assert_eq!(queries(&sim, "/api/now/table/sys_user").len(), 2, "cached");

        let c = snow
            .create(&ticket(
                "4",
                &[("summary", "d"), ("assignee", "nobody@contoso.com")],
            ))
            .await
            .unwrap();
        assert!(!c.attrs.contains_key("assignee"));
        let asked = queries(&sim, "/api/now/table/sys_user").len();
        let d = snow
            .create(&ticket(
                "5",
                &[("summary", "e"), ("assignee", "Nobody@contoso.com")],
            ))
            .await
            .unwrap();
        assert!(!d.attrs.contains_key("assignee"));
        assert_eq!(
            queries(&sim, "/api/now/table/sys_user").len(),
            asked,
            "an unknown user is not asked for again within MISS_TTL"
        );
        let cleared = snow
            .update(&a.key, &set(&[("assignee", None)]))
            .await
            .unwrap();
        assert!(!cleared.attrs.contains_key("assignee"));
    }

    #[tokio::test]
    async fn oauth_client_credentials_sign_requests_and_renew_after_a_401() {
        let sim = start().await;
        sim.set_oauth_client("bridge-app", "app-secret", "bridge.oauth");
        let client = build_client(&HttpSettings::default()).unwrap();
        let api = servicenow_oauth_api(
            &sim.base_url(),
            client.clone(),
            "bridge-app",
            SecretString::from("app-secret"),
        )
        .unwrap();
        let snow = ServiceNowTickets::new(fast(api));
        let created = snow
            .create(&ticket("1", &[("summary", "s")]))
            .await
            .unwrap();
        assert_eq!(
            sim.incident(&created.key).unwrap()["sys_created_by"],
            "bridge.oauth"
        );
        snow.get(&created.key).await.unwrap();
        let token_calls = |sim: &ServiceNowSim| {
            sim.kit
                .requests()
                .iter()
                .filter(|r| r.path == "/oauth_token.do")
                .count()
        };
        assert_eq!(token_calls(&sim), 1, "the token is cached");
        sim.expire_tokens();
        snow.get(&created.key).await.unwrap();
        assert_eq!(token_calls(&sim), 2, "renewed once after the 401");

        let api = servicenow_oauth_api(
            &sim.base_url(),
            client,
            "bridge-app",
            SecretString::from("nope"),
        )
        .unwrap();
        let err = ServiceNowTickets::new(fast(api))
            .get(&created.key)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Auth);
        assert!(!err.message.contains("nope"), "{}", err.message);
    }

    #[tokio::test]
    async fn an_hourly_rate_limit_comes_back_as_rate_limited_without_waiting() {
        let sim = start().await;
        let snow = tickets(&sim);
        let created = snow
            .create(&ticket("1", &[("summary", "s")]))
            .await
            .unwrap();
        sim.set_rate_limit(Some(2));
        snow.get(&created.key).await.unwrap(); // the incident and its journal
        let started = std::time::Instant::now();
        let err = snow.get(&created.key).await.unwrap_err();
        match err.kind {
            ErrorKind::RateLimited(Some(wait)) => assert!(wait > Duration::from_secs(3000)),
            other => panic!("{other:?}: {}", err.message),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            err.message.contains("Rate limit exceeded"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn a_create_that_gets_a_500_is_not_retried() {
        let sim = start().await;
        let snow = tickets(&sim);
        sim.kit.inject(Fault {
            method: Some(Method::POST),
            path_contains: INCIDENTS.into(),
            times: 1,
            status: 500,
            retry_after: None,
            body: r#"{"error":{"message":"Internal error","detail":null},"status":"failure"}"#
                .into(),
        });
        let err = snow
            .create(&ticket("1", &[("summary", "s")]))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transient);
        assert_eq!(count(&sim, "POST", INCIDENTS), 1);
        assert!(sim.incidents().is_empty());
    }

    #[test]
    fn only_request_refusals_among_403s_are_permanent() {
        let e = |m: &str| {
            let status = if m.starts_with("HTTP 401") { 401 } else { 403 };
            ConnectorError::new(ErrorKind::Auth, SYSTEM, m).with_status(status)
        };
        for (message, kind) in [
            (
                "HTTP 403 Forbidden: Operation Failed: Data Policy Exception: The following fields are mandatory: Resolution code",
                ErrorKind::Permanent,
            ),
            (
                "HTTP 403 Forbidden: Operation Failed: Invalid choice value 'x' for Resolution code (close_code)",
                ErrorKind::Permanent,
            ),
            (
                "HTTP 403 Forbidden: Operation Failed: ACL Exception Update Failed due to security constraints",
                ErrorKind::Auth,
            ),
            (
                "HTTP 403 Forbidden: User Not Authorized: Not permitted",
                ErrorKind::Auth,
            ),
            ("HTTP 403 Forbidden", ErrorKind::Auth),
            ("HTTP 401 Unauthorized: Operation Failed", ErrorKind::Auth),
        ] {
            assert_eq!(classify(e(message)).kind, kind, "{message}");
        }
        let transient = ConnectorError::new(ErrorKind::Transient, SYSTEM, "Operation Failed");
        assert_eq!(classify(transient).kind, ErrorKind::Transient);
    }
}
