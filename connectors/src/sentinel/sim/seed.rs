//! What tests and the demo hand the Sentinel simulator: seeded incidents, labels and
//! comments, and changes an analyst makes in the portal.

use super::*;

/// A new incident for [`SentinelSim::seed_incident`] (or `POST /_sim/incidents`,
/// whose JSON uses these names in camelCase). By default it is a Defender XDR
/// incident (`providerName` "Microsoft XDR", a numeric `providerIncidentId` and its
/// Defender portal link); [`SeedIncident::sentinel_native`] makes one of Sentinel's
/// own. Without times it is created now; an unset `updated` equals `created`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SeedIncident {
    /// An explicit GUID; random by default.
    pub id: Option<String>,
    pub title: String,
    pub description: Option<String>,
    pub severity: String,
    pub status: String,
    pub classification: Option<String>,
    pub classification_reason: Option<String>,
    pub classification_comment: Option<String>,
    /// The owner's UPN (also their email).
    pub owner: Option<String>,
    pub labels: Vec<SeedLabel>,
    /// `None`: Defender XDR.
    pub provider_name: Option<String>,
    /// For a Defender incident; the next from [`FIRST_PROVIDER_ID`] by default.
    pub provider_incident_id: Option<String>,
    pub alerts_count: i64,
    pub alert_product_names: Vec<String>,
    pub tactics: Vec<String>,
    pub created: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
}

impl Default for SeedIncident {
    fn default() -> Self {
        SeedIncident {
            id: None,
            title: "Suspicious activity".into(),
            description: None,
            severity: "Medium".into(),
            status: "New".into(),
            classification: None,
            classification_reason: None,
            classification_comment: None,
            owner: None,
            labels: Vec::new(),
            provider_name: None,
            provider_incident_id: None,
            alerts_count: 1,
            alert_product_names: Vec::new(),
            tactics: Vec::new(),
            created: None,
            updated: None,
        }
    }
}

/// A label on a seed; `labelType` defaults to `User`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedLabel {
    #[serde(alias = "labelName")]
    pub name: String,
    #[serde(default = "user_label_type")]
    pub label_type: String,
}

pub(super) fn user_label_type() -> String {
    "User".into()
}

crate::simkit::seed_setters!(SeedIncident {
    some id,
    some description,
    set severity,
    set status,
    some classification,
    some classification_reason,
    some classification_comment,
    some owner,
    at created,
    at updated,
});

impl SeedIncident {
    /// A `User` label.
    pub fn label(mut self, name: impl Into<String>) -> Self {
        self.labels.push(SeedLabel {
            name: name.into(),
            label_type: "User".into(),
        });
        self
    }

    /// An `AutoAssigned` label (set by an analytics rule or automation).
    pub fn auto_label(mut self, name: impl Into<String>) -> Self {
        self.labels.push(SeedLabel {
            name: name.into(),
            label_type: "AutoAssigned".into(),
        });
        self
    }

    /// Sentinel's own incident (`providerName` "Azure Sentinel", no provider id).
    pub fn sentinel_native(mut self) -> Self {
        self.provider_name = Some(SENTINEL_PROVIDER.into());
        self
    }

    /// The Defender XDR incident id (the join key to Graph).
    pub fn provider_incident_id(mut self, id: impl Into<String>) -> Self {
        self.provider_incident_id = Some(id.into());
        self
    }

    pub fn alerts(mut self, count: i64) -> Self {
        self.alerts_count = count;
        self
    }

    pub fn tactic(mut self, tactic: impl Into<String>) -> Self {
        self.tactics.push(tactic.into());
        self
    }
}

/// A change made in the portal (`PATCH /_sim/incidents/{id}`): validated enums but
/// no closing rules; absent fields are kept, `null` clears the nullable ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct AnalystChange {
    /// Who makes the change (a UPN), as `systemData.lastModifiedBy` then says;
    /// [`super::DEFAULT_ANALYST_UPN`] when absent.
    pub by: Option<String>,
    pub title: Option<String>,
    #[serde(deserialize_with = "some_even_if_null")]
    pub description: Option<Option<String>>,
    pub severity: Option<String>,
    pub status: Option<String>,
    #[serde(deserialize_with = "some_even_if_null")]
    pub classification: Option<Option<String>>,
    #[serde(deserialize_with = "some_even_if_null")]
    pub classification_reason: Option<Option<String>>,
    #[serde(deserialize_with = "some_even_if_null")]
    pub classification_comment: Option<Option<String>>,
    /// A UPN; `null` unassigns.
    #[serde(deserialize_with = "some_even_if_null")]
    pub owner: Option<Option<String>>,
    /// Replaces the labels.
    pub labels: Option<Vec<SeedLabel>>,
    /// A comment written by an analyst.
    pub comment: Option<SeedComment>,
}

/// A comment written in the portal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedComment {
    #[serde(default = "default_author")]
    pub author: String,
    #[serde(alias = "message")]
    pub text: String,
}

pub(super) fn default_author() -> String {
    "SOC Analyst".into()
}

pub(super) fn some_even_if_null<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// One ARM token bucket: `capacity` requests at once, refilled at
/// `refill_per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketLimit {
    pub capacity: u32,
    pub refill_per_second: u32,
}

/// ARM's throttling, per operation type (API.md §3.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmRateLimit {
    pub reads: BucketLimit,
    pub writes: BucketLimit,
    pub deletes: BucketLimit,
}

impl ArmRateLimit {
    /// The documented per-subscription buckets.
    pub const SUBSCRIPTION: ArmRateLimit = ArmRateLimit {
        reads: BucketLimit {
            capacity: 250,
            refill_per_second: 25,
        },
        writes: BucketLimit {
            capacity: 200,
            refill_per_second: 10,
        },
        deletes: BucketLimit {
            capacity: 200,
            refill_per_second: 10,
        },
    };
}

impl simkit::AnalystEdit for AnalystChange {
    fn common(
        &mut self,
    ) -> (
        &mut Option<String>,
        &mut Option<String>,
        &mut Option<String>,
    ) {
        (&mut self.status, &mut self.severity, &mut self.title)
    }
}
