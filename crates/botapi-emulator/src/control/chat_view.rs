//! A chat as a person sees it, for the playground: `GET /control/bots/{bot}/chats/{chat}/view`. Each message with
//! its sender, text or caption and entities, file, poll, inline keyboard and edit or deletion mark; the reply
//! keyboard the chat shows now; the bot's answers to button clicks. With `after` (the `seq` of the previous view)
//! and `wait_ms` it waits for the bot's next event in the chat, so a page long-polls it and redraws what changed.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    routing::get,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use super::{Answer, find};
use crate::{
    types::{ChatMessage, Message, MessageEntity, Poll, User},
    world::{BotState, World},
};

/// The longest a view waits for the bot's next event.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Messages in a view unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 200;

/// The routes of this topic.
pub(super) fn routes() -> Router<Arc<World>> {
    Router::new().route("/bots/{bot}/chats/{chat}/view", get(view))
}

#[derive(Deserialize)]
struct ViewQuery {
    /// The `seq` of the view the caller shows; answers to clicks are those after it.
    after: Option<u64>,
    /// With `after`: wait up to this long for an event in the chat after `after`.
    wait_ms: Option<u64>,
    /// The newest messages to show.
    limit: Option<usize>,
}

/// What `GET /control/bots/{bot}/chats/{chat}/view` answers.
#[derive(Serialize)]
struct ChatView {
    chat_id: i64,
    /// The bot's latest event: the `after` of the next view.
    seq: u64,
    bot: BotName,
    /// Oldest first; deleted messages stay, marked.
    messages: Vec<MessageView>,
    /// The reply keyboard the chat shows now.
    reply_keyboard: Option<ReplyKeyboard>,
    /// The bot's answers to button clicks in this chat after `after` (none without `after`).
    answers: Vec<ClickAnswer>,
}

#[derive(Serialize)]
struct BotName {
    id: i64,
    first_name: String,
    username: Option<String>,
}

#[derive(Serialize)]
struct MessageView {
    message_id: i64,
    from_bot: bool,
    sender: String,
    date: i64,
    /// The text, or a file's caption.
    text: Option<String>,
    /// Entities of `text` (offsets in UTF-16 code units).
    entities: Vec<MessageEntity>,
    media: Option<MediaView>,
    poll: Option<Poll>,
    reply_to: Option<ReplyView>,
    /// Rows of `InlineKeyboardButton` objects.
    inline_keyboard: Option<Value>,
    edited: bool,
    deleted: bool,
}

#[derive(Serialize)]
struct MediaView {
    /// `photo`, `document`, `audio`, `video`, `animation`, `voice`, `video_note` or `sticker`.
    kind: &'static str,
    file_id: String,
    file_name: Option<String>,
    mime_type: Option<String>,
    file_size: Option<u64>,
    width: Option<u32>,
    height: Option<u32>,
    /// Where the bytes are (`/control/files/{file_id}/content`); `None` for a file sent by URL.
    content: Option<String>,
}

#[derive(Serialize)]
struct ReplyView {
    message_id: i64,
    sender: String,
    text: String,
}

#[derive(Serialize)]
struct ReplyKeyboard {
    /// Button texts, row by row.
    rows: Vec<Vec<String>>,
    placeholder: Option<String>,
}

#[derive(Serialize)]
struct ClickAnswer {
    message_id: Option<i64>,
    text: Option<String>,
    show_alert: bool,
}

async fn view(
    State(world): State<Arc<World>>,
    Path((bot, chat)): Path<(String, i64)>,
    Query(q): Query<ViewQuery>,
) -> Answer {
    let bot = find(&world, &bot)?;
    let deadline = Instant::now() + Duration::from_millis(q.wait_ms.unwrap_or(0)).min(MAX_WAIT);
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    loop {
        let notified = bot.events.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let st = bot.state.lock();
            let changed = q.after.is_none_or(|after| !st.events(after, Some(chat), None, 1).is_empty());
            if changed || Instant::now() >= deadline || world.shutdown.is_cancelled() {
                let view = chat_view(&st, bot.id, chat, q.after, limit);
                return Ok(Json(serde_json::to_value(view).unwrap_or_default()));
            }
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(deadline) => {}
            () = world.shutdown.cancelled() => {}
        }
    }
}

fn chat_view(st: &BotState, bot_id: i64, chat_id: i64, after: Option<u64>, limit: usize) -> ChatView {
    let bot = BotName { id: bot_id, first_name: st.me.first_name.clone(), username: st.me.username.clone() };
    let empty = VecDeque::new();
    let log = st.chats.get(&chat_id).map_or(&empty, |log| log.messages());
    let skip = log.len().saturating_sub(limit);
    let messages = log.iter().skip(skip).map(|entry| message_view(entry, &bot.first_name)).collect();
    let answers = match after {
        Some(after) => st
            .events(after, Some(chat_id), Some("callback_answer"), 100)
            .into_iter()
            .filter_map(|event| event.detail)
            .map(|detail| ClickAnswer {
                message_id: detail["message_id"].as_i64(),
                text: detail["text"].as_str().map(str::to_owned),
                show_alert: detail["show_alert"].as_bool().unwrap_or(false),
            })
            .collect(),
        None => Vec::new(),
    };
    ChatView { chat_id, seq: st.last_seq(), bot, messages, reply_keyboard: reply_keyboard(log), answers }
}

