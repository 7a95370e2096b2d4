//! A running bot: [`RunningBot::start`] checks the token, loads the plugins in order and starts receiving;
//! [`RunningBot::stop`] stops receiving, drains what is in flight, confirms it and unloads the plugins.
//! [`handle_update`] runs one update through the bot's [`Pipeline`] and then the router, containing errors and
//! panics.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::FutureExt;
use parking_lot::Mutex;
use teloxide_core::{
    payloads::DeleteWebhook,
    types::{BotCommand, Update, UpdateKind},
};
use tokio::task::JoinHandle;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{Instrument, error, info, warn};

use super::{
    ApiCallError, BotApi, CallFailure, Deps, StartError, degraded::Degraded, polling, sequencer::Sequencer,
    sequencer::Tracker, webhook,
};
use crate::{
    admin::Notifier,
    config::{BotConfig, BotId, Mode},
    fsm::FsmStorage,
    middleware::{Pipeline, Refusals, Verdict},
    plugins::{Ctx, HandlerError, LoadedPlugin, PluginContext, Router},
    storage::{Recorder, Storage, events},
    telemetry::metrics::{self, Outcome},
};

/// Counters and failure of one configured bot, kept across its restarts.
#[derive(Default)]
pub struct BotHealth {
    /// Updates handled (whatever the outcome).
    pub updates_handled: AtomicU64,
    /// Handler errors and panics.
    pub errors: AtomicU64,
    /// The last error, without secrets.
    pub last_error: Mutex<Option<String>>,
    /// Set when the bot failed while running (token revoked): the reason.
    pub failure: Mutex<Option<String>>,
    /// Set while the bot runs but cannot do its work through the Bot API.
    pub degraded: Mutex<Option<Degraded>>,
    /// Updates the middleware refused (access control, rate limiting).
    pub refusals: Arc<Refusals>,
}

/// What a running bot's handlers share.
pub struct BotRuntime {
    /// The YAML id.
    pub id: BotId,
    /// The Telegram username (from getMe).
    pub username: String,
    /// The Bot API client.
    pub api: BotApi,
    /// The handlers.
    pub router: Arc<Router>,
    /// FSM storage.
    pub fsm: Arc<dyn FsmStorage>,
    /// The configuration it runs with.
    pub config: Arc<BotConfig>,
    /// Counters.
    pub health: Arc<BotHealth>,
    /// The middleware every update goes through before the router.
    pub pipeline: Pipeline,
    /// The database.
    pub storage: Storage,
    /// Background writes: user tracking, events, bot status.
    pub recorder: Recorder,
    /// Messages for the admins (through the admin bot).
    pub notifier: Notifier,
}

