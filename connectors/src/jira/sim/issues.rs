//! The Jira simulator's issue handlers: create (with its field, `update` and
//! `properties` checks), read, edit, transitions, comments and issue properties.

use super::*;

pub(super) async fn create_issue(State(sim): State<Shared>, caller: Caller, body: Bytes) -> Reply {
    let body = parse_body(&body)?;
    reject_unknown(
        &body,
        &[
            "fields",
            "update",
            "properties",
            "historyMetadata",
            "transition",
        ],
    )?;
    let transition = create_transition(&body)?;
    let empty = Map::new();
    let fields = match body.get("fields") {
        None => &empty,
        Some(Value::Object(f)) => f,
        Some(_) => return Err(JiraError::bad("'fields' must be an object")),
    };
    let update = match body.get("update") {
        None => &empty,
        Some(Value::Object(u)) => u,
        Some(_) => return Err(JiraError::bad("'update' must be an object")),
    };
    let mut state = sim.lock();
    let mut errors = BTreeMap::new();

    let (project_key, issue_type, summary) = required_fields(&state, fields, &mut errors);
    let mut description = None;
    let mut priority = "Medium".to_string();
    let mut assignee = None;
    let mut labels = Vec::new();
    let mut components = Vec::new();
    for (name, value) in fields {
        let result = match name.as_str() {
            "project" | "issuetype" | "summary" => Ok(()),
            "description" => parse_description(value).map(|d| description = d),
            "priority" => parse_priority(value).map(|p| priority = p),
            "assignee" => parse_assignee(&state, value).map(|a| assignee = a),
            "labels" => parse_labels(value).map(|l| labels = l),
            "components" => match project_key.as_deref().and_then(|k| state.project(k)) {
                Some(p) => parse_components(p, value).map(|c| components = c),
                None => Ok(()),
            },
            other => Err(not_on_screen(other)),
        };
        if let Err(e) = result {
            errors.insert(name.clone(), e);
        }
    }
    add_labels(update, &mut labels, &mut errors);
    let properties = create_properties(&body, &mut errors);
    if !errors.is_empty() {
        return Err(JiraError::fields(errors));
    }
    let (Some(project_key), Some(issue_type)) = (project_key, issue_type) else {
        unreachable!("errors were reported above");
    };

    let reporter = state.user_by_email(&caller.0).map(|u| u.account_id.clone());
    let project = state
        .projects
        .iter_mut()
        .find(|p| p.key == project_key)
        .expect("project exists");
    let number = project.next_number;
    project.next_number += 1;
    let initial = project.workflow.statuses[0].clone();
    let now = state.tick();
    let id = FIRST_ISSUE_ID + state.records.len() as u64;
    let key = format!("{project_key}-{number}");
    let mut issue = SimIssue {
        id,
        key: key.clone(),
        project: project_key,
        issue_type,
        summary,
        description,
        status: initial.name,
        status_category: initial.category,
        priority,
        resolution: None,
        resolution_date: None,
        assignee,
        reporter,
        labels,
        components,
        created: now,
        updated: now,
        comments: Vec::new(),
        properties,
        changelog: Vec::new(),
    };
    // The transition runs on the issue as made, in the same request: the
    // index only ever sees its outcome. A refused one leaves the issue made.
    let moved = transition.map(|id| {
        let mover = state.caller_account(&caller);
        transition_on_create(&mut state, &mut issue, id, mover)
    });
    let at = state.index_now();
    let index = state.records.len();
    state.by_key.insert(key.clone(), index);
    state.records.push(Record {
        current: issue.clone(),
        history: VecDeque::from([(at, issue)]),
    });
    let base = state.base_url.clone();
    let mut answer =
        json!({"id": id.to_string(), "key": key, "self": format!("{base}/rest/api/3/issue/{id}")});
    if let Some(moved) = moved {
        answer["transition"] = match moved {
            Ok(()) => {
                json!({"status": 204, "errorCollection": {"errorMessages": [], "errors": {}}})
            }
            Err(message) => {
                json!({"status": 400, "errorCollection": {"errorMessages": [message], "errors": {}}})
            }
        };
    }
    Ok(json_response(StatusCode::CREATED, answer))
}

/// The id of the transition a create asks for (`{"transition": {"id": "21"}}`,
/// `looped` allowed), or 400 when the object is not one.
fn create_transition(body: &Map<String, Value>) -> Result<Option<String>, JiraError> {
    let Some(transition) = body.get("transition") else {
        return Ok(None);
    };
    let Some(object) = transition.as_object() else {
        return Err(JiraError::bad("'transition' must be an object"));
    };
    reject_unknown(object, &["id", "looped"])?;
    match object.get("id") {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        _ => Err(JiraError::bad("Missing 'transition' identifier")),
    }
}

