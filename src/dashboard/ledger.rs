//! `/ledger`, the sync ledger with filters, newest first, and `/dead-letters`,
//! the incidents set aside after failing, each with its last error.

use std::collections::HashMap;

use bridge_core::ledger::{LedgerEntry, LedgerFilter};
use bridge_core::model::Timestamp;
use bridge_core::store::DeadLetter;
use maud::{Markup, html};

use super::{ReloadFailure, layout, link_path, time};

/// How many entries the ledger page shows unless asked for another number.
pub const LEDGER_ENTRIES: usize = 100;
/// The most it shows.
pub const LEDGER_ENTRIES_MAX: usize = 5000;

/// The ledger's filters, as the GET form sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerForm {
    pub pair: String,
    pub incident: String,
    /// A date (`2026-11-01`) or an RFC 3339 time.
    pub since: String,
    pub limit: String,
}

impl LedgerForm {
    pub fn from_query(params: &HashMap<String, String>) -> LedgerForm {
        let text = |name: &str| params.get(name).map_or("", |v| v.trim()).to_owned();
        LedgerForm {
            pair: text("pair"),
            incident: text("incident"),
            since: text("since"),
            limit: text("limit"),
        }
    }

    /// The store's filter, or what is wrong with the form.
    pub fn to_filter(&self) -> Result<LedgerFilter, String> {
        let limit = match self.limit.as_str() {
            "" => LEDGER_ENTRIES,
            n => match n.parse::<usize>() {
                Ok(n) if (1..=LEDGER_ENTRIES_MAX).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "limit {n:?}: give a number from 1 to {LEDGER_ENTRIES_MAX}"
                    ));
                }
            },
        };
        Ok(LedgerFilter {
            pair: Some(self.pair.clone()).filter(|p| !p.is_empty()),
            incident_id: Some(self.incident.clone()).filter(|p| !p.is_empty()),
            since: parse_time(&self.since)?,
            limit: Some(limit),
        })
    }
}

/// A date or an RFC 3339 time; empty is none.
fn parse_time(text: &str) -> Result<Option<Timestamp>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(Some(t.with_timezone(&chrono::Utc)));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(Some(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()));
    }
    Err(format!(
        "since {text:?}: give a date (2026-11-01) or an RFC 3339 time (2026-11-01T08:00:00Z)"
    ))
}

pub fn render_ledger(
    form: &LedgerForm,
    pairs: &[String],
    entries: Result<&[LedgerEntry], &str>,
    reload: Option<&ReloadFailure>,
    now: Timestamp,
) -> String {
    let body = html! {
        form.filters method="get" action="/ledger" {
            label { "Pair " select name="pair" {
                option value="" { "any" }
                @for p in pairs { option value=(p) selected[*p == form.pair] { (p) } }
            } }
            label { "Incident " input type="text" name="incident" value=(form.incident); }
            label { "Since " input type="text" name="since" placeholder="2026-11-01" value=(form.since); }
            label { "Newest " input type="number" name="limit" min="1" max=(LEDGER_ENTRIES_MAX)
                    placeholder=(LEDGER_ENTRIES) value=(form.limit); }
            button type="submit" { "Filter" }
        }
        @match entries {
            Err(e) => p.failing #ledger-error { (e) },
            Ok(entries) => {
                p #ledger-count { (entries.len()) " entries, newest first." }
                (entries_table(entries.iter().rev()))
            }
        }
    };
    layout("Ledger", now, reload, body)
}

/// Ledger entries in the order given, each incident linking to its link's page.
pub(crate) fn entries_table<'a>(entries: impl Iterator<Item = &'a LedgerEntry>) -> Markup {
    html! {
        table.ledger {
            thead { tr { th { "#" } th { "time" } th { "pair" } th { "action" } th { "incident" }
                         th { "ticket" } th { "changes" } th { "outcome" } th { "detail" } } }
            tbody {
                @for entry in entries {
                    @let r = &entry.record;
                    @let outcome = r.outcome.as_str();
                    tr {
                        td.n { (entry.seq) } td { (time(&r.time)) } td { (r.pair) } td.action { (r.action) }
                        td { a href=(link_path(&r.pair, &r.incident_id)) { (r.incident_id) } }
                        td { (r.ticket_key.as_deref().unwrap_or("")) }
                        td { @for c in &r.changes {
                            div.change { (c.field) ": " (c.old.as_deref().unwrap_or("∅")) " → "
                                (c.new.as_deref().unwrap_or("∅"))
                                @if c.conflict.is_some() { " (conflict)" } }
                        } }
                        td class=(match outcome { "failed" => "failing", "skipped" => "idle", _ => "ok" }) { (outcome) }
                        td { (r.detail.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

pub fn render_dead_letters(
    letters: Result<&[DeadLetter], &str>,
    reload: Option<&ReloadFailure>,
    now: Timestamp,
) -> String {
    let body = html! {
        @match letters {
            Err(e) => p.failing { "The store could not be read: " (e) },
            Ok([]) => p.ok #dead-letters-count { "No incident is waiting in the dead letters." },
            Ok(letters) => {
                p #dead-letters-count { (letters.len()) " incident(s) set aside after failing; each is retried on its own." }
                table #dead-letters {
                    thead { tr { th { "pair" } th { "incident" } th { "ticket" } th { "action" } th { "attempts" }
                                 th { "first failed" } th { "last failed" } th { "next try" } th { "last error" } } }
                    tbody { @for l in letters {
                        tr {
                            td { (l.pair) }
                            td { a href=(link_path(&l.pair, &l.incident_id)) { (l.incident_id) } }
                            td { (l.ticket_key.as_deref().unwrap_or("")) } td { (l.action) }
                            td.n { (l.attempts) } td { (time(&l.first_failed)) } td { (time(&l.last_failed)) }
                            td { (time(&l.next_attempt)) } td.failing { (l.last_error) }
                        }
                    } }
                }
            }
        }
    };
    layout("Dead letters", now, reload, body)
}
