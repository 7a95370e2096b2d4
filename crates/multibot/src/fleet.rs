//! The fleet: [`BotManager`] starts, stops, restarts and reloads bots and reports their status.
//!
//! - [`reload`]: hot reload of the configuration directory and the script plugins ([`ReloadHandle`]).
//! - [`admin`]: the admin bot's plugin: the fleet controlled from Telegram.
//! - [`broadcasts`]: one message to every user of a bot, run as a job in the database.

pub mod admin;
pub mod broadcasts;
pub mod control;
pub mod leases;
mod relay;
pub mod reload;
mod status;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use parking_lot::Mutex;
pub use reload::{ReloadHandle, ReloadReport, ReloadSetup};
use status::StatusEntry;
pub use status::{BotState, BotStatus};
use tokio_util::task::TaskTracker;
use tracing::{error, info};

use crate::{
    config::{BotConfig, BotId, diff::Current},
    outcomes::ReloadOutcome,
    runtime::{BotHealth, Deps, RunningBot, StartError},
    storage::{BotRowStatus, events},
};

/// Why a manager operation did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManagerError {
    /// No bot with this id is configured.
    #[error("no bot {0}")]
    Unknown(BotId),
    /// The bot could not start.
    #[error("bot {0} failed to start: {1}")]
    StartFailed(BotId, StartError),
}

/// One configured bot: its configuration, its counters and, while it runs, the running instance.
struct Slot {
    config: Arc<BotConfig>,
    health: Arc<BotHealth>,
    running: Option<RunningBot>,
    failure: Option<String>,
    last_reload: Option<ReloadOutcome>,
}

impl Slot {
    fn new(config: Arc<BotConfig>) -> Slot {
        Slot { config, health: Arc::default(), running: None, failure: None, last_reload: None }
    }
}

/// A new configuration for a bot, with what it replaces.
struct Change {
    id: BotId,
    config: Arc<BotConfig>,
    /// The configuration it replaces, if the bot was configured.
    previous: Option<Arc<BotConfig>>,
    /// The bot as it runs now, taken out of its slot.
    running: Option<RunningBot>,
}

/// Runs the configured bots.
///
/// An application's manager is [`Application::manager`](crate::app::Application::manager). Reading the fleet's
/// status, and restarting a bot that failed:
///
/// ```rust,no_run
/// use multibot::{app::Application, config::BotId, fleet::BotState};
///
/// async fn restart_if_failed(app: &Application, id: &str) -> anyhow::Result<()> {
///     let manager = app.manager();
///     for bot in manager.status() {
///         println!("{} ({:?}): {} updates, {} errors", bot.id, bot.state, bot.updates_handled, bot.errors);
///     }
///     let id = BotId::parse(id).map_err(anyhow::Error::msg)?;
///     if let Some(status) = manager.status_of(&id)
///         && status.state == BotState::Failed
///     {
///         eprintln!("{id} failed: {}", status.reason.unwrap_or_default());
///         manager.restart(&id).await?;
///     }
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct BotManager {
    deps: Deps,
    slots: Arc<tokio::sync::Mutex<BTreeMap<BotId, Slot>>>,
    /// What status needs of each bot, readable without waiting for a start or stop in progress.
    statuses: Arc<Mutex<BTreeMap<BotId, StatusEntry>>>,
    /// The manager's own tasks (stopping a bot started twice); [`BotManager::stop_all`] waits for them.
    tasks: TaskTracker,
    /// With `REPLICA_ID`: only the bots whose leases this replica holds run here.
    replication: Option<Arc<leases::Replication>>,
}

impl BotManager {
    /// A manager with no bots yet.
    pub fn new(deps: Deps) -> BotManager {
        BotManager {
            deps,
            slots: Arc::default(),
            statuses: Arc::default(),
            tasks: TaskTracker::new(),
            replication: None,
        }
    }

    /// A manager that runs only the bots whose leases `replication` holds; its keeper starts them as it takes
    /// them.
    pub fn replicated(deps: Deps, replication: Arc<leases::Replication>) -> BotManager {
        BotManager { replication: Some(replication), ..BotManager::new(deps) }
    }

