//! ServiceNow Table API JSON as the instance spells it — every value a string,
//! reference fields as `{link, value}` (or a bare sys_id with
//! `sysparm_exclude_reference_link=true`, or `{display_value, value}` with
//! `sysparm_display_value=all`), date-times as `yyyy-MM-dd HH:mm:ss` UTC, errors as
//! `{"error":{"message","detail"},"status":"failure"}` — and the pure conversion to
//! the domain's [`TicketSnapshot`]. Also owns the bridge's vocabulary on ServiceNow:
//! the `correlation_id` format and the rule for literals in encoded queries.
//!
//! **`correlation_id`** is `itsm-bridge:<source>:<scope-tag>:<incident-id>`:
//! - `itsm-bridge:` marks the bridge's incidents, so `changed_since` selects them
//!   with one `correlation_idSTARTSWITHitsm-bridge:` whatever the source;
//! - `<source>` is the `[[source]]` name (`[a-z0-9][a-z0-9_-]*`);
//! - `<scope-tag>` is the first 12 hex digits of SHA-256 of the correlation scope
//!   (the tenant or workspace), empty when the scope is: two workspaces with equal
//!   incident ids never share a ticket, and the value stays short;
//! - `<incident-id>` is the source's id, percent-encoded outside `A-Za-z0-9-._~:`
//!   so the value can never hold `^` (the encoded-query separator), whitespace or
//!   control characters.
//!
//! The whole value must fit ServiceNow's 100 characters. `correlation_display` is
//! `itsm-bridge: <source>`. The scope cannot be read back from the tag, so a parsed
//! correlation has an empty `scope` (as the model allows).

use std::collections::BTreeMap;

use bridge_core::model::{Attrs, Comment, Correlation, ModifiedBy, TicketSnapshot, Timestamp};
use chrono::{NaiveDateTime, Timelike};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Every correlation id the bridge writes starts with this.
pub const CORRELATION_PREFIX: &str = "itsm-bridge:";
/// `correlation_id` is a 100-character string field on baseline instances.
pub const MAX_CORRELATION_ID_LEN: usize = 100;
/// Hex digits of the scope's SHA-256 kept in the correlation id.
pub const SCOPE_TAG_LEN: usize = 12;
/// The Table API's date-time format (UTC in the default, raw-value mode).
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// The incident fields the bridge reads. `assigned_to.email`,
/// `assigned_to.user_name` and `assignment_group.name` are dot-walked, so one list
/// call names the people and the group without a lookup per ticket.
pub const INCIDENT_FIELDS: &[&str] = &[
    "sys_id",
    "number",
    "short_description",
    "description",
    "state",
    "impact",
    "urgency",
    "priority",
    "close_code",
    "close_notes",
    "hold_reason",
    "assigned_to",
    "assigned_to.email",
    "assigned_to.user_name",
    "assignment_group",
    "assignment_group.name",
    "correlation_id",
    "correlation_display",
    "sys_created_on",
    "sys_updated_on",
    "sys_mod_count",
    // Who made the version read: the ledger's attribution, at no extra call.
    "sys_updated_by",
];

/// The `sys_journal_field` columns the bridge reads.
pub const JOURNAL_FIELDS: &[&str] = &[
    "sys_id",
    "name",
    "element",
    "element_id",
    "value",
    "sys_created_on",
    "sys_created_by",
];

/// The journal fields of an incident that hold notes.
pub const JOURNAL_ELEMENTS: &[&str] = &["work_notes", "comments"];

