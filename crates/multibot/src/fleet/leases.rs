//! Replicas sharing one fleet through PostgreSQL (`REPLICA_ID`): each bot runs on the one replica that holds its
//! lease (`storage::LeaseRepository`), so that no two replicas poll one token (Telegram would answer 409
//! Conflict to one of them) or handle its updates twice.
//!
//! Why leases in rows rather than advisory locks on a held connection: a row outlives a connection that breaks
//! and comes back, carries a fencing token that grows each time the bot changes hands, and can be read by every
//! replica (who runs what). Every expiry is the database server's clock.
//!
//! Every quarter of `LEASE_TTL_SECONDS` the [`Replication`] keeper records the replica as alive, renews its
//! leases, and moves towards its share: with N enabled bots and R replicas alive (sorted by id), the first
//! N mod R replicas hold N/R + 1 bots and the others N/R. Over its share it stops bots and releases their leases;
//! under it, it takes free or expired leases (preferring bots by a hash of bot and replica, so that replicas
//! starting together reach for different bots) and starts those bots.
//!
//! Fencing: a lease renewed with a request sent at `t` expires on the server no sooner than `t + ttl`. A replica
//! that has not renewed by `t + ttl / 2` (the database is unreachable, the process was paused) stops polling at
//! once and stops every bot it runs, abandoning the handlers still running at `t + 3 ttl / 4`, so it has stopped
//! before another replica can take them. A lease found lost (it expired and another replica may run the bot) is
//! stopped at once. A stopping replica (SIGTERM) stops its bots and then releases their leases, so the others take
//! them at their next round.
//!
//! The leases and the fleet's commands use a pool of their own (`storage::sql`), so that the bots' queries never
//! hold up a renewal.

use std::{
    collections::{HashMap, HashSet},
    hash::{DefaultHasher, Hash, Hasher},
    sync::Arc,
    time::Duration,
};

use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{info, warn};

use super::BotManager;
use crate::{
    config::BotId,
    storage::{Lease, Storage, StorageError},
    telemetry::metrics,
};

/// A lease this replica holds.
#[derive(Debug, Clone, Copy)]
struct Held {
    token: i64,
    /// Stopped by an admin: held but not run.
    stopped: bool,
    /// When this replica last set `stopped` itself: a renewal sent before then read the flag as it was.
    set_at: Option<Instant>,
}

/// This replica's leases, and the keeper that renews and balances them.
pub struct Replication {
    replica: String,
    ttl: Duration,
    /// The bots this replica holds leases for: the manager runs only these, unless an admin stopped them.
    held: Mutex<HashMap<BotId, Held>>,
    /// Until when its leases are surely its own (half a ttl after the last renewal was sent); none before the
    /// first and after a failed one ran out.
    fresh_until: Mutex<Option<Instant>>,
    /// The replicas alive at the last round, by id.
    alive: Mutex<Vec<String>>,
}

/// What `/health/full` shows of a replica.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplicaStatus {
    /// `REPLICA_ID`.
    pub id: String,
    /// The replicas alive at its last round, by id (itself included).
    pub alive: Vec<String>,
    /// The bots whose leases it holds, by id, with their fencing tokens.
    pub leases: std::collections::BTreeMap<String, i64>,
    /// The held bots an admin stopped, by id.
    pub stopped: Vec<String>,
    /// Whether its leases were renewed recently enough for its bots to poll.
    pub fresh: bool,
}

impl Replication {
    /// A replica named `replica` whose leases last `ttl`.
    pub fn new(replica: String, ttl: Duration) -> Arc<Replication> {
        let (held, fresh_until, alive) = (Mutex::default(), Mutex::default(), Mutex::default());
        Arc::new(Replication { replica, ttl, held, fresh_until, alive })
    }

    /// Its name, the replicas alive, its leases and whether they are fresh.
    pub fn status(&self) -> ReplicaStatus {
        let held = self.held.lock();
        let leases = held.iter().map(|(id, held)| (id.to_string(), held.token)).collect();
        let stopped = held.iter().filter(|(_, held)| held.stopped).map(|(id, _)| id.to_string()).collect();
        let alive = self.alive.lock().clone();
        ReplicaStatus { id: self.replica.clone(), alive, leases, stopped, fresh: self.fresh() }
    }

    /// Whether `bot` may poll: this replica holds its lease, and its leases are fresh (see `Deps::poll_gate`).
    pub fn may_poll(&self, bot: &BotId) -> bool {
        self.fresh() && self.holds(bot)
    }

    /// Whether the last renewal was recent enough that its leases are surely still its own.
    fn fresh(&self) -> bool {
        self.fresh_until.lock().is_some_and(|until| Instant::now() < until)
    }

    /// Whether this replica holds the lease of `bot`.
    pub(crate) fn holds(&self, bot: &BotId) -> bool {
        self.held.lock().contains_key(bot)
    }

    /// Whether `bot` is to run here: this replica holds it and no admin stopped it.
    pub(crate) fn runs(&self, bot: &BotId) -> bool {
        self.held.lock().get(bot).is_some_and(|held| !held.stopped)
    }

