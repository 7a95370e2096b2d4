//! Moderation: `pinChatMessage` and `banChatMember`, checked as the Bot API server checks them (the message must
//! exist; in groups the bot must be an administrator; nobody is banned from a private chat, nor the chat's
//! owner or an administrator) and recorded as `pin` and `ban` events.

use serde_json::json;

use super::{Answer, messages::target_chat};
use crate::{
    error::ApiError,
    params::Params,
    world::{BotState, World},
};

/// Whether the bot administers the chat `chat_id`.
fn bot_is_admin(st: &BotState, chat_id: i64) -> bool {
    matches!(st.member_status(chat_id, st.me.id), Some("administrator" | "creator"))
}

pub(super) fn pin_chat_message(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let chat = target_chat(world, st, p)?;
    let message_id =
        p.int("message_id")?.ok_or_else(|| ApiError::bad_request("message identifier is not specified"))?;
    if chat.kind != "private" && !bot_is_admin(st, chat.id) {
        return Err(ApiError::bad_request("not enough rights to manage pinned messages in the chat"));
    }
    let log = st.chats.get_mut(&chat.id).ok_or_else(|| ApiError::bad_request("message to pin not found"))?;
    let pinned = log.get_mut(message_id).ok_or_else(|| ApiError::bad_request("message to pin not found"))?.clone();
    let detail = json!({ "disable_notification": p.bool("disable_notification")? });
    st.emit("pin", Some(chat.id), Some(&pinned), Some(detail), world.config.event_capacity);
    Answer::ok()
}

pub(super) fn ban_chat_member(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let chat = target_chat(world, st, p)?;
    let user_id = p.int("user_id")?.ok_or_else(|| ApiError::bad_request("user_id is empty"))?;
    if chat.kind == "private" {
        return Err(ApiError::bad_request("can't remove members from private chats"));
    }
    if !bot_is_admin(st, chat.id) {
        return Err(ApiError::bad_request("not enough rights to restrict/ban chat member"));
    }
    match st.member_status(chat.id, user_id) {
        Some("creator") => return Err(ApiError::bad_request("can't remove chat owner")),
        Some("administrator") => return Err(ApiError::bad_request("user is an administrator of the chat")),
        _ => {}
    }
    let until_date = p.int("until_date")?.unwrap_or(0);
    let member = st
        .members
        .entry((chat.id, user_id))
        .or_insert_with(|| json!({ "user": { "id": user_id, "is_bot": false, "first_name": "" } }));
    member["status"] = "kicked".into();
    member["until_date"] = until_date.into();
    let detail = json!({
        "user_id": user_id,
        "until_date": until_date,
        "revoke_messages": p.bool("revoke_messages")?,
    });
    st.emit("ban", Some(chat.id), None, Some(detail), world.config.event_capacity);
    Answer::ok()
}
