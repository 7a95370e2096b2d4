//! Audit events: the `bot_events` table's rows ([`NewEvent`] in, [`BotEvent`] out, by [`EventKind`]) and its
//! [`EventRepository`]; and one function per kind. Each logs the event (with the bot's id), counts it
//! (`multibot_bot_events_total{bot_id, kind}`) and records it in `bot_events` through the [`Recorder`], so the log,
//! the metric and the table never drift apart and a database outage never blocks a bot. Lifecycle events also keep
//! the bot's row in `bots` current.
//!
//! Events a user can cause at will (refused updates, handler errors) are stored at most
//! [`ROWS_PER_USER_MINUTE`] times a minute per bot, user and kind: beyond that they are counted, not stored.

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tracing::{error, info, warn};

use super::{BotRecord, BotRowStatus, Recorder, StorageError, now};
use crate::{
    config::{BotConfig, BotId, ConfigError},
    outcomes::ReloadOutcome,
    telemetry::metrics,
};

/// What an audit event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A bot started.
    Started,
    /// A bot stopped.
    Stopped,
    /// A bot could not start, or failed while running.
    Failed,
    /// A bot's configuration was reloaded.
    Reloaded,
    /// A new configuration could not be applied; the old one stays.
    ReloadFailed,
    /// A configuration file did not validate.
    ConfigInvalid,
    /// An administrator did something through the admin bot.
    AdminAction,
    /// A plugin's handler failed or panicked.
    PluginError,
    /// An update was refused by access control.
    AccessDenied,
    /// An update was refused by rate limiting.
    RateLimited,
    /// Updates were dropped unhandled (a chat past its backlog).
    UpdatesDropped,
    /// A broadcast started, was paused, resumed or cancelled, or finished.
    Broadcast,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 12] = [
        EventKind::Started,
        EventKind::Stopped,
        EventKind::Failed,
        EventKind::Reloaded,
        EventKind::ReloadFailed,
        EventKind::ConfigInvalid,
        EventKind::AdminAction,
        EventKind::PluginError,
        EventKind::AccessDenied,
        EventKind::RateLimited,
        EventKind::UpdatesDropped,
        EventKind::Broadcast,
    ];

    /// The name stored in `bot_events.kind` and used as the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Stopped => "stopped",
            EventKind::Failed => "failed",
            EventKind::Reloaded => "reloaded",
            EventKind::ReloadFailed => "reload_failed",
            EventKind::ConfigInvalid => "config_invalid",
            EventKind::AdminAction => "admin_action",
            EventKind::PluginError => "plugin_error",
            EventKind::AccessDenied => "access_denied",
            EventKind::RateLimited => "rate_limited",
            EventKind::UpdatesDropped => "updates_dropped",
            EventKind::Broadcast => "broadcast",
        }
    }
}

/// An event to append to `bot_events`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The bot it concerns; `None` for events about no single bot (a file without a valid id).
    pub bot_id: Option<String>,
    /// What happened.
    pub kind: EventKind,
    /// The Telegram user who caused it, if any.
    pub actor_user_id: Option<i64>,
    /// Details, as a JSON object.
    pub detail: Value,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// A row of `bot_events` (the spec's `BotEvent`).
#[derive(Debug, Clone, PartialEq)]
pub struct BotEvent {
    /// Increasing id.
    pub id: i64,
    /// The bot it concerns.
    pub bot_id: Option<String>,
    /// What happened (an [`EventKind`] name; newer versions may add kinds).
    pub kind: String,
    /// The Telegram user who caused it, if any.
    pub actor_user_id: Option<i64>,
    /// Details, as a JSON object.
    pub detail: Value,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// Which events a listing shows: of one bot (or all), of one kind (or all).
#[derive(Debug, Clone, Copy, Default)]
pub struct EventFilter<'a> {
    /// The bot's YAML id.
    pub bot_id: Option<&'a str>,
    /// The kind, as stored.
    pub kind: Option<&'a str>,
}

