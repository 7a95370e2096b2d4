//! getMe, tokens, parameter encodings and getUpdates semantics.

use std::time::Duration;

use botapi_emulator::EmulatorConfig;
use serde_json::json;

use crate::helpers::{Api, eventually, read, spawn, spawn_with, token, update_ids};

#[tokio::test]
async fn get_me_is_a_distinct_bot_user_per_token() {
    let emu = spawn().await;
    let a = Api::new(&emu, 1111).await;
    let b = Api::new(&emu, 2222).await;
    let me_a = a.ok("getMe", json!({})).await;
    let me_b = b.ok("getMe", json!({})).await;
    assert_eq!(me_a["id"], 1111);
    assert_eq!(me_b["id"], 2222);
    assert_eq!(me_a["is_bot"], true);
    assert_ne!(me_a["username"], me_b["username"]);
    assert!(me_a["first_name"].as_str().is_some_and(|n| !n.is_empty()));
}

#[tokio::test]
async fn an_http2_client_multiplexes_long_polls_over_one_connection() {
    let emu = spawn().await;
    let http = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let mut polls = Vec::new();
    for id in 3001..3004 {
        let bot = emu.bot(&token(id)).await.unwrap();
        let url = format!("{}/bot{}/getUpdates?timeout=2", emu.api_url(), bot.token);
        polls.push(tokio::spawn(http.get(url).send()));
    }
    // While the three polls wait, a fourth request on the same client (the same connection) is answered.
    eventually(Duration::from_secs(5), "three long polls", || async {
        let bots = reqwest::get(format!("{}/control/bots", emu.api_url())).await.unwrap();
        let bots: serde_json::Value = bots.json().await.unwrap();
        bots.as_array().is_some_and(|bots| bots.iter().filter(|b| b["polling"] == true).count() == 3)
    })
    .await;
    let bot = emu.bot(&token(3004)).await.unwrap();
    let me = http.get(format!("{}/bot{}/getMe", emu.api_url(), bot.token)).send().await.unwrap();
    assert_eq!(me.version(), reqwest::Version::HTTP_2);
    assert_eq!(me.status(), 200);
    for poll in polls {
        let answer = poll.await.unwrap().unwrap();
        assert_eq!((answer.version(), answer.status().as_u16()), (reqwest::Version::HTTP_2, 200));
    }
    // The call log says which version each call came over.
    let calls = emu.control().calls(None, Some("getUpdates")).await.unwrap();
    assert_eq!(calls.iter().map(|c| c.http.as_str()).collect::<Vec<_>>(), ["HTTP/2.0"; 3]);
}

#[tokio::test]
async fn unknown_and_malformed_tokens_are_unauthorized() {
    let emu = spawn().await;
    let http = reqwest::Client::new();
    // Bad input: a well-formed token never registered, a secret too short, letters in the id, no colon.
    for bad in [token(999), "123:short".to_owned(), "12a:AAAAAAAAAAAAAAAAAAAAAAAA".to_owned(), "nocolon".to_owned()] {
        let (status, body) = read(http.get(format!("{}/bot{bad}/getMe", emu.api_url())).send().await.unwrap()).await;
        assert_eq!(status, 401, "{bad}");
        assert_eq!(body, json!({"ok": false, "error_code": 401, "description": "Unauthorized"}));
    }
}

#[tokio::test]
async fn any_well_formed_token_is_accepted_when_configured() {
    let emu = spawn_with(EmulatorConfig { accept_any_token: true, ..Default::default() }).await;
    let http = reqwest::Client::new();
    let (status, body) =
        read(http.get(format!("{}/bot{}/getMe", emu.api_url(), token(4242))).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["id"], 4242);
    let (status, _) = read(http.get(format!("{}/bot42:tooshort/getMe", emu.api_url())).send().await.unwrap()).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn method_names_are_case_insensitive_and_unknown_ones_404() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let (status, body) = api.get("GETME", &[]).await;
    assert_eq!(status, 200, "{body}");
    let description = api.err("sendTelepathy", json!({}), 404).await;
    assert_eq!(description, "Not Found: method not found");
}

