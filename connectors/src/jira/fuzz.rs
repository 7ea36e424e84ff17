//! Property tests over Jira's payload parsing and query building: arbitrary JSON and
//! mutated real-shaped issues (unknown status categories, missing fields, nulls and
//! wrong types, 100 KB strings, odd Unicode, HTML) through `IssueBean` and
//! `wire::to_snapshot`, ADF documents through `adf::adf_to_text`, and hostile values
//! through `client::jql_string` / `correlation_jql`, parsed back with the
//! simulator's JQL parser: a value is always exactly one literal.

use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::{Value, json};

use bridge_core::mapping::Mapping;
use bridge_core::model::Correlation;
use bridge_core::vocab::GRAPH_CLASSIFICATION;

use super::adf::{adf_to_text, text_to_adf};
use super::client::{changed_since_jql, correlation_jql, jql_string};
use super::sim::jql::{self, Expr, Op, Tok};
use super::wire::{IssueBean, correlation_label, parse_correlation_label, to_snapshot};
use crate::testkit::{ODD, any_json, hostile_text, mutate, mutation};

/// Jira's field names, for generated objects.
const KEYS: &[&str] = &[
    "id",
    "key",
    "fields",
    "summary",
    "description",
    "status",
    "name",
    "statusCategory",
    "priority",
    "resolution",
    "assignee",
    "accountId",
    "emailAddress",
    "labels",
    "created",
    "updated",
    "comment",
    "comments",
    "body",
    "type",
    "content",
    "text",
    "attrs",
    "version",
];

/// Places in an issue a mutation may hit.
const POINTERS: &[&str] = &[
    "/id",
    "/key",
    "/self",
    "/fields",
    "/fields/summary",
    "/fields/description",
    "/fields/description/content",
    "/fields/description/content/0",
    "/fields/description/content/0/content/0/text",
    "/fields/status",
    "/fields/status/name",
    "/fields/status/statusCategory",
    "/fields/status/statusCategory/key",
    "/fields/priority",
    "/fields/priority/name",
    "/fields/resolution",
    "/fields/resolution/name",
    "/fields/assignee",
    "/fields/assignee/emailAddress",
    "/fields/assignee/accountId",
    "/fields/labels",
    "/fields/labels/1",
    "/fields/created",
    "/fields/updated",
    "/fields/comment",
    "/fields/comment/comments",
    "/fields/comment/comments/0",
    "/fields/comment/comments/0/body",
    "/fields/comment/comments/0/created",
    "/fields/comment/comments/0/author",
    "/fields/customfield_10042",
];

/// An issue as `/search/jql` returns it.
fn issue(key: &str) -> Value {
    json!({
        "id": "10431", "key": key, "self": "https://acme.atlassian.net/rest/api/3/issue/10431",
        "fields": {
            "summary": "Suspicious sign-in",
            "description": {"type": "doc", "version": 1, "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "line 1"}]}]},
            "status": {"id": "3", "name": "In Review", "statusCategory": {"id": 4, "key": "indeterminate", "name": "In Progress"}},
            "priority": {"id": "2", "name": "High"},
            "resolution": null,
            "assignee": {"accountId": "5b10a2844c20165700ede21g", "displayName": "Ann", "emailAddress": "ann@acme.example"},
            "labels": ["itsm-bridge", format!("itsm-bridge:defender:{key}")],
            "created": "2023-06-24T19:24:50.000+0000",
            "updated": "2023-06-25T08:00:01.250+0200",
            "comment": {"startAt": 0, "maxResults": 1, "total": 1, "comments": [
                {"id": "100", "author": {"accountId": "a1", "displayName": "Bob"},
                 "body": {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "hi"}]}]},
                 "created": "2023-06-24T20:00:00.000+0000"}]}
        }
    })
}

fn mutated_issue() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(POINTERS), mutation(KEYS)), 0..6).prop_map(
        |mutations| {
            let mut value = issue("SEC-1042");
            for (pointer, m) in &mutations {
                mutate(&mut value, pointer, m);
            }
            value
        },
    )
}

/// The shipped Graph → Jira mapping.
static JIRA_MAPPING: LazyLock<Mapping> = LazyLock::new(|| {
    bridge_core::mapping::parse(
        std::path::Path::new("jira.toml"),
        include_str!("../../../mappings/jira.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
});

fn base() -> url::Url {
    url::Url::parse("https://acme.atlassian.net/").unwrap()
}

/// Values built to break out of a quoted JQL string, and arbitrary ones.
fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => hostile_text(),
        2 => prop::collection::vec(
            prop::sample::select(vec![
                "\"", "'", "\\", "\\\"", "\\'", "\\u0022", "\n", "\r", "\t", "\u{0}", "\u{1f}",
                "\u{7f}", "\u{85}", "\u{2028}", " OR ", " AND ", "project != SEC", "ORDER BY key",
                ")", "(", ",", "=", "~", "!=", "labels", "x", "é", "🚨",
            ]),
            0..12,
        )
        .prop_map(|parts| parts.concat()),
    ]
}

