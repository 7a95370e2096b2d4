//! `GET /metrics`: the Prometheus text exposition of every metric (see [`crate::telemetry::metrics`]), with the
//! bots-by-state, pending-update, replica and memory gauges refreshed at each scrape. With replicas each replica
//! counts the bots it holds, and the first replica alive (by id) the disabled ones, so that sums over replicas
//! count each bot once.

use axum::{extract::State, http::header, response::IntoResponse};

use super::HttpState;
use crate::{fleet::BotState, telemetry::metrics};

/// The content type of Prometheus's text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Refreshes the gauges read at scrape time and renders everything.
pub(super) async fn render(State(state): State<HttpState>) -> impl IntoResponse {
    let mut counts = [("running", 0), ("stopped", 0), ("disabled", 0), ("failed", 0), ("degraded", 0)];
    let replica = state.manager.replica();
    let ours = |status: &crate::fleet::BotStatus| match &replica {
        None => true,
        Some(r) if status.state == BotState::Disabled => r.alive.first() == Some(&r.id),
        Some(r) => r.leases.contains_key(status.id.as_str()),
    };
    if let Some(r) = &replica {
        metrics::replica(r.leases.len(), r.alive.len(), r.fresh);
    }
    for status in state.manager.status().into_iter().filter(ours) {
        let index = match status.state {
            BotState::Running => 0,
            BotState::Stopped => 1,
            BotState::Disabled => 2,
            BotState::Failed => 3,
            BotState::Degraded => 4,
        };
        counts[index].1 += 1;
        metrics::updates_pending(status.id.as_str(), status.pending_updates, status.oldest_pending);
    }
    metrics::bots_by_state(&counts);
    if let Some(bytes) = metrics::resident_memory_bytes() {
        metrics::resident_memory(bytes);
    }
    state.metrics.run_upkeep();
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], state.metrics.render())
}
