//! The `[api]` table of a generic ticket system's mapping file: how the bridge talks
//! to an in-house REST ticket API that has no connector of its own. Endpoints are URL
//! templates (`/api/tickets/{key}`) whose placeholders are checked when the file is
//! loaded; where values sit in the JSON is given as JSON pointers (RFC 6901), syntax
//! checked too. This module owns the raw serde shape, its checks (every problem at
//! its line:column), the checks of the `[[field]]`s against it, and the checked
//! [`GenericApi`] the generic connector consumes. Rendering a template
//! percent-encodes every value, so no ticket key or incident id can change a path or
//! add a query parameter.

use serde_json::{Map, Value};

mod check;
mod shape;
mod shapes;
mod uses;

pub(crate) use check::{FieldUse, RawApi, check};
pub use shape::{ErrorShape, ExtraField, ExtraValue, SinceFormat, TextPart, UpdateMode, ValueType};
pub(crate) use uses::check_uses;

/// How the bridge uses a generic REST ticket system: the checked `[api]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericApi {
    /// Opens a ticket (`POST`); the response is the new ticket.
    pub create: Endpoint,
    /// Reads the ticket `{key}`.
    pub get: Endpoint,
    /// Changes the ticket `{key}`: `PATCH` and `POST` send the changed values only,
    /// `PUT` sends the whole ticket as just read, with the changes applied.
    pub update: Endpoint,
    /// Lists the tickets updated at or after `{since}`, paged through `next`.
    pub search: Endpoint,
    /// Lists the tickets whose correlation value is `{correlation}`.
    pub find: Endpoint,
    /// Adds a comment to the ticket `{key}`; the response is the new comment.
    pub comment: Endpoint,
    /// Where a comment object holds its text, in the request and in responses.
    pub comment_text: JsonPointer,
    /// Where a comment object names its author, if it does.
    pub comment_author: Option<JsonPointer>,
    /// The list of tickets in a search or find response (the root for a bare array).
    pub items: JsonPointer,
    /// How a search or find response leads to its next page.
    pub next: NextPage,
    /// The ticket's API id (a string or a number).
    pub id: JsonPointer,
    /// The ticket's key, what people call it (`HD-42`); `None` when the id is the key.
    pub key: Option<JsonPointer>,
    /// Where the ticket's browser link comes from.
    pub url: TicketUrl,
    /// When the ticket was created (RFC 3339).
    pub created: JsonPointer,
    /// When the ticket last changed (RFC 3339): the polling cursor.
    pub updated: JsonPointer,
    /// The ticket's version (a revision counter or an etag), if the system keeps
    /// one: it tells two changes within one tick of `updated` apart.
    pub version: Option<JsonPointer>,
    /// Where the bridge keeps the incident's correlation id on a ticket: written on
    /// create, searched by `find`, and compared exactly before a ticket is adopted.
    pub correlation: JsonPointer,
    /// The ticket's labels (a list of strings), if the system has labels.
    pub labels: Option<JsonPointer>,
    /// The comments embedded in a ticket object (a list of comment objects), if any.
    pub comments: Option<JsonPointer>,
    /// Ticket attribute (`summary`, `status`, …) → where a ticket object holds it,
    /// for reading and for writing; in file order.
    pub fields: Vec<(String, JsonPointer)>,
    /// The status values the system accepts, as it spells them; `None` when the
    /// file does not list them.
    pub statuses: Option<Vec<String>>,
    /// Attributes whose JSON type is not a string (`[api.types]`), in file order.
    pub types: Vec<(String, ValueType)>,
    /// How an update is sent (`update = { mode = … }`).
    pub update_mode: UpdateMode,
    /// What `{since}` is rendered as.
    pub since_format: SinceFormat,
    /// Where an error body keeps its message and details.
    pub errors: ErrorShape,
}

impl GenericApi {
    /// Where a ticket object holds the attribute, if `[api.fields]` names it.
    pub fn field(&self, attr: &str) -> Option<&JsonPointer> {
        self.fields
            .iter()
            .find(|(name, _)| name == attr)
            .map(|(_, pointer)| pointer)
    }

    /// The JSON type of the attribute on the wire (a string unless `[api.types]`
    /// says otherwise).
    pub fn value_type(&self, attr: &str) -> ValueType {
        self.types
            .iter()
            .find(|(name, _)| name == attr)
            .map_or(ValueType::String, |(_, t)| *t)
    }

    /// Where a list response of `endpoint` holds its tickets.
    pub fn items_of<'a>(&'a self, endpoint: &'a Endpoint) -> &'a JsonPointer {
        endpoint.items.as_ref().unwrap_or(&self.items)
    }

