//! [`SentinelSim`]: a strict stand-in for the Microsoft Sentinel incidents API (ARM,
//! `Microsoft.SecurityInsights`, API.md §3) on loopback. It checks every bearer token
//! against the [`TokenRegistry`] (audience `https://management.azure.com`), demands
//! one known `api-version` on every call, serves one workspace's incidents with
//! `$filter`/`$orderby`/`$top` (≤ 1000) and absolute `nextLink`s holding an opaque
//! `$skipToken`, takes full-replacement PUTs with the body `etag` (409 when stale)
//! and the closing rules, keeps incident comments under client-chosen GUIDs,
//! throttles per operation type with ARM's per-subscription token buckets (unless
//! told otherwise, a kinder mode SIMULATORS.md lists), and answers errors with
//! ARM's `CloudError`. Every write — a comment too (decided here, [U]: comments
//! are incident activity, and a poller must see portal comments) — issues a new
//! etag and a strictly later `lastModifiedTimeUtc`. State lives in memory; tests and
//! the demo play the analyst and Defender XDR through the admin API (Rust methods,
//! or HTTP under `/_sim/` without auth).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bridge_core::config::SentinelWorkspace;
use bridge_core::vocab::{
    SENTINEL_CLASSIFICATION, SENTINEL_CLASSIFICATION_REASON, SENTINEL_SEVERITY, SENTINEL_STATUS,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::convert::{REDIRECTED_LABEL, canonical_enum};
use super::wire::{
    self, COMMENT_TYPE, ClientInfo, CloudError, CommentProperties, INCIDENT_TYPE, Incident,
    IncidentAdditionalData, IncidentComment, IncidentLabel, IncidentOwner, IncidentProperties,
    ResourceList,
};
use crate::auth::registry::{TokenProblem, TokenRegistry};
use crate::bucket::TokenBucket;
use crate::simkit::{self, Fault, json_response_as};

mod filter;

use filter::{Clause, Field, FieldValue, Filterable, Scope, parse_filter};

pub const DEFAULT_AUDIENCE: &str = "https://management.azure.com";
/// The `api-version`s accepted (API.md §3.1, plus the preview that has the merge fields).
pub const API_VERSIONS: &[&str] = &[
    "2025-09-01",
    "2025-07-01-preview",
    "2025-06-01",
    "2025-03-01",
    "2024-09-01",
    "2024-03-01",
    "2023-11-01",
    "2023-02-01",
];
/// `$top` above this is a 400 (API.md §3.2).
pub const MAX_TOP: usize = 1000;
/// The page size when `$top` is absent. [U]
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The first `incidentNumber` handed out.
pub const FIRST_NUMBER: i64 = 8800;
/// The first Defender XDR incident id given to a seeded Defender incident.
pub const FIRST_PROVIDER_ID: u64 = 41000;
/// `providerName` of an incident synced from Defender XDR. [U on the exact string]
pub const DEFENDER_PROVIDER: &str = "Microsoft XDR";
/// `providerName` of an incident Sentinel made itself.
pub const SENTINEL_PROVIDER: &str = "Azure Sentinel";
/// The tenant in Defender portal links until [`SentinelSim::set_tenant_id`].
pub const DEFAULT_TENANT_ID: &str = "0b3c5e1a-0000-4000-8000-00000000e9c0";
/// The author of comments written through the API (the bridge's service principal).
pub const APP_NAME: &str = "itsm-bridge";
pub const APP_OBJECT_ID: &str = "5a1d0c7e-3b2f-4e6a-9c8d-7f0e1a2b3c4d";
const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";
const PROVIDER_OW: &str = "Microsoft.OperationalInsights";
const PROVIDER_SI: &str = "Microsoft.SecurityInsights";

// ---------------------------------------------------------------------------------
// The simulator's incidents

/// One incident as the simulator stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimIncident {
    /// The incident GUID (`name`).
    pub name: String,
    pub number: i64,
    /// Quoted, as sent (`"\"…\""`); new on every write.
    pub etag: String,
    pub title: String,
    pub description: Option<String>,
    pub severity: String,
    pub status: String,
    pub classification: Option<String>,
    pub classification_reason: Option<String>,
    pub classification_comment: Option<String>,
    pub owner: Option<SimOwner>,
    pub labels: Vec<SimLabel>,
    pub first_activity: Option<DateTime<Utc>>,
    pub last_activity: Option<DateTime<Utc>>,
    pub created: DateTime<Utc>,
    /// `lastModifiedTimeUtc`; strictly increases with every write.
    pub modified: DateTime<Utc>,
    pub provider_name: String,
    pub provider_incident_id: Option<String>,
    pub provider_incident_url: Option<String>,
    pub alerts_count: i64,
    pub alert_product_names: Vec<String>,
    pub tactics: Vec<String>,
    /// Preview `additionalData.mergedIncidentNumber` (set by [`SentinelSim::merge`]).
    pub merged_incident_number: Option<String>,
    pub merged_incident_url: Option<String>,
    /// Oldest first.
    pub comments: Vec<SimComment>,
    /// ARM `systemData`: who made the incident (`createdAt` is `created`).
    pub created_by: SimIdentity,
    /// ARM `systemData`: who made the latest change (`lastModifiedAt` is
    /// `modified`): the analyst for a portal change, the app for an API write.
    pub last_modified_by: SimIdentity,
}

