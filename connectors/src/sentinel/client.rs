//! [`SentinelSource`]: the Microsoft Sentinel incidents API (ARM,
//! `Microsoft.SecurityInsights`, API.md §3) as an [`IncidentSource`]. Lists changes
//! with `$filter=properties/lastModifiedTimeUtc ge …&$orderby=… asc&$top=1000`,
//! follows `nextLink` exactly as given (it already holds `api-version`), updates by
//! full-replacement PUT (GET, change only the planned fields, resend everything
//! else with the `etag`), and adds comments by PUT under a comment id derived from
//! the incident and the text, so that a retried comment is an edit, not a copy.
//! Comments are not part of the incident resource, so snapshots carry none (that
//! derived id is what keeps a repeated write-back from duplicating); [`SentinelSource::comments`]
//! reads them where needed.
//!
//! An incident Defender XDR merged away (Closed, labelled "Redirected") names its
//! target only by incident number (preview API) or by Defender incident (its
//! Defender link), so [`SentinelSource::resolve_redirect`] looks the survivor up
//! with a `$filter` and puts its resource name in `redirect_to`, which the engine
//! then follows with `get`.

use async_trait::async_trait;
use bridge_core::config::SentinelWorkspace;
use bridge_core::model::{Comment, IncidentSnapshot, IncidentUpdate, Page, Timestamp};
use bridge_core::ports::{ConnectorResult, ErrorKind, IncidentSource};
use bridge_core::vocab::{
    SENTINEL_CLASSIFICATION, SENTINEL_CLASSIFICATION_REASON, SENTINEL_SEVERITY, SENTINEL_STATUS,
};
use chrono::{SecondsFormat, SubsecRound};
use reqwest::Method;
use sha2::{Digest, Sha256};
use url::Url;

use super::convert::{self, canonical_enum};
use super::wire::{
    Incident, IncidentLabel, IncidentOwner, IncidentProperties, NewComment, ResourceList,
};
use crate::http::{Api, Request};

/// The `api-version` used unless the config names another (latest stable).
pub const DEFAULT_API_VERSION: &str = "2025-09-01";
/// `$top` for listings: the largest page the API serves.
pub const PAGE_SIZE: usize = 1000;
/// `$top` for a redirect lookup: one match is expected; more than this many is
/// ambiguous anyway.
pub const LOOKUP_TOP: usize = 10;

/// Sentinel incidents of one workspace. The `Api`'s base URL is the configured ARM
/// `base_url` (`https://management.azure.com`), signed with a bearer token for it.
#[derive(Debug, Clone)]
pub struct SentinelSource {
    api: Api,
    workspace: SentinelWorkspace,
    api_version: String,
    /// The incidents of the current poll's listing as Sentinel returned them, by
    /// name: a write to one of them starts from its listed body and etag
    /// (`update_listed`), and its `commentsCount` says whether there are comments
    /// to list. Emptied when the next poll begins.
    listed: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Incident>>>,
}

