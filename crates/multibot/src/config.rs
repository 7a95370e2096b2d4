//! Configuration: environment settings ([`Settings`]) and bot YAML files ([`BotConfig`]), with `${VAR}`
//! substitution and validation that reports every problem with file, line, column and field path
//! ([`ConfigError`]).
//!
//! - `settings`: the environment variables, with the spec's defaults; `env`: where they are read from (the process
//!   and `.env`); `database`: `DATABASE_URL`.
//! - `schema`: the bot YAML schema, written once as derived serde types ([`BotConfig`] and its parts); its
//!   docs say how to add a key. The config hash is their serialization; the admin bot is a value of them.
//! - `yaml`: YAML with positions; `reader`: a serde deserializer over them that records every problem with its
//!   place and reads on; `validate`: the rules beyond the types (required fields, ranges, shapes, plugins).
//! - `load`: one bot file and a whole directory (ids, tokens and webhook paths unique across files), checked
//!   against the plugin catalog ([`PluginCatalog`]).
//! - [`watcher`]: debounced file events in `CONFIG_DIR`; [`diff`]: what a reload changes in the fleet.

mod database;
pub mod diff;
mod env;
mod http_allow;
mod load;
mod reader;
mod schema;
mod settings;
mod validate;
pub mod watcher;
mod yaml;

use std::{fmt, path::PathBuf};

pub use database::{Backend, DatabaseTarget, DatabaseUrl};
pub use env::{EnvLookup, load_dotenv, process_env};
pub use http_allow::HttpAllow;
pub use load::{LoadedConfig, load_dir, parse_bot_file};
pub use schema::{
    AccessConfig, BotConfig, BotSettings, FsmStrategy, Mode, PluginEntry, RateLimitConfig, WebhookConfig,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
pub use settings::{FsmBackend, HttpVersion, InboxMode, LogFormat, Settings, VARIABLES};
pub use validate::WebhookEnv;

/// A bot's identifier from its YAML `id`: 1-64 characters of `a-z`, `0-9`, `_` and `-`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct BotId(String);

impl BotId {
    /// Checks the shape of an id.
    ///
    /// ```rust
    /// use multibot::config::BotId;
    ///
    /// let id = BotId::parse("shop-eu_2").expect("a valid id");
    /// assert_eq!(id.as_str(), "shop-eu_2");
    /// // Bad input: an upper-case letter, a leading digit, a space, nothing.
    /// for bad in ["Shop", "2shop", "my shop", ""] {
    ///     let error = BotId::parse(bad).unwrap_err();
    ///     assert!(error.starts_with("invalid bot id"), "{error}");
    /// }
    /// ```
    pub fn parse(id: &str) -> Result<BotId, String> {
        let valid = (1..=64).contains(&id.len())
            && id.starts_with(|c: char| c.is_ascii_lowercase())
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if valid {
            Ok(BotId(id.to_owned()))
        } else {
            Err(format!("invalid bot id {id:?}: use 1-64 characters of a-z, 0-9, _ and -, starting with a letter"))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for BotId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BotId, D::Error> {
        BotId::parse(&String::deserialize(deserializer)?).map_err(de::Error::custom)
    }
}

impl fmt::Display for BotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Telegram bot token, `<digits>:<secret>`; never shown by `Debug` or `Display`.
///
/// ```rust
/// use multibot::config::BotToken;
///
/// let token = BotToken::parse("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw").expect("a well-formed token");
/// assert_eq!(token.user_id(), 123456789);
/// assert_eq!(format!("{token:?}"), "BotToken(123456789:***)");
///
/// // An error from a library that quotes the request's URL loses the token before it is logged.
/// let error = format!("error sending request for url (https://api.telegram.org/bot{}/getMe)", token.expose());
/// assert_eq!(token.redact(error), "error sending request for url (https://api.telegram.org/bot<token>/getMe)");
///
/// // Bad input: a secret shorter than 20 characters; the error does not quote it.
/// let error = BotToken::parse("123456789:tooShort").unwrap_err();
/// assert!(error.starts_with("malformed token") && !error.contains("tooShort"), "{error}");
/// ```
#[derive(Clone)]
pub struct BotToken {
    secret: SecretString,
    user_id: i64,
}

impl BotToken {
    /// Checks the shape of a token: `<digits>:<at least 20 of A-Z a-z 0-9 _ ->`. The error never quotes it.
    pub fn parse(token: &str) -> Result<BotToken, String> {
        match token_user_id(token) {
            Some(user_id) => Ok(BotToken { secret: SecretString::from(token.to_owned()), user_id }),
            None => Err("malformed token: expected <digits>:<at least 20 of A-Z a-z 0-9 _ ->".to_owned()),
        }
    }

    /// The token itself, for the Bot API client only.
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    /// `message` with the token replaced by `<token>`, should any library have put it there.
    pub fn redact(&self, message: String) -> String {
        let token = self.expose();
        if message.contains(token) { message.replace(token, "<token>") } else { message }
    }

    /// The bot's Telegram user id (the digits before the colon).
    pub fn user_id(&self) -> i64 {
        self.user_id
    }
}

/// The user id of a well-formed token: 1-15 digits (a positive number), a colon, then at least 20 of
/// `A-Z a-z 0-9 _ -` (the Bot API's shape, as the emulator checks it too).
fn token_user_id(token: &str) -> Option<i64> {
    let (digits, secret) = token.split_once(':')?;
    let well_formed = (1..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && secret.len() >= 20
        && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let id: i64 = digits.parse().ok()?;
    (well_formed && id > 0).then_some(id)
}

impl PartialEq for BotToken {
    fn eq(&self, other: &BotToken) -> bool {
        self.expose() == other.expose()
    }
}

impl<'de> Deserialize<'de> for BotToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BotToken, D::Error> {
        BotToken::parse(&String::deserialize(deserializer)?).map_err(de::Error::custom)
    }
}

/// A digest of the token, never the token: enough for the config hash to change when the token does.
impl Serialize for BotToken {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{}:{:016x}", self.user_id, schema::fnv1a(self.expose().as_bytes())))
    }
}

impl fmt::Debug for BotToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BotToken({}:***)", self.user_id())
    }
}