    /// Adds these bots and starts the enabled ones, all at once; returns how many run.
    pub async fn start_all(&self, configs: Vec<BotConfig>) -> usize {
        {
            let mut slots = self.slots.lock().await;
            for config in configs {
                if !config.enabled {
                    events::record_bot(&self.deps.recorder, &config, BotRowStatus::Disabled, None);
                }
                let slot = Slot::new(Arc::new(config));
                slots.insert(slot.config.id.clone(), slot);
            }
            self.refresh(&slots);
        }
        let ids: Vec<BotId> =
            self.slots.lock().await.iter().filter(|(_, s)| s.config.enabled).map(|(id, _)| id.clone()).collect();
        let starts = ids.iter().map(|id| self.start(id));
        futures_util::future::join_all(starts).await.iter().filter(|r| r.is_ok()).count()
    }

    /// Starts a configured bot (a running one is left alone). With replicas, a bot whose lease another replica
    /// holds is left to it, and one an admin stopped stays stopped.
    pub async fn start(&self, id: &BotId) -> Result<(), ManagerError> {
        if self.replication.as_ref().is_some_and(|r| !r.runs(id)) {
            return Ok(());
        }
        let (config, health) = {
            let slots = self.slots.lock().await;
            let slot = slots.get(id).ok_or_else(|| ManagerError::Unknown(id.clone()))?;
            if slot.running.is_some() {
                return Ok(());
            }
            (slot.config.clone(), slot.health.clone())
        };
        *health.failure.lock() = None;
        *health.degraded.lock() = None;
        let started = RunningBot::start(&self.deps, config.clone(), health).await;
        let mut slots = self.slots.lock().await;
        let slot = slots.get_mut(id).ok_or_else(|| ManagerError::Unknown(id.clone()))?;
        let result = match started {
            // With replicas the lease may have gone while the bot started (a handover, a fence): a stop that came
            // meanwhile found nothing to stop, so this instance must not run.
            Ok(running) if self.replication.as_ref().is_some_and(|r| !r.runs(id)) => {
                self.tasks.spawn(running.stop_within(Duration::ZERO));
                Ok(())
            }
            Ok(running) => {
                if let Some(previous) = slot.running.replace(running) {
                    // Started twice concurrently: keep one.
                    self.tasks.spawn(previous.stop());
                }
                slot.failure = None;
                Ok(())
            }
            Err(error) => {
                let reason = error.to_string();
                events::bot_failed(&self.deps.recorder, &config, &reason);
                self.deps.notifier.notify(format!("❌ Bot {id} failed to start: {reason}"));
                slot.failure = Some(reason);
                Err(ManagerError::StartFailed(id.clone(), error))
            }
        };
        self.refresh_one(&slots, id);
        result
    }

    /// Stops a bot, letting in-flight updates finish.
    pub async fn stop(&self, id: &BotId) -> Result<(), ManagerError> {
        self.stop_within(id, None).await
    }

    /// Stops a bot, abandoning the updates still in flight after `limit` (none: `SHUTDOWN_TIMEOUT`).
    pub(crate) async fn stop_within(&self, id: &BotId, limit: Option<Duration>) -> Result<(), ManagerError> {
        let running = {
            let mut slots = self.slots.lock().await;
            let slot = slots.get_mut(id).ok_or_else(|| ManagerError::Unknown(id.clone()))?;
            slot.running.take()
        };
        match (running, limit) {
            (Some(running), Some(limit)) => running.stop_within(limit).await,
            (Some(running), None) => running.stop().await,
            (None, _) => {}
        }
        self.refresh(&*self.slots.lock().await);
        Ok(())
    }

    /// Stops and starts a bot.
    pub async fn restart(&self, id: &BotId) -> Result<(), ManagerError> {
        self.stop(id).await?;
        self.start(id).await
    }

    /// Applies a configuration. A new bot is added and started; an unchanged one is left alone; a changed one is
    /// reloaded in place (new plugins and router, polling and offset untouched) when its token and mode stay and
    /// every plugin supports hot reload, and restarted otherwise. Either way the old instance's in-flight updates
    /// finish first. When the new configuration cannot start, the old one keeps (or resumes) running and the
    /// error is returned. The outcome is an event.
    pub async fn reload(&self, config: BotConfig) -> Result<ReloadOutcome, ManagerError> {
        self.apply_recorded(Arc::new(config), false).await
    }

