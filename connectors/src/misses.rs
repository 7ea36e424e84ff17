//! Names a remote system said it does not know (a user, a group), remembered for
//! [`MISS_TTL`]: a backlog assigned to someone the ticket system lacks costs one
//! lookup, not one per incident, and someone added later is still found once the
//! miss has expired. The ServiceNow and Jira clients share it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a name the remote did not know stays unknown before it is looked up
/// again.
pub const MISS_TTL: Duration = Duration::from_secs(600);

/// Lookups that found nothing, and when.
#[derive(Debug)]
pub struct Misses<K> {
    at: Mutex<HashMap<K, Instant>>,
}

impl<K: Eq + Hash> Default for Misses<K> {
    fn default() -> Self {
        Misses {
            at: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash> Misses<K> {
    /// `key` was looked up and not found less than [`MISS_TTL`] ago.
    pub fn known_missing(&self, key: &K) -> bool {
        self.at
            .lock()
            .expect("misses")
            .get(key)
            .is_some_and(|at| at.elapsed() < MISS_TTL)
    }

    /// `key` was just looked up and not found.
    pub fn note(&self, key: K) {
        self.at.lock().expect("misses").insert(key, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_is_known_until_noted_and_only_for_its_key() {
        let misses = Misses::default();
        assert!(!misses.known_missing(&"ana"));
        misses.note("ana");
        assert!(misses.known_missing(&"ana"));
        assert!(!misses.known_missing(&"bo"));
    }
}
