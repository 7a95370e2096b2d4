//! The command line of the `botapi-emulator` binary, shared with `multibot emulator`.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{Emulator, EmulatorConfig};

/// Runs a Telegram Bot API emulator on loopback.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "EMULATOR_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Register a bot with this token at start (repeatable).
    #[arg(long = "bot", value_name = "TOKEN")]
    pub bots: Vec<String>,
    /// Accept any well-formed token as a new bot instead of answering 401.
    #[arg(long)]
    pub accept_any_token: bool,
    /// Simulate Telegram's flood limits (429 with retry_after).
    #[arg(long)]
    pub flood: bool,
    /// Largest request body in bytes; larger ones get 413.
    #[arg(long, default_value_t = 50 * 1024 * 1024)]
    pub body_limit: usize,
    /// Largest file one upload may carry, in bytes; larger ones get 413.
    #[arg(long, default_value_t = 50 * 1024 * 1024)]
    pub file_limit: usize,
    /// Largest total of stored file bytes; uploads that would go over it get 413.
    #[arg(long, default_value_t = 1024 * 1024 * 1024)]
    pub storage_limit: usize,
    /// First pause in milliseconds after a failed webhook delivery (doubles per failure).
    #[arg(long, default_value_t = 1000)]
    pub webhook_retry_ms: u64,
    /// Answer 404 to method names not spelled exactly as the Bot API does (`sendMessage`), as a
    /// case-sensitive gateway would.
    #[arg(long)]
    pub strict_method_names: bool,
}

impl Args {
    /// The emulator configuration these arguments describe.
    pub fn config(&self) -> EmulatorConfig {
        EmulatorConfig {
            accept_any_token: self.accept_any_token,
            flood: self.flood,
            body_limit: self.body_limit,
            file_limit: self.file_limit,
            storage_limit: self.storage_limit,
            webhook_retry_base: Duration::from_millis(self.webhook_retry_ms),
            strict_method_names: self.strict_method_names,
            ..EmulatorConfig::default()
        }
    }
}

/// Serves until `shutdown` is cancelled.
pub async fn run(args: Args, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let emulator = Emulator::serve(listener, args.config(), shutdown.clone());
    for token in &args.bots {
        let bot = emulator.bot(token).await.context("registering a --bot token")?;
        tracing::info!(bot_id = bot.id, username = %bot.username, "bot registered");
    }
    let url = emulator.api_url();
    tracing::info!(%url, "Bot API emulator listening: bots call {url}/bot<TOKEN>/<method>, tests use {url}/control/");
    // On stdout whatever the log level: the address a person opens.
    println!("Playground: {}", emulator.playground_url());
    shutdown.cancelled().await;
    emulator.stop().await;
    Ok(())
}
