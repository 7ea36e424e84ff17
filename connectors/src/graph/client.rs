//! [`GraphSource`]: the Graph security incidents API as an [`IncidentSource`]. Lists
//! changes with `$filter=lastUpdateDateTime ge …&$top=50` (no `$orderby`: it is not
//! documented), follows `@odata.nextLink` exactly as given, asks for evolvable enum
//! members (`awaitingAction`) on every call, PATCHes only the fields being changed,
//! and merges `customTags` itself because a PATCH replaces the whole set.

use async_trait::async_trait;
use bridge_core::model::{Comment, IncidentSnapshot, IncidentUpdate, Page, Timestamp};
use bridge_core::ports::{ConnectorResult, ErrorKind, IncidentSource};
use chrono::{SecondsFormat, SubsecRound};
use reqwest::Method;
use url::Url;

use super::convert;
use super::wire::{Incident, NewComment, ODataList};
use crate::http::{Api, Request};

/// The largest page the incidents API serves (`$top` > 50 is a 400).
pub const PAGE_SIZE: usize = 50;
/// Without it Graph hides `awaitingAction` behind `unknownFutureValue`.
pub const PREFER_UNKNOWN_ENUMS: &str = "include-unknown-enum-members";
const INCIDENTS_PATH: &str = "v1.0/security/incidents";

/// Graph security incidents. The `Api`'s base URL is the configured `base_url`
/// (`https://graph.microsoft.com`), without the version segment.
#[derive(Debug, Clone)]
pub struct GraphSource {
    api: Api,
}

impl GraphSource {
    pub fn new(api: Api) -> GraphSource {
        GraphSource { api }
    }

    pub fn api(&self) -> &Api {
        &self.api
    }

    /// `…/v1.0/security/incidents`.
    pub fn incidents_url(&self) -> Url {
        self.api.url(INCIDENTS_PATH)
    }

    /// `…/v1.0/security/incidents/{id}[/more…]`, each segment percent-encoded.
    fn incident_url(&self, id: &str, more: &[&str]) -> Url {
        let mut url = self.incidents_url();
        url.path_segments_mut()
            .expect("an http(s) URL has path segments")
            .push(id)
            .extend(more);
        url
    }

    /// The first-page URL for changes at or after `since`. The literal is cut to
    /// microseconds (never more than the 7 digits .NET parses; cutting down only
    /// widens the window).
    pub fn changed_since_url(&self, since: Timestamp) -> Url {
        let mut url = self.incidents_url();
        let literal = since
            .trunc_subsecs(6)
            .to_rfc3339_opts(SecondsFormat::AutoSi, true);
        url.query_pairs_mut()
            .append_pair("$filter", &format!("lastUpdateDateTime ge {literal}"))
            .append_pair("$top", &PAGE_SIZE.to_string());
        url
    }

    fn get_request(url: Url) -> Request {
        Request::get(url).header("Prefer", PREFER_UNKNOWN_ENUMS)
    }

    async fn fetch_page(&self, url: Url) -> ConnectorResult<Page<IncidentSnapshot>> {
        let response = self.api.send(Self::get_request(url)).await?;
        let list: ODataList<serde_json::Value> = response.json(self.api.system())?;
        let items = list
            .value
            .into_iter()
            .filter_map(|value| match convert::snapshot_from_value(value) {
                Ok(snapshot) => Some(snapshot),
                Err(e) => {
                    tracing::warn!(
                        system = %self.api.system(),
                        incident_id = e.id.as_deref().unwrap_or("<none>"),
                        reason = %e.reason,
                        "skipping an incident that does not convert"
                    );
                    None
                }
            })
            .collect();
        Ok(Page {
            items,
            next: list.next_link,
        })
    }

    /// The incident as Graph returns it.
    pub async fn get_wire(&self, id: &str) -> ConnectorResult<Incident> {
        self.api
            .send(Self::get_request(self.incident_url(id, &[])))
            .await?
            .json(self.api.system())
    }

    fn snapshot(&self, incident: &Incident) -> ConnectorResult<IncidentSnapshot> {
        convert::to_snapshot(incident)
            .map_err(|e| self.api.error(ErrorKind::InvalidPayload, e.to_string()))
    }

