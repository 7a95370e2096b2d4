//! Multibot runs many Telegram bots in one process. Each bot is described by a YAML file and composed of
//! plugins; the fleet is controlled at runtime.
//!
//! # Layout
//! - [`admin`]: the admin bot's plugin: the fleet controlled from Telegram.
//! - [`app`]: [`app::Application`] wires everything and runs until stopped.
//! - [`config`]: environment settings and bot YAML, validated with file, line and field.
//! - [`bots`]: the [`bots::BotManager`], running bots, the polling source, per-chat ordering.
//! - [`plugins`]: the [`plugins::Plugin`] trait, the router, the registry, the built-in plugins and script
//!   plugins (sandboxed Luau, [`plugins::script`]).
//! - [`fsm`]: conversation state storage.
//! - [`outcomes`]: typed outcomes shared by layers ([`outcomes::ReloadOutcome`]).
//! - [`http`]: health probes, Prometheus metrics and the webhook endpoint.
//! - [`storage`]: PostgreSQL or SQLite, migrations, the repositories, the background [`storage::Recorder`] and
//!   the audit events.
//! - [`middleware`]: the update pipeline, one ordered list of steps run before the router
//!   ([`middleware::Pipeline`]): user tracking, access control, per-user rate limiting.
//! - [`telemetry`]: logging setup and metrics.
//! - [`tls`]: which certificates are trusted, and connection errors that name their cause.
//! - [`cli`], [`demo`], [`signals`]: the command line, the self-contained demo, process signals.

pub mod admin;
pub mod app;
pub mod bots;
pub mod cli;
pub mod config;
pub mod demo;
pub mod fsm;
pub mod http;
pub mod middleware;
pub mod outcomes;
pub mod plugins;
pub mod signals;
pub mod storage;
pub mod telemetry;
pub mod tls;

/// What a plugin author needs, in one import.
pub mod prelude {
    pub use async_trait::async_trait;
    pub use serde::Deserialize;
    pub use teloxide_core::types::{ChatId, InlineKeyboardButton, InlineKeyboardMarkup, ParseMode};

    pub use crate::plugins::{
        CallbackFilter, ChatType, ContentType, Ctx, HandlerError, Handlers, MessageFilter, Plugin, PluginContext,
        PluginMeta,
    };
}
