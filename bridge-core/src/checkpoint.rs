//! Ledger anchors: signed checkpoints of the hash chain's head, so an auditor
//! can detect what the chain alone cannot (DESIGN.md decision 12): the end cut
//! off, or the whole ledger rewritten and re-hashed.
//!
//! A checkpoint says "entry `seq` of this ledger had hash `head` at `time`",
//! signed with an Ed25519 key that lives outside the store (`[ledger]
//! signing_key`). Each is one small JSON file ([`Checkpoint`]); the signature
//! covers [`Checkpoint::signed_message`]. Against a checkpoint, a ledger
//! verifies only if its entry `seq` still has that hash and the chain up to it
//! recomputes: a truncated ledger has fewer entries, a re-hashed or reordered one
//! a different hash at `seq` (see [`judge`]).
//!
//! The key file is an Ed25519 private key in PKCS#8 PEM (`-----BEGIN PRIVATE
//! KEY-----`), as `itsm-bridge ledger keygen` and `openssl genpkey -algorithm
//! ed25519` write it. Signing is `ring`'s (already in the build through rustls).
//! The key never reaches `Debug`, an error message or a log line.
//!
//! This file owns the format, signing, the signature check and the pure verdict;
//! the store reads the chain and the binary reads and writes the files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ledger::{self, GENESIS_HASH, VerifyReport};
use crate::model::Timestamp;

/// The `format` of every checkpoint this version writes; it is signed too.
pub const FORMAT: &str = "itsm-bridge ledger checkpoint v1";

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// One signed checkpoint, as its JSON file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// [`FORMAT`].
    pub format: String,
    /// How many entries the ledger had: the head is entry `seq` (0: empty).
    pub seq: i64,
    /// The hash of entry `seq` (64 zeros for an empty ledger).
    pub head: String,
    /// When it was signed: RFC 3339 UTC, six fractional digits.
    pub time: String,
    /// The Ed25519 public key that signed it, 64 hex digits.
    pub public_key: String,
    /// The key's short name: the first 16 hex digits of SHA-256(public key).
    pub key_id: String,
    /// Ed25519 over [`Checkpoint::signed_message`], 128 hex digits.
    pub signature: String,
}

impl Checkpoint {
    /// Signs `seq` and `head` at `time` with `key`.
    pub fn sign(key: &SigningKey, seq: i64, head: &str, time: Timestamp) -> Checkpoint {
        let mut checkpoint = Checkpoint {
            format: FORMAT.to_owned(),
            seq,
            head: head.to_owned(),
            time: ledger::canonical_time(&time),
            public_key: key.public_key_hex(),
            key_id: key.key_id(),
            signature: String::new(),
        };
        let signature = key.pair.sign(&checkpoint.signed_message());
        checkpoint.signature = hex(signature.as_ref());
        checkpoint
    }

    /// The bytes the signature covers: the format, seq, head, time and public
    /// key, each on a line of its own (`\n`-terminated, UTF-8).
    pub fn signed_message(&self) -> Vec<u8> {
        format!(
            "{}\n{}\n{}\n{}\n{}\n",
            self.format, self.seq, self.head, self.time, self.public_key
        )
        .into_bytes()
    }

    /// Checks the format, the key id and the signature. The error says what is
    /// wrong; a checkpoint whose signature fails was edited or forged.
    pub fn check_signature(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "format `{}` is not `{FORMAT}`; this itsm-bridge cannot read it",
                self.format
            ));
        }
        let public_key = unhex(&self.public_key)
            .filter(|k| k.len() == 32)
            .ok_or("public_key is not 64 hex digits")?;
        let signature = unhex(&self.signature)
            .filter(|s| s.len() == 64)
            .ok_or("signature is not 128 hex digits")?;
        if self.key_id != key_id(&public_key) {
            return Err("key_id does not belong to public_key".to_owned());
        }
        UnparsedPublicKey::new(&ED25519, &public_key)
            .verify(&self.signed_message(), &signature)
            .map_err(|_| {
                "the signature does not verify: the checkpoint was edited or forged".to_owned()
            })
    }

    /// Whether `key` (a public key in hex, or its key id) is the one that signed.
    pub fn signed_by(&self, key: &str) -> bool {
        let key = key.trim().to_ascii_lowercase();
        key == self.public_key || key == self.key_id
    }

    /// `checkpoint-<seq, 12 digits>-<time, compact>.json`: names sort in ledger order.
    pub fn file_name(&self) -> String {
        let compact: String = self
            .time
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == 'T')
            .take(15)
            .collect();
        format!("checkpoint-{:012}-{compact}Z.json", self.seq)
    }

    /// The file's text: pretty JSON and a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a checkpoint serialises");
        text.push('\n');
        text
    }

    pub fn from_json(text: &str) -> Result<Checkpoint, String> {
        serde_json::from_str(text).map_err(|e| format!("not an itsm-bridge checkpoint: {e}"))
    }

    /// Reads a checkpoint file; the error names the file.
    pub fn read(path: &Path) -> Result<Checkpoint, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read the checkpoint: {e}", path.display()))?;
        Checkpoint::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Writes the checkpoint into `dir` (created owner-only if missing) under
    /// [`Checkpoint::file_name`], through a temporary file and a rename so a
    /// reader never sees half of one. Returns the file's path.
    pub fn write_into(&self, dir: &Path) -> std::io::Result<PathBuf> {
        crate::store::create_private_dir(dir)?;
        let path = dir.join(self.file_name());
        let partial = dir.join(format!(".{}.partial", self.file_name()));
        std::fs::write(&partial, self.to_json())?;
        std::fs::rename(&partial, &path)?;
        Ok(path)
    }
}

