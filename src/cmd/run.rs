//! `itsm-bridge run`: every `[[sync]]` pair on its schedule (or once), and each
//! pair's drift-repair sweep on its own schedule, until interrupted. The loop is
//! thin: the `Scheduler` says which jobs are due and when to wake; the engine runs
//! a pair's cycle or sweep. The jobs of one source's pairs take turns (so no two
//! write to one incident at once); sources run side by side. Each job's
//! outcome is recorded for the `[server]` endpoints (`crate::server`), served
//! beside the loops when `listen` is set. A run holds the store's write lock
//! (one writer per store) from before it opens the store until it exits; with
//! `[ledger] checkpoint` the daemon also signs the ledger's head on schedule.
//! The daemon reloads its config on SIGHUP or when a file of it changes
//! (`crate::reload`); each job takes the pairs as last (re)loaded.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use bridge_core::checkpoint::{self, SigningKey};
use bridge_core::config;
use bridge_core::engine::{self, CycleReport, PairRuntime, SystemClock};
use bridge_core::schedule::Scheduler;
use bridge_core::store::{Fence, SqliteStore, Store};
use connectors::wiring;

use tracing::Instrument;

use crate::reload::{LivePairs, Reloader, SharedReload};
use crate::replicas::{self, Drive, RunStore, StoreAt};
use crate::report::{self, RunKind, what_it_did};
use crate::server;
use crate::{CmdResult, Failure};

pub async fn run(path: &Path, once: bool, dry_run: bool, sweep: bool) -> CmdResult {
    let config = super::load_config(path)?;
    config::check_secrets(&config).map_err(|e| Failure::Input(e.to_string()))?;
    // Key Vault secrets are fetched before anything reads a secret.
    let secrets = wiring::fetch_key_vault_secrets(&config)
        .await
        .map_err(|e| Failure::Input(e.to_string()))?;
    let signing_key = super::ledger::signing_key(&config)?;
    let limiters = connectors::limits::LimiterRegistry::from_config(&config);
    let pairs = wiring::build_pairs_with_secrets(&config, &limiters, &secrets)
        .map_err(|e| Failure::Input(e.to_string()))?;
    // One writer per store (SQLite's lock) or per pair (PostgreSQL's leases):
    // held until this function returns (or the process dies, which releases
    // the lock at once and the leases when they expire).
    let at = StoreAt::of(&config)?;
    let run_store = match &at {
        StoreAt::Sqlite(path) if dry_run && !path.exists() => None,
        StoreAt::Postgres { .. } if dry_run => None,
        _ => Some(RunStore::open(
            &at,
            pairs.iter().map(|p| p.pair.clone()).collect(),
        )?),
    };
    let store: Arc<dyn Store> = match (&run_store, &at) {
        (Some(opened), _) => opened.store.clone(),
        (None, StoreAt::Postgres { .. }) => at.open_reader()?,
        (None, StoreAt::Sqlite(_)) => Arc::new(SqliteStore::open_in_memory()?),
    };
    let fence = run_store.as_ref().and_then(|r| r.fence.clone());
    if once {
        // On PostgreSQL, only the pairs this replica holds; the others are
        // driven by another replica.
        let (pairs, elsewhere): (Vec<PairRuntime>, Vec<PairRuntime>) = pairs
            .into_iter()
            .partition(|p| fence.as_ref().is_none_or(|f| f.holds(&p.pair)));
        for pair in &elsewhere {
            eprintln!(
                "{}: not run: another replica holds its lease and drives it",
                pair.pair
            );
        }
        let reports = run_once(&pairs, store.as_ref(), dry_run, sweep).await;
        let mut ok = print_reports(&reports, dry_run);
        if !dry_run {
            ok &= finish_waiting(&pairs, store.as_ref(), &reports).await;
            let undone = work_left(&pairs, store.as_ref())?;
            if !undone.is_empty() {
                eprintln!("left undone:");
                for line in &undone {
                    eprintln!("  {line}");
                }
                ok = false;
            }
        }
        ok &= elsewhere.is_empty();
        if let Some(opened) = run_store {
            opened.stop();
        }
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }

    // Signals are caught from here on: a stop during a job lets it finish, a
    // SIGHUP reloads the config.
    let stop = stop_signal().map_err(anyhow::Error::from)?;
    #[cfg(unix)]
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(anyhow::Error::from)?;
    let status: report::SharedStatus = Arc::new(Mutex::new(report::Status::new(
        pairs
            .iter()
            .zip(&config.syncs)
            .map(|(pair, sync)| (pair.pair.clone(), sync.sweep.is_some())),
        chrono::Utc::now(),
    )));
    let live = Arc::new(LivePairs::new(pairs.clone()));
    let reload_state: SharedReload = Arc::default();
    let reloader = Reloader::new(
        path.to_path_buf(),
        config.clone(),
        live.clone(),
        reload_state.clone(),
        at.open_reader()?,
    );
    let server = match config.server.listen {
        Some(listen) => {
            // A connection of its own: a scrape reads beside the loop's writes
            // (WAL) and never waits for the loop's connection.
            let reader = at.open_reader()?;
            let reload = reload_state.clone();
            Some(server::start(listen, status.clone(), reader, reload, stop.clone()).await?)
        }
        None => None,
    };
    tracing::info!(pairs = pairs.len(), db = %at.shown(), "itsm-bridge running");
    let by_source = jobs_by_source(&pairs, &config.syncs);
    let mut tasks = tokio::task::JoinSet::new();
    #[cfg(unix)]
    tasks.spawn(crate::reload::watch(reloader, hangup, stop.clone()));
    #[cfg(not(unix))]
    drop(reloader);
    if let (Some(schedule), Some(key)) = (config.ledger.checkpoint.clone(), signing_key) {
        // A connection of its own, read-only: verifying the chain before signing
        // reads the whole ledger, and must not hold up the pairs' writes.
        let reader = at.open_reader()?;
        let dir = config.ledger.checkpoint_dir.clone();
        tasks.spawn(run_checkpoints(schedule, key, dir, reader, stop.clone()));
    }
    for (_, jobs) in by_source {
        let (live, store, status, stop) =
            (live.clone(), store.clone(), status.clone(), stop.clone());
        tasks.spawn(run_jobs(jobs, live, store, fence.clone(), status, stop));
    }
    let progress = tokio::spawn(show_progress());
    while let Some(done) = tasks.join_next().await {
        done.map_err(anyhow::Error::from)?;
    }
    progress.abort();
    tracing::info!("stopping");
    if let Some(server) = server {
        server.stopped().await;
    }
    if let Some(opened) = run_store {
        opened.stop();
    }
    Ok(ExitCode::SUCCESS)
}

