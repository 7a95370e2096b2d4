//! Fault injection through the control API: errors, delays, dropped connections, HTML pages and altered
//! results for the next calls of a method.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::post,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Answer, bad, find};
use crate::{
    api::METHODS,
    error::ApiError,
    world::{Fault, FaultAction, World},
};

/// The routes of this topic.
pub(super) fn routes() -> Router<Arc<World>> {
    Router::new().route("/bots/{bot}/faults", post(add_fault).delete(clear_faults))
}

#[derive(Deserialize)]
struct FaultBody {
    method: String,
    times: Option<u32>,
    error_code: Option<u16>,
    description: Option<String>,
    retry_after: Option<u32>,
    delay_ms: Option<u64>,
    /// `request` (close before processing) or `response` (process, then close without answering).
    drop: Option<String>,
    /// Answer this HTTP status with an HTML page instead of JSON.
    html_error: Option<u16>,
    /// Fields (dot-separated paths) to remove from the result.
    omit: Option<Vec<String>>,
    /// The result to answer with after processing.
    result: Option<Value>,
}

async fn add_fault(State(world): State<Arc<World>>, Path(bot): Path<String>, Json(body): Json<FaultBody>) -> Answer {
    let bot = find(&world, &bot)?;
    let method = if body.method == "*" {
        "*".to_owned()
    } else {
        let known = METHODS.iter().find(|m| m.eq_ignore_ascii_case(&body.method));
        known.ok_or_else(|| bad(format!("unknown method {}", body.method)))?.to_string()
    };
    let chosen = [
        body.error_code.is_some(),
        body.delay_ms.is_some(),
        body.drop.is_some(),
        body.html_error.is_some(),
        body.omit.is_some(),
        body.result.is_some(),
    ];
    if chosen.iter().filter(|b| **b).count() != 1 {
        return Err(bad("give exactly one of error_code, delay_ms, drop, html_error, omit, result"));
    }
    let action = if let Some(code) = body.html_error {
        if !(400..=599).contains(&code) {
            return Err(bad("html_error must be 400-599"));
        }
        FaultAction::HtmlError(code)
    } else if let Some(paths) = body.omit {
        if paths.is_empty() || paths.iter().any(|p| p.split('.').any(str::is_empty)) {
            return Err(bad("omit must list field paths such as \"callback_query.chat_instance\""));
        }
        FaultAction::Omit(paths)
    } else if let Some(result) = body.result {
        FaultAction::Replace(result)
    } else if let Some(code) = body.error_code {
        if !(400..=599).contains(&code) {
            return Err(bad("error_code must be 400-599"));
        }
        let mut error = match (code, body.retry_after) {
            (429, retry_after) => ApiError::too_many_requests(retry_after.unwrap_or(1)),
            (400, _) => ApiError::bad_request("injected fault"),
            (401, _) => ApiError::unauthorized(),
            (403, _) => ApiError::forbidden("bot was blocked by the user"),
            (409, _) => ApiError::conflict(
                "terminated by other getUpdates request; make sure that only one bot instance is running",
            ),
            (code, _) => ApiError::new(code, "Internal Server Error"),
        };
        if let Some(description) = body.description {
            error.description = description;
        }
        FaultAction::Fail(error)
    } else if let Some(ms) = body.delay_ms {
        FaultAction::Delay(Duration::from_millis(ms))
    } else {
        match body.drop.as_deref() {
            Some("request") => FaultAction::DropRequest,
            Some("response") => FaultAction::DropResponse,
            _ => return Err(bad("drop must be \"request\" or \"response\"")),
        }
    };
    let times = body.times.unwrap_or(1).max(1);
    bot.state.lock().add_fault(Fault { method, remaining: times, action });
    Ok(Json(json!({ "ok": true })))
}

async fn clear_faults(State(world): State<Arc<World>>, Path(bot): Path<String>) -> Answer {
    let bot = find(&world, &bot)?;
    bot.state.lock().clear_faults();
    Ok(Json(json!({ "ok": true })))
}
