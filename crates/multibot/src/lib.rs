#![warn(missing_docs)]

//! Multibot runs many Telegram bots in one process. Each bot is described by a YAML file and composed of
//! plugins; the fleet is controlled at runtime.
//!
//! # Layers
//! Each module imports only from the layers below it (`tests/app/layers.rs` checks it; `docs/ARCHITECTURE.md`
//! tells the path of one update through them), from the bottom up:
//! - [`outcomes`], [`tls`]: typed outcomes shared by layers; which certificates are trusted.
//! - [`config`]: environment settings and bot YAML, validated with file, line and field.
//! - [`telemetry`]: logging setup and metrics.
//! - [`telegram`]: the Bot API client, lenient update decoding, flood control.
//! - [`storage`], [`fsm`]: PostgreSQL or SQLite, migrations, repositories, audit events; conversation state.
//! - [`plugins`]: the [`plugins::Plugin`] contract, the router, [`plugins::Ctx`] over a narrow
//!   [`plugins::BotHandle`], the registry, the built-in plugins and sandboxed Luau scripts.
//! - [`runtime`]: one running bot: polling or webhook intake, per-chat ordering, the middleware pipeline.
//! - [`fleet`]: the [`fleet::BotManager`], hot reload, the admin bot and broadcasts.
//! - [`http`]: health probes, Prometheus metrics and the webhook endpoint.
//! - [`app`], [`cli`], `demo`, [`signals`]: wiring, the command line, the self-contained demo (with the default
//!   `emulator` feature, as the `emulator` subcommand), process signals.
//!
//! # A plugin
//! A plugin is a config type plus a build step: [`plugins::Plugin::new`] receives the bot's `config:` block,
//! deserialized, and [`plugins::Plugin::setup_handlers`] registers what the plugin answers. Add it to a
//! [`plugins::PluginRegistry`], give the registry to [`app::Application::build`], and bots can name it in their YAML
//! (`plugins: [{ name: greeter, config: { greeting: Hi } }]`).
//!
//! ```rust
//! use std::sync::Arc;
//!
//! use multibot::{plugins::PluginRegistry, prelude::*};
//!
//! /// `config:` of the `greeter` plugin.
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct GreeterConfig {
//!     /// What `/greet` says before the user's name.
//!     #[serde(default = "hello")]
//!     greeting: String,
//! }
//!
//! fn hello() -> String {
//!     "Hello".to_owned()
//! }
//!
//! /// `/greet` answers with the configured greeting and the user's first name.
//! struct Greeter {
//!     greeting: String,
//! }
//!
//! impl Plugin for Greeter {
//!     type Config = GreeterConfig;
//!
//!     fn meta() -> PluginMeta {
//!         PluginMeta::new("greeter").description("Greets the user")
//!     }
//!
//!     fn new(config: GreeterConfig, _cx: &PluginContext) -> anyhow::Result<Greeter> {
//!         Ok(Greeter { greeting: config.greeting })
//!     }
//!
//!     fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
//!         handlers.command("greet", "Say hello", Greeter::greet);
//!     }
//! }
//!
//! impl Greeter {
//!     async fn greet(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
//!         let name = cx.user().map_or("there", |user| user.first_name.as_str());
//!         cx.reply(format!("{}, {name}!", self.greeting)).await?;
//!         Ok(())
//!     }
//! }
//!
//! let mut registry = PluginRegistry::builtin();
//! registry.register::<Greeter>();
//! let greeter = registry.get("greeter").expect("just registered");
//! assert_eq!(greeter.meta().description, "Greets the user");
//! // Bot files are checked against `GreeterConfig` when they load: a misspelt key is an error that names it.
//! let typo = greeter.check_config(&serde_json::json!({ "greting": "Hi" })).unwrap_err();
//! assert!(typo.message.contains("unknown field `greting`"), "{typo}");
//! ```
//!
//! More examples, each compiled as a doctest: [`plugins::Plugin`] (a command, a callback, and a plugin built in a
//! test), [`plugins::Handlers`] (every kind of route), [`plugins::Ctx`] (a reply with a keyboard),
//! [`plugins::Ctx::fsm`] (a conversation), [`plugins::PluginContext::store`] (values that outlive restarts),
//! [`app::Application::build`] (a program that runs the fleet), [`fleet::BotManager`] (status) and
//! [`telegram::BotApi`] (the Bot API on its own).

pub mod app;
pub mod cli;
pub mod config;
#[cfg(feature = "emulator")]
pub mod demo;
pub mod fleet;
pub mod fsm;
#[cfg(test)]
mod fuzz;
pub mod http;
pub mod outcomes;
pub mod plugins;
pub mod runtime;
pub mod signals;
pub mod storage;
pub mod telegram;
pub mod telemetry;
#[cfg(test)]
mod testing;
pub mod tls;

/// What a plugin author needs, in one import.
pub mod prelude {
    pub use async_trait::async_trait;
    pub use serde::Deserialize;
    pub use teloxide_core::types::{ChatId, ChatMemberStatus, InlineKeyboardButton, InlineKeyboardMarkup, ParseMode};

    pub use crate::plugins::{
        CallbackFilter, ChatType, ContentType, Ctx, HandlerError, Handlers, MemberFilter, MessageFilter, PayloadFilter,
        Plugin, PluginContext, PluginMeta, QueryFilter, ReactionFilter, UpdateFilter,
    };
    pub use crate::telegram::{FileKind, FileOptions, InputFile};
}