    /// How a list response of `endpoint` leads to its next page.
    pub fn next_of<'a>(&'a self, endpoint: &'a Endpoint) -> &'a NextPage {
        endpoint.next.as_ref().unwrap_or(&self.next)
    }

    /// The status value as the system spells it (matched case-insensitively), or
    /// `None` when `statuses` is listed and does not hold it. Without a list every
    /// value is passed on as it is.
    pub fn canonical_status<'a>(&'a self, value: &'a str) -> Option<&'a str> {
        match &self.statuses {
            None => Some(value),
            Some(list) => list
                .iter()
                .find(|s| s.eq_ignore_ascii_case(value))
                .map(String::as_str),
        }
    }
}

/// One request the bridge makes: a method and a URL template relative to the
/// ticket system's `base_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub method: HttpMethod,
    pub path: UrlTemplate,
    /// Where the answer holds the record (`record = "/ticket"`); the root when
    /// the answer is the record.
    pub record: JsonPointer,
    /// Where the request body carries the record (`send = "/ticket"`); the root
    /// when the body is the record.
    pub send: JsonPointer,
    /// A list endpoint's own envelope (`items`), instead of `[api] items`.
    pub items: Option<JsonPointer>,
    /// A list endpoint's own next-page link (`next`), instead of `[api] next`.
    pub next: Option<NextPage>,
    /// Whether a list response has a next page, beside its link (`more`, `end`).
    pub more: Option<More>,
    /// Values written into every request (`fields = { "/source" = 2 }`),
    /// relative to the record.
    pub fields: Vec<ExtraField>,
}

impl Endpoint {
    /// An endpoint of this method and path whose answers and requests are the
    /// record itself, with nothing more.
    pub fn plain(method: HttpMethod, path: UrlTemplate) -> Endpoint {
        Endpoint {
            method,
            path,
            record: JsonPointer::root(),
            send: JsonPointer::root(),
            items: None,
            next: None,
            more: None,
            fields: Vec::new(),
        }
    }
}

/// A flag in a list response beside the next-page link: some APIs keep sending a
/// link on the last page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum More {
    /// Follow the link only while this is `true` (`more = "/meta/has_more"`).
    While(JsonPointer),
    /// Stop once this is `true` (`end = "/end_of_stream"`).
    Until(JsonPointer),
}

/// The HTTP methods an endpoint may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
        }
    }

    fn parse(s: &str) -> Option<HttpMethod> {
        [
            HttpMethod::Get,
            HttpMethod::Post,
            HttpMethod::Put,
            HttpMethod::Patch,
        ]
        .into_iter()
        .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
}

/// How a list response leads to the next page. The link is followed exactly as
/// returned (resolved against the request's URL when relative).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextPage {
    /// Every list fits in one response.
    None,
    /// A URL at this pointer in the response body; absent, null or `""` on the last page.
    Pointer(JsonPointer),
    /// The `Link` response header's `rel="next"` URL (RFC 8288).
    LinkHeader,
}

/// Where a ticket's browser link comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketUrl {
    /// A URL in the ticket object.
    Pointer(JsonPointer),
    /// An absolute URL rendered from the ticket's `{key}` and `{id}`.
    Template(UrlTemplate),
    /// Neither is given: the `get` endpoint's URL stands in.
    ApiUrl,
}

/// A value a URL template can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// The ticket's API id.
    Id,
    /// The ticket's key.
    Key,
    /// The start of a search, RFC 3339 in UTC (`2026-11-01T08:00:00Z`).
    Since,
    /// The correlation id the bridge stores on its tickets.
    Correlation,
}

impl Placeholder {
    const ALL: [Placeholder; 4] = [
        Placeholder::Id,
        Placeholder::Key,
        Placeholder::Since,
        Placeholder::Correlation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Id => "id",
            Placeholder::Key => "key",
            Placeholder::Since => "since",
            Placeholder::Correlation => "correlation",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum UrlPart {
    Text(String),
    Value {
        placeholder: Placeholder,
        /// Before the `?`: a value of `.`, `..` or nothing would change the path.
        in_path: bool,
    },
}

/// A URL template such as `/api/tickets/{key}/comments`. `{{` and `}}` stand for
/// literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    text: String,
    parts: Vec<UrlPart>,
}

impl UrlTemplate {
    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the template uses the placeholder.
    pub fn uses(&self, placeholder: Placeholder) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, UrlPart::Value { placeholder: q, .. } if *q == placeholder))
    }

    /// The URL with every placeholder replaced by its value, percent-encoded (all
    /// but the RFC 3986 unreserved characters), so a value is always one path
    /// segment or one query value. Refused: a placeholder without a value, and an
    /// empty, `.` or `..` value in the path (it would name another resource).
    pub fn render(&self, values: &[(Placeholder, &str)]) -> Result<String, String> {
        let mut out = String::with_capacity(self.text.len() + 32);
        for part in &self.parts {
            match part {
                UrlPart::Text(text) => out.push_str(text),
                UrlPart::Value {
                    placeholder,
                    in_path,
                } => {
                    let value = values
                        .iter()
                        .find(|(p, _)| p == placeholder)
                        .map(|(_, v)| *v)
                        .ok_or_else(|| {
                            format!("no value for `{{{}}}` in {}", placeholder.name(), self.text)
                        })?;
                    if *in_path && matches!(value, "" | "." | "..") {
                        return Err(format!(
                            "{value:?} cannot be the `{{{}}}` in a URL path",
                            placeholder.name()
                        ));
                    }
                    out.push_str(&percent_encode(value));
                }
            }
        }
        Ok(out)
    }
}

