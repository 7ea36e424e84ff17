//! Generic tickets ⇄ the domain, through the `[api]` description: a ticket object is
//! read and written only at the JSON pointers the mapping file names, and the
//! incident's correlation is kept in one string, `<source>:<scope tag>:<incident id>`.
//! Everything here is pure; the client does the HTTP.

use bridge_core::mapping::{GenericApi, Placeholder, TicketUrl, ValueType};
use bridge_core::model::{Comment, Correlation, TicketSnapshot, Timestamp};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use url::Url;

/// Hex digits of the scope tag: 48 bits of SHA-256, plenty to tell a deployment's
/// tenants and workspaces apart while keeping the value short.
const SCOPE_TAG_LEN: usize = 12;

/// The scope's tag in correlation values: `""` for no scope, else the first
/// 12 hex digits of its SHA-256 (a workspace path is long, and not the ticket's
/// business).
pub fn scope_tag(scope: &str) -> String {
    if scope.is_empty() {
        return String::new();
    }
    let digest = Sha256::digest(scope.as_bytes());
    let mut tag = String::with_capacity(SCOPE_TAG_LEN);
    for b in digest.iter().take(SCOPE_TAG_LEN / 2) {
        tag.push_str(&format!("{b:02x}"));
    }
    tag
}

/// The value the bridge stores at the `correlation` pointer:
/// `<source>:<scope tag>:<incident id>` (`sentinel-prod:3f9a1c2b7d4e:6f0c…`, or
/// `defender::41877` without a scope). The source name holds no `:`, so the
/// incident id is everything after the second one.
pub fn correlation_value(correlation: &Correlation) -> Result<String, String> {
    let source = &correlation.source;
    if source.is_empty() || source.contains(':') || source.chars().any(char::is_control) {
        return Err(format!(
            "source name {source:?} cannot go into a correlation id (it is empty or holds `:`)"
        ));
    }
    if correlation.incident_id.is_empty() {
        return Err("an empty incident id cannot be a correlation id".into());
    }
    Ok(format!(
        "{source}:{}:{}",
        scope_tag(&correlation.scope),
        correlation.incident_id
    ))
}

