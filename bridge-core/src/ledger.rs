//! The sync ledger: an append-only record of every action the bridge took, each
//! entry hash-chained to the one before it (SHA-256 over a canonical encoding), so
//! an auditor can prove that no entry was altered, removed or reordered.
//!
//! This file owns the ledger's types, the canonical encoding every store hashes
//! ([`canonical_encoding`], [`entry_hash`]) and the pure chain check
//! ([`ChainVerifier`]) that `verify_ledger` implementations feed. The hash never
//! covers a store's own representation (SQL text, JSON key order), only the
//! encoding defined here, so a ledger verifies the same whichever store holds it.
//!
//! Changing the encoding invalidates every existing ledger: the `golden_hash`
//! test pins it.

use std::fmt::Write as _;

use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
    /// Who made the changes this entry carried, on the side they came from, or
    /// the bridge itself for its own writes. Empty on entries written before
    /// attribution existed (their hash covers no attribution, so they still
    /// verify) and on entries that record no change of anyone's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actors: Vec<Actor>,
}

/// The name the ledger gives the bridge as the actor of its own writes.
pub const BRIDGE_ACTOR: &str = "itsm-bridge";

/// The name of an actor the side's API does not tell.
pub const UNKNOWN_ACTOR: &str = "unknown";

/// Where an actor made their change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorSide {
    /// On the incident source (Graph, Sentinel).
    Incident,
    /// On the ticket system (Jira, ServiceNow, a generic helpdesk).
    Ticket,
    /// The bridge itself: its own writes (write-backs, remaps, merge notes).
    Bridge,
}

impl ActorSide {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorSide::Incident => "incident",
            ActorSide::Ticket => "ticket",
            ActorSide::Bridge => "bridge",
        }
    }
}

/// Who made some of an entry's changes, as far as that side's API tells:
/// ServiceNow's `sys_updated_by`, the author of the Jira changelog history that
/// changed the field, Graph's `lastModifiedBy`, Sentinel's
/// `systemData.lastModifiedBy`, else [`UNKNOWN_ACTOR`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The name as the API gives it (a user name, a display name, an app name).
    pub name: String,
    pub side: ActorSide,
    /// That side's modification time of the version the change was read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    /// The entry's fields (as in `changes`) this actor changed; empty when the
    /// actor stands for the whole entry (the bridge's own writes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

impl Actor {
    /// The bridge, as the actor of its own writes.
    pub fn bridge() -> Actor {
        Actor {
            name: BRIDGE_ACTOR.to_owned(),
            side: ActorSide::Bridge,
            at: None,
            fields: Vec::new(),
        }
    }

    /// How a listing shows it: `name (side)`.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.side.as_str())
    }
}

