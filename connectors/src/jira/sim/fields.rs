//! Jira's field validation, shared by create, edit and the analyst API: ADF, summary,
//! priority, resolution, assignee, labels, components, the screen, and applying an edit
//! or a status to an issue.

use super::*;

pub(super) fn check_adf(value: &Value) -> Result<(), String> {
    fn node(n: &Value, depth: usize) -> Result<(), String> {
        if depth > 64 {
            return Err(NOT_ADF.into());
        }
        let obj = n.as_object().ok_or(NOT_ADF)?;
        let kind = obj.get("type").and_then(Value::as_str).ok_or(NOT_ADF)?;
        if kind == "text" {
            let text = obj.get("text").and_then(Value::as_str).unwrap_or("");
            if text.is_empty() {
                return Err("ADF text nodes must not be empty".into());
            }
        }
        match obj.get("content") {
            None => Ok(()),
            Some(Value::Array(children)) => children.iter().try_for_each(|c| node(c, depth + 1)),
            Some(_) => Err(NOT_ADF.into()),
        }
    }
    let obj = value.as_object().ok_or(NOT_ADF)?;
    if obj.get("type") != Some(&json!("doc")) || obj.get("version") != Some(&json!(1)) {
        return Err(NOT_ADF.into());
    }
    match obj.get("content") {
        Some(Value::Array(children)) => children.iter().try_for_each(|c| node(c, 1)),
        _ => Err(NOT_ADF.into()),
    }
}

pub(super) fn parse_summary(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) if s.trim().is_empty() => {
            Err("You must specify a summary of the issue.".into())
        }
        Value::String(s) if s.chars().count() > 255 => {
            Err("Summary must be less than 255 characters.".into())
        }
        Value::String(s) => Ok(s.clone()),
        Value::Null => Err("You must specify a summary of the issue.".into()),
        _ => Err("Operation value must be a string".into()),
    }
}

pub(super) fn parse_description(v: &Value) -> Result<Option<Value>, String> {
    match v {
        Value::Null => Ok(None),
        doc => check_adf(doc).map(|()| Some(doc.clone())),
    }
}

/// `{"name": …}` or `{"id": …}` against a list whose ids are `base + index`.
pub(super) fn parse_named(v: &Value, names: &[&str], id_base: usize) -> Option<String> {
    let obj = v.as_object()?;
    if let Some(name) = obj.get("name").and_then(Value::as_str) {
        return names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(name))
            .map(|n| n.to_string());
    }
    let id = obj
        .get("id")
        .and_then(Value::as_str)?
        .parse::<usize>()
        .ok()?;
    names.get(id.checked_sub(id_base)?).map(|n| n.to_string())
}

pub(super) fn parse_priority(v: &Value) -> Result<String, String> {
    parse_named(v, PRIORITIES, 1).ok_or_else(|| {
        let name = v.get("name").and_then(Value::as_str).unwrap_or("");
        format!("Priority name '{name}' is not valid. Specify a valid value for priority.")
    })
}

pub(super) fn parse_resolution(v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        v => parse_named(v, RESOLUTIONS, 10000)
            .map(Some)
            .ok_or_else(|| "Could not find valid 'id' or 'name' in resolution object.".into()),
    }
}

pub(super) fn parse_assignee(state: &SimState, v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Object(obj) => {
            let id = obj
                .get("accountId")
                .and_then(Value::as_str)
                .ok_or("Specify the assignee by 'accountId'")?;
            state
                .user(id)
                .map(|u| Some(u.account_id.clone()))
                .ok_or_else(|| format!("User '{id}' does not exist."))
        }
        _ => Err("Operation value must be an object".into()),
    }
}

pub(super) fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        Err("Labels cannot be empty.".into())
    } else if label.chars().any(char::is_whitespace) {
        Err(format!(
            "The label '{label}' contains spaces which is invalid."
        ))
    } else if label.chars().count() > 255 {
        Err(format!(
            "The label '{label}' exceeds the maximum length of 255 characters."
        ))
    } else {
        Ok(())
    }
}

pub(super) fn parse_labels(v: &Value) -> Result<Vec<String>, String> {
    let items = v.as_array().ok_or("Operation value must be an array")?;
    let mut labels: Vec<String> = Vec::new();
    for item in items {
        let label = item.as_str().ok_or("Operation value must be a string")?;
        check_label(label)?;
        if !labels.iter().any(|l| l == label) {
            labels.push(label.to_string());
        }
    }
    Ok(labels)
}

