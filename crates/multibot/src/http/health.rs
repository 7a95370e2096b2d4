//! Health probes: `/health/live` (the process answers), `/health/ready` (start-up done and the database
//! answers; 503 with a reason otherwise) and `/health/full` (version, uptime, database, Redis, memory and every
//! bot's status, `degraded` when a bot failed or cannot work through the Bot API). [`DatabaseProbe`] is how they
//! ask the database and Redis; [`NoDatabase`] when none is configured. [`ProbeCache`] keeps each answer for
//! a second, and lets one check run at a time, so that a flood of probes asks the database once a second.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{HttpState, Phase};
use crate::{fleet::BotState, fsm::RedisFsm, storage::Storage, telemetry::metrics::resident_memory_bytes};

/// How long a database check may take before it counts as down.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a check's answer is reused.
const PROBE_CACHE: Duration = Duration::from_secs(1);

/// The last answers of the database and Redis checks, with when they were asked.
#[derive(Default)]
pub struct ProbeCache {
    database: Mutex<Option<(Instant, Database)>>,
    redis: Mutex<Option<(Instant, Database)>>,
}

/// Checks that a backing service (the database, Redis) answers.
#[async_trait]
pub trait DatabaseProbe: Send + Sync {
    /// Whether a database is configured at all; without one the checks pass and report `not_configured`.
    fn configured(&self) -> bool;

    /// Runs a trivial query. The error is shown by the health routes: it must not contain a password.
    async fn ping(&self) -> anyhow::Result<()>;
}

/// No database configured: always reachable.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoDatabase;

#[async_trait]
impl DatabaseProbe for NoDatabase {
    fn configured(&self) -> bool {
        false
    }

    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The application's database: a query that must answer.
#[async_trait]
impl DatabaseProbe for Storage {
    fn configured(&self) -> bool {
        true
    }

    async fn ping(&self) -> anyhow::Result<()> {
        Storage::ping(self).await.map(drop).map_err(Into::into)
    }
}

/// Redis, where FSM state lives when `FSM_STORAGE=redis`.
#[async_trait]
impl DatabaseProbe for RedisFsm {
    fn configured(&self) -> bool {
        true
    }

    async fn ping(&self) -> anyhow::Result<()> {
        RedisFsm::ping(self).await
    }
}

/// What a database check found.
#[derive(Clone)]
enum Database {
    NotConfigured,
    Up { latency: Duration },
    Down { latency: Duration, error: String },
}

async fn check_database(state: &HttpState) -> Database {
    cached(&state.probes.database, &*state.database).await
}

/// The last answer of `probe` when it is recent, else a new one. The lock is held across the check on purpose:
/// probes that arrive meanwhile wait for its answer instead of asking again.
async fn cached(last: &Mutex<Option<(Instant, Database)>>, probe: &dyn DatabaseProbe) -> Database {
    let mut last = last.lock().await;
    if let Some((asked, answer)) = &*last
        && asked.elapsed() < PROBE_CACHE
    {
        return answer.clone();
    }
    let answer = check(probe).await;
    *last = Some((Instant::now(), answer.clone()));
    answer
}

async fn check(probe: &dyn DatabaseProbe) -> Database {
    if !probe.configured() {
        return Database::NotConfigured;
    }
    let started = Instant::now();
    match tokio::time::timeout(DATABASE_TIMEOUT, probe.ping()).await {
        Ok(Ok(())) => Database::Up { latency: started.elapsed() },
        Ok(Err(e)) => Database::Down { latency: started.elapsed(), error: format!("{e:#}") },
        Err(_) => Database::Down {
            latency: started.elapsed(),
            error: format!("no answer within {} s", DATABASE_TIMEOUT.as_secs()),
        },
    }
}

fn not_ready(reason: String) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not_ready", "reason": reason}))).into_response()
}

/// `GET /health/live`: 200 while the process runs.
pub(super) async fn live() -> Json<Value> {
    Json(json!({"status": "alive"}))
}

/// `GET /health/ready`: 200 once start-up is done and the database answers; 503 with a reason otherwise.
/// Failed and degraded bots do not make it 503: an orchestrator would restart the process or take it out of
/// service, which cannot fix a rejected token, an unreachable Bot API or another process polling the same
/// token, and would stop every healthy bot. `/health/full`, the metrics and the admin bot report those.
pub(super) async fn ready(State(state): State<HttpState>) -> Response {
    match state.readiness.phase() {
        Phase::Starting => return not_ready("starting".to_owned()),
        Phase::ShuttingDown => return not_ready("shutting down".to_owned()),
        Phase::Ready => {}
    }
    match check_database(&state).await {
        Database::Down { error, .. } => not_ready(format!("database unreachable: {error}")),
        Database::NotConfigured | Database::Up { .. } => Json(json!({"status": "ready"})).into_response(),
    }
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// `GET /health/full`: everything an operator looks at first, as JSON (always 200; `status` says how it is).
pub(super) async fn full(State(state): State<HttpState>) -> Json<Value> {
    let (database, redis) = match &state.redis {
        Some(redis) => {
            let (database, redis) = tokio::join!(check_database(&state), cached(&state.probes.redis, &**redis));
            (database, Some(redis))
        }
        None => (check_database(&state).await, None),
    };
    let statuses = state.manager.status();
    let failed = statuses.iter().any(|s| matches!(s.state, BotState::Failed | BotState::Degraded));
    let phase = state.readiness.phase();
    let status = match (&phase, &database) {
        (Phase::Starting, _) => "starting",
        (Phase::ShuttingDown, _) => "shutting_down",
        (Phase::Ready, Database::Down { .. }) => "degraded",
        (Phase::Ready, _) if matches!(redis, Some(Database::Down { .. })) => "degraded",
        (Phase::Ready, _) if failed => "degraded",
        (Phase::Ready, _) => "ok",
    };
    let shown = |check: Database| match check {
        Database::NotConfigured => json!({"status": "not_configured"}),
        Database::Up { latency } => json!({"status": "ok", "latency_ms": millis(latency)}),
        Database::Down { latency, error } => json!({"status": "down", "latency_ms": millis(latency), "error": error}),
    };
    let database = shown(database);
    let redis = redis.map(shown);
    let bots: Vec<Value> = statuses
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "name": s.name,
                "state": s.state,
                "mode": s.mode,
                "reason": s.reason,
                "trouble": s.trouble,
                "uptime_seconds": s.uptime.map(|u| u.as_secs()),
                "plugins": s.plugins,
                "updates_handled": s.updates_handled,
                "errors": s.errors,
                "last_error": s.last_error,
                "pending_updates": s.pending_updates,
                "oldest_pending_seconds": s.oldest_pending.map(|age| millis(age) / 1e3),
            })
        })
        .collect();
    Json(json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started_at.elapsed().as_secs(),
        "database": database,
        // `null` unless FSM state lives in Redis.
        "redis": redis,
        "memory": {"rss_bytes": resident_memory_bytes()},
        // `null` unless REPLICA_ID is set.
        "replica": state.manager.replica(),
        "bots": bots,
    }))
}
