//! `multibot`: see `multibot --help` and the README.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    // Real environment variables win over .env.
    let _ = dotenvy::dotenv();
    multibot::cli::main(multibot::cli::Cli::parse()).await
}
