//! The rate limiter's memory: one million distinct users write once each, then go idle. Prints the process's
//! resident memory before, with every user remembered, and after the idle eviction the bots run every 10 s.
//! Target: under 100 MiB for the limiter, returned once the users go idle.

use std::time::Duration;

use multibot::runtime::middleware::rate_limit::RateLimiter;
use tokio::time::Instant;

/// Options of the limiter benchmark.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Distinct users.
    #[arg(long, default_value_t = 1_000_000)]
    users: i64,
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let before = rss_mib();
    // The default `rate_limiting:`: 30 per minute, bursts of 10.
    let limiter = RateLimiter::new(30, 10);
    let start = Instant::now();
    for user in 0..args.users {
        limiter.check(user, start);
    }
    let filled = rss_mib();
    let remembered = limiter.len();
    // Two seconds later every bucket (one update in a bucket of ten) is full again: the users are idle.
    let remaining = limiter.evict_idle(start + Duration::from_secs(2));
    let after = rss_mib();
    println!(
        "| users | RSS before | RSS with every user | limiter (difference) | users kept after eviction | RSS after eviction |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {before:.1} MiB | {filled:.1} MiB | {:.1} MiB | {remaining} of {remembered} | {after:.1} MiB |",
        args.users,
        filled - before
    );
    println!("\nTarget: under 100 MiB for the limiter with one million users, returned once they go idle.");
    Ok(())
}
