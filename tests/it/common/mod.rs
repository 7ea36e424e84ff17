//! The end-to-end harness: the simulators run in this test process (on a tokio
//! runtime of their own, on loopback), the config they need is written to a temp
//! directory, and the real `itsm-bridge` binary is run against them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use connectors::sims::{SimPorts, Sims};

pub struct Env {
    pub sims: Sims,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub db: PathBuf,
    // Last, so the simulators stop after everything that talks to them.
    runtime: tokio::runtime::Runtime,
}

impl Env {
    /// Simulators up, `count` Defender incidents seeded, config written.
    pub fn start(count: usize) -> Env {
        Env::start_with(count, 0)
    }

    /// Simulators up, Defender and Sentinel incidents seeded, config written.
    pub fn start_with(defender: usize, sentinel: usize) -> Env {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the simulators");
        let sims = runtime
            .block_on(Sims::start(SimPorts::default()))
            .expect("simulators start");
        sims.seed_incidents(defender, chrono::Utc::now());
        sims.seed_sentinel_incidents(sentinel, chrono::Utc::now());
        let dir = tempfile::tempdir().expect("a temp dir");
        let db = dir.path().join("bridge.db");
        let config = sims.write_config(dir.path(), &db).expect("config written");
        Env {
            sims,
            dir,
            config,
            db,
            runtime,
        }
    }

    /// Runs the binary with these arguments.
    pub fn bridge(&self, args: &[&str]) -> Output {
        bridge_in(self.dir.path(), args)
    }

    /// `run --once` on the simulators' config; asserts it succeeded.
    pub fn sync(&self) -> Output {
        let out = self.bridge(&["run", "--once", "--config", self.config.to_str().unwrap()]);
        assert_success(&out);
        out
    }

    pub fn db_arg(&self) -> &str {
        self.db.to_str().unwrap()
    }

    /// The ticket key linked to an incident in the first pair that has one, from
    /// `links --json`.
    pub fn ticket_of(&self, incident_id: &str) -> Option<String> {
        self.ticket_in(None, incident_id)
    }

    /// The ticket key linked to an incident in one pair (`sentinel->servicenow`).
    pub fn ticket_in(&self, pair: Option<&str>, incident_id: &str) -> Option<String> {
        self.links()
            .into_iter()
            .find(|l| l["incident_id"] == incident_id && pair.is_none_or(|p| l["pair"] == p))
            .map(|l| l["ticket_key"].as_str().unwrap().to_string())
    }

    /// Every line of `links --json`.
    pub fn links(&self) -> Vec<serde_json::Value> {
        let out = self.bridge(&["links", "--db", self.db_arg(), "--json"]);
        assert_success(&out);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("links --json lines are JSON"))
            .collect()
    }

    /// (pair, incident id) → ticket key, for every link.
    pub fn tickets_by_incident(&self) -> std::collections::HashMap<(String, String), String> {
        self.links()
            .into_iter()
            .filter(|l| l.get("ticket_key").is_some())
            .map(|l| {
                let s = |k: &str| l[k].as_str().unwrap().to_string();
                ((s("pair"), s("incident_id")), s("ticket_key"))
            })
            .collect()
    }

    /// Makes an incident's retry due now, as if its delay (a minute at first) had
    /// passed.
    pub fn make_retry_due(&self, pair: &str, incident_id: &str) {
        use bridge_core::store::{SqliteStore, Store};
        let store = SqliteStore::open(&self.db).expect("the bridge's database opens");
        store
            .schedule_retry(
                pair,
                incident_id,
                chrono::Utc::now() - chrono::Duration::seconds(1),
            )
            .expect("the retry is rescheduled");
    }

    /// The Defender incidents still active, by id.
    pub fn active_defender(&self) -> Vec<String> {
        self.sims
            .graph
            .incidents()
            .into_iter()
            .filter(|i| i.status == "active")
            .map(|i| i.id)
            .collect()
    }

    /// The Sentinel incidents in `status` (`New`, `Active`, `Closed`), by name.
    pub fn sentinel_in(&self, status: &str) -> Vec<String> {
        self.sims
            .sentinel
            .incidents()
            .into_iter()
            .filter(|i| i.status == status)
            .map(|i| i.name)
            .collect()
    }

    /// The number of ledger entries.
    pub fn ledger_len(&self) -> usize {
        let out = self.bridge(&["ledger", "export", "--db", self.db_arg()]);
        assert_success(&out);
        String::from_utf8_lossy(&out.stdout).lines().count()
    }
}

pub fn bridge_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_itsm-bridge"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the itsm-bridge binary runs")
}

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
