//! Pure conversion from Sentinel's incident JSON to the domain's [`IncidentSnapshot`]
//! (and of incident comments to the domain's [`Comment`]): attribute names, enum
//! spellings, labels as tags, the etag, timestamps, and the "redirected" reading of
//! an incident Defender XDR merged away. No IO.

use bridge_core::model::{Attrs, Comment, IncidentSnapshot};
use bridge_core::vocab::{
    SENTINEL_CLASSIFICATION, SENTINEL_CLASSIFICATION_REASON, SENTINEL_SEVERITY, SENTINEL_STATUS,
};

use super::wire::{self, Incident, IncidentComment};

/// The label Sentinel adds to an incident Defender XDR merged into another one
/// (compared case-insensitively: the docs write it "redirected").
pub const REDIRECTED_LABEL: &str = "Redirected";

/// Why one incident (or comment) could not be converted; the client logs it and
/// skips the item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionError {
    /// The item's name (GUID), when it has one.
    pub id: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for ConversionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.id {
            Some(id) => write!(f, "incident {id}: {}", self.reason),
            None => write!(f, "incident without a name: {}", self.reason),
        }
    }
}

/// The member of `set` that `value` names, compared case-insensitively.
pub fn canonical_enum(set: &[&'static str], value: &str) -> Option<&'static str> {
    set.iter().copied().find(|m| m.eq_ignore_ascii_case(value))
}

/// One list item (raw JSON) to a snapshot.
pub fn snapshot_from_value(value: serde_json::Value) -> Result<IncidentSnapshot, ConversionError> {
    let id = value
        .get("name")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let incident: Incident = serde_json::from_value(value).map_err(|e| ConversionError {
        id: id.clone(),
        reason: format!("unexpected shape ({e})"),
    })?;
    to_snapshot(&incident)
}

/// A Sentinel incident to the domain snapshot. Comments are not part of the
/// incident resource; they are read separately where needed.
pub fn to_snapshot(incident: &Incident) -> Result<IncidentSnapshot, ConversionError> {
    let id = incident
        .name
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ConversionError {
            id: None,
            reason: "the incident has no name".into(),
        })?
        .to_string();
    let fail = |reason: String| ConversionError {
        id: Some(id.clone()),
        reason,
    };
    let p = &incident.properties;
    let timestamp = |field: &str, value: &Option<String>| {
        let text = value
            .as_deref()
            .ok_or_else(|| fail(format!("`properties.{field}` is missing")))?;
        wire::parse_timestamp(text)
            .ok_or_else(|| fail(format!("`properties.{field}` is not a timestamp: {text:?}")))
    };
    let created = timestamp("createdTimeUtc", &p.created_time_utc)?;
    let modified = timestamp("lastModifiedTimeUtc", &p.last_modified_time_utc)?;

    let mut attrs = Attrs::new();
    let mut put = |name: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
            attrs.insert(name.to_string(), value);
        }
    };
    let enumerated = |set: &[&'static str], value: &Option<String>| {
        value
            .as_deref()
            .map(|v| canonical_enum(set, v).map_or_else(|| v.to_string(), str::to_string))
    };
    put("title", p.title.clone());
    put("description", p.description.clone());
    put("status", enumerated(SENTINEL_STATUS, &p.status));
    put("severity", enumerated(SENTINEL_SEVERITY, &p.severity));
    put(
        "classification",
        enumerated(SENTINEL_CLASSIFICATION, &p.classification),
    );
    put(
        "classification_reason",
        enumerated(SENTINEL_CLASSIFICATION_REASON, &p.classification_reason),
    );
    put("classification_comment", p.classification_comment.clone());
    put("assigned_to", p.owner.as_ref().and_then(owner_name));

    let tags: Vec<String> = p
        .labels
        .iter()
        .map(|l| l.label_name.clone())
        .filter(|name| !name.trim().is_empty())
        .collect();

    let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let web_url = non_empty(&p.incident_url)
        .or_else(|| {
            non_empty(&incident.id).map(|resource_id| {
                format!(
                    "https://portal.azure.com/#asset/Microsoft_Azure_Security_Insights/Incident{resource_id}"
                )
            })
        })
        .ok_or_else(|| fail("the incident has neither `incidentUrl` nor an `id`".into()))?;
    let additional = p.additional_data.as_ref();

    Ok(IncidentSnapshot {
        display_id: p
            .incident_number
            .map_or_else(|| id.clone(), |n| n.to_string()),
        web_url,
        provider_url: additional.and_then(|a| non_empty(&a.provider_incident_url)),
        created,
        modified,
        redirect_to: redirect_target(incident),
        attrs,
        tags,
        comments: Vec::new(),
        etag: non_empty(&incident.etag),
        id,
    })
}

/// Who the incident is assigned to, as the bridge names people: the owner's UPN,
/// else their email.
fn owner_name(owner: &wire::IncidentOwner) -> Option<String> {
    [&owner.user_principal_name, &owner.email]
        .into_iter()
        .flatten()
        .find(|v| !v.trim().is_empty())
        .cloned()
}

