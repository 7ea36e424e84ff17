//! Jira's JSON as the simulator renders it: users, statuses and their categories,
//! comments, issues with the fields a request selects (`fields`, `expand`), transitions.

use super::*;

pub(super) fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

pub(super) fn category_json(base: &str, key: &str) -> Value {
    let (id, name, color) = match key {
        "new" => (2, "To Do", "blue-gray"),
        "indeterminate" => (4, "In Progress", "yellow"),
        "done" => (3, "Done", "green"),
        _ => (1, "No Category", "medium-gray"),
    };
    json!({
        "self": format!("{base}/rest/api/3/statuscategory/{id}"),
        "id": id, "key": key, "colorName": color, "name": name,
    })
}

pub(super) fn status_json(base: &str, status: &WorkflowStatus) -> Value {
    json!({
        "self": format!("{base}/rest/api/3/status/{}", status.id),
        "description": "",
        "name": status.name,
        "id": status.id,
        "statusCategory": category_json(base, &status.category),
    })
}

pub(super) fn user_json(state: &SimState, account_id: &str) -> Value {
    let base = &state.base_url;
    let (email, name) = match state.user(account_id) {
        Some(u) => (u.email.clone(), u.display_name.clone()),
        None => (None, "Former user".to_string()),
    };
    let mut user = json!({
        "self": format!("{base}/rest/api/3/user?accountId={account_id}"),
        "accountId": account_id,
        "accountType": "atlassian",
        "displayName": name,
        "active": true,
        "timeZone": "UTC",
    });
    if let Some(email) = email {
        user["emailAddress"] = json!(email);
    }
    user
}

pub(super) fn comment_json(state: &SimState, issue: &SimIssue, c: &SimComment) -> Value {
    json!({
        "self": format!("{}/rest/api/3/issue/{}/comment/{}", state.base_url, issue.id, c.id),
        "id": c.id,
        "author": user_json(state, &c.author),
        "body": c.body,
        "updateAuthor": user_json(state, &c.author),
        "created": format_time(c.created),
        "updated": format_time(c.updated),
        "jsdPublic": true,
    })
}

/// Which fields to render.
#[derive(Debug, Clone)]
pub(super) enum FieldSelection {
    IdOnly,
    Some {
        all: bool,
        navigable: bool,
        include: Vec<String>,
        exclude: Vec<String>,
    },
}

impl FieldSelection {
    pub(super) fn parse(list: &[String]) -> FieldSelection {
        let mut all = false;
        let mut navigable = false;
        let mut include = Vec::new();
        let mut exclude = Vec::new();
        for f in list {
            match f.as_str() {
                "*all" => all = true,
                "*navigable" => navigable = true,
                f if f.starts_with('-') => exclude.push(f[1..].to_string()),
                f => include.push(f.to_string()),
            }
        }
        if !all && !navigable && include.iter().all(|f| f == "id" || f == "key") {
            return FieldSelection::IdOnly;
        }
        FieldSelection::Some {
            all,
            navigable,
            include,
            exclude,
        }
    }

    pub(super) fn all() -> FieldSelection {
        FieldSelection::parse(&["*all".to_string()])
    }

    pub(super) fn wants(&self, field: &str) -> bool {
        match self {
            FieldSelection::IdOnly => false,
            FieldSelection::Some {
                all,
                navigable,
                include,
                exclude,
            } => {
                !exclude.iter().any(|f| f == field)
                    && (*all
                        || (*navigable && field != "comment")
                        || include.iter().any(|f| f == field))
            }
        }
    }
}

