//! The Jira simulator's changelog: every change to an issue's tracked fields
//! (a REST edit or transition by the caller, a change through the analyst API)
//! is recorded as a history `{id, author, created, items}` when the version is
//! committed, and rendered as the `changelog` of an issue (GET or search) only
//! when the request asks for `expand=changelog`.

use super::*;

/// One entry of an issue's changelog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimHistory {
    pub id: u64,
    /// The author's accountId.
    pub author: String,
    pub created: DateTime<Utc>,
    pub items: Vec<SimHistoryItem>,
}

/// One field's change within a history, as Jira lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimHistoryItem {
    /// The field's name (`status`, `resolution`, `priority`, …); also its `fieldId`.
    pub field: String,
    pub from: Option<String>,
    pub from_string: Option<String>,
    pub to: Option<String>,
    pub to_string: Option<String>,
}

/// The most histories an expanded changelog embeds (the newest, oldest first);
/// `total` says how many there are. [U: the documented changelog endpoint pages
/// by 100; the embedded cut is not documented]
pub const EMBEDDED_HISTORIES: usize = 100;

/// Who a change through the analyst API is made by when it names nobody.
pub const DEFAULT_ANALYST: &str = "Jira Analyst";

impl SimState {
    /// The items of a change from `old` to `new`, field by field.
    fn history_items(&self, old: &SimIssue, new: &SimIssue) -> Vec<SimHistoryItem> {
        let mut items = Vec::new();
        let mut item = |field: &str, from: Option<String>, from_s, to: Option<String>, to_s| {
            items.push(SimHistoryItem {
                field: field.to_string(),
                from,
                from_string: from_s,
                to,
                to_string: to_s,
            });
        };
        if old.summary != new.summary {
            item(
                "summary",
                None,
                Some(old.summary.clone()),
                None,
                Some(new.summary.clone()),
            );
        }
        if old.description != new.description {
            let text = |d: &Option<Value>| d.as_ref().map(crate::jira::adf::adf_to_text);
            item(
                "description",
                None,
                text(&old.description),
                None,
                text(&new.description),
            );
        }
        if old.status != new.status {
            let id = |name: &str| self.workflow(new).status(name).map(|s| s.id.clone());
            item(
                "status",
                id(&old.status),
                Some(old.status.clone()),
                id(&new.status),
                Some(new.status.clone()),
            );
        }
        if old.priority != new.priority {
            let id = |name: &str| {
                PRIORITIES
                    .iter()
                    .position(|p| *p == name)
                    .map(|i| (i + 1).to_string())
            };
            item(
                "priority",
                id(&old.priority),
                Some(old.priority.clone()),
                id(&new.priority),
                Some(new.priority.clone()),
            );
        }
        if old.resolution != new.resolution {
            let id = |r: &Option<String>| {
                r.as_ref()
                    .and_then(|r| RESOLUTIONS.iter().position(|x| x == r))
                    .map(|i| (i + 10000).to_string())
            };
            item(
                "resolution",
                id(&old.resolution),
                old.resolution.clone(),
                id(&new.resolution),
                new.resolution.clone(),
            );
        }
        if old.assignee != new.assignee {
            let name = |a: &Option<String>| {
                a.as_deref().map(|a| {
                    self.user(a)
                        .map_or(a.to_string(), |u| u.display_name.clone())
                })
            };
            item(
                "assignee",
                old.assignee.clone(),
                name(&old.assignee),
                new.assignee.clone(),
                name(&new.assignee),
            );
        }
        if old.labels != new.labels {
            item(
                "labels",
                None,
                Some(old.labels.join(" ")),
                None,
                Some(new.labels.join(" ")),
            );
        }
        items
    }

    /// Adds to `new` the history of its change from `old`, by the account
    /// `acting` names (the caller of the request being served, or the analyst of
    /// an analyst API call), else the default analyst. Nothing for a change that
    /// touches no tracked field (a comment, a property).
    pub(super) fn record_history(&mut self, old: &SimIssue, new: &mut SimIssue) {
        let acting = self.acting.take();
        let items = self.history_items(old, new);
        if items.is_empty() {
            return;
        }
        let author = match acting {
            Some(account) => account,
            None => self.account_named(DEFAULT_ANALYST),
        };
        self.next_history_id += 1;
        new.changelog.push(SimHistory {
            id: self.next_history_id,
            author,
            created: new.updated,
            items,
        });
    }

    /// The accountId of the user with this display name or email, added (with no
    /// email) when there is none.
    pub(super) fn account_named(&mut self, who: &str) -> String {
        let known = self.users.iter().find(|u| {
            u.display_name == who
                || u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(who))
        });
        match known {
            Some(u) => u.account_id.clone(),
            None => self.add_user(None, who),
        }
    }

    /// The accountId of the REST caller (an email, as the credentials name it).
    pub(super) fn caller_account(&self, caller: &Caller) -> Option<String> {
        self.user_by_email(&caller.0).map(|u| u.account_id.clone())
    }
}

/// The `changelog` of an issue as an expanded GET or search renders it.
pub(super) fn changelog_json(state: &SimState, issue: &SimIssue) -> Value {
    let total = issue.changelog.len();
    let start = total.saturating_sub(EMBEDDED_HISTORIES);
    let histories: Vec<Value> = issue.changelog[start..]
        .iter()
        .map(|h| {
            json!({
                "id": h.id.to_string(),
                "author": user_json(state, &h.author),
                "created": format_time(h.created),
                "items": h.items.iter().map(|i| json!({
                    "field": i.field,
                    "fieldtype": "jira",
                    "fieldId": i.field,
                    "from": i.from,
                    "fromString": i.from_string,
                    "to": i.to,
                    "toString": i.to_string,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "startAt": start,
        "maxResults": histories.len(),
        "total": total,
        "histories": histories,
    })
}

/// Whether a request's `expand` (a comma-separated list) asks for the changelog.
pub(super) fn expands_changelog(expand: &[String]) -> bool {
    expand.iter().any(|e| e == "changelog")
}
