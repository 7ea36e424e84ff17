//! The merge walk: from an incident the source merged ("redirected"), follow the
//! chain of merges to the incident that survived. Pure, shaped like a sans-IO
//! state machine: `poll` says which incident to read next (or how the walk
//! ended), `handle` is fed what the read found. The engine does the reads; a
//! read that fails for another reason than "not found" is the engine's to
//! handle (the merged incident goes to the dead letters).

use crate::model::IncidentSnapshot;
use crate::reconcile::is_redirected;

/// The longest chain followed; a longer one is recorded, not followed.
pub const MAX_CHAIN: usize = 8;

/// What the walk needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Read this incident and `handle` what was found.
    Read(String),
    /// The walk is over.
    Done(Box<WalkEnd>),
}

/// Where a merge chain led: the surviving incident, or why there is none to
/// name (no target given, a loop, a chain too long, a dangling end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkEnd {
    pub survivor: Option<IncidentSnapshot>,
    pub problem: Option<String>,
}

impl WalkEnd {
    fn problem(problem: String) -> WalkEnd {
        WalkEnd {
            survivor: None,
            problem: Some(problem),
        }
    }
}

/// What reading the incident `Step::Read` asked for found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Incident(Box<IncidentSnapshot>),
    /// The source says there is no such incident.
    Nothing,
}

/// The walk along one merge chain.
#[derive(Debug, Clone)]
pub struct MergeWalk {
    /// The incidents read so far, from the merged one on.
    chain: Vec<String>,
    /// The incident to read next.
    next: String,
    end: Option<WalkEnd>,
}

impl MergeWalk {
    /// A walk from `source_id`, merged into `target_id` (`None` when the source
    /// did not say which incident it was merged into).
    pub fn new(source_id: &str, target_id: Option<String>) -> MergeWalk {
        let end = target_id.is_none().then(|| {
            WalkEnd::problem(
                "the source closed it as merged without naming the incident it was merged into"
                    .into(),
            )
        });
        MergeWalk {
            chain: vec![source_id.to_string()],
            next: target_id.unwrap_or_default(),
            end,
        }
    }

    /// Which incident to read next, or how the walk ended. A loop or a chain
    /// longer than [`MAX_CHAIN`] ends it before the read.
    pub fn poll(&mut self) -> Step {
        if let Some(end) = &self.end {
            return Step::Done(Box::new(end.clone()));
        }
        let problem = if self.chain.contains(&self.next) {
            let mut chain = self.chain.clone();
            chain.push(self.next.clone());
            Some(format!("the merge chain {} loops", chain.join(" → ")))
        } else if self.chain.len() > MAX_CHAIN {
            Some(format!(
                "the merge chain {} is longer than {MAX_CHAIN}",
                self.chain.join(" → ")
            ))
        } else {
            None
        };
        match problem {
            Some(problem) => {
                let end = WalkEnd::problem(problem);
                self.end = Some(end.clone());
                Step::Done(Box::new(end))
            }
            None => Step::Read(self.next.clone()),
        }
    }

    /// What the read of the incident `poll` asked for found: an incident merged
    /// on leads further, any other is the survivor; nothing is a dangling end.
    pub fn handle(&mut self, found: Found) {
        self.end = match found {
            Found::Incident(snapshot) => {
                self.chain.push(self.next.clone());
                match snapshot.redirect_to.clone() {
                    Some(further) if is_redirected(&snapshot) => {
                        self.next = further;
                        None
                    }
                    _ => Some(WalkEnd {
                        survivor: Some(*snapshot),
                        problem: None,
                    }),
                }
            }
            Found::Nothing => Some(WalkEnd::problem(format!(
                "the merge chain {} → {} ends at an incident that does not exist",
                self.chain.join(" → "),
                self.next
            ))),
        };
    }
}

#[cfg(test)]
mod tests;
