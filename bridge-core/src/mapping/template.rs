//! Text templates in mapping files: `"[Defender #{incident.display_id}] {incident.title}"`.
//! A placeholder names a scope (`incident` or `ticket`) and a variable; `{{` and `}}`
//! stand for literal braces. Parsing checks every name, so rendering cannot fail.

use crate::model::{IncidentSnapshot, TicketSnapshot};
use crate::vocab::{INCIDENT_TEMPLATE_VARS, TICKET_TEMPLATE_VARS};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Incident(IncidentVar),
    Ticket(TicketVar),
}

/// An `{incident.*}` variable, resolved when the template is parsed: rendering
/// runs for every templated field of every link a reconcile reads, and matching
/// the name there each time was a string comparison per placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IncidentVar {
    Id,
    DisplayId,
    Url,
    ProviderUrl,
    Link,
    Source,
    Created,
    Modified,
    /// Any other name is one of the incident's attributes.
    Attr(String),
}

impl IncidentVar {
    fn parse(name: &str) -> IncidentVar {
        match name {
            "id" => IncidentVar::Id,
            "display_id" => IncidentVar::DisplayId,
            "url" => IncidentVar::Url,
            "provider_url" => IncidentVar::ProviderUrl,
            "link" => IncidentVar::Link,
            "source" => IncidentVar::Source,
            "created" => IncidentVar::Created,
            "modified" => IncidentVar::Modified,
            attr => IncidentVar::Attr(attr.to_string()),
        }
    }
}

/// A `{ticket.*}` variable (only in write-back templates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TicketVar {
    Key,
    Id,
    Url,
}

/// What one placeholder stands for: text to copy, or a time to write to the minute.
enum Value<'a> {
    Text(&'a str),
    Minute(chrono::DateTime<chrono::Utc>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// What a template can refer to when rendered.
#[derive(Debug, Clone, Copy)]
pub struct TemplateContext<'a> {
    /// The `[[source]]` name.
    pub source: &'a str,
    pub incident: Option<&'a IncidentSnapshot>,
    pub ticket: Option<&'a TicketSnapshot>,
}

/// A template problem: the byte offset in the template text and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

impl Template {
    /// Parses `text`. `incident_attrs` are the attribute names the incident offers;
    /// `allow_ticket` says whether `{ticket.*}` may appear (only in write-back templates).
    pub fn parse(
        text: &str,
        incident_attrs: &[&str],
        allow_ticket: bool,
    ) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, n)| n) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|&(_, n)| n) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => {
                    return Err(TemplateError {
                        offset: i,
                        message: "unmatched `}` in template (write `}}` for a literal brace)"
                            .into(),
                    });
                }
                '{' => {
                    let rest = &text[i + 1..];
                    let Some(end) = rest.find('}') else {
                        return Err(TemplateError {
                            offset: i,
                            message: "unclosed `{` in template (write `{{` for a literal brace)"
                                .into(),
                        });
                    };
                    let name = rest[..end].trim();
                    let part = parse_placeholder(name, incident_attrs, allow_ticket)
                        .map_err(|message| TemplateError { offset: i, message })?;
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(part);
                    // Skip the placeholder's characters.
                    while let Some(&(j, _)) = chars.peek() {
                        if j > i + end + 1 {
                            break;
                        }
                        chars.next();
                    }
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template {
            source: text.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Renders the template; a variable with no value renders as nothing.
    pub fn render(&self, ctx: &TemplateContext<'_>) -> String {
        // Written straight into one buffer about the template's size.
        let mut out = String::with_capacity(self.source.len() + 64);
        for part in &self.parts {
            match value(part, ctx) {
                Value::Text(t) => out.push_str(t),
                Value::Minute(at) => push_minute(&mut out, at),
            }
        }
        out
    }

    /// Whether the template renders to exactly `text` (`self.render(ctx) == text`),
    /// found without rendering it: each part is compared with the text in place,
    /// and the first difference ends it. A reconcile re-reads mostly unchanged
    /// incidents, and comparing a templated field with its baseline this way
    /// costs no allocation and no copy.
    pub fn renders_to(&self, ctx: &TemplateContext<'_>, text: &str) -> bool {
        let mut rest = text.as_bytes();
        for part in &self.parts {
            let matched = match value(part, ctx) {
                Value::Text(t) => strip(&mut rest, t.as_bytes()),
                Value::Minute(at) => match minute(at) {
                    Some(written) => strip(&mut rest, &written),
                    None => strip(&mut rest, far_minute(at).as_bytes()),
                },
            };
            if !matched {
                return false;
            }
        }
        rest.is_empty()
    }

    /// Whether the template refers to the ticket.
    pub fn uses_ticket(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Ticket(_)))
    }
}