/// An identity as ARM's `systemData` names it: a user's UPN, or an
/// application's id, with its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimIdentity {
    pub name: String,
    /// `User`, `Application`, `ManagedIdentity` or `Key`.
    pub kind: String,
}

impl SimIdentity {
    pub fn user(name: &str) -> SimIdentity {
        SimIdentity {
            name: name.to_string(),
            kind: "User".to_string(),
        }
    }

    /// The app the API's callers hold tokens of (its application id).
    pub fn app() -> SimIdentity {
        SimIdentity {
            name: APP_OBJECT_ID.to_string(),
            kind: "Application".to_string(),
        }
    }

    /// Who makes incidents from analytics rules and Defender XDR's sync.
    pub fn sentinel() -> SimIdentity {
        SimIdentity {
            name: "Microsoft Sentinel".to_string(),
            kind: "Application".to_string(),
        }
    }
}

/// Who a portal change is made by when the analyst API names nobody.
pub const DEFAULT_ANALYST_UPN: &str = "analyst@contoso.com";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOwner {
    pub object_id: String,
    pub email: Option<String>,
    pub user_principal_name: Option<String>,
    /// The display name.
    pub assigned_to: Option<String>,
    pub owner_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimLabel {
    pub name: String,
    /// `User` or `AutoAssigned`.
    pub label_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimComment {
    /// The comment GUID.
    pub name: String,
    pub message: String,
    pub author: ClientInfo,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub etag: String,
    /// Creation order (ties on `created`).
    seq: i64,
}

impl SimIncident {
    /// `true` when it carries `label` (any case).
    pub fn has_label(&self, label: &str) -> bool {
        self.labels
            .iter()
            .any(|l| l.name.eq_ignore_ascii_case(label))
    }

    fn comment_index(&self, name: &str) -> Option<usize> {
        self.comments
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }
}

impl Filterable for SimIncident {
    fn value(&self, field: Field) -> FieldValue<'_> {
        match field {
            Field::LastModified => FieldValue::Time(self.modified),
            Field::Created => FieldValue::Time(self.created),
            Field::Status => FieldValue::Text(Some(&self.status)),
            Field::Severity => FieldValue::Text(Some(&self.severity)),
            Field::Classification => FieldValue::Text(self.classification.as_deref()),
            Field::Title => FieldValue::Text(Some(&self.title)),
            Field::ProviderIncidentId => FieldValue::Text(self.provider_incident_id.as_deref()),
            Field::IncidentNumber => FieldValue::Number(self.number),
        }
    }
}

impl Filterable for SimComment {
    fn value(&self, field: Field) -> FieldValue<'_> {
        match field {
            Field::LastModified => FieldValue::Time(self.modified),
            _ => FieldValue::Time(self.created),
        }
    }
}

// ---------------------------------------------------------------------------------
// Seeds and analyst changes: `sim/seed.rs`.
mod seed;
pub use seed::*;

// ---------------------------------------------------------------------------------
// State

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Read,
    Write,
    Delete,
}

impl Operation {
    fn of(method: &Method) -> Operation {
        match *method {
            Method::GET | Method::HEAD => Operation::Read,
            Method::DELETE => Operation::Delete,
            _ => Operation::Write,
        }
    }

    fn header(self) -> &'static str {
        match self {
            Operation::Read => "x-ms-ratelimit-remaining-subscription-reads",
            Operation::Write => "x-ms-ratelimit-remaining-subscription-writes",
            Operation::Delete => "x-ms-ratelimit-remaining-subscription-deletes",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Delete => "delete",
        }
    }
}

/// One of ARM's buckets: the shared [`TokenBucket`], shaped by ARM's whole-number
/// limit and answered in ARM's terms (whole tokens left, whole seconds to wait).
#[derive(Debug)]
struct Bucket {
    limit: BucketLimit,
    bucket: TokenBucket,
}

impl Bucket {
    fn new(limit: BucketLimit) -> Bucket {
        let shape = crate::bucket::BucketLimit {
            burst: limit.capacity,
            per_second: f64::from(limit.refill_per_second),
        };
        Bucket {
            limit,
            bucket: TokenBucket::new(shape, Instant::now()),
        }
    }