/// Takes transition `id` out of a just-made issue's initial status, as the
/// create's nested transition: the workflow's post-functions apply (done sets
/// the default resolution) and no screen fields are given. `Err` is the message
/// Jira puts in the answer's `transition.errorCollection`. The move is a
/// history of the changelog by `mover`, the caller.
fn transition_on_create(
    state: &mut SimState,
    issue: &mut SimIssue,
    id: String,
    mover: Option<String>,
) -> Result<(), String> {
    let workflow = state.workflow(issue);
    let Some(transition) = workflow
        .available(&issue.status)
        .find(|t| t.id.to_string() == id)
        .cloned()
    else {
        return Err(format!("Transition id '{id}' is not valid for this issue."));
    };
    let to = workflow
        .status(&transition.to)
        .cloned()
        .expect("transition targets exist");
    state.posted_transitions.push(PostedTransition {
        key: issue.key.clone(),
        id,
        name: transition.name.clone(),
        from: issue.status.clone(),
        to: to.name.clone(),
        fields: None,
    });
    let created = issue.clone();
    apply_status(issue, &to, None);
    state.acting = mover;
    state.record_history(&created, issue);
    Ok(())
}

/// A create's project, issue type and summary, each a field error when missing
/// or not valid.
fn required_fields(
    state: &SimState,
    fields: &Map<String, Value>,
    errors: &mut BTreeMap<String, String>,
) -> (Option<String>, Option<String>, String) {
    let project_key = match fields.get("project").and_then(Value::as_object) {
        Some(p) => p
            .get("key")
            .or_else(|| p.get("id"))
            .and_then(Value::as_str)
            .and_then(|k| state.project(k))
            .map(|p| p.key.clone()),
        None => None,
    };
    if project_key.is_none() {
        errors.insert("project".into(), "Specify a valid project ID or key".into());
    }
    let issue_type = match fields.get("issuetype").and_then(Value::as_object) {
        None => {
            errors.insert("issuetype".into(), "Specify an issue type".into());
            None
        }
        Some(t) => {
            let found = ISSUE_TYPES.iter().find(|(id, name)| {
                t.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
                    || t.get("id").and_then(Value::as_str) == Some(id)
            });
            if found.is_none() {
                errors.insert("issuetype".into(), "Specify a valid issue type".into());
            }
            found.map(|(_, name)| name.to_string())
        }
    };
    let summary = match fields.get("summary").map(parse_summary) {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            errors.insert("summary".into(), e);
            String::new()
        }
        None => {
            errors.insert(
                "summary".into(),
                "You must specify a summary of the issue.".into(),
            );
            String::new()
        }
    };
    (project_key, issue_type, summary)
}