/// What `part` renders to in `ctx` (nothing for a variable of a side not given).
fn value<'a>(part: &'a Part, ctx: &TemplateContext<'a>) -> Value<'a> {
    match part {
        Part::Text(t) => Value::Text(t),
        Part::Incident(var) => match ctx.incident {
            Some(i) => incident_value(i, ctx.source, var),
            None => Value::Text(""),
        },
        Part::Ticket(var) => Value::Text(match ctx.ticket {
            Some(t) => match var {
                TicketVar::Key => &t.key,
                TicketVar::Id => &t.id,
                TicketVar::Url => &t.url,
            },
            None => "",
        }),
    }
}

/// Takes `prefix` off the front of `rest`, if it is there.
fn strip(rest: &mut &[u8], prefix: &[u8]) -> bool {
    match rest.strip_prefix(prefix) {
        Some(after) => {
            *rest = after;
            true
        }
        None => false,
    }
}

fn parse_placeholder(
    name: &str,
    incident_attrs: &[&str],
    allow_ticket: bool,
) -> Result<Part, String> {
    if let Some(var) = name.strip_prefix("incident.") {
        if INCIDENT_TEMPLATE_VARS.contains(&var) || incident_attrs.contains(&var) {
            return Ok(Part::Incident(IncidentVar::parse(var)));
        }
        let mut known: Vec<&str> = INCIDENT_TEMPLATE_VARS.to_vec();
        known.extend_from_slice(incident_attrs);
        return Err(format!(
            "unknown variable `{{{name}}}`; the incident offers: {}",
            known.join(", ")
        ));
    }
    if let Some(var) = name.strip_prefix("ticket.") {
        if !allow_ticket {
            return Err(format!(
                "`{{{name}}}` is not available here: the ticket does not exist yet when this template is rendered"
            ));
        }
        if TICKET_TEMPLATE_VARS.contains(&var) {
            let var = match var {
                "key" => TicketVar::Key,
                "id" => TicketVar::Id,
                _ => TicketVar::Url,
            };
            return Ok(Part::Ticket(var));
        }
        return Err(format!(
            "unknown variable `{{{name}}}`; the ticket offers: {}",
            TICKET_TEMPLATE_VARS.join(", ")
        ));
    }
    Err(format!(
        "unknown placeholder `{{{name}}}`; write `{{incident.<name>}}` or `{{ticket.<name>}}`"
    ))
}

fn incident_value<'a>(
    incident: &'a IncidentSnapshot,
    source: &'a str,
    var: &'a IncidentVar,
) -> Value<'a> {
    Value::Text(match var {
        IncidentVar::Id => &incident.id,
        IncidentVar::DisplayId => &incident.display_id,
        IncidentVar::Url => &incident.web_url,
        IncidentVar::ProviderUrl => incident.provider_url.as_deref().unwrap_or_default(),
        IncidentVar::Link => incident
            .provider_url
            .as_deref()
            .filter(|u| !u.is_empty())
            .unwrap_or(&incident.web_url),
        IncidentVar::Source => source,
        IncidentVar::Created => return Value::Minute(incident.created),
        IncidentVar::Modified => return Value::Minute(incident.modified),
        IncidentVar::Attr(attr) => crate::mapping::attr(&incident.attrs, attr).unwrap_or_default(),
    })
}

/// `%Y-%m-%d %H:%M UTC`.
fn push_minute(out: &mut String, at: chrono::DateTime<chrono::Utc>) {
    match minute(at) {
        // Only ASCII digits and separators were written.
        Some(written) => out.push_str(std::str::from_utf8(&written).unwrap_or_default()),
        None => out.push_str(&far_minute(at)),
    }
}

/// `%Y-%m-%d %H:%M UTC` for a year of four digits, written by hand: no format
/// string parsed, no formatter, no allocation (dates are in the description
/// template of every link a reconcile reads). `None` for other years.
fn minute(at: chrono::DateTime<chrono::Utc>) -> Option<[u8; 20]> {
    use chrono::{Datelike, Timelike};
    // The UTC date and time once (each accessor of a `DateTime` converts again).
    let (date, time) = (at.date_naive(), at.time());
    let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
    let mut out = *b"0000-00-00 00:00 UTC";
    let mut put = |at: usize, digits: usize, mut n: u32| {
        for i in (at..at + digits).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, date.month());
    put(8, 2, date.day());
    put(11, 2, time.hour());
    put(14, 2, time.minute());
    Some(out)
}

