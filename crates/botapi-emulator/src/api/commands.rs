//! Bot commands: `setMyCommands`, `getMyCommands`, `deleteMyCommands`, one list per scope and language.

use serde_json::json;

use super::Answer;
use crate::{error::ApiError, params::Params, types::BotCommand, world::BotState};

/// The storage key of a command list: its scope and language.
pub(super) fn commands_key(p: &Params) -> Result<String, ApiError> {
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

pub(super) fn set_my_commands(st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
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

pub(super) fn get_my_commands(st: &BotState, p: &Params) -> Result<Answer, ApiError> {
    let key = commands_key(p)?;
    let commands = st.commands.get(&key).cloned().unwrap_or_default();
    Ok(Answer::Json(serde_json::to_value(commands).unwrap_or_default()))
}

pub(super) fn delete_my_commands(st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let key = commands_key(p)?;
    st.commands.remove(&key);
    Answer::ok()
}
