//! Checking `[api]`: the raw serde shape (everything optional, so a missing key is
//! one of our diagnostics with a hint) and its checks, every problem at its
//! line:column.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::*;
use crate::diag::Reporter;
use crate::mapping::spans::string_position;
use crate::vocab::{self, TicketKind};

// ---------------------------------------------------------------------------------
// Raw shape: what serde reads. Everything optional, so that a missing key is one of
// our diagnostics with a hint.

pub(super) type RawMap = Spanned<BTreeMap<Spanned<String>, Spanned<String>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    pub(super) create: Option<Spanned<RawEndpoint>>,
    pub(super) get: Option<Spanned<RawEndpoint>>,
    pub(super) update: Option<Spanned<RawEndpoint>>,
    pub(super) search: Option<Spanned<RawEndpoint>>,
    pub(super) find: Option<Spanned<RawEndpoint>>,
    pub(super) comment: Option<Spanned<RawEndpoint>>,
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
    pub(super) statuses: Option<Spanned<Vec<Spanned<String>>>>,
    fields: Option<RawMap>,
    pub(super) types: Option<RawMap>,
    pub(super) since_format: Option<Spanned<String>>,
    pub(super) since_zone: Option<Spanned<String>>,
    pub(super) error_message: Option<Spanned<String>>,
    pub(super) error_details: Option<Spanned<String>>,
}

/// One endpoint as written. Which of the optional keys an endpoint may have is
/// checked per endpoint (`EndpointSpec::keys`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEndpoint {
    pub(super) method: Option<Spanned<String>>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) record: Option<Spanned<String>>,
    pub(super) send: Option<Spanned<String>>,
    pub(super) items: Option<Spanned<String>>,
    pub(super) next: Option<Spanned<String>>,
    pub(super) more: Option<Spanned<String>>,
    pub(super) end: Option<Spanned<String>>,
    pub(super) mode: Option<Spanned<String>>,
    pub(super) text: Option<Spanned<String>>,
    pub(super) author: Option<Spanned<String>>,
    pub(super) fields: Option<RawValues>,
}

/// `fields = { "/source" = 2, "/email" = "soc@example.com" }`.
pub(super) type RawValues = Spanned<BTreeMap<Spanned<String>, Spanned<toml::Value>>>;

/// How one `[[field]]` of the file uses a ticket attribute: what the checks of the
/// fields against `[api]` look at.
pub(crate) struct FieldUse<'a> {
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
pub(super) struct EndpointSpec {
    pub(super) name: &'static str,
    /// The first is the default.
    methods: &'static [HttpMethod],
    example: &'static str,
    /// More keys the endpoint needs, as the hint for a missing endpoint shows them.
    extra: &'static str,
    purpose: &'static str,
    /// The placeholder its path must hold, and what it stands for there.
    needs: Option<(Placeholder, &'static str)>,
    /// The optional keys beside `method` and `path` it may have.
    pub(super) keys: &'static [&'static str],
}

const CREATE: EndpointSpec = EndpointSpec {
    name: "create",
    methods: &[HttpMethod::Post],
    example: "/tickets",
    extra: "",
    purpose: "how to open a ticket",
    needs: None,
    keys: &["record", "send", "fields"],
};
const GET: EndpointSpec = EndpointSpec {
    name: "get",
    methods: &[HttpMethod::Get],
    example: "/tickets/{key}",
    extra: "",
    purpose: "how to read one ticket",
    needs: Some((Placeholder::Key, "the ticket to read")),
    keys: &["record"],
};
const UPDATE: EndpointSpec = EndpointSpec {
    name: "update",
    methods: &[HttpMethod::Patch, HttpMethod::Put, HttpMethod::Post],
    example: "/tickets/{key}",
    extra: "",
    purpose: "how to change a ticket",
    needs: Some((Placeholder::Key, "the ticket to change")),
    keys: &["record", "send", "fields", "mode"],
};
const SEARCH: EndpointSpec = EndpointSpec {
    name: "search",
    methods: &[HttpMethod::Get],
    example: "/tickets?updated_since={since}",
    extra: "",
    purpose: "how to list the tickets changed since a time",
    needs: Some((Placeholder::Since, "the time the search starts from")),
    keys: &["items", "next", "more", "end"],
};
const FIND: EndpointSpec = EndpointSpec {
    name: "find",
    methods: &[HttpMethod::Get],
    example: "/tickets?external_id={correlation}",
    extra: "",
    purpose: "how to find the ticket of an incident by its correlation id",
    needs: Some((Placeholder::Correlation, "the correlation id to look for")),
    keys: &["items", "next", "more", "end"],
};
const COMMENT: EndpointSpec = EndpointSpec {
    name: "comment",
    methods: &[HttpMethod::Post, HttpMethod::Put],
    example: "/tickets/{key}/comments",
    extra: ", text = \"/body\"",
    purpose: "how to add a comment to a ticket",
    needs: Some((Placeholder::Key, "the ticket to comment on")),
    keys: &["record", "send", "fields", "text", "author"],
};

