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
//! - [`fleet`]: the [`fleet::BotManager`], hot reload and the admin bot.
//! - [`http`]: health probes, Prometheus metrics and the webhook endpoint.
//! - [`app`], [`cli`], [`demo`], [`signals`]: wiring, the command line, the self-contained demo, process signals.

pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod fleet;
pub mod fsm;
pub mod http;
pub mod outcomes;
pub mod plugins;
pub mod runtime;
pub mod signals;
pub mod storage;
pub mod telegram;
pub mod telemetry;
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
}
