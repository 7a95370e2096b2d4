//! Why a bot could not start or a manager operation did nothing, as types a caller branches on:
//! [`CallFailure`] (a failed Bot API call), [`StartError`] and [`ManagerError`]. Each shows as the words the logs,
//! events and the admin bot have always used, and none holds a token.

use super::{ApiCallError, webhook::WebhookError};
use crate::config::{BotId, BotToken};

/// A failed Bot API call, in the words for logs and status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    /// Telegram answered 401: the token is wrong or revoked.
    #[error("token rejected by Telegram (401 Unauthorized)")]
    TokenRejected,
    /// Telegram answered with another error.
    #[error("Telegram answered: {0}")]
    Refused(String),
    /// The Bot API could not be reached.
    #[error("cannot reach the Bot API: {0}")]
    Unreachable(String),
    /// The Bot API answered something that is not a Bot API answer.
    #[error("unexpected answer from the Bot API: {0}")]
    BadAnswer(String),
}

impl CallFailure {
    /// Classifies `error`, the bot's `token` removed from what it says.
    pub fn of(error: &ApiCallError, token: &BotToken) -> CallFailure {
        let redact = |text: String| token.redact(text);
        match error {
            ApiCallError::Api { code: 401, .. } => CallFailure::TokenRejected,
            ApiCallError::Api { .. } => CallFailure::Refused(redact(error.to_string())),
            ApiCallError::Network(e) => CallFailure::Unreachable(redact(e.clone())),
            ApiCallError::Decode(e) => CallFailure::BadAnswer(redact(e.clone())),
        }
    }
}

/// Why a bot did not start (or a new configuration could not replace the running one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// A webhook bot, but the webhook server does not run.
    #[error("webhook mode needs the webhook server (WEBHOOK_ENABLED)")]
    NoWebhookServer,
    /// getMe failed: the token is rejected, the Bot API unreachable, ...
    #[error(transparent)]
    GetMe(CallFailure),
    /// A polling bot could not take its webhook down.
    #[error("deleteWebhook failed: {0}")]
    DeleteWebhook(CallFailure),
    /// A plugin's build step or `on_load` failed.
    #[error("plugin {plugin} failed to load: {error}")]
    PluginFailed {
        /// The plugin's name.
        plugin: String,
        /// What went wrong, without the token.
        error: String,
    },
    /// The webhook could not be set up.
    #[error(transparent)]
    Webhook(#[from] WebhookError),
}

/// Why a manager operation did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManagerError {
    /// No bot with this id is configured.
    #[error("no bot {0}")]
    Unknown(BotId),
    /// The bot could not start.
    #[error("bot {0} failed to start: {1}")]
    StartFailed(BotId, StartError),
}