    /// Takes a token: `Ok(remaining)` or `Err(seconds to wait)`.
    fn take(&mut self) -> Result<u32, u64> {
        let refill = f64::from(self.limit.refill_per_second);
        if refill <= 0.0 && self.bucket.tokens() < 1.0 {
            // Never refilled: an hour is as good an answer as any.
            return Err(3600);
        }
        match self.bucket.try_take(Instant::now()) {
            Ok(()) => Ok(self.bucket.tokens().floor() as u32),
            Err(_) => Err((((1.0 - self.bucket.tokens()) / refill).ceil() as u64).max(1)),
        }
    }
}

/// Full buckets for each operation type.
fn buckets(limit: ArmRateLimit) -> [Bucket; 3] {
    [
        Bucket::new(limit.reads),
        Bucket::new(limit.writes),
        Bucket::new(limit.deletes),
    ]
}

type PutHook = Box<dyn FnOnce(&mut SimIncident) + Send>;

/// The simulator's model (what [`SentinelSim`] locks); opaque outside this module.
pub struct SimState {
    /// By lower-cased name (ARM names are case-insensitive).
    incidents: HashMap<String, SimIncident>,
    next_number: i64,
    next_provider_id: u64,
    last_stamp: Option<DateTime<Utc>>,
    etag_counter: u64,
    comment_seq: i64,
    audience: String,
    tenant_id: String,
    /// People an owner can name, by object id.
    users: Vec<SimOwner>,
    preview_on_stable: bool,
    undetermined_bug: bool,
    /// The label a merge adds to the merged-away incident.
    redirected_label: String,
    rate: Option<[Bucket; 3]>,
    put_hooks: Vec<(String, PutHook)>,
    resources: Resources,
}

impl std::fmt::Debug for SimState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimState")
            .field("incidents", &self.incidents.len())
            .finish_non_exhaustive()
    }
}

impl SimState {
    fn new(resources: Resources) -> SimState {
        SimState {
            resources,
            incidents: HashMap::new(),
            next_number: FIRST_NUMBER,
            next_provider_id: FIRST_PROVIDER_ID,
            last_stamp: None,
            etag_counter: 0,
            comment_seq: 0,
            audience: DEFAULT_AUDIENCE.to_string(),
            tenant_id: DEFAULT_TENANT_ID.to_string(),
            users: Vec::new(),
            preview_on_stable: false,
            undetermined_bug: true,
            redirected_label: REDIRECTED_LABEL.to_string(),
            rate: Some(buckets(ArmRateLimit::SUBSCRIPTION)),
            put_hooks: Vec::new(),
        }
    }

    /// Now, at ARM's precision, and strictly after every stamp issued before.
    fn stamp(&mut self) -> DateTime<Utc> {
        let now = wire::truncate_timestamp(simkit::now());
        let at = match self.last_stamp {
            Some(last) if now <= last => last + chrono::Duration::nanoseconds(100),
            _ => now,
        };
        self.last_stamp = Some(at);
        at
    }

    fn observe(&mut self, at: DateTime<Utc>) {
        if self.last_stamp.is_none_or(|last| at > last) {
            self.last_stamp = Some(at);
        }
    }

    /// A new quoted, GUID-like etag (`"\"0000002a-0000-0d00-0000-6634a1b20000\""`).
    fn etag(&mut self) -> String {
        self.etag_counter += 1;
        let secs = simkit::now().timestamp().max(0) as u64;
        format!(
            "\"{:08x}-0000-0d00-0000-{:08x}0000\"",
            self.etag_counter,
            secs & 0xffff_ffff
        )
    }

