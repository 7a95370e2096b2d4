//! The Bot API as a bot sees it: `/bot<TOKEN>/<method>`. `handle` authorizes the token, reads the parameters,
//! applies injected faults, runs the method and logs the call; one function per method below does the work.

use std::{sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{StatusCode, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};
use tokio::time::{Instant, sleep_until};

use crate::{
    entities::{self, ParseMode},
    error::ApiError,
    params::{Params, Upload},
    server::ConnKill,
    types::{BotCommand, CallRecord, Chat, ChatMessage, Document, Message, MessageEntity, PhotoSize},
    webhook,
    world::{BotCell, BotState, FaultAction, FileInfo, Webhook, World, parse_token, unix_ms, unix_now},
};

/// Every method the emulator implements, as Telegram spells it.
pub const METHODS: &[&str] = &[
    "getMe",
    "getUpdates",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "sendMessage",
    "editMessageText",
    "editMessageReplyMarkup",
    "deleteMessage",
    "answerCallbackQuery",
    "setMyCommands",
    "getMyCommands",
    "deleteMyCommands",
    "sendChatAction",
    "sendPhoto",
    "sendDocument",
    "close",
    "logOut",
];

const TEXT_LIMIT: usize = 4096;
const CAPTION_LIMIT: usize = 1024;
const NOT_MODIFIED: &str = "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message";
const CHAT_ACTIONS: &[&str] = &[
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
];
const BUTTON_ACTIONS: &[&str] = &[
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
];

/// A successful result: a JSON value, or a JSON text already serialized.
enum Answer {
    Json(Value),
    Raw(String),
}

impl Answer {
    fn ok() -> Result<Answer, ApiError> {
        Ok(Answer::Json(Value::Bool(true)))
    }
}

/// Serves `/bot<TOKEN>/<method>`.
pub(crate) async fn handle(State(world): State<Arc<World>>, req: Request) -> Response {
    let kill = req.extensions().get::<ConnKill>().cloned();
    let path = req.uri().path().to_owned();
    let Some((token, method)) = path.strip_prefix("/bot").and_then(|rest| rest.split_once('/')) else {
        return ApiError::new(404, "Not Found").into_response();
    };
    let at_ms = unix_ms();
    let bot = if parse_token(token).is_some() { world.authorize(token) } else { None };
    let strict = world.config.strict_method_names;
    let canonical =
        METHODS.iter().find(|m| if strict { **m == method } else { m.eq_ignore_ascii_case(method) }).copied();
    let mut record = CallRecord {
        seq: 0,
        at_ms,
        bot_id: bot.as_ref().map(|b| b.id),
        method: canonical.unwrap_or(method).to_owned(),
        params: Value::Null,
        status: 0,
        error: None,
    };
    let Some(bot) = bot else {
        return finish(&world, record, None, Err(ApiError::unauthorized()));
    };
    let Some(method) = canonical else {
        return finish(&world, record, Some(&bot), Err(ApiError::method_not_found()));
    };
    let params = match Params::from_request(req, world.config.body_limit).await {
        Ok(params) => params,
        Err(e) => return finish(&world, record, Some(&bot), Err(e)),
    };
    let fault = bot.state.lock().take_fault(method);
    let mut drop_response = false;
    match fault {
        Some(FaultAction::Fail(e)) => {
            record.params = params.for_log();
            return finish(&world, record, Some(&bot), Err(e));
        }
        Some(FaultAction::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(FaultAction::DropRequest) => {
            record.params = params.for_log();
            world.log_call(record);
            return drop_connection(kill).await;
        }
        Some(FaultAction::DropResponse) => drop_response = true,
        Some(FaultAction::HtmlError(status)) => {
            record.params = params.for_log();
            return html_error(&world, record, status);
        }
        Some(FaultAction::Omit(_) | FaultAction::Replace(_)) | None => {}
    }
    let mut result = call(&world, &bot, method, &params).await;
    if let Ok(answer) = result.as_mut()
        && bot.state.lock().rewrites(method)
    {
        let mut value = match std::mem::replace(answer, Answer::Json(Value::Null)) {
            Answer::Json(value) => value,
            Answer::Raw(raw) => serde_json::from_str(&raw).unwrap_or_default(),
        };
        bot.state.lock().rewrite(method, &mut value);
        *answer = Answer::Json(value);
    }
    record.params = params.for_log();
    if drop_response {
        record.error = Some("connection dropped after processing".into());
        world.log_call(record);
        return drop_connection(kill).await;
    }
    finish(&world, record, Some(&bot), result)
}

/// Logs the call and turns its result into Telegram's answer.
fn finish(world: &World, mut record: CallRecord, bot: Option<&BotCell>, result: Result<Answer, ApiError>) -> Response {
    let (status, body) = match result {
        Ok(Answer::Json(value)) => (200, format!(r#"{{"ok":true,"result":{value}}}"#)),
        Ok(Answer::Raw(raw)) => (200, format!(r#"{{"ok":true,"result":{raw}}}"#)),
        Err(e) => {
            record.error = Some(e.description.clone());
            (e.code, e.body().to_string())
        }
    };
    record.status = status;
    if let Some(bot) = bot {
        let mut st = bot.state.lock();
        st.stats.calls += 1;
        if status == 429 {
            st.stats.too_many_requests += 1;
        }
    }
    world.log_call(record);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, [(CONTENT_TYPE, "application/json")], Body::from(body)).into_response()
}

/// Logs the call and answers `status` with an HTML page, as the nginx in front of the Bot API does when the
/// server behind it is overloaded or down.
fn html_error(world: &World, mut record: CallRecord, status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let title = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("Error"));
    let page = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n\
         <hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n"
    );
    record.status = status.as_u16();
    record.error = Some(format!("HTML error page {title}"));
    world.log_call(record);
    (status, [(CONTENT_TYPE, "text/html")], page).into_response()
}

/// Closes the client's connection without an answer.
async fn drop_connection(kill: Option<ConnKill>) -> Response {
    match kill {
        Some(kill) => {
            kill.0.cancel();
            std::future::pending().await
        }
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn call(world: &Arc<World>, bot: &Arc<BotCell>, method: &str, p: &Params) -> Result<Answer, ApiError> {
    match method {
        "getUpdates" => get_updates(world, bot, p).await,
        "setWebhook" => set_webhook(world, bot, p),
        "sendPhoto" | "sendDocument" => send_file(world, bot, method, p),
        _ => {
            let mut st = bot.state.lock();
            let result = match method {
                "getMe" => get_me(&st),
                "deleteWebhook" => delete_webhook(&mut st, p),
                "getWebhookInfo" => Ok(Answer::Json(webhook_info(&st))),
                "sendMessage" => send_message(world, &mut st, p),
                "editMessageText" => edit_message_text(world, &mut st, p),
                "editMessageReplyMarkup" => edit_reply_markup(world, &mut st, p),
                "deleteMessage" => delete_message(world, &mut st, p),
                "answerCallbackQuery" => answer_callback(world, &mut st, p),
                "setMyCommands" => set_my_commands(&mut st, p),
                "getMyCommands" => get_my_commands(&st, p),
                "deleteMyCommands" => delete_my_commands(&mut st, p),
                "sendChatAction" => send_chat_action(world, &mut st, p),
                _ => Answer::ok(), // close, logOut
            };
            drop(st);
            if matches!(method, "deleteWebhook" | "close" | "logOut") {
                bot.updates.notify_waiters();
            } else if result.is_ok() {
                bot.events.notify_waiters();
            }
            result
        }
    }
}

fn get_me(st: &BotState) -> Result<Answer, ApiError> {
    let mut me = serde_json::to_value(&st.me).unwrap_or_default();
    me["can_join_groups"] = true.into();
    for flag in
        ["can_read_all_group_messages", "supports_inline_queries", "can_connect_to_business", "has_main_web_app"]
    {
        me[flag] = false.into();
    }
    Ok(Answer::Json(me))
}

/// `getUpdates`: confirms below `offset`, then answers at once or waits up to `timeout` seconds for updates.
/// A newer call, or a webhook being set, ends a waiting one with 409, as Telegram does.
async fn get_updates(world: &World, bot: &BotCell, p: &Params) -> Result<Answer, ApiError> {
    let offset = p.int("offset")?.unwrap_or(0);
    let limit = p.int("limit")?.map_or(100, |l| l.clamp(1, 100)) as usize;
    let timeout = p.int("timeout")?.unwrap_or(0).clamp(0, 3600) as u64;
    let allowed = allowed_updates(p)?;
    let generation = {
        let mut st = bot.state.lock();
        if st.webhook.is_some() {
            return Err(webhook_conflict());
        }
        st.poll_generation += 1;
        st.confirm(offset);
        st.set_allowed(allowed);
        st.poll_generation
    };
    // Ends an older long poll still waiting for this bot.
    bot.updates.notify_waiters();
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        let notified = bot.updates.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut st = bot.state.lock();
            // A webhook set meanwhile also ends the poll (setWebhook bumps the generation): say which.
            if st.webhook.is_some() {
                return Err(webhook_conflict());
            }
            if st.poll_generation != generation {
                return Err(ApiError::conflict(
                    "terminated by other getUpdates request; make sure that only one bot instance is running",
                ));
            }
            let count = st.queue.len().min(limit);
            if count > 0 || timeout == 0 {
                let mut out = String::with_capacity(count * 256 + 2);
                out.push('[');
                for index in 0..count {
                    if index > 0 {
                        out.push(',');
                    }
                    out.push_str(st.queue[index].json.get());
                    st.note_delivery(index);
                }
                out.push(']');
                return Ok(Answer::Raw(out));
            }
            st.waiting_polls += 1;
        }
        let _waiting = Waiting(bot);
        tokio::select! {
            () = &mut notified => {}
            () = sleep_until(deadline) => return Ok(Answer::Raw("[]".into())),
            () = world.shutdown.cancelled() => return Ok(Answer::Raw("[]".into())),
        }
    }
}

/// Counts a long poll as waiting for as long as it lives (the client may go away mid-wait).
struct Waiting<'a>(&'a BotCell);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock();
        st.waiting_polls = st.waiting_polls.saturating_sub(1);
    }
}