#[tokio::test]
async fn parameters_arrive_in_every_encoding() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    emu.user(7).send(&api.bot, "hi").await.unwrap();
    // Query string.
    let (status, body) = api.get("sendMessage", &[("chat_id", "7"), ("text", "from query")]).await;
    assert_eq!(status, 200, "{body}");
    // Url-encoded form with a JSON-serialized keyboard.
    let markup = json!({"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}).to_string();
    let (status, body) =
        api.form("sendMessage", &[("chat_id", "7"), ("text", "from form"), ("reply_markup", &markup)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"], "a");
    // JSON with numbers as strings.
    let sent = api.ok("sendMessage", json!({"chat_id": "7", "text": "from json"})).await;
    assert_eq!(sent["text"], "from json");
    // Multipart text fields.
    let form = reqwest::multipart::Form::new().text("chat_id", "7").text("text", "from multipart");
    let response = api.http.post(format!("{}/sendMessage", api.base)).multipart(form).send().await.unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, 200, "{body}");
    let texts: Vec<_> = api
        .bot
        .transcript(7)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.from_bot)
        .map(|m| m.message.text.unwrap())
        .collect();
    assert_eq!(texts, ["from query", "from form", "from json", "from multipart"]);
}

#[tokio::test]
async fn updates_stay_until_an_offset_above_them_confirms_them() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let alice = emu.user(10);
    for text in ["one", "two", "three"] {
        alice.send(&api.bot, text).await.unwrap();
    }
    let first = api.ok("getUpdates", json!({})).await;
    let ids = update_ids(&first);
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "sequential ids: {ids:?}");
    assert_eq!(first[0]["message"]["text"], "one");
    assert_eq!(first[0]["message"]["from"]["id"], 10);
    // Without an offset nothing is confirmed: the same updates come again.
    assert_eq!(update_ids(&api.ok("getUpdates", json!({})).await), ids);
    // An offset confirms everything below it.
    assert_eq!(update_ids(&api.ok("getUpdates", json!({"offset": ids[1]})).await), &ids[1..]);
    let stats = api.bot.stats().await.unwrap();
    assert_eq!((stats.updates_confirmed, stats.pending, stats.last_confirmed_update_id), (1, 2, Some(ids[0])));
    assert_eq!(stats.updates_delivered, 3);
    assert_eq!(stats.deliveries, 3 + 3 + 2);
    assert!(api.ok("getUpdates", json!({"offset": ids[2] + 1})).await.as_array().unwrap().is_empty());
    let stats = api.bot.stats().await.unwrap();
    assert_eq!((stats.updates_confirmed, stats.pending), (3, 0));
}

#[tokio::test]
async fn negative_offset_and_limit() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let alice = emu.user(10);
    for i in 0..5 {
        alice.send(&api.bot, &format!("m{i}")).await.unwrap();
    }
    let one = api.ok("getUpdates", json!({"limit": 1})).await;
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["message"]["text"], "m0");
    // -2: only the last two remain; the three before are forgotten.
    let last = api.ok("getUpdates", json!({"offset": -2})).await;
    let texts: Vec<_> = last.as_array().unwrap().iter().map(|u| u["message"]["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["m3", "m4"]);
    assert_eq!(api.bot.stats().await.unwrap().pending, 2);
    // Out-of-range limits are clamped to 1-100.
    assert_eq!(api.ok("getUpdates", json!({"limit": 0})).await.as_array().unwrap().len(), 1);
    assert_eq!(api.ok("getUpdates", json!({"limit": 1000})).await.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn long_poll_returns_as_soon_as_an_update_arrives() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let poll = tokio::spawn({
        let (http, base) = (api.http.clone(), api.base.clone());
        async move {
            read(http.post(format!("{base}/getUpdates")).json(&json!({"timeout": 50})).send().await.unwrap()).await
        }
    });
    wait_polling(&emu, &api, true).await;
    emu.user(10).send(&api.bot, "wake up").await.unwrap();
    // The poll was asked to wait 50 s; it must answer long before that.
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), poll).await.expect("poll woke up").unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["result"][0]["message"]["text"], "wake up");
}

#[tokio::test]
async fn long_poll_times_out_with_an_empty_list() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    assert_eq!(api.ok("getUpdates", json!({"timeout": 1})).await, json!([]));
}

/// Waits until the emulator reports a getUpdates call waiting (or none) for this bot.
async fn wait_polling(emu: &botapi_emulator::Emulator, api: &Api, polling: bool) {
    let url = format!("{}/control/bots/{}", emu.api_url(), api.bot.id);
    eventually(Duration::from_secs(10), "a waiting poll", || {
        let request = api.http.get(&url).send();
        async move { read(request.await.unwrap()).await.1["polling"] == polling }
    })
    .await;
}

#[tokio::test]
async fn a_newer_poll_terminates_the_waiting_one_with_409() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let first = tokio::spawn({
        let (http, base) = (api.http.clone(), api.base.clone());
        async move {
            read(http.post(format!("{base}/getUpdates")).json(&json!({"timeout": 50})).send().await.unwrap()).await
        }
    });
    wait_polling(&emu, &api, true).await;
    let second = tokio::spawn({
        let (http, base) = (api.http.clone(), api.base.clone());
        async move {
            read(http.post(format!("{base}/getUpdates")).json(&json!({"timeout": 50})).send().await.unwrap()).await
        }
    });
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), first).await.expect("first poll ended").unwrap();
    assert_eq!(status, 409);
    assert_eq!(
        body["description"],
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
    );
    // The newer poll goes on and gets the next update.
    emu.user(10).send(&api.bot, "for the survivor").await.unwrap();
    let (status, body) =
        tokio::time::timeout(Duration::from_secs(10), second).await.expect("second poll answered").unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["result"][0]["message"]["text"], "for the survivor");
}