    fn get(&self, id: &str) -> Option<&SimIncident> {
        self.incidents.get(&id.to_ascii_lowercase())
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut SimIncident> {
        self.incidents.get_mut(&id.to_ascii_lowercase())
    }

    fn provider_url(&self, provider_id: &str) -> String {
        format!(
            "https://security.microsoft.com/incidents/{provider_id}?tid={}",
            self.tenant_id
        )
    }

    /// The directory entry for a UPN/email, added if new.
    fn user_by_name(&mut self, upn: &str) -> SimOwner {
        if let Some(user) = self.users.iter().find(|u| {
            u.user_principal_name
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(upn))
                || u.email
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(upn))
        }) {
            return user.clone();
        }
        let user = SimOwner {
            object_id: guid_from(&format!("user:{}", upn.to_ascii_lowercase())),
            email: Some(upn.to_string()),
            user_principal_name: Some(upn.to_string()),
            assigned_to: Some(display_name(upn)),
            owner_type: "User".into(),
        };
        self.users.push(user.clone());
        user
    }

    /// The owner a PUT names: a known user by object id, UPN or email (the server
    /// fills in the rest), else what was sent.
    fn resolve_owner(&mut self, sent: &IncidentOwner) -> SimOwner {
        let by_id = sent.object_id.as_deref().and_then(|id| {
            self.users
                .iter()
                .find(|u| u.object_id.eq_ignore_ascii_case(id))
                .cloned()
        });
        if let Some(user) = by_id {
            return user;
        }
        if sent.object_id.is_none()
            && let Some(name) = sent
                .user_principal_name
                .as_deref()
                .or(sent.email.as_deref())
        {
            return self.user_by_name(name);
        }
        SimOwner {
            object_id: sent.object_id.clone().unwrap_or_default(),
            email: sent.email.clone(),
            user_principal_name: sent.user_principal_name.clone(),
            assigned_to: sent.assigned_to.clone(),
            owner_type: sent.owner_type.clone().unwrap_or_else(|| "User".into()),
        }
    }

    fn seed(&mut self, seed: SeedIncident) -> Result<String, String> {
        let title = seed.title.trim();
        if title.is_empty() {
            return Err("the title is empty".into());
        }
        let status = canonical_enum(SENTINEL_STATUS, &seed.status)
            .ok_or_else(|| format!("`{}` is not an incident status", seed.status))?;
        let severity = canonical_enum(SENTINEL_SEVERITY, &seed.severity)
            .ok_or_else(|| format!("`{}` is not a severity", seed.severity))?;
        let classification = enum_option(SENTINEL_CLASSIFICATION, &seed.classification)?;
        let reason = enum_option(SENTINEL_CLASSIFICATION_REASON, &seed.classification_reason)?;
        let name = match seed.id {
            Some(id) if !is_guid(&id) => return Err(format!("`{id}` is not a GUID")),
            Some(id) if self.get(&id).is_some() => {
                return Err(format!("incident {id} already exists"));
            }
            Some(id) => id,
            None => random_guid(),
        };
        let (created, updated) = match (seed.created, seed.updated) {
            (None, None) => {
                let now = self.stamp();
                (now, now)
            }
            (Some(c), None) => (c, c),
            (None, Some(u)) => (u, u),
            (Some(c), Some(u)) => (c, u),
        };
        let created = wire::truncate_timestamp(created);
        let updated = wire::truncate_timestamp(updated);
        self.observe(updated);
        let defender = seed
            .provider_name
            .as_deref()
            .is_none_or(|p| p != SENTINEL_PROVIDER);
        let provider_incident_id = if defender {
            Some(match seed.provider_incident_id {
                Some(id) => {
                    if let Ok(n) = id.parse::<u64>() {
                        self.next_provider_id = self.next_provider_id.max(n.saturating_add(1));
                    }
                    id
                }
                None => {
                    self.next_provider_id += 1;
                    (self.next_provider_id - 1).to_string()
                }
            })
        } else {
            seed.provider_incident_id
        };
        let provider_incident_url = provider_incident_id
            .as_deref()
            .filter(|_| defender)
            .map(|id| self.provider_url(id));
        let owner = seed.owner.as_deref().map(|upn| self.user_by_name(upn));
        let mut labels: Vec<SimLabel> = Vec::new();
        for label in seed.labels {
            let label_type = canonical_enum(&["User", "AutoAssigned"], &label.label_type)
                .ok_or_else(|| format!("`{}` is not a label type", label.label_type))?;
            if !labels
                .iter()
                .any(|l| l.name.eq_ignore_ascii_case(&label.name))
            {
                labels.push(SimLabel {
                    name: label.name,
                    label_type: label_type.to_string(),
                });
            }
        }
        let alert_product_names = if seed.alert_product_names.is_empty() && defender {
            vec!["Microsoft Defender for Endpoint".to_string()]
        } else {
            seed.alert_product_names
        };
        let number = self.next_number;
        self.next_number += 1;
        let etag = self.etag();
        let incident = SimIncident {
            name: name.clone(),
            number,
            etag,
            title: title.to_string(),
            description: seed.description,
            severity: severity.to_string(),
            status: status.to_string(),
            classification: classification.map(str::to_string),
            classification_reason: reason.map(str::to_string),
            classification_comment: seed.classification_comment,
            owner,
            labels,
            first_activity: Some(created),
            last_activity: Some(created),
            created,
            modified: updated,
            provider_name: seed
                .provider_name
                .unwrap_or_else(|| DEFENDER_PROVIDER.to_string()),
            provider_incident_id,
            provider_incident_url,
            alerts_count: seed.alerts_count,
            alert_product_names,
            tactics: seed.tactics,
            merged_incident_number: None,
            merged_incident_url: None,
            comments: Vec::new(),
            created_by: SimIdentity::sentinel(),
            last_modified_by: SimIdentity::sentinel(),
        };
        self.incidents.insert(name.to_ascii_lowercase(), incident);
        Ok(name)
    }

    /// Applies `f` as a change made outside the API and bumps the incident.
    fn change(&mut self, id: &str, f: impl FnOnce(&mut SimIncident)) -> Option<SimIncident> {
        self.get(id)?;
        let at = self.stamp();
        let etag = self.etag();
        let incident = self.get_mut(id).expect("checked above");
        // A portal change unless the caller says who (an API write says the app).
        incident.last_modified_by = SimIdentity::user(DEFAULT_ANALYST_UPN);
        f(incident);
        incident.modified = at;
        incident.etag = etag;
        Some(incident.clone())
    }

    fn apply_analyst_change(
        &mut self,
        id: &str,
        change: AnalystChange,
    ) -> Result<SimIncident, String> {
        if self.get(id).is_none() {
            return Err(format!("incident {id} does not exist"));
        }
        let status = change
            .status
            .as_deref()
            .map(|s| {
                canonical_enum(SENTINEL_STATUS, s)
                    .ok_or_else(|| format!("`{s}` is not an incident status"))
            })
            .transpose()?;
        let severity = change
            .severity
            .as_deref()
            .map(|s| {
                canonical_enum(SENTINEL_SEVERITY, s)
                    .ok_or_else(|| format!("`{s}` is not a severity"))
            })
            .transpose()?;
        let classification = change
            .classification
            .map(|c| enum_option(SENTINEL_CLASSIFICATION, &c))
            .transpose()?;
        let reason = change
            .classification_reason
            .map(|r| enum_option(SENTINEL_CLASSIFICATION_REASON, &r))
            .transpose()?;
        let owner = change.owner.map(|o| o.map(|upn| self.user_by_name(&upn)));
        let labels = change
            .labels
            .map(|labels| {
                labels
                    .into_iter()
                    .map(|l| {
                        canonical_enum(&["User", "AutoAssigned"], &l.label_type)
                            .map(|t| SimLabel {
                                name: l.name,
                                label_type: t.to_string(),
                            })
                            .ok_or_else(|| format!("`{}` is not a label type", l.label_type))
                    })
                    .collect::<Result<Vec<_>, String>>()
            })
            .transpose()?;
        let by = change.by.clone().map(|by| SimIdentity::user(&by));
        let comment = change
            .comment
            .map(|c| self.new_comment(c.text, author_info(&c.author)));
        let changed = self.change(id, move |incident| {
            if let Some(by) = by {
                incident.last_modified_by = by;
            }
            if let Some(title) = change.title {
                incident.title = title;
            }
            if let Some(description) = change.description {
                incident.description = description;
            }
            if let Some(status) = status {
                incident.status = status.to_string();
            }
            if let Some(severity) = severity {
                incident.severity = severity.to_string();
            }
            if let Some(classification) = classification {
                incident.classification = classification.map(str::to_string);
            }
            if let Some(reason) = reason {
                incident.classification_reason = reason.map(str::to_string);
            }
            if let Some(comment) = change.classification_comment {
                incident.classification_comment = comment;
            }
            if let Some(owner) = owner {
                incident.owner = owner;
            }
            if let Some(labels) = labels {
                incident.labels = labels;
            }
            if let Some(comment) = comment {
                incident.comments.push(comment);
            }
        });
        changed.ok_or_else(|| format!("incident {id} does not exist"))
    }

    fn new_comment(&mut self, message: String, author: ClientInfo) -> SimComment {
        let at = self.stamp();
        self.comment_seq += 1;
        SimComment {
            name: random_guid(),
            message,
            author,
            created: at,
            modified: at,
            etag: self.etag(),
            seq: self.comment_seq,
        }
    }

    fn merge(&mut self, source_id: &str, target_id: &str) -> Result<(), String> {
        let source_key = source_id.to_ascii_lowercase();
        let target_key = target_id.to_ascii_lowercase();
        if source_key == target_key {
            return Err("an incident cannot be merged into itself".into());
        }
        let source = self
            .incidents
            .get(&source_key)
            .ok_or_else(|| format!("incident {source_id} does not exist"))?;
        let target = self
            .incidents
            .get(&target_key)
            .ok_or_else(|| format!("incident {target_id} does not exist"))?;
        let moved_alerts = source.alerts_count;
        let number = target.number.to_string();
        let url = self.resources.incident_url(&target.name);
        // The merged-away incident keeps its own Defender incident id (the join key
        // to Graph, where that incident stays, `redirected` to the target; API.md
        // §3.3, §3.5); its Defender link leads to where the work went. [U on the link]
        let provider_url = target
            .provider_incident_url
            .clone()
            .or_else(|| source.provider_incident_url.clone());
        let label = self.redirected_label.clone();
        self.change(source_id, |incident| {
            incident.status = "Closed".into();
            if incident.classification.is_none() {
                incident.classification = Some("Undetermined".into());
                incident.classification_reason = None;
            }
            if !incident.has_label(&label) {
                incident.labels.push(SimLabel {
                    name: label,
                    label_type: "AutoAssigned".into(),
                });
            }
            incident.provider_incident_url = provider_url;
            incident.merged_incident_number = Some(number);
            incident.merged_incident_url = Some(url);
        });
        self.change(target_id, |incident| {
            incident.alerts_count += moved_alerts;
        });
        Ok(())
    }

    /// Takes a request from the operation's bucket: `Ok(Some(remaining))` when
    /// throttling is on, `Err(retry after seconds)` when over.
    fn take_token(&mut self, operation: Operation) -> Result<Option<u32>, u64> {
        let Some(buckets) = self.rate.as_mut() else {
            return Ok(None);
        };
        let bucket = match operation {
            Operation::Read => &mut buckets[0],
            Operation::Write => &mut buckets[1],
            Operation::Delete => &mut buckets[2],
        };
        bucket.take().map(Some)
    }
}

