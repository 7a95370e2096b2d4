//! Starts an emulator per test and calls the Bot API the way clients do.

use std::time::Duration;

use botapi_emulator::{Emulator, EmulatorConfig, TestBot};
use serde_json::Value;

/// A well-formed token for bot `id`.
pub(crate) fn token(id: i64) -> String {
    format!("{id}:AAH4k9TestTokenForTheEmulator_{id}")
}

/// An emulator on a free loopback port, with fast webhook retries.
pub(crate) async fn spawn() -> Emulator {
    spawn_with(EmulatorConfig::default()).await
}

/// An emulator with `config` (webhook retries made fast).
pub(crate) async fn spawn_with(mut config: EmulatorConfig) -> Emulator {
    config.webhook_retry_base = Duration::from_millis(50);
    config.webhook_retry_max = Duration::from_millis(200);
    Emulator::start(config).await.expect("emulator starts")
}

/// A registered bot and a Bot API client for it.
pub(crate) struct Api {
    pub(crate) bot: TestBot,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
}

impl Api {
    /// Registers bot `id` in `emu`.
    pub(crate) async fn new(emu: &Emulator, id: i64) -> Api {
        let bot = emu.bot(&token(id)).await.expect("bot registers");
        Api { base: format!("{}/bot{}", emu.api_url(), bot.token), bot, http: reqwest::Client::new() }
    }

    /// POSTs `params` as JSON; returns the HTTP status and the body.
    pub(crate) async fn call(&self, method: &str, params: Value) -> (u16, Value) {
        let response = self.http.post(format!("{}/{method}", self.base)).json(&params).send().await.expect("request");
        read(response).await
    }

    /// Like `call`, but expects success and returns `result`.
    pub(crate) async fn ok(&self, method: &str, params: Value) -> Value {
        let (status, body) = self.call(method, params).await;
        assert_eq!(status, 200, "{method} failed: {body}");
        assert_eq!(body["ok"], true, "{body}");
        body["result"].clone()
    }

    /// Like `call`, but expects a failure with this status; returns the description.
    pub(crate) async fn err(&self, method: &str, params: Value, status: u16) -> String {
        let (got, body) = self.call(method, params).await;
        assert_eq!(got, status, "{method}: {body}");
        assert_eq!(body["ok"], false, "{body}");
        assert_eq!(body["error_code"], status, "{body}");
        body["description"].as_str().expect("description").to_owned()
    }

    /// POSTs `params` as an url-encoded form.
    pub(crate) async fn form(&self, method: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let response = self.http.post(format!("{}/{method}", self.base)).form(params).send().await.expect("request");
        read(response).await
    }

    /// GETs with `params` in the query string.
    pub(crate) async fn get(&self, method: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let response = self.http.get(format!("{}/{method}", self.base)).query(params).send().await.expect("request");
        read(response).await
    }
}

/// Status and JSON body of a response.
pub(crate) async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, body)
}

/// Waits until `check` passes, or panics after `within`.
pub(crate) async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The ids of an array of updates.
pub(crate) fn update_ids(updates: &Value) -> Vec<i64> {
    updates.as_array().expect("array").iter().map(|u| u["update_id"].as_i64().expect("update_id")).collect()
}
