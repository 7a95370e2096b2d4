//! The Bot API objects the emulator produces (`User`, `Chat`, `Message`, ...) and the records its control API
//! returns (`ChatMessage`, `Event`, `CallRecord`, `BotStats`). Field names and optionality follow the Bot API
//! reference so that real clients deserialize them unchanged. `media` holds the file objects, `poll` the polls.

mod media;
mod poll;

pub use media::{Animation, Audio, Document, File, PhotoSize, Sticker, StoredFile, Video, VideoNote, Voice};
pub use poll::{Poll, PollOption};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A Telegram user or bot (`User` in the Bot API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Unique identifier; for bots, the digits before the token's colon.
    pub id: i64,
    /// True for bots.
    pub is_bot: bool,
    /// First name, never empty.
    pub first_name: String,
    /// Last name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Username without the `@`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// IETF language tag of the user's client, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
}

/// A chat (`Chat` in the Bot API): private chats have positive ids, groups, supergroups and channels negative ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Chat {
    /// Unique identifier.
    pub id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Title, for groups and supergroups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Username, for private chats and public groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// First name of the other party, for private chats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name of the other party, for private chats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
}

impl Chat {
    /// The private chat with `user`.
    pub fn private(user: &User) -> Chat {
        Chat {
            id: user.id,
            kind: "private".into(),
            title: None,
            username: user.username.clone(),
            first_name: Some(user.first_name.clone()),
            last_name: user.last_name.clone(),
        }
    }

    /// True for groups and supergroups.
    pub fn is_group(&self) -> bool {
        self.kind == "group" || self.kind == "supergroup"
    }
}

/// A special entity in a text (`MessageEntity`); offsets and lengths count UTF-16 code units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEntity {
    /// `bold`, `bot_command`, `text_link`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Offset in UTF-16 code units.
    pub offset: usize,
    /// Length in UTF-16 code units.
    pub length: usize,
    /// For `text_link`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// For `pre`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// For `text_mention`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    /// For `custom_emoji`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_emoji_id: Option<String>,
}

/// A message (`Message`), as sent by a user or by a bot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Identifier, increasing within the chat.
    pub message_id: i64,
    /// Sender; absent for channel posts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<User>,
    /// The chat the message was sent on behalf of: the channel, for channel posts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_chat: Option<Chat>,
    /// Chat the message belongs to.
    pub chat: Chat,
    /// The business connection the message came through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_connection_id: Option<String>,
    /// Unix time in seconds when it was sent.
    pub date: i64,
    /// Unix time in seconds of the last edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_date: Option<i64>,
    /// The message this one replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_message: Option<Box<Message>>,
    /// The album (`sendMediaGroup`) the message belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_group_id: Option<String>,
    /// Signature of the post's author, in channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_signature: Option<String>,
    /// Text, for text messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Entities of `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entities: Option<Vec<MessageEntity>>,
    /// Photo sizes, for photos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<Vec<PhotoSize>>,
    /// The animation, for animations (which also set `document`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub animation: Option<Animation>,
    /// The music file, for audio messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<Audio>,
    /// The file, for documents and animations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<Document>,
    /// The sticker, for stickers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticker: Option<Sticker>,
    /// The video, for videos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<Video>,
    /// The round video, for video notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_note: Option<VideoNote>,
    /// The voice note, for voice messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<Voice>,
    /// The poll, for polls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<Poll>,
    /// Caption of a photo, video, animation, audio, voice note or document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// Entities of `caption`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption_entities: Option<Vec<MessageEntity>>,
    /// Link preview options the bot asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_preview_options: Option<Value>,
    /// Inline keyboard attached to the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_markup: Option<Value>,
}

impl Message {
    /// The `callback_data` of every inline button, row by row.
    pub fn callback_data(&self) -> Vec<String> {
        let rows = self.reply_markup.as_ref().and_then(|m| m["inline_keyboard"].as_array());
        rows.into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|b| b["callback_data"].as_str().map(str::to_owned))
            .collect()
    }
}