fn message_view(entry: &ChatMessage, bot_name: &str) -> MessageView {
    let message = &entry.message;
    let sender = if entry.from_bot { bot_name.to_owned() } else { sender_name(message) };
    let (text, entities) = match (&message.text, &message.caption) {
        (Some(text), _) => (Some(text.clone()), message.entities.clone()),
        (None, Some(caption)) => (Some(caption.clone()), message.caption_entities.clone()),
        (None, None) => (None, None),
    };
    let reply_to = message.reply_to_message.as_ref().map(|replied| ReplyView {
        message_id: replied.message_id,
        sender: sender_name(replied),
        text: summary(replied),
    });
    MessageView {
        message_id: message.message_id,
        from_bot: entry.from_bot,
        sender,
        date: message.date,
        text,
        entities: entities.unwrap_or_default(),
        media: media(message),
        poll: message.poll.clone(),
        reply_to,
        inline_keyboard: message.reply_markup.as_ref().map(|m| m["inline_keyboard"].clone()).filter(Value::is_array),
        edited: message.edit_date.is_some(),
        deleted: entry.deleted,
    }
}

/// The name a chat shows above a message.
fn sender_name(message: &Message) -> String {
    match (&message.from, &message.sender_chat) {
        (Some(User { first_name, last_name: Some(last), .. }), _) => format!("{first_name} {last}"),
        (Some(user), _) => user.first_name.clone(),
        (None, Some(chat)) => chat.title.clone().unwrap_or_default(),
        (None, None) => String::new(),
    }
}

/// A line that stands for a message in a reply's quote.
fn summary(message: &Message) -> String {
    let text = message.text.as_ref().or(message.caption.as_ref());
    let kind = media(message).map(|m| m.kind).or(message.poll.as_ref().map(|_| "poll"));
    match (text, kind) {
        (Some(text), _) => text.chars().take(100).collect(),
        (None, Some(kind)) => format!("[{kind}]"),
        (None, None) => String::new(),
    }
}

/// The file a message carries, if any.
fn media(message: &Message) -> Option<MediaView> {
    let file = |kind, file_id: &str, file_name: &Option<String>, mime_type: &Option<String>, file_size| MediaView {
        kind,
        file_id: file_id.to_owned(),
        file_name: file_name.clone(),
        mime_type: mime_type.clone(),
        file_size,
        width: None,
        height: None,
        // A file sent by URL has no size: the emulator never fetched its bytes.
        content: file_size.map(|_| format!("/control/files/{file_id}/content")),
    };
    let sized = |view: MediaView, width, height| MediaView { width: Some(width), height: Some(height), ..view };
    let none = None;
    if let Some(photo) = message.photo.as_ref().and_then(|sizes| sizes.last()) {
        return Some(sized(file("photo", &photo.file_id, &none, &none, photo.file_size), photo.width, photo.height));
    }
    if let Some(a) = &message.animation {
        return Some(sized(file("animation", &a.file_id, &a.file_name, &a.mime_type, a.file_size), a.width, a.height));
    }
    if let Some(d) = &message.document {
        return Some(file("document", &d.file_id, &d.file_name, &d.mime_type, d.file_size));
    }
    if let Some(a) = &message.audio {
        let name = a.title.clone().or_else(|| a.file_name.clone());
        return Some(file("audio", &a.file_id, &name, &a.mime_type, a.file_size));
    }
    if let Some(v) = &message.video {
        return Some(sized(file("video", &v.file_id, &v.file_name, &v.mime_type, v.file_size), v.width, v.height));
    }
    if let Some(v) = &message.voice {
        return Some(file("voice", &v.file_id, &none, &v.mime_type, v.file_size));
    }
    if let Some(v) = &message.video_note {
        return Some(sized(file("video_note", &v.file_id, &none, &none, v.file_size), v.length, v.length));
    }
    if let Some(s) = &message.sticker {
        return Some(sized(file("sticker", &s.file_id, &s.emoji, &none, s.file_size), s.width, s.height));
    }
    None
}

/// The reply keyboard the chat shows now: the last one a bot message brought, unless a later one removed it or it
/// was a one-time keyboard and the user has written since.
fn reply_keyboard(log: &VecDeque<ChatMessage>) -> Option<ReplyKeyboard> {
    let mut user_wrote = false;
    for entry in log.iter().rev() {
        if !entry.from_bot {
            user_wrote = true;
            continue;
        }
        // Kept as sent: an object in a JSON call, a JSON string in a form.
        let markup = match entry.options.get("reply_markup") {
            Some(Value::String(text)) => serde_json::from_str(text).unwrap_or_default(),
            Some(markup) => markup.clone(),
            None => continue,
        };
        if let Some(rows) = markup["keyboard"].as_array() {
            if user_wrote && markup["one_time_keyboard"].as_bool() == Some(true) {
                return None;
            }
            let text = |button: &Value| button.as_str().or_else(|| button["text"].as_str()).map(str::to_owned);
            let rows = rows
                .iter()
                .filter_map(Value::as_array)
                .map(|row| row.iter().filter_map(text).collect::<Vec<_>>())
                .filter(|row| !row.is_empty())
                .collect();
            let placeholder = markup["input_field_placeholder"].as_str().map(str::to_owned);
            return Some(ReplyKeyboard { rows, placeholder });
        }
        if markup.get("remove_keyboard").is_some() {
            return None;
        }
    }
    None
}
