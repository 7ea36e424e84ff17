//! [`GraphSim`]: a strict stand-in for Graph's security incidents API on loopback
//! (API.md §2). It checks every bearer token against the [`TokenRegistry`], serves
//! `GET /v1.0/security/incidents` with `$filter`/`$top` (≤ 50)/`$skip`/`$count`/
//! `$expand=alerts` and opaque `$skiptoken` next links, hides `awaitingAction` unless
//! asked for with `Prefer: include-unknown-enum-members`, validates PATCH bodies as
//! the update doc describes, appends comments, throttles at the Defender API's 50
//! requests a minute and 1,500 an hour (429 with `Retry-After`), and answers errors
//! with Graph's body. Listings page live, as offset paging does: an incident
//! changed while a listing runs can move between pages. Kinder modes (no throttle,
//! frozen paging) are opt-in; SIMULATORS.md lists them and who uses them.
//! State lives in memory; tests and the demo play Defender through the admin API
//! (Rust methods, or HTTP under `/_sim/` without auth).

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bridge_core::vocab::{GRAPH_CLASSIFICATION, GRAPH_SEVERITY, GRAPH_STATUS};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use tokio::net::TcpListener;
use url::Url;

use super::convert::{canonical_determination, canonical_enum};
use super::wire::{
    self, AlertComment, ErrorBody, ErrorDetail, INCIDENT_TYPE, Incident, InnerError,
};
use crate::auth::registry::TokenRegistry;
use crate::simkit::{self, Fault, json_response_as};

mod filter;

use filter::{Clause, parse_filter};

/// Who the simulator says made the changes that came through the API
/// (`lastModifiedBy`, a new comment's `createdByDisplayName`).
pub const APP_NAME: &str = "itsm-bridge";
/// `lastModifiedBy` after a change made through the admin API (Defender's own side).
pub const DEFENDER_NAME: &str = "Microsoft Defender XDR";
pub const DEFAULT_AUDIENCE: &str = "https://graph.microsoft.com";
/// `$top` above this is a 400 (API.md §2.2); also the default page size.
pub const MAX_TOP: usize = 50;
/// The first id handed out by `seed_incident`.
pub const FIRST_ID: u64 = 41000;
/// How many frozen result lists (one per multi-page listing) are kept for `$skiptoken`.
const MAX_SNAPSHOTS: usize = 64;
const PREFER_UNKNOWN_ENUMS: &str = "include-unknown-enum-members";
const STATUS_SET_BY_SERVICE: &[&str] = &["redirected", "awaitingAction", "unknownFutureValue"];
/// Properties the incident has but a PATCH may not set (API.md §2.2 lists the writable ones).
const READ_ONLY_PROPERTIES: &[&str] = &[
    "id",
    "displayName",
    "description",
    "summary",
    "severity",
    "systemTags",
    "comments",
    "resolvingComment",
    "redirectIncidentId",
    "incidentWebUrl",
    "tenantId",
    "createdDateTime",
    "lastUpdateDateTime",
    "lastModifiedBy",
    "alerts",
];
const JSON_CONTENT_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

// ---------------------------------------------------------------------------------
// The simulator's incidents

/// One incident as the simulator stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimIncident {
    pub id: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub summary: Option<String>,
    /// camelCase `incidentStatus`, `awaitingAction` included (hidden on the wire
    /// unless the request prefers unknown enum members).
    pub status: String,
    pub severity: String,
    pub classification: Option<String>,
    pub determination: Option<String>,
    pub assigned_to: Option<String>,
    pub custom_tags: Vec<String>,
    pub system_tags: Vec<String>,
    pub comments: Vec<SimComment>,
    pub resolving_comment: Option<String>,
    pub redirect_incident_id: Option<String>,
    pub created: DateTime<Utc>,
    /// `lastUpdateDateTime`; strictly increases with every change.
    pub updated: DateTime<Utc>,
    pub last_modified_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimComment {
    pub comment: String,
    pub author: String,
    pub created: DateTime<Utc>,
}

