//! sendMessage and friends: results, validation errors, edits, deletions, callbacks, commands, files.

use botapi_emulator::types::Message;
use serde_json::{Value, json};

use crate::helpers::{Api, read, spawn};

/// A bot with user 10 having written to it.
async fn setup() -> (botapi_emulator::Emulator, Api) {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    emu.user(10).send(&api.bot, "/start").await.unwrap();
    (emu, api)
}

#[tokio::test]
async fn send_message_returns_the_full_message_with_ids_increasing_per_chat() {
    let (emu, api) = setup().await;
    let first = api.ok("sendMessage", json!({"chat_id": 10, "text": "hello"})).await;
    let second = api.ok("sendMessage", json!({"chat_id": 10, "text": "again"})).await;
    assert_eq!(first["message_id"], 2, "the user's /start was message 1");
    assert_eq!(second["message_id"], 3);
    assert_eq!(first["from"]["id"], 1000);
    assert_eq!(first["from"]["is_bot"], true);
    assert_eq!(first["chat"]["id"], 10);
    assert_eq!(first["chat"]["type"], "private");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((first["date"].as_i64().unwrap() - now).abs() <= 5);
    let reply = emu.user(10).next_message_from(&api.bot).await.unwrap();
    assert_eq!(reply.text.as_deref(), Some("hello"));
    // Another user's chat counts from 1 again.
    emu.user(11).send(&api.bot, "hi").await.unwrap();
    assert_eq!(api.ok("sendMessage", json!({"chat_id": 11, "text": "x"})).await["message_id"], 2);
}

#[tokio::test]
async fn send_message_validation_errors() {
    let (emu, api) = setup().await;
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"chat_id": 10, "text": ""}), 400, "Bad Request: message text is empty"),
        (json!({"chat_id": 10, "text": "   "}), 400, "Bad Request: message text is empty"),
        (json!({"chat_id": 10}), 400, "Bad Request: message text is empty"),
        (json!({"chat_id": 10, "text": "a".repeat(4097)}), 400, "Bad Request: message is too long"),
        (json!({"text": "no chat"}), 400, "Bad Request: chat_id is empty"),
        (json!({"chat_id": 99999, "text": "x"}), 400, "Bad Request: chat not found"),
        (json!({"chat_id": "@nobody", "text": "x"}), 400, "Bad Request: chat not found"),
        (json!({"chat_id": 10, "text": "x", "parse_mode": "Klingon"}), 400, "Bad Request: unsupported parse_mode"),
        (
            json!({"chat_id": 10, "text": "x", "reply_markup": "{not json"}),
            400,
            "Bad Request: can't parse reply keyboard markup JSON object",
        ),
        (
            json!({"chat_id": 10, "text": "x", "reply_markup": {"inline_keyboard": [[{"text": "A", "callback_data": "x".repeat(65)}]]}}),
            400,
            "Bad Request: BUTTON_DATA_INVALID",
        ),
        (
            json!({"chat_id": 10, "text": "x", "reply_markup": {"inline_keyboard": [[{"text": "A", "callback_data": ""}]]}}),
            400,
            "Bad Request: BUTTON_DATA_INVALID",
        ),
        (
            json!({"chat_id": 10, "text": "x", "reply_markup": {"inline_keyboard": [[{"text": "A"}]]}}),
            400,
            "Bad Request: text buttons are unallowed in the inline keyboard",
        ),
        (
            json!({"chat_id": 10, "text": "x", "reply_markup": {"inline_keyboard": [[{"text": "A", "url": "not a url"}]]}}),
            400,
            "Bad Request: inline keyboard button URL 'not a url' is invalid: Wrong HTTP URL",
        ),
        (
            json!({"chat_id": 10, "text": "x", "reply_to_message_id": 999}),
            400,
            "Bad Request: message to be replied not found",
        ),
    ];
    for (params, status, expected) in cases {
        assert_eq!(api.err("sendMessage", params.clone(), status).await, expected, "{params}");
    }
    // Exactly at the limits is fine: 4096 characters (Cyrillic counts one each), 64-byte callback data.
    api.ok("sendMessage", json!({"chat_id": 10, "text": "я".repeat(4096)})).await;
    let keyboard = json!({"inline_keyboard": [[{"text": "A", "callback_data": "x".repeat(64)}]]});
    api.ok("sendMessage", json!({"chat_id": 10, "text": "x", "reply_markup": keyboard})).await;
    // A known user who never wrote, a user who blocked the bot, and another bot are forbidden.
    emu.control()
        .upsert_user(&botapi_emulator::types::User {
            id: 20,
            is_bot: false,
            first_name: "Bob".into(),
            last_name: None,
            username: None,
            language_code: None,
        })
        .await
        .unwrap();
    assert_eq!(
        api.err("sendMessage", json!({"chat_id": 20, "text": "x"}), 403).await,
        "Forbidden: bot can't initiate conversation with a user"
    );
    emu.user(10).block(&api.bot).await.unwrap();
    assert_eq!(
        api.err("sendMessage", json!({"chat_id": 10, "text": "x"}), 403).await,
        "Forbidden: bot was blocked by the user"
    );
    Api::new(&emu, 2000).await;
    assert_eq!(
        api.err("sendMessage", json!({"chat_id": 2000, "text": "x"}), 403).await,
        "Forbidden: bot can't send messages to bots"
    );
    // Nothing was recorded for the failed sends.
    let sent = api.bot.transcript(10).await.unwrap().iter().filter(|m| m.from_bot).count();
    assert_eq!(sent, 2);
}