/// Percent-encodes every byte but the RFC 3986 unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`): safe in a path segment and in a query value alike.
pub fn percent_encode(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
    out
}

/// A JSON pointer (RFC 6901): `""` is the whole document, `/a/b` the member `b` of
/// the member `a`; `~1` stands for `/` and `~0` for `~` in a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPointer {
    text: String,
    tokens: Vec<String>,
}

/// A syntax error in a JSON pointer: the byte offset in its text and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointerError {
    pub offset: usize,
    pub message: String,
}

impl JsonPointer {
    pub fn parse(text: &str) -> Result<JsonPointer, PointerError> {
        if text.is_empty() {
            return Ok(JsonPointer {
                text: String::new(),
                tokens: Vec::new(),
            });
        }
        if !text.starts_with('/') {
            return Err(PointerError {
                offset: 0,
                message: format!("a JSON pointer starts with `/` (RFC 6901); write \"/{text}\""),
            });
        }
        let bytes = text.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'~' && !matches!(bytes.get(i + 1), Some(b'0' | b'1')) {
                return Err(PointerError {
                    offset: i,
                    message: "`~` in a JSON pointer must be followed by 0 (for `~`) or 1 (for `/`)"
                        .into(),
                });
            }
        }
        let tokens = text[1..]
            .split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect();
        Ok(JsonPointer {
            text: text.to_string(),
            tokens,
        })
    }

    /// The pointer as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The whole document (`""`).
    pub fn root() -> JsonPointer {
        JsonPointer {
            text: String::new(),
            tokens: Vec::new(),
        }
    }

    /// Whether it points at the whole document.
    pub fn is_root(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The value it points at, if there is one.
    pub fn get<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        doc.pointer(&self.text)
    }

    /// Puts `value` where it points, creating the objects on the way (a `null`
    /// counts as an empty object). Fails when a string, number or list is in the
    /// way, or a list index is not one of the list's.
    pub fn set(&self, doc: &mut Value, value: Value) -> Result<(), String> {
        let Some((last, parents)) = self.tokens.split_last() else {
            *doc = value;
            return Ok(());
        };
        let mut at = doc;
        for token in parents {
            at = self.step(at, token)?;
        }
        if at.is_null() {
            *at = Value::Object(Map::new());
        }
        match at {
            Value::Object(map) => {
                map.insert(last.clone(), value);
                Ok(())
            }
            Value::Array(items) => match list_index(last, items.len()) {
                Some(i) => {
                    items[i] = value;
                    Ok(())
                }
                None => Err(self.blocked(last, "a list")),
            },
            other => Err(self.blocked(last, json_kind(other))),
        }
    }

    fn step<'v>(&self, at: &'v mut Value, token: &str) -> Result<&'v mut Value, String> {
        if at.is_null() {
            *at = Value::Object(Map::new());
        }
        match at {
            Value::Object(map) => Ok(map.entry(token.to_string()).or_insert(Value::Null)),
            Value::Array(items) => match list_index(token, items.len()) {
                Some(i) => Ok(&mut items[i]),
                None => Err(self.blocked(token, "a list")),
            },
            other => Err(self.blocked(token, json_kind(other))),
        }
    }

    fn blocked(&self, token: &str, kind: &str) -> String {
        format!(
            "cannot write {}: `{token}` would be inside {kind}",
            self.text
        )
    }

    /// Whether writing one would overwrite the other (equal, or one inside the other).
    fn overlaps(&self, other: &JsonPointer) -> bool {
        let n = self.tokens.len().min(other.tokens.len());
        self.tokens[..n] == other.tokens[..n]
    }
}

fn list_index(token: &str, len: usize) -> Option<usize> {
    let valid = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    token.parse().ok().filter(|i| valid && *i < len)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
