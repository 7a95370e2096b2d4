//! The bot YAML schema, written once: [`BotConfig`] and its parts are derived serde types. The loader
//! deserializes a file into them (so the field names, their order in messages, the defaults and the refusal of
//! unknown keys all come from here), the config hash is their serialization, and the admin bot is one value of
//! them ([`BotConfig::new`]).
//!
//! # Adding a YAML key
//! Add the field to its struct below with its `///` line, and `#[serde(default)]` unless it is required (the
//! default goes in the struct's `Default`, or a `default = "..."` function). That is the one edit: the loader
//! reads it, substitutes `${VAR}` in it, reports a mistyped value and an unknown or misspelt key with file, line,
//! column and field path (the list of expected keys comes from the struct), and the config hash covers it.
//! For example, a `settings.protect_content` flag is this and nothing more:
//!
//! ```text
//! /// `protect_content`: forwarding and saving of what the bot sends are blocked.
//! pub protect_content: bool,
//! ```
//!
//! A value with a rule beyond its type (a range, a shape, a required field) also gets that rule in
//! `validate.rs`: one line in `rule` or `required`.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, de};

use super::{BotId, BotToken, HttpAllow};

/// How a bot receives updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// getUpdates long polling.
    #[default]
    Polling,
    /// Telegram pushes to our webhook server.
    Webhook,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Polling => "polling",
            Mode::Webhook => "webhook",
        })
    }
}

/// `webhook:` in the bot YAML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Path suffix after `/webhook`; `/<bot_id>` when not given.
    pub path: Option<String>,
    /// `max_connections` passed to setWebhook (1-100, default 40).
    pub max_connections: u32,
}

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        WebhookConfig { path: None, max_connections: 40 }
    }
}

/// `settings:` in the bot YAML: defaults for everything the bot sends.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BotSettings {
    /// `parse_mode` (`HTML`, `MarkdownV2`, `Markdown`).
    pub parse_mode: Option<String>,
    /// `disable_web_page_preview`.
    pub disable_web_page_preview: bool,
    /// `handler_timeout`: seconds one handler of this bot may run (0: no limit); unset, `HANDLER_TIMEOUT`.
    /// Left out of the serialization when unset, so that configs written before it keep their hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handler_timeout: Option<u64>,
}

/// One entry of `plugins:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginEntry {
    /// The plugin's name in the registry.
    pub name: String,
    /// `enabled: false` skips it.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Its `config:` block (an empty object when absent), after `${VAR}` substitution.
    #[serde(default = "empty_object", deserialize_with = "object")]
    pub config: serde_json::Value,
    /// `http:`: the hosts a script plugin may reach (`http.allow`). Left out of the serialization when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpAllow>,
}

impl PluginEntry {
    /// An enabled entry for `name` with an empty `config:`.
    pub fn new(name: &str) -> PluginEntry {
        PluginEntry { name: name.to_owned(), enabled: yes(), config: empty_object(), http: None }
    }
}

/// `access:` in the bot YAML.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// Empty allows everyone.
    #[serde(deserialize_with = "user_ids")]
    pub allowed_users: Vec<i64>,
    /// Their updates are dropped.
    #[serde(deserialize_with = "user_ids")]
    pub blocked_users: Vec<i64>,
    /// Bot-level admins.
    #[serde(deserialize_with = "user_ids")]
    pub admin_users: Vec<i64>,
}

/// `rate_limiting:` in the bot YAML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Off unless enabled.
    pub enabled: bool,
    /// Requests per minute per user.
    pub default_rate: u32,
    /// Bucket size.
    pub burst_size: u32,
}

impl Default for RateLimitConfig {
    fn default() -> RateLimitConfig {
        RateLimitConfig { enabled: false, default_rate: 30, burst_size: 10 }
    }
}

/// `fsm_strategy:` in the bot YAML: what a conversation's state is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FsmStrategy {
    /// One state per user across all chats.
    #[serde(rename = "GLOBAL_USER")]
    GlobalUser,
    /// One state per user in each chat (the default).
    #[default]
    #[serde(rename = "USER_IN_CHAT")]
    UserInChat,
    /// One state per chat, shared by its users.
    #[serde(rename = "CHAT")]
    Chat,
}

/// One bot's validated configuration: a bot YAML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotConfig {
    /// `id` (required).
    pub id: BotId,
    /// `name` (required).
    pub name: String,
    /// `description`.
    #[serde(default)]
    pub description: Option<String>,
    /// `token` (required), after `${VAR}` substitution.
    pub token: BotToken,
    /// `enabled` (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `mode` (default polling).
    #[serde(default)]
    pub mode: Mode,
    /// `webhook`.
    #[serde(default)]
    pub webhook: WebhookConfig,
    /// `settings`.
    #[serde(default)]
    pub settings: BotSettings,
    /// `plugins`, in YAML order.
    #[serde(default)]
    pub plugins: Vec<PluginEntry>,
    /// `access`.
    #[serde(default)]
    pub access: AccessConfig,
    /// `rate_limiting`.
    #[serde(default)]
    pub rate_limiting: RateLimitConfig,
    /// `fsm_strategy` (default `USER_IN_CHAT`).
    #[serde(default)]
    pub fsm_strategy: FsmStrategy,
    /// The file it came from.
    #[serde(skip)]
    pub file: PathBuf,
    /// A hash of every other field (the token as a digest), to tell whether a reload changes anything.
    #[serde(skip)]
    pub hash: String,
}

impl BotConfig {
    /// A bot with the required fields and every other one at its YAML default, hashed; `file` is empty.
    pub fn new(id: BotId, name: String, token: BotToken) -> BotConfig {
        BotConfig {
            id,
            name,
            description: None,
            token,
            enabled: yes(),
            mode: Mode::default(),
            webhook: WebhookConfig::default(),
            settings: BotSettings::default(),
            plugins: Vec::new(),
            access: AccessConfig::default(),
            rate_limiting: RateLimitConfig::default(),
            fsm_strategy: FsmStrategy::default(),
            file: PathBuf::new(),
            hash: String::new(),
        }
        .hashed()
    }

    /// The same config with its `hash` computed from its fields.
    pub fn hashed(mut self) -> BotConfig {
        self.hash = fingerprint(&self);
        self
    }
}

/// The hash of a config's canonical serialization (fields in declaration order, plugin config keys sorted,
/// the token as a digest), 16 hex digits: equal content gives an equal hash, in every run.
fn fingerprint(config: &BotConfig) -> String {
    // Serializing plain data to JSON cannot fail; an empty rendering would still hash.
    let canonical = serde_json::to_string(config).unwrap_or_default();
    format!("{:016x}", fnv1a(canonical.as_bytes()))
}

/// FNV-1a, 64 bits: a stable hash with no dependency.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The default of `enabled` fields.
fn yes() -> bool {
    true
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// A plugin's `config:` block: a mapping.
fn object<'de, D: Deserializer<'de>>(deserializer: D) -> Result<serde_json::Value, D::Error> {
    serde_json::Map::deserialize(deserializer).map(serde_json::Value::Object)
}

/// A list of Telegram user ids.
fn user_ids<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<i64>, D::Error> {
    struct UserIds;
    impl<'de> de::Visitor<'de> for UserIds {
        type Value = Vec<i64>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a sequence of user ids")
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<i64>, A::Error> {
            let mut ids = Vec::new();
            while let Some(id) = seq.next_element()? {
                ids.push(id);
            }
            Ok(ids)
        }
    }
    deserializer.deserialize_seq(UserIds)
}
