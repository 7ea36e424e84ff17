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
/// The actions the ledger records, offered (not imposed) by the action filter.
const ACTIONS: &[&str] = &[
    "create_ticket",
    "adopt_ticket",
    "update_ticket",
    "update_incident",
    "write_back",
    "record_baseline",
    "copy_comment",
    "sync_comments",
    "merge",
    "repair",
    "sweep",
];

/// The most it shows.
pub const LEDGER_ENTRIES_MAX: usize = 5000;

/// The ledger's filters, as the GET form sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerForm {
    pub pair: String,
    pub incident: String,
    pub ticket: String,
    /// One action as recorded (`create_ticket`, `update_ticket`, …).
    pub action: String,
    /// A date (`2026-11-01`) or an RFC 3339 time: entries at or after it.
    pub since: String,
    /// Entries before it.
    pub until: String,
    pub limit: String,
    /// Entries with this actor (exact name; `itsm-bridge` for the bridge's own).
    pub actor: String,
}

impl LedgerForm {
    pub fn from_query(params: &HashMap<String, String>) -> LedgerForm {
        let text = |name: &str| params.get(name).map_or("", |v| v.trim()).to_owned();
        LedgerForm {
            pair: text("pair"),
            incident: text("incident"),
            ticket: text("ticket"),
            action: text("action"),
            since: text("since"),
            until: text("until"),
            limit: text("limit"),
            actor: text("actor"),
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
        let given = |text: &String| Some(text.clone()).filter(|t| !t.is_empty());
        Ok(LedgerFilter {
            actor: given(&self.actor),
            pair: given(&self.pair),
            incident_id: given(&self.incident),
            ticket_key: given(&self.ticket),
            action: given(&self.action),
            since: parse_time("since", &self.since)?,
            until: parse_time("until", &self.until)?,
            limit: Some(limit),
        })
    }
}

/// A date or an RFC 3339 time; empty is none.
fn parse_time(name: &str, text: &str) -> Result<Option<Timestamp>, String> {
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
        "{name} {text:?}: give a date (2026-11-01) or an RFC 3339 time (2026-11-01T08:00:00Z)"
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
            label { "Ticket " input type="text" name="ticket" value=(form.ticket); }
            label { "Action " input type="text" name="action" list="actions" value=(form.action); }
            label { "Actor " input type="text" name="actor" placeholder="itsm-bridge" value=(form.actor); }
            datalist #actions { @for a in ACTIONS { option value=(a); } }
            label { "Since " input type="text" name="since" placeholder="2026-11-01" value=(form.since); }
            label { "Until " input type="text" name="until" placeholder="2026-11-02" value=(form.until); }
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
                         th { "ticket" } th { "actor" } th { "changes" } th { "outcome" } th { "detail" } } }
            tbody {
                @for entry in entries {
                    @let r = &entry.record;
                    @let outcome = r.outcome.as_str();
                    tr {
                        td.n { (entry.seq) } td { (time(&r.time)) } td { (r.pair) } td.action { (r.action) }
                        td { a href=(link_path(&r.pair, &r.incident_id)) { (r.incident_id) } }
                        td { (r.ticket_key.as_deref().unwrap_or("")) }
                        td.actor { @for a in &r.actors {
                            div.actor { (a.name) " (" (a.side.as_str()) ")"
                                @if !a.fields.is_empty() { ": " (a.fields.join(", ")) } }
                        } }
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
