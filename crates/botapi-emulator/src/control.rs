//! The control API under `/control/`: what a test or the demo does to the emulated Telegram. Register and reset
//! bots, act as users (messages, commands, callback clicks, edits, group messages, blocking), read what bots
//! sent, wait for their next event, inject faults, read the call log and counters. Submodules by topic:
//! `messages` (users writing, editing, clicking), `files` (stored files, users sending files), `members`
//! (blocking, member changes, join requests), `channels` (posts, boosts), `queries` (inline and payment queries),
//! `polls` (votes, reactions), `business` (business connections and messages), `faults`, `chat_view` (a chat as a
//! person sees it, for the playground).

mod business;
mod channels;
mod chat_view;
mod faults;
mod files;
mod members;
mod messages;
mod polls;
mod queries;

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{
    api::METHODS,
    types::{Chat, User},
    world::{BotCell, World},
};

/// The routes, to be nested under `/control`.
pub(crate) fn router() -> Router<Arc<World>> {
    Router::new()
        .route("/", get(info))
        .route("/reset", post(reset_all))
        .route("/flood", post(set_flood))
        .route("/users", post(upsert_user))
        .route("/calls", get(calls))
        .route("/bots", get(list_bots).post(register_bot))
        .route("/bots/{bot}", get(bot_info).delete(unregister_bot))
        .route("/bots/{bot}/reset", post(reset_bot))
        .route("/bots/{bot}/update_ids", post(skip_update_ids))
        .route("/bots/{bot}/chats/{chat}", get(transcript))
        .route("/bots/{bot}/events", get(events))
        .route("/bots/{bot}/stats", get(stats))
        .route("/bots/{bot}/commands", get(commands))
        .merge(messages::routes())
        .merge(members::routes())
        .merge(faults::routes())
        .merge(files::routes())
        .merge(channels::routes())
        .merge(queries::routes())
        .merge(polls::routes())
        .merge(business::routes())
        .merge(chat_view::routes())
}

/// A group, supergroup or channel as the control API accepts it.
#[derive(Deserialize)]
pub(super) struct ChatSpec {
    id: i64,
    #[serde(rename = "type")]
    kind: Option<String>,
    title: Option<String>,
    username: Option<String>,
}

/// The group, supergroup or channel that `spec` describes (remembered from now on) or `chat_id` names (known from
/// an earlier call), if its type is one of `kinds`; a `spec` without a type is of the first of `kinds` (a group
/// with a 13-digit id a supergroup).
pub(super) fn shared_chat(
    world: &World,
    spec: Option<ChatSpec>,
    chat_id: Option<i64>,
    kinds: &[&str],
) -> Result<Chat, ControlError> {
    let allowed = |kind: &str| {
        if kinds.contains(&kind) { Ok(()) } else { Err(bad(format!("chat type must be {}", kinds.join(" or ")))) }
    };
    if let Some(spec) = spec {
        if spec.id >= 0 {
            return Err(bad("a group or channel id must be negative"));
        }
        let default = match kinds.first() {
            Some(&"group") if spec.id < -1_000_000_000_000 => "supergroup",
            Some(kind) => kind,
            None => "group",
        };
        let kind = spec.kind.unwrap_or_else(|| default.to_owned());
        allowed(&kind)?;
        let title = spec.title.unwrap_or_else(|| format!("Chat {}", -spec.id));
        let chat = Chat { id: spec.id, kind, title: Some(title), username: spec.username, ..Chat::default() };
        world.upsert_group(chat.clone());
        return Ok(chat);
    }
    let id = chat_id.ok_or_else(|| bad("give \"chat\" (an object) or \"chat_id\""))?;
    let chat =
        world.group(id).ok_or_else(|| bad(format!("unknown chat {id}: describe it with a \"chat\" object first")))?;
    allowed(&chat.kind)?;
    Ok(chat)
}

/// What a control call queued for a bot besides a message: the update's id (`None` when the bot's
/// `allowed_updates` excludes its type) and the id of what it created (a query, poll, boost, connection).
pub(super) fn queued(update_id: Option<i64>, id: Option<String>) -> Json<Value> {
    Json(json!({ "update_id": update_id, "id": id }))
}