/// A bot command (`BotCommand`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BotCommand {
    /// Command text without the slash.
    pub command: String,
    /// Description shown in the menu.
    pub description: String,
}

/// A message in a chat's transcript, with what the control API knows beyond the Bot API object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// The message as it is now (after edits).
    pub message: Message,
    /// True when the bot sent it, false when a user did.
    pub from_bot: bool,
    /// `parse_mode` the bot used, if any.
    pub parse_mode: Option<String>,
    /// The text or caption exactly as the bot passed it, before entity parsing.
    pub raw_text: Option<String>,
    /// Every optional parameter of the send call except the text and the file (for `disable_web_page_preview`,
    /// `disable_notification`, ...).
    pub options: serde_json::Map<String, Value>,
    /// Earlier versions, oldest first.
    pub edits: Vec<Message>,
    /// True once deleted.
    pub deleted: bool,
}

/// Something a bot did that tests wait for: sent, edited or deleted a message, answered a query, showed an
/// action, stopped a poll, downloaded a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the bot's event stream, increasing from 1.
    pub seq: u64,
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// Unix time in microseconds (the same instant as `at_ms`, for latency measurements).
    pub at_us: u64,
    /// `message`, `edit`, `delete`, `callback_answer`, `inline_answer`, `shipping_answer`,
    /// `pre_checkout_answer`, `chat_action`, `poll_stop`, `pin`, `ban` or `download`.
    pub kind: String,
    /// Chat concerned, when there is one.
    pub chat_id: Option<i64>,
    /// Message concerned, when there is one.
    pub message_id: Option<i64>,
    /// The message after the event (`message`, `edit`).
    pub message: Option<Message>,
    /// `parse_mode` of a send or edit.
    pub parse_mode: Option<String>,
    /// Answer, chat action, downloaded file, ... depending on the kind.
    pub detail: Option<Value>,
}

/// One Bot API call, as the call log keeps it (never with the token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Position in the log, increasing from 1.
    pub seq: u64,
    /// Unix time in milliseconds when the call arrived.
    pub at_ms: u64,
    /// The bot's id, or `None` when the token was unknown.
    pub bot_id: Option<i64>,
    /// Method name as Telegram spells it (`sendMessage`), or as called when unknown.
    pub method: String,
    /// Parameters; uploaded files are summarised by name, type and size.
    pub params: Value,
    /// HTTP status of the answer (0 when the connection was dropped).
    pub status: u16,
    /// Error description, for failed calls.
    pub error: Option<String>,
    /// The HTTP version the call came over: `HTTP/1.1` or `HTTP/2.0`.
    #[serde(default)]
    pub http: String,
}

/// Per-bot counters for assertions on delivery, loss and duplicates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BotStats {
    /// Updates created for this bot.
    pub updates_created: u64,
    /// Distinct updates handed out at least once (getUpdates or webhook).
    pub updates_delivered: u64,
    /// Hand-outs in total, re-deliveries included.
    pub deliveries: u64,
    /// Updates confirmed (by offset, or by a 2xx webhook answer) or dropped on request.
    pub updates_confirmed: u64,
    /// Updates waiting now.
    pub pending: u64,
    /// Highest `update_id` confirmed so far.
    pub last_confirmed_update_id: Option<i64>,
    /// Messages sent (sendMessage, the file methods, each message of an album, sendPoll).
    pub messages_sent: u64,
    /// Successful edits.
    pub edits: u64,
    /// Successful deletions.
    pub deletions: u64,
    /// Callback queries answered.
    pub callback_answers: u64,
    /// Bot API calls in total.
    pub calls: u64,
    /// Calls answered with 429.
    pub too_many_requests: u64,
    /// Webhook POSTs that failed.
    pub webhook_failures: u64,
}