/// The actors of an entry as one listing cell: `Ann (ticket), Bob (incident)`.
pub fn actors_label(actors: &[Actor]) -> String {
    actors
        .iter()
        .map(Actor::label)
        .collect::<Vec<_>>()
        .join(", ")
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

/// Which entries to list or export: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerFilter {
    pub pair: Option<String>,
    pub incident_id: Option<String>,
    pub ticket_key: Option<String>,
    /// One action, as recorded (`update_ticket`, `create_ticket`, …).
    pub action: Option<String>,
    /// Entries at or after this time.
    pub since: Option<Timestamp>,
    /// Entries strictly before this time.
    pub until: Option<Timestamp>,
    /// The newest `limit` entries (still listed oldest first).
    pub limit: Option<usize>,
    /// Entries with this actor (by exact name; [`BRIDGE_ACTOR`] for the
    /// bridge's own writes).
    pub actor: Option<String>,
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

/// The tag that starts every canonical encoding; a new encoding gets a new tag.
const ENCODING_TAG: &str = "itsm-bridge ledger entry v1";

/// The tag that starts the attribution section, which follows the v1 fields
/// only on entries that carry actors: an entry without any encodes exactly as
/// before attribution existed, so every older ledger still verifies.
const ACTORS_TAG: &str = "actors v1";

/// The deterministic byte encoding of entry `seq` holding `record`, which
/// [`entry_hash`] hashes.
///
/// Every string is written as its length (u64, big-endian) followed by its UTF-8
/// bytes; an optional value is a `0` byte (absent) or a `1` byte and the value; a
/// list is its length (u64, big-endian) followed by its items; `seq` is an i64,
/// big-endian; enumerations are their snake_case names; `time` is RFC 3339 UTC
/// with exactly six fractional digits (stores keep microseconds, so a finer
/// instant hashes as its truncation). The fields follow in declaration order
/// after a version tag, so the encoding is unambiguous: no two distinct
/// `(seq, record)` values share an encoding. `actors`, when not empty, follow
/// `detail` as the string `actors v1` and the list of actors (name, side, the
/// optional time, the list of fields); when empty nothing follows `detail`, so
/// an entry without actors hashes as it did before they existed (a v1 encoding
/// parses to its end at `detail`, so one with the section is still distinct).
pub fn canonical_encoding(seq: i64, record: &LedgerRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    put_str(&mut out, ENCODING_TAG);
    out.extend_from_slice(&seq.to_be_bytes());
    put_str(&mut out, &canonical_time(&record.time));
    put_str(&mut out, &record.pair);
    put_opt(&mut out, record.direction.map(Direction::as_str));
    put_str(&mut out, &record.action);
    put_str(&mut out, &record.incident_id);
    put_opt(&mut out, record.ticket_key.as_deref());
    put_len(&mut out, record.changes.len());
    for change in &record.changes {
        put_str(&mut out, &change.field);
        put_opt(&mut out, change.old.as_deref());
        put_opt(&mut out, change.new.as_deref());
        match &change.conflict {
            None => out.push(0),
            Some(note) => {
                out.push(1);
                put_str(&mut out, note.policy.as_str());
                put_opt(&mut out, note.incident_value.as_deref());
                put_opt(&mut out, note.ticket_value.as_deref());
            }
        }
    }
    put_str(&mut out, record.outcome.as_str());
    put_opt(&mut out, record.detail.as_deref());
    if !record.actors.is_empty() {
        put_str(&mut out, ACTORS_TAG);
        put_len(&mut out, record.actors.len());
        for actor in &record.actors {
            put_str(&mut out, &actor.name);
            put_str(&mut out, actor.side.as_str());
            put_opt(&mut out, actor.at.as_ref().map(canonical_time).as_deref());
            put_len(&mut out, actor.fields.len());
            for field in &actor.fields {
                put_str(&mut out, field);
            }
        }
    }
    out
}

/// The hash of entry `seq` holding `record` whose predecessor's hash is
/// `prev_hash` ([`GENESIS_HASH`] for seq 1): lowercase hex SHA-256 of the
/// length-prefixed `prev_hash` followed by [`canonical_encoding`].
pub fn entry_hash(prev_hash: &str, seq: i64, record: &LedgerRecord) -> String {
    let mut prefix = Vec::with_capacity(8 + prev_hash.len());
    put_str(&mut prefix, prev_hash);
    let digest = Sha256::new()
        .chain_update(&prefix)
        .chain_update(canonical_encoding(seq, record))
        .finalize();
    let mut hex = String::with_capacity(64);
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Builds the entry that follows an entry with hash `prev_hash` (a store's
/// append, minus the storing).
pub fn seal_entry(prev_hash: &str, seq: i64, record: LedgerRecord) -> LedgerEntry {
    let hash = entry_hash(prev_hash, seq, &record);
    LedgerEntry {
        seq,
        record,
        prev_hash: prev_hash.to_owned(),
        hash,
    }
}

/// A field value as a ledger note shows it, in plain words: the value in double
/// quotes, or `empty` when there is none (never Rust's `Some("…")` / `None`).
pub fn plain_value(value: Option<&str>) -> String {
    match value {
        Some(value) => format!("\"{value}\""),
        None => "empty".to_owned(),
    }
}

/// The timestamp text the ledger hashes and stores: RFC 3339, UTC, `Z`, six
/// fractional digits, so that text order is time order.
pub fn canonical_time(time: &Timestamp) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // usize is at most 64 bits on every supported target.
    out.extend_from_slice(&(len as u64).to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, value: &str) {
    put_len(out, value.len());
    out.extend_from_slice(value.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            put_str(out, value);
        }
    }
}

/// Re-computes a hash chain one entry at a time, in sequence order, so a store
/// can verify a ledger of any size while streaming it. Pure: it never touches a
/// store.
///
/// It checks that sequence numbers run 1, 2, 3, … without gaps, that each
/// entry's `prev_hash` is the hash of the entry before, and that each entry's
/// `hash` matches its content. Only the first break is reported; entries after
/// it are still counted. Removing entries from the *end* of a ledger leaves a
/// valid, shorter chain: compare [`VerifyReport::head`] with a head recorded
/// elsewhere to detect that.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    entries: u64,
    expected_seq: i64,
    /// The hash the next entry's `prev_hash` must equal.
    prev_hash: String,
    /// The stored hash of the last entry seen.
    head: String,
    first_break: Option<(i64, String)>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier::new()
    }
}

