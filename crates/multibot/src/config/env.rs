//! Where settings and `${VAR}` substitutions come from: the process environment and the `.env` file
//! ([`process_env`]), behind the [`EnvLookup`] that tests replace.

use std::{
    collections::HashMap,
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

use parking_lot::Mutex;

use anyhow::Context;

/// Looks up a variable for `${VAR}` substitution and settings.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The real environment, as it was before [`load_dotenv`] added the `.env` file's variables. A copy, because
/// `std::env::var` walks the whole environment at each call: with one token variable per bot, 10,000 bots made
/// loading the configuration quadratic.
static REAL_ENV: std::sync::OnceLock<HashMap<OsString, OsString>> = std::sync::OnceLock::new();

/// The `.env` file as last read: its path, the modification time and length it had then, and its variables.
static DOTENV: Mutex<Option<DotEnv>> = Mutex::new(None);

struct DotEnv {
    path: PathBuf,
    modified: SystemTime,
    len: u64,
    values: HashMap<String, String>,
}

/// Adds the `.env` file of the working directory to the process environment (real variables win), so that what
/// reads the environment itself sees it too: `RUST_LOG`, `EMULATOR_LISTEN`, `SSL_CERT_FILE`. Call it first, before
/// any other thread runs. A missing `.env` is fine; an unreadable one is an error.
pub fn load_dotenv() -> anyhow::Result<()> {
    let _ = REAL_ENV.set(std::env::vars_os().collect());
    match dotenvy::from_path(".env") {
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        result => result.context("reading .env"),
    }
}

/// The process environment, then the `.env` file of the working directory read afresh at each lookup (real
/// variables win), so that a reload sees a token rotated in `.env`.
pub fn process_env() -> EnvLookup {
    Arc::new(|name| {
        let real = match REAL_ENV.get() {
            Some(real) => real.get(OsStr::new(name)).and_then(|value| value.to_str()).map(str::to_owned),
            // `load_dotenv` was not called (a binary of its own, a test): the environment as it is.
            None => std::env::var(name).ok(),
        };
        // A variable copied from `.env` at start is not in `REAL_ENV`: the file as it is now wins.
        real.or_else(|| dotenv_value(name))
    })
}

/// `name` in the `.env` file of the working directory.
fn dotenv_value(name: &str) -> Option<String> {
    dotenv_in(Path::new(".env"), name)
}

/// `name` in the env file at `path`, read again only when the file changed (its time or length).
fn dotenv_in(path: &Path, name: &str) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let (modified, len) = (meta.modified().ok()?, meta.len());
    let mut cached = DOTENV.lock();
    let fresh = cached.as_ref().is_some_and(|c| c.path == path && c.modified == modified && c.len == len);
    if !fresh {
        let values = dotenvy::from_path_iter(path).ok()?.filter_map(Result::ok).collect();
        *cached = Some(DotEnv { path: path.to_owned(), modified, len, values });
    }
    cached.as_ref().and_then(|c| c.values.get(name).cloned())
}

#[cfg(test)]
mod tests {
    use super::dotenv_in;
    use crate::testing::TempDir;

    #[test]
    fn the_env_file_is_read_again_once_it_changes() {
        let dir = TempDir::new("dotenv");
        let file = dir.write(".env", "TOKEN=first\n");
        assert_eq!(dotenv_in(&file, "TOKEN").as_deref(), Some("first"));
        assert_eq!(dotenv_in(&file, "OTHER"), None);
        // A token rotated in the file (another length, and a later time) is seen at the next lookup.
        std::fs::write(&file, "TOKEN=second-one\nOTHER=x\n").unwrap();
        assert_eq!(dotenv_in(&file, "TOKEN").as_deref(), Some("second-one"));
        assert_eq!(dotenv_in(&file, "OTHER").as_deref(), Some("x"));
        drop(dir);
        assert_eq!(dotenv_in(&file, "TOKEN"), None, "a removed file has no variables");
    }
}
