//! `TestBot`: a bot registered in the emulator, as a test sees it: its transcripts, events, counters, call log,
//! command lists and webhook, and the faults injected for it.

use std::time::Duration;

use anyhow::anyhow;
use serde_json::{Value, json};

use super::{Control, FaultSpec};
use crate::types::{BotStats, CallRecord, ChatMessage, Event};

/// A bot registered in the emulator.
#[derive(Clone)]
pub struct TestBot {
    /// The bot's user id (the token's digits).
    pub id: i64,
    /// Its username, without `@`.
    pub username: String,
    /// Its token, for pointing a client at the emulator.
    pub token: String,
    pub(super) control: Control,
}

impl std::fmt::Debug for TestBot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBot").field("id", &self.id).field("username", &self.username).finish_non_exhaustive()
    }
}

impl TestBot {
    pub(super) fn path(&self, rest: &str) -> String {
        format!("/bots/{}{rest}", self.id)
    }

    /// Delivery and sending counters.
    pub async fn stats(&self) -> anyhow::Result<BotStats> {
        self.control.get(&self.path("/stats")).await
    }

    /// Everything in a chat, oldest first, as this bot sees it.
    pub async fn transcript(&self, chat_id: i64) -> anyhow::Result<Vec<ChatMessage>> {
        self.control.get(&self.path(&format!("/chats/{chat_id}"))).await
    }

    /// Events after `after`, optionally of one chat and kind, waiting up to `wait` for the first.
    pub async fn events(
        &self,
        after: u64,
        chat_id: Option<i64>,
        kind: Option<&str>,
        wait: Duration,
    ) -> anyhow::Result<Vec<Event>> {
        let mut path = format!("/events?after={after}&wait_ms={}", wait.as_millis());
        if let Some(chat_id) = chat_id {
            path.push_str(&format!("&chat_id={chat_id}"));
        }
        if let Some(kind) = kind {
            path.push_str(&format!("&kind={kind}"));
        }
        self.control.get(&self.path(&path)).await
    }

    /// The first event after `after` of this chat and kind, or an error after `wait`.
    pub async fn next_event(
        &self,
        after: u64,
        chat_id: Option<i64>,
        kind: Option<&str>,
        wait: Duration,
    ) -> anyhow::Result<Event> {
        let events = self.events(after, chat_id, kind, wait).await?;
        events
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("bot {} did nothing ({kind:?} in chat {chat_id:?}) within {wait:?}", self.username))
    }

    /// Callback query answers the bot gave, oldest first.
    pub async fn callback_answers(&self) -> anyhow::Result<Vec<Event>> {
        self.events(0, None, Some("callback_answer"), Duration::ZERO).await
    }

    /// The bot's command lists, keyed by scope and language.
    pub async fn commands(&self) -> anyhow::Result<Value> {
        self.control.get(&self.path("/commands")).await
    }

    /// The bot's webhook as the emulator holds it, or `Null`.
    pub async fn webhook(&self) -> anyhow::Result<Value> {
        let info: Value = self.control.get(&self.path("")).await?;
        Ok(info["webhook_info"].clone())
    }

    /// Injects a fault for this bot.
    pub async fn inject(&self, fault: FaultSpec) -> anyhow::Result<()> {
        self.control.post::<Value>(&self.path("/faults"), fault.0).await.map(drop)
    }

    /// Removes this bot's injected faults.
    pub async fn clear_faults(&self) -> anyhow::Result<()> {
        self.control.call::<Value>(reqwest::Method::DELETE, &self.path("/faults"), None).await.map(drop)
    }

    /// Queues any update, given as `{"<type>": {...}}`; returns its id.
    pub async fn push_update(&self, update: Value) -> anyhow::Result<Option<i64>> {
        let answer: Value = self.control.post(&self.path("/updates"), update).await?;
        Ok(answer["update_id"].as_i64())
    }

    /// Makes the bot's next update id at least `next` (ids of updates a test stored itself stay below it).
    pub async fn skip_update_ids(&self, next: i64) -> anyhow::Result<()> {
        self.control.post::<Value>(&self.path("/update_ids"), json!({ "next": next })).await.map(drop)
    }

    /// Clears the bot's updates, chats, webhook, commands and counters.
    pub async fn reset(&self) -> anyhow::Result<()> {
        self.control.post::<Value>(&self.path("/reset"), json!({})).await.map(drop)
    }

    /// Bot API calls this bot made, oldest first, optionally of one method.
    pub async fn calls(&self, method: Option<&str>) -> anyhow::Result<Vec<CallRecord>> {
        self.control.calls(Some(self), method).await
    }
}
