//! One module per subcommand, plus what several share.

pub mod bench;
pub mod check;
pub mod demo;
pub mod doctor;
pub mod ledger;
pub mod links;
pub mod run;
pub mod sim;

use std::path::Path;

use bridge_core::config::{self, Config};
use bridge_core::store::SqliteStore;

use crate::Failure;

/// Loads and validates a config file; any problem is bad input (exit 2).
pub fn load_config(path: &Path) -> Result<Config, Failure> {
    config::load(path).map_err(|e| Failure::Input(e.to_string()))
}

/// Opens an existing database for reading; a missing file is bad input.
pub fn open_existing_store(path: &Path) -> Result<SqliteStore, Failure> {
    if !path.exists() {
        return Err(Failure::Input(format!(
            "{}: no such database (run the bridge first, or pass --db / --config)",
            path.display()
        )));
    }
    Ok(SqliteStore::open(path)?)
}
