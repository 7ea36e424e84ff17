//! Where the store is, and the daemon's side of replicas on PostgreSQL.
//!
//! `[store] path` is one SQLite file held by one process (its `StoreLock`).
//! `[store] url` is a PostgreSQL database several `run` processes share: each
//! starts a [`LeaseKeeper`] for every `[[sync]]` pair of the config, drives only
//! the pairs whose lease it holds (its [`Fence`]), and its store refuses any
//! commit of a pair whose lease it lost. The commands that only read open
//! either kind read-only. `/healthz` and `/metrics` show the lease table.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bridge_core::config::Config;
use bridge_core::store::{
    Fence, LeaseInfo, LeaseKeeper, LeaseSettings, PgConnect, PgStore, Store, StoreLock,
};
use serde_json::{Value, json};

use crate::Failure;

/// Where the store is.
#[derive(Debug, Clone)]
pub enum StoreAt {
    Sqlite(PathBuf),
    Postgres {
        connect: Box<PgConnect>,
        lease: Duration,
    },
}

impl StoreAt {
    /// The store a config names.
    pub fn of(config: &Config) -> Result<StoreAt, Failure> {
        let Some(pg) = &config.store.postgres else {
            return Ok(StoreAt::Sqlite(config.store.path.clone()));
        };
        if let Some(kv) = pg.password.as_ref().and_then(|p| p.key_vault()) {
            connectors::keyvault::fetch_one_blocking(config, kv).map_err(|e| {
                Failure::Input(format!("{}: [store] password: {e}", config.file.display()))
            })?;
        }
        let password = match &pg.password {
            Some(secret) => Some(secret.resolve().map_err(|e| {
                Failure::Input(format!("{}: [store] password: {e}", config.file.display()))
            })?),
            None => None,
        };
        let mut connect = PgConnect::new(&pg.url, password.as_ref())?;
        if let Some(path) = &pg.ca_bundle {
            let pem = std::fs::read(path).map_err(|e| {
                Failure::Input(format!(
                    "{}: the PostgreSQL CA bundle {}: {e}",
                    config.file.display(),
                    path.display()
                ))
            })?;
            connect = connect.with_ca_bundle(&pem)?;
        }
        Ok(StoreAt::Postgres {
            connect: Box::new(connect),
            lease: pg.lease,
        })
    }

    /// What logs call it.
    pub fn shown(&self) -> String {
        match self {
            StoreAt::Sqlite(path) => path.display().to_string(),
            StoreAt::Postgres { connect, .. } => connect.shown().to_owned(),
        }
    }

    /// Opens the store read-only (nothing created, migrated or written), for
    /// the commands that only read and the daemon's readers.
    pub fn open_reader(&self) -> Result<Arc<dyn Store>, Failure> {
        Ok(match self {
            StoreAt::Sqlite(path) => Arc::new(super::cmd::open_existing_store(path)?),
            StoreAt::Postgres { connect, .. } => Arc::new(PgStore::open_read_only(connect)?),
        })
    }
}

/// The store `run` writes to, and what keeps it one writer per pair: the
/// SQLite store's lock, or this replica's leases.
pub struct RunStore {
    pub store: Arc<dyn Store>,
    /// The leases this replica holds (PostgreSQL only).
    pub fence: Option<Arc<Fence>>,
    keeper: Option<LeaseKeeper>,
    _lock: Option<StoreLock>,
}

impl RunStore {
    /// Opens the store for `run`. On PostgreSQL: migrates, starts the lease
    /// keeper for `pairs` (its first round done, so the pairs this replica may
    /// take are taken) and fences the store with its leases.
    pub fn open(at: &StoreAt, pairs: Vec<String>) -> Result<RunStore, Failure> {
        match at {
            StoreAt::Sqlite(path) => {
                let (lock, store) = super::cmd::open_store_for_writing(path)?;
                Ok(RunStore {
                    store: Arc::new(store),
                    fence: None,
                    keeper: None,
                    _lock: Some(lock),
                })
            }
            StoreAt::Postgres { connect, lease } => {
                let connect = &connect.as_ref().clone().with_lease(*lease);
                let store = PgStore::open(connect)?;
                let fence = Fence::new(Fence::holder_name());
                let keeper = LeaseKeeper::start(
                    connect,
                    fence.clone(),
                    LeaseSettings {
                        pairs,
                        period: *lease,
                    },
                )?;
                tracing::info!(
                    replica = fence.holder(),
                    holds = ?fence.held_pairs().iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
                    lease_seconds = lease.as_secs_f64(),
                    "replica started on the PostgreSQL store"
                );
                Ok(RunStore {
                    store: Arc::new(store.with_fence(fence.clone())),
                    fence: Some(fence),
                    keeper: Some(keeper),
                    _lock: None,
                })
            }
        }
    }

    /// Gives this replica's leases up (the other replicas take the pairs over
    /// at once) and closes the store.
    pub fn stop(mut self) {
        if let Some(keeper) = self.keeper.take() {
            keeper.stop();
        }
    }
}

