//! A Rust client for the control API, so that tests read like what a user does:
//!
//! ```no_run
//! # async fn demo(emu: &botapi_emulator::Emulator) -> anyhow::Result<()> {
//! let bot = emu.bot("123456:AAAAAAAAAAAAAAAAAAAAAAAAAAAA").await?;
//! let alice = emu.user(1001);
//! alice.send(&bot, "/start").await?;
//! let reply = alice.next_message_from(&bot).await?;
//! assert_eq!(reply.text.as_deref(), Some("Welcome!"));
//! # Ok(()) }
//! ```

use std::{collections::HashMap, sync::Arc, time::Duration};

use anyhow::{Context, anyhow, bail};
use parking_lot::Mutex;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::types::{BotStats, CallRecord, ChatMessage, Event, Message, User};

/// How long the `next_*` helpers wait unless told otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// A client for one emulator's control API.
#[derive(Clone)]
pub struct Control {
    http: reqwest::Client,
    base: String,
}

/// A bot registered in the emulator.
#[derive(Clone)]
pub struct TestBot {
    /// The bot's user id (the token's digits).
    pub id: i64,
    /// Its username, without `@`.
    pub username: String,
    /// Its token, for pointing a client at the emulator.
    pub token: String,
    control: Control,
}

impl std::fmt::Debug for TestBot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBot").field("id", &self.id).field("username", &self.username).finish_non_exhaustive()
    }
}

/// A user who talks to bots; remembers, per bot and chat, which bot messages it has already read.
#[derive(Clone)]
pub struct TestUser {
    /// The user's id, also the id of their private chat with any bot.
    pub id: i64,
    control: Control,
    cursors: Arc<Mutex<HashMap<(i64, i64), u64>>>,
}

/// A group or supergroup users can write in.
#[derive(Debug, Clone)]
pub struct TestGroup {
    /// Negative chat id.
    pub id: i64,
    /// Group title.
    pub title: String,
}

/// What a user action created.
#[derive(Debug, Clone, Deserialize)]
pub struct Sent {
    /// The update's id, or `None` when the bot's `allowed_updates` filtered it out.
    pub update_id: Option<i64>,
    /// The chat.
    pub chat_id: i64,
    /// The user's message (or the clicked message).
    pub message_id: i64,
    /// For callback clicks.
    #[serde(default)]
    pub callback_query_id: Option<String>,
}

/// An injected failure for the next calls of a method.
#[derive(Debug, Clone)]
pub struct FaultSpec(Value);

impl FaultSpec {
    /// The next call of `method` (`*` for any) fails with `code`.
    pub fn error(method: &str, code: u16) -> FaultSpec {
        FaultSpec(json!({ "method": method, "error_code": code }))
    }

    /// The next call of `method` answers 429 with this `retry_after`.
    pub fn too_many_requests(method: &str, retry_after: u32) -> FaultSpec {
        FaultSpec(json!({ "method": method, "error_code": 429, "retry_after": retry_after }))
    }

    /// The next call of `method` is answered after `delay`.
    pub fn delay(method: &str, delay: Duration) -> FaultSpec {
        FaultSpec(json!({ "method": method, "delay_ms": delay.as_millis() as u64 }))
    }

    /// The next call of `method` has its connection closed before it is processed.
    pub fn drop_request(method: &str) -> FaultSpec {
        FaultSpec(json!({ "method": method, "drop": "request" }))
    }

    /// The next call of `method` is processed, then its connection is closed without an answer.
    pub fn drop_response(method: &str) -> FaultSpec {
        FaultSpec(json!({ "method": method, "drop": "response" }))
    }

    /// The next call of `method` is answered `status` with an HTML error page (as Telegram's front end answers
    /// under load) instead of being processed.
    pub fn html_error(method: &str, status: u16) -> FaultSpec {
        FaultSpec(json!({ "method": method, "html_error": status }))
    }

    /// The next call of `method` is processed, then these fields (dot-separated paths, applied to each element of
    /// a list) are removed from its result, as an older or third-party Bot API server would leave them out. Only
    /// an answer that had such a field uses up the fault: `omit("getUpdates", &["callback_query.chat_instance"])`
    /// waits for the next callback query.
    pub fn omit(method: &str, paths: &[&str]) -> FaultSpec {
        FaultSpec(json!({ "method": method, "omit": paths }))
    }

