//! Property tests over Sentinel's payload parsing: arbitrary JSON and mutated
//! real-shaped incidents and comments (unknown enum members, missing fields, nulls
//! and wrong types, 100 KB strings, odd Unicode, HTML) through
//! `convert::snapshot_from_value` and `convert::comment_from_value`, and list pages
//! with one bad item.

use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::{Value, json};

use bridge_core::mapping::{IncidentSide, Mapping};
use bridge_core::vocab::{
    SENTINEL_CLASSIFICATION, SENTINEL_CLASSIFICATION_REASON, SENTINEL_SEVERITY, SENTINEL_STATUS,
    SERVICENOW_STATE,
};

use super::convert::{canonical_enum, comment_from_value, snapshot_from_value};
use super::wire::ResourceList;
use crate::testkit::{any_json, ascii_escaped, enum_like, hostile_text, mutate, mutation};

/// Sentinel's field names, for generated objects.
const KEYS: &[&str] = &[
    "id",
    "name",
    "etag",
    "properties",
    "title",
    "description",
    "severity",
    "status",
    "classification",
    "classificationReason",
    "classificationComment",
    "owner",
    "email",
    "userPrincipalName",
    "labels",
    "labelName",
    "incidentNumber",
    "incidentUrl",
    "createdTimeUtc",
    "lastModifiedTimeUtc",
    "additionalData",
    "mergedIncidentNumber",
    "providerIncidentUrl",
    "message",
    "author",
    "value",
    "nextLink",
];

/// Places in an incident a mutation may hit.
const POINTERS: &[&str] = &[
    "/id",
    "/name",
    "/etag",
    "/type",
    "/properties",
    "/properties/title",
    "/properties/description",
    "/properties/severity",
    "/properties/status",
    "/properties/classification",
    "/properties/classificationReason",
    "/properties/classificationComment",
    "/properties/owner",
    "/properties/owner/email",
    "/properties/owner/userPrincipalName",
    "/properties/labels",
    "/properties/labels/0",
    "/properties/labels/0/labelName",
    "/properties/incidentNumber",
    "/properties/incidentUrl",
    "/properties/providerIncidentId",
    "/properties/createdTimeUtc",
    "/properties/lastModifiedTimeUtc",
    "/properties/additionalData",
    "/properties/additionalData/tactics",
    "/properties/additionalData/mergedIncidentNumber",
    "/properties/additionalData/providerIncidentUrl",
    "/properties/teamInformation",
    "/properties/newPropertyFrom2027",
];

/// An incident as ARM returns it (API.md §3.3).
fn incident(name: &str) -> Value {
    json!({
        "id": format!("/subscriptions/1111/resourceGroups/rg-soc/providers/Microsoft.OperationalInsights/workspaces/law-soc/providers/Microsoft.SecurityInsights/Incidents/{name}"),
        "name": name,
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
            "incidentUrl": "https://portal.azure.com/#asset/Microsoft_Azure_Security_Insights/Incident/subscriptions/.../incidents/6f0c2b8e",
            "providerName": "Microsoft XDR",
            "providerIncidentId": "41877",
            "createdTimeUtc": "2025-05-02T08:00:12.44Z",
            "lastModifiedTimeUtc": "2025-05-02T08:12:30.01Z",
            "additionalData": {"alertsCount": 3, "tactics": ["InitialAccess"], "providerIncidentUrl": "https://security.microsoft.com/incidents/41877"}
        }
    })
}

/// A comment as ARM returns it.
fn comment(name: &str) -> Value {
    json!({
        "id": format!("/subscriptions/1111/.../Incidents/x/Comments/{name}"),
        "name": name,
        "type": "Microsoft.SecurityInsights/incidents/comments",
        "properties": {
            "message": "Ticket INC0010042 opened",
            "createdTimeUtc": "2025-05-02T08:12:30.01Z",
            "author": {"name": "Incident Sync App", "email": null, "objectId": "x"}
        }
    })
}

fn mutated(
    base: fn(&str) -> Value,
    pointers: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(pointers), mutation(KEYS)), 0..6).prop_map(
        move |mutations| {
            let mut value = base("6f0c2b8e-7c1a-4a53-9a0e-2d3f4b5c6d7e");
            for (pointer, m) in &mutations {
                mutate(&mut value, pointer, m);
            }
            value
        },
    )
}

