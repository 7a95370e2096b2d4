//! Membership changes: a user blocking or unblocking the bot.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::post,
};
use serde::Deserialize;
use serde_json::json;

use super::{Answer, find};
use crate::world::World;

/// The routes of this topic.
pub(super) fn routes() -> Router<Arc<World>> {
    Router::new().route("/bots/{bot}/block", post(block)).route("/bots/{bot}/unblock", post(unblock))
}

#[derive(Deserialize)]
struct BlockBody {
    user_id: i64,
}

async fn block(State(world): State<Arc<World>>, Path(bot): Path<String>, Json(body): Json<BlockBody>) -> Answer {
    let bot = find(&world, &bot)?;
    bot.state.lock().set_blocked(body.user_id, true);
    Ok(Json(json!({ "ok": true })))
}

async fn unblock(State(world): State<Arc<World>>, Path(bot): Path<String>, Json(body): Json<BlockBody>) -> Answer {
    let bot = find(&world, &bot)?;
    bot.state.lock().set_blocked(body.user_id, false);
    Ok(Json(json!({ "ok": true })))
}
