//! The admin bot: a bot of the fleet (token `ADMIN_BOT_TOKEN`) running the built-in `admin` plugin, through which
//! `ADMIN_ALLOWED_USERS` control every other bot from Telegram: `/status`, `/list`, `/health`, `/start_bot`,
//! `/stop_bot`, `/restart_bot` (each confirmed with inline buttons), `/reload`, `/reload_all`, and broadcasts
//! (`/broadcast`, `/broadcasts`, `/broadcast_pause|resume|cancel`, in `broadcast`). It also forwards
//! [`Notifier`] messages (a bot failed, a reload failed, a plugin error for `notify_admins`) to the admins.
//!
//! A confirmation's id is 128 random bits, kept in memory only and bound to the admin who asked, the chat and the
//! question message: a button from before a restart, from another message or another admin, or pressed a second
//! time does nothing, and the admin is told why.

mod broadcast;

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    path::PathBuf,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use serde_json::json;
use teloxide_core::types::{ChatId, InlineKeyboardButton, InlineKeyboardMarkup, MessageId};
use tracing::warn;

use super::{
    BotManager, BotState, BotStatus,
    control::{Control, Done, FleetReport, FleetView, Order},
};
use crate::{
    config::{BotConfig, BotId, BotToken, PluginEntry},
    fleet::broadcasts::BroadcastAction,
    plugins::{
        CallbackFilter, ConfigProblem, Ctx, Handlers, LoadedPlugin, MessageFilter, NoConfig, Notifier, Plugin,
        PluginContext, PluginFactory, PluginMeta, Router,
    },
    storage::{Storage, events},
};

/// The admin bot's id in the fleet.
pub const ADMIN_BOT_ID: &str = "admin";

/// What the admin plugin controls; set once the fleet is built.
#[derive(Clone)]
pub struct Fleet {
    /// The bots.
    pub manager: BotManager,
    /// Orders carried out wherever the bot runs.
    pub control: Control,
    /// The broadcasts.
    pub broadcasts: super::broadcasts::Broadcasts,
    /// The database.
    pub storage: Storage,
    /// Who may use the admin bot.
    pub allowed: Arc<HashSet<i64>>,
    /// How long a confirmation button stays valid.
    pub confirm_timeout: Duration,
    /// Messages to forward to the admins.
    pub notifier: Notifier,
    /// When the process started.
    pub started: Instant,
}

/// The admin bot's configuration: not from a YAML file but from `ADMIN_BOT_TOKEN`.
pub fn admin_bot_config(token: BotToken) -> BotConfig {
    BotConfig {
        description: Some("Controls the fleet".to_owned()),
        plugins: vec![PluginEntry::new("admin")],
        file: PathBuf::from("ADMIN_BOT_TOKEN"),
        ..BotConfig::new(admin_id(), "Admin Bot".to_owned(), token)
    }
    .hashed()
}

/// The registry entry of the `admin` plugin; it builds instances once the fleet exists.
pub struct AdminFactory {
    meta: PluginMeta,
    fleet: Arc<OnceLock<Fleet>>,
}

impl AdminFactory {
    /// A factory whose instances control `fleet` (set it before any bot starts the plugin).
    pub fn new(fleet: Arc<OnceLock<Fleet>>) -> AdminFactory {
        let meta = PluginMeta::new("admin").description("Controls the fleet from Telegram (the admin bot)");
        AdminFactory { meta, fleet }
    }
}

impl PluginFactory for AdminFactory {
    fn meta(&self) -> &PluginMeta {
        &self.meta
    }

    fn check_config(&self, config: &serde_json::Value) -> Result<(), ConfigProblem> {
        match config.as_object() {
            Some(map) if !map.is_empty() => Err(ConfigProblem::new("", "the admin plugin takes no configuration")),
            _ => Ok(()),
        }
    }

    fn build(&self, cx: &PluginContext, router: &mut Router) -> anyhow::Result<Arc<dyn LoadedPlugin>> {
        let fleet = self.fleet.get().cloned().ok_or_else(|| anyhow::anyhow!("the fleet is not ready"))?;
        let admin = Arc::new(Admin {
            fleet,
            pending: Mutex::default(),
            drafts: Mutex::default(),
            tasks: cx.tasks.clone(),
            shutdown: cx.shutdown.clone(),
        });
        let mut handlers = Handlers::new(admin.clone(), "admin", router);
        admin.setup_handlers(&mut handlers);
        Ok(admin)
    }
}