/// The `bot_events` table, an append-only audit log.
#[async_trait]
pub trait EventRepository: Send + Sync {
    /// Appends an event; returns its id.
    async fn append(&self, event: &NewEvent) -> Result<i64, StorageError>;
    /// Appends events in one transaction, in order.
    async fn append_all(&self, events: &[NewEvent]) -> Result<(), StorageError>;
    /// The newest events first, of one bot (or all) and of one kind (or all).
    async fn list(&self, bot_id: Option<&str>, kind: Option<&str>, limit: u32) -> Result<Vec<BotEvent>, StorageError> {
        self.page(EventFilter { bot_id, kind }, None, limit).await
    }
    /// Like [`EventRepository::list`], only events older than the one with id `before`, when given: the next
    /// page of the audit log.
    async fn page(&self, of: EventFilter<'_>, before: Option<i64>, limit: u32) -> Result<Vec<BotEvent>, StorageError>;
    /// Deletes up to `limit` events older than `before`, the oldest first; returns how many.
    async fn prune(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StorageError>;
}

/// Rows one user may add per bot and kind in a minute.
pub const ROWS_PER_USER_MINUTE: u32 = 5;
/// Past this many users in the budget table, those whose minute is over are forgotten.
const BUDGET_USERS: usize = 4096;

/// Per bot, user (0: none) and kind: when the current minute began and how many rows it stored.
pub(super) type Budgets = HashMap<(String, i64, &'static str), (Instant, u32)>;

/// Whether one more row of `kind` caused by `user` fits in this minute's budget.
fn within_budget(recorder: &Recorder, bot_id: &str, user: Option<i64>, kind: EventKind) -> bool {
    const MINUTE: Duration = Duration::from_secs(60);
    let mut budgets = recorder.budgets.lock();
    if budgets.len() >= BUDGET_USERS {
        budgets.retain(|_, (began, _)| began.elapsed() < MINUTE);
    }
    let (began, rows) =
        budgets.entry((bot_id.to_owned(), user.unwrap_or(0), kind.as_str())).or_insert((Instant::now(), 0));
    if began.elapsed() >= MINUTE {
        (*began, *rows) = (Instant::now(), 0);
    }
    *rows += 1;
    *rows <= ROWS_PER_USER_MINUTE
}

/// Counts the event; stores it only when it fits in the user's budget.
fn record_sampled(
    recorder: &Recorder,
    bot_id: &BotId,
    kind: EventKind,
    actor_user_id: Option<i64>,
    detail: Value,
) -> bool {
    if within_budget(recorder, bot_id.as_str(), actor_user_id, kind) {
        record(recorder, Some(bot_id.as_str()), kind, actor_user_id, detail);
        return true;
    }
    metrics::bot_event(bot_id.as_str(), kind.as_str());
    false
}

fn record(recorder: &Recorder, bot_id: Option<&str>, kind: EventKind, actor_user_id: Option<i64>, detail: Value) {
    let label = bot_id.unwrap_or("").to_owned();
    metrics::bot_event(&label, kind.as_str());
    recorder.event(NewEvent { bot_id: bot_id.map(str::to_owned), kind, actor_user_id, detail, at: now() });
}

/// Writes the bot's row: its configuration and `status`; `error` is kept as `last_error`.
pub fn record_bot(recorder: &Recorder, config: &BotConfig, status: BotRowStatus, error: Option<&str>) {
    let at = now();
    recorder.bot(BotRecord {
        id: config.id.to_string(),
        name: config.name.clone(),
        description: config.description.clone().unwrap_or_default(),
        mode: config.mode.to_string(),
        enabled: config.enabled,
        config_hash: config.hash.clone(),
        status: status.as_str().to_owned(),
        started_at: (status == BotRowStatus::Running).then_some(at),
        stopped_at: (status != BotRowStatus::Running).then_some(at),
        last_error: error.map(str::to_owned),
        created_at: at,
        updated_at: at,
    });
}

/// A bot started receiving updates.
pub fn bot_started(recorder: &Recorder, config: &BotConfig, username: &str, plugins: &[String]) {
    info!(bot_id = %config.id, username, plugins = plugins.len(), "bot started");
    record_bot(recorder, config, BotRowStatus::Running, None);
    let detail = json!({"username": username, "plugins": plugins, "config_hash": config.hash});
    record(recorder, Some(config.id.as_str()), EventKind::Started, None, detail);
}

/// A bot stopped (its in-flight updates done).
pub fn bot_stopped(recorder: &Recorder, config: &BotConfig) {
    info!(bot_id = %config.id, "bot stopped");
    record_bot(recorder, config, BotRowStatus::Stopped, None);
    record(recorder, Some(config.id.as_str()), EventKind::Stopped, None, json!({}));
}

/// A bot could not start, or failed while running (its token revoked); `reason` holds no secret.
pub fn bot_failed(recorder: &Recorder, config: &BotConfig, reason: &str) {
    error!(bot_id = %config.id, reason, "bot failed");
    record_bot(recorder, config, BotRowStatus::Failed, Some(reason));
    record(recorder, Some(config.id.as_str()), EventKind::Failed, None, json!({"reason": reason}));
}

/// A bot's new configuration was applied: `outcome` says how (added, reloaded, restarted, disabled).
pub fn bot_reloaded(recorder: &Recorder, config: &BotConfig, outcome: ReloadOutcome) {
    info!(bot_id = %config.id, outcome = outcome.as_str(), "bot reloaded");
    if outcome == ReloadOutcome::Disabled {
        record_bot(recorder, config, BotRowStatus::Disabled, None);
    }
    let detail = json!({"outcome": outcome.as_str(), "config_hash": config.hash});
    record(recorder, Some(config.id.as_str()), EventKind::Reloaded, None, detail);
}

/// A bot's new configuration could not be applied; the old one (if any) runs again.
pub fn reload_failed(recorder: &Recorder, id: &BotId, reason: &str) {
    warn!(bot_id = %id, reason, "reload failed; the previous configuration stays");
    record(recorder, Some(id.as_str()), EventKind::ReloadFailed, None, json!({"reason": reason}));
}

/// A configuration file did not validate; `problems` are all of its problems.
pub fn config_invalid(recorder: &Recorder, file: &Path, problems: &[&ConfigError]) {
    let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
    for message in &messages {
        error!(file = %file.display(), "invalid configuration: {message}");
    }
    // An invalid file cannot be trusted to name its bot: the event belongs to no bot and names the file.
    let detail = json!({"file": file.display().to_string(), "problems": messages});
    record(recorder, None, EventKind::ConfigInvalid, None, detail);
}

/// A script plugin did not load (a syntax or load error, a name clash): it is not used, or its previous version
/// keeps running. Recorded as `config_invalid`: a script is configuration too.
/// `problem` is the whole message, file and line included; `line` is 0 when it concerns the whole file.
pub fn script_invalid(recorder: &Recorder, file: &Path, line: usize, problem: &str) {
    error!(file = %file.display(), line, "script plugin not loaded: {problem}");
    let detail = json!({"file": file.display().to_string(), "problems": [problem], "script": true});
    record(recorder, None, EventKind::ConfigInvalid, None, detail);
}

/// An administrator acted on a bot (`None`: on the whole fleet) through the admin bot (`actor_user_id`, the
/// admin's Telegram id) or the web console (`None`): `action` names it (`stop`, `restart`, ...).
pub fn admin_action(
    recorder: &Recorder,
    bot_id: Option<&BotId>,
    actor_user_id: Option<i64>,
    action: &str,
    detail: Value,
) {
    info!(bot_id = bot_id.map(BotId::as_str), actor_user_id, action, %detail, "admin action");
    let detail = json!({"action": action, "detail": detail});
    record(recorder, bot_id.map(BotId::as_str), EventKind::AdminAction, actor_user_id, detail);
}

/// A broadcast of `bot_id` changed: `action` is `start`, `pause`, `resume`, `cancel` or `done`; `actor_user_id` the
/// admin who did it (none from the CLI or for `done`).
pub fn broadcast(
    recorder: &Recorder,
    bot_id: &str,
    broadcast_id: i64,
    actor_user_id: Option<i64>,
    action: &str,
    detail: Value,
) {
    info!(bot_id, broadcast_id, actor_user_id, action, "broadcast");
    let detail = json!({"action": action, "broadcast_id": broadcast_id, "detail": detail});
    record(recorder, Some(bot_id), EventKind::Broadcast, actor_user_id, detail);
}

/// Access control refused an update (`reason`: `blocked`, `not_allowed`, `admin_only`). Callers sample: the
/// metric counts every refusal, the table gets the ones the caller samples within the user's budget.
pub fn access_denied(recorder: &Recorder, bot_id: &BotId, actor_user_id: Option<i64>, reason: &str, sampled: bool) {
    metrics::access_denied(bot_id.as_str(), reason);
    if sampled && record_sampled(recorder, bot_id, EventKind::AccessDenied, actor_user_id, json!({"reason": reason})) {
        info!(bot_id = %bot_id, actor_user_id, reason, "access denied");
    }
}

/// Rate limiting refused an update. Every refusal is counted; only the first of a user's episode (the one that
/// gets the notice) is stored, so a flood of updates writes one row, not one per update.
pub fn rate_limited(recorder: &Recorder, bot_id: &BotId, actor_user_id: i64, retry_after_secs: u64, first: bool) {
    metrics::rate_limited(bot_id.as_str());
    if first {
        info!(bot_id = %bot_id, actor_user_id, retry_after_secs, "rate limited");
        let detail = json!({"retry_after_secs": retry_after_secs});
        record(recorder, Some(bot_id.as_str()), EventKind::RateLimited, Some(actor_user_id), detail);
    }
}

/// A chat's waiting updates went past `limit`, so its oldest are dropped unhandled (`reason`: `chat_backlog`).
/// Called once per burst (the first drop); every drop is counted in `multibot_updates_dropped_total`.
pub fn updates_dropped(recorder: &Recorder, bot_id: &BotId, chat_key: i64, reason: &str, limit: usize) {
    warn!(bot_id = %bot_id, chat_key, reason, limit, "a chat's backlog is full; its oldest updates are dropped");
    let detail = json!({"reason": reason, "chat_key": chat_key, "limit": limit});
    record(recorder, Some(bot_id.as_str()), EventKind::UpdatesDropped, None, detail);
}

/// What failed in a handler, for [`plugin_error`].
pub struct PluginFailure<'a> {
    /// The short id shown to the user.
    pub error_id: &'a str,
    /// The plugin whose handler failed.
    pub plugin: &'a str,
    /// What went wrong, without secrets.
    pub message: &'a str,
}

/// A plugin's handler failed or panicked while handling an update from `actor_user_id`; stored within the
/// user's budget, logged and counted always.
pub fn plugin_error(recorder: &Recorder, bot_id: &BotId, actor_user_id: Option<i64>, failure: PluginFailure<'_>) {
    let PluginFailure { error_id, plugin, message } = failure;
    error!(bot_id = %bot_id, error_id = %error_id, plugin = %plugin, error = %message, "handler failed");
    let detail = json!({"error_id": error_id, "plugin": plugin, "message": message});
    record_sampled(recorder, bot_id, EventKind::PluginError, actor_user_id, detail);
}