fn webhook_conflict() -> ApiError {
    ApiError::conflict(
        "can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
    )
}

fn allowed_updates(p: &Params) -> Result<Option<Vec<String>>, ApiError> {
    let Some(value) = p.json("allowed_updates", "can't parse allowed updates JSON object")? else {
        return Ok(None);
    };
    let list = value.as_array().ok_or_else(|| ApiError::bad_request("allowed_updates must be an Array"))?;
    list.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| ApiError::bad_request("allowed_updates must be an Array of String"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn set_webhook(world: &Arc<World>, bot: &Arc<BotCell>, p: &Params) -> Result<Answer, ApiError> {
    let url = p.str("url")?.unwrap_or_default();
    if url.is_empty() {
        let mut st = bot.state.lock();
        let answer = delete_webhook(&mut st, p);
        drop(st);
        bot.updates.notify_waiters();
        return answer;
    }
    let parsed = reqwest::Url::parse(&url).map_err(|_| ApiError::bad_request("bad webhook: invalid URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(ApiError::bad_request("bad webhook: an HTTP or HTTPS URL must be provided for webhook"));
    }
    let secret = p.str("secret_token")?.filter(|s| !s.is_empty());
    if let Some(secret) = &secret {
        let valid = secret.len() <= 256 && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(ApiError::bad_request("secret token contains unallowed characters"));
        }
    }
    let max_connections = p.int("max_connections")?.unwrap_or(40).clamp(1, 100) as usize;
    let allowed = allowed_updates(p)?;
    let drop_pending = p.bool("drop_pending_updates")?;
    let generation = {
        let mut st = bot.state.lock();
        if drop_pending {
            st.drop_pending();
        }
        for pending in &mut st.queue {
            pending.in_flight = false;
        }
        st.set_allowed(allowed);
        st.webhook = Some(Webhook {
            url,
            secret,
            max_connections,
            in_flight: 0,
            failures: 0,
            retry_at: None,
            last_error_date: None,
            last_error_message: None,
        });
        st.webhook_generation += 1;
        st.poll_generation += 1;
        st.webhook_generation
    };
    bot.updates.notify_waiters();
    webhook::spawn(world.clone(), bot.clone(), generation);
    Answer::ok()
}

fn delete_webhook(st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    if p.bool("drop_pending_updates")? {
        st.drop_pending();
    }
    if st.webhook.take().is_some() {
        st.webhook_generation += 1;
        for pending in &mut st.queue {
            pending.in_flight = false;
        }
    }
    Answer::ok()
}

fn webhook_info(st: &BotState) -> Value {
    let mut info = json!({
        "url": "",
        "has_custom_certificate": false,
        "pending_update_count": st.queue.len(),
    });
    if let Some(hook) = &st.webhook {
        info["url"] = hook.url.clone().into();
        info["max_connections"] = hook.max_connections.into();
        info["ip_address"] = "127.0.0.1".into();
        if let Some(date) = hook.last_error_date {
            info["last_error_date"] = date.into();
        }
        if let Some(message) = &hook.last_error_message {
            info["last_error_message"] = message.clone().into();
        }
    }
    if let Some(allowed) = st.allowed().filter(|a| !a.is_empty()) {
        info["allowed_updates"] = json!(allowed);
    }
    info
}

/// The chat a bot may send to, from `chat_id`.
fn target_chat(world: &World, st: &BotState, p: &Params) -> Result<Chat, ApiError> {
    let raw = p.str("chat_id")?.unwrap_or_default();
    if raw.trim().is_empty() {
        return Err(ApiError::bad_request("chat_id is empty"));
    }
    let id: i64 = raw.trim().parse().map_err(|_| ApiError::bad_request("chat not found"))?;
    if id > 0 && st.is_blocked_by(id) {
        return Err(ApiError::forbidden("bot was blocked by the user"));
    }
    if let Some(log) = st.chats.get(&id) {
        return Ok(log.chat.clone());
    }
    if id > 0 && world.find(&id.to_string()).is_some() {
        return Err(ApiError::forbidden("bot can't send messages to bots"));
    }
    if id > 0 && world.user_exists(id) {
        return Err(ApiError::forbidden("bot can't initiate conversation with a user"));
    }
    Err(ApiError::bad_request("chat not found"))
}

/// A text after `parse_mode`: the plain text, its entities and the mode used.
struct Styled {
    text: String,
    entities: Option<Vec<MessageEntity>>,
    parse_mode: Option<String>,
}

/// Parses `text` with the call's `parse_mode`.
fn format_text(world: &World, text: &str, p: &Params) -> Result<Styled, ApiError> {
    let mode = p.str("parse_mode")?.filter(|m| !m.trim().is_empty());
    let (plain, explicit) = match &mode {
        Some(name) => {
            let mode = ParseMode::parse(name).ok_or_else(|| ApiError::bad_request("unsupported parse_mode"))?;
            let formatted =
                entities::parse(text, mode).map_err(|e| ApiError::bad_request(format!("can't parse entities: {e}")))?;
            (formatted.text, formatted.entities)
        }
        None => (text.to_owned(), Vec::new()),
    };
    let merged = entities::merge(explicit, entities::detect(&plain));
    let list: Vec<MessageEntity> = merged
        .into_iter()
        .map(|e| MessageEntity {
            kind: e.kind,
            offset: e.offset,
            length: e.length,
            url: e.url,
            language: e.language,
            user: e.user_id.map(|id| world.user(id)),
            custom_emoji_id: e.custom_emoji_id,
        })
        .collect();
    Ok(Styled { text: plain, entities: (!list.is_empty()).then_some(list), parse_mode: mode })
}

/// Validates `reply_markup`; returns the inline keyboard to attach to the message, if it is one.
fn reply_markup(p: &Params) -> Result<Option<Value>, ApiError> {
    let Some(markup) = p.json("reply_markup", "can't parse reply keyboard markup JSON object")? else {
        return Ok(None);
    };
    let Some(object) = markup.as_object() else {
        return Err(ApiError::bad_request("can't parse reply keyboard markup JSON object"));
    };
    let Some(keyboard) = object.get("inline_keyboard") else {
        let known = ["keyboard", "remove_keyboard", "force_reply"].iter().any(|k| object.contains_key(*k));
        return if known {
            Ok(None)
        } else {
            Err(ApiError::bad_request("can't parse reply keyboard markup JSON object"))
        };
    };
    let rows = keyboard.as_array().ok_or_else(|| {
        ApiError::bad_request("field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array")
    })?;
    for row in rows {
        let buttons = row
            .as_array()
            .ok_or_else(|| ApiError::bad_request("can't parse inline keyboard button: row must be an Array"))?;
        for button in buttons {
            check_button(button)?;
        }
    }
    if rows.iter().all(|r| r.as_array().is_some_and(Vec::is_empty)) {
        return Ok(None);
    }
    Ok(Some(json!({ "inline_keyboard": rows })))
}

fn check_button(button: &Value) -> Result<(), ApiError> {
    let object = button.as_object().ok_or_else(|| {
        ApiError::bad_request("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
    })?;
    match object.get("text").and_then(Value::as_str) {
        Some(text) if !text.trim().is_empty() => {}
        Some(_) => return Err(ApiError::bad_request("text must be non-empty")),
        None => {
            return Err(ApiError::bad_request(
                "can't parse inline keyboard button: Field \"text\" must be of type String",
            ));
        }
    }
    let actions = BUTTON_ACTIONS.iter().filter(|a| object.contains_key(**a)).count();
    if actions == 0 {
        return Err(ApiError::bad_request("text buttons are unallowed in the inline keyboard"));
    }
    if actions > 1 {
        return Err(ApiError::bad_request(
            "can't parse inline keyboard button: exactly one of the optional fields must be used",
        ));
    }
    if let Some(data) = object.get("callback_data") {
        let ok = data.as_str().is_some_and(|d| !d.is_empty() && d.len() <= 64);
        if !ok {
            return Err(ApiError::bad_request("BUTTON_DATA_INVALID"));
        }
    }
    if let Some(url) = object.get("url") {
        let text = url.as_str().unwrap_or_default();
        let ok = reqwest::Url::parse(text).is_ok_and(|u| matches!(u.scheme(), "http" | "https" | "tg"));
        if !ok {
            return Err(ApiError::bad_request(format!(
                "inline keyboard button URL '{text}' is invalid: Wrong HTTP URL"
            )));
        }
    }
    Ok(())
}

/// The optional send parameters kept in the transcript.
fn send_options(p: &Params, skip: &[&str]) -> Map<String, Value> {
    let skip_always = ["chat_id", "parse_mode"];
    p.values
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()) && !skip_always.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `reply_parameters` or `reply_to_message_id`: the message replied to, if any.
fn reply_target(st: &mut BotState, chat: &Chat, p: &Params) -> Result<Option<Box<Message>>, ApiError> {
    let params = p.json("reply_parameters", "can't parse reply parameters JSON object")?;
    let (id, lenient) = match &params {
        Some(rp) => (rp["message_id"].as_i64(), rp["allow_sending_without_reply"].as_bool().unwrap_or(false)),
        None => (p.int("reply_to_message_id")?, p.bool("allow_sending_without_reply")?),
    };
    let Some(id) = id else { return Ok(None) };
    let found = st.chats.get_mut(&chat.id).and_then(|log| log.get_mut(id)).map(|m| {
        let mut message = m.message.clone();
        message.reply_to_message = None;
        Box::new(message)
    });
    match found {
        Some(message) => Ok(Some(message)),
        None if lenient => Ok(None),
        None => Err(ApiError::bad_request("message to be replied not found")),
    }
}

fn link_preview(p: &Params) -> Result<Option<Value>, ApiError> {
    if let Some(options) = p.json("link_preview_options", "can't parse link preview options JSON object")? {
        return Ok(Some(options));
    }
    Ok(p.bool("disable_web_page_preview")?.then(|| json!({ "is_disabled": true })))
}

fn send_message(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let chat = target_chat(world, st, p)?;
    let raw = p.str("text")?.unwrap_or_default();
    let Styled { text, entities, parse_mode } = format_text(world, &raw, p)?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("message text is empty"));
    }
    if entities::utf16_len(&text) > TEXT_LIMIT {
        return Err(ApiError::bad_request("message is too long"));
    }
    let markup = reply_markup(p)?;
    let link_preview_options = link_preview(p)?;
    let reply_to_message = reply_target(st, &chat, p)?;
    if world.flood() {
        st.check_flood(&chat)?;
    }
    let message = Message {
        message_id: 0,
        from: Some(st.me.clone()),
        chat,
        date: unix_now(),
        edit_date: None,
        reply_to_message,
        text: Some(text),
        entities,
        photo: None,
        document: None,
        caption: None,
        caption_entities: None,
        link_preview_options,
        reply_markup: markup,
    };
    let options = send_options(p, &["text"]);
    Ok(Answer::Json(record_sent(world, st, message, parse_mode, Some(raw), options)))
}

/// Stores a message the bot sent, emits its event and returns it as the Bot API result.
fn record_sent(
    world: &World,
    st: &mut BotState,
    message: Message,
    parse_mode: Option<String>,
    raw_text: Option<String>,
    options: Map<String, Value>,
) -> Value {
    let chat_id = message.chat.id;
    let entry =
        ChatMessage { message, from_bot: true, parse_mode, raw_text, options, edits: Vec::new(), deleted: false };
    let id = st.record(entry, world.config.history_limit);
    st.stats.messages_sent += 1;
    let stored = st.chats.get_mut(&chat_id).and_then(|log| log.get_mut(id)).cloned();
    st.emit("message", Some(chat_id), stored.as_ref(), None, world.config.event_capacity);
    stored.map(|m| serde_json::to_value(m.message).unwrap_or_default()).unwrap_or_default()
}

/// The bot's own message addressed by `chat_id` and `message_id`, for editing.
fn own_message<'a>(st: &'a mut BotState, p: &Params) -> Result<&'a mut ChatMessage, ApiError> {
    if p.get("inline_message_id").is_some() {
        return Err(ApiError::bad_request("message to edit not found"));
    }
    let chat_id = p.int("chat_id")?.ok_or_else(|| ApiError::bad_request("chat_id is empty"))?;
    let message_id =
        p.int("message_id")?.ok_or_else(|| ApiError::bad_request("message identifier is not specified"))?;
    let log = st.chats.get_mut(&chat_id).ok_or_else(|| ApiError::bad_request("chat not found"))?;
    let message = log.get_mut(message_id).ok_or_else(|| ApiError::bad_request("message to edit not found"))?;
    if !message.from_bot {
        return Err(ApiError::bad_request("message can't be edited"));
    }
    Ok(message)
}

