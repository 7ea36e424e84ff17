//! The Sentinel simulator's ARM plumbing: the workspace's paths, routing a path
//! to what it names, `api-version`, ARM's error answers and throttling.

use super::*;

/// The workspace's ARM paths.
#[derive(Debug, Clone)]
pub(super) struct Resources {
    pub(super) workspace: SentinelWorkspace,
}

impl Resources {
    /// `/subscriptions/…/providers/Microsoft.SecurityInsights`.
    pub(super) fn prefix(&self) -> String {
        let w = &self.workspace;
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/{PROVIDER_OW}/workspaces/{}/providers/{PROVIDER_SI}",
            w.subscription_id, w.resource_group, w.workspace_name
        )
    }

    pub(super) fn incident_id(&self, name: &str) -> String {
        format!("{}/Incidents/{name}", self.prefix())
    }

    pub(super) fn incident_url(&self, name: &str) -> String {
        format!(
            "https://portal.azure.com/#asset/Microsoft_Azure_Security_Insights/Incident{}",
            self.incident_id(name)
        )
    }

    pub(super) fn incident_wire(&self, incident: &SimIncident, preview: bool) -> Incident {
        let owner = incident.owner.as_ref().map(|o| IncidentOwner {
            object_id: Some(o.object_id.clone()),
            email: o.email.clone(),
            assigned_to: o.assigned_to.clone(),
            user_principal_name: o.user_principal_name.clone(),
            owner_type: Some(o.owner_type.clone()),
        });
        let stamp = |t: &Option<DateTime<Utc>>| t.as_ref().map(wire::format_timestamp);
        Incident {
            id: Some(self.incident_id(&incident.name)),
            name: Some(incident.name.clone()),
            resource_type: Some(INCIDENT_TYPE.to_string()),
            etag: Some(incident.etag.clone()),
            properties: IncidentProperties {
                title: Some(incident.title.clone()),
                description: incident.description.clone(),
                severity: Some(incident.severity.clone()),
                status: Some(incident.status.clone()),
                classification: incident.classification.clone(),
                classification_reason: incident.classification_reason.clone(),
                classification_comment: incident.classification_comment.clone(),
                owner,
                labels: incident
                    .labels
                    .iter()
                    .map(|l| IncidentLabel {
                        label_name: l.name.clone(),
                        label_type: Some(l.label_type.clone()),
                    })
                    .collect(),
                first_activity_time_utc: stamp(&incident.first_activity),
                last_activity_time_utc: stamp(&incident.last_activity),
                created_time_utc: Some(wire::format_timestamp(&incident.created)),
                last_modified_time_utc: Some(wire::format_timestamp(&incident.modified)),
                incident_number: Some(incident.number),
                incident_url: Some(self.incident_url(&incident.name)),
                provider_name: Some(incident.provider_name.clone()),
                provider_incident_id: incident.provider_incident_id.clone(),
                related_analytic_rule_ids: Some(Vec::new()),
                additional_data: Some(IncidentAdditionalData {
                    alerts_count: Some(incident.alerts_count),
                    bookmarks_count: Some(0),
                    comments_count: Some(incident.comments.len() as i64),
                    alert_product_names: incident.alert_product_names.clone(),
                    tactics: incident.tactics.clone(),
                    techniques: preview.then(Vec::new),
                    provider_incident_url: incident.provider_incident_url.clone(),
                    merged_incident_number: incident
                        .merged_incident_number
                        .clone()
                        .filter(|_| preview),
                    merged_incident_url: incident.merged_incident_url.clone().filter(|_| preview),
                }),
                team_information: None,
            },
            // ARM common types' `systemData`, which API.md says may appear.
            system_data: Some(serde_json::json!({
                "createdBy": incident.created_by.name,
                "createdByType": incident.created_by.kind,
                "createdAt": wire::format_timestamp(&incident.created),
                "lastModifiedBy": incident.last_modified_by.name,
                "lastModifiedByType": incident.last_modified_by.kind,
                "lastModifiedAt": wire::format_timestamp(&incident.modified),
            })),
        }
    }

    pub(super) fn comment_wire(&self, incident: &str, comment: &SimComment) -> IncidentComment {
        IncidentComment {
            id: Some(format!(
                "{}/Comments/{}",
                self.incident_id(incident),
                comment.name
            )),
            name: Some(comment.name.clone()),
            resource_type: Some(COMMENT_TYPE.to_string()),
            etag: Some(comment.etag.clone()),
            properties: CommentProperties {
                message: Some(comment.message.clone()),
                created_time_utc: Some(wire::format_timestamp(&comment.created)),
                last_modified_time_utc: Some(wire::format_timestamp(&comment.modified)),
                author: Some(comment.author.clone()),
            },
        }
    }
}

// ---------------------------------------------------------------------------------
// Errors

/// An ARM error answer: status plus `CloudError`.
#[derive(Debug, Clone)]
pub struct ArmError {
    pub status: StatusCode,
    pub body: CloudError,
    /// Sentinel adds `"innerError": null` to some answers (the 405).
    inner_error_null: bool,
    retry_after: Option<u64>,
}

impl ArmError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ArmError {
        ArmError {
            status,
            body: CloudError::new(code, message),
            inner_error_null: false,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ArmError {
        ArmError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub(super) fn not_found(what: &str, id: &str) -> ArmError {
        ArmError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{what} '{id}' was not found."),
        )
    }

    /// The 405 as integrators logged it (Azure-Sentinel#2924).
    pub(super) fn method_not_allowed(uri: &Uri, api_version: &str, method: &Method) -> ArmError {
        ArmError {
            inner_error_null: true,
            ..ArmError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "UnsupportedApiVersion",
                format!(
                    "The HTTP resource that matches the request URI '{}' with API version '{api_version}' does not support HTTP method '{method}'.",
                    uri.path()
                ),
            )
        }
    }
}

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        let mut body = to_json(&self.body);
        if self.inner_error_null {
            body["error"]["innerError"] = serde_json::Value::Null;
        }
        let mut response = json_response_as(JSON_CONTENT_TYPE, self.status, &body);
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&seconds.to_string()).expect("digits are a header value"),
            );
        }
        response
    }
}