#[tokio::test]
async fn polling_while_a_webhook_is_set_is_a_conflict() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    api.ok("setWebhook", json!({"url": "http://127.0.0.1:9/hook"})).await;
    let description = api.err("getUpdates", json!({}), 409).await;
    assert_eq!(
        description,
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
    );
    api.ok("deleteWebhook", json!({})).await;
    api.ok("getUpdates", json!({})).await;
    // A poll waiting when the webhook is set ends with the same conflict.
    let waiting = tokio::spawn({
        let (http, base) = (api.http.clone(), api.base.clone());
        async move {
            read(http.post(format!("{base}/getUpdates")).json(&json!({"timeout": 50})).send().await.unwrap()).await
        }
    });
    wait_polling(&emu, &api, true).await;
    api.ok("setWebhook", json!({"url": "http://127.0.0.1:9/hook"})).await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("poll ended").unwrap();
    assert_eq!((status, body["description"].as_str()), (409, Some(description.as_str())));
}

#[tokio::test]
async fn allowed_updates_filters_new_updates() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let alice = emu.user(10);
    alice.send(&api.bot, "/menu").await.unwrap();
    let keyboard = json!({"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]});
    let menu = api.ok("sendMessage", json!({"chat_id": 10, "text": "Menu", "reply_markup": keyboard})).await;
    let updates = api.ok("getUpdates", json!({"allowed_updates": ["callback_query"]})).await;
    // Updates created before the call are still delivered, as Telegram warns.
    assert_eq!(updates.as_array().unwrap().len(), 1);
    let offset = update_ids(&updates)[0] + 1;
    let skipped = alice.send(&api.bot, "ignored").await.unwrap();
    assert_eq!(skipped.update_id, None);
    let message: botapi_emulator::types::Message = serde_json::from_value(menu).unwrap();
    alice.click(&api.bot, &message, "go").await.unwrap();
    let updates = api.ok("getUpdates", json!({"offset": offset})).await;
    assert_eq!(updates.as_array().unwrap().len(), 1);
    assert_eq!(updates[0]["callback_query"]["data"], "go");
    assert_eq!(updates[0]["callback_query"]["message"]["text"], "Menu");
}

#[tokio::test]
async fn allowed_updates_is_remembered_and_read_as_the_reference_says() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let member = || json!({"chat_member": {"chat": {"id": -5, "type": "group", "title": "g"}}});
    let message = || json!({"message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"}}});
    let delivered = |update: serde_json::Value| {
        let bot = api.bot.clone();
        async move { bot.push_update(update).await.unwrap().is_some() }
    };
    let subscribed = || async { api.ok("getWebhookInfo", json!({})).await.get("allowed_updates").cloned() };
    // Unset: everything but chat_member and the reactions.
    assert!(delivered(message()).await && !delivered(member()).await);
    assert_eq!(subscribed().await, None);
    // Names are matched without regard to case; unknown names are ignored.
    api.ok("getUpdates", json!({"allowed_updates": ["CHAT_MEMBER", "no_such_update"]})).await;
    assert!(delivered(member()).await && !delivered(message()).await);
    assert_eq!(subscribed().await, Some(json!(["chat_member"])));
    // Not specified, or not a list of strings (bad input: "not json", a number): the previous setting stays.
    for params in [json!({}), json!({"allowed_updates": "not json"}), json!({"allowed_updates": [1]})] {
        api.ok("getUpdates", params.clone()).await;
        assert_eq!(subscribed().await, Some(json!(["chat_member"])), "{params}");
    }
    // An empty list, or one naming no known type, is the default again.
    for list in [json!([]), json!(["no_such_update"])] {
        api.ok("getUpdates", json!({"allowed_updates": ["chat_member"]})).await;
        api.ok("getUpdates", json!({"allowed_updates": list})).await;
        assert_eq!(subscribed().await, None, "{list}");
        assert!(delivered(message()).await && !delivered(member()).await);
    }
    // setWebhook reads it the same way, given as a JSON string in a form.
    let (status, _) =
        api.form("setWebhook", &[("url", "http://127.0.0.1:9/x"), ("allowed_updates", r#"["poll"]"#)]).await;
    assert_eq!(status, 200);
    assert_eq!(subscribed().await, Some(json!(["poll"])));
}

#[tokio::test]
async fn commands_carry_their_entity_and_groups_have_negative_ids() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let group = emu.control().group(-100500, "Friends");
    emu.user(10).send_in(&api.bot, &group, "/start@bot1000_bot now").await.unwrap();
    let updates = api.ok("getUpdates", json!({})).await;
    let message = &updates[0]["message"];
    assert_eq!(message["chat"], json!({"id": -100500, "type": "group", "title": "Friends"}));
    assert_eq!(message["entities"][0], json!({"type": "bot_command", "offset": 0, "length": 18}));
    // The bot can answer in the group now.
    api.ok("sendMessage", json!({"chat_id": -100500, "text": "hello group"})).await;
}