impl BotRuntime {
    /// Removes the token from a message, should any library have put it there.
    pub(crate) fn redact(&self, message: String) -> String {
        self.config.token.redact(message)
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
        health: Arc<BotHealth>,
        username: String,
        cancel: CancellationToken,
        tasks: &TaskTracker,
    ) -> Result<Instance, StartError> {
        let api = deps.api(&config);
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
                    shutdown: cancel.clone(),
                    db: deps.storage.clone(),
                    tasks: tasks.clone(),
                };
                let plugin = factory.build(&cx, &mut router)?;
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
        let runtime = Arc::new(BotRuntime {
            id: config.id.clone(),
            username,
            api,
            router: Arc::new(router),
            fsm: deps.fsm.clone(),
            pipeline,
            config,
            health,
            storage: deps.storage.clone(),
            recorder: deps.recorder.clone(),
            notifier: deps.notifier.clone(),
        });
        let commands: Vec<BotCommand> = runtime
            .router
            .commands()
            .iter()
            .map(|c| BotCommand::new(c.command.clone(), c.description.clone()))
            .collect();
        if !commands.is_empty()
            && let Err(e) = runtime.api.set_my_commands(commands).await
        {
            warn!(bot_id = %runtime.id, error = %runtime.redact(e.to_string()), "setMyCommands failed");
        }
        Ok(Instance { runtime, plugins, cancel })
    }

    async fn started(&self) {
        for (plugin, cx) in &self.plugins {
            if let Err(e) = plugin.on_bot_start(cx).await {
                let error = self.runtime.redact(format!("{e:#}"));
                warn!(bot_id = %self.runtime.id, plugin = %cx.plugin, error = %error, "on_bot_start failed");
            }
        }
    }

    async fn stopped(self) {
        for (plugin, cx) in self.plugins.iter().rev() {
            if let Err(e) = plugin.on_bot_stop(cx).await {
                let error = self.runtime.redact(format!("{e:#}"));
                warn!(bot_id = %self.runtime.id, plugin = %cx.plugin, error = %error, "on_bot_stop failed");
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
        let instance = Instance::load(deps, config.clone(), health, username, cancel.child_token(), &tasks).await?;
        let opened = match &webhooks {
            Some(webhooks) => match webhook::open(webhooks, &instance.runtime).await {
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
        let tracker = Arc::new(Tracker::default());
        let sequencer = Sequencer::new(instance.runtime.clone(), tracker, deps.settings.max_concurrent_updates);
        let span = tracing::info_span!("bot", bot_id = %config.id);
        let (timeout, grace) = (deps.settings.polling_timeout, deps.settings.shutdown_timeout);
        let receiver = match opened {
            Some(opened) => tasks.spawn(opened.run(sequencer.clone(), grace, cancel.clone()).instrument(span)),
            None => tasks.spawn(polling::run(sequencer.clone(), timeout, grace, cancel.clone()).instrument(span)),
        };
        metrics::bot_started(config.id.as_str());
        let names: Vec<String> = instance.plugins.iter().map(|(_, cx)| cx.plugin.clone()).collect();
        events::bot_started(&deps.recorder, &config, &instance.runtime.username, &names);
        Ok(RunningBot { instance, sequencer, cancel, receiver, tasks, grace, started_at: Instant::now() })
    }

    /// Replaces the plugins and router with ones built from `config` while polling goes on: the old instance's
    /// in-flight updates finish first, queued ones wait for the new instance, and the offset is untouched. On
    /// failure the old instance keeps running.
    pub(crate) async fn reload_in_place(&mut self, deps: &Deps, config: Arc<BotConfig>) -> Result<(), StartError> {
        let old = &self.instance.runtime;
        let (health, username) = (old.health.clone(), old.username.clone());
        let instance = Instance::load(deps, config, health, username, self.cancel.child_token(), &self.tasks).await?;
        self.sequencer.swap(instance.runtime.clone()).await;
        instance.started().await;
        let old = std::mem::replace(&mut self.instance, instance);
        old.stopped().await;
        if let (Mode::Webhook, Some(webhooks)) = (self.instance.runtime.config.mode, &deps.webhooks) {
            // The new plugins may handle other update types; the webhook's path and secret stay.
            if let Err(reason) = webhook::refresh(webhooks, &self.instance.runtime).await {
                warn!(bot_id = %self.instance.runtime.id, reason = %reason, "could not update the webhook's allowed_updates");
            }
        }
        info!(bot_id = %self.instance.runtime.id, "bot reloaded in place");
        Ok(())
    }

    /// Stops receiving, lets in-flight updates finish (within the shutdown grace period), confirms them,
    /// unloads the plugins and waits (within the grace period too) for the bot's other tasks.
    pub(crate) async fn stop(self) {
        self.cancel.cancel();
        let id = self.instance.runtime.id.clone();
        if let Err(e) = self.receiver.await {
            error!(bot_id = %id, error = %e, "receiver task failed");
        }
        let runtime = self.instance.runtime.clone();
        self.instance.stopped().await;
        self.tasks.close();
        if tokio::time::timeout(self.grace, self.tasks.wait()).await.is_err() {
            warn!(bot_id = %id, tasks = self.tasks.len(), "bot tasks still running after the grace period");
        }
        events::bot_stopped(&runtime.recorder, &runtime.config);
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

/// A short id for an error, shown to the user and written in the log line.
fn error_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    // splitmix64 of time and a counter: unique within the process, unpredictable enough to grep for.
    let mut x = nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    format!("{:08x}", (x ^ (x >> 31)) as u32)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_owned()
    }
}

/// Runs one update through the bot's middleware ([`Pipeline`]) and, if it passes them, the router. Errors and
/// panics are contained: logged with an error id, counted and passed to the error hooks (the `error_handler`
/// plugin); a callback nobody answered is answered.
pub(crate) async fn handle_update(bot: Arc<BotRuntime>, update: Update) {
    let started = Instant::now();
    if let Some(id) = super::unreadable_callback(&update)
        && let Err(e) = bot.api.answer_callback_query(id, None).await
    {
        warn!(bot_id = %bot.id, error = %bot.redact(e.to_string()), "answering an unreadable callback failed");
    }
    let is_callback = matches!(update.kind, UpdateKind::CallbackQuery(_));
    let cx = Ctx::new(bot.clone(), update);
    if bot.pipeline.run(&cx).await == Verdict::Stop {
        metrics::update_handled(bot.id.as_str(), "", Outcome::Refused, started.elapsed());
        return;
    }
    let (plugin, outcome) = match bot.router.choose(&cx).await {
        Ok(Some(chosen)) if chosen.admin_only && !bot.pipeline.is_admin(cx.user().map(|u| u.id.0 as i64)) => {
            bot.pipeline.deny(&cx, "admin_only");
            let refusal = cx.reply("This command is only for the bot's admins.").plain().await.map(drop);
            (chosen.plugin.to_owned(), refusal)
        }
        Ok(Some(chosen)) => {
            let run = AssertUnwindSafe((chosen.handler)(cx.clone())).catch_unwind().await;
            let outcome = match run {
                Ok(result) => result,
                Err(panic) => Err(anyhow::anyhow!("handler panicked: {}", panic_message(panic.as_ref()))),
            };
            (chosen.plugin.to_owned(), outcome)
        }
        Ok(None) => (String::new(), Ok(())),
        Err(e) => ("fsm".to_owned(), Err(e.context("loading the conversation state"))),
    };
    let result = match (&outcome, plugin.is_empty()) {
        (Err(_), _) => Outcome::Error,
        (Ok(()), true) => Outcome::Unhandled,
        (Ok(()), false) => Outcome::Handled,
    };
    metrics::update_handled(bot.id.as_str(), &plugin, result, started.elapsed());
    if let Err(e) = outcome {
        report_error(&bot, &cx, plugin, e).await;
    }
    if is_callback
        && !cx.callback_answered()
        && let Err(e) = cx.answer_callback(None).await
    {
        warn!(bot_id = %bot.id, error = %bot.redact(format!("{e:#}")), "answering a callback failed");
    }
    bot.health.updates_handled.fetch_add(1, Ordering::Relaxed);
}

async fn report_error(bot: &Arc<BotRuntime>, cx: &Ctx, plugin: String, error: anyhow::Error) {
    let error = HandlerError { id: error_id(), plugin, message: bot.redact(format!("{error:#}")) };
    events::plugin_error(&bot.recorder, &bot.id, cx.user().map(|u| u.id.0 as i64), &error);
    bot.health.errors.fetch_add(1, Ordering::Relaxed);
    *bot.health.last_error.lock() = Some(format!("{} (error id {})", error.message, error.id));
    for (hook_plugin, hook) in bot.router.error_hooks() {
        let run = AssertUnwindSafe(hook(cx.clone(), error.clone())).catch_unwind().await;
        let failure = match run {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => format!("{e:#}"),
            Err(panic) => panic_message(panic.as_ref()),
        };
        error!(bot_id = %bot.id, plugin = %hook_plugin, error = %bot.redact(failure), "error hook failed");
    }
}