/// The same for any other year, through chrono's formatter.
fn far_minute(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attrs;

    fn incident() -> IncidentSnapshot {
        let mut attrs = Attrs::new();
        attrs.insert("title".into(), "Phish".into());
        IncidentSnapshot {
            modified_by: Default::default(),
            id: "41877".into(),
            display_id: "41877".into(),
            web_url: "https://security.microsoft.com/incidents/41877".into(),
            provider_url: None,
            created: chrono::DateTime::UNIX_EPOCH,
            modified: chrono::DateTime::UNIX_EPOCH,
            attrs,
            tags: vec![],
            redirect_to: None,
            comments: vec![],
            etag: None,
        }
    }

    #[test]
    fn renders_incident_variables_and_escaped_braces() {
        let t =
            Template::parse("[#{incident.id}] {incident.title} {{x}}", &["title"], false).unwrap();
        let i = incident();
        let ctx = TemplateContext {
            source: "defender",
            incident: Some(&i),
            ticket: None,
        };
        assert_eq!(t.render(&ctx), "[#41877] Phish {x}");
    }

    #[test]
    fn dates_render_to_the_minute_in_utc() {
        let t = Template::parse("{incident.created} / {incident.modified}", &[], false).unwrap();
        let mut i = incident();
        let render = |i: &IncidentSnapshot| {
            t.render(&TemplateContext {
                source: "s",
                incident: Some(i),
                ticket: None,
            })
        };
        assert_eq!(render(&i), "1970-01-01 00:00 UTC / 1970-01-01 00:00 UTC");
        i.created = "2026-11-22T08:05:59.9Z".parse().unwrap();
        i.modified =
            chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 10000, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(
            render(&i),
            format!(
                "2026-11-22 08:05 UTC / {}",
                i.modified.format("%Y-%m-%d %H:%M UTC")
            )
        );
    }

    proptest::proptest! {
        /// Comparing in place gives the answer rendering and comparing gives, for
        /// the rendered text itself, a part of it, more than it, and any text.
        #[test]
        fn renders_to_answers_as_render_then_compare(
            which in 0usize..4,
            title in proptest::option::of("\\PC{0,12}"),
            year in -20i32..12_000,
            minute in 0u32..60,
            cut in 0usize..80,
            extra in "\\PC{0,3}",
            other in "\\PC{0,40}",
        ) {
            let text = [
                "[Defender #{incident.display_id}] {incident.title}",
                "{incident.created} {incident.title}{{x}} {incident.link}/{incident.nope}",
                "ticket {ticket.key}: {ticket.url} ({incident.modified})",
                "",
            ][which];
            let t = Template::parse(text, &["title", "nope"], true).unwrap();
            let mut i = incident();
            match title {
                Some(title) => i.attrs.insert("title".into(), title),
                None => i.attrs.remove("title"),
            };
            let at = chrono::NaiveDate::from_ymd_opt(year, 3, 4)
                .unwrap()
                .and_hms_opt(5, minute, 7)
                .unwrap()
                .and_utc();
            (i.created, i.modified) = (at, at);
            let ticket = crate::model::TicketSnapshot {
                key: "SEC-1".into(),
                id: "10000".into(),
                url: "https://jira.example/browse/SEC-1".into(),
                created: at,
                modified: at,
                version: None,
                attrs: Default::default(),
                labels: vec![],
                correlation: None,
                comments: vec![],
                modified_by: Default::default(),
            };
            let ctx = TemplateContext { source: "s", incident: Some(&i), ticket: Some(&ticket) };
            let rendered = t.render(&ctx);
            let mut part = rendered.clone();
            let mut end = cut.min(part.len());
            while !part.is_char_boundary(end) {
                end -= 1;
            }
            part.truncate(end);
            for candidate in [rendered.clone(), part, format!("{rendered}{extra}"), other] {
                proptest::prop_assert_eq!(
                    t.renders_to(&ctx, &candidate),
                    rendered == candidate,
                    "{:?} against {:?}", rendered, candidate
                );
            }
        }
    }

    #[test]
    fn link_prefers_the_defender_portal() {
        let t = Template::parse("{incident.link}", &[], false).unwrap();
        let mut i = incident();
        let ctx = |i: &IncidentSnapshot| {
            t.render(&TemplateContext {
                source: "s",
                incident: Some(i),
                ticket: None,
            })
        };
        assert_eq!(ctx(&i), "https://security.microsoft.com/incidents/41877");
        i.web_url = "https://portal.azure.com/#asset/x".into();
        i.provider_url = Some("https://security.microsoft.com/incidents/9".into());
        assert_eq!(ctx(&i), "https://security.microsoft.com/incidents/9");
    }

    #[test]
    fn unknown_variable_points_at_its_brace() {
        let err = Template::parse("ab {incident.nope}", &["title"], false).unwrap_err();
        assert_eq!(err.offset, 3);
        assert!(
            err.message.contains("unknown variable `{incident.nope}`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn ticket_variables_only_where_allowed() {
        assert!(Template::parse("{ticket.key}", &[], false).is_err());
        assert!(
            Template::parse("ticket:{ticket.key}", &[], true)
                .unwrap()
                .uses_ticket()
        );
        assert!(Template::parse("{oops", &[], true).is_err());
        assert!(Template::parse("oops}", &[], true).is_err());
    }
}
