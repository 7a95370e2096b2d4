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
    multibot::cli::run(multibot::plugins::PluginRegistry::builtin())
}