impl SimIncident {
    /// The incident as Graph sends it. Without `include_unknown_enums` an
    /// `awaitingAction` status reads `unknownFutureValue`.
    pub fn to_wire(&self, tenant_id: &str, include_unknown_enums: bool) -> Incident {
        let status = if self.status == "awaitingAction" && !include_unknown_enums {
            "unknownFutureValue".to_string()
        } else {
            self.status.clone()
        };
        Incident {
            odata_context: None,
            odata_type: Some(INCIDENT_TYPE.to_string()),
            id: Some(self.id.clone()),
            display_name: self.display_name.clone(),
            description: self.description.clone(),
            summary: self.summary.clone(),
            status: Some(status),
            severity: Some(self.severity.clone()),
            classification: self.classification.clone(),
            determination: self.determination.clone(),
            assigned_to: self.assigned_to.clone(),
            custom_tags: self.custom_tags.clone(),
            system_tags: self.system_tags.clone(),
            comments: self
                .comments
                .iter()
                .map(|c| AlertComment {
                    comment: Some(c.comment.clone()),
                    created_by_display_name: Some(c.author.clone()),
                    created_date_time: Some(wire::format_timestamp(&c.created)),
                })
                .collect(),
            resolving_comment: self.resolving_comment.clone(),
            redirect_incident_id: self.redirect_incident_id.clone(),
            incident_web_url: Some(format!(
                "https://security.microsoft.com/incidents/{}?tid={tenant_id}",
                self.id
            )),
            tenant_id: Some(tenant_id.to_string()),
            created_date_time: Some(wire::format_timestamp(&self.created)),
            last_update_date_time: Some(wire::format_timestamp(&self.updated)),
            last_modified_by: self.last_modified_by.clone(),
            alerts: None,
        }
    }
}

// ---------------------------------------------------------------------------------
// Seeds and Defender's changes: `sim/seed.rs`.
mod seed;
pub use seed::*;

/// Requests allowed per app, in fixed windows (API.md §2.6 suggests 50/min, 1,500/h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_minute: u32,
    pub per_hour: u32,
}

impl RateLimit {
    /// The limits documented for the older Defender XDR incidents API.
    pub const DEFENDER_API: RateLimit = RateLimit {
        per_minute: 50,
        per_hour: 1500,
    };
}

// ---------------------------------------------------------------------------------
// State

#[derive(Debug)]
struct Snapshot {
    id: u64,
    fingerprint: u64,
    ids: Vec<String>,
}

#[derive(Debug)]
struct RateWindows {
    limit: RateLimit,
    minute: (Instant, u32),
    hour: (Instant, u32),
}

impl RateWindows {
    fn new(limit: RateLimit) -> RateWindows {
        let now = Instant::now();
        RateWindows {
            limit,
            minute: (now, 0),
            hour: (now, 0),
        }
    }
}

/// The simulator's model (what [`GraphSim`] locks); opaque outside this module.
#[derive(Debug)]
pub struct SimState {
    incidents: HashMap<String, SimIncident>,
    next_id: u64,
    /// The last `lastUpdateDateTime` handed out: the next one is strictly later.
    last_stamp: Option<DateTime<Utc>>,
    snapshots: VecDeque<Snapshot>,
    next_snapshot: u64,
    audience: String,
    empty_pages: bool,
    reject_skip_with_token: bool,
    live_paging: bool,
    /// Offsets past this come back empty and end the listing (`set_skip_limit`).
    skip_limit: Option<usize>,
    rate: Option<RateWindows>,
}

impl SimState {
    fn new() -> SimState {
        SimState {
            incidents: HashMap::new(),
            next_id: FIRST_ID,
            last_stamp: None,
            snapshots: VecDeque::new(),
            next_snapshot: 1,
            audience: DEFAULT_AUDIENCE.to_string(),
            empty_pages: false,
            reject_skip_with_token: true,
            live_paging: true,
            skip_limit: None,
            rate: Some(RateWindows::new(RateLimit::DEFENDER_API)),
        }
    }

    /// Now, at Graph's precision, and strictly after every stamp issued before.
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

