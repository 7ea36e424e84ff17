//! What a run did and how each pair's jobs went: the `Status` record `run`'s
//! daemon keeps (one entry per pair, updated after every cycle and sweep) and
//! `server` reads, and `what_it_did`, a run's counts in words, which both the
//! command's output and the dashboard print. Nothing here does IO.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bridge_core::engine::CycleReport;
use bridge_core::model::Timestamp;

/// The two jobs a pair has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Cycle,
    Sweep,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Cycle => "cycle",
            RunKind::Sweep => "sweep",
        }
    }
}

/// What the run loop has seen of every pair since the process started; the
/// handlers' only view of the loop.
#[derive(Debug, Clone)]
pub struct Status {
    pub started: Timestamp,
    /// In config order.
    pub pairs: Vec<PairStatus>,
}

/// Shared between the run loop (which records) and the handlers (which copy).
pub type SharedStatus = Arc<Mutex<Status>>;

#[derive(Debug, Clone)]
pub struct PairStatus {
    /// `<source>-><ticket_system>`.
    pub pair: String,
    pub cycle: JobStatus,
    /// `None` when the pair has no sweep schedule.
    pub sweep: Option<JobStatus>,
    /// What all its runs did, summed.
    pub done: Done,
}

/// The runs of one job (a pair's cycle or its sweep).
#[derive(Debug, Clone, Default)]
pub struct JobStatus {
    pub runs: u64,
    pub failed: u64,
    /// Failed runs since the last one that succeeded.
    pub consecutive_failures: u64,
    pub last: Option<LastRun>,
}

#[derive(Debug, Clone)]
pub struct LastRun {
    pub finished: Timestamp,
    pub duration: Duration,
    /// The run's report, or why the run failed.
    pub outcome: Result<CycleReport, String>,
}

/// What runs did, counted by kind: the `kind` label of `itsm_bridge_writes_total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Done {
    pub tickets_created: u64,
    pub tickets_adopted: u64,
    pub tickets_updated: u64,
    pub incidents_updated: u64,
    pub write_backs: u64,
    pub comments_copied: u64,
    pub merges: u64,
    pub conflicts: u64,
    pub drift_repairs: u64,
    /// Actions that failed and set their incident aside as a dead letter.
    pub failed_actions: u64,
}

impl Done {
    pub(crate) fn of(r: &CycleReport) -> Done {
        let n = |v: usize| v as u64;
        Done {
            tickets_created: n(r.tickets_created),
            tickets_adopted: n(r.tickets_adopted),
            tickets_updated: n(r.tickets_updated),
            incidents_updated: n(r.incidents_updated),
            write_backs: n(r.write_backs),
            comments_copied: n(r.comments_copied),
            merges: n(r.merged),
            conflicts: n(r.conflicts),
            drift_repairs: n(r.repaired),
            failed_actions: n(r.failed),
        }
    }

    pub(crate) fn add(&mut self, other: Done) {
        self.tickets_created += other.tickets_created;
        self.tickets_adopted += other.tickets_adopted;
        self.tickets_updated += other.tickets_updated;
        self.incidents_updated += other.incidents_updated;
        self.write_backs += other.write_backs;
        self.comments_copied += other.comments_copied;
        self.merges += other.merges;
        self.conflicts += other.conflicts;
        self.drift_repairs += other.drift_repairs;
        self.failed_actions += other.failed_actions;
    }

    /// The writes by kind, in exposition order (conflicts settled included).
    pub(crate) fn writes(&self) -> [(&'static str, u64); 9] {
        [
            ("tickets_created", self.tickets_created),
            ("tickets_adopted", self.tickets_adopted),
            ("tickets_updated", self.tickets_updated),
            ("incidents_updated", self.incidents_updated),
            ("write_backs", self.write_backs),
            ("comments_copied", self.comments_copied),
            ("merges", self.merges),
            ("conflicts", self.conflicts),
            ("drift_repairs", self.drift_repairs),
        ]
    }
}

impl Status {
    /// Every pair by name, with whether it has a sweep, none run yet.
    pub fn new(pairs: impl IntoIterator<Item = (String, bool)>, started: Timestamp) -> Status {
        Status {
            started,
            pairs: pairs
                .into_iter()
                .map(|(pair, sweeps)| PairStatus {
                    pair,
                    cycle: JobStatus::default(),
                    sweep: sweeps.then(JobStatus::default),
                    done: Done::default(),
                })
                .collect(),
        }
    }

