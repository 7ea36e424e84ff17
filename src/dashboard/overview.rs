//! `/`: per pair its last run, outcome and counts; what the runs did since the
//! process started; the recent problems (dead letters, failed or skipped ledger
//! entries) and the newest ledger entries.

use std::time::Duration;

use bridge_core::engine::CycleReport;
use bridge_core::engine::progress::Backlog;
use bridge_core::ledger::LedgerEntry;
use bridge_core::model::{LinkState, Timestamp};
use bridge_core::store::{DeadLetter, StoreCounts};
use maud::{Markup, html};

use super::{ReloadFailure, layout, link_path, time};
use crate::report::{Done, PairStatus, Status, what_it_did};

/// What the overview shows, copied from the loop's status and read from the store.
#[derive(Debug)]
pub struct Overview<'a> {
    pub status: &'a Status,
    /// The store's counts, the newest dead letters and ledger entries (oldest
    /// first), or why the store could not be read.
    pub store: Result<(&'a StoreCounts, &'a [DeadLetter], &'a [LedgerEntry]), &'a str>,
    pub reload: Option<&'a ReloadFailure>,
    pub now: Timestamp,
    /// Per pair whose running cycle plans creates (a first sync's backlog):
    /// the creates done and planned so far.
    pub backlogs: &'a [(String, Backlog)],
}

pub fn render_overview(view: &Overview<'_>) -> String {
    let counts = view.store.ok().map(|(c, _, _)| c);
    let body = html! {
        p { "Running since " (time(&view.status.started)) "." }
        @if let Err(e) = view.store {
            p.failing { "The store could not be read: " (e) }
        }
        h2 { "Pairs" }
        (pairs_table(view.status, counts, view.backlogs))
        h2 { "Since start" }
        (done_table(view.status))
        @if let Ok((counts, letters, entries)) = view.store {
            (problems(letters, entries))
            h2 { "Ledger" }
            p { (counts.ledger_entries) " entries; the newest " (entries.len()) " ("
                a href="/ledger" { "all" } "):" }
            (super::ledger::entries_table(entries.iter().rev()))
        }
    };
    layout("itsm-bridge", view.now, view.reload, body)
}

fn pairs_table(
    status: &Status,
    counts: Option<&StoreCounts>,
    backlogs: &[(String, Backlog)],
) -> Markup {
    html! {
        table #pairs {
            tr { th { "pair" } th { "status" } th { "last run" } th { "took" } th { "outcome" }
                 th { "runs" } th { "failed runs" } th { "active links" } th { "merged links" }
                 th { "dead letters" } th { "backlog (created / planned)" } }
            @for p in &status.pairs {
                (pair_row(p, counts, backlogs.iter().find(|(pair, _)| *pair == p.pair).map(|(_, b)| b)))
            }
        }
    }
}

fn pair_row(p: &PairStatus, counts: Option<&StoreCounts>, backlog: Option<&Backlog>) -> Markup {
    let (class, state) = if !p.ok() {
        (
            "failing",
            format!("failing ({} in a row)", p.consecutive_failures()),
        )
    } else if p.last_run().is_some() {
        ("ok", "ok".to_owned())
    } else {
        ("idle", "not run yet".to_owned())
    };
    let (when, took, outcome) = match p.last_run() {
        Some((kind, last)) => (
            format!("{} {}", kind.as_str(), time(&last.finished)),
            took_text(last.duration),
            match &last.outcome {
                Ok(report) => summary(report),
                Err(e) => format!("failed: {e}"),
            },
        ),
        None => ("—".to_owned(), "—".to_owned(), "—".to_owned()),
    };
    let runs: u64 = p.jobs().map(|(_, j)| j.runs).sum();
    let failed: u64 = p.jobs().map(|(_, j)| j.failed).sum();
    let count = |n: Option<u64>| n.map_or_else(|| "?".to_owned(), |n| n.to_string());
    let links = |state| count(counts.map(|c| links_of(c, &p.pair, state)));
    let dead = count(counts.map(|c| per_pair(&c.dead_letters, &p.pair)));
    let filtered = |state: &str| {
        format!(
            "/links{}",
            super::query(&[("pair", &p.pair), ("state", state)])
        )
    };
    html! {
        tr {
            td { a href=(filtered("")) { (p.pair) } } td class=(class) { (state) } td { (when) }
            td.n { (took) } td { (outcome) } td.n { (runs) } td.n { (failed) }
            td.n { a href=(filtered("")) { (links(LinkState::Active)) } }
            td.n { a href=(filtered("merged")) { (links(LinkState::Merged)) } }
            td.n { a href=(filtered("failing")) { (dead) } }
            td.n { @match backlog {
                Some(b) => { (b.done) " / " (b.planned) },
                None => { "—" },
            } }
        }
    }
}

fn done_table(status: &Status) -> Markup {
    html! {
        table #done {
            tr { th { "pair" } @for (kind, _) in Done::default().writes() { th { (kind.replace('_', " ")) } }
                 th { "failed actions" } }
            @for p in &status.pairs {
                tr { td { (p.pair) } @for (_, n) in p.done.writes() { td.n { (n) } }
                     td.n { (p.done.failed_actions) } }
            }
        }
    }
}

/// The dead letters, newest failure first, and the ledger entries that failed
/// or were skipped among the newest.
fn problems(letters: &[DeadLetter], entries: &[LedgerEntry]) -> Markup {
    let failed: Vec<&LedgerEntry> = entries
        .iter()
        .rev()
        .filter(|e| e.record.outcome.as_str() != "ok")
        .collect();
    html! {
        h2 { "Recent problems" }
        @if letters.is_empty() && failed.is_empty() {
            p.ok #no-problems { "None: no dead letter, and no failed entry among the newest." }
        }
        @if !letters.is_empty() {
            p { "Incidents waiting in the dead letters (" a href="/dead-letters" { "all" } "):" }
            ul #problems {
                @for l in letters {
                    li { a href=(link_path(&l.pair, &l.incident_id)) { (l.pair) " " (l.incident_id) }
                         ": " (l.action) " failed " (l.attempts) " time(s), last at "
                         (time(&l.last_failed)) ": " span.failing { (l.last_error) } }
                }
            }
        }
        @if !failed.is_empty() {
            p { "Failed or skipped among the newest ledger entries:" }
            (super::ledger::entries_table(failed.into_iter()))
        }
    }
}

pub(crate) fn links_of(counts: &StoreCounts, pair: &str, state: LinkState) -> u64 {
    counts
        .links
        .iter()
        .filter(|(p, s, _)| p == pair && *s == state)
        .map(|(_, _, n)| n)
        .sum()
}

fn per_pair(counts: &[(String, u64)], pair: &str) -> u64 {
    counts
        .iter()
        .filter(|(p, _)| p == pair)
        .map(|(_, n)| n)
        .sum()
}

/// What a run did, in words: what it read, then every count that is not zero.
fn summary(r: &CycleReport) -> String {
    let done = what_it_did(r);
    let read = if r.sweep {
        format!("checked {} link(s)", r.links_checked)
    } else {
        format!(
            "read {} incident(s), {} ticket(s)",
            r.incidents_seen, r.tickets_seen
        )
    };
    format!("{read}; {done}")
}

/// A run's duration for people: milliseconds under a second.
fn took_text(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}
