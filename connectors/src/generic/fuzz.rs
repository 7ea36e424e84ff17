//! Property tests over the generic connector's payload parsing and URL building,
//! with the `[api]` of the shipped `mappings/generic.toml`: arbitrary JSON and
//! mutated real-shaped tickets (unknown statuses, missing fields, objects where
//! values are, nulls, 100 KB strings, odd Unicode, HTML) through
//! `convert::to_snapshot`; hostile keys and correlation values through the URL
//! templates (always one path segment or one query value); hostile next links
//! through `resolve_next` and the host check.

use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::{Value, json};

use bridge_core::mapping::{GenericApi, Mapping, Placeholder};
use bridge_core::model::Correlation;
use bridge_core::vocab::SENTINEL_STATUS;

use super::convert::{
    correlation_value, link_header_next, parse_correlation_value, resolve_next, scope_tag,
    to_snapshot,
};
use crate::http::{Api, Auth, HttpSettings, build_client};
use crate::testkit::{ODD, any_json, hostile_text, mutate, mutation};

const KEYS: &[&str] = &[
    "id",
    "key",
    "summary",
    "description",
    "status",
    "priority",
    "resolution",
    "assignee",
    "external_id",
    "labels",
    "created_at",
    "updated_at",
    "web_url",
    "comments",
    "body",
    "author",
    "items",
    "next",
];

const POINTERS: &[&str] = &[
    "/id",
    "/key",
    "/summary",
    "/description",
    "/status",
    "/priority",
    "/resolution",
    "/assignee",
    "/external_id",
    "/labels",
    "/labels/0",
    "/created_at",
    "/updated_at",
    "/web_url",
    "/comments",
    "/comments/0",
    "/comments/0/id",
    "/comments/0/body",
    "/comments/0/author",
    "/comments/0/created_at",
    "/custom_fields",
];

/// The shipped Sentinel → generic mapping.
static MAPPING: LazyLock<Mapping> = LazyLock::new(|| {
    bridge_core::mapping::parse(
        std::path::Path::new("generic.toml"),
        include_str!("../../../mappings/generic.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
});

fn spec() -> &'static GenericApi {
    MAPPING.api.as_ref().expect("a generic mapping has [api]")
}

const BASE: &str = "http://127.0.0.1:8080/helpdesk";

/// The API the client would talk to (no request is made).
static API: LazyLock<Api> = LazyLock::new(|| {
    super::generic_api(
        "helpdesk",
        BASE,
        build_client(&HttpSettings::default()).unwrap(),
        Auth::None,
    )
    .unwrap()
});

/// A ticket as the generic simulator returns it.
fn ticket(n: u32) -> Value {
    json!({
        "id": n, "key": format!("HD-{n}"), "summary": "[Sentinel #8812] Suspicious sign-in",
        "description": "", "status": "open", "priority": "high", "resolution": null,
        "assignee": "ana@contoso.example",
        "external_id": format!("sentinel-prod:3f9a1c2b7d4e:6f0c2b8e-{n}"), "labels": ["itsm-bridge", "sentinel"],
        "created_at": "2026-11-01T08:00:00.000Z", "updated_at": "2026-11-01T09:00:00.5+01:00",
        "web_url": format!("http://127.0.0.1:8080/helpdesk/tickets/HD-{n}"),
        "comments": [{"id": 3, "author": "Ana", "body": "hi", "created_at": "2026-11-01T08:30:00Z"}]
    })
}

fn mutated_ticket() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(POINTERS), mutation(KEYS)), 0..6).prop_map(
        |mutations| {
            let mut value = ticket(42);
            for (pointer, m) in &mutations {
                mutate(&mut value, pointer, m);
            }
            value
        },
    )
}

/// Values built to escape a path segment or a query value, and arbitrary ones.
fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => hostile_text(),
        2 => prop::collection::vec(
            prop::sample::select(vec![
                "/", "..", ".", "?", "#", "&", "=", "%", "%2F", "%00", "+", " ", "\\", "@", ":",
                "external_id=", "&external_id=x", "/../admin", "\n", "é", "🚨",
            ]),
            0..10,
        )
        .prop_map(|parts| parts.concat()),
    ]
}

