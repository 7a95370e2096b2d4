//! An admin's orders, carried out wherever the bot runs: [`Control`] starts, stops and restarts a bot, and reloads
//! one bot's file or every file.
//!
//! In one process that is the [`BotManager`] and the [`ReloadHandle`]. With replicas (`REPLICA_ID`):
//! - a stop is remembered in the bot's lease row (`stopped`), so that whichever replica holds the bot, now or after
//!   a failover or a handover, keeps it stopped until an admin starts it (see `Replication::follow_stops`);
//! - the order goes to the replica that holds the bot as a row of `fleet_commands`, announced by `NOTIFY`; that
//!   replica carries it out and answers in `fleet_replies`, and the admin is told what it answered;
//! - a reload goes to every replica alive (each reads its own copy of the files), and each bot's outcome is taken
//!   from the replica that runs it.

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{BotManager, BotState, BotStatus, ReloadHandle, ReloadReport, leases::Replication, relay};
use crate::{
    config::BotId,
    storage::{BotRecord, Command, Storage},
};

/// How long the admin waits for other replicas to answer.
const WAIT: Duration = Duration::from_secs(10);
/// How often a waiting admin reads the answers when no notice came.
const REREAD: Duration = Duration::from_millis(500);

/// Start, stop or restart a bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Start it (and forget an admin's stop).
    Start,
    /// Stop it, letting in-flight updates finish; with replicas it stays stopped wherever it moves.
    Stop,
    /// Stop and start it.
    Restart,
}

impl Order {
    /// `start`, `stop` or `restart`: the word in `fleet_commands`.
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Start => "start",
            Order::Stop => "stop",
            Order::Restart => "restart",
        }
    }

    fn parse(word: &str) -> Option<Order> {
        [Order::Start, Order::Stop, Order::Restart].into_iter().find(|o| o.as_str() == word)
    }
}

/// Where an order was carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// In this process.
    Here,
    /// On this other replica.
    On(String),
    /// No replica holds the bot now: the one that takes it follows the order (starts it, or keeps it stopped).
    Later,
}

/// A reload's outcome over the fleet, each bot's from the replica that runs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetReport {
    /// Bots and what happened to each (added, reloaded, restarted, disabled, removed).
    pub applied: Vec<(String, String)>,
    /// Bots whose new configuration failed to start, and why; each keeps its previous configuration.
    pub failed: Vec<(String, String)>,
    /// Configuration problems; the bots of those files keep running as they were.
    pub errors: Vec<String>,
    /// Replicas that did not answer in time.
    pub silent: Vec<String>,
}

impl From<&ReloadReport> for FleetReport {
    fn from(report: &ReloadReport) -> FleetReport {
        let applied = report.applied.iter().map(|(id, outcome)| (id.to_string(), outcome.to_string()));
        let failed = report.failed.iter().map(|(id, error)| (id.to_string(), error.to_string()));
        let errors = report.errors.clone();
        FleetReport { applied: applied.collect(), failed: failed.collect(), errors, silent: Vec::new() }
    }
}

/// The fleet as `/status` shows it.
#[derive(Debug, Clone)]
pub struct FleetView {
    /// Each bot's status, and the replica that runs it (with replicas). The counters of a bot another replica
    /// runs are that replica's, and not known here.
    pub bots: Vec<(BotStatus, Option<String>)>,
    /// With replicas: this one's name, and the replicas alive.
    pub replicas: Option<(String, Vec<String>)>,
}

/// A replica's answer to a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Done,
    Failed(String),
    /// It does not hold the bot (it moved meanwhile).
    NotHere,
    Reloaded(FleetReport),
}

/// Carries out an admin's orders; with replicas, [`Control::serve`] carries out the others' orders for this one.
#[derive(Clone)]
pub struct Control {
    manager: BotManager,
    reloads: ReloadHandle,
    storage: Storage,
    /// Woken by every notice on the command channel: an answer may have come.
    answers: Arc<Notify>,
}

impl Control {
    /// Orders for `manager`'s bots; `reloads` reloads this process's files.
    pub fn new(manager: BotManager, reloads: ReloadHandle, storage: Storage) -> Control {
        Control { manager, reloads, storage, answers: Arc::default() }
    }