impl SentinelSource {
    /// `api_version` defaults to [`DEFAULT_API_VERSION`].
    pub fn new(
        api: Api,
        workspace: SentinelWorkspace,
        api_version: Option<String>,
    ) -> SentinelSource {
        let api_version = api_version
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_API_VERSION.to_string());
        SentinelSource {
            api,
            workspace,
            api_version,
            listed: Default::default(),
        }
    }

    pub fn api(&self) -> &Api {
        &self.api
    }

    pub fn workspace(&self) -> &SentinelWorkspace {
        &self.workspace
    }

    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// `…/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/
    /// workspaces/{ws}/providers/Microsoft.SecurityInsights/incidents[/more…]`, each
    /// segment percent-encoded, without a query.
    fn path_url(&self, more: &[&str]) -> Url {
        let w = &self.workspace;
        let collection = [
            "subscriptions",
            w.subscription_id.as_str(),
            "resourceGroups",
            w.resource_group.as_str(),
            "providers",
            "Microsoft.OperationalInsights",
            "workspaces",
            w.workspace_name.as_str(),
            "providers",
            "Microsoft.SecurityInsights",
            "incidents",
        ];
        self.api
            .segments_url(collection.into_iter().chain(more.iter().copied()))
    }

    /// A URL under the incidents collection with `api-version` set.
    fn api_url(&self, more: &[&str]) -> Url {
        let mut url = self.path_url(more);
        url.query_pairs_mut()
            .append_pair("api-version", &self.api_version);
        url
    }

    /// The incidents collection, with `api-version`.
    pub fn incidents_url(&self) -> Url {
        self.api_url(&[])
    }

    /// One incident, with `api-version`.
    pub fn incident_url(&self, id: &str) -> Url {
        self.api_url(&[id])
    }

    /// The first-page URL for changes at or after `since`, oldest change first. The
    /// literal is cut to milliseconds (never more than the 7 digits .NET parses;
    /// cutting down only widens the window).
    pub fn changed_since_url(&self, since: Timestamp) -> Url {
        let mut url = self.incidents_url();
        let literal = since
            .trunc_subsecs(3)
            .to_rfc3339_opts(SecondsFormat::AutoSi, true);
        url.query_pairs_mut()
            .append_pair(
                "$filter",
                &format!("properties/lastModifiedTimeUtc ge {literal}"),
            )
            .append_pair("$orderby", "properties/lastModifiedTimeUtc asc")
            .append_pair("$top", &PAGE_SIZE.to_string());
        url
    }

    /// One page of changes. A merged-away incident on it gets its target resolved
    /// (one lookup each; rare): a failing lookup fails the page, so that the
    /// incident is not passed on with its target silently unknown.
    async fn fetch_page(&self, url: Url) -> ConnectorResult<Page<IncidentSnapshot>> {
        let response = self.api.send(Request::get(url)).await?;
        let list: ResourceList<serde_json::Value> = response.json(self.api.system())?;
        let mut items = Vec::with_capacity(list.value.len());
        for value in list.value {
            let converted = convert::incident_from_value(value)
                .and_then(|incident| convert::to_snapshot(&incident).map(|s| (incident, s)));
            match converted {
                Ok((incident, mut snapshot)) => {
                    self.listed
                        .lock()
                        .expect("listed incidents")
                        .insert(snapshot.id.clone(), incident.clone());
                    // A failed lookup must not fail the page: the incident comes
                    // through unresolved, and the engine re-reads it on its own
                    // (where an error is that incident's alone) before it concludes
                    // that the target is unknown.
                    snapshot.redirect_to = match self.resolve_redirect(&incident).await {
                        Ok(target) => target,
                        Err(e) => {
                            tracing::warn!(
                                system = %self.api.system(),
                                incident_id = %snapshot.id,
                                error = %e,
                                "could not look up the incident a merged incident went to"
                            );
                            None
                        }
                    };
                    items.push(snapshot);
                }
                Err(e) => tracing::warn!(
                    system = %self.api.system(),
                    incident_id = e.id.as_deref().unwrap_or("<none>"),
                    reason = %e.reason,
                    "skipping an incident that does not convert"
                ),
            }
        }
        Ok(Page {
            items,
            next: list.next_link.filter(|l| !l.trim().is_empty()),
        })
    }

    /// The incident as this poll's listing returned it, if that is the version
    /// `listed` shows (the same etag).
    fn listed_as(&self, listed: &IncidentSnapshot) -> Option<Incident> {
        let known = self.listed.lock().expect("listed incidents");
        known
            .get(&listed.id)
            .filter(|i| listed.etag.is_some() && i.etag == listed.etag)
            .cloned()
    }

    /// The incident as Sentinel returns it.
    pub async fn get_wire(&self, id: &str) -> ConnectorResult<Incident> {
        self.api
            .send(Request::get(self.incident_url(id)))
            .await?
            .json(self.api.system())
    }

    fn snapshot(&self, incident: &Incident) -> ConnectorResult<IncidentSnapshot> {
        convert::to_snapshot(incident)
            .map_err(|e| self.api.error(ErrorKind::InvalidPayload, e.to_string()))
    }

    /// For an incident Defender XDR merged away (Closed, labelled "Redirected"), the
    /// resource name (GUID) of the incident it was merged into: what `get` takes.
    /// `None` for any other incident, and when nothing resolves (the engine then
    /// records the target as unknown); a lookup that fails is an error.
    ///
    /// - With the preview API's `mergedIncidentNumber`:
    ///   `$filter=properties/incidentNumber eq N` (numbers are unique per workspace).
    /// - Without it, or when no incident has that number: the Defender incident the
    ///   merged-away incident's Defender link names (see
    ///   [`convert::RedirectTarget`]), as `$filter=properties/providerIncidentId eq
    ///   '…'`.
    ///
    /// Only an incident that really has that number or provider id counts, never
    /// the merged-away incident itself; of several, only the one not itself merged
    /// away; still several is ambiguous and resolves to nothing (never a guess).
    pub async fn resolve_redirect(&self, incident: &Incident) -> ConnectorResult<Option<String>> {
        let Some(target) = convert::redirect_target(incident) else {
            return Ok(None);
        };
        let own = incident.name.as_deref().unwrap_or("").trim();
        if let Some(number) = target.merged_number {
            let found = self
                .find_incident(
                    &format!("properties/incidentNumber eq {number}"),
                    own,
                    |i| i.properties.incident_number == Some(number),
                )
                .await?;
            if found.is_some() {
                return Ok(found);
            }
        }
        if let Some(defender) = &target.defender_incident {
            let literal = defender.replace('\'', "''");
            let found = self
                .find_incident(
                    &format!("properties/providerIncidentId eq '{literal}'"),
                    own,
                    |i| {
                        i.properties
                            .provider_incident_id
                            .as_deref()
                            .is_some_and(|p| p.trim() == defender)
                    },
                )
                .await?;
            if found.is_some() {
                return Ok(found);
            }
        }
        tracing::warn!(
            system = %self.api.system(),
            incident_id = %own,
            merged_number = ?target.merged_number,
            defender_incident = target.defender_incident.as_deref().unwrap_or("<none>"),
            "a merged incident's target could not be resolved"
        );
        Ok(None)
    }

    /// The one incident other than `own` that the list with `filter` returns and
    /// that `is_match` accepts (see [`SentinelSource::resolve_redirect`]).
    async fn find_incident(
        &self,
        filter: &str,
        own: &str,
        is_match: impl Fn(&Incident) -> bool,
    ) -> ConnectorResult<Option<String>> {
        let mut url = self.incidents_url();
        url.query_pairs_mut()
            .append_pair("$filter", filter)
            .append_pair("$top", &LOOKUP_TOP.to_string());
        let list: ResourceList<serde_json::Value> = self.api.get_json(url).await?;
        let more = list.next_link.is_some_and(|l| !l.trim().is_empty());
        let mut found: Vec<(String, bool)> = list
            .value
            .into_iter()
            .filter_map(|value| convert::incident_from_value(value).ok())
            .filter(|i| is_match(i))
            .filter_map(|i| {
                let name = i.name.as_deref()?.trim();
                (!name.is_empty() && !name.eq_ignore_ascii_case(own))
                    .then(|| (name.to_string(), convert::redirect_target(&i).is_some()))
            })
            .collect();
        if found.len() > 1 {
            found.retain(|(_, merged_away)| !merged_away);
        }
        match found.as_slice() {
            [(name, _)] if !more => {
                tracing::debug!(
                    system = %self.api.system(),
                    incident_id = %own,
                    target = %name,
                    filter,
                    "resolved a merged incident's target"
                );
                Ok(Some(name.clone()))
            }
            [] if !more => Ok(None),
            _ => {
                tracing::warn!(
                    system = %self.api.system(),
                    incident_id = %own,
                    filter,
                    "the lookup of a merged incident's target is ambiguous"
                );
                Ok(None)
            }
        }
    }

    /// The PUT body: every writable field of `current`, with `update` applied, and
    /// `current`'s etag. `None` when the update would change nothing.
    fn put_body(
        &self,
        current: &Incident,
        update: &IncidentUpdate,
    ) -> ConnectorResult<Option<Incident>> {
        let p = &current.properties;
        let mut properties = IncidentProperties {
            title: p.title.clone(),
            description: p.description.clone(),
            severity: p.severity.clone(),
            status: p.status.clone(),
            classification: p.classification.clone(),
            classification_reason: p.classification_reason.clone(),
            classification_comment: p.classification_comment.clone(),
            owner: p.owner.clone(),
            labels: p.labels.clone(),
            first_activity_time_utc: p.first_activity_time_utc.clone(),
            last_activity_time_utc: p.last_activity_time_utc.clone(),
            ..IncidentProperties::default()
        };
        for (attr, value) in &update.set {
            let value = value.clone().filter(|v| !v.trim().is_empty());
            let required = |field: &str| {
                self.api.error(
                    ErrorKind::Permanent,
                    format!("sentinel incidents always have a {field}; it cannot be cleared"),
                )
            };
            let enumerated =
                |set: &[&'static str], v: String| canonical_enum(set, &v).map_or(v, str::to_string);
            match attr.as_str() {
                "title" => properties.title = Some(value.ok_or_else(|| required("title"))?),
                "description" => properties.description = value,
                "status" => {
                    let v = value.ok_or_else(|| required("status"))?;
                    properties.status = Some(enumerated(SENTINEL_STATUS, v));
                }
                "severity" => {
                    let v = value.ok_or_else(|| required("severity"))?;
                    properties.severity = Some(enumerated(SENTINEL_SEVERITY, v));
                }
                "classification" => {
                    properties.classification =
                        value.map(|v| enumerated(SENTINEL_CLASSIFICATION, v));
                }
                "classification_reason" => {
                    properties.classification_reason =
                        value.map(|v| enumerated(SENTINEL_CLASSIFICATION_REASON, v));
                }
                "classification_comment" => properties.classification_comment = value,
                // The API documents assigning by `objectId` alone (the server fills in
                // the rest); the bridge only knows a UPN or email, so it sends both
                // fields with that value and lets the server resolve the user. [U]
                // Clearing omits `owner`, which a full-replacement PUT treats as cleared.
                "assigned_to" => {
                    properties.owner = value.map(|v| IncidentOwner {
                        email: Some(v.clone()),
                        user_principal_name: Some(v),
                        ..IncidentOwner::default()
                    });
                }
                other => {
                    return Err(self.api.error(
                        ErrorKind::Permanent,
                        format!("sentinel cannot write incident attribute `{other}`"),
                    ));
                }
            }
        }
        let added = merge_labels(&mut properties.labels, &update.add_tags);
        if update.set.is_empty() && !added {
            return Ok(None);
        }
        Ok(Some(Incident {
            etag: current.etag.clone(),
            properties,
            ..Incident::default()
        }))
    }

    /// Every comment on the incident, oldest first, following `nextLink`. Comments
    /// that do not convert are skipped with a warning.
    pub async fn comments(&self, id: &str) -> ConnectorResult<Vec<Comment>> {
        let mut url = self.api_url(&[id, "comments"]);
        url.query_pairs_mut()
            .append_pair("$orderby", "properties/createdTimeUtc asc");
        let mut comments = Vec::new();
        loop {
            let list: ResourceList<serde_json::Value> = self.api.get_json(url).await?;
            for value in list.value {
                match convert::comment_from_value(value) {
                    Ok(comment) => comments.push(comment),
                    Err(e) => tracing::warn!(
                        system = %self.api.system(),
                        incident_id = %id,
                        comment_id = e.id.as_deref().unwrap_or("<none>"),
                        reason = %e.reason,
                        "skipping a comment that does not convert"
                    ),
                }
            }
            match list.next_link.filter(|l| !l.trim().is_empty()) {
                Some(next) => url = self.api.next_link(&next)?,
                None => return Ok(comments),
            }
        }
    }
}