#[tokio::test]
async fn parse_mode_and_options_are_kept() {
    let (_emu, api) = setup().await;
    let sent = api
        .ok("sendMessage", json!({"chat_id": 10, "text": "<b>Hi</b> &amp; bye", "parse_mode": "HTML", "disable_web_page_preview": true}))
        .await;
    assert_eq!(sent["text"], "Hi & bye");
    assert_eq!(sent["entities"], json!([{"type": "bold", "offset": 0, "length": 2}]));
    assert_eq!(sent["link_preview_options"], json!({"is_disabled": true}));
    let entry = api.bot.transcript(10).await.unwrap().pop().unwrap();
    assert_eq!(entry.parse_mode.as_deref(), Some("HTML"));
    assert_eq!(entry.raw_text.as_deref(), Some("<b>Hi</b> &amp; bye"));
    assert_eq!(entry.options["disable_web_page_preview"], true);
    let description =
        api.err("sendMessage", json!({"chat_id": 10, "text": "<b>open", "parse_mode": "HTML"}), 400).await;
    assert!(description.starts_with("Bad Request: can't parse entities: "), "{description}");
}

#[tokio::test]
async fn edit_and_delete_messages() {
    let (emu, api) = setup().await;
    let keyboard = json!({"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]});
    let sent = api.ok("sendMessage", json!({"chat_id": 10, "text": "v1", "reply_markup": keyboard})).await;
    let id = sent["message_id"].clone();
    let edited = api.ok("editMessageText", json!({"chat_id": 10, "message_id": id, "text": "v2"})).await;
    assert_eq!(edited["text"], "v2");
    assert!(edited["edit_date"].is_i64());
    assert!(edited.get("reply_markup").is_none(), "editing the text without a markup removes the keyboard");
    let not_modified = "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message";
    assert_eq!(
        api.err("editMessageText", json!({"chat_id": 10, "message_id": id, "text": "v2"}), 400).await,
        not_modified
    );
    let with_markup =
        api.ok("editMessageReplyMarkup", json!({"chat_id": 10, "message_id": id, "reply_markup": keyboard})).await;
    assert_eq!(with_markup["reply_markup"], keyboard);
    assert_eq!(
        api.err("editMessageReplyMarkup", json!({"chat_id": 10, "message_id": id, "reply_markup": keyboard}), 400)
            .await,
        not_modified
    );
    assert_eq!(
        api.err("editMessageText", json!({"chat_id": 10, "message_id": 999, "text": "x"}), 400).await,
        "Bad Request: message to edit not found"
    );
    assert_eq!(
        api.err("editMessageText", json!({"chat_id": 10, "message_id": 1, "text": "x"}), 400).await,
        "Bad Request: message can't be edited"
    );
    let entry = api.bot.transcript(10).await.unwrap().into_iter().find(|m| m.message.message_id == id).unwrap();
    let history: Vec<_> = entry.edits.iter().map(|m| m.text.clone().unwrap()).collect();
    assert_eq!(history, ["v1", "v2"]);
    assert_eq!(api.ok("deleteMessage", json!({"chat_id": 10, "message_id": id})).await, true);
    assert_eq!(
        api.err("deleteMessage", json!({"chat_id": 10, "message_id": id}), 400).await,
        "Bad Request: message to delete not found"
    );
    assert_eq!(
        api.err("editMessageText", json!({"chat_id": 10, "message_id": id, "text": "x"}), 400).await,
        "Bad Request: message to edit not found"
    );
    let kinds: Vec<_> = api
        .bot
        .events(0, Some(10), None, std::time::Duration::ZERO)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["message", "edit", "edit", "delete"]);
    assert!(api.bot.transcript(10).await.unwrap().iter().any(|m| m.deleted));
    let _ = emu;
}

#[tokio::test]
async fn callback_queries_are_answered_once() {
    let (emu, api) = setup().await;
    let keyboard = json!({"inline_keyboard": [[{"text": "One", "callback_data": "opt_1"}, {"text": "Two", "callback_data": "opt_2"}]]});
    let menu: Message = serde_json::from_value(
        api.ok("sendMessage", json!({"chat_id": 10, "text": "Choose", "reply_markup": keyboard})).await,
    )
    .unwrap();
    let alice = emu.user(10);
    // Bad input: a button the message does not have.
    assert!(alice.click(&api.bot, &menu, "opt_9").await.is_err());
    let click = alice.click(&api.bot, &menu, "opt_2").await.unwrap();
    let updates = api.ok("getUpdates", json!({})).await;
    let query =
        updates.as_array().unwrap().iter().find(|u| u.get("callback_query").is_some()).unwrap()["callback_query"]
            .clone();
    assert_eq!(query["id"].as_str(), click.callback_query_id.as_deref());
    assert_eq!(query["data"], "opt_2");
    assert_eq!(query["from"]["id"], 10);
    assert_eq!(query["message"]["message_id"], menu.message_id);
    assert!(query["chat_instance"].is_string());
    api.ok("answerCallbackQuery", json!({"callback_query_id": query["id"], "text": "You chose 2"})).await;
    let again = api.err("answerCallbackQuery", json!({"callback_query_id": query["id"]}), 400).await;
    assert_eq!(again, "Bad Request: query is too old and response timeout expired or query ID is invalid");
    assert_eq!(api.err("answerCallbackQuery", json!({"callback_query_id": "nope"}), 400).await, again);
    let answers = api.bot.callback_answers().await.unwrap();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].detail.as_ref().unwrap()["text"], "You chose 2");
    assert_eq!(answers[0].detail.as_ref().unwrap()["data"], "opt_2");
}

