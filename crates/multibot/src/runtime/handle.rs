//! One update, handled: [`handle_update`] runs it through the bot's [`Pipeline`] and then the router,
//! containing errors, panics and handlers that run past the bot's time limit. [`BotRuntime`] is what the handling
//! needs: the plugins' [`BotHandle`], the counters ([`BotHealth`]), the pipeline and the time limit.

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::FutureExt;
use parking_lot::Mutex;
use std::time::Instant;
use teloxide_core::types::{Update, UpdateKind};
use tracing::{error, warn};

use super::{
    degraded::Degraded,
    middleware::{Pipeline, Refusals, Verdict},
};
use crate::{
    plugins::{BotHandle, Ctx, HandlerError},
    storage::events::{self, PluginFailure},
    telegram::{unknown_type, unreadable_callback},
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

/// A running bot, as the handling of its updates needs it.
pub struct BotRuntime {
    /// What its plugins see.
    pub bot: Arc<BotHandle>,
    /// Counters.
    pub health: Arc<BotHealth>,
    /// The middleware every update goes through before the router.
    pub pipeline: Pipeline,
    /// How long one handler (and then each error hook) may run; `None`: no limit.
    pub handler_timeout: Option<Duration>,
}

/// Runs `work` within `limit`: `None` when the limit passed first (`work` is then dropped at its current await
/// point; code that blocks the thread without awaiting cannot be interrupted).
async fn within<T>(limit: Option<Duration>, work: impl Future<Output = T>) -> Option<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, work).await.ok(),
        None => Some(work.await),
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

