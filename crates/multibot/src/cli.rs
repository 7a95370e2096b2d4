//! The `multibot` command line: `run` (the default), `migrate`, `check-config`, `plugins`, `broadcast`, and with the default
//! `emulator` feature `emulator` and `demo`.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::{
    app::Application,
    config::{self, Settings, WebhookEnv, process_env},
    plugins::{
        PluginRegistry,
        script::{ScanReport, ScriptCatalog, ScriptHost},
    },
    signals::{reload_on_sighup, shutdown_on_signals},
    storage::Storage,
    telemetry,
};

/// Run many Telegram bots in one process.
#[derive(Debug, Parser)]
#[command(name = "multibot", version, about)]
pub struct Cli {
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every enabled bot of CONFIG_DIR until SIGINT or SIGTERM.
    Run,
    /// Apply the pending database migrations of DATABASE_URL and print what was applied.
    Migrate,
    /// Validate the bot configurations: print every problem and exit 1, or a summary and exit 0.
    CheckConfig,
    /// List the available plugins: native ones and the script plugins of PLUGINS_DIR.
    Plugins,
    /// Exit 0 when this machine's multibot answers `/health/live` (for Docker's HEALTHCHECK), 1 otherwise.
    Healthcheck {
        /// URL to probe (default: http://127.0.0.1:$HEALTH_CHECK_PORT/health/live).
        #[arg(long)]
        url: Option<String>,
    },
    /// Broadcast a message to every user of a bot (`broadcast <bot_id> --text ...`), or list, pause, resume or
    /// cancel broadcasts (`broadcast list`, `broadcast pause <id>`, ...). The running fleet picks new broadcasts
    /// up from the database within seconds.
    Broadcast(BroadcastArgs),
    /// Run the Telegram Bot API emulator.
    #[cfg(feature = "emulator")]
    Emulator(botapi_emulator::cli::Args),
    /// Start the emulator and the example bots in this process, play a conversation with each, keep running.
    #[cfg(feature = "emulator")]
    Demo(crate::demo::Args),
}

/// `multibot broadcast`'s arguments.
#[derive(Debug, clap::Args)]
pub struct BroadcastArgs {
    /// The bot to broadcast from, or `list`, `pause`, `resume`, `cancel`.
    pub target: String,
    /// The broadcast's id, for `pause`, `resume` and `cancel`.
    pub id: Option<i64>,
    /// The text to send.
    #[arg(long, conflicts_with = "copy_from")]
    pub text: Option<String>,
    /// The text's parse mode (`HTML`, `MarkdownV2`); default: the bot's `settings.parse_mode`.
    #[arg(long, requires = "text")]
    pub parse_mode: Option<String>,
    /// Copy a message (copyMessage: media and formatting survive) from this chat, which the bot can read.
    #[arg(long, requires = "message_id")]
    pub copy_from: Option<i64>,
    /// The message to copy, in `--copy-from`.
    #[arg(long, requires = "copy_from")]
    pub message_id: Option<i64>,
    /// Only users seen in the last N days.
    #[arg(long)]
    pub active_days: Option<u32>,
}

/// Reads the settings, or prints every problem.
fn settings() -> Result<Settings, ExitCode> {
    Settings::from_env(&*process_env()).map_err(|errors| {
        for e in errors {
            eprintln!("configuration error: {e}");
        }
        ExitCode::from(2)
    })
}

/// Runs the `multibot` command line with the plugins of `registry` (and the script plugins of `PLUGINS_DIR`):
/// the whole `main` of a binary. It reads `.env`, lifts the open-file limit, parses the arguments and runs the
/// subcommand on a multi-threaded runtime. Call it before any other thread starts.
///
/// Your own binary, with one more plugin (`Greeter` implements [`Plugin`](crate::plugins::Plugin)):
///
/// ```no_run
/// # use multibot::prelude::*;
/// # struct Greeter;
/// # impl Plugin for Greeter {
/// #     type Config = ();
/// #     fn meta() -> PluginMeta { PluginMeta::new("greeter") }
/// #     fn new(_: (), _: &PluginContext) -> anyhow::Result<Greeter> { Ok(Greeter) }
/// #     fn setup_handlers(&self, _: &mut Handlers<'_, Self>) {}
/// # }
/// fn main() -> anyhow::Result<std::process::ExitCode> {
///     let mut registry = multibot::plugins::PluginRegistry::builtin();
///     registry.register::<Greeter>();
///     multibot::cli::run(registry)
/// }
/// ```
pub fn run(registry: PluginRegistry) -> anyhow::Result<ExitCode> {
    // Before any thread starts: `.env` joins the environment that clap, logging and TLS read.
    config::load_dotenv()?;
    // Every polling bot holds a socket open (10,000 bots, 10,000 sockets): lift the soft open-file limit to the
    // hard one. Failing leaves the limit as it was, which is enough for small fleets.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(main(Cli::parse(), registry))
}

