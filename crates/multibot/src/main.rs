//! `multibot`: see `multibot --help` and the README.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    // Every polling bot holds a socket open (10,000 bots, 10,000 sockets): lift the soft open-file limit to the
    // hard one. Failing leaves the limit as it was, which is enough for small fleets.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    multibot::cli::main(multibot::cli::Cli::parse()).await
}
