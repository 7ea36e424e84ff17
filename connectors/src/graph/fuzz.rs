//! Property tests over Graph's payload parsing, run as ordinary unit tests: arbitrary
//! JSON and mutated real-shaped incidents (unknown enum members, missing fields,
//! nulls and wrong types, 100 KB strings, odd Unicode, HTML) through
//! `convert::snapshot_from_value`, and list pages with one bad item.

use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::{Value, json};

use bridge_core::mapping::{IncidentSide, Mapping};
use bridge_core::vocab::{
    GRAPH_CLASSIFICATION, GRAPH_SEVERITY, GRAPH_STATUS, JIRA_STATUS_CATEGORY,
};

use super::convert::{canonical_enum, snapshot_from_value};
use super::wire::ODataList;
use crate::testkit::{enum_like, hostile_text, mutate, mutation};

/// Graph's field names, for generated objects.
const KEYS: &[&str] = &[
    "id",
    "displayName",
    "description",
    "status",
    "severity",
    "classification",
    "determination",
    "assignedTo",
    "customTags",
    "systemTags",
    "comments",
    "comment",
    "createdByDisplayName",
    "createdDateTime",
    "lastUpdateDateTime",
    "incidentWebUrl",
    "redirectIncidentId",
    "tenantId",
    "value",
    "@odata.nextLink",
];

/// Places in an incident a mutation may hit.
const POINTERS: &[&str] = &[
    "/id",
    "/displayName",
    "/description",
    "/summary",
    "/status",
    "/severity",
    "/classification",
    "/determination",
    "/assignedTo",
    "/customTags",
    "/customTags/0",
    "/systemTags",
    "/comments",
    "/comments/0",
    "/comments/0/comment",
    "/comments/0/createdByDisplayName",
    "/comments/0/createdDateTime",
    "/resolvingComment",
    "/redirectIncidentId",
    "/incidentWebUrl",
    "/tenantId",
    "/createdDateTime",
    "/lastUpdateDateTime",
    "/lastModifiedBy",
    "/alerts",
    "/@odata.type",
    "/newPropertyFrom2027",
];

/// An incident as Graph returns it (API.md §2.3).
fn incident(id: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.security.incident",
        "id": id,
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
        "incidentWebUrl": format!("https://security.microsoft.com/incidents/{id}?tid=0b3c"),
        "tenantId": "0b3c",
        "createdDateTime": "2025-05-02T07:58:40.1233333Z",
        "lastUpdateDateTime": "2025-05-02T08:11:04.6033333Z",
        "lastModifiedBy": "Incident Sync App"
    })
}

fn mutated_incident() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(POINTERS), mutation(KEYS)), 0..6).prop_map(
        |mutations| {
            let mut value = incident("41877");
            for (pointer, m) in &mutations {
                mutate(&mut value, pointer, m);
            }
            value
        },
    )
}

/// An incident that converts, with hostile texts and unknown enum members in the
/// places that take any text.
fn good_incident(id: String) -> impl Strategy<Value = Value> {
    (hostile_text(), enum_like(), enum_like(), hostile_text()).prop_map(
        move |(title, status, severity, assignee)| {
            let mut value = incident(&id);
            value["displayName"] = title.into();
            value["status"] = status.into();
            value["severity"] = severity.into();
            value["assignedTo"] = assignee.into();
            value
        },
    )
}

/// Items that never convert.
fn bad_item() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(7)),
        Just(json!("41877")),
        Just(json!([incident("1")])),
        Just({
            let mut v = incident("bad-1");
            v.as_object_mut().unwrap().remove("id");
            v
        }),
        Just({
            let mut v = incident("bad-2");
            v["lastUpdateDateTime"] = "yesterday".into();
            v
        }),
        Just({
            let mut v = incident("bad-3");
            v["customTags"] = json!({"a": 1});
            v
        }),
        Just({
            let mut v = incident("bad-4");
            v["comments"] = json!([{"comment": "x", "createdDateTime": null}]);
            v
        }),
    ]
}

