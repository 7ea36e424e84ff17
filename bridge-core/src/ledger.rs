//! The sync ledger: an append-only record of every action the bridge took, each
//! entry hash-chained to the one before it (SHA-256 over a canonical encoding), so
//! an auditor can prove that no entry was altered, removed or reordered.

use serde::{Deserialize, Serialize};

use crate::model::{Direction, FieldChange, Timestamp};

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The remote write succeeded (or a baseline was recorded).
    Ok,
    /// The remote write failed; `detail` says why.
    Failed,
    /// Nothing was written on purpose (`detail` says why).
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

/// What is appended: one action on one incident/ticket pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRecord {
    pub time: Timestamp,
    /// The `[[sync]]` pair, `<source>-><ticket_system>`.
    pub pair: String,
    /// Which way the change went; `None` for actions on the bridge's own state.
    pub direction: Option<Direction>,
    /// `create_ticket`, `adopt_ticket`, `update_ticket`, `update_incident`,
    /// `write_back`, `record_baseline`, …
    pub action: String,
    pub incident_id: String,
    pub ticket_key: Option<String>,
    /// Fields changed, old → new (with the conflict, if there was one).
    pub changes: Vec<FieldChange>,
    pub outcome: Outcome,
    /// A human-readable note (the error of a failed write, why something was skipped).
    pub detail: Option<String>,
}

/// A stored ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// 1, 2, 3, … without gaps.
    pub seq: i64,
    #[serde(flatten)]
    pub record: LedgerRecord,
    /// The hash of the entry before (`GENESIS_HASH` for the first).
    pub prev_hash: String,
    /// SHA-256 (hex) of `prev_hash` and this entry's canonical encoding.
    pub hash: String,
}

/// Which entries to list or export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerFilter {
    pub pair: Option<String>,
    pub incident_id: Option<String>,
    pub since: Option<Timestamp>,
    /// The newest `limit` entries (still listed oldest first).
    pub limit: Option<usize>,
}

/// The result of re-computing the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub entries: u64,
    /// The hash of the last entry (`GENESIS_HASH` for an empty ledger).
    pub head: String,
    /// The first entry that does not verify, and why.
    pub first_break: Option<(i64, String)>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
