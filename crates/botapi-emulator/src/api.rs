//! The Bot API as a bot sees it: `/bot<TOKEN>/<method>`. `handle` authorizes the token, reads the parameters,
//! applies injected faults, runs the method and logs the call; `call` hands it to the submodule of its topic:
//! `updates` (getUpdates, webhooks), `messages` (text messages), `media` (files), `album` (`InputMedia`:
//! albums and media edits), `polls`, `queries` (answers to callback, inline and payment queries), `commands`,
//! `moderation` (pins, bans).

mod album;
mod commands;
mod media;
mod messages;
mod moderation;
mod polls;
mod queries;
mod updates;

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{StatusCode, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
};
use serde_json::Value;

use crate::{
    error::ApiError,
    params::Params,
    server::ConnKill,
    types::CallRecord,
    world::{BotCell, BotState, FaultAction, World, parse_token, unix_ms},
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
    "sendAudio",
    "sendVideo",
    "sendAnimation",
    "sendVoice",
    "sendVideoNote",
    "sendSticker",
    "getFile",
    "sendMediaGroup",
    "editMessageMedia",
    "sendPoll",
    "stopPoll",
    "approveChatJoinRequest",
    "declineChatJoinRequest",
    "answerInlineQuery",
    "answerShippingQuery",
    "answerPreCheckoutQuery",
    "pinChatMessage",
    "banChatMember",
    "close",
    "logOut",
];

/// A successful result: a JSON value, or a JSON text already serialized.
pub(super) enum Answer {
    Json(Value),
    Raw(String),
}

impl Answer {
    pub(super) fn ok() -> Result<Answer, ApiError> {
        Ok(Answer::Json(Value::Bool(true)))
    }
}

pub(crate) use media::download;

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
        http: format!("{:?}", req.version()),
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
    if let Some(kind) = media::kind_of(method) {
        return media::send_media(world, bot, kind, p);
    }
    match method {
        "getUpdates" => updates::get_updates(world, bot, p).await,
        "setWebhook" => updates::set_webhook(world, bot, p),
        "getFile" => media::get_file(world, bot, p),
        "sendMediaGroup" => album::send_media_group(world, bot, p),
        "editMessageMedia" => album::edit_message_media(world, bot, p),
        _ => {
            let mut st = bot.state.lock();
            let result = match method {
                "getMe" => get_me(&st),
                "deleteWebhook" => updates::delete_webhook(&mut st, p),
                "getWebhookInfo" => Ok(Answer::Json(updates::webhook_info(&st))),
                "sendMessage" => messages::send_message(world, &mut st, p),
                "editMessageText" => messages::edit_message_text(world, &mut st, p),
                "editMessageReplyMarkup" => messages::edit_reply_markup(world, &mut st, p),
                "deleteMessage" => messages::delete_message(world, &mut st, p),
                "answerCallbackQuery" => queries::answer_callback(world, &mut st, p),
                "answerInlineQuery" => queries::answer_inline(world, &mut st, p),
                "answerShippingQuery" => queries::answer_shipping(world, &mut st, p),
                "answerPreCheckoutQuery" => queries::answer_pre_checkout(world, &mut st, p),
                "sendPoll" => polls::send_poll(world, &mut st, p),
                "stopPoll" => polls::stop_poll(world, &mut st, p),
                "approveChatJoinRequest" => queries::decide_join_request(world, &mut st, p, true),
                "declineChatJoinRequest" => queries::decide_join_request(world, &mut st, p, false),
                "setMyCommands" => commands::set_my_commands(&mut st, p),
                "getMyCommands" => commands::get_my_commands(&st, p),
                "deleteMyCommands" => commands::delete_my_commands(&mut st, p),
                "sendChatAction" => messages::send_chat_action(world, &mut st, p),
                "pinChatMessage" => moderation::pin_chat_message(world, &mut st, p),
                "banChatMember" => moderation::ban_chat_member(world, &mut st, p),
                _ => Answer::ok(), // close, logOut
            };
            drop(st);
            if matches!(method, "deleteWebhook" | "close" | "logOut") {
                bot.updates.notify_waiters();
            } else if result.is_ok() {
                bot.events.notify_waiters();
                // stopPoll also queues a `poll` update.
                if method == "stopPoll" {
                    bot.updates.notify_waiters();
                }
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