/// One field of a record, in whichever shape the request asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// The default: the raw value as a string (also a reference's sys_id with
    /// `sysparm_exclude_reference_link=true`, or the display value with
    /// `sysparm_display_value=true`).
    Text(String),
    /// A reference `{link, value}`, or `{display_value, value[, link]}` with
    /// `sysparm_display_value=all`.
    Parts(FieldParts),
    /// Anything else (`null`, a number an odd instance sent unquoted).
    Other(Value),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldParts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_value: Option<Value>,
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl FieldValue {
    /// The raw value (`""` for an empty reference).
    pub fn value(&self) -> Option<String> {
        match self {
            FieldValue::Text(s) => Some(s.clone()),
            FieldValue::Parts(p) => p.value.as_ref().and_then(scalar),
            FieldValue::Other(v) => scalar(v),
        }
    }

    /// The display value where the shape carries one, else the raw value.
    pub fn display(&self) -> Option<String> {
        match self {
            FieldValue::Parts(FieldParts {
                display_value: Some(d),
                ..
            }) => scalar(d),
            other => other.value(),
        }
    }
}

/// A record as the Table API returns it: field name → value.
pub type Record = BTreeMap<String, FieldValue>;

/// The raw value of `field`, `None` when absent or empty.
pub fn text(record: &Record, field: &str) -> Option<String> {
    record
        .get(field)
        .and_then(FieldValue::value)
        .filter(|v| !v.is_empty())
}

/// `GET` list: `{"result": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListResponse {
    #[serde(default)]
    /// Records that do not decode are left out (with a warning), not the page.
    #[serde(deserialize_with = "crate::http::lenient_items")]
    pub result: Vec<Record>,
}

/// `GET` one, `POST`, `PATCH`, `PUT`: `{"result": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordResponse {
    pub result: Record,
}

/// The error body: `{"error":{"message","detail"},"status":"failure"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
}

impl ErrorBody {
    pub fn new(message: impl Into<String>, detail: Option<String>) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                message: Some(message.into()),
                detail,
            },
            status: Some("failure".into()),
        }
    }
}

/// The message of an error body: `message: detail`, either alone, or `None` when
/// the body is not ServiceNow's error shape.
pub fn error_message(body: &[u8]) -> Option<String> {
    let body: ErrorBody = serde_json::from_slice(body).ok()?;
    let clean = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    match (clean(body.error.message), clean(body.error.detail)) {
        (Some(m), Some(d)) => Some(format!("{m}: {d}")),
        (Some(m), None) => Some(m),
        (None, Some(d)) => Some(d),
        (None, None) => None,
    }
}

/// Parses `yyyy-MM-dd HH:mm:ss` as UTC.
pub fn parse_time(s: &str) -> Option<Timestamp> {
    NaiveDateTime::parse_from_str(s.trim(), TIME_FORMAT)
        .ok()
        .map(|t| t.and_utc())
}

/// Formats an instant the way the Table API writes it, truncated to the second.
pub fn format_time(t: Timestamp) -> String {
    t.with_nanosecond(0)
        .unwrap_or(t)
        .format(TIME_FORMAT)
        .to_string()
}

