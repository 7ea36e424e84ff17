//! The Zendesk simulator refuses what Zendesk refuses, in its shape.

use axum::http::Method;
use serde_json::{Value, json};

use super::*;
use crate::simkit::bind_loopback;

const EMAIL: &str = "soc@contoso.example";
const TOKEN: &str = "zd-token";

async fn start() -> ZendeskSim {
    let sim = ZendeskSim::start(bind_loopback(0).await.unwrap()).await;
    sim.set_api_token(EMAIL, TOKEN);
    sim
}

async fn call(sim: &ZendeskSim, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = crate::http::build_client(&crate::http::HttpSettings::default()).unwrap();
    let mut request = client
        .request(method, format!("{}{path}", sim.base_url()))
        .basic_auth(format!("{EMAIL}/token"), Some(TOKEN));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
    (status, body)
}

fn new_ticket() -> Value {
    json!({"ticket": {"subject": "s", "comment": {"body": "first", "public": false},
        "priority": "high", "external_id": "sentinel:x:1"}})
}

#[tokio::test]
async fn writes_are_wrapped_and_refusals_name_the_field() {
    let sim = start().await;
    let (status, body) = call(&sim, Method::POST, "/api/v2/tickets", Some(new_ticket())).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["ticket"]["description"], "first");
    // Unwrapped, without a first comment, a wrong code, a read-only member.
    let (status, _) = call(
        &sim,
        Method::POST,
        "/api/v2/tickets",
        Some(json!({"subject": "s"})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = call(
        &sim,
        Method::POST,
        "/api/v2/tickets",
        Some(json!({"ticket": {"subject": "s"}})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("RecordInvalid"))
    );
    for (member, value) in [
        ("priority", json!(3)),
        ("status", json!("done")),
        ("id", json!(9)),
        ("description", json!("d")),
    ] {
        let (status, body) = call(
            &sim,
            Method::PUT,
            "/api/v2/tickets/1",
            Some(json!({"ticket": {member: value}})),
        )
        .await;
        assert_eq!(status, 422, "{member}");
        assert!(body["details"][member].is_array(), "{member}: {body}");
    }
    // A comment is an update.
    let (status, _) = call(
        &sim,
        Method::PUT,
        "/api/v2/tickets/1",
        Some(json!({"ticket": {"comment": {"body": "note", "public": false}}})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(sim.ticket(1).unwrap().comments.len(), 2);
}

#[tokio::test]
async fn the_incremental_export_takes_unix_seconds_and_leaves_out_the_last_minute() {
    let sim = start().await;
    call(&sim, Method::POST, "/api/v2/tickets", Some(new_ticket())).await;
    let since = (Utc::now() - chrono::Duration::hours(1)).timestamp();
    let path = format!("/api/v2/incremental/tickets/cursor.json?start_time={since}");
    let (status, body) = call(&sim, Method::GET, &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["tickets"].as_array().unwrap().len(), 0, "too recent");
    assert_eq!(body["end_of_stream"], true);
    assert!(body["after_url"].is_string(), "a link on the last page too");
    sim.set_export_delay(Duration::ZERO);
    let (_, body) = call(&sim, Method::GET, &path, None).await;
    assert_eq!(body["tickets"].as_array().unwrap().len(), 1);
    let (status, _) = call(
        &sim,
        Method::GET,
        "/api/v2/incremental/tickets/cursor.json?start_time=2026-11-01T08:00:00Z",
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (_, body) = call(
        &sim,
        Method::GET,
        "/api/v2/tickets?external_id=sentinel%3Ax%3A1",
        None,
    )
    .await;
    assert_eq!(body["count"], 1);
}
