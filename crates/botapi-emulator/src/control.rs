//! The control API under `/control/`: what a test or the demo does to the emulated Telegram. Register and reset
//! bots, act as users (messages, commands, callback clicks, edits, group messages, blocking), read what bots
//! sent, wait for their next event, inject faults, read the call log and counters.

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
    entities,
    error::ApiError,
    types::{Chat, ChatMessage, Message, MessageEntity, User},
    world::{BotCell, CallbackMeta, Fault, FaultAction, World, unix_now},
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
        .route("/bots/{bot}/messages", post(user_message))
        .route("/bots/{bot}/edits", post(user_edit))
        .route("/bots/{bot}/callbacks", post(user_click))
        .route("/bots/{bot}/updates", post(raw_update))
        .route("/bots/{bot}/block", post(block))
        .route("/bots/{bot}/unblock", post(unblock))
        .route("/bots/{bot}/chats/{chat}", get(transcript))
        .route("/bots/{bot}/events", get(events))
        .route("/bots/{bot}/stats", get(stats))
        .route("/bots/{bot}/commands", get(commands))
        .route("/bots/{bot}/faults", post(add_fault).delete(clear_faults))
}

/// A control API failure: `{"error": "..."}` with a 4xx status.
struct ControlError(StatusCode, String);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad(message: impl Into<String>) -> ControlError {
    ControlError(StatusCode::BAD_REQUEST, message.into())
}

type Answer = Result<Json<Value>, ControlError>;

fn find(world: &World, key: &str) -> Result<Arc<BotCell>, ControlError> {
    world.find(key).ok_or_else(|| ControlError(StatusCode::NOT_FOUND, format!("no bot {key}")))
}

