//! [`StartError`]: why a bot could not start, as a type a caller branches on. It shows as the words the logs,
//! events and the admin bot have always used, and holds no token.

use super::webhook::WebhookError;
use crate::telegram::CallFailure;

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
