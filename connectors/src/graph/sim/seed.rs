//! What a Graph simulator's incidents are seeded from ([`SeedIncident`]) and how
//! Defender changes them ([`DefenderChange`]), in Rust and as the JSON of
//! `POST /_sim/incidents` and `PATCH /_sim/incidents/{id}`.

use super::*;

/// A new incident for [`GraphSim::seed_incident`] (or `POST /_sim/incidents`, whose
/// JSON uses these names in camelCase). Without times the incident is created now;
/// an unset `updated` equals `created` and vice versa.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SeedIncident {
    /// An explicit id; by default the next sequential number from [`FIRST_ID`].
    pub id: Option<String>,
    #[serde(alias = "displayName")]
    pub title: String,
    pub description: Option<String>,
    pub summary: Option<String>,
    pub status: String,
    pub severity: String,
    pub classification: Option<String>,
    pub determination: Option<String>,
    pub assigned_to: Option<String>,
    pub custom_tags: Vec<String>,
    pub system_tags: Vec<String>,
    pub comments: Vec<SeedComment>,
    pub resolving_comment: Option<String>,
    pub redirect_incident_id: Option<String>,
    pub created: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
    pub last_modified_by: Option<String>,
}

impl Default for SeedIncident {
    fn default() -> Self {
        SeedIncident {
            id: None,
            title: "Suspicious activity".into(),
            description: None,
            summary: None,
            status: "active".into(),
            severity: "medium".into(),
            classification: Some("unknown".into()),
            determination: Some("unknown".into()),
            assigned_to: None,
            custom_tags: Vec::new(),
            system_tags: Vec::new(),
            comments: Vec::new(),
            resolving_comment: None,
            redirect_incident_id: None,
            created: None,
            updated: None,
            last_modified_by: None,
        }
    }
}

crate::simkit::seed_setters!(SeedIncident {
    some id,
    some description,
    set status,
    set severity,
    some classification,
    some determination,
    some assigned_to,
    at created,
    at updated,
});

impl SeedIncident {
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.custom_tags.push(tag.into());
        self
    }

    pub fn comment(mut self, author: impl Into<String>, text: impl Into<String>) -> Self {
        self.comments.push(SeedComment {
            author: author.into(),
            text: text.into(),
            created: None,
        });
        self
    }
}

/// A comment written on Defender's side.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedComment {
    #[serde(default = "default_author")]
    pub author: String,
    #[serde(alias = "comment")]
    pub text: String,
    /// Defaults to the incident's creation time (seed) or now (change).
    #[serde(default)]
    pub created: Option<DateTime<Utc>>,
}

pub(super) fn default_author() -> String {
    "SOC Analyst".into()
}

/// A change made on Defender's side (`PATCH /_sim/incidents/{id}`): any field,
/// any status (`redirected`, `awaitingAction` included). Absent fields are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct DefenderChange {
    #[serde(alias = "displayName")]
    pub title: Option<String>,
    pub description: Option<String>,
    pub summary: Option<String>,
    pub status: Option<String>,
    pub severity: Option<String>,
    pub classification: Option<String>,
    pub determination: Option<String>,
    /// `null` unassigns.
    #[serde(deserialize_with = "some_even_if_null")]
    pub assigned_to: Option<Option<String>>,
    pub custom_tags: Option<Vec<String>>,
    pub system_tags: Option<Vec<String>>,
    pub resolving_comment: Option<String>,
    /// Sets `status` to `redirected` too.
    pub redirect_incident_id: Option<String>,
    pub comment: Option<SeedComment>,
}

pub(super) fn some_even_if_null<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl simkit::AnalystEdit for DefenderChange {
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
