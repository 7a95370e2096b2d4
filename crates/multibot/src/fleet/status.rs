//! What `/status`, the admin bot and the health endpoints show of each bot: [`BotState`] and [`BotStatus`], built
//! from the manager's slots and the bot's live counters.

use std::{
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use serde::Serialize;

use super::Slot;
use crate::{
    config::{BotConfig, BotId, Mode},
    outcomes::ReloadOutcome,
    runtime::{Backlog, BotHealth, RunningBot, Trouble},
};

/// A bot's lifecycle state (running, stopped, ...), as `/status` and the admin bot show it. Not to be confused
/// with a conversation's FSM state ([`Ctx::fsm`](crate::plugins::Ctx::fsm)) or a plugin's persistent store
/// ([`PluginContext::store`](crate::plugins::PluginContext::store)); the name stays because it is the `state`
/// field of the status JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BotState {
    /// Receiving and handling updates.
    Running,
    /// Configured and enabled, not running.
    Stopped,
    /// `enabled: false` in its YAML.
    Disabled,
    /// Could not start or stopped by an error.
    Failed,
    /// Running, but the Bot API is unreachable or another poller conflicts with it (see the reason).
    Degraded,
}

impl BotState {
    /// Whether the bot is running, degraded or not.
    pub fn is_running(&self) -> bool {
        matches!(self, BotState::Running | BotState::Degraded)
    }
}

/// A bot's status, for the admin bot and the health endpoints.
#[derive(Debug, Clone, Serialize)]
pub struct BotStatus {
    /// YAML id.
    pub id: BotId,
    /// Display name.
    pub name: String,
    /// State.
    pub state: BotState,
    /// Why it failed or is degraded, when it is.
    pub reason: Option<String>,
    /// What is wrong with the Bot API, when it is degraded.
    pub trouble: Option<Trouble>,
    /// Polling or webhook.
    pub mode: Mode,
    /// Time since it started, while running.
    pub uptime: Option<Duration>,
    /// Loaded plugins, in load order, while running.
    pub plugins: Vec<String>,
    /// Updates handled since the process started.
    pub updates_handled: u64,
    /// Handler errors since the process started.
    pub errors: u64,
    /// The last handler error.
    pub last_error: Option<String>,
    /// Updates dropped by access control.
    pub access_denied: u64,
    /// Updates dropped by rate limiting.
    pub rate_limited: u64,
    /// Updates taken in and not finished yet (queued behind their chat or being handled), while running.
    pub pending_updates: usize,
    /// How long the longest-waiting of them has waited.
    pub oldest_pending: Option<Duration>,
    /// The YAML file.
    pub file: PathBuf,
    /// What the last configuration change did (reloaded in place, restarted, ...).
    pub last_reload: Option<ReloadOutcome>,
}

/// The parts of a bot's status that change only with manager operations; counters are read live.
pub(super) struct StatusEntry {
    pub(super) config: Arc<BotConfig>,
    health: Arc<BotHealth>,
    started_at: Option<Instant>,
    plugins: Vec<String>,
    failure: Option<String>,
    last_reload: Option<ReloadOutcome>,
    /// The running bot's unfinished updates, read live.
    backlog: Option<Backlog>,
}

impl StatusEntry {
    pub(super) fn of(slot: &Slot) -> StatusEntry {
        StatusEntry {
            config: slot.config.clone(),
            health: slot.health.clone(),
            started_at: slot.running.as_ref().map(|r| r.started_at),
            plugins: slot.running.as_ref().map(RunningBot::plugin_names).unwrap_or_default(),
            failure: slot.failure.clone(),
            last_reload: slot.last_reload,
            backlog: slot.running.as_ref().map(RunningBot::backlog),
        }
    }

    pub(super) fn status(&self) -> BotStatus {
        let health = &self.health;
        let failure = health.failure.lock().clone().or_else(|| self.failure.clone());
        let degraded = health.degraded.lock().clone().filter(|_| self.started_at.is_some() && failure.is_none());
        let state = match (self.started_at, &failure) {
            (_, Some(_)) => BotState::Failed,
            (Some(_), None) if degraded.is_some() => BotState::Degraded,
            (Some(_), None) => BotState::Running,
            (None, None) if !self.config.enabled => BotState::Disabled,
            (None, None) => BotState::Stopped,
        };
        let (pending_updates, oldest_pending) = self.backlog.as_ref().map_or((0, None), Backlog::read);
        BotStatus {
            id: self.config.id.clone(),
            name: self.config.name.clone(),
            state,
            trouble: degraded.as_ref().map(|d| d.trouble),
            reason: failure.or(degraded.map(|d| d.reason)),
            mode: self.config.mode,
            uptime: self.started_at.map(|at| at.elapsed()),
            plugins: self.plugins.clone(),
            updates_handled: health.updates_handled.load(Ordering::Relaxed),
            errors: health.errors.load(Ordering::Relaxed),
            last_error: health.last_error.lock().clone(),
            access_denied: health.refusals.access_denied.load(Ordering::Relaxed),
            rate_limited: health.refusals.rate_limited.load(Ordering::Relaxed),
            pending_updates,
            oldest_pending,
            file: self.config.file.clone(),
            last_reload: self.last_reload,
        }
    }
}
