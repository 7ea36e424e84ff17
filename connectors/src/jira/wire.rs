//! Jira Cloud REST v3 JSON as the vendor spells it (`IssueBean`, `statusCategory`,
//! `nextPageToken`, `ErrorCollection`, …) and the pure conversion from it to the
//! domain's [`TicketSnapshot`]. Also owns the bridge's label vocabulary on Jira:
//! the marker label `itsm-bridge` and the correlation label
//! `itsm-bridge:<source>:<incident_id>`.

use std::collections::BTreeMap;

use bridge_core::model::{Attrs, Comment, Correlation, ModifiedBy, TicketSnapshot, Timestamp};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::adf;

/// Every ticket the bridge creates carries this label.
pub const MARKER_LABEL: &str = "itsm-bridge";
/// The correlation label is `itsm-bridge:<source>:<incident_id>`.
pub const CORRELATION_PREFIX: &str = "itsm-bridge:";
/// Jira rejects longer labels.
pub const MAX_LABEL_LEN: usize = 255;
/// The entity property that records the correlation authoritatively.
pub const PROPERTY_KEY: &str = "itsm-bridge";

/// `IssueBean`, as returned by GET issue and search.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IssueBean {
    pub id: String,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<String>,
    #[serde(default)]
    pub fields: IssueFields,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<BTreeMap<String, Value>>,
    /// With `expand=changelog`: the issue's histories (perhaps only the newest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changelog: Option<Changelog>,
}

/// An expanded `changelog`: `{startAt, maxResults, total, histories}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Changelog {
    #[serde(default)]
    pub histories: Vec<History>,
}

/// One changelog history: who changed which fields, when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    #[serde(default)]
    pub id: Option<String>,
    /// Absent for changes made by Jira itself (automation without a user).
    #[serde(default)]
    pub author: Option<User>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub items: Vec<HistoryItem>,
}

/// One field of a history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryItem {
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub field_id: Option<String>,
}

/// The domain attributes a changelog field stands for.
fn changelog_attrs(field: &str) -> &'static [&'static str] {
    match field {
        "summary" => &["summary"],
        "description" => &["description"],
        "status" => &["status", "status_name"],
        "priority" => &["priority"],
        "resolution" => &["resolution"],
        "assignee" => &["assignee"],
        _ => &[],
    }
}

/// Who changed what, from an expanded changelog: per attribute the author of
/// the newest history that changed it, and the author of the newest history.
/// Histories are ordered by their time, then their id, whatever order the
/// response lists them in. An author is named as Jira gives them: the display
/// name, else the accountId.
pub fn modified_by(changelog: Option<&Changelog>) -> ModifiedBy {
    let mut by = ModifiedBy::default();
    let Some(changelog) = changelog else {
        return by;
    };
    let mut histories: Vec<(Timestamp, u64, &History)> = changelog
        .histories
        .iter()
        .filter_map(|h| {
            let at = h.created.as_deref().and_then(parse_time)?;
            let id = h.id.as_deref().and_then(|id| id.parse().ok()).unwrap_or(0);
            Some((at, id, h))
        })
        .collect();
    histories.sort_by_key(|(at, id, _)| (*at, *id));
    for (_, _, history) in histories {
        let Some(author) = history.author.as_ref().map(|a| {
            a.display_name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| a.account_id.clone())
        }) else {
            continue;
        };
        for item in &history.items {
            let field = item.field_id.as_deref().unwrap_or(&item.field);
            for attr in changelog_attrs(field) {
                by.fields.insert((*attr).to_string(), author.clone());
            }
        }
        by.last = Some(author);
    }
    by
}

/// The fields the bridge reads. Every one is optional: search returns only the
/// fields asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IssueFields {
    #[serde(default)]
    pub summary: Option<String>,
    /// An ADF document or null.
    #[serde(default)]
    pub description: Option<Value>,
    #[serde(default)]
    pub status: Option<Status>,
    #[serde(default)]
    pub priority: Option<NamedRef>,
    #[serde(default)]
    pub resolution: Option<NamedRef>,
    #[serde(default)]
    pub assignee: Option<User>,
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub updated: Option<String>,
    #[serde(default)]
    pub comment: Option<CommentPage>,
    #[serde(default)]
    pub project: Option<ProjectRef>,
    #[serde(default)]
    pub issuetype: Option<NamedRef>,
}

