//! Users writing to bots: messages in private chats and groups, edits, button clicks, and raw updates of any
//! type.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::post,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Answer, ChatSpec, ControlError, UserRef, bad, find, members, shared_chat};
use crate::{
    entities,
    types::{Chat, ChatMessage, Message, MessageEntity, User},
    world::{BotState, CallbackMeta, InlineQuery, PaymentQuery, World, chat_member, unix_now},
};

/// The routes of this topic.
pub(super) fn routes() -> Router<Arc<World>> {
    Router::new()
        .route("/bots/{bot}/messages", post(user_message))
        .route("/bots/{bot}/edits", post(user_edit))
        .route("/bots/{bot}/callbacks", post(user_click))
        .route("/bots/{bot}/updates", post(raw_update))
}

/// What a user action created.
#[derive(Serialize)]
pub(super) struct Sent {
    /// `None` when the bot's `allowed_updates` excludes the update's type.
    pub(super) update_id: Option<i64>,
    pub(super) chat_id: i64,
    pub(super) message_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) callback_query_id: Option<String>,
    /// The file a user sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) file_id: Option<String>,
}

impl Sent {
    /// A message and its update.
    pub(super) fn message(chat_id: i64, message_id: i64, update_id: Option<i64>) -> Sent {
        Sent { update_id, chat_id, message_id, callback_query_id: None, file_id: None }
    }
}

/// Notes that a user who writes in a group, and the bot that reads it, are members there unless known otherwise.
fn joined(st: &mut BotState, chat: &Chat, user: &User) {
    let none = serde_json::Map::new();
    for member in [st.me.clone(), user.clone()] {
        let status = chat_member(&member, "member", 0, &none).unwrap_or_default();
        st.members.entry((chat.id, member.id)).or_insert(status);
    }
}

/// Records a message someone other than the bot sent in its chat, and queues it as an update of `kind`
/// (`message`, `channel_post`, ...); returns the message's id and the update's.
pub(super) fn deliver(world: &World, st: &mut BotState, message: Message, kind: &str) -> (i64, Option<i64>) {
    let chat_id = message.chat.id;
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
    let stored = st.chats.get_mut(&chat_id).and_then(|log| log.get_mut(message_id));
    let payload = stored.map(|m| serde_json::to_value(&m.message).unwrap_or_default()).unwrap_or_default();
    (message_id, st.push_update(kind, payload))
}

#[derive(Deserialize)]
struct MessageBody {
    from: UserRef,
    chat: Option<ChatSpec>,
    chat_id: Option<i64>,
    text: String,
    reply_to_message_id: Option<i64>,
}

/// The chat a user writes in: a group `spec` describes, a group `chat_id` names, or the private chat.
pub(super) fn resolve_chat(
    world: &World,
    user: &User,
    chat: Option<ChatSpec>,
    chat_id: Option<i64>,
) -> Result<Chat, ControlError> {
    match (chat, chat_id) {
        (None, None) => Ok(Chat::private(user)),
        (None, Some(id)) if id == user.id => Ok(Chat::private(user)),
        (spec, id) => shared_chat(world, spec, id, &["group", "supergroup"]),
    }
}

pub(super) fn detected(text: &str) -> Option<Vec<MessageEntity>> {
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
        // Writing to a bot the user blocked unblocks it, as the Restart button does.
        members::set_blocked(&mut st, &user, false);
        if chat.is_group() {
            joined(&mut st, &chat, &user);
        }
        let reply_to_message = match body.reply_to_message_id {
            Some(id) => {
                let log = st.chat_log(&chat);
                let target = log.get_mut(id).ok_or_else(|| bad(format!("no message {id} in chat {}", chat.id)))?;
                Some(Box::new(Message { reply_to_message: None, ..target.message.clone() }))
            }
            None => None,
        };
        let message = Message {
            from: Some(user),
            chat: chat.clone(),
            date: unix_now(),
            reply_to_message,
            entities: detected(&body.text),
            text: Some(body.text),
            ..Message::default()
        };
        let (message_id, update_id) = deliver(&world, &mut st, message, "message");
        Sent::message(chat.id, message_id, update_id)
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
        Sent::message(chat.id, body.message_id, update_id)
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
        Sent { callback_query_id: Some(id), ..Sent::message(chat.id, body.message_id, update_id) }
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
    let mut st = bot.state.lock();
    // A query delivered to the bot can be answered, as the Bot API allows for any query it sent.
    if let Some(id) = payload.get("id").and_then(Value::as_str) {
        let id = id.to_owned();
        match kind.as_str() {
            "inline_query" => {
                let query = payload.get("query").and_then(Value::as_str).unwrap_or_default().to_owned();
                st.inline_queries.insert(id, InlineQuery { query, results: None });
            }
            "shipping_query" => {
                st.payment_queries.insert(id, PaymentQuery { kind: "shipping_query", answered: false });
            }
            "pre_checkout_query" => {
                st.payment_queries.insert(id, PaymentQuery { kind: "pre_checkout_query", answered: false });
            }
            _ => {}
        }
    }
    let update_id = st.push_update(kind, payload.clone());
    drop(st);
    bot.updates.notify_waiters();
    Ok(Json(json!({ "update_id": update_id })))
}
