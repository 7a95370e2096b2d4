//! `multibot-bench`: measures the system and its Bot API emulator and prints Markdown tables for
//! `docs/BENCHMARKS.md`. Run with `cargo run --release -p multibot-bench -- <benchmark>`.

mod emulator;
mod script_echo;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Benchmarks for Multibot and its Bot API emulator")]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// The emulator's own ceiling: Bot API requests per second on one core (getUpdates + sendMessage mix).
    Emulator(emulator::Args),
    /// Replies per second of a script echo plugin against the native echo, through the whole application.
    ScriptEcho(script_echo::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().bench {
        Bench::Emulator(args) => emulator::run(args),
        Bench::ScriptEcho(args) => script_echo::run(args),
    }
}
