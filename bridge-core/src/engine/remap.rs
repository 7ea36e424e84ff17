//! Carrying out a mapping edit. When a reload changes a pair's mapping, the
//! writes [`crate::remap::plan_remap`] decides for every link the edit reaches
//! go through the same outbox as a cycle's, and a `remap` ledger entry says
//! what the edit did in all. `mapping impact` counts the same plan with no
//! write, so what it prints is what this writes.
//!
//! It runs as a job of the pair (after the pair's cycle, on its source's task),
//! so no cycle of the pair writes at the same time, and from the baselines that
//! cycle brought up to date. A write refused as a concurrent change is not
//! re-planned: the incident goes to the dead letters, and its retry reads both
//! sides afresh.

use super::*;
use crate::mapping::Mapping;
use crate::remap::{Edit, Impact, plan_remap, reaches};
use crate::store::LinkQuery;

/// Rewrites what the edit from `old` to the pair's running mapping changes on
/// its links; in a dry run, only plans. Logs in a `remap` span naming the pair.
pub async fn run_remap(
    rt: &PairRuntime,
    old: &Mapping,
    store: &dyn Store,
    clock: &dyn Clock,
    dry_run: bool,
) -> Result<(CycleReport, Impact), EngineError> {
    let span = tracing::info_span!("remap", pair = %rt.pair);
    remap(rt, old, store, clock, dry_run).instrument(span).await
}

async fn remap(
    rt: &PairRuntime,
    old: &Mapping,
    store: &dyn Store,
    clock: &dyn Clock,
    dry_run: bool,
) -> Result<(CycleReport, Impact), EngineError> {
    let mut cycle = Cycle::new(rt, store, clock, dry_run);
    cycle.recover().await?;
    let edit = Edit {
        source: &rt.source_name,
        old,
        new: &rt.mapping,
    };
    let (impact, plans) = plan_edit(store, &rt.pair, edit, clock.now())?;
    for (link, actions) in plans {
        if dry_run {
            cycle.report.planned.extend(actions);
            continue;
        }
        // The edit is the bridge's own doing, whichever side's value it renders.
        let _ = cycle.bridge_acts(&link.incident_id);
        let mut links = HashMap::from([(link.incident_id.clone(), link)]);
        for action in actions {
            cycle.apply(action, &mut links, false).await?;
        }
    }
    if !dry_run {
        let record = LedgerRecord {
            outcome: if cycle.report.failed > 0 {
                Outcome::Failed
            } else {
                Outcome::Ok
            },
            detail: Some(summary(&impact, &cycle.report)),
            ..cycle.record("remap", None, "", None)
        };
        store.append_ledger(&[record])?;
    }
    tracing::info!(
        links = impact.links,
        writes = impact.writes(),
        failed = cycle.report.failed,
        "the mapping edit is carried out"
    );
    Ok((cycle.report, impact))
}

/// A link an edit rewrites, with the actions that do it.
pub type LinkRewrite = (Link, Vec<Action>);

/// An edit over the pair's stored links, with no remote call: its impact, and
/// the links it rewrites with their actions. `mapping impact` prints the
/// impact, a reload is held by it, and `run_remap` carries the actions out.
pub fn plan_edit(
    store: &dyn Store,
    pair: &str,
    edit: Edit<'_>,
    now: Timestamp,
) -> Result<(Impact, Vec<LinkRewrite>), StoreError> {
    let mut impact = Impact::default();
    let mut plans = Vec::new();
    // A page of links at a time; only those the edit rewrites are kept.
    let mut offset = 0;
    loop {
        let page = store.link_page(&LinkQuery {
            pair: Some(pair.to_owned()),
            offset,
            limit: SEEN_CHUNK as u64,
            ..LinkQuery::default()
        })?;
        if page.links.is_empty() {
            break;
        }
        offset += page.links.len() as u64;
        let (links, left): (Vec<Link>, Vec<Link>) = page
            .links
            .into_iter()
            .partition(|link| reaches(edit.old, link, now));
        impact.left_alone += left.len();
        let seen = incidents_seen(store, pair, &links)?;
        for link in links {
            let plan = plan_remap(edit, &link, seen.get(&link.incident_id));
            impact.add(&link, &plan);
            if !plan.actions.is_empty() {
                plans.push((link, plan.actions));
            }
        }
    }
    Ok((impact, plans))
}

/// How many links' incidents are read from the store at once.
const SEEN_CHUNK: usize = 500;

/// The incidents of these links as the store last kept them, by id.
fn incidents_seen(
    store: &dyn Store,
    pair: &str,
    links: &[Link],
) -> Result<HashMap<String, IncidentSnapshot>, StoreError> {
    let ids: Vec<String> = links.iter().map(|l| l.incident_id.clone()).collect();
    Ok(store
        .incidents_seen(pair, &ids)?
        .into_iter()
        .map(|i| (i.id.clone(), i))
        .collect())
}

/// The `remap` ledger entry's words.
fn summary(impact: &Impact, report: &CycleReport) -> String {
    let mut detail = format!(
        "the mapping was edited: {} link(s) followed, {} ticket(s) and {} incident(s) rewritten",
        impact.links, report.tickets_updated, report.incidents_updated
    );
    if !impact.per_field.is_empty() {
        let fields: Vec<String> = impact
            .per_field
            .iter()
            .map(|(f, n)| format!("{f}: {n}"))
            .collect();
        detail.push_str(&format!(" ({})", fields.join(", ")));
    }
    if report.failed > 0 {
        detail.push_str(&format!(
            "; {} failed and wait in the dead letters",
            report.failed
        ));
    }
    if impact.undecided > 0 {
        detail.push_str(&format!(
            "; {} left to the next sweep (a template, and the incident never kept as seen)",
            impact.undecided
        ));
    }
    detail
}
