//! The `[api]` table of a generic ticket system's mapping file: how the bridge talks
//! to an in-house REST ticket API that has no connector of its own. Endpoints are URL
//! templates (`/api/tickets/{key}`) whose placeholders are checked when the file is
//! loaded; where values sit in the JSON is given as JSON pointers (RFC 6901), syntax
//! checked too. This module owns the raw serde shape, its checks (every problem at
//! its line:column), the checks of the `[[field]]`s against it, and the checked
//! [`GenericApi`] the generic connector consumes. Rendering a template
//! percent-encodes every value, so no ticket key or incident id can change a path or
//! add a query parameter.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use super::load::string_position;
use crate::diag::Reporter;
use crate::vocab::{self, SourceKind, TicketKind};

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
}

impl GenericApi {
    /// Where a ticket object holds the attribute, if `[api.fields]` names it.
    pub fn field(&self, attr: &str) -> Option<&JsonPointer> {
        self.fields
            .iter()
            .find(|(name, _)| name == attr)
            .map(|(_, pointer)| pointer)
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

// ---------------------------------------------------------------------------------
// Raw shape: what serde reads. Everything optional, so that a missing key is one of
// our diagnostics with a hint.

type RawMap = Spanned<BTreeMap<Spanned<String>, Spanned<String>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    create: Option<Spanned<RawEndpoint>>,
    get: Option<Spanned<RawEndpoint>>,
    update: Option<Spanned<RawEndpoint>>,
    search: Option<Spanned<RawEndpoint>>,
    find: Option<Spanned<RawEndpoint>>,
    comment: Option<Spanned<RawCommentEndpoint>>,
    items: Option<Spanned<String>>,
    next: Option<Spanned<String>>,
    id: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    url_template: Option<Spanned<String>>,
    created: Option<Spanned<String>>,
    updated: Option<Spanned<String>>,
    version: Option<Spanned<String>>,
    correlation: Option<Spanned<String>>,
    labels: Option<Spanned<String>>,
    comments: Option<Spanned<String>>,
    statuses: Option<Spanned<Vec<Spanned<String>>>>,
    fields: Option<RawMap>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    method: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommentEndpoint {
    method: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    text: Option<Spanned<String>>,
    author: Option<Spanned<String>>,
}

/// How one `[[field]]` of the file uses a ticket attribute: what the checks of the
/// fields against `[api]` look at.
pub(super) struct FieldUse<'a> {
    pub ticket: Option<&'a Spanned<String>>,
    pub incident: Option<&'a Spanned<String>>,
    pub template: Option<&'a Spanned<String>>,
    pub flow: Option<&'a Spanned<String>>,
    pub to_ticket: Option<&'a RawMap>,
    pub to_ticket_default: Option<&'a Spanned<String>>,
    pub to_incident: Option<&'a RawMap>,
}

// ---------------------------------------------------------------------------------
// Checking `[api]`.

/// What one endpoint is for, and what it may be.
struct EndpointSpec {
    name: &'static str,
    /// The first is the default.
    methods: &'static [HttpMethod],
    example: &'static str,
    /// More keys the endpoint needs, as the hint for a missing endpoint shows them.
    extra: &'static str,
    purpose: &'static str,
    /// The placeholder its path must hold, and what it stands for there.
    needs: Option<(Placeholder, &'static str)>,
}

const CREATE: EndpointSpec = EndpointSpec {
    name: "create",
    methods: &[HttpMethod::Post],
    example: "/tickets",
    extra: "",
    purpose: "how to open a ticket",
    needs: None,
};
const GET: EndpointSpec = EndpointSpec {
    name: "get",
    methods: &[HttpMethod::Get],
    example: "/tickets/{key}",
    extra: "",
    purpose: "how to read one ticket",
    needs: Some((Placeholder::Key, "the ticket to read")),
};
const UPDATE: EndpointSpec = EndpointSpec {
    name: "update",
    methods: &[HttpMethod::Patch, HttpMethod::Put, HttpMethod::Post],
    example: "/tickets/{key}",
    extra: "",
    purpose: "how to change a ticket",
    needs: Some((Placeholder::Key, "the ticket to change")),
};
const SEARCH: EndpointSpec = EndpointSpec {
    name: "search",
    methods: &[HttpMethod::Get],
    example: "/tickets?updated_since={since}",
    extra: "",
    purpose: "how to list the tickets changed since a time",
    needs: Some((Placeholder::Since, "the time the search starts from")),
};
const FIND: EndpointSpec = EndpointSpec {
    name: "find",
    methods: &[HttpMethod::Get],
    example: "/tickets?external_id={correlation}",
    extra: "",
    purpose: "how to find the ticket of an incident by its correlation id",
    needs: Some((Placeholder::Correlation, "the correlation id to look for")),
};
const COMMENT: EndpointSpec = EndpointSpec {
    name: "comment",
    methods: &[HttpMethod::Post],
    example: "/tickets/{key}/comments",
    extra: ", text = \"/body\"",
    purpose: "how to add a comment to a ticket",
    needs: Some((Placeholder::Key, "the ticket to comment on")),
};

/// Checks `[api]`, reporting every problem; `None` when there was one.
pub(super) fn check(r: &mut Reporter<'_>, text: &str, raw: &Spanned<RawApi>) -> Option<GenericApi> {
    let mut c = ApiChecker {
        r,
        text,
        header: raw.span().start,
        ok: true,
    };
    let api = raw.get_ref();

    // The key first: it decides whether `{id}` can address a ticket.
    let key = api.key.as_ref().and_then(|k| c.pointer(k, "key", false));
    let key_given = api.key.is_some();

    let create = c.endpoint(&CREATE, api.create.as_ref().map(endpoint_parts), key_given);
    let get = c.endpoint(&GET, api.get.as_ref().map(endpoint_parts), key_given);
    let update = c.endpoint(&UPDATE, api.update.as_ref().map(endpoint_parts), key_given);
    let search = c.endpoint(&SEARCH, api.search.as_ref().map(endpoint_parts), key_given);
    let find = c.endpoint(&FIND, api.find.as_ref().map(endpoint_parts), key_given);
    let comment = c.endpoint(
        &COMMENT,
        api.comment.as_ref().map(|e| {
            (
                e.span().start,
                e.get_ref().method.as_ref(),
                e.get_ref().path.as_ref(),
            )
        }),
        key_given,
    );
    let (comment_text, comment_author) = match &api.comment {
        Some(e) => {
            let e_ref = e.get_ref();
            let text = match &e_ref.text {
                Some(t) => c.pointer(t, "comment text", false),
                None => {
                    c.error(
                        e.span().start,
                        "add `text = \"/body\"` to `comment`: where a comment object holds its text",
                    );
                    None
                }
            };
            let author = e_ref
                .author
                .as_ref()
                .map(|a| c.pointer(a, "comment author", false));
            (text, author)
        }
        None => (None, None),
    };

    let items = c.required(
        api.items.as_ref(),
        "items",
        "/items",
        "the list of tickets in a search or find response (\"\" for a bare list)",
        true,
    );
    let next = match &api.next {
        None => Some(NextPage::None),
        Some(n) if n.get_ref().eq_ignore_ascii_case("link") => Some(NextPage::LinkHeader),
        Some(n) => c.pointer(n, "next-page link", false).map(NextPage::Pointer),
    };
    let id = c.required(
        api.id.as_ref(),
        "id",
        "/id",
        "where a ticket object holds its id",
        false,
    );
    let created = c.required(
        api.created.as_ref(),
        "created",
        "/created_at",
        "where a ticket object holds its creation time",
        false,
    );
    let updated = c.required(
        api.updated.as_ref(),
        "updated",
        "/updated_at",
        "where a ticket object holds the time it last changed",
        false,
    );
    let correlation = c.required(
        api.correlation.as_ref(),
        "correlation",
        "/external_id",
        "where the bridge keeps the incident's correlation id on a ticket",
        false,
    );
    let version = api.version.as_ref().map(|v| c.pointer(v, "version", false));
    let labels = api.labels.as_ref().map(|l| c.pointer(l, "labels", false));
    let comments = api
        .comments
        .as_ref()
        .map(|l| c.pointer(l, "comments", false));
    let url = match (&api.url, &api.url_template) {
        (Some(_), Some(t)) => {
            c.error(
                t.span().start,
                "give either `url` (a JSON pointer) or `url_template`, not both",
            );
            None
        }
        (Some(u), None) => c.pointer(u, "url", false).map(TicketUrl::Pointer),
        (None, Some(t)) => c.url_template(t).map(TicketUrl::Template),
        (None, None) => Some(TicketUrl::ApiUrl),
    };
    let statuses = api.statuses.as_ref().map(|s| c.statuses(s));
    let fields = match &api.fields {
        Some(f) => c.fields(f),
        None => {
            c.error(
                c.header,
                "add an [api.fields] table: where a ticket object holds each attribute, e.g. `summary = \"/summary\"`",
            );
            None
        }
    };

    // `labels` is optional: only a given but broken one stops the check.
    let labels_checked = match &labels {
        None => Some(None),
        Some(l) => l.as_ref().map(Some),
    };
    if let (Some(fields), Some(correlation), Some(labels)) = (&fields, &correlation, labels_checked)
    {
        c.separate_places(api, fields, correlation, labels);
    }

    if !c.ok {
        return None;
    }
    Some(GenericApi {
        create: create?,
        get: get?,
        update: update?,
        search: search?,
        find: find?,
        comment: comment?,
        comment_text: comment_text?,
        comment_author: comment_author.flatten(),
        items: items?,
        next: next?,
        id: id?,
        key,
        url: url?,
        created: created?,
        updated: updated?,
        version: version.flatten(),
        correlation: correlation?,
        labels: labels.flatten(),
        comments: comments.flatten(),
        fields: fields?,
        statuses: statuses.flatten(),
    })
}

/// An endpoint's table position, method and path.
type EndpointParts<'a> = (
    usize,
    Option<&'a Spanned<String>>,
    Option<&'a Spanned<String>>,
);

fn endpoint_parts(e: &Spanned<RawEndpoint>) -> EndpointParts<'_> {
    (
        e.span().start,
        e.get_ref().method.as_ref(),
        e.get_ref().path.as_ref(),
    )
}

