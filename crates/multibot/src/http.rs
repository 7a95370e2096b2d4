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
//! - `server`: the accept loop and its limits.
//! - `console`: the web console at `/console`, when `CONSOLE_TOKEN` is set.

pub mod console;
mod health;
mod metrics;
mod server;
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
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
pub use health::{DatabaseProbe, NoDatabase, ProbeCache};
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::{ExposeSecret, SecretString};
pub use server::{ServerLimits, serve};
use subtle::ConstantTimeEq;

use crate::{fleet::BotManager, runtime::webhook::Webhooks};

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
    /// How to check Redis, when FSM state lives there.
    pub redis: Option<Arc<dyn DatabaseProbe>>,
    /// The Prometheus recorder's handle.
    pub metrics: PrometheusHandle,
    /// Webhook routes, when webhooks are enabled.
    pub webhooks: Option<Arc<Webhooks>>,
    /// When the process started serving.
    pub started_at: Instant,
    /// `METRICS_TOKEN`: the bearer token `/health/full` and `/metrics` ask for, when set.
    pub metrics_token: Option<SecretString>,
    /// The last answers of the database and Redis, so that a flood of probes does not mean a query each.
    pub probes: Arc<ProbeCache>,
    /// The web console, when `CONSOLE_TOKEN` is set.
    pub console: Option<Arc<console::Console>>,
}

/// Every route: health, metrics and webhooks.
pub fn router(state: HttpState) -> Router {
    health_router(state.clone()).merge(webhook_router(state))
}

/// `/health/live`, `/health/ready`, `/health/full` and `/metrics` (the last two behind `METRICS_TOKEN`), and the
/// console under `/console` when there is one.
pub fn health_router(state: HttpState) -> Router {
    let console = state.console.clone().map(console::router).unwrap_or_default();
    let guarded = Router::new()
        .route("/health/full", get(health::full))
        .route("/metrics", get(metrics::render))
        .route_layer(middleware::from_fn_with_state(state.clone(), bearer));
    Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .merge(guarded)
        .with_state(state)
        .merge(console)
}

/// Lets a request through when no token is configured or it carries `Authorization: Bearer <token>`; 401
/// otherwise. The token is compared in constant time.
async fn bearer(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    let Some(token) = &state.metrics_token else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    if bool::from(presented.ct_eq(token.expose_secret().as_bytes())) {
        return next.run(request).await;
    }
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")]).into_response()
}

/// `POST /webhook/<path>`.
pub fn webhook_router(state: HttpState) -> Router {
    Router::new().route("/webhook/{*path}", post(webhook::receive)).with_state(state)
}

#[cfg(test)]
mod tests {
    use axum::{
        body::{Body, to_bytes},
        http::{Request, StatusCode},
    };
    use serde_json::Value;
    use tokio_util::sync::CancellationToken;
    use tower::ServiceExt;

    use super::*;
    use crate::{
        fsm::MemoryFsm,
        plugins::PluginRegistry,
        runtime::Deps,
        storage::{Recorder, Storage},
    };

    /// A database that refuses every connection.
    struct DownDatabase;

    #[async_trait::async_trait]
    impl DatabaseProbe for DownDatabase {
        fn configured(&self) -> bool {
            true
        }

        async fn ping(&self) -> anyhow::Result<()> {
            anyhow::bail!("connection refused")
        }
    }

    async fn state(database: Arc<dyn DatabaseProbe>) -> HttpState {
        let storage = Storage::in_memory().await.unwrap();
        let deps = Deps {
            settings: Arc::new(crate::config::Settings::defaults()),
            registry: Arc::new(PluginRegistry::builtin()),
            http: crate::telegram::ApiClients::single(reqwest::Client::new()),
            api_url: "http://127.0.0.1:9".parse().unwrap(),
            fsm: Arc::new(MemoryFsm::default()),
            shutdown: CancellationToken::new(),
            webhooks: None,
            recorder: Recorder::spawn(storage.clone(), 16),
            inbox: crate::runtime::InboxWriter::spawn(storage.clone()),
            storage,
            notifier: crate::plugins::Notifier::default(),
            poll_gate: None,
        };
        HttpState {
            manager: BotManager::new(deps),
            readiness: Arc::default(),
            database,
            redis: None,
            metrics: crate::telemetry::metrics::install(),
            webhooks: None,
            started_at: Instant::now(),
            metrics_token: None,
            probes: Arc::default(),
            console: None,
        }
    }