    /// The next call of `method` is processed, then answered with `result` instead of its own result (e.g. `true`
    /// for `editMessageText`, as for an inline message).
    pub fn answer(method: &str, result: Value) -> FaultSpec {
        FaultSpec(json!({ "method": method, "result": result }))
    }

    /// Applies to the next `n` calls instead of one.
    pub fn times(mut self, n: u32) -> FaultSpec {
        self.0["times"] = n.into();
        self
    }

    /// Uses this error description.
    pub fn description(mut self, text: &str) -> FaultSpec {
        self.0["description"] = text.into();
        self
    }
}

impl Control {
    /// A client for the emulator at `base` (e.g. `http://127.0.0.1:8081`).
    pub fn new(base: impl Into<String>) -> Control {
        let base = base.into().trim_end_matches('/').to_owned();
        Control { http: reqwest::Client::new(), base }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<T> {
        let url = format!("{}/control{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("control API {path}"))?;
        let status = response.status();
        let text = response.text().await.with_context(|| format!("control API {path}"))?;
        if !status.is_success() {
            bail!("control API {path}: {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("control API {path}: unexpected answer {text}"))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: Value) -> anyhow::Result<T> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Registers a bot with this token (or returns the registered one).
    pub async fn bot(&self, token: &str) -> anyhow::Result<TestBot> {
        self.register(json!({ "token": token })).await
    }

    /// Registers a bot with a display name and username.
    pub async fn bot_named(&self, token: &str, first_name: &str, username: &str) -> anyhow::Result<TestBot> {
        self.register(json!({ "token": token, "first_name": first_name, "username": username })).await
    }

    async fn register(&self, body: Value) -> anyhow::Result<TestBot> {
        let token = body["token"].as_str().unwrap_or_default().to_owned();
        let view: Value = self.post("/bots", body).await?;
        Ok(TestBot {
            id: view["id"].as_i64().ok_or_else(|| anyhow!("no id in {view}"))?,
            username: view["username"].as_str().unwrap_or_default().to_owned(),
            token,
            control: self.clone(),
        })
    }

    /// A handle for the user with this id (created on first use).
    pub fn user(&self, id: i64) -> TestUser {
        TestUser { id, control: self.clone(), cursors: Arc::default() }
    }

    /// Creates or renames a user.
    pub async fn upsert_user(&self, user: &User) -> anyhow::Result<()> {
        self.post::<Value>("/users", serde_json::to_value(user)?).await.map(drop)
    }

    /// A group with this (negative) id and title.
    pub fn group(&self, id: i64, title: &str) -> TestGroup {
        TestGroup { id, title: title.to_owned() }
    }

    /// Forgets every bot, user and group.
    pub async fn reset(&self) -> anyhow::Result<()> {
        self.post::<Value>("/reset", json!({})).await.map(drop)
    }

    /// Turns flood simulation on or off.
    pub async fn set_flood(&self, enabled: bool) -> anyhow::Result<()> {
        self.post::<Value>("/flood", json!({ "enabled": enabled })).await.map(drop)
    }

    /// Bot API calls, oldest first, optionally of one bot and method.
    pub async fn calls(&self, bot: Option<&TestBot>, method: Option<&str>) -> anyhow::Result<Vec<CallRecord>> {
        let mut query = Vec::new();
        if let Some(bot) = bot {
            query.push(format!("bot={}", bot.id));
        }
        if let Some(method) = method {
            query.push(format!("method={method}"));
        }
        self.get(&format!("/calls?{}", query.join("&"))).await
    }
}

impl TestBot {
    fn path(&self, rest: &str) -> String {
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

    /// Clears the bot's updates, chats, webhook, commands and counters.
    pub async fn reset(&self) -> anyhow::Result<()> {
        self.control.post::<Value>(&self.path("/reset"), json!({})).await.map(drop)
    }

    /// Bot API calls this bot made, oldest first, optionally of one method.
    pub async fn calls(&self, method: Option<&str>) -> anyhow::Result<Vec<CallRecord>> {
        self.control.calls(Some(self), method).await
    }
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
