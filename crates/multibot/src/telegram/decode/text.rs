//! The commonest update, a plain text message (or its edit), decoded without teloxide's general path. teloxide
//! reads an `Update` through three flattened, untagged layers: the whole update is buffered, then the message,
//! then its media, and `MediaKind` tries thirteen variants (each failing with a formatted error) before `Text`.
//! [`plain_text`] reads the fields of such a message straight into teloxide's types. Any other field, or any
//! value that does not read, gives `None` and the update goes the general way; so whatever this decodes, teloxide
//! decodes the same (the tests compare the two).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, de::Error};
use serde_json::value::RawValue;
use teloxide_core::types::{
    BusinessConnectionId, Chat, ChatId, ChatKind, ChatPrivate, InlineKeyboardMarkup, LinkPreviewOptions, MediaKind,
    MediaText, Message, MessageCommon, MessageEntity, MessageId, MessageKind, ThreadId, Update, UpdateId, UpdateKind,
    User,
};

/// An update holding one text message, new or edited, and nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Plain {
    update_id: u32,
    message: Option<Text>,
    edited_message: Option<Text>,
}

/// The fields of a text message that need no more than their own types to read; a message with any other
/// field (a reply, a forward, media) is left to teloxide.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Text {
    message_id: i32,
    message_thread_id: Option<ThreadId>,
    from: Option<User>,
    sender_chat: Option<Chat>,
    date: i64,
    #[serde(deserialize_with = "chat")]
    chat: Chat,
    #[serde(default)]
    is_topic_message: bool,
    via_bot: Option<User>,
    sender_business_bot: Option<User>,
    author_signature: Option<String>,
    edit_date: Option<i64>,
    text: String,
    #[serde(default)]
    entities: Vec<MessageEntity>,
    link_preview_options: Option<LinkPreviewOptions>,
    reply_markup: Option<InlineKeyboardMarkup>,
    #[serde(default)]
    is_automatic_forward: bool,
    #[serde(default)]
    has_protected_content: bool,
    #[serde(default)]
    is_from_offline: bool,
    business_connection_id: Option<BusinessConnectionId>,
}

/// The update, if it is a plain text message (or its edit) as [`Text`] lists its fields; else `None`.
pub(super) fn plain_text(raw: &[u8]) -> Option<Update> {
    let plain: Plain = serde_json::from_slice(raw).ok()?;
    let kind = match (plain.message, plain.edited_message) {
        (Some(message), None) => UpdateKind::Message(message.into_message()?),
        (None, Some(message)) => UpdateKind::EditedMessage(message.into_message()?),
        _ => return None,
    };
    Some(Update { id: UpdateId(plain.update_id), kind })
}

/// A chat as teloxide reads it; a private one without trying (and failing, with a formatted error) the public
/// kinds first, as teloxide's untagged `ChatKind` does.
fn chat<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Chat, D::Error> {
    #[derive(Deserialize)]
    enum Private {
        #[serde(rename = "private")]
        Private,
    }
    /// teloxide's own reading of a private chat, which ignores other fields too.
    #[derive(Deserialize)]
    struct PrivateChat {
        id: ChatId,
        #[serde(rename = "type")]
        _type: Private,
        username: Option<String>,
        first_name: Option<String>,
        last_name: Option<String>,
    }
    let raw = <&RawValue>::deserialize(deserializer)?;
    match serde_json::from_str(raw.get()) {
        Ok(PrivateChat { id, username, first_name, last_name, .. }) => {
            Ok(Chat { id, kind: ChatKind::Private(ChatPrivate { username, first_name, last_name }) })
        }
        Err(_) => serde_json::from_str(raw.get()).map_err(D::Error::custom),
    }
}

/// A Unix time as teloxide reads it (`None` where teloxide fails).
fn time(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0)
}

impl Text {
    fn into_message(self) -> Option<Message> {
        let edit_date = match self.edit_date {
            Some(seconds) => Some(time(seconds)?),
            None => None,
        };
        let common = MessageCommon {
            author_signature: self.author_signature,
            paid_star_count: None,
            effect_id: None,
            forward_origin: None,
            reply_to_message: None,
            external_reply: None,
            quote: None,
            reply_to_story: None,
            sender_boost_count: None,
            edit_date,
            media_kind: MediaKind::Text(MediaText {
                text: self.text,
                entities: self.entities,
                link_preview_options: self.link_preview_options,
            }),
            reply_markup: self.reply_markup,
            is_automatic_forward: self.is_automatic_forward,
            has_protected_content: self.has_protected_content,
            is_from_offline: self.is_from_offline,
            business_connection_id: self.business_connection_id,
        };
        Some(Message {
            id: MessageId(self.message_id),
            thread_id: self.message_thread_id,
            from: self.from,
            sender_chat: self.sender_chat,
            date: time(self.date)?,
            chat: self.chat,
            is_topic_message: self.is_topic_message,
            via_bot: self.via_bot,
            sender_business_bot: self.sender_business_bot,
            kind: MessageKind::Common(common),
        })
    }
}

#[cfg(test)]
mod tests {
    use teloxide_core::types::Update;

    use super::plain_text;

    const USER: &str = r#"{"id":7,"is_bot":false,"first_name":"Ann","last_name":"Lee","username":"ann","language_code":"en","is_premium":true}"#;