    /// The PATCH body for `update`: the vendor's names, `null` for a cleared value.
    fn patch_body(
        &self,
        update: &IncidentUpdate,
    ) -> ConnectorResult<serde_json::Map<String, serde_json::Value>> {
        let mut body = serde_json::Map::new();
        for (attr, value) in &update.set {
            let field = match attr.as_str() {
                "status" => "status",
                "classification" => "classification",
                "determination" => "determination",
                "assigned_to" => "assignedTo",
                other => {
                    return Err(self.api.error(
                        ErrorKind::Permanent,
                        format!("graph cannot write incident attribute `{other}`"),
                    ));
                }
            };
            let value = value
                .clone()
                .map_or(serde_json::Value::Null, serde_json::Value::String);
            body.insert(field.to_string(), value);
        }
        Ok(body)
    }
}

impl GraphSource {
    /// The PATCH of `update`, its tags merged into those of `current` (read just
    /// now), or without tags when `current` is `None`.
    async fn patch(
        &self,
        id: &str,
        update: &IncidentUpdate,
        current: Option<&Incident>,
    ) -> ConnectorResult<IncidentSnapshot> {
        let mut body = self.patch_body(update)?;
        if let Some(current) = current {
            match merge_tags(&current.custom_tags, &update.add_tags) {
                Some(tags) => {
                    body.insert("customTags".into(), serde_json::json!(tags));
                }
                None if body.is_empty() => return self.snapshot(current),
                None => {}
            }
        }
        if body.is_empty() {
            return self.get(id).await;
        }
        self.send_patch(id, body).await
    }

    async fn send_patch(
        &self,
        id: &str,
        body: serde_json::Map<String, serde_json::Value>,
    ) -> ConnectorResult<IncidentSnapshot> {
        let request = Request::with_body(
            Method::PATCH,
            self.incident_url(id, &[]),
            serde_json::Value::Object(body),
        )
        .header("Prefer", PREFER_UNKNOWN_ENUMS);
        let incident: Incident = self.api.send(request).await?.json(self.api.system())?;
        self.snapshot(&incident)
    }
}

/// `existing` plus the `new` tags it lacks (compared case-insensitively), in order;
/// `None` when nothing is missing.
fn merge_tags(existing: &[String], new: &[String]) -> Option<Vec<String>> {
    let mut merged = existing.to_vec();
    for tag in new {
        if !merged.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
            merged.push(tag.clone());
        }
    }
    (merged.len() > existing.len()).then_some(merged)
}

#[async_trait]
impl IncidentSource for GraphSource {
    async fn changed_since(&self, since: Timestamp) -> ConnectorResult<Page<IncidentSnapshot>> {
        self.fetch_page(self.changed_since_url(since)).await
    }

    async fn next_page(&self, next: &str) -> ConnectorResult<Page<IncidentSnapshot>> {
        let url = self.api.next_link(next)?;
        self.fetch_page(url).await
    }

    async fn get(&self, id: &str) -> ConnectorResult<IncidentSnapshot> {
        let incident = self.get_wire(id).await?;
        self.snapshot(&incident)
    }

    /// A PATCH replaces the whole `customTags` set: the tags are read, merged and
    /// written. Kept for writes without a fresh listing (a retried or recovered
    /// write-back), where the tags last seen may be old.
    async fn update(&self, id: &str, update: &IncidentUpdate) -> ConnectorResult<IncidentSnapshot> {
        if update.add_tags.is_empty() {
            return self.patch(id, update, None).await;
        }
        let current = self.get_wire(id).await?;
        self.patch(id, update, Some(&current)).await
    }

    /// The tags are merged into those of this cycle's listing, without reading
    /// the incident again. Graph has no etag to make the PATCH conditional: a tag
    /// someone adds between the listing and this write (seconds, within one
    /// cycle) is replaced. A read first narrows that window without closing it,
    /// so it is kept only where the tags at hand are older (`update`).
    async fn update_listed(
        &self,
        listed: &IncidentSnapshot,
        update: &IncidentUpdate,
    ) -> ConnectorResult<IncidentSnapshot> {
        let mut body = self.patch_body(update)?;
        if !update.add_tags.is_empty()
            && let Some(tags) = merge_tags(&listed.tags, &update.add_tags)
        {
            body.insert("customTags".into(), serde_json::json!(tags));
        }
        if body.is_empty() {
            return Ok(listed.clone());
        }
        self.send_patch(&listed.id, body).await
    }

    /// A listing embeds every comment of each incident, as `get` does.
    fn listed_comments(&self, listed: &IncidentSnapshot) -> Option<Vec<Comment>> {
        Some(listed.comments.clone())
    }

    async fn add_comment(&self, id: &str, text: &str) -> ConnectorResult<()> {
        let body = serde_json::to_value(NewComment::new(text)).expect("a comment body serialises");
        // POST: not idempotent, so never retried once it may have reached Graph.
        let request = Request::with_body(Method::POST, self.incident_url(id, &["comments"]), body);
        self.api.send(request).await?;
        Ok(())
    }
}

