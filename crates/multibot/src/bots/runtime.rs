//! A running bot: [`RunningBot::start`] checks the token, loads the plugins in order and starts receiving;
//! [`RunningBot::stop`] stops receiving, drains what is in flight, confirms it and unloads the plugins.
//! [`handle_update`] runs one update through the router, containing errors and panics.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use futures_util::FutureExt;
use parking_lot::Mutex;
use teloxide_core::types::{BotCommand, Update, UpdateKind};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, warn};

use super::{ApiCallError, BotApi, Deps, polling, sequencer::Sequencer, sequencer::Tracker};
use crate::{
    config::{BotConfig, BotId, Mode},
    fsm::FsmStorage,
    middleware,
    plugins::{Ctx, HandlerError, LoadedPlugin, PluginContext, Router},
    storage::{Recorder, Storage, events},
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
    /// The database.
    pub storage: Storage,
    /// Background writes: user tracking, events, bot status.
    pub recorder: Recorder,
}

impl BotRuntime {
    /// Removes the token from a message, should any library have put it there.
    pub(crate) fn redact(&self, message: String) -> String {
        let token = self.config.token.expose();
        if message.contains(token) { message.replace(token, "<token>") } else { message }
    }
}

/// A started bot.
pub(crate) struct RunningBot {
    pub(crate) runtime: Arc<BotRuntime>,
    plugins: Vec<(Arc<dyn LoadedPlugin>, PluginContext)>,
    cancel: CancellationToken,
    receiver: JoinHandle<()>,
    pub(crate) started_at: Instant,
}

/// A failed call, in words for logs and status.
pub(crate) fn describe(error: &ApiCallError) -> String {
    match error {
        ApiCallError::Api { code: 401, .. } => "token rejected by Telegram (401 Unauthorized)".to_owned(),
        ApiCallError::Api { .. } => format!("Telegram answered: {error}"),
        ApiCallError::Network(e) => format!("cannot reach the Bot API: {e}"),
        ApiCallError::Decode(e) => format!("unexpected answer from the Bot API: {e}"),
    }
}

impl RunningBot {
    /// Checks the token, loads the plugins (dependencies first), registers the commands and starts receiving.
    pub(crate) async fn start(
        deps: &Deps,
        config: Arc<BotConfig>,
        health: Arc<BotHealth>,
    ) -> Result<RunningBot, String> {
        let api = BotApi::new(deps.http.clone(), &deps.api_url, &config.token, &config.settings);
        let redact = |message: String| message.replace(config.token.expose(), "<token>");
        if config.mode == Mode::Webhook {
            return Err("webhook mode needs the webhook server, which this build does not include yet".to_owned());
        }
        let me = api.get_me().await.map_err(|e| redact(describe(&e)))?;
        let cancel = deps.shutdown.child_token();
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
                };
                let plugin = factory.build(&cx, &mut router)?;
                plugin.on_load(&cx).await?;
                anyhow::Ok((plugin, cx))
            };
            match loaded.await {
                Ok(pair) => plugins.push(pair),
                Err(e) => {
                    unload(&plugins).await;
                    return Err(redact(format!("plugin {} failed to load: {e:#}", entry.name)));
                }
            }
        }
        let runtime = Arc::new(BotRuntime {
            id: config.id.clone(),
            username: me.username().to_owned(),
            api,
            router: Arc::new(router),
            fsm: deps.fsm.clone(),
            config: config.clone(),
            health,
            storage: deps.storage.clone(),
            recorder: deps.recorder.clone(),
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
            warn!(bot_id = %config.id, error = %runtime.redact(e.to_string()), "setMyCommands failed");
        }
        for (plugin, cx) in &plugins {
            if let Err(e) = plugin.on_bot_start(cx).await {
                warn!(bot_id = %config.id, plugin = %cx.plugin, error = %runtime.redact(format!("{e:#}")), "on_bot_start failed");
            }
        }
        let tracker = Arc::new(Tracker::default());
        let sequencer = Sequencer::new(runtime.clone(), tracker, deps.settings.max_concurrent_updates);
        let span = tracing::info_span!("bot", bot_id = %config.id);
        let receiver = tokio::spawn(
            polling::run(
                runtime.clone(),
                sequencer,
                deps.settings.polling_timeout,
                deps.settings.shutdown_timeout,
                cancel.clone(),
            )
            .instrument(span),
        );
        let names: Vec<String> = plugins.iter().map(|(_, cx)| cx.plugin.clone()).collect();
        events::bot_started(&deps.recorder, &config, &runtime.username, &names);
        Ok(RunningBot { runtime, plugins, cancel, receiver, started_at: Instant::now() })
    }

    /// Stops receiving, lets in-flight updates finish (within the shutdown grace period), confirms them and
    /// unloads the plugins.
    pub(crate) async fn stop(self) {
        self.cancel.cancel();
        if let Err(e) = self.receiver.await {
            error!(bot_id = %self.runtime.id, error = %e, "receiver task failed");
        }
        for (plugin, cx) in self.plugins.iter().rev() {
            if let Err(e) = plugin.on_bot_stop(cx).await {
                warn!(bot_id = %self.runtime.id, plugin = %cx.plugin, error = %self.runtime.redact(format!("{e:#}")), "on_bot_stop failed");
            }
        }
        unload(&self.plugins).await;
        events::bot_stopped(&self.runtime.recorder, &self.runtime.config);
    }

    /// The loaded plugins' names, in load order.
    pub(crate) fn plugin_names(&self) -> Vec<String> {
        self.plugins.iter().map(|(_, cx)| cx.plugin.clone()).collect()
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

/// Runs one update through the router. Errors and panics are contained: logged with an error id, counted and
/// passed to the error hooks (the `error_handler` plugin); a callback nobody answered is answered.
pub(crate) async fn handle_update(bot: Arc<BotRuntime>, update: Update) {
    middleware::track_user(&bot.recorder, &bot.id, &update);
    let is_callback = matches!(update.kind, UpdateKind::CallbackQuery(_));
    let cx = Ctx::new(bot.clone(), update);
    let (plugin, outcome) = match bot.router.choose(&cx).await {
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
