//! `/links`, the links table (filters, search, pages), and `/links/{pair}/{incident}`,
//! one link: both sides as last agreed, per field, the versions synced from, its
//! dead letter if it has one, and its ledger history.

use std::collections::HashMap;

use bridge_core::ledger::LedgerEntry;
use bridge_core::model::{Link, LinkState, Timestamp};
use bridge_core::store::{DeadLetter, LinkPage, LinkQuery, LinkStateFilter};
use maud::{Markup, html};

use super::{ReloadFailure, layout, link_path, portal, query, time};

/// Rows per page of the links table.
pub const LINKS_PER_PAGE: u64 = 50;

/// The links table's filters, as the GET form sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinksForm {
    pub pair: String,
    /// `open`, `closed`, `merged`, `failing`, `pending`, or empty for any.
    pub state: String,
    /// Part of an incident or ticket id.
    pub search: String,
    /// From 1.
    pub page: u64,
}

impl LinksForm {
    pub fn from_query(params: &HashMap<String, String>) -> LinksForm {
        let text = |name: &str| params.get(name).map_or("", |v| v.trim()).to_owned();
        LinksForm {
            pair: text("pair"),
            state: text("state"),
            search: text("q"),
            page: params
                .get("page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(1)
                .max(1),
        }
    }

    /// The store query, or what is wrong with the form.
    pub fn to_query(&self) -> Result<LinkQuery, String> {
        let state = match self.state.as_str() {
            "" => None,
            s => Some(LinkStateFilter::parse(s).ok_or_else(|| {
                format!("unknown state {s:?}: choose open, closed, merged, failing or pending")
            })?),
        };
        Ok(LinkQuery {
            pair: Some(self.pair.clone()).filter(|p| !p.is_empty()),
            state,
            search: Some(self.search.clone()).filter(|s| !s.is_empty()),
            closed_when: Vec::new(),
            offset: (self.page - 1).saturating_mul(LINKS_PER_PAGE),
            limit: LINKS_PER_PAGE,
        })
    }

    fn href(&self, page: u64) -> String {
        let page = page.to_string();
        format!(
            "/links{}",
            query(&[
                ("pair", &self.pair),
                ("state", &self.state),
                ("q", &self.search),
                ("page", &page)
            ])
        )
    }
}

/// The links table: the form, then one page of the links it selects.
pub fn render_links(
    form: &LinksForm,
    pairs: &[String],
    page: Result<&LinkPage, &str>,
    reload: Option<&ReloadFailure>,
    now: Timestamp,
) -> String {
    let body = html! {
        form.filters method="get" action="/links" {
            label { "Pair " select name="pair" {
                option value="" { "any" }
                @for p in pairs { option value=(p) selected[*p == form.pair] { (p) } }
            } }
            label { "State " select name="state" {
                option value="" { "any" }
                @for s in LinkStateFilter::ALL {
                    option value=(s.as_str()) selected[s.as_str() == form.state] { (s.as_str()) }
                }
            } }
            label { "Incident or ticket " input type="search" name="q" value=(form.search); }
            button type="submit" { "Filter" }
        }
        @match page {
            Err(e) => p.failing #links-error { (e) },
            Ok(page) => (links_table(form, page)),
        }
    };
    layout("Links", now, reload, body)
}

fn links_table(form: &LinksForm, page: &LinkPage) -> Markup {
    let first = (form.page - 1) * LINKS_PER_PAGE;
    let last_page = page.total.div_ceil(LINKS_PER_PAGE).max(1);
    html! {
        p #links-count {
            @if page.links.is_empty() { "No link matches (" (page.total) " in all)." }
            @else { "Links " (first + 1) "–" (first + page.links.len() as u64) " of " (page.total) "." }
        }
        table #links {
            thead { tr { th { "pair" } th { "incident" } th { "ticket" } th { "state" }
                         th { "status" } th { "updated" } th { "" } } }
            tbody {
                @for link in &page.links {
                    tr {
                        td { (link.pair) }
                        td.incident { (portal(&link.incident_display_id, &link.incident_url)) }
                        td.ticket { (portal(&link.ticket_key, &link.ticket_url)) }
                        td { (link.state.as_str()) }
                        td { (status_of(link)) }
                        td { (time(&link.updated)) }
                        td { a.details href=(link_path(&link.pair, &link.incident_id)) { "details" } }
                    }
                }
            }
        }
        p.pages {
            @if form.page > 1 { a rel="prev" href=(form.href(form.page - 1)) { "← previous" } " " }
            "page " (form.page) " of " (last_page)
            @if form.page < last_page { " " a rel="next" href=(form.href(form.page + 1)) { "next →" } }
        }
    }
}