pub(super) fn parse_components(project: &Project, v: &Value) -> Result<Vec<String>, String> {
    let items = v.as_array().ok_or("Operation value must be an array")?;
    items
        .iter()
        .map(|item| {
            let name = item
                .as_object()
                .and_then(|o| o.get("name").or_else(|| o.get("id")))
                .and_then(Value::as_str)
                .ok_or("expected Object containing a 'name' or 'id' property")?;
            project
                .components
                .iter()
                .find(|c| c.eq_ignore_ascii_case(name))
                .cloned()
                .ok_or_else(|| format!("Component name '{name}' is not valid"))
        })
        .collect()
}

pub(super) fn not_on_screen(field: &str) -> String {
    format!("Field '{field}' cannot be set. It is not on the appropriate screen, or unknown.")
}

/// Applies an edit (`{"fields":…, "update":…}`); every problem is reported at once.
/// Returns whether anything changed.
pub(super) fn apply_edit(
    state: &mut SimState,
    i: usize,
    fields: &Map<String, Value>,
    update: &Map<String, Value>,
) -> Result<bool, JiraError> {
    let mut issue = state.records[i].current.clone();
    let before = issue.clone();
    let mut errors = BTreeMap::new();
    for (name, value) in fields {
        if update.contains_key(name) {
            errors.insert(
                name.clone(),
                format!("Field '{name}' cannot be set in both 'fields' and 'update'."),
            );
            continue;
        }
        let result = match name.as_str() {
            "summary" => parse_summary(value).map(|s| issue.summary = s),
            "description" => parse_description(value).map(|d| issue.description = d),
            "priority" => parse_priority(value).map(|p| issue.priority = p),
            "assignee" => parse_assignee(state, value).map(|a| issue.assignee = a),
            "labels" => parse_labels(value).map(|l| issue.labels = l),
            "resolution" => parse_resolution(value).map(|r| {
                issue.resolution_date = r.as_ref().map(|_| simkit::now());
                issue.resolution = r;
            }),
            "components" => {
                let project = state.project(&issue.project).expect("project exists");
                parse_components(project, value).map(|c| issue.components = c)
            }
            other => Err(not_on_screen(other)),
        };
        if let Err(e) = result {
            errors.insert(name.clone(), e);
        }
    }
    for (name, ops) in update {
        if name != "labels" {
            errors.insert(name.clone(), not_on_screen(name));
            continue;
        }
        let Some(ops) = ops.as_array() else {
            errors.insert(name.clone(), "Operation value must be an array".into());
            continue;
        };
        for op in ops {
            let result = match op.as_object().and_then(|o| o.iter().next()) {
                Some((verb, Value::String(label))) if verb == "add" => {
                    check_label(label).map(|()| {
                        if !issue.labels.contains(label) {
                            issue.labels.push(label.clone());
                        }
                    })
                }
                Some((verb, Value::String(label))) if verb == "remove" => {
                    issue.labels.retain(|l| l != label);
                    Ok(())
                }
                Some((verb, value)) if verb == "set" => {
                    parse_labels(value).map(|l| issue.labels = l)
                }
                _ => Err("Operation must be one of add, remove or set with a string label".into()),
            };
            if let Err(e) = result {
                errors.insert(name.clone(), e);
            }
        }
    }
    if !errors.is_empty() {
        state.acting = None;
        return Err(JiraError::fields(errors));
    }
    if issue == before {
        state.acting = None;
        return Ok(false);
    }
    issue.updated = state.tick();
    state.commit(i, issue);
    Ok(true)
}

/// Moves an issue to `to` (a status of its workflow), as the workflow's
/// post-functions would: done sets the resolution (given, kept, or "Done") and
/// its date; any other category clears both unless a resolution is given.
pub(super) fn apply_status(
    issue: &mut SimIssue,
    to: &WorkflowStatus,
    resolution: Option<Option<String>>,
) {
    issue.status = to.name.clone();
    issue.status_category = to.category.clone();
    if to.category == "done" {
        let r = match resolution {
            Some(Some(r)) => r,
            _ => issue.resolution.clone().unwrap_or_else(|| "Done".into()),
        };
        issue.resolution = Some(r);
        issue.resolution_date = Some(simkit::now());
    } else {
        issue.resolution = resolution.flatten();
        issue.resolution_date = issue.resolution.as_ref().map(|_| simkit::now());
    }
}