fn good_incident(name: String) -> impl Strategy<Value = Value> {
    (hostile_text(), enum_like(), enum_like(), hostile_text()).prop_map(
        move |(title, status, classification, label)| {
            let mut value = incident(&name);
            value["properties"]["title"] = title.into();
            value["properties"]["status"] = status.into();
            value["properties"]["classification"] = classification.into();
            value["properties"]["labels"][0]["labelName"] = label.into();
            value
        },
    )
}

fn bad_item() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(false)),
        Just(json!("6f0c2b8e")),
        Just({
            let mut v = incident("bad-1");
            v.as_object_mut().unwrap().remove("name");
            v
        }),
        Just({
            let mut v = incident("bad-2");
            v["properties"]["lastModifiedTimeUtc"] = json!(1_746_173_550);
            v
        }),
        Just({
            let mut v = incident("bad-3");
            v["properties"]["incidentNumber"] = "8812".into();
            v
        }),
        Just({
            let mut v = incident("bad-4");
            v["properties"]["createdTimeUtc"] = "2025-13-45T99:00:00Z".into();
            v
        }),
    ]
}

fn shipped(file: &str, text: &str) -> Mapping {
    bridge_core::mapping::parse(std::path::Path::new(file), text).unwrap_or_else(|e| panic!("{e}"))
}

/// The shipped Sentinel → ServiceNow mapping.
static SERVICENOW_MAPPING: LazyLock<Mapping> = LazyLock::new(|| {
    shipped(
        "servicenow.toml",
        include_str!("../../../mappings/servicenow.toml"),
    )
});

/// The shipped Sentinel → generic mapping.
static GENERIC_MAPPING: LazyLock<Mapping> = LazyLock::new(|| {
    shipped(
        "generic.toml",
        include_str!("../../../mappings/generic.toml"),
    )
});

