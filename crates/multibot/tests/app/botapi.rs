//! The Bot API client against a server that is not quite Telegram: answers without newer fields, an edit answered
//! `true`, an HTML 502 page, case-sensitive method names; and what plugins send: texts over 4096 characters,
//! `callback_data` over 64 bytes. Polling and webhook updates missing a field are still handled.

use std::{sync::Arc, time::Duration};

use botapi_emulator::{FaultSpec, METHODS, TestBot, TestUser, types::ChatMessage};
use multibot::{config::BotId, fleet::BotState, plugins::PluginRegistry, prelude::*, runtime::webhook::StorageSecrets};
use serde_json::json;

use crate::helpers::{TempDir, TestApp, Web, emulator, eventually, serve, spawn_app, spawn_app_on, spawn_app_with};

const WAIT: Duration = Duration::from_secs(10);

const ECHO_MENU: &str = r#"
id: "talk"
name: "Talk"
token: "${TOKEN_1}"
plugins:
  - name: "talker"
  - name: "menu"
  - name: "echo"
    config: { echo_all: true }
  - name: "error_handler"
"#;

/// Sends what the tests need: `/long N` N numbered lines with a keyboard, `/wide` a keyboard with a 65-byte
/// `callback_data`.
struct Talker;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TalkerConfig {}

impl Plugin for Talker {
    type Config = TalkerConfig;

    fn meta() -> PluginMeta {
        PluginMeta::new("talker").description("Long texts and wide keyboards")
    }

    fn new(_config: TalkerConfig, _cx: &PluginContext) -> anyhow::Result<Talker> {
        Ok(Talker)
    }

    fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
        handlers
            .command("long", "N numbered lines", |_: Arc<Talker>, cx: Ctx| async move {
                let lines: usize = cx.command_args().parse()?;
                let text: String = (0..lines).map(|i| format!("line {i:04}\n")).collect();
                let done = InlineKeyboardMarkup::new([[InlineKeyboardButton::callback("Done", "done")]]);
                cx.reply(text).plain().keyboard(done).await?;
                Ok(())
            })
            .command("wide", "A button with too much data", |_: Arc<Talker>, cx: Ctx| async move {
                let keyboard = InlineKeyboardMarkup::new([[
                    InlineKeyboardButton::callback("Fine", "fine"),
                    InlineKeyboardButton::callback("Far too wide", "w".repeat(65)),
                ]]);
                cx.reply("Pick one").keyboard(keyboard).await?;
                Ok(())
            });
    }
}

fn registry() -> PluginRegistry {
    let mut registry = PluginRegistry::builtin();
    registry.register::<Talker>();
    registry
}

/// The bot's messages in the user's chat, oldest first.
async fn bot_messages(user: &TestUser, bot: &TestBot) -> Vec<ChatMessage> {
    user.transcript(bot).await.unwrap().into_iter().filter(|m| m.from_bot).collect()
}

fn running(app: &TestApp) -> bool {
    app.manager.status().iter().all(|s| s.state == BotState::Running)
}