fn enum_option(
    set: &[&'static str],
    value: &Option<String>,
) -> Result<Option<&'static str>, String> {
    value
        .as_deref()
        .map(|v| canonical_enum(set, v).ok_or_else(|| format!("`{v}` is not one of {set:?}")))
        .transpose()
}

/// `ana.ruiz@contoso.example` → `Ana Ruiz`.
fn display_name(upn: &str) -> String {
    upn.split('@')
        .next()
        .unwrap_or(upn)
        .split(['.', '_', '-'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn author_info(author: &str) -> ClientInfo {
    let upn = author.contains('@').then(|| author.to_string());
    ClientInfo {
        email: upn.clone(),
        name: Some(if upn.is_some() {
            display_name(author)
        } else {
            author.to_string()
        }),
        object_id: Some(guid_from(&format!("user:{}", author.to_ascii_lowercase()))),
        user_principal_name: upn,
    }
}

fn app_author() -> ClientInfo {
    ClientInfo {
        email: None,
        name: Some(APP_NAME.to_string()),
        object_id: Some(APP_OBJECT_ID.to_string()),
        user_principal_name: None,
    }
}

fn random_guid() -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        fastrand::u32(..),
        fastrand::u16(..),
        fastrand::u16(..0x1000),
        0x8000 | fastrand::u16(..0x4000),
        fastrand::u64(..1 << 48)
    )
}

/// A stable GUID-shaped string for `seed`.
fn guid_from(seed: &str) -> String {
    let mut a = DefaultHasher::new();
    seed.hash(&mut a);
    let mut b = DefaultHasher::new();
    (seed, 1u8).hash(&mut b);
    let (x, y) = (a.finish(), b.finish());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        x >> 32,
        (x >> 16) & 0xffff,
        x & 0xfff,
        0x8000 | ((y >> 48) & 0x3fff),
        y & 0xffff_ffff_ffff
    )
}