/// `{id, name}`: priority, resolution, issue type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedRef {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRef {
    #[serde(default)]
    pub id: Option<String>,
    pub key: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    pub status_category: StatusCategory,
}

/// `statusCategory`: `key` is one of `new`, `indeterminate`, `done` (plus
/// `undefined` on some instances).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCategory {
    #[serde(default)]
    pub id: Option<i64>,
    pub key: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub color_name: Option<String>,
}

/// A user; `emailAddress` may be hidden by the user's privacy settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub account_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email_address: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
}

/// The `comment` field of an issue and the response of GET comments (offset paging).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentPage {
    #[serde(default)]
    pub comments: Vec<WireComment>,
    #[serde(default)]
    pub start_at: Option<u64>,
    #[serde(default)]
    pub max_results: Option<u64>,
    #[serde(default)]
    pub total: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireComment {
    pub id: String,
    #[serde(default)]
    pub author: Option<User>,
    #[serde(default)]
    pub body: Option<Value>,
    pub created: String,
    #[serde(default)]
    pub updated: Option<String>,
}

/// The response of `/search/jql`: no `total`, a token until the last page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResponse {
    /// Issues that do not decode are left out (with a warning), not the page.
    #[serde(default, deserialize_with = "crate::http::lenient_items")]
    pub issues: Vec<IssueBean>,
    #[serde(default)]
    pub next_page_token: Option<String>,
    #[serde(default)]
    pub is_last: Option<bool>,
}

/// The response of `POST /issue`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedIssue {
    pub id: String,
    pub key: String,
    #[serde(rename = "self", default)]
    pub self_link: Option<String>,
    /// How the transition the create asked for went (`NestedResponse`), when
    /// it asked for one: the issue is made either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition: Option<NestedResponse>,
}

/// The outcome of a part of a request (a create's transition): an HTTP status
/// and, when it failed, Jira's error collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NestedResponse {
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub error_collection: Option<Value>,
}

