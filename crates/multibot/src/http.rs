//! The HTTP servers (axum): health probes, Prometheus metrics and the webhook endpoint, all routes of one
//! [`router`] over an [`HttpState`] so tests can send it requests without a socket. [`serve`] runs a router on a
//! bound listener until a shutdown token is cancelled. The application runs the health routes on
//! `HEALTH_CHECK_PORT` and the webhook route on `WEBHOOK_PORT`, or all of them on one listener when the ports
//! are the same.
//!
//! - `health`: `/health/live`, `/health/ready`, `/health/full`; [`DatabaseProbe`], how readiness asks the
//!   database.
//! - `metrics`: `/metrics`.
//! - `webhook`: `POST /webhook/<path>`.

mod health;
mod metrics;
mod webhook;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::Instant,
};

use axum::{
    Router,
    routing::{get, post},
};
pub use health::{DatabaseProbe, NoDatabase};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::bots::{BotManager, webhook::Webhooks};

/// Largest webhook request body accepted; Telegram's updates are a few kilobytes.
pub const MAX_WEBHOOK_BODY: usize = 1024 * 1024;

/// Where the application is in its life, as `/health/ready` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Building: bots are starting.
    Starting,
    /// Start-up is done.
    Ready,
    /// Stopping: bots are draining.
    ShuttingDown,
}

/// The application's [`Phase`], shared with the health routes.
#[derive(Debug)]
pub struct Readiness(AtomicU8);

impl Default for Readiness {
    fn default() -> Readiness {
        Readiness(AtomicU8::new(Phase::Starting as u8))
    }
}

impl Readiness {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.0.load(Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::Ready,
            _ => Phase::ShuttingDown,
        }
    }

    /// Moves to `phase`.
    pub fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Release);
    }
}

/// What the routes read.
#[derive(Clone)]
pub struct HttpState {
    /// The fleet, for status and the bots-by-state gauge.
    pub manager: BotManager,
    /// Start-up and shutdown, for readiness.
    pub readiness: Arc<Readiness>,
    /// How to check the database.
    pub database: Arc<dyn DatabaseProbe>,
    /// The Prometheus recorder's handle.
    pub metrics: PrometheusHandle,
    /// Webhook routes, when webhooks are enabled.
    pub webhooks: Option<Arc<Webhooks>>,
    /// When the process started serving.
    pub started_at: Instant,
}

/// Every route: health, metrics and webhooks.
pub fn router(state: HttpState) -> Router {
    health_router(state.clone()).merge(webhook_router(state))
}

/// `/health/live`, `/health/ready`, `/health/full` and `/metrics`.
pub fn health_router(state: HttpState) -> Router {
    Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/health/full", get(health::full))
        .route("/metrics", get(metrics::render))
        .with_state(state)
}

/// `POST /webhook/<path>`.
pub fn webhook_router(state: HttpState) -> Router {
    Router::new().route("/webhook/{*path}", post(webhook::receive)).with_state(state)
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets requests in progress finish.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await
}
