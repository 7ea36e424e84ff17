//! Graph's JSON, with the vendor's own field names: the `microsoft.graph.security.incident`
//! resource, `alertComment`, the OData list envelope with `@odata.nextLink`, and the
//! `{"error":{code,message,innerError}}` body. Both the client and the simulator
//! speak through these types, plus Graph's timestamp format (7 fractional digits).

use chrono::{DateTime, NaiveDateTime, SubsecRound, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// `@odata.type` of an incident.
pub const INCIDENT_TYPE: &str = "#microsoft.graph.security.incident";
/// `@odata.type` a client puts in the body of a new comment.
pub const COMMENT_TYPE: &str = "microsoft.graph.security.alertComment";

/// `microsoft.graph.security.incident`. Every field is optional on read so that one
/// odd incident is reported by the conversion instead of failing the page's decoding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    /// Only on a single-entity response (GET one, PATCH).
    #[serde(
        rename = "@odata.context",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub odata_context: Option<String>,
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub odata_type: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub classification: Option<String>,
    #[serde(default)]
    pub determination: Option<String>,
    #[serde(default)]
    pub assigned_to: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub custom_tags: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub system_tags: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub comments: Vec<AlertComment>,
    #[serde(default)]
    pub resolving_comment: Option<String>,
    #[serde(default)]
    pub redirect_incident_id: Option<String>,
    #[serde(default)]
    pub incident_web_url: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub created_date_time: Option<String>,
    #[serde(default)]
    pub last_update_date_time: Option<String>,
    #[serde(default)]
    pub last_modified_by: Option<String>,
    /// Only with `$expand=alerts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<Vec<serde_json::Value>>,
}

/// `microsoft.graph.security.alertComment`, as embedded in an incident and as
/// returned by POST `/comments`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertComment {
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub created_by_display_name: Option<String>,
    #[serde(default)]
    pub created_date_time: Option<String>,
}

/// The body of POST `/security/incidents/{id}/comments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewComment {
    #[serde(rename = "@odata.type")]
    pub odata_type: String,
    pub comment: String,
}

impl NewComment {
    pub fn new(text: &str) -> NewComment {
        NewComment {
            odata_type: COMMENT_TYPE.to_string(),
            comment: text.to_string(),
        }
    }
}

/// The OData collection envelope. The client reads `value` as raw JSON so that each
/// incident converts (or fails) on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub struct ODataList<T> {
    #[serde(
        rename = "@odata.context",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub context: Option<String>,
    /// Only with `$count=true`, and possibly only on the first page.
    #[serde(
        rename = "@odata.count",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub count: Option<u64>,
    #[serde(default = "Vec::new", deserialize_with = "null_as_empty")]
    pub value: Vec<T>,
    /// Absolute; request it exactly as given.
    #[serde(
        rename = "@odata.nextLink",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub next_link: Option<String>,
}

/// `{"error":{...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Branch on this, never on `message`; it may be an empty string (`$top` > 50).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub code: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<serde_json::Value>>,
    #[serde(
        rename = "innerError",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub inner_error: Option<InnerError>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InnerError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(
        rename = "request-id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub request_id: Option<String>,
    #[serde(
        rename = "client-request-id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A JSON `null` (or an absent field) read as the type's default.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A Graph `DateTimeOffset` as Graph writes it: UTC, 7 fractional digits
/// (`2025-05-02T08:11:04.6033333Z`).
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    let ticks = (t.nanosecond() / 100).min(9_999_999);
    format!("{}.{ticks:07}Z", t.format("%Y-%m-%dT%H:%M:%S"))
}

/// `t` cut to Graph's precision (100 ns).
pub fn truncate_timestamp(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(7)
}

/// Reads a Graph `DateTimeOffset`: RFC 3339 with any number of fractional digits;
/// a value without an offset is taken as UTC.
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
    fn graph_timestamps_round_trip_with_seven_digits() {
        let t = parse_timestamp("2025-05-02T08:11:04.6033333Z").unwrap();
        assert_eq!(format_timestamp(&t), "2025-05-02T08:11:04.6033333Z");
        let whole = parse_timestamp("2025-05-02T08:11:04Z").unwrap();
        assert_eq!(format_timestamp(&whole), "2025-05-02T08:11:04.0000000Z");
        let offset = parse_timestamp("2025-05-02T10:11:04.5+02:00").unwrap();
        assert_eq!(format_timestamp(&offset), "2025-05-02T08:11:04.5000000Z");
        let naive = parse_timestamp("2025-01-11T19:43:26").unwrap();
        assert_eq!(format_timestamp(&naive), "2025-01-11T19:43:26.0000000Z");
        let nanos = parse_timestamp("2025-05-02T08:11:04.123456789Z").unwrap();
        assert_eq!(
            format_timestamp(&truncate_timestamp(nanos)),
            "2025-05-02T08:11:04.1234567Z"
        );
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn graph_nulls_read_as_empty_collections() {
        let incident: Incident = serde_json::from_str(
            r#"{"id":"1","customTags":null,"comments":null,"systemTags":null}"#,
        )
        .unwrap();
        assert!(incident.custom_tags.is_empty() && incident.comments.is_empty());
        let error: ErrorBody =
            serde_json::from_str(r#"{"error":{"code":null,"message":"m"}}"#).unwrap();
        assert_eq!(error.error.code, "");
    }
}
