//! `error_handler`: when a handler fails, tells the user (with the error id the log line carries, unless the user
//! blocked the bot) and, if asked, the bot's `access.admin_users`.

use std::sync::Arc;

use serde::Deserialize;
use teloxide_core::types::ChatId;

use crate::plugins::{Ctx, HandlerError, Handlers};

/// `config:` of the `error_handler` plugin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorHandlerConfig {
    /// Show the error id to the user.
    #[serde(default = "yes")]
    pub show_error_id: bool,
    /// Send each error to the bot's admin users.
    #[serde(default)]
    pub notify_admins: bool,
}

fn yes() -> bool {
    true
}

builtin_plugin! {
    ErrorHandler { config: ErrorHandlerConfig }, "error_handler", "Tells users (and optionally admins) when something went wrong";

    fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
        handlers.on_error(ErrorHandler::on_error);
    }
}

impl ErrorHandler {
    async fn on_error(self: Arc<Self>, cx: Ctx, error: HandlerError) -> anyhow::Result<()> {
        let text = if self.config.show_error_id {
            format!("Something went wrong (error id {}). Please try again later.", error.id)
        } else {
            "Something went wrong. Please try again later.".to_owned()
        };
        // A user who blocked the bot (often the very error) gets nothing: it would be one more 403.
        if let Some(chat) = cx.chat_id()
            && !cx.is_blocked(chat)
        {
            cx.reply(text).plain().await?;
        }
        if self.config.notify_admins {
            let report = format!(
                "⚠️ Error in bot {} (plugin {}, error id {}):\n{}",
                cx.bot_id(),
                error.plugin,
                error.id,
                error.message
            );
            cx.notify_admins(report.clone());
            for admin in cx.admin_users() {
                cx.send(ChatId(*admin), report.clone()).plain().await?;
            }
        }
        Ok(())
    }
}