/// The correlation a stored value carries, if it is one the bridge wrote. Its
/// `scope` is the scope's tag (the scope itself cannot be recovered from it).
pub fn parse_correlation_value(value: &str) -> Option<Correlation> {
    let (source, rest) = value.split_once(':')?;
    let (tag, incident_id) = rest.split_once(':')?;
    let tag_ok = tag.is_empty()
        || (tag.len() == SCOPE_TAG_LEN
            && tag
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    if source.is_empty() || incident_id.is_empty() || !tag_ok {
        return None;
    }
    Some(Correlation::new(source, incident_id).with_scope(tag))
}

/// `since` as the `{since}` placeholder takes it: RFC 3339 in UTC, floored to the
/// second (an earlier start only widens the window).
pub fn format_since(since: Timestamp) -> String {
    since.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// An RFC 3339 time (any offset, optional fraction), as UTC.
pub fn parse_time(value: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(value)
        .or_else(|_| DateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A JSON value as attribute text: strings as they are (`""` is empty), numbers and
/// booleans as written, `null` empty. A list or an object is not one value: the
/// pointer should point inside it.
pub fn text_at(value: Option<&Value>, pointer: &str) -> Result<Option<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(Value::Array(_)) => Err(format!(
            "{pointer} holds a list, not one value; point at a value inside it"
        )),
        Some(Value::Object(_)) => Err(format!(
            "{pointer} holds an object, not one value; point at a value inside it (e.g. {pointer}/name)"
        )),
    }
}

/// The URL of a ticket's `get` request, for the key and id given.
pub fn api_url(api: &GenericApi, base: &Url, key: &str, id: &str) -> Result<Url, String> {
    let path = api
        .get
        .path
        .render(&[(Placeholder::Key, key), (Placeholder::Id, id)])?;
    base.join(path.trim_start_matches('/'))
        .map_err(|e| format!("cannot build the ticket URL from {path}: {e}"))
}

/// A ticket object as a snapshot. `base` is the API's base URL (for the `get` URL
/// that stands in when the ticket has no browser link).
pub fn to_snapshot(api: &GenericApi, base: &Url, ticket: &Value) -> Result<TicketSnapshot, String> {
    if !ticket.is_object() {
        return Err("a ticket is not a JSON object".into());
    }
    let required = |pointer: &bridge_core::mapping::JsonPointer, what: &str| {
        text_at(pointer.get(ticket), pointer.as_str())?
            .ok_or_else(|| format!("a ticket has no {what} at {}", pointer.as_str()))
    };
    let id = required(&api.id, "id")?;
    let key = match &api.key {
        Some(pointer) => required(pointer, "key").map_err(|e| format!("{e} (id {id})"))?,
        None => id.clone(),
    };
    let time = |pointer: &bridge_core::mapping::JsonPointer, what: &str| {
        let text = required(pointer, what).map_err(|e| format!("{e} (ticket {key})"))?;
        parse_time(&text).ok_or_else(|| {
            format!(
                "ticket {key}: the {what} time at {} is not RFC 3339: {text:?}",
                pointer.as_str()
            )
        })
    };
    let created = time(&api.created, "created")?;
    let modified = time(&api.updated, "updated")?;
    let url = match &api.url {
        TicketUrl::Pointer(pointer) => text_at(pointer.get(ticket), pointer.as_str())?
            .unwrap_or_else(|| {
                api_url(api, base, &key, &id)
                    .map(String::from)
                    .unwrap_or_default()
            }),
        TicketUrl::Template(template) => {
            template.render(&[(Placeholder::Key, &key), (Placeholder::Id, &id)])?
        }
        TicketUrl::ApiUrl => api_url(api, base, &key, &id)?.to_string(),
    };
    let mut attrs = bridge_core::model::Attrs::new();
    for (attr, pointer) in &api.fields {
        let value = text_at(pointer.get(ticket), pointer.as_str())
            .map_err(|e| format!("ticket {key}: {e}"))?;
        if let Some(value) = value {
            attrs.insert(attr.clone(), value);
        }
    }
    let labels = match &api.labels {
        Some(pointer) => string_list(pointer.get(ticket))
            .map_err(|e| format!("ticket {key}: labels at {}: {e}", pointer.as_str()))?,
        None => Vec::new(),
    };
    let correlation = text_at(api.correlation.get(ticket), api.correlation.as_str())
        .ok()
        .flatten()
        .and_then(|v| parse_correlation_value(&v));
    let comments = match &api.comments {
        Some(pointer) => match pointer.get(ticket) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|c| to_comment(api, c, None, modified))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("ticket {key}: {e}"))?,
            Some(_) => {
                return Err(format!(
                    "ticket {key}: comments at {} are not a list",
                    pointer.as_str()
                ));
            }
        },
        None => Vec::new(),
    };
    let version = match &api.version {
        Some(pointer) => text_at(pointer.get(ticket), pointer.as_str())
            .map_err(|e| format!("ticket {key}: version: {e}"))?,
        None => None,
    };
    Ok(TicketSnapshot {
        // A generic helpdesk's `[api]` names no author field: its changes are `unknown`.
        modified_by: Default::default(),
        key,
        id,
        url,
        created,
        modified,
        version,
        attrs,
        labels,
        correlation,
        comments,
    })
}

/// The correlation value a ticket object holds, exactly as stored.
pub fn stored_correlation(api: &GenericApi, ticket: &Value) -> Option<String> {
    text_at(api.correlation.get(ticket), api.correlation.as_str())
        .ok()
        .flatten()
}