/// Where a merged-away incident went: for a Closed incident labelled
/// [`REDIRECTED_LABEL`], the preview API's `additionalData.mergedIncidentNumber`
/// (an incident *number*, not a GUID). The stable API has no such field, so the
/// target is then unknown here (`None`) although the incident is still recognisable
/// as redirected by its status and label; `providerIncidentId` already names the
/// Defender target. Merge handling proper — resolving the target to an incident of
/// this source and re-pointing the ticket — comes later.
pub fn redirect_target(incident: &Incident) -> Option<String> {
    let p = &incident.properties;
    let closed = p
        .status
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("Closed"));
    if !closed || !is_redirected(incident) {
        return None;
    }
    p.additional_data
        .as_ref()
        .and_then(|a| a.merged_incident_number.clone())
        .filter(|n| !n.trim().is_empty())
}

/// The incident carries the "Redirected" label (any case).
pub fn is_redirected(incident: &Incident) -> bool {
    incident
        .properties
        .labels
        .iter()
        .any(|l| l.label_name.trim().eq_ignore_ascii_case(REDIRECTED_LABEL))
}

/// One comment (raw JSON) to the domain's comment.
pub fn comment_from_value(value: serde_json::Value) -> Result<Comment, ConversionError> {
    let id = value
        .get("name")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let comment: IncidentComment = serde_json::from_value(value).map_err(|e| ConversionError {
        id: id.clone(),
        reason: format!("unexpected comment shape ({e})"),
    })?;
    to_comment(&comment)
}