    fn seed(&mut self, seed: SeedIncident) -> Result<String, String> {
        let status = canonical_enum(GRAPH_STATUS, &seed.status)
            .ok_or_else(|| format!("`{}` is not an incident status", seed.status))?;
        let severity = canonical_enum(GRAPH_SEVERITY, &seed.severity)
            .ok_or_else(|| format!("`{}` is not a severity", seed.severity))?;
        let classification = seed
            .classification
            .as_deref()
            .map(|c| {
                canonical_enum(GRAPH_CLASSIFICATION, c)
                    .ok_or_else(|| format!("`{c}` is not a classification"))
            })
            .transpose()?;
        let determination = seed
            .determination
            .as_deref()
            .map(|d| {
                canonical_determination(d).ok_or_else(|| format!("`{d}` is not a determination"))
            })
            .transpose()?;
        let id = match seed.id {
            Some(id) if id.trim().is_empty() => return Err("the id is empty".into()),
            Some(id) if self.incidents.contains_key(&id) => {
                return Err(format!("incident {id} already exists"));
            }
            Some(id) => {
                if let Ok(n) = id.parse::<u64>() {
                    self.next_id = self.next_id.max(n.saturating_add(1));
                }
                id
            }
            None => {
                while self.incidents.contains_key(&self.next_id.to_string()) {
                    self.next_id += 1;
                }
                self.next_id += 1;
                (self.next_id - 1).to_string()
            }
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
        let comments = seed
            .comments
            .into_iter()
            .map(|c| SimComment {
                comment: c.text,
                author: c.author,
                created: wire::truncate_timestamp(c.created.unwrap_or(created)),
            })
            .collect();
        let incident = SimIncident {
            id: id.clone(),
            display_name: Some(seed.title),
            description: seed.description,
            summary: seed.summary,
            status: status.to_string(),
            severity: severity.to_string(),
            classification: classification.map(str::to_string),
            determination: determination.map(str::to_string),
            assigned_to: seed.assigned_to,
            custom_tags: seed.custom_tags,
            system_tags: seed.system_tags,
            comments,
            resolving_comment: seed.resolving_comment,
            redirect_incident_id: seed.redirect_incident_id,
            created,
            updated,
            last_modified_by: seed.last_modified_by,
        };
        self.incidents.insert(id.clone(), incident);
        Ok(id)
    }

    /// Applies `f` as a change made on Defender's side and bumps the incident.
    fn change(&mut self, id: &str, f: impl FnOnce(&mut SimIncident)) -> Option<SimIncident> {
        let at = self.stamp();
        self.change_at(id, at, f)
    }

    fn change_at(
        &mut self,
        id: &str,
        at: DateTime<Utc>,
        f: impl FnOnce(&mut SimIncident),
    ) -> Option<SimIncident> {
        let incident = self.incidents.get_mut(id)?;
        incident.last_modified_by = Some(DEFENDER_NAME.to_string());
        f(incident);
        incident.updated = at;
        Some(incident.clone())
    }

    fn apply_defender_change(
        &mut self,
        id: &str,
        change: DefenderChange,
    ) -> Result<SimIncident, String> {
        if !self.incidents.contains_key(id) {
            return Err(format!("incident {id} does not exist"));
        }
        let status = change
            .status
            .as_deref()
            .map(|s| {
                canonical_enum(GRAPH_STATUS, s)
                    .ok_or_else(|| format!("`{s}` is not an incident status"))
            })
            .transpose()?;
        let severity = change
            .severity
            .as_deref()
            .map(|s| {
                canonical_enum(GRAPH_SEVERITY, s).ok_or_else(|| format!("`{s}` is not a severity"))
            })
            .transpose()?;
        let classification = change
            .classification
            .as_deref()
            .map(|c| {
                canonical_enum(GRAPH_CLASSIFICATION, c)
                    .ok_or_else(|| format!("`{c}` is not a classification"))
            })
            .transpose()?;
        let determination = change
            .determination
            .as_deref()
            .map(|d| {
                canonical_determination(d).ok_or_else(|| format!("`{d}` is not a determination"))
            })
            .transpose()?;
        let at = self.stamp();
        let changed = self.change_at(id, at, move |incident| {
            if let Some(title) = change.title {
                incident.display_name = Some(title);
            }
            if let Some(description) = change.description {
                incident.description = Some(description);
            }
            if let Some(summary) = change.summary {
                incident.summary = Some(summary);
            }
            if let Some(status) = status {
                incident.status = status.to_string();
                if status != "redirected" {
                    incident.redirect_incident_id = None;
                }
            }
            if let Some(target) = change.redirect_incident_id {
                incident.redirect_incident_id = Some(target);
                if status.is_none() {
                    incident.status = "redirected".to_string();
                }
            }
            if let Some(severity) = severity {
                incident.severity = severity.to_string();
            }
            if let Some(classification) = classification {
                incident.classification = Some(classification.to_string());
            }
            if let Some(determination) = determination {
                incident.determination = Some(determination.to_string());
            }
            if let Some(assigned_to) = change.assigned_to {
                incident.assigned_to = assigned_to;
            }
            if let Some(tags) = change.custom_tags {
                incident.custom_tags = tags;
            }
            if let Some(tags) = change.system_tags {
                incident.system_tags = tags;
            }
            if let Some(resolving) = change.resolving_comment {
                incident.resolving_comment = Some(resolving);
            }
            if let Some(comment) = change.comment {
                incident.comments.push(SimComment {
                    comment: comment.text,
                    author: comment.author,
                    created: wire::truncate_timestamp(comment.created.unwrap_or(at)),
                });
            }
        });
        changed.ok_or_else(|| format!("incident {id} does not exist"))
    }

    /// The ids matching `filter`, most recently updated first (ties: higher id first).
    fn query(&self, filter: &[Clause]) -> Vec<String> {
        let mut matching: Vec<&SimIncident> = self
            .incidents
            .values()
            .filter(|incident| filter.iter().all(|clause| clause.matches(incident)))
            .collect();
        matching.sort_by(|a, b| {
            b.updated
                .cmp(&a.updated)
                .then_with(|| id_order(&b.id).cmp(&id_order(&a.id)))
        });
        matching.into_iter().map(|i| i.id.clone()).collect()
    }

    fn keep_snapshot(&mut self, fingerprint: u64, ids: Vec<String>) -> u64 {
        let id = self.next_snapshot;
        self.next_snapshot += 1;
        if self.snapshots.len() >= MAX_SNAPSHOTS {
            self.snapshots.pop_front();
        }
        self.snapshots.push_back(Snapshot {
            id,
            fingerprint,
            ids,
        });
        id
    }

    /// `Some(retry after)` when the request is over the configured rate limit.
    fn over_rate_limit(&mut self) -> Option<Duration> {
        let rate = self.rate.as_mut()?;
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        let hour = Duration::from_secs(3600);
        if now.duration_since(rate.minute.0) >= minute {
            rate.minute = (now, 0);
        }
        if now.duration_since(rate.hour.0) >= hour {
            rate.hour = (now, 0);
        }
        if rate.minute.1 >= rate.limit.per_minute {
            return Some(minute.saturating_sub(now.duration_since(rate.minute.0)));
        }
        if rate.hour.1 >= rate.limit.per_hour {
            return Some(hour.saturating_sub(now.duration_since(rate.hour.0)));
        }
        rate.minute.1 += 1;
        rate.hour.1 += 1;
        None
    }
}

/// Orders numeric ids as numbers (a shorter id is a smaller number).
fn id_order(id: &str) -> (usize, &str) {
    (id.len(), id)
}

/// What the simulator fixes at start and reads without its lock.
#[derive(Debug)]
pub struct Context {
    registry: Arc<TokenRegistry>,
    tenant_id: String,
    /// Used for links when a request carries no usable `Host` header.
    base_url: String,
}

type Shared = simkit::Shared<SimState, Context>;

impl simkit::VendorState for SimState {
    const NAME: &'static str = "GraphSim";
    const JSON_CONTENT_TYPE: &'static str = JSON_CONTENT_TYPE;
}

// ---------------------------------------------------------------------------------
// The simulator and its admin API

/// The Graph security incidents simulator.
pub type GraphSim = simkit::Sim<SimState, Context>;

impl GraphSim {
    /// Serves the simulator (plain HTTP) on `listener` until [`GraphSim::shutdown`].
    pub async fn start(
        listener: TcpListener,
        registry: Arc<TokenRegistry>,
        tenant_id: &str,
    ) -> GraphSim {
        let shared = Shared::new(
            SimState::new(),
            Context {
                registry,
                tenant_id: tenant_id.to_string(),
                base_url: simkit::plain_base_url(&listener),
            },
        );
        let router = Shared::router()
            .route("/v1.0/security/incidents", get(list_incidents))
            .route(
                "/v1.0/security/incidents/{id}",
                get(get_incident).patch(patch_incident),
            )
            .route("/v1.0/security/incidents/{id}/comments", post(post_comment))
            .route(
                "/_sim/incidents",
                get(admin_list).post(simkit::admin_seed::<SimState, Context>),
            )
            .route(
                "/_sim/incidents/{id}",
                get(simkit::admin_get::<SimState, Context>)
                    .patch(simkit::admin_change::<SimState, Context>),
            )
            .fallback(unknown_route)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(middleware::from_fn_with_state(shared.clone(), guard));
        GraphSim::serve(listener, shared, router, |router| router).await
    }