fn edit_message_text(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let raw = p.str("text")?.unwrap_or_default();
    let Styled { text, entities, parse_mode } = format_text(world, &raw, p)?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("message text is empty"));
    }
    if entities::utf16_len(&text) > TEXT_LIMIT {
        return Err(ApiError::bad_request("message is too long"));
    }
    let markup = reply_markup(p)?;
    let link_preview_options = link_preview(p)?;
    let entry = own_message(st, p)?;
    if entry.message.text.is_none() {
        return Err(ApiError::bad_request("there is no text in the message to edit"));
    }
    let old = &entry.message;
    if old.text.as_deref() == Some(text.as_str()) && old.entities == entities && old.reply_markup == markup {
        return Err(ApiError::bad_request(NOT_MODIFIED));
    }
    let previous = entry.message.clone();
    entry.edits.push(previous);
    entry.message.text = Some(text);
    entry.message.entities = entities;
    entry.message.reply_markup = markup;
    entry.message.edit_date = Some(unix_now());
    if link_preview_options.is_some() {
        entry.message.link_preview_options = link_preview_options;
    }
    entry.parse_mode = parse_mode;
    entry.raw_text = Some(raw);
    let edited = entry.clone();
    Ok(Answer::Json(emit_edit(world, st, edited)))
}