#[tokio::test]
async fn a_bot_starts_against_a_server_whose_get_me_lacks_has_main_web_app() {
    let emu = emulator(1).await;
    let bot = emu.bot(&crate::helpers::token(1)).await.unwrap();
    bot.inject(FaultSpec::omit("getMe", &["has_main_web_app"]).times(100)).await.unwrap();
    let app = spawn_app_on(emu, &[("talk.yaml", ECHO_MENU)], registry(), &[]).await;
    assert!(running(&app), "{:?}", app.manager.status());
    let user = app.emu.user(1001);
    user.send(&bot, "/echo hi").await.unwrap();
    assert_eq!(user.next_message_from(&bot).await.unwrap().text.as_deref(), Some("hi"));
    let get_me = bot.calls(Some("getMe")).await.unwrap();
    assert!(!get_me.is_empty() && get_me.iter().all(|c| c.status == 200), "{get_me:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_callback_query_without_chat_instance_is_routed_and_answered() {
    let app = spawn_app(&[("talk.yaml", ECHO_MENU)], 1, registry()).await;
    let bot = app.bot(1).await;
    let user = app.emu.user(1001);
    user.send(&bot, "/menu").await.unwrap();
    let menu = user.next_message_from(&bot).await.unwrap();
    bot.inject(FaultSpec::omit("getUpdates", &["callback_query.chat_instance"]).times(1)).await.unwrap();
    user.click(&bot, &menu, "opt_2").await.unwrap();
    let edit = bot.next_event(0, Some(1001), Some("edit"), WAIT).await.unwrap();
    assert_eq!(edit.message.and_then(|m| m.text).as_deref(), Some("Selected: Option 2"));
    eventually(WAIT, "the click answered", || async { bot.callback_answers().await.unwrap().len() == 1 }).await;
    let stripped = bot.calls(Some("getUpdates")).await.unwrap();
    assert!(stripped.iter().all(|c| c.status == 200));
    app.stop().await;
}

#[tokio::test]
async fn an_edit_answered_with_true_is_a_success() {
    let app = spawn_app(&[("talk.yaml", ECHO_MENU)], 1, registry()).await;
    let bot = app.bot(1).await;
    let user = app.emu.user(1001);
    user.send(&bot, "/menu").await.unwrap();
    let menu = user.next_message_from(&bot).await.unwrap();
    bot.inject(FaultSpec::answer("editMessageText", json!(true))).await.unwrap();
    user.click(&bot, &menu, "opt_1").await.unwrap();
    // An update counts as handled once its errors are reported, so any error reply would be here by then.
    eventually(WAIT, "the click handled", || async { app.manager.status()[0].updates_handled == 2 }).await;
    assert_eq!(bot.callback_answers().await.unwrap().len(), 1);
    let texts: Vec<String> =
        bot_messages(&user, &bot).await.into_iter().filter_map(|m| m.message.text).collect::<Vec<_>>();
    assert_eq!(texts, ["Selected: Option 1"], "the edit applied, and no error reply");
    assert_eq!(app.manager.status()[0].last_error, None);
    app.stop().await;
}

#[tokio::test]
async fn an_html_502_page_is_retried_and_the_reply_arrives() {
    an_html_502_page_is_retried("1.1").await;
}

#[tokio::test]
async fn over_http2_an_html_502_page_is_retried_and_the_reply_arrives() {
    an_html_502_page_is_retried("2").await;
}

/// Bad input from a proxy in front of Telegram: an HTML page with a 502, twice, over `http` (`TELEGRAM_API_HTTP`).
async fn an_html_502_page_is_retried(http: &str) {
    let app =
        spawn_app_with(&[("talk.yaml", ECHO_MENU)], 1, registry(), &[("TELEGRAM_API_HTTP", http.to_owned())]).await;
    let bot = app.bot(1).await;
    let user = app.emu.user(1001);
    user.send(&bot, "/menu").await.unwrap();
    user.next_message_from(&bot).await.unwrap();
    bot.inject(FaultSpec::html_error("sendMessage", 502).times(2)).await.unwrap();
    user.send(&bot, "/echo after the storm").await.unwrap();
    let reply = user.next_message_from(&bot).await.unwrap();
    assert_eq!(reply.text.as_deref(), Some("after the storm"));
    let statuses: Vec<u16> = bot.calls(Some("sendMessage")).await.unwrap().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [200, 502, 502, 200], "retried twice, then sent once");
    assert_eq!(app.manager.status()[0].last_error, None);
    app.stop().await;
}

