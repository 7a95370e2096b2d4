//! The emulator's playground in a real headless Chromium, talking to a fleet bot made of the built-in plugins: pick
//! the bot, write as a user, see formatting, click an inline button and see the message edited in place, see a
//! deletion, send a document and a photo, see a photo the bot sent, press a reply keyboard's button; bot text that
//! looks like HTML stays text.
//! `PLAYGROUND_SCREENSHOT=<file.png>` saves the page as it shows the edited menu (for the docs or a review).

use std::time::Duration;

use multibot::plugins::PluginRegistry;
use serde_json::json;

use crate::{
    browser::{Browser, ENTER},
    helpers::{TempDir, eventually, spawn_app, token},
};

const BOT: &str = r#"
id: "playground_bot"
name: "Playground Bot"
token: "${TOKEN_2}"
settings:
  parse_mode: "HTML"
plugins:
  - name: "start"
    config:
      welcome_message: "<b>Welcome</b> to the <i>playground</i>"
  - name: "menu"
  - name: "echo"
    config:
      echo_all: true
"#;

/// A 4x3 PNG, small and whole, for the browser to decode.
const PNG: [u8; 73] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x04, 0x00, 0x00, 0x00, 0x03, 0x08, 0x02, 0x00, 0x00, 0x00, 0x3b, 0x96, 0x39, 0x91, 0x00, 0x00, 0x00, 0x10, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x78, 0xe0, 0xe0, 0x00, 0x47, 0x0c, 0x38, 0x39, 0x00, 0x49, 0x76, 0x10, 0x81,
    0xa5, 0x07, 0x01, 0x13, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// The `data-id` of the message (an `li`) holding `element`.
const MESSAGE_ID: &str = "return arguments[0].closest('li.message').dataset.id;";

