//! A Telegram Bot API emulator that runs on loopback. Bots talk to it exactly as to `api.telegram.org`
//! (`/bot<TOKEN>/<method>`); tests and demos drive it through a JSON control API (`/control/...`) and the
//! [`Control`] client: act as users, read what bots sent, wait for replies, inject faults.
//!
//! # Layout
//! - [`Emulator`], [`EmulatorConfig`]: start one in-process on a port of your choice (0 in tests).
//! - `api`: the Bot API methods and the file endpoint; `webhook`: pushing updates to webhooks.
//! - `control`: the control API routes, one submodule per topic (messages, files, members, channels, queries,
//!   polls, business, faults); [`client`]: a Rust client for them ([`Control`], [`TestBot`], [`TestUser`]).
//! - `world`: the emulated state (bots, files, what queries and memberships left behind); `params`: call
//!   parameters in every encoding; `entities`: `parse_mode`.
//! - [`types`]: the Bot API objects and control API records.
//! - `playground`: a chat view in the browser at `/playground`, a client of the control API.

mod api;
pub mod cli;
pub mod client;
mod control;
mod entities;
mod error;
mod params;
mod playground;
mod server;
pub mod types;
mod webhook;
mod world;

use std::{
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

pub use api::METHODS;
pub use client::{Control, FaultSpec, Queued, SharedChat, TestBot, TestChannel, TestUser, UserFile};
pub use error::ApiError;
pub use server::MAX_STREAMS;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
pub use world::{UPDATE_TYPES, parse_token};

/// How an emulator behaves.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Accept any well-formed token as a new bot instead of answering 401 to unregistered ones.
    pub accept_any_token: bool,
    /// Simulate Telegram's flood limits (429 with `retry_after`).
    pub flood: bool,
    /// Largest request body accepted; larger ones get 413.
    pub body_limit: usize,
    /// Largest file one upload may carry (Telegram's limit for bots is 50 MB); larger ones get 413.
    pub file_limit: usize,
    /// Largest total of stored file bytes; an upload that would go over it gets 413.
    pub storage_limit: usize,
    /// Largest file `getFile` serves (Telegram's limit for bots is 20 MB); larger ones get 400.
    pub download_limit: usize,
    /// First pause after a failed webhook delivery; it doubles per failure.
    pub webhook_retry_base: Duration,
    /// Longest pause between webhook delivery attempts.
    pub webhook_retry_max: Duration,
    /// How long a webhook may take to answer.
    pub webhook_timeout: Duration,
    /// Messages kept per chat (older ones are forgotten).
    pub history_limit: usize,
    /// Events kept per bot for the control API.
    pub event_capacity: usize,
    /// Calls kept in the call log (0 turns it off).
    pub call_log_capacity: usize,
    /// Answer 404 to a method name not spelled exactly as the Bot API does (`sendMessage`, not `SendMessage`),
    /// as case-sensitive gateways and proxies do; Telegram itself ignores case.
    pub strict_method_names: bool,
}

impl Default for EmulatorConfig {
    fn default() -> EmulatorConfig {
        EmulatorConfig {
            accept_any_token: false,
            flood: false,
            body_limit: 50 * 1024 * 1024,
            file_limit: 50 * 1024 * 1024,
            storage_limit: 1024 * 1024 * 1024,
            download_limit: 20 * 1024 * 1024,
            webhook_retry_base: Duration::from_secs(1),
            webhook_retry_max: Duration::from_secs(60),
            webhook_timeout: Duration::from_secs(30),
            history_limit: 1_000,
            event_capacity: 10_000,
            call_log_capacity: 100_000,
            strict_method_names: false,
        }
    }
}

/// A running emulator; dropping it stops the server.
pub struct Emulator {
    addr: SocketAddr,
    control: Control,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Binds `127.0.0.1` on a free port and starts serving.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        Ok(Emulator::serve(listener, config, CancellationToken::new()))
    }

    /// Serves on `listener` until `shutdown` is cancelled (or the handle is dropped).
    pub fn serve(listener: TcpListener, config: EmulatorConfig, shutdown: CancellationToken) -> Emulator {
        let addr = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let world = Arc::new(world::World::new(config, shutdown.clone()));
        let router = server::router(world);
        let task = tokio::spawn(server::serve(listener, router, shutdown.clone()));
        let control = Control::new(format!("http://{addr}"));
        Emulator { addr, control, shutdown, task: Some(task) }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL bots use instead of `https://api.telegram.org`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The playground's address: a chat view in the browser for talking to the emulator's bots as any user.
    pub fn playground_url(&self) -> String {
        let mut addr = self.addr;
        // A server on every interface is reached on loopback.
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() { Ipv4Addr::LOCALHOST.into() } else { Ipv6Addr::LOCALHOST.into() });
        }
        format!("http://{addr}/playground")
    }

    /// The control API client.
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// Registers a bot (see [`Control::bot`]).
    pub async fn bot(&self, token: &str) -> anyhow::Result<TestBot> {
        self.control.bot(token).await
    }

    /// A user handle (see [`Control::user`]).
    pub fn user(&self, id: i64) -> TestUser {
        self.control.user(id)
    }

    /// Stops serving and waits for the server task to end.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