/// Adds the `new` label names `labels` lacks (compared case-insensitively), as
/// `{labelName}` only (the server sets `labelType`); existing labels, `AutoAssigned`
/// ones included, stay as they are. Whether anything was added.
fn merge_labels(labels: &mut Vec<IncidentLabel>, new: &[String]) -> bool {
    let before = labels.len();
    for name in new.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if !labels
            .iter()
            .any(|l| l.label_name.trim().eq_ignore_ascii_case(name))
        {
            labels.push(IncidentLabel {
                label_name: name.to_string(),
                label_type: None,
            });
        }
    }
    labels.len() > before
}

/// The comment id for `text` on incident `incident_id`: a GUID (RFC 4122 layout,
/// version 5 bits) from the SHA-256 of both, so that a retry of the same comment
/// PUTs the same id (an edit, never a second copy). The same text written twice on
/// one incident is therefore one comment, which is what the bridge wants.
pub fn comment_id(incident_id: &str, text: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"itsm-bridge/sentinel-comment\n");
    hasher.update(incident_id.trim().to_ascii_lowercase().as_bytes());
    hasher.update(b"\n");
    hasher.update(text.as_bytes());
    let digest = hasher.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[async_trait]
impl IncidentSource for SentinelSource {
    async fn changed_since(&self, since: Timestamp) -> ConnectorResult<Page<IncidentSnapshot>> {
        self.listed.lock().expect("listed incidents").clear();
        self.fetch_page(self.changed_since_url(since)).await
    }

    /// The link already carries `api-version`, `$filter`, `$orderby`, `$top` and
    /// `$skipToken`: it is requested exactly as given (host checked), never rebuilt.
    async fn next_page(&self, next: &str) -> ConnectorResult<Page<IncidentSnapshot>> {
        let url = self.api.next_link(next)?;
        self.fetch_page(url).await
    }

    /// A merged-away incident comes with its target resolved (see
    /// [`SentinelSource::resolve_redirect`]).
    async fn get(&self, id: &str) -> ConnectorResult<IncidentSnapshot> {
        let incident = self.get_wire(id).await?;
        let mut snapshot = self.snapshot(&incident)?;
        snapshot.redirect_to = self.resolve_redirect(&incident).await?;
        Ok(snapshot)
    }