/// `8-4-4-4-12` hex digits.
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// What the simulator fixes at start and reads without its lock.
#[derive(Debug)]
pub struct Context {
    registry: Arc<TokenRegistry>,
    resources: Resources,
    /// Used for links when a request carries no usable `Host` header.
    base_url: String,
}

type Shared = simkit::Shared<SimState, Context>;

impl simkit::VendorState for SimState {
    const NAME: &'static str = "SentinelSim";
    const JSON_CONTENT_TYPE: &'static str = JSON_CONTENT_TYPE;
}

impl Shared {
    /// The incident as the API shows it (`preview`: with the preview-only fields).
    fn render(&self, incident: &SimIncident, preview: bool) -> Incident {
        self.context.resources.incident_wire(incident, preview)
    }
}

// ---------------------------------------------------------------------------------
// The simulator and its admin API

/// The Sentinel incidents simulator for one workspace.
pub type SentinelSim = simkit::Sim<SimState, Context>;

impl SentinelSim {
    /// Serves the simulator (plain HTTP) on `listener` until [`SentinelSim::shutdown`].
    pub async fn start(
        listener: TcpListener,
        registry: Arc<TokenRegistry>,
        workspace: SentinelWorkspace,
    ) -> SentinelSim {
        let shared = Shared::new(
            SimState::new(Resources {
                workspace: workspace.clone(),
            }),
            Context {
                registry,
                resources: Resources { workspace },
                base_url: simkit::plain_base_url(&listener),
            },
        );
        let router = Shared::router()
            .route(
                "/_sim/incidents",
                get(admin_list).post(simkit::admin_seed::<SimState, Context>),
            )
            .route(
                "/_sim/incidents/{id}",
                get(simkit::admin_get::<SimState, Context>)
                    .patch(simkit::admin_change::<SimState, Context>),
            )
            .route("/_sim/incidents/{id}/merge", post(admin_merge))
            .route("/_sim/incidents/{id}/comments", post(admin_comment))
            .fallback(arm);
        SentinelSim::serve(listener, shared, router, |router| router).await
    }