    fn replication(&self) -> Option<&Arc<Replication>> {
        self.manager.replication.as_ref()
    }

    /// Starts, stops or restarts `bot` wherever it runs.
    pub async fn order(&self, order: Order, bot: &BotId) -> Result<Done, String> {
        let (Some(replication), Some(leases), Some(commands)) =
            (self.replication(), self.storage.leases(), self.storage.commands())
        else {
            return self.here(order, bot).await.map(|()| Done::Here);
        };
        let stopped = order == Order::Stop;
        leases.set_stopped(bot.as_str(), stopped).await.map_err(|e| format!("the database: {e}"))?;
        let owners = leases.owners().await.map_err(|e| format!("the database: {e}"))?;
        let owner = owners.into_iter().find(|o| o.live && o.bot_id == bot.as_str()).map(|o| o.replica);
        match owner {
            None => Ok(Done::Later),
            Some(owner) if owner == replication.replica() => {
                replication.set_stopped(bot, stopped);
                self.here(order, bot).await.map(|()| Done::Here)
            }
            Some(owner) => {
                let id = commands.issue(&owner, Some(bot.as_str()), order.as_str()).await;
                let id = id.map_err(|e| format!("the database: {e}"))?;
                match self.answers(id, std::slice::from_ref(&owner)).await.remove(&owner) {
                    Some(Reply::Done) => Ok(Done::On(owner)),
                    Some(Reply::Failed(why)) => Err(format!("{why} (on replica {owner})")),
                    Some(Reply::NotHere | Reply::Reloaded(_)) => Ok(Done::Later),
                    None => Err(format!("replica {owner}, which runs it, did not answer within {}s", WAIT.as_secs())),
                }
            }
        }
    }

    /// Reloads `bot`'s file (or every file) on every replica.
    pub async fn reload(&self, bot: Option<&BotId>) -> FleetReport {
        let (Some(replication), Some(leases), Some(commands)) =
            (self.replication(), self.storage.leases(), self.storage.commands())
        else {
            return FleetReport::from(&self.reload_here(bot).await);
        };
        let action = if bot.is_some() { "reload" } else { "reload_all" };
        let id = match commands.issue("*", bot.map(BotId::as_str), action).await {
            Ok(id) => id,
            Err(e) => {
                let mut report = FleetReport::from(&self.reload_here(bot).await);
                report.errors.push(format!("the other replicas were not told (the database: {e})"));
                return report;
            }
        };
        let mut alive = replication.alive();
        // Before its first lease round a replica has seen no one alive, itself included.
        if !alive.iter().any(|r| r == replication.replica()) {
            alive.push(replication.replica().to_owned());
        }
        let answers = self.answers(id, &alive).await;
        let owners: HashMap<String, String> = match leases.owners().await {
            Ok(owners) => owners.into_iter().filter(|o| o.live).map(|o| (o.bot_id, o.replica)).collect(),
            Err(_) => HashMap::new(),
        };
        merge(replication.replica(), &alive, answers, &owners)
    }

    /// Every bot's status as the fleet sees it: with replicas, a bot another replica runs shows the state that
    /// replica recorded in the `bots` table, and the replica's name.
    pub async fn view(&self) -> FleetView {
        let mut bots: Vec<(BotStatus, Option<String>)> =
            self.manager.status().into_iter().map(|status| (status, None)).collect();
        let (Some(replication), Some(leases)) = (self.replication(), self.storage.leases()) else {
            return FleetView { bots, replicas: None };
        };
        let me = replication.replica().to_owned();
        let replicas = Some((me.clone(), replication.alive()));
        let (Ok(owners), Ok(rows)) = (leases.owners().await, self.storage.bots().list().await) else {
            return FleetView { bots, replicas };
        };
        let owners: HashMap<String, (String, bool)> =
            owners.into_iter().filter(|o| o.live).map(|o| (o.bot_id, (o.replica, o.stopped))).collect();
        let rows: HashMap<String, BotRecord> = rows.into_iter().map(|row| (row.id.clone(), row)).collect();
        for (status, owner) in &mut bots {
            let Some((replica, stopped)) = owners.get(status.id.as_str()) else { continue };
            *owner = Some(replica.clone());
            if *replica == me {
                if *stopped && status.state == BotState::Stopped {
                    status.reason = Some("stopped by an admin".to_owned());
                }
                continue;
            }
            let row = rows.get(status.id.as_str());
            (status.state, status.reason) = match (row.map(|r| r.status.as_str()), stopped) {
                (_, true) => (BotState::Stopped, Some("stopped by an admin".to_owned())),
                (Some("running"), _) => (BotState::Running, None),
                (Some("failed"), _) => (BotState::Failed, row.and_then(|r| r.last_error.clone())),
                (Some("disabled"), _) => (BotState::Disabled, None),
                _ => (BotState::Stopped, None),
            };
            status.uptime = row
                .and_then(|r| r.started_at)
                .filter(|_| status.state == BotState::Running)
                .and_then(|at| (crate::storage::now() - at).to_std().ok());
        }
        FleetView { bots, replicas }
    }