    /// Rebuilds every running bot that uses one of these plugins (script plugins with a new version) as
    /// [`BotManager::reload`] would rebuild a changed one, in place or by a restart, and starts the enabled bots
    /// that use them and failed to start. Bots in `skip` (just rebuilt) are left alone.
    pub async fn reload_plugins(
        &self,
        names: &[String],
        skip: &[BotId],
    ) -> Vec<(BotId, Result<ReloadOutcome, ManagerError>)> {
        let uses = |slot: &Slot| {
            !skip.contains(&slot.config.id) && slot.config.plugins.iter().any(|e| e.enabled && names.contains(&e.name))
        };
        let (running, failed): (Vec<Arc<BotConfig>>, Vec<BotId>) = {
            let slots = self.slots.lock().await;
            let running = slots.values().filter(|s| s.running.is_some() && uses(s)).map(|s| s.config.clone());
            let failed = slots.values().filter(|s| s.running.is_none() && s.failure.is_some() && s.config.enabled);
            (running.collect(), failed.filter(|s| uses(s)).map(|s| s.config.id.clone()).collect())
        };
        let mut results = Vec::new();
        for config in running {
            results.push((config.id.clone(), self.apply_recorded(config, true).await));
        }
        for id in failed {
            let started = self.start(&id).await.map(|()| ReloadOutcome::Restarted);
            results.push((id, started));
        }
        results
    }

    /// [`BotManager::apply`], its outcome recorded as an event.
    async fn apply_recorded(&self, config: Arc<BotConfig>, force: bool) -> Result<ReloadOutcome, ManagerError> {
        let recorder = &self.deps.recorder;
        let outcome = self.apply(config.clone(), force).await;
        match &outcome {
            Ok(ReloadOutcome::Unchanged) => {}
            Ok(outcome) => events::bot_reloaded(recorder, &config, *outcome),
            Err(error) => events::reload_failed(recorder, &config.id, &error.to_string()),
        }
        outcome
    }

    /// [`BotManager::reload`] without the event; with `force`, an unchanged configuration is rebuilt too.
    async fn apply(&self, config: Arc<BotConfig>, force: bool) -> Result<ReloadOutcome, ManagerError> {
        let id = config.id.clone();
        let (previous, running) = {
            let mut slots = self.slots.lock().await;
            match slots.get_mut(&id) {
                Some(slot) if !force && slot.config.hash == config.hash => return Ok(ReloadOutcome::Unchanged),
                Some(slot) => (Some(std::mem::replace(&mut slot.config, config.clone())), slot.running.take()),
                None => {
                    let slot = Slot::new(config.clone());
                    slots.insert(id.clone(), slot);
                    (None, None)
                }
            }
        };
        let in_place = match (&previous, &running) {
            (Some(old), Some(running)) => {
                old.token == config.token
                    && old.mode == config.mode
                    && old.webhook == config.webhook
                    && config.enabled
                    && running.supports_hot_reload(&self.deps)
                    && self
                        .deps
                        .registry
                        .load_order(&config.plugins)
                        .iter()
                        .all(|e| self.deps.registry.get(&e.name).is_some_and(|f| f.meta().supports_hot_reload))
            }
            _ => false,
        };
        let change = Change { id: id.clone(), config, previous, running };
        let result = if in_place { self.reload_in_place(change).await } else { self.restart_with(change).await };
        let mut slots = self.slots.lock().await;
        if let (Ok(outcome), Some(slot)) = (&result, slots.get_mut(&id)) {
            slot.last_reload = Some(*outcome);
        }
        self.refresh(&slots);
        result
    }

    async fn reload_in_place(&self, change: Change) -> Result<ReloadOutcome, ManagerError> {
        let Change { ref id, config, previous, running } = change;
        let Some(mut running) = running else { return Err(ManagerError::Unknown(id.clone())) };
        let result = running.reload_in_place(&self.deps, config).await;
        let mut slots = self.slots.lock().await;
        let slot = slots.get_mut(id).ok_or_else(|| ManagerError::Unknown(id.clone()))?;
        slot.running = Some(running);
        match result {
            Ok(()) => Ok(ReloadOutcome::Reloaded),
            Err(reason) => {
                if let Some(previous) = previous {
                    slot.config = previous;
                }
                error!(bot_id = %id, reason = %reason, "reload failed; the previous configuration keeps running");
                Err(ManagerError::StartFailed(id.clone(), reason))
            }
        }
    }