struct ApiChecker<'r, 'a, 't> {
    r: &'r mut Reporter<'a>,
    text: &'t str,
    /// The `[api]` header: where a missing key is reported.
    header: usize,
    ok: bool,
}

impl ApiChecker<'_, '_, '_> {
    fn error(&mut self, at: usize, message: impl Into<String>) {
        self.r.at(at, message);
        self.ok = false;
    }

    /// An error at byte `offset` of a string value.
    fn error_in(&mut self, s: &Spanned<String>, offset: usize, message: impl Into<String>) {
        let at = string_position(self.text, s.span(), s.get_ref(), offset);
        self.error(at, message);
    }

    fn pointer(&mut self, s: &Spanned<String>, what: &str, root_ok: bool) -> Option<JsonPointer> {
        match JsonPointer::parse(s.get_ref()) {
            Ok(p) if p.is_root() && !root_ok => {
                self.error(
                    s.span().start,
                    format!(
                        "\"\" points at the whole object, which cannot be the {what}; point at the value inside it"
                    ),
                );
                None
            }
            Ok(p) => Some(p),
            Err(e) => {
                self.error_in(s, e.offset, e.message);
                None
            }
        }
    }

    fn required(
        &mut self,
        raw: Option<&Spanned<String>>,
        key: &str,
        example: &str,
        purpose: &str,
        root_ok: bool,
    ) -> Option<JsonPointer> {
        match raw {
            Some(s) => self.pointer(s, key, root_ok),
            None => {
                self.error(
                    self.header,
                    format!("add `{key} = \"{example}\"` to [api]: {purpose}"),
                );
                None
            }
        }
    }

    fn endpoint(
        &mut self,
        spec: &EndpointSpec,
        raw: Option<EndpointParts<'_>>,
        key_given: bool,
    ) -> Option<Endpoint> {
        let Some((at, method, path)) = raw else {
            self.error(
                self.header,
                format!(
                    "add `{} = {{ path = \"{}\"{} }}` to [api]: {}",
                    spec.name, spec.example, spec.extra, spec.purpose
                ),
            );
            return None;
        };
        let method = match method {
            None => Some(spec.methods[0]),
            Some(m) => {
                let parsed = HttpMethod::parse(m.get_ref()).filter(|x| spec.methods.contains(x));
                if parsed.is_none() {
                    let allowed: Vec<String> = spec
                        .methods
                        .iter()
                        .map(|x| format!("\"{}\"", x.as_str()))
                        .collect();
                    self.error(
                        m.span().start,
                        format!(
                            "`{}` is not a method `{}` can use; write {}",
                            m.get_ref(),
                            spec.name,
                            or_list(&allowed)
                        ),
                    );
                }
                parsed
            }
        };
        let Some(path) = path else {
            self.error(
                at,
                format!(
                    "add `path = \"{}\"`: the URL of the {} request, relative to the base_url",
                    spec.example, spec.name
                ),
            );
            return None;
        };
        let offers: Vec<Placeholder> = match spec.needs {
            None => Vec::new(),
            Some((Placeholder::Key, _)) if !key_given => vec![Placeholder::Key, Placeholder::Id],
            Some((p, _)) => vec![p],
        };
        let template = match parse_template(path.get_ref(), &offers, false) {
            Ok(t) => t,
            Err(e) => {
                let message = match e.unavailable {
                    Some(Placeholder::Id) if offers.contains(&Placeholder::Key) => {
                        "`{id}` is not available here: the bridge knows a ticket by its key (`key` is set in [api]), so write `{key}`; or remove `key` so that the id is the key".to_string()
                    }
                    Some(p) => format!(
                        "`{{{}}}` is not available in the {} path; {}",
                        p.name(),
                        spec.name,
                        offered(&offers)
                    ),
                    None => e.message,
                };
                self.error_in(path, e.offset, message);
                return None;
            }
        };
        if let Some((needed, meaning)) = spec.needs {
            let has = template.uses(needed)
                || (needed == Placeholder::Key && !key_given && template.uses(Placeholder::Id));
            if !has {
                self.error(
                    path.span().start,
                    format!(
                        "the {} path needs `{{{}}}`: {meaning}",
                        spec.name,
                        needed.name()
                    ),
                );
                return None;
            }
        }
        Some(Endpoint {
            method: method?,
            path: template,
        })
    }

    /// Every value the bridge writes (the fields, the correlation id, the labels)
    /// needs a place of its own: no two pointers equal, or one inside the other.
    fn separate_places(
        &mut self,
        raw: &RawApi,
        fields: &[(String, JsonPointer)],
        correlation: &JsonPointer,
        labels: Option<&JsonPointer>,
    ) {
        let at = |s: Option<&Spanned<String>>| s.map_or(self.header, |s| s.span().start);
        let mut written: Vec<(&str, &JsonPointer, usize)> = Vec::new();
        for (name, pointer) in fields {
            let raw_value = raw.fields.as_ref().and_then(|m| {
                m.get_ref()
                    .iter()
                    .find(|(k, _)| k.get_ref() == name)
                    .map(|(_, v)| v)
            });
            written.push((name, pointer, at(raw_value)));
        }
        written.push(("correlation", correlation, at(raw.correlation.as_ref())));
        if let Some(labels) = labels {
            written.push(("labels", labels, at(raw.labels.as_ref())));
        }
        written.sort_by_key(|(_, _, at)| *at);
        for (i, (name, pointer, at)) in written.iter().enumerate() {
            let earlier = written[..i].iter().find(|(_, p, _)| p.overlaps(pointer));
            if let Some((other, _, other_at)) = earlier {
                let (line, _) = crate::diag::line_col(self.text, *other_at);
                self.error(
                    *at,
                    format!(
                        "`{name}` is written at {}, where `{other}` (line {line}) is written too; give each value its own place",
                        pointer.as_str()
                    ),
                );
            }
        }
    }

    fn url_template(&mut self, s: &Spanned<String>) -> Option<UrlTemplate> {
        let offers = [Placeholder::Key, Placeholder::Id];
        match parse_template(s.get_ref(), &offers, true) {
            Ok(t) => Some(t),
            Err(e) => {
                let message = match e.unavailable {
                    Some(p) => format!(
                        "`{{{}}}` is not available in `url_template`; {}",
                        p.name(),
                        offered(&offers)
                    ),
                    None => e.message,
                };
                self.error_in(s, e.offset, message);
                None
            }
        }
    }

    fn statuses(&mut self, raw: &Spanned<Vec<Spanned<String>>>) -> Option<Vec<String>> {
        if raw.get_ref().is_empty() {
            self.error(
                raw.span().start,
                "list at least one status value, or remove `statuses`",
            );
            return None;
        }
        let mut ok = true;
        let mut values: Vec<String> = Vec::new();
        for s in raw.get_ref() {
            let value = s.get_ref();
            if value.trim().is_empty() {
                self.error(s.span().start, "a status value cannot be empty");
                ok = false;
            } else if values.iter().any(|v| v.eq_ignore_ascii_case(value)) {
                self.error(
                    s.span().start,
                    format!(
                        "`{value}` is listed twice in statuses (values match case-insensitively); keep one"
                    ),
                );
                ok = false;
            } else {
                values.push(value.clone());
            }
        }
        ok.then_some(values)
    }

    fn fields(&mut self, raw: &RawMap) -> Option<Vec<(String, JsonPointer)>> {
        let attrs = vocab::ticket_attrs(TicketKind::Generic);
        let mut items: Vec<_> = raw.get_ref().iter().collect();
        items.sort_by_key(|(k, _)| k.span().start);
        let mut ok = true;
        let mut fields = Vec::new();
        for (name, pointer) in items {
            if vocab::find(attrs, name.get_ref()).is_none() {
                self.error(
                    name.span().start,
                    format!(
                        "unknown generic attribute `{}`; known attributes: {}",
                        name.get_ref(),
                        attrs.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
                    ),
                );
                ok = false;
                continue;
            }
            match self.pointer(pointer, name.get_ref(), false) {
                Some(p) => fields.push((name.get_ref().clone(), p)),
                None => ok = false,
            }
        }
        ok.then_some(fields)
    }
}

fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn offered(offers: &[Placeholder]) -> String {
    if offers.is_empty() {
        return "it takes no placeholder".into();
    }
    let names: Vec<String> = offers
        .iter()
        .map(|p| format!("`{{{}}}`", p.name()))
        .collect();
    format!("it offers {}", or_list(&names))
}

/// A problem in a URL template: the byte offset in it and what is wrong.
struct TemplateProblem {
    offset: usize,
    message: String,
    /// A known placeholder the template may not use here.
    unavailable: Option<Placeholder>,
}

fn problem(offset: usize, message: impl Into<String>) -> TemplateProblem {
    TemplateProblem {
        offset,
        message: message.into(),
        unavailable: None,
    }
}

/// Parses a URL template: a path relative to the base URL (starting with `/`), or
/// with `absolute` an `http(s)://` URL. Placeholders must be among `offers`.
fn parse_template(
    text: &str,
    offers: &[Placeholder],
    absolute: bool,
) -> Result<UrlTemplate, TemplateProblem> {
    let mut start = 0;
    if absolute {
        let lower = text.to_ascii_lowercase();
        start = if lower.starts_with("https://") {
            8
        } else if lower.starts_with("http://") {
            7
        } else {
            return Err(problem(
                0,
                "write an absolute http:// or https:// URL, e.g. \"https://helpdesk.example.com/tickets/{key}\"",
            ));
        };
    } else if !text.starts_with('/') {
        return Err(problem(
            0,
            "write the path relative to the ticket system's base_url, starting with `/`",
        ));
    } else if text.starts_with("//") {
        return Err(problem(
            0,
            "a path cannot start with `//` (that would name another host); write a single `/`",
        ));
    }
    let mut parts = Vec::new();
    let mut literal = String::from(&text[..start]);
    // An absolute URL's host comes before its path: nothing is in the path yet.
    let mut in_path = !absolute;
    let mut in_query = false;
    let bytes = text.as_bytes();
    let mut i = start;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'{' if bytes.get(i + 1) == Some(&b'{') => {
                literal.push_str("%7B");
                i += 2;
                continue;
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => {
                literal.push_str("%7D");
                i += 2;
                continue;
            }
            b'}' => {
                return Err(problem(
                    i,
                    "unmatched `}` in the URL (write `}}` for a literal brace)",
                ));
            }
            b'{' => {
                let Some(end) = text[i + 1..].find('}') else {
                    return Err(problem(
                        i,
                        "unclosed `{` in the URL (write `{{` for a literal brace)",
                    ));
                };
                let name = text[i + 1..i + 1 + end].trim();
                let Some(placeholder) = Placeholder::ALL.into_iter().find(|p| p.name() == name)
                else {
                    let all: Vec<String> = Placeholder::ALL
                        .iter()
                        .map(|p| format!("`{{{}}}`", p.name()))
                        .collect();
                    return Err(problem(
                        i,
                        format!(
                            "unknown placeholder `{{{name}}}`; URL templates know {}",
                            or_list(&all)
                        ),
                    ));
                };
                if !offers.contains(&placeholder) {
                    return Err(TemplateProblem {
                        offset: i,
                        message: String::new(),
                        unavailable: Some(placeholder),
                    });
                }
                if !literal.is_empty() {
                    parts.push(UrlPart::Text(std::mem::take(&mut literal)));
                }
                parts.push(UrlPart::Value {
                    placeholder,
                    in_path: in_path && !in_query,
                });
                i += end + 2;
                continue;
            }
            b'#' => {
                return Err(problem(
                    i,
                    "remove the `#` fragment: it is never sent to the server",
                ));
            }
            b'%' => {
                let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return Err(problem(
                        i,
                        "`%` must start a percent-encoded byte such as %20; write %25 for a literal `%`",
                    ));
                }
            }
            b'?' => in_query = true,
            b'/' => in_path = true,
            _ if b.is_ascii_whitespace() || b.is_ascii_control() => {
                return Err(problem(
                    i,
                    "a URL cannot hold spaces or control characters; percent-encode them (a space is %20)",
                ));
            }
            _ if !b.is_ascii() => {
                return Err(problem(
                    i,
                    "percent-encode non-ASCII characters in a URL (UTF-8 bytes, e.g. é is %C3%A9)",
                ));
            }
            _ => {}
        }
        literal.push(b as char);
        i += 1;
    }
    if !literal.is_empty() {
        parts.push(UrlPart::Text(literal));
    }
    Ok(UrlTemplate {
        text: text.to_string(),
        parts,
    })
}