impl NestedResponse {
    /// Jira says 204 for a transition taken; anything else (or no status) is
    /// not known to have happened.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TransitionsResponse {
    #[serde(default)]
    pub transitions: Vec<Transition>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub to: TransitionTarget,
    #[serde(default)]
    pub has_screen: Option<bool>,
    #[serde(default)]
    pub is_available: Option<bool>,
    /// The transition screen's fields (only with `expand=transitions.fields`).
    #[serde(default)]
    pub fields: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransitionTarget {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    pub status_category: StatusCategory,
}

/// Jira's error body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorCollection {
    #[serde(default)]
    pub error_messages: Vec<String>,
    #[serde(default)]
    pub errors: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

impl ErrorCollection {
    /// `errorMessages` joined, then `errors` as `field: message`; `None` when empty.
    pub fn message(&self) -> Option<String> {
        let parts: Vec<String> = self
            .error_messages
            .iter()
            .filter(|m| !m.trim().is_empty())
            .cloned()
            .chain(self.errors.iter().map(|(f, m)| format!("{f}: {m}")))
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// The body of a 4xx/5xx as `ErrorCollection` text, if it is one.
pub fn error_message(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ErrorCollection>(body)
        .ok()?
        .message()
}

/// Jira's timestamp format: `2023-06-24T19:24:50.000+0000`.
pub const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3f%z";

/// Parses Jira's `+0000`-style timestamps (and RFC 3339 as a courtesy).
pub fn parse_time(s: &str) -> Option<Timestamp> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub fn format_time(t: Timestamp) -> String {
    t.format(TIME_FORMAT).to_string()
}

/// Whether `source` is a usable `[[source]]` name in a label: `[a-z0-9][a-z0-9_-]*`.
pub fn valid_source_name(source: &str) -> bool {
    let mut chars = source.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// The correlation label `itsm-bridge:<source>:<incident_id>`, or why it cannot be
/// one (Jira labels hold no whitespace and at most 255 characters).
pub fn correlation_label(correlation: &Correlation) -> Result<String, String> {
    if !valid_source_name(&correlation.source) {
        return Err(format!(
            "source name {:?} cannot go into a Jira label: use lowercase letters, digits, '-' and '_'",
            correlation.source
        ));
    }
    if correlation.incident_id.is_empty()
        || correlation.incident_id.chars().any(char::is_whitespace)
    {
        return Err(format!(
            "incident id {:?} cannot go into a Jira label (it is empty or holds whitespace)",
            correlation.incident_id
        ));
    }
    let label = format!(
        "{CORRELATION_PREFIX}{}:{}",
        correlation.source, correlation.incident_id
    );
    if label.chars().count() > MAX_LABEL_LEN {
        return Err(format!(
            "correlation label for incident {:?} is longer than Jira's {MAX_LABEL_LEN} characters",
            correlation.incident_id
        ));
    }
    Ok(label)
}

/// The correlation a label carries, if it is a correlation label. The source name
/// cannot hold `:`, so the first `:` after the prefix ends it; the incident id is
/// the rest, colons included.
pub fn parse_correlation_label(label: &str) -> Option<Correlation> {
    let head = label.get(..CORRELATION_PREFIX.len())?;
    if !head.eq_ignore_ascii_case(CORRELATION_PREFIX) {
        return None;
    }
    let rest = &label[CORRELATION_PREFIX.len()..];
    let (source, incident_id) = rest.split_once(':')?;
    if !valid_source_name(source)
        || incident_id.is_empty()
        || incident_id.chars().any(char::is_whitespace)
    {
        return None;
    }
    Some(Correlation::new(source, incident_id))
}

/// `<base_url>/browse/<key>`.
pub fn browse_url(base_url: &url::Url, key: &str) -> String {
    let mut url = base_url.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().extend(["browse", key]);
    }
    url.to_string()
}

/// A Jira comment as a domain comment.
pub fn to_comment(comment: &WireComment) -> Result<Comment, String> {
    Ok(Comment {
        id: Some(comment.id.clone()),
        author: comment.author.as_ref().and_then(|a| a.display_name.clone()),
        created: parse_time(&comment.created)
            .ok_or_else(|| format!("comment {} has a bad created time", comment.id))?,
        text: comment
            .body
            .as_ref()
            .map(adf::adf_to_text)
            .unwrap_or_default(),
    })
}

/// An issue as the domain sees it. `base_url` is the site URL (for `browse` links).
/// Fails when an issue lacks its key or its `created`/`updated` times.
pub fn to_snapshot(issue: &IssueBean, base_url: &url::Url) -> Result<TicketSnapshot, String> {
    let key = issue
        .key
        .clone()
        .ok_or_else(|| format!("issue {} came back without a key", issue.id))?;
    let f = &issue.fields;
    let time = |name: &str, value: &Option<String>| {
        value
            .as_deref()
            .and_then(parse_time)
            .ok_or_else(|| format!("issue {key} has no readable {name} time"))
    };
    let created = time("created", &f.created)?;
    let modified = time("updated", &f.updated)?;

    let mut attrs = Attrs::new();
    if let Some(summary) = &f.summary {
        attrs.insert("summary".into(), summary.clone());
    }
    if let Some(description) = f.description.as_ref().filter(|d| !d.is_null()) {
        attrs.insert("description".into(), adf::adf_to_text(description));
    }
    if let Some(status) = &f.status {
        attrs.insert("status".into(), status.status_category.key.clone());
        attrs.insert("status_name".into(), status.name.clone());
    }
    if let Some(priority) = &f.priority {
        attrs.insert("priority".into(), priority.name.clone());
    }
    if let Some(resolution) = &f.resolution {
        attrs.insert("resolution".into(), resolution.name.clone());
    }
    if let Some(email) = f.assignee.as_ref().and_then(|a| a.email_address.clone()) {
        attrs.insert("assignee".into(), email);
    }

    let labels = f.labels.clone().unwrap_or_default();
    let correlation = labels.iter().find_map(|l| parse_correlation_label(l));
    let comments = match &f.comment {
        Some(page) => page
            .comments
            .iter()
            .map(to_comment)
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    Ok(TicketSnapshot {
        modified_by: modified_by(issue.changelog.as_ref()),
        url: browse_url(base_url, &key),
        key,
        id: issue.id.clone(),
        created,
        modified,
        // Jira keeps no revision counter: `updated` (milliseconds) is all.
        version: None,
        attrs,
        labels,
        correlation,
        comments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_changelog_names_each_fields_newest_author_whatever_its_order() {
        let history = |id: &str, at: &str, name: Option<&str>, fields: &[&str]| {
            json!({
                "id": id,
                "created": at,
                "author": {"accountId": format!("acc-{id}"), "displayName": name},
                "items": fields.iter().map(|f| json!({"field": f, "fieldId": f})).collect::<Vec<_>>(),
            })
        };
        // Newest first, as some responses list them; the last two share a time.
        let changelog: Changelog = serde_json::from_value(json!({"histories": [
            history("10003", "2026-12-01T10:00:00.000+0000", Some("Bob"), &["priority"]),
            history("10002", "2026-12-01T10:00:00.000+0000", Some("Ann"), &["status", "resolution"]),
            history("10001", "2026-12-01T09:00:00.000+0000", None, &["status", "summary"]),
        ]}))
        .unwrap();
        let by = modified_by(Some(&changelog));
        assert_eq!(by.last.as_deref(), Some("Bob"));
        assert_eq!(by.of("status"), Some("Ann"));
        assert_eq!(by.of("status_name"), Some("Ann"));
        assert_eq!(by.of("resolution"), Some("Ann"));
        assert_eq!(by.of("priority"), Some("Bob"));
        // No display name: the accountId, as Jira gives it.
        assert_eq!(by.of("summary"), Some("acc-10001"));
        // A field no history touched: the newest history's author.
        assert_eq!(by.of("assignee"), Some("Bob"));
        assert!(modified_by(None).is_empty());
    }

    #[test]
    fn issue_bean_converts_to_a_snapshot() {
        let bean: IssueBean = serde_json::from_value(json!({
            "id": "10431", "key": "SEC-1042", "self": "https://acme.atlassian.net/rest/api/3/issue/10431",
            "fields": {
                "summary": "Suspicious sign-in",
                "description": {"type":"doc","version":1,"content":[
                    {"type":"paragraph","content":[{"type":"text","text":"line 1"}]},
                    {"type":"paragraph","content":[{"type":"text","text":"line 2"}]}]},
                "status": {"id":"3","name":"In Review","statusCategory":{"id":4,"key":"indeterminate","name":"In Progress","colorName":"yellow"}},
                "priority": {"id":"2","name":"High"},
                "resolution": null,
                "assignee": {"accountId":"5b10a2844c20165700ede21g","displayName":"Ann","emailAddress":"ann@acme.example"},
                "labels": ["itsm-bridge", "itsm-bridge:sentinel:6f0c2b8e-7c1a:x", "other"],
                "created": "2023-06-24T19:24:50.000+0000",
                "updated": "2023-06-25T08:00:01.250+0200",
                "comment": {"startAt":0,"maxResults":1,"total":1,"comments":[
                    {"id":"100","author":{"accountId":"a1","displayName":"Bob"},
                     "body":{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"hi"}]}]},
                     "created":"2023-06-24T20:00:00.000+0000"}]}
            }
        }))
        .unwrap();
        let base = url::Url::parse("https://acme.atlassian.net").unwrap();
        let s = to_snapshot(&bean, &base).unwrap();
        assert_eq!(s.key, "SEC-1042");
        assert_eq!(s.id, "10431");
        assert_eq!(s.url, "https://acme.atlassian.net/browse/SEC-1042");
        assert_eq!(s.attrs["summary"], "Suspicious sign-in");
        assert_eq!(s.attrs["description"], "line 1\nline 2");
        assert_eq!(s.attrs["status"], "indeterminate");
        assert_eq!(s.attrs["status_name"], "In Review");
        assert_eq!(s.attrs["priority"], "High");
        assert_eq!(s.attrs["assignee"], "ann@acme.example");
        assert!(!s.attrs.contains_key("resolution"));
        assert_eq!(
            s.correlation,
            Some(Correlation::new("sentinel", "6f0c2b8e-7c1a:x"))
        );
        assert_eq!(s.created.to_rfc3339(), "2023-06-24T19:24:50+00:00");
        assert_eq!(s.modified.to_rfc3339(), "2023-06-25T06:00:01.250+00:00");
        assert_eq!(s.comments.len(), 1);
        assert_eq!(s.comments[0].author.as_deref(), Some("Bob"));
        assert_eq!(s.comments[0].text, "hi");
    }

    #[test]
    fn unassigned_and_unresolved_issues_have_no_such_attrs() {
        let bean: IssueBean = serde_json::from_value(json!({
            "id": "1", "key": "SEC-1",
            "fields": {"assignee": null, "resolution": null, "description": null,
                       "created": "2023-06-24T19:24:50.000+0000", "updated": "2023-06-24T19:24:50.000+0000"}
        }))
        .unwrap();
        let s = to_snapshot(&bean, &url::Url::parse("http://127.0.0.1:1/").unwrap()).unwrap();
        assert!(s.attrs.is_empty());
        assert_eq!(s.url, "http://127.0.0.1:1/browse/SEC-1");
        assert_eq!(s.correlation, None);
        assert!(s.comments.is_empty());
    }

    #[test]
    fn correlation_labels_format_and_parse() {
        let c = Correlation::new("defender", "41877");
        assert_eq!(correlation_label(&c).unwrap(), "itsm-bridge:defender:41877");
        assert_eq!(
            parse_correlation_label("itsm-bridge:defender:41877"),
            Some(c)
        );
        let odd = Correlation::new("sentinel-prod_2", "a:b\"c\\d'e");
        assert_eq!(
            parse_correlation_label(&correlation_label(&odd).unwrap()),
            Some(odd)
        );
        for bad in [
            "itsm-bridge",
            "itsm-bridge:",
            "itsm-bridge:defender",
            "itsm-bridge:defender:",
            "itsm-bridge:Defender:1",
            "itsm-bridge:-x:1",
            "other:defender:1",
        ] {
            assert_eq!(parse_correlation_label(bad), None, "{bad}");
        }
        assert!(correlation_label(&Correlation::new("Bad Source", "1")).is_err());
        assert!(correlation_label(&Correlation::new("ok", "has space")).is_err());
        assert!(correlation_label(&Correlation::new("ok", "")).is_err());
        assert!(correlation_label(&Correlation::new("ok", "x".repeat(300))).is_err());
    }

    #[test]
    fn error_collections_become_messages() {
        let body = br#"{"errorMessages":["Issue does not exist or you do not have permission to see it."],"errors":{}}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("Issue does not exist or you do not have permission to see it.")
        );
        let body = br#"{"errorMessages":["a"],"errors":{"summary":"You must specify a summary of the issue.","priority":"bad"}}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("a; priority: bad; summary: You must specify a summary of the issue.")
        );
        assert_eq!(error_message(br#"{"errorMessages":[],"errors":{}}"#), None);
        assert_eq!(error_message(b"<html>oops</html>"), None);
    }

    #[test]
    fn times_parse_and_format_in_jira_style() {
        let t = parse_time("2023-06-24T19:24:50.123+0000").unwrap();
        assert_eq!(format_time(t), "2023-06-24T19:24:50.123+0000");
        assert!(parse_time("2023-06-24 19:24").is_none());
    }
}