/// Whether `s` looks like a sys_id: 32 lowercase hex digits.
pub fn is_sys_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A literal that may be put into an encoded query (`sysparm_query`) after an
/// operator, or why it may not. Encoded queries have no escape for `^` (it always
/// ends the condition, and `^OR`, `^NQ` and `^ORDERBY` start new ones), a newline
/// would end the query for some parsers, and a value starting with `javascript:`
/// is evaluated on the instance. Such values are refused rather than guessed at.
pub fn query_literal(value: &str) -> Result<&str, String> {
    if value.contains('^') {
        return Err(format!(
            "{value:?} cannot be used in a ServiceNow query: it holds `^`, which encoded queries cannot escape"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!(
            "{value:?} cannot be used in a ServiceNow query: it holds a line break or control character"
        ));
    }
    if value
        .get(..11)
        .is_some_and(|p| p.eq_ignore_ascii_case("javascript:"))
    {
        return Err(format!(
            "{value:?} cannot be used in a ServiceNow query: the instance would run it as a script"
        ));
    }
    if value.trim() != value {
        return Err(format!(
            "{value:?} cannot be used in a ServiceNow query: it starts or ends with whitespace"
        ));
    }
    Ok(value)
}

/// Whether `source` is a usable `[[source]]` name: `[a-z0-9][a-z0-9_-]*`.
pub fn valid_source_name(source: &str) -> bool {
    let mut chars = source.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// The first 12 hex digits of SHA-256 of `scope`; empty for an empty scope.
pub fn scope_tag(scope: &str) -> String {
    if scope.is_empty() {
        return String::new();
    }
    let digest = Sha256::digest(scope.as_bytes());
    let mut tag: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    tag.truncate(SCOPE_TAG_LEN);
    tag
}

fn keep_unencoded(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':')
}

fn encode_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if keep_unencoded(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode_id(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = encoded.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if keep_unencoded(b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// The `correlation_id` for an incident (see the module docs), or why there is none.
pub fn correlation_id(correlation: &Correlation) -> Result<String, String> {
    if !valid_source_name(&correlation.source) {
        return Err(format!(
            "source name {:?} cannot go into a ServiceNow correlation id: use lowercase letters, digits, '-' and '_'",
            correlation.source
        ));
    }
    if correlation.incident_id.is_empty() {
        return Err("an empty incident id cannot be a ServiceNow correlation id".into());
    }
    let value = format!(
        "{CORRELATION_PREFIX}{}:{}:{}",
        correlation.source,
        scope_tag(&correlation.scope),
        encode_id(&correlation.incident_id)
    );
    if value.len() > MAX_CORRELATION_ID_LEN {
        return Err(format!(
            "the correlation id for incident {:?} of source {:?} would be {} characters, more than ServiceNow's {MAX_CORRELATION_ID_LEN}; use a shorter [[source]] name",
            correlation.incident_id,
            correlation.source,
            value.len()
        ));
    }
    Ok(value)
}

/// The correlation a `correlation_id` carries, if the bridge wrote it. The scope
/// cannot be recovered from its tag, so it is empty.
pub fn parse_correlation_id(value: &str) -> Option<Correlation> {
    let rest = value.strip_prefix(CORRELATION_PREFIX)?;
    let (source, rest) = rest.split_once(':')?;
    let (tag, id) = rest.split_once(':')?;
    if !valid_source_name(source)
        || !(tag.is_empty()
            || tag.len() == SCOPE_TAG_LEN
                && tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    {
        return None;
    }
    let id = decode_id(id).filter(|id| !id.is_empty())?;
    Some(Correlation::new(source, id))
}

/// `correlation_display`: what the incident form shows beside the id.
pub fn correlation_display(source: &str) -> String {
    format!("itsm-bridge: {source}")
}

/// `<base>/nav_to.do?uri=incident.do?sys_id=<sys_id>`: the incident in the UI.
pub fn incident_url(base_url: &url::Url, sys_id: &str) -> String {
    let base = base_url.as_str();
    let sep = if base.ends_with('/') { "" } else { "/" };
    format!("{base}{sep}nav_to.do?uri=incident.do?sys_id={sys_id}")
}

/// The `Link` header's targets by relation (`next`, `first`, …). URLs are taken
/// between `<` and `>`, so commas inside them are harmless.
pub fn parse_link_header(value: &str) -> Vec<(String, String)> {
    let mut links = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start + 1..].find('>') else {
            break;
        };
        let url = &rest[start + 1..start + 1 + len];
        rest = &rest[start + 1 + len + 1..];
        let params = match rest.find('<') {
            Some(next) => &rest[..next],
            None => rest,
        };
        for param in params.split(';') {
            if let Some((name, v)) = param.split_once('=')
                && name.trim().eq_ignore_ascii_case("rel")
            {
                let rel = v.trim().trim_end_matches(',').trim().trim_matches('"');
                for r in rel.split_whitespace() {
                    links.push((r.to_ascii_lowercase(), url.to_string()));
                }
            }
        }
    }
    links
}

/// The `rel="next"` target of a `Link` header, if any.
pub fn next_link(value: &str) -> Option<String> {
    parse_link_header(value)
        .into_iter()
        .find(|(rel, _)| rel == "next")
        .map(|(_, url)| url)
}

/// A `sys_journal_field` row (a work note or comment) as a domain comment.
pub fn to_comment(row: &Record) -> Result<Comment, String> {
    let id = text(row, "sys_id");
    let created = text(row, "sys_created_on")
        .as_deref()
        .and_then(parse_time)
        .ok_or_else(|| {
            format!(
                "journal entry {} has no readable sys_created_on",
                id.as_deref().unwrap_or("?")
            )
        })?;
    Ok(Comment {
        id,
        author: text(row, "sys_created_by"),
        created,
        text: row
            .get("value")
            .and_then(FieldValue::value)
            .unwrap_or_default(),
    })
}

/// The assignee as the bridge names it: the user's email, else the user name,
/// else the bare sys_id (all three are accepted when writing).
fn assignee(record: &Record) -> Option<String> {
    text(record, "assigned_to.email")
        .or_else(|| text(record, "assigned_to.user_name"))
        .or_else(|| text(record, "assigned_to"))
}

fn group(record: &Record) -> Option<String> {
    text(record, "assignment_group.name").or_else(|| text(record, "assignment_group"))
}

/// An incident record as the domain sees it. `base_url` is the instance URL (for
/// the UI link). Fails when the record lacks its sys_id, number or times.
pub fn to_snapshot(record: &Record, base_url: &url::Url) -> Result<TicketSnapshot, String> {
    let sys_id = text(record, "sys_id").ok_or("an incident came back without its sys_id")?;
    if !is_sys_id(&sys_id) {
        return Err(format!(
            "an incident came back with a malformed sys_id {sys_id:?}"
        ));
    }
    let number =
        text(record, "number").ok_or_else(|| format!("incident {sys_id} has no number"))?;
    let time = |field: &str| {
        text(record, field)
            .as_deref()
            .and_then(parse_time)
            .ok_or_else(|| format!("incident {number} has no readable {field}"))
    };
    let created = time("sys_created_on")?;
    let modified = time("sys_updated_on")?;

    let mut attrs = Attrs::new();
    let mut put = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            attrs.insert(name.to_string(), v);
        }
    };
    put("summary", text(record, "short_description"));
    put("description", text(record, "description"));
    put("status", text(record, "state"));
    put("impact", text(record, "impact"));
    put("urgency", text(record, "urgency"));
    put("priority", text(record, "priority"));
    put("close_code", text(record, "close_code"));
    put("close_notes", text(record, "close_notes"));
    put("hold_reason", text(record, "hold_reason"));
    put("assignee", assignee(record));
    put("assignment_group", group(record));

    let correlation = text(record, "correlation_id")
        .as_deref()
        .and_then(parse_correlation_id);
    Ok(TicketSnapshot {
        modified_by: ModifiedBy {
            last: text(record, "sys_updated_by"),
            fields: Default::default(),
        },
        url: incident_url(base_url, &sys_id),
        key: number,
        id: sys_id,
        created,
        modified,
        // Two writes within one second share `sys_updated_on`; the count of
        // writes tells them apart.
        version: text(record, "sys_mod_count"),
        attrs,
        labels: Vec::new(),
        correlation,
        comments: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(value: Value) -> Record {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_api_md_example_converts_to_a_snapshot() {
        // The PATCH answer of API.md §5.4, with the creation time a GET adds.
        let body = json!({"result":{"sys_id":"9d385017c611228701d22104cc95c371","number":"INC0010042","state":"6","incident_state":"6",
            "impact":"2","urgency":"2","priority":"3","close_code":"Solution provided","close_notes":"Closed in Sentinel as TruePositive/SuspiciousActivity",
            "work_notes":"","comments":"","correlation_id":"sentinel:6f0c2b8e-7c1a-4a53-9a0e-2d3f4b5c6d7e",
            "correlation_display":"Microsoft Sentinel","assignment_group":"8a5055c9c61122780043563ef53438e3",
            "sys_created_on":"2025-05-02 08:00:31","sys_updated_on":"2025-05-02 08:14:09","sys_mod_count":"7","active":"true"}});
        let response: RecordResponse = serde_json::from_value(body).unwrap();
        let base = url::Url::parse("https://acme.service-now.com").unwrap();
        let s = to_snapshot(&response.result, &base).unwrap();
        assert_eq!(s.key, "INC0010042");
        assert_eq!(s.id, "9d385017c611228701d22104cc95c371");
        assert_eq!(
            s.url,
            "https://acme.service-now.com/nav_to.do?uri=incident.do?sys_id=9d385017c611228701d22104cc95c371"
        );
        assert_eq!(s.attrs["status"], "6");
        assert_eq!(s.attrs["impact"], "2");
        assert_eq!(s.attrs["urgency"], "2");
        assert_eq!(s.attrs["priority"], "3");
        assert_eq!(s.attrs["close_code"], "Solution provided");
        assert_eq!(
            s.attrs["close_notes"],
            "Closed in Sentinel as TruePositive/SuspiciousActivity"
        );
        assert_eq!(
            s.attrs["assignment_group"],
            "8a5055c9c61122780043563ef53438e3"
        );
        assert!(!s.attrs.contains_key("summary"));
        assert!(!s.attrs.contains_key("assignee"));
        // Another integration's correlation id is not the bridge's.
        assert_eq!(s.correlation, None);
        assert_eq!(s.created.to_rfc3339(), "2025-05-02T08:00:31+00:00");
        assert_eq!(s.modified.to_rfc3339(), "2025-05-02T08:14:09+00:00");
        assert!(s.labels.is_empty() && s.comments.is_empty());
    }

    #[test]
    fn every_reference_shape_reads_the_same() {
        let base = url::Url::parse("https://acme.service-now.com/").unwrap();
        let common = json!({"sys_id":"0123456789abcdef0123456789abcdef","number":"INC0010001",
            "sys_created_on":"2025-05-02 08:00:00","sys_updated_on":"2025-05-02 08:00:00"});
        let shapes = [
            // Default: {link, value}.
            json!({"assigned_to":{"link":"https://acme.service-now.com/api/now/table/sys_user/681ccaf9c0a8016400b98a06818d57c7","value":"681ccaf9c0a8016400b98a06818d57c7"},
                   "assignment_group":{"link":"https://acme.service-now.com/api/now/table/sys_user_group/8a5055c9c61122780043563ef53438e3","value":"8a5055c9c61122780043563ef53438e3"}}),
            // sysparm_exclude_reference_link=true: bare sys_ids.
            json!({"assigned_to":"681ccaf9c0a8016400b98a06818d57c7","assignment_group":"8a5055c9c61122780043563ef53438e3"}),
            // sysparm_display_value=all: {display_value, value[, link]}.
            json!({"assigned_to":{"display_value":"Ana Ruiz","value":"681ccaf9c0a8016400b98a06818d57c7","link":"https://x/y"},
                   "assignment_group":{"display_value":"SOC","value":"8a5055c9c61122780043563ef53438e3"}}),
        ];
        for shape in shapes {
            let mut r = common.clone();
            r.as_object_mut()
                .unwrap()
                .extend(shape.as_object().unwrap().clone());
            let s = to_snapshot(&record(r), &base).unwrap();
            assert_eq!(s.attrs["assignee"], "681ccaf9c0a8016400b98a06818d57c7");
            assert_eq!(
                s.attrs["assignment_group"],
                "8a5055c9c61122780043563ef53438e3"
            );
            assert_eq!(
                s.url,
                "https://acme.service-now.com/nav_to.do?uri=incident.do?sys_id=0123456789abcdef0123456789abcdef"
            );
        }
        // Empty references are "" in every mode; dot-walked names win over sys_ids.
        let mut r = common.clone();
        r.as_object_mut().unwrap().extend(
            json!({"assigned_to":"681ccaf9c0a8016400b98a06818d57c7","assigned_to.email":"ana@contoso.com",
                   "assigned_to.user_name":"ana.ruiz","assignment_group":"","assignment_group.name":""})
            .as_object()
            .unwrap()
            .clone(),
        );
        let s = to_snapshot(&record(r), &base).unwrap();
        assert_eq!(s.attrs["assignee"], "ana@contoso.com");
        assert!(!s.attrs.contains_key("assignment_group"));
        let all: FieldValue =
            serde_json::from_value(json!({"display_value":"In Progress","value":"2"})).unwrap();
        assert_eq!(all.value().as_deref(), Some("2"));
        assert_eq!(all.display().as_deref(), Some("In Progress"));
        assert_eq!(
            serde_json::from_value::<FieldValue>(Value::Null)
                .unwrap()
                .value(),
            None
        );
    }

    #[test]
    fn records_without_identity_or_times_are_refused() {
        let base = url::Url::parse("https://acme.service-now.com").unwrap();
        for bad in [
            json!({"number":"INC1","sys_created_on":"2025-05-02 08:00:00","sys_updated_on":"2025-05-02 08:00:00"}),
            json!({"sys_id":"../../x","number":"INC1","sys_created_on":"2025-05-02 08:00:00","sys_updated_on":"2025-05-02 08:00:00"}),
            json!({"sys_id":"0123456789abcdef0123456789abcdef","sys_created_on":"2025-05-02 08:00:00","sys_updated_on":"2025-05-02 08:00:00"}),
            json!({"sys_id":"0123456789abcdef0123456789abcdef","number":"INC1","sys_updated_on":"2025-05-02 08:00:00"}),
            json!({"sys_id":"0123456789abcdef0123456789abcdef","number":"INC1","sys_created_on":"2025-05-02 08:00:00","sys_updated_on":"2025-05-02T08:00:00Z"}),
        ] {
            assert!(to_snapshot(&record(bad.clone()), &base).is_err(), "{bad}");
        }
    }

    #[test]
    fn correlation_ids_format_parse_and_separate_scopes() {
        let c = Correlation::new("sentinel", "6f0c2b8e-7c1a-4a53-9a0e-2d3f4b5c6d7e")
            .with_scope("/subscriptions/1/resourceGroups/soc/workspaces/a");
        let id = correlation_id(&c).unwrap();
        let tag = scope_tag(&c.scope);
        assert_eq!(tag.len(), 12);
        assert_eq!(
            id,
            format!("itsm-bridge:sentinel:{tag}:6f0c2b8e-7c1a-4a53-9a0e-2d3f4b5c6d7e")
        );
        assert!(id.len() <= MAX_CORRELATION_ID_LEN);
        assert_eq!(
            parse_correlation_id(&id),
            Some(Correlation::new(
                "sentinel",
                "6f0c2b8e-7c1a-4a53-9a0e-2d3f4b5c6d7e"
            ))
        );
        // Another workspace, same incident id: another correlation id.
        let other = c
            .clone()
            .with_scope("/subscriptions/1/resourceGroups/soc/workspaces/b");
        assert_ne!(correlation_id(&other).unwrap(), id);
        // No scope: an empty tag.
        assert_eq!(
            correlation_id(&Correlation::new("defender", "41877")).unwrap(),
            "itsm-bridge:defender::41877"
        );
        // Hostile ids are encoded: never a `^`, whitespace or `%` left raw.
        for hostile in [
            "x^NQsys_id!=0",
            "a^ORcorrelation_idSTARTSWITH",
            "line\nbreak",
            " padded ",
            "100%",
            "ünï✓",
            "javascript:gs.log(1)",
            "a:b:c",
        ] {
            let c = Correlation::new("sentinel", hostile);
            let id = correlation_id(&c).unwrap();
            assert!(query_literal(&id).is_ok(), "{id}");
            assert!(!id.contains(' ') && !id.contains('^'), "{id}");
            assert_eq!(parse_correlation_id(&id), Some(c), "{id}");
        }
        assert!(correlation_id(&Correlation::new("Bad Source", "1")).is_err());
        assert!(correlation_id(&Correlation::new("ok", "")).is_err());
        assert!(correlation_id(&Correlation::new("ok", "x".repeat(90))).is_err());
        for bad in [
            "sentinel:6f0c",
            "itsm-bridge:sentinel",
            "itsm-bridge:sentinel:abc:1",
            "itsm-bridge:Sentinel::1",
            "itsm-bridge:sentinel::",
            "itsm-bridge:sentinel::a%zz",
            "itsm-bridge:sentinel::a b",
        ] {
            assert_eq!(parse_correlation_id(bad), None, "{bad}");
        }
        assert_eq!(correlation_display("sentinel"), "itsm-bridge: sentinel");
    }

    #[test]
    fn query_literals_refuse_what_encoded_queries_cannot_escape() {
        assert_eq!(query_literal("INC0010042"), Ok("INC0010042"));
        assert_eq!(query_literal("ana@contoso.com"), Ok("ana@contoso.com"));
        for bad in [
            "a^b",
            "^NQactive=true",
            "x\ny",
            "tab\t",
            "javascript:gs.getUserID()",
            "JavaScript:1",
            " lead",
            "trail ",
        ] {
            assert!(query_literal(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn error_bodies_become_messages() {
        let body = br#"{"error":{"message":"Operation Failed","detail":"Data Policy Exception: The following fields are mandatory: Resolution code, Resolution notes"},"status":"failure"}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some(
                "Operation Failed: Data Policy Exception: The following fields are mandatory: Resolution code, Resolution notes"
            )
        );
        let body = br#"{"error":{"message":"No Record found","detail":null},"status":"failure"}"#;
        assert_eq!(error_message(body).as_deref(), Some("No Record found"));
        assert_eq!(error_message(br#"{"error":{}}"#), None);
        assert_eq!(error_message(b"<html>oops</html>"), None);
    }

    #[test]
    fn times_and_links_parse() {
        let t = parse_time("2025-05-02 08:14:09").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-05-02T08:14:09+00:00");
        let later = t + chrono::Duration::milliseconds(999);
        assert_eq!(format_time(later), "2025-05-02 08:14:09");
        assert!(parse_time("2025-05-02T08:14:09Z").is_none());

        let header = r#"<https://i.service-now.com/api/now/table/incident?sysparm_offset=40&sysparm_limit=20&sysparm_fields=a,b>;rel="next",<https://i.service-now.com/api/now/table/incident?sysparm_offset=0&sysparm_limit=20>;rel="first", <https://i.service-now.com/x?sysparm_offset=0>;rel="prev""#;
        assert_eq!(
            next_link(header).as_deref(),
            Some(
                "https://i.service-now.com/api/now/table/incident?sysparm_offset=40&sysparm_limit=20&sysparm_fields=a,b"
            )
        );
        let rels: Vec<String> = parse_link_header(header)
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        assert_eq!(rels, vec!["next", "first", "prev"]);
        assert_eq!(next_link(r#"<https://x/y>;rel="last""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn journal_rows_become_comments() {
        let row = record(
            json!({"sys_id":"a1b2c3d4e5f60718293a4b5c6d7e8f90","name":"incident","element":"work_notes",
            "element_id":"9d385017c611228701d22104cc95c371","value":"[itsm-bridge] closed",
            "sys_created_on":"2025-05-02 08:14:09","sys_created_by":"bridge"}),
        );
        let c = to_comment(&row).unwrap();
        assert_eq!(c.id.as_deref(), Some("a1b2c3d4e5f60718293a4b5c6d7e8f90"));
        assert_eq!(c.author.as_deref(), Some("bridge"));
        assert_eq!(c.text, "[itsm-bridge] closed");
        assert_eq!(c.created.to_rfc3339(), "2025-05-02T08:14:09+00:00");
        assert!(to_comment(&record(json!({"value":"x"}))).is_err());
    }
}
