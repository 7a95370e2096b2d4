//! `botapi-emulator`: a Telegram Bot API emulator on loopback. See the crate docs and the README.

use clap::Parser;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(version, about = "A Telegram Bot API emulator on loopback, with a control API for tests and demos")]
struct Cli {
    #[command(flatten)]
    args: botapi_emulator::cli::Args,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    botapi_emulator::cli::run(cli.args, shutdown).await
}