    pub fn tenant_id(&self) -> &str {
        &self.shared().context.tenant_id
    }

    /// The token audience accepted (default `https://graph.microsoft.com`).
    pub fn audience(&self) -> String {
        self.lock().audience.clone()
    }

    pub fn set_audience(&self, audience: &str) {
        self.lock().audience = audience.to_string();
    }

    /// Every other page of a multi-page listing comes back empty (with a next link).
    pub fn set_empty_pages(&self, on: bool) {
        self.lock().empty_pages = on;
    }

    /// Refuse a `$skiptoken` request that also carries `$skip` (a rebuilt link); on
    /// by default.
    pub fn set_reject_skip_with_token(&self, on: bool) {
        self.lock().reject_skip_with_token = on;
    }

    /// Live paging (the default, as Graph's offset paging behaves) re-runs the query
    /// for every page, so an incident updated while a listing runs moves to the
    /// front and the offsets shift under the client: it can be missed by this
    /// listing or seen twice. `false` is a kinder, opt-in mode: the listing pages
    /// through its result list frozen at its first page (each incident exactly
    /// once), which no Graph API promises.
    pub fn set_live_paging(&self, on: bool) {
        self.lock().live_paging = on;
    }

    /// Past `limit` items into a listing (by `$skip` or through next links), pages
    /// come back empty and without a next link: the listing ends silently, as
    /// integrators saw `$skip` paging do under volume (API.md §2.7.3; 500 on the
    /// alerts API). Off by default because the offset is unknown for incidents.
    pub fn set_skip_limit(&self, limit: Option<usize>) {
        self.lock().skip_limit = limit;
    }

