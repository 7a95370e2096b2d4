//! Business accounts: a user connecting their account to the bot (`business_connection`), and messages in the
//! account's chats with its customers (`business_message`, `edited_business_message`,
//! `deleted_business_messages`). The world keeps each connection and its chats.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::post,
};
use serde::Deserialize;

use super::{
    Answer, ControlError, UserRef, bad, find,
    messages::{Sent, detected},
    queued,
};
use crate::{
    types::{Chat, ChatMessage, Message},
    world::{BotState, Business, World, unix_now},
};

/// The routes of this topic.
pub(super) fn routes() -> Router<Arc<World>> {
    Router::new()
        .route("/bots/{bot}/business_connections", post(connection))
        .route("/bots/{bot}/business_messages", post(business_message))
        .route("/bots/{bot}/business_messages/edits", post(edit))
        .route("/bots/{bot}/business_messages/deletions", post(deletion))
}

#[derive(Deserialize)]
struct ConnectionBody {
    /// The business account's owner.
    user: UserRef,
    /// An existing connection to change; a new one unless given.
    id: Option<String>,
    #[serde(default = "yes")]
    can_reply: bool,
    #[serde(default = "yes")]
    is_enabled: bool,
}

fn yes() -> bool {
    true
}

/// A user connects their business account to the bot (or changes or ends the connection); the answer's `id` is
/// the connection's id.
async fn connection(
    State(world): State<Arc<World>>,
    Path(bot): Path<String>,
    Json(body): Json<ConnectionBody>,
) -> Answer {
    let bot = find(&world, &bot)?;
    let user = body.user.resolve(&world)?;
    let id = body.id.unwrap_or_else(|| format!("BC{:016x}", world.unique()));
    let update_id = {
        let mut st = bot.state.lock();
        let business = st.business.entry(id.clone()).or_insert_with(|| Business {
            user: user.clone(),
            date: unix_now(),
            can_reply: body.can_reply,
            enabled: body.is_enabled,
            chats: HashMap::new(),
        });
        if business.user.id != user.id {
            return Err(bad(format!("connection {id} belongs to user {}", business.user.id)));
        }
        (business.can_reply, business.enabled) = (body.can_reply, body.is_enabled);
        let payload = business.connection(&id);
        st.push_update("business_connection", payload)
    };
    bot.updates.notify_waiters();
    Ok(queued(update_id, Some(id)))
}

/// The enabled connection `id`.
fn enabled<'a>(st: &'a mut BotState, id: &str) -> Result<&'a mut Business, ControlError> {
    let business = st.business.get_mut(id).ok_or_else(|| bad(format!("no business connection {id}")))?;
    if !business.enabled {
        return Err(bad(format!("business connection {id} is disabled")));
    }
    Ok(business)
}

#[derive(Deserialize)]
struct MessageBody {
    business_connection_id: String,
    /// The sender: a customer, or the account's owner.
    from: UserRef,
    /// The customer's chat, when the owner writes.
    chat_id: Option<i64>,
    text: String,
}

/// A message in a chat of the business account: from a customer, or from the owner to `chat_id`.
async fn business_message(
    State(world): State<Arc<World>>,
    Path(bot): Path<String>,
    Json(body): Json<MessageBody>,
) -> Answer {
    let bot = find(&world, &bot)?;
    let from = body.from.resolve(&world)?;
    if body.text.is_empty() {
        return Err(bad("text must not be empty"));
    }
    let sent = {
        let mut st = bot.state.lock();
        let limit = world.config.history_limit;
        let business = enabled(&mut st, &body.business_connection_id)?;
        let customer = match body.chat_id {
            _ if from.id != business.user.id => from.clone(),
            Some(id) if id > 0 && id != from.id => world.user(id),
            _ => return Err(bad("the account's owner writes to a customer: give chat_id")),
        };
        let message = Message {
            from: Some(from),
            chat: Chat::private(&customer),
            date: unix_now(),
            business_connection_id: Some(body.business_connection_id),
            entities: detected(&body.text),
            text: Some(body.text),
            ..Message::default()
        };
        let entry = ChatMessage {
            message: message.clone(),
            from_bot: false,
            parse_mode: None,
            raw_text: None,
            options: Default::default(),
            edits: Vec::new(),
            deleted: false,
        };
        let message_id = business.record(entry, limit);
        let payload = serde_json::to_value(Message { message_id, ..message }).unwrap_or_default();
        Sent::message(customer.id, message_id, st.push_update("business_message", payload))
    };
    bot.updates.notify_waiters();
    Ok(Json(serde_json::to_value(sent).unwrap_or_default()))
}

#[derive(Deserialize)]
struct EditBody {
    business_connection_id: String,
    chat_id: i64,
    message_id: i64,
    text: String,
}

/// The sender of a business message edits it.
async fn edit(State(world): State<Arc<World>>, Path(bot): Path<String>, Json(body): Json<EditBody>) -> Answer {
    let bot = find(&world, &bot)?;
    let sent = {
        let mut st = bot.state.lock();
        let business = enabled(&mut st, &body.business_connection_id)?;
        let entry = business.chats.get_mut(&body.chat_id).and_then(|log| log.get_mut(body.message_id));
        let entry = entry.ok_or_else(|| bad(format!("no message {} in chat {}", body.message_id, body.chat_id)))?;
        let previous = entry.message.clone();
        entry.edits.push(previous);
        entry.message.entities = detected(&body.text);
        entry.message.text = Some(body.text);
        entry.message.edit_date = Some(unix_now());
        let payload = serde_json::to_value(&entry.message).unwrap_or_default();
        Sent::message(body.chat_id, body.message_id, st.push_update("edited_business_message", payload))
    };
    bot.updates.notify_waiters();
    Ok(Json(serde_json::to_value(sent).unwrap_or_default()))
}

#[derive(Deserialize)]
struct DeletionBody {
    business_connection_id: String,
    chat_id: i64,
    message_ids: Vec<i64>,
}

/// Messages of a business chat are deleted.
async fn deletion(State(world): State<Arc<World>>, Path(bot): Path<String>, Json(body): Json<DeletionBody>) -> Answer {
    let bot = find(&world, &bot)?;
    if body.message_ids.is_empty() {
        return Err(bad("message_ids must not be empty"));
    }
    let update_id = {
        let mut st = bot.state.lock();
        let business = enabled(&mut st, &body.business_connection_id)?;
        let log = business.chats.get_mut(&body.chat_id).ok_or_else(|| bad(format!("no chat {}", body.chat_id)))?;
        if let Some(missing) = body.message_ids.iter().find(|id| log.get_mut(**id).is_none()) {
            return Err(bad(format!("no message {missing} in chat {}", body.chat_id)));
        }
        for id in &body.message_ids {
            if let Some(entry) = log.get_mut(*id) {
                entry.deleted = true;
            }
        }
        let payload = serde_json::json!({
            "business_connection_id": body.business_connection_id,
            "chat": log.chat,
            "message_ids": body.message_ids,
        });
        st.push_update("deleted_business_messages", payload)
    };
    bot.updates.notify_waiters();
    Ok(queued(update_id, None))
}