/// A control API failure: `{"error": "..."}` with a 4xx status.
pub(super) struct ControlError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

pub(super) fn bad(message: impl Into<String>) -> ControlError {
    ControlError(StatusCode::BAD_REQUEST, message.into())
}

pub(super) type Answer = Result<Json<Value>, ControlError>;

pub(super) fn find(world: &World, key: &str) -> Result<Arc<BotCell>, ControlError> {
    world.find(key).ok_or_else(|| ControlError(StatusCode::NOT_FOUND, format!("no bot {key}")))
}

async fn info(State(world): State<Arc<World>>) -> Json<Value> {
    Json(json!({
        "emulator": "botapi-emulator",
        "version": env!("CARGO_PKG_VERSION"),
        "bots": world.all_bots().len(),
        "flood": world.flood(),
        "files": world.files.usage().files,
        "methods": METHODS,
    }))
}

async fn reset_all(State(world): State<Arc<World>>) -> Json<Value> {
    world.reset();
    Json(json!({ "ok": true }))
}

#[derive(Deserialize)]
struct FloodBody {
    enabled: bool,
}

async fn set_flood(State(world): State<Arc<World>>, Json(body): Json<FloodBody>) -> Json<Value> {
    world.set_flood(body.enabled);
    Json(json!({ "flood": body.enabled }))
}

/// A user as the control API accepts it: an id, or the fields of a `User`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum UserRef {
    Id(i64),
    User {
        id: i64,
        first_name: Option<String>,
        last_name: Option<String>,
        username: Option<String>,
        language_code: Option<String>,
    },
}

impl UserRef {
    pub(super) fn resolve(self, world: &World) -> Result<User, ControlError> {
        match self {
            UserRef::Id(id) if id > 0 => Ok(world.user(id)),
            UserRef::User { id, first_name, last_name, username, language_code } if id > 0 => {
                let user = User {
                    id,
                    is_bot: false,
                    first_name: first_name.unwrap_or_else(|| format!("User {id}")),
                    last_name,
                    username,
                    language_code,
                };
                world.upsert_user(user.clone());
                Ok(user)
            }
            _ => Err(bad("a user id must be positive")),
        }
    }
}

async fn upsert_user(State(world): State<Arc<World>>, Json(user): Json<UserRef>) -> Answer {
    let user = user.resolve(&world)?;
    Ok(Json(serde_json::to_value(user).unwrap_or_default()))
}

#[derive(Deserialize)]
struct RegisterBody {
    token: String,
    first_name: Option<String>,
    username: Option<String>,
}

/// What the control API says about a bot (never its token).
#[derive(Serialize)]
struct BotView {
    id: i64,
    username: Option<String>,
    first_name: String,
    webhook: Option<String>,
    pending: usize,
    /// True while a getUpdates call is waiting for updates.
    polling: bool,
}

fn view(bot: &BotCell) -> BotView {
    let st = bot.state.lock();
    BotView {
        id: bot.id,
        username: st.me.username.clone(),
        first_name: st.me.first_name.clone(),
        webhook: st.webhook.as_ref().map(|h| h.url.clone()),
        pending: st.queue.len(),
        polling: st.waiting_polls > 0,
    }
}

async fn register_bot(State(world): State<Arc<World>>, Json(body): Json<RegisterBody>) -> Answer {
    let bot = world
        .register(&body.token, body.first_name, body.username)
        .ok_or_else(|| bad("malformed token: expected <digits>:<at least 20 of A-Z a-z 0-9 _ ->"))?;
    Ok(Json(serde_json::to_value(view(&bot)).unwrap_or_default()))
}

async fn list_bots(State(world): State<Arc<World>>) -> Json<Value> {
    let bots: Vec<BotView> = world.all_bots().iter().map(|b| view(b)).collect();
    Json(serde_json::to_value(bots).unwrap_or_default())
}

