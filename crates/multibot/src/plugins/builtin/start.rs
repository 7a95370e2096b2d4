//! `start`: answers `/start` with a welcome message.

use std::sync::Arc;

use serde::Deserialize;

use crate::plugins::{Ctx, Handlers};

/// `config:` of the `start` plugin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartConfig {
    /// The text `/start` answers with.
    #[serde(default = "default_welcome")]
    pub welcome_message: String,
}

fn default_welcome() -> String {
    "Welcome! Use /help to see what I can do.".to_owned()
}

builtin_plugin! {
    Start { config: StartConfig }, "start", "Greets users on /start with a configurable welcome message";

    fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
        handlers.command("start", "Start the bot", Start::start);
    }
}

impl Start {
    async fn start(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        cx.reply(self.config.welcome_message.clone()).await?;
        Ok(())
    }
}
