//! `multibot`: see `multibot --help` and the README. The whole binary is [`multibot::cli::run`] with the built-in
//! plugins; a binary of your own adds its plugins to the registry first (README: "Your own binary").

use std::process::ExitCode;

/// jemalloc rather than the system's allocator: every update allocates and frees small buffers on several threads,
/// on which glibc's malloc spent about a quarter of the process's CPU under load; jemalloc also gives memory back
/// after a burst (docs/BENCHMARKS.md, "Fleet").
#[cfg(unix)]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<ExitCode> {
    // A background thread gives memory freed by jemalloc back to the system over the next seconds. Without it
    // jemalloc does so only while the process allocates, so an idle fleet kept what starting it had used and
    // freed (10,000 bots: 365 MiB resident instead of 300 MiB).
    #[cfg(unix)]
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("jemalloc: no background thread ({e}); freed memory is returned less promptly");
    }
    multibot::cli::run(multibot::plugins::PluginRegistry::builtin())
}