    /// Records an admin's stop (or start) of a bot this replica holds; false when it holds none.
    pub(crate) fn set_stopped(&self, bot: &BotId, stopped: bool) -> bool {
        let mut held = self.held.lock();
        let Some(held) = held.get_mut(bot) else { return false };
        *held = Held { stopped, set_at: Some(Instant::now()), ..*held };
        true
    }

    /// The replicas alive at the last round, by id.
    pub(crate) fn alive(&self) -> Vec<String> {
        self.alive.lock().clone()
    }

    /// How often the keeper runs a round.
    pub(crate) fn round_every(&self) -> Duration {
        self.ttl / 4
    }

    /// This replica's name.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Renews and balances the leases every quarter of the ttl until `stop`; then takes no more. Starting and
    /// stopping bots runs on `work`, so that a slow start never delays a renewal.
    pub async fn keep(
        self: Arc<Self>,
        manager: BotManager,
        storage: Storage,
        stop: CancellationToken,
        work: TaskTracker,
    ) {
        let round = self.round_every();
        loop {
            let sent = Instant::now();
            // A slow round is given until the leases may be gone (half a ttl after the last renewal was sent), not
            // only until the next round: one slow query does not stop every bot.
            let deadline = (*self.fresh_until.lock()).map_or(sent + self.ttl / 2, |until| until.max(sent + round));
            match tokio::time::timeout_at(deadline, self.round(&manager, &storage, &stop, &work, sent)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(replica = %self.replica, error = %e, "could not renew the bots' leases"),
                Err(_) => warn!(replica = %self.replica, "renewing the bots' leases took too long"),
            }
            let stale = self.fresh_until.lock().is_some() && !self.fresh();
            if stale {
                self.fence(&manager, &work);
                *self.fresh_until.lock() = None;
            }
            tokio::select! {
                () = tokio::time::sleep_until(sent + round) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// Leaves the fleet once this replica's bots are stopped: its leases end and it no longer counts as alive,
    /// so that the others take its bots at their next round.
    pub async fn leave(&self, storage: &Storage) {
        self.held.lock().clear();
        if let Some(leases) = storage.leases()
            && let Err(e) = leases.leave(&self.replica).await
        {
            warn!(replica = %self.replica, error = %e, "could not release the leases; they expire on their own");
        }
    }

    async fn round(
        &self,
        manager: &BotManager,
        storage: &Storage,
        stop: &CancellationToken,
        work: &TaskTracker,
        sent: Instant,
    ) -> Result<(), StorageError> {
        let Some(leases) = storage.leases() else { return Ok(()) };
        // The renewal first: it keeps the bots running.
        let held: Vec<String> = self.held.lock().keys().map(ToString::to_string).collect();
        let renewed = leases.renew(&self.replica, &held, self.ttl).await?;
        self.follow_stops(manager, work, &renewed, sent);
        let renewed: HashSet<String> = renewed.into_iter().map(|l| l.bot_id).collect();
        let lost: Vec<String> = held.into_iter().filter(|id| !renewed.contains(id)).collect();
        if !lost.is_empty() {
            metrics::lease_changes("lost", lost.len());
            warn!(replica = %self.replica, bots = ?lost, "lost the bots' leases; stopping them");
            // Another replica may run them already: what still runs here is abandoned at once.
            work.spawn(self.stop_bots(manager.clone(), lost, Some(Duration::ZERO)));
        }
        // Only now, with the lost ones no longer held: their polls stay shut. Fresh from the moment the renewal
        // was sent: the server's expiry comes no sooner than a ttl later.
        *self.fresh_until.lock() = Some(sent + self.ttl / 2);
        let alive = leases.heartbeat(&self.replica, self.ttl).await?;
        self.alive.lock().clone_from(&alive);
        if stop.is_cancelled() {
            return Ok(());
        }
        let bots = manager.enabled_ids();
        let configured: HashSet<String> = bots.iter().map(ToString::to_string).collect();
        // A bot no longer configured is no longer this replica's to hold.
        let (mut kept, mut surplus): (Vec<String>, Vec<String>) =
            self.held.lock().keys().map(ToString::to_string).partition(|id| configured.contains(id));
        let target = share(bots.len(), &alive, &self.replica);
        if kept.len() > target {
            kept.sort_by_key(|id| std::cmp::Reverse(score(id, &self.replica)));
            surplus.extend(kept.split_off(target));
        }
        if !surplus.is_empty() {
            // Stopped first, then released: the bot has stopped polling before another replica may take it.
            metrics::lease_changes("released", surplus.len());
            info!(replica = %self.replica, bots = ?surplus, "handing bots over to other replicas");
            let stopped = self.stop_bots(manager.clone(), surplus.clone(), None);
            let (storage, replica) = (storage.clone(), self.replica.clone());
            work.spawn(async move {
                stopped.await;
                if let Some(leases) = storage.leases()
                    && let Err(e) = leases.release(&replica, &surplus).await
                {
                    warn!(%replica, error = %e, "could not release the leases; they expire on their own");
                }
            });
        }
        if kept.len() >= target {
            return Ok(());
        }
        let taken: HashSet<String> = leases.owners().await?.into_iter().filter(|o| o.live).map(|o| o.bot_id).collect();
        let mut free: Vec<String> = configured.into_iter().filter(|id| !taken.contains(id)).collect();
        free.sort_by_key(|id| std::cmp::Reverse(score(id, &self.replica)));
        free.truncate(target - kept.len());
        let mut started = Vec::new();
        let taken = leases.acquire(&self.replica, &free, self.ttl).await?;
        metrics::lease_changes("taken", taken.len());
        for lease in taken {
            let Ok(id) = BotId::parse(&lease.bot_id) else { continue };
            info!(replica = %self.replica, bot_id = %id, token = lease.token, stopped = lease.stopped, "took the bot's lease");
            self.held.lock().insert(id.clone(), Held { token: lease.token, stopped: lease.stopped, set_at: None });
            if !lease.stopped {
                started.push(id);
            }
        }
        let manager = manager.clone();
        work.spawn(async move {
            // A bot that fails to start says so itself (event, log, admin notice), as at any start.
            futures_util::future::join_all(started.iter().map(|id| manager.start(id))).await;
        });
        Ok(())
    }

    /// Follows an admin's stop or start made through another replica (or while no replica held the bot), as
    /// read by a renewal sent at `sent`; a flag this replica set itself after that is newer.
    fn follow_stops(&self, manager: &BotManager, work: &TaskTracker, renewed: &[Lease], sent: Instant) {
        let (mut stop, mut start) = (Vec::new(), Vec::new());
        {
            let mut held = self.held.lock();
            for lease in renewed {
                let Ok(id) = BotId::parse(&lease.bot_id) else { continue };
                let Some(held) = held.get_mut(&id) else { continue };
                if held.stopped == lease.stopped || held.set_at.is_some_and(|at| at > sent) {
                    continue;
                }
                held.stopped = lease.stopped;
                if lease.stopped { stop.push(id) } else { start.push(id) }
            }
        }
        if !stop.is_empty() || !start.is_empty() {
            info!(replica = %self.replica, stopped = ?stop, started = ?start, "following an admin's order");
            let manager = manager.clone();
            work.spawn(async move {
                futures_util::future::join_all(stop.iter().map(|id| manager.stop(id))).await;
                futures_util::future::join_all(start.iter().map(|id| manager.start(id))).await;
            });
        }
    }

    /// Stops every bot: this replica can no longer be sure it holds their leases.
    fn fence(&self, manager: &BotManager, work: &TaskTracker) {
        let held: Vec<String> = self.held.lock().keys().map(ToString::to_string).collect();
        if !held.is_empty() {
            metrics::lease_changes("fenced", held.len());
            warn!(replica = %self.replica, bots = held.len(), "leases not renewed in time; stopping every bot");
            // The leases expire on the server no sooner than half a ttl from now: stop before.
            work.spawn(self.stop_bots(manager.clone(), held, Some(self.ttl / 4)));
        }
    }

    /// Forgets the leases of `ids` and stops those bots, all at once, abandoning what still runs after `limit`.
    fn stop_bots(
        &self,
        manager: BotManager,
        ids: Vec<String>,
        limit: Option<Duration>,
    ) -> impl std::future::Future<Output = ()> + use<> {
        let ids: Vec<BotId> = ids.iter().filter_map(|id| BotId::parse(id).ok()).collect();
        {
            let mut held = self.held.lock();
            for id in &ids {
                held.remove(id);
            }
        }
        async move {
            futures_util::future::join_all(ids.iter().map(|id| manager.stop_within(id, limit))).await;
        }
    }
}

/// How many of `bots` the replica `me` should hold among `alive` (sorted): the first `bots mod R` hold one more.
fn share(bots: usize, alive: &[String], me: &str) -> usize {
    let replicas = alive.len().max(1);
    let index = alive.iter().position(|r| r == me).unwrap_or(replicas - 1);
    bots / replicas + usize::from(index < bots % replicas)
}

/// How much `replica` prefers `bot`: replicas prefer different bots, each the same ones every round.
fn score(bot: &str, replica: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    (bot, replica).hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_differ_by_at_most_one_and_add_up_to_the_fleet() {
        for (bots, replicas) in [(300, 3), (301, 3), (2, 3), (0, 2), (7, 1)] {
            let alive: Vec<String> = (0..replicas).map(|i| format!("r{i}")).collect();
            let shares: Vec<usize> = alive.iter().map(|me| share(bots, &alive, me)).collect();
            assert_eq!(shares.iter().sum::<usize>(), bots, "{bots} bots over {replicas}: {shares:?}");
            assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1, "{shares:?}");
        }
        // Not yet seen alive (its first heartbeat is racing): it counts as the last.
        assert_eq!(share(4, &["a".to_owned()], "b"), 4);
    }
}
