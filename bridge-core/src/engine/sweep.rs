//! The drift-repair sweep. Watermarks miss things: a clock that runs behind, a
//! search index that shows an edit late, an edit stamped before the watermark, a
//! page that failed. On its own schedule the sweep re-reads both sides of every
//! open link, compares them with the baseline whatever their modification times
//! say, and repairs what drifted through the same outbox as a cycle. Each repair
//! gets a `repair` ledger entry saying what had drifted, and each sweep a `sweep`
//! entry with its totals.
//!
//! A link is open while its incident is (as both sides last agreed), and for
//! [`SETTLED_AFTER`] after it closed, so a reopen the polls missed is still caught;
//! after that it is left to the polls. The sweep's cost (two reads per link, from
//! rate budgets like Graph's) so follows the open work, not every ticket ever made.

use super::*;

pub use crate::remap::SETTLED_AFTER;
use crate::store::LinkQuery;

/// How many links a sweep reads from the store at once.
const SWEEP_PAGE: u64 = 500;

/// Re-reads both sides of every open link of the pair and repairs what drifted
/// from the baseline. Incidents waiting in the dead letters are left to their own
/// retries; links of merged incidents are no longer synced and are not read.
/// Its logs are in a `sweep` span that names the pair.
pub async fn run_sweep(
    rt: &PairRuntime,
    store: &dyn Store,
    clock: &dyn Clock,
    dry_run: bool,
) -> Result<CycleReport, EngineError> {
    let span = tracing::info_span!("sweep", pair = %rt.pair);
    sweep(rt, store, clock, dry_run).instrument(span).await
}

async fn sweep(
    rt: &PairRuntime,
    store: &dyn Store,
    clock: &dyn Clock,
    dry_run: bool,
) -> Result<CycleReport, EngineError> {
    let mut cycle = Cycle::new(rt, store, clock, dry_run);
    cycle.sweeping = true;
    cycle.report.sweep = true;
    cycle.recover().await?;
    let waiting: HashSet<String> = store
        .dead_letters(Some(&rt.pair), None)?
        .into_iter()
        .map(|l| l.incident_id)
        .collect();
    // A page of links at a time: a sweep of 100,000 links holds one page, not
    // every link with its baseline.
    let (mut settled, mut gone, mut offset) = (0, 0, 0);
    loop {
        let page = store.link_page(&LinkQuery {
            pair: Some(rt.pair.clone()),
            offset,
            limit: SWEEP_PAGE,
            ..LinkQuery::default()
        })?;
        if page.links.is_empty() {
            break;
        }
        offset += page.links.len() as u64;
        let (links, left) = links_to_sweep(&cycle, page.links, &waiting);
        settled += left;
        for link in links {
            if !cycle.sweep_link(link).await? {
                gone += 1;
            }
        }
    }

    if !dry_run {
        let r = &cycle.report;
        let mut detail = format!(
            "checked {} open link(s); repaired {}",
            r.links_checked, r.repaired
        );
        if settled > 0 {
            detail.push_str(&format!(
                "; {settled} closed for over {} days left to the polls",
                SETTLED_AFTER.num_days()
            ));
        }
        if gone > 0 {
            detail.push_str(&format!("; {gone} could not be read (deleted on one side)"));
        }
        if r.failed > 0 {
            detail.push_str(&format!(
                "; {} failed and wait in the dead letters",
                r.failed
            ));
        }
        let record = LedgerRecord {
            outcome: if r.failed > 0 {
                Outcome::Failed
            } else {
                Outcome::Ok
            },
            detail: Some(detail),
            ..cycle.record("sweep", None, "", None)
        };
        store.append_ledger(&[record])?;
    }
    Ok(cycle.report)
}