/// Graph's `{"error":{"code","message"}}` as `code: message` (just the message when
/// the code is empty, as on the `$top` > 50 error), for [`Api::new`].
pub fn error_message(body: &[u8]) -> Option<String> {
    crate::http::microsoft_error_message(body)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bridge_core::model::IncidentUpdate;
    use bridge_core::ports::{ErrorKind, IncidentSource};
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::graph::sim::{SeedIncident, throttle_fault};
    use crate::graph::testkit::{Harness, harness, source_with_token};

    fn update(set: &[(&str, Option<&str>)], add_tags: &[&str]) -> IncidentUpdate {
        IncidentUpdate {
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
            add_tags: add_tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn graph_error_messages() {
        assert_eq!(
            error_message(br#"{"error":{"code":"NotFound","message":"gone"}}"#).as_deref(),
            Some("NotFound: gone")
        );
        assert_eq!(
            error_message(br#"{"error":{"code":"","message":"The limit"}}"#).as_deref(),
            Some("The limit")
        );
        assert_eq!(error_message(b"<html>"), None);
    }

    #[test]
    fn graph_tags_merge_case_insensitively_keeping_order() {
        let existing = vec!["b".to_string(), "Ticket:SEC-1".to_string()];
        assert_eq!(
            merge_tags(&existing, &["ticket:sec-1".into(), "a".into(), "A".into()]),
            Some(vec!["b".into(), "Ticket:SEC-1".into(), "a".into()])
        );
        assert_eq!(merge_tags(&existing, &["B".into()]), None);
    }

    #[tokio::test]
    async fn graph_changed_since_pages_through_all_incidents_once() {
        let Harness { sim, source, .. } = harness().await;
        for i in 0..120 {
            sim.seed_incident(SeedIncident::new(format!("incident {i}")));
        }
        let since = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
        let mut page = source.changed_since(since).await.unwrap();
        let mut seen = Vec::new();
        let mut pages = 1;
        loop {
            seen.extend(page.items.iter().map(|i| i.id.clone()));
            let Some(next) = page.next else { break };
            page = source.next_page(&next).await.unwrap();
            pages += 1;
        }
        assert_eq!(pages, 3);
        assert_eq!(seen.len(), 120);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 120);
        let requests = sim.kit.requests();
        assert_eq!(requests.len(), 3);
        let first = requests[0].query.as_deref().unwrap();
        assert_eq!(
            first,
            "%24filter=lastUpdateDateTime+ge+2020-01-01T00%3A00%3A00Z&%24top=50"
        );
        assert!(!first.contains("orderby"));
        assert!(requests[1].query.as_deref().unwrap().contains("skiptoken"));
    }

    #[tokio::test]
    async fn graph_empty_intermediate_pages_do_not_end_the_listing() {
        let Harness { sim, source, .. } = harness().await;
        for i in 0..120 {
            sim.seed_incident(SeedIncident::new(format!("incident {i}")));
        }
        sim.set_empty_pages(true);
        let since = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
        let mut page = source.changed_since(since).await.unwrap();
        let mut seen = Vec::new();
        let mut empty = 0;
        loop {
            if page.items.is_empty() {
                empty += 1;
            }
            seen.extend(page.items.iter().map(|i| i.id.clone()));
            let Some(next) = page.next else { break };
            page = source.next_page(&next).await.unwrap();
        }
        assert_eq!(empty, 2);
        assert_eq!(seen.len(), 120);
    }

    #[tokio::test]
    async fn graph_changed_since_returns_only_newer_incidents() {
        let Harness { sim, source, .. } = harness().await;
        let old = Utc.with_ymd_and_hms(2026, 10, 1, 12, 0, 0).unwrap();
        let new = Utc.with_ymd_and_hms(2026, 11, 2, 12, 0, 0).unwrap();
        let old_id = sim.seed_incident(SeedIncident::new("old").created(old).updated(old));
        let new_id = sim.seed_incident(SeedIncident::new("new").created(old).updated(new));
        let since = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let page = source.changed_since(since).await.unwrap();
        let ids: Vec<_> = page.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, vec![new_id.as_str()]);
        assert_eq!(page.next, None);
        // Changing the old one as Defender brings it into the window.
        assert!(sim.set_severity(&old_id, "high"));
        let page = source.changed_since(since).await.unwrap();
        let ids: Vec<_> = page.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, vec![old_id.as_str(), new_id.as_str()]);
        assert_eq!(page.items[0].attrs["severity"], "high");

        // A watermark taken from Graph's own 100 ns stamps is asked for at no more
        // than microseconds, cut down, so the incident it came from is still in.
        let stamped = new + chrono::Duration::nanoseconds(603_333_300);
        let url = source.changed_since_url(stamped);
        let filter = url
            .query_pairs()
            .find(|(k, _)| k == "$filter")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        assert_eq!(filter, "lastUpdateDateTime ge 2026-11-02T12:00:00.603333Z");
    }

    #[tokio::test]
    async fn graph_update_sets_status_and_merges_tags() {
        let Harness { sim, source, .. } = harness().await;
        let id = sim.seed_incident(
            SeedIncident::new("phish")
                .tag("existing")
                .tag("ticket:SEC-1"),
        );
        let before = sim.incident(&id).unwrap().updated;
        let after = source
            .update(
                &id,
                &update(
                    &[
                        ("status", Some("inProgress")),
                        ("assigned_to", Some("me@x")),
                    ],
                    &["TICKET:sec-1", "ticket:SEC-2"],
                ),
            )
            .await
            .unwrap();
        assert_eq!(after.attrs["status"], "inProgress");
        assert_eq!(after.attrs["assigned_to"], "me@x");
        assert_eq!(after.tags, vec!["existing", "ticket:SEC-1", "ticket:SEC-2"]);
        assert!(after.modified > before);
        let stored = sim.incident(&id).unwrap();
        assert_eq!(stored.status, "inProgress");
        assert_eq!(stored.last_modified_by.as_deref(), Some("itsm-bridge"));
        let methods: Vec<_> = sim.kit.requests().into_iter().map(|r| r.method).collect();
        assert_eq!(methods, vec!["GET", "PATCH"]);

        // Clearing the assignee sends null.
        let after = source
            .update(&id, &update(&[("assigned_to", None)], &[]))
            .await
            .unwrap();
        assert!(!after.attrs.contains_key("assigned_to"));
        assert_eq!(sim.incident(&id).unwrap().assigned_to, None);

        // Tags already there: no PATCH at all.
        sim.kit.clear_log();
        let same = source
            .update(&id, &update(&[], &["existing"]))
            .await
            .unwrap();
        assert_eq!(same.tags.len(), 3);
        let methods: Vec<_> = sim.kit.requests().into_iter().map(|r| r.method).collect();
        assert_eq!(methods, vec!["GET"]);
    }

    #[tokio::test]
    async fn graph_tags_are_merged_into_the_listed_ones_without_a_read() {
        let Harness { sim, source, .. } = harness().await;
        let id = sim.seed_incident(SeedIncident::new("x").tag("analyst-tag"));
        let since = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
        let listed = source.changed_since(since).await.unwrap().items;
        let listed = listed.into_iter().find(|i| i.id == id).unwrap();
        assert_eq!(
            source.listed_comments(&listed),
            Some(listed.comments.clone())
        );
        sim.kit.clear_log();
        let after = source
            .update_listed(&listed, &update(&[], &["ticket:SEC-1"]))
            .await
            .unwrap();
        assert_eq!(after.tags, vec!["analyst-tag", "ticket:SEC-1"]);
        let methods: Vec<String> = sim.kit.requests().into_iter().map(|r| r.method).collect();
        assert_eq!(methods, vec!["PATCH"]);
    }

    #[tokio::test]
    async fn graph_update_refusals_are_permanent() {
        let Harness { sim, source, .. } = harness().await;
        let id = sim.seed_incident(SeedIncident::new("x"));
        let error = source
            .update(&id, &update(&[("status", Some("redirected"))], &[]))
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Permanent);
        assert_eq!(error.status, Some(400));
        assert!(error.message.contains("HTTP 400"), "{}", error.message);
        assert!(error.message.contains("BadRequest"), "{}", error.message);

        sim.kit.clear_log();
        let error = source
            .update(&id, &update(&[("severity", Some("high"))], &[]))
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Permanent);
        assert_eq!(
            error.message,
            "graph cannot write incident attribute `severity`"
        );
        assert_eq!(sim.kit.request_count(), 0);
        assert_eq!(error.status, None, "refused before any request");

        let error = source.get("999999").await.unwrap_err();
        assert_eq!((error.kind, error.status), (ErrorKind::NotFound, Some(404)));
    }

    #[tokio::test]
    async fn graph_add_comment_posts_once() {
        let Harness { sim, source, .. } = harness().await;
        let id = sim.seed_incident(SeedIncident::new("x").comment("Analyst", "first"));
        source
            .add_comment(&id, "Ticket SEC-7 opened")
            .await
            .unwrap();
        let snapshot = source.get(&id).await.unwrap();
        let texts: Vec<_> = snapshot.comments.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, vec!["first", "Ticket SEC-7 opened"]);
        assert_eq!(snapshot.comments[1].author.as_deref(), Some("itsm-bridge"));
        let posts = sim
            .kit
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .count();
        assert_eq!(posts, 1);
    }

    #[tokio::test]
    async fn graph_refused_tokens_are_auth_errors() {
        let Harness { sim, registry, .. } = harness().await;
        sim.seed_incident(SeedIncident::new("x"));
        let since = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();

        let (arm_token, _) = registry.issue("https://management.azure.com");
        let wrong_audience = source_with_token(&sim, &arm_token);
        let error = wrong_audience.changed_since(since).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Auth);
        assert!(
            error
                .message
                .contains("InvalidAuthenticationToken: Invalid audience."),
            "{}",
            error.message
        );

        let missing = source_with_token(&sim, "made-up");
        let error = missing.changed_since(since).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Auth);
        assert!(sim.kit.requests().iter().all(|r| r.status == 401));
    }

    #[tokio::test]
    async fn graph_throttling_is_retried_after_the_fractional_retry_after() {
        let Harness { sim, source, .. } = harness().await;
        sim.seed_incident(SeedIncident::new("x"));
        sim.kit.inject(throttle_fault(1, "0.2"));
        let since = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
        let started = std::time::Instant::now();
        let page = source.changed_since(since).await.unwrap();
        assert_eq!(page.items.len(), 1);
        assert!(started.elapsed() >= Duration::from_millis(200));
        let statuses: Vec<_> = sim.kit.requests().into_iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![429, 200]);
    }

    #[tokio::test]
    async fn graph_page_skips_incidents_that_do_not_convert() {
        let Harness { sim, source, .. } = harness().await;
        let good = sim.seed_incident(SeedIncident::new("good"));
        let mut incident = sim.incident_json(&good).unwrap();
        let mut no_id = incident.clone();
        no_id.as_object_mut().unwrap().remove("id");
        let mut bad_time = incident.clone();
        bad_time["id"] = "41999".into();
        bad_time["lastUpdateDateTime"] = "soon".into();
        incident.as_object_mut().unwrap().remove("@odata.context");
        let next = format!("{}/v1.0/security/incidents?$skiptoken=abc", sim.base_url());
        let body = serde_json::json!({
            "@odata.context": "x",
            "value": [no_id, incident, bad_time],
            "@odata.nextLink": next,
        });
        sim.kit.inject(crate::simkit::Fault {
            method: None,
            path_contains: "/v1.0/security/incidents".into(),
            times: 1,
            status: 200,
            retry_after: None,
            body: body.to_string(),
        });
        let since = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
        let page = source.changed_since(since).await.unwrap();
        let ids: Vec<_> = page.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, vec![good.as_str()]);
        assert_eq!(page.next.as_deref(), Some(next.as_str()));
    }

    #[tokio::test]
    async fn graph_next_links_to_other_hosts_are_refused() {
        let Harness { sim, source, .. } = harness().await;
        let error = source
            .next_page("https://evil.example/v1.0/security/incidents?$skiptoken=abc")
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidPayload);
        assert!(
            error.message.contains("refusing a next link"),
            "{}",
            error.message
        );
        assert_eq!(sim.kit.request_count(), 0);
    }

    #[tokio::test]
    async fn graph_client_sees_awaiting_action() {
        let Harness { sim, source, .. } = harness().await;
        let id = sim.seed_incident(SeedIncident::new("x").status("awaitingAction"));
        assert_eq!(
            source.get(&id).await.unwrap().attrs["status"],
            "awaitingAction"
        );
        let since = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
        let page = source.changed_since(since).await.unwrap();
        assert_eq!(page.items[0].attrs["status"], "awaitingAction");
    }

    #[tokio::test]
    async fn graph_redirected_incidents_carry_their_target() {
        let Harness { sim, source, .. } = harness().await;
        let source_id = sim.seed_incident(SeedIncident::new("a"));
        let target_id = sim.seed_incident(SeedIncident::new("b"));
        assert!(sim.redirect(&source_id, &target_id));
        let snapshot = source.get(&source_id).await.unwrap();
        assert_eq!(snapshot.attrs["status"], "redirected");
        assert_eq!(snapshot.redirect_to.as_deref(), Some(target_id.as_str()));
    }
}
