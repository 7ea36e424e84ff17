//! The Graph simulator's writes: `PATCH /security/incidents/{id}` (the body, its
//! properties and enum members checked as Graph checks them) and `POST .../comments`.

use super::*;

/// The body as a JSON object, or Graph's 400/415.
pub(super) fn json_object(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, GraphError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(GraphError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "Content-Type must be application/json.",
        ));
    }
    match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(object)) => Ok(object),
        _ => Err(GraphError::bad_request(
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )),
    }
}

pub(super) fn property_error(property: &str, type_name: &str) -> GraphError {
    GraphError::bad_request(format!(
        "The property '{property}' does not exist on type '{type_name}'. Make sure to only use property names that are defined by the type or mark the type as open type."
    ))
}

pub(super) fn enum_error(value: &serde_json::Value, type_name: &str) -> GraphError {
    let literal = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string);
    GraphError::bad_request(format!(
        "Cannot convert the literal '{literal}' to the expected type 'microsoft.graph.security.{type_name}'."
    ))
}

/// A writable enum value: a string naming a member (case-insensitively) that a
/// client may set, or `null` when the property is nullable.
pub(super) fn writable_enum(
    value: &serde_json::Value,
    type_name: &str,
    nullable: bool,
    lookup: impl Fn(&str) -> Option<&'static str>,
) -> Result<Option<&'static str>, GraphError> {
    match value {
        serde_json::Value::Null if nullable => Ok(None),
        serde_json::Value::String(text) => match lookup(text) {
            Some("unknownFutureValue") | None => Err(enum_error(value, type_name)),
            Some(member) => Ok(Some(member)),
        },
        _ => Err(enum_error(value, type_name)),
    }
}

/// A validated PATCH body: `Some` for each property being set.
#[derive(Debug, Default)]
pub(super) struct IncidentPatch {
    status: Option<&'static str>,
    classification: Option<Option<&'static str>>,
    determination: Option<Option<&'static str>>,
    assigned_to: Option<Option<String>>,
    custom_tags: Option<Vec<String>>,
}

pub(super) fn parse_patch(
    body: &serde_json::Map<String, serde_json::Value>,
) -> Result<IncidentPatch, GraphError> {
    let mut patch = IncidentPatch::default();
    for (key, value) in body {
        match key.as_str() {
            "@odata.type" => {
                let ok = value
                    .as_str()
                    .is_some_and(|t| t.trim_start_matches('#') == &INCIDENT_TYPE[1..]);
                if !ok {
                    return Err(GraphError::bad_request(format!(
                        "The @odata.type '{value}' does not match 'microsoft.graph.security.incident'."
                    )));
                }
            }
            "status" => {
                let status = writable_enum(value, "incidentStatus", false, |s| {
                    canonical_enum(GRAPH_STATUS, s)
                })?
                .expect("status is not nullable");
                if STATUS_SET_BY_SERVICE.contains(&status) {
                    return Err(GraphError::bad_request(format!(
                        "The status '{status}' is set by the service and cannot be set by a client."
                    )));
                }
                patch.status = Some(status);
            }
            "classification" => {
                patch.classification =
                    Some(writable_enum(value, "alertClassification", true, |c| {
                        canonical_enum(GRAPH_CLASSIFICATION, c)
                    })?);
            }
            "determination" => {
                patch.determination = Some(writable_enum(
                    value,
                    "alertDetermination",
                    true,
                    canonical_determination,
                )?);
            }
            "assignedTo" => {
                patch.assigned_to = Some(match value {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) if s.is_empty() => None,
                    serde_json::Value::String(s) => Some(s.clone()),
                    other => {
                        return Err(GraphError::bad_request(format!(
                            "Cannot convert the literal '{other}' to the expected type 'Edm.String'."
                        )));
                    }
                });
            }
            "customTags" => {
                let tags = value
                    .as_array()
                    .and_then(|items| {
                        items
                            .iter()
                            .map(|t| t.as_str().map(str::to_string))
                            .collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| {
                        GraphError::bad_request(
                            "Cannot convert the value of 'customTags' to the expected type 'Collection(Edm.String)'.",
                        )
                    })?;
                patch.custom_tags = Some(tags);
            }
            read_only if READ_ONLY_PROPERTIES.contains(&read_only) => {
                return Err(GraphError::bad_request(format!(
                    "The property '{read_only}' is read-only and cannot be set."
                )));
            }
            unknown => return Err(property_error(unknown, "microsoft.graph.security.incident")),
        }
    }
    Ok(patch)
}

pub(super) async fn patch_incident(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GraphError> {
    let object = json_object(&headers, &body)?;
    let patch = parse_patch(&object)?;
    let incident = {
        let mut state = shared.lock();
        if !state.incidents.contains_key(&id) {
            return Err(GraphError::not_found(&id));
        }
        let changes = object.keys().any(|k| k != "@odata.type");
        let at = changes.then(|| state.stamp());
        let incident = state.incidents.get_mut(&id).expect("checked above");
        if let Some(status) = patch.status {
            incident.status = status.to_string();
            incident.redirect_incident_id = None;
        }
        if let Some(classification) = patch.classification {
            incident.classification = classification.map(str::to_string);
        }
        if let Some(determination) = patch.determination {
            incident.determination = determination.map(str::to_string);
        }
        if let Some(assigned_to) = patch.assigned_to {
            incident.assigned_to = assigned_to;
        }
        if let Some(tags) = patch.custom_tags {
            incident.custom_tags = tags;
        }
        if let Some(at) = at {
            incident.updated = at;
            incident.last_modified_by = Some(APP_NAME.to_string());
        }
        incident.clone()
    };
    Ok(json_response_as(
        JSON_CONTENT_TYPE,
        StatusCode::OK,
        entity(&shared, &incident, &headers),
    ))
}

pub(super) async fn post_comment(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GraphError> {
    let object = json_object(&headers, &body)?;
    let mut text = None;
    for (key, value) in &object {
        match key.as_str() {
            "@odata.type" => {
                let ok = value
                    .as_str()
                    .is_some_and(|t| t.trim_start_matches('#') == wire::COMMENT_TYPE);
                if !ok {
                    return Err(GraphError::bad_request(format!(
                        "The @odata.type '{value}' does not match '{}'.",
                        wire::COMMENT_TYPE
                    )));
                }
            }
            "comment" => match value.as_str() {
                Some(t) if !t.trim().is_empty() => text = Some(t.to_string()),
                _ => {
                    return Err(GraphError::bad_request(
                        "The comment must be a non-empty string.",
                    ));
                }
            },
            unknown => return Err(property_error(unknown, wire::COMMENT_TYPE)),
        }
    }
    let text =
        text.ok_or_else(|| GraphError::bad_request("The property 'comment' is required."))?;
    let comments = {
        let mut state = shared.lock();
        if !state.incidents.contains_key(&id) {
            return Err(GraphError::not_found(&id));
        }
        let at = state.stamp();
        let incident = state.incidents.get_mut(&id).expect("checked above");
        incident.comments.push(SimComment {
            comment: text,
            author: APP_NAME.to_string(),
            created: at,
        });
        incident.updated = at;
        incident.last_modified_by = Some(APP_NAME.to_string());
        incident.to_wire(&shared.context.tenant_id, true).comments
    };
    let body = serde_json::json!({
        "@odata.context": format!(
            "{}/v1.0/$metadata#Collection(microsoft.graph.security.alertComment)",
            link_base(&shared, &headers)
        ),
        "value": comments,
    });
    Ok(json_response_as(JSON_CONTENT_TYPE, StatusCode::OK, &body))
}
