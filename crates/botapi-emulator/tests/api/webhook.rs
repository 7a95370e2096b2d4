//! setWebhook, webhook pushes with the secret header, retries, pending counts and concurrency.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State, http::HeaderMap, routing::post};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::helpers::{Api, eventually, spawn};

/// Secret header and body of each request a webhook endpoint accepted.
pub(crate) type Received = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A webhook endpoint that records what it receives.
#[derive(Clone, Default)]
pub(crate) struct Receiver {
    pub(crate) received: Received,
    /// Answer 500 to this many requests first.
    fail: Arc<AtomicUsize>,
    /// When set, each request waits for a permit before answering.
    gate: Option<Arc<Semaphore>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl Receiver {
    pub(crate) async fn start(self) -> (Receiver, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = Router::new().route("/hook", post(receive)).with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (self, url)
    }

    fn texts(&self) -> Vec<String> {
        self.received.lock().iter().map(|(_, u)| u["message"]["text"].as_str().unwrap_or_default().to_owned()).collect()
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> axum::http::StatusCode {
    let now = r.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    r.max_in_flight.fetch_max(now, Ordering::SeqCst);
    if let Some(gate) = &r.gate {
        gate.acquire().await.unwrap().forget();
    }
    r.in_flight.fetch_sub(1, Ordering::SeqCst);
    let secret = headers.get("x-telegram-bot-api-secret-token").map(|v| v.to_str().unwrap().to_owned());
    let update: Value = serde_json::from_str(&body).unwrap();
    if r.fail.load(Ordering::SeqCst) > 0 {
        r.fail.fetch_sub(1, Ordering::SeqCst);
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
    }
    r.received.lock().push((secret, update));
    axum::http::StatusCode::OK
}

#[tokio::test]
async fn updates_are_pushed_with_the_secret_header() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let (receiver, url) = Receiver::default().start().await;
    api.ok("setWebhook", json!({"url": url, "secret_token": "s3cr3t_-X"})).await;
    emu.user(10).send(&api.bot, "pushed").await.unwrap();
    eventually(Duration::from_secs(10), "the push", || async { receiver.received.lock().len() == 1 }).await;
    let (secret, update) = receiver.received.lock()[0].clone();
    assert_eq!(secret.as_deref(), Some("s3cr3t_-X"));
    assert_eq!(update["message"]["text"], "pushed");
    assert!(update["update_id"].is_i64());
    eventually(Duration::from_secs(5), "confirmation", || async {
        api.ok("getWebhookInfo", json!({})).await["pending_update_count"] == 0
    })
    .await;
    let info = api.ok("getWebhookInfo", json!({})).await;
    assert_eq!(info["url"], url);
    assert_eq!(info["max_connections"], 40);
    assert!(info.get("last_error_date").is_none());
}

#[tokio::test]
async fn failed_pushes_are_retried_and_kept_pending() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let receiver = Receiver { fail: Arc::new(AtomicUsize::new(3)), ..Default::default() };
    let (receiver, url) = receiver.start().await;
    api.ok("setWebhook", json!({"url": url})).await;
    emu.user(10).send(&api.bot, "retry me").await.unwrap();
    eventually(Duration::from_secs(10), "a recorded failure", || async {
        let info = api.ok("getWebhookInfo", json!({})).await;
        info["pending_update_count"] == 1
            && info["last_error_message"] == "Wrong response from the webhook: 500 Internal Server Error"
    })
    .await;
    eventually(Duration::from_secs(10), "the successful retry", || async { receiver.texts() == ["retry me"] }).await;
    eventually(Duration::from_secs(5), "nothing pending", || async {
        api.ok("getWebhookInfo", json!({})).await["pending_update_count"] == 0
    })
    .await;
    let stats = api.bot.stats().await.unwrap();
    assert_eq!(stats.webhook_failures, 3);
    assert_eq!(stats.deliveries, 4);
    assert_eq!((stats.updates_delivered, stats.updates_confirmed), (1, 1));
    assert!(api.ok("getWebhookInfo", json!({})).await["last_error_date"].is_i64());
}

#[tokio::test]
async fn an_unreachable_webhook_keeps_updates_for_polling_later() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    // Bad input: nothing listens on port 9.
    api.ok("setWebhook", json!({"url": "http://127.0.0.1:9/hook"})).await;
    emu.user(10).send(&api.bot, "kept").await.unwrap();
    eventually(Duration::from_secs(10), "a connection error", || async {
        api.ok("getWebhookInfo", json!({})).await["last_error_message"] == "Connection refused"
    })
    .await;
    api.ok("deleteWebhook", json!({})).await;
    let updates = api.ok("getUpdates", json!({})).await;
    assert_eq!(updates[0]["message"]["text"], "kept");
}

#[tokio::test]
async fn at_most_max_connections_pushes_run_at_once() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let gate = Arc::new(Semaphore::new(0));
    let receiver = Receiver { gate: Some(gate.clone()), ..Default::default() };
    let (receiver, url) = receiver.start().await;
    api.ok("setWebhook", json!({"url": url, "max_connections": 2})).await;
    let alice = emu.user(10);
    for i in 0..6 {
        alice.send(&api.bot, &format!("m{i}")).await.unwrap();
    }
    eventually(Duration::from_secs(10), "two pushes in flight", || async {
        receiver.in_flight.load(Ordering::SeqCst) == 2
    })
    .await;
    gate.add_permits(6);
    eventually(Duration::from_secs(10), "all six", || async { receiver.received.lock().len() == 6 }).await;
    assert_eq!(receiver.max_in_flight.load(Ordering::SeqCst), 2);
    let mut texts = receiver.texts();
    texts.sort();
    assert_eq!(texts, ["m0", "m1", "m2", "m3", "m4", "m5"]);
}

#[tokio::test]
async fn set_webhook_validation_and_drop_pending() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    // Bad input: unparsable URL, a non-HTTP scheme, secrets with a space, a dot, or 257 characters.
    assert_eq!(api.err("setWebhook", json!({"url": "not a url"}), 400).await, "Bad Request: bad webhook: invalid URL");
    assert_eq!(
        api.err("setWebhook", json!({"url": "ftp://example.com/x"}), 400).await,
        "Bad Request: bad webhook: an HTTP or HTTPS URL must be provided for webhook"
    );
    for secret in ["has space".to_owned(), "dot.ted".to_owned(), "a".repeat(257)] {
        let description =
            api.err("setWebhook", json!({"url": "http://127.0.0.1:9/x", "secret_token": secret}), 400).await;
        assert_eq!(description, "Bad Request: secret token contains unallowed characters");
    }
    api.ok("setWebhook", json!({"url": "http://127.0.0.1:9/x", "secret_token": "a".repeat(256)})).await;
    api.ok("deleteWebhook", json!({})).await;
    emu.user(10).send(&api.bot, "old").await.unwrap();
    api.ok("setWebhook", json!({"url": "http://127.0.0.1:9/x", "drop_pending_updates": true})).await;
    assert_eq!(api.ok("getWebhookInfo", json!({})).await["pending_update_count"], 0);
    // An empty URL removes the webhook.
    api.ok("setWebhook", json!({"url": ""})).await;
    assert_eq!(api.ok("getWebhookInfo", json!({})).await["url"], "");
}
