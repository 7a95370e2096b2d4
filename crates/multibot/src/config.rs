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
pub struct BotToken(SecretString);

impl BotToken {
    /// Checks the shape of a token: `<digits>:<at least 20 of A-Z a-z 0-9 _ ->`. The error never quotes it.
    pub fn parse(token: &str) -> Result<BotToken, String> {
        if botapi_emulator::parse_token(token).is_some() {
            Ok(BotToken(SecretString::from(token.to_owned())))
        } else {
            Err("malformed token: expected <digits>:<at least 20 of A-Z a-z 0-9 _ ->".to_owned())
        }
    }

    /// The token itself, for the Bot API client only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The bot's Telegram user id (the digits before the colon).
    pub fn user_id(&self) -> i64 {
        botapi_emulator::parse_token(self.expose()).unwrap_or_default()
    }
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