#[tokio::test]
async fn bot_commands_per_scope_and_language() {
    let (_emu, api) = setup().await;
    let commands = json!([{"command": "start", "description": "Start"}, {"command": "help", "description": "Help"}]);
    api.ok("setMyCommands", json!({"commands": commands})).await;
    api.ok("setMyCommands", json!({"commands": [{"command": "hilfe", "description": "Hilfe"}], "language_code": "de"}))
        .await;
    assert_eq!(api.ok("getMyCommands", json!({})).await, commands);
    assert_eq!(api.ok("getMyCommands", json!({"language_code": "de"})).await[0]["command"], "hilfe");
    assert_eq!(api.ok("getMyCommands", json!({"scope": {"type": "all_group_chats"}})).await, json!([]));
    for bad in [
        json!([{"command": "Start", "description": "x"}]),
        json!([{"command": "a".repeat(33), "description": "x"}]),
        json!([{"command": "", "description": "x"}]),
    ] {
        assert_eq!(api.err("setMyCommands", json!({"commands": bad}), 400).await, "Bad Request: BOT_COMMAND_INVALID");
    }
    assert_eq!(
        api.err("setMyCommands", json!({"commands": [{"command": "ok", "description": ""}]}), 400).await,
        "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID"
    );
    api.ok("deleteMyCommands", json!({})).await;
    assert_eq!(api.ok("getMyCommands", json!({})).await, json!([]));
}