/// A comment object as a domain comment. The text falls back to `sent` (the text
/// just posted) and the time to `now` when the object does not carry them.
pub fn to_comment(
    api: &GenericApi,
    comment: &Value,
    sent: Option<&str>,
    now: Timestamp,
) -> Result<Comment, String> {
    let id = text_at(api.id.get(comment), api.id.as_str()).unwrap_or(None);
    let author = match &api.comment_author {
        Some(pointer) => text_at(pointer.get(comment), pointer.as_str()).unwrap_or(None),
        None => None,
    };
    let text = text_at(api.comment_text.get(comment), api.comment_text.as_str())?
        .or_else(|| sent.map(str::to_string))
        .unwrap_or_default();
    let created = match text_at(api.created.get(comment), api.created.as_str()).unwrap_or(None) {
        Some(t) => {
            parse_time(&t).ok_or_else(|| format!("a comment's time is not RFC 3339: {t:?}"))?
        }
        None => now,
    };
    Ok(Comment {
        id,
        author,
        created,
        text,
    })
}

fn string_list(value: Option<&Value>) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("{other} is not a string")),
            })
            .collect(),
        Some(_) => Err("not a list".into()),
    }
}

/// Writes `value` (or `null`, to clear) at the attribute's pointer.
pub fn set_attr(
    api: &GenericApi,
    body: &mut Value,
    attr: &str,
    value: Option<&str>,
) -> Result<(), String> {
    let pointer = api.field(attr).ok_or_else(|| {
        format!("the ticket attribute {attr:?} has no place in [api.fields] of the mapping file")
    })?;
    let json = match value {
        None => Value::Null,
        // An empty value clears a typed attribute.
        Some("") if api.value_type(attr) != ValueType::String => Value::Null,
        Some(v) => api
            .value_type(attr)
            .to_json(v)
            .map_err(|e| format!("the ticket attribute {attr:?}: {e}"))?,
    };
    pointer.set(body, json)
}

/// An empty JSON object, the start of every request body.
pub fn empty_body() -> Value {
    Value::Object(Map::new())
}

/// The next-page URL of a list response, resolved against the request's URL when
/// it is relative; `None` on the last page (absent, `null` or `""`).
pub fn resolve_next(request: &Url, link: &str) -> Result<Option<Url>, String> {
    if link.trim().is_empty() {
        return Ok(None);
    }
    request
        .join(link)
        .map(Some)
        .map_err(|e| format!("the next-page link {link:?} is not a URL ({e})"))
}