/// A start, stop or restart waiting for its Confirm button.
struct Pending {
    action: Action,
    bot: BotId,
    asker: i64,
    /// The chat and the message that asked; the button must come from there.
    question: (ChatId, MessageId),
    asked: Instant,
    done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Start,
    Stop,
    Restart,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Start => "Start",
            Action::Stop => "Stop",
            Action::Restart => "Restart",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Action::Start => "started",
            Action::Stop => "stopped",
            Action::Restart => "restarted",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Action::Start => "start_bot",
            Action::Stop => "stop_bot",
            Action::Restart => "restart_bot",
        }
    }

    fn order(self) -> Order {
        match self {
            Action::Start => Order::Start,
            Action::Stop => Order::Stop,
            Action::Restart => Order::Restart,
        }
    }
}

/// The `admin` plugin instance.
pub struct Admin {
    fleet: Fleet,
    pending: Mutex<HashMap<String, Pending>>,
    /// Broadcasts being composed, by admin.
    drafts: Mutex<HashMap<i64, broadcast::Draft>>,
    /// The admin bot's tasks (progress messages), and its shutdown.
    tasks: tokio_util::task::TaskTracker,
    shutdown: tokio_util::sync::CancellationToken,
}

#[async_trait::async_trait]
impl Plugin for Admin {
    type Config = NoConfig;

    fn meta() -> PluginMeta {
        PluginMeta::new("admin")
    }

    fn new(_config: NoConfig, _cx: &PluginContext) -> anyhow::Result<Admin> {
        anyhow::bail!("the admin plugin is built by the application, which owns the fleet")
    }

    fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
        handlers
            .command("status", "Status of all bots, or of one: /status <bot_id>", Admin::status)
            .command("list", "List all configured bots", Admin::list)
            .command("health", "System health", Admin::health)
            .command("start_bot", "Start a bot: /start_bot <bot_id>", |a, cx| a.ask(cx, Action::Start))
            .command("stop_bot", "Stop a bot: /stop_bot <bot_id>", |a, cx| a.ask(cx, Action::Stop))
            .command("restart_bot", "Restart a bot: /restart_bot <bot_id>", |a, cx| a.ask(cx, Action::Restart))
            .command("reload", "Reload a bot's configuration: /reload <bot_id>", Admin::reload)
            .command("reload_all", "Reload all bot configurations", Admin::reload_all)
            .command("broadcast", "Send a message to every user of a bot: /broadcast <bot_id> [days]", Admin::broadcast)
            .command("broadcasts", "List the latest broadcasts and their progress", Admin::broadcasts)
            .command("broadcast_pause", "Pause a broadcast: /broadcast_pause <id>", |a, cx| {
                a.broadcast_control(cx, BroadcastAction::Pause)
            })
            .command("broadcast_resume", "Resume a broadcast: /broadcast_resume <id>", |a, cx| {
                a.broadcast_control(cx, BroadcastAction::Resume)
            })
            .command("broadcast_cancel", "Cancel a broadcast: /broadcast_cancel <id>", |a, cx| {
                a.broadcast_control(cx, BroadcastAction::Cancel)
            })
            .command("cancel", "Drop the broadcast being composed", Admin::cancel_draft)
            .callback_query(CallbackFilter::prefix("adm:"), Admin::confirm)
            .callback_query(CallbackFilter::prefix("bc:"), Admin::broadcast_confirm)
            .message(MessageFilter::any(), Admin::broadcast_message);
    }

    async fn on_bot_start(&self, cx: &PluginContext) -> anyhow::Result<()> {
        let mut notes = self.fleet.notifier.subscribe();
        let (api, admins, shutdown) = (cx.api.clone(), self.fleet.allowed.clone(), cx.shutdown.clone());
        cx.spawn(async move {
            loop {
                let note = tokio::select! {
                    note = notes.recv() => note,
                    () = shutdown.cancelled() => return,
                };
                let text = match note {
                    Ok(text) => text,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        format!("⚠️ {n} notifications were dropped")
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                for admin in admins.iter() {
                    let options = crate::telegram::SendOptions { parse_mode: Some(None), ..Default::default() };
                    if let Err(e) = api.send_message(ChatId(*admin), text.clone(), options).await {
                        warn!(admin, error = %e, "could not notify an admin");
                    }
                }
            }
        });
        Ok(())
    }
}

