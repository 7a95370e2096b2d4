//! `multibot`: see `multibot --help` and the README. The whole binary is [`multibot::cli::run`] with the built-in
//! plugins; a binary of your own adds its plugins to the registry first (README: "Your own binary").

use std::process::ExitCode;

fn main() -> anyhow::Result<ExitCode> {
    multibot::cli::run(multibot::plugins::PluginRegistry::builtin())
}