    /// Answers 429 with `Retry-After` beyond these limits. The default is
    /// [`RateLimit::DEFENDER_API`] (50 a minute, 1,500 an hour, API.md §2.6);
    /// `None` lifts the limit, a kinder mode its callers must give a reason for.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        self.lock().rate = limit.map(RateWindows::new);
    }

    /// Adds an incident; returns its id. Panics on an invalid seed (a test bug).
    pub fn seed_incident(&self, seed: SeedIncident) -> String {
        self.try_seed_incident(seed)
            .unwrap_or_else(|e| panic!("graph sim: bad seed: {e}"))
    }

    pub fn try_seed_incident(&self, seed: SeedIncident) -> Result<String, String> {
        self.lock().seed(seed)
    }

    pub fn incident(&self, id: &str) -> Option<SimIncident> {
        self.lock().incidents.get(id).cloned()
    }

    /// The incident's JSON as a client that prefers unknown enum members sees it.
    pub fn incident_json(&self, id: &str) -> Option<serde_json::Value> {
        let incident = self.incident(id)?;
        Some(to_json(
            &incident.to_wire(&self.shared().context.tenant_id, true),
        ))
    }

    /// All incidents, by id.
    pub fn incidents(&self) -> Vec<SimIncident> {
        let mut all: Vec<_> = self.lock().incidents.values().cloned().collect();
        all.sort_by(|a, b| id_order(&a.id).cmp(&id_order(&b.id)));
        all
    }

    /// Changes an incident as Defender (or an analyst in the portal) would: no
    /// validation, `lastModifiedBy` set to Defender unless `f` sets it, and
    /// `lastUpdateDateTime` bumped. `None` if there is no such incident.
    pub fn update_as_defender(
        &self,
        id: &str,
        f: impl FnOnce(&mut SimIncident),
    ) -> Option<SimIncident> {
        self.lock().change(id, f)
    }

    /// A change stamped `lastUpdateDateTime = at`: how an edit looks when it shows
    /// up late (an eventually consistent replica) or was stamped by a clock running
    /// behind, so a poll past `at` never sees it. `None` if there is no such incident.
    pub fn update_as_defender_at(
        &self,
        id: &str,
        at: DateTime<Utc>,
        f: impl FnOnce(&mut SimIncident),
    ) -> Option<SimIncident> {
        self.lock().change_at(id, at, f)
    }

    /// A validated change on Defender's side (what `PATCH /_sim/incidents/{id}` does).
    pub fn apply_defender_change(
        &self,
        id: &str,
        change: DefenderChange,
    ) -> Result<SimIncident, String> {
        self.lock().apply_defender_change(id, change)
    }