/// The one clause `field = value` of a query, if that is all it is.
fn only_clause(expr: &Expr) -> Option<(&str, &[String])> {
    match expr {
        Expr::Clause {
            field,
            op: Op::Eq,
            values,
        } => Some((field, values)),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn jira_any_json_converts_or_is_refused(value in any_json(KEYS)) {
        let _ = adf_to_text(&value);
        if let Ok(bean) = serde_json::from_value::<IssueBean>(value) {
            let _ = to_snapshot(&bean, &base());
        }
    }

    /// A real issue with fields removed, nulled, retyped or replaced: it decodes and
    /// converts or is refused, never a panic; an unknown status category survives as
    /// it came, and the shipped mapping maps it to a status Graph accepts or leaves it.
    #[test]
    fn jira_mutated_issues_keep_what_they_can(value in mutated_issue()) {
        let Ok(bean) = serde_json::from_value::<IssueBean>(value.clone()) else {
            return Ok(());
        };
        match to_snapshot(&bean, &base()) {
            Ok(snapshot) => {
                if let Some(key) = value["fields"]["status"]["statusCategory"]["key"].as_str() {
                    prop_assert_eq!(snapshot.attrs.get("status").map(String::as_str), Some(key));
                }
                if let Some(summary) = value["fields"]["summary"].as_str() {
                    prop_assert_eq!(snapshot.attrs.get("summary").map(String::as_str), Some(summary));
                }
                for rule in &JIRA_MAPPING.fields {
                    let back = rule.map_to_incident(snapshot.attrs.get(&rule.ticket).map(String::as_str));
                    match rule.name.as_str() {
                        "status" => prop_assert!(back.as_deref().is_none_or(|v| ["active", "inProgress", "resolved"].contains(&v)), "{back:?}"),
                        "classification" => prop_assert!(back.as_deref().is_none_or(|v| GRAPH_CLASSIFICATION.contains(&v)), "{back:?}"),
                        _ => {}
                    }
                }
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    /// Plain text survives the ADF round trip exactly, whatever it holds.
    #[test]
    fn jira_text_survives_adf(text in hostile_text()) {
        prop_assert_eq!(adf_to_text(&text_to_adf(&text)), text);
    }

    /// A JQL string literal is one token that decodes back to the value: nothing in
    /// the value can end the string or add a clause.
    #[test]
    fn jira_jql_strings_are_exactly_one_literal(value in hostile_value()) {
        let literal = jql_string(&value);
        prop_assert_eq!(jql::tokenize(&literal), Ok(vec![Tok::Str(value.clone())]));
        let query = jql::parse(&format!("labels = {literal} ORDER BY key ASC"));
        let query = query.map_err(TestCaseError::fail)?;
        let clause = query.filter.as_ref().and_then(only_clause);
        prop_assert_eq!(clause, Some(("labels", &[value][..])));
        prop_assert_eq!(query.order, vec![("key".to_string(), false)]);
    }

    /// The adoption query keeps a hostile project key and label as two literals.
    #[test]
    fn jira_correlation_jql_holds_two_literals(project in hostile_value(), label in hostile_value()) {
        let query = jql::parse(&correlation_jql(&project, &label)).map_err(TestCaseError::fail)?;
        let Some(Expr::And(left, right)) = &query.filter else {
            return Err(TestCaseError::fail(format!("not one AND: {:?}", query.filter)));
        };
        prop_assert_eq!(only_clause(left), Some(("project", &[project][..])));
        prop_assert_eq!(only_clause(right), Some(("labels", &[label][..])));
        prop_assert_eq!(query.order, vec![("key".to_string(), false)]);
    }

    /// The polling query too, with a hostile project key.
    #[test]
    fn jira_changed_since_jql_holds_its_literals(project in hostile_value()) {
        let since = chrono::DateTime::parse_from_rfc3339("2026-11-01T08:00:59Z").unwrap().with_timezone(&chrono::Utc);
        let query = jql::parse(&changed_since_jql(&project, since)).map_err(TestCaseError::fail)?;
        let Some(Expr::And(rest, updated)) = &query.filter else {
            return Err(TestCaseError::fail(format!("not an AND: {:?}", query.filter)));
        };
        let Expr::And(left, right) = rest.as_ref() else {
            return Err(TestCaseError::fail(format!("not an AND: {rest:?}")));
        };
        prop_assert_eq!(only_clause(left), Some(("project", &[project][..])));
        prop_assert_eq!(only_clause(right), Some(("labels", &["itsm-bridge".to_string()][..])));
        let Expr::Clause { field, op: Op::Ge, values } = updated.as_ref() else {
            return Err(TestCaseError::fail(format!("not updated >=: {updated:?}")));
        };
        prop_assert_eq!((field.as_str(), &values[..]), ("updated", &["2026-11-01 08:00".to_string()][..]));
    }

    /// A correlation label reads back as the correlation it was made from, or the
    /// incident id is refused (whitespace, too long): an id cannot pose as a source.
    #[test]
    fn jira_correlation_labels_round_trip(
        source in prop::sample::select(vec!["defender", "sentinel-prod", "s_1"]),
        incident_id in prop_oneof![hostile_text(), prop::sample::select(ODD).prop_map(|s| format!("{s}:itsm-bridge:x"))],
    ) {
        let correlation = Correlation::new(source, &incident_id);
        match correlation_label(&correlation) {
            Ok(label) => {
                let back = parse_correlation_label(&label).expect("the label parses");
                prop_assert_eq!(back.source.as_str(), source);
                prop_assert_eq!(back.incident_id, incident_id);
            }
            Err(e) => {
                let too_long = format!("itsm-bridge:{source}:{incident_id}").chars().count() > 255;
                prop_assert!(incident_id.is_empty() || incident_id.chars().any(char::is_whitespace) || too_long, "{e}");
            }
        }
    }
}

#[test]
fn jira_unknown_status_categories_and_resolutions_get_the_documented_fallbacks() {
    let mut value = issue("SEC-1");
    value["fields"]["status"]["statusCategory"]["key"] = "undefined".into();
    value["fields"]["resolution"] = json!({"id": "10", "name": "Cannot Reproduce"});
    value["fields"]["summary"] = "<img src=x onerror=alert(1)> \u{202E}".into();
    let bean: IssueBean = serde_json::from_value(value).unwrap();
    let snapshot = to_snapshot(&bean, &base()).unwrap();
    assert_eq!(snapshot.attrs["status"], "undefined");
    assert_eq!(
        snapshot.attrs["summary"],
        "<img src=x onerror=alert(1)> \u{202E}"
    );
    let rule = |name: &str| JIRA_MAPPING.fields.iter().find(|f| f.name == name).unwrap();
    assert_eq!(rule("status").map_to_incident(Some("undefined")), None);
    assert_eq!(
        rule("classification")
            .map_to_incident(Some("Cannot Reproduce"))
            .as_deref(),
        Some("unknown"),
        "to_incident_default"
    );
}

/// A search page holding one of the bridge's issues that does not convert (here:
/// an assignee without `accountId`, as for a deleted user): the other issues should
/// still come through and the bad one be reported on its own.
#[tokio::test]
async fn jira_one_bad_issue_does_not_hide_the_rest_of_its_page() {
    use std::time::Duration;

    use bridge_core::ports::TicketSystem;
    use secrecy::SecretString;

    use super::JiraTickets;
    use super::sim::{JiraSim, Workflow};
    use crate::http::{Api, Auth, HttpSettings, RetryPolicy, build_client};
    use crate::simkit::{Fault, bind_loopback};

    let sim = JiraSim::start(bind_loopback(0).await.unwrap()).await;
    sim.set_credentials("bridge@acme.example", "token");
    sim.add_user("bridge@acme.example", "ITSM Bridge");
    sim.add_project("SEC", Workflow::standard());
    let api = Api::new(
        "jira",
        &sim.base_url(),
        build_client(&HttpSettings::default()).unwrap(),
        Auth::Basic {
            username: "bridge@acme.example".into(),
            password: SecretString::from("token"),
        },
        super::error_message,
    )
    .unwrap()
    .with_retry(RetryPolicy {
        base_delay: Duration::from_millis(5),
        ..RetryPolicy::default()
    });
    let jira = JiraTickets::new(api, "SEC".into(), "Task".into());
    let mut bad = issue("SEC-2");
    bad["fields"]["assignee"] = json!({"displayName": "Former employee"});
    let mut no_key = issue("SEC-3");
    no_key.as_object_mut().unwrap().remove("key");
    for bad in [bad, no_key] {
        sim.kit.inject(Fault {
            method: Some(reqwest::Method::POST),
            path_contains: "/search/jql".into(),
            times: 1,
            status: 200,
            retry_after: None,
            body: json!({"issues": [issue("SEC-1"), bad, issue("SEC-4")], "isLast": true})
                .to_string(),
        });
        let page = jira
            .changed_since(chrono::Utc::now())
            .await
            .expect("the page is read");
        let keys: Vec<_> = page.items.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["SEC-1", "SEC-4"]);
    }
}
