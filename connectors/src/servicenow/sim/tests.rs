//! The ServiceNow simulator's tests: each enforced behaviour of SIMULATORS.md, driven over
//! HTTP against a running `ServiceNowSim`.

use super::encoded::{Op, parse};
use super::*;
use crate::simkit::bind_loopback;

const USER: &str = "bridge";
const PASSWORD: &str = "snow-password";

async fn start() -> ServiceNowSim {
    let sim = ServiceNowSim::start(bind_loopback(0).await.unwrap()).await;
    sim.set_credentials(USER, PASSWORD);
    sim
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn call(sim: &ServiceNowSim, method: Method, path: &str, body: Option<Value>) -> Answer {
    let client = crate::http::build_client(&crate::http::HttpSettings::default()).unwrap();
    let mut request = client
        .request(method, format!("{}{path}", sim.base_url()))
        .basic_auth(USER, Some(PASSWORD));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

fn q(query: &str) -> String {
    url::form_urlencoded::byte_serialize(query.as_bytes()).collect()
}

fn numbers(body: &Value) -> Vec<String> {
    body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["number"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn encoded_queries_parse_into_groups_alternatives_and_order() {
    let query = parse(
        "active=true^stateIN1,2^ORpriority<=2^NQshort_descriptionLIKEvpn^ORDERBYsys_updated_on^ORDERBYDESCnumber",
    );
    assert_eq!(query.groups.len(), 2);
    assert_eq!(query.groups[0].len(), 2);
    assert_eq!(query.groups[0][1].len(), 2);
    assert_eq!(query.groups[0][1][0].op, Op::In);
    assert_eq!(query.groups[0][1][1].field, "priority");
    assert_eq!(query.groups[0][1][1].op, Op::Le);
    assert_eq!(query.groups[1][0][0].value, "vpn");
    assert_eq!(
        query.order,
        vec![
            ("sys_updated_on".to_string(), false),
            ("number".to_string(), true)
        ]
    );
    let c = encoded::condition("correlation_idSTARTSWITHitsm-bridge:").unwrap();
    assert_eq!(
        (c.field.as_str(), c.op, c.value.as_str()),
        ("correlation_id", Op::StartsWith, "itsm-bridge:")
    );
    let c = encoded::condition("sys_updated_on>=2025-05-02 08:00:00").unwrap();
    assert_eq!((c.op, c.value.as_str()), (Op::Ge, "2025-05-02 08:00:00"));
    assert_eq!(encoded::condition("=x"), None);
    assert_eq!(encoded::condition("fieldWHATEVERx"), None);
    // `^` always separates: a value cannot hold one.
    let query = parse("correlation_id=a^NQsys_id!=0");
    assert_eq!(query.groups.len(), 2);
    assert!(Op::Ge.test("2025-05-02 08:00:01", "2025-05-02 08:00:00"));
    assert!(!Op::Ge.test("", "2025-05-02 08:00:00"));
    assert!(Op::Lt.test("9", "10"), "numbers compare as numbers");
}

#[test]
fn priority_follows_the_baseline_matrix() {
    let table = [
        ("1", "1", "1"),
        ("1", "2", "2"),
        ("2", "1", "2"),
        ("1", "3", "3"),
        ("2", "2", "3"),
        ("3", "1", "3"),
        ("2", "3", "4"),
        ("3", "2", "4"),
        ("3", "3", "5"),
    ];
    for (impact, urgency, want) in table {
        assert_eq!(priority(impact, urgency), want, "{impact}x{urgency}");
    }
}

#[tokio::test]
async fn create_returns_201_location_strings_and_calculated_fields() {
    let sim = start().await;
    let a = call(
        &sim,
        Method::POST,
        "/api/now/table/incident",
        Some(json!({"short_description":"s","impact":1,"urgency":"2","priority":"5","number":"X1","bogus":"ignored"})),
    )
    .await;
    assert_eq!(a.status, 201);
    let r = &a.body["result"];
    let sys_id = r["sys_id"].as_str().unwrap().to_string();
    assert!(super::super::wire::is_sys_id(&sys_id));
    assert_eq!(
        a.headers["location"].to_str().unwrap(),
        format!("{}/api/now/table/incident/{sys_id}", sim.base_url())
    );
    assert_eq!(r["number"], "INC0010001");
    assert_eq!(r["impact"], "1");
    assert_eq!(r["priority"], "2", "calculated, not taken from the body");
    assert_eq!(r["state"], "1");
    assert_eq!(r["incident_state"], "1");
    assert_eq!(r["sys_mod_count"], "0");
    assert_eq!(r["active"], "true");
    assert!(r.get("bogus").is_none());
    // The default reference shape: {link, value}; "" when empty.
    assert_eq!(
        r["opened_by"]["value"],
        sim.incidents()[0]["opened_by"].as_str()
    );
    assert!(
        r["opened_by"]["link"]
            .as_str()
            .unwrap()
            .contains("/api/now/table/sys_user/")
    );
    assert_eq!(r["assigned_to"], "");

    // An array body acts on its first record only; the v2 path works too.
    let a = call(
        &sim,
        Method::POST,
        "/api/now/v2/table/incident",
        Some(json!([{"short_description":"first"},{"short_description":"second"}])),
    )
    .await;
    assert_eq!(a.status, 201);
    assert_eq!(a.body["result"]["short_description"], "first");
    assert_eq!(sim.incidents().len(), 2);

    let a = call(
        &sim,
        Method::GET,
        "/api/now/table/incident/0123456789abcdef0123456789abcdef",
        None,
    )
    .await;
    assert_eq!(a.status, 404);
    assert_eq!(
        a.body,
        json!({"error":{"message":"No Record found","detail":"Record doesn't exist or ACL restricts the record retrieval"},"status":"failure"})
    );
    // PUT updates like PATCH; DELETE answers 204 and the record is gone.
    let path = format!("/api/now/table/incident/{sys_id}");
    let a = call(&sim, Method::PUT, &path, Some(json!({"urgency":"1"}))).await;
    assert_eq!(
        (a.status, a.body["result"]["priority"].as_str()),
        (200, Some("1"))
    );
    let a = call(&sim, Method::POST, &path, Some(json!({}))).await;
    assert_eq!(a.status, 405);
    let a = call(&sim, Method::DELETE, &path, None).await;
    assert_eq!(a.status, 204);
    let a = call(&sim, Method::GET, &path, None).await;
    assert_eq!(a.status, 404);
    let a = call(&sim, Method::GET, "/api/now/table/nope", None).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["status"], "failure");
}

#[tokio::test]
async fn writes_need_a_json_content_type_and_body() {
    let sim = start().await;
    let client = crate::http::build_client(&crate::http::HttpSettings::default()).unwrap();
    let response = client
        .post(format!("{}/api/now/table/incident", sim.base_url()))
        .basic_auth(USER, Some(PASSWORD))
        .header("content-type", "text/plain")
        .body("short_description=x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let response = client
        .post(format!("{}/api/now/table/incident", sim.base_url()))
        .basic_auth(USER, Some(PASSWORD))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert!(sim.incidents().is_empty());
}

#[tokio::test]
async fn data_policies_guard_resolve_close_and_hold() {
    let sim = start().await;
    let number = sim
        .create_as_analyst(&[("short_description", "s")])
        .unwrap();
    let sys_id = sim.incident(&number).unwrap()["sys_id"].clone();
    let path = format!("/api/now/table/incident/{sys_id}");
    let a = call(&sim, Method::PATCH, &path, Some(json!({"state":"6"}))).await;
    assert_eq!(a.status, 403);
    assert_eq!(
        a.body,
        json!({"error":{"message":"Operation Failed","detail":"Data Policy Exception: The following fields are mandatory: Resolution code, Resolution notes"},"status":"failure"})
    );
    let a = call(
        &sim,
        Method::PATCH,
        &path,
        Some(json!({"state":"7","close_code":"Solution provided"})),
    )
    .await;
    assert_eq!(a.status, 403);
    assert!(
        a.body["error"]["detail"]
            .as_str()
            .unwrap()
            .ends_with("mandatory: Resolution notes")
    );
    let a = call(&sim, Method::PATCH, &path, Some(json!({"state":"3"}))).await;
    assert_eq!(a.status, 403);
    assert!(
        a.body["error"]["detail"]
            .as_str()
            .unwrap()
            .ends_with("On hold reason")
    );
    let a = call(
        &sim,
        Method::PATCH,
        &path,
        Some(json!({"state":"6","close_code":"Solved (Permanently)","close_notes":"n"})),
    )
    .await;
    assert_eq!(a.status, 403, "a legacy code is not a Utah choice");
    assert_eq!(
        sim.incident(&number).unwrap()["state"],
        "1",
        "nothing was saved"
    );

    let a = call(
        &sim,
        Method::PATCH,
        &path,
        Some(json!({"state":"3","hold_reason":"4"})),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["result"]["hold_reason"], "4");
    let a = call(
        &sim,
        Method::PATCH,
        &path,
        Some(json!({"state":"6","close_code":"Solution provided","close_notes":"done"})),
    )
    .await;
    assert_eq!(a.status, 200);
    let r = &a.body["result"];
    assert_eq!(
        (r["state"].as_str(), r["incident_state"].as_str()),
        (Some("6"), Some("6"))
    );
    assert_eq!(r["hold_reason"], "", "leaving On Hold clears the reason");
    assert_ne!(r["resolved_at"], "");
    assert_eq!(r["sys_mod_count"], "2");

    sim.set_close_codes(CLOSE_CODES_LEGACY);
    let choices = call(
        &sim,
        Method::GET,
        &format!(
            "/api/now/table/sys_choice?sysparm_query={}&sysparm_fields=value",
            q("name=incident^element=close_code^inactive=false")
        ),
        None,
    )
    .await;
    let values: Vec<&str> = choices.body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, CLOSE_CODES_LEGACY);
    // A script is not held by data policies.
    let other = sim
        .create_as_analyst(&[("short_description", "t")])
        .unwrap();
    sim.set_state(&other, "7").unwrap();
    assert_eq!(sim.incident(&other).unwrap()["active"], "false");
    assert!(
        sim.resolve_as_analyst(&other, "Solution provided", "x")
            .is_err()
    );
    sim.resolve_as_analyst(&other, "Solved (Permanently)", "x")
        .unwrap();
}

#[tokio::test]
async fn journal_fields_append_and_read_back_empty() {
    let sim = start().await;
    let number = sim
        .create_as_analyst(&[("short_description", "s")])
        .unwrap();
    let sys_id = sim.incident(&number).unwrap()["sys_id"].clone();
    let path = format!("/api/now/table/incident/{sys_id}");
    let a = call(
        &sim,
        Method::PATCH,
        &path,
        Some(json!({"work_notes":"first"})),
    )
    .await;
    assert_eq!(a.body["result"]["work_notes"], "");
    call(
        &sim,
        Method::PATCH,
        &path,
        Some(json!({"comments":"visible","work_notes":"second"})),
    )
    .await;
    sim.add_work_note_as(&number, "ana", "third").unwrap();
    let query = q(&format!(
        "name=incident^element_id={sys_id}^elementINwork_notes,comments^ORDERBYsys_created_on"
    ));
    let a = call(
        &sim,
        Method::GET,
        &format!("/api/now/table/sys_journal_field?sysparm_query={query}"),
        None,
    )
    .await;
    let rows = a.body["result"].as_array().unwrap();
    let values: Vec<&str> = rows.iter().map(|r| r["value"].as_str().unwrap()).collect();
    assert_eq!(values.len(), 4);
    assert_eq!(values[0], "first");
    assert_eq!(values[3], "third");
    assert_eq!(rows[3]["sys_created_by"], "ana");
    assert_eq!(rows[0]["sys_created_by"], USER);
    let incident = sim.incident(&number).unwrap();
    assert_eq!(incident["work_notes"], "");
    assert_eq!(incident["sys_mod_count"], "3");
    // Times never go back (writes within one second share it).
    let times: Vec<&str> = rows
        .iter()
        .map(|r| r["sys_created_on"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    // A no-op update is not a write.
    let before = sim.incident(&number).unwrap();
    call(
        &sim,
        Method::PATCH,
        &path,
        Some(json!({"short_description":"s"})),
    )
    .await;
    assert_eq!(sim.incident(&number).unwrap(), before);
}

#[tokio::test]
async fn lists_page_with_link_and_total_and_ignore_unknown_fields() {
    let sim = start().await;
    for n in 0..5 {
        sim.create_as_analyst(&[
            ("short_description", &format!("s{n}")),
            ("correlation_id", &format!("c{n}")),
        ])
        .unwrap();
    }
    let a = call(
        &sim,
        Method::GET,
        &format!("/api/now/table/incident?sysparm_query={}&sysparm_limit=2&sysparm_offset=2&sysparm_fields=number", q("ORDERBYnumber")),
        None,
    )
    .await;
    assert_eq!(numbers(&a.body), vec!["INC0010003", "INC0010004"]);
    assert_eq!(a.headers["x-total-count"], "5");
    let link = a.headers["link"].to_str().unwrap();
    let rels = super::super::wire::parse_link_header(link);
    let rel = |name: &str| {
        rels.iter()
            .find(|(r, _)| r == name)
            .map(|(_, u)| u.clone())
            .unwrap()
    };
    assert!(rel("next").starts_with(&format!(
        "{}/api/now/table/incident?sysparm_offset=4&sysparm_limit=2",
        sim.base_url()
    )));
    assert!(rel("prev").contains("sysparm_offset=0"));
    assert!(rel("last").contains("sysparm_offset=4"));
    assert!(rel("first").contains("sysparm_fields=number"));
    // Suppressed on request.
    let a = call(
        &sim,
        Method::GET,
        "/api/now/table/incident?sysparm_limit=2&sysparm_no_count=true",
        None,
    )
    .await;
    assert!(a.headers.get("link").is_none() && a.headers.get("x-total-count").is_none());
    // An unknown field drops its condition: everything matches.
    let a = call(
        &sim,
        Method::GET,
        &format!(
            "/api/now/table/incident?sysparm_query={}&sysparm_fields=number",
            q("corelation_id=c1")
        ),
        None,
    )
    .await;
    assert_eq!(numbers(&a.body).len(), 5);
    let a = call(
        &sim,
        Method::GET,
        &format!(
            "/api/now/table/incident?sysparm_query={}&sysparm_fields=number,nonsense",
            q("correlation_id=c1^ORcorrelation_id=c3")
        ),
        None,
    )
    .await;
    assert_eq!(numbers(&a.body), vec!["INC0010002", "INC0010004"]);
    assert!(a.body["result"][0].get("nonsense").is_none());
    // ^NQ starts an alternative query.
    let a = call(
        &sim,
        Method::GET,
        &format!(
            "/api/now/table/incident?sysparm_query={}&sysparm_fields=number",
            q("correlation_id=c1^NQshort_descriptionLIKES4^ORDERBYDESCnumber")
        ),
        None,
    )
    .await;
    assert_eq!(numbers(&a.body), vec!["INC0010005", "INC0010002"]);
    // The default limit is 10000.
    let a = call(&sim, Method::GET, "/api/now/table/incident", None).await;
    assert!(
        a.headers["link"]
            .to_str()
            .unwrap()
            .contains("sysparm_limit=10000")
    );
}

#[tokio::test]
async fn display_values_and_dot_walked_fields() {
    let sim = start().await;
    let ana = sim.add_user("ana.ruiz", "Ana Ruiz", "ana@contoso.com");
    let soc = sim.add_group("SOC");
    let number = sim
        .create_as_analyst(&[
            ("short_description", "s"),
            ("assigned_to", &ana),
            ("assignment_group", &soc),
            ("state", "2"),
        ])
        .unwrap();
    let fields = "number,state,assigned_to,assigned_to.email,assignment_group.name";
    let get = |mode: &str| {
        let sim = &sim;
        let path = format!(
            "/api/now/table/incident?sysparm_query={}&sysparm_fields={fields}&{mode}",
            q(&format!("number={number}"))
        );
        async move { call(sim, Method::GET, &path, None).await.body["result"][0].clone() }
    };
    let raw = get("sysparm_exclude_reference_link=true").await;
    assert_eq!(raw["assigned_to"], ana.as_str());
    assert_eq!(raw["assigned_to.email"], "ana@contoso.com");
    assert_eq!(raw["assignment_group.name"], "SOC");
    let display = get("sysparm_display_value=true&sysparm_exclude_reference_link=true").await;
    assert_eq!(display["state"], "In Progress");
    assert_eq!(display["assigned_to"], "Ana Ruiz");
    let all = get("sysparm_display_value=all").await;
    assert_eq!(
        all["state"],
        json!({"display_value":"In Progress","value":"2"})
    );
    assert_eq!(all["assigned_to"]["display_value"], "Ana Ruiz");
    assert_eq!(all["assigned_to"]["value"], ana.as_str());
    assert!(all["assigned_to"]["link"].as_str().unwrap().ends_with(&ana));
    // Queries walk references too.
    let a = call(
        &sim,
        Method::GET,
        &format!(
            "/api/now/table/incident?sysparm_query={}",
            q("assigned_to.email=ana@contoso.com")
        ),
        None,
    )
    .await;
    assert_eq!(numbers(&a.body), vec![number.clone()]);
    // sysparm_input_display_value writes a display value as its reference.
    let sys_id = sim.incident(&number).unwrap()["sys_id"].clone();
    let sam = sim.add_user("sam", "Sam Okafor", "sam@contoso.com");
    let a = call(
        &sim,
        Method::PATCH,
        &format!("/api/now/table/incident/{sys_id}?sysparm_input_display_value=true&sysparm_exclude_reference_link=true"),
        Some(json!({"assigned_to":"Sam Okafor"})),
    )
    .await;
    assert_eq!(a.body["result"]["assigned_to"], sam.as_str());
}

#[tokio::test]
async fn auth_rate_limits_and_oauth_tokens() {
    let sim = start().await;
    let client = crate::http::build_client(&crate::http::HttpSettings::default()).unwrap();
    let url = format!("{}/api/now/table/incident", sim.base_url());
    let response = client
        .get(&url)
        .basic_auth(USER, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error":{"message":"User Not Authenticated","detail":"Required to provide Auth information"},"status":"failure"})
    );

    sim.set_rate_limit(Some(2));
    for _ in 0..2 {
        let a = call(&sim, Method::GET, "/api/now/table/incident", None).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.headers["x-ratelimit-limit"], "2");
    }
    let a = call(&sim, Method::GET, "/api/now/table/incident", None).await;
    assert_eq!(a.status, 429);
    let wait: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&wait), "{wait}");
    assert!(
        a.headers.contains_key("x-ratelimit-reset") && a.headers.contains_key("x-ratelimit-rule")
    );
    assert_eq!(a.body["error"]["message"], "Rate limit exceeded");
    sim.set_rate_limit(None);

    sim.set_oauth_client("cid", "csecret", "bridge.oauth");
    let token = |secret: &str| {
        let form = format!("grant_type=client_credentials&client_id=cid&client_secret={secret}");
        client
            .post(format!("{}/oauth_token.do", sim.base_url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
    };
    assert_eq!(token("nope").await.unwrap().status().as_u16(), 401);
    let body: Value = token("csecret").await.unwrap().json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    let access = body["access_token"].as_str().unwrap();
    let response = client
        .post(&url)
        .bearer_auth(access)
        .json(&json!({"short_description":"by oauth"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(sim.incidents()[0]["sys_created_by"], "bridge.oauth");
    sim.expire_tokens();
    let response = client.get(&url).bearer_auth(access).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

#[tokio::test]
async fn pagination_headers_and_bodies_are_dropped_on_request() {
    let sim = start().await;
    for n in 0..3 {
        sim.create_as_analyst(&[("short_description", &format!("s{n}"))])
            .unwrap();
    }
    let a = call(
        &sim,
        Method::GET,
        "/api/now/table/incident?sysparm_limit=1&sysparm_suppress_pagination_header=true",
        None,
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["result"].as_array().unwrap().len(), 1);
    assert!(a.headers.get("link").is_none() && a.headers.get("x-total-count").is_none());
    // An empty match is an empty list, not a 404.
    let a = call(
        &sim,
        Method::GET,
        &format!(
            "/api/now/table/incident?sysparm_query={}",
            q("correlation_id=nobody")
        ),
        None,
    )
    .await;
    assert_eq!((a.status, a.body.clone()), (200, json!({"result": []})));
    // X-no-response-body: the write happens, the answer has no body.
    let client = crate::http::build_client(&crate::http::HttpSettings::default()).unwrap();
    let response = client
        .post(format!("{}/api/now/table/incident", sim.base_url()))
        .basic_auth(USER, Some(PASSWORD))
        .header("x-no-response-body", "true")
        .json(&json!({"short_description": "quiet"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    assert!(response.bytes().await.unwrap().is_empty());
    assert_eq!(sim.incidents().len(), 4);
}

#[tokio::test]
async fn query_names_and_values_are_case_sensitive() {
    let sim = start().await;
    for n in 0..3 {
        sim.create_as_analyst(&[
            ("short_description", &format!("s{n}")),
            ("correlation_id", &format!("sentinel:c{n}")),
        ])
        .unwrap();
    }
    let find = |query: &str| {
        let sim = &sim;
        let path = format!(
            "/api/now/table/incident?sysparm_query={}&sysparm_fields=number",
            q(query)
        );
        async move { numbers(&call(sim, Method::GET, &path, None).await.body) }
    };
    assert_eq!(find("correlation_id=sentinel:c1").await, vec!["INC0010002"]);
    // Another case of the value is another value …
    assert!(find("correlation_id=Sentinel:C1").await.is_empty());
    // … and another case of the name is an unknown field: its condition is
    // dropped and every row matches.
    assert_eq!(find("Correlation_id=sentinel:c1").await.len(), 3);
    assert_eq!(
        find("correlation_idSTARTSWITHsentinel:^ORDERBYDESCnumber").await,
        vec!["INC0010003", "INC0010002", "INC0010001"]
    );
}

#[tokio::test]
async fn system_fields_cannot_be_set_and_values_are_strings() {
    let sim = start().await;
    let a = call(
        &sim,
        Method::POST,
        "/api/now/table/incident",
        Some(json!({"short_description": "s", "sys_mod_count": "41", "sys_updated_on": "2001-01-01 00:00:00"})),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let r = &a.body["result"];
    assert_eq!(r["sys_mod_count"], "0");
    assert_ne!(r["sys_updated_on"], "2001-01-01 00:00:00");
    // Every value is a string; times are `yyyy-MM-dd HH:mm:ss` in UTC.
    for (name, value) in r.as_object().unwrap() {
        assert!(value.is_string() || value.is_object(), "{name}: {value}");
    }
    let updated = r["sys_updated_on"].as_str().unwrap();
    assert!(
        NaiveDateTime::parse_from_str(updated, TIME_FORMAT).is_ok(),
        "{updated}"
    );
    // Each write counts in sys_mod_count.
    let path = format!("/api/now/table/incident/{}", r["sys_id"].as_str().unwrap());
    for n in 1..=3 {
        let a = call(
            &sim,
            Method::PATCH,
            &path,
            Some(json!({"description": format!("d{n}")})),
        )
        .await;
        assert_eq!(a.body["result"]["sys_mod_count"], n.to_string());
    }
    // A display value written without sysparm_input_display_value is stored
    // verbatim in the reference field (KB0534905).
    sim.add_user("sam", "Sam Okafor", "sam@contoso.com");
    let a = call(
        &sim,
        Method::PATCH,
        &format!("{path}?sysparm_exclude_reference_link=true"),
        Some(json!({"assigned_to": "Sam Okafor"})),
    )
    .await;
    assert_eq!(a.body["result"]["assigned_to"], "Sam Okafor");
}

#[tokio::test]
async fn admin_http_resolves_and_lists() {
    let sim = start().await;
    let number = sim
        .create_as_analyst(&[("short_description", "s")])
        .unwrap();
    let client = crate::http::build_client(&crate::http::HttpSettings::default()).unwrap();
    let response = client
        .post(format!(
            "{}/_sim/incidents/{number}/resolve",
            sim.base_url()
        ))
        .json(&json!({"close_code":"Solution provided","close_notes":"fixed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let response = client
        .post(format!(
            "{}/_sim/incidents/{number}/resolve",
            sim.base_url()
        ))
        .json(&json!({"close_code":"Made up","close_notes":"fixed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let all: Value = client
        .get(format!("{}/_sim/incidents", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all[0]["state"], "6");
    assert_eq!(all[0]["close_code"], "Solution provided");
    call(&sim, Method::GET, "/api/now/table/incident", None).await;
    let log: Value = client
        .get(format!("{}/_sim/requests", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log.as_array().unwrap().len(), 1);
    assert_eq!(log[0]["path"], "/api/now/table/incident");
}

#[tokio::test]
async fn same_second_writes_share_the_time_and_differ_in_mod_count() {
    let sim = start().await;
    let number = sim
        .create_as_analyst(&[("short_description", "s")])
        .unwrap();
    let first = sim.incident(&number).unwrap();
    sim.update_as_analyst_within_the_second(&number, |r| {
        r.insert("description".into(), "d".into());
    })
    .unwrap();
    let second = sim.incident(&number).unwrap();
    assert_eq!(second["sys_updated_on"], first["sys_updated_on"]);
    assert_eq!(first["sys_mod_count"], "0");
    assert_eq!(second["sys_mod_count"], "1");

    // Writes in one second share it unless the kinder mode is asked for.
    let prev = sim.incident(&number).unwrap()["sys_updated_on"].clone();
    sim.backdate(&number, Utc::now() + chrono::Duration::hours(1))
        .unwrap();
    let future = sim.incident(&number).unwrap()["sys_updated_on"].clone();
    sim.update_as_analyst(&number, |r| {
        r.insert("description".into(), "later".into());
    })
    .unwrap();
    assert!(sim.incident(&number).unwrap()["sys_updated_on"] < future);
    assert!(sim.incident(&number).unwrap()["sys_updated_on"] >= prev);
    sim.set_same_second_bump(true);
    sim.backdate(&number, Utc::now() + chrono::Duration::hours(1))
        .unwrap();
    sim.update_as_analyst(&number, |r| {
        r.insert("description".into(), "bumped".into());
    })
    .unwrap();
    assert!(sim.incident(&number).unwrap()["sys_updated_on"] > future);
}

#[tokio::test]
async fn an_async_rule_writes_within_the_second_of_the_api_write_unseen_by_its_answer() {
    let sim = start().await;
    sim.add_async_rule(|r| {
        if r["state"] == "1" {
            r.insert("state".into(), "2".into());
        }
    });
    let client = reqwest::Client::new();
    let answer: Value = client
        .post(format!("{}/api/now/table/incident", sim.base_url()))
        .basic_auth(USER, Some(PASSWORD))
        .json(&json!({"short_description": "x", "state": "1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let number = answer["result"]["number"].as_str().unwrap().to_string();
    assert_eq!(
        answer["result"]["state"], "1",
        "the answer predates the rule"
    );
    assert_eq!(answer["result"]["sys_mod_count"], "0");
    let now = sim.incident(&number).unwrap();
    assert_eq!(now["state"], "2");
    assert_eq!(now["sys_mod_count"], "1");
    assert_eq!(now["sys_updated_on"], answer["result"]["sys_updated_on"]);
    assert_eq!(now["sys_updated_by"], "system");
}

#[tokio::test]
async fn sys_updated_by_names_who_made_each_write() {
    let sim = start().await;
    let created = call(
        &sim,
        Method::POST,
        "/api/now/table/incident",
        Some(json!({"short_description": "x"})),
    )
    .await;
    let number = created.body["result"]["number"]
        .as_str()
        .unwrap()
        .to_string();
    let sys_id = created.body["result"]["sys_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The API caller's user name, in the answer and in what a later read gives.
    assert_eq!(created.body["result"]["sys_updated_by"], USER);
    let read = call(
        &sim,
        Method::GET,
        &format!("/api/now/table/incident/{sys_id}?sysparm_fields=sys_updated_by,number"),
        None,
    )
    .await;
    assert_eq!(read.body["result"]["sys_updated_by"], USER);
    // An analyst's form edit names them; an unnamed one names the default.
    sim.update_as(&number, "sam.servicedesk", |r| {
        r.insert("description".into(), "looked at it".into());
    })
    .unwrap();
    assert_eq!(
        sim.incident(&number).unwrap()["sys_updated_by"],
        "sam.servicedesk"
    );
    sim.update_as_analyst(&number, |r| {
        r.insert("description".into(), "again".into());
    })
    .unwrap();
    assert_eq!(sim.incident(&number).unwrap()["sys_updated_by"], ANALYST);
}
