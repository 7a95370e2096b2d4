//! `echo`: `/echo <text>` repeats the text; with `echo_all: true` every text message is echoed.

use std::sync::Arc;

use serde::Deserialize;

use crate::plugins::{Ctx, Handlers, MessageFilter};

/// `config:` of the `echo` plugin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoConfig {
    /// Echo every text message, not only `/echo`.
    #[serde(default)]
    pub echo_all: bool,
}

builtin_plugin! {
    Echo { config: EchoConfig }, "echo", "Echoes user messages back";

    fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
        handlers.command("echo", "Repeat your text", Echo::echo);
        if self.config.echo_all {
            handlers.message(MessageFilter::text(), Echo::echo_all);
        }
    }
}

impl Echo {
    async fn echo(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        match cx.command_args() {
            "" => cx.reply("Usage: /echo <text>").plain().await?,
            text => cx.reply(text).plain().await?,
        };
        Ok(())
    }

    async fn echo_all(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        if let Some(text) = cx.text() {
            cx.reply(format!("You said: {text}")).plain().await?;
        }
        Ok(())
    }
}
