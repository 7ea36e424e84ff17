//! `itsm-bridge bench`: speed figures, printed for a person to read, never asserted.
//! One file per bench: `throttle.rs` (the bridge against throttling
//! simulators), `reconcile.rs` (the pure reconcile over a large link table),
//! `calls.rs` (API calls per incident per phase, from the simulators' request
//! logs), `backfill.rs` (a backlog's first sync against a paced Graph, against
//! the bound its calls set), `memory.rs` (the daemon's resident memory with N
//! links), `latency.rs` (from an edit to its arrival on the other side, with
//! many open links and a steady rate of edits). This file holds what they share: the scratch directory of a run and
//! the pairs of the simulators' config.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use bridge_core::config::{self, Config};
use bridge_core::engine::PairRuntime;
use chrono::Utc;
use connectors::limits::LimiterRegistry;
use connectors::sims::Sims;
use connectors::wiring;

mod backfill;
mod calls;
mod latency;
mod memory;
mod reconcile;
mod throttle;

pub use backfill::backfill;
pub use calls::calls;
pub use latency::latency;
pub use memory::memory;
pub use reconcile::reconcile;
pub use throttle::{Scenario, throttle};

/// The pairs of `config` with these names, in this order.
pub(super) fn pairs_named(
    config: &Config,
    limiters: &LimiterRegistry,
    names: &[&str],
) -> anyhow::Result<Vec<PairRuntime>> {
    let mut pairs = wiring::build_pairs_with(config, limiters).map_err(|e| anyhow!("{e}"))?;
    names
        .iter()
        .map(|name| {
            let i = pairs
                .iter()
                .position(|p| p.pair == *name)
                .ok_or_else(|| anyhow!("the simulators' config has no pair {name}"))?;
            Ok(pairs.swap_remove(i))
        })
        .collect()
}

/// A directory for one run's config, secrets and mappings, removed afterwards.
pub(super) struct Scratch(PathBuf);

impl Scratch {
    pub(super) fn new(name: &str) -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!(
            "itsm-bridge-bench-{}-{name}-{}",
            std::process::id(),
            Utc::now().timestamp_micros()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
        Ok(Scratch(dir))
    }

    /// The simulators' config with `extra` appended, loaded and checked.
    pub(super) fn config(&self, sims: &Sims, extra: &str) -> anyhow::Result<Config> {
        let path = sims.write_config(&self.0, &self.0.join("bench.db"))?;
        if !extra.is_empty() {
            let mut text = std::fs::read_to_string(&path)?;
            text.push_str(extra);
            std::fs::write(&path, text)?;
        }
        config::load(&path).map_err(|e| anyhow!("{e}"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
