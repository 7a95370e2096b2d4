//! `help`: answers `/help` with a header and the commands, from its config or from the bot's plugins, and a
//! command no plugin of the bot handles with a short hint.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, de::Error as _};
use serde_json::Value;

use crate::plugins::{Ctx, Handlers};

/// One line of the help text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelpCommand {
    /// The command, with or without its slash.
    pub command: String,
    /// What it does.
    pub description: String,
}

/// `config:` of the `help` plugin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelpConfig {
    /// First line of the help text.
    #[serde(default = "default_header")]
    pub header: String,
    /// The commands to list; when absent, every command the bot's plugins registered.
    #[serde(default)]
    pub commands: Option<Vec<HelpCommand>>,
    /// The reply to a command no plugin of the bot handles (plain text); `false` turns it off.
    #[serde(default = "default_unknown_command", deserialize_with = "text_or_false")]
    pub unknown_command: Option<String>,
}

fn default_header() -> String {
    "Available Commands".to_owned()
}

fn default_unknown_command() -> Option<String> {
    Some("Unknown command. Use /help to see available commands.".to_owned())
}

fn text_or_false<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(text) if !text.trim().is_empty() => Ok(Some(text)),
        Value::Bool(false) => Ok(None),
        _ => Err(D::Error::custom("expected a text, or false to send nothing")),
    }
}

builtin_plugin! {
    Help { config: HelpConfig }, "help", "Lists the bot's commands on /help";

    fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
        handlers.command("help", "Show help", Help::help);
        if self.config.unknown_command.is_some() {
            handlers.unknown_command(Help::unknown_command);
        }
    }
}

impl Help {
    async fn help(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        let lines: Vec<String> = match &self.config.commands {
            Some(commands) => {
                commands.iter().map(|c| format!("/{} - {}", c.command.trim_start_matches('/'), c.description)).collect()
            }
            None => cx.commands().iter().map(|c| format!("/{} - {}", c.command, c.description)).collect(),
        };
        cx.reply(format!("{}\n\n{}", self.config.header, lines.join("\n"))).await?;
        Ok(())
    }

    async fn unknown_command(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        if let Some(text) = &self.config.unknown_command {
            cx.reply(text.clone()).plain().await?;
        }
        Ok(())
    }
}
