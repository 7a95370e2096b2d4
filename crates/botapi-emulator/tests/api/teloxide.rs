//! A real Bot API client, teloxide-core, pointed at the emulator: every answer deserializes.

use teloxide_core::{
    prelude::*,
    types::{ChatId, InlineKeyboardButton, InlineKeyboardMarkup, UpdateKind},
};

use crate::helpers::{spawn, token};

#[tokio::test]
async fn teloxide_accepts_the_wire_format() {
    let emu = spawn().await;
    let test_bot = emu.control().bot_named(&token(5005), "Wire Bot", "wire_bot").await.unwrap();
    let bot = Bot::new(token(5005)).set_api_url(emu.api_url().parse().unwrap());

    let me = bot.get_me().await.unwrap();
    assert_eq!(me.user.id.0, 5005);
    assert_eq!(me.username(), "wire_bot");

    let alice = emu.user(42);
    alice.send(&test_bot, "/start").await.unwrap();
    let updates = bot.get_updates().await.unwrap();
    let UpdateKind::Message(message) = &updates[0].kind else { panic!("not a message: {:?}", updates[0]) };
    assert_eq!(message.text(), Some("/start"));
    assert_eq!(message.chat.id, ChatId(42));

    let keyboard = InlineKeyboardMarkup::new([[InlineKeyboardButton::callback("Pick", "pick")]]);
    let sent = bot.send_message(ChatId(42), "Menu").reply_markup(keyboard).await.unwrap();
    assert_eq!(sent.text(), Some("Menu"));
    assert!(sent.reply_markup().is_some());

    let edited = bot.edit_message_text(ChatId(42), sent.id, "Menu (edited)").await.unwrap();
    assert_eq!(edited.text(), Some("Menu (edited)"));
    assert!(edited.edit_date().is_some());

    let shown = alice.next_message_from(&test_bot).await.unwrap();
    let with_keyboard = bot
        .edit_message_reply_markup(ChatId(42), sent.id)
        .reply_markup(InlineKeyboardMarkup::new([[InlineKeyboardButton::callback("Pick", "pick")]]))
        .await
        .unwrap();
    let shown = botapi_emulator::types::Message {
        reply_markup: serde_json::to_value(with_keyboard.reply_markup()).ok(),
        ..shown
    };
    alice.click(&test_bot, &shown, "pick").await.unwrap();
    let next = updates.last().unwrap().id.as_offset();
    let updates = bot.get_updates().offset(next).await.unwrap();
    let UpdateKind::CallbackQuery(query) = &updates[0].kind else { panic!("not a callback: {:?}", updates[0]) };
    assert_eq!(query.data.as_deref(), Some("pick"));
    bot.answer_callback_query(query.id.clone()).text("Picked").await.unwrap();

    let answers = test_bot.callback_answers().await.unwrap();
    assert_eq!(answers[0].detail.as_ref().unwrap()["text"], "Picked");
    bot.set_my_commands([teloxide_core::types::BotCommand::new("start", "Start")]).await.unwrap();
    assert_eq!(bot.get_my_commands().await.unwrap()[0].command, "start");
}

#[tokio::test]
async fn teloxide_uploads_downloads_and_sends_albums_and_polls() {
    use teloxide_core::{
        net::Download,
        types::{InputFile, InputMedia, InputMediaDocument, InputMediaPhoto, InputPollOption},
    };

    let emu = spawn().await;
    let test_bot = emu.bot(&token(5006)).await.unwrap();
    let bot = Bot::new(token(5006)).set_api_url(emu.api_url().parse().unwrap());
    emu.user(42).send(&test_bot, "hi").await.unwrap();
    let bytes = b"hello, file".to_vec();
    let sent = bot.send_document(ChatId(42), InputFile::memory(bytes.clone()).file_name("hello.txt")).await.unwrap();
    let document = sent.document().unwrap();
    assert_eq!(document.file_name.as_deref(), Some("hello.txt"));
    let file = bot.get_file(document.file.id.clone()).await.unwrap();
    let mut downloaded = Vec::new();
    bot.download_file(&file.path, &mut downloaded).await.unwrap();
    assert_eq!(downloaded, bytes);
    let photo = crate::files::png();
    let album = bot
        .send_media_group(
            ChatId(42),
            [
                InputMedia::Photo(InputMediaPhoto::new(InputFile::memory(photo.clone()).file_name("a.png"))),
                InputMedia::Photo(InputMediaPhoto::new(InputFile::file_id(sent.document().unwrap().file.id.clone()))),
            ],
        )
        .await;
    // A document's id as a photo: refused as Telegram refuses it.
    assert!(album.unwrap_err().to_string().contains("can't use file of type Document as Photo"));
    let album = bot
        .send_media_group(
            ChatId(42),
            [
                InputMedia::Document(InputMediaDocument::new(InputFile::memory(bytes.clone()).file_name("a.txt"))),
                InputMedia::Document(InputMediaDocument::new(InputFile::file_id(document.file.id.clone()))),
            ],
        )
        .await
        .unwrap();
    assert_eq!(album.len(), 2);
    assert_eq!(album[0].media_group_id(), album[1].media_group_id());
    let poll =
        bot.send_poll(ChatId(42), "Tea?", [InputPollOption::new("yes"), InputPollOption::new("no")]).await.unwrap();
    let stopped = bot.stop_poll(ChatId(42), poll.id).await.unwrap();
    assert!(stopped.is_closed);
}
