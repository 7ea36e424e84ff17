//! Leases per pair on a PostgreSQL store: [`LeaseKeeper`], a thread with a
//! connection of its own that heartbeats this replica, renews the leases it
//! holds, gives up the ones a fair share no longer allows and takes free or
//! expired ones, every third of a lease period.
//!
//! Every decision of who holds what is one SQL statement judged by the
//! database's clock (`now()`), never a replica's. A lease is taken only when
//! free or expired, with a new fencing token from the `lease_tokens` sequence;
//! renewing keeps the token and fails once another replica took the pair.
//!
//! The pairs are divided among the replicas seen alive within one lease period:
//! each aims at `ceil(pairs / live replicas)`. A replica that joins makes the
//! others give up what is above their share (a pair whose cycle is under way is
//! given up once it ends); one that leaves (stopped, killed, cut off) stops
//! renewing, and its pairs are taken over once its leases expire. Each replica
//! prefers pairs by a hash of its name and the pair's, so replicas starting
//! together mostly reach for different pairs.

use std::sync::mpsc;
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::Client;

use super::{Fence, PgConnect};
use crate::store::{StoreError, StoreResult};

/// What a replica's leases are for and how long they last.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// Every `[[sync]]` pair of the config (all replicas run the same config).
    pub pairs: Vec<String>,
    /// How long a lease lasts without renewal: a dead replica's pairs are taken
    /// over within about this long plus one renewal round (a third of it).
    pub period: Duration,
}

impl LeaseSettings {
    fn round(&self) -> Duration {
        (self.period / 3).max(Duration::from_millis(100))
    }
}

/// The thread that keeps this replica's leases (see the module's documentation).
/// Dropping it (or [`LeaseKeeper::stop`]) gives every lease up and leaves the
/// replicas table, so the others take the pairs over at once.
pub struct LeaseKeeper {
    fence: Arc<Fence>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LeaseKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseKeeper")
            .field("holder", &self.fence.holder)
            .finish_non_exhaustive()
    }
}

impl LeaseKeeper {
    /// Connects, makes one round (heartbeat, first leases) and returns; the
    /// rounds go on on the keeper's own thread.
    pub fn start(
        connect: &PgConnect,
        fence: Arc<Fence>,
        settings: LeaseSettings,
    ) -> StoreResult<LeaseKeeper> {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let connect = connect.clone();
        let keeper_fence = fence.clone();
        let thread = std::thread::Builder::new()
            .name("pg-leases".into())
            .spawn(move || {
                let mut keeper = Keeper {
                    connect,
                    client: None,
                    fence: keeper_fence,
                    settings,
                    last_round: Instant::now(),
                };
                let first = keeper.round();
                let ok = first.is_ok();
                let _ = ready_tx.send(first);
                if !ok {
                    return;
                }
                keeper.run(stop_rx);
            })
            .map_err(StoreError::Io)?;
        let first = ready_rx.recv().unwrap_or_else(|_| {
            Err(StoreError::Unreachable(
                "the lease keeper's thread stopped while starting".into(),
            ))
        });
        let keeper = LeaseKeeper {
            fence,
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        first.map(|()| keeper)
    }

    pub fn fence(&self) -> &Arc<Fence> {
        &self.fence
    }

    /// Gives every lease up and waits for the keeper's thread to end.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.shut_down();
    }
}

struct Keeper {
    connect: PgConnect,
    client: Option<Client>,
    fence: Arc<Fence>,
    settings: LeaseSettings,
    /// When the last round succeeded (the process's monotonic clock): past one
    /// lease period without one, nothing held can be trusted.
    last_round: Instant,
}

impl Keeper {
    fn run(&mut self, stop: mpsc::Receiver<()>) {
        // A stop, or the keeper dropped, ends the rounds.
        while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(self.settings.round()) {
            if let Err(e) = self.round() {
                tracing::warn!(error = %e, "cannot renew this replica's leases; trying again");
                self.client = None;
                if self.last_round.elapsed() >= self.settings.period {
                    for (pair, _) in self.fence.held_pairs() {
                        if self.fence.lose(&pair) {
                            tracing::warn!(
                                pair,
                                "lost the lease for pair {pair}: it could not be renewed within its period"
                            );
                        }
                    }
                }
            }
        }
        self.release_all();
    }