/// The `rel="next"` target of an RFC 8288 `Link` header value.
pub fn link_header_next(value: &str) -> Option<String> {
    for link in value.split(',') {
        let link = link.trim();
        let (target, params) = link.split_once(';').unwrap_or((link, ""));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            let Some((name, value)) = p.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches('"')
                    .split_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;

    const MAPPING: &str = include_str!("../../../mappings/generic.toml");

    fn api() -> GenericApi {
        bridge_core::mapping::parse(Path::new("generic.toml"), MAPPING)
            .unwrap_or_else(|e| panic!("{e}"))
            .api
            .unwrap()
    }

    #[test]
    fn correlation_values_format_and_parse() {
        let plain = Correlation::new("defender", "41877");
        assert_eq!(correlation_value(&plain).unwrap(), "defender::41877");
        assert_eq!(parse_correlation_value("defender::41877"), Some(plain));
        let scoped = Correlation::new("sentinel-prod", "6f0c:2b8e").with_scope("sub/rg/ws");
        let value = correlation_value(&scoped).unwrap();
        let tag = scope_tag("sub/rg/ws");
        assert_eq!(tag.len(), 12);
        assert_eq!(value, format!("sentinel-prod:{tag}:6f0c:2b8e"));
        let parsed = parse_correlation_value(&value).unwrap();
        assert_eq!(
            (
                parsed.source.as_str(),
                parsed.scope.as_str(),
                parsed.incident_id.as_str()
            ),
            ("sentinel-prod", tag.as_str(), "6f0c:2b8e")
        );
        assert_ne!(scope_tag("sub/rg/ws"), scope_tag("sub/rg/ws2"));
        for bad in [
            "",
            "defender",
            "defender:",
            "defender::",
            ":x:1",
            "d:XYZ:1",
            "d:abc:1",
        ] {
            assert_eq!(parse_correlation_value(bad), None, "{bad}");
        }
        assert!(correlation_value(&Correlation::new("a:b", "1")).is_err());
        assert!(correlation_value(&Correlation::new("a", "")).is_err());
    }

    #[test]
    fn ticket_objects_become_snapshots_through_the_pointers() {
        let api = api();
        let base = Url::parse("http://127.0.0.1:9/").unwrap();
        let ticket = json!({
            "id": 7, "key": "HD-7", "summary": "s", "description": "", "status": "open",
            "priority": null, "resolution": null, "assignee": "ana@contoso.example",
            "external_id": "defender::41877", "labels": ["itsm-bridge"],
            "created_at": "2026-11-01T08:00:00.000Z", "updated_at": "2026-11-01T09:00:00.5+01:00",
            "web_url": "http://desk/tickets/HD-7",
            "comments": [{"id": 3, "author": "Ana", "body": "hi", "created_at": "2026-11-01T08:30:00Z"}]
        });
        let s = to_snapshot(&api, &base, &ticket).unwrap();
        assert_eq!((s.key.as_str(), s.id.as_str()), ("HD-7", "7"));
        assert_eq!(s.url, "http://desk/tickets/HD-7");
        assert_eq!(s.modified.to_rfc3339(), "2026-11-01T08:00:00.500+00:00");
        assert_eq!(s.attrs.get("summary").map(String::as_str), Some("s"));
        assert!(!s.attrs.contains_key("description"), "\"\" is empty");
        assert!(!s.attrs.contains_key("priority"));
        assert_eq!(s.labels, ["itsm-bridge"]);
        assert_eq!(s.correlation, Some(Correlation::new("defender", "41877")));
        assert_eq!(s.comments[0].text, "hi");
        assert_eq!(s.comments[0].author.as_deref(), Some("Ana"));

        let mut broken = ticket.clone();
        broken["updated_at"] = json!("yesterday");
        assert!(
            to_snapshot(&api, &base, &broken)
                .unwrap_err()
                .contains("not RFC 3339")
        );
        broken["updated_at"] = ticket["updated_at"].clone();
        broken["assignee"] = json!({"name": "x"});
        assert!(
            to_snapshot(&api, &base, &broken)
                .unwrap_err()
                .contains("/assignee holds an object")
        );
        let mut no_url = ticket.clone();
        no_url["web_url"] = Value::Null;
        assert_eq!(
            to_snapshot(&api, &base, &no_url).unwrap().url,
            "http://127.0.0.1:9/api/tickets/HD-7"
        );
    }

    #[test]
    fn next_links_resolve_and_link_headers_parse() {
        let request = Url::parse("http://h:1/api/tickets?limit=2").unwrap();
        assert_eq!(
            resolve_next(&request, "/api/tickets?cursor=x")
                .unwrap()
                .unwrap()
                .as_str(),
            "http://h:1/api/tickets?cursor=x"
        );
        assert_eq!(
            resolve_next(&request, "?cursor=y")
                .unwrap()
                .unwrap()
                .as_str(),
            "http://h:1/api/tickets?cursor=y"
        );
        assert_eq!(resolve_next(&request, "").unwrap(), None);
        assert_eq!(
            link_header_next(r#"<http://h/a?p=1>; rel="prev", <http://h/a?p=3>; rel="next""#)
                .as_deref(),
            Some("http://h/a?p=3")
        );
        assert_eq!(link_header_next(r#"<http://h/a>; rel="last""#), None);
    }
}
