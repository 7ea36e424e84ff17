//! Sentinel's JSON (ARM, `Microsoft.SecurityInsights`, API.md §3), with the vendor's
//! own field names: the `Incident` envelope and its `IncidentProperties` (owner,
//! labels, `additionalData`), the incident comment, the `{value, nextLink}` list and
//! ARM's `CloudError` body. Both the client and the simulator speak through these
//! types, plus ARM's timestamp format (UTC, 7 fractional digits).

use chrono::{DateTime, NaiveDateTime, SubsecRound, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// `type` of an incident.
pub const INCIDENT_TYPE: &str = "Microsoft.SecurityInsights/Incidents";
/// `type` of an incident comment.
pub const COMMENT_TYPE: &str = "Microsoft.SecurityInsights/incidents/comments";

/// The incident envelope. Every field is optional on read so that one odd incident
/// is reported by the conversion instead of failing the page's decoding; on write
/// (the PUT body) only what is set is sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    /// The ARM resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The incident GUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// A quoted GUID-like string (`"\"2a00c1f4-…\""`); it travels in the PUT body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default)]
    pub properties: IncidentProperties,
    /// ARM common types; may appear. [U]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_data: Option<serde_json::Value>,
}

/// `IncidentProperties` (stable 2025-09-01). Writable: `title`, `severity`, `status`
/// (these three required), `description`, `classification`, `classificationReason`,
/// `classificationComment`, `owner`, `labels`, `firstActivityTimeUtc`,
/// `lastActivityTimeUtc`; the rest is read-only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification_comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<IncidentOwner>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub labels: Vec<IncidentLabel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_activity_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time_utc: Option<String>,
    /// The sync cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_number: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_name: Option<String>,
    /// For Defender XDR incidents, the Defender (Graph) incident id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_incident_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_analytic_rule_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_data: Option<IncidentAdditionalData>,
    /// Preview only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_information: Option<serde_json::Value>,
}

/// `IncidentOwnerInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentOwner {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_principal_name: Option<String>,
    /// `Unknown`, `User` or `Group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_type: Option<String>,
}

/// `IncidentLabel`. The server sets `labelType` (`User` or `AutoAssigned`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentLabel {
    #[serde(default)]
    pub label_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_type: Option<String>,
}

/// `IncidentAdditionalData` (read-only). `techniques`, `mergedIncidentNumber` and
/// `mergedIncidentUrl` are in the preview API only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentAdditionalData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bookmarks_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comments_count: Option<i64>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub alert_product_names: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub tactics: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub techniques: Option<Vec<String>>,
    /// The Defender portal link of a Defender XDR incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_incident_url: Option<String>,
    /// Preview: the number of the incident this one was merged into. A string in the
    /// preview spec; a number is read too.
    #[serde(
        default,
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub merged_incident_number: Option<String>,
    /// Preview.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_incident_url: Option<String>,
}

/// An incident comment envelope.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentComment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The comment GUID, chosen by the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default)]
    pub properties: CommentProperties,
}

/// `IncidentCommentProperties`: `message` is required and the only writable field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<ClientInfo>,
}

/// `ClientInfo`: who wrote a comment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_principal_name: Option<String>,
}

/// The body of PUT `…/comments/{commentId}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewComment {
    pub properties: NewCommentProperties,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewCommentProperties {
    pub message: String,
}

impl NewComment {
    pub fn new(message: &str) -> NewComment {
        NewComment {
            properties: NewCommentProperties {
                message: message.to_string(),
            },
        }
    }
}

/// `{value, nextLink}`: `IncidentList` and the comment list. The client reads
/// `value` as raw JSON so that each item converts (or fails) on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>")
)]
pub struct ResourceList<T> {
    #[serde(default = "Vec::new", deserialize_with = "null_as_empty")]
    pub value: Vec<T>,
    /// Absolute, with `api-version` and `$skipToken` inside; request it exactly as
    /// given. Omitted on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

pub type IncidentList = ResourceList<Incident>;
pub type CommentList = ResourceList<IncidentComment>;

/// ARM's `CloudError`: `{"error":{"code","message"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudError {
    pub error: CloudErrorBody,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CloudErrorBody {
    /// Branch on this, never on `message`.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub code: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<serde_json::Value>>,
}

impl CloudError {
    pub fn new(code: &str, message: impl Into<String>) -> CloudError {
        CloudError {
            error: CloudErrorBody {
                code: code.to_string(),
                message: message.into(),
                target: None,
                details: None,
            },
        }
    }
}

/// A JSON `null` (or an absent field) read as the type's default.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A string, or a number read as its decimal text.
fn string_or_number<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(
        match Option::<serde_json::Value>::deserialize(deserializer)? {
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        },
    )
}

/// A timestamp as ARM writes it: UTC, 7 fractional digits
/// (`2025-08-10T01:53:36.5416527Z`).
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    let ticks = (t.nanosecond() / 100).min(9_999_999);
    format!("{}.{ticks:07}Z", t.format("%Y-%m-%dT%H:%M:%S"))
}

/// `t` cut to ARM's precision (100 ns).
pub fn truncate_timestamp(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(7)
}

/// Reads an ARM date-time: RFC 3339 with any number of fractional digits; a value
/// without an offset is taken as UTC.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_timestamps_round_trip_with_seven_digits() {
        let t = parse_timestamp("2025-05-02T08:12:30.01Z").unwrap();
        assert_eq!(format_timestamp(&t), "2025-05-02T08:12:30.0100000Z");
        let t = parse_timestamp("2025-08-10T01:53:36.5416527Z").unwrap();
        assert_eq!(format_timestamp(&t), "2025-08-10T01:53:36.5416527Z");
        assert_eq!(
            format_timestamp(&parse_timestamp("2025-05-02T07:41:00").unwrap()),
            "2025-05-02T07:41:00.0000000Z"
        );
        assert_eq!(parse_timestamp("soon"), None);
    }

    #[test]
    fn sentinel_nulls_and_preview_numbers_read_leniently() {
        let incident: Incident = serde_json::from_str(
            r#"{"name":"x","properties":{"labels":null,"additionalData":{"mergedIncidentNumber":8812,"tactics":null}}}"#,
        )
        .unwrap();
        assert!(incident.properties.labels.is_empty());
        let data = incident.properties.additional_data.unwrap();
        assert_eq!(data.merged_incident_number.as_deref(), Some("8812"));
        assert!(data.tactics.is_empty());
        let error: CloudError = serde_json::from_str(
            r#"{"error":{"code":"Conflict","message":null,"innerError":null}}"#,
        )
        .unwrap();
        assert_eq!(error.error.code, "Conflict");
        assert_eq!(error.error.message, "");
    }

    #[test]
    fn sentinel_put_bodies_carry_only_what_is_set() {
        let body = Incident {
            etag: Some("\"e1\"".into()),
            properties: IncidentProperties {
                title: Some("t".into()),
                labels: vec![IncidentLabel {
                    label_name: "a".into(),
                    label_type: None,
                }],
                ..IncidentProperties::default()
            },
            ..Incident::default()
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"etag":"\"e1\"","properties":{"title":"t","labels":[{"labelName":"a"}]}}"#
        );
        assert_eq!(
            serde_json::to_string(&NewComment::new("hi")).unwrap(),
            r#"{"properties":{"message":"hi"}}"#
        );
    }
}
