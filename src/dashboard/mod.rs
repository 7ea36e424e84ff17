//! The read-only dashboard `run`'s `[server]` serves: `/` the overview (pairs,
//! their runs and counts, recent problems), `/links` the links table (filters by
//! pair and state, a search by incident or ticket id, pages), `/links/{pair}/{incident}`
//! one link (both sides' values as last agreed, versions, its ledger history),
//! `/ledger` (filters) and `/dead-letters` (each with its last error).
//!
//! Every page is a pure function of copies (the run loop's `Status`, what the
//! handler read from the store, the time) returning HTML, written with maud,
//! which escapes every value it is given: nothing is escaped by hand, so a
//! hostile incident title is shown as text. No script, no asset from elsewhere:
//! filters are GET forms, auto-refresh is a `<meta http-equiv="refresh">`, so
//! the server's strict Content-Security-Policy holds. Incident and ticket ids
//! link to their portals by the URLs the connectors stored in each link
//! (Defender's and Sentinel's portal, `{base}/browse/{key}` for Jira,
//! ServiceNow's `nav_to.do`, the generic system's `[api]` template).

mod ledger;
mod links;
mod overview;
mod routes;
#[cfg(test)]
mod tests;

use bridge_core::model::Timestamp;
use maud::{DOCTYPE, Markup, PreEscaped, html};

pub use ledger::{LedgerForm, render_dead_letters, render_ledger};
pub use links::{LinkView, LinksForm, render_link, render_links};
pub use overview::{Overview, render_overview};
pub(crate) use routes::routes;

/// How often a page reloads itself, in seconds.
pub const REFRESH_SECONDS: u32 = 30;

/// A reload of the config that failed: what `/healthz` and every page show
/// until one succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadFailure {
    pub at: Timestamp,
    /// Every problem, each naming its file:line:column.
    pub problems: Vec<String>,
    /// Not a problem in the files: a mapping edit that would rewrite more than
    /// `[mapping] max_rewrites`, held until accepted.
    pub held: bool,
}

const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
nav a{margin-right:1em}\
table{border-collapse:collapse;margin-bottom:1.5em}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}td.n{text-align:right}\
.ok{color:#17692b}.failing{color:#b00020;font-weight:bold}.idle{color:#777}\
.banner{border:2px solid #b00020;background:#fff0f0;padding:.5em 1em;margin-bottom:1em}\
form.filters{margin-bottom:1em}form.filters label{margin-right:1em}\
pre{white-space:pre-wrap;margin:0}";

/// The frame every page shares: title, refresh, navigation, the reload banner.
pub(crate) fn layout(
    title: &str,
    now: Timestamp,
    reload: Option<&ReloadFailure>,
    body: Markup,
) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(REFRESH_SECONDS);
                title { (title) " · itsm-bridge" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                nav {
                    a href="/" { "Overview" }
                    a href="/links" { "Links" }
                    a href="/ledger" { "Ledger" }
                    a href="/dead-letters" { "Dead letters" }
                    a href="/healthz" { "/healthz" }
                    a href="/metrics" { "/metrics" }
                }
                @if let Some(failure) = reload {
                    div.banner #reload-failed {
                        strong { @if failure.held { "mapping edit held" } @else { "reload failed" } }
                        " at " (time(&failure.at)) "; still running the configuration loaded before:"
                        ul { @for problem in &failure.problems { li { pre { (problem) } } } }
                    }
                }
                h1 { (title) }
                p.idle { "As of " (time(&now)) "; this page reloads every " (REFRESH_SECONDS) " s." }
                (body)
            }
        }
    }
    .into_string()
}

/// A page that only says the store could not be read.
pub(crate) fn render_error(
    title: &str,
    error: &str,
    reload: Option<&ReloadFailure>,
    now: Timestamp,
) -> String {
    let body = html! { p.failing { "The store could not be read: " (error) } };
    layout(title, now, reload, body)
}

pub(crate) fn time(time: &Timestamp) -> String {
    time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A link to a remote portal, or the plain text when there is no URL.
pub(crate) fn portal(text: &str, url: &str) -> Markup {
    html! {
        @if url.starts_with("https://") || url.starts_with("http://") {
            a href=(url) rel="noreferrer" { (text) }
        } @else {
            (text)
        }
    }
}

/// The dashboard's page of one link.
pub fn link_path(pair: &str, incident_id: &str) -> String {
    format!("/links/{}/{}", encode(pair), encode(incident_id))
}

/// Percent-encodes all but RFC 3986's unreserved characters: safe in a path
/// segment and in a query value.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A query string from its non-empty values (`?a=1&b=2`, or nothing).
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}