    /// GET, then a full-replacement PUT with the read `etag`. A 409 (someone changed
    /// the incident in between) is returned as `Conflict` and not retried here: the
    /// engine re-reads and re-plans. Closing rules (classification required, reason
    /// pairing) are the server's to enforce; its 400 comes back as `Permanent`.
    async fn update(&self, id: &str, update: &IncidentUpdate) -> ConnectorResult<IncidentSnapshot> {
        let current = self.get_wire(id).await?;
        let Some(body) = self.put_body(&current, update)? else {
            return self.snapshot(&current);
        };
        let body = serde_json::to_value(body).expect("an incident body serialises");
        let request = Request::with_body(Method::PUT, self.incident_url(id), body);
        let incident: Incident = self.api.send(request).await?.json(self.api.system())?;
        self.snapshot(&incident)
    }

    /// The PUT of `update` onto the incident as this poll listed it, with the
    /// listed etag: no read first. If the incident changed since, Sentinel answers
    /// 409, returned as `Conflict`: the engine re-reads and re-plans. An incident
    /// not in the listing (or listed at another etag) is read first (`update`).
    async fn update_listed(
        &self,
        listed: &IncidentSnapshot,
        update: &IncidentUpdate,
    ) -> ConnectorResult<IncidentSnapshot> {
        let known = self.listed_as(listed);
        let Some(current) = known else {
            return self.update(&listed.id, update).await;
        };
        let Some(body) = self.put_body(&current, update)? else {
            return Ok(listed.clone());
        };
        let body = serde_json::to_value(body).expect("an incident body serialises");
        let request = Request::with_body(Method::PUT, self.incident_url(&listed.id), body);
        // The listed body stays, for its `commentsCount`: a second write from it
        // would carry its old etag and be refused (409), never applied blindly.
        let incident: Incident = self.api.send(request).await?.json(self.api.system())?;
        self.snapshot(&incident)
    }

    /// None to list when the listing counted none (`additionalData.commentsCount`).
    fn listed_comments(&self, listed: &IncidentSnapshot) -> Option<Vec<Comment>> {
        let count = self
            .listed_as(listed)?
            .properties
            .additional_data
            .as_ref()?
            .comments_count?;
        (count == 0).then(Vec::new)
    }

    async fn comments(&self, id: &str) -> ConnectorResult<Vec<Comment>> {
        SentinelSource::comments(self, id).await
    }

    /// Comments are a resource of their own, listed apart from the incident.
    fn get_has_comments(&self) -> bool {
        false
    }

    async fn add_comment(&self, id: &str, text: &str) -> ConnectorResult<()> {
        self.add_comment_stamped(id, text).await.map(|_| ())
    }

    /// The comment's `lastModifiedTimeUtc` is the incident's too: Sentinel
    /// counts a comment as activity on the incident (API.md §3).
    async fn add_comment_stamped(
        &self,
        id: &str,
        text: &str,
    ) -> ConnectorResult<Option<Timestamp>> {
        let comment_id = comment_id(id, text);
        let body = serde_json::to_value(NewComment::new(text)).expect("a comment body serialises");
        let request = Request::with_body(
            Method::PUT,
            self.api_url(&[id, "comments", &comment_id]),
            body,
        )
        // Same id, same body: repeating it edits the comment into what it already is.
        .idempotent(true);
        let answer = self.api.send(request).await?;
        let stamped = answer
            .json::<serde_json::Value>(self.api.system())
            .ok()
            .and_then(|c| {
                c.pointer("/properties/lastModifiedTimeUtc")
                    .and_then(serde_json::Value::as_str)
                    .and_then(super::wire::parse_timestamp)
            });
        Ok(stamped)
    }
}

/// ARM's `{"error":{"code","message"}}` as `Code: message`, for [`Api::new`].
pub fn error_message(body: &[u8]) -> Option<String> {
    crate::http::microsoft_error_message(body)
}

#[cfg(test)]
mod tests {
    use bridge_core::model::IncidentUpdate;
    use bridge_core::ports::{ErrorKind, IncidentSource};
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::sentinel::sim::{SeedIncident, is_guid, throttle_fault};
    use crate::sentinel::testkit::{Harness, harness, source_with};