/// The open links of the pair to sweep (active, not waiting in the dead letters
/// or held back) of one page, and how many were left out as closed for over
/// [`SETTLED_AFTER`].
fn links_to_sweep(
    cycle: &Cycle<'_>,
    page: Vec<Link>,
    waiting: &HashSet<String>,
) -> (Vec<Link>, usize) {
    let settled_before = cycle.clock.now() - SETTLED_AFTER;
    let mut settled = 0;
    let mut links = Vec::new();
    for link in page {
        if link.state != LinkState::Active
            || waiting.contains(&link.incident_id)
            || cycle.held_back.contains(&link.incident_id)
        {
            continue;
        }
        if link.updated < settled_before && incident_closed(cycle.rt, &link) {
            settled += 1;
            continue;
        }
        links.push(link);
    }
    (links, settled)
}

impl Cycle<'_> {
    /// Re-reads both sides of one link and repairs what drifted. `false`: the
    /// link could not be read because one side is gone (said in the ledger).
    async fn sweep_link(&mut self, link: Link) -> Result<bool, EngineError> {
        self.report.links_checked += 1;
        let incident = self.rt.source.get(&link.incident_id).await;
        let ticket = self.rt.tickets.get(&link.ticket_key).await;
        let (incident, ticket) = match (incident, ticket) {
            (Ok(i), Ok(t)) => (i, t),
            (Err(e), _) | (_, Err(e)) if e.kind == ErrorKind::NotFound => {
                // Deleted on one side: nothing to repair it from. Said once per
                // sweep, and the link is kept for the record.
                if !self.dry_run {
                    let record = LedgerRecord {
                        outcome: Outcome::Failed,
                        detail: Some(format!("the sweep could not read it: {e}")),
                        ..self.record("sweep", None, &link.incident_id, Some(&link.ticket_key))
                    };
                    self.store.append_ledger(&[record])?;
                }
                return Ok(false);
            }
            (Err(e), _) | (_, Err(e)) => {
                self.report.failed += 1;
                if !self.dry_run {
                    self.note_failure(&link.incident_id, Some(&link.ticket_key), "sweep", &e)?;
                }
                return Ok(true);
            }
        };
        if !self.dry_run {
            self.store
                .save_incidents_seen(&self.rt.pair, std::slice::from_ref(&incident))?;
        }
        let before = (self.report.writes(), self.report.planned.len());
        let drift = describe_drift(&link, &incident, &ticket);
        self.fetched
            .insert(link.incident_id.clone(), (incident.clone(), ticket.clone()));
        self.reconcile_and_apply(
            std::slice::from_ref(&incident),
            std::slice::from_ref(&ticket),
            vec![link.clone()],
        )
        .await?;
        let writes = self.report.writes() - before.0;
        if writes > 0 || self.report.planned.len() > before.1 {
            self.report.repaired += 1;
        }
        if writes > 0 {
            let record = LedgerRecord {
                detail: Some(format!(
                    "{drift}; {writes} write(s) brought it back in step"
                )),
                ..self.record("repair", None, &link.incident_id, Some(&link.ticket_key))
            };
            self.store.append_ledger(&[record])?;
        }
        // What was read for this link is not kept past it.
        self.fetched.remove(&link.incident_id);
        Ok(true)
    }
}

/// Whether both sides last agreed that the link's incident is closed.
fn incident_closed(rt: &PairRuntime, link: &Link) -> bool {
    crate::remap::incident_closed(&rt.mapping, link)
}

/// Says what the poll had missed, for the ledger.
fn describe_drift(link: &Link, incident: &IncidentSnapshot, ticket: &TicketSnapshot) -> String {
    let mut moved = Vec::new();
    if incident.modified > link.incident_modified {
        moved.push(format!(
            "the incident changed at {} (last synced from {})",
            incident.modified, link.incident_modified
        ));
    }
    if ticket.modified > link.ticket_modified {
        moved.push(format!(
            "the ticket changed at {} (last synced from {})",
            ticket.modified, link.ticket_modified
        ));
    }
    if moved.is_empty() {
        "drift found by the sweep: a side differed from the last sync although neither \
         modification time had moved"
            .to_string()
    } else {
        format!(
            "drift found by the sweep: {} without the poll seeing it",
            moved.join(" and ")
        )
    }
}
