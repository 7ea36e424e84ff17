//! Writes through ARM: the PUT body checked as Sentinel checks it (closing rules, enum
//! values, etags), incident PUT and DELETE, comment PUT/GET/DELETE, the incident actions,
//! and the dispatch of every ARM request to its handler.

use super::*;

/// A validated incident PUT: every writable field (absent = cleared).
#[derive(Debug)]
pub(super) struct IncidentWrite {
    pub(super) etag: Option<String>,
    pub(super) title: String,
    pub(super) description: Option<String>,
    pub(super) severity: &'static str,
    pub(super) status: &'static str,
    pub(super) classification: Option<&'static str>,
    pub(super) classification_reason: Option<&'static str>,
    pub(super) classification_comment: Option<String>,
    pub(super) owner: Option<IncidentOwner>,
    pub(super) labels: Vec<String>,
    pub(super) first_activity: Option<DateTime<Utc>>,
    pub(super) last_activity: Option<DateTime<Utc>>,
}

pub(super) fn json_object(
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, ArmError> {
    match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(object)) => Ok(object),
        _ => Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized.",
        )),
    }
}

pub(super) fn string_field(
    object: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<String>, ArmError> {
    match object.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ArmError::bad_request(format!(
            "Cannot convert the value {other} of '{name}' to a string."
        ))),
    }
}

pub(super) fn enum_field(
    object: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    set: &[&'static str],
) -> Result<Option<&'static str>, ArmError> {
    string_field(object, name)?
        .map(|v| {
            canonical_enum(set, &v).ok_or_else(|| {
                ArmError::bad_request(format!(
                    "The value '{v}' of '{name}' is invalid; it must be one of {}.",
                    set.join(", ")
                ))
            })
        })
        .transpose()
}

pub(super) fn time_field(
    object: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<DateTime<Utc>>, ArmError> {
    string_field(object, name)?
        .map(|v| {
            wire::parse_timestamp(&v)
                .map(wire::truncate_timestamp)
                .ok_or_else(|| {
                    ArmError::bad_request(format!(
                        "The value '{v}' of '{name}' is not a date-time."
                    ))
                })
        })
        .transpose()
}

/// The closing rules (API.md §3.4).
pub(super) fn check_closing_rules(
    status: &str,
    classification: Option<&str>,
    reason: Option<&str>,
) -> Result<(), ArmError> {
    if status == "Closed" && classification.is_none() {
        return Err(ArmError::bad_request(
            "status 'Closed' must have classification",
        ));
    }
    let Some(classification) = classification else {
        return match reason {
            Some(reason) => Err(ArmError::bad_request(format!(
                "classificationReason '{reason}' must have classification"
            ))),
            None => Ok(()),
        };
    };
    let allowed: &[&str] = match classification {
        "TruePositive" => &["SuspiciousActivity"],
        "BenignPositive" => &["SuspiciousButExpected"],
        "FalsePositive" => &["IncorrectAlertLogic", "InaccurateData"],
        _ => &[],
    };
    match reason {
        None if classification == "BenignPositive" => Err(ArmError::bad_request(
            "classification 'BenignPositive' must have classificationReason",
        )),
        Some(reason) if !allowed.contains(&reason) => Err(ArmError::bad_request(format!(
            "classificationReason '{reason}' is not valid for classification '{classification}'"
        ))),
        _ => Ok(()),
    }
}

pub(super) fn parse_incident_write(body: &[u8]) -> Result<IncidentWrite, ArmError> {
    let object = json_object(body)?;
    let etag = string_field(&object, "etag")?;
    let properties = match object.get("properties") {
        Some(serde_json::Value::Object(p)) => p,
        _ => {
            return Err(ArmError::bad_request(
                "The 'properties' of the incident are required.",
            ));
        }
    };
    let required = |name: &str| {
        ArmError::bad_request(format!(
            "The '{name}' property of the incident is required."
        ))
    };
    let title = string_field(properties, "title")?
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| required("title"))?;
    let severity = enum_field(properties, "severity", SENTINEL_SEVERITY)?
        .ok_or_else(|| required("severity"))?;
    let status =
        enum_field(properties, "status", SENTINEL_STATUS)?.ok_or_else(|| required("status"))?;
    let classification = enum_field(properties, "classification", SENTINEL_CLASSIFICATION)?;
    let classification_reason = enum_field(
        properties,
        "classificationReason",
        SENTINEL_CLASSIFICATION_REASON,
    )?;
    check_closing_rules(status, classification, classification_reason)?;
    let owner = match properties.get("owner") {
        None | Some(serde_json::Value::Null) => None,
        Some(value @ serde_json::Value::Object(_)) => {
            let owner: IncidentOwner = serde_json::from_value(value.clone())
                .map_err(|e| ArmError::bad_request(format!("The 'owner' is invalid: {e}.")))?;
            if let Some(id) = owner.object_id.as_deref()
                && !is_guid(id)
            {
                return Err(ArmError::bad_request(format!(
                    "The owner objectId '{id}' is not a GUID."
                )));
            }
            if let Some(t) = owner.owner_type.as_deref()
                && canonical_enum(&["Unknown", "User", "Group"], t).is_none()
            {
                return Err(ArmError::bad_request(format!(
                    "The owner ownerType '{t}' is invalid."
                )));
            }
            let names_someone = [&owner.object_id, &owner.email, &owner.user_principal_name]
                .into_iter()
                .flatten()
                .any(|v| !v.trim().is_empty());
            names_someone.then_some(owner)
        }
        Some(_) => return Err(ArmError::bad_request("The 'owner' must be an object.")),
    };
    let labels = match properties.get("labels") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => {
            let mut names: Vec<String> = Vec::new();
            for item in items {
                // `labelType` is read-only: ignored.
                let name = item
                    .get("labelName")
                    .and_then(|n| n.as_str())
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| ArmError::bad_request("Every label must have a labelName."))?;
                if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                    names.push(name.to_string());
                }
            }
            names
        }
        Some(_) => return Err(ArmError::bad_request("The 'labels' must be an array.")),
    };
    Ok(IncidentWrite {
        etag,
        title,
        description: string_field(properties, "description")?,
        severity,
        status,
        classification,
        classification_reason,
        classification_comment: string_field(properties, "classificationComment")?,
        owner,
        labels,
        first_activity: time_field(properties, "firstActivityTimeUtc")?,
        last_activity: time_field(properties, "lastActivityTimeUtc")?,
    })
}

