//! One bot at run time: `RunningBot::start` checks the token, loads the plugins in order and starts receiving;
//! `RunningBot::stop` stops receiving, drains what is in flight, confirms it and unloads the plugins. [`Deps`]
//! is what every bot is built from.
//!
//! - `handle`: one update through the bot's [`Pipeline`] and then the router, errors and panics contained.
//! - [`middleware`]: the update pipeline (user tracking, access control, rate limiting).
//! - `polling`: the getUpdates source; `sequencer`: per-chat ordering and the low-water-mark offset.
//! - `inbox`: the durable inbox: updates stored before they are confirmed (polling) or answered 200 (webhook),
//!   marked done after by the process-wide [`InboxWriter`].
//! - `degraded`: whether a polling bot can reach the Bot API ([`Degraded`]).
//! - [`webhook`]: the webhook source: routes, inboxes, secrets.

pub(crate) mod degraded;
mod errors;
mod handle;
mod inbox;
pub mod middleware;
mod polling;
mod sequencer;
pub mod webhook;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

pub use degraded::{Degraded, Trouble};
pub use errors::StartError;
pub use handle::{BotHealth, BotRuntime};
pub use inbox::InboxWriter;
use reqwest::Url;
pub(crate) use sequencer::order_key;
use teloxide_core::{payloads::DeleteWebhook, types::BotCommand};
use tokio::task::JoinHandle;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{Instrument, error, info, warn};

use self::{
    middleware::Pipeline,
    sequencer::{Sequencer, Tracker},
};
use crate::{
    config::{BotConfig, InboxMode, Mode, Settings},
    fsm::FsmStorage,
    plugins::{BotHandle, LoadedPlugin, Notifier, PluginContext, PluginRegistry, Router},
    storage::{Recorder, Storage, events},
    telegram::{ApiCallError, ApiClient, ApiClients, BotApi, CallFailure, FloodLimits},
    telemetry::metrics,
};

/// What every bot is built from.
#[derive(Clone)]
pub struct Deps {
    /// Process settings.
    pub settings: Arc<Settings>,
    /// Plugins by name.
    pub registry: Arc<PluginRegistry>,
    /// The HTTP clients bots share.
    pub http: ApiClients,
    /// The Bot API base URL (`TELEGRAM_API_URL`).
    pub api_url: Url,
    /// FSM storage.
    pub fsm: Arc<dyn FsmStorage>,
    /// The root shutdown token; each bot runs under a child.
    pub shutdown: CancellationToken,
    /// Webhook routes and secrets, when the webhook server runs (`WEBHOOK_ENABLED`).
    pub webhooks: Option<Arc<webhook::Webhooks>>,
    /// The database.
    pub storage: Storage,
    /// Background writes: user tracking, events, bot status.
    pub recorder: Recorder,
    /// Marks every bot's handled updates done in the durable inbox.
    pub inbox: InboxWriter,
    /// Messages for the admins (through the admin bot).
    pub notifier: Notifier,
    /// With replicas: whether a bot may poll now (this replica holds its fresh lease); polls wait while it says
    /// no.
    pub poll_gate: Option<PollGate>,
}

/// Says whether a bot may poll Telegram now (see [`Deps::poll_gate`]).
pub type PollGate = Arc<dyn Fn(&crate::config::BotId) -> bool + Send + Sync>;

impl Deps {
    /// A Bot API client for a bot, with flood control when `FLOOD_CONTROL` is on and 429 waits capped by
    /// `FLOOD_MAX_WAIT`.
    /// Each call takes a place in a connection group: call it once per bot start.
    pub fn api(&self, config: &BotConfig) -> BotApi {
        self.api_over(config, self.http.client())
    }

    /// [`Deps::api`] over a client the bot already has (a reload keeps its place in its connection group).
    fn api_over(&self, config: &BotConfig, client: ApiClient) -> BotApi {
        let flood = self.settings.flood_control.then(FloodLimits::default);
        BotApi::new(client.http, &self.api_url, &config.token, &config.settings, flood)
            .with_flood_max_wait(self.settings.flood_max_wait)
            .with_line(client.line)
    }

