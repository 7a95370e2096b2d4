//! `multibot-bench`: measures the system and its Bot API emulator and prints Markdown tables for
//! `docs/BENCHMARKS.md`. Run with `cargo run --release -p multibot-bench -- <benchmark>`; `fleet` and `replicas`
//! also need the `multibot` binary next to it: `cargo build --release -p multibot -p multibot-bench` first.

mod broadcast;
mod emulator;
mod fleet;
mod http;
mod limiter;
mod reload;
mod replicas;
mod script_echo;

use clap::{Parser, Subcommand};

/// The allocator the `multibot` binary ships with, so that what runs in this process (`script-echo`, the bare
/// echo loop of `fleet`) allocates as the product does.
#[cfg(unix)]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(about = "Benchmarks for Multibot and its Bot API emulator")]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// One broadcast to 100,000 users through the real `multibot` binary, flood control off: messages/s and
    /// resident memory over the job (build first, as for `fleet`).
    Broadcast(broadcast::Args),
    /// The emulator's own ceiling: Bot API requests per second on one core (getUpdates + sendMessage mix).
    Emulator(emulator::Args),
    /// The real `multibot` binary with 1 to 10,000 echo bots: launch time, replies/s, latency, loss, memory, idle
    /// CPU (build it first: `cargo build --release -p multibot -p multibot-bench`).
    Fleet(fleet::Args),
    /// Several replicas sharing one fleet through PostgreSQL leases: spread, memory per replica, failover after
    /// `kill -9`, and a burst with R replicas against one (build first, as for `fleet`; needs PostgreSQL).
    Replicas(replicas::Args),
    /// Hot reload: from a YAML file's write to the bot's new behaviour.
    Reload(reload::Args),
    /// The per-user rate limiter's memory with a million distinct users, before and after idle eviction.
    Limiter(limiter::Args),
    /// Replies per second of a script echo plugin against the native echo, through the whole application.
    ScriptEcho(script_echo::Args),
    /// The fleet bench's baseline, started by it as a child: a bare echo loop with no framework.
    #[command(hide = true)]
    BareEcho(fleet::bare::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().bench {
        Bench::Broadcast(args) => broadcast::run(args),
        Bench::Emulator(args) => emulator::run(args),
        Bench::Fleet(args) => fleet::run(args),
        Bench::Reload(args) => reload::run(args),
        Bench::Replicas(args) => replicas::run(args),
        Bench::Limiter(args) => limiter::run(args),
        Bench::ScriptEcho(args) => script_echo::run(args),
        Bench::BareEcho(args) => fleet::bare::run(args),
    }
}