async fn bot_info(State(world): State<Arc<World>>, Path(bot): Path<String>) -> Answer {
    let bot = find(&world, &bot)?;
    let webhook = {
        let st = bot.state.lock();
        st.webhook.as_ref().map(|h| {
            json!({
                "url": h.url,
                "has_secret": h.secret.is_some(),
                "max_connections": h.max_connections,
                "in_flight": h.in_flight,
                "last_error_date": h.last_error_date,
                "last_error_message": h.last_error_message,
            })
        })
    };
    let mut out = serde_json::to_value(view(&bot)).unwrap_or_default();
    out["webhook_info"] = webhook.unwrap_or(Value::Null);
    Ok(Json(out))
}

async fn unregister_bot(State(world): State<Arc<World>>, Path(bot): Path<String>) -> Answer {
    let bot = find(&world, &bot)?;
    world.unregister(&bot);
    Ok(Json(json!({ "ok": true })))
}

async fn reset_bot(State(world): State<Arc<World>>, Path(bot): Path<String>) -> Answer {
    let bot = find(&world, &bot)?;
    bot.state.lock().reset();
    bot.updates.notify_waiters();
    Ok(Json(json!({ "ok": true })))
}

#[derive(Deserialize)]
struct UpdateIds {
    next: i64,
}

/// Makes the bot's next update id at least `next`, as Telegram's ids go on past those a bot's last run took (a
/// test that stores updates of a killed run itself gives the new ones higher ids).
async fn skip_update_ids(
    State(world): State<Arc<World>>,
    Path(bot): Path<String>,
    Json(body): Json<UpdateIds>,
) -> Answer {
    let bot = find(&world, &bot)?;
    let next = bot.state.lock().skip_update_ids(body.next);
    Ok(Json(json!({ "next": next })))
}

async fn transcript(State(world): State<Arc<World>>, Path((bot, chat)): Path<(String, i64)>) -> Answer {
    let bot = find(&world, &bot)?;
    let st = bot.state.lock();
    let Some(log) = st.chats.get(&chat) else {
        return Ok(Json(json!([])));
    };
    Ok(Json(serde_json::to_value(log.messages()).unwrap_or_default()))
}

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<u64>,
    chat_id: Option<i64>,
    kind: Option<String>,
    wait_ms: Option<u64>,
    limit: Option<usize>,
}

/// Events after `after`; with `wait_ms`, waits that long for the first one.
async fn events(State(world): State<Arc<World>>, Path(bot): Path<String>, Query(q): Query<EventsQuery>) -> Answer {
    let bot = find(&world, &bot)?;
    let deadline = Instant::now() + Duration::from_millis(q.wait_ms.unwrap_or(0).min(600_000));
    let limit = q.limit.unwrap_or(1000);
    loop {
        let notified = bot.events.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let found = bot.state.lock().events(q.after.unwrap_or(0), q.chat_id, q.kind.as_deref(), limit);
        if !found.is_empty() || Instant::now() >= deadline {
            return Ok(Json(serde_json::to_value(found).unwrap_or_default()));
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(deadline) => {}
            () = world.shutdown.cancelled() => return Ok(Json(json!([]))),
        }
    }
}

async fn stats(State(world): State<Arc<World>>, Path(bot): Path<String>) -> Answer {
    let bot = find(&world, &bot)?;
    let stats = bot.state.lock().stats.clone();
    Ok(Json(serde_json::to_value(stats).unwrap_or_default()))
}

async fn commands(State(world): State<Arc<World>>, Path(bot): Path<String>) -> Answer {
    let bot = find(&world, &bot)?;
    let st = bot.state.lock();
    let all: serde_json::Map<String, Value> =
        st.commands.iter().map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default())).collect();
    Ok(Json(Value::Object(all)))
}

#[derive(Deserialize)]
struct CallsQuery {
    bot: Option<String>,
    method: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
}

async fn calls(State(world): State<Arc<World>>, Query(q): Query<CallsQuery>) -> Answer {
    let bot_id = match &q.bot {
        Some(key) => Some(find(&world, key)?.id),
        None => None,
    };
    let list = world.calls(bot_id, q.method.as_deref(), q.after.unwrap_or(0), q.limit.unwrap_or(10_000));
    Ok(Json(serde_json::to_value(list).unwrap_or_default()))
}