    /// How long one handler of this bot may run: its `settings.handler_timeout` (0: no limit), else
    /// `HANDLER_TIMEOUT`.
    fn handler_timeout(&self, config: &BotConfig) -> Option<Duration> {
        match config.settings.handler_timeout {
            Some(0) => None,
            Some(seconds) => Some(Duration::from_secs(seconds)),
            None => self.settings.handler_timeout,
        }
    }
}

/// A running bot's updates taken in and not finished yet (queued behind their chat or being handled), read live
/// for its status and the metrics.
#[derive(Clone)]
pub(crate) struct Backlog(Arc<Tracker>);

impl Backlog {
    /// How many updates are pending, and how long ago the oldest of them was taken in.
    pub(crate) fn read(&self) -> (usize, Option<Duration>) {
        let (count, oldest) = self.0.pending();
        (count, oldest.map(|at| at.elapsed()))
    }
}

/// One generation of a bot's plugins and router; a reload in place replaces it while polling goes on.
struct Instance {
    runtime: Arc<BotRuntime>,
    plugins: Vec<(Arc<dyn LoadedPlugin>, PluginContext)>,
    /// Cancelled when this generation is unloaded.
    cancel: CancellationToken,
}

impl Instance {
    /// Builds the plugins in load order (dependencies first), calls `on_load` and registers the commands.
    async fn load(
        deps: &Deps,
        config: Arc<BotConfig>,
        api: BotApi,
        health: Arc<BotHealth>,
        username: String,
        cancel: CancellationToken,
        tasks: &TaskTracker,
    ) -> Result<Instance, StartError> {
        let mut router = Router::default();
        let mut plugins: Vec<(Arc<dyn LoadedPlugin>, PluginContext)> = Vec::new();
        for entry in deps.registry.load_order(&config.plugins) {
            let loaded = async {
                let factory = deps.registry.get(&entry.name).ok_or_else(|| anyhow::anyhow!("unknown plugin"))?;
                let cx = PluginContext {
                    bot_id: config.id.clone(),
                    plugin: entry.name.clone(),
                    api: api.clone(),
                    config: entry.config.clone(),
                    http_allow: entry.http.clone().unwrap_or_default(),
                    shutdown: cancel.clone(),
                    db: deps.storage.clone(),
                    tasks: tasks.clone(),
                };
                // A script's top level runs here: off the workers.
                let plugin = crate::plugins::script::build_off_workers(factory, &cx, &mut router).await?;
                plugin.on_load(&cx).await?;
                anyhow::Ok((plugin, cx))
            };
            match loaded.await {
                Ok(pair) => plugins.push(pair),
                Err(e) => {
                    unload(&plugins).await;
                    cancel.cancel();
                    let error = config.token.redact(format!("{e:#}"));
                    return Err(StartError::PluginFailed { plugin: entry.name.clone(), error });
                }
            }
        }
        let pipeline = Pipeline::for_bot(&config, health.refusals.clone(), tasks, &cancel);
        let bot = Arc::new(BotHandle {
            id: config.id.clone(),
            username,
            api,
            router: Arc::new(router),
            fsm: deps.fsm.clone(),
            config,
            storage: deps.storage.clone(),
            recorder: deps.recorder.clone(),
            notifier: deps.notifier.clone(),
        });
        let commands: Vec<BotCommand> =
            bot.router.commands().iter().map(|c| BotCommand::new(c.command.clone(), c.description.clone())).collect();
        if !commands.is_empty()
            && let Err(e) = bot.api.set_my_commands(commands).await
        {
            warn!(bot_id = %bot.id, error = %bot.redact(e.to_string()), "setMyCommands failed");
        }
        let handler_timeout = deps.handler_timeout(&bot.config);
        let runtime = Arc::new(BotRuntime { bot, health, pipeline, handler_timeout });
        Ok(Instance { runtime, plugins, cancel })
    }