    fn update(set: &[(&str, Option<&str>)], add_tags: &[&str]) -> IncidentUpdate {
        IncidentUpdate {
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
            add_tags: add_tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn methods(h: &Harness) -> Vec<(String, u16)> {
        h.sim
            .kit
            .requests()
            .into_iter()
            .map(|r| (r.method, r.status))
            .collect()
    }

    fn labels(h: &Harness, id: &str) -> Vec<(String, String)> {
        h.sim
            .incident(id)
            .unwrap()
            .labels
            .into_iter()
            .map(|l| (l.name, l.label_type))
            .collect()
    }

    #[test]
    fn sentinel_error_messages() {
        assert_eq!(
            error_message(br#"{"error":{"code":"Conflict","message":"New version"}}"#).as_deref(),
            Some("Conflict: New version")
        );
        assert_eq!(
            error_message(br#"{"error":{"code":"BadRequest","message":""}}"#).as_deref(),
            Some("BadRequest")
        );
        assert_eq!(error_message(b"<html>"), None);
    }

    #[test]
    fn sentinel_comment_ids_are_stable_guids() {
        let a = comment_id(
            "6F0C2B8E-7c1a-4a53-9a0e-2d3f4b5c6d7e",
            "Ticket SEC-1 opened",
        );
        assert_eq!(
            a,
            comment_id(
                "6f0c2b8e-7c1a-4a53-9a0e-2d3f4b5c6d7e",
                "Ticket SEC-1 opened"
            )
        );
        assert!(is_guid(&a), "{a}");
        assert_eq!(&a[14..15], "5");
        assert!("89ab".contains(&a[19..20]), "{a}");
        assert_ne!(
            a,
            comment_id(
                "6f0c2b8e-7c1a-4a53-9a0e-2d3f4b5c6d7e",
                "Ticket SEC-2 opened"
            )
        );
        assert_ne!(
            a,
            comment_id(
                "00000000-7c1a-4a53-9a0e-2d3f4b5c6d7e",
                "Ticket SEC-1 opened"
            )
        );
    }

    #[test]
    fn sentinel_labels_merge_case_insensitively_keeping_types() {
        let mut labels = vec![IncidentLabel {
            label_name: "Phishing".into(),
            label_type: Some("AutoAssigned".into()),
        }];
        assert!(merge_labels(
            &mut labels,
            &[
                "phishing".into(),
                "ticket:SEC-1".into(),
                "TICKET:sec-1".into()
            ]
        ));
        assert_eq!(labels.len(), 2);
        assert_eq!(labels[0].label_type.as_deref(), Some("AutoAssigned"));
        assert_eq!(labels[1].label_type, None);
        assert!(!merge_labels(&mut labels, &["PHISHING".into()]));
    }

    #[tokio::test]
    async fn sentinel_changed_since_pages_1000_at_a_time_following_next_link_exactly() {
        let h = harness().await;
        for i in 0..1203 {
            h.sim
                .seed_incident(SeedIncident::new(format!("incident {i}")));
        }
        let since = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
        let first = h.source.changed_since(since).await.unwrap();
        assert_eq!(first.items.len(), 1000);
        let next = first.next.clone().expect("a second page");
        let second = h.source.next_page(&next).await.unwrap();
        assert_eq!(second.items.len(), 203);
        assert_eq!(second.next, None);
        let mut seen: Vec<_> = first
            .items
            .iter()
            .chain(&second.items)
            .map(|i| i.id.clone())
            .collect();
        // Oldest change first, across pages.
        let modified: Vec<_> = first
            .items
            .iter()
            .chain(&second.items)
            .map(|i| i.modified)
            .collect();
        assert!(modified.windows(2).all(|w| w[0] < w[1]));
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 1203);

        let requests = h.sim.kit.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].path, h.sim.incidents_path());
        assert_eq!(
            requests[0].query.as_deref().unwrap(),
            "api-version=2025-09-01\
             &%24filter=properties%2FlastModifiedTimeUtc+ge+2020-01-01T00%3A00%3A00Z\
             &%24orderby=properties%2FlastModifiedTimeUtc+asc&%24top=1000"
        );
        // The second request is the link, byte for byte: api-version once.
        let link = Url::parse(&next).unwrap();
        assert_eq!(requests[1].query.as_deref(), link.query());
        assert_eq!(
            requests[1]
                .query
                .as_deref()
                .unwrap()
                .matches("api-version")
                .count(),
            1
        );
        assert!(next.contains("$skipToken="), "{next}");

        // A link with api-version added again, or rebuilt with another filter, is refused.
        let error = h
            .source
            .next_page(&format!("{next}&api-version=2025-09-01"))
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Permanent);
        assert!(
            error.message.contains("InvalidApiVersionParameter"),
            "{}",
            error.message
        );
        let rebuilt = next.replace("2020-01-01", "2021-01-01");
        let error = h.source.next_page(&rebuilt).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Permanent);
        assert!(error.message.contains("$skipToken"), "{}", error.message);
        // And a link to another host is never requested.
        let error = h
            .source
            .next_page("https://management.example/subscriptions/x?$skipToken=a")
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidPayload);
        assert_eq!(h.sim.kit.request_count(), 4);
    }

    #[tokio::test]
    async fn sentinel_changed_since_literal_is_cut_to_milliseconds() {
        let Harness { source, .. } = harness().await;
        let since = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
            + chrono::Duration::nanoseconds(123_456_789);
        let url = source.changed_since_url(since);
        let filter = url
            .query_pairs()
            .find(|(k, _)| k == "$filter")
            .map(|(_, v)| v.into_owned());
        assert_eq!(
            filter.as_deref(),
            Some("properties/lastModifiedTimeUtc ge 2026-11-01T00:00:00.123Z")
        );
    }

    #[tokio::test]
    async fn sentinel_changed_since_returns_only_newer_incidents() {
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
        // An analyst's change brings the old one into the window, after the new one.
        assert!(sim.set_severity(&old_id, "High"));
        let page = source.changed_since(since).await.unwrap();
        let ids: Vec<_> = page.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, vec![new_id.as_str(), old_id.as_str()]);
        assert_eq!(page.items[1].attrs["severity"], "High");
    }

    #[tokio::test]
    async fn sentinel_update_changes_only_the_planned_field() {
        let h = harness().await;
        let id = h.sim.seed_incident(
            SeedIncident::new("Mailbox rule")
                .description("details")
                .severity("High")
                .owner("ana.ruiz@contoso.example")
                .label("ticket:SEC-1")
                .auto_label("phishing"),
        );
        let before = h.sim.incident(&id).unwrap();
        let after = h
            .source
            .update(&id, &update(&[("status", Some("active"))], &[]))
            .await
            .unwrap();
        assert_eq!(after.attrs["status"], "Active");
        assert_eq!(after.attrs["description"], "details");
        assert_eq!(after.attrs["severity"], "High");
        assert_eq!(after.attrs["assigned_to"], "ana.ruiz@contoso.example");
        assert_eq!(after.tags, vec!["ticket:SEC-1", "phishing"]);
        assert!(after.modified > before.modified);
        assert_ne!(after.etag.as_deref(), Some(before.etag.as_str()));
        let stored = h.sim.incident(&id).unwrap();
        assert_eq!(stored.status, "Active");
        assert_eq!(
            SimView::of(&stored),
            SimView {
                status: "Active".into(),
                ..SimView::of(&before)
            }
        );
        assert_eq!(
            methods(&h),
            vec![("GET".to_string(), 200), ("PUT".to_string(), 200)]
        );

        // Assigning sends the UPN; clearing omits the owner.
        let after = h
            .source
            .update(
                &id,
                &update(&[("assigned_to", Some("li.wei@contoso.example"))], &[]),
            )
            .await
            .unwrap();
        assert_eq!(after.attrs["assigned_to"], "li.wei@contoso.example");
        let owner = h.sim.incident(&id).unwrap().owner.unwrap();
        assert_eq!(owner.assigned_to.as_deref(), Some("Li Wei"));
        let after = h
            .source
            .update(
                &id,
                &update(&[("assigned_to", None), ("description", None)], &[]),
            )
            .await
            .unwrap();
        assert!(!after.attrs.contains_key("assigned_to"));
        assert!(!after.attrs.contains_key("description"));
        assert_eq!(after.tags.len(), 2);

        // Required fields cannot be cleared, and unknown attributes are refused,
        // both before any request.
        h.sim.kit.clear_log();
        for bad in [
            update(&[("title", None)], &[]),
            update(&[("determination", Some("x"))], &[]),
        ] {
            let error = h.source.update(&id, &bad).await.unwrap_err();
            assert_eq!(error.kind, ErrorKind::Permanent);
        }
        assert_eq!(methods(&h), vec![("GET".to_string(), 200); 2]);
    }

    /// What an update must keep: everything but `status` and the write stamps.
    #[derive(Debug, PartialEq)]
    struct SimView {
        title: String,
        description: Option<String>,
        severity: String,
        status: String,
        classification: Option<String>,
        owner: Option<String>,
        labels: Vec<(String, String)>,
        number: i64,
        created: chrono::DateTime<Utc>,
        provider: Option<String>,
    }

    impl SimView {
        fn of(i: &crate::sentinel::sim::SimIncident) -> SimView {
            SimView {
                title: i.title.clone(),
                description: i.description.clone(),
                severity: i.severity.clone(),
                status: i.status.clone(),
                classification: i.classification.clone(),
                owner: i.owner.as_ref().map(|o| o.object_id.clone()),
                labels: i
                    .labels
                    .iter()
                    .map(|l| (l.name.clone(), l.label_type.clone()))
                    .collect(),
                number: i.number,
                created: i.created,
                provider: i.provider_incident_id.clone(),
            }
        }
    }

    #[tokio::test]
    async fn sentinel_a_listed_incident_is_written_with_its_listed_etag_without_a_read() {
        let h = harness().await;
        let id = h
            .sim
            .seed_incident(SeedIncident::new("x").severity("Medium"));
        let since = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
        let listed = h.source.changed_since(since).await.unwrap().items;
        let listed = listed.into_iter().find(|i| i.id == id).unwrap();
        assert_eq!(h.source.listed_comments(&listed), Some(Vec::new()));
        h.sim.kit.clear_log();
        let after = h
            .source
            .update_listed(&listed, &update(&[], &["ticket:INC0010001"]))
            .await
            .unwrap();
        assert_eq!(after.tags, vec!["ticket:INC0010001"]);
        assert_eq!(methods(&h), vec![("PUT".to_string(), 200)]);

        // The listed etag is stale now: a second write from it is refused, not
        // applied over the change.
        h.sim.kit.clear_log();
        let error = h
            .source
            .update_listed(&listed, &update(&[("status", Some("Active"))], &[]))
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Conflict);
        assert_eq!(methods(&h), vec![("PUT".to_string(), 409)]);
        assert_eq!(h.sim.incident(&id).unwrap().status, "New");
    }

    #[tokio::test]
    async fn sentinel_stale_etag_is_a_conflict_and_not_retried() {
        let h = harness().await;
        let id = h
            .sim
            .seed_incident(SeedIncident::new("x").severity("Medium"));
        // An analyst changes the severity between the client's GET and its PUT.
        h.sim
            .on_next_put(&id, |incident| incident.severity = "Low".into());
        let error = h
            .source
            .update(&id, &update(&[("status", Some("Active"))], &[]))
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Conflict);
        assert!(
            error.message.contains("Data was not saved"),
            "{}",
            error.message
        );
        assert_eq!(
            methods(&h),
            vec![("GET".to_string(), 200), ("PUT".to_string(), 409)]
        );
        let stored = h.sim.incident(&id).unwrap();
        assert_eq!(
            (stored.status.as_str(), stored.severity.as_str()),
            ("New", "Low")
        );
        // Re-read and re-planned, it goes through and keeps the analyst's change.
        let after = h
            .source
            .update(&id, &update(&[("status", Some("Active"))], &[]))
            .await
            .unwrap();
        assert_eq!(after.attrs["status"], "Active");
        assert_eq!(after.attrs["severity"], "Low");
    }

    #[tokio::test]
    async fn sentinel_closing_rules_come_back_permanent() {
        let h = harness().await;
        let id = h.sim.seed_incident(SeedIncident::new("x").status("Active"));
        let error = h
            .source
            .update(&id, &update(&[("status", Some("Closed"))], &[]))
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Permanent);
        assert!(error.message.contains("HTTP 400"), "{}", error.message);
        let error = h
            .source
            .update(
                &id,
                &update(
                    &[
                        ("status", Some("Closed")),
                        ("classification", Some("BenignPositive")),
                    ],
                    &[],
                ),
            )
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Permanent);
        assert!(
            error
                .message
                .contains("classification 'BenignPositive' must have classificationReason"),
            "{}",
            error.message
        );
        assert_eq!(h.sim.incident(&id).unwrap().status, "Active");

        let closed = h
            .source
            .update(
                &id,
                &update(
                    &[
                        ("status", Some("Closed")),
                        ("classification", Some("FalsePositive")),
                        ("classification_reason", Some("IncorrectAlertLogic")),
                        ("classification_comment", Some("closed from SEC-1")),
                    ],
                    &[],
                ),
            )
            .await
            .unwrap();
        assert_eq!(closed.attrs["status"], "Closed");
        assert_eq!(closed.attrs["classification"], "FalsePositive");
        assert_eq!(closed.attrs["classification_reason"], "IncorrectAlertLogic");
        assert_eq!(closed.attrs["classification_comment"], "closed from SEC-1");
    }

    #[tokio::test]
    async fn sentinel_add_tags_keeps_auto_assigned_labels() {
        let h = harness().await;
        let id = h
            .sim
            .seed_incident(SeedIncident::new("x").auto_label("Phishing").label("vip"));
        let after = h
            .source
            .update(
                &id,
                &update(&[], &["phishing", "ticket:SEC-7", "TICKET:sec-7"]),
            )
            .await
            .unwrap();
        assert_eq!(after.tags, vec!["Phishing", "vip", "ticket:SEC-7"]);
        assert_eq!(
            labels(&h, &id),
            vec![
                ("Phishing".to_string(), "AutoAssigned".to_string()),
                ("vip".to_string(), "User".to_string()),
                ("ticket:SEC-7".to_string(), "User".to_string()),
            ]
        );
        // Nothing new: no PUT.
        h.sim.kit.clear_log();
        let same = h
            .source
            .update(&id, &update(&[], &["ticket:sec-7"]))
            .await
            .unwrap();
        assert_eq!(same.tags.len(), 3);
        assert_eq!(methods(&h), vec![("GET".to_string(), 200)]);
    }

    #[tokio::test]
    async fn sentinel_add_comment_twice_makes_one_comment() {
        let h = harness().await;
        let id = h.sim.seed_incident(SeedIncident::new("x"));
        let before = h.sim.incident(&id).unwrap();
        h.source
            .add_comment(&id, "Ticket SEC-9 opened")
            .await
            .unwrap();
        h.source
            .add_comment(&id, "Ticket SEC-9 opened")
            .await
            .unwrap();
        let comments = h.sim.comments(&id);
        assert_eq!(comments.len(), 1);
        assert_eq!(comments[0].name, comment_id(&id, "Ticket SEC-9 opened"));
        assert_eq!(comments[0].author.name.as_deref(), Some("itsm-bridge"));
        assert_eq!(
            methods(&h),
            vec![("PUT".to_string(), 201), ("PUT".to_string(), 200)]
        );
        let after = h.sim.incident_json(&id).unwrap();
        assert_eq!(after["properties"]["additionalData"]["commentsCount"], 1);
        assert!(h.sim.incident(&id).unwrap().modified > before.modified);

        h.sim
            .add_comment_as(&id, "ana.ruiz@contoso.example", "Looking into it");
        let read = h.source.comments(&id).await.unwrap();
        let texts: Vec<_> = read.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, vec!["Ticket SEC-9 opened", "Looking into it"]);
        assert_eq!(read[1].author.as_deref(), Some("Ana Ruiz"));
    }

    #[tokio::test]
    async fn sentinel_wrong_audience_token_is_auth() {
        let h = harness().await;
        let id = h.sim.seed_incident(SeedIncident::new("x"));
        let (graph_token, _) = h.registry.issue("https://graph.microsoft.com");
        let source = source_with(&h.sim, &graph_token, None);
        let error = source.get(&id).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Auth);
        assert!(
            error.message.contains("InvalidAuthenticationToken"),
            "{}",
            error.message
        );
        assert!(h.source.get(&id).await.is_ok());
    }

    #[tokio::test]
    async fn sentinel_throttled_requests_are_retried() {
        let h = harness().await;
        let id = h.sim.seed_incident(SeedIncident::new("x"));
        h.sim.kit.inject(throttle_fault(1, 0));
        let snapshot = h.source.get(&id).await.unwrap();
        assert_eq!(snapshot.id, id);
        assert_eq!(
            methods(&h),
            vec![("GET".to_string(), 429), ("GET".to_string(), 200)]
        );
    }

    #[tokio::test]
    async fn sentinel_merged_incidents_read_as_redirected() {
        let h = harness().await;
        let source_id = h
            .sim
            .seed_incident(SeedIncident::new("a").provider_incident_id("41877"));
        let target_id = h
            .sim
            .seed_incident(SeedIncident::new("b").provider_incident_id("41900"));
        assert!(h.sim.merge(&source_id, &target_id));
        let target_number = h.sim.incident(&target_id).unwrap().number;

        // Stable API: no merge fields, but closed, labelled, and its Defender link
        // leads to the target's Defender incident, whose Sentinel incident is found
        // by its provider id.
        h.sim.kit.clear_log();
        let stable = h.source.get(&source_id).await.unwrap();
        assert_eq!(stable.attrs["status"], "Closed");
        assert!(stable.tags.iter().any(|t| t == "Redirected"));
        assert_eq!(stable.redirect_to.as_deref(), Some(target_id.as_str()));
        assert_eq!(
            stable.provider_url.as_deref(),
            Some(
                "https://security.microsoft.com/incidents/41900?tid=0b3c5e1a-0000-4000-8000-00000000e9c0"
            )
        );
        assert_eq!(
            filters(&h),
            vec![
                None,
                Some("properties/providerIncidentId eq '41900'".to_string())
            ]
        );
        // What `redirect_to` names is what `get` takes.
        let target = h.source.get(stable.redirect_to.as_ref().unwrap()).await;
        assert_eq!(target.unwrap().id, target_id);

        // The preview API names the target's number, which is looked up.
        let preview = source_with(&h.sim, &h.token, Some("2025-07-01-preview"));
        h.sim.kit.clear_log();
        let snapshot = preview.get(&source_id).await.unwrap();
        assert_eq!(snapshot.redirect_to.as_deref(), Some(target_id.as_str()));
        assert_eq!(
            filters(&h),
            vec![
                None,
                Some(format!("properties/incidentNumber eq {target_number}"))
            ]
        );
        let requests = h.sim.kit.requests();
        assert!(
            requests[1]
                .query
                .as_deref()
                .unwrap()
                .contains("api-version=2025-07-01-preview"),
            "{requests:?}"
        );

        // Ordinary incidents cost no lookup.
        h.sim.kit.clear_log();
        let plain = h.source.get(&target_id).await.unwrap();
        assert_eq!(plain.redirect_to, None);
        assert_eq!(filters(&h), vec![None]);
    }

    /// The `$filter` of every request logged, in order (`None` for none).
    fn filters(h: &Harness) -> Vec<Option<String>> {
        h.sim
            .kit
            .requests()
            .into_iter()
            .map(|r| {
                url::form_urlencoded::parse(r.query.unwrap_or_default().as_bytes())
                    .find(|(k, _)| k == "$filter")
                    .map(|(_, v)| v.into_owned())
            })
            .collect()
    }

    #[tokio::test]
    async fn sentinel_merge_chains_resolve_step_by_step() {
        let h = harness().await;
        let a = h
            .sim
            .seed_incident(SeedIncident::new("a").provider_incident_id("41877"));
        let b = h
            .sim
            .seed_incident(SeedIncident::new("b").provider_incident_id("41900"));
        let c = h
            .sim
            .seed_incident(SeedIncident::new("c").provider_incident_id("41950"));
        assert!(h.sim.merge(&a, &b));
        assert!(h.sim.merge(&b, &c));
        let preview = source_with(&h.sim, &h.token, Some("2025-07-01-preview"));
        for source in [&h.source, &preview] {
            let version = source.api_version().to_string();
            let step = |id: String| async move { source.get(&id).await.unwrap().redirect_to };
            assert_eq!(step(a.clone()).await.as_ref(), Some(&b), "{version}");
            assert_eq!(step(b.clone()).await.as_ref(), Some(&c), "{version}");
            assert_eq!(step(c.clone()).await, None, "{version}");

            // The paged reads resolve the same way.
            let since = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
            let page = source.changed_since(since).await.unwrap();
            let targets: Vec<(String, Option<String>)> = page
                .items
                .into_iter()
                .map(|i| (i.id, i.redirect_to))
                .collect();
            assert!(
                targets.contains(&(a.clone(), Some(b.clone()))),
                "{targets:?}"
            );
            assert!(
                targets.contains(&(b.clone(), Some(c.clone()))),
                "{targets:?}"
            );
            assert!(targets.contains(&(c.clone(), None)), "{targets:?}");
        }
    }

    #[tokio::test]
    async fn sentinel_merges_that_do_not_resolve_stay_unknown() {
        let h = harness().await;
        let preview = source_with(&h.sim, &h.token, Some("2025-07-01-preview"));

        // The survivor was deleted after the merge: neither its number nor its
        // Defender incident finds anything.
        let a = h
            .sim
            .seed_incident(SeedIncident::new("a").provider_incident_id("41877"));
        let b = h
            .sim
            .seed_incident(SeedIncident::new("b").provider_incident_id("41900"));
        assert!(h.sim.merge(&a, &b));
        let (status, _) = h
            .raw(
                reqwest::Method::DELETE,
                &format!("{}/{b}?api-version=2025-09-01", h.incidents()),
                None,
            )
            .await;
        assert_eq!(status, 200);
        h.sim.kit.clear_log();
        let stable = h.source.get(&a).await.unwrap();
        assert_eq!(stable.redirect_to, None);
        assert!(stable.tags.iter().any(|t| t == "Redirected"));
        assert_eq!(filters(&h).len(), 2);
        h.sim.kit.clear_log();
        assert_eq!(preview.get(&a).await.unwrap().redirect_to, None);
        // The number first, then the Defender incident.
        assert_eq!(filters(&h).len(), 3);

        // Merged into an incident without a Defender link: the link still names the
        // merged-away incident itself, which is never its own target.
        let c = h
            .sim
            .seed_incident(SeedIncident::new("c").provider_incident_id("41990"));
        let native = h
            .sim
            .seed_incident(SeedIncident::new("native").sentinel_native());
        assert!(h.sim.merge(&c, &native));
        assert_eq!(h.source.get(&c).await.unwrap().redirect_to, None);
        // (The preview API still names it by number.)
        assert_eq!(
            preview.get(&c).await.unwrap().redirect_to.as_deref(),
            Some(native.as_str())
        );

        // A Sentinel incident an analyst closed and labelled "Redirected" by hand:
        // no clue at all, so no lookup; nor for a labelled incident that is open.
        let closed = h.sim.seed_incident(
            SeedIncident::new("by hand")
                .sentinel_native()
                .status("Closed")
                .classification("Undetermined")
                .label("Redirected"),
        );
        let open = h
            .sim
            .seed_incident(SeedIncident::new("open").label("redirected"));
        h.sim.kit.clear_log();
        assert_eq!(h.source.get(&closed).await.unwrap().redirect_to, None);
        assert_eq!(h.source.get(&open).await.unwrap().redirect_to, None);
        assert_eq!(filters(&h), vec![None, None]);
    }

    #[tokio::test]
    async fn sentinel_failing_redirect_lookups_are_the_merged_incidents_errors() {
        use crate::simkit::{Effect, FaultRule, Trigger};

        let h = harness().await;
        let a = h
            .sim
            .seed_incident(SeedIncident::new("a").provider_incident_id("41877"));
        let b = h
            .sim
            .seed_incident(SeedIncident::new("b").provider_incident_id("41900"));
        assert!(h.sim.merge(&a, &b));
        // The second GET under the collection is the lookup (the first is the
        // incident itself, or the page).
        let on_lookup = |effect: Effect| {
            FaultRule::new(Some(reqwest::Method::GET), h.incidents(), effect).when(Trigger::Nth(2))
        };

        h.sim.kit.inject(on_lookup(Effect::status(403)));
        let error = h.source.get(&a).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Auth);

        // In a listing a failed lookup is not the page's failure: the merged
        // incident comes through unresolved (the engine re-reads it on its own).
        h.sim.kit.inject(on_lookup(Effect::status(400)));
        let since = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
        let page = h.source.changed_since(since).await.unwrap();
        assert_eq!(page.items.len(), 2);
        let merged = page.items.iter().find(|i| i.id == a).unwrap();
        assert!(merged.tags.iter().any(|t| t == "Redirected"));
        assert_eq!(merged.redirect_to, None);
        let error = {
            h.sim.kit.inject(on_lookup(Effect::status(400)));
            h.source.get(&a).await.unwrap_err()
        };
        assert_eq!(error.kind, ErrorKind::Permanent);

        // Through the same Api: a throttled lookup waits and is tried again.
        h.sim.kit.clear_log();
        h.sim
            .kit
            .inject(on_lookup(Effect::status_retry_after(429, "0")));
        let snapshot = h.source.get(&a).await.unwrap();
        assert_eq!(snapshot.redirect_to.as_deref(), Some(b.as_str()));
        assert_eq!(
            methods(&h),
            vec![
                ("GET".to_string(), 200),
                ("GET".to_string(), 429),
                ("GET".to_string(), 200)
            ]
        );
    }
}