    /// Records a finished run of pair `pair` (its index in config order).
    pub fn record(
        &mut self,
        pair: usize,
        kind: RunKind,
        finished: Timestamp,
        duration: Duration,
        outcome: Result<&CycleReport, String>,
    ) {
        let Some(status) = self.pairs.get_mut(pair) else {
            return;
        };
        let job = match kind {
            RunKind::Cycle => &mut status.cycle,
            RunKind::Sweep => status.sweep.get_or_insert_with(JobStatus::default),
        };
        job.runs += 1;
        match &outcome {
            Ok(report) => {
                job.consecutive_failures = 0;
                status.done.add(Done::of(report));
            }
            Err(_) => {
                job.failed += 1;
                job.consecutive_failures += 1;
            }
        }
        job.last = Some(LastRun {
            finished,
            duration,
            outcome: outcome.map(|r| CycleReport {
                // A daemon never dry-runs; keep the copy small all the same.
                planned: Vec::new(),
                ..r.clone()
            }),
        });
    }
}

impl PairStatus {
    /// The cycle, then the sweep if the pair has one.
    pub(crate) fn jobs(&self) -> impl Iterator<Item = (RunKind, &JobStatus)> {
        std::iter::once((RunKind::Cycle, &self.cycle))
            .chain(self.sweep.iter().map(|s| (RunKind::Sweep, s)))
    }

    /// Neither its last cycle nor its last sweep failed (not run yet is fine).
    pub fn ok(&self) -> bool {
        self.jobs().all(|(_, job)| job.ok())
    }

    /// The run that finished last, of either job.
    pub(crate) fn last_run(&self) -> Option<(RunKind, &LastRun)> {
        self.jobs()
            .filter_map(|(kind, job)| job.last.as_ref().map(|last| (kind, last)))
            .max_by_key(|(_, last)| last.finished)
    }

    pub(crate) fn consecutive_failures(&self) -> u64 {
        self.jobs()
            .map(|(_, job)| job.consecutive_failures)
            .max()
            .unwrap_or(0)
    }

    /// Why it is failing: each failing job's last error.
    pub(crate) fn error(&self) -> Option<String> {
        let errors: Vec<String> = self
            .jobs()
            .filter_map(|(kind, job)| match job.last.as_ref().map(|l| &l.outcome) {
                Some(Err(e)) => Some(format!("{}: {e}", kind.as_str())),
                _ => None,
            })
            .collect();
        (!errors.is_empty()).then(|| errors.join("; "))
    }
}

impl JobStatus {
    pub(crate) fn ok(&self) -> bool {
        self.last.as_ref().is_none_or(|l| l.outcome.is_ok())
    }
}

/// What a run wrote, in words: every count that is not zero, or "nothing to write".
pub fn what_it_did(r: &CycleReport) -> String {
    let mut done = Vec::new();
    for (n, what) in [
        (r.tickets_created, "ticket(s) created"),
        (r.tickets_adopted, "adopted"),
        (r.tickets_updated, "ticket(s) updated"),
        (r.incidents_updated, "incident(s) updated"),
        (r.write_backs, "written back"),
        (r.conflicts, "conflict(s) settled"),
        (r.merged, "merged incident(s) handled"),
        (r.comments_copied, "comment(s) copied"),
        (r.repaired, "drifted link(s) repaired"),
        (r.recovered, "recovered from earlier failures"),
        (
            r.waiting.len(),
            "create(s) waiting for the ticket system's search",
        ),
        (r.failed, "FAILED"),
    ] {
        if n > 0 {
            done.push(format!("{n} {what}"));
        }
    }
    if done.is_empty() {
        done.push("nothing to write".into());
    }
    done.join(", ")
}
