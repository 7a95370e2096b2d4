//! The control API: call log, counters, flood simulation, raw updates, edits, resets.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Api, read, spawn, update_ids};

#[tokio::test]
async fn the_call_log_never_holds_the_token() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    emu.user(10).send(&api.bot, "hi").await.unwrap();
    api.ok("getMe", json!({})).await;
    api.ok("sendMessage", json!({"chat_id": 10, "text": "logged"})).await;
    api.err("sendMessage", json!({"chat_id": 10}), 400).await;
    let calls = api.bot.calls(None).await.unwrap();
    let methods: Vec<_> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(methods, ["getMe", "sendMessage", "sendMessage"]);
    assert!(calls.windows(2).all(|w| w[0].seq < w[1].seq && w[0].at_ms <= w[1].at_ms));
    assert_eq!(calls[1].params["text"], "logged");
    assert_eq!((calls[1].status, calls[2].status), (200, 400));
    assert_eq!(calls[2].error.as_deref(), Some("Bad Request: message text is empty"));
    assert!(calls.iter().all(|c| c.bot_id == Some(1000)));
    let sends = api.bot.calls(Some("sendMessage")).await.unwrap();
    assert_eq!(sends.len(), 2);
    // An unknown token is logged without its token too.
    let http = reqwest::Client::new();
    let secret_token = "555:ThisTokenMustNeverBeLogged_xyz";
    http.get(format!("{}/bot{secret_token}/getMe", emu.api_url())).send().await.unwrap();
    let everything = reqwest::get(format!("{}/control/calls", emu.api_url())).await.unwrap().text().await.unwrap();
    assert!(!everything.contains("ThisTokenMustNeverBeLogged"), "{everything}");
    assert!(!everything.contains(&api.bot.token), "{everything}");
    let bots = reqwest::get(format!("{}/control/bots", emu.api_url())).await.unwrap().text().await.unwrap();
    assert!(!bots.contains(&api.bot.token));
}

#[tokio::test]
async fn flood_simulation_answers_429_over_telegrams_limits() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    emu.user(10).send(&api.bot, "hi").await.unwrap();
    let group = emu.control().group(-77, "Busy group");
    emu.user(10).send_in(&api.bot, &group, "hi all").await.unwrap();
    // Off by default.
    for _ in 0..5 {
        api.ok("sendMessage", json!({"chat_id": 10, "text": "x"})).await;
    }
    emu.control().set_flood(true).await.unwrap();
    // A private chat allows a short burst, then about one per second.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(api.call("sendMessage", json!({"chat_id": 10, "text": "x"})).await);
    }
    let limited: Vec<_> = statuses.iter().filter(|(s, _)| *s == 429).collect();
    assert!(!limited.is_empty(), "five at once to one chat must hit the limit");
    assert!(limited.iter().all(|(_, b)| { b["parameters"]["retry_after"].as_u64().is_some_and(|r| r >= 1) }));
    // A group allows 20 per minute.
    let mut ok = 0;
    for _ in 0..25 {
        if api.call("sendMessage", json!({"chat_id": -77, "text": "x"})).await.0 == 200 {
            ok += 1;
        }
    }
    assert!(ok <= 20, "{ok} group messages went through");
    emu.control().set_flood(false).await.unwrap();
    api.ok("sendMessage", json!({"chat_id": 10, "text": "x"})).await;
}

#[tokio::test]
async fn raw_updates_follow_the_default_allowed_types() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let member = json!({"chat_member": {"chat": {"id": -5, "type": "group", "title": "g"}}});
    // chat_member is not delivered unless asked for.
    assert_eq!(api.bot.push_update(member.clone()).await.unwrap(), None);
    api.ok("getUpdates", json!({"allowed_updates": ["chat_member", "message"]})).await;
    let id = api.bot.push_update(member).await.unwrap().expect("delivered now");
    assert_eq!(update_ids(&api.ok("getUpdates", json!({})).await), [id]);
}

#[tokio::test]
async fn user_edits_become_edited_message_updates() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let alice = emu.user(10);
    let sent = alice.send(&api.bot, "tpyo").await.unwrap();
    alice.edit(&api.bot, sent.message_id, "typo").await.unwrap();
    let updates = api.ok("getUpdates", json!({})).await;
    assert_eq!(updates[1]["edited_message"]["text"], "typo");
    assert_eq!(updates[1]["edited_message"]["message_id"], sent.message_id);
    assert!(updates[1]["edited_message"]["edit_date"].is_i64());
}

#[tokio::test]
async fn waiting_for_a_reply_that_never_comes_fails_at_the_deadline() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let alice = emu.user(10);
    alice.send(&api.bot, "anyone?").await.unwrap();
    let error = alice.next_message_in(&api.bot, 10, Duration::from_millis(200)).await.unwrap_err();
    assert!(error.to_string().contains("did nothing"), "{error}");
    // A reply sent while waiting wakes the waiter.
    let waiter = tokio::spawn({
        let (alice, bot) = (alice.clone(), api.bot.clone());
        async move { alice.next_message_in(&bot, 10, Duration::from_secs(10)).await }
    });
    api.ok("sendMessage", json!({"chat_id": 10, "text": "me"})).await;
    assert_eq!(waiter.await.unwrap().unwrap().text.as_deref(), Some("me"));
}

#[tokio::test]
async fn resets_and_unknown_bots() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    emu.user(10).send(&api.bot, "hi").await.unwrap();
    api.bot.reset().await.unwrap();
    assert_eq!(api.bot.stats().await.unwrap().pending, 0);
    assert!(api.bot.transcript(10).await.unwrap().is_empty());
    let (status, body) =
        read(reqwest::get(format!("{}/control/bots/424242/stats", emu.api_url())).await.unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "no bot 424242");
    emu.control().reset().await.unwrap();
    api.err("getMe", json!({}), 401).await;
}