/// The six endpoints, checked.
pub(super) struct Endpoints {
    pub(super) create: Endpoint,
    pub(super) get: Endpoint,
    pub(super) update: Endpoint,
    pub(super) search: Endpoint,
    pub(super) find: Endpoint,
    pub(super) comment: Endpoint,
}

/// Where a ticket object keeps what the bridge reads besides its attributes.
pub(super) struct TicketPlaces {
    pub(super) items: JsonPointer,
    pub(super) next: NextPage,
    pub(super) id: JsonPointer,
    pub(super) key: Option<JsonPointer>,
    pub(super) url: TicketUrl,
    pub(super) created: JsonPointer,
    pub(super) updated: JsonPointer,
    pub(super) version: Option<JsonPointer>,
    pub(super) correlation: JsonPointer,
    pub(super) labels: Option<JsonPointer>,
    pub(super) comments: Option<JsonPointer>,
}

/// Checks `[api]`, reporting every problem; `None` when there was one.
pub(crate) fn check(r: &mut Reporter<'_>, text: &str, raw: &Spanned<RawApi>) -> Option<GenericApi> {
    let mut c = ApiChecker {
        r,
        text,
        header: raw.span().start,
        ok: true,
    };
    let api = raw.get_ref();

    // The key first: it decides whether `{id}` can address a ticket.
    let key = api.key.as_ref().and_then(|k| c.pointer(k, "key", false));
    let endpoints = c.endpoints(api, api.key.is_some());
    let (comment_text, comment_author) = c.comment_pointers(api.comment.as_ref());
    let places = c.places(api, key);
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
    let listed = statuses.as_ref().and_then(Option::as_ref);
    let shapes = fields.as_ref().and_then(|f| c.shapes(api, f, listed));
    let endpoints = match (endpoints, &fields) {
        (Some(e), Some(f)) => c.extra_fields(api, e, f),
        _ => None,
    };
    if let (Some(fields), Some(places)) = (&fields, &places) {
        c.separate_places(api, fields, &places.correlation, places.labels.as_ref());
    }

    if !c.ok {
        return None;
    }
    let (e, p, shapes) = (endpoints?, places?, shapes?);
    Some(GenericApi {
        create: e.create,
        get: e.get,
        update: e.update,
        search: e.search,
        find: e.find,
        comment: e.comment,
        comment_text: comment_text?,
        comment_author: comment_author.flatten(),
        items: p.items,
        next: p.next,
        id: p.id,
        key: p.key,
        url: p.url,
        created: p.created,
        updated: p.updated,
        version: p.version,
        correlation: p.correlation,
        labels: p.labels,
        comments: p.comments,
        fields: fields?,
        statuses: statuses.flatten(),
        types: shapes.types,
        update_mode: shapes.update_mode,
        since_format: shapes.since_format,
        errors: shapes.errors,
    })
}

pub(super) struct ApiChecker<'r, 'a, 't> {
    r: &'r mut Reporter<'a>,
    pub(super) text: &'t str,
    /// The `[api]` header: where a missing key is reported.
    pub(super) header: usize,
    ok: bool,
}