/// A time limit in whole seconds, as messages show it (at least 1 for a limit under a second).
fn seconds(limit: Duration) -> u64 {
    limit.as_secs().max(u64::from(limit.subsec_nanos() > 0))
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

/// Runs one update through the bot's middleware ([`Pipeline`]) and, if it passes them, the router. Errors,
/// panics and a handler still running at the bot's time limit (dropped there) are contained: logged with an
/// error id, counted and passed to the error hooks (the `error_handler` plugin); a callback nobody answered is
/// answered. The rare paths (an error, a callback to answer) are boxed, so that they do not add to the state of
/// every update's handling.
pub(crate) async fn handle_update(runtime: Arc<BotRuntime>, update: Box<Update>) {
    let started = Instant::now();
    let bot = &runtime.bot;
    if let Some(kind) = unknown_type(&update) {
        skip_unknown(bot.id.as_str(), kind);
        return;
    }
    if let Some(id) = unreadable_callback(&update)
        && let Err(e) = Box::pin(bot.api.answer_callback_query(id, None)).await
    {
        warn!(bot_id = %bot.id, error = %bot.redact(e.to_string()), "answering an unreadable callback failed");
    }
    let is_callback = matches!(update.kind, UpdateKind::CallbackQuery(_));
    let cx = Ctx::new(bot.clone(), update);
    if runtime.pipeline.run(&cx).await == Verdict::Stop {
        metrics::update_handled(bot.id.as_str(), "", Outcome::Refused, started.elapsed());
        return;
    }
    let mut timed_out = false;
    let (plugin, outcome) = match bot.router.choose(&cx).await {
        Ok(Some(chosen)) if chosen.admin_only && !runtime.pipeline.is_admin(cx.user().map(|u| u.id.0 as i64)) => {
            runtime.pipeline.deny(&cx, "admin_only");
            let refusal = cx.reply("This command is only for the bot's admins.").plain().await.map(drop);
            (chosen.plugin.to_owned(), refusal)
        }
        Ok(Some(chosen)) => {
            let run = AssertUnwindSafe((chosen.handler)(cx.clone())).catch_unwind();
            let outcome = match within(runtime.handler_timeout, run).await {
                Some(Ok(result)) => result,
                Some(Err(panic)) => Err(anyhow::anyhow!("handler panicked: {}", panic_message(panic.as_ref()))),
                None => {
                    timed_out = true;
                    let limit = runtime.handler_timeout.unwrap_or_default();
                    Err(anyhow::anyhow!("handler timed out after {} s", seconds(limit)))
                }
            };
            (chosen.plugin.to_owned(), outcome)
        }
        Ok(None) => (String::new(), Ok(())),
        Err(e) => ("fsm".to_owned(), Err(e.context("loading the conversation state"))),
    };
    let result = match (&outcome, plugin.is_empty()) {
        (Err(_), _) if timed_out => Outcome::Timeout,
        (Err(_), _) => Outcome::Error,
        (Ok(()), true) => Outcome::Unhandled,
        (Ok(()), false) => Outcome::Handled,
    };
    metrics::update_handled(bot.id.as_str(), &plugin, result, started.elapsed());
    if let Err(e) = outcome {
        Box::pin(report_error(&runtime, &cx, plugin, e)).await;
    }
    if is_callback
        && !cx.callback_answered()
        && let Err(e) = Box::pin(cx.answer_callback(None)).await
    {
        warn!(bot_id = %bot.id, error = %bot.redact(format!("{e:#}")), "answering a callback failed");
    }
    runtime.health.updates_handled.fetch_add(1, Ordering::Relaxed);
}

/// Counts an update of a type this build does not know; the first of each type is logged. Nothing handles it,
/// and it is confirmed like any other.
fn skip_unknown(bot_id: &str, kind: &str) {
    /// Types logged so far, at most `MAX_LOGGED` (a server inventing types must not grow memory).
    static LOGGED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    const MAX_LOGGED: usize = 64;
    metrics::update_unknown(bot_id);
    let kind: String = kind.chars().take(64).collect();
    let mut logged = LOGGED.lock();
    if logged.len() < MAX_LOGGED && !logged.contains(&kind) {
        warn!(bot_id, update_type = %kind, "skipped an update of a type this version does not know (logged once per type)");
        logged.push(kind);
    }
}

async fn report_error(runtime: &BotRuntime, cx: &Ctx, plugin: String, error: anyhow::Error) {
    let bot = &runtime.bot;
    let error = HandlerError { id: error_id(), plugin, message: bot.redact(format!("{error:#}")) };
    let failure = PluginFailure { error_id: &error.id, plugin: &error.plugin, message: &error.message };
    events::plugin_error(&bot.recorder, &bot.id, cx.user().map(|u| u.id.0 as i64), failure);
    runtime.health.errors.fetch_add(1, Ordering::Relaxed);
    *runtime.health.last_error.lock() = Some(format!("{} (error id {})", error.message, error.id));
    for (hook_plugin, hook) in bot.router.error_hooks() {
        let run = AssertUnwindSafe(hook(cx.clone(), error.clone())).catch_unwind();
        let failure = match within(runtime.handler_timeout, run).await {
            Some(Ok(Ok(()))) => continue,
            Some(Ok(Err(e))) => format!("{e:#}"),
            Some(Err(panic)) => panic_message(panic.as_ref()),
            None => format!("timed out after {} s", seconds(runtime.handler_timeout.unwrap_or_default())),
        };
        error!(bot_id = %bot.id, plugin = %hook_plugin, error = %bot.redact(failure), "error hook failed");
    }
}

#[cfg(test)]
mod tests {
    use super::skip_unknown;
    use crate::telemetry::capture::logged_by;

    #[test]
    fn each_unknown_type_is_logged_once() {
        let ((), logged) = logged_by(|| {
            for kind in ["logged_once_a", "logged_once_a", "logged_once_b", "logged_once_a"] {
                skip_unknown("bot", kind);
            }
        });
        assert_eq!(logged.lines().filter(|l| l.contains("update_type=logged_once_a")).count(), 1, "{logged}");
        assert_eq!(logged.lines().filter(|l| l.contains("update_type=logged_once_b")).count(), 1, "{logged}");
    }
}