impl ChainVerifier {
    /// A verifier expecting entry 1 next.
    pub fn new() -> Self {
        ChainVerifier {
            entries: 0,
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            head: GENESIS_HASH.to_owned(),
            first_break: None,
        }
    }

    /// Checks the next entry of the chain.
    pub fn check(&mut self, entry: &LedgerEntry) {
        if let Some(reason) = self.seq_break(entry.seq) {
            self.record_break(entry.seq.min(self.expected_seq), reason);
        } else if entry.prev_hash != self.prev_hash {
            let reason = if entry.seq == 1 {
                "prev_hash of the first entry is not the genesis hash".to_owned()
            } else {
                format!(
                    "prev_hash does not match the hash of entry {}",
                    entry.seq - 1
                )
            };
            self.record_break(entry.seq, reason);
        } else if entry.hash != entry_hash(&self.prev_hash, entry.seq, &entry.record) {
            self.record_break(
                entry.seq,
                "hash does not match the entry's content (the entry was altered)".to_owned(),
            );
        }
        self.advance(entry.seq, &entry.hash);
    }

    /// Records an entry the store could not decode (`reason` says why); `hash` is
    /// its stored hash if that at least could be read.
    pub fn undecodable(&mut self, seq: i64, hash: Option<&str>, reason: &str) {
        let reason = match self.seq_break(seq) {
            Some(seq_reason) => seq_reason,
            None => format!("entry cannot be read: {reason}"),
        };
        self.record_break(seq.min(self.expected_seq), reason);
        self.advance(seq, hash.unwrap_or(""));
    }

    /// The report for the entries checked so far.
    pub fn finish(self) -> VerifyReport {
        VerifyReport {
            entries: self.entries,
            head: self.head,
            first_break: self.first_break,
        }
    }

    fn seq_break(&self, seq: i64) -> Option<String> {
        let expected = self.expected_seq;
        if seq == expected {
            None
        } else if seq > expected {
            Some(if seq == expected + 1 {
                format!("entry {expected} is missing (the next entry is {seq})")
            } else {
                format!(
                    "entries {expected} to {} are missing (the next entry is {seq})",
                    seq - 1
                )
            })
        } else {
            Some(format!(
                "expected entry {expected}, found entry {seq} (entries are out of order)"
            ))
        }
    }

    fn record_break(&mut self, seq: i64, reason: String) {
        if self.first_break.is_none() {
            self.first_break = Some((seq, reason));
        }
    }

    fn advance(&mut self, seq: i64, hash: &str) {
        self.entries += 1;
        self.expected_seq = seq.saturating_add(1);
        hash.clone_into(&mut self.prev_hash);
        hash.clone_into(&mut self.head);
    }
}