    fn client(&mut self) -> StoreResult<&mut Client> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            self.client = Some(self.connect.connect()?);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// One round: heartbeat, renew, give up above the fair share, take up to it.
    fn round(&mut self) -> StoreResult<()> {
        let started = Instant::now();
        // Until when what this round takes or renews surely lasts.
        let lasts = started + self.settings.period;
        let holder = self.fence.holder.clone();
        let period = self.settings.period.as_secs_f64();
        let pairs = self.settings.pairs.clone();
        let fence = self.fence.clone();
        let client = self.client()?;

        client.execute(
            "INSERT INTO replicas (holder, started_at, seen_at) VALUES ($1, now(), now())
             ON CONFLICT (holder) DO UPDATE SET seen_at = now()",
            &[&holder],
        )?;
        client.execute(
            "DELETE FROM replicas WHERE seen_at < now() - make_interval(secs => $1)",
            &[&(period * 20.0)],
        )?;
        let live: i64 = client
            .query_one(
                "SELECT count(*) FROM replicas WHERE seen_at > now() - make_interval(secs => $1)",
                &[&period],
            )?
            .get(0);

        for (pair, token) in fence.held_pairs() {
            let renewed = client.execute(
                "UPDATE leases SET expires_at = now() + make_interval(secs => $4)
                 WHERE pair = $1 AND holder = $2 AND token = $3",
                &[&pair, &holder, &token, &period],
            )?;
            if renewed == 1 {
                fence.lasts_until(&pair, lasts);
            } else if fence.lose(&pair) {
                tracing::warn!(
                    pair,
                    token,
                    "lost the lease for pair {pair}: another replica took it over"
                );
            }
        }

        let live = usize::try_from(live.max(1)).unwrap_or(1);
        let share = pairs.len().div_ceil(live);
        let mut preferred = pairs.clone();
        preferred.sort_by_key(|pair| preference(&holder, pair));

        // Above the fair share: give up the least preferred pairs that are idle.
        let mut held = fence.held_pairs();
        if held.len() > share {
            let mut excess = held.len() - share;
            for pair in preferred.iter().rev() {
                if excess == 0 {
                    break;
                }
                let Some(&(_, token)) = held.iter().find(|(p, _)| p == pair) else {
                    continue;
                };
                if !fence.release_if_idle(pair) {
                    continue;
                }
                client.execute(
                    "DELETE FROM leases WHERE pair = $1 AND holder = $2 AND token = $3",
                    &[pair, &holder, &token],
                )?;
                tracing::info!(
                    pair,
                    token,
                    live_replicas = live,
                    "gave up the lease for pair {pair} to share the pairs among {live} replicas"
                );
                excess -= 1;
            }
            held = fence.held_pairs();
        }

        // Below it: take free or expired pairs, most preferred first.
        let mut count = held.len();
        for pair in &preferred {
            if count >= share {
                break;
            }
            if fence.holds(pair) {
                continue;
            }
            let taken = client.query_opt(
                "INSERT INTO leases (pair, holder, token, acquired_at, expires_at)
                 VALUES ($1, $2, nextval('lease_tokens'), now(), now() + make_interval(secs => $3))
                 ON CONFLICT (pair) DO UPDATE SET holder = excluded.holder,
                     token = excluded.token, acquired_at = excluded.acquired_at,
                     expires_at = excluded.expires_at
                 WHERE leases.expires_at <= now()
                 RETURNING token",
                &[pair, &holder, &period],
            )?;
            if let Some(row) = taken {
                let token: i64 = row.get(0);
                fence.set(pair, token);
                fence.lasts_until(pair, lasts);
                count += 1;
                tracing::info!(pair, token, "took the lease for pair {pair}");
            }
        }
        if started.elapsed() < self.settings.period {
            self.last_round = started;
        }
        Ok(())
    }

    /// At a clean stop: every lease given up at once, and this replica gone
    /// from the live ones.
    fn release_all(&mut self) {
        let holder = self.fence.holder.clone();
        let pairs = self.fence.held_pairs();
        for (pair, _) in &pairs {
            self.fence.lose(pair);
        }
        let result = self.client().and_then(|client| {
            client.execute("DELETE FROM leases WHERE holder = $1", &[&holder])?;
            client.execute("DELETE FROM replicas WHERE holder = $1", &[&holder])?;
            Ok(())
        });
        match result {
            Ok(()) => tracing::info!(
                leases = pairs.len(),
                "gave up this replica's leases at stop"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not give up this replica's leases at stop; they expire on their own")
            }
        }
    }
}

impl Fence {
    /// Forgets `pair` unless its cycle or sweep is under way; true if it was
    /// held and is now given up.
    fn release_if_idle(&self, pair: &str) -> bool {
        let busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        if busy.contains(pair) {
            return false;
        }
        self.lose(pair)
    }
}

/// A replica's preference for a pair (lower first): FNV-1a of both names, so
/// each replica orders the pairs its own way.
fn preference(holder: &str, pair: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in holder.bytes().chain([0]).chain(pair.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