/// Each source's jobs (its pairs' cycles and sweeps), in config order.
///
/// The pairs of one source run on a task of their own, taking turns: two pairs
/// writing to one incident at once could lose each other's tags (Graph replaces
/// the whole set). Sources run side by side, so one held up by its remote's pace
/// (a sweep paced at Graph's 1,500 requests an hour) never holds up another.
fn jobs_by_source(pairs: &[PairRuntime], syncs: &[config::SyncConfig]) -> Vec<(String, Vec<Job>)> {
    let mut by_source: Vec<(String, Vec<Job>)> = Vec::new();
    for (index, (pair, sync)) in pairs.iter().zip(syncs).enumerate() {
        let mut jobs = vec![Job {
            pair: index,
            kind: RunKind::Cycle,
            schedule: sync.schedule.clone(),
        }];
        if let Some(sweep) = &sync.sweep {
            jobs.push(Job {
                pair: index,
                kind: RunKind::Sweep,
                schedule: sweep.clone(),
            });
        }
        match by_source.iter_mut().find(|(s, _)| *s == pair.source_name) {
            Some((_, all)) => all.extend(jobs),
            None => by_source.push((pair.source_name.clone(), jobs)),
        }
    }
    by_source
}

/// While a cycle works through a backlog of creates (a first sync), its
/// progress: on a terminal, one line updated every second (done / planned,
/// rate, time left at the pace so far); otherwise a log line every
/// [`PROGRESS_LOG_EVERY`] with the same figures as fields.
async fn show_progress() {
    use std::io::{IsTerminal, Write};
    let terminal = std::io::stderr().is_terminal();
    let every = if terminal {
        std::time::Duration::from_secs(1)
    } else {
        PROGRESS_LOG_EVERY
    };
    loop {
        tokio::time::sleep(every).await;
        for (pair, b) in bridge_core::engine::progress::backlogs() {
            let elapsed = b.since.elapsed().as_secs_f64().max(1e-3);
            let rate = b.done as f64 / elapsed;
            let eta = (rate > 0.0).then(|| (b.left() as f64 / rate).round() as u64);
            if terminal {
                let eta = eta.map_or("-".into(), |s| format!("{}m{:02}s", s / 60, s % 60));
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r{pair}: {}/{} tickets, {rate:.1}/s, ETA {eta}   ",
                    b.done, b.planned
                );
                let _ = err.flush();
            } else {
                tracing::info!(
                    pair = %pair,
                    done = b.done,
                    planned = b.planned,
                    left = b.left(),
                    per_second = format!("{rate:.2}"),
                    eta_seconds = eta,
                    "first sync progress"
                );
            }
        }
    }
}

