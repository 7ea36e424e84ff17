//! The habits of real helpdesk APIs that `[api]` can describe beyond paths and
//! pointers: typed values, how an update is sent, fixed fields written with a
//! request, the format `{since}` takes, and where an error body keeps its details.
//! Pure values and their pure helpers; `check.rs` and `shapes.rs` build them.

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::Value;

use super::JsonPointer;

/// The JSON type a ticket attribute has on the wire (`[api.types]`). The bridge
/// keeps every value as text; this says how it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    String,
    Integer,
    Number,
    Boolean,
}

impl ValueType {
    pub const ALL: [ValueType; 4] = [
        ValueType::String,
        ValueType::Integer,
        ValueType::Number,
        ValueType::Boolean,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Integer => "integer",
            ValueType::Number => "number",
            ValueType::Boolean => "boolean",
        }
    }

    /// The JSON value of `text` in this type, or why it has none.
    pub fn to_json(self, text: &str) -> Result<Value, String> {
        let refuse = || format!("{text:?} is not {} value", self.article());
        match self {
            ValueType::String => Ok(Value::String(text.to_string())),
            ValueType::Integer => text
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| refuse()),
            ValueType::Number => text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(refuse),
            ValueType::Boolean => match text.trim() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(refuse()),
            },
        }
    }

    fn article(self) -> &'static str {
        match self {
            ValueType::String => "a string",
            ValueType::Integer => "an integer",
            ValueType::Number => "a number",
            ValueType::Boolean => "a boolean (true or false)",
        }
    }
}

/// How an update reaches the ticket system (`update = { mode = … }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMode {
    /// Only the attributes that changed are sent (the default): an edit someone
    /// made to another field in the meantime survives.
    Partial,
    /// The ticket is read, changed and written back whole (every attribute
    /// `[api.fields]` names, the correlation id and the labels). With an `ETag` on
    /// the read, the write carries `If-Match` and a concurrent edit fails it (412,
    /// re-read and re-planned); without one, an edit made between the read and
    /// the write is overwritten.
    Full,
}

/// What `{since}` is rendered as (`since_format`, `since_zone`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinceFormat {
    /// `2026-11-01T08:00:00Z` (the default).
    Rfc3339,
    /// Seconds since 1970 (`unix`).
    UnixSeconds,
    /// Milliseconds since 1970 (`unix_ms`).
    UnixMillis,
    /// A strftime pattern, in a fixed UTC offset.
    Pattern { pattern: String, zone: FixedOffset },
}

impl SinceFormat {
    /// `since` as the search takes it, floored to the second (an earlier start
    /// only widens the window; a minute pattern floors to the minute).
    pub fn render(&self, since: DateTime<Utc>) -> String {
        match self {
            SinceFormat::Rfc3339 => since.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            SinceFormat::UnixSeconds => since.timestamp().to_string(),
            SinceFormat::UnixMillis => (since.timestamp() * 1000).to_string(),
            SinceFormat::Pattern { pattern, zone } => {
                since.with_timezone(zone).format(pattern).to_string()
            }
        }
    }
}

/// A UTC offset as `since_zone` writes it: `UTC`, `Z`, `+01:00`, `-05:30`.
pub fn parse_zone(text: &str) -> Option<FixedOffset> {
    if text.eq_ignore_ascii_case("utc") || text == "Z" {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 23 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// A value written into every request of an endpoint (`fields = { … }`), at a
/// pointer relative to the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraField {
    pub at: JsonPointer,
    pub value: ExtraValue,
}

/// A fixed value, or text rendered from the ticket's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtraValue {
    /// A number, a boolean or a string without placeholders, sent as it is.
    Constant(Value),
    /// A string with `{attribute}` or `{correlation}` placeholders.
    Template(Vec<TextPart>),
}

/// A piece of an [`ExtraValue::Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextPart {
    Text(String),
    /// The value of a ticket attribute the request writes (empty when it writes none).
    Attr(String),
    /// The correlation id the bridge stores on its tickets.
    Correlation,
}