/// `2h 34m`, `5m 3s`, `42s`.
pub fn format_uptime(uptime: Duration) -> String {
    let secs = uptime.as_secs();
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

fn icon(state: &BotState) -> &'static str {
    match state {
        BotState::Running => "✅",
        BotState::Stopped => "⏹️",
        BotState::Disabled => "⏸️",
        BotState::Failed => "❌",
        BotState::Degraded => "⚠️",
    }
}

/// The process's resident memory in bytes, from `/proc/self/status`.
pub fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl Admin {
    /// Whether the sender may use the admin bot; refuses (once per command) and records it when not.
    async fn allowed(&self, cx: &Ctx) -> anyhow::Result<bool> {
        let user = cx.user().map(|u| u.id.0 as i64);
        if user.is_some_and(|u| self.fleet.allowed.contains(&u)) {
            return Ok(true);
        }
        events::access_denied(cx_recorder(cx), &admin_id(), user, "not_an_admin", true);
        if cx.callback().is_some() {
            cx.answer_callback(Some("⛔ Only administrators can do this.")).await?;
        } else {
            cx.reply("⛔ This bot is for administrators only.").plain().await?;
        }
        Ok(false)
    }

    /// An admin's click on a confirmation button; `None` when the clicker is not an admin (who was told).
    async fn click(&self, cx: &Ctx) -> anyhow::Result<Option<Click>> {
        Ok(self.allowed(cx).await?.then(|| Click::of(cx)))
    }

    /// Replies in plain text; a long reply goes out as several messages.
    async fn say(&self, cx: &Ctx, text: String) -> anyhow::Result<()> {
        cx.reply(text).plain().await?;
        Ok(())
    }

    /// The bot named in the command's arguments, or a message listing the valid ids.
    async fn target(&self, cx: &Ctx) -> anyhow::Result<Option<BotStatus>> {
        let wanted = cx.command_args().split_whitespace().next().unwrap_or_default().to_owned();
        let found = BotId::parse(&wanted).ok().and_then(|id| self.fleet.manager.status_of(&id));
        if let Some(status) = found.filter(|s| s.id.as_str() != ADMIN_BOT_ID) {
            return Ok(Some(status));
        }
        let ids: Vec<String> = self.bots().iter().map(|s| s.id.to_string()).collect();
        let problem = if wanted.is_empty() { "Which bot?".to_owned() } else { format!("No bot {wanted:?}.") };
        self.say(cx, format!("{problem} Valid ids: {}", ids.join(", "))).await?;
        Ok(None)
    }

    /// Every bot but the admin bot itself.
    fn bots(&self) -> Vec<BotStatus> {
        self.fleet.manager.status().into_iter().filter(|s| s.id.as_str() != ADMIN_BOT_ID).collect()
    }

    /// Every bot but the admin bot itself as the fleet sees it, with the replica running each (with replicas).
    async fn view(&self) -> FleetView {
        let mut view = self.fleet.control.view().await;
        view.bots.retain(|(s, _)| s.id.as_str() != ADMIN_BOT_ID);
        view
    }

    async fn status(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        if !self.allowed(&cx).await? {
            return Ok(());
        }
        if !cx.command_args().is_empty() {
            let Some(bot) = self.target(&cx).await? else { return Ok(()) };
            let view = self.view().await;
            let (bot, owner) = view.bots.into_iter().find(|(s, _)| s.id == bot.id).unwrap_or((bot, None));
            let elsewhere = owner.clone().filter(|o| view.replicas.as_ref().is_some_and(|(me, _)| me != o));
            let users = self.fleet.storage.users().get_user_count(bot.id.as_str()).await;
            let mut text = format!("{} {} ({})\n", icon(&bot.state), bot.id, bot.name);
            let _ = writeln!(text, "State: {:?}", bot.state);
            if let Some(reason) = &bot.reason {
                let _ = writeln!(text, "Reason: {reason}");
            }
            let _ = writeln!(text, "Mode: {}", bot.mode);
            let _ = writeln!(text, "Uptime: {}", bot.uptime.map_or("-".to_owned(), format_uptime));
            let plugins = if bot.plugins.is_empty() { "-".to_owned() } else { bot.plugins.join(", ") };
            let _ = writeln!(text, "Plugins: {plugins}");
            let _ = writeln!(text, "Users: {}", users.map_or_else(|e| format!("unknown ({e})"), |n| n.to_string()));
            if view.replicas.is_some() {
                let _ = writeln!(text, "Replica: {}", owner.as_deref().unwrap_or("none"));
            }
            if let Some(replica) = elsewhere {
                let _ = write!(text, "Counters: on replica {replica} (its /health/full)");
                return self.say(&cx, text).await;
            }
            let _ = writeln!(text, "Updates handled: {}", bot.updates_handled);
            let _ = writeln!(text, "Errors: {}", bot.errors);
            let _ = write!(text, "Pending updates: {}", bot.pending_updates);
            if let Some(age) = bot.oldest_pending {
                let _ = write!(text, " (oldest {:.1} s)", age.as_secs_f64());
            }
            text.push('\n');
            let _ = write!(text, "Last error: {}", bot.last_error.as_deref().unwrap_or("-"));
            if let Some(broadcasts) = self.broadcast_status(bot.id.as_str()).await {
                let _ = write!(text, "\n{broadcasts}");
            }
            return self.say(&cx, text).await;
        }
        let view = self.view().await;
        let mut text = "📊 Bot Status Overview\n\n".to_owned();
        for (bot, owner) in &view.bots {
            let _ = write!(text, "{} {} ({})", icon(&bot.state), bot.id, bot.name);
            if let Some(uptime) = bot.uptime {
                let _ = write!(text, " - {}", format_uptime(uptime));
            }
            if let (BotState::Degraded | BotState::Failed, Some(reason)) = (&bot.state, &bot.reason) {
                let _ = write!(text, " - {reason}");
            }
            if let (Some(owner), Some(_)) = (owner, &view.replicas) {
                let _ = write!(text, " - on {owner}");
            }
            text.push('\n');
        }
        let bots: Vec<BotStatus> = view.bots.into_iter().map(|(bot, _)| bot).collect();
        let running = bots.iter().filter(|b| b.state.is_running()).count();
        let _ = write!(text, "\nSummary: {running}/{} running", bots.len());
        let degraded = bots.iter().filter(|b| b.state == BotState::Degraded).count();
        if degraded > 0 {
            let _ = write!(text, ", {degraded} degraded");
        }
        if let Some((me, alive)) = &view.replicas {
            let _ = write!(text, "\nReplicas alive: {} (this one: {me})", alive.join(", "));
        }
        self.say(&cx, text).await
    }

    async fn list(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        if !self.allowed(&cx).await? {
            return Ok(());
        }
        let mut text = "📋 Configured bots\n".to_owned();
        let view = self.view().await;
        for (bot, owner) in view.bots {
            let _ = write!(text, "\n{} {} ({}) - {:?}, {}", icon(&bot.state), bot.id, bot.name, bot.state, bot.mode);
            if let (Some(owner), Some(_)) = (owner, &view.replicas) {
                let _ = write!(text, ", on {owner}");
            }
            let _ = write!(text, "\n   {}", bot.file.display());
        }
        self.say(&cx, text).await
    }

    async fn health(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        if !self.allowed(&cx).await? {
            return Ok(());
        }
        let view = self.view().await;
        let bots: Vec<BotStatus> = view.bots.into_iter().map(|(bot, _)| bot).collect();
        let running = bots.iter().filter(|b| b.state.is_running()).count();
        let failed = bots.iter().filter(|b| b.state == BotState::Failed).count();
        let degraded: Vec<&BotStatus> = bots.iter().filter(|b| b.state == BotState::Degraded).collect();
        let database = match self.fleet.storage.ping().await {
            Ok(latency) => format!("ok ({:.1} ms, {})", latency.as_secs_f64() * 1000.0, self.fleet.storage.backend()),
            Err(e) => format!("unreachable ({e})"),
        };
        let memory = resident_memory().map_or("unknown".to_owned(), |b| format!("{:.1} MiB", b as f64 / 1048576.0));
        let mut text = format!(
            "🩺 System health\n\nUptime: {}\nMemory: {memory}\nDatabase: {database}\nBots: {running}/{} running, {failed} failed",
            format_uptime(self.fleet.started.elapsed()),
            bots.len()
        );
        if !degraded.is_empty() {
            let _ = write!(text, ", {} degraded", degraded.len());
        }
        if let Some((me, alive)) = &view.replicas {
            let _ = write!(text, "\nReplicas alive: {} (this one: {me})", alive.join(", "));
        }
        for bot in degraded {
            let _ = write!(text, "\n{} {}: {}", icon(&bot.state), bot.id, bot.reason.as_deref().unwrap_or("-"));
        }
        self.say(&cx, text).await
    }

    async fn ask(self: Arc<Self>, cx: Ctx, action: Action) -> anyhow::Result<()> {
        if !self.allowed(&cx).await? {
            return Ok(());
        }
        let Some(bot) = self.target(&cx).await? else { return Ok(()) };
        let asker = cx.user().map_or(0, |u| u.id.0 as i64);
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random numbers: {e}"))?;
        let nonce: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let keyboard = InlineKeyboardMarkup::new([[
            InlineKeyboardButton::callback("✅ Confirm", format!("adm:ok:{nonce}")),
            InlineKeyboardButton::callback("❌ Cancel", format!("adm:no:{nonce}")),
        ]]);
        let question =
            cx.reply(format!("{} bot {} ({})?", action.verb(), bot.name, bot.id)).plain().keyboard(keyboard).await?;
        // Stored once sent: a click on the question is an update of the same chat, handled after this one.
        let mut pending = self.pending.lock();
        pending.retain(|_, p| p.asked.elapsed() < self.fleet.confirm_timeout * 2);
        let question = (question.chat, question.id);
        pending.insert(
            nonce,
            Pending { action, bot: bot.id.clone(), asker, question, asked: Instant::now(), done: false },
        );
        Ok(())
    }

    async fn confirm(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        let Some(Click { choice, nonce, user: clicker, on: clicked_on }) = self.click(&cx).await? else {
            return Ok(());
        };
        let taken = {
            let mut pending = self.pending.lock();
            match pending.get_mut(&nonce) {
                None => Err(
                    "This button expired (the system restarted since it was asked, or it is not one of ours); ask again.",
                ),
                Some(p) if clicked_on != Some(p.question) => Err("This button belongs to another message."),
                Some(p) if p.asker != clicker => Err("Only the admin who asked can confirm."),
                Some(p) if p.done => Err("Already done."),
                Some(p) if p.asked.elapsed() > self.fleet.confirm_timeout => {
                    Err("This confirmation expired; ask again.")
                }
                Some(p) => {
                    p.done = true;
                    Ok((p.action, p.bot.clone()))
                }
            }
        };
        let (action, bot) = match taken {
            Ok(taken) => taken,
            Err(why) => {
                cx.answer_callback(Some(why)).await?;
                return Ok(());
            }
        };
        if choice != "ok" {
            cx.answer_callback(Some("Cancelled")).await?;
            cx.edit_text(format!("{} bot {bot}: cancelled.", action.verb()), None).await?;
            return Ok(());
        }
        cx.answer_callback(Some("Working on it…")).await?;
        let (outcome, text) = match self.fleet.control.order(action.order(), &bot).await {
            Ok(Done::Here) => ("ok", format!("✅ Bot {bot} {} successfully", action.done())),
            Ok(Done::On(replica)) => {
                ("ok", format!("✅ Bot {bot} {} successfully on replica {replica}", action.done()))
            }
            Ok(Done::Later) => {
                let follows = if action == Action::Stop { "keeps it stopped" } else { "starts it" };
                ("ok", format!("✅ No replica runs {bot} right now; the one that takes it {follows}"))
            }
            Err(e) => ("failed", format!("❌ Could not {} {bot}: {e}", action.verb().to_lowercase())),
        };
        events::admin_action(cx_recorder(&cx), Some(&bot), Some(clicker), action.name(), json!({ "outcome": outcome }));
        cx.edit_text(text, None).await?;
        Ok(())
    }

    async fn reload(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        if !self.allowed(&cx).await? {
            return Ok(());
        }
        // A bot not in the fleet may have a new file: loading it adds the bot.
        let wanted = cx.command_args().split_whitespace().next().and_then(|w| BotId::parse(w).ok());
        if let Some(id) = wanted.filter(|id| id.as_str() != ADMIN_BOT_ID && self.fleet.manager.status_of(id).is_none())
        {
            let report = self.fleet.control.reload(Some(&id)).await;
            let mut concerned = report.applied.iter().map(|(a, _)| a).chain(report.failed.iter().map(|(f, _)| f));
            if concerned.any(|c| c == id.as_str()) {
                return self.report(&cx, Some(&id), report).await;
            }
        }
        let Some(bot) = self.target(&cx).await? else { return Ok(()) };
        let report = self.fleet.control.reload(Some(&bot.id)).await;
        self.report(&cx, Some(&bot.id), report).await
    }

    async fn reload_all(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        if !self.allowed(&cx).await? {
            return Ok(());
        }
        let report = self.fleet.control.reload(None).await;
        self.report(&cx, None, report).await
    }

    async fn report(&self, cx: &Ctx, bot: Option<&BotId>, report: FleetReport) -> anyhow::Result<()> {
        let admin = cx.user().map_or(0, |u| u.id.0 as i64);
        let ok = report.errors.is_empty() && report.failed.is_empty() && report.silent.is_empty();
        let mut text =
            if ok { "🔄 Reload done".to_owned() } else { "⚠️ Reload finished with problems".to_owned() };
        if report.applied.is_empty() && ok {
            text.push_str("\nNothing changed.");
        }
        for (id, what) in &report.applied {
            let _ = write!(text, "\n✅ {id}: {what}");
        }
        for (id, why) in &report.failed {
            let _ = write!(text, "\n❌ {id}: {why} (the previous configuration keeps running)");
        }
        for error in &report.errors {
            let _ = write!(text, "\n❌ {error}");
        }
        if !report.errors.is_empty() {
            text.push_str("\nBots of invalid files keep their running configuration.");
        }
        if !report.silent.is_empty() {
            let _ = write!(text, "\n⏳ No answer yet from replica(s) {}", report.silent.join(", "));
        }
        let target = bot.cloned().unwrap_or_else(admin_id);
        let action = if bot.is_some() { "reload" } else { "reload_all" };
        let detail = json!({ "outcome": if ok { "ok" } else { "failed" }, "applied": report.applied.len() });
        events::admin_action(cx_recorder(cx), Some(&target), Some(admin), action, detail);
        self.say(cx, text).await
    }
}

