//! Fault injection: errors, HTML error pages, delays, dropped connections and altered results for the next calls
//! of a method; strict method names.

use std::time::{Duration, Instant};

use botapi_emulator::{EmulatorConfig, FaultSpec};
use serde_json::json;

use crate::helpers::{Api, spawn, spawn_with, update_ids};

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

#[tokio::test]
async fn an_html_error_page_answers_instead_of_json_and_nothing_is_processed() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    emu.user(10).send(&api.bot, "hi").await.unwrap();
    api.bot.inject(FaultSpec::html_error("sendMessage", 502)).await.unwrap();
    let response =
        api.http.post(format!("{}/sendMessage", api.base)).json(&json!({"chat_id": 10, "text": "x"})).send().await;
    let response = response.unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["content-type"], "text/html");
    let page = response.text().await.unwrap();
    assert!(page.starts_with("<html>") && page.contains("<title>502 Bad Gateway</title>"), "{page}");
    assert_eq!(api.bot.stats().await.unwrap().messages_sent, 0);
    let logged = api.bot.calls(Some("sendMessage")).await.unwrap();
    assert_eq!(logged.last().map(|c| c.status), Some(502));
    api.ok("sendMessage", json!({"chat_id": 10, "text": "fine"})).await;
}

#[tokio::test]
async fn omitted_fields_leave_results_and_updates_only_when_present() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    api.bot.inject(FaultSpec::omit("getMe", &["has_main_web_app"])).await.unwrap();
    let me = api.ok("getMe", json!({})).await;
    assert!(me.get("has_main_web_app").is_none() && me["is_bot"] == true, "{me}");
    assert_eq!(api.ok("getMe", json!({})).await["has_main_web_app"], false, "used once");
    // On getUpdates, an answer without a callback query does not use the fault up.
    let user = emu.user(10);
    user.send(&api.bot, "hi").await.unwrap();
    let first = api.ok("getUpdates", json!({})).await;
    let offset = update_ids(&first)[0] + 1;
    let keyboard = json!({"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]});
    api.bot.inject(FaultSpec::omit("getUpdates", &["callback_query.chat_instance"])).await.unwrap();
    let sent = api.ok("sendMessage", json!({"chat_id": 10, "text": "pick", "reply_markup": keyboard})).await;
    assert_eq!(api.ok("getUpdates", json!({"offset": offset})).await, json!([]));
    let message = serde_json::from_value(sent).unwrap();
    user.click(&api.bot, &message, "go").await.unwrap();
    let updates = api.ok("getUpdates", json!({"offset": offset})).await;
    let query = &updates[0]["callback_query"];
    assert!(query.get("chat_instance").is_none() && query["data"] == "go", "{updates}");
    let again = api.ok("getUpdates", json!({"offset": offset})).await;
    assert!(again[0]["callback_query"]["chat_instance"].is_string(), "used once: {again}");
}

#[tokio::test]
async fn a_replaced_result_answers_after_processing() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    emu.user(10).send(&api.bot, "hi").await.unwrap();
    let sent = api.ok("sendMessage", json!({"chat_id": 10, "text": "before"})).await;
    api.bot.inject(FaultSpec::answer("editMessageText", json!(true))).await.unwrap();
    let edit = json!({"chat_id": 10, "message_id": sent["message_id"], "text": "after"});
    assert_eq!(api.ok("editMessageText", edit).await, json!(true));
    let transcript = api.bot.transcript(10).await.unwrap();
    assert!(
        transcript.iter().any(|m| m.from_bot && m.message.text.as_deref() == Some("after")),
        "the edit was applied"
    );
}

#[tokio::test]
async fn strict_method_names_answer_404_to_another_spelling() {
    let emu = spawn_with(EmulatorConfig { strict_method_names: true, ..Default::default() }).await;
    let api = Api::new(&emu, 1000).await;
    api.ok("getMe", json!({})).await;
    assert_eq!(api.err("GetMe", json!({}), 404).await, "Not Found: method not found");
    assert_eq!(api.err("getme", json!({}), 404).await, "Not Found: method not found");
    let methods: Vec<String> = api.bot.calls(None).await.unwrap().into_iter().map(|c| c.method).collect();
    assert_eq!(methods, ["getMe", "GetMe", "getme"], "the log keeps the name as sent");
    // The default, like Telegram, ignores case.
    let relaxed = spawn().await;
    Api::new(&relaxed, 1000).await.ok("GetMe", json!({})).await;
}
