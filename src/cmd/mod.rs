//! One module per subcommand, plus what several share.

pub mod bench;
pub mod bench_export;
pub mod check;
pub mod demo;
pub mod doctor;
pub mod health;
pub mod ledger;
pub mod links;
pub mod mapping;
pub mod run;
pub mod sim;
pub mod store;

use std::path::Path;

use bridge_core::config::{self, Config};
use bridge_core::store::{SqliteStore, StoreLock};

use crate::Failure;

/// Loads and validates a config file; any problem is bad input (exit 2).
pub fn load_config(path: &Path) -> Result<Config, Failure> {
    config::load(path).map_err(|e| Failure::Input(e.to_string()))
}

/// Opens an existing database read-only (nothing is created, migrated or
/// written); a missing file, or one that is not an itsm-bridge store, is bad
/// input.
pub fn open_existing_store(path: &Path) -> Result<SqliteStore, Failure> {
    if !path.exists() {
        return Err(Failure::Input(format!(
            "{}: no such database (run the bridge first, or pass --db / --config)",
            path.display()
        )));
    }
    Ok(SqliteStore::open_read_only(path)?)
}

/// Takes the store's write lock (one writer per store) and opens it for
/// writing. Another process holding it is a runtime failure naming the holder.
pub fn open_store_for_writing(path: &Path) -> Result<(StoreLock, SqliteStore), Failure> {
    let lock = lock_store(path)?;
    let store = SqliteStore::open(path)?;
    Ok((lock, store))
}

/// Takes the store's write lock at once, or fails naming its holder (exit 1).
pub fn lock_store(path: &Path) -> Result<StoreLock, Failure> {
    StoreLock::acquire(path, chrono::Utc::now()).map_err(|e| Failure::Runtime(e.into()))
}