async fn info(State(world): State<Arc<World>>) -> Json<Value> {
    Json(json!({
        "emulator": "botapi-emulator",
        "version": env!("CARGO_PKG_VERSION"),
        "bots": world.all_bots().len(),
        "flood": world.flood(),
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
enum UserRef {
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
    fn resolve(self, world: &World) -> Result<User, ControlError> {
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

/// A chat as the control API accepts it for group messages.
#[derive(Deserialize)]
struct ChatSpec {
    id: i64,
    #[serde(rename = "type")]
    kind: Option<String>,
    title: Option<String>,
    username: Option<String>,
}

/// What a user action created.
#[derive(Serialize)]
struct Sent {
    /// `None` when the bot's `allowed_updates` excludes the update's type.
    update_id: Option<i64>,
    chat_id: i64,
    message_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_query_id: Option<String>,
}

#[derive(Deserialize)]
struct MessageBody {
    from: UserRef,
    chat: Option<ChatSpec>,
    chat_id: Option<i64>,
    text: String,
    reply_to_message_id: Option<i64>,
}

fn resolve_chat(
    world: &World,
    user: &User,
    chat: Option<ChatSpec>,
    chat_id: Option<i64>,
) -> Result<Chat, ControlError> {
    if let Some(spec) = chat {
        if spec.id >= 0 {
            return Err(bad("a group chat id must be negative"));
        }
        let kind = spec
            .kind
            .unwrap_or_else(|| if spec.id < -1_000_000_000_000 { "supergroup".into() } else { "group".into() });
        if !matches!(kind.as_str(), "group" | "supergroup") {
            return Err(bad("chat type must be group or supergroup"));
        }
        let chat = Chat {
            id: spec.id,
            title: Some(spec.title.unwrap_or_else(|| format!("Group {}", -spec.id))),
            kind,
            username: spec.username,
            first_name: None,
            last_name: None,
        };
        world.upsert_group(chat.clone());
        return Ok(chat);
    }
    match chat_id {
        None => Ok(Chat::private(user)),
        Some(id) if id == user.id => Ok(Chat::private(user)),
        Some(id) => world.group(id).ok_or_else(|| bad(format!("unknown chat {id}: send with a \"chat\" object first"))),
    }
}

fn detected(text: &str) -> Option<Vec<MessageEntity>> {
    let list: Vec<MessageEntity> = entities::detect(text)
        .into_iter()
        .map(|e| MessageEntity {
            kind: e.kind,
            offset: e.offset,
            length: e.length,
            url: e.url,
            language: None,
            user: None,
            custom_emoji_id: None,
        })
        .collect();
    (!list.is_empty()).then_some(list)
}

async fn user_message(
    State(world): State<Arc<World>>,
    Path(bot): Path<String>,
    Json(body): Json<MessageBody>,
) -> Answer {
    let bot = find(&world, &bot)?;
    let user = body.from.resolve(&world)?;
    let chat = resolve_chat(&world, &user, body.chat, body.chat_id)?;
    if body.text.is_empty() {
        return Err(bad("text must not be empty"));
    }
    let sent = {
        let mut st = bot.state.lock();
        st.set_blocked(user.id, false);
        let reply_to_message = match body.reply_to_message_id {
            Some(id) => {
                let log = st.chat_log(&chat);
                let target = log.get_mut(id).ok_or_else(|| bad(format!("no message {id} in chat {}", chat.id)))?;
                Some(Box::new(Message { reply_to_message: None, ..target.message.clone() }))
            }
            None => None,
        };
        let message = Message {
            message_id: 0,
            from: Some(user),
            chat: chat.clone(),
            date: unix_now(),
            edit_date: None,
            reply_to_message,
            entities: detected(&body.text),
            text: Some(body.text),
            photo: None,
            document: None,
            caption: None,
            caption_entities: None,
            link_preview_options: None,
            reply_markup: None,
        };
        let entry = ChatMessage {
            message,
            from_bot: false,
            parse_mode: None,
            raw_text: None,
            options: Default::default(),
            edits: Vec::new(),
            deleted: false,
        };
        let message_id = st.record(entry, world.config.history_limit);
        let payload =
            st.chat_log(&chat).get_mut(message_id).map(|m| serde_json::to_value(&m.message).unwrap_or_default());
        let update_id = st.push_update("message", payload.unwrap_or_default());
        Sent { update_id, chat_id: chat.id, message_id, callback_query_id: None }
    };
    bot.updates.notify_waiters();
    Ok(Json(serde_json::to_value(sent).unwrap_or_default()))
}

#[derive(Deserialize)]
struct EditBody {
    from: UserRef,
    chat_id: Option<i64>,
    message_id: i64,
    text: String,
}

async fn user_edit(State(world): State<Arc<World>>, Path(bot): Path<String>, Json(body): Json<EditBody>) -> Answer {
    let bot = find(&world, &bot)?;
    let user = body.from.resolve(&world)?;
    let chat = resolve_chat(&world, &user, None, body.chat_id)?;
    let sent = {
        let mut st = bot.state.lock();
        let log = st.chat_log(&chat);
        let entry = log
            .get_mut(body.message_id)
            .ok_or_else(|| bad(format!("no message {} in chat {}", body.message_id, chat.id)))?;
        if entry.from_bot || entry.message.from.as_ref().map(|u| u.id) != Some(user.id) {
            return Err(bad("a user can only edit their own messages"));
        }
        let previous = entry.message.clone();
        entry.edits.push(previous);
        entry.message.entities = detected(&body.text);
        entry.message.text = Some(body.text);
        entry.message.edit_date = Some(unix_now());
        let payload = serde_json::to_value(&entry.message).unwrap_or_default();
        let update_id = st.push_update("edited_message", payload);
        Sent { update_id, chat_id: chat.id, message_id: body.message_id, callback_query_id: None }
    };
    bot.updates.notify_waiters();
    Ok(Json(serde_json::to_value(sent).unwrap_or_default()))
}

#[derive(Deserialize)]
struct ClickBody {
    from: UserRef,
    chat_id: Option<i64>,
    message_id: i64,
    data: String,
    /// Skips the check that the message shows a button with this data.
    #[serde(default)]
    unchecked: bool,
}

async fn user_click(State(world): State<Arc<World>>, Path(bot): Path<String>, Json(body): Json<ClickBody>) -> Answer {
    let bot = find(&world, &bot)?;
    let user = body.from.resolve(&world)?;
    let chat = resolve_chat(&world, &user, None, body.chat_id)?;
    let sent = {
        let mut st = bot.state.lock();
        let log = st.chat_log(&chat);
        let entry = log
            .get_mut(body.message_id)
            .ok_or_else(|| bad(format!("no message {} in chat {}", body.message_id, chat.id)))?;
        if !entry.from_bot {
            return Err(bad("callback queries come from the bot's own messages"));
        }
        if !body.unchecked && !entry.message.callback_data().contains(&body.data) {
            return Err(bad(format!("message {} shows no button with callback_data {:?}", body.message_id, body.data)));
        }
        let message = serde_json::to_value(&entry.message).unwrap_or_default();
        let id = format!("{}{:012}", bot.id % 1_000_000, world.unique());
        let payload = json!({
            "id": id,
            "from": user,
            "message": message,
            "chat_instance": (chat.id ^ bot.id).to_string(),
            "data": body.data,
        });
        st.callbacks.insert(
            id.clone(),
            CallbackMeta { answered: false, chat_id: chat.id, message_id: body.message_id, data: body.data },
        );
        let update_id = st.push_update("callback_query", payload);
        Sent { update_id, chat_id: chat.id, message_id: body.message_id, callback_query_id: Some(id) }
    };
    bot.updates.notify_waiters();
    Ok(Json(serde_json::to_value(sent).unwrap_or_default()))
}

/// Queues any update given as `{"<type>": {...}}`, e.g. a `chat_member` update.
async fn raw_update(State(world): State<Arc<World>>, Path(bot): Path<String>, Json(body): Json<Value>) -> Answer {
    let bot = find(&world, &bot)?;
    let Some(object) = body.as_object().filter(|o| o.len() == 1) else {
        return Err(bad("an update is an object with exactly one field naming its type"));
    };
    let Some((kind, payload)) = object.iter().next() else {
        return Err(bad("empty update"));
    };
    let update_id = bot.state.lock().push_update(kind, payload.clone());
    bot.updates.notify_waiters();
    Ok(Json(json!({ "update_id": update_id })))
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
