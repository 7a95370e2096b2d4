//! `multibot demo`: the emulator and the example bots of `CONFIG_DIR` in one process, a short conversation with
//! each printed as a transcript, then the fleet keeps running for the user to talk to. It needs no token, no
//! database server and no network: unset `*_TOKEN` variables get emulator tokens.

use std::{process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context;
use botapi_emulator::{Emulator, EmulatorConfig, TestBot, TestUser, types::Message};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    app::Application,
    config::{self, BotId, BotToken, DatabaseUrl, EnvLookup, LogFormat, Settings, WebhookEnv},
    fleet::{BotState, BotStatus},
    plugins::{
        PluginRegistry,
        script::{ScriptCatalog, ScriptHost},
    },
    signals::shutdown_on_signals,
    telemetry,
};

/// The demo's user, who is also the admin.
const ALICE: i64 = 1001;

/// Options of `multibot demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Where the emulator listens (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: std::net::SocketAddr,
    /// Exit after the transcript instead of running until Ctrl-C.
    #[arg(long)]
    pub once: bool,
}

/// A console token for this run only: 24 random hexadecimal digits.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random numbers: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A stable emulator token for an unset `*_TOKEN` variable.
fn demo_token(variable: &str) -> String {
    let hash =
        variable.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let id = 100_000 + hash % 900_000;
    let secret: String = variable.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("{id}:Demo{secret:_<20}")
}

/// The process environment, with emulator tokens for unset `*_TOKEN` variables.
fn demo_env() -> EnvLookup {
    let env = crate::config::process_env();
    Arc::new(move |name| env(name).or_else(|| name.ends_with("_TOKEN").then(|| demo_token(name))))
}

