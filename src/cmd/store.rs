//! `itsm-bridge store migrate`: moves an SQLite store into an empty PostgreSQL
//! store, for a deployment growing from one process to replicas. The SQLite
//! store's lock is held while it is copied, so a store a daemon is using is
//! refused; the PostgreSQL side must be empty and used by no replica.

use std::path::Path;
use std::process::ExitCode;

use bridge_core::store::{PgConnect, PgStore, postgres::import_sqlite};
use secrecy::SecretString;

use crate::{CmdResult, Failure};

/// The environment variable the PostgreSQL password is read from, as libpq does.
const PASSWORD_VAR: &str = "PGPASSWORD";
/// The CA bundle `sslmode=verify-ca`/`verify-full` trusts, libpq's variable.
const CA_VAR: &str = "PGSSLROOTCERT";

pub fn migrate(from: &Path, to: &str) -> CmdResult {
    if !from.is_file() {
        return Err(Failure::Input(format!(
            "{}: no such database file (pass the SQLite store named by [store] path)",
            from.display()
        )));
    }
    let password = std::env::var(PASSWORD_VAR)
        .ok()
        .filter(|p| !p.is_empty())
        .map(SecretString::from);
    let mut connect = PgConnect::new(to, password.as_ref())?;
    if let Some(path) = std::env::var_os(CA_VAR).filter(|p| !p.is_empty()) {
        let pem = std::fs::read(&path).map_err(|e| {
            Failure::Input(format!(
                "{CA_VAR}={}: cannot read the CA bundle ({e})",
                Path::new(&path).display()
            ))
        })?;
        connect = connect.with_ca_bundle(&pem)?;
    }
    // A store in use is refused: its daemon holds this lock.
    let _lock = super::lock_store(from)?;
    let target = PgStore::open(&connect)?;
    let report = import_sqlite(from, &target)?;
    println!(
        "copied {} into {}:\n  {} link(s), {} watermark(s), {} pending intent(s), {} dead \
         letter(s), {} synced comment(s), {} incident(s) as last seen\n  ledger: {} entries, head {} (verified on both sides)",
        from.display(),
        connect.shown(),
        report.links,
        report.watermarks,
        report.outbox,
        report.dead_letters,
        report.synced_comments,
        report.incidents_seen,
        report.ledger.entries,
        report.ledger.head
    );
    println!(
        "next: set [store] url = \"{}\" in bridge.toml (in place of path), and keep {} as it \
         is until the replicas run",
        connect.shown(),
        from.display()
    );
    Ok(ExitCode::SUCCESS)
}
