//! Pure conversion from Graph's incident JSON to the domain's [`IncidentSnapshot`]:
//! attribute names, enum spellings (camelCase, the update doc's determination
//! synonyms folded onto the resource doc's names), timestamps, comments. No IO.

use bridge_core::model::{Attrs, Comment, IncidentSnapshot, ModifiedBy};
use bridge_core::vocab::{GRAPH_CLASSIFICATION, GRAPH_DETERMINATION, GRAPH_SEVERITY, GRAPH_STATUS};

use super::wire::{self, Incident};

/// Why one incident could not be converted; the client logs it and skips the incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionError {
    /// The incident's id, when it has one.
    pub id: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for ConversionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.id {
            Some(id) => write!(f, "incident {id}: {}", self.reason),
            None => write!(f, "incident without an id: {}", self.reason),
        }
    }
}

/// The update doc's names for three determinations and the resource doc's names
/// that the bridge (and Graph's responses) use.
const DETERMINATION_SYNONYMS: &[(&str, &str)] = &[
    ("notMalicious", "clean"),
    ("notEnoughDataToValidate", "insufficientData"),
    ("compromisedAccount", "compromisedUser"),
];

/// The member of `set` that `value` names, compared case-insensitively (Graph's docs
/// send `TruePositive` while its responses say `truePositive`).
pub fn canonical_enum(set: &[&'static str], value: &str) -> Option<&'static str> {
    set.iter().copied().find(|m| m.eq_ignore_ascii_case(value))
}

/// A determination in the resource doc's spelling, from either doc's spelling.
pub fn canonical_determination(value: &str) -> Option<&'static str> {
    DETERMINATION_SYNONYMS
        .iter()
        .find(|(synonym, _)| synonym.eq_ignore_ascii_case(value))
        .map(|(_, name)| *name)
        .or_else(|| canonical_enum(GRAPH_DETERMINATION, value))
}

/// One list item (raw JSON) to a snapshot.
pub fn snapshot_from_value(value: serde_json::Value) -> Result<IncidentSnapshot, ConversionError> {
    let id = value.get("id").and_then(|v| v.as_str()).map(str::to_string);
    let incident: Incident = serde_json::from_value(value).map_err(|e| ConversionError {
        id: id.clone(),
        reason: format!("unexpected shape ({e})"),
    })?;
    to_snapshot(&incident)
}

/// A Graph incident to the domain snapshot.
pub fn to_snapshot(incident: &Incident) -> Result<IncidentSnapshot, ConversionError> {
    let id = incident
        .id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ConversionError {
            id: None,
            reason: "the incident has no id".into(),
        })?
        .to_string();
    let fail = |reason: String| ConversionError {
        id: Some(id.clone()),
        reason,
    };
    let timestamp = |field: &str, value: &Option<String>| {
        let text = value
            .as_deref()
            .ok_or_else(|| fail(format!("`{field}` is missing")))?;
        wire::parse_timestamp(text)
            .ok_or_else(|| fail(format!("`{field}` is not a timestamp: {text:?}")))
    };
    let created = timestamp("createdDateTime", &incident.created_date_time)?;
    let modified = timestamp("lastUpdateDateTime", &incident.last_update_date_time)?;

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
    put("title", incident.display_name.clone());
    put("description", incident.description.clone());
    put("status", enumerated(GRAPH_STATUS, &incident.status));
    put("severity", enumerated(GRAPH_SEVERITY, &incident.severity));
    put(
        "classification",
        enumerated(GRAPH_CLASSIFICATION, &incident.classification),
    );
    put(
        "determination",
        incident
            .determination
            .as_deref()
            .map(|v| canonical_determination(v).map_or_else(|| v.to_string(), str::to_string)),
    );
    put("assigned_to", incident.assigned_to.clone());

    let comments = incident
        .comments
        .iter()
        .map(|c| {
            let created = timestamp("comments.createdDateTime", &c.created_date_time)?;
            Ok(Comment {
                id: None,
                author: c
                    .created_by_display_name
                    .clone()
                    .filter(|a| !a.trim().is_empty()),
                created,
                text: c.comment.clone().unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>, ConversionError>>()?;

    let web_url = incident
        .incident_web_url
        .clone()
        .filter(|u| !u.trim().is_empty())
        // Never seen missing; the portal link without the tenant still opens it.
        .unwrap_or_else(|| format!("https://security.microsoft.com/incidents/{id}"));

    Ok(IncidentSnapshot {
        modified_by: ModifiedBy {
            last: incident
                .last_modified_by
                .clone()
                .filter(|by| !by.trim().is_empty()),
            fields: Default::default(),
        },
        display_id: id.clone(),
        web_url,
        provider_url: None,
        created,
        modified,
        attrs,
        tags: incident.custom_tags.clone(),
        redirect_to: incident
            .redirect_incident_id
            .clone()
            .filter(|r| !r.trim().is_empty()),
        comments,
        etag: None,
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example incident of API.md §2.3.
    const EXAMPLE: &str = r##"{
      "@odata.type": "#microsoft.graph.security.incident",
      "id": "41877",
      "displayName": "Multi-stage incident involving Initial access on one endpoint",
      "description": null,
      "summary": null,
      "status": "active",
      "severity": "high",
      "classification": "unknown",
      "determination": "unknown",
      "assignedTo": "soc-bot@contoso.com",
      "customTags": ["ticket:SEC-1042"],
      "systemTags": [],
      "comments": [{"comment": "Ticket SEC-1042 opened", "createdByDisplayName": "Incident Sync App", "createdDateTime": "2025-05-02T08:11:04.51Z"}],
      "resolvingComment": null,
      "redirectIncidentId": null,
      "incidentWebUrl": "https://security.microsoft.com/incidents/41877?tid=0b3c...e9c",
      "tenantId": "0b3c...e9c",
      "createdDateTime": "2025-05-02T07:58:40.1233333Z",
      "lastUpdateDateTime": "2025-05-02T08:11:04.6033333Z",
      "lastModifiedBy": "Incident Sync App"
    }"##;

    fn render_attrs(attrs: &Attrs) -> String {
        attrs.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }

    #[test]
    fn graph_example_incident_converts() {
        let value: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        let snapshot = snapshot_from_value(value).unwrap();
        assert_eq!(snapshot.id, "41877");
        assert_eq!(snapshot.display_id, "41877");
        assert_eq!(
            snapshot.web_url,
            "https://security.microsoft.com/incidents/41877?tid=0b3c...e9c"
        );
        assert_eq!(
            render_attrs(&snapshot.attrs),
            "assigned_to=soc-bot@contoso.com\n\
             classification=unknown\n\
             determination=unknown\n\
             severity=high\n\
             status=active\n\
             title=Multi-stage incident involving Initial access on one endpoint\n"
        );
        assert_eq!(snapshot.tags, vec!["ticket:SEC-1042".to_string()]);
        assert_eq!(snapshot.redirect_to, None);
        assert_eq!(snapshot.provider_url, None);
        assert_eq!(snapshot.etag, None);
        assert_eq!(
            wire::format_timestamp(&snapshot.created),
            "2025-05-02T07:58:40.1233333Z"
        );
        assert_eq!(
            wire::format_timestamp(&snapshot.modified),
            "2025-05-02T08:11:04.6033333Z"
        );
        assert_eq!(snapshot.comments.len(), 1);
        let comment = &snapshot.comments[0];
        assert_eq!(comment.id, None);
        assert_eq!(comment.author.as_deref(), Some("Incident Sync App"));
        assert_eq!(comment.text, "Ticket SEC-1042 opened");
        assert_eq!(
            wire::format_timestamp(&comment.created),
            "2025-05-02T08:11:04.5100000Z"
        );
    }

    #[test]
    fn graph_enum_spellings_are_normalised() {
        let mut value: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        value["determination"] = "notEnoughDataToValidate".into();
        value["classification"] = "TruePositive".into();
        value["status"] = "InProgress".into();
        value["assignedTo"] = "".into();
        value["redirectIncidentId"] = "41900".into();
        let snapshot = snapshot_from_value(value.clone()).unwrap();
        assert_eq!(snapshot.attrs["determination"], "insufficientData");
        assert_eq!(snapshot.attrs["classification"], "truePositive");
        assert_eq!(snapshot.attrs["status"], "inProgress");
        assert!(!snapshot.attrs.contains_key("assigned_to"));
        assert_eq!(snapshot.redirect_to.as_deref(), Some("41900"));
        for (synonym, name) in [
            ("notMalicious", "clean"),
            ("compromisedAccount", "compromisedUser"),
            ("MultiStagedAttack", "multiStagedAttack"),
        ] {
            value["determination"] = synonym.into();
            assert_eq!(
                snapshot_from_value(value.clone()).unwrap().attrs["determination"],
                name
            );
        }
        value["assignedTo"] = serde_json::Value::Null;
        value["classification"] = serde_json::Value::Null;
        let snapshot = snapshot_from_value(value).unwrap();
        assert!(!snapshot.attrs.contains_key("assigned_to"));
        assert!(!snapshot.attrs.contains_key("classification"));
    }

    #[test]
    fn graph_incidents_that_do_not_convert_say_which() {
        let mut value: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        value["lastUpdateDateTime"] = "not a time".into();
        let error = snapshot_from_value(value.clone()).unwrap_err();
        assert_eq!(error.id.as_deref(), Some("41877"));
        assert!(error.reason.contains("lastUpdateDateTime"), "{error}");

        value["customTags"] = 7.into();
        let error = snapshot_from_value(value.clone()).unwrap_err();
        assert_eq!(error.id.as_deref(), Some("41877"));

        value["customTags"] = serde_json::json!([]);
        value.as_object_mut().unwrap().remove("id");
        let error = snapshot_from_value(value).unwrap_err();
        assert_eq!(error.id, None);
        assert_eq!(
            error.to_string(),
            "incident without an id: the incident has no id"
        );
    }
}