    /// Carries out, until `stop`, the commands other replicas send this one (replicas only).
    pub async fn serve(self, stop: CancellationToken) {
        let (Some(replication), Some(commands)) = (self.replication().cloned(), self.storage.commands()) else {
            return;
        };
        let me = replication.replica().to_owned();
        let mut seen = loop {
            match commands.newest().await {
                Ok(newest) => break newest,
                Err(e) => warn!(replica = %me, error = %e, "cannot read the fleet's commands; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(replication.round_every()) => {}
                () = stop.cancelled() => return,
            }
        };
        let mut listener = None;
        // Notices may have been lost before this replica listened, or while it reconnected.
        let mut deaf = true;
        loop {
            if listener.is_none() {
                listener = commands.listen().await.inspect_err(|e| warn!(replica = %me, error = %e, "cannot listen for the fleet's commands; reading them every round")).ok();
            }
            let notice = async {
                match listener.as_mut() {
                    Some(listener) => listener.recv().await.map(|n| n.payload().to_owned()),
                    None => std::future::pending().await,
                }
            };
            // A lost notice is made up for by the round timer.
            let notice = tokio::select! {
                received = notice => received.inspect_err(|_| listener = None).ok(),
                () = tokio::time::sleep(replication.round_every()) => None,
                () = stop.cancelled() => return,
            };
            if let Some(relayed) = notice.as_deref().and_then(|n| n.strip_prefix(relay::NOTICE)) {
                self.manager.pick_up(relayed).await;
                continue;
            }
            if notice.is_none() {
                self.manager.sweep_relayed(std::mem::take(&mut deaf)).await;
                deaf = listener.is_none();
            }
            self.answers.notify_waiters();
            let pending = match commands.after(&me, seen).await {
                Ok(pending) => pending,
                Err(e) => {
                    warn!(replica = %me, error = %e, "cannot read the fleet's commands");
                    continue;
                }
            };
            for command in pending {
                seen = command.id;
                let reply = self.carry_out(&command).await;
                let body = serde_json::to_string(&reply).unwrap_or_default();
                if let Err(e) = commands.reply(command.id, &me, &body).await {
                    warn!(replica = %me, command = command.id, error = %e, "cannot answer a fleet command");
                }
            }
        }
    }

    /// Carries out another replica's command here.
    async fn carry_out(&self, command: &Command) -> Reply {
        let bot = command.bot_id.as_deref().and_then(|id| BotId::parse(id).ok());
        info!(command = command.id, action = %command.action, bot_id = ?bot, "carrying out a fleet command");
        match (Order::parse(&command.action), command.action.as_str(), bot) {
            (Some(order), _, Some(bot)) => {
                let Some(replication) = self.replication() else { return Reply::NotHere };
                if !replication.set_stopped(&bot, order == Order::Stop) {
                    return Reply::NotHere;
                }
                match self.here(order, &bot).await {
                    Ok(()) => Reply::Done,
                    Err(why) => Reply::Failed(why),
                }
            }
            (None, "reload", Some(bot)) => Reply::Reloaded(FleetReport::from(&self.reload_here(Some(&bot)).await)),
            (None, "reload_all", None) => Reply::Reloaded(FleetReport::from(&self.reload_here(None).await)),
            _ => Reply::Failed(format!("unknown command {:?}", command.action)),
        }
    }

    async fn here(&self, order: Order, bot: &BotId) -> Result<(), String> {
        let done = match order {
            Order::Start => self.manager.start(bot).await,
            Order::Stop => self.manager.stop(bot).await,
            Order::Restart => self.manager.restart(bot).await,
        };
        done.map_err(|e| e.to_string())
    }

    async fn reload_here(&self, bot: Option<&BotId>) -> ReloadReport {
        match bot {
            Some(bot) => self.reloads.reload_bot(bot).await,
            None => self.reloads.reload_now().await,
        }
    }

    /// The answers of `from` to the command `id`, as they come until all answered or [`WAIT`] passed.
    async fn answers(&self, id: i64, from: &[String]) -> HashMap<String, Reply> {
        let Some(commands) = self.storage.commands() else { return HashMap::new() };
        let deadline = Instant::now() + WAIT;
        let mut answers = HashMap::new();
        loop {
            let notice = self.answers.notified();
            tokio::pin!(notice);
            notice.as_mut().enable();
            if let Ok(replies) = commands.replies(id).await {
                for (replica, body) in replies {
                    let reply = serde_json::from_str(&body).unwrap_or_else(|e| Reply::Failed(format!("{e}: {body}")));
                    answers.insert(replica, reply);
                }
            }
            if from.iter().all(|r| answers.contains_key(r)) || Instant::now() >= deadline {
                return answers;
            }
            tokio::select! {
                () = notice => {}
                () = tokio::time::sleep(REREAD) => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

/// One report of the replicas' answers: each bot's outcome from the replica that runs it (from this one, `me`,
/// for a bot no replica runs), the configuration problems once, and the replicas of `alive` that did not answer.
fn merge(me: &str, alive: &[String], answers: HashMap<String, Reply>, owners: &HashMap<String, String>) -> FleetReport {
    let mut merged = FleetReport::default();
    let mut replicas: Vec<&String> = answers.keys().collect();
    replicas.sort();
    for replica in replicas {
        let ours = |bot: &String| owners.get(bot).map_or(replica == me, |owner| owner == replica);
        match &answers[replica] {
            Reply::Reloaded(report) => {
                merged.applied.extend(report.applied.iter().filter(|(bot, _)| ours(bot)).cloned());
                merged.failed.extend(report.failed.iter().filter(|(bot, _)| ours(bot)).cloned());
                for error in &report.errors {
                    if !merged.errors.contains(error) {
                        merged.errors.push(error.clone());
                    }
                }
            }
            Reply::Failed(why) => merged.errors.push(format!("replica {replica}: {why}")),
            Reply::Done | Reply::NotHere => {}
        }
    }
    merged.silent = alive.iter().filter(|r| !answers.contains_key(*r)).cloned().collect();
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reloaded(applied: &[(&str, &str)], errors: &[&str]) -> Reply {
        Reply::Reloaded(FleetReport {
            applied: applied.iter().map(|(b, w)| ((*b).to_owned(), (*w).to_owned())).collect(),
            errors: errors.iter().map(|e| (*e).to_owned()).collect(),
            ..FleetReport::default()
        })
    }

    #[test]
    fn each_bot_is_reported_by_the_replica_that_runs_it_and_silence_is_named() {
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let owners: HashMap<String, String> =
            [("echo", "b"), ("shop", "a")].iter().map(|(b, r)| ((*b).to_owned(), (*r).to_owned())).collect();
        let answers = HashMap::from([
            (
                "a".to_owned(),
                reloaded(&[("echo", "restarted"), ("shop", "reloaded"), ("new", "added")], &["x.yaml:3:1"]),
            ),
            (
                "b".to_owned(),
                reloaded(&[("echo", "reloaded"), ("shop", "restarted"), ("new", "added")], &["x.yaml:3:1"]),
            ),
        ]);
        let report = merge("a", &strings(&["a", "b", "c"]), answers, &owners);
        let applied: Vec<(&str, &str)> = report.applied.iter().map(|(b, w)| (b.as_str(), w.as_str())).collect();
        assert_eq!(applied, [("shop", "reloaded"), ("new", "added"), ("echo", "reloaded")]);
        assert_eq!(report.errors, ["x.yaml:3:1"]);
        assert_eq!(report.silent, ["c"]);
    }
}
