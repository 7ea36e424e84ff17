//! Property tests over ServiceNow's payload parsing and query building: arbitrary
//! JSON and mutated real-shaped records (unknown states, missing fields, reference
//! objects where strings are, nulls, 100 KB strings, odd Unicode, HTML) through
//! `Record` and `wire::to_snapshot`, hostile `Link` headers through
//! `wire::next_link`, and hostile values through `wire::query_literal` and
//! `wire::correlation_id`, parsed back with the simulator's encoded-query parser:
//! a value is exactly one literal, or refused as documented.

use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::{Value, json};

use bridge_core::mapping::Mapping;
use bridge_core::model::Correlation;
use bridge_core::vocab::{SENTINEL_CLASSIFICATION, SENTINEL_STATUS};

use super::sim::encoded::{self, Condition, Op};
use super::wire::{
    Record, correlation_id, next_link, parse_correlation_id, query_literal, to_snapshot,
};
use crate::testkit::{any_json, hostile_text, mutate, mutation};

/// The Table API's field names, for generated objects.
const KEYS: &[&str] = &[
    "sys_id",
    "number",
    "short_description",
    "description",
    "state",
    "impact",
    "urgency",
    "close_code",
    "close_notes",
    "assigned_to",
    "assigned_to.email",
    "assignment_group",
    "correlation_id",
    "sys_created_on",
    "sys_updated_on",
    "link",
    "value",
    "display_value",
    "result",
];

const POINTERS: &[&str] = &[
    "/sys_id",
    "/number",
    "/short_description",
    "/description",
    "/state",
    "/impact",
    "/urgency",
    "/priority",
    "/close_code",
    "/close_notes",
    "/hold_reason",
    "/assigned_to",
    "/assigned_to.email",
    "/assigned_to.user_name",
    "/assignment_group",
    "/assignment_group/value",
    "/assignment_group/link",
    "/assignment_group.name",
    "/correlation_id",
    "/correlation_display",
    "/sys_created_on",
    "/sys_updated_on",
    "/sys_mod_count",
    "/u_custom_field",
];

/// An incident record as a list call returns it (raw values, references as
/// `{link, value}`).
fn record(sys_id: &str, number: &str) -> Value {
    json!({
        "sys_id": sys_id, "number": number,
        "short_description": "[Sentinel #8812] Suspicious sign-in", "description": "Microsoft Sentinel incident 8812",
        "state": "2", "impact": "2", "urgency": "2", "priority": "3",
        "close_code": "", "close_notes": "", "hold_reason": "",
        "assigned_to": "5137153cc611227c000bbd1bd8cd2005", "assigned_to.email": "ana@contoso.com", "assigned_to.user_name": "ana.ruiz",
        "assignment_group": {"link": "https://acme.service-now.com/api/now/table/sys_user_group/8a5055c9c61122780043563ef53438e3", "value": "8a5055c9c61122780043563ef53438e3"},
        "assignment_group.name": "Security Operations",
        "correlation_id": format!("itsm-bridge:sentinel-prod:3f9a1c2b7d4e:{number}"),
        "correlation_display": "itsm-bridge: sentinel-prod",
        "sys_created_on": "2025-05-02 08:00:31", "sys_updated_on": "2025-05-02 08:14:09", "sys_mod_count": "7"
    })
}

fn mutated_record() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(POINTERS), mutation(KEYS)), 0..6).prop_map(
        |mutations| {
            let mut value = record("9d385017c611228701d22104cc95c371", "INC0010042");
            for (pointer, m) in &mutations {
                mutate(&mut value, pointer, m);
            }
            value
        },
    )
}

/// The shipped Sentinel → ServiceNow mapping.
static SERVICENOW_MAPPING: LazyLock<Mapping> = LazyLock::new(|| {
    bridge_core::mapping::parse(
        std::path::Path::new("servicenow.toml"),
        include_str!("../../../mappings/servicenow.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
});

fn base() -> url::Url {
    url::Url::parse("https://acme.service-now.com/").unwrap()
}

/// Values built to break out of an encoded query, and arbitrary ones.
fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => hostile_text(),
        2 => prop::collection::vec(
            prop::sample::select(vec![
                "^", "^OR", "^NQ", "^ORDERBY", "^EQ", "=", "!=", "LIKE", "IN", "ISEMPTY", "&",
                "%5E", "+", "#", "javascript:", "JavaScript:", " ", "\n", "\u{0}", "\u{85}",
                "\u{2028}", "\u{FF3E}", "number", "active=true", "x", "é", "🚨",
            ]),
            0..10,
        )
        .prop_map(|parts| parts.concat()),
    ]
}