/// What a ledger says against one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Entries 1 to `seq` are exactly the ones signed; `after` entries follow,
    /// chained to them but covered by no checkpoint yet.
    Holds { after: u64 },
    /// The ledger no longer matches: why.
    Broken(String),
}

/// The verdict on a ledger whose chain was recomputed into `report`, given the
/// hash stored for entry `checkpoint.seq` (`None` if there is no such entry).
/// The checkpoint's signature is checked apart ([`Checkpoint::check_signature`]).
///
/// A re-hashed chain still recomputes, so the chain alone passes it: what gives
/// it away is that entry `seq` no longer has the signed hash. Removing entries
/// from the end leaves fewer than `seq`; entries removed and then appended again
/// (later runs write on top of the gap) change the hash at `seq`. Reordered
/// entries either break the chain or, re-hashed, change the hash at `seq`.
pub fn judge(checkpoint: &Checkpoint, report: &VerifyReport, hash_at_seq: Option<&str>) -> Verdict {
    let seq = checkpoint.seq;
    match &report.first_break {
        Some((at, why)) if *at <= seq => {
            return Verdict::Broken(format!(
                "the chain breaks at entry {at}, inside the part the checkpoint signed ({why})"
            ));
        }
        _ => {}
    }
    let stored = if seq == 0 {
        Some(GENESIS_HASH)
    } else {
        hash_at_seq
    };
    match stored {
        None => Verdict::Broken(format!(
            "the ledger has {} entries but the checkpoint of {} signed {seq}: entries {} to {seq} \
             were removed (the ledger was cut short)",
            report.entries,
            checkpoint.time,
            report.entries + 1
        )),
        Some(hash) if hash != checkpoint.head => Verdict::Broken(format!(
            "entry {seq} has hash {hash} but the checkpoint of {} signed {}: entries up to {seq} \
             were rewritten, re-hashed, reordered or removed and appended again",
            checkpoint.time, checkpoint.head
        )),
        Some(_) => Verdict::Holds {
            after: report
                .entries
                .saturating_sub(u64::try_from(seq).unwrap_or(0)),
        },
    }
}

/// Verifies the store's ledger and, if it is intact, signs its head at `now` and
/// writes the checkpoint into `dir`. A ledger that does not verify is never
/// signed: the error says where it breaks.
pub fn write_checkpoint(
    store: &dyn crate::store::Store,
    key: &SigningKey,
    dir: &Path,
    now: Timestamp,
) -> Result<(PathBuf, Checkpoint), String> {
    let report = store
        .verify_ledger()
        .map_err(|e| format!("cannot read the ledger: {e}"))?;
    if let Some((seq, why)) = &report.first_break {
        return Err(format!(
            "refusing to sign a ledger that does not verify (entry {seq}: {why}); run \
             `itsm-bridge ledger verify` and investigate"
        ));
    }
    let seq = i64::try_from(report.entries).unwrap_or(i64::MAX);
    let checkpoint = Checkpoint::sign(key, seq, &report.head, now);
    let path = checkpoint.write_into(dir).map_err(|e| {
        format!(
            "cannot write a checkpoint into {}: {e}; check that the folder is writable",
            dir.display()
        )
    })?;
    Ok((path, checkpoint))
}

