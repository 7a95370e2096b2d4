//! What the world remembers per bot beyond messages, so that answers and follow-up updates are checked against
//! it: inline and payment queries awaiting answers, polls and their votes, chat memberships, business
//! connections and their chats, and boosts.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::ChatLog;
use crate::types::{Chat, ChatMessage, Poll, User};

/// An inline query sent to the bot, and the results it answered with.
pub(crate) struct InlineQuery {
    pub(crate) query: String,
    pub(crate) results: Option<Vec<Value>>,
}

/// A shipping or pre-checkout query sent to the bot.
pub(crate) struct PaymentQuery {
    /// `shipping_query` or `pre_checkout_query`.
    pub(crate) kind: &'static str,
    pub(crate) answered: bool,
}

/// A poll the bot sent, and who voted for what.
pub(crate) struct PollRecord {
    pub(crate) poll: Poll,
    pub(crate) chat_id: i64,
    pub(crate) message_id: i64,
    pub(crate) votes: BTreeMap<i64, Vec<u32>>,
}

impl PollRecord {
    /// Records `user_id`'s vote (empty to retract it) and recounts.
    pub(crate) fn vote(&mut self, user_id: i64, options: Vec<u32>) {
        if options.is_empty() {
            self.votes.remove(&user_id);
        } else {
            self.votes.insert(user_id, options);
        }
        for (index, option) in self.poll.options.iter_mut().enumerate() {
            option.voter_count = self.votes.values().filter(|v| v.contains(&(index as u32))).count() as u32;
        }
        self.poll.total_voter_count = self.votes.len() as u32;
    }
}

/// A business account connected to the bot, and the chats it had through the connection.
pub(crate) struct Business {
    pub(crate) user: User,
    pub(crate) date: i64,
    pub(crate) can_reply: bool,
    pub(crate) enabled: bool,
    pub(crate) chats: HashMap<i64, ChatLog>,
}

impl Business {
    /// The `BusinessConnection` object for connection `id`.
    pub(crate) fn connection(&self, id: &str) -> Value {
        json!({
            "id": id,
            "user": self.user,
            "user_chat_id": self.user.id,
            "date": self.date,
            "can_reply": self.can_reply,
            "is_enabled": self.enabled,
        })
    }

    /// Records a message in its chat, assigning its id; returns the id.
    pub(crate) fn record(&mut self, mut entry: ChatMessage, limit: usize) -> i64 {
        let chat = entry.message.chat.clone();
        let log = self.chats.entry(chat.id).or_insert_with(|| ChatLog::new(chat));
        let id = log.next_id();
        entry.message.message_id = id;
        log.push(entry, limit);
        id
    }
}

/// A boost of a chat.
pub(crate) struct Boost {
    pub(crate) chat: Chat,
    pub(crate) source: Value,
}

/// Chat member statuses, as `ChatMember` names them.
pub(crate) const STATUSES: [&str; 6] = ["creator", "administrator", "member", "restricted", "left", "kicked"];

/// A `ChatMember` object with every field its status requires; `rights` (`can_*`, `is_anonymous`,
/// `custom_title`, `is_member`) override the defaults. `None` for an unknown status.
pub(crate) fn chat_member(user: &User, status: &str, until_date: i64, rights: &Map<String, Value>) -> Option<Value> {
    let mut member = json!({ "status": status, "user": user });
    let flags: &[(&str, bool)] = match status {
        "creator" => &[("is_anonymous", false)],
        "administrator" => &[
            ("can_be_edited", false),
            ("is_anonymous", false),
            ("can_manage_chat", true),
            ("can_delete_messages", true),
            ("can_manage_video_chats", true),
            ("can_restrict_members", true),
            ("can_promote_members", false),
            ("can_change_info", true),
            ("can_invite_users", true),
            ("can_pin_messages", true),
        ],
        "restricted" => &[
            ("is_member", true),
            ("can_send_messages", false),
            ("can_send_audios", false),
            ("can_send_documents", false),
            ("can_send_photos", false),
            ("can_send_videos", false),
            ("can_send_video_notes", false),
            ("can_send_voice_notes", false),
            ("can_send_polls", false),
            ("can_send_other_messages", false),
            ("can_add_web_page_previews", false),
            ("can_change_info", false),
            ("can_invite_users", false),
            ("can_pin_messages", false),
            ("can_manage_topics", false),
        ],
        "member" | "left" | "kicked" => &[],
        _ => return None,
    };
    for (flag, value) in flags {
        member[*flag] = (*value).into();
    }
    if matches!(status, "restricted" | "kicked") {
        member["until_date"] = until_date.into();
    }
    let allowed = |key: &str| key.starts_with("can_") || matches!(key, "is_anonymous" | "is_member" | "custom_title");
    for (key, value) in rights.iter().filter(|(k, _)| allowed(k)) {
        member[key] = value.clone();
    }
    Some(member)
}
