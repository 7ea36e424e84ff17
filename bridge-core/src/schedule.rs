//! When each `[[sync]]` pair runs. `Schedule` parses a cron line (5 fields as in a
//! crontab, 6 with seconds first, 7 with a year, POSIX weekdays: 0/7 = Sunday);
//! `Scheduler` is a pure state machine over virtual time: it is told the time, says
//! which jobs are due and when it next needs to be woken. It never reads the clock.

use std::str::FromStr;

use chrono::Duration;
use croner::Cron;

use crate::model::Timestamp;

/// A parsed cron line.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    cron: Cron,
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let fields = text.split_whitespace().count();
        if !(5..=7).contains(&fields) && !text.trim_start().starts_with('@') {
            return Err(format!(
                "cron line `{text}` has {fields} fields; write 5 (min hour day month weekday) or 6 (with seconds first)"
            ));
        }
        let cron = Cron::from_str(text).map_err(|e| format!("invalid cron line `{text}`: {e}"))?;
        Ok(Schedule {
            text: text.to_string(),
            cron,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first run strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        self.cron.find_next_occurrence(&after, false).ok()
    }
}

/// Which jobs run when. Jobs are indexed by their position at construction.
#[derive(Debug, Clone)]
pub struct Scheduler {
    jobs: Vec<Job>,
}

#[derive(Debug, Clone)]
struct Job {
    schedule: Schedule,
    /// When it is next due; `None` while it runs (or when the cron line never fires again).
    next_due: Option<Timestamp>,
    running: bool,
}

impl Scheduler {
    /// Every job is due at once at `now` (the first run does not wait for the schedule).
    pub fn new(schedules: Vec<Schedule>, now: Timestamp) -> Scheduler {
        let jobs = schedules
            .into_iter()
            .map(|schedule| Job {
                schedule,
                next_due: Some(now),
                running: false,
            })
            .collect();
        Scheduler { jobs }
    }

    /// The jobs due at `now`, which are marked running. A job still running is not
    /// started twice; runs it missed while busy collapse into one.
    pub fn poll_due(&mut self, now: Timestamp) -> Vec<usize> {
        let mut due = Vec::new();
        for (i, job) in self.jobs.iter_mut().enumerate() {
            if !job.running && job.next_due.is_some_and(|t| t <= now) {
                job.running = true;
                job.next_due = None;
                due.push(i);
            }
        }
        due
    }

    /// A job finished at `now`: it is next due at its next cron time after `now`,
    /// or after `retry_in` if it failed and asks to be retried sooner.
    pub fn handle_done(&mut self, job: usize, now: Timestamp, retry_in: Option<Duration>) {
        let j = &mut self.jobs[job];
        j.running = false;
        let scheduled = j.schedule.next_after(now);
        let retry = retry_in.map(|d| now + d);
        j.next_due = match (scheduled, retry) {
            (Some(s), Some(r)) => Some(s.min(r)),
            (s, r) => s.or(r),
        };
    }

    /// When the driver must wake next, if any job is waiting.
    pub fn poll_deadline(&self) -> Option<Timestamp> {
        self.jobs
            .iter()
            .filter(|j| !j.running)
            .filter_map(|j| j.next_due)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn at(h: u32, m: u32, s: u32) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 11, 22, h, m, s).unwrap()
    }

    #[test]
    fn accepts_crontab_lines_and_lines_with_seconds() {
        let five = Schedule::parse("*/5 * * * *").unwrap();
        assert_eq!(five.next_after(at(10, 2, 0)), Some(at(10, 5, 0)));
        let six = Schedule::parse("*/30 * * * * *").unwrap();
        assert_eq!(six.next_after(at(10, 0, 10)), Some(at(10, 0, 30)));
    }

    #[test]
    fn weekdays_are_posix_sunday_is_zero() {
        // 2026-11-22 is a Sunday.
        let sunday = Schedule::parse("0 9 * * 0").unwrap();
        assert_eq!(sunday.next_after(at(8, 0, 0)), Some(at(9, 0, 0)));
        let monday = Schedule::parse("0 9 * * 1").unwrap();
        assert_eq!(
            monday.next_after(at(8, 0, 0)),
            Some(Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap())
        );
    }

    #[test]
    fn rejects_bad_lines_with_a_hint() {
        let err = Schedule::parse("* * *").unwrap_err();
        assert!(err.contains("has 3 fields"), "{err}");
        assert!(Schedule::parse("61 * * * *").is_err());
    }

    #[test]
    fn runs_at_start_then_on_schedule_never_twice_at_once() {
        let mut s = Scheduler::new(
            vec![Schedule::parse("*/30 * * * * *").unwrap()],
            at(10, 0, 5),
        );
        assert_eq!(s.poll_due(at(10, 0, 5)), vec![0]);
        assert_eq!(
            s.poll_due(at(10, 0, 6)),
            Vec::<usize>::new(),
            "still running"
        );
        assert_eq!(s.poll_deadline(), None);
        s.handle_done(0, at(10, 0, 7), None);
        assert_eq!(s.poll_deadline(), Some(at(10, 0, 30)));
        assert!(s.poll_due(at(10, 0, 29)).is_empty());
        assert_eq!(s.poll_due(at(10, 0, 30)), vec![0]);
        // A failed run asks to be retried sooner than the schedule.
        s.handle_done(0, at(10, 0, 31), Some(Duration::seconds(5)));
        assert_eq!(s.poll_deadline(), Some(at(10, 0, 36)));
    }
}