/// The ledger's signing key. `Debug` shows its key id only.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads an Ed25519 private key in PKCS#8 PEM (v1, as OpenSSL writes it, or
    /// v2 with the public key, as `ledger keygen` does). The error never quotes
    /// the text.
    pub fn from_pem(text: &str) -> Result<SigningKey, String> {
        const SHAPE: &str = "is not an Ed25519 private key in PKCS#8 PEM (-----BEGIN PRIVATE \
                             KEY-----); make one with `itsm-bridge ledger keygen --out FILE`";
        let start = text.find(PEM_BEGIN).ok_or(SHAPE)? + PEM_BEGIN.len();
        let end = text[start..].find(PEM_END).ok_or(SHAPE)? + start;
        let body: String = text[start..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| SHAPE.to_owned())?;
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|_| SHAPE.to_owned())?;
        Ok(SigningKey { pair })
    }

    /// A new key and its PKCS#8 v2 PEM text (which holds the private key: write
    /// it to an owner-only file and nowhere else).
    pub fn generate() -> Result<(SigningKey, String), String> {
        let random = ring::rand::SystemRandom::new();
        let document = Ed25519KeyPair::generate_pkcs8(&random)
            .map_err(|_| "the system's random source failed; try again".to_owned())?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(document.as_ref());
        let mut pem = String::from(PEM_BEGIN);
        pem.push('\n');
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str(PEM_END);
        pem.push('\n');
        let key = SigningKey::from_pem(&pem)?;
        Ok((key, pem))
    }

    /// The public key, 64 hex digits: what an auditor pins.
    pub fn public_key_hex(&self) -> String {
        hex(self.pair.public_key().as_ref())
    }

    /// The first 16 hex digits of SHA-256(public key).
    pub fn key_id(&self) -> String {
        key_id(self.pair.public_key().as_ref())
    }
}

