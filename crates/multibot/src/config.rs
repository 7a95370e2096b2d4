//! Configuration: environment settings ([`Settings`]) and bot YAML files ([`BotConfig`]), with `${VAR}`
//! substitution and validation that reports every problem with file, line, column and field path
//! ([`ConfigError`]).
//!
//! - `settings`: the environment variables, with the spec's defaults.
//! - `yaml`: YAML with positions; `load`: one bot file and a whole directory, checked against the plugin
//!   catalog ([`PluginCatalog`]).
//! - [`watcher`]: debounced file events in `CONFIG_DIR`; [`diff`]: what a reload changes in the fleet.

pub mod diff;
mod load;
mod settings;
pub mod watcher;
mod yaml;

use std::{fmt, path::PathBuf};

pub use load::{LoadedConfig, WebhookEnv, load_dir, parse_bot_file};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
pub use settings::{FsmBackend, LogFormat, Settings, VARIABLES};

/// A bot's identifier from its YAML `id`: 1-64 characters of `a-z`, `0-9`, `_` and `-`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct BotId(String);

impl BotId {
    /// Checks the shape of an id.
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

impl fmt::Display for BotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Telegram bot token, `<digits>:<secret>`; never shown by `Debug` or `Display`.
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

impl fmt::Debug for BotToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BotToken({}:***)", self.user_id())
    }
}

/// How a bot receives updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// getUpdates long polling.
    Polling,
    /// Telegram pushes to our webhook server.
    Webhook,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Polling => "polling",
            Mode::Webhook => "webhook",
        })
    }
}

/// `webhook:` in the bot YAML.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// Path suffix after `/webhook`; `/<bot_id>` when not given.
    pub path: Option<String>,
    /// `max_connections` passed to setWebhook (1-100, default 40).
    pub max_connections: u32,
}

/// `settings:` in the bot YAML: defaults for everything the bot sends.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BotSettings {
    /// `parse_mode` (`HTML`, `MarkdownV2`, `Markdown`).
    pub parse_mode: Option<String>,
    /// `disable_web_page_preview`.
    pub disable_web_page_preview: bool,
}

/// One entry of `plugins:`.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginEntry {
    /// The plugin's name in the registry.
    pub name: String,
    /// `enabled: false` skips it.
    pub enabled: bool,
    /// Its `config:` block (an empty object when absent), after `${VAR}` substitution.
    pub config: serde_json::Value,
}

/// `access:` in the bot YAML.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccessConfig {
    /// Empty allows everyone.
    pub allowed_users: Vec<i64>,
    /// Their updates are dropped.
    pub blocked_users: Vec<i64>,
    /// Bot-level admins.
    pub admin_users: Vec<i64>,
}

/// `rate_limiting:` in the bot YAML.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    /// Off unless enabled.
    pub enabled: bool,
    /// Requests per minute per user.
    pub default_rate: u32,
    /// Bucket size.
    pub burst_size: u32,
}

/// `fsm_strategy:` in the bot YAML: what a conversation's state is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FsmStrategy {
    /// One state per user across all chats.
    #[serde(rename = "GLOBAL_USER")]
    GlobalUser,
    /// One state per user in each chat (the default).
    #[serde(rename = "USER_IN_CHAT")]
    UserInChat,
    /// One state per chat, shared by its users.
    #[serde(rename = "CHAT")]
    Chat,
}

/// One bot's validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct BotConfig {
    /// `id`.
    pub id: BotId,
    /// `name`.
    pub name: String,
    /// `description`.
    pub description: Option<String>,
    /// `token`, after `${VAR}` substitution.
    pub token: BotToken,
    /// `enabled` (default true).
    pub enabled: bool,
    /// `mode` (default polling).
    pub mode: Mode,
    /// `webhook`.
    pub webhook: WebhookConfig,
    /// `settings`.
    pub settings: BotSettings,
    /// `plugins`, in YAML order.
    pub plugins: Vec<PluginEntry>,
    /// `access`.
    pub access: AccessConfig,
    /// `rate_limiting`.
    pub rate_limiting: RateLimitConfig,
    /// `fsm_strategy` (default `USER_IN_CHAT`).
    pub fsm_strategy: FsmStrategy,
    /// The file it came from.
    pub file: PathBuf,
    /// A hash of the file's content after substitution, to tell whether a reload changes anything.
    pub hash: String,
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