/// Next links built to leave the configured host, and plain ones.
fn hostile_link() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "",
            "?cursor=",
            "/helpdesk/api/tickets?cursor=",
            "http://127.0.0.1:8080/helpdesk/api/tickets?cursor=",
            "http://evil.example/",
            "//evil.example/",
            "///evil.example/",
            "http://127.0.0.1:8080@evil.example/",
            "http://evil.example#@127.0.0.1:8080/",
            "http://evil.example\\@127.0.0.1:8080/",
            "http://127.0.0.1:8080\\@evil.example/",
            "http://127.0.0.1:8080.evil.example/",
            "https://127.0.0.1:8080/",
            "http://127.0.0.1:80/",
            "http://127.0.0.1:08080/",
            "HTTP://127.0.0.1:8080/",
            "http://[::1]:8080/",
            "http://0x7f.1:8080/",
            "http:\\\\evil.example\\",
            "\\\\evil.example\\",
            "/\\evil.example/",
            "javascript:alert(1)//",
            "data:text/html,",
            "file:///etc/passwd#",
            "http://xn--80ak6aa92e.com/",
        ]),
        prop_oneof![Just(String::new()), hostile_text()],
    )
        .prop_map(|(prefix, rest)| format!("{prefix}{rest}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generic_any_json_converts_or_is_refused(value in any_json(KEYS)) {
        let base = API.base().clone();
        if let Err(e) = to_snapshot(spec(), &base, &value) {
            prop_assert!(!e.is_empty());
        }
    }

    /// A real ticket with fields removed, nulled, retyped or replaced: never a
    /// panic; an unknown status survives as it came, and the shipped mapping brings
    /// any status back as a Sentinel status (its documented default when unknown).
    #[test]
    fn generic_mutated_tickets_keep_what_they_can(value in mutated_ticket()) {
        let base = API.base().clone();
        match to_snapshot(spec(), &base, &value) {
            Ok(snapshot) => {
                if let Some(status) = value["status"].as_str().filter(|s| !s.is_empty()) {
                    prop_assert_eq!(snapshot.attrs.get("status").map(String::as_str), Some(status));
                }
                if let Some(summary) = value["summary"].as_str().filter(|s| !s.is_empty()) {
                    prop_assert_eq!(snapshot.attrs.get("summary").map(String::as_str), Some(summary));
                }
                let status = MAPPING.fields.iter().find(|f| f.name == "status").unwrap();
                if let Some(value) = snapshot.attrs.get("status") {
                    let back = status.map_to_incident(Some(value));
                    prop_assert!(back.as_deref().is_some_and(|v| SENTINEL_STATUS.contains(&v)), "{back:?}");
                }
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    /// A list response with one of the bridge's tickets that does not convert: the
    /// items decode one by one, so every other ticket converts on its own.
    #[test]
    fn generic_one_bad_item_converts_apart_from_the_rest(
        good in prop::collection::vec(0u32..1_000_000, 1..6)
            .prop_map(|ids| { let mut ids = ids; ids.sort_unstable(); ids.dedup(); ids }),
        bad in prop_oneof![
            Just(Value::Null),
            Just(json!(17)),
            Just({ let mut t = ticket(7_000_001); t["updated_at"] = "yesterday".into(); t }),
            Just({ let mut t = ticket(7_000_002); t["assignee"] = json!({"name": "Ana"}); t }),
            Just({ let mut t = ticket(7_000_003); t.as_object_mut().unwrap().remove("id"); t }),
        ],
        at in any::<prop::sample::Index>(),
        title in hostile_text(),
    ) {
        let mut items: Vec<Value> = good.iter().map(|n| {
            let mut t = ticket(*n);
            t["summary"] = title.clone().into();
            t
        }).collect();
        items.insert(at.index(items.len() + 1), bad);
        let body: Value = serde_json::from_str(&json!({"items": items, "next": null}).to_string()).unwrap();
        let Some(Value::Array(items)) = spec().items.get(&body) else {
            return Err(TestCaseError::fail("no items"));
        };
        let base = API.base().clone();
        let ok: Vec<String> = items.iter().filter_map(|i| to_snapshot(spec(), &base, i).ok()).map(|s| s.key).collect();
        let expected: Vec<String> = good.iter().map(|n| format!("HD-{n}")).collect();
        prop_assert_eq!(ok, expected);
    }

    /// `{correlation}` is one query value and `{key}` one path segment, whatever
    /// they hold; an empty, `.` or `..` key is refused.
    #[test]
    fn generic_url_values_stay_one_value(value in hostile_value()) {
        let find = spec().find.path.render(&[(Placeholder::Correlation, &value)]).map_err(TestCaseError::fail)?;
        let url = API.url(&find);
        prop_assert_eq!(url.host_str(), Some("127.0.0.1"));
        prop_assert_eq!(url.path(), "/helpdesk/api/tickets");
        let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        prop_assert_eq!(pairs, vec![("external_id".to_string(), value.clone())]);
        prop_assert!(url.fragment().is_none());

        match spec().get.path.render(&[(Placeholder::Key, &value), (Placeholder::Id, &value)]) {
            Ok(get) => {
                let url = API.url(&get);
                prop_assert_eq!(url.host_str(), Some("127.0.0.1"));
                let segments: Vec<&str> = url.path_segments().unwrap().collect();
                prop_assert_eq!(segments.len(), 4, "{}", url);
                prop_assert_eq!(&segments[..3], &["helpdesk", "api", "tickets"][..]);
                let decoded = percent_decode(segments[3]);
                prop_assert_eq!(decoded, value);
                prop_assert!(url.query().is_none() && url.fragment().is_none());
            }
            Err(e) => prop_assert!(matches!(value.as_str(), "" | "." | ".."), "{e}"),
        }
    }

    /// A next link is followed only to the configured scheme, host and port.
    #[test]
    fn generic_next_links_never_leave_the_host(link in hostile_link()) {
        let request = API.url("api/tickets?updated_since=2026-11-01T00:00:00Z&limit=100");
        if let Ok(Some(next)) = resolve_next(&request, &link)
            && let Ok(url) = API.next_link(next.as_str())
        {
            prop_assert_eq!(url.scheme(), "http");
            prop_assert_eq!(url.host_str(), Some("127.0.0.1"));
            prop_assert_eq!(url.port_or_known_default(), Some(8080));
        }
        let _ = link_header_next(&format!("<{link}>; rel=\"next\""));
        let _ = link_header_next(&link);
    }

    /// The correlation value reads back as the correlation it was made from,
    /// whatever the incident id holds (`:` included).
    #[test]
    fn generic_correlation_values_round_trip(
        source in prop::sample::select(vec!["sentinel-prod", "defender"]),
        scope in prop_oneof![Just(String::new()), hostile_text()],
        incident_id in prop_oneof![hostile_value(), prop::sample::select(ODD).prop_map(|s| format!("{s}:x:y"))],
    ) {
        let correlation = Correlation::new(source, &incident_id).with_scope(&scope);
        match correlation_value(&correlation) {
            Ok(value) => {
                let back = parse_correlation_value(&value).expect("the value parses");
                prop_assert_eq!(back.source.as_str(), source);
                prop_assert_eq!(back.scope, scope_tag(&scope));
                prop_assert_eq!(back.incident_id, incident_id);
            }
            Err(e) => prop_assert!(incident_id.is_empty(), "{e}"),
        }
    }
}

/// `%XX` escapes to bytes, as a server reads a path segment.
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = segment
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8 in, UTF-8 out")
}

#[test]
fn generic_unknown_statuses_get_the_documented_fallback() {
    let mut value = ticket(1);
    value["status"] = "on_hold".into();
    value["summary"] = "<script>alert(1)</script>\u{202E}".into();
    let snapshot = to_snapshot(spec(), API.base(), &value).unwrap();
    assert_eq!(snapshot.attrs["status"], "on_hold");
    assert_eq!(
        snapshot.attrs["summary"],
        "<script>alert(1)</script>\u{202E}"
    );
    let status = MAPPING.fields.iter().find(|f| f.name == "status").unwrap();
    assert_eq!(
        status.map_to_incident(Some("on_hold")).as_deref(),
        Some("Active"),
        "to_incident_default"
    );
}

/// A search page holding one of the bridge's tickets that does not convert: the
/// other tickets should still come through.
#[tokio::test]
async fn generic_one_bad_ticket_does_not_hide_the_rest_of_its_page() {
    use bridge_core::ports::TicketSystem;
    use secrecy::SecretString;

    use super::{GenericSim, GenericTickets};
    use crate::simkit::{Fault, bind_loopback};

    let sim = GenericSim::start(bind_loopback(0).await.unwrap()).await;
    sim.set_basic_auth("bridge", "helpdesk-password");
    let api = super::generic_api(
        "helpdesk",
        &sim.base_url(),
        build_client(&HttpSettings::default()).unwrap(),
        Auth::Basic {
            username: "bridge".into(),
            password: SecretString::from("helpdesk-password"),
        },
    )
    .unwrap();
    let tickets = GenericTickets::new(api, spec().clone());
    let mut bad = ticket(2);
    bad["updated_at"] = "02/11/2026 09:00".into();
    sim.kit.inject(Fault {
        method: Some(reqwest::Method::GET),
        path_contains: "/api/tickets".into(),
        times: 1,
        status: 200,
        retry_after: None,
        body: json!({"items": [ticket(1), bad, ticket(3)], "next": null}).to_string(),
    });
    let page = tickets
        .changed_since(chrono::Utc::now())
        .await
        .expect("the page is read");
    let keys: Vec<_> = page.items.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(keys, ["HD-1", "HD-3"]);
}