fn edit_reply_markup(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let markup = reply_markup(p)?;
    let entry = own_message(st, p)?;
    if entry.message.reply_markup == markup {
        return Err(ApiError::bad_request(NOT_MODIFIED));
    }
    let previous = entry.message.clone();
    entry.edits.push(previous);
    entry.message.reply_markup = markup;
    entry.message.edit_date = Some(unix_now());
    let edited = entry.clone();
    Ok(Answer::Json(emit_edit(world, st, edited)))
}

fn emit_edit(world: &World, st: &mut BotState, edited: ChatMessage) -> Value {
    st.stats.edits += 1;
    st.emit("edit", Some(edited.message.chat.id), Some(&edited), None, world.config.event_capacity);
    serde_json::to_value(edited.message).unwrap_or_default()
}

fn delete_message(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let chat_id = p.int("chat_id")?.ok_or_else(|| ApiError::bad_request("chat_id is empty"))?;
    let message_id =
        p.int("message_id")?.ok_or_else(|| ApiError::bad_request("message identifier is not specified"))?;
    let log = st.chats.get_mut(&chat_id).ok_or_else(|| ApiError::bad_request("chat not found"))?;
    let group = log.chat.is_group();
    let entry = log.get_mut(message_id).ok_or_else(|| ApiError::bad_request("message to delete not found"))?;
    if group && !entry.from_bot {
        return Err(ApiError::bad_request("message can't be deleted"));
    }
    entry.deleted = true;
    let deleted = entry.clone();
    st.stats.deletions += 1;
    st.emit("delete", Some(chat_id), Some(&deleted), None, world.config.event_capacity);
    Answer::ok()
}