/// A configuration problem at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, 0 when the problem concerns the whole file.
    pub line: usize,
    /// 1-based column, 0 when the problem concerns the whole file.
    pub column: usize,
    /// Field path, e.g. `plugins[0].config.welcome_message`; empty for the whole file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What the loader needs to know about plugins: which exist, what they depend on, and whether a `config:` block
/// fits the plugin's schema.
pub trait PluginCatalog {
    /// The dependencies of the plugin with this name, or `None` when there is no such plugin.
    fn dependencies(&self, name: &str) -> Option<Vec<String>>;

    /// Checks a `config:` block; on failure returns the path inside the block (e.g. `commands[1].command`,
    /// empty for the block itself) and the message.
    fn check_config(&self, name: &str, config: &serde_json::Value) -> Result<(), (String, String)>;
}

#[cfg(test)]
mod tests {
    use std::{fs, path::Path};

    use super::*;

    #[test]
    fn tokens_have_the_bot_api_shape() {
        let secret = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
        assert_eq!(BotToken::parse(&format!("123456789:{secret}")).map(|t| t.user_id()), Ok(123_456_789));
        assert_eq!(BotToken::parse("1:abcdefghij_-KLMNOPQR").map(|t| t.user_id()), Ok(1));
        for bad in [
            format!(":{secret}"),
            format!("0:{secret}"),
            format!("1234567890123456:{secret}"),
            format!("12a:{secret}"),
            "123:short-secret".to_owned(),
            format!("123:{secret}!"),
            format!("123{secret}"),
            format!("-5:{secret}"),
        ] {
            let error = BotToken::parse(&bad).map(|t| t.user_id()).expect_err(&bad);
            assert!(!error.contains(secret), "{error}");
        }
    }

    /// The emulator is a test tool: of the product, only the `emulator` and `demo` subcommands may use it.
    #[test]
    fn only_the_emulator_and_demo_subcommands_use_the_emulator_crate() {
        fn visit(dir: &Path, found: &mut Vec<String>) {
            for entry in fs::read_dir(dir).expect("read src") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    visit(&path, found);
                } else if fs::read_to_string(&path).expect("read file").contains(concat!("botapi", "_emulator")) {
                    found.push(path.strip_prefix(env!("CARGO_MANIFEST_DIR")).expect("inside").display().to_string());
                }
            }
        }
        let mut found = Vec::new();
        visit(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut found);
        found.sort();
        assert_eq!(found, ["src/cli.rs", "src/demo.rs"]);
    }
}