/// ARM's 429 body.
pub fn throttle_body(operation: &str, retry_after: u64) -> String {
    serde_json::to_string(&CloudError::new(
        "TooManyRequests",
        format!(
            "Number of '{operation}' requests exceeded the limit. Please try after '{retry_after}' seconds."
        ),
    ))
    .expect("an error body serialises")
}

/// A scripted throttle: the next `times` ARM requests answer 429 with this
/// `Retry-After` (whole seconds).
pub fn throttle_fault(times: u32, retry_after: u64) -> Fault {
    Fault {
        method: None,
        path_contains: "/subscriptions/".into(),
        times,
        status: 429,
        retry_after: Some(retry_after.to_string()),
        body: throttle_body("read", retry_after),
    }
}

pub(super) fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("simulator JSON serialises")
}

// ---------------------------------------------------------------------------------
// Request plumbing

/// What an ARM path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    Incidents,
    Incident(String),
    Comments(String),
    Comment(String, String),
    /// `POST …/incidents/{id}/alerts|entities|bookmarks`.
    Action(String, &'static str),
}

/// The path's segments, percent-decoded.
pub(super) fn segments(path: &str) -> Vec<String> {
    path.trim_matches('/')
        .split('/')
        .map(|s| {
            url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect()
}

pub(super) fn route(resources: &Resources, path: &str) -> Result<Target, ArmError> {
    let segs = segments(path);
    let w = &resources.workspace;
    let is = |i: usize, word: &str| segs.get(i).is_some_and(|s| s.eq_ignore_ascii_case(word));
    if !is(0, "subscriptions") || segs.len() < 2 {
        return Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("No HTTP resource was found that matches the request URI '{path}'."),
        ));
    }
    if !segs[1].eq_ignore_ascii_case(&w.subscription_id) {
        return Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            format!("The subscription '{}' could not be found.", segs[1]),
        ));
    }
    if !is(2, "resourceGroups") || segs.len() < 4 {
        return Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("No HTTP resource was found that matches the request URI '{path}'."),
        ));
    }
    if !segs[3].eq_ignore_ascii_case(&w.resource_group) {
        return Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "ResourceGroupNotFound",
            format!("Resource group '{}' could not be found.", segs[3]),
        ));
    }
    if !(is(4, "providers") && is(5, PROVIDER_OW) && is(6, "workspaces") && segs.len() >= 8) {
        return Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            format!("The resource type could not be found for '{path}'."),
        ));
    }
    if !segs[7].eq_ignore_ascii_case(&w.workspace_name) {
        return Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "ParentResourceNotFound",
            format!(
                "Can not perform requested operation on nested resource. Parent resource '{}' not found.",
                segs[7]
            ),
        ));
    }
    if !(is(8, "providers") && is(9, PROVIDER_SI) && is(10, "incidents")) {
        return Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            format!("The resource type could not be found for '{path}'."),
        ));
    }
    let rest: Vec<&str> = segs[11..].iter().map(String::as_str).collect();
    let bad_id = |id: &str| id.trim().is_empty();
    match rest.as_slice() {
        [] => Ok(Target::Incidents),
        [id] if !bad_id(id) => Ok(Target::Incident(id.to_string())),
        [id, c] if !bad_id(id) && c.eq_ignore_ascii_case("comments") => {
            Ok(Target::Comments(id.to_string()))
        }
        [id, c, cid] if !bad_id(id) && !bad_id(cid) && c.eq_ignore_ascii_case("comments") => {
            Ok(Target::Comment(id.to_string(), cid.to_string()))
        }
        [id, action] if !bad_id(id) => {
            let action = ["alerts", "entities", "bookmarks"]
                .into_iter()
                .find(|a| a.eq_ignore_ascii_case(action))
                .ok_or_else(|| {
                    ArmError::new(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!(
                            "No HTTP resource was found that matches the request URI '{path}'."
                        ),
                    )
                })?;
            Ok(Target::Action(id.to_string(), action))
        }
        _ => Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("No HTTP resource was found that matches the request URI '{path}'."),
        )),
    }
}

pub(super) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The one `api-version`, or ARM's 400. Repeated, the values are joined with a
/// comma (as ASP.NET does), which no version matches.
pub(super) fn api_version(pairs: &[(String, String)]) -> Result<String, ArmError> {
    let values: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("api-version"))
        .map(|(_, v)| v.as_str())
        .collect();
    if values.is_empty() {
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ));
    }
    let version = values.join(",");
    if values.len() > 1 || !API_VERSIONS.contains(&version.as_str()) {
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            format!(
                "The api-version '{version}' is invalid. The supported versions are '{}'.",
                API_VERSIONS.join(",")
            ),
        ));
    }
    Ok(version)
}

pub(super) fn is_preview(state: &SimState, api_version: &str) -> bool {
    state.preview_on_stable || api_version.ends_with("-preview")
}

/// Where links in answers point: the host the client called, else the address
/// the simulator listens on.
pub(super) fn link_base(shared: &Shared, headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .map(|h| format!("http://{h}"))
        .unwrap_or_else(|| shared.context.base_url.clone())
}

/// Percent-encodes everything but RFC 3986 unreserved characters (a space is %20).
pub(super) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