impl ExtraValue {
    /// The JSON value, rendered from the request's attribute values.
    pub fn render(&self, attr: impl Fn(&str) -> Option<String>, correlation: &str) -> Value {
        match self {
            ExtraValue::Constant(v) => v.clone(),
            ExtraValue::Template(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        TextPart::Text(t) => out.push_str(t),
                        TextPart::Attr(name) => out.push_str(&attr(name).unwrap_or_default()),
                        TextPart::Correlation => out.push_str(correlation),
                    }
                }
                Value::String(out)
            }
        }
    }
}

/// A problem in an extra field's template: byte offset and message.
pub(super) struct TextProblem {
    pub offset: usize,
    pub message: String,
}

/// Parses `{name}` placeholders (`{{`, `}}` for braces); `known` says which names
/// are ticket attributes the request can hold.
pub(super) fn parse_text(text: &str, known: &[&str]) -> Result<Vec<TextPart>, TextProblem> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text.char_indices().peekable();
    while let Some((i, c)) = rest.next() {
        match c {
            '{' if rest.peek().map(|(_, c)| *c) == Some('{') => {
                rest.next();
                literal.push('{');
            }
            '}' if rest.peek().map(|(_, c)| *c) == Some('}') => {
                rest.next();
                literal.push('}');
            }
            '}' => {
                return Err(TextProblem {
                    offset: i,
                    message: "unmatched `}` (write `}}` for a literal brace)".into(),
                });
            }
            '{' => {
                let Some(end) = text[i + 1..].find('}') else {
                    return Err(TextProblem {
                        offset: i,
                        message: "unclosed `{` (write `{{` for a literal brace)".into(),
                    });
                };
                let name = text[i + 1..i + 1 + end].trim();
                let part = if name == "correlation" {
                    TextPart::Correlation
                } else if known.contains(&name) {
                    TextPart::Attr(name.to_string())
                } else {
                    return Err(TextProblem {
                        offset: i,
                        message: format!(
                            "unknown placeholder `{{{name}}}`; a field's text may use `{{correlation}}` and the attributes [api.fields] names: {}",
                            known.join(", ")
                        ),
                    });
                };
                if !literal.is_empty() {
                    parts.push(TextPart::Text(std::mem::take(&mut literal)));
                }
                parts.push(part);
                while rest.peek().is_some_and(|(j, _)| *j <= i + 1 + end) {
                    rest.next();
                }
            }
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        parts.push(TextPart::Text(literal));
    }
    Ok(parts)
}

/// Where an error body keeps its message and its field-level details
/// (`error_message`, `error_details`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorShape {
    pub message: Option<JsonPointer>,
    pub details: Option<JsonPointer>,
}

impl ErrorShape {
    /// The message and details of an error body, as one line:
    /// `Validation failed: priority: It should be one of 1, 2, 3, 4`. `None`
    /// when the body holds neither where the shape says.
    pub fn describe(&self, body: &Value) -> Option<String> {
        let message = self
            .message
            .as_ref()
            .and_then(|p| p.get(body))
            .and_then(|v| match v {
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                _ => None,
            });
        let details = self
            .details
            .as_ref()
            .and_then(|p| p.get(body))
            .map(details_text)
            .unwrap_or_default();
        match (message, details.is_empty()) {
            (None, true) => None,
            (Some(m), true) => Some(m),
            (None, false) => Some(details.join("; ")),
            (Some(m), false) => Some(format!("{m}: {}", details.join("; "))),
        }
    }
}

