//! The Graph simulator's tests: each enforced behaviour of SIMULATORS.md, driven over HTTP
//! against a running `GraphSim`.

use chrono::{TimeZone, Utc};
use reqwest::Method;
use serde_json::json;

use super::*;
use crate::graph::testkit::{Harness, TENANT, harness};

const LIST: &str = "/v1.0/security/incidents";

fn error_code(body: &serde_json::Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn graph_sim_top_over_50_is_the_exact_400() {
    let h = harness().await;
    let (status, body) = h.get(&format!("{LIST}?$top=100")).await;
    assert_eq!(status, 400);
    let error = &body["error"];
    assert_eq!(error["code"], "");
    assert_eq!(
        error["message"],
        "The query specified in the URI is not valid. The limit of '50' for Top query has been exceeded. The value from the incoming request is '100'."
    );
    assert_eq!(error["details"], json!([]));
    let inner = &error["innerError"];
    assert!(inner["date"].is_string());
    assert!(inner["request-id"].is_string());
    assert!(inner["client-request-id"].is_string());
    assert_eq!(h.get(&format!("{LIST}?$top=50")).await.0, 200);
}

#[tokio::test]
async fn graph_sim_hides_awaiting_action_without_prefer() {
    let h = harness().await;
    let id = h
        .sim
        .seed_incident(SeedIncident::new("x").status("awaitingAction"));
    let (_, plain) = h.get(&format!("{LIST}/{id}")).await;
    assert_eq!(plain["status"], "unknownFutureValue");
    let (_, listed) = h.get(LIST).await;
    assert_eq!(listed["value"][0]["status"], "unknownFutureValue");
    let (_, preferred) = h
        .raw(Method::GET, &format!("{LIST}/{id}"), true, None)
        .await;
    assert_eq!(preferred["status"], "awaitingAction");
    assert_eq!(h.sim.incident(&id).unwrap().status, "awaitingAction");
}

#[tokio::test]
async fn graph_sim_serves_the_documented_shapes() {
    let h = harness().await;
    let id = h.sim.seed_incident(
        SeedIncident::new("Multi-stage incident")
            .severity("high")
            .assigned_to("soc-bot@contoso.com")
            .tag("ticket:SEC-1042")
            .comment("Incident Sync App", "Ticket SEC-1042 opened")
            .created(Utc.with_ymd_and_hms(2025, 5, 2, 7, 58, 40).unwrap()),
    );
    assert_eq!(id, FIRST_ID.to_string());
    let (status, body) = h.get(&format!("{LIST}/{id}?$expand=alerts")).await;
    assert_eq!(status, 200);
    let base = h.sim.base_url();
    assert_eq!(
        body["@odata.context"],
        format!("{base}/v1.0/$metadata#security/incidents/$entity")
    );
    assert_eq!(body["@odata.type"], "#microsoft.graph.security.incident");
    assert_eq!(body["displayName"], "Multi-stage incident");
    assert_eq!(body["severity"], "high");
    assert_eq!(body["classification"], "unknown");
    assert_eq!(body["description"], serde_json::Value::Null);
    assert_eq!(body["redirectIncidentId"], serde_json::Value::Null);
    assert_eq!(body["customTags"], json!(["ticket:SEC-1042"]));
    assert_eq!(body["alerts"], json!([]));
    assert_eq!(body["tenantId"], TENANT);
    assert_eq!(
        body["incidentWebUrl"],
        format!("https://security.microsoft.com/incidents/{id}?tid={TENANT}")
    );
    assert_eq!(body["createdDateTime"], "2025-05-02T07:58:40.0000000Z");
    assert_eq!(
        body["comments"][0],
        json!({"comment": "Ticket SEC-1042 opened", "createdByDisplayName": "Incident Sync App", "createdDateTime": "2025-05-02T07:58:40.0000000Z"})
    );

    let (status, body) = h.get(&format!("{LIST}?$count=true&$top=1")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["@odata.context"],
        format!("{base}/v1.0/$metadata#security/incidents")
    );
    assert_eq!(body["@odata.count"], 1);
    assert!(body.get("@odata.nextLink").is_none());
    assert!(body["value"][0].get("alerts").is_none());

    let (status, body) = h.get(&format!("{LIST}/123")).await;
    assert_eq!((status, error_code(&body)), (404, "NotFound"));
}

#[tokio::test]
async fn graph_sim_refuses_what_graph_does_not_document() {
    let h = harness().await;
    for (query, needle) in [
        (
            "$orderby=lastUpdateDateTime%20asc",
            "'$orderby' is not supported",
        ),
        ("$select=id", "'$select' is not supported"),
        ("$top=ten", "non-negative integer"),
        ("$top=5&$TOP=6", "more than once"),
        ("$expand=evidence", "'evidence'"),
        ("$count=yes", "not a valid count option"),
        ("$skiptoken=garbage", "$skiptoken"),
        (
            "$filter=displayName%20eq%20'x'",
            "cannot be used in a $filter",
        ),
        (
            "$filter=title%20eq%20'x'",
            "Could not find a property named 'title'",
        ),
        (
            "$filter=lastUpdateDateTime%20ge%20'2026-11-01T00:00:00Z'",
            "incompatible types",
        ),
        ("$filter=status%20eq%20active", "quote strings"),
        ("$filter=status%20eq%20'bogus'", "not a valid enumeration"),
        ("$filter=status%20gt%20'active'", "cannot be applied"),
        (
            "$filter=status%20eq%20'active'%20or%20status%20eq%20'resolved'",
            "'or' is not supported",
        ),
        ("$filter=(status%20eq%20'active')", "parentheses"),
        (
            "$filter=lastUpdateDateTime%20ge",
            "expected 'property operator value'",
        ),
    ] {
        let (status, body) = h.get(&format!("{LIST}?{query}")).await;
        assert_eq!(status, 400, "{query}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{query}: {message}");
    }
    let (status, body) = h.get("/v1.0/security/alerts_v2x").await;
    assert_eq!((status, error_code(&body)), (400, "BadRequest"));
}

#[tokio::test]
async fn graph_sim_filters_by_time_status_and_assignee() {
    let h = harness().await;
    let at = |d| Utc.with_ymd_and_hms(2026, 11, d, 0, 0, 0).unwrap();
    let a = h
        .sim
        .seed_incident(SeedIncident::new("a").updated(at(1)).status("resolved"));
    let b = h.sim.seed_incident(
        SeedIncident::new("b")
            .updated(at(2))
            .assigned_to("o'neil@x"),
    );
    let c = h.sim.seed_incident(SeedIncident::new("c").updated(at(3)));
    let ids = |body: serde_json::Value| -> Vec<String> {
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    };
    for (filter, expected) in [
        ("lastUpdateDateTime ge 2026-11-02T00:00:00Z", vec![&c, &b]),
        ("lastUpdateDateTime gt 2026-11-02T00:00:00Z", vec![&c]),
        (
            "lastUpdateDateTime le 2026-11-02T00:00:00.0000000Z",
            vec![&b, &a],
        ),
        ("lastUpdateDateTime lt 2026-11-02T00:00:00Z", vec![&a]),
        ("status eq 'Resolved'", vec![&a]),
        (
            "status eq 'active' and lastUpdateDateTime ge 2026-11-01T00:00:00Z",
            vec![&c, &b],
        ),
        ("assignedTo eq 'o''neil@x'", vec![&b]),
        ("assignedTo eq null", vec![&c, &a]),
        ("determination eq 'notMalicious'", vec![]),
        ("createdDateTime ge 2026-11-03T00:00:00+00:00", vec![&c]),
    ] {
        let mut url = Url::parse(&format!("{}{LIST}", h.sim.base_url())).unwrap();
        url.query_pairs_mut().append_pair("$filter", filter);
        let path = format!("{LIST}?{}", url.query().unwrap());
        let (status, body) = h.get(&path).await;
        assert_eq!(status, 200, "{filter}: {body}");
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(ids(body), expected, "{filter}");
    }
}

/// Follows next links from `first`, returning the ids of each page.
async fn pages(h: &Harness, first: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let (status, mut body) = h.get(first).await;
    assert_eq!(status, 200, "{body}");
    loop {
        pages.push(
            body["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_string())
                .collect(),
        );
        let Some(next) = body["@odata.nextLink"].as_str() else {
            break;
        };
        let path = next
            .strip_prefix(&h.sim.base_url())
            .expect("a link on the sim");
        let (status, next_body) = h.get(path).await;
        assert_eq!(status, 200, "{next_body}");
        body = next_body;
    }
    pages
}

#[tokio::test]
async fn graph_sim_next_links_are_opaque_and_checked() {
    let h = harness().await;
    for i in 0..7 {
        h.sim.seed_incident(SeedIncident::new(format!("{i}")));
    }
    let (_, body) = h.get(&format!("{LIST}?$top=3&$count=true")).await;
    assert_eq!(body["@odata.count"], 7);
    let next = body["@odata.nextLink"].as_str().unwrap().to_string();
    assert!(next.starts_with(&format!("{}/v1.0/security/incidents?", h.sim.base_url())));
    assert!(
        next.contains("%24top=3") && next.contains("%24count=true"),
        "{next}"
    );
    assert!(next.contains("%24skiptoken="), "{next}");
    let path = next.strip_prefix(&h.sim.base_url()).unwrap();
    let (status, second) = h.get(path).await;
    assert_eq!(status, 200);
    assert!(second.get("@odata.count").is_none());

    // A client that rebuilds the link is caught.
    let (status, body) = h.get(&format!("{path}&$skip=3")).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("$skip"));
    let rebuilt = path.replace("%24top=3", "%24top=4");
    let (status, body) = h.get(&rebuilt).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not belong")
    );
    h.sim.set_reject_skip_with_token(false);
    assert_eq!(h.get(&format!("{path}&$skip=3")).await.0, 200);

    let all = pages(&h, &format!("{LIST}?$top=3")).await;
    assert_eq!(all.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 1]);
    let skipped = pages(&h, &format!("{LIST}?$top=3&$skip=5")).await;
    assert_eq!(
        skipped,
        vec![
            all[1][2..]
                .iter()
                .chain(&all[2])
                .cloned()
                .collect::<Vec<_>>()
        ]
    );
}