#[tokio::test]
async fn chat_actions_close_and_log_out() {
    let (_emu, api) = setup().await;
    assert_eq!(api.ok("sendChatAction", json!({"chat_id": 10, "action": "typing"})).await, true);
    assert_eq!(
        api.err("sendChatAction", json!({"chat_id": 10, "action": "dancing"}), 400).await,
        "Bad Request: wrong parameter action in request"
    );
    let events = api.bot.events(0, Some(10), Some("chat_action"), std::time::Duration::ZERO).await.unwrap();
    assert_eq!(events[0].detail.as_ref().unwrap()["action"], "typing");
    assert_eq!(api.ok("close", json!({})).await, true);
    assert_eq!(api.ok("logOut", json!({})).await, true);
}

/// A 3x2 PNG header, enough for the emulator to read its size.
fn png() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.extend_from_slice(&3u32.to_be_bytes());
    bytes.extend_from_slice(&2u32.to_be_bytes());
    bytes.extend_from_slice(&[8, 6, 0, 0, 0]);
    bytes
}

#[tokio::test]
async fn photos_and_documents_upload_as_multipart() {
    let (_emu, api) = setup().await;
    let post = |method: &str, form: reqwest::multipart::Form| {
        let request = api.http.post(format!("{}/{method}", api.base)).multipart(form);
        async move { read(request.send().await.unwrap()).await }
    };
    let photo = reqwest::multipart::Part::bytes(png()).file_name("cat.png").mime_str("image/png").unwrap();
    let form = reqwest::multipart::Form::new()
        .text("chat_id", "10")
        .text("caption", "<i>cat</i>")
        .text("parse_mode", "HTML")
        .part("photo", photo);
    let (status, body) = post("sendPhoto", form).await;
    assert_eq!(status, 200, "{body}");
    let size = &body["result"]["photo"][0];
    assert_eq!((size["width"].as_u64(), size["height"].as_u64()), (Some(3), Some(2)));
    assert_eq!(body["result"]["caption"], "cat");
    assert_eq!(body["result"]["caption_entities"][0]["type"], "italic");
    // The file id can be sent again without uploading.
    let file_id = size["file_id"].as_str().unwrap();
    let again = api.ok("sendPhoto", json!({"chat_id": 10, "photo": file_id})).await;
    assert_eq!(again["photo"][0]["file_unique_id"], size["file_unique_id"]);
    // attach:// refers to another multipart field.
    let document =
        reqwest::multipart::Part::bytes(b"a,b\n1,2\n".to_vec()).file_name("report.csv").mime_str("text/csv").unwrap();
    let form = reqwest::multipart::Form::new()
        .text("chat_id", "10")
        .text("document", "attach://file0")
        .part("file0", document);
    let (status, body) = post("sendDocument", form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["document"]["file_name"], "report.csv");
    assert_eq!(body["result"]["document"]["mime_type"], "text/csv");
    assert_eq!(body["result"]["document"]["file_size"], 8);
    // Bad input: text that is not an image, an unknown file id, no file at all.
    let fake = reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("x.png");
    let (status, body) =
        post("sendPhoto", reqwest::multipart::Form::new().text("chat_id", "10").part("photo", fake)).await;
    assert_eq!((status, body["description"].as_str()), (400, Some("Bad Request: IMAGE_PROCESS_FAILED")));
    assert_eq!(
        api.err("sendDocument", json!({"chat_id": 10, "document": "bogus-id"}), 400).await,
        "Bad Request: wrong file identifier/HTTP URL specified"
    );
    assert_eq!(
        api.err("sendPhoto", json!({"chat_id": 10}), 400).await,
        "Bad Request: there is no photo in the request"
    );
}