    async fn started(&self) {
        for (plugin, cx) in &self.plugins {
            if let Err(e) = plugin.on_bot_start(cx).await {
                let error = self.runtime.bot.redact(format!("{e:#}"));
                warn!(bot_id = %self.runtime.bot.id, plugin = %cx.plugin, error = %error, "on_bot_start failed");
            }
        }
    }

    async fn stopped(self) {
        for (plugin, cx) in self.plugins.iter().rev() {
            if let Err(e) = plugin.on_bot_stop(cx).await {
                let error = self.runtime.bot.redact(format!("{e:#}"));
                warn!(bot_id = %self.runtime.bot.id, plugin = %cx.plugin, error = %error, "on_bot_stop failed");
            }
        }
        unload(&self.plugins).await;
        self.cancel.cancel();
    }
}

/// A started bot.
pub(crate) struct RunningBot {
    instance: Instance,
    sequencer: Arc<Sequencer>,
    cancel: CancellationToken,
    receiver: JoinHandle<()>,
    /// Every task of the bot: the receiver, plugin tasks, rate-limit upkeep.
    tasks: TaskTracker,
    /// How long a stop waits for the bot's tasks.
    grace: Duration,
    pub(crate) started_at: Instant,
}

impl RunningBot {
    /// Checks the token, loads the plugins (dependencies first), registers the commands and starts receiving.
    pub(crate) async fn start(
        deps: &Deps,
        config: Arc<BotConfig>,
        health: Arc<BotHealth>,
    ) -> Result<RunningBot, StartError> {
        let webhooks = match config.mode {
            Mode::Webhook => Some(deps.webhooks.clone().ok_or(StartError::NoWebhookServer)?),
            Mode::Polling => None,
        };
        let api = deps.api(&config);
        let failure = |e: ApiCallError| CallFailure::of(&e, &config.token);
        let me = api.get_me().await.map_err(|e| StartError::GetMe(failure(e)))?;
        if config.mode == Mode::Polling {
            // getUpdates answers 409 while a webhook is set: a bot moved from webhook mode takes it down first.
            api.call(&DeleteWebhook::new()).await.map_err(|e| StartError::DeleteWebhook(failure(e)))?;
            if let Some(webhooks) = &deps.webhooks {
                webhooks.forget(&config.id);
            }
        }
        let (cancel, tasks) = (deps.shutdown.child_token(), TaskTracker::new());
        let username = me.username.unwrap_or_default();
        let instance =
            Instance::load(deps, config.clone(), api, health, username, cancel.child_token(), &tasks).await?;
        let inbox = (deps.settings.inbox == InboxMode::Database)
            .then(|| Arc::new(inbox::Inbox::open(deps.storage.clone(), deps.inbox.clone(), config.id.as_str())));
        let opened = match &webhooks {
            Some(webhooks) => match webhook::open(webhooks, &instance.runtime.bot, inbox.clone()).await {
                Ok(opened) => Some(opened),
                Err(error) => {
                    unload(&instance.plugins).await;
                    instance.cancel.cancel();
                    return Err(error.into());
                }
            },
            None => None,
        };
        instance.started().await;
        let tracker = Arc::new(match inbox.clone() {
            Some(inbox) => Tracker::reporting_to(move |id| inbox.done(id)),
            None => Tracker::default(),
        });
        let settings = &deps.settings;
        let sequencer =
            Sequencer::new(instance.runtime.clone(), tracker, settings.max_concurrent_updates, settings.chat_backlog);
        let span = tracing::info_span!("bot", bot_id = %config.id);
        let grace = settings.shutdown_timeout;
        let receiver = match opened {
            Some(opened) => tasks.spawn(opened.run(sequencer.clone(), grace, cancel.clone()).instrument(span)),
            None => {
                let max_pending = settings.max_pending_updates;
                let gate = deps.poll_gate.clone();
                let limits = polling::PollLimits { timeout: settings.polling_timeout, grace, max_pending, gate };
                tasks.spawn(polling::run(sequencer.clone(), inbox, limits, cancel.clone()).instrument(span))
            }
        };
        metrics::bot_started(config.id.as_str());
        let names: Vec<String> = instance.plugins.iter().map(|(_, cx)| cx.plugin.clone()).collect();
        events::bot_started(&deps.recorder, &config, &instance.runtime.bot.username, &names);
        Ok(RunningBot { instance, sequencer, cancel, receiver, tasks, grace, started_at: Instant::now() })
    }