/// Field-level details in the shapes helpdesks use: a list of
/// `{"field", "message"|"description"}` objects (or strings), or an object keyed by
/// field whose values are such lists (or strings).
fn details_text(value: &Value) -> Vec<String> {
    fn one(field: Option<&str>, v: &Value) -> Option<String> {
        let text = match v {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => ["message", "description", "detail", "error"]
                .iter()
                .find_map(|k| o.get(*k).and_then(Value::as_str))
                .map(str::to_string),
            _ => None,
        }?;
        let field = field.map(str::to_string).or_else(|| {
            v.get("field")
                .or_else(|| v.get("name"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        Some(match field {
            Some(f) => format!("{f}: {}", text.trim()),
            None => text.trim().to_string(),
        })
    }
    let items = |field: Option<&str>, v: &Value| -> Vec<String> {
        match v {
            Value::Array(list) => list.iter().filter_map(|x| one(field, x)).collect(),
            other => one(field, other).into_iter().collect(),
        }
    };
    match value {
        Value::Object(map) if !map.contains_key("message") && !map.contains_key("description") => {
            map.iter().flat_map(|(k, v)| items(Some(k), v)).collect()
        }
        other => items(None, other),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    #[test]
    fn typed_values_refuse_what_is_not_their_type() {
        assert_eq!(ValueType::Integer.to_json("4"), Ok(json!(4)));
        assert_eq!(ValueType::Number.to_json("2.5"), Ok(json!(2.5)));
        assert_eq!(ValueType::Boolean.to_json("true"), Ok(json!(true)));
        assert_eq!(ValueType::String.to_json("4"), Ok(json!("4")));
        assert!(ValueType::Integer.to_json("high").is_err());
        assert!(ValueType::Integer.to_json("4.5").is_err());
        assert!(ValueType::Boolean.to_json("yes").is_err());
    }

    #[test]
    fn since_renders_in_each_format() {
        let t = Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 30).unwrap();
        assert_eq!(SinceFormat::Rfc3339.render(t), "2026-11-01T08:00:30Z");
        assert_eq!(SinceFormat::UnixSeconds.render(t), "1793520030");
        assert_eq!(SinceFormat::UnixMillis.render(t), "1793520030000");
        let local = SinceFormat::Pattern {
            pattern: "%d.%m.%Y %H:%M".into(),
            zone: parse_zone("+01:00").unwrap(),
        };
        assert_eq!(local.render(t), "01.11.2026 09:00");
        assert_eq!(parse_zone("-05:30").unwrap().local_minus_utc(), -19800);
        for bad in ["CET", "+1", "+25:00", "01:00"] {
            assert_eq!(parse_zone(bad), None, "{bad}");
        }
    }

    #[test]
    fn error_details_are_read_in_both_common_shapes() {
        let shape = ErrorShape {
            message: Some(JsonPointer::parse("/description").unwrap()),
            details: Some(JsonPointer::parse("/errors").unwrap()),
        };
        let freshservice = json!({"description": "Validation failed", "errors": [
            {"field": "priority", "message": "It should be one of these values: '1,2,3,4'", "code": "invalid_value"}
        ]});
        assert_eq!(
            shape.describe(&freshservice).unwrap(),
            "Validation failed: priority: It should be one of these values: '1,2,3,4'"
        );
        let shape = ErrorShape {
            message: Some(JsonPointer::parse("/description").unwrap()),
            details: Some(JsonPointer::parse("/details").unwrap()),
        };
        let zendesk = json!({"error": "RecordInvalid", "description": "Record validation errors",
            "details": {"priority": [{"description": "Priority: is not valid"}]}});
        assert_eq!(
            shape.describe(&zendesk).unwrap(),
            "Record validation errors: priority: Priority: is not valid"
        );
        assert_eq!(shape.describe(&json!({"other": 1})), None);
    }

    #[test]
    fn extra_field_text_renders_attributes_and_the_correlation() {
        let parts = parse_text("{summary} ({correlation}) {{x}}", &["summary"])
            .unwrap_or_else(|e| panic!("{}", e.message));
        let v = ExtraValue::Template(parts);
        let got = v.render(
            |a| (a == "summary").then(|| "Phishing".to_string()),
            "s:t:1",
        );
        assert_eq!(got, json!("Phishing (s:t:1) {x}"));
        let err = parse_text("a {nope}", &["summary"]).err().unwrap();
        assert_eq!(err.offset, 2);
        assert!(parse_text("a }", &[]).is_err());
    }
}
