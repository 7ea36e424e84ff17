//! Pure conversion from Sentinel's incident JSON to the domain's [`IncidentSnapshot`]
//! (and of incident comments to the domain's [`Comment`]): attribute names, enum
//! spellings, labels as tags, the etag, timestamps, and the "redirected" reading of
//! an incident Defender XDR merged away (what it says about its target; the client
//! turns that into the target's resource name). No IO.

use bridge_core::model::{Attrs, Comment, IncidentSnapshot, ModifiedBy};
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
    to_snapshot(&incident_from_value(value)?)
}

/// One list item (raw JSON) to the wire incident.
pub fn incident_from_value(value: serde_json::Value) -> Result<Incident, ConversionError> {
    let id = value
        .get("name")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    serde_json::from_value(value).map_err(|e| ConversionError {
        id,
        reason: format!("unexpected shape ({e})"),
    })
}

/// A Sentinel incident to the domain snapshot. Comments are not part of the
/// incident resource; they are read separately where needed. `redirect_to` is
/// always `None` here: a merged-away incident never names its target by resource
/// name (see [`redirect_target`]); `SentinelSource` looks the target up and fills
/// it in.
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

    // ARM's `systemData.lastModifiedBy` (a UPN, or an application's id), where
    // the response has it.
    let last_modified_by = incident
        .system_data
        .as_ref()
        .and_then(|d| d.get("lastModifiedBy"))
        .and_then(|v| v.as_str())
        .filter(|v| !v.trim().is_empty())
        .map(str::to_string);
    Ok(IncidentSnapshot {
        modified_by: ModifiedBy {
            last: last_modified_by,
            fields: Default::default(),
        },
        display_id: p
            .incident_number
            .map_or_else(|| id.clone(), |n| n.to_string()),
        web_url,
        provider_url: additional.and_then(|a| non_empty(&a.provider_incident_url)),
        created,
        modified,
        redirect_to: None,
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

/// What a merged-away incident says about the incident Defender XDR merged it into.
/// Neither clue is the target's resource name (its GUID `name`, what a GET by id
/// takes), so the target has to be looked up in the workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedirectTarget {
    /// The preview API's `additionalData.mergedIncidentNumber`: the target's
    /// `incidentNumber` (`$filter=properties/incidentNumber eq N`).
    pub merged_number: Option<i64>,
    /// The Defender XDR incident the merged-away incident's Defender link names:
    /// the id in `additionalData.providerIncidentUrl`
    /// (`https://security.microsoft.com/incidents/{id}?tid=…`), else its
    /// `providerIncidentId`. The target is the Sentinel incident whose
    /// `providerIncidentId` is that id (`$filter=properties/providerIncidentId eq
    /// '{id}'`). Where the link still names the merged-away incident itself, that
    /// lookup finds only itself and the target stays unknown.
    pub defender_incident: Option<String>,
}

/// Where a merged-away incident went, as far as the incident itself says: `None`
/// unless it is Closed and labelled [`REDIRECTED_LABEL`] (how Sentinel shows an
/// incident Defender XDR merged into another, API.md §3.5); otherwise the clues of
/// [`RedirectTarget`], either or both of which may be missing (the stable API has
/// no `mergedIncidentNumber`). `SentinelSource` resolves them to the surviving
/// incident's resource name through `$filter` lookups (`get` and the paged reads
/// alike), so that `IncidentSnapshot::redirect_to` is directly followable with
/// `get`; when nothing resolves, `redirect_to` stays `None` and the engine records
/// the target as unknown.
pub fn redirect_target(incident: &Incident) -> Option<RedirectTarget> {
    let p = &incident.properties;
    let closed = p
        .status
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("Closed"));
    if !closed || !is_redirected(incident) {
        return None;
    }
    let additional = p.additional_data.as_ref();
    let merged_number = additional
        .and_then(|a| a.merged_incident_number.as_deref())
        .and_then(|n| n.trim().parse::<i64>().ok());
    let defender_incident = additional
        .and_then(|a| a.provider_incident_url.as_deref())
        .and_then(defender_incident_in_url)
        .or_else(|| {
            p.provider_incident_id
                .as_deref()
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_string)
        });
    Some(RedirectTarget {
        merged_number,
        defender_incident,
    })
}

/// The incident id in a Defender portal link: the path segment after `incidents`
/// (`https://security.microsoft.com/incidents/41877?tid=…` → `41877`).
pub fn defender_incident_in_url(link: &str) -> Option<String> {
    let url = url::Url::parse(link.trim()).ok()?;
    let mut segments = url.path_segments()?;
    segments.find(|s| s.eq_ignore_ascii_case("incidents"))?;
    let id = segments.next()?.trim();
    (!id.is_empty()).then(|| id.to_string())
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
        value["properties"]["additionalData"]["providerIncidentUrl"] =
            "https://security.microsoft.com/incidents/41900?tid=0b3c".into();
        value["properties"]["labels"] =
            serde_json::json!([{"labelName": "redirected", "labelType": "AutoAssigned"}]);
        let incident = |v: &serde_json::Value| incident_from_value(v.clone()).unwrap();
        // Not closed: not redirected.
        assert_eq!(redirect_target(&incident(&value)), None);
        value["properties"]["status"] = "Closed".into();
        assert_eq!(
            redirect_target(&incident(&value)),
            Some(RedirectTarget {
                merged_number: Some(8830),
                defender_incident: Some("41900".into()),
            })
        );
        // The snapshot never carries a number or a Defender id as the target: the
        // client resolves them to a resource name.
        let snapshot = snapshot_from_value(value.clone()).unwrap();
        assert_eq!(snapshot.redirect_to, None);
        assert_eq!(snapshot.tags, vec!["redirected"]);
        // Stable API: no number; without a portal link the provider id is the clue.
        let data = value["properties"]["additionalData"]
            .as_object_mut()
            .unwrap();
        data.remove("mergedIncidentNumber");
        data.remove("providerIncidentUrl");
        assert_eq!(
            redirect_target(&incident(&value)),
            Some(RedirectTarget {
                merged_number: None,
                defender_incident: Some("41877".into()),
            })
        );
        // Closed without the label: an ordinary closed incident.
        value["properties"]["labels"] = serde_json::json!([]);
        assert_eq!(redirect_target(&incident(&value)), None);
    }

    #[test]
    fn sentinel_defender_links_name_their_incident() {
        for (link, id) in [
            (
                "https://security.microsoft.com/incidents/41877?tid=0b3c",
                Some("41877"),
            ),
            (
                "https://security.microsoft.com/Incidents/7/overview",
                Some("7"),
            ),
            ("https://security.microsoft.com/incidents/", None),
            ("https://security.microsoft.com/alerts/41877", None),
            ("not a link", None),
        ] {
            assert_eq!(defender_incident_in_url(link).as_deref(), id, "{link}");
        }
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
