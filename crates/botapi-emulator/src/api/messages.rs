//! Text messages: `sendMessage`, `editMessageText`, `editMessageReplyMarkup`, `deleteMessage`,
//! `sendChatAction`, and what every send shares: the target chat, `parse_mode`, keyboards, replies and the
//! transcript record.

use serde_json::{Map, Value, json};

use super::Answer;
use crate::{
    entities::{self, ParseMode},
    error::ApiError,
    params::Params,
    types::{Chat, ChatMessage, Message, MessageEntity},
    world::{BotState, World, unix_now},
};

pub(super) const TEXT_LIMIT: usize = 4096;
pub(super) const NOT_MODIFIED: &str = "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message";
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

/// The chat a bot may send to, from `chat_id`.
pub(super) fn target_chat(world: &World, st: &BotState, p: &Params) -> Result<Chat, ApiError> {
    let raw = p.str("chat_id")?.unwrap_or_default();
    if raw.trim().is_empty() {
        return Err(ApiError::bad_request("chat_id is empty"));
    }
    let id: i64 = raw.trim().parse().map_err(|_| ApiError::bad_request("chat not found"))?;
    if id > 0 && st.is_blocked_by(id) {
        return Err(ApiError::forbidden("bot was blocked by the user"));
    }
    let shared = || st.chats.get(&id).map(|log| log.chat.clone()).or_else(|| world.group(id));
    if id < 0
        && let Some(chat) = shared()
    {
        return match st.member_status(id, st.me.id) {
            Some("left") => Err(ApiError::forbidden(format!("bot is not a member of the {} chat", chat.kind))),
            Some("kicked") => Err(ApiError::forbidden(format!("bot was kicked from the {} chat", chat.kind))),
            Some(_) => Ok(chat),
            None if st.chats.contains_key(&id) => Ok(chat),
            None => Err(ApiError::bad_request("chat not found")),
        };
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
pub(super) struct Styled {
    pub(super) text: String,
    pub(super) entities: Option<Vec<MessageEntity>>,
    pub(super) parse_mode: Option<String>,
}

/// Parses `text` with the call's `parse_mode`.
pub(super) fn format_text(world: &World, text: &str, p: &Params) -> Result<Styled, ApiError> {
    format_with(world, text, p.str("parse_mode")?)
}

/// `text` after `parse_mode`, or with the entities of the parameter `field` (`entities`, `caption_entities`)
/// given instead, as Telegram takes them: the text as it is, with those entities.
pub(super) fn styled(world: &World, text: &str, p: &Params, field: &str) -> Result<Styled, ApiError> {
    let Some(given) = p.json(field, &format!("can't parse {} JSON array", field.replace('_', " ")))? else {
        return format_text(world, text, p);
    };
    let given: Vec<MessageEntity> =
        serde_json::from_value(given).map_err(|e| ApiError::bad_request(format!("can't parse entities: {e}")))?;
    if given.iter().any(|e| e.offset + e.length > entities::utf16_len(text)) {
        return Err(ApiError::bad_request("can't parse entities: an entity ends after the text"));
    }
    Ok(Styled { text: text.to_owned(), entities: (!given.is_empty()).then_some(given), parse_mode: None })
}

/// Parses `text` with `mode` (a `parse_mode` value).
pub(super) fn format_with(world: &World, text: &str, mode: Option<String>) -> Result<Styled, ApiError> {
    let mode = mode.filter(|m| !m.trim().is_empty());
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
pub(super) fn reply_markup(p: &Params) -> Result<Option<Value>, ApiError> {
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

pub(super) fn check_button(button: &Value) -> Result<(), ApiError> {
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
pub(super) fn send_options(p: &Params, skip: &[&str]) -> Map<String, Value> {
    let skip_always = ["chat_id", "parse_mode"];
    p.values
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()) && !skip_always.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `reply_parameters` or `reply_to_message_id`: the message replied to, if any.
pub(super) fn reply_target(st: &mut BotState, chat: &Chat, p: &Params) -> Result<Option<Box<Message>>, ApiError> {
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

pub(super) fn link_preview(p: &Params) -> Result<Option<Value>, ApiError> {
    if let Some(options) = p.json("link_preview_options", "can't parse link preview options JSON object")? {
        return Ok(Some(options));
    }
    Ok(p.bool("disable_web_page_preview")?.then(|| json!({ "is_disabled": true })))
}

pub(super) fn send_message(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let chat = target_chat(world, st, p)?;
    let raw = p.str("text")?.unwrap_or_default();
    let Styled { text, entities, parse_mode } = styled(world, &raw, p, "entities")?;
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
        from: Some(st.me.clone()),
        chat,
        date: unix_now(),
        reply_to_message,
        text: Some(text),
        entities,
        link_preview_options,
        reply_markup: markup,
        ..Message::default()
    };
    let options = send_options(p, &["text"]);
    Ok(Answer::Json(record_sent(world, st, message, parse_mode, Some(raw), options)))
}

/// Stores a message the bot sent, emits its event and returns it as the Bot API result.
pub(super) fn record_sent(
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
pub(super) fn own_message<'a>(st: &'a mut BotState, p: &Params) -> Result<&'a mut ChatMessage, ApiError> {
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

pub(super) fn edit_message_text(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let raw = p.str("text")?.unwrap_or_default();
    let Styled { text, entities, parse_mode } = styled(world, &raw, p, "entities")?;
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

pub(super) fn edit_reply_markup(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
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

pub(super) fn emit_edit(world: &World, st: &mut BotState, edited: ChatMessage) -> Value {
    st.stats.edits += 1;
    st.emit("edit", Some(edited.message.chat.id), Some(&edited), None, world.config.event_capacity);
    serde_json::to_value(edited.message).unwrap_or_default()
}

pub(super) fn delete_message(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
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

pub(super) fn send_chat_action(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let chat = target_chat(world, st, p)?;
    let action = p.str("action")?.unwrap_or_default();
    if !CHAT_ACTIONS.contains(&action.as_str()) {
        return Err(ApiError::bad_request("wrong parameter action in request"));
    }
    st.emit("chat_action", Some(chat.id), None, Some(json!({ "action": action })), world.config.event_capacity);
    Answer::ok()
}