fn answer_callback(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let id = p.str("callback_query_id")?.unwrap_or_default();
    let text = p.str("text")?;
    if text.as_deref().is_some_and(|t| entities::utf16_len(t) > 200) {
        return Err(ApiError::bad_request("MESSAGE_TOO_LONG"));
    }
    let expired = || ApiError::bad_request("query is too old and response timeout expired or query ID is invalid");
    let meta = st.callbacks.get_mut(&id).filter(|m| !m.answered).ok_or_else(expired)?;
    meta.answered = true;
    let (chat_id, message_id, data) = (meta.chat_id, meta.message_id, meta.data.clone());
    let detail = json!({
        "callback_query_id": id,
        "message_id": message_id,
        "data": data,
        "text": text,
        "show_alert": p.bool("show_alert")?,
        "url": p.str("url")?,
        "cache_time": p.int("cache_time")?.unwrap_or(0),
    });
    st.stats.callback_answers += 1;
    st.emit("callback_answer", Some(chat_id), None, Some(detail), world.config.event_capacity);
    Answer::ok()
}

/// The storage key of a command list: its scope and language.
fn commands_key(p: &Params) -> Result<String, ApiError> {
    let scope =
        p.json("scope", "can't parse BotCommandScope JSON object")?.unwrap_or_else(|| json!({"type": "default"}));
    let kind = scope["type"].as_str().unwrap_or_default();
    let needs_chat = matches!(kind, "chat" | "chat_administrators" | "chat_member");
    let valid =
        matches!(kind, "default" | "all_private_chats" | "all_group_chats" | "all_chat_administrators") || needs_chat;
    if !valid {
        return Err(ApiError::bad_request("wrong parameter scope in request"));
    }
    let chat = &scope["chat_id"];
    if needs_chat && chat.is_null() {
        return Err(ApiError::bad_request("chat not found"));
    }
    let user = &scope["user_id"];
    if kind == "chat_member" && user.is_null() {
        return Err(ApiError::bad_request("user not found"));
    }
    let language = p.str("language_code")?.unwrap_or_default();
    if !(language.is_empty() || language.len() == 2 && language.bytes().all(|b| b.is_ascii_lowercase())) {
        return Err(ApiError::bad_request("invalid language code specified"));
    }
    Ok(format!("{kind}/{chat}/{user}/{language}"))
}