/// How often the progress of a backlog is logged when stderr is not a terminal.
const PROGRESS_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A pair's cycle or sweep, on its schedule.
struct Job {
    /// Index into the pairs.
    pair: usize,
    kind: RunKind,
    schedule: bridge_core::schedule::Schedule,
}

/// A sweep reads every open link of its pair from the store, and its store work
/// grows with them: it runs on the blocking pool (its remote reads still driven by
/// the runtime), so a large sweep never holds up an async worker, and with it the
/// other sources' cycles and the server.
async fn sweep_off_the_workers(
    pairs: &Arc<Vec<PairRuntime>>,
    index: usize,
    store: &Arc<dyn Store>,
    span: tracing::Span,
) -> Result<engine::CycleReport, engine::EngineError> {
    let (pairs, store) = (Arc::clone(pairs), Arc::clone(store));
    let runtime = tokio::runtime::Handle::current();
    let sweep = tokio::task::spawn_blocking(move || {
        runtime.block_on(
            engine::run_sweep(&pairs[index], store.as_ref(), &SystemClock, false).instrument(span),
        )
    });
    match sweep.await {
        Ok(result) => result,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Jobs on their schedules, one at a time, until the stop signal; a job under
/// way finishes first.
async fn run_jobs(
    jobs: Vec<Job>,
    live: Arc<LivePairs>,
    store: Arc<dyn Store>,
    fence: Option<Arc<Fence>>,
    status: report::SharedStatus,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let schedules = jobs.iter().map(|j| j.schedule.clone()).collect();
    let mut scheduler = Scheduler::new(schedules, chrono::Utc::now());
    let mut runs = vec![0u64; jobs.len()];
    loop {
        for job in scheduler.poll_due(chrono::Utc::now()) {
            let started = std::time::Instant::now();
            let (index, kind) = (jobs[job].pair, jobs[job].kind);
            // The pairs as the config last (re)loaded built them.
            let pairs = live.current();
            let pair = &pairs[index];
            // On PostgreSQL, only a pair whose lease this replica holds.
            let Drive::Yes(_busy) = replicas::may_drive(fence.as_ref(), &pair.pair) else {
                scheduler.handle_done(job, chrono::Utc::now(), None);
                continue;
            };
            runs[job] += 1;
            // The engine's own span names the pair and says cycle or sweep; this
            // one numbers the job's runs, and holds what is logged after it.
            let span = tracing::info_span!("job", run = runs[job]);
            let result = match kind {
                RunKind::Cycle => {
                    let cycle = engine::run_cycle(pair, store.as_ref(), &SystemClock, false)
                        .instrument(span.clone())
                        .await;
                    if cycle.is_ok() {
                        remap_after_cycle(&live, &pair.pair, store.as_ref())
                            .instrument(span.clone())
                            .await;
                    }
                    cycle
                }
                RunKind::Sweep => sweep_off_the_workers(&pairs, index, &store, span.clone()).await,
            };
            let _in_job = span.enter();
            status
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(
                    index,
                    kind,
                    chrono::Utc::now(),
                    started.elapsed(),
                    result.as_ref().map_err(ToString::to_string),
                );
            let retry = match result {
                Ok(report) => {
                    log_report(&report);
                    None
                }
                // A replica that lost the pair's lease stops driving it until it
                // holds it again (the lease keeper says when), with no retry.
                Err(e) if fence.as_ref().is_some_and(|f| !f.holds(&pair.pair)) => {
                    tracing::warn!(pair = %pair.pair, error = %e, "{} stopped: this replica no longer holds the pair's lease", kind.as_str());
                    None
                }
                Err(e) => {
                    tracing::error!(pair = %pair.pair, error = %e, "{} failed; retrying in 30s", kind.as_str());
                    Some(chrono::Duration::seconds(30))
                }
            };
            scheduler.handle_done(job, chrono::Utc::now(), retry);
            drop(_in_job);
            if *stop.borrow() {
                return;
            }
        }
        if *stop.borrow() {
            return;
        }
        let wait = scheduler
            .poll_deadline()
            .map(|t| (t - chrono::Utc::now()).to_std().unwrap_or_default())
            .unwrap_or(std::time::Duration::from_secs(3600));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
}

/// After a reload changed the pair's mapping: what the edit changes on the
/// pair's links, rewritten on the pair's own task (no cycle of it writes at the
/// same time), from the baselines the cycle just brought up to date. A remap
/// that fails is tried again after the next cycle.
async fn remap_after_cycle(live: &LivePairs, name: &str, store: &dyn Store) {
    let Some(old) = live.take_remap(name) else {
        return;
    };
    // The pairs as the reload that queued the remap left them (not as this
    // job began: the reload may have come during the cycle).
    let pairs = live.current();
    let Some(pair) = pairs.iter().find(|p| p.pair == name) else {
        return;
    };
    match engine::run_remap(pair, &old, store, &SystemClock, false).await {
        Ok((report, _)) => log_report(&report),
        Err(e) => {
            tracing::error!(pair = %pair.pair, error = %e, "the mapping edit's rewrites failed; trying again after the next cycle");
            live.retry_remap(&pair.pair, old);
        }
    }
}

/// Prints each report (or error); true when none failed.
fn print_reports(
    reports: &[Result<CycleReport, (String, engine::EngineError)>],
    dry_run: bool,
) -> bool {
    let mut ok = true;
    for report in reports {
        match report {
            Ok(r) => {
                print_report(r, dry_run);
                ok &= r.failed == 0;
            }
            Err((pair, e)) => {
                eprintln!("{pair}: {e}");
                ok = false;
            }
        }
    }
    ok
}

/// `run --once` finishes what it can: creates whose answer was lost, in a ticket
/// system that can only tell through a lagging search, are waited for (saying
/// so) and the pair's cycle runs again. True when those cycles succeeded.
async fn finish_waiting(
    pairs: &[PairRuntime],
    store: &dyn Store,
    reports: &[Result<CycleReport, (String, engine::EngineError)>],
) -> bool {
    let mut ok = true;
    for pair in pairs {
        let waiting: Vec<&engine::WaitingCreate> = reports
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .filter(|r| r.pair == pair.pair)
            .flat_map(|r| &r.waiting)
            .collect();
        let Some(ready_at) = waiting.iter().map(|w| w.ready_at).max() else {
            continue;
        };
        let wait = (ready_at - chrono::Utc::now()).to_std().unwrap_or_default();
        println!(
            "{}: waiting {} s for {}'s search before adopting {} create(s) whose answer was lost",
            pair.pair,
            wait.as_secs_f64().ceil(),
            engine::ticket_system_name(pair.mapping.ticket_kind),
            waiting.len()
        );
        tokio::time::sleep(wait).await;
        let again = engine::run_cycle(pair, store, &SystemClock, false)
            .await
            .map_err(|e| (pair.pair.clone(), e));
        ok &= print_reports(&[again], false);
    }
    ok
}

/// What a run leaves for later, in words: intents still pending (a create whose
/// outcome is not known yet) and incidents waiting in the dead letters.
pub fn work_left(pairs: &[PairRuntime], store: &dyn Store) -> anyhow::Result<Vec<String>> {
    let names: Vec<&str> = pairs.iter().map(|p| p.pair.as_str()).collect();
    let mut left = Vec::new();
    for (_, intent) in store.pending_intents()? {
        if names.contains(&intent.pair.as_str()) {
            left.push(format!(
                "{}: incident {}: {} pending since {}; the next run looks it up before trying again",
                intent.pair,
                intent.incident_id,
                intent.kind,
                intent.created.format("%Y-%m-%d %H:%M:%S")
            ));
        }
    }
    for letter in store.dead_letters(None, None)? {
        if names.contains(&letter.pair.as_str()) {
            left.push(format!(
                "{}: incident {}: {} failed {} time(s), next try at {}: {}",
                letter.pair,
                letter.incident_id,
                letter.action,
                letter.attempts,
                letter.next_attempt.format("%Y-%m-%d %H:%M:%S"),
                letter.last_error
            ));
        }
    }
    Ok(left)
}

/// Signed checkpoints of the ledger's head on the `[ledger] checkpoint`
/// schedule, and one more at a clean stop when the head moved since the last.
async fn run_checkpoints(
    schedule: bridge_core::schedule::Schedule,
    key: SigningKey,
    dir: PathBuf,
    store: Arc<dyn Store>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let key = Arc::new(key);
    let mut scheduler = Scheduler::new(vec![schedule], chrono::Utc::now());
    let mut last_seq = None;
    loop {
        for job in scheduler.poll_due(chrono::Utc::now()) {
            last_seq = write_checkpoint_blocking(&store, &key, &dir)
                .await
                .or(last_seq);
            scheduler.handle_done(job, chrono::Utc::now(), None);
        }
        if *stop.borrow() {
            break;
        }
        let wait = scheduler
            .poll_deadline()
            .map(|t| (t - chrono::Utc::now()).to_std().unwrap_or_default())
            .unwrap_or(std::time::Duration::from_secs(3600));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
    let head = store.counts().map(|c| c.ledger_entries as i64).ok();
    if head.is_some() && head != last_seq {
        write_checkpoint_blocking(&store, &key, &dir).await;
    }
}

/// Writes one checkpoint on the blocking pool: verifying the chain first reads
/// the whole ledger, which grows without bound, and must not hold an async
/// worker (the pairs' tasks and the server run on them). The sequence number
/// it covers.
async fn write_checkpoint_blocking(
    store: &Arc<dyn Store>,
    key: &Arc<SigningKey>,
    dir: &Path,
) -> Option<i64> {
    let (store, key, dir) = (store.clone(), key.clone(), dir.to_path_buf());
    match tokio::task::spawn_blocking(move || write_checkpoint(store.as_ref(), &key, &dir)).await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::error!(error = %e, "ledger checkpoint failed");
            None
        }
    }
}

/// Writes one checkpoint and logs it; the sequence number it covers.
fn write_checkpoint(store: &dyn Store, key: &SigningKey, dir: &Path) -> Option<i64> {
    match checkpoint::write_checkpoint(store, key, dir, chrono::Utc::now()) {
        Ok((path, written)) => {
            tracing::info!(
                path = %path.display(),
                seq = written.seq,
                head = %written.head,
                key_id = %written.key_id,
                "ledger checkpoint written"
            );
            Some(written.seq)
        }
        Err(e) => {
            tracing::error!(error = %e, "ledger checkpoint failed");
            None
        }
    }
}

/// Runs every pair's cycle once, in order, each followed by its sweep if asked.
pub async fn run_once(
    pairs: &[PairRuntime],
    store: &dyn Store,
    dry_run: bool,
    sweep: bool,
) -> Vec<Result<CycleReport, (String, engine::EngineError)>> {
    let mut out = Vec::new();
    for pair in pairs {
        out.push(
            engine::run_cycle(pair, store, &SystemClock, dry_run)
                .await
                .map_err(|e| (pair.pair.clone(), e)),
        );
        if sweep {
            out.push(
                engine::run_sweep(pair, store, &SystemClock, dry_run)
                    .await
                    .map_err(|e| (pair.pair.clone(), e)),
            );
        }
    }
    out
}

fn log_report(r: &CycleReport) {
    tracing::info!(
        pair = %r.pair,
        incidents = r.incidents_seen,
        tickets = r.tickets_seen,
        created = r.tickets_created,
        adopted = r.tickets_adopted,
        tickets_updated = r.tickets_updated,
        incidents_updated = r.incidents_updated,
        write_backs = r.write_backs,
        conflicts = r.conflicts,
        merged = r.merged,
        comments = r.comments_copied,
        links_checked = r.links_checked,
        repaired = r.repaired,
        failed = r.failed,
        waiting_for_search = r.waiting.len(),
        "{} done",
        if r.sweep { "sweep" } else { "cycle" }
    );
}

pub fn print_report(r: &CycleReport, dry_run: bool) {
    let done = what_it_did(r);
    if r.sweep {
        println!(
            "{}: sweep checked {} open link(s); {}",
            r.pair, r.links_checked, done
        );
    } else {
        println!(
            "{}: read {} incident(s) and {} ticket(s); {}",
            r.pair, r.incidents_seen, r.tickets_seen, done
        );
    }
    for line in &r.unresolved {
        println!("  {line}");
    }
    if dry_run {
        if r.planned.is_empty() {
            println!("  (dry run) nothing to do");
        }
        for action in &r.planned {
            println!(
                "  (dry run) {} incident {}",
                action.kind(),
                action.incident_id()
            );
        }
    }
}

/// Turns true on Ctrl-C or SIGTERM. The handlers are installed before this returns.
fn stop_signal() -> std::io::Result<tokio::sync::watch::Receiver<bool>> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(true);
    });
    Ok(rx)
}