/// The shipped Graph → Jira mapping.
static JIRA_MAPPING: LazyLock<Mapping> = LazyLock::new(|| {
    bridge_core::mapping::parse(
        std::path::Path::new("jira.toml"),
        include_str!("../../../mappings/jira.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
});

/// What the conversion promises for one enumerated attribute: a known member in its
/// canonical spelling, an unknown one as it came, nothing for blank or missing.
fn check_enum(
    input: &Value,
    field: &str,
    set: &[&'static str],
    attrs: &bridge_core::model::Attrs,
    attr: &str,
) -> Result<(), TestCaseError> {
    match input.get(field).and_then(Value::as_str) {
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

    /// Any JSON at all: an error or a snapshot, never a panic.
    #[test]
    fn graph_any_json_converts_or_is_refused(value in crate::testkit::any_json(KEYS)) {
        if let Err(e) = snapshot_from_value(value) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    /// A real incident with fields removed, nulled, retyped or replaced: unknown
    /// enum members survive as they came, texts survive byte for byte, and the
    /// mapping either maps a status or leaves it alone (never an invented value).
    #[test]
    fn graph_mutated_incidents_keep_what_they_can(value in mutated_incident()) {
        match snapshot_from_value(value.clone()) {
            Ok(snapshot) => {
                prop_assert_eq!(Some(snapshot.id.as_str()), value["id"].as_str().map(str::trim));
                check_enum(&value, "status", GRAPH_STATUS, &snapshot.attrs, "status")?;
                check_enum(&value, "severity", GRAPH_SEVERITY, &snapshot.attrs, "severity")?;
                check_enum(&value, "classification", GRAPH_CLASSIFICATION, &snapshot.attrs, "classification")?;
                if let Some(title) = value["displayName"].as_str().filter(|t| !t.trim().is_empty()) {
                    prop_assert_eq!(snapshot.attrs.get("title").map(String::as_str), Some(title));
                }
                for rule in &JIRA_MAPPING.fields {
                    let incident_value = rule.incident_value(&snapshot, "defender");
                    let ticket_value = rule.map_to_ticket(incident_value.as_deref());
                    if rule.ticket == "status" {
                        prop_assert!(ticket_value.as_deref().is_none_or(|v| JIRA_STATUS_CATEGORY.contains(&v)));
                    }
                    if rule.name == "summary"
                        && let (IncidentSide::Template(_), Some(title)) = (&rule.incident, snapshot.attrs.get("title"))
                    {
                        prop_assert!(ticket_value.unwrap_or_default().contains(title.as_str()));
                    }
                }
            }
            Err(e) => {
                prop_assert!(!e.reason.is_empty());
                if let Some(id) = &e.id {
                    // The error names the incident (as sent, or trimmed).
                    let sent = value["id"].as_str().unwrap_or_default();
                    prop_assert!(sent == id || sent.trim() == id, "{}", e);
                }
            }
        }
    }

    /// A list page with one item that does not convert: every other incident still
    /// comes through, in order, whatever it holds.
    #[test]
    fn graph_one_bad_item_does_not_hide_the_rest_of_its_page(
        good in prop::collection::vec(0u32..1_000_000, 1..6)
            .prop_map(|ids| { let mut ids = ids; ids.sort_unstable(); ids.dedup(); ids })
            .prop_flat_map(|ids| ids.into_iter().map(|i| good_incident(format!("g{i}"))).collect::<Vec<_>>()),
        bad in bad_item(),
        at in any::<prop::sample::Index>(),
        escaped in any::<bool>(),
    ) {
        let mut items = good.clone();
        items.insert(at.index(items.len() + 1), bad);
        let page = json!({"value": items, "@odata.nextLink": "https://graph.microsoft.com/v1.0/security/incidents?$skiptoken=x"});
        // The body as Graph may write it: raw UTF-8, or every non-ASCII character escaped.
        let body = if escaped { crate::testkit::ascii_escaped(&page) } else { page.to_string() };
        let list: ODataList<Value> = serde_json::from_slice(body.as_bytes()).expect("the envelope decodes");
        let results: Vec<_> = list.value.into_iter().map(snapshot_from_value).collect();
        let ok: Vec<String> = results.iter().filter_map(|r| r.as_ref().ok()).map(|s| s.id.clone()).collect();
        let expected: Vec<String> = good.iter().map(|g| g["id"].as_str().unwrap().to_string()).collect();
        prop_assert_eq!(ok, expected);
        prop_assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    }
}

#[test]
fn graph_unknown_enum_members_survive_as_they_came() {
    let mut value = incident("41877");
    value["status"] = "brandNewStatus".into();
    value["severity"] = "unknownFutureValue".into();
    value["classification"] = "TRUEPOSITIVE".into();
    let snapshot = snapshot_from_value(value).unwrap();
    assert_eq!(snapshot.attrs["status"], "brandNewStatus");
    assert_eq!(snapshot.attrs["severity"], "unknownFutureValue");
    assert_eq!(snapshot.attrs["classification"], "truePositive");
    // The shipped mapping leaves an unknown status alone and gives the documented
    // fallback for the documented placeholder member.
    let rule = |name: &str| JIRA_MAPPING.fields.iter().find(|f| f.name == name).unwrap();
    assert_eq!(rule("status").map_to_ticket(Some("brandNewStatus")), None);
    assert_eq!(
        rule("status")
            .map_to_ticket(Some("unknownFutureValue"))
            .as_deref(),
        Some("new")
    );
    assert_eq!(
        rule("priority")
            .map_to_ticket(Some("unknownFutureValue"))
            .as_deref(),
        Some("Medium")
    );
}

/// Graph's answer is .NET JSON, which can carry half of a surrogate pair (a title
/// cut in the middle of an emoji) as a `\ud83d` escape. serde_json refuses that in a
/// `String`; the HTTP layer replaces such escapes with U+FFFD, so one such incident
/// does not cost its page (every incident on it, and every later page).
#[test]
fn graph_a_lone_surrogate_in_one_incident_does_not_fail_its_page() {
    let good = incident("1");
    let mut bad = incident("2");
    bad["displayName"] = "Phishing 🚨".into();
    let page = json!({"value": [good, bad]}).to_string();
    let cut = crate::testkit::ascii_escaped(&serde_json::from_str(&page).unwrap())
        .replace("\\ud83d\\udea8", "\\ud83d");
    // Through the HTTP layer's decoder, as the client reads a page.
    let list: Result<ODataList<Value>, _> = crate::http::Response {
        status: reqwest::StatusCode::OK,
        headers: reqwest::header::HeaderMap::new(),
        body: bytes::Bytes::from(cut),
    }
    .json("graph");
    let list = list.expect("the page decodes");
    let ok = list
        .value
        .into_iter()
        .filter_map(|v| snapshot_from_value(v).ok())
        .count();
    assert!(ok >= 1, "at least the good incident comes through");
}
