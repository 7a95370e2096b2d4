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
//!
//! `bot` holds [`TestBot`], `user` [`TestUser`] and [`TestGroup`], `files` [`UserFile`] and the file methods,
//! `queries` inline and payment queries, votes and reactions, `chats` channels, memberships and business accounts.

mod bot;
mod chats;
mod files;
mod queries;
mod user;

use std::{sync::Arc, time::Duration};

use anyhow::{Context, anyhow, bail};
pub use bot::TestBot;
pub use chats::{SharedChat, TestChannel};
pub use files::{Storage, UserFile};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
pub use user::{TestGroup, TestUser};

use crate::types::{CallRecord, User};

/// How long the `next_*` helpers wait unless told otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// A client for one emulator's control API.
#[derive(Clone)]
pub struct Control {
    http: reqwest::Client,
    base: String,
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
    /// For files a user sent: the file id the bot got.
    #[serde(default)]
    pub file_id: Option<String>,
}

/// What a control call queued for a bot besides a message.
#[derive(Debug, Clone, Deserialize)]
pub struct Queued {
    /// The update's id, or `None` when the bot's `allowed_updates` filtered it out.
    pub update_id: Option<i64>,
    /// The id of what the call created: an inline or payment query, a poll, a boost, a business connection.
    #[serde(default)]
    pub id: Option<String>,
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
        let bytes = self.send(request, path).await?;
        let text = String::from_utf8_lossy(&bytes);
        serde_json::from_str(&text).with_context(|| format!("control API {path}: unexpected answer {text}"))
    }

    /// Sends `request` to `path`; the body of a successful answer.
    async fn send(&self, request: reqwest::RequestBuilder, path: &str) -> anyhow::Result<Vec<u8>> {
        let response = request.send().await.with_context(|| format!("control API {path}"))?;
        let status = response.status();
        let bytes = response.bytes().await.with_context(|| format!("control API {path}"))?;
        if !status.is_success() {
            bail!("control API {path}: {status}: {}", String::from_utf8_lossy(&bytes));
        }
        Ok(bytes.to_vec())
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
