//! `TestUser`: a user who writes to bots, clicks their buttons, edits and blocks, and reads their answers;
//! `TestGroup`: a group users write in.

use std::{collections::HashMap, sync::Arc, time::Duration};

use anyhow::anyhow;
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::{Control, DEFAULT_WAIT, Sent, TestBot};
use crate::types::{ChatMessage, Message};

/// A user who talks to bots; remembers, per bot and chat, which bot messages it has already read.
#[derive(Clone)]
pub struct TestUser {
    /// The user's id, also the id of their private chat with any bot.
    pub id: i64,
    pub(super) control: Control,
    pub(super) cursors: Arc<Mutex<HashMap<(i64, i64), u64>>>,
}

/// A group or supergroup users can write in.
#[derive(Debug, Clone)]
pub struct TestGroup {
    /// Negative chat id.
    pub id: i64,
    /// Group title.
    pub title: String,
}

impl TestUser {
    /// Sends `text` to the bot in the private chat (a leading `/command` gets its `bot_command` entity).
    pub async fn send(&self, bot: &TestBot, text: &str) -> anyhow::Result<Sent> {
        self.control.post(&bot.path("/messages"), json!({ "from": self.id, "text": text })).await
    }

    /// Sends `text` in a group the bot is in.
    pub async fn send_in(&self, bot: &TestBot, group: &TestGroup, text: &str) -> anyhow::Result<Sent> {
        let chat = json!({ "id": group.id, "title": group.title });
        self.control.post(&bot.path("/messages"), json!({ "from": self.id, "chat": chat, "text": text })).await
    }

    /// Edits one of the user's own messages in the private chat.
    pub async fn edit(&self, bot: &TestBot, message_id: i64, text: &str) -> anyhow::Result<Sent> {
        let body = json!({ "from": self.id, "message_id": message_id, "text": text });
        self.control.post(&bot.path("/edits"), body).await
    }

    /// Clicks the inline button with `data` on a message the bot sent.
    pub async fn click(&self, bot: &TestBot, message: &Message, data: &str) -> anyhow::Result<Sent> {
        let body =
            json!({ "from": self.id, "chat_id": message.chat.id, "message_id": message.message_id, "data": data });
        self.control.post(&bot.path("/callbacks"), body).await
    }

    /// Clicks a button whether or not the message still shows it: a click on a keyboard the user still sees
    /// before an edit reached them (a double tap).
    pub async fn click_stale(&self, bot: &TestBot, message: &Message, data: &str) -> anyhow::Result<Sent> {
        let body = json!({
            "from": self.id, "chat_id": message.chat.id, "message_id": message.message_id, "data": data, "unchecked": true,
        });
        self.control.post(&bot.path("/callbacks"), body).await
    }

    /// Blocks the bot: its sends to this user fail with 403.
    pub async fn block(&self, bot: &TestBot) -> anyhow::Result<()> {
        self.control.post::<Value>(&bot.path("/block"), json!({ "user_id": self.id })).await.map(drop)
    }

    /// Unblocks the bot.
    pub async fn unblock(&self, bot: &TestBot) -> anyhow::Result<()> {
        self.control.post::<Value>(&bot.path("/unblock"), json!({ "user_id": self.id })).await.map(drop)
    }

    /// The next message the bot sends in the private chat, waiting up to [`DEFAULT_WAIT`].
    pub async fn next_message_from(&self, bot: &TestBot) -> anyhow::Result<Message> {
        self.next_message_in(bot, self.id, DEFAULT_WAIT).await
    }

    /// The next message the bot sends in `chat_id` that this handle has not returned yet, waiting up to `wait`.
    pub async fn next_message_in(&self, bot: &TestBot, chat_id: i64, wait: Duration) -> anyhow::Result<Message> {
        let after = self.cursors.lock().get(&(bot.id, chat_id)).copied().unwrap_or(0);
        let event = bot.next_event(after, Some(chat_id), Some("message"), wait).await?;
        self.cursors.lock().insert((bot.id, chat_id), event.seq);
        event.message.ok_or_else(|| anyhow!("message event without a message"))
    }

    /// Every message in the private chat with the bot, oldest first.
    pub async fn transcript(&self, bot: &TestBot) -> anyhow::Result<Vec<ChatMessage>> {
        bot.transcript(self.id).await
    }
}