    async fn restart_with(&self, change: Change) -> Result<ReloadOutcome, ManagerError> {
        let Change { ref id, config, previous, running } = change;
        let was_running = running.is_some();
        if let Some(running) = running {
            running.stop().await;
        }
        if !config.enabled {
            return Ok(ReloadOutcome::Disabled);
        }
        match self.start(id).await {
            Ok(()) if previous.is_none() => Ok(ReloadOutcome::Added),
            Ok(()) => Ok(ReloadOutcome::Restarted),
            Err(error) => {
                if let Some(previous) = previous {
                    if let Some(slot) = self.slots.lock().await.get_mut(id) {
                        slot.config = previous;
                    }
                    if was_running {
                        let _ = self.start(id).await;
                    }
                }
                Err(error)
            }
        }
    }

    /// Stops a bot and forgets it (its file was removed).
    pub async fn remove(&self, id: &BotId) -> Result<(), ManagerError> {
        self.stop(id).await?;
        let mut slots = self.slots.lock().await;
        slots.remove(id);
        self.refresh(&slots);
        Ok(())
    }

    /// The configuration a bot runs with (or would run with).
    pub async fn config_of(&self, id: &BotId) -> Option<Arc<BotConfig>> {
        self.slots.lock().await.get(id).map(|s| s.config.clone())
    }

    /// The Bot API client of a bot running in this process (with replicas: on this replica), with its flood
    /// control; `None` when it does not run here.
    pub async fn api_of(&self, id: &BotId) -> Option<crate::telegram::BotApi> {
        self.slots.lock().await.get(id).and_then(|s| s.running.as_ref()).map(RunningBot::api)
    }

    /// Stops every bot and waits for the manager's own tasks.
    pub async fn stop_all(&self) {
        let running: Vec<RunningBot> = {
            let mut slots = self.slots.lock().await;
            slots.values_mut().filter_map(|s| s.running.take()).collect()
        };
        futures_util::future::join_all(running.into_iter().map(RunningBot::stop)).await;
        self.tasks.close();
        self.tasks.wait().await;
        self.refresh(&*self.slots.lock().await);
        info!("all bots stopped");
    }

    /// Every configured bot's status, by id.
    pub fn status(&self) -> Vec<BotStatus> {
        self.statuses.lock().values().map(StatusEntry::status).collect()
    }

    /// One bot's status.
    pub fn status_of(&self, id: &BotId) -> Option<BotStatus> {
        self.statuses.lock().get(id).map(StatusEntry::status)
    }

    /// Each configured bot's id, file and configuration hash, for the reload diff.
    pub fn current(&self) -> Vec<Current> {
        let statuses = self.statuses.lock();
        statuses
            .values()
            .map(|e| Current { id: e.config.id.clone(), file: e.config.file.clone(), hash: e.config.hash.clone() })
            .collect()
    }

    /// With replicas: this replica's name, the replicas alive and its leases.
    pub fn replica(&self) -> Option<leases::ReplicaStatus> {
        self.replication.as_ref().map(|r| r.status())
    }

    /// The configured bot ids of the enabled bots.
    pub(crate) fn enabled_ids(&self) -> Vec<BotId> {
        self.statuses.lock().iter().filter(|(_, e)| e.config.enabled).map(|(id, _)| id.clone()).collect()
    }

    /// The configured bot ids.
    pub fn ids(&self) -> Vec<BotId> {
        self.statuses.lock().keys().cloned().collect()
    }

    /// Updates one bot's status entry (a start touches only its own: refreshing all would cost O(N) per start).
    fn refresh_one(&self, slots: &BTreeMap<BotId, Slot>, id: &BotId) {
        if let Some(slot) = slots.get(id) {
            self.statuses.lock().insert(id.clone(), StatusEntry::of(slot));
        }
    }

    fn refresh(&self, slots: &BTreeMap<BotId, Slot>) {
        let mut statuses = self.statuses.lock();
        statuses.clear();
        for (id, slot) in slots {
            statuses.insert(id.clone(), StatusEntry::of(slot));
        }
    }
}
