//! Where settings and `${VAR}` substitutions come from: the process environment and the `.env` file
//! ([`process_env`]), behind the [`EnvLookup`] that tests replace.

use std::sync::Arc;

use anyhow::Context;

/// Looks up a variable for `${VAR}` substitution and settings.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The names set in the real environment before [`load_dotenv`] added the `.env` file's.
static REAL_ENV: std::sync::OnceLock<std::collections::HashSet<std::ffi::OsString>> = std::sync::OnceLock::new();

/// Adds the `.env` file of the working directory to the process environment (real variables win), so that what
/// reads the environment itself sees it too: `RUST_LOG`, `EMULATOR_LISTEN`, `SSL_CERT_FILE`. Call it first, before
/// any other thread runs. A missing `.env` is fine; an unreadable one is an error.
pub fn load_dotenv() -> anyhow::Result<()> {
    let _ = REAL_ENV.set(std::env::vars_os().map(|(name, _)| name).collect());
    match dotenvy::from_path(".env") {
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        result => result.context("reading .env"),
    }
}

/// The process environment, then the `.env` file of the working directory read afresh at each lookup (real
/// variables win), so that a reload sees a token rotated in `.env`.
pub fn process_env() -> EnvLookup {
    Arc::new(|name| {
        let real = REAL_ENV.get().is_none_or(|real| real.contains(std::ffi::OsStr::new(name)));
        match real {
            true => std::env::var(name).ok().or_else(|| dotenv_value(name)),
            // Copied from `.env` at start: the file as it is now wins.
            false => dotenv_value(name),
        }
    })
}

fn dotenv_value(name: &str) -> Option<String> {
    let entries = dotenvy::from_path_iter(".env").ok()?;
    entries.filter_map(Result::ok).find(|(key, _)| key == name).map(|(_, value)| value)
}