/// Runs one parsed command line with the plugins of `registry`.
pub async fn main(cli: Cli, registry: PluginRegistry) -> anyhow::Result<ExitCode> {
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let settings = match settings() {
                Ok(settings) => settings,
                Err(code) => return Ok(code),
            };
            telemetry::init(&settings);
            let app = Application::build(settings, registry, process_env()).await?;
            let signals = shutdown_on_signals();
            let token = app.shutdown_token();
            // Untracked on purpose: it only passes a signal on to the application's token.
            tokio::spawn(async move {
                signals.cancelled().await;
                token.cancel();
            });
            reload_on_sighup(app.reload_sender());
            app.run_until_stopped().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let settings = match settings() {
                Ok(settings) => settings,
                Err(code) => return Ok(code),
            };
            telemetry::init(&settings);
            migrate(&settings).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig => {
            let settings = match settings() {
                Ok(settings) => settings,
                Err(code) => return Ok(code),
            };
            Ok(check_config(&settings, registry))
        }
        Command::Plugins => {
            let settings = Settings::from_env(&*process_env()).unwrap_or_else(|_| Settings::defaults());
            let (catalog, scan) = scan_scripts(&settings, &registry);
            for meta in registry.list() {
                let kind = if meta.script { "script" } else { "native" };
                println!("{:<16} {:<8} {:<7} {}", meta.name, meta.version, kind, meta.description);
                if let Some((_, file)) = catalog.plugins().into_iter().find(|(name, _)| *name == meta.name) {
                    let author = if meta.author.is_empty() { String::new() } else { format!(", by {}", meta.author) };
                    let reload = if meta.supports_hot_reload { "" } else { ", restarts its bots on change" };
                    println!("{:<16} file: {}{author}{reload}", "", file.display());
                }
                if !meta.dependencies.is_empty() {
                    println!("{:<16} depends on: {}", "", meta.dependencies.join(", "));
                }
            }
            for problem in &scan.errors {
                eprintln!("script not loaded: {problem}");
            }
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "emulator")]
        Command::Emulator(args) => {
            let settings = Settings::from_env(&*process_env()).unwrap_or_else(|_| Settings::defaults());
            telemetry::init(&Settings { log_format: config::LogFormat::Text, ..settings });
            botapi_emulator::cli::run(args, shutdown_on_signals()).await?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "emulator")]
        Command::Demo(args) => crate::demo::run(args, registry).await,
        Command::Broadcast(args) => {
            let settings = match settings() {
                Ok(settings) => settings,
                Err(code) => return Ok(code),
            };
            broadcast(&settings, args).await
        }
        Command::Healthcheck { url } => {
            let port = Settings::from_env(&*process_env()).map_or(8080, |s| s.health_check_port);
            let url = url.unwrap_or_else(|| format!("http://127.0.0.1:{port}/health/live"));
            let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(3)).build()?;
            match client.get(&url).send().await {
                Ok(response) if response.status().is_success() => Ok(ExitCode::SUCCESS),
                Ok(response) => {
                    eprintln!("{url}: {}", response.status());
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => {
                    eprintln!("{url}: {}", e.without_url());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

/// `multibot migrate`: prints each migration it applies, or that there was nothing to apply.
async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let url = &settings.database_url;
    let storage = Storage::open(url).await.with_context(|| format!("opening the database {url}"))?;
    let applied = storage.migrate().await.with_context(|| format!("migrating the database {url}"))?;
    for migration in &applied {
        println!("applied {:04} {}", migration.version, migration.description);
    }
    let version = storage.known_migrations().last().map_or(0, |m| m.version);
    match applied.len() {
        0 => println!("nothing to apply: {url} ({}) is at version {version}", storage.backend()),
        n => println!("{n} migration(s) applied: {url} ({}) is at version {version}", storage.backend()),
    }
    storage.close().await;
    Ok(())
}

/// `multibot broadcast`: starts a broadcast in the database, or lists or controls them.
async fn broadcast(settings: &Settings, args: BroadcastArgs) -> anyhow::Result<ExitCode> {
    use crate::{
        fleet::broadcasts::{self, BroadcastAction},
        storage::{BroadcastMessage, NewBroadcast},
    };
    let url = &settings.database_url;
    let storage = Storage::open(url).await.with_context(|| format!("opening the database {url}"))?;
    storage.check_schema().await.with_context(|| format!("checking the schema of {url}"))?;
    let action = match args.target.as_str() {
        "list" => {
            for b in storage.broadcasts().list(None, 20).await? {
                println!("{}\n", broadcasts::describe(&b, broadcasts::average_rate(&b)));
            }
            storage.close().await;
            return Ok(ExitCode::SUCCESS);
        }
        "pause" => Some(BroadcastAction::Pause),
        "resume" => Some(BroadcastAction::Resume),
        "cancel" => Some(BroadcastAction::Cancel),
        _ => None,
    };
    let result = match action {
        Some(action) => {
            let Some(id) = args.id else {
                eprintln!("which broadcast? multibot broadcast {} <id>", action.as_str());
                return Ok(ExitCode::from(2));
            };
            broadcasts::control(&storage, None, id, action, None).await
        }
        None => {
            let message = match (args.text, args.copy_from, args.message_id) {
                (Some(text), _, _) => BroadcastMessage::Text { text, parse_mode: args.parse_mode, entities: None },
                (None, Some(from_chat_id), Some(message_id)) => BroadcastMessage::Copy { from_chat_id, message_id },
                _ => {
                    eprintln!("what to send? --text TEXT, or --copy-from CHAT_ID --message-id ID");
                    return Ok(ExitCode::from(2));
                }
            };
            let known = storage.bots().get(&args.target).await?.is_some();
            if !known {
                eprintln!("no bot {:?} in the database (a bot is recorded once the fleet has run it)", args.target);
                return Ok(ExitCode::FAILURE);
            }
            let new = NewBroadcast { bot_id: args.target, message, active_days: args.active_days, created_by: None };
            broadcasts::start(&storage, None, new).await
        }
    };
    storage.close().await;
    match result {
        Ok(b) => {
            println!("{}", broadcasts::describe(&b, None));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Adds the script plugins of `PLUGINS_DIR` to `registry`; returns them and what scanning them found.
fn scan_scripts(settings: &Settings, registry: &PluginRegistry) -> (ScriptCatalog, ScanReport) {
    let mut catalog = ScriptCatalog::new(settings.plugins_dir.clone(), ScriptHost::in_memory(settings));
    let scan = catalog.scan_into(registry);
    (catalog, scan)
}

fn check_config(settings: &Settings, registry: PluginRegistry) -> ExitCode {
    let (catalog, scan) = scan_scripts(settings, &registry);
    let webhooks = WebhookEnv { enabled: settings.webhook_enabled, base_url_set: settings.webhook_base_url.is_some() };
    let env = process_env();
    let loaded = config::load_dir(&settings.config_dir, &*env, &registry, webhooks);
    if !loaded.errors.is_empty() || !scan.errors.is_empty() {
        for e in &scan.errors {
            println!("{e}");
        }
        for e in &loaded.errors {
            println!("{e}");
        }
        let scripts: std::collections::BTreeSet<_> = scan.errors.iter().map(|e| &e.file).collect();
        let files = loaded.files.len() + scripts.len();
        println!("{} problem(s) in {files} file(s)", loaded.errors.len() + scan.errors.len());
        return ExitCode::FAILURE;
    }
    println!("{} bot(s) in {}:", loaded.bots.len(), settings.config_dir.display());
    for bot in &loaded.bots {
        let plugins: Vec<&str> = registry.load_order(&bot.plugins).iter().map(|e| e.name.as_str()).collect();
        let state = if bot.enabled { "enabled" } else { "disabled" };
        println!("  {} ({}) {}, {}, plugins: {}", bot.id, bot.name, bot.mode, state, plugins.join(", "));
    }
    let scripts: Vec<String> = catalog.plugins().into_iter().map(|(name, _)| name).collect();
    if !scripts.is_empty() {
        println!("{} script plugin(s) in {}: {}", scripts.len(), settings.plugins_dir.display(), scripts.join(", "));
    }
    ExitCode::SUCCESS
}