pub(super) fn conflict(id: &str) -> ArmError {
    ArmError::new(
        StatusCode::CONFLICT,
        "Conflict",
        format!("New version of resource '{id}' exists. Data was not saved"),
    )
}

pub(super) fn put_incident(call: &Call, id: &str) -> Result<Response, ArmError> {
    if !is_guid(id) {
        return Err(ArmError::bad_request(format!(
            "The incident id '{id}' is not a valid GUID."
        )));
    }
    let write = parse_incident_write(call.body)?;
    let shared = call.shared;
    let mut state = shared.lock();
    let key = id.to_ascii_lowercase();
    while let Some(i) = state.put_hooks.iter().position(|(k, _)| *k == key) {
        let (_, hook) = state.put_hooks.remove(i);
        state.change(id, hook);
    }
    let exists = state.get(id).is_some();
    // A body etag is a precondition: it must name the current version (a missing
    // incident has none). [U for the missing case]
    if let Some(etag) = &write.etag
        && state.get(id).is_none_or(|i| i.etag != *etag)
    {
        return Err(conflict(id));
    }
    let at = state.stamp();
    let etag = state.etag();
    let owner = write.owner.as_ref().map(|o| state.resolve_owner(o));
    if !exists {
        let number = state.next_number;
        state.next_number += 1;
        state.incidents.insert(
            key.clone(),
            SimIncident {
                name: id.to_string(),
                number,
                etag: String::new(),
                title: String::new(),
                description: None,
                severity: String::new(),
                status: String::new(),
                classification: None,
                classification_reason: None,
                classification_comment: None,
                owner: None,
                labels: Vec::new(),
                first_activity: None,
                last_activity: None,
                created: at,
                modified: at,
                provider_name: SENTINEL_PROVIDER.to_string(),
                provider_incident_id: None,
                provider_incident_url: None,
                alerts_count: 0,
                alert_product_names: Vec::new(),
                tactics: Vec::new(),
                merged_incident_number: None,
                merged_incident_url: None,
                comments: Vec::new(),
                created_by: SimIdentity::app(),
                last_modified_by: SimIdentity::app(),
            },
        );
    }
    let incident = state.incidents.get_mut(&key).expect("present");
    incident.etag = etag;
    incident.modified = at;
    incident.last_modified_by = SimIdentity::app();
    incident.title = write.title;
    incident.description = write.description;
    incident.severity = write.severity.to_string();
    incident.status = write.status.to_string();
    incident.classification = write.classification.map(str::to_string);
    incident.classification_reason = write.classification_reason.map(str::to_string);
    incident.classification_comment = write.classification_comment;
    incident.owner = owner;
    incident.labels = write
        .labels
        .into_iter()
        .map(|name| {
            let label_type = incident
                .labels
                .iter()
                .find(|l| l.name.eq_ignore_ascii_case(&name))
                .map_or_else(|| "User".to_string(), |l| l.label_type.clone());
            SimLabel { name, label_type }
        })
        .collect();
    incident.first_activity = write.first_activity;
    incident.last_activity = write.last_activity;
    let incident = incident.clone();
    let preview = is_preview(&state, &call.api_version);
    let body = shared.render(&incident, preview);
    let status = if exists {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json_response_as(JSON_CONTENT_TYPE, status, &body))
}