impl ApiChecker<'_, '_, '_> {
    pub(super) fn error(&mut self, at: usize, message: impl Into<String>) {
        self.r.at(at, message);
        self.ok = false;
    }

    /// An error at byte `offset` of a string value.
    pub(super) fn error_in(
        &mut self,
        s: &Spanned<String>,
        offset: usize,
        message: impl Into<String>,
    ) {
        let at = string_position(self.text, s.span(), s.get_ref(), offset);
        self.error(at, message);
    }

    pub(super) fn pointer(
        &mut self,
        s: &Spanned<String>,
        what: &str,
        root_ok: bool,
    ) -> Option<JsonPointer> {
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

    pub(super) fn required(
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

    fn endpoints(&mut self, api: &RawApi, key_given: bool) -> Option<Endpoints> {
        let create = self.endpoint(&CREATE, api.create.as_ref(), key_given);
        let get = self.endpoint(&GET, api.get.as_ref(), key_given);
        let update = self.endpoint(&UPDATE, api.update.as_ref(), key_given);
        let search = self.endpoint(&SEARCH, api.search.as_ref(), key_given);
        let find = self.endpoint(&FIND, api.find.as_ref(), key_given);
        let comment = self.endpoint(&COMMENT, api.comment.as_ref(), key_given);
        Some(Endpoints {
            create: create?,
            get: get?,
            update: update?,
            search: search?,
            find: find?,
            comment: comment?,
        })
    }

    /// The comment endpoint's `text` (required) and `author`.
    fn comment_pointers(
        &mut self,
        raw: Option<&Spanned<RawEndpoint>>,
    ) -> (Option<JsonPointer>, Option<Option<JsonPointer>>) {
        let Some(e) = raw else {
            return (None, None);
        };
        let text = match &e.get_ref().text {
            Some(t) => self.pointer(t, "comment text", false),
            None => {
                self.error(
                    e.span().start,
                    "add `text = \"/body\"` to `comment`: where a comment object holds its text",
                );
                None
            }
        };
        let author = e
            .get_ref()
            .author
            .as_ref()
            .map(|a| self.pointer(a, "comment author", false));
        (text, author)
    }

    /// The pointers into list responses and ticket objects.
    fn places(&mut self, api: &RawApi, key: Option<JsonPointer>) -> Option<TicketPlaces> {
        let items = self.required(
            api.items.as_ref(),
            "items",
            "/items",
            "the list of tickets in a search or find response (\"\" for a bare list)",
            true,
        );
        let next = self.next_page(api.next.as_ref());
        let required = |c: &mut Self, raw: &Option<Spanned<String>>, key, example, purpose| {
            c.required(raw.as_ref(), key, example, purpose, false)
        };
        let id = required(
            self,
            &api.id,
            "id",
            "/id",
            "where a ticket object holds its id",
        );
        let created = required(
            self,
            &api.created,
            "created",
            "/created_at",
            "where a ticket object holds its creation time",
        );
        let updated = required(
            self,
            &api.updated,
            "updated",
            "/updated_at",
            "where a ticket object holds the time it last changed",
        );
        let correlation = required(
            self,
            &api.correlation,
            "correlation",
            "/external_id",
            "where the bridge keeps the incident's correlation id on a ticket",
        );
        let optional = |c: &mut Self, raw: &Option<Spanned<String>>, what| match raw {
            None => Some(None),
            Some(p) => c.pointer(p, what, false).map(Some),
        };
        let version = optional(self, &api.version, "version");
        let labels = optional(self, &api.labels, "labels");
        let comments = optional(self, &api.comments, "comments");
        let url = self.ticket_url(api);
        Some(TicketPlaces {
            items: items?,
            next: next?,
            id: id?,
            key,
            url: url?,
            created: created?,
            updated: updated?,
            version: version?,
            correlation: correlation?,
            labels: labels?,
            comments: comments?,
        })
    }

    /// `next`: a pointer to the next page's URL, or `"link"` for the Link header.
    pub(super) fn next_page(&mut self, raw: Option<&Spanned<String>>) -> Option<NextPage> {
        match raw {
            None => Some(NextPage::None),
            Some(n) if n.get_ref().eq_ignore_ascii_case("link") => Some(NextPage::LinkHeader),
            Some(n) => self
                .pointer(n, "next-page link", false)
                .map(NextPage::Pointer),
        }
    }

    fn ticket_url(&mut self, api: &RawApi) -> Option<TicketUrl> {
        match (&api.url, &api.url_template) {
            (Some(_), Some(t)) => {
                self.error(
                    t.span().start,
                    "give either `url` (a JSON pointer) or `url_template`, not both",
                );
                None
            }
            (Some(u), None) => self.pointer(u, "url", false).map(TicketUrl::Pointer),
            (None, Some(t)) => self.url_template(t).map(TicketUrl::Template),
            (None, None) => Some(TicketUrl::ApiUrl),
        }
    }

    fn endpoint(
        &mut self,
        spec: &EndpointSpec,
        raw: Option<&Spanned<RawEndpoint>>,
        key_given: bool,
    ) -> Option<Endpoint> {
        let Some(raw) = raw else {
            self.error(
                self.header,
                format!(
                    "add `{} = {{ path = \"{}\"{} }}` to [api]: {}",
                    spec.name, spec.example, spec.extra, spec.purpose
                ),
            );
            return None;
        };
        let (at, method, path) = (raw.span().start, &raw.get_ref().method, &raw.get_ref().path);
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
        let endpoint = Endpoint::plain(method?, template);
        self.endpoint_shape(spec, raw.get_ref(), endpoint)
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

pub(super) fn or_list(items: &[String]) -> String {
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
pub(super) struct TemplateProblem {
    pub(super) offset: usize,
    pub(super) message: String,
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
pub(super) fn parse_template(
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