/// The admin bot's id.
fn admin_id() -> BotId {
    BotId::parse(ADMIN_BOT_ID).unwrap_or_else(|_| unreachable!("a valid id"))
}

fn cx_recorder(cx: &Ctx) -> &crate::storage::Recorder {
    cx.recorder()
}

/// A click on a confirmation button, whose data is `<prefix>:<choice>:<nonce>`.
struct Click {
    choice: String,
    nonce: String,
    /// Who clicked (0 when unknown).
    user: i64,
    /// The message the button is under.
    on: Option<(ChatId, MessageId)>,
}

impl Click {
    fn of(cx: &Ctx) -> Click {
        let mut parts = cx.callback_data().unwrap_or_default().splitn(3, ':').skip(1);
        let (choice, nonce) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        Click {
            choice: choice.to_owned(),
            nonce: nonce.to_owned(),
            user: cx.user().map_or(0, |u| u.id.0 as i64),
            on: cx.callback().and_then(|q| q.message.as_ref()).map(|m| (m.chat().id, m.id())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptimes_read_like_the_spec() {
        assert_eq!(format_uptime(Duration::from_secs(42)), "42s");
        assert_eq!(format_uptime(Duration::from_secs(303)), "5m 3s");
        assert_eq!(format_uptime(Duration::from_secs(2 * 3600 + 34 * 60 + 5)), "2h 34m");
        assert_eq!(format_uptime(Duration::from_secs(3 * 86_400 + 3600)), "3d 1h");
    }
}