/// Verifies entries given in sequence order (see [`ChainVerifier`]).
pub fn verify_entries<'a>(entries: impl IntoIterator<Item = &'a LedgerEntry>) -> VerifyReport {
    let mut verifier = ChainVerifier::new();
    for entry in entries {
        verifier.check(entry);
    }
    verifier.finish()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::model::{ConflictNote, ConflictPolicy};

    fn record() -> LedgerRecord {
        LedgerRecord {
            time: chrono::Utc.with_ymd_and_hms(2026, 11, 1, 8, 30, 0).unwrap(),
            pair: "defender->jira".to_owned(),
            direction: Some(Direction::ToTicket),
            action: "update_ticket".to_owned(),
            incident_id: "41877".to_owned(),
            ticket_key: Some("SEC-42".to_owned()),
            changes: vec![FieldChange {
                field: "status".to_owned(),
                old: Some("new".to_owned()),
                new: Some("active".to_owned()),
                conflict: Some(ConflictNote {
                    tie: false,
                    policy: ConflictPolicy::NewestWins,
                    incident_value: Some("active".to_owned()),
                    ticket_value: Some("done".to_owned()),
                }),
            }],
            outcome: Outcome::Ok,
            detail: None,
            actors: Vec::new(),
        }
    }

    fn attributed() -> LedgerRecord {
        LedgerRecord {
            actors: vec![
                Actor {
                    name: "Ann Analyst".to_owned(),
                    side: ActorSide::Incident,
                    at: Some(chrono::Utc.with_ymd_and_hms(2026, 11, 1, 8, 29, 0).unwrap()),
                    fields: vec!["status".to_owned()],
                },
                Actor::bridge(),
            ],
            ..record()
        }
    }

    fn chain(records: Vec<LedgerRecord>) -> Vec<LedgerEntry> {
        let mut prev = GENESIS_HASH.to_owned();
        let mut entries = Vec::new();
        for (seq, record) in (1..).zip(records) {
            let entry = seal_entry(&prev, seq, record);
            prev.clone_from(&entry.hash);
            entries.push(entry);
        }
        entries
    }

    #[test]
    fn same_input_same_hash() {
        let a = entry_hash(GENESIS_HASH, 1, &record());
        let b = entry_hash(GENESIS_HASH, 1, &record());
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    #[test]
    fn golden_hash() {
        // Pins the encoding: if this changes, every existing ledger stops verifying.
        // The expected value was computed independently (Python, hashlib) from the
        // encoding documented on `canonical_encoding`.
        assert_eq!(
            entry_hash(GENESIS_HASH, 1, &record()),
            "e4a164f3b84b94e9cbd6a6a6bc2aa4c6b975b120461501ff3e3062570b6b2dbf"
        );
    }

    #[test]
    fn golden_hash_with_actors() {
        // Pins the attribution section, computed independently (Python, hashlib)
        // from the encoding documented on `canonical_encoding`.
        assert_eq!(
            entry_hash(GENESIS_HASH, 1, &attributed()),
            "f2b65c158d6c3ab42031b8d69c3ec9e49230f71acb53bb7fdfc1b4cdfcecbad1"
        );
    }

    #[test]
    fn an_entry_stored_before_attribution_still_verifies() {
        // An entry as a store held it before `actors` existed: no such key in its
        // JSON, and its hash made by the v1 encoding (pinned by `golden_hash`).
        let stored = r#"{"seq":1,"time":"2026-11-01T08:30:00Z","pair":"defender->jira",
            "direction":"to_ticket","action":"update_ticket","incident_id":"41877",
            "ticket_key":"SEC-42","changes":[{"field":"status","old":"new","new":"active",
            "conflict":{"policy":"newest_wins","incident_value":"active","ticket_value":"done"}}],
            "outcome":"ok","detail":null,
            "prev_hash":"0000000000000000000000000000000000000000000000000000000000000000",
            "hash":"e4a164f3b84b94e9cbd6a6a6bc2aa4c6b975b120461501ff3e3062570b6b2dbf"}"#;
        let entry: LedgerEntry = serde_json::from_str(stored).unwrap();
        assert!(entry.record.actors.is_empty());
        assert!(verify_entries([&entry]).is_intact());
        // And it serializes without an `actors` key, as it was.
        assert!(!serde_json::to_string(&entry).unwrap().contains("actors"));
    }

    #[test]
    fn any_changed_field_changes_the_hash() {
        type Mutation = fn(&mut LedgerRecord);
        let mutations: &[(&str, Mutation)] = &[
            ("time", |r| r.time += chrono::Duration::microseconds(1)),
            ("pair", |r| r.pair.push('x')),
            ("direction", |r| r.direction = Some(Direction::ToIncident)),
            ("direction none", |r| r.direction = None),
            ("action", |r| r.action = "create_ticket".to_owned()),
            ("incident_id", |r| r.incident_id = "41878".to_owned()),
            ("ticket_key", |r| r.ticket_key = Some("SEC-43".to_owned())),
            ("ticket_key none", |r| r.ticket_key = None),
            ("changes empty", |r| r.changes.clear()),
            ("change field", |r| {
                r.changes[0].field = "severity".to_owned()
            }),
            ("change old", |r| r.changes[0].old = None),
            ("change new", |r| {
                r.changes[0].new = Some("closed".to_owned())
            }),
            ("conflict none", |r| r.changes[0].conflict = None),
            ("conflict policy", |r| {
                r.changes[0].conflict.as_mut().unwrap().policy = ConflictPolicy::SourceWins
            }),
            ("conflict incident value", |r| {
                r.changes[0].conflict.as_mut().unwrap().incident_value = None
            }),
            ("conflict ticket value", |r| {
                r.changes[0].conflict.as_mut().unwrap().ticket_value = Some("open".to_owned())
            }),
            ("changes twice", |r| r.changes.push(r.changes[0].clone())),
            ("outcome", |r| r.outcome = Outcome::Failed),
            ("detail", |r| r.detail = Some("timeout".to_owned())),
            ("detail empty", |r| r.detail = Some(String::new())),
            ("actors", |r| r.actors = attributed().actors),
            ("actor name", |r| {
                r.actors = attributed().actors;
                r.actors[0].name.push('x');
            }),
            ("actor side", |r| {
                r.actors = attributed().actors;
                r.actors[0].side = ActorSide::Ticket;
            }),
            ("actor at", |r| {
                r.actors = attributed().actors;
                r.actors[0].at = None;
            }),
            ("actor fields", |r| {
                r.actors = attributed().actors;
                r.actors[0].fields.clear();
            }),
            ("actors one", |r| {
                r.actors = attributed().actors;
                r.actors.pop();
            }),
        ];
        let base = entry_hash(GENESIS_HASH, 1, &record());
        let mut seen = std::collections::BTreeMap::new();
        seen.insert(base.clone(), "base");
        for (name, mutate) in mutations {
            let mut changed = record();
            mutate(&mut changed);
            let hash = entry_hash(GENESIS_HASH, 1, &changed);
            if let Some(other) = seen.insert(hash, name) {
                panic!("{name} hashes like {other}");
            }
        }
        assert_ne!(entry_hash(GENESIS_HASH, 2, &record()), base, "seq");
        assert_ne!(entry_hash(&"1".repeat(64), 1, &record()), base, "prev_hash");
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let mut a = record();
        a.pair = "ab".to_owned();
        a.action = "c".to_owned();
        let mut b = record();
        b.pair = "a".to_owned();
        b.action = "bc".to_owned();
        assert_ne!(canonical_encoding(1, &a), canonical_encoding(1, &b));

        let mut none = record();
        none.detail = None;
        let mut empty = record();
        empty.detail = Some(String::new());
        assert_ne!(canonical_encoding(1, &none), canonical_encoding(1, &empty));
    }

    #[test]
    fn time_hashes_at_microsecond_precision() {
        let mut fine = record();
        fine.time += chrono::Duration::nanoseconds(999);
        assert_eq!(
            canonical_encoding(1, &fine),
            canonical_encoding(1, &record())
        );
        assert_eq!(
            canonical_time(&record().time),
            "2026-11-01T08:30:00.000000Z"
        );
    }

    #[test]
    fn chain_of_three_verifies() {
        let entries = chain(vec![record(), record(), record()]);
        let report = verify_entries(&entries);
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.entries, 3);
        assert_eq!(report.head, entries[2].hash);
        assert_eq!(entries[0].prev_hash, GENESIS_HASH);
    }

    #[test]
    fn empty_chain_verifies() {
        let report = verify_entries(&[]);
        assert!(report.is_intact());
        assert_eq!(report.entries, 0);
        assert_eq!(report.head, GENESIS_HASH);
    }

    #[test]
    fn altered_entry_is_detected() {
        let mut entries = chain(vec![record(), record(), record()]);
        entries[1].record.detail = Some("x".to_owned());
        let report = verify_entries(&entries);
        let (seq, reason) = report.first_break.expect("a break");
        assert_eq!(seq, 2);
        assert!(reason.contains("altered"), "{reason}");
        assert_eq!(report.entries, 3);
    }

    #[test]
    fn altered_hash_is_detected() {
        let mut entries = chain(vec![record(), record(), record()]);
        entries[1].hash = "f".repeat(64);
        let report = verify_entries(&entries);
        assert_eq!(report.first_break.map(|b| b.0), Some(2));
    }

    #[test]
    fn rehashed_entry_breaks_the_link_to_the_next() {
        let mut entries = chain(vec![record(), record(), record()]);
        entries[1].record.detail = Some("x".to_owned());
        entries[1] = seal_entry(&entries[0].hash, 2, entries[1].record.clone());
        let report = verify_entries(&entries);
        let (seq, reason) = report.first_break.expect("a break");
        assert_eq!(seq, 3);
        assert!(reason.contains("prev_hash"), "{reason}");
    }

    #[test]
    fn removed_entry_is_detected() {
        let mut entries = chain(vec![record(), record(), record()]);
        entries.remove(1);
        let report = verify_entries(&entries);
        let (seq, reason) = report.first_break.expect("a break");
        assert_eq!(seq, 2);
        assert!(reason.contains("missing"), "{reason}");
    }

    #[test]
    fn first_entry_must_start_from_genesis() {
        let entries = vec![seal_entry(&"1".repeat(64), 1, record())];
        let report = verify_entries(&entries);
        assert_eq!(report.first_break.map(|b| b.0), Some(1));
    }

    #[test]
    fn undecodable_entry_is_a_break() {
        let entries = chain(vec![record(), record()]);
        let mut verifier = ChainVerifier::new();
        verifier.check(&entries[0]);
        verifier.undecodable(2, Some(&entries[1].hash), "unknown outcome \"maybe\"");
        let report = verifier.finish();
        let (seq, reason) = report.first_break.expect("a break");
        assert_eq!(seq, 2);
        assert!(reason.contains("maybe"), "{reason}");
        assert_eq!(report.entries, 2);
    }
}