/// A create's `update`: only `labels` with `add` operations is on the create screen.
fn add_labels(
    update: &Map<String, Value>,
    labels: &mut Vec<String>,
    errors: &mut BTreeMap<String, String>,
) {
    for (name, ops) in update {
        let adds = (name == "labels")
            .then(|| ops.as_array())
            .flatten()
            .map(|ops| {
                ops.iter()
                    .map(|op| op.get("add").and_then(Value::as_str).map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            });
        match adds {
            Some(Some(adds)) => {
                for label in adds {
                    match check_label(&label) {
                        Ok(()) if !labels.contains(&label) => labels.push(label),
                        Ok(()) => {}
                        Err(e) => {
                            errors.insert("labels".into(), e);
                        }
                    }
                }
            }
            _ => {
                errors.insert(name.clone(), not_on_screen(name));
            }
        }
    }
}

/// A create's `properties`: keys of at most 255 characters, values of at most
/// 32768 characters of JSON.
fn create_properties(
    body: &Map<String, Value>,
    errors: &mut BTreeMap<String, String>,
) -> BTreeMap<String, Value> {
    let mut properties = BTreeMap::new();
    match body.get("properties") {
        None => {}
        Some(Value::Array(items)) => {
            for item in items {
                match (item.get("key").and_then(Value::as_str), item.get("value")) {
                    (Some(k), Some(v))
                        if !k.is_empty() && k.len() <= 255 && v.to_string().len() <= 32768 =>
                    {
                        properties.insert(k.to_string(), v.clone());
                    }
                    _ => {
                        errors.insert(
                            "properties".into(),
                            "Each property needs a 'key' (at most 255 characters) and a 'value' (at most 32768 characters of JSON)".into(),
                        );
                    }
                }
            }
        }
        Some(_) => {
            errors.insert(
                "properties".into(),
                "Operation value must be an array".into(),
            );
        }
    }
    properties
}

pub(super) async fn get_issue(
    State(sim): State<Shared>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    let pairs = query_pairs(&query);
    let state = sim.lock();
    let i = state.issue(&key)?;
    let mut fields = query_list(&pairs, "fields");
    if fields.is_empty() {
        fields.push("*all".into());
    }
    let mut selection = FieldSelection::parse(&fields);
    if matches!(selection, FieldSelection::IdOnly) {
        // GET issue always renders the issue; `fields=id` just means no fields.
        selection = FieldSelection::Some {
            all: false,
            navigable: false,
            include: Vec::new(),
            exclude: Vec::new(),
        };
    }
    let properties = query_list(&pairs, "properties");
    let issue = &state.records[i].current;
    let mut out = issue_json(&state, issue, &selection, &properties);
    if expands_changelog(&query_list(&pairs, "expand")) {
        out["changelog"] = changelog_json(&state, issue);
    }
    Ok(json_response(StatusCode::OK, out))
}

pub(super) async fn edit_issue(
    State(sim): State<Shared>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    caller: Caller,
    body: Bytes,
) -> Reply {
    let pairs = query_pairs(&query);
    let body = parse_body(&body)?;
    reject_unknown(
        &body,
        &[
            "fields",
            "update",
            "properties",
            "historyMetadata",
            "transition",
        ],
    )?;
    if body.contains_key("transition") {
        return Err(JiraError::bad(
            "Transitions cannot be performed through an edit; use POST /issue/{issueIdOrKey}/transitions",
        ));
    }
    let empty = Map::new();
    let fields = body
        .get("fields")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let update = body
        .get("update")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut state = sim.lock();
    let i = state.issue(&key)?;
    state.acting = state.caller_account(&caller);
    apply_edit(&mut state, i, fields, update)?;
    if query_value(&pairs, "returnIssue") == Some("true") {
        // The issue as a GET of all fields renders it, `expand` included.
        let issue = &state.records[i].current;
        let mut out = issue_json(&state, issue, &FieldSelection::all(), &[]);
        if expands_changelog(&query_list(&pairs, "expand")) {
            out["changelog"] = changelog_json(&state, issue);
        }
        return Ok(json_response(StatusCode::OK, out));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn get_transitions(
    State(sim): State<Shared>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    let pairs = query_pairs(&query);
    let expand = query_list(&pairs, "expand")
        .iter()
        .any(|e| e == "transitions.fields");
    let state = sim.lock();
    let i = state.issue(&key)?;
    let issue = &state.records[i].current;
    let workflow = state.workflow(issue);
    let transitions: Vec<Value> = workflow
        .available(&issue.status)
        .map(|t| transition_json(&state, workflow, t, expand))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({"expand": "transitions", "transitions": transitions}),
    ))
}

pub(super) async fn do_transition(
    State(sim): State<Shared>,
    Path(key): Path<String>,
    caller: Caller,
    body: Bytes,
) -> Reply {
    let body = parse_body(&body)?;
    reject_unknown(
        &body,
        &[
            "transition",
            "fields",
            "update",
            "historyMetadata",
            "properties",
        ],
    )?;
    let mut state = sim.lock();
    let i = state.issue(&key)?;
    let id = body
        .get("transition")
        .and_then(|t| t.get("id"))
        .and_then(|id| match id {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .ok_or_else(|| JiraError::bad("Missing 'transition' identifier"))?;
    let mut issue = state.records[i].current.clone();
    let workflow = state.workflow(&issue);
    let transition = workflow
        .available(&issue.status)
        .find(|t| t.id.to_string() == id)
        .cloned()
        .ok_or_else(|| {
            JiraError::bad(format!("Transition id '{id}' is not valid for this issue."))
        })?;
    let to = workflow
        .status(&transition.to)
        .cloned()
        .expect("transition targets exist");

    let mut errors = BTreeMap::new();
    let mut resolution = None;
    if let Some(fields) = body.get("fields") {
        let Some(fields) = fields.as_object() else {
            return Err(JiraError::bad("'fields' must be an object"));
        };
        for (name, value) in fields {
            if !transition.screen.iter().any(|f| f == name) {
                errors.insert(name.clone(), not_on_screen(name));
                continue;
            }
            match name.as_str() {
                "resolution" => match parse_resolution(value) {
                    Ok(r) => resolution = Some(r),
                    Err(e) => {
                        errors.insert(name.clone(), e);
                    }
                },
                other => {
                    errors.insert(other.to_string(), not_on_screen(other));
                }
            }
        }
    }
    let mut comment_body = None;
    if let Some(update) = body.get("update").and_then(Value::as_object) {
        for (name, ops) in update {
            let add = (name == "comment")
                .then(|| ops.get(0)?.get("add")?.get("body").cloned())
                .flatten();
            match add {
                Some(b) => match check_adf(&b) {
                    Ok(()) => comment_body = Some(b),
                    Err(e) => {
                        errors.insert("comment".into(), e);
                    }
                },
                None => {
                    errors.insert(name.clone(), not_on_screen(name));
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(JiraError::fields(errors));
    }
    let posted = PostedTransition {
        key: issue.key.clone(),
        id,
        name: transition.name.clone(),
        from: issue.status.clone(),
        to: to.name.clone(),
        fields: body.get("fields").cloned(),
    };
    apply_status(&mut issue, &to, resolution);
    if let Some(b) = comment_body {
        let author = state
            .user_by_email(&caller.0)
            .map(|u| u.account_id.clone())
            .unwrap_or_default();
        state.add_comment(&mut issue, author, b);
    }
    issue.updated = state.tick();
    state.acting = state.caller_account(&caller);
    state.commit(i, issue);
    state.posted_transitions.push(posted);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn get_comments(
    State(sim): State<Shared>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    let pairs = query_pairs(&query);
    let number = |name: &str, default: usize| -> Result<usize, JiraError> {
        match query_value(&pairs, name) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().map_err(|_| {
                JiraError::bad(format!(
                    "The '{name}' parameter must be a non-negative number"
                ))
            }),
        }
    };
    let start_at = number("startAt", 0)?;
    let max_results = number("maxResults", 5000)?.min(5000);
    let descending = match query_value(&pairs, "orderBy") {
        None | Some("created") | Some("+created") => false,
        Some("-created") => true,
        Some(other) => {
            return Err(JiraError::bad(format!(
                "Invalid orderBy value '{other}': use created, -created or +created"
            )));
        }
    };
    let state = sim.lock();
    let i = state.issue(&key)?;
    let issue = &state.records[i].current;
    let mut comments: Vec<&SimComment> = issue.comments.iter().collect();
    if descending {
        comments.reverse();
    }
    let page: Vec<Value> = comments
        .iter()
        .skip(start_at)
        .take(max_results)
        .map(|c| comment_json(&state, issue, c))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({"startAt": start_at, "maxResults": max_results, "total": comments.len(), "comments": page}),
    ))
}

pub(super) async fn add_comment(
    State(sim): State<Shared>,
    Path(key): Path<String>,
    caller: Caller,
    body: Bytes,
) -> Reply {
    let body = parse_body(&body)?;
    reject_unknown(&body, &["body", "visibility", "properties"])?;
    let adf = match body.get("body") {
        None | Some(Value::Null) => {
            return Err(JiraError::field(
                "comment",
                "Comment body can not be empty!",
            ));
        }
        Some(b) => b.clone(),
    };
    check_adf(&adf).map_err(|e| JiraError::field("comment", e))?;
    let mut state = sim.lock();
    let i = state.issue(&key)?;
    let mut issue = state.records[i].current.clone();
    if issue.comments.len() >= MAX_COMMENTS {
        return Err(JiraError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The issue has reached its limit of comments.",
        ));
    }
    let author = state
        .user_by_email(&caller.0)
        .map(|u| u.account_id.clone())
        .unwrap_or_default();
    let comment = state.add_comment(&mut issue, author, adf);
    let out = comment_json(&state, &issue, &comment);
    state.commit(i, issue);
    Ok(json_response(StatusCode::CREATED, out))
}

pub(super) async fn get_property(
    State(sim): State<Shared>,
    Path((key, property)): Path<(String, String)>,
) -> Reply {
    let state = sim.lock();
    let i = state.issue(&key)?;
    match state.records[i].current.properties.get(&property) {
        Some(value) => Ok(json_response(
            StatusCode::OK,
            json!({"key": property, "value": value}),
        )),
        None => Err(JiraError::new(
            StatusCode::NOT_FOUND,
            format!("The property with key '{property}' does not exist."),
        )),
    }
}

pub(super) async fn put_property(
    State(sim): State<Shared>,
    Path((key, property)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let value: Value = serde_json::from_slice(&body)
        .map_err(|_| JiraError::bad("The property value must be valid JSON."))?;
    if property.is_empty() || property.len() > 255 {
        return Err(JiraError::bad(
            "The property key must be 1 to 255 characters long.",
        ));
    }
    if body.len() > 32768 {
        return Err(JiraError::bad(
            "The property value cannot be longer than 32768 characters.",
        ));
    }
    let mut state = sim.lock();
    let i = state.issue(&key)?;
    let mut issue = state.records[i].current.clone();
    let existed = issue.properties.insert(property, value).is_some();
    // Entity properties do not change `updated`.
    state.commit(i, issue);
    Ok(if existed {
        StatusCode::OK.into_response()
    } else {
        StatusCode::CREATED.into_response()
    })
}