    pub fn assign(&self, id: &str, upn: &str) -> bool {
        self.apply(
            id,
            DefenderChange {
                assigned_to: Some(Some(upn.into())),
                ..DefenderChange::default()
            },
        )
    }

    pub fn add_comment_as(&self, id: &str, author: &str, text: &str) -> bool {
        self.apply(
            id,
            DefenderChange {
                comment: Some(SeedComment {
                    author: author.into(),
                    text: text.into(),
                    created: None,
                }),
                ..DefenderChange::default()
            },
        )
    }

    /// Merges `source_id` into `target_id` as Defender's correlation does: the source
    /// becomes `redirected` with `redirectIncidentId`, and the target (which absorbed
    /// the alerts) is bumped too.
    pub fn redirect(&self, source_id: &str, target_id: &str) -> bool {
        let mut state = self.lock();
        if !state.incidents.contains_key(target_id) {
            return false;
        }
        let target = target_id.to_string();
        let moved = state.change(source_id, move |incident| {
            incident.status = "redirected".into();
            incident.redirect_incident_id = Some(target);
        });
        moved.is_some() && state.change(target_id, |_| {}).is_some()
    }

    fn apply(&self, id: &str, change: DefenderChange) -> bool {
        self.apply_defender_change(id, change).is_ok()
    }
}

// ---------------------------------------------------------------------------------
// Errors

/// A Graph error answer: status plus `{"error":{code,message,innerError}}`.
#[derive(Debug, Clone)]
pub struct GraphError {
    pub status: StatusCode,
    /// Boxed: handlers pass these around in `Result`s.
    pub body: Box<ErrorBody>,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> GraphError {
        let request_id = request_id();
        GraphError {
            status,
            body: Box::new(ErrorBody {
                error: ErrorDetail {
                    code: code.to_string(),
                    message: message.into(),
                    details: None,
                    inner_error: Some(InnerError {
                        code: None,
                        date: Some(Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string()),
                        request_id: Some(request_id.clone()),
                        client_request_id: Some(request_id),
                        status: None,
                    }),
                },
            }),
        }
    }

    fn bad_request(message: impl Into<String>) -> GraphError {
        GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// The `$top` > 50 answer, exactly as integrators logged it (empty code, `details`).
    fn top_exceeded(value: &str) -> GraphError {
        let mut error = GraphError::new(
            StatusCode::BAD_REQUEST,
            "",
            format!(
                "The query specified in the URI is not valid. The limit of '{MAX_TOP}' for Top query has been exceeded. The value from the incoming request is '{value}'."
            ),
        );
        error.body.error.details = Some(Vec::new());
        error
    }

    fn not_found(id: &str) -> GraphError {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("Incident with id '{id}' was not found."),
        )
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        json_response_as(JSON_CONTENT_TYPE, self.status, &self.body)
    }
}

/// A Graph error response (every handler answers errors through this shape).
pub fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    GraphError::new(status, code, message).into_response()
}

/// Graph's 429 body (`TooManyRequests`, inner code `429`).
pub fn throttle_body() -> String {
    let mut error = GraphError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        "Please retry again later.",
    );
    if let Some(inner) = error.body.error.inner_error.as_mut() {
        inner.code = Some("429".into());
        inner.status = Some("429".into());
    }
    serde_json::to_string(&error.body).expect("an error body serialises")
}

/// A scripted throttle: the next `times` incident API requests answer 429 with
/// this `Retry-After` (Graph sends fractional seconds, e.g. `2.128`).
pub fn throttle_fault(times: u32, retry_after: &str) -> Fault {
    Fault {
        method: None,
        path_contains: "/v1.0/security/incidents".into(),
        times,
        status: 429,
        retry_after: Some(retry_after.to_string()),
        body: throttle_body(),
    }
}

fn request_id() -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        fastrand::u32(..),
        fastrand::u16(..),
        fastrand::u16(..0x1000),
        0x8000 | fastrand::u16(..0x4000),
        fastrand::u64(..1 << 48)
    )
}

fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("simulator JSON serialises")
}

// ---------------------------------------------------------------------------------
// Request plumbing

/// Token check (and the optional rate limit) for everything but `/_sim/`.
async fn guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/_sim") {
        return next.run(request).await;
    }
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let throttled = {
        let mut state = shared.lock();
        if let Err(problem) = shared
            .context
            .registry
            .check(authorization, &state.audience)
        {
            drop(state);
            return GraphError::new(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                problem.message(),
            )
            .into_response();
        }
        state.over_rate_limit()
    };
    if let Some(wait) = throttled {
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::CONTENT_TYPE, JSON_CONTENT_TYPE)],
            throttle_body(),
        )
            .into_response();
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&seconds.to_string()).expect("digits are a header value"),
        );
        return response;
    }
    next.run(request).await
}

