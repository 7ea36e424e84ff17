//! The Freshservice simulator refuses what Freshservice refuses, in its shape.

use axum::http::Method;
use serde_json::{Value, json};

use super::*;
use crate::simkit::bind_loopback;

const KEY: &str = "fs-api-key";

async fn start() -> FreshserviceSim {
    let sim = FreshserviceSim::start(bind_loopback(0).await.unwrap()).await;
    sim.set_api_key(KEY);
    sim
}

async fn call(
    sim: &FreshserviceSim,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = crate::http::build_client(&crate::http::HttpSettings::default()).unwrap();
    let mut request = client
        .request(method, format!("{}{path}", sim.base_url()))
        .basic_auth(KEY, Some("X"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
    (status, body)
}

fn ticket() -> Value {
    json!({"subject": "s", "description": "d", "status": 2, "priority": 3,
           "email": "soc@contoso.example", "custom_fields": {"security_correlation": "x:y:1"}})
}

#[tokio::test]
async fn a_status_sent_as_a_string_is_refused_with_the_field_named() {
    let sim = start().await;
    let (status, body) = call(&sim, Method::POST, "/api/v2/tickets", Some(ticket())).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["ticket"]["status"], 2);
    let (status, body) = call(
        &sim,
        Method::PUT,
        "/api/v2/tickets/1",
        Some(json!({"status": "4"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["description"], "Validation failed");
    assert_eq!(body["errors"][0]["field"], "status");
    assert_eq!(body["errors"][0]["code"], "datatype_mismatch");
    let (status, body) = call(
        &sim,
        Method::PUT,
        "/api/v2/tickets/1",
        Some(json!({"priority": 9})),
    )
    .await;
    assert_eq!(
        (status, &body["errors"][0]["code"]),
        (400, &json!("invalid_value"))
    );
    assert_eq!(sim.ticket(1).unwrap().status, 2);
}

#[tokio::test]
async fn read_only_and_unknown_fields_are_refused_in_an_update() {
    let sim = start().await;
    call(&sim, Method::POST, "/api/v2/tickets", Some(ticket())).await;
    for field in ["id", "created_at", "updated_at", "conversations", "colour"] {
        let (status, body) = call(
            &sim,
            Method::PUT,
            "/api/v2/tickets/1",
            Some(json!({field: 1})),
        )
        .await;
        assert_eq!(status, 400, "{field}");
        assert_eq!(body["errors"][0]["field"], field);
        assert_eq!(body["errors"][0]["code"], "invalid_field");
    }
    let (status, _) = call(
        &sim,
        Method::PUT,
        "/api/v2/tickets/1",
        Some(json!({"custom_fields": {"security_verdict": "maybe"}})),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_create_needs_its_required_fields_and_a_requester() {
    let sim = start().await;
    for missing in ["subject", "description", "status", "priority", "email"] {
        let mut body = ticket();
        body.as_object_mut().unwrap().remove(missing);
        let (status, answer) = call(&sim, Method::POST, "/api/v2/tickets", Some(body)).await;
        assert_eq!(status, 400, "{missing}");
        assert_eq!(answer["errors"][0]["code"], "missing_field", "{missing}");
    }
    assert!(sim.tickets().is_empty());
}

#[tokio::test]
async fn lists_page_through_a_link_header_and_filter_matches_exactly() {
    let sim = start().await;
    for _ in 0..3 {
        call(&sim, Method::POST, "/api/v2/tickets", Some(ticket())).await;
    }
    let client = crate::http::build_client(&crate::http::HttpSettings::default()).unwrap();
    let response = client
        .get(format!(
            "{}/api/v2/tickets?per_page=2&order_type=asc",
            sim.base_url()
        ))
        .basic_auth(KEY, Some("X"))
        .send()
        .await
        .unwrap();
    let link = response.headers()["link"].to_str().unwrap().to_string();
    assert!(
        link.contains("page=2") && link.ends_with("rel=\"next\""),
        "{link}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["tickets"].as_array().unwrap().len(), 2);
    let (status, body) = call(
        &sim,
        Method::GET,
        "/api/v2/tickets/filter?query=%22security_correlation%3A%27x%3Ay%3A1%27%22",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 3);
    let (status, _) = call(&sim, Method::GET, "/api/v2/tickets?limit=5", None).await;
    assert_eq!(status, 400);
    let (status, body) = call(
        &sim,
        Method::GET,
        "/api/v2/tickets/1?include=conversations",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(body["ticket"]["conversations"].is_array());
}