    /// The bot's Bot API client (its flood control shared with every send of the bot).
    pub(crate) fn api(&self) -> BotApi {
        self.instance.runtime.bot.api.clone()
    }

    /// Replaces the plugins and router with ones built from `config` while polling goes on: the old instance's
    /// in-flight updates finish first, queued ones wait for the new instance, and the offset is untouched. On
    /// failure the old instance keeps running.
    pub(crate) async fn reload_in_place(&mut self, deps: &Deps, config: Arc<BotConfig>) -> Result<(), StartError> {
        let old = &self.instance.runtime;
        let (health, username) = (old.health.clone(), old.bot.username.clone());
        let api = deps.api_over(&config, old.bot.api.client());
        let cancel = self.cancel.child_token();
        let instance = Instance::load(deps, config, api, health, username, cancel, &self.tasks).await?;
        self.sequencer.swap(instance.runtime.clone()).await;
        instance.started().await;
        let old = std::mem::replace(&mut self.instance, instance);
        old.stopped().await;
        if let (Mode::Webhook, Some(webhooks)) = (self.instance.runtime.bot.config.mode, &deps.webhooks) {
            // The new plugins may handle other update types; the webhook's path and secret stay.
            if let Err(reason) = webhook::refresh(webhooks, &self.instance.runtime.bot).await {
                warn!(bot_id = %self.instance.runtime.bot.id, reason = %reason, "could not update the webhook's allowed_updates");
            }
        }
        info!(bot_id = %self.instance.runtime.bot.id, "bot reloaded in place");
        Ok(())
    }

    /// [`RunningBot::stop`] within `limit`: handlers still running then are abandoned (with replicas, the bot's
    /// lease is about to be, or already is, another replica's).
    pub(crate) async fn stop_within(mut self, limit: Duration) {
        self.grace = self.grace.min(limit);
        let sequencer = self.sequencer.clone();
        let abandon = tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            sequencer.abort();
        });
        self.stop().await;
        abandon.abort();
    }

    /// Stops receiving, lets in-flight updates finish (within the shutdown grace period), confirms them,
    /// unloads the plugins and waits (within the grace period too) for the bot's other tasks.
    pub(crate) async fn stop(self) {
        self.cancel.cancel();
        let id = self.instance.runtime.bot.id.clone();
        if let Err(e) = self.receiver.await {
            error!(bot_id = %id, error = %e, "receiver task failed");
        }
        let runtime = self.instance.runtime.clone();
        self.instance.stopped().await;
        self.tasks.close();
        if tokio::time::timeout(self.grace, self.tasks.wait()).await.is_err() {
            warn!(bot_id = %id, tasks = self.tasks.len(), "bot tasks still running after the grace period");
        }
        events::bot_stopped(&runtime.bot.recorder, &runtime.bot.config);
    }

    /// Its updates taken in and not finished yet.
    pub(crate) fn backlog(&self) -> Backlog {
        Backlog(self.sequencer.tracker.clone())
    }

    /// The loaded plugins' names, in load order.
    pub(crate) fn plugin_names(&self) -> Vec<String> {
        self.instance.plugins.iter().map(|(_, cx)| cx.plugin.clone()).collect()
    }

    /// Whether every loaded plugin supports hot reload.
    pub(crate) fn supports_hot_reload(&self, deps: &Deps) -> bool {
        self.instance
            .plugins
            .iter()
            .all(|(_, cx)| deps.registry.get(&cx.plugin).is_some_and(|f| f.meta().supports_hot_reload))
    }
}

async fn unload(plugins: &[(Arc<dyn LoadedPlugin>, PluginContext)]) {
    for (plugin, cx) in plugins.iter().rev() {
        if let Err(e) = plugin.on_unload(cx).await {
            warn!(bot_id = %cx.bot_id, plugin = %cx.plugin, error = %format!("{e:#}"), "on_unload failed");
        }
    }
}