/// The incident's status as both sides last agreed (the `status` field).
fn status_of(link: &Link) -> String {
    link.baseline
        .get("status")
        .and_then(|a| a.incident.clone())
        .unwrap_or_default()
}

/// What the page of one link shows.
#[derive(Debug)]
pub struct LinkView<'a> {
    pub pair: &'a str,
    pub incident_id: &'a str,
    /// `None`: no such link.
    pub link: Option<&'a Link>,
    pub dead_letter: Option<&'a DeadLetter>,
    /// Its ledger entries, oldest first.
    pub history: &'a [LedgerEntry],
    pub reload: Option<&'a ReloadFailure>,
    pub now: Timestamp,
}

pub fn render_link(view: &LinkView<'_>) -> String {
    let title = format!("{} {}", view.pair, view.incident_id);
    let body = match view.link {
        None => {
            html! { p.failing #no-link { "No link of pair " (view.pair) " for incident " (view.incident_id) "." } }
        }
        Some(link) => html! {
            (sides(link))
            @if let Some(l) = view.dead_letter {
                h2 { "Dead letter" }
                p.failing #dead-letter { (l.action) " failed " (l.attempts) " time(s), last at "
                    (time(&l.last_failed)) ", next try at " (time(&l.next_attempt)) ": " (l.last_error) }
            }
            h2 { "Fields as both sides last agreed" }
            table #baseline {
                tr { th { "field" } th { "incident" } th { "ticket" } th { "held" } }
                @for (field, agreed) in &link.baseline {
                    tr { td { (field) } td.incident-value { (agreed.incident.as_deref().unwrap_or("")) }
                         td.ticket-value { (agreed.ticket.as_deref().unwrap_or("")) }
                         td { @if agreed.held { "held" } } }
                }
            }
            h2 { "History" }
            p { (view.history.len()) " ledger entries, newest first." }
            div #history { (super::ledger::entries_table(view.history.iter().rev())) }
        },
    };
    layout(&title, view.now, view.reload, body)
}

fn sides(link: &Link) -> Markup {
    let version = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".to_owned());
    html! {
        table #sides {
            tr { th { "" } th { "incident" } th { "ticket" } }
            tr { th { "id" } td { (portal(&link.incident_display_id, &link.incident_url)) " (" (link.incident_id) ")" }
                 td { (portal(&link.ticket_key, &link.ticket_url)) " (" (link.ticket_id) ")" } }
            tr { th { "synced from" } td { (time(&link.incident_modified)) } td { (time(&link.ticket_modified)) } }
            tr { th { "version" } td { (version(&link.incident_version)) } td { (version(&link.ticket_version)) } }
        }
        p {
            "State: " strong #link-state { (link.state.as_str()) }
            @if link.state == LinkState::Merged {
                @if let Some(into) = &link.merged_into {
                    ", merged into " a href=(link_path(&link.pair, into)) { (into) }
                }
            }
            "; ticket key written back: " (if link.written_back { "yes" } else { "no" })
            "; linked " (time(&link.created)) ", updated " (time(&link.updated)) "."
        }
    }
}