/// Runs the demo with the plugins of `registry`.
pub async fn run(args: Args, registry: PluginRegistry) -> anyhow::Result<ExitCode> {
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let emulator = Emulator::serve(listener, EmulatorConfig::default(), CancellationToken::new());
    let mut settings =
        Settings::from_env(&*crate::config::process_env()).unwrap_or_else(|_| crate::config::Settings::defaults());
    settings.telegram_api_url = emulator.api_url();
    settings.polling_timeout = Duration::from_secs(10);
    // The emulator does not enforce Telegram's flood limits unless asked; pacing would only slow the transcript.
    if std::env::var("FLOOD_CONTROL").is_err() {
        settings.flood_control = false;
    }
    if std::env::var("LOG_LEVEL").is_err() {
        settings.log_level = "warn".into();
    }
    if std::env::var("LOG_FORMAT").is_err() {
        settings.log_format = LogFormat::Text;
    }
    // The demo keeps nothing: an in-memory database unless DATABASE_URL says otherwise.
    if std::env::var("DATABASE_URL").is_err() {
        settings.database_url = DatabaseUrl::parse("sqlite::memory:").map_err(anyhow::Error::msg)?;
    }
    // An admin bot with an emulator token, for Alice, unless the environment configures one.
    if settings.admin_bot_token.is_none() {
        settings.admin_bot_token = Some(BotToken::parse(&demo_token("ADMIN_BOT_TOKEN")).map_err(anyhow::Error::msg)?);
    }
    if settings.admin_allowed_users.is_empty() {
        settings.admin_allowed_users = vec![ALICE];
    }
    // The web console, with a token made for this run (printed below) unless the environment sets one.
    let demo_console_token = settings.console_token.is_none().then(random_token).transpose()?;
    if let Some(token) = &demo_console_token {
        settings.console_token = Some(token.clone().into());
    }
    // Any free port unless one is asked for: the demo must not fail because 8080 is taken.
    if std::env::var("HEALTH_CHECK_PORT").is_err() {
        settings.health_check_port = 0;
    }
    telemetry::init(&settings);
    let env = demo_env();
    // Register every configured bot with the emulator before the fleet starts (the bots that use scripts too).
    ScriptCatalog::new(settings.plugins_dir.clone(), ScriptHost::in_memory(&settings)).scan_into(&registry);
    let webhooks = WebhookEnv { enabled: settings.webhook_enabled, base_url_set: settings.webhook_base_url.is_some() };
    let loaded = config::load_dir(&settings.config_dir, &*env, &registry, webhooks);
    let mut bots = Vec::new();
    for config in &loaded.bots {
        let username = format!("{}_bot", config.id.as_str().trim_end_matches("_bot"));
        let bot = emulator.control().bot_named(config.token.expose(), &config.name, &username).await?;
        bots.push((config.id.clone(), config.name.clone(), bot));
    }
    let admin_token = settings.admin_bot_token.as_ref().map(|t| t.expose().to_owned()).unwrap_or_default();
    let admin_bot = emulator.control().bot_named(&admin_token, "Admin Bot", "admin_bot").await?;
    let app = Application::build(settings.clone(), registry, env).await?;
    for problem in app.config_errors() {
        println!("config problem: {problem}");
    }
    for problem in app.script_errors() {
        println!("script problem: {problem}");
    }
    println!("Multibot demo: Bot API emulator at {}", emulator.api_url());
    println!("Playground: {}", emulator.playground_url());
    if let Some(addr) = app.health_addr() {
        println!("Health and metrics: http://127.0.0.1:{}/health/full and /metrics", addr.port());
        match &demo_console_token {
            Some(token) => {
                println!("Web console: http://127.0.0.1:{}/console (token for this run: {token})", addr.port())
            }
            None => println!("Web console: http://127.0.0.1:{}/console (log in with CONSOLE_TOKEN)", addr.port()),
        }
    }
    let alice = emulator.user(ALICE);
    for status in app.manager().status() {
        let Some((_, name, bot)) = bots.iter().find(|(id, _, _)| *id == status.id) else {
            continue;
        };
        println!();
        println!("── {} ({}) ──", status.id, name);
        if status.state != BotState::Running {
            println!("   {} is {:?}: {}", status.id, status.state, status.reason.as_deref().unwrap_or("disabled"));
            continue;
        }
        if let Err(e) = converse(&alice, bot, name, &status).await {
            println!("   conversation stopped: {e:#}");
        }
    }
    println!();
    println!("── admin (Admin Bot) ──");
    let target = bots.iter().find(|(id, _, _)| id.as_str() == "echo_bot").or(bots.first()).map(|(id, _, _)| id.clone());
    if let Err(e) = admin_session(&alice, &admin_bot, target.as_ref()).await {
        println!("   admin session stopped: {e:#}");
    }
    println!();
    if let Some((_, _, bot)) = bots.first() {
        println!("The bots keep running. Talk to them in a browser, as any user:");
        println!("Playground: {}", emulator.playground_url());
        println!("Or with curl, as user 1001, then read the answers:");
        println!(
            "  curl -s {}/control/bots/{}/messages -H 'content-type: application/json' -d '{{\"from\": 1001, \"text\": \"/help\"}}'",
            emulator.api_url(),
            bot.id
        );
        println!("  curl -s {}/control/bots/{}/chats/1001", emulator.api_url(), bot.id);
    }
    let token = app.shutdown_token();
    if args.once {
        token.cancel();
    } else {
        println!("Press Ctrl-C to stop.");
        let signals = shutdown_on_signals();
        // Untracked on purpose: it only passes a signal on to the application's token.
        tokio::spawn(async move {
            signals.cancelled().await;
            token.cancel();
        });
    }
    app.run_until_stopped().await?;
    emulator.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// Plays a short conversation with one bot, using the plugins it has.
async fn converse(alice: &TestUser, bot: &TestBot, name: &str, status: &BotStatus) -> anyhow::Result<()> {
    // A native plugin or its script twin (`script_echo` for `echo`, ...).
    let has = |plugin: &str| status.plugins.iter().any(|p| p == plugin || *p == format!("script_{plugin}"));
    let say = |text: &str| println!("   Alice: {text}");
    let show = |message: &Message| println!("   {name}: {}", indent(message.text.as_deref().unwrap_or("(no text)")));
    for text in ["/start", "/help"] {
        say(text);
        alice.send(bot, text).await?;
        show(&alice.next_message_from(bot).await?);
    }
    if has("echo") {
        for text in ["/echo Hello, world!", "Nice to meet you"] {
            say(text);
            alice.send(bot, text).await?;
            match alice.next_message_in(bot, alice.id, Duration::from_secs(2)).await {
                Ok(reply) => show(&reply),
                Err(_) => println!("   {name}: (no answer: echo_all is off)"),
            }
        }
    }
    if has("form") {
        for text in ["/form", "Alice", "30"] {
            say(text);
            alice.send(bot, text).await?;
            show(&alice.next_message_from(bot).await?);
        }
    }
    if has("menu") {
        say("/menu");
        alice.send(bot, "/menu").await?;
        let menu = alice.next_message_from(bot).await?;
        show(&menu);
        let before = bot.events(0, None, None, Duration::ZERO).await?.last().map_or(0, |e| e.seq);
        println!("   Alice: [clicks \"Option 2\"]");
        let data = menu.callback_data().into_iter().find(|d| d.ends_with("opt_2")).unwrap_or_default();
        alice.click(bot, &menu, &data).await?;
        let answer = bot.next_event(before, None, Some("callback_answer"), Duration::from_secs(10)).await?;
        let text = answer.detail.as_ref().and_then(|d| d["text"].as_str()).unwrap_or_default().to_owned();
        println!("   {name}: (notification) {text}");
        let edit = bot.next_event(before, Some(alice.id), Some("edit"), Duration::from_secs(10)).await?;
        if let Some(message) = edit.message {
            println!("   {name}: (edits the menu) {}", message.text.unwrap_or_default());
        }
    }
    Ok(())
}

/// Asks for the status, then stops and starts a bot through the confirmation buttons.
async fn admin_session(alice: &TestUser, admin: &TestBot, target: Option<&BotId>) -> anyhow::Result<()> {
    let name = "Admin Bot";
    let show = |message: &Message| println!("   {name}: {}", indent(message.text.as_deref().unwrap_or("(no text)")));
    println!("   Alice: /status");
    alice.send(admin, "/status").await?;
    show(&alice.next_message_from(admin).await?);
    let Some(target) = target else { return Ok(()) };
    for action in ["stop_bot", "start_bot"] {
        let command = format!("/{action} {target}");
        println!("   Alice: {command}");
        alice.send(admin, &command).await?;
        let question = alice.next_message_from(admin).await?;
        println!("   {name}: {}  [✅ Confirm] [❌ Cancel]", question.text.as_deref().unwrap_or_default());
        let before = admin.events(0, None, None, Duration::ZERO).await?.last().map_or(0, |e| e.seq);
        let confirm = question.callback_data().into_iter().find(|d| d.starts_with("adm:ok:")).unwrap_or_default();
        println!("   Alice: [clicks \"✅ Confirm\"]");
        alice.click(admin, &question, &confirm).await?;
        let edit = admin.next_event(before, Some(alice.id), Some("edit"), Duration::from_secs(15)).await?;
        println!("   {name}: (edits the question) {}", edit.message.and_then(|m| m.text).unwrap_or_default());
    }
    Ok(())
}

fn indent(text: &str) -> String {
    text.trim_end().lines().map(str::trim_end).collect::<Vec<_>>().join("\n      ")
}