fn set_my_commands(st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let list = p
        .json("commands", "can't parse commands JSON object")?
        .ok_or_else(|| ApiError::bad_request("parameter \"commands\" is required"))?;
    let commands: Vec<BotCommand> =
        serde_json::from_value(list).map_err(|_| ApiError::bad_request("can't parse commands JSON object"))?;
    if commands.len() > 100 {
        return Err(ApiError::bad_request("too many commands specified"));
    }
    for c in &commands {
        let valid = !c.command.is_empty()
            && c.command.len() <= 32
            && c.command.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(ApiError::bad_request("BOT_COMMAND_INVALID"));
        }
        let length = c.description.chars().count();
        if c.description.trim().is_empty() || length > 256 {
            return Err(ApiError::bad_request("BOT_COMMAND_DESCRIPTION_INVALID"));
        }
    }
    let key = commands_key(p)?;
    if commands.is_empty() {
        st.commands.remove(&key);
    } else {
        st.commands.insert(key, commands);
    }
    Answer::ok()
}

fn get_my_commands(st: &BotState, p: &Params) -> Result<Answer, ApiError> {
    let key = commands_key(p)?;
    let commands = st.commands.get(&key).cloned().unwrap_or_default();
    Ok(Answer::Json(serde_json::to_value(commands).unwrap_or_default()))
}

