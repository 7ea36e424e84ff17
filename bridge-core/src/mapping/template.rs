//! Text templates in mapping files: `"[Defender #{incident.display_id}] {incident.title}"`.
//! A placeholder names a scope (`incident` or `ticket`) and a variable; `{{` and `}}`
//! stand for literal braces. Parsing checks every name, so rendering cannot fail.

use crate::model::{IncidentSnapshot, TicketSnapshot};
use crate::vocab::{INCIDENT_TEMPLATE_VARS, TICKET_TEMPLATE_VARS};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Incident(String),
    Ticket(String),
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
        // Rendered once per mapped field per link in every reconcile: written
        // straight into one buffer about the template's size.
        let mut out = String::with_capacity(self.source.len() + 64);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Incident(name) => {
                    if let Some(i) = ctx.incident {
                        push_incident_var(&mut out, i, ctx.source, name);
                    }
                }
                Part::Ticket(name) => {
                    if let Some(t) = ctx.ticket {
                        out.push_str(match name.as_str() {
                            "key" => &t.key,
                            "id" => &t.id,
                            "url" => &t.url,
                            _ => "",
                        });
                    }
                }
            }
        }
        out
    }

    /// Whether the template refers to the ticket.
    pub fn uses_ticket(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Ticket(_)))
    }
}

fn parse_placeholder(
    name: &str,
    incident_attrs: &[&str],
    allow_ticket: bool,
) -> Result<Part, String> {
    if let Some(var) = name.strip_prefix("incident.") {
        if INCIDENT_TEMPLATE_VARS.contains(&var) || incident_attrs.contains(&var) {
            return Ok(Part::Incident(var.to_string()));
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
            return Ok(Part::Ticket(var.to_string()));
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

fn push_incident_var(out: &mut String, incident: &IncidentSnapshot, source: &str, name: &str) {
    match name {
        "id" => out.push_str(&incident.id),
        "display_id" => out.push_str(&incident.display_id),
        "url" => out.push_str(&incident.web_url),
        "provider_url" => out.push_str(incident.provider_url.as_deref().unwrap_or_default()),
        "link" => out.push_str(
            incident
                .provider_url
                .as_deref()
                .filter(|u| !u.is_empty())
                .unwrap_or(&incident.web_url),
        ),
        "source" => out.push_str(source),
        "created" => push_minute(out, incident.created),
        "modified" => push_minute(out, incident.modified),
        attr => out.push_str(incident.attrs.get(attr).map_or("", String::as_str)),
    }
}

/// `%Y-%m-%d %H:%M UTC`, without parsing the format each time.
fn push_minute(out: &mut String, at: chrono::DateTime<chrono::Utc>) {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    if (0..=9999).contains(&at.year()) {
        let _ = write!(
            out,
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            at.year(),
            at.month(),
            at.day(),
            at.hour(),
            at.minute()
        );
    } else {
        let _ = write!(out, "{}", at.format("%Y-%m-%d %H:%M UTC"));
    }
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