/// `sysparm_query` as the client sends it: through a URL's query string, and back.
fn through_url(query: &str) -> String {
    let mut url = base().join("api/now/table/incident").unwrap();
    url.query_pairs_mut()
        .append_pair("sysparm_query", query)
        .append_pair("sysparm_limit", "2");
    let sent = url.query_pairs().find(|(k, _)| k == "sysparm_query");
    sent.map(|(_, v)| v.into_owned()).unwrap_or_default()
}

fn eq(field: &str, value: &str) -> Condition {
    Condition {
        field: field.into(),
        op: Op::Eq,
        value: value.into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn servicenow_any_json_converts_or_is_refused(value in any_json(KEYS)) {
        if let Ok(record) = serde_json::from_value::<Record>(value) {
            let _ = to_snapshot(&record, &base());
        }
    }

    /// A real record with fields removed, nulled, retyped or replaced: never a
    /// panic; an unknown state survives as it came, and the shipped mapping maps it
    /// to a Sentinel status or leaves it alone, and any close code to a
    /// classification (its default when unknown).
    #[test]
    fn servicenow_mutated_records_keep_what_they_can(value in mutated_record()) {
        let Ok(record) = serde_json::from_value::<Record>(value.clone()) else {
            return Ok(());
        };
        match to_snapshot(&record, &base()) {
            Ok(snapshot) => {
                if let Some(state) = value["state"].as_str().filter(|s| !s.is_empty()) {
                    prop_assert_eq!(snapshot.attrs.get("status").map(String::as_str), Some(state));
                }
                if let Some(summary) = value["short_description"].as_str().filter(|s| !s.is_empty()) {
                    prop_assert_eq!(snapshot.attrs.get("summary").map(String::as_str), Some(summary));
                }
                for rule in &SERVICENOW_MAPPING.fields {
                    let ticket_value = snapshot.attrs.get(&rule.ticket).map(String::as_str);
                    let back = rule.map_to_incident(ticket_value);
                    match rule.name.as_str() {
                        "status" => prop_assert!(back.as_deref().is_none_or(|v| SENTINEL_STATUS.contains(&v)), "{back:?}"),
                        "classification" if ticket_value.is_some() => {
                            prop_assert!(back.as_deref().is_some_and(|v| SENTINEL_CLASSIFICATION.contains(&v)), "{back:?}");
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    /// A literal the connector accepts is exactly one condition value in every
    /// query it builds with one; anything else is refused for a documented reason.
    #[test]
    fn servicenow_query_literals_are_exactly_one_value(value in hostile_value()) {
        match query_literal(&value) {
            Ok(literal) => {
                prop_assert_eq!(literal, value.as_str());
                // `fetch`: the incident with a number.
                let query = encoded::parse(&through_url(&format!("number={literal}")));
                prop_assert_eq!(query.groups, vec![vec![vec![eq("number", &value)]]]);
                prop_assert!(query.order.is_empty());
                // `journal`: the notes of one incident.
                let query = encoded::parse(&through_url(&format!(
                    "name=incident^element_id={literal}^elementINwork_notes,comments^ORDERBYsys_created_on"
                )));
                prop_assert_eq!(query.groups.len(), 1);
                prop_assert_eq!(query.groups[0].len(), 3);
                prop_assert_eq!(&query.groups[0][1], &vec![eq("element_id", &value)]);
                prop_assert_eq!(query.order, vec![("sys_created_on".to_string(), false)]);
                // `group_sys_id`: a group by name.
                let query = encoded::parse(&through_url(&format!("nameLIKE{literal}")));
                let like = Condition { field: "name".into(), op: Op::Like, value: value.clone() };
                prop_assert_eq!(query.groups, vec![vec![vec![like]]]);
                // `user_sys_id`: alternatives, in both spellings, and nothing else.
                let lower = literal.to_lowercase();
                let query = encoded::parse(&through_url(&format!(
                    "email={literal}^ORuser_name={literal}^ORemail={lower}^ORuser_name={lower}"
                )));
                let alternatives = vec![eq("email", &value), eq("user_name", &value), eq("email", &lower), eq("user_name", &lower)];
                prop_assert_eq!(query.groups, vec![vec![alternatives]]);
            }
            Err(reason) => {
                let refused = value.contains('^')
                    || value.chars().any(char::is_control)
                    || value.get(..11).is_some_and(|p| p.eq_ignore_ascii_case("javascript:"))
                    || value.trim() != value;
                prop_assert!(refused, "refused without a documented reason: {reason}");
                prop_assert!(reason.contains("cannot be used in a ServiceNow query"));
            }
        }
    }

    /// A correlation id is never refused as a query literal, adopts exactly its own
    /// value, and reads back as the correlation it was made from.
    #[test]
    fn servicenow_correlation_ids_are_safe_literals(
        source in prop::sample::select(vec!["sentinel-prod", "defender", "s_1"]),
        scope in prop_oneof![Just(String::new()), hostile_text()],
        incident_id in prop_oneof![hostile_value(), hostile_text()],
    ) {
        let correlation = Correlation::new(source, &incident_id).with_scope(&scope);
        match correlation_id(&correlation) {
            Ok(id) => {
                let literal = query_literal(&id).map_err(TestCaseError::fail)?;
                let query = encoded::parse(&through_url(&format!(
                    "correlation_id={literal}^ORDERBYsys_created_on^ORDERBYnumber"
                )));
                prop_assert_eq!(query.groups, vec![vec![vec![eq("correlation_id", &id)]]]);
                let back = parse_correlation_id(&id).expect("the id parses");
                prop_assert_eq!(back.source.as_str(), source);
                prop_assert_eq!(back.incident_id, incident_id);
            }
            Err(e) => prop_assert!(incident_id.is_empty() || e.contains("more than ServiceNow's 100"), "{e}"),
        }
    }

    /// Whatever a `Link` header holds, reading it never panics, and a `next` link
    /// is exactly what stood between `<` and `>`.
    #[test]
    fn servicenow_link_headers_never_panic(value in prop_oneof![
        hostile_text(),
        (hostile_text(), hostile_text()).prop_map(|(a, b)| format!("<{a}>;rel=\"next\",<{b}>;rel=\"last\"")),
    ]) {
        if let Some(next) = next_link(&value) {
            prop_assert!(!next.contains('>'));
            let target = format!("<{next}>");
            prop_assert!(value.contains(&target));
        }
    }
}

#[test]
fn servicenow_unknown_states_and_close_codes_get_the_documented_fallbacks() {
    let mut value = record("9d385017c611228701d22104cc95c371", "INC0010042");
    value["state"] = "42".into();
    value["close_code"] = "Closed by a robot".into();
    value["short_description"] = "<b>bold</b> \u{200B}\u{202E}".into();
    let record: Record = serde_json::from_value(value).unwrap();
    let snapshot = to_snapshot(&record, &base()).unwrap();
    assert_eq!(snapshot.attrs["status"], "42");
    assert_eq!(snapshot.attrs["summary"], "<b>bold</b> \u{200B}\u{202E}");
    let rule = |name: &str| {
        SERVICENOW_MAPPING
            .fields
            .iter()
            .find(|f| f.name == name)
            .unwrap()
    };
    assert_eq!(rule("status").map_to_incident(Some("42")), None);
    assert_eq!(
        rule("classification")
            .map_to_incident(Some("Closed by a robot"))
            .as_deref(),
        Some("TruePositive")
    );
    assert_eq!(
        rule("classification_reason")
            .map_to_incident(Some("Closed by a robot"))
            .as_deref(),
        Some("SuspiciousActivity")
    );
}

/// A list page holding one of the bridge's incidents that does not convert (a
/// `sys_updated_on` the instance's date format turned into `05/02/2025`): the other
/// incidents should still come through.
#[tokio::test]
async fn servicenow_one_bad_record_does_not_hide_the_rest_of_its_page() {
    use std::time::Duration;

    use bridge_core::ports::TicketSystem;
    use secrecy::SecretString;

    use super::client::{ServiceNowTickets, servicenow_api};
    use super::sim::ServiceNowSim;
    use crate::http::{HttpSettings, RetryPolicy, build_client};
    use crate::simkit::{Fault, bind_loopback};

    let sim = ServiceNowSim::start(bind_loopback(0).await.unwrap()).await;
    sim.set_credentials("bridge", "snow-password");
    let api = servicenow_api(
        &sim.base_url(),
        build_client(&HttpSettings::default()).unwrap(),
        "bridge",
        SecretString::from("snow-password"),
    )
    .unwrap()
    .with_retry(RetryPolicy {
        base_delay: Duration::from_millis(5),
        ..RetryPolicy::default()
    });
    let snow = ServiceNowTickets::new(api);
    let mut bad = record("22222222222222222222222222222222", "INC0000002");
    bad["sys_updated_on"] = "05/02/2025 08:14:09".into();
    let good = |n: u32| record(&format!("{n:032x}"), &format!("INC{n:07}"));
    sim.kit.inject(Fault {
        method: Some(reqwest::Method::GET),
        path_contains: "/api/now/table/incident".into(),
        times: 1,
        status: 200,
        retry_after: None,
        body: json!({"result": [good(1), bad, good(3)]}).to_string(),
    });
    let page = snow
        .changed_since(chrono::Utc::now())
        .await
        .expect("the page is read");
    let keys: Vec<_> = page.items.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(keys, ["INC0000001", "INC0000003"]);
}