fn check_enum(
    properties: &Value,
    field: &str,
    set: &[&'static str],
    attrs: &bridge_core::model::Attrs,
    attr: &str,
) -> Result<(), TestCaseError> {
    match properties.get(field).and_then(Value::as_str) {
        Some(s) if !s.trim().is_empty() => {
            let expected = canonical_enum(set, s).unwrap_or(s);
            prop_assert_eq!(attrs.get(attr).map(String::as_str), Some(expected));
        }
        _ => prop_assert!(!attrs.contains_key(attr)),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sentinel_any_json_converts_or_is_refused(value in any_json(KEYS)) {
        if let Err(e) = snapshot_from_value(value.clone()) {
            prop_assert!(!e.to_string().is_empty());
        }
        if let Err(e) = comment_from_value(value) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    /// Unknown enum members survive as they came; the shipped mappings map a status
    /// to a value the ticket system takes, or leave it alone.
    #[test]
    fn sentinel_mutated_incidents_keep_what_they_can(value in mutated(incident, POINTERS)) {
        match snapshot_from_value(value.clone()) {
            Ok(snapshot) => {
                prop_assert_eq!(Some(snapshot.id.as_str()), value["name"].as_str().map(str::trim));
                let p = &value["properties"];
                check_enum(p, "status", SENTINEL_STATUS, &snapshot.attrs, "status")?;
                check_enum(p, "severity", SENTINEL_SEVERITY, &snapshot.attrs, "severity")?;
                check_enum(p, "classification", SENTINEL_CLASSIFICATION, &snapshot.attrs, "classification")?;
                check_enum(p, "classificationReason", SENTINEL_CLASSIFICATION_REASON, &snapshot.attrs, "classification_reason")?;
                if let Some(title) = p["title"].as_str().filter(|t| !t.trim().is_empty()) {
                    prop_assert_eq!(snapshot.attrs.get("title").map(String::as_str), Some(title));
                }
                for (mapping, statuses) in [
                    (&*SERVICENOW_MAPPING, SERVICENOW_STATE),
                    (&*GENERIC_MAPPING, &["open", "in_progress", "resolved", "closed"][..]),
                ] {
                    for rule in &mapping.fields {
                        let incident_value = rule.incident_value(&snapshot, "sentinel-prod");
                        let ticket_value = rule.map_to_ticket(incident_value.as_deref());
                        if rule.ticket == "status" {
                            prop_assert!(ticket_value.as_deref().is_none_or(|v| statuses.contains(&v)), "{ticket_value:?}");
                        }
                        if rule.name == "summary"
                            && let (IncidentSide::Template(_), Some(title)) = (&rule.incident, snapshot.attrs.get("title"))
                        {
                            prop_assert!(ticket_value.unwrap_or_default().contains(title.as_str()));
                        }
                    }
                }
            }
            Err(e) => prop_assert!(!e.reason.is_empty()),
        }
    }

    #[test]
    fn sentinel_mutated_comments_convert_or_are_refused(value in mutated(comment, &[
        "/name", "/properties", "/properties/message", "/properties/createdTimeUtc",
        "/properties/author", "/properties/author/name", "/properties/author/email",
    ])) {
        match comment_from_value(value.clone()) {
            Ok(c) => {
                let message = value["properties"]["message"].as_str().unwrap_or_default();
                prop_assert_eq!(c.text.as_str(), message);
            }
            Err(e) => prop_assert!(!e.reason.is_empty()),
        }
    }

    /// One incident that does not convert on a `{value, nextLink}` page: the others
    /// all come through, in order.
    #[test]
    fn sentinel_one_bad_item_does_not_hide_the_rest_of_its_page(
        good in prop::collection::vec(0u32..1_000_000, 1..6)
            .prop_map(|ids| { let mut ids = ids; ids.sort_unstable(); ids.dedup(); ids })
            .prop_flat_map(|ids| ids.into_iter().map(|i| good_incident(format!("g{i}"))).collect::<Vec<_>>()),
        bad in bad_item(),
        at in any::<prop::sample::Index>(),
        escaped in any::<bool>(),
    ) {
        let mut items = good.clone();
        items.insert(at.index(items.len() + 1), bad);
        let page = json!({"value": items, "nextLink": "https://management.azure.com/x?$skipToken=y"});
        let body = if escaped { ascii_escaped(&page) } else { page.to_string() };
        let list: ResourceList<Value> = serde_json::from_slice(body.as_bytes()).expect("the envelope decodes");
        let results: Vec<_> = list.value.into_iter().map(snapshot_from_value).collect();
        let ok: Vec<String> = results.iter().filter_map(|r| r.as_ref().ok()).map(|s| s.id.clone()).collect();
        let expected: Vec<String> = good.iter().map(|g| g["name"].as_str().unwrap().to_string()).collect();
        prop_assert_eq!(ok, expected);
        prop_assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    }
}

#[test]
fn sentinel_unknown_enum_members_get_the_documented_fallbacks() {
    let mut value = incident("6f0c2b8e");
    value["properties"]["status"] = "Archived".into();
    value["properties"]["severity"] = "critical".into();
    value["properties"]["classification"] = "truepositive".into();
    let snapshot = snapshot_from_value(value).unwrap();
    assert_eq!(snapshot.attrs["status"], "Archived");
    assert_eq!(snapshot.attrs["severity"], "critical");
    assert_eq!(snapshot.attrs["classification"], "TruePositive");
    let rule = |mapping: &'static Mapping, name: &str| {
        mapping.fields.iter().find(|f| f.name == name).unwrap()
    };
    // An unknown status or severity is left alone, not guessed.
    assert_eq!(
        rule(&SERVICENOW_MAPPING, "status").map_to_ticket(Some("Archived")),
        None
    );
    assert_eq!(
        rule(&SERVICENOW_MAPPING, "impact").map_to_ticket(Some("critical")),
        None
    );
    // A close code the mapping does not name classifies as its documented default.
    assert_eq!(
        rule(&SERVICENOW_MAPPING, "classification")
            .map_to_incident(Some("Closed by a robot"))
            .as_deref(),
        Some("TruePositive")
    );
}

#[test]
fn sentinel_a_lone_surrogate_in_one_incident_does_not_fail_its_page() {
    let mut bad = incident("2");
    bad["properties"]["title"] = "Phishing 🚨".into();
    let page =
        ascii_escaped(&json!({"value": [incident("1"), bad]})).replace("\\ud83d\\udea8", "\\ud83d");
    // Through the HTTP layer's decoder, as the client reads a page.
    let list: ResourceList<Value> = crate::http::Response {
        status: reqwest::StatusCode::OK,
        headers: reqwest::header::HeaderMap::new(),
        body: bytes::Bytes::from(page),
    }
    .json("sentinel")
    .expect("the page decodes");
    let ok = list
        .value
        .into_iter()
        .filter_map(|v| snapshot_from_value(v).ok())
        .count();
    assert!(ok >= 1, "at least the good incident comes through");
}