/// An incident comment to the domain's comment (author: name, else UPN, else email).
pub fn to_comment(comment: &IncidentComment) -> Result<Comment, ConversionError> {
    let id = comment
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ConversionError {
            id: None,
            reason: "the comment has no name".into(),
        })?;
    let p = &comment.properties;
    let text = p.created_time_utc.as_deref().unwrap_or("");
    let created = wire::parse_timestamp(text).ok_or_else(|| ConversionError {
        id: Some(id.clone()),
        reason: format!("comment `createdTimeUtc` is not a timestamp: {text:?}"),
    })?;
    let author = p.author.as_ref().and_then(|a| {
        [&a.name, &a.user_principal_name, &a.email]
            .into_iter()
            .flatten()
            .find(|v| !v.trim().is_empty())
            .cloned()
    });
    Ok(Comment {
        id: Some(id),
        author,
        created,
        text: p.message.clone().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example incident of API.md §3.3.
    const EXAMPLE: &str = r##"{
      "id": "/subscriptions/1111.../resourceGroups/rg-soc/providers/Microsoft.OperationalInsights/workspaces/law-soc/providers/Microsoft.SecurityInsights/Incidents/6f0c2b8e-...",
      "name": "6f0c2b8e-7c1a-4a53-9a0e-2d3f4b5c6d7e",
      "type": "Microsoft.SecurityInsights/Incidents",
      "etag": "\"2a00c1f4-0000-0d00-0000-6634a1b20000\"",
      "properties": {
        "title": "Suspicious sign-in followed by mailbox rule creation",
        "description": "",
        "severity": "Medium",
        "status": "Active",
        "owner": {"objectId": "2046feea-040d-4a46-9e2b-91c2941bfa70", "email": "ana@contoso.com", "assignedTo": "Ana Ruiz", "userPrincipalName": "ana@contoso.com", "ownerType": "User"},
        "labels": [{"labelName": "ticket:SEC-1042", "labelType": "User"}, {"labelName": "phishing", "labelType": "AutoAssigned"}],
        "incidentNumber": 8812,
        "incidentUrl": "https://portal.azure.com/#asset/Microsoft_Azure_Security_Insights/Incident/subscriptions/.../incidents/6f0c2b8e-...",
        "providerName": "Microsoft XDR",
        "providerIncidentId": "41877",
        "createdTimeUtc": "2025-05-02T08:00:12.44Z",
        "lastModifiedTimeUtc": "2025-05-02T08:12:30.01Z",
        "firstActivityTimeUtc": "2025-05-02T07:41:00Z",
        "lastActivityTimeUtc": "2025-05-02T07:55:00Z",
        "relatedAnalyticRuleIds": [],
        "additionalData": {"alertsCount": 3, "bookmarksCount": 0, "commentsCount": 1,
          "alertProductNames": ["Microsoft Defender for Office 365"],
          "tactics": ["InitialAccess", "Persistence"],
          "providerIncidentUrl": "https://security.microsoft.com/incidents/41877?tid=0b3c...e9c"}
      }
    }"##;

    fn render_attrs(attrs: &Attrs) -> String {
        attrs.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }

    #[test]
    fn sentinel_example_incident_converts() {
        let value: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        let snapshot = snapshot_from_value(value).unwrap();
        assert_eq!(snapshot.id, "6f0c2b8e-7c1a-4a53-9a0e-2d3f4b5c6d7e");
        assert_eq!(snapshot.display_id, "8812");
        assert_eq!(
            snapshot.web_url,
            "https://portal.azure.com/#asset/Microsoft_Azure_Security_Insights/Incident/subscriptions/.../incidents/6f0c2b8e-..."
        );
        assert_eq!(
            snapshot.provider_url.as_deref(),
            Some("https://security.microsoft.com/incidents/41877?tid=0b3c...e9c")
        );
        // `description` is empty, so absent.
        assert_eq!(
            render_attrs(&snapshot.attrs),
            "assigned_to=ana@contoso.com\n\
             severity=Medium\n\
             status=Active\n\
             title=Suspicious sign-in followed by mailbox rule creation\n"
        );
        assert_eq!(snapshot.tags, vec!["ticket:SEC-1042", "phishing"]);
        assert_eq!(
            snapshot.etag.as_deref(),
            Some("\"2a00c1f4-0000-0d00-0000-6634a1b20000\"")
        );
        assert_eq!(
            wire::format_timestamp(&snapshot.created),
            "2025-05-02T08:00:12.4400000Z"
        );
        assert_eq!(
            wire::format_timestamp(&snapshot.modified),
            "2025-05-02T08:12:30.0100000Z"
        );
        assert_eq!(snapshot.redirect_to, None);
        assert!(snapshot.comments.is_empty());
    }

    #[test]
    fn sentinel_closing_fields_owner_fallbacks_and_enum_case() {
        let mut value: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        let p = &mut value["properties"];
        p["status"] = "closed".into();
        p["classification"] = "FalsePositive".into();
        p["classificationReason"] = "inaccuratedata".into();
        p["classificationComment"] = "noise".into();
        p["description"] = "text".into();
        p["owner"] = serde_json::json!({"email": "li@contoso.com", "userPrincipalName": null});
        let snapshot = snapshot_from_value(value.clone()).unwrap();
        assert_eq!(
            render_attrs(&snapshot.attrs),
            "assigned_to=li@contoso.com\n\
             classification=FalsePositive\n\
             classification_comment=noise\n\
             classification_reason=InaccurateData\n\
             description=text\n\
             severity=Medium\n\
             status=Closed\n\
             title=Suspicious sign-in followed by mailbox rule creation\n"
        );
        value["properties"]["owner"] = serde_json::Value::Null;
        value["properties"]["incidentNumber"] = serde_json::Value::Null;
        let snapshot = snapshot_from_value(value).unwrap();
        assert!(!snapshot.attrs.contains_key("assigned_to"));
        assert_eq!(snapshot.display_id, snapshot.id);
    }

    #[test]
    fn sentinel_redirected_needs_closed_and_the_label() {
        let mut value: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        value["properties"]["additionalData"]["mergedIncidentNumber"] = "8830".into();
        value["properties"]["labels"] =
            serde_json::json!([{"labelName": "redirected", "labelType": "AutoAssigned"}]);
        // Not closed: not redirected.
        assert_eq!(
            snapshot_from_value(value.clone()).unwrap().redirect_to,
            None
        );
        value["properties"]["status"] = "Closed".into();
        let snapshot = snapshot_from_value(value.clone()).unwrap();
        assert_eq!(snapshot.redirect_to.as_deref(), Some("8830"));
        assert_eq!(snapshot.tags, vec!["redirected"]);
        // Without the preview field the target is unknown.
        value["properties"]["additionalData"]
            .as_object_mut()
            .unwrap()
            .remove("mergedIncidentNumber");
        assert_eq!(snapshot_from_value(value).unwrap().redirect_to, None);
    }

    #[test]
    fn sentinel_incidents_that_do_not_convert_say_which() {
        let mut value: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        value["properties"]["lastModifiedTimeUtc"] = "later".into();
        let error = snapshot_from_value(value.clone()).unwrap_err();
        assert_eq!(
            error.id.as_deref(),
            Some("6f0c2b8e-7c1a-4a53-9a0e-2d3f4b5c6d7e")
        );
        assert!(error.reason.contains("lastModifiedTimeUtc"), "{error}");
        value["properties"]["labels"] = 7.into();
        assert!(snapshot_from_value(value.clone()).is_err());
        value.as_object_mut().unwrap().remove("name");
        let error = snapshot_from_value(value).unwrap_err();
        assert_eq!(error.id, None);
    }

    #[test]
    fn sentinel_comments_convert() {
        let comment = comment_from_value(serde_json::json!({
            "name": "c1",
            "properties": {
                "message": "hello",
                "createdTimeUtc": "2025-05-02T08:00:00Z",
                "author": {"email": "ana@contoso.com", "name": "Ana Ruiz"}
            }
        }))
        .unwrap();
        assert_eq!(comment.id.as_deref(), Some("c1"));
        assert_eq!(comment.author.as_deref(), Some("Ana Ruiz"));
        assert_eq!(comment.text, "hello");
        assert!(comment_from_value(serde_json::json!({"name": "c2", "properties": {}})).is_err());
    }
}
