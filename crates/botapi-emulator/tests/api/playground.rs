//! The playground: its page and assets with their types and a strict Content-Security-Policy, and the chat view
//! it long-polls (`/control/bots/{bot}/chats/{chat}/view`): formatting as entities, inline and reply keyboards,
//! edits and deletions, files with a link to their bytes, answers to clicks, and waiting for the bot's next event.

use std::time::Duration;

use botapi_emulator::{Emulator, UserFile};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::{
    files::{png, post_form},
    helpers::{Api, read, spawn},
};

const ALICE: i64 = 1001;

/// The chat view of Alice's chat with the bot, with `query` (`?after=...`).
async fn view(emu: &Emulator, api: &Api, query: &str) -> Value {
    let url = format!("{}/control/bots/{}/chats/{ALICE}/view{query}", emu.api_url(), api.bot.id);
    let (status, body) = read(reqwest::get(url).await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn setup() -> (Emulator, Api) {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let alice = json!({"id": ALICE, "first_name": "Alice", "last_name": "Liddell"});
    let url = format!("{}/control/bots/{}/messages", emu.api_url(), api.bot.id);
    let http = reqwest::Client::new();
    let (status, body) =
        read(http.post(url).json(&json!({"from": alice, "text": "/start"})).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    (emu, api)
}

#[tokio::test]
async fn the_page_and_its_assets_come_with_their_types_and_a_strict_policy() {
    let emu = spawn().await;
    let get = |path: &str| reqwest::get(format!("{}{path}", emu.api_url()));
    let page = get("/playground").await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let policy = headers["content-security-policy"].to_str().unwrap().to_owned();
    for directive in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    // No inline script or style: every script has a source, no element has an event handler or a style.
    for tag in html.split("<script").skip(1) {
        assert!(tag.trim_start().starts_with("src=\"/playground/"), "inline script: <script{tag}");
        assert!(tag.split('>').nth(1).unwrap_or_default().trim_start().starts_with("</script"), "{tag}");
    }
    let handler = html.split(" on").skip(1).find(|rest| {
        let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    });
    assert_eq!(handler, None, "an inline event handler");
    assert!(!html.contains("style=") && !html.contains("<style"), "inline style");
    // Readable on a phone, usable with a screen reader.
    assert!(html.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#));
    assert!(html.contains(r#"aria-live="polite""#) && html.contains(r#"<label for="text""#), "{html}");
    for (path, kind) in [
        ("/playground/playground.css", "text/css; charset=utf-8"),
        ("/playground/playground.js", "text/javascript; charset=utf-8"),
    ] {
        assert!(html.contains(path), "the page does not load {path}");
        let asset = get(path).await.unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        assert_eq!(asset.headers()["content-type"], kind, "{path}");
        assert_eq!(asset.headers()["content-security-policy"].to_str().unwrap(), policy);
        assert!(!asset.text().await.unwrap().is_empty());
    }
    // The script never hands bot text to the HTML parser.
    let script = get("/playground/playground.js").await.unwrap().text().await.unwrap();
    for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
        assert!(!script.contains(sink), "the script uses {sink}");
    }
    assert_eq!(get("/playground/").await.unwrap().status(), 200);
    assert_eq!(get("/playground/missing.js").await.unwrap().status(), 404);
    assert_eq!(emu.playground_url(), format!("{}/playground", emu.api_url()));
}

#[tokio::test]
async fn the_view_shows_senders_formatting_and_inline_buttons() {
    let (emu, api) = setup().await;
    let keyboard = json!({"inline_keyboard": [
        [{"text": "Option 1", "callback_data": "opt_1"}, {"text": "Docs", "url": "https://core.telegram.org/bots"}],
    ]});
    api.ok(
        "sendMessage",
        json!({"chat_id": ALICE, "text": "<b>Bold</b> and <a href=\"https://example.com\">a link</a> &lt;script&gt;",
               "parse_mode": "HTML", "reply_markup": keyboard}),
    )
    .await;
    let view = view(&emu, &api, "").await;
    assert_eq!(view["chat_id"], ALICE);
    assert_eq!(view["bot"]["id"], 1000);
    assert!(view["seq"].as_u64().unwrap() >= 1);
    let messages = view["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    let (start, answer) = (&messages[0], &messages[1]);
    assert_eq!((start["from_bot"].as_bool(), start["sender"].as_str()), (Some(false), Some("Alice Liddell")));
    assert_eq!(start["entities"][0]["type"], "bot_command");
    assert_eq!(answer["from_bot"], true);
    assert_eq!(answer["sender"], "Bot 1000");
    // The text is plain (the markup parsed away, `&lt;` decoded); formatting comes as entities.
    assert_eq!(answer["text"], "Bold and a link <script>");
    let kinds: Vec<&str> = answer["entities"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["bold", "text_link"]);
    assert_eq!(answer["entities"][1]["url"], "https://example.com/");
    assert_eq!(answer["inline_keyboard"], keyboard["inline_keyboard"]);
    assert_eq!((answer["edited"].as_bool(), answer["deleted"].as_bool()), (Some(false), Some(false)));
    assert_eq!(view["reply_keyboard"], Value::Null);
    assert_eq!(view["answers"], json!([]));
}

#[tokio::test]
async fn edits_and_deletions_show_in_place_and_wake_a_waiting_view() {
    let (emu, api) = setup().await;
    let sent = api.ok("sendMessage", json!({"chat_id": ALICE, "text": "Choose:"})).await;
    let id = sent["message_id"].as_i64().unwrap();
    let before = view(&emu, &api, "").await;
    let seq = before["seq"].as_u64().unwrap();
    // Nothing happens: the view answers after the wait, with the same seq.
    let started = std::time::Instant::now();
    let idle = view(&emu, &api, &format!("?after={seq}&wait_ms=300")).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(idle["seq"], seq);
    // A waiting view answers as soon as the bot edits the message.
    let waiting = {
        let url = format!("{}/control/bots/{}/chats/{ALICE}/view?after={seq}&wait_ms=10000", emu.api_url(), api.bot.id);
        tokio::spawn(async move { read(reqwest::get(url).await.unwrap()).await.1 })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "the view did not wait for the bot");
    let started = std::time::Instant::now();
    api.ok(
        "editMessageText",
        json!({"chat_id": ALICE, "message_id": id, "text": "Selected: <i>two</i>", "parse_mode": "HTML"}),
    )
    .await;
    let edited = waiting.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(edited["seq"].as_u64().unwrap() > seq);
    let messages = edited["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "an edit replaces the message, it adds none");
    assert_eq!(messages[1]["message_id"], id);
    assert_eq!(messages[1]["text"], "Selected: two");
    assert_eq!(messages[1]["entities"][0]["type"], "italic");
    assert_eq!(messages[1]["edited"], true);
    api.ok("deleteMessage", json!({"chat_id": ALICE, "message_id": id})).await;
    let after = view(&emu, &api, &format!("?after={}&wait_ms=5000", edited["seq"])).await;
    assert_eq!(after["messages"][1]["deleted"], true);
    assert_eq!(after["messages"][1]["text"], "Selected: two");
}

#[tokio::test]
async fn answers_to_clicks_come_once_with_the_view_after_them() {
    let (emu, api) = setup().await;
    let keyboard = json!({"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]});
    let sent = api.ok("sendMessage", json!({"chat_id": ALICE, "text": "Press", "reply_markup": keyboard})).await;
    let message: botapi_emulator::types::Message = serde_json::from_value(sent).unwrap();
    let seq = view(&emu, &api, "").await["seq"].as_u64().unwrap();
    let click = emu.user(ALICE).click(&api.bot, &message, "go").await.unwrap();
    let id = click.callback_query_id.unwrap();
    api.ok("answerCallbackQuery", json!({"callback_query_id": id, "text": "Done!", "show_alert": true})).await;
    let next = view(&emu, &api, &format!("?after={seq}&wait_ms=5000")).await;
    assert_eq!(next["answers"], json!([{"message_id": message.message_id, "text": "Done!", "show_alert": true}]));
    let later = view(&emu, &api, &format!("?after={}", next["seq"])).await;
    assert_eq!(later["answers"], json!([]));
}

#[tokio::test]
async fn the_reply_keyboard_shows_until_removed_or_used_once() {
    let (emu, api) = setup().await;
    let keyboard = json!({"keyboard": [["Yes", {"text": "No"}], []], "input_field_placeholder": "Yes or no?"});
    api.ok("sendMessage", json!({"chat_id": ALICE, "text": "Sure?", "reply_markup": keyboard})).await;
    let shown = view(&emu, &api, "").await;
    assert_eq!(shown["reply_keyboard"], json!({"rows": [["Yes", "No"]], "placeholder": "Yes or no?"}));
    // A form sends the markup as a JSON string; a one-time keyboard goes once the user answers.
    let one_time = json!({"keyboard": [["A"]], "one_time_keyboard": true}).to_string();
    let (status, body) =
        api.form("sendMessage", &[("chat_id", "1001"), ("text", "Pick"), ("reply_markup", &one_time)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(view(&emu, &api, "").await["reply_keyboard"]["rows"], json!([["A"]]));
    emu.user(ALICE).send(&api.bot, "A").await.unwrap();
    assert_eq!(view(&emu, &api, "").await["reply_keyboard"], Value::Null);
    api.ok("sendMessage", json!({"chat_id": ALICE, "text": "Again", "reply_markup": keyboard})).await;
    api.ok("sendMessage", json!({"chat_id": ALICE, "text": "Bye", "reply_markup": {"remove_keyboard": true}})).await;
    assert_eq!(view(&emu, &api, "").await["reply_keyboard"], Value::Null);
}

#[tokio::test]
async fn files_in_the_view_link_to_their_bytes_served_sandboxed() {
    let (emu, api) = setup().await;
    let alice = emu.user(ALICE);
    alice.send_file(&api.bot, UserFile::photo(png()).caption("my <b>cat</b>")).await.unwrap();
    let page = b"<html><script>alert(1)</script></html>".to_vec();
    alice.send_file(&api.bot, UserFile::document("page.html", page.clone())).await.unwrap();
    let form = Form::new()
        .text("chat_id", ALICE.to_string())
        .text("caption", "Your report")
        .part("document", Part::bytes(b"a,b\n1,2\n".to_vec()).file_name("report.csv"));
    let (status, body) = post_form(&api, "sendDocument", form).await;
    assert_eq!(status, 200, "{body}");
    api.ok("sendPhoto", json!({"chat_id": ALICE, "photo": "https://example.com/by-url.png"})).await;
    let view = view(&emu, &api, "").await;
    let messages = view["messages"].as_array().unwrap();
    let photo = &messages[1];
    assert_eq!(photo["media"]["kind"], "photo");
    assert_eq!((photo["media"]["width"].as_u64(), photo["media"]["height"].as_u64()), (Some(3), Some(2)));
    assert_eq!(photo["text"], "my <b>cat</b>", "a user's caption is plain text");
    let content = photo["media"]["content"].as_str().unwrap();
    assert!(content.starts_with("/control/files/"), "{content}");
    let image = reqwest::get(format!("{}{content}", emu.api_url())).await.unwrap();
    assert_eq!(image.headers()["content-type"], "image/png");
    assert_eq!(image.bytes().await.unwrap().to_vec(), png());
    // A user's HTML document never runs in the emulator's origin.
    let html = &messages[2]["media"];
    assert_eq!((html["kind"].as_str(), html["file_name"].as_str()), (Some("document"), Some("page.html")));
    let served = reqwest::get(format!("{}{}", emu.api_url(), html["content"].as_str().unwrap())).await.unwrap();
    assert!(served.headers()["content-security-policy"].to_str().unwrap().starts_with("sandbox"));
    assert_eq!(served.headers()["x-content-type-options"], "nosniff");
    assert_eq!(served.bytes().await.unwrap().to_vec(), page);
    let report = &messages[3];
    assert_eq!((report["from_bot"].as_bool(), report["text"].as_str()), (Some(true), Some("Your report")));
    assert_eq!(report["media"]["file_name"], "report.csv");
    assert_eq!(report["media"]["file_size"], 8);
    // A file sent by URL has no bytes in the emulator: nothing to link to.
    assert_eq!(messages[4]["media"]["kind"], "photo");
    assert_eq!(messages[4]["media"]["content"], Value::Null);
}

#[tokio::test]
async fn an_unknown_bot_is_a_404_and_an_empty_chat_an_empty_view() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let missing = reqwest::get(format!("{}/control/bots/4242/chats/1/view", emu.api_url())).await.unwrap();
    assert_eq!(missing.status(), 404);
    let empty = view(&emu, &api, "").await;
    assert_eq!(empty["messages"], json!([]));
    assert_eq!(empty["seq"], 0);
}