    /// Text messages as Telegram sends them, each of which the fast path must read exactly as teloxide does.
    fn text_messages() -> Vec<String> {
        let private = r#"{"id":7,"first_name":"Ann","username":"ann","type":"private"}"#;
        let group = r#"{"id":-100123,"title":"Team","type":"supergroup","is_forum":true}"#;
        let small_group = r#"{"id":-5,"title":"Few","type":"group"}"#;
        let channel = r#"{"id":-100777,"title":"News","username":"news","type":"channel"}"#;
        let odd_private = r#"{"id":8,"type":"private","last_name":"Lee","photo":null,"extra":[1,2]}"#;
        let entities = r#"[{"offset":0,"length":6,"type":"bot_command"},{"offset":7,"length":4,"type":"url"},{"offset":12,"length":3,"type":"text_link","url":"https://example.com/a"},{"offset":16,"length":2,"type":"mention"}]"#;
        let keyboard = r#"{"inline_keyboard":[[{"text":"Open","url":"https://example.com/"},{"text":"Go","callback_data":"go"}]]}"#;
        vec![
            format!(
                r#"{{"update_id":1,"message":{{"message_id":5,"from":{USER},"chat":{private},"date":1700000000,"text":"hello"}}}}"#
            ),
            format!(
                r#"{{"update_id":2,"message":{{"message_id":6,"from":{USER},"chat":{private},"date":1700000001,"text":"/start x.io abc @a","entities":{entities}}}}}"#
            ),
            format!(
                r#"{{"update_id":3,"message":{{"message_id":7,"message_thread_id":3,"from":{USER},"chat":{group},"date":1700000002,"is_topic_message":true,"text":"in a topic","has_protected_content":true,"is_from_offline":true,"author_signature":"boss"}}}}"#
            ),
            format!(
                r#"{{"update_id":4,"edited_message":{{"message_id":8,"from":{USER},"chat":{private},"date":1700000003,"edit_date":1700000009,"text":"edited","link_preview_options":{{"is_disabled":true}}}}}}"#
            ),
            format!(
                r#"{{"update_id":5,"message":{{"message_id":9,"sender_chat":{group},"chat":{group},"date":1700000004,"text":"anonymous","is_automatic_forward":true,"via_bot":{{"id":9,"is_bot":true,"first_name":"B","username":"b_bot"}},"reply_markup":{keyboard}}}}}"#
            ),
            format!(
                r#"{{"update_id":6,"message":{{"message_id":10,"from":{USER},"chat":{private},"date":1700000005,"text":"via business","business_connection_id":"bc1","sender_business_bot":{{"id":9,"is_bot":true,"first_name":"B"}},"entities":[]}}}}"#
            ),
            format!(r#"{{"update_id":8,"message":{{"message_id":12,"chat":{small_group},"date":1,"text":"group"}}}}"#),
            format!(
                r#"{{"update_id":9,"message":{{"message_id":13,"sender_chat":{channel},"chat":{channel},"date":1,"text":"post"}}}}"#
            ),
            format!(
                r#"{{"update_id":10,"message":{{"message_id":14,"from":{USER},"chat":{odd_private},"date":1,"text":"odd"}}}}"#
            ),
            format!(
                r#"{{"update_id":7,"message":{{"message_id":11,"from":null,"chat":{private},"date":1700000006,"text":"\u00e9\ud83d\ude00 \"quoted\""}}}}"#
            ),
        ]
    }

    #[test]
    fn a_text_message_reads_as_teloxide_reads_it() {
        for raw in text_messages() {
            let expected: Update = serde_json::from_str(&raw).unwrap();
            assert_eq!(plain_text(raw.as_bytes()), Some(expected), "{raw}");
        }
    }

    #[test]
    fn anything_else_is_left_to_teloxide() {
        let private = r#"{"id":7,"first_name":"Ann","type":"private"}"#;
        let left = [
            // Media, a reply, a forward: fields this path does not know.
            format!(
                r#"{{"update_id":1,"message":{{"message_id":5,"chat":{private},"date":1,"photo":[{{"file_id":"a","file_unique_id":"b","width":1,"height":1}}],"caption":"hi"}}}}"#
            ),
            format!(
                r#"{{"update_id":2,"message":{{"message_id":6,"chat":{private},"date":1,"text":"re","reply_to_message":{{"message_id":5,"chat":{private},"date":1,"text":"hi"}}}}}}"#
            ),
            format!(
                r#"{{"update_id":3,"message":{{"message_id":7,"chat":{private},"date":1,"text":"fw","forward_origin":{{"type":"hidden_user","date":1,"sender_user_name":"X"}}}}}}"#
            ),
            // Other kinds of update, two messages in one update, a message without text, a field of a newer API.
            format!(r#"{{"update_id":4,"callback_query":{{"id":"1","from":{USER},"chat_instance":"c","data":"d"}}}}"#),
            format!(
                r#"{{"update_id":5,"message":{{"message_id":8,"chat":{private},"date":1,"text":"a"}},"edited_message":{{"message_id":8,"chat":{private},"date":1,"text":"b"}}}}"#
            ),
            format!(r#"{{"update_id":6,"message":{{"message_id":9,"chat":{private},"date":1,"new_chat_title":"t"}}}}"#),
            format!(
                r#"{{"update_id":7,"message":{{"message_id":10,"chat":{private},"date":1,"text":"x","some_future_field":1}}}}"#
            ),
            // Values that do not read: a date out of range, a string for a number.
            format!(
                r#"{{"update_id":8,"message":{{"message_id":11,"chat":{private},"date":99999999999999999,"text":"x"}}}}"#
            ),
            format!(r#"{{"update_id":9,"message":{{"message_id":"12","chat":{private},"date":1,"text":"x"}}}}"#),
            r#"{"update_id":10,"message":{"message_id":12,"chat":{"id":1,"type":"planet"},"date":1,"text":"x"}}"#
                .to_owned(),
        ];
        for raw in left {
            assert_eq!(plain_text(raw.as_bytes()), None, "{raw}");
        }
    }
}