#[tokio::test]
async fn the_playground_shows_a_menu_edited_in_place_and_formatting_safely() {
    let Some(browser) = Browser::start("playground").await else { return };
    // Two bots are registered with the emulator; the fleet runs the second.
    let app = spawn_app(&[("playground.yaml", BOT)], 2, PluginRegistry::builtin()).await;
    let bot = app.bot(2).await;
    browser.goto(&app.emu.playground_url()).await;

    // Pick the bot and the user.
    browser.find(&format!("#bot option[value='{}']", bot.id)).await.click().await;
    let name = browser.find("#user-name").await;
    name.clear().await;
    name.type_text("Alice").await;
    assert_eq!(browser.find("#user-id").await.property("value").await, "1001");
    let text = browser.find("#text").await;

    // Formatting from the bot's HTML renders as elements.
    text.type_text(&format!("/start{ENTER}")).await;
    browser.find_text(".from-bot .text strong", "Welcome").await;
    browser.find_text(".from-bot .text em", "playground").await;
    assert_eq!(browser.find(".from-user .sender").await.text().await, "Alice");
    assert_eq!(text.property("value").await, "", "the field empties once the message is sent");
    let first = &bot.transcript(1001).await.unwrap()[0].message;
    assert_eq!(first.from.as_ref().map(|u| u.first_name.as_str()), Some("Alice"));

    // /menu, then "Option 2": the menu message becomes "Selected: Option 2" in place, its buttons gone.
    text.type_text(&format!("/menu{ENTER}")).await;
    let option = browser.find_text(".from-bot .keyboard button", "Option 2").await;
    let menu = browser.execute(MESSAGE_ID, vec![option.json()]).await;
    let menu = menu.as_str().expect("the menu's message id").to_owned();
    option.click().await;
    let script = "const li = document.querySelector(`li.message[data-id=\"${arguments[0]}\"]`);\
                  return !!li && li.textContent.includes('Selected: Option 2') && !li.querySelector('.keyboard')\
                  && li.querySelector('.meta').textContent.includes('edited');";
    browser.wait_until("the menu message shows the edit", script, vec![json!(menu)]).await;
    assert!(!browser.find("#messages").await.text().await.contains("Choose an option:"));
    browser.find_text("#status", "You selected option 2").await;
    let count = browser.find_all("#messages > li").await.len();
    assert_eq!(count, 4, "an edit adds no message");
    if let Ok(path) = std::env::var("PLAYGROUND_SCREENSHOT") {
        std::fs::write(&path, browser.screenshot().await).expect("screenshot written");
    }

    // Bot text that looks like HTML is text: nothing runs, no element comes of it.
    let attack = r#"<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">"#;
    text.type_text(&format!("{attack}{ENTER}")).await;
    let echo = browser.find_text(".from-bot .text", "You said: <script>").await;
    assert_eq!(echo.property("textContent").await, format!("You said: {attack}"));
    let safe = "return window.pwned === undefined && !document.querySelector('#messages script, #messages img');";
    assert_eq!(browser.execute(safe, vec![]).await, true);

    // Cancel deletes the menu: the page marks it deleted.
    text.type_text(&format!("/menu{ENTER}")).await;
    // The first menu lost its buttons to the edit: the only Cancel is the new menu's.
    let cancel = browser.find_text(".from-bot .keyboard button", "Cancel").await;
    let second = browser.execute(MESSAGE_ID, vec![cancel.json()]).await;
    cancel.click().await;
    let deleted = "const li = document.querySelector(`li.message[data-id=\"${arguments[0]}\"]`);\
                   return !!li && li.classList.contains('deleted') && !li.querySelector('.keyboard');";
    browser.wait_until("the cancelled menu is marked deleted", deleted, vec![second]).await;

    // A document sent from the page reaches the bot.
    let dir = TempDir::new();
    let notes = dir.write("notes.txt", "milk, eggs\n");
    browser.find("#file").await.type_text(&notes.display().to_string()).await;
    browser.find_text("#attachment", "notes.txt").await;
    text.type_text(&format!("shopping list{ENTER}")).await;
    browser.find_text(".from-user .file-name", "notes.txt").await;
    let transcript = bot.transcript(1001).await.unwrap();
    let sent = transcript.iter().rev().find(|m| m.message.document.is_some()).expect("the document in the chat");
    let document = sent.message.document.as_ref().unwrap();
    assert_eq!(document.file_name.as_deref(), Some("notes.txt"));
    assert_eq!(sent.message.caption.as_deref(), Some("shopping list"));
    assert_eq!(app.emu.control().file_bytes(&document.file_id).await.unwrap(), b"milk, eggs\n");
    eventually(Duration::from_secs(15), "the bot to take the document's update", || async {
        bot.stats().await.unwrap().pending == 0
    })
    .await;

    // A photo the bot sends shows as an image.
    let form = reqwest::multipart::Form::new()
        .text("chat_id", "1001")
        .text("caption", "A <b>red</b> square")
        .text("parse_mode", "HTML")
        .part("photo", reqwest::multipart::Part::bytes(PNG.to_vec()).file_name("red.png"));
    let url = format!("{}/bot{}/sendPhoto", app.emu.api_url(), token(2));
    let sent = reqwest::Client::new().post(url).multipart(form).send().await.unwrap();
    assert!(sent.status().is_success(), "{}", sent.text().await.unwrap());
    let shown = "const img = document.querySelector('.from-bot .media img');\
                 return !!img && img.complete && img.naturalWidth === 4;";
    browser.wait_until("the bot's photo to show", shown, vec![]).await;
    browser.find_text(".from-bot .text strong", "red").await;

    // A photo from the page goes as a photo, and shows as one.
    let red = dir.path().join("red.png");
    std::fs::write(&red, PNG).expect("a PNG file");
    browser.find("#file").await.type_text(&red.display().to_string()).await;
    browser.find_text("#attachment", "red.png").await;
    text.type_text(ENTER).await;
    let mine = "const img = document.querySelector('.from-user .media img');\
                return !!img && img.complete && img.naturalWidth === 4;";
    browser.wait_until("the user's photo to show", mine, vec![]).await;
    let last = bot.transcript(1001).await.unwrap().pop().expect("the photo");
    assert_eq!(last.message.photo.map(|sizes| sizes[0].width), Some(4));

    // A reply keyboard: its buttons send their text; a one-time keyboard goes once used.
    let keyboard = json!({ "keyboard": [["Yes", "No"]], "one_time_keyboard": true });
    let url = format!("{}/bot{}/sendMessage", app.emu.api_url(), token(2));
    let question = json!({ "chat_id": 1001, "text": "Sure?", "reply_markup": keyboard });
    let sent = reqwest::Client::new().post(url).json(&question).send().await.unwrap();
    assert!(sent.status().is_success(), "{}", sent.text().await.unwrap());
    browser.find_text("#reply-keyboard button", "Yes").await.click().await;
    browser.find_text(".from-bot .text", "You said: Yes").await;
    let gone = "return document.getElementById('reply-keyboard').hidden;";
    browser.wait_until("the one-time keyboard to go", gone, vec![]).await;

    // The page keeps its choices in its address, and no cookies.
    let address = browser.current_url().await;
    assert!(address.contains(&format!("bot={}", bot.id)) && address.contains("name=Alice"), "{address}");
    assert!(browser.cookies().await.is_empty());
    drop(browser);
    app.stop().await;
}
