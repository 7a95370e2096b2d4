//! Fault injection: errors, delays and dropped connections for the next calls of a method.

use std::time::{Duration, Instant};

use botapi_emulator::FaultSpec;
use serde_json::json;

use crate::helpers::{Api, spawn};

#[tokio::test]
async fn injected_429s_carry_retry_after_then_calls_succeed() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    emu.user(10).send(&api.bot, "hi").await.unwrap();
    api.bot.inject(FaultSpec::too_many_requests("sendMessage", 7).times(2)).await.unwrap();
    for _ in 0..2 {
        let (status, body) = api.call("sendMessage", json!({"chat_id": 10, "text": "x"})).await;
        assert_eq!(status, 429);
        assert_eq!(
            body,
            json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7", "parameters": {"retry_after": 7}})
        );
    }
    api.ok("sendMessage", json!({"chat_id": 10, "text": "x"})).await;
    let stats = api.bot.stats().await.unwrap();
    assert_eq!((stats.too_many_requests, stats.messages_sent), (2, 1));
}

#[tokio::test]
async fn injected_errors_do_not_process_the_call() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    emu.user(10).send(&api.bot, "hi").await.unwrap();
    let id = api.ok("getUpdates", json!({})).await[0]["update_id"].as_i64().unwrap();
    api.bot.inject(FaultSpec::error("getUpdates", 502)).await.unwrap();
    let (status, body) = api.call("getUpdates", json!({"offset": id + 1})).await;
    assert_eq!((status, body["error_code"].as_u64()), (502, Some(502)));
    assert_eq!(api.bot.stats().await.unwrap().pending, 1, "a failed call confirms nothing");
    api.bot.inject(FaultSpec::error("sendmessage", 403)).await.unwrap();
    assert_eq!(
        api.err("sendMessage", json!({"chat_id": 10, "text": "x"}), 403).await,
        "Forbidden: bot was blocked by the user"
    );
    api.bot.inject(FaultSpec::error("*", 400).description("Bad Request: custom")).await.unwrap();
    assert_eq!(api.err("getMe", json!({}), 400).await, "Bad Request: custom");
    assert!(api.bot.transcript(10).await.unwrap().iter().all(|m| !m.from_bot));
    // Bad input to the control API: an unknown method, two actions at once.
    let control = emu.control();
    assert!(api.bot.inject(FaultSpec::error("sendPigeon", 500)).await.is_err());
    let both = reqwest::Client::new()
        .post(format!("{}/control/bots/{}/faults", emu.api_url(), api.bot.id))
        .json(&json!({"method": "getMe", "error_code": 500, "delay_ms": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 400);
    let _ = control;
}

#[tokio::test]
async fn delayed_calls_answer_later() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    api.bot.inject(FaultSpec::delay("getMe", Duration::from_millis(300))).await.unwrap();
    let started = Instant::now();
    api.ok("getMe", json!({})).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn dropped_connections_before_and_after_processing() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    emu.user(10).send(&api.bot, "hi").await.unwrap();
    let send =
        || api.http.post(format!("{}/sendMessage", api.base)).json(&json!({"chat_id": 10, "text": "lost?"})).send();
    api.bot.inject(FaultSpec::drop_request("sendMessage")).await.unwrap();
    assert!(send().await.is_err(), "the client sees a network error");
    assert_eq!(api.bot.stats().await.unwrap().messages_sent, 0, "dropped before processing: nothing sent");
    api.bot.inject(FaultSpec::drop_response("sendMessage")).await.unwrap();
    assert!(send().await.is_err());
    assert_eq!(api.bot.stats().await.unwrap().messages_sent, 1, "dropped after processing: the message was sent");
    // The next call on a fresh connection works.
    api.ok("sendMessage", json!({"chat_id": 10, "text": "fine"})).await;
}
