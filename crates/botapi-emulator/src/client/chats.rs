//! Chats beyond the private one: channels ([`TestChannel`]) and their posts and boosts, memberships in groups and
//! channels (members joining and leaving, the bot added or removed, join requests), and business accounts
//! connected to the bot with their chats.

use serde_json::{Value, json};

use super::{Control, Queued, Sent, TestBot, TestGroup, TestUser};

/// A channel a bot is in.
#[derive(Debug, Clone)]
pub struct TestChannel {
    /// Negative chat id.
    pub id: i64,
    /// Channel title.
    pub title: String,
}

/// A group, supergroup or channel, as the control API describes it.
pub trait SharedChat {
    /// The chat's description for the control API: id, title and type.
    fn chat_spec(&self) -> Value;
}

impl SharedChat for TestGroup {
    fn chat_spec(&self) -> Value {
        json!({ "id": self.id, "title": self.title })
    }
}

impl SharedChat for TestChannel {
    fn chat_spec(&self) -> Value {
        json!({ "id": self.id, "title": self.title, "type": "channel" })
    }
}

impl Control {
    /// A channel with this (negative) id and title.
    pub fn channel(&self, id: i64, title: &str) -> TestChannel {
        TestChannel { id, title: title.to_owned() }
    }
}

impl TestUser {
    /// Changes the status of user `user_id` (the bot's id for the bot itself) in `chat` to `status` (`creator`,
    /// `administrator`, `member`, `restricted`, `left`, `kicked`), as done by this user: a `chat_member` update,
    /// or `my_chat_member` for the bot, with the old status the emulator knew.
    pub async fn set_member_status(
        &self,
        bot: &TestBot,
        chat: &impl SharedChat,
        user_id: i64,
        status: &str,
    ) -> anyhow::Result<Queued> {
        let body = json!({ "chat": chat.chat_spec(), "from": self.id, "user": user_id, "status": status });
        self.control.post(&bot.path("/chat_members"), body).await
    }

    /// Joins `chat` (a `chat_member` update).
    pub async fn join(&self, bot: &TestBot, chat: &impl SharedChat) -> anyhow::Result<Queued> {
        self.set_member_status(bot, chat, self.id, "member").await
    }

    /// Leaves `chat` (a `chat_member` update).
    pub async fn leave(&self, bot: &TestBot, chat: &impl SharedChat) -> anyhow::Result<Queued> {
        self.set_member_status(bot, chat, self.id, "left").await
    }

    /// Adds the bot to `chat` (a `my_chat_member` update).
    pub async fn add_bot_to(&self, bot: &TestBot, chat: &impl SharedChat) -> anyhow::Result<Queued> {
        self.set_member_status(bot, chat, bot.id, "member").await
    }

    /// Removes the bot from `chat` (a `my_chat_member` update); its sends there fail with 403 from then on.
    pub async fn remove_bot_from(&self, bot: &TestBot, chat: &impl SharedChat) -> anyhow::Result<Queued> {
        self.set_member_status(bot, chat, bot.id, "left").await
    }

    /// Asks to join `chat` (a `chat_join_request` update).
    pub async fn join_request(&self, bot: &TestBot, chat: &impl SharedChat) -> anyhow::Result<Queued> {
        let body = json!({ "from": self.id, "chat": chat.chat_spec() });
        self.control.post(&bot.path("/join_requests"), body).await
    }

    /// Boosts a channel or supergroup (a `chat_boost` update); [`Queued::id`] is the boost's id.
    pub async fn boost(&self, bot: &TestBot, chat: &impl SharedChat) -> anyhow::Result<Queued> {
        self.control.post(&bot.path("/boosts"), json!({ "from": self.id, "chat": chat.chat_spec() })).await
    }

    /// Connects the user's business account to the bot (a `business_connection` update); [`Queued::id`] is the
    /// connection's id.
    pub async fn connect_business(&self, bot: &TestBot) -> anyhow::Result<Queued> {
        self.control.post(&bot.path("/business_connections"), json!({ "user": self.id })).await
    }

    /// Disconnects the user's business account (a `business_connection` update with `is_enabled` false).
    pub async fn disconnect_business(&self, bot: &TestBot, connection_id: &str) -> anyhow::Result<Queued> {
        let body = json!({ "user": self.id, "id": connection_id, "is_enabled": false });
        self.control.post(&bot.path("/business_connections"), body).await
    }

    /// Writes to a business account as its customer (a `business_message` update).
    pub async fn send_business(&self, bot: &TestBot, connection_id: &str, text: &str) -> anyhow::Result<Sent> {
        let body = json!({ "business_connection_id": connection_id, "from": self.id, "text": text });
        self.control.post(&bot.path("/business_messages"), body).await
    }

    /// Writes to customer `customer_id` as the owner of the business account (a `business_message` update).
    pub async fn send_business_to(
        &self,
        bot: &TestBot,
        connection_id: &str,
        customer_id: i64,
        text: &str,
    ) -> anyhow::Result<Sent> {
        let body =
            json!({ "business_connection_id": connection_id, "from": self.id, "chat_id": customer_id, "text": text });
        self.control.post(&bot.path("/business_messages"), body).await
    }

    /// Edits a business message (an `edited_business_message` update).
    pub async fn edit_business(
        &self,
        bot: &TestBot,
        connection_id: &str,
        sent: &Sent,
        text: &str,
    ) -> anyhow::Result<Sent> {
        let body = json!({
            "business_connection_id": connection_id, "chat_id": sent.chat_id, "message_id": sent.message_id, "text": text,
        });
        self.control.post(&bot.path("/business_messages/edits"), body).await
    }
}

impl TestBot {
    /// A post in `channel` (a `channel_post` update).
    pub async fn channel_post(&self, channel: &TestChannel, text: &str) -> anyhow::Result<Sent> {
        let body = json!({ "chat": channel.chat_spec(), "text": text });
        self.control.post(&self.path("/channel_posts"), body).await
    }

    /// An edit of a post in `channel` (an `edited_channel_post` update).
    pub async fn edit_channel_post(&self, channel: &TestChannel, message_id: i64, text: &str) -> anyhow::Result<Sent> {
        let body = json!({ "chat_id": channel.id, "message_id": message_id, "text": text });
        self.control.post(&self.path("/channel_posts/edits"), body).await
    }

    /// A boost ends early (a `removed_chat_boost` update).
    pub async fn remove_boost(&self, boost_id: &str) -> anyhow::Result<Queued> {
        self.control.call(reqwest::Method::DELETE, &self.path(&format!("/boosts/{boost_id}")), None).await
    }

    /// Messages of a business chat are deleted (a `deleted_business_messages` update).
    pub async fn delete_business_messages(
        &self,
        connection_id: &str,
        chat_id: i64,
        message_ids: &[i64],
    ) -> anyhow::Result<Queued> {
        let body = json!({ "business_connection_id": connection_id, "chat_id": chat_id, "message_ids": message_ids });
        self.control.post(&self.path("/business_messages/deletions"), body).await
    }
}
