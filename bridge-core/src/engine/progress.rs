//! How far each pair's running cycle has got with the tickets it plans to
//! create: the creates planned from the pages read so far, and those done. A
//! first sync of a large backlog is hours of paced calls, and whoever shows
//! progress (the run loop's progress line, `/metrics`) reads it here. Kept per
//! pair name for the life of the process; a cycle's figures are cleared when
//! it ends.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// One pair's creates in its running cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// Creates planned from the pages read so far.
    pub planned: u64,
    /// Of those, done (a ticket made or adopted, or given up on for now).
    pub done: u64,
    /// When the cycle planned its first create.
    pub since: Instant,
}

impl Backlog {
    /// Creates planned and not done yet.
    pub fn left(&self) -> u64 {
        self.planned.saturating_sub(self.done)
    }
}

static BACKLOGS: Mutex<BTreeMap<String, Backlog>> = Mutex::new(BTreeMap::new());

fn with<T>(f: impl FnOnce(&mut BTreeMap<String, Backlog>) -> T) -> T {
    let mut map = BACKLOGS.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut map)
}

/// The running cycle's creates of `pair`, if it planned any.
pub fn backlog(pair: &str) -> Option<Backlog> {
    with(|m| m.get(pair).copied())
}

/// Every pair with creates in its running cycle.
pub fn backlogs() -> Vec<(String, Backlog)> {
    with(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
}

pub(super) fn planned(pair: &str, creates: usize) {
    if creates == 0 {
        return;
    }
    with(|m| {
        m.entry(pair.to_string())
            .or_insert(Backlog {
                planned: 0,
                done: 0,
                since: Instant::now(),
            })
            .planned += creates as u64;
    });
}

pub(super) fn done(pair: &str) {
    with(|m| {
        if let Some(b) = m.get_mut(pair) {
            b.done = (b.done + 1).min(b.planned);
        }
    });
}

pub(super) fn cycle_ended(pair: &str) {
    with(|m| m.remove(pair));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_counts_its_planned_creates_down_and_clears_them_when_it_ends() {
        let pair = "progress-test->jira";
        assert_eq!(backlog(pair), None);
        planned(pair, 3);
        planned(pair, 2);
        done(pair);
        let b = backlog(pair).unwrap();
        assert_eq!((b.planned, b.done, b.left()), (5, 1, 4));
        assert!(backlogs().iter().any(|(p, _)| p == pair));
        cycle_ended(pair);
        assert_eq!(backlog(pair), None);
    }
}