pub(super) fn issue_json(
    state: &SimState,
    issue: &SimIssue,
    fields: &FieldSelection,
    properties: &[String],
) -> Value {
    let base = &state.base_url;
    if matches!(fields, FieldSelection::IdOnly) {
        return json!({ "id": issue.id.to_string() });
    }
    let workflow = state.workflow(issue);
    let project = state.project(&issue.project).expect("project exists");
    let status = workflow
        .status(&issue.status)
        .cloned()
        .unwrap_or(WorkflowStatus {
            id: "0".into(),
            name: issue.status.clone(),
            category: issue.status_category.clone(),
        });
    let type_id = ISSUE_TYPES
        .iter()
        .find(|(_, n)| *n == issue.issue_type)
        .map(|(id, _)| *id)
        .unwrap_or("10001");
    let priority_id = PRIORITIES
        .iter()
        .position(|p| *p == issue.priority)
        .map(|i| i + 1)
        .unwrap_or(3);
    let resolution = issue.resolution.as_ref().map(|r| {
        let id = RESOLUTIONS.iter().position(|x| x == r).unwrap_or(0) + 10000;
        json!({"self": format!("{base}/rest/api/3/resolution/{id}"), "id": id.to_string(), "name": r, "description": ""})
    });
    let shown = issue.comments.len().min(EMBEDDED_COMMENTS);
    let all_fields: Vec<(&str, Value)> = vec![
        ("summary", json!(issue.summary)),
        ("description", json!(issue.description)),
        (
            "project",
            json!({"self": format!("{base}/rest/api/3/project/{}", project.id), "id": project.id.to_string(), "key": project.key, "name": project.key}),
        ),
        (
            "issuetype",
            json!({"self": format!("{base}/rest/api/3/issuetype/{type_id}"), "id": type_id, "name": issue.issue_type, "subtask": false}),
        ),
        ("status", status_json(base, &status)),
        (
            "statuscategorychangedate",
            json!(format_time(issue.updated)),
        ),
        ("resolution", json!(resolution)),
        (
            "resolutiondate",
            json!(issue.resolution_date.map(format_time)),
        ),
        (
            "priority",
            json!({"self": format!("{base}/rest/api/3/priority/{priority_id}"), "id": priority_id.to_string(), "name": issue.priority}),
        ),
        ("labels", json!(issue.labels)),
        (
            "components",
            json!(
                issue
                    .components
                    .iter()
                    .map(|c| json!({"name": c}))
                    .collect::<Vec<_>>()
            ),
        ),
        (
            "assignee",
            issue
                .assignee
                .as_deref()
                .map(|a| user_json(state, a))
                .unwrap_or(Value::Null),
        ),
        (
            "reporter",
            issue
                .reporter
                .as_deref()
                .map(|a| user_json(state, a))
                .unwrap_or(Value::Null),
        ),
        ("created", json!(format_time(issue.created))),
        ("updated", json!(format_time(issue.updated))),
        (
            "comment",
            json!({
                "self": format!("{base}/rest/api/3/issue/{}/comment", issue.id),
                "comments": issue.comments[..shown].iter().map(|c| comment_json(state, issue, c)).collect::<Vec<_>>(),
                "maxResults": shown,
                "total": issue.comments.len(),
                "startAt": 0,
            }),
        ),
    ];
    let rendered: Map<String, Value> = all_fields
        .into_iter()
        .filter(|(name, _)| fields.wants(name))
        .map(|(name, value)| (name.to_string(), value))
        .collect();
    let mut out = json!({
        "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
        "id": issue.id.to_string(),
        "self": format!("{base}/rest/api/3/issue/{}", issue.id),
        "key": issue.key,
        "fields": rendered,
    });
    if !properties.is_empty() {
        let all = properties.iter().any(|p| p == "*all");
        let props: Map<String, Value> = issue
            .properties
            .iter()
            .filter(|(k, _)| all || properties.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out["properties"] = Value::Object(props);
    }
    out
}

pub(super) fn transition_json(
    state: &SimState,
    workflow: &Workflow,
    t: &WorkflowTransition,
    expand: bool,
) -> Value {
    let base = &state.base_url;
    let to = workflow.status(&t.to).expect("transition targets exist");
    let mut out = json!({
        "id": t.id.to_string(),
        "name": t.name,
        "to": status_json(base, to),
        "hasScreen": !t.screen.is_empty(),
        "isGlobal": false,
        "isInitial": false,
        "isAvailable": true,
        "isConditional": false,
        "isLooped": false,
    });
    if expand {
        let fields: Map<String, Value> = t
            .screen
            .iter()
            .map(|f| {
                let meta = if f == "resolution" {
                    json!({
                        "required": false,
                        "schema": {"type": "resolution", "system": "resolution"},
                        "name": "Resolution",
                        "key": "resolution",
                        "hasDefaultValue": false,
                        "operations": ["set"],
                        "allowedValues": RESOLUTIONS.iter().enumerate().map(|(i, r)| json!({
                            "self": format!("{base}/rest/api/3/resolution/{}", 10000 + i),
                            "id": (10000 + i).to_string(),
                            "name": r,
                        })).collect::<Vec<_>>(),
                    })
                } else {
                    json!({"required": false, "name": f, "key": f, "operations": ["set"]})
                };
                (f.clone(), meta)
            })
            .collect();
        out["fields"] = Value::Object(fields);
    }
    out
}