/// Whether this process may drive `pair` now: always on SQLite; on PostgreSQL
/// only while it holds the pair's lease, and then the pair stays busy (not
/// given up by a rebalance) until the guard drops.
pub enum Drive {
    Yes(Option<bridge_core::store::postgres::BusyPair>),
    NotHeld,
}

pub fn may_drive(fence: Option<&Arc<Fence>>, pair: &str) -> Drive {
    match fence {
        None => Drive::Yes(None),
        Some(fence) => match fence.enter(pair) {
            Some(busy) => Drive::Yes(Some(busy)),
            None => Drive::NotHeld,
        },
    }
}

/// The lease table for `/healthz`: per pair, the replica that drives it.
pub fn leases_json(leases: &[LeaseInfo]) -> Value {
    leases
        .iter()
        .map(|l| {
            json!({
                "pair": l.pair,
                "holder": l.holder,
                "token": l.token,
                "expires_in_seconds": l.expires_in.as_secs_f64(),
            })
        })
        .collect()
}

/// Adds to a `/healthz` body who drives each pair (`held_by`, null when no
/// replica holds it) and the lease table, when the store has leases.
pub fn add_leases_to_health(body: &mut Value, leases: &[LeaseInfo]) {
    if leases.is_empty() {
        return;
    }
    if let Some(pairs) = body.get_mut("pairs").and_then(Value::as_array_mut) {
        for pair in pairs {
            let held_by = pair
                .get("pair")
                .and_then(Value::as_str)
                .and_then(|name| leases.iter().find(|l| l.pair == name))
                .filter(|l| !l.expires_in.is_zero())
                .map(|l| l.holder.clone());
            pair["held_by"] = json!(held_by);
        }
    }
    body["leases"] = leases_json(leases);
}

/// The lease table in the Prometheus text format: one sample per pair and
/// holder (1 while the lease runs), and its fencing token.
pub fn lease_metrics(leases: &[LeaseInfo]) -> String {
    use std::fmt::Write as _;
    if leases.is_empty() {
        return String::new();
    }
    let label = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let mut text = String::new();
    text.push_str(
        "# HELP itsm_bridge_lease_held 1 while the named replica holds the pair's lease (it alone drives the pair), 0 once it expired.\n\
         # TYPE itsm_bridge_lease_held gauge\n",
    );
    for l in leases {
        let _ = writeln!(
            text,
            "itsm_bridge_lease_held{{pair=\"{}\",holder=\"{}\"}} {}",
            label(&l.pair),
            label(&l.holder),
            u8::from(!l.expires_in.is_zero())
        );
    }
    text.push_str(
        "# HELP itsm_bridge_lease_token The fencing token of the pair's lease; it grows with every new holder.\n\
         # TYPE itsm_bridge_lease_token gauge\n",
    );
    for l in leases {
        let _ = writeln!(
            text,
            "itsm_bridge_lease_token{{pair=\"{}\"}} {}",
            label(&l.pair),
            l.token
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leases() -> Vec<LeaseInfo> {
        vec![
            LeaseInfo {
                pair: "defender->jira".into(),
                holder: "host-a:41:00ab12".into(),
                token: 7,
                expires_in: Duration::from_secs(12),
            },
            LeaseInfo {
                pair: "sentinel->snow".into(),
                holder: "host-b:9:ff0000".into(),
                token: 3,
                expires_in: Duration::ZERO,
            },
        ]
    }

    #[test]
    fn health_names_the_replica_driving_each_pair() {
        let mut body = json!({
            "pairs": [{ "pair": "defender->jira" }, { "pair": "sentinel->snow" }, { "pair": "x->y" }],
        });
        add_leases_to_health(&mut body, &leases());
        assert_eq!(body["pairs"][0]["held_by"], "host-a:41:00ab12");
        assert_eq!(
            body["pairs"][1]["held_by"],
            Value::Null,
            "an expired lease drives nothing"
        );
        assert_eq!(body["pairs"][2]["held_by"], Value::Null);
        assert_eq!(body["leases"][0]["token"], 7);
    }

    #[test]
    fn a_store_without_leases_adds_nothing() {
        let mut body = json!({ "pairs": [{ "pair": "a" }] });
        add_leases_to_health(&mut body, &[]);
        assert_eq!(body, json!({ "pairs": [{ "pair": "a" }] }));
        assert_eq!(lease_metrics(&[]), "");
    }

    #[test]
    fn metrics_show_holder_and_token_per_pair() {
        let text = lease_metrics(&leases());
        assert!(text.contains(
            "itsm_bridge_lease_held{pair=\"defender->jira\",holder=\"host-a:41:00ab12\"} 1\n"
        ));
        assert!(text.contains(
            "itsm_bridge_lease_held{pair=\"sentinel->snow\",holder=\"host-b:9:ff0000\"} 0\n"
        ));
        assert!(text.contains("itsm_bridge_lease_token{pair=\"defender->jira\"} 7\n"));
    }
}