    pub fn workspace(&self) -> &SentinelWorkspace {
        &self.shared().context.resources.workspace
    }

    /// `/subscriptions/…/providers/Microsoft.SecurityInsights/incidents`: the
    /// collection's path (append `?api-version=…`).
    pub fn incidents_path(&self) -> String {
        format!("{}/incidents", self.shared().context.resources.prefix())
    }

    /// The token audience accepted (default `https://management.azure.com`).
    pub fn audience(&self) -> String {
        self.lock().audience.clone()
    }

    pub fn set_audience(&self, audience: &str) {
        self.lock().audience = audience.to_string();
    }

    /// The tenant named in Defender portal links of incidents seeded from now on.
    pub fn set_tenant_id(&self, tenant_id: &str) {
        self.lock().tenant_id = tenant_id.to_string();
    }

    /// ARM throttling per operation type, [`ArmRateLimit::SUBSCRIPTION`] by default
    /// (API.md §3.8). When on, answers carry
    /// `x-ms-ratelimit-remaining-subscription-{reads,writes,deletes}`. `None` lifts
    /// it, a kinder mode its callers must give a reason for.
    pub fn set_rate_limit(&self, limit: Option<ArmRateLimit>) {
        self.lock().rate = limit.map(buckets);
    }

    /// Show the preview-only `additionalData` fields (`mergedIncidentNumber`, …) on
    /// stable api-versions too; off by default (whether the service does is [U]).
    pub fn set_preview_data_on_stable(&self, on: bool) {
        self.lock().preview_on_stable = on;
    }

    /// The label a merge adds, `Redirected` by default. Its exact casing is
    /// unconfirmed (API.md §3.5 [U]: the docs write "redirected"), so tests can
    /// try either.
    pub fn set_redirected_label(&self, label: &str) {
        self.lock().redirected_label = label.to_string();
    }

    /// Reproduce azure-rest-api-specs#27165 (`properties/classification eq
    /// 'Undetermined'` lists nothing); on by default.
    pub fn set_undetermined_filter_bug(&self, on: bool) {
        self.lock().undetermined_bug = on;
    }

    /// Makes `upn` known with this display name (an owner sent by object id alone
    /// is resolved against these). Returns the object id.
    pub fn add_user(&self, upn: &str, display_name: &str) -> String {
        let mut state = self.lock();
        let mut user = state.user_by_name(upn);
        user.assigned_to = Some(display_name.to_string());
        if let Some(u) = state
            .users
            .iter_mut()
            .find(|u| u.object_id == user.object_id)
        {
            *u = user.clone();
        }
        user.object_id
    }

    /// Adds an incident; returns its name (GUID). Panics on an invalid seed (a test bug).
    pub fn seed_incident(&self, seed: SeedIncident) -> String {
        self.try_seed_incident(seed)
            .unwrap_or_else(|e| panic!("sentinel sim: bad seed: {e}"))
    }

    pub fn try_seed_incident(&self, seed: SeedIncident) -> Result<String, String> {
        self.lock().seed(seed)
    }

    pub fn incident(&self, id: &str) -> Option<SimIncident> {
        self.lock().get(id).cloned()
    }

    /// The incident's JSON as the API shows it (preview fields included).
    pub fn incident_json(&self, id: &str) -> Option<serde_json::Value> {
        let state = self.lock();
        let incident = state.get(id)?;
        Some(to_json(&self.shared().render(incident, true)))
    }

    /// All incidents, by number.
    pub fn incidents(&self) -> Vec<SimIncident> {
        let mut all: Vec<_> = self.lock().incidents.values().cloned().collect();
        all.sort_by_key(|i| i.number);
        all
    }

    /// The incident's comments, oldest first.
    pub fn comments(&self, id: &str) -> Vec<SimComment> {
        self.incident(id).map(|i| i.comments).unwrap_or_default()
    }

    /// Changes an incident as an analyst in the portal (or Defender XDR's sync)
    /// would: no validation; `lastModifiedTimeUtc` and the etag are renewed.
    /// `None` if there is no such incident.
    pub fn update_as_analyst(
        &self,
        id: &str,
        f: impl FnOnce(&mut SimIncident),
    ) -> Option<SimIncident> {
        self.lock().change(id, f)
    }