fn delete_my_commands(st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let key = commands_key(p)?;
    st.commands.remove(&key);
    Answer::ok()
}

fn send_chat_action(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let chat = target_chat(world, st, p)?;
    let action = p.str("action")?.unwrap_or_default();
    if !CHAT_ACTIONS.contains(&action.as_str()) {
        return Err(ApiError::bad_request("wrong parameter action in request"));
    }
    st.emit("chat_action", Some(chat.id), None, Some(json!({ "action": action })), world.config.event_capacity);
    Answer::ok()
}

/// `sendPhoto` and `sendDocument`: the file is an upload (a multipart field, or `attach://<field>`), a file id
/// the emulator issued, or an HTTP URL.
fn send_file(world: &World, bot: &BotCell, method: &str, p: &Params) -> Result<Answer, ApiError> {
    let field = if method == "sendPhoto" { "photo" } else { "document" };
    let (file_id, info) = input_file(world, p, field)?;
    let raw_caption = p.str("caption")?.unwrap_or_default();
    let Styled { text: caption, entities: caption_entities, parse_mode } = format_text(world, &raw_caption, p)?;
    if entities::utf16_len(&caption) > CAPTION_LIMIT {
        return Err(ApiError::bad_request("message caption is too long"));
    }
    let markup = reply_markup(p)?;
    let mut st = bot.state.lock();
    let chat = target_chat(world, &st, p)?;
    let reply_to_message = reply_target(&mut st, &chat, p)?;
    if world.flood() {
        st.check_flood(&chat)?;
    }
    let (photo, document) = if field == "photo" {
        let size = PhotoSize {
            file_id: file_id.clone(),
            file_unique_id: info.unique_id.clone(),
            width: info.width,
            height: info.height,
            file_size: info.size,
        };
        (Some(vec![size]), None)
    } else {
        let document = Document {
            file_id,
            file_unique_id: info.unique_id.clone(),
            file_name: info.name.clone(),
            mime_type: info.mime_type.clone(),
            file_size: info.size,
        };
        (None, Some(document))
    };
    let message = Message {
        message_id: 0,
        from: Some(st.me.clone()),
        chat,
        date: unix_now(),
        edit_date: None,
        reply_to_message,
        text: None,
        entities: None,
        photo,
        document,
        caption: (!caption.is_empty()).then_some(caption),
        caption_entities,
        link_preview_options: None,
        reply_markup: markup,
    };
    let options = send_options(p, &["caption", field]);
    let result =
        record_sent(world, &mut st, message, parse_mode, (!raw_caption.is_empty()).then_some(raw_caption), options);
    drop(st);
    bot.events.notify_waiters();
    Ok(Answer::Json(result))
}