    async fn call(state: &HttpState, method: &str, uri: &str) -> (StatusCode, String) {
        let request = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
        let response = router(state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn json(body: &str) -> Value {
        serde_json::from_str(body).unwrap()
    }

    #[tokio::test]
    async fn ready_reports_start_up_shutdown_and_the_database() {
        let up = state(Arc::new(NoDatabase)).await;
        let (status, body) = call(&up, "GET", "/health/ready").await;
        assert_eq!((status, json(&body)["reason"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("starting")));
        assert_eq!(call(&up, "GET", "/health/live").await.0, StatusCode::OK);
        up.readiness.set(Phase::Ready);
        assert_eq!(call(&up, "GET", "/health/ready").await.0, StatusCode::OK);
        up.readiness.set(Phase::ShuttingDown);
        let (status, body) = call(&up, "GET", "/health/ready").await;
        assert_eq!((status, json(&body)["reason"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("shutting down")));

        // Bad input: the database does not answer.
        let down = state(Arc::new(DownDatabase)).await;
        down.readiness.set(Phase::Ready);
        let (status, body) = call(&down, "GET", "/health/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json(&body)["reason"], "database unreachable: connection refused");
        let (status, body) = call(&down, "GET", "/health/full").await;
        let full = json(&body);
        assert_eq!(status, StatusCode::OK);
        assert_eq!((full["status"].as_str(), full["database"]["status"].as_str()), (Some("degraded"), Some("down")));
        assert!(full["database"]["latency_ms"].is_number());
    }

    /// A database that counts how often it is asked.
    #[derive(Default)]
    struct CountingDatabase(std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl DatabaseProbe for CountingDatabase {
        fn configured(&self) -> bool {
            true
        }

        async fn ping(&self) -> anyhow::Result<()> {
            self.0.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_flood_of_probes_asks_the_database_once() {
        let database = Arc::new(CountingDatabase::default());
        let state = state(database.clone()).await;
        state.readiness.set(Phase::Ready);
        // Bad input: 200 probes at once.
        let answers = futures_util::future::join_all((0..200).map(|_| call(&state, "GET", "/health/ready"))).await;
        assert!(answers.iter().all(|(status, _)| *status == StatusCode::OK));
        assert_eq!(call(&state, "GET", "/health/full").await.0, StatusCode::OK);
        assert_eq!(database.0.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn metrics_token_guards_full_health_and_metrics_only() {
        let mut state = state(Arc::new(NoDatabase)).await;
        state.metrics_token = Some(SecretString::from("s3cret-token"));
        let with = |uri: &str, authorization: Option<&str>| {
            let mut request = Request::builder().uri(uri);
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            router(state.clone()).oneshot(request.body(Body::empty()).unwrap())
        };
        for uri in ["/health/full", "/metrics"] {
            // Bad input: no token, a wrong one, the right one without the scheme.
            for wrong in [None, Some("Bearer nope"), Some("s3cret-token"), Some("Bearer s3cret-tokenX")] {
                let response = with(uri, wrong).await.unwrap();
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{uri} {wrong:?}");
                assert_eq!(response.headers()["www-authenticate"], "Bearer");
            }
            assert_eq!(with(uri, Some("Bearer s3cret-token")).await.unwrap().status(), StatusCode::OK, "{uri}");
        }
        assert_eq!(call(&state, "GET", "/health/live").await.0, StatusCode::OK);
        assert_eq!(call(&state, "GET", "/health/ready").await.0, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn metrics_render_as_text_and_unknown_routes_are_404() {
        let state = state(Arc::new(NoDatabase)).await;
        let request = Request::builder().uri("/metrics").body(Body::empty()).unwrap();
        let response = router(state.clone()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        // Bad input: a webhook path while webhooks are disabled, a route that does not exist, the wrong method.
        assert_eq!(call(&state, "POST", "/webhook/shop").await.0, StatusCode::NOT_FOUND);
        assert_eq!(call(&state, "GET", "/nothing").await.0, StatusCode::NOT_FOUND);
        assert_eq!(call(&state, "POST", "/health/live").await.0, StatusCode::METHOD_NOT_ALLOWED);
    }
}