fn key_id(public_key: &[u8]) -> String {
    hex(&Sha256::digest(public_key)[..8])
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() & 1 == 1 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::ledger::{LedgerRecord, Outcome, seal_entry, verify_entries};

    fn at(seconds: i64) -> Timestamp {
        chrono::Utc.with_ymd_and_hms(2026, 12, 6, 20, 0, 0).unwrap()
            + chrono::Duration::seconds(seconds)
    }

    fn record(i: i64) -> LedgerRecord {
        LedgerRecord {
            actors: Default::default(),
            time: at(i),
            pair: "defender->jira".to_owned(),
            direction: None,
            action: "create_ticket".to_owned(),
            incident_id: format!("{i}"),
            ticket_key: Some(format!("SEC-{i}")),
            changes: vec![],
            outcome: Outcome::Ok,
            detail: None,
        }
    }

    /// A chain of the given records, sealed in order.
    fn chain(records: &[LedgerRecord]) -> Vec<ledger::LedgerEntry> {
        let mut prev = GENESIS_HASH.to_owned();
        let mut out = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let entry = seal_entry(&prev, i as i64 + 1, record.clone());
            prev = entry.hash.clone();
            out.push(entry);
        }
        out
    }

    fn verdict(checkpoint: &Checkpoint, entries: &[ledger::LedgerEntry]) -> Verdict {
        let report = verify_entries(entries);
        let hash = entries
            .iter()
            .find(|e| e.seq == checkpoint.seq)
            .map(|e| e.hash.as_str());
        judge(checkpoint, &report, hash)
    }

    #[test]
    fn a_checkpoint_signs_and_checks_and_survives_its_file() {
        let (key, pem) = SigningKey::generate().unwrap();
        assert!(pem.starts_with(PEM_BEGIN));
        let again = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(again.public_key_hex(), key.public_key_hex());
        assert!(!format!("{key:?}").contains(&pem[PEM_BEGIN.len() + 1..][..20]));

        let checkpoint = Checkpoint::sign(&key, 3, &"ab".repeat(32), at(0));
        checkpoint.check_signature().unwrap();
        assert_eq!(
            checkpoint.file_name(),
            "checkpoint-000000000003-20261206T200000Z.json"
        );
        let read = Checkpoint::from_json(&checkpoint.to_json()).unwrap();
        assert_eq!(read, checkpoint);
        assert!(read.signed_by(&key.key_id()));
        assert!(read.signed_by(&key.public_key_hex().to_uppercase()));
        assert!(!read.signed_by("0000"));
    }

    #[test]
    fn an_edited_checkpoint_fails_its_signature() {
        let (key, _) = SigningKey::generate().unwrap();
        let checkpoint = Checkpoint::sign(&key, 3, &"ab".repeat(32), at(0));
        let mut edited = checkpoint.clone();
        edited.seq = 2;
        assert!(
            edited
                .check_signature()
                .unwrap_err()
                .contains("edited or forged")
        );
        // Re-signed with another key, it names another key.
        let (other, _) = SigningKey::generate().unwrap();
        let forged = Checkpoint::sign(&other, 2, &checkpoint.head, at(0));
        forged.check_signature().unwrap();
        assert!(!forged.signed_by(&key.public_key_hex()));
        let mut swapped = forged.clone();
        swapped.public_key = checkpoint.public_key.clone();
        assert!(swapped.check_signature().is_err());
    }

    #[test]
    fn keys_from_openssl_are_read_and_bad_keys_are_refused_without_being_quoted() {
        // `openssl genpkey -algorithm ed25519` (PKCS#8 v1, no public key).
        let openssl = "-----BEGIN PRIVATE KEY-----\n\
                       MC4CAQAwBQYDK2VwBCIEILn0C9/D16w/aScSvDapIY334OCjnG8bi32C2+RU6oaT\n\
                       -----END PRIVATE KEY-----\n";
        let key = SigningKey::from_pem(openssl).unwrap();
        assert_eq!(
            key.public_key_hex(),
            "ce2d81b3bd5a91ca728e90623da5891efa8b92f39ee86b398f6a42792dc70910"
        );
        for bad in [
            "",
            "secret-value-123",
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXZhbHVlLTEyMw==\n-----END PRIVATE KEY-----",
        ] {
            let error = SigningKey::from_pem(bad).unwrap_err();
            assert!(error.contains("ledger keygen"), "{error}");
            assert!(!error.contains("secret-value") && !error.contains("c2VjcmV0"));
        }
    }

    #[test]
    fn truncating_rewriting_and_reordering_are_each_caught_against_a_checkpoint() {
        let (key, _) = SigningKey::generate().unwrap();
        let records: Vec<_> = (1..=10).map(record).collect();
        let original = chain(&records);
        let checkpoint = Checkpoint::sign(&key, 8, &original[7].hash, at(100));
        assert_eq!(verdict(&checkpoint, &original), Verdict::Holds { after: 2 });

        // Truncated: the last three entries deleted; the chain alone still passes.
        let truncated = &original[..7];
        assert!(verify_entries(truncated).is_intact());
        let Verdict::Broken(why) = verdict(&checkpoint, truncated) else {
            panic!("truncation passed")
        };
        assert!(why.contains("entries 8 to 8 were removed"), "{why}");
        // Truncated, then later runs append on top of the gap.
        let mut regrown = records[..7].to_vec();
        regrown.extend((20..=24).map(record));
        let regrown = chain(&regrown);
        assert!(verify_entries(&regrown).is_intact());
        assert!(matches!(verdict(&checkpoint, &regrown), Verdict::Broken(_)));

        // Rewritten and re-hashed: entry 4's ticket changed, the chain recomputed.
        let mut rewritten = records.clone();
        rewritten[3].ticket_key = Some("SEC-999".to_owned());
        let rewritten = chain(&rewritten);
        assert!(verify_entries(&rewritten).is_intact());
        let Verdict::Broken(why) = verdict(&checkpoint, &rewritten) else {
            panic!("a re-hashed rewrite passed")
        };
        assert!(why.contains("entry 8 has hash"), "{why}");

        // Reordered and re-hashed: entries 2 and 5 swapped.
        let mut reordered = records.clone();
        reordered.swap(1, 4);
        let reordered = chain(&reordered);
        assert!(verify_entries(&reordered).is_intact());
        assert!(matches!(
            verdict(&checkpoint, &reordered),
            Verdict::Broken(_)
        ));

        // Reordered without re-hashing breaks the chain inside the signed part.
        let mut swapped = original.clone();
        swapped.swap(1, 4);
        let Verdict::Broken(why) = verdict(&checkpoint, &swapped) else {
            panic!("a reorder passed")
        };
        assert!(
            why.contains("inside the part the checkpoint signed"),
            "{why}"
        );

        // Changes after the checkpoint are not its business (the chain's are).
        let mut later = records.clone();
        later[9].ticket_key = Some("SEC-999".to_owned());
        assert_eq!(
            verdict(&checkpoint, &chain(&later)),
            Verdict::Holds { after: 2 }
        );
    }

    #[test]
    fn an_empty_ledger_can_be_anchored() {
        let (key, _) = SigningKey::generate().unwrap();
        let checkpoint = Checkpoint::sign(&key, 0, GENESIS_HASH, at(0));
        assert_eq!(verdict(&checkpoint, &[]), Verdict::Holds { after: 0 });
    }
}