fn input_file(world: &World, p: &Params, field: &str) -> Result<(String, FileInfo), ApiError> {
    let kind = if field == "photo" { "photo" } else { "document" };
    if let Some(upload) = p.files.get(field) {
        return store_upload(world, kind, upload);
    }
    let Some(reference) = p.str(field)?.filter(|s| !s.is_empty()) else {
        return Err(ApiError::bad_request(format!("there is no {kind} in the request")));
    };
    if let Some(name) = reference.strip_prefix("attach://") {
        let upload = p.files.get(name).ok_or_else(|| ApiError::bad_request("wrong HTTP URL specified"))?;
        return store_upload(world, kind, upload);
    }
    if let Some(info) = world.file(&reference) {
        return Ok((reference, info));
    }
    if let Ok(url) = reqwest::Url::parse(&reference)
        .map_err(|_| ())
        .and_then(|u| if matches!(u.scheme(), "http" | "https") { Ok(u) } else { Err(()) })
    {
        let name = url.path_segments().and_then(|mut s| s.next_back()).filter(|s| !s.is_empty()).map(str::to_owned);
        let info = FileInfo {
            unique_id: format!("U{:08x}", world.unique()),
            kind,
            name,
            mime_type: None,
            size: None,
            width: 0,
            height: 0,
        };
        let id = world.add_file(info.clone());
        return Ok((id, info));
    }
    Err(ApiError::bad_request("wrong file identifier/HTTP URL specified"))
}

fn store_upload(world: &World, kind: &'static str, upload: &Upload) -> Result<(String, FileInfo), ApiError> {
    if upload.bytes.is_empty() {
        return Err(ApiError::bad_request("file must be non-empty"));
    }
    let (width, height) = if kind == "photo" {
        image_size(&upload.bytes).ok_or_else(|| ApiError::bad_request("IMAGE_PROCESS_FAILED"))?
    } else {
        (0, 0)
    };
    let mime_type = upload.mime_type.clone().or_else(|| Some("application/octet-stream".into()));
    let info = FileInfo {
        unique_id: format!("U{:08x}", world.unique()),
        kind,
        name: upload.file_name.clone(),
        mime_type,
        size: Some(upload.bytes.len() as u64),
        width,
        height,
    };
    let id = world.add_file(info.clone());
    Ok((id, info))
}

/// Width and height of a PNG, GIF or JPEG image; `None` when the bytes are none of these.
fn image_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let be16 = |i: usize| Some(u16::from_be_bytes([*bytes.get(i)?, *bytes.get(i + 1)?]) as u32);
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() >= 24 {
        let be32 = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        return Some((be32(16), be32(20)));
    }
    if bytes.starts_with(b"GIF8") && bytes.len() >= 10 {
        let le16 = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]) as u32;
        return Some((le16(6), le16(8)));
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let mut i = 2;
        while i + 9 < bytes.len() {
            if bytes[i] != 0xFF {
                return None;
            }
            let marker = bytes[i + 1];
            let sof = (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
            if sof {
                return Some((be16(i + 7)?, be16(i + 5)?));
            }
            i += 2 + be16(i + 2)? as usize;
        }
    }
    None
}
