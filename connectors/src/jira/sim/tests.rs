//! The Jira simulator's tests: each enforced behaviour of SIMULATORS.md, driven over HTTP
//! against a running `JiraSim`.

use super::*;
use crate::simkit::bind_loopback;

const EMAIL: &str = "bridge@acme.example";
const TOKEN: &str = "jira-api-token";

async fn start() -> JiraSim {
    let sim = JiraSim::start(bind_loopback(0).await.unwrap()).await;
    sim.set_credentials(EMAIL, TOKEN);
    sim.add_user(EMAIL, "ITSM Bridge");
    sim.add_project("SEC", Workflow::standard());
    sim
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn call(sim: &JiraSim, method: Method, path: &str, body: Option<Value>) -> Answer {
    let client = crate::http::build_client(&crate::http::HttpSettings::default()).unwrap();
    let mut request = client
        .request(method, format!("{}{path}", sim.base_url()))
        .basic_auth(EMAIL, Some(TOKEN));
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

fn adf(text: &str) -> Value {
    super::super::adf::text_to_adf(text)
}

async fn create(sim: &JiraSim, summary: &str, labels: &[&str]) -> Answer {
    call(
        sim,
        Method::POST,
        "/rest/api/3/issue",
        Some(json!({"fields": {
            "project": {"key": "SEC"}, "issuetype": {"name": "Task"},
            "summary": summary, "description": adf("d"), "labels": labels,
        }})),
    )
    .await
}

/// A create with a valid base and `fields` merged over it.
async fn create_with(sim: &JiraSim, fields: Value) -> Answer {
    let mut all = json!({"project": {"key": "SEC"}, "issuetype": {"name": "Task"}, "summary": "s"});
    for (k, v) in fields.as_object().unwrap() {
        all[k] = v.clone();
    }
    call(
        sim,
        Method::POST,
        "/rest/api/3/issue",
        Some(json!({"fields": all})),
    )
    .await
}

fn search_body(jql: &str) -> Option<Value> {
    Some(json!({"jql": jql, "fields": ["summary", "labels", "updated"]}))
}

#[tokio::test]
async fn create_validates_like_jira() {
    let sim = start().await;
    let a = call(
        &sim,
        Method::POST,
        "/rest/api/3/issue",
        Some(json!({"fields": {"project": {"key": "SEC"}, "issuetype": {"name": "Task"}}})),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.body,
        json!({"errorMessages": [], "errors": {"summary": "You must specify a summary of the issue."}})
    );
    for (fields, field) in [
        (json!({"description": "plain text"}), "description"),
        (
            json!({"description": {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": ""}]}]}}),
            "description",
        ),
        (json!({"priority": {"name": "Urgent"}}), "priority"),
        (json!({"labels": ["has space"]}), "labels"),
        (json!({"components": ["Auth"]}), "components"),
        (json!({"project": {"key": "NOPE"}}), "project"),
        (json!({"issuetype": {"name": "Spaceship"}}), "issuetype"),
        (json!({"status": {"name": "Done"}}), "status"),
        (json!({"resolution": {"name": "Done"}}), "resolution"),
        (json!({"assignee": {"accountId": "nobody"}}), "assignee"),
    ] {
        let a = create_with(&sim, fields.clone()).await;
        assert_eq!(a.status, 400, "{fields}");
        assert!(a.body["errors"][field].is_string(), "{fields}: {}", a.body);
    }
    sim.add_component("SEC", "Auth");
    let a = create_with(
        &sim,
        json!({"components": [{"name": "Auth"}], "priority": {"name": "Low"}}),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["key"], "SEC-1");
    assert_eq!(a.body["id"], "10000");
    assert!(sim.issues().len() == 1);
    let a = call(&sim, Method::POST, "/rest/api/3/issue", Some(json!("nope"))).await;
    assert_eq!(a.status, 400);
    assert!(a.body["errorMessages"][0].is_string());
}

#[tokio::test]
async fn get_edit_and_properties() {
    let sim = start().await;
    create(&sim, "s", &["a"]).await;
    let a = call(&sim, Method::GET, "/rest/api/3/issue/SEC-1", None).await;
    assert_eq!(a.status, 200);
    let f = &a.body["fields"];
    assert_eq!(f["status"]["statusCategory"]["key"], "new");
    assert_eq!(f["priority"]["name"], "Medium");
    assert_eq!(f["resolution"], Value::Null);
    assert_eq!(f["reporter"]["emailAddress"], EMAIL);
    let created = f["created"].as_str().unwrap();
    assert!(
        created.ends_with("+0000") && created.len() == 28,
        "{created}"
    );
    // By id, and case-insensitively by key.
    assert_eq!(
        call(&sim, Method::GET, "/rest/api/3/issue/10000", None)
            .await
            .status,
        200
    );
    assert_eq!(
        call(&sim, Method::GET, "/rest/api/3/issue/sec-1", None)
            .await
            .status,
        200
    );
    let a = call(&sim, Method::GET, "/rest/api/3/issue/SEC-2", None).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.body["errorMessages"][0], NOT_FOUND);

    let before = sim.issue("SEC-1").unwrap().updated;
    let a = call(
        &sim,
        Method::PUT,
        "/rest/api/3/issue/SEC-1",
        Some(json!({"fields": {"summary": "t"}, "update": {"labels": [{"add": "b"}, {"remove": "a"}]}})),
    )
    .await;
    assert_eq!(a.status, 204);
    let issue = sim.issue("SEC-1").unwrap();
    assert_eq!(issue.summary, "t");
    assert_eq!(issue.labels, vec!["b"]);
    assert!(issue.updated > before);
    let a = call(
        &sim,
        Method::PUT,
        "/rest/api/3/issue/SEC-1",
        Some(json!({"fields": {"status": {"name": "Done"}}})),
    )
    .await;
    assert_eq!(a.status, 400);

    let a = call(
        &sim,
        Method::PUT,
        "/rest/api/3/issue/SEC-1/properties/itsm-bridge",
        Some(json!({"x": 1})),
    )
    .await;
    assert_eq!(a.status, 201);
    let a = call(
        &sim,
        Method::PUT,
        "/rest/api/3/issue/SEC-1/properties/itsm-bridge",
        Some(json!({"x": 2})),
    )
    .await;
    assert_eq!(a.status, 200);
    let a = call(
        &sim,
        Method::GET,
        "/rest/api/3/issue/SEC-1/properties/itsm-bridge",
        None,
    )
    .await;
    assert_eq!(a.body, json!({"key": "itsm-bridge", "value": {"x": 2}}));
    let a = call(
        &sim,
        Method::GET,
        "/rest/api/3/issue/SEC-1/properties/other",
        None,
    )
    .await;
    assert_eq!(a.status, 404);
    let a = call(
        &sim,
        Method::GET,
        "/rest/api/3/issue/SEC-1?fields=summary&properties=itsm-bridge",
        None,
    )
    .await;
    assert_eq!(a.body["properties"]["itsm-bridge"], json!({"x": 2}));
    assert_eq!(a.body["fields"].as_object().unwrap().len(), 1);
}

#[tokio::test]
async fn transitions_follow_the_workflow() {
    let sim = start().await;
    create(&sim, "s", &[]).await;
    let a = call(
        &sim,
        Method::GET,
        "/rest/api/3/issue/SEC-1/transitions?expand=transitions.fields",
        None,
    )
    .await;
    let ts = a.body["transitions"].as_array().unwrap();
    let names: Vec<&str> = ts.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["Start Progress", "Done"]);
    assert!(ts[1]["fields"]["resolution"].is_object());
    assert!(ts[0]["fields"].as_object().unwrap().is_empty());
    let a = call(
        &sim,
        Method::GET,
        "/rest/api/3/issue/SEC-1/transitions",
        None,
    )
    .await;
    assert!(a.body["transitions"][1].get("fields").is_none());

    // Reopen (51) is not available from To Do.
    let a = call(
        &sim,
        Method::POST,
        "/rest/api/3/issue/SEC-1/transitions",
        Some(json!({"transition": {"id": "51"}})),
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(
        a.body["errorMessages"][0]
            .as_str()
            .unwrap()
            .contains("'51'")
    );
    // Resolution is not on Start Progress' screen.
    let a = call(
        &sim,
        Method::POST,
        "/rest/api/3/issue/SEC-1/transitions",
        Some(json!({"transition": {"id": "11"}, "fields": {"resolution": {"name": "Done"}}})),
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(a.body["errors"]["resolution"].is_string());
    let a = call(
        &sim,
        Method::POST,
        "/rest/api/3/issue/SEC-1/transitions",
        Some(json!({"transition": {"id": "21"}, "fields": {"resolution": {"name": "Nope"}}})),
    )
    .await;
    assert_eq!(a.status, 400);
    let a = call(
        &sim,
        Method::POST,
        "/rest/api/3/issue/SEC-1/transitions",
        Some(json!({"transition": {"id": "21"}, "fields": {"resolution": {"name": "Won't Do"}}})),
    )
    .await;
    assert_eq!(a.status, 204);
    let issue = sim.issue("SEC-1").unwrap();
    assert_eq!(
        (issue.status.as_str(), issue.resolution.as_deref()),
        ("Done", Some("Won't Do"))
    );
    assert!(issue.resolution_date.is_some());
    // The analyst reopens over the admin HTTP surface (no auth).
    let response = crate::http::build_client(&Default::default())
        .unwrap()
        .post(format!("{}/_sim/issues/SEC-1/transition", sim.base_url()))
        .json(&json!({"to": "To Do"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let issue = sim.issue("SEC-1").unwrap();
    assert_eq!(
        (issue.status.as_str(), issue.resolution.as_deref()),
        ("To Do", None)
    );
    sim.transition_as_analyst("SEC-1", "done", Some("duplicate"))
        .unwrap();
    assert_eq!(
        sim.issue("SEC-1").unwrap().resolution.as_deref(),
        Some("Duplicate")
    );
    assert!(sim.transition_as_analyst("SEC-1", "Closed", None).is_err());
}

#[tokio::test]
async fn old_search_endpoint_is_gone() {
    let sim = start().await;
    for method in [Method::GET, Method::POST] {
        let a = call(&sim, method, "/rest/api/3/search?jql=project%3DSEC", None).await;
        assert_eq!(a.status, 410);
        assert!(
            a.body["errorMessages"][0]
                .as_str()
                .unwrap()
                .contains("/search/jql")
        );
    }
}

#[tokio::test]
async fn unbounded_and_unparseable_jql_are_rejected() {
    let sim = start().await;
    for jql in ["ORDER BY key DESC", "", "  "] {
        let a = call(
            &sim,
            Method::POST,
            "/rest/api/3/search/jql",
            search_body(jql),
        )
        .await;
        assert_eq!(a.status, 400, "{jql}");
        assert_eq!(a.body["errorMessages"][0], UNBOUNDED);
    }
    let a = call(
        &sim,
        Method::GET,
        "/rest/api/3/search/jql?jql=order%20by%20key",
        None,
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["errorMessages"][0], UNBOUNDED);
    for jql in [
        "project = ",
        "project = \"SEC",
        "project = SEC AND",
        "project = SEC labels = x",
        "(project = SEC",
        "project # SEC",
        "nosuchfield = 1",
        "project = NOPE",
        "updated >= \"yesterday\"",
        "summary = x",
        "project = SEC ORDER BY colour",
        "labels = \"a\\qb\"",
        "project = SEC ORDER BY key, id, created, updated, summary, status, priority, key",
    ] {
        let a = call(
            &sim,
            Method::POST,
            "/rest/api/3/search/jql",
            search_body(jql),
        )
        .await;
        assert_eq!(a.status, 400, "{jql}: {}", a.body);
        assert!(a.body["errorMessages"][0].is_string(), "{jql}");
    }
    let a = call(
        &sim,
        Method::POST,
        "/rest/api/3/search/jql",
        Some(json!({"jql": "project = SEC", "startAt": 0})),
    )
    .await;
    assert_eq!(a.status, 400, "offset paging is not part of /search/jql");
}

#[tokio::test]
async fn search_returns_ids_by_default_caps_pages_and_binds_tokens() {
    let sim = start().await;
    // About what search finds, not when: no index lag.
    sim.set_index_lag(std::time::Duration::ZERO);
    for n in 0..3 {
        create(&sim, &format!("s{n}"), &["itsm-bridge"]).await;
    }
    let a = call(
        &sim,
        Method::POST,
        "/rest/api/3/search/jql",
        Some(json!({"jql": "project = SEC"})),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["issues"][0], json!({"id": "10002"}));
    assert_eq!(a.body["isLast"], true);
    assert!(a.body.get("total").is_none());
    assert!(a.body.get("nextPageToken").is_none());

    let a = call(
        &sim,
        Method::POST,
        "/rest/api/3/search/jql",
        Some(json!({"jql": "project = SEC ORDER BY key ASC", "fields": ["summary"], "maxResults": 2})),
    )
    .await;
    assert_eq!(a.body["issues"].as_array().unwrap().len(), 2);
    assert_eq!(a.body["isLast"], false);
    let token = a.body["nextPageToken"].as_str().unwrap().to_string();
    // The token belongs to its query.
    let a = call(
        &sim,
        Method::POST,
        "/rest/api/3/search/jql",
        Some(json!({"jql": "project = SEC ORDER BY key DESC", "fields": ["summary"], "nextPageToken": token})),
    )
    .await;
    assert_eq!(a.status, 400);
    let a = call(
        &sim,
        Method::GET,
        &format!("/rest/api/3/search/jql?jql=project%20%3D%20SEC%20ORDER%20BY%20key%20ASC&fields=summary&maxResults=2&nextPageToken={token}"),
        None,
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["issues"][0]["key"], "SEC-3");
    assert_eq!(a.body["isLast"], true);

    // OR, NOT, IN and parentheses.
    let a = call(
        &sim,
        Method::POST,
        "/rest/api/3/search/jql",
        search_body("project = SEC AND (key = SEC-1 OR key in (SEC-3)) AND NOT summary ~ s1 ORDER BY key DESC"),
    )
    .await;
    let keys: Vec<&str> = a.body["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["SEC-3", "SEC-1"]);
}

#[tokio::test]
async fn jql_dates_have_minute_precision() {
    let sim = start().await;
    // About what search finds, not when: no index lag.
    sim.set_index_lag(std::time::Duration::ZERO);
    create(&sim, "s", &[]).await;
    let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 5, 2, 8, 0, 30).unwrap()
        + chrono::Duration::milliseconds(123);
    sim.backdate("SEC-1", at).unwrap();
    let keys = |a: &Answer| -> Vec<String> {
        a.body["issues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["key"].as_str().unwrap().to_string())
            .collect()
    };
    for (literal, expected) in [("2025-05-02 08:00", 1), ("2025/05/02 08:01", 0)] {
        let jql = format!("project = SEC AND updated >= \"{literal}\"");
        let a = call(
            &sim,
            Method::POST,
            "/rest/api/3/search/jql",
            Some(json!({"jql": jql, "fields": ["summary"]})),
        )
        .await;
        assert_eq!(a.status, 200, "{literal}: {}", a.body);
        assert_eq!(keys(&a).len(), expected, "{literal}");
    }
    // Seconds are not a JQL date format; the body still has milliseconds.
    let a = call(
        &sim,
        Method::POST,
        "/rest/api/3/search/jql",
        search_body("project = SEC AND updated >= \"2025-05-02 08:00:30\""),
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(
        a.body["errorMessages"][0]
            .as_str()
            .unwrap()
            .contains("is invalid"),
        "{}",
        a.body
    );
    let a = call(
        &sim,
        Method::GET,
        "/rest/api/3/issue/SEC-1?fields=updated",
        None,
    )
    .await;
    assert_eq!(a.body["fields"]["updated"], "2025-05-02T08:00:30.123+0000");
}

#[tokio::test]
async fn search_pages_hold_50_by_default_and_100_with_fields() {
    let sim = start().await;
    // About what search finds, not when: no index lag.
    sim.set_index_lag(std::time::Duration::ZERO);
    for n in 0..120 {
        create(&sim, &format!("s{n}"), &[]).await;
    }
    let page = |body: Value| {
        let sim = &sim;
        async move {
            let a = call(sim, Method::POST, "/rest/api/3/search/jql", Some(body)).await;
            assert_eq!(a.status, 200, "{}", a.body);
            a.body["issues"].as_array().unwrap().len()
        }
    };
    assert_eq!(page(json!({"jql": "project = SEC"})).await, 50);
    assert_eq!(
        page(json!({"jql": "project = SEC", "fields": ["summary"], "maxResults": 5000})).await,
        100
    );
    assert_eq!(
        page(json!({"jql": "project = SEC", "maxResults": 5000})).await,
        120
    );
}

#[tokio::test]
async fn an_edit_answers_with_the_issue_only_when_asked() {
    let sim = start().await;
    create(&sim, "s", &[]).await;
    let edit = |query: &'static str, summary: &'static str| {
        let sim = &sim;
        let body = json!({"fields": {"summary": summary}});
        let path = format!("/rest/api/3/issue/SEC-1{query}");
        async move { call(sim, Method::PUT, &path, Some(body)).await }
    };
    let a = edit("", "one").await;
    assert_eq!((a.status, a.body.clone()), (204, Value::Null));
    let a = edit("?returnIssue=true", "two").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["key"], "SEC-1");
    assert_eq!(a.body["fields"]["summary"], "two");
    assert_eq!(a.body["fields"]["status"]["name"], "To Do");
    assert!(
        a.body["fields"]["comment"]["comments"].is_array(),
        "{}",
        a.body
    );
    assert!(
        a.body.get("changelog").is_none(),
        "not expanded: {}",
        a.body
    );
    let updated = a.body["fields"]["updated"].as_str().unwrap().to_string();
    let got = call(&sim, Method::GET, "/rest/api/3/issue/SEC-1", None).await;
    assert_eq!(got.body["fields"]["updated"], updated.as_str());
    // `expand` renders as on a GET: the changelog names the editor.
    let a = edit("?returnIssue=true&expand=changelog", "three").await;
    let histories = a.body["changelog"]["histories"].as_array().unwrap();
    let newest = histories.last().unwrap();
    assert_eq!(newest["author"]["displayName"], "ITSM Bridge", "{}", a.body);
    assert_eq!(newest["items"][0]["field"], "summary");
}

#[tokio::test]
async fn a_create_takes_its_transition_in_the_same_request() {
    let sim = start().await;
    let fields = json!({"project": {"key": "SEC"}, "issuetype": {"name": "Task"}, "summary": "s"});
    let create = |transition: Value| {
        let sim = &sim;
        let body = json!({"fields": fields, "transition": transition});
        async move { call(sim, Method::POST, "/rest/api/3/issue", Some(body)).await }
    };
    // Start Progress (11) out of To Do: made and moved, the post-functions run.
    let a = create(json!({"id": "11"})).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["transition"]["status"], 204, "{}", a.body);
    assert_eq!(sim.issue("SEC-1").unwrap().status, "In Progress");
    let posted = sim.posted_transitions();
    assert_eq!(
        (posted[0].key.as_str(), posted[0].id.as_str()),
        ("SEC-1", "11")
    );
    let moved = sim.issue("SEC-1").unwrap();
    let history = moved.changelog.last().expect("the move is a history");
    let items: Vec<&str> = history.items.iter().map(|i| i.field.as_str()).collect();
    assert!(items.contains(&"status"), "{history:?}");
    // Done (21) from To Do: the workflow's default resolution.
    let a = create(json!({"id": 21})).await;
    assert_eq!(a.body["transition"]["status"], 204, "{}", a.body);
    let done = sim.issue("SEC-2").unwrap();
    assert_eq!(
        (done.status.as_str(), done.resolution.as_deref()),
        ("Done", Some("Done"))
    );

    // Reopen (51) is not offered from To Do: the issue is made all the same,
    // in To Do, and the answer's nested part says why the move was not.
    let a = create(json!({"id": "51"})).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["transition"]["status"], 400, "{}", a.body);
    let message = a.body["transition"]["errorCollection"]["errorMessages"][0]
        .as_str()
        .unwrap();
    assert!(message.contains("'51'"), "{message}");
    assert_eq!(sim.issue("SEC-3").unwrap().status, "To Do");

    // A transition that is not an object with an id refuses the whole create.
    for bad in [json!("11"), json!({}), json!({"id": "11", "fields": {}})] {
        let a = create(bad.clone()).await;
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
    }
    assert_eq!(sim.issues().len(), 3, "nothing made by a refused create");

    // The lagging index never shows the moved issue in To Do: first nothing,
    // then the issue as moved.
    sim.set_index_lag(Duration::from_secs(60));
    let a = create(json!({"id": "11"})).await;
    let key = a.body["key"].as_str().unwrap().to_string();
    let jql = format!("key = {key}");
    assert!(listed_statuses(&sim, &jql).await.is_empty());
    sim.pass_index_time(Duration::from_secs(61));
    assert_eq!(listed_statuses(&sim, &jql).await, ["In Progress"]);
}

/// The status names a search by `jql` lists.
async fn listed_statuses(sim: &JiraSim, jql: &str) -> Vec<String> {
    let body = json!({"jql": jql, "fields": ["status"]});
    let a = call(sim, Method::POST, "/rest/api/3/search/jql", Some(body)).await;
    a.body["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["fields"]["status"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn search_and_property_limits_are_enforced() {
    let sim = start().await;
    create(&sim, "s", &[]).await;
    let search = |body: Value| {
        let sim = &sim;
        async move { call(sim, Method::POST, "/rest/api/3/search/jql", Some(body)).await }
    };
    let six: Vec<String> = (0..6).map(|n| format!("p{n}")).collect();
    let a = search(json!({"jql": "project = SEC", "properties": six})).await;
    assert_eq!(a.status, 400, "{}", a.body);
    let a = search(json!({"jql": "project = SEC", "properties": &six[..5]})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let ids: Vec<u64> = (10000..10051).collect();
    let a = search(json!({"jql": "project = SEC", "reconcileIssues": ids})).await;
    assert_eq!(a.status, 400, "{}", a.body);
    let a = search(json!({"jql": "project = SEC", "reconcileIssues": &ids[..50]})).await;
    assert_eq!(a.status, 200, "{}", a.body);

    let key = "k".repeat(256);
    let a = call(
        &sim,
        Method::PUT,
        &format!("/rest/api/3/issue/SEC-1/properties/{key}"),
        Some(json!(1)),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    let a = call(
        &sim,
        Method::PUT,
        "/rest/api/3/issue/SEC-1/properties/itsm-bridge",
        Some(json!("v".repeat(32768))),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body["errorMessages"][0].is_string(), "{}", a.body);
}

#[tokio::test]
async fn comments_beyond_the_per_issue_limit_get_413() {
    let sim = start().await;
    create(&sim, "s", &[]).await;
    sim.comment_as_analyst("SEC-1", "Ana", "one").unwrap();
    {
        let mut state = sim.lock();
        let i = state.find("SEC-1").unwrap();
        let one = state.records[i].current.comments[0].clone();
        state.records[i].current.comments = vec![one; MAX_COMMENTS];
    }
    let a = call(
        &sim,
        Method::POST,
        "/rest/api/3/issue/SEC-1/comment",
        Some(json!({"body": adf("one too many")})),
    )
    .await;
    assert_eq!(a.status, 413);
    assert!(a.body["errorMessages"][0].is_string(), "{}", a.body);
}

#[tokio::test]
async fn updated_is_monotonic_with_milliseconds() {
    let sim = start().await;
    create(&sim, "s", &[]).await;
    let mut last = sim.issue("SEC-1").unwrap().updated;
    for n in 0..5 {
        sim.edit_as_analyst("SEC-1", "summary", json!(format!("n{n}")))
            .unwrap();
        let now = sim.issue("SEC-1").unwrap().updated;
        assert!(now > last);
        assert_eq!(now.timestamp_subsec_nanos() % 1_000_000, 0);
        last = now;
    }
    // A no-op edit changes nothing.
    sim.edit_as_analyst("SEC-1", "summary", json!("n4"))
        .unwrap();
    assert_eq!(sim.issue("SEC-1").unwrap().updated, last);
}

#[tokio::test]
async fn comments_need_adf_and_page_by_offset() {
    let sim = start().await;
    create(&sim, "s", &[]).await;
    let a = call(
        &sim,
        Method::POST,
        "/rest/api/3/issue/SEC-1/comment",
        Some(json!({"body": "plain"})),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["errors"]["comment"], NOT_ADF);
    for n in 0..3 {
        let a = call(
            &sim,
            Method::POST,
            "/rest/api/3/issue/SEC-1/comment",
            Some(json!({"body": adf(&format!("c{n}"))})),
        )
        .await;
        assert_eq!(a.status, 201);
        assert_eq!(a.body["author"]["emailAddress"], EMAIL);
    }
    let a = call(
        &sim,
        Method::GET,
        "/rest/api/3/issue/SEC-1/comment?startAt=1&maxResults=1&orderBy=-created",
        None,
    )
    .await;
    assert_eq!(a.body["total"], 3);
    assert_eq!(a.body["startAt"], 1);
    assert_eq!(a.body["comments"][0]["body"], adf("c1"));
    let a = call(
        &sim,
        Method::GET,
        "/rest/api/3/issue/SEC-1/comment?orderBy=author",
        None,
    )
    .await;
    assert_eq!(a.status, 400);
}

#[tokio::test]
async fn requests_without_valid_basic_auth_get_401() {
    let sim = start().await;
    let client = crate::http::build_client(&Default::default()).unwrap();
    for request in [
        client.get(format!("{}/rest/api/3/issue/SEC-1", sim.base_url())),
        client
            .get(format!("{}/rest/api/3/issue/SEC-1", sim.base_url()))
            .basic_auth(EMAIL, Some("wrong")),
        client
            .get(format!("{}/rest/api/3/issue/SEC-1", sim.base_url()))
            .bearer_auth(TOKEN),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errorMessages"][0], UNAUTHENTICATED);
    }
    // The admin surface needs none.
    let response = client
        .get(format!("{}/_sim/issues", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let response = client
        .get(format!("{}/_sim/requests", sim.base_url()))
        .send()
        .await
        .unwrap();
    let log: Value = response.json().await.unwrap();
    assert_eq!(log.as_array().unwrap().len(), 3);
    assert_eq!(log[0]["status"], 401);
}

#[tokio::test]
async fn per_issue_write_limit_answers_429_with_its_reason() {
    let sim = start().await;
    create(&sim, "s", &[]).await;
    sim.set_per_issue_write_limit(Some(2));
    for n in 0..2 {
        let a = call(
            &sim,
            Method::PUT,
            "/rest/api/3/issue/SEC-1",
            Some(json!({"fields": {"summary": format!("n{n}")}})),
        )
        .await;
        assert_eq!(a.status, 204);
    }
    let a = call(
        &sim,
        Method::PUT,
        "/rest/api/3/issue/SEC-1",
        Some(json!({"fields": {"summary": "x"}})),
    )
    .await;
    assert_eq!(a.status, 429);
    assert_eq!(a.headers["ratelimit-reason"], "jira-per-issue-on-write");
    assert_eq!(a.headers["retry-after"], "1");
    // Reads and other issues are not limited.
    assert_eq!(
        call(&sim, Method::GET, "/rest/api/3/issue/SEC-1", None)
            .await
            .status,
        200
    );
    create(&sim, "t", &[]).await;
    let a = call(
        &sim,
        Method::PUT,
        "/rest/api/3/issue/SEC-2",
        Some(json!({"fields": {"summary": "y"}})),
    )
    .await;
    assert_eq!(a.status, 204);
}

#[tokio::test]
async fn burst_limit_answers_429_with_its_reason() {
    let sim = start().await;
    sim.set_burst_limit(Some(2));
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let a = call(&sim, Method::GET, "/rest/api/3/myself", None).await;
        statuses.push(a.status);
        last = Some(a);
    }
    assert_eq!(statuses, vec![200, 200, 429]);
    let last = last.unwrap();
    assert_eq!(last.headers["ratelimit-reason"], "jira-burst-based");
    assert_eq!(last.headers["retry-after"], "1");
    assert_eq!(last.body["errorMessages"][0], "Rate limit exceeded.");
}

#[test]
fn jql_parses_precedence_escapes_and_order() {
    let q = jql::parse(
        r#"project = SEC AND labels = "a\"b\\c" OR NOT key in (SEC-1, 'SEC-2') order by updated asc, KEY desc"#,
    )
    .unwrap();
    let clause = |field: &str, op, values: &[&str]| jql::Expr::Clause {
        field: field.into(),
        op,
        values: values.iter().map(|v| v.to_string()).collect(),
    };
    assert_eq!(
        q.filter.unwrap(),
        jql::Expr::Or(
            Box::new(jql::Expr::And(
                Box::new(clause("project", jql::Op::Eq, &["SEC"])),
                Box::new(clause("labels", jql::Op::Eq, &["a\"b\\c"])),
            )),
            Box::new(jql::Expr::Not(Box::new(clause(
                "key",
                jql::Op::In,
                &["SEC-1", "SEC-2"]
            )))),
        )
    );
    assert_eq!(
        q.order,
        vec![("updated".to_string(), false), ("key".to_string(), true)]
    );
    assert_eq!(
        jql::tokenize(r#""\u00e9\n""#).unwrap(),
        vec![jql::Tok::Str("é\n".into())]
    );
    assert!(jql::parse("labels = and").is_err());
    assert!(jql::parse("labels = \"x\" \"y\"").is_err());
}

#[tokio::test]
async fn changelog_records_every_change_by_its_author_and_renders_only_when_expanded() {
    let sim = start().await;
    let key = create(&sim, "s", &[]).await.body["key"]
        .as_str()
        .unwrap()
        .to_string();
    // A new issue has no history.
    let got = call(
        &sim,
        Method::GET,
        &format!("/rest/api/3/issue/{key}?expand=changelog"),
        None,
    )
    .await;
    assert_eq!(got.body["changelog"]["total"], 0);
    // A REST edit by the caller, a REST transition by the caller, then an
    // analyst's transition and edit through the analyst API.
    let edited = call(
        &sim,
        Method::PUT,
        &format!("/rest/api/3/issue/{key}"),
        Some(json!({"fields": {"priority": {"name": "High"}}})),
    )
    .await;
    assert_eq!(edited.status, 204);
    let moved = call(
        &sim,
        Method::POST,
        &format!("/rest/api/3/issue/{key}/transitions"),
        Some(json!({"transition": {"id": "11"}})),
    )
    .await;
    assert_eq!(moved.status, 204);
    sim.transition_as(&key, "Ann Analyst", "Done", Some("Won't Do"))
        .unwrap();
    sim.edit_as(&key, "Bob Builder", "summary", json!("renamed"))
        .unwrap();
    // A comment is no change of a field: no history.
    sim.comment_as_analyst(&key, "Ann Analyst", "note").unwrap();
    // Not rendered unless asked for, on GET and on search alike.
    let plain = call(&sim, Method::GET, &format!("/rest/api/3/issue/{key}"), None).await;
    assert!(plain.body.get("changelog").is_none());
    sim.pass_index_time(Duration::from_secs(60));
    let jql = "project = SEC";
    let searched = call(
        &sim,
        Method::POST,
        "/rest/api/3/search/jql",
        search_body(jql),
    )
    .await;
    assert_eq!(searched.body["issues"][0]["key"], key.as_str());
    assert!(searched.body["issues"][0].get("changelog").is_none());

    let got = call(
        &sim,
        Method::GET,
        &format!("/rest/api/3/issue/{key}?expand=changelog"),
        None,
    )
    .await;
    let changelog = &got.body["changelog"];
    assert_eq!(changelog["total"], 4);
    assert_eq!(changelog["startAt"], 0);
    let histories = changelog["histories"].as_array().unwrap();
    let who: Vec<&str> = histories
        .iter()
        .map(|h| h["author"]["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(
        who,
        ["ITSM Bridge", "ITSM Bridge", "Ann Analyst", "Bob Builder"]
    );
    let fields = |h: &Value| -> Vec<String> {
        h["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["fieldId"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(fields(&histories[0]), ["priority"]);
    assert_eq!(fields(&histories[1]), ["status"]);
    assert_eq!(fields(&histories[2]), ["status", "resolution"]);
    assert_eq!(fields(&histories[3]), ["summary"]);
    let done = &histories[2]["items"][0];
    assert_eq!(done["field"], "status");
    assert_eq!(done["fieldtype"], "jira");
    assert_eq!(done["fromString"], "In Progress");
    assert_eq!(done["toString"], "Done");
    assert!(done["to"].is_string());
    assert_eq!(histories[2]["items"][1]["toString"], "Won't Do");
    assert!(histories[2]["author"]["accountId"].is_string());
    assert!(histories[2]["created"].is_string());

    // Search gives it with `expand`, in the GET query and the POST body.
    let body = json!({"jql": jql, "fields": ["summary"], "expand": "changelog"});
    let searched = call(&sim, Method::POST, "/rest/api/3/search/jql", Some(body)).await;
    assert_eq!(searched.body["issues"][0]["changelog"]["total"], 4);
    let searched = call(
        &sim,
        Method::GET,
        "/rest/api/3/search/jql?jql=project%20%3D%20SEC&fields=summary&expand=changelog",
        None,
    )
    .await;
    assert_eq!(
        searched.body["issues"][0]["changelog"]["histories"][3]["author"]["displayName"],
        "Bob Builder"
    );
    // `expand` in a POST body is a string, as documented.
    let body = json!({"jql": jql, "expand": ["changelog"]});
    let refused = call(&sim, Method::POST, "/rest/api/3/search/jql", Some(body)).await;
    assert_eq!(refused.status, 400);
}

#[tokio::test]
async fn an_expanded_changelog_embeds_the_newest_histories() {
    let sim = start().await;
    let key = create(&sim, "s", &[]).await.body["key"]
        .as_str()
        .unwrap()
        .to_string();
    for n in 0..EMBEDDED_HISTORIES + 3 {
        sim.edit_as_analyst(&key, "summary", json!(format!("s{n}")))
            .unwrap();
    }
    let got = call(
        &sim,
        Method::GET,
        &format!("/rest/api/3/issue/{key}?expand=changelog"),
        None,
    )
    .await;
    let changelog = &got.body["changelog"];
    assert_eq!(changelog["total"], EMBEDDED_HISTORIES + 3);
    assert_eq!(changelog["startAt"], 3);
    let histories = changelog["histories"].as_array().unwrap();
    assert_eq!(histories.len(), EMBEDDED_HISTORIES);
    let last = &histories[EMBEDDED_HISTORIES - 1];
    assert_eq!(
        last["items"][0]["toString"],
        format!("s{}", EMBEDDED_HISTORIES + 2)
    );
    assert_eq!(last["author"]["displayName"], DEFAULT_ANALYST);
}