// ---------------------------------------------------------------------------------
// Checking the `[[field]]`s and `[create]` against `[api]`.

/// Checks that every ticket attribute the fields use has a place in `[api.fields]`,
/// that status values are among `statuses` when those are listed, and that labels
/// have a place when new tickets get some. `false` when it reported a problem.
pub(super) fn check_uses(
    r: &mut Reporter<'_>,
    api: &GenericApi,
    source: Option<SourceKind>,
    uses: &[FieldUse<'_>],
    create_labels: &[Spanned<String>],
) -> bool {
    let before = r.diagnostics.len();
    let attrs = vocab::ticket_attrs(TicketKind::Generic);
    for u in uses {
        let Some(ticket) = u.ticket else { continue };
        let attr = ticket.get_ref().as_str();
        if vocab::find(attrs, attr).is_none() {
            continue; // reported by the field checks
        }
        if api.field(attr).is_none() {
            r.at(
                ticket.span().start,
                format!(
                    "the ticket attribute `{attr}` has no place in [api.fields]; add `{attr} = \"/{attr}\"` there"
                ),
            );
            continue;
        }
        if attr == "status"
            && let Some(statuses) = &api.statuses
        {
            check_status_use(r, statuses, source, u, ticket);
        }
    }
    if api.labels.is_none()
        && let Some(first) = create_labels.first()
    {
        r.at(
            first.span().start,
            "new tickets get labels, but [api] has no `labels`; add `labels = \"/labels\"` (where a ticket object keeps its list of labels) or remove these",
        );
    }
    r.diagnostics.len() == before
}

fn check_status_use(
    r: &mut Reporter<'_>,
    statuses: &[String],
    source: Option<SourceKind>,
    u: &FieldUse<'_>,
    ticket: &Spanned<String>,
) {
    let listed = statuses.join(", ");
    let known = |v: &str| statuses.iter().any(|s| s.eq_ignore_ascii_case(v));
    let mut written: Vec<&Spanned<String>> = Vec::new();
    if let Some(map) = u.to_ticket {
        written.extend(map.get_ref().values());
    }
    written.extend(u.to_ticket_default);
    written.sort_by_key(|v| v.span().start);
    for v in written {
        if v.get_ref().is_empty() {
            r.at(
                v.span().start,
                format!("the ticket status cannot be left empty; map to one of the [api] statuses: {listed}"),
            );
        } else if !known(v.get_ref()) {
            r.at(
                v.span().start,
                format!(
                    "`{}` is not among the [api] statuses: {listed}",
                    v.get_ref()
                ),
            );
        }
    }
    if let Some(map) = u.to_incident {
        let mut keys: Vec<&Spanned<String>> = map.get_ref().keys().collect();
        keys.sort_by_key(|k| k.span().start);
        for k in keys {
            if !known(k.get_ref()) {
                r.at(
                    k.span().start,
                    format!(
                        "`{}` is not among the [api] statuses: {listed}",
                        k.get_ref()
                    ),
                );
            }
        }
    }

    // A value copied (or rendered) into the status must be one of them too.
    let flows_to_ticket = u
        .flow
        .is_none_or(|f| matches!(f.get_ref().as_str(), "both" | "to_ticket"));
    if !flows_to_ticket || u.to_ticket.is_some() || u.to_ticket_default.is_some() {
        return;
    }
    match (u.incident, u.template) {
        (None, Some(_)) => r.at(
            ticket.span().start,
            format!(
                "a template renders free text, but the ticket status takes only the [api] statuses: {listed}; map an incident attribute with a to_ticket map instead"
            ),
        ),
        (Some(incident), None) => {
            let values = source
                .and_then(|k| vocab::find(vocab::incident_attrs(k), incident.get_ref()))
                .map(|spec| spec.values);
            match values {
                // An unknown attribute is reported by the field checks.
                None => {}
                Some(Some(values)) if values.iter().all(|v| known(v)) => {}
                Some(_) => r.at(
                    ticket.span().start,
                    format!(
                        "add a to_ticket map: the incident {} values cannot all be copied to the ticket status, which takes only the [api] statuses: {listed}",
                        incident.get_ref()
                    ),
                ),
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::super::parse;
    use super::*;
    use crate::mapping::Flow;

    const GENERIC: &str = include_str!("../../../mappings/generic.toml");

    /// A small valid Sentinel → generic mapping; tests edit its lines.
    const BASE: &str = r#"version = 1
source = "sentinel"
tickets = "generic"

[[field]]
template = "{incident.title}"
ticket = "summary"

[api]
create = { path = "/t" }
get = { path = "/t/{key}" }
update = { path = "/t/{key}" }
search = { path = "/t?since={since}" }
find = { path = "/t?c={correlation}" }
comment = { path = "/t/{key}/c", text = "/body" }
items = "/items"
id = "/id"
key = "/key"
created = "/created"
updated = "/updated"
correlation = "/ext"

[api.fields]
summary = "/summary"
"#;

    /// BASE with `from` replaced by `to` (which must be there).
    fn base_with(from: &str, to: &str) -> String {
        assert!(BASE.contains(from), "{from}");
        BASE.replacen(from, to, 1)
    }

    fn errors(text: &str) -> Vec<String> {
        let err = parse(Path::new("m.toml"), text).expect_err("the mapping should be refused");
        err.diagnostics
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .collect()
    }

    fn check(text: &str, expected: &[&str]) {
        assert_eq!(errors(text), expected, "for mapping:\n{text}");
    }

    #[test]
    fn shipped_generic_mapping_loads() {
        let m =
            parse(Path::new("mappings/generic.toml"), GENERIC).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.source_kind, SourceKind::Sentinel);
        assert_eq!(m.ticket_kind, TicketKind::Generic);
        let api = m.api.as_ref().expect("a generic mapping has [api]");
        assert_eq!(api.create.method, HttpMethod::Post);
        assert_eq!(api.update.method, HttpMethod::Patch);
        assert_eq!(api.get.path.as_str(), "/api/tickets/{key}");
        assert!(api.search.path.uses(Placeholder::Since));
        assert!(api.find.path.uses(Placeholder::Correlation));
        assert_eq!(api.comment_text.as_str(), "/body");
        assert_eq!(
            api.next,
            NextPage::Pointer(JsonPointer::parse("/next").unwrap())
        );
        assert_eq!(api.key.as_ref().map(JsonPointer::as_str), Some("/key"));
        assert_eq!(
            api.url,
            TicketUrl::Pointer(JsonPointer::parse("/web_url").unwrap())
        );
        assert_eq!(api.correlation.as_str(), "/external_id");
        let fields: Vec<&str> = api.fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            fields,
            [
                "summary",
                "description",
                "status",
                "priority",
                "resolution",
                "assignee"
            ]
        );
        assert_eq!(api.canonical_status("In_Progress"), Some("in_progress"));
        assert_eq!(api.canonical_status("done"), None);

        let rule = |name: &str| m.fields.iter().find(|f| f.name == name).unwrap();
        assert_eq!(
            rule("status").map_to_ticket(Some("Active")).as_deref(),
            Some("in_progress")
        );
        assert_eq!(
            rule("status").map_to_incident(Some("closed")).as_deref(),
            Some("Closed")
        );
        // Every resolution gives a classification and the reason that goes with it.
        for (resolution, classification, reason) in [
            ("confirmed", "TruePositive", "SuspiciousActivity"),
            (
                "expected_activity",
                "BenignPositive",
                "SuspiciousButExpected",
            ),
            ("false_positive", "FalsePositive", "IncorrectAlertLogic"),
            ("inaccurate_data", "FalsePositive", "InaccurateData"),
            ("fixed", "TruePositive", "SuspiciousActivity"),
        ] {
            assert_eq!(
                rule("classification")
                    .map_to_incident(Some(resolution))
                    .as_deref(),
                Some(classification),
                "{resolution}"
            );
            assert_eq!(
                rule("classification_reason")
                    .map_to_incident(Some(resolution))
                    .as_deref(),
                Some(reason),
                "{resolution}"
            );
        }
        assert_eq!(
            rule("classification").map_to_ticket(Some("Undetermined")),
            None
        );
        assert_eq!(rule("classification_reason").flow, Flow::ToIncident);
        assert_eq!(m.skip_create_statuses, ["Closed"]);
        assert_eq!(m.labels.len(), 2);
    }

    #[test]
    fn the_readme_shows_what_the_checker_says() {
        let readme = include_str!("../../../mappings/README.md");
        let broken = GENERIC
            .replacen("/api/tickets/{key}\" }", "/api/tickets/{ticket}\" }", 1)
            .replacen("updated_since={since}", "updated_since=today", 1)
            .replacen("id = \"/id\"", "id = \"id\"", 1);
        let err = parse(Path::new("generic.toml"), &broken).unwrap_err();
        assert_eq!(err.diagnostics.len(), 3, "{err}");
        for line in err.to_string().lines() {
            assert!(
                readme.contains(line),
                "mappings/README.md should show: {line}"
            );
        }
    }

    #[test]
    fn a_graph_mapping_with_a_minimal_api_loads() {
        let text = "version = 1\nsource = \"graph\"\ntickets = \"generic\"\n[[field]]\ntemplate = \"{incident.title}\"\nticket = \"summary\"\n[api]\ncreate = { path = \"/t\" }\nget = { path = \"/t/{id}\" }\nupdate = { path = \"/t/{id}\" }\nsearch = { path = \"/t?since={since}\" }\nfind = { path = \"/t?c={correlation}\" }\ncomment = { path = \"/t/{id}/c\", text = \"/body\" }\nitems = \"\"\nid = \"/id\"\ncreated = \"/created\"\nupdated = \"/updated\"\ncorrelation = \"/ext\"\n[api.fields]\nsummary = \"/summary\"\n";
        let m = parse(Path::new("m.toml"), text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.source_kind, SourceKind::Graph);
        let api = m.api.unwrap();
        assert!(api.items.is_root() && api.key.is_none());
    }

    #[test]
    fn the_smallest_api_takes_the_defaults() {
        let m = parse(Path::new("m.toml"), BASE).unwrap_or_else(|e| panic!("{e}"));
        let api = m.api.unwrap();
        assert_eq!(api.get.method, HttpMethod::Get);
        assert_eq!(api.update.method, HttpMethod::Patch);
        assert_eq!(api.comment.method, HttpMethod::Post);
        assert_eq!(api.next, NextPage::None);
        assert_eq!(api.url, TicketUrl::ApiUrl);
        assert_eq!(api.statuses, None);
        assert_eq!(api.labels, None);
        assert_eq!(api.canonical_status("anything"), Some("anything"));
    }

    #[test]
    fn api_belongs_to_generic_mappings_only() {
        check(
            "version = 1\nsource = \"graph\"\ntickets = \"jira\"\n\n[[field]]\ntemplate = \"{incident.title}\"\nticket = \"summary\"\n\n[api]\nitems = \"/items\"\n",
            &[
                "9:1: [api] describes a generic ticket system's REST API, and this mapping is for tickets = \"jira\"; remove it",
            ],
        );
        let without_api = &BASE[..BASE.find("[api]").unwrap()];
        check(
            without_api,
            &[
                "3:11: add an [api] table: a generic ticket system is described by its endpoints and JSON pointers (see mappings/README.md)",
            ],
        );
    }

    #[test]
    fn missing_keys_are_named_at_the_api_header() {
        let text = base_with("find = { path = \"/t?c={correlation}\" }\n", "")
            .replacen("id = \"/id\"\n", "", 1)
            .replacen(
                "comment = { path = \"/t/{key}/c\", text = \"/body\" }",
                "comment = { path = \"/t/{key}/c\" }",
                1,
            )
            .replacen("\n[api.fields]\nsummary = \"/summary\"\n", "", 1);
        check(
            &text,
            &[
                "9:1: add `find = { path = \"/tickets?external_id={correlation}\" }` to [api]: how to find the ticket of an incident by its correlation id",
                "9:1: add `id = \"/id\"` to [api]: where a ticket object holds its id",
                "9:1: add an [api.fields] table: where a ticket object holds each attribute, e.g. `summary = \"/summary\"`",
                "14:11: add `text = \"/body\"` to `comment`: where a comment object holds its text",
            ],
        );
        check(
            &base_with(
                "get = { path = \"/t/{key}\" }",
                "get = { method = \"GET\" }",
            ),
            &[
                "11:7: add `path = \"/tickets/{key}\"`: the URL of the get request, relative to the base_url",
            ],
        );
        check(
            &base_with("items = \"/items\"", "items = \"/items\"\npage = 2"),
            &[
                "17:1: unknown key `page`, expected one of `create`, `get`, `update`, `search`, `find`, `comment`, `items`, `next`, `id`, `key`, `url`, `url_template`, `created`, `updated`, `version`, `correlation`, `labels`, `comments`, `statuses`, `fields`",
            ],
        );
    }

    #[test]
    fn bad_pointers_are_reported_where_they_go_wrong() {
        check(
            &base_with("id = \"/id\"", "id = \"id\"")
                .replacen("updated = \"/updated\"", "updated = \"/meta/up~2dated\"", 1)
                .replacen("created = \"/created\"", "created = \"\"", 1),
            &[
                "17:7: a JSON pointer starts with `/` (RFC 6901); write \"/id\"",
                "19:11: \"\" points at the whole object, which cannot be the created; point at the value inside it",
                "20:20: `~` in a JSON pointer must be followed by 0 (for `~`) or 1 (for `/`)",
            ],
        );
        check(
            &base_with(
                "summary = \"/summary\"",
                "summary = \"/s\"\nprio = \"/p\"\nstatus = \"s\"",
            ),
            &[
                "25:1: unknown generic attribute `prio`; known attributes: summary, description, status, priority, resolution, assignee",
                "26:11: a JSON pointer starts with `/` (RFC 6901); write \"/s\"",
            ],
        );
        // The root is fine for the list of items: a bare JSON array.
        parse(
            Path::new("m.toml"),
            &base_with("items = \"/items\"", "items = \"\""),
        )
        .unwrap();
    }

    #[test]
    fn placeholders_are_checked_in_every_path() {
        check(
            &base_with(
                "get = { path = \"/t/{key}\" }",
                "get = { path = \"/t/{ticket}\" }",
            )
            .replacen(
                "search = { path = \"/t?since={since}\" }",
                "search = { path = \"/t?from={key}\" }",
                1,
            )
            .replacen(
                "find = { path = \"/t?c={correlation}\" }",
                "find = { path = \"/t?c=x\" }",
                1,
            )
            .replacen(
                "update = { path = \"/t/{key}\" }",
                "update = { path = \"/t/{id}\" }",
                1,
            ),
            &[
                "11:20: unknown placeholder `{ticket}`; URL templates know `{id}`, `{key}`, `{since}` or `{correlation}`",
                "12:23: `{id}` is not available here: the bridge knows a ticket by its key (`key` is set in [api]), so write `{key}`; or remove `key` so that the id is the key",
                "13:28: `{key}` is not available in the search path; it offers `{since}`",
                "14:17: the find path needs `{correlation}`: the correlation id to look for",
            ],
        );
        // Without a `key`, the id is the key and `{id}` addresses a ticket.
        let text = base_with("key = \"/key\"\n", "").replacen(
            "get = { path = \"/t/{key}\" }",
            "get = { path = \"/t/{id}\" }",
            1,
        );
        let m = parse(Path::new("m.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
        assert!(m.api.unwrap().get.path.uses(Placeholder::Id));
        check(
            &base_with(
                "create = { path = \"/t\" }",
                "create = { path = \"t/{key}\" }",
            )
            .replacen(
                "get = { path = \"/t/{key}\" }",
                "get = { path = \"//evil.example/{key}\" }",
                1,
            )
            .replacen(
                "comment = { path = \"/t/{key}/c\",",
                "comment = { path = \"/t/{key}/c d#x\",",
                1,
            )
            .replacen(
                "update = { path = \"/t/{key}\" }",
                "update = { path = \"/t/{key}%zz\" }",
                1,
            ),
            &[
                "10:20: write the path relative to the ticket system's base_url, starting with `/`",
                "11:17: a path cannot start with `//` (that would name another host); write a single `/`",
                "12:28: `%` must start a percent-encoded byte such as %20; write %25 for a literal `%`",
                "15:31: a URL cannot hold spaces or control characters; percent-encode them (a space is %20)",
            ],
        );
    }

    #[test]
    fn methods_are_checked_per_endpoint() {
        check(
            &base_with(
                "create = { path = \"/t\" }",
                "create = { method = \"PUT\", path = \"/t\" }",
            )
            .replacen(
                "update = { path = \"/t/{key}\" }",
                "update = { method = \"fetch\", path = \"/t/{key}\" }",
                1,
            ),
            &[
                "10:21: `PUT` is not a method `create` can use; write \"POST\"",
                "12:21: `fetch` is not a method `update` can use; write \"PATCH\", \"PUT\" or \"POST\"",
            ],
        );
        let m = parse(
            Path::new("m.toml"),
            &base_with(
                "update = { path = \"/t/{key}\" }",
                "update = { method = \"put\", path = \"/t/{key}\" }",
            ),
        )
        .unwrap();
        assert_eq!(m.api.unwrap().update.method, HttpMethod::Put);
    }

    #[test]
    fn status_values_must_be_among_the_listed_ones() {
        let fields = "\n[[field]]\nincident = \"status\"\nticket = \"status\"\nto_incident_default = \"Active\"\nto_ticket = { New = \"open\", Active = \"working\", Closed = \"done\" }\nto_incident = { open = \"New\", finished = \"Closed\" }\n";
        let text = base_with(
            "[api]\n",
            &format!("{fields}\n[api]\nstatuses = [\"open\", \"Done\", \"OPEN\"]\n"),
        )
        .replacen(
            "summary = \"/summary\"",
            "summary = \"/summary\"\nstatus = \"/status\"",
            1,
        );
        check(
            &text,
            &[
                "18:29: `OPEN` is listed twice in statuses (values match case-insensitively); keep one",
            ],
        );
        let text = text.replacen(", \"OPEN\"]", "]", 1);
        check(
            &text,
            &[
                "14:38: `working` is not among the [api] statuses: open, Done",
                "15:31: `finished` is not among the [api] statuses: open, Done",
            ],
        );
        // Copying a Sentinel status into a listed set needs a map.
        let copy = base_with("[api]\n", "\n[[field]]\nincident = \"status\"\nticket = \"status\"\nflow = \"to_ticket\"\n\n[api]\nstatuses = [\"open\"]\n")
            .replacen("summary = \"/summary\"", "summary = \"/summary\"\nstatus = \"/status\"", 1);
        check(
            &copy,
            &[
                "12:10: add a to_ticket map: the incident status values cannot all be copied to the ticket status, which takes only the [api] statuses: open",
            ],
        );
        // A set that holds every Sentinel status can take a copy.
        parse(
            Path::new("m.toml"),
            &copy.replacen("[\"open\"]", "[\"new\", \"active\", \"closed\"]", 1),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn fields_need_a_place_in_the_api() {
        check(
            &base_with(
                "[api]\n",
                "\n[[field]]\nincident = \"assigned_to\"\nticket = \"assignee\"\n\n[create]\nlabels = [\"soc\"]\n\n[api]\n",
            ),
            &[
                "12:10: the ticket attribute `assignee` has no place in [api.fields]; add `assignee = \"/assignee\"` there",
                "15:11: new tickets get labels, but [api] has no `labels`; add `labels = \"/labels\"` (where a ticket object keeps its list of labels) or remove these",
            ],
        );
        check(
            &base_with(
                "correlation = \"/ext\"",
                "correlation = \"/summary/x\"\nlabels = \"/ext\"",
            )
            .replacen(
                "summary = \"/summary\"",
                "summary = \"/summary\"\ndescription = \"/ext\"",
                1,
            ),
            &[
                "25:11: `summary` is written at /summary, where `correlation` (line 21) is written too; give each value its own place",
                "26:15: `description` is written at /ext, where `labels` (line 22) is written too; give each value its own place",
            ],
        );
        check(
            &base_with("summary = \"/summary\"", "summary = \"/ext/s\""),
            &[
                "24:11: `summary` is written at /ext/s, where `correlation` (line 21) is written too; give each value its own place",
            ],
        );
    }

    #[test]
    fn url_templates_and_next_links() {
        let m = parse(
            Path::new("m.toml"),
            &base_with(
                "items = \"/items\"",
                "items = \"/items\"\nnext = \"Link\"\nurl_template = \"https://desk.example/t/{key}?id={id}\"",
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let api = m.api.unwrap();
        assert_eq!(api.next, NextPage::LinkHeader);
        let TicketUrl::Template(t) = &api.url else {
            panic!("{:?}", api.url)
        };
        assert_eq!(
            t.render(&[(Placeholder::Key, "HD 1"), (Placeholder::Id, "7")])
                .unwrap(),
            "https://desk.example/t/HD%201?id=7"
        );
        check(
            &base_with(
                "items = \"/items\"",
                "items = \"/items\"\nurl = \"/web\"\nurl_template = \"desk.example/{since}\"",
            ),
            &["18:16: give either `url` (a JSON pointer) or `url_template`, not both"],
        );
        check(
            &base_with(
                "items = \"/items\"",
                "items = \"/items\"\nurl_template = \"https://d/{since}\"",
            ),
            &["17:27: `{since}` is not available in `url_template`; it offers `{key}` or `{id}`"],
        );
    }

    #[test]
    fn rendering_keeps_hostile_values_literal() {
        let t = parse_template(
            "/api/tickets/{key}/c?q={correlation}&x=1",
            &[Placeholder::Key, Placeholder::Correlation],
            false,
        )
        .unwrap_or_else(|e| panic!("{}", e.message));
        let url = t
            .render(&[
                (Placeholder::Key, "../admin?x=1#f"),
                (Placeholder::Correlation, "a&limit=1000 /é%"),
            ])
            .unwrap();
        assert_eq!(
            url,
            "/api/tickets/..%2Fadmin%3Fx%3D1%23f/c?q=a%26limit%3D1000%20%2F%C3%A9%25&x=1"
        );
        for bad in ["", ".", ".."] {
            assert!(
                t.render(&[(Placeholder::Key, bad), (Placeholder::Correlation, "c")])
                    .is_err(),
                "{bad:?}"
            );
        }
        // In the query, a dot is just a dot.
        assert!(
            t.render(&[(Placeholder::Key, "k"), (Placeholder::Correlation, "..")])
                .is_ok()
        );
        assert!(
            t.render(&[(Placeholder::Key, "k")]).is_err(),
            "a value is missing"
        );
        let braces = parse_template("/t/{{x}}/{key}", &[Placeholder::Key], false)
            .unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(
            braces.render(&[(Placeholder::Key, "1")]).unwrap(),
            "/t/%7Bx%7D/1"
        );
    }

    #[test]
    fn json_pointers_read_and_write() {
        let p = JsonPointer::parse("/fields/a~1b/c~0d").unwrap();
        let mut doc = json!({});
        p.set(&mut doc, json!("v")).unwrap();
        assert_eq!(doc, json!({"fields": {"a/b": {"c~d": "v"}}}));
        assert_eq!(p.get(&doc), Some(&json!("v")));
        let first = JsonPointer::parse("/list/0/name").unwrap();
        let mut doc = json!({"list": [{"name": "x"}], "n": 1});
        first.set(&mut doc, json!("y")).unwrap();
        assert_eq!(doc["list"][0]["name"], "y");
        assert!(
            JsonPointer::parse("/list/1/name")
                .unwrap()
                .set(&mut doc, json!(1))
                .is_err()
        );
        assert!(
            JsonPointer::parse("/n/x")
                .unwrap()
                .set(&mut doc, json!(1))
                .is_err()
        );
        let root = JsonPointer::parse("").unwrap();
        assert!(root.is_root());
        assert_eq!(root.get(&doc), Some(&doc));
        assert_eq!(JsonPointer::parse("/a~").unwrap_err().offset, 2);
        assert_eq!(JsonPointer::parse("a").unwrap_err().offset, 0);
    }
}
