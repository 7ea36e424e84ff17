//! The Sentinel simulator's tests: each enforced behaviour of SIMULATORS.md, driven over
//! HTTP against a running `SentinelSim`.

use chrono::{TimeZone, Utc};
use reqwest::Method;
use serde_json::json;

use super::*;
use crate::sentinel::testkit::{API_VERSION, Harness, harness, workspace};

fn code(body: &serde_json::Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

fn message(body: &serde_json::Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("<none>")
}

impl Harness {
    fn list_url(&self, query: &str) -> String {
        format!("{}?api-version={API_VERSION}{query}", self.incidents())
    }

    fn incident_url(&self, id: &str) -> String {
        format!("{}/{id}?api-version={API_VERSION}", self.incidents())
    }

    fn comment_url(&self, id: &str, comment: &str) -> String {
        format!(
            "{}/{id}/comments/{comment}?api-version={API_VERSION}",
            self.incidents()
        )
    }

    async fn put(&self, url: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.raw(Method::PUT, url, Some(body)).await
    }
}

/// A PUT body with every required field.
fn body(status: &str) -> serde_json::Value {
    json!({"properties": {"title": "t", "severity": "Medium", "status": status}})
}

#[tokio::test]
async fn sentinel_sim_requires_one_known_api_version() {
    let h = harness().await;
    let (status, body) = h.get(&h.incidents()).await;
    assert_eq!((status, code(&body)), (400, "MissingApiVersionParameter"));
    let (status, body) = h
        .get(&format!("{}&api-version={API_VERSION}", h.list_url("")))
        .await;
    assert_eq!((status, code(&body)), (400, "InvalidApiVersionParameter"));
    assert!(message(&body).contains("2025-09-01,2025-09-01"), "{body}");
    let (status, body) = h
        .get(&format!("{}?api-version=2019-01-01-preview", h.incidents()))
        .await;
    assert_eq!((status, code(&body)), (400, "InvalidApiVersionParameter"));
    for version in ["2025-09-01", "2024-03-01", "2025-07-01-preview"] {
        let (status, _) = h
            .get(&format!("{}?api-version={version}", h.incidents()))
            .await;
        assert_eq!(status, 200, "{version}");
    }
}

#[tokio::test]
async fn sentinel_sim_checks_bearer_tokens() {
    let h = harness().await;
    let url = h.list_url("");
    let (status, headers, body) = h.raw_with("", Method::GET, &url, None).await;
    assert_eq!((status, code(&body)), (401, "InvalidAuthenticationToken"));
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer authorization_uri="),
        "{challenge}"
    );
    let (graph, _) = h.registry.issue("https://graph.microsoft.com");
    let (status, _, body) = h.raw_with(&graph, Method::GET, &url, None).await;
    assert_eq!((status, code(&body)), (401, "InvalidAuthenticationToken"));
    assert!(message(&body).contains("audience"), "{body}");
    h.registry.expire_all();
    let (status, _, body) = h.raw_with(&h.token, Method::GET, &url, None).await;
    assert_eq!((status, code(&body)), (401, "ExpiredAuthenticationToken"));
    // Auth comes before the api-version check, as on ARM.
    let (status, _, _) = h.raw_with("", Method::GET, &h.incidents(), None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn sentinel_sim_knows_only_its_workspace() {
    let h = harness().await;
    let path = h.list_url("");
    let w = workspace();
    for (from, to, expected) in [
        (
            w.workspace_name.as_str(),
            "other-ws",
            "ParentResourceNotFound",
        ),
        (
            w.resource_group.as_str(),
            "other-rg",
            "ResourceGroupNotFound",
        ),
        (
            w.subscription_id.as_str(),
            "44444444-4444-4444-4444-444444444444",
            "SubscriptionNotFound",
        ),
        (
            "Microsoft.SecurityInsights",
            "Microsoft.Insights",
            "InvalidResourceType",
        ),
    ] {
        let (status, body) = h.get(&path.replacen(from, to, 1)).await;
        assert_eq!((status, code(&body)), (404, expected), "{to}");
    }
    // ARM paths are case-insensitive.
    let (status, _) = h
        .get(
            &path
                .replace("incidents", "Incidents")
                .replace("soc-ws", "SOC-WS"),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn sentinel_sim_serves_the_documented_shapes() {
    let h = harness().await;
    let created = Utc.with_ymd_and_hms(2025, 5, 2, 8, 0, 12).unwrap();
    let id = h.sim.seed_incident(
        SeedIncident::new("Suspicious sign-in")
            .severity("medium")
            .status("Active")
            .owner("ana.ruiz@contoso.example")
            .label("ticket:SEC-1042")
            .auto_label("phishing")
            .provider_incident_id("41877")
            .tactic("InitialAccess")
            .created(created),
    );
    assert!(is_guid(&id));
    let (status, body) = h.get(&h.incident_url(&id)).await;
    assert_eq!(status, 200);
    let resource_id = format!(
        "{}/Incidents/{id}",
        h.incidents().trim_end_matches("/incidents")
    );
    assert_eq!(body["id"], resource_id);
    assert_eq!(body["name"], id);
    assert_eq!(body["type"], "Microsoft.SecurityInsights/Incidents");
    let etag = body["etag"].as_str().unwrap();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && is_guid(&etag[1..etag.len() - 1]),
        "{etag}"
    );
    let p = &body["properties"];
    assert_eq!(p["title"], "Suspicious sign-in");
    assert_eq!(p["severity"], "Medium");
    assert_eq!(p["status"], "Active");
    assert_eq!(p["incidentNumber"], FIRST_NUMBER);
    assert_eq!(
        p["incidentUrl"],
        format!(
            "https://portal.azure.com/#asset/Microsoft_Azure_Security_Insights/Incident{resource_id}"
        )
    );
    assert_eq!(p["providerName"], "Microsoft XDR");
    assert_eq!(p["providerIncidentId"], "41877");
    assert_eq!(p["createdTimeUtc"], "2025-05-02T08:00:12.0000000Z");
    assert_eq!(
        p["labels"],
        json!([{"labelName": "ticket:SEC-1042", "labelType": "User"}, {"labelName": "phishing", "labelType": "AutoAssigned"}])
    );
    let owner = &p["owner"];
    assert_eq!(owner["userPrincipalName"], "ana.ruiz@contoso.example");
    assert_eq!(owner["assignedTo"], "Ana Ruiz");
    assert_eq!(owner["ownerType"], "User");
    assert!(is_guid(owner["objectId"].as_str().unwrap()));
    let data = &p["additionalData"];
    assert_eq!(data["alertsCount"], 1);
    assert_eq!(data["commentsCount"], 0);
    assert_eq!(data["tactics"], json!(["InitialAccess"]));
    assert_eq!(
        data["providerIncidentUrl"],
        format!("https://security.microsoft.com/incidents/41877?tid={DEFAULT_TENANT_ID}")
    );
    assert!(data.get("mergedIncidentNumber").is_none());
    assert!(data.get("techniques").is_none());
    assert!(p.get("description").is_none());

    let native = h
        .sim
        .seed_incident(SeedIncident::new("rule hit").sentinel_native());
    let (_, body) = h.get(&h.incident_url(&native)).await;
    assert_eq!(body["properties"]["providerName"], "Azure Sentinel");
    assert_eq!(body["properties"]["incidentNumber"], FIRST_NUMBER + 1);
    assert!(body["properties"].get("providerIncidentId").is_none());

    let (status, body) = h
        .get(&h.incident_url("00000000-0000-4000-8000-000000000000"))
        .await;
    assert_eq!((status, code(&body)), (404, "NotFound"));
}

#[tokio::test]
async fn sentinel_sim_pages_with_skip_tokens() {
    let h = harness().await;
    for i in 0..120 {
        h.sim
            .seed_incident(SeedIncident::new(format!("incident {i}")));
    }
    let (status, body) = h.get(&h.list_url("&$top=1001")).await;
    assert_eq!((status, code(&body)), (400, "BadRequest"));
    let (status, _) = h.get(&h.list_url("&$top=1000")).await;
    assert_eq!(status, 200);
    let (status, body) = h.get(&h.list_url("&$select=name")).await;
    assert_eq!((status, code(&body)), (400, "BadRequest"));

    // Without $top: pages of 50, newest change first, links on the sim's host.
    let (_, first) = h.get(&h.list_url("")).await;
    assert_eq!(first["value"].as_array().unwrap().len(), DEFAULT_PAGE_SIZE);
    assert_eq!(
        first["value"][0]["properties"]["incidentNumber"],
        FIRST_NUMBER + 119
    );
    let mut link = first["nextLink"].as_str().unwrap().to_string();
    assert!(
        link.starts_with(&format!(
            "{}{}?api-version={API_VERSION}&$skipToken=",
            h.sim.base_url(),
            h.incidents()
        )),
        "{link}"
    );
    let mut pages = 1;
    loop {
        let (status, page) = h.get(&link).await;
        assert_eq!(status, 200);
        pages += 1;
        match page.get("nextLink") {
            Some(next) => link = next.as_str().unwrap().to_string(),
            None => {
                assert_eq!(page["value"].as_array().unwrap().len(), 20);
                break;
            }
        }
    }
    assert_eq!(pages, 3);

    // The original query rides along, %20-encoded, and must not change.
    let filter =
        "&$filter=properties/status%20eq%20'New'&$orderby=properties/incidentNumber%20asc&$top=100";
    let (_, first) = h.get(&h.list_url(filter)).await;
    assert_eq!(
        first["value"][0]["properties"]["incidentNumber"],
        FIRST_NUMBER
    );
    let link = first["nextLink"].as_str().unwrap();
    assert!(
        link.contains("&$filter=properties%2Fstatus%20eq%20%27New%27&$orderby=properties%2FincidentNumber%20asc&$top=100&$skipToken="),
        "{link}"
    );
    let (status, second) = h.get(link).await;
    assert_eq!(status, 200);
    assert_eq!(second["value"].as_array().unwrap().len(), 20);
    assert!(second.get("nextLink").is_none());
    let (status, body) = h.get(&link.replace("%27New%27", "%27Active%27")).await;
    assert_eq!((status, code(&body)), (400, "BadRequest"));
    let (status, body) = h.get(&link.replace("$skipToken=", "$skipToken=x")).await;
    assert_eq!((status, code(&body)), (400, "BadRequest"));
}

#[tokio::test]
async fn sentinel_sim_filters_and_orders() {
    let h = harness().await;
    let t = |d| Utc.with_ymd_and_hms(2026, 11, d, 12, 0, 0).unwrap();
    let a = h
        .sim
        .seed_incident(SeedIncident::new("a").created(t(1)).updated(t(5)));
    let b = h.sim.seed_incident(
        SeedIncident::new("b")
            .status("Active")
            .created(t(2))
            .updated(t(3)),
    );
    let c = h.sim.seed_incident(
        SeedIncident::new("c")
            .status("Closed")
            .classification("Undetermined")
            .created(t(3))
            .updated(t(4)),
    );
    let names = |body: &serde_json::Value| -> Vec<String> {
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, body) = h
        .get(&h.list_url("&$filter=properties/lastModifiedTimeUtc%20ge%202026-11-04T00:00:00Z&$orderby=properties/lastModifiedTimeUtc%20asc"))
        .await;
    assert_eq!(names(&body), vec![c.clone(), a.clone()]);
    let (_, body) = h
        .get(&h.list_url("&$filter=properties/createdTimeUtc%20gt%202026-11-01T12:00:00Z%20and%20properties/status%20eq%20'Active'"))
        .await;
    assert_eq!(names(&body), vec![b.clone()]);
    let (_, body) = h
        .get(&h.list_url("&$orderby=properties/createdTimeUtc%20desc"))
        .await;
    assert_eq!(names(&body), vec![c.clone(), b.clone(), a.clone()]);
    // The known service bug, and without it.
    let undetermined = "&$filter=properties/classification%20eq%20'Undetermined'";
    let (_, body) = h.get(&h.list_url(undetermined)).await;
    assert_eq!(names(&body), Vec::<String>::new());
    h.sim.set_undetermined_filter_bug(false);
    let (_, body) = h.get(&h.list_url(undetermined)).await;
    assert_eq!(names(&body), vec![c]);
    let (status, body) = h
        .get(&h.list_url("&$filter=properties/lastModifiedTimeUtc%20ge%20'2026-11-04T00:00:00Z'"))
        .await;
    assert_eq!((status, code(&body)), (400, "BadRequest"));
    let (status, _) = h.get(&h.list_url("&$orderby=properties/title")).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn sentinel_sim_finds_incidents_by_number_and_provider_id() {
    let h = harness().await;
    let a = h
        .sim
        .seed_incident(SeedIncident::new("a").provider_incident_id("41877"));
    let b = h
        .sim
        .seed_incident(SeedIncident::new("b").provider_incident_id("41900"));
    assert!(h.sim.merge(&a, &b));
    let number = h.sim.incident(&b).unwrap().number;
    let names = |body: &serde_json::Value| -> Vec<String> {
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, body) = h
        .get(&h.list_url(&format!(
            "&$filter=properties/incidentNumber%20eq%20{number}&$top=10"
        )))
        .await;
    assert_eq!((status, names(&body)), (200, vec![b.clone()]));
    // The merged-away incident is still its own Defender incident.
    let (status, body) = h
        .get(&h.list_url("&$filter=properties/providerIncidentId%20eq%20'41900'&$top=10"))
        .await;
    assert_eq!((status, names(&body)), (200, vec![b.clone()]));
    let (_, body) = h
        .get(&h.list_url("&$filter=properties/providerIncidentId%20eq%20'41877'"))
        .await;
    assert_eq!(names(&body), vec![a]);
    let (_, body) = h
        .get(&h.list_url("&$filter=properties/providerIncidentId%20eq%20'1'"))
        .await;
    assert_eq!(names(&body), Vec::<String>::new());
    // Not a filterable property, or the wrong kind of literal: 400.
    for bad in [
        "properties/providerIncidentUrl%20eq%20'x'",
        "properties/additionalData/mergedIncidentNumber%20eq%20'1'",
        "name%20eq%20'x'",
        "properties/incidentNumber%20eq%20'8801'",
        "properties/providerIncidentId%20eq%2041900",
    ] {
        let (status, body) = h.get(&h.list_url(&format!("&$filter={bad}"))).await;
        assert_eq!((status, code(&body)), (400, "BadRequest"), "{bad}");
    }
}

#[tokio::test]
async fn sentinel_sim_put_validates_and_enforces_closing_rules() {
    let h = harness().await;
    let id = h.sim.seed_incident(SeedIncident::new("x"));
    let url = h.incident_url(&id);
    let cases = [
        (
            json!({"properties": {"severity": "Medium", "status": "New"}}),
            "title",
        ),
        (
            json!({"properties": {"title": "t", "status": "New"}}),
            "severity",
        ),
        (
            json!({"properties": {"title": "t", "severity": "Critical", "status": "New"}}),
            "Critical",
        ),
        (json!({"title": "t"}), "properties"),
        (body("Closed"), "status 'Closed' must have classification"),
        (
            json!({"properties": {"title": "t", "severity": "Low", "status": "Closed", "classification": "BenignPositive"}}),
            "classification 'BenignPositive' must have classificationReason",
        ),
        (
            json!({"properties": {"title": "t", "severity": "Low", "status": "Closed", "classification": "TruePositive", "classificationReason": "InaccurateData"}}),
            "not valid for classification 'TruePositive'",
        ),
        (
            json!({"properties": {"title": "t", "severity": "Low", "status": "Closed", "classification": "Undetermined", "classificationReason": "SuspiciousActivity"}}),
            "not valid for classification 'Undetermined'",
        ),
        (
            json!({"properties": {"title": "t", "severity": "Low", "status": "New", "owner": {"objectId": "ana"}}}),
            "objectId",
        ),
        (
            json!({"properties": {"title": "t", "severity": "Low", "status": "New", "labels": [{"labelType": "User"}]}}),
            "labelName",
        ),
    ];
    for (body, needle) in cases {
        let (status, answer) = h.put(&url, body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(message(&answer).contains(needle), "{answer} lacks {needle}");
    }
    assert_eq!(h.sim.incident(&id).unwrap().title, "x");
    for (classification, reason) in [
        ("TruePositive", Some("SuspiciousActivity")),
        ("BenignPositive", Some("SuspiciousButExpected")),
        ("FalsePositive", Some("IncorrectAlertLogic")),
        ("FalsePositive", Some("InaccurateData")),
        ("FalsePositive", None),
        ("Undetermined", None),
    ] {
        let mut closing = body("Closed");
        closing["properties"]["classification"] = classification.into();
        if let Some(reason) = reason {
            closing["properties"]["classificationReason"] = reason.into();
        }
        let (status, answer) = h.put(&url, closing).await;
        assert_eq!(status, 200, "{answer}");
    }
}

#[tokio::test]
async fn sentinel_sim_put_replaces_fully_with_etags() {
    let h = harness().await;
    let id = h.sim.seed_incident(
        SeedIncident::new("x")
            .description("d")
            .owner("ana.ruiz@contoso.example")
            .auto_label("phishing"),
    );
    let url = h.incident_url(&id);
    let (_, current) = h.get(&url).await;
    let etag = current["etag"].as_str().unwrap().to_string();
    let modified = current["properties"]["lastModifiedTimeUtc"]
        .as_str()
        .unwrap()
        .to_string();

    // Stale etag: 409 with ARM's body, nothing saved.
    let mut stale = body("Active");
    stale["etag"] = "\"00000000-0000-0d00-0000-000000000000\"".into();
    let (status, answer) = h.put(&url, stale).await;
    assert_eq!(status, 409);
    assert_eq!(
        answer,
        json!({"error": {"code": "Conflict", "message": format!("New version of resource '{id}' exists. Data was not saved")}})
    );
    assert_eq!(h.sim.incident(&id).unwrap().status, "New");

    // The current etag: applied; what was omitted is cleared; labelType is
    // read-only, so the AutoAssigned label keeps its type.
    let mut put = body("Active");
    put["etag"] = etag.clone().into();
    put["properties"]["labels"] = json!([{"labelName": "phishing", "labelType": "User"}, {"labelName": "new", "labelType": "AutoAssigned"}]);
    let (status, answer) = h.put(&url, put).await;
    assert_eq!(status, 200, "{answer}");
    let p = &answer["properties"];
    assert_eq!(p["status"], "Active");
    assert!(p.get("description").is_none());
    assert!(p.get("owner").is_none());
    assert_eq!(
        p["labels"],
        json!([{"labelName": "phishing", "labelType": "AutoAssigned"}, {"labelName": "new", "labelType": "User"}])
    );
    let new_etag = answer["etag"].as_str().unwrap();
    assert_ne!(new_etag, etag);
    assert!(p["lastModifiedTimeUtc"].as_str().unwrap() > modified.as_str());
    // The old etag is stale now; no etag at all applies.
    let mut again = body("New");
    again["etag"] = etag.into();
    assert_eq!(h.put(&url, again).await.0, 409);
    let (status, answer) = h.put(&url, body("New")).await;
    assert_eq!(status, 200);
    assert_ne!(answer["etag"], new_etag);
    // An owner named by UPN alone is resolved by the server.
    let mut owned = body("New");
    owned["properties"]["owner"] = json!({"userPrincipalName": "ana.ruiz@contoso.example", "email": "ana.ruiz@contoso.example"});
    let (_, answer) = h.put(&url, owned).await;
    assert_eq!(answer["properties"]["owner"]["assignedTo"], "Ana Ruiz");

    // A new GUID creates (201); a non-GUID is refused.
    let fresh = "7d2e6a10-1111-4222-8333-944455556666";
    let (status, answer) = h.put(&h.incident_url(fresh), body("New")).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["properties"]["incidentNumber"], FIRST_NUMBER + 1);
    assert_eq!(answer["properties"]["providerName"], "Azure Sentinel");
    assert_eq!(
        h.put(&h.incident_url("not-a-guid"), body("New")).await.0,
        400
    );
    // DELETE: 200, then 204.
    assert_eq!(
        h.raw(Method::DELETE, &h.incident_url(fresh), None).await.0,
        200
    );
    assert_eq!(
        h.raw(Method::DELETE, &h.incident_url(fresh), None).await.0,
        204
    );
}

#[tokio::test]
async fn sentinel_sim_refuses_patch_and_put_on_the_collection() {
    let h = harness().await;
    let id = h.sim.seed_incident(SeedIncident::new("x"));
    let (status, answer) = h
        .raw(Method::PATCH, &h.incident_url(&id), Some(body("Active")))
        .await;
    assert_eq!((status, code(&answer)), (405, "UnsupportedApiVersion"));
    assert_eq!(answer["error"]["innerError"], serde_json::Value::Null);
    assert!(
        answer["error"]
            .as_object()
            .unwrap()
            .contains_key("innerError")
    );
    assert!(
        message(&answer)
            .ends_with("with API version '2025-09-01' does not support HTTP method 'PATCH'."),
        "{answer}"
    );
    let (status, answer) = h.put(&h.list_url(""), body("New")).await;
    assert_eq!((status, code(&answer)), (405, "UnsupportedApiVersion"));
    assert!(message(&answer).contains("'PUT'"));
}

#[tokio::test]
async fn sentinel_sim_comments() {
    let h = harness().await;
    let id = h.sim.seed_incident(SeedIncident::new("x"));
    let before = h.sim.incident(&id).unwrap();
    let c1 = "11111111-1111-4111-8111-111111111111";
    let (status, answer) = h
        .put(
            &h.comment_url(&id, c1),
            json!({"properties": {"message": "first"}}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(answer["name"], c1);
    assert_eq!(
        answer["type"],
        "Microsoft.SecurityInsights/incidents/comments"
    );
    assert_eq!(answer["properties"]["author"]["name"], APP_NAME);
    let (status, answer) = h
        .put(
            &h.comment_url(&id, c1),
            json!({"properties": {"message": "first, edited"}}),
        )
        .await;
    assert_eq!(
        (status, answer["properties"]["message"].as_str()),
        (200, Some("first, edited"))
    );
    for bad in [
        json!({"properties": {}}),
        json!({"properties": {"message": ""}}),
        json!({"message": "x"}),
    ] {
        assert_eq!(h.put(&h.comment_url(&id, c1), bad).await.0, 400);
    }
    assert_eq!(
        h.put(
            &h.comment_url(&id, "c-1"),
            json!({"properties": {"message": "m"}})
        )
        .await
        .0,
        400
    );
    let missing = "22222222-2222-4222-8222-222222222222";
    let (status, answer) = h
        .put(
            &h.comment_url(missing, c1),
            json!({"properties": {"message": "m"}}),
        )
        .await;
    assert_eq!((status, code(&answer)), (404, "NotFound"));
    for i in 0..4 {
        h.sim
            .add_comment_as(&id, "SOC Analyst", &format!("note {i}"));
    }
    let incident = h.sim.incident(&id).unwrap();
    assert_eq!(incident.comments.len(), 5);
    assert!(incident.modified > before.modified);
    assert_ne!(incident.etag, before.etag);
    let (_, json) = h.get(&h.incident_url(&id)).await;
    assert_eq!(json["properties"]["additionalData"]["commentsCount"], 5);

    // Pageable list, oldest first.
    let list = format!(
        "{}/{id}/comments?api-version={API_VERSION}&$top=2",
        h.incidents()
    );
    let mut url = list.clone();
    let mut messages = Vec::new();
    loop {
        let (status, page) = h.get(&url).await;
        assert_eq!(status, 200, "{page}");
        for c in page["value"].as_array().unwrap() {
            messages.push(c["properties"]["message"].as_str().unwrap().to_string());
        }
        match page.get("nextLink") {
            Some(next) => url = next.as_str().unwrap().to_string(),
            None => break,
        }
    }
    assert_eq!(
        messages,
        vec!["first, edited", "note 0", "note 1", "note 2", "note 3"]
    );
    let (status, one) = h.get(&h.comment_url(&id, c1)).await;
    assert_eq!((status, one["name"].as_str()), (200, Some(c1)));
    assert_eq!(
        h.raw(Method::DELETE, &h.comment_url(&id, c1), None).await.0,
        200
    );
    assert_eq!(
        h.raw(Method::DELETE, &h.comment_url(&id, c1), None).await.0,
        204
    );
    let (status, answer) = h.get(&h.comment_url(&id, c1)).await;
    assert_eq!((status, code(&answer)), (404, "NotFound"));
}

#[tokio::test]
async fn sentinel_sim_merge_shape() {
    let h = harness().await;
    let source = h.sim.seed_incident(
        SeedIncident::new("a")
            .provider_incident_id("41877")
            .alerts(2),
    );
    let target = h.sim.seed_incident(
        SeedIncident::new("b")
            .provider_incident_id("41900")
            .alerts(3),
    );
    let target_before = h.sim.incident(&target).unwrap();
    assert!(h.sim.merge(&source, &target));
    assert!(!h.sim.merge(&source, &source));
    let merged = h.sim.incident(&source).unwrap();
    assert_eq!(merged.status, "Closed");
    assert_eq!(merged.classification.as_deref(), Some("Undetermined"));
    assert_eq!(
        merged.labels,
        vec![SimLabel {
            name: "Redirected".into(),
            label_type: "AutoAssigned".into()
        }]
    );
    // It stays the same Defender incident; its portal link leads to the target.
    assert_eq!(merged.provider_incident_id.as_deref(), Some("41877"));
    assert_eq!(
        merged.provider_incident_url,
        target_before.provider_incident_url
    );
    let target_after = h.sim.incident(&target).unwrap();
    assert_eq!(target_after.alerts_count, 5);
    assert!(target_after.modified > target_before.modified);

    let preview = format!("{}/{source}?api-version=2025-07-01-preview", h.incidents());
    let (_, json) = h.get(&preview).await;
    let data = &json["properties"]["additionalData"];
    assert_eq!(
        data["mergedIncidentNumber"],
        target_before.number.to_string()
    );
    let (_, target_json) = h.get(&h.incident_url(&target)).await;
    assert_eq!(
        data["mergedIncidentUrl"],
        target_json["properties"]["incidentUrl"]
    );
    assert_eq!(
        data["providerIncidentUrl"],
        target_json["properties"]["additionalData"]["providerIncidentUrl"]
    );
    // The stable API does not show the preview fields unless told to.
    let (_, stable) = h.get(&h.incident_url(&source)).await;
    assert!(
        stable["properties"]["additionalData"]
            .get("mergedIncidentNumber")
            .is_none()
    );
    h.sim.set_preview_data_on_stable(true);
    let (_, stable) = h.get(&h.incident_url(&source)).await;
    assert_eq!(
        stable["properties"]["additionalData"]["mergedIncidentNumber"],
        target_before.number.to_string()
    );
    // A merged incident still takes a PUT that resends it as read.
    let mut put = stable.clone();
    put["properties"]["labels"]
        .as_array_mut()
        .unwrap()
        .push(json!({"labelName": "ticket:SEC-1"}));
    let (status, answer) = h.put(&h.incident_url(&source), put).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn sentinel_sim_redirected_label_casing_is_configurable() {
    let h = harness().await;
    let a = h.sim.seed_incident(SeedIncident::new("a"));
    let b = h.sim.seed_incident(SeedIncident::new("b"));
    let c = h.sim.seed_incident(SeedIncident::new("c"));
    h.sim.set_redirected_label("redirected");
    assert!(h.sim.merge(&a, &c));
    let (_, json) = h.get(&h.incident_url(&a)).await;
    assert_eq!(
        json["properties"]["labels"],
        json!([{"labelName": "redirected", "labelType": "AutoAssigned"}])
    );
    h.sim.set_redirected_label(REDIRECTED_LABEL);
    assert!(h.sim.merge(&b, &c));
    assert_eq!(h.sim.incident(&b).unwrap().labels[0].name, "Redirected");
}

#[tokio::test]
async fn sentinel_sim_throttles_per_operation_type() {
    let h = harness().await;
    let id = h.sim.seed_incident(SeedIncident::new("x"));
    let url = h.incident_url(&id);
    // ARM's subscription buckets apply by default: 250 reads, 200 writes.
    let (_, headers, _) = h.raw_with(&h.token, Method::GET, &url, None).await;
    assert_eq!(
        headers["x-ms-ratelimit-remaining-subscription-reads"],
        "249"
    );
    let tight = BucketLimit {
        capacity: 2,
        refill_per_second: 1,
    };
    h.sim.set_rate_limit(Some(ArmRateLimit {
        reads: tight,
        ..ArmRateLimit::SUBSCRIPTION
    }));
    let mut remaining = Vec::new();
    for _ in 0..2 {
        let (status, headers, _) = h.raw_with(&h.token, Method::GET, &url, None).await;
        assert_eq!(status, 200);
        remaining.push(
            headers["x-ms-ratelimit-remaining-subscription-reads"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(remaining, vec!["1", "0"]);
    let (status, headers, answer) = h.raw_with(&h.token, Method::GET, &url, None).await;
    assert_eq!((status, code(&answer)), (429, "TooManyRequests"));
    assert_eq!(headers["retry-after"], "1");
    // Writes have their own bucket.
    let (status, headers, _) = h
        .raw_with(&h.token, Method::PUT, &url, Some(body("Active")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["x-ms-ratelimit-remaining-subscription-writes"],
        "199"
    );
    h.sim.set_rate_limit(None);
    let (status, headers, _) = h.raw_with(&h.token, Method::GET, &url, None).await;
    assert_eq!(status, 200);
    assert!(
        headers
            .get("x-ms-ratelimit-remaining-subscription-reads")
            .is_none()
    );
}

#[tokio::test]
async fn sentinel_sim_admin_http() {
    let h = harness().await;
    let admin = |path: &str| format!("{}/_sim{path}", h.sim.base_url());
    let seeded: serde_json::Value = h
        .http
        .post(admin("/incidents"))
        .json(&json!({"title": "from http", "severity": "High", "labels": [{"name": "vip"}], "owner": "li.wei@contoso.example"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = seeded["name"].as_str().unwrap().to_string();
    assert_eq!(seeded["properties"]["severity"], "High");
    let other = h.sim.seed_incident(SeedIncident::new("other"));
    let response = h
        .http
        .patch(admin(&format!("/incidents/{id}")))
        .json(&json!({"status": "Active", "owner": null, "comment": {"author": "SOC Analyst", "text": "on it"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let incident = h.sim.incident(&id).unwrap();
    assert_eq!(incident.status, "Active");
    assert_eq!(incident.owner, None);
    assert_eq!(incident.comments[0].message, "on it");
    let response = h
        .http
        .post(admin(&format!("/incidents/{id}/merge")))
        .json(&json!({"into": other}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(h.sim.incident(&id).unwrap().has_label("redirected"));
    let bad = h
        .http
        .patch(admin(&format!("/incidents/{id}")))
        .json(&json!({"status": "Resolved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    // Admin calls are not logged; API calls are.
    h.get(&h.incident_url(&id)).await;
    let log: serde_json::Value = h
        .http
        .get(admin("/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log.as_array().unwrap().len(), 1);
    assert_eq!(log[0]["method"], "GET");
    let listed: serde_json::Value = h
        .http
        .get(admin("/incidents"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["value"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn sentinel_sim_every_write_issues_a_new_etag_and_a_later_time() {
    let h = harness().await;
    let id = h.sim.seed_incident(SeedIncident::new("x"));
    let url = h.incident_url(&id);
    let read = |body: &serde_json::Value| {
        let etag = body["etag"].as_str().unwrap().to_string();
        let modified = body["properties"]["lastModifiedTimeUtc"]
            .as_str()
            .unwrap()
            .to_string();
        // 100 ns precision, as ARM writes it.
        assert_eq!(
            modified.len(),
            "2025-05-02T08:12:30.0100000Z".len(),
            "{modified}"
        );
        (etag, modified)
    };
    let (_, body) = h.get(&url).await;
    let mut last = read(&body);
    // A PUT through the API, the same PUT again, a comment, an analyst's edit
    // in the portal: each is a write with its own etag and a later time.
    for step in 0..4 {
        match step {
            0 | 1 => {
                let mut put = body.clone();
                put["properties"]["title"] = "y".into();
                put.as_object_mut().unwrap().remove("etag");
                assert_eq!(h.put(&url, put).await.0, 200);
            }
            2 => {
                let comment = h.comment_url(&id, "33333333-3333-4333-8333-333333333333");
                let (status, _) = h
                    .put(&comment, json!({"properties": {"message": "m"}}))
                    .await;
                assert_eq!(status, 201);
            }
            _ => assert!(h.sim.set_title(&id, "by an analyst")),
        }
        let (_, now) = h.get(&url).await;
        let now = read(&now);
        assert_ne!(now.0, last.0, "step {step}");
        assert!(now.1 > last.1, "step {step}: {} after {}", now.1, last.1);
        last = now;
    }
}

#[tokio::test]
async fn sentinel_sim_answers_the_incident_actions() {
    let h = harness().await;
    let id = h.sim.seed_incident(SeedIncident::new("x"));
    for action in ["alerts", "bookmarks", "entities"] {
        let url = format!("{}/{id}/{action}?api-version={API_VERSION}", h.incidents());
        let (status, body) = h.raw(Method::POST, &url, None).await;
        assert_eq!(status, 200, "{action}: {body}");
    }
    let url = format!("{}/{id}/nonsense?api-version={API_VERSION}", h.incidents());
    let (status, body) = h.raw(Method::POST, &url, None).await;
    assert_eq!((status, code(&body)), (404, "NotFound"));
}

#[test]
fn sentinel_sim_helpers() {
    assert_eq!(display_name("ana.ruiz@contoso.example"), "Ana Ruiz");
    assert!(is_guid("6f0c2b8e-7c1a-4a53-9a0e-2d3f4b5c6d7e"));
    assert!(!is_guid("6f0c2b8e-7c1a-4a53-9a0e-2d3f4b5c6d7"));
    assert!(is_guid(&guid_from("x")) && guid_from("x") == guid_from("x"));
    assert_eq!(
        encode("properties/status eq 'New'"),
        "properties%2Fstatus%20eq%20%27New%27"
    );
    let token = SkipToken {
        key: -5,
        tie: 8800,
        fingerprint: 0xabc,
    };
    assert_eq!(SkipToken::decode(&token.encode()), Some(token));
    assert_eq!(segments("/a/b%20c/d+e"), vec!["a", "b c", "d+e"]);
}

#[tokio::test]
async fn sentinel_sim_gives_system_data_naming_the_analyst_or_the_app() {
    let h = harness().await;
    let id = h.sim.seed_incident(SeedIncident::new("attributed"));
    let url = h.incident_url(&id);
    let (_, got) = h.get(&url).await;
    let data = &got["systemData"];
    assert_eq!(data["createdBy"], "Microsoft Sentinel");
    assert_eq!(data["createdByType"], "Application");
    assert_eq!(data["lastModifiedBy"], "Microsoft Sentinel");
    assert_eq!(data["createdAt"], got["properties"]["createdTimeUtc"]);
    assert_eq!(
        data["lastModifiedAt"],
        got["properties"]["lastModifiedTimeUtc"]
    );

    // An analyst's change in the portal names the analyst.
    h.sim
        .update_as(&id, "ann@contoso.com", |i| i.status = "Active".into())
        .unwrap();
    let (_, got) = h.get(&url).await;
    assert_eq!(got["systemData"]["lastModifiedBy"], "ann@contoso.com");
    assert_eq!(got["systemData"]["lastModifiedByType"], "User");
    assert_eq!(
        got["systemData"]["lastModifiedAt"],
        got["properties"]["lastModifiedTimeUtc"]
    );
    let change = AnalystChange {
        by: Some("bob@contoso.com".into()),
        severity: Some("High".into()),
        ..AnalystChange::default()
    };
    h.sim.apply_analyst_change(&id, change).unwrap();
    let (_, got) = h.get(&url).await;
    assert_eq!(got["systemData"]["lastModifiedBy"], "bob@contoso.com");
    // Unnamed, a portal change is the default analyst's.
    h.sim.update_as_analyst(&id, |i| i.severity = "Low".into());
    let (_, got) = h.get(&url).await;
    assert_eq!(got["systemData"]["lastModifiedBy"], DEFAULT_ANALYST_UPN);

    // The app's write (a PUT, a comment) names the app, as an Application; the
    // listing says the same.
    let mut put = body("Active");
    put["etag"] = got["etag"].clone();
    let (status, written) = h.put(&url, put).await;
    assert_eq!(status, 200, "{written}");
    assert_eq!(written["systemData"]["lastModifiedBy"], APP_OBJECT_ID);
    assert_eq!(written["systemData"]["lastModifiedByType"], "Application");
    assert_eq!(written["systemData"]["createdBy"], "Microsoft Sentinel");
    h.sim.update_as(&id, "ann@contoso.com", |_| {});
    let comment = h.comment_url(&id, "0f8fad5b-d9cb-469f-a165-70867728950e");
    let (status, _) = h
        .put(&comment, json!({"properties": {"message": "hi"}}))
        .await;
    assert_eq!(status, 201);
    let (_, listed) = h.get(&h.list_url("")).await;
    assert_eq!(
        listed["value"][0]["systemData"]["lastModifiedBy"],
        APP_OBJECT_ID
    );
}
