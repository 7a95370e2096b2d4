//! `multibot`: see `multibot --help` and the README.

use std::process::ExitCode;

use clap::Parser;

fn main() -> anyhow::Result<ExitCode> {
    // Before any thread starts: `.env` joins the environment that clap, logging and TLS read.
    multibot::config::load_dotenv()?;
    // Every polling bot holds a socket open (10,000 bots, 10,000 sockets): lift the soft open-file limit to the
    // hard one. Failing leaves the limit as it was, which is enough for small fleets.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(multibot::cli::main(multibot::cli::Cli::parse()))
}