    /// Changes an incident as the analyst `upn` in the portal would (no
    /// validation): `systemData.lastModifiedBy` names them.
    pub fn update_as(
        &self,
        id: &str,
        upn: &str,
        f: impl FnOnce(&mut SimIncident),
    ) -> Option<SimIncident> {
        let by = SimIdentity::user(upn);
        self.lock().change(id, move |incident| {
            incident.last_modified_by = by;
            f(incident);
        })
    }

    /// A change stamped `lastModifiedTimeUtc = at` with a fresh etag: how an edit
    /// made within the same tick as another write (the bridge's own) looks.
    /// `None` if there is no such incident.
    pub fn update_as_analyst_at(
        &self,
        id: &str,
        at: DateTime<Utc>,
        f: impl FnOnce(&mut SimIncident),
    ) -> Option<SimIncident> {
        let mut state = self.lock();
        state.change(id, f)?;
        let incident = state.get_mut(id).expect("changed above");
        incident.modified = at;
        Some(incident.clone())
    }

    /// A validated change on the portal side (what `PATCH /_sim/incidents/{id}` does).
    pub fn apply_analyst_change(
        &self,
        id: &str,
        change: AnalystChange,
    ) -> Result<SimIncident, String> {
        self.lock().apply_analyst_change(id, change)
    }

    /// Assigns to `upn` (`None` unassigns).
    pub fn assign(&self, id: &str, upn: Option<&str>) -> bool {
        self.apply(
            id,
            AnalystChange {
                owner: Some(upn.map(str::to_string)),
                ..AnalystChange::default()
            },
        )
    }

    /// Closes as an analyst would; the closing rules apply (false when broken).
    pub fn close(&self, id: &str, classification: &str, reason: Option<&str>) -> bool {
        let Ok(Some(c)) = enum_option(SENTINEL_CLASSIFICATION, &Some(classification.into())) else {
            return false;
        };
        let Ok(r) = enum_option(SENTINEL_CLASSIFICATION_REASON, &reason.map(str::to_string)) else {
            return false;
        };
        if check_closing_rules("Closed", Some(c), r).is_err() {
            return false;
        }
        self.apply(
            id,
            AnalystChange {
                status: Some("Closed".into()),
                classification: Some(Some(c.into())),
                classification_reason: Some(r.map(str::to_string)),
                ..AnalystChange::default()
            },
        )
    }

    /// A comment written in the portal by `author` (a UPN or a name); returns the
    /// comment's name.
    pub fn add_comment_as(&self, id: &str, author: &str, text: &str) -> Option<String> {
        let incident = self
            .apply_analyst_change(
                id,
                AnalystChange {
                    comment: Some(SeedComment {
                        author: author.into(),
                        text: text.into(),
                    }),
                    ..AnalystChange::default()
                },
            )
            .ok()?;
        incident.comments.last().map(|c| c.name.clone())
    }

    /// Merges `source_id` into `target_id` as Defender XDR's correlation shows up in
    /// Sentinel: the source is Closed (classification `Undetermined` unless it had
    /// one) with an `AutoAssigned` "Redirected" label; it keeps its own
    /// `providerIncidentId` (the Defender incident, which Defender keeps as
    /// `redirected`), while its `additionalData.providerIncidentUrl` leads to the
    /// target's Defender incident [U] (kept when the target has none), and the
    /// preview `additionalData.mergedIncidentNumber`/`mergedIncidentUrl` name the
    /// target; the target absorbs the alerts. Both are bumped. False when either is
    /// missing.
    pub fn merge(&self, source_id: &str, target_id: &str) -> bool {
        self.lock().merge(source_id, target_id).is_ok()
    }

    /// Before the next API PUT to incident `id` is applied (after its body has been
    /// validated), runs `f` as an analyst change: the race between a client's GET
    /// and its PUT, so the PUT's etag is stale.
    pub fn on_next_put(&self, id: &str, f: impl FnOnce(&mut SimIncident) + Send + 'static) {
        self.lock()
            .put_hooks
            .push((id.to_ascii_lowercase(), Box::new(f)));
    }

    fn apply(&self, id: &str, change: AnalystChange) -> bool {
        self.apply_analyst_change(id, change).is_ok()
    }
}

// ---------------------------------------------------------------------------------
// ARM paths, routing, errors: `sim/arm.rs`.
mod arm;
pub use arm::*;

// ---------------------------------------------------------------------------------
// Listing and $skipToken: `sim/listing.rs`.
mod listing;
use listing::*;

// ---------------------------------------------------------------------------------
// PUT bodies: `sim/writes.rs`.
mod writes;
use writes::*;

// ---------------------------------------------------------------------------------
// Handlers: the admin surface under /_sim/ (no auth): `sim/admin.rs`.
mod admin;
use admin::*;

#[cfg(test)]
mod tests;