#[tokio::test]
async fn method_names_go_out_as_the_bot_api_spells_them() {
    // The helpers' emulator answers 404 to any other spelling (`GetMe`, `SendMessage`).
    let app = spawn_app(&[("talk.yaml", ECHO_MENU)], 1, registry()).await;
    let bot = app.bot(1).await;
    assert!(running(&app), "{:?}", app.manager.status());
    let user = app.emu.user(1001);
    user.send(&bot, "/menu").await.unwrap();
    let menu = user.next_message_from(&bot).await.unwrap();
    user.click(&bot, &menu, "opt_1").await.unwrap();
    bot.next_event(0, Some(1001), Some("edit"), WAIT).await.unwrap();
    eventually(WAIT, "the click answered", || async { bot.callback_answers().await.unwrap().len() == 1 }).await;
    let calls = bot.calls(None).await.unwrap();
    for method in ["getMe", "deleteWebhook", "setMyCommands", "getUpdates", "sendMessage", "editMessageText"] {
        assert!(calls.iter().any(|c| c.method == method), "{method} never called: {calls:?}");
    }
    let wrong: Vec<_> = calls.iter().filter(|c| !METHODS.contains(&c.method.as_str()) || c.status == 404).collect();
    assert!(wrong.is_empty(), "{wrong:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_text_over_4096_characters_goes_out_as_several_messages_with_the_keyboard_on_the_last() {
    let app = spawn_app(&[("talk.yaml", ECHO_MENU)], 1, registry()).await;
    let bot = app.bot(1).await;
    let user = app.emu.user(1001);
    // 1000 lines of 10 characters: 10,000 characters.
    user.send(&bot, "/long 1000").await.unwrap();
    let mut parts = Vec::new();
    for _ in 0..3 {
        parts.push(user.next_message_from(&bot).await.unwrap());
    }
    let expected: String = (0..1000).map(|i| format!("line {i:04}\n")).collect();
    let texts: Vec<String> = parts.iter().map(|m| m.text.clone().unwrap()).collect();
    assert_eq!(texts.concat(), expected, "in order, nothing lost");
    assert!(texts.iter().all(|t| t.encode_utf16().count() <= 4096 && t.ends_with('\n')), "cut at line ends");
    let keyboards: Vec<bool> = parts.iter().map(|m| m.reply_markup.is_some()).collect();
    assert_eq!(keyboards, [false, false, true]);
    // The echo of a 4,090-character message with a prefix: two messages, nothing lost.
    let said = "é".repeat(4090);
    user.send(&bot, &said).await.unwrap();
    let first = user.next_message_from(&bot).await.unwrap().text.unwrap();
    let second = user.next_message_from(&bot).await.unwrap().text.unwrap();
    assert_eq!(format!("{first}{second}"), format!("You said: {said}"));
    assert_eq!(app.manager.status()[0].last_error, None);
    app.stop().await;
}

#[tokio::test]
async fn callback_data_over_64_bytes_is_refused_naming_the_button_and_nothing_is_sent() {
    let app = spawn_app(&[("talk.yaml", ECHO_MENU)], 1, registry()).await;
    let bot = app.bot(1).await;
    let user = app.emu.user(1001);
    user.send(&bot, "/wide").await.unwrap();
    let reply = user.next_message_from(&bot).await.unwrap().text.unwrap();
    assert!(reply.starts_with("Something went wrong"), "the error reply: {reply}");
    let status = app.manager.status_of(&BotId::parse("talk").unwrap()).unwrap();
    let error = status.last_error.unwrap_or_default();
    assert!(error.contains("keyboard button \"Far too wide\": callback_data is 65 bytes"), "{error}");
    let sent = bot.calls(Some("sendMessage")).await.unwrap();
    assert!(sent.iter().all(|c| c.status == 200 && c.params["text"] != "Pick one"), "{sent:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_script_keyboard_with_callback_data_over_64_bytes_is_a_script_error_naming_the_button() {
    let scripts = TempDir::new();
    scripts.write(
        "wide.luau",
        r#"plugin { name = "wide", description = "A wide button" }
command("wide", "A wide button", function(ctx)
  ctx:reply("Pick one", { keyboard = { { { text = "Much too wide", data = string.rep("w", 65) } } } })
end)
"#,
    );
    let bot_yaml = "id: wide\nname: wide\ntoken: \"${TOKEN_1}\"\nplugins:\n  - name: wide\n  - name: error_handler\n";
    let plugins_dir = ("PLUGINS_DIR", scripts.path().display().to_string());
    let app = spawn_app_with(&[("wide.yaml", bot_yaml)], 1, PluginRegistry::builtin(), &[plugins_dir]).await;
    let bot = app.bot(1).await;
    let user = app.emu.user(1001);
    user.send(&bot, "/wide").await.unwrap();
    let reply = user.next_message_from(&bot).await.unwrap().text.unwrap();
    assert!(reply.starts_with("Something went wrong"), "the error reply: {reply}");
    let error = app.manager.status()[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("keyboard button \"Much too wide\": callback_data is 65 bytes"), "{error}");
    let sent = bot.calls(Some("sendMessage")).await.unwrap();
    assert!(sent.iter().all(|c| c.params["text"] != "Pick one"), "{sent:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_webhook_update_missing_a_field_is_still_handled_and_an_unreadable_click_answered() {
    let emu = emulator(1).await;
    let dir = TempDir::new();
    dir.write("talk.yaml", &ECHO_MENU.replace("plugins:", "mode: \"webhook\"\nplugins:"));
    let app = serve(&emu, dir.path(), Web::Separate, &[], registry()).await;
    let bot = emu.bot(&crate::helpers::token(1)).await.unwrap();
    let user = emu.user(1001);
    user.send(&bot, "/echo first").await.unwrap();
    user.next_message_from(&bot).await.unwrap();
    let secrets = app.storage.plugin_store("talk", StorageSecrets::PLUGIN);
    let secret: String = secrets.get(StorageSecrets::KEY).await.unwrap().expect("a webhook secret");
    // A message without `date`, as a third-party server might push it.
    let update = json!({"update_id": 900_001, "message": {
        "message_id": 77,
        "chat": {"id": 1001, "type": "private", "first_name": "Tester"},
        "from": {"id": 1001, "is_bot": false, "first_name": "Tester"},
        "text": "/echo no date",
    }});
    let status = reqwest::Client::new()
        .post(app.webhook_url("/talk"))
        .header("X-Telegram-Bot-Api-Secret-Token", &secret)
        .json(&update)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    assert_eq!(user.next_message_from(&bot).await.unwrap().text.as_deref(), Some("no date"));
    // A click that does not decode even leniently is still answered, so the button stops spinning.
    let unreadable = json!({"update_id": 900_002, "callback_query": {"id": "q-unreadable", "from": "someone"}});
    let status = reqwest::Client::new()
        .post(app.webhook_url("/talk"))
        .header("X-Telegram-Bot-Api-Secret-Token", &secret)
        .json(&unreadable)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    eventually(WAIT, "the unreadable click answered", || async {
        let answers = bot.calls(Some("answerCallbackQuery")).await.unwrap();
        answers.iter().any(|c| c.params["callback_query_id"] == "q-unreadable")
    })
    .await;
    app.stop().await;
}