#[tokio::test]
async fn graph_sim_pages_shift_under_a_listing_unless_frozen() {
    let h = harness().await;
    let ids: Vec<String> = (0..6)
        .map(|i| h.sim.seed_incident(SeedIncident::new(format!("{i}"))))
        .collect();
    // Kinder, opt-in: the listing's result list is frozen at page one. Shown
    // here only so that the switch has a test; no other test turns it on.
    h.sim.set_live_paging(false);
    // Newest first: 6th, 5th, …
    let (_, first) = h.get(&format!("{LIST}?$top=3")).await;
    let next = first["@odata.nextLink"].as_str().unwrap().to_string();
    assert!(h.sim.set_title(&ids[0], "touched while paging"));
    let path = next.strip_prefix(&h.sim.base_url()).unwrap();
    let (_, second) = h.get(path).await;
    let second: Vec<&str> = second["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(second, vec![&ids[2], &ids[1], &ids[0]]);

    // Live paging (the default) re-runs the query: the touched incident jumps
    // to the front and the offsets shift, as with plain $skip paging.
    h.sim.set_live_paging(true);
    let (_, first) = h.get(&format!("{LIST}?$top=3")).await;
    let next = first["@odata.nextLink"].as_str().unwrap().to_string();
    assert!(h.sim.set_title(&ids[1], "touched again"));
    let path = next.strip_prefix(&h.sim.base_url()).unwrap();
    let (_, second) = h.get(path).await;
    let first: Vec<&str> = first["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    let second: Vec<&str> = second["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(first, vec![&ids[0], &ids[5], &ids[4]]);
    // ids[4] comes again, and ids[1] (now first) is never seen.
    assert_eq!(second, vec![&ids[4], &ids[3], &ids[2]]);
}

#[tokio::test]
async fn graph_sim_empty_pages_keep_their_next_link() {
    let h = harness().await;
    for i in 0..5 {
        h.sim.seed_incident(SeedIncident::new(format!("{i}")));
    }
    h.sim.set_empty_pages(true);
    let sizes: Vec<usize> = pages(&h, &format!("{LIST}?$top=2"))
        .await
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(sizes, vec![2, 0, 2, 0, 1]);
}

#[tokio::test]
async fn graph_sim_patch_validates_like_the_update_doc() {
    let h = harness().await;
    let id = h.sim.seed_incident(SeedIncident::new("x").tag("keep"));
    let path = format!("{LIST}/{id}");
    for (body, needle) in [
        (json!({"status": "redirected"}), "set by the service"),
        (json!({"status": "awaitingAction"}), "set by the service"),
        (json!({"status": "unknownFutureValue"}), "Cannot convert"),
        (json!({"status": "closed"}), "incidentStatus"),
        (json!({"status": null}), "incidentStatus"),
        (json!({"classification": "bogus"}), "alertClassification"),
        (json!({"severity": "high"}), "read-only"),
        (json!({"displayName": "y"}), "read-only"),
        (json!({"resolvingComment": "y"}), "read-only"),
        (json!({"Status": "active"}), "does not exist"),
        (json!({"customTags": "one"}), "Collection(Edm.String)"),
        (json!({"assignedTo": 3}), "Edm.String"),
        (json!(["status"]), "Unable to read JSON"),
    ] {
        let (status, reply) = h.raw(Method::PATCH, &path, false, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(error_code(&reply), "BadRequest", "{body}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
    }
    // Nothing above changed the incident.
    assert_eq!(h.sim.incident(&id).unwrap().last_modified_by, None);

    let (status, reply) = h
        .raw(
            Method::PATCH,
            &path,
            false,
            Some(json!({
                "status": "Resolved",
                "classification": "TruePositive",
                "determination": "MultiStagedAttack",
                "customTags": ["keep", "ticket:SEC-9"],
            })),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["status"], "resolved");
    assert_eq!(reply["classification"], "truePositive");
    assert_eq!(reply["determination"], "multiStagedAttack");
    assert_eq!(reply["customTags"], json!(["keep", "ticket:SEC-9"]));
    assert_eq!(reply["lastModifiedBy"], APP_NAME);
    let (_, reply) = h
        .raw(
            Method::PATCH,
            &path,
            false,
            Some(json!({"determination": "notEnoughDataToValidate"})),
        )
        .await;
    assert_eq!(reply["determination"], "insufficientData");

    let (status, reply) = h
        .raw(
            Method::PATCH,
            &format!("{LIST}/4"),
            false,
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!((status, error_code(&reply)), (404, "NotFound"));
    let (status, _) = h.raw(Method::DELETE, &path, false, None).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn graph_sim_comment_post_returns_the_whole_list() {
    let h = harness().await;
    let id = h
        .sim
        .seed_incident(SeedIncident::new("x").comment("Analyst", "first"));
    let before = h.sim.incident(&id).unwrap().updated;
    let path = format!("{LIST}/{id}/comments");
    let body = json!({"@odata.type": "microsoft.graph.security.alertComment", "comment": "second"});
    let (status, reply) = h.raw(Method::POST, &path, false, Some(body)).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["@odata.context"],
        format!(
            "{}/v1.0/$metadata#Collection(microsoft.graph.security.alertComment)",
            h.sim.base_url()
        )
    );
    let comments = reply["value"].as_array().unwrap();
    assert_eq!(comments.len(), 2);
    assert_eq!(comments[1]["comment"], "second");
    assert_eq!(comments[1]["createdByDisplayName"], APP_NAME);
    assert!(h.sim.incident(&id).unwrap().updated > before);

    for body in [
        json!({"comment": ""}),
        json!({"text": "x"}),
        json!({"@odata.type": "x", "comment": "y"}),
    ] {
        let (status, _) = h.raw(Method::POST, &path, false, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}");
    }
}

#[tokio::test]
async fn graph_sim_requires_a_graph_token() {
    let h = harness().await;
    let url = format!("{}{LIST}", h.sim.base_url());
    let response = h.http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(body["error"]["message"], "Access token is empty.");
    assert!(body["error"]["innerError"]["request-id"].is_string());

    let (arm, _) = h.registry.issue("https://management.azure.com");
    let response = h.http.get(&url).bearer_auth(arm).send().await.unwrap();
    assert_eq!(response.status(), 401);

    // A sovereign cloud's audience.
    h.sim.set_audience("https://graph.microsoft.us");
    assert_eq!(h.get(LIST).await.0, 401);
    let (us, _) = h.registry.issue("https://graph.microsoft.us");
    let response = h.http.get(&url).bearer_auth(us).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(h.sim.audience(), "https://graph.microsoft.us");
}

#[tokio::test]
async fn graph_sim_rate_limit_answers_429_with_retry_after() {
    let h = harness().await;
    h.sim.set_rate_limit(Some(RateLimit {
        per_minute: 2,
        per_hour: 100,
    }));
    assert_eq!(h.get(LIST).await.0, 200);
    assert_eq!(h.get(LIST).await.0, 200);
    let url = format!("{}{LIST}", h.sim.base_url());
    let response = h.http.get(&url).bearer_auth(&h.token).send().await.unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TooManyRequests");
    assert_eq!(body["error"]["innerError"]["code"], "429");
    h.sim.set_rate_limit(None);
    assert_eq!(h.get(LIST).await.0, 200);
}

#[tokio::test]
async fn graph_sim_updates_in_one_instant_still_move_forward() {
    let h = harness().await;
    let id = h.sim.seed_incident(SeedIncident::new("x"));
    let mut last = h.sim.incident(&id).unwrap().updated;
    for i in 0..200 {
        let after = h
            .sim
            .update_as_defender(&id, |inc| inc.display_name = Some(format!("{i}")))
            .unwrap();
        assert!(after.updated > last);
        assert_eq!(after.last_modified_by.as_deref(), Some(DEFENDER_NAME));
        last = after.updated;
    }
    let wire = h.sim.incident_json(&id).unwrap();
    let text = wire["lastUpdateDateTime"].as_str().unwrap();
    assert_eq!(text.len(), "2025-05-02T08:11:04.6033333Z".len(), "{text}");
    assert_eq!(wire::parse_timestamp(text), Some(last));
}

#[tokio::test]
async fn graph_sim_admin_rust_api() {
    let h = harness().await;
    let a = h.sim.seed_incident(SeedIncident::new("a"));
    let b = h.sim.seed_incident(SeedIncident::new("b").id("50000"));
    let c = h.sim.seed_incident(SeedIncident::new("c"));
    assert_eq!(
        (a.as_str(), b.as_str(), c.as_str()),
        ("41000", "50000", "50001")
    );
    assert!(
        h.sim
            .try_seed_incident(SeedIncident::new("d").severity("huge"))
            .is_err()
    );
    assert!(
        h.sim
            .try_seed_incident(SeedIncident::new("d").id("50000"))
            .is_err()
    );

    assert!(h.sim.set_status(&a, "InProgress"));
    assert!(!h.sim.set_status(&a, "closed"));
    assert!(h.sim.set_severity(&a, "low"));
    assert!(h.sim.set_title(&a, "renamed"));
    assert!(h.sim.assign(&a, "analyst@contoso.com"));
    assert!(h.sim.add_comment_as(&a, "Analyst", "looking"));
    assert!(!h.sim.set_title("1", "nope"));
    let inc = h.sim.incident(&a).unwrap();
    assert_eq!(inc.status, "inProgress");
    assert_eq!(inc.severity, "low");
    assert_eq!(inc.display_name.as_deref(), Some("renamed"));
    assert_eq!(inc.assigned_to.as_deref(), Some("analyst@contoso.com"));
    assert_eq!(inc.comments[0].author, "Analyst");

    let target_before = h.sim.incident(&c).unwrap().updated;
    assert!(h.sim.redirect(&a, &c));
    let inc = h.sim.incident(&a).unwrap();
    assert_eq!(inc.status, "redirected");
    assert_eq!(inc.redirect_incident_id.as_deref(), Some(c.as_str()));
    assert!(h.sim.incident(&c).unwrap().updated > target_before);
    assert!(!h.sim.redirect(&a, "404"));

    let ids: Vec<String> = h.sim.incidents().into_iter().map(|i| i.id).collect();
    assert_eq!(ids, vec![a, b, c]);
}

#[tokio::test]
async fn graph_sim_admin_http_surface_needs_no_token() {
    let h = harness().await;
    let base = h.sim.base_url();
    let response = h
        .http
        .post(format!("{base}/_sim/incidents"))
        .json(&json!({"displayName": "seeded over HTTP", "severity": "High", "status": "awaitingAction", "customTags": ["t"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let seeded: serde_json::Value = response.json().await.unwrap();
    let id = seeded["id"].as_str().unwrap().to_string();
    assert_eq!(seeded["status"], "awaitingAction");
    assert_eq!(seeded["severity"], "high");

    let response = h
        .http
        .patch(format!("{base}/_sim/incidents/{id}"))
        .json(&json!({"status": "redirected", "redirectIncidentId": "41999", "assignedTo": null, "comment": {"author": "Defender Experts", "text": "merged"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let changed: serde_json::Value = response.json().await.unwrap();
    assert_eq!(changed["status"], "redirected");
    assert_eq!(changed["redirectIncidentId"], "41999");
    assert_eq!(
        changed["comments"][0]["createdByDisplayName"],
        "Defender Experts"
    );
    assert_eq!(changed["lastModifiedBy"], DEFENDER_NAME);

    let response = h
        .http
        .patch(format!("{base}/_sim/incidents/{id}"))
        .json(&json!({"colour": "red"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    h.get(LIST).await;
    let listed: serde_json::Value = h
        .http
        .get(format!("{base}/_sim/incidents"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["value"].as_array().unwrap().len(), 1);
    let log: serde_json::Value = h
        .http
        .get(format!("{base}/_sim/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        log,
        json!([{"method": "GET", "path": LIST, "query": null, "status": 200}])
    );
}

#[tokio::test]
async fn graph_sim_pages_hold_50_by_default() {
    let h = harness().await;
    for i in 0..51 {
        h.sim.seed_incident(SeedIncident::new(format!("{i}")));
    }
    let (status, first) = h.get(LIST).await;
    assert_eq!(status, 200);
    assert_eq!(first["value"].as_array().unwrap().len(), MAX_TOP);
    let next = first["@odata.nextLink"].as_str().unwrap();
    let (_, second) = h.get(next.strip_prefix(&h.sim.base_url()).unwrap()).await;
    assert_eq!(second["value"].as_array().unwrap().len(), 1);
    assert!(second.get("@odata.nextLink").is_none());
}

#[tokio::test]
async fn graph_sim_skip_paging_can_end_silently_past_a_limit() {
    let h = harness().await;
    for i in 0..8 {
        h.sim.seed_incident(SeedIncident::new(format!("{i}")));
    }
    h.sim.set_skip_limit(Some(4));
    let sizes: Vec<usize> = pages(&h, &format!("{LIST}?$top=3"))
        .await
        .iter()
        .map(Vec::len)
        .collect();
    // Offsets 0 and 3 answer; offset 6 is past the limit: an empty last page.
    assert_eq!(sizes, vec![3, 3, 0]);
    let (status, body) = h.get(&format!("{LIST}?$skip=5")).await;
    assert_eq!(status, 200);
    assert_eq!(body["value"], json!([]));
    assert!(body.get("@odata.nextLink").is_none());
    h.sim.set_skip_limit(None);
    assert_eq!(pages(&h, &format!("{LIST}?$top=3")).await.len(), 3);
}

#[tokio::test]
async fn graph_sim_throttles_at_the_defender_limits_by_default() {
    let h = harness().await;
    for _ in 0..RateLimit::DEFENDER_API.per_minute {
        assert_eq!(h.get(LIST).await.0, 200);
    }
    let (status, body) = h.get(LIST).await;
    assert_eq!((status, error_code(&body)), (429, "TooManyRequests"));
}

#[tokio::test]
async fn graph_sim_comments_can_only_be_added() {
    let h = harness().await;
    let id = h
        .sim
        .seed_incident(SeedIncident::new("x").comment("Analyst", "first"));
    let path = format!("{LIST}/{id}/comments");
    for method in [Method::GET, Method::PATCH, Method::PUT, Method::DELETE] {
        let (status, _) = h.raw(method.clone(), &path, false, None).await;
        assert_eq!(status, 405, "{method}");
    }
    // The comments come embedded in the incident.
    let (_, incident) = h.get(&format!("{LIST}/{id}")).await;
    assert_eq!(incident["comments"][0]["comment"], "first");
}

#[tokio::test]
async fn graph_sim_has_no_etag_and_the_last_writer_wins() {
    let h = harness().await;
    let id = h.sim.seed_incident(SeedIncident::new("x"));
    let path = format!("{LIST}/{id}");
    let (_, first) = h
        .raw(
            Method::PATCH,
            &path,
            false,
            Some(json!({"status": "inProgress", "assignedTo": "a@contoso.com"})),
        )
        .await;
    assert!(first.get("@odata.etag").is_none(), "{first}");
    // A second writer that never read the first write still wins, and what
    // it leaves out keeps its value.
    let (status, second) = h
        .raw(
            Method::PATCH,
            &path,
            false,
            Some(json!({"assignedTo": "b@contoso.com"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(second["assignedTo"], "b@contoso.com");
    assert_eq!(second["status"], "inProgress");
    assert!(
        second["lastUpdateDateTime"].as_str().unwrap()
            > first["lastUpdateDateTime"].as_str().unwrap()
    );
}

#[test]
fn graph_sim_skiptokens_round_trip() {
    let token = SkipToken {
        offset: 150,
        snapshot: 7,
        fingerprint: 0xdead_beef,
        empty_served: true,
    };
    assert_eq!(SkipToken::decode(&token.encode()), Some(token));
    assert_eq!(SkipToken::decode("djEuMS4x"), None);
}