fn wants_unknown_enums(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case(PREFER_UNKNOWN_ENUMS))
}

/// Where links in answers point: the host the client called (as Graph's links name
/// the host it was called on), else the address the simulator listens on.
fn link_base(shared: &Shared, headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .map(|h| format!("http://{h}"))
        .unwrap_or_else(|| shared.context.base_url.clone())
}

/// The query's options, in order, with `$` option names checked for duplicates.
fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, GraphError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut seen = Vec::new();
    for (name, _) in &pairs {
        if name.starts_with('$') {
            let lower = name.to_ascii_lowercase();
            if seen.contains(&lower) {
                return Err(GraphError::bad_request(format!(
                    "Query option '{name}' was specified more than once, but it must be specified at most once."
                )));
            }
            seen.push(lower);
        }
    }
    Ok(pairs)
}

fn expand_alerts(value: &str) -> Result<bool, GraphError> {
    for item in value.split(',').map(str::trim) {
        if !item.eq_ignore_ascii_case("alerts") {
            return Err(GraphError::bad_request(format!(
                "Could not find a property named '{item}' on type 'microsoft.graph.security.incident'."
            )));
        }
    }
    Ok(true)
}

fn unsupported_option(name: &str) -> GraphError {
    GraphError::bad_request(format!("The query parameter '{name}' is not supported."))
}

fn non_negative(name: &str, value: &str) -> Result<usize, GraphError> {
    value.trim().parse::<usize>().map_err(|_| {
        GraphError::bad_request(format!(
            "Invalid value '{value}' for {name} query option found. The {name} query option requires a non-negative integer value."
        ))
    })
}

// ---------------------------------------------------------------------------------
// Listing and $skiptoken: `sim/listing.rs`.
mod listing;
use listing::*;

// ---------------------------------------------------------------------------------
// Handlers: the Graph API

async fn list_incidents(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let base = link_base(&shared, &headers);
    match list(
        &shared,
        raw.as_deref(),
        wants_unknown_enums(&headers),
        &base,
    ) {
        Ok(body) => json_response_as(JSON_CONTENT_TYPE, StatusCode::OK, &body),
        Err(error) => error.into_response(),
    }
}

fn entity(shared: &Shared, incident: &SimIncident, headers: &HeaderMap) -> Incident {
    let mut wire = incident.to_wire(&shared.context.tenant_id, wants_unknown_enums(headers));
    wire.odata_context = Some(format!(
        "{}/v1.0/$metadata#security/incidents/$entity",
        link_base(shared, headers)
    ));
    wire
}

async fn get_incident(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    let mut expand = false;
    for (name, value) in query_pairs(raw.as_deref())? {
        match name.to_ascii_lowercase().as_str() {
            "$expand" => expand = expand_alerts(&value)?,
            n if n.starts_with('$') => return Err(unsupported_option(&name)),
            _ => {}
        }
    }
    let incident = shared
        .lock()
        .incidents
        .get(&id)
        .cloned()
        .ok_or_else(|| GraphError::not_found(&id))?;
    let mut wire = entity(&shared, &incident, &headers);
    if expand {
        wire.alerts = Some(Vec::new());
    }
    Ok(json_response_as(JSON_CONTENT_TYPE, StatusCode::OK, &wire))
}

// ---------------------------------------------------------------------------------
// Handlers: the Graph API's writes: `sim/writes.rs`.
mod writes;
use writes::*;

async fn unknown_route(request: Request) -> Response {
    let path = request.uri().path();
    if path.starts_with("/_sim") {
        return graph_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "No such simulator admin route.",
        );
    }
    let segment = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    graph_error(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &format!("Resource not found for the segment '{segment}'."),
    )
}

async fn method_not_allowed(method: Method) -> Response {
    graph_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "BadRequest",
        &format!("The HTTP method '{method}' is not supported on this resource."),
    )
}

// ---------------------------------------------------------------------------------
// Handlers: the admin surface under /_sim/ (no auth): `sim/admin.rs`.
mod admin;
use admin::*;

#[cfg(test)]
mod tests;