pub(super) fn delete_incident(call: &Call, id: &str) -> Response {
    let removed = call
        .shared
        .lock()
        .incidents
        .remove(&id.to_ascii_lowercase());
    match removed {
        Some(_) => StatusCode::OK.into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

pub(super) fn put_comment(call: &Call, id: &str, comment_id: &str) -> Result<Response, ArmError> {
    if !is_guid(comment_id) {
        return Err(ArmError::bad_request(format!(
            "The comment id '{comment_id}' is not a valid GUID."
        )));
    }
    let object = json_object(call.body)?;
    let etag = string_field(&object, "etag")?;
    let message = match object.get("properties") {
        Some(serde_json::Value::Object(p)) => string_field(p, "message")?,
        _ => None,
    }
    .filter(|m| !m.trim().is_empty())
    .ok_or_else(|| ArmError::bad_request("The 'message' property of the comment is required."))?;
    let shared = call.shared;
    let mut state = shared.lock();
    let existing = state
        .get(id)
        .ok_or_else(|| ArmError::not_found("Incident", id))?
        .comment_index(comment_id);
    let current_etag = existing.map(|i| state.get(id).expect("checked").comments[i].etag.clone());
    if let Some(etag) = &etag
        && current_etag.as_ref() != Some(etag)
    {
        return Err(conflict(comment_id));
    }
    let at = state.stamp();
    let comment_etag = state.etag();
    let incident_etag = state.etag();
    state.comment_seq += 1;
    let seq = state.comment_seq;
    let incident = state.get_mut(id).expect("checked above");
    // A comment is activity on the incident: `lastModifiedTimeUtc` (and the etag,
    // since `commentsCount` changed) move, so a poller sees portal comments. [U]
    incident.modified = at;
    incident.etag = incident_etag;
    incident.last_modified_by = SimIdentity::app();
    let (comment, status) = match existing {
        Some(i) => {
            let comment = &mut incident.comments[i];
            comment.message = message;
            comment.modified = at;
            comment.etag = comment_etag;
            (comment.clone(), StatusCode::OK)
        }
        None => {
            let comment = SimComment {
                name: comment_id.to_string(),
                message,
                author: app_author(),
                created: at,
                modified: at,
                etag: comment_etag,
                seq,
            };
            incident.comments.push(comment.clone());
            (comment, StatusCode::CREATED)
        }
    };
    let name = incident.name.clone();
    Ok(json_response_as(
        JSON_CONTENT_TYPE,
        status,
        shared.context.resources.comment_wire(&name, &comment),
    ))
}

pub(super) fn get_comment(call: &Call, id: &str, comment_id: &str) -> Result<Response, ArmError> {
    let state = call.shared.lock();
    let incident = state
        .get(id)
        .ok_or_else(|| ArmError::not_found("Incident", id))?;
    let comment = incident
        .comment_index(comment_id)
        .map(|i| &incident.comments[i])
        .ok_or_else(|| ArmError::not_found("Comment", comment_id))?;
    Ok(json_response_as(
        JSON_CONTENT_TYPE,
        StatusCode::OK,
        call.shared
            .context
            .resources
            .comment_wire(&incident.name, comment),
    ))
}

pub(super) fn delete_comment(
    call: &Call,
    id: &str,
    comment_id: &str,
) -> Result<Response, ArmError> {
    let mut state = call.shared.lock();
    let index = state
        .get(id)
        .ok_or_else(|| ArmError::not_found("Incident", id))?
        .comment_index(comment_id);
    let Some(index) = index else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    state.change(id, |incident| {
        incident.comments.remove(index);
        incident.last_modified_by = SimIdentity::app();
    });
    Ok(StatusCode::OK.into_response())
}

pub(super) fn incident_action(call: &Call, id: &str, action: &str) -> Result<Response, ArmError> {
    if call.shared.lock().get(id).is_none() {
        return Err(ArmError::not_found("Incident", id));
    }
    let body = match action {
        "entities" => serde_json::json!({"entities": [], "metaData": []}),
        _ => serde_json::json!({"value": []}),
    };
    Ok(json_response_as(JSON_CONTENT_TYPE, StatusCode::OK, &body))
}

pub(super) fn get_incident(call: &Call, id: &str) -> Result<Response, ArmError> {
    let state = call.shared.lock();
    let incident = state
        .get(id)
        .ok_or_else(|| ArmError::not_found("Incident", id))?;
    let preview = is_preview(&state, &call.api_version);
    Ok(json_response_as(
        JSON_CONTENT_TYPE,
        StatusCode::OK,
        call.shared.render(incident, preview),
    ))
}

pub(super) fn dispatch(call: &Call) -> Result<Response, ArmError> {
    let target = route(&call.shared.context.resources, call.uri.path())?;
    let method = call.method.clone();
    match (target, method) {
        (Target::Incidents, Method::GET) => list_incidents(call),
        (Target::Incident(id), Method::GET) => get_incident(call, &id),
        (Target::Incident(id), Method::PUT) => put_incident(call, &id),
        (Target::Incident(id), Method::DELETE) => Ok(delete_incident(call, &id)),
        (Target::Comments(id), Method::GET) => list_comments(call, &id),
        (Target::Comment(id, c), Method::GET) => get_comment(call, &id, &c),
        (Target::Comment(id, c), Method::PUT) => put_comment(call, &id, &c),
        (Target::Comment(id, c), Method::DELETE) => delete_comment(call, &id, &c),
        (Target::Action(id, action), Method::POST) => incident_action(call, &id, action),
        _ => Err(call.not_allowed()),
    }
}

pub(super) fn unauthorized(problem: TokenProblem) -> Response {
    let code = match problem {
        TokenProblem::Expired => "ExpiredAuthenticationToken",
        _ => "InvalidAuthenticationToken",
    };
    let message = match problem {
        TokenProblem::WrongAudience => format!(
            "The access token has been obtained for wrong audience or resource. It should exactly match one of the allowed audiences '{DEFAULT_AUDIENCE}', '{DEFAULT_AUDIENCE}/'. ({})",
            problem.message()
        ),
        _ => format!("The access token is invalid. ({})", problem.message()),
    };
    let mut response = ArmError::new(StatusCode::UNAUTHORIZED, code, message).into_response();
    let challenge = format!(
        "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\", error_description=\"{}\"",
        problem.message()
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_str(&challenge).expect("ASCII header value"),
    );
    response
}

/// Every ARM request: token, `api-version`, throttling, then the route.
pub(super) async fn arm(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path().starts_with("/_sim") {
        return admin_error(
            StatusCode::NOT_FOUND,
            "no such simulator admin route".into(),
        );
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let audience = shared.lock().audience.clone();
    if let Err(problem) = shared.context.registry.check(authorization, &audience) {
        return unauthorized(problem);
    }
    let pairs = query_pairs(uri.query());
    let api_version = match api_version(&pairs) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let operation = Operation::of(&method);
    let remaining = match shared.lock().take_token(operation) {
        Ok(remaining) => remaining,
        Err(wait) => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::CONTENT_TYPE, JSON_CONTENT_TYPE)],
                throttle_body(operation.name(), wait),
            )
                .into_response();
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(wait));
            headers.insert(operation.header(), HeaderValue::from(0u32));
            return response;
        }
    };
    let call = Call {
        shared: &shared,
        method: &method,
        uri: &uri,
        headers: &headers,
        pairs,
        api_version,
        body: &body,
    };
    let mut response = dispatch(&call).unwrap_or_else(IntoResponse::into_response);
    let headers = response.headers_mut();
    if let Some(remaining) = remaining {
        headers.insert(operation.header(), HeaderValue::from(remaining));
    }
    headers.insert(
        "x-ms-request-id",
        HeaderValue::from_str(&random_guid()).expect("a GUID is a header value"),
    );
    response
}
