//! Media broadcasts from the admin bot (issue 22). What each test proves:
//! - `a_media_jobs_bytes_wait_in_the_database_until_its_file_id_is_stored`: on both backends, a photo broadcast's
//!   bytes, file name, caption and entities round-trip through the repository (rows read back carry only the size),
//!   and storing the broadcasting bot's file id drops the bytes.
//! - `the_admin_bot_broadcasts_a_photo_that_the_bot_uploads_once`: an admin sends a photo with a bold caption after
//!   `/broadcast news`, sees a preview and confirms; every user of `news` gets the photo with its caption and
//!   entities, and the emulator's call log shows one upload by `news` and file id sends for everyone else.
//! - `files_over_the_download_limit_and_stickers_are_refused`: a 21 MB document and a sticker each get a clear
//!   answer, and no broadcast is created.
//! - `a_lost_upload_is_never_repeated_to_its_user_and_three_refused_ones_pause_the_broadcast`: when the answer to
//!   the first upload is lost, that user keeps the one photo they got (the delivery is failed, not repeated) and
//!   the next delivery uploads again; three uploads Telegram refuses in a row pause the broadcast and tell the
//!   admins, and once resumed it uploads again and finishes.

use botapi_emulator::{FaultSpec, UserFile, types::MessageEntity};
use multibot::{
    fleet::broadcasts::{self, BroadcastAction},
    plugins::PluginRegistry,
    storage::{BroadcastMessage, BroadcastState, NewBroadcast, Upload, now},
    telegram::FileKind,
};

use crate::{
    broadcasts::users_known,
    db::{TestDb, both_backends},
    helpers::{spawn_app_with, token},
};

/// A 1x1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0D, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0, 0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D,
    0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

const ADMIN: i64 = 900;
const NEWS: &str =
    "id: news\nname: News\ntoken: \"${TOKEN_1}\"\nplugins:\n  - name: echo\n    config:\n      echo_all: true\n";
const CAPTION: &str = "Big sale today, all week";

/// `Big sale` in bold.
fn bold() -> MessageEntity {
    MessageEntity {
        kind: "bold".into(),
        offset: 0,
        length: 8,
        url: None,
        language: None,
        user: None,
        custom_emoji_id: None,
    }
}

both_backends!(a_media_jobs_bytes_wait_in_the_database_until_its_file_id_is_stored);

async fn a_media_jobs_bytes_wait_in_the_database_until_its_file_id_is_stored(db: &TestDb) {
    let storage = db.storage().await;
    let entities = r#"[{"type":"bold","offset":0,"length":8}]"#.to_owned();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let new = NewBroadcast {
        bot_id: "news".into(),
        message: BroadcastMessage::Media {
            kind: FileKind::Photo,
            caption: Some(CAPTION.into()),
            caption_entities: Some(entities.clone()),
            file_id: None,
            upload: Some(Upload::new("sale.png", bytes.clone())),
        },
        active_days: None,
        created_by: Some(ADMIN),
    };
    let repo = storage.broadcasts();
    let b = repo.create(&new, now()).await.unwrap();
    let expected = BroadcastMessage::Media {
        kind: FileKind::Photo,
        caption: Some(CAPTION.into()),
        caption_entities: Some(entities.clone()),
        file_id: None,
        upload: Some(Upload { name: "sale.png".into(), size: 70_000, data: None }),
    };
    assert_eq!(b.message, expected, "a row read back carries the file's size, not its bytes");
    assert_eq!(b.message.summary(), "photo with a caption, 68 KB to upload");
    assert_eq!(repo.running().await.unwrap()[0].message, expected);
    assert_eq!(repo.upload(b.id).await.unwrap().as_deref(), Some(bytes.as_slice()), "the bytes survive a restart");
    repo.set_file_id(b.id, "AgACAgIAAxk-news").await.unwrap();
    let b = repo.get(b.id).await.unwrap().unwrap();
    let uploaded = BroadcastMessage::Media {
        kind: FileKind::Photo,
        caption: Some(CAPTION.into()),
        caption_entities: Some(entities),
        file_id: Some("AgACAgIAAxk-news".into()),
        upload: None,
    };
    assert_eq!(b.message, uploaded);
    assert_eq!(repo.upload(b.id).await.unwrap(), None, "the bytes are dropped once the file id is known");
    assert_eq!(b.message.summary(), "photo with a caption");
    storage.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_bot_broadcasts_a_photo_that_the_bot_uploads_once() {
    let vars = [("ADMIN_BOT_TOKEN", token(3)), ("ADMIN_ALLOWED_USERS", ADMIN.to_string())];
    let app = spawn_app_with(&[("news.yaml", NEWS)], 3, PluginRegistry::builtin(), &vars).await;
    let (news, admin_bot, admin) = (app.bot(1).await, app.bot(3).await, app.emu.user(ADMIN));
    // More users than a runner sends at once: the first send must still be the only upload.
    let users: Vec<i64> = (3_000..3_020).collect();
    users_known(&app, &news, users.clone()).await;
    admin.send(&admin_bot, "/broadcast news").await.unwrap();
    let asked = admin.next_message_from(&admin_bot).await.unwrap().text.unwrap();
    assert!(asked.contains("photo, video"), "{asked}");
    let photo = UserFile::photo(PNG).caption(CAPTION).caption_entities(&[bold()]);
    admin.send_file(&admin_bot, photo).await.unwrap();
    // The preview: the photo with its caption and bold, as the users will see it.
    let preview = admin.next_message_from(&admin_bot).await.unwrap();
    assert!(preview.photo.is_some(), "{preview:?}");
    assert_eq!(preview.caption.as_deref(), Some(CAPTION));
    assert_eq!(preview.caption_entities, Some(vec![bold()]));
    let question = admin.next_message_from(&admin_bot).await.unwrap();
    assert_eq!(question.text.as_deref(), Some("Send this to the users of news?"));
    let confirm = question.callback_data().into_iter().find(|d| d.starts_with("bc:ok:")).unwrap();
    admin.click(&admin_bot, &question, &confirm).await.unwrap();
    let summary = admin.next_message_from(&admin_bot).await.unwrap().text.unwrap();
    assert!(summary.starts_with("✅ Broadcast #1 of news done in") && summary.contains("20 sent"), "{summary}");
    let b = app.storage.broadcasts().get(1).await.unwrap().unwrap();
    assert_eq!((b.state, b.sent, b.failed), (BroadcastState::Done, 20, 0));
    for id in &users {
        let got = app.emu.user(*id).transcript(&news).await.unwrap();
        let photos: Vec<_> = got.iter().filter(|m| m.from_bot && m.message.photo.is_some()).collect();
        assert_eq!(photos.len(), 1, "user {id}");
        assert_eq!(photos[0].message.caption.as_deref(), Some(CAPTION), "user {id}");
        assert_eq!(photos[0].message.caption_entities, Some(vec![bold()]), "user {id}");
    }
    // One upload by the broadcasting bot, then its own file id for the 19 others.
    let sends = news.calls(Some("sendPhoto")).await.unwrap();
    assert!(sends.iter().all(|c| c.status == 200), "{sends:?}");
    let uploads: Vec<_> = sends.iter().filter(|c| c.params["photo"].is_object()).collect();
    assert_eq!(uploads.len(), 1, "{sends:?}");
    assert_eq!(uploads[0].params["photo"]["size"], PNG.len());
    let by_id: Vec<&str> = sends.iter().filter_map(|c| c.params["photo"].as_str()).collect();
    assert_eq!(by_id.len(), 19, "{sends:?}");
    let first = crate::helpers::param_i64(&uploads[0].params["chat_id"]).unwrap();
    let got = app.emu.user(first).transcript(&news).await.unwrap();
    let own_id = got.iter().find_map(|m| m.message.photo.as_ref()).unwrap()[0].file_id.clone();
    assert!(by_id.iter().all(|id| *id == own_id), "every other send is the id of the uploaded photo");
    assert!(
        app.storage.broadcasts().upload(1).await.unwrap().is_none(),
        "the bytes are dropped from the database once uploaded"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_over_the_download_limit_and_stickers_are_refused() {
    let vars = [("ADMIN_BOT_TOKEN", token(3)), ("ADMIN_ALLOWED_USERS", ADMIN.to_string())];
    let app = spawn_app_with(&[("news.yaml", NEWS)], 3, PluginRegistry::builtin(), &vars).await;
    let (admin_bot, admin) = (app.bot(3).await, app.emu.user(ADMIN));
    admin.send(&admin_bot, "/broadcast news").await.unwrap();
    admin.next_message_from(&admin_bot).await.unwrap();
    let big = UserFile::document("catalogue.pdf", vec![7u8; 21 * 1024 * 1024]);
    admin.send_file(&admin_bot, big).await.unwrap();
    let answer = admin.next_message_from(&admin_bot).await.unwrap().text.unwrap();
    assert!(answer.contains("This document is 21 MB: a bot can download at most 20 MB"), "{answer}");
    let sticker = UserFile::of_kind("sticker", PNG.to_vec()).mime_type("image/webp");
    admin.send_file(&admin_bot, sticker).await.unwrap();
    let answer = admin.next_message_from(&admin_bot).await.unwrap().text.unwrap();
    assert!(answer.starts_with("A sticker cannot be broadcast from here: send a text, photo, video"), "{answer}");
    assert!(app.storage.broadcasts().list(None, 10).await.unwrap().is_empty(), "no broadcast created");
    // Still composing: a text is accepted next.
    admin.send(&admin_bot, "Plain news").await.unwrap();
    assert_eq!(admin.next_message_from(&admin_bot).await.unwrap().text.as_deref(), Some("Plain news"));
    app.stop().await;
}

/// A photo broadcast to every user of `news`, as the admin bot makes one.
fn photo_broadcast() -> NewBroadcast {
    NewBroadcast {
        bot_id: "news".into(),
        message: BroadcastMessage::Media {
            kind: FileKind::Photo,
            caption: Some(CAPTION.into()),
            caption_entities: None,
            file_id: None,
            upload: Some(Upload::new("sale.png", PNG)),
        },
        active_days: None,
        created_by: Some(ADMIN),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_upload_is_never_repeated_to_its_user_and_three_refused_ones_pause_the_broadcast() {
    let vars = [("ADMIN_BOT_TOKEN", token(3)), ("ADMIN_ALLOWED_USERS", ADMIN.to_string())];
    let app = spawn_app_with(&[("news.yaml", NEWS)], 3, PluginRegistry::builtin(), &vars).await;
    let (news, admin_bot, admin) = (app.bot(1).await, app.bot(3).await, app.emu.user(ADMIN));
    let users: Vec<i64> = (4_000..4_010).collect();
    users_known(&app, &news, users.clone()).await;
    // The admin's chat with the admin bot exists once the admin wrote to it: the summaries go there.
    admin.send(&admin_bot, "/broadcasts").await.unwrap();
    admin.next_message_from(&admin_bot).await.unwrap();
    let photos_of = |id: i64| {
        let (user, news) = (app.emu.user(id), news.clone());
        async move {
            let got = user.transcript(&news).await.unwrap();
            got.iter().filter(|m| m.from_bot && m.message.photo.is_some()).count()
        }
    };
    let uploads = || async {
        let calls = news.calls(Some("sendPhoto")).await.unwrap();
        calls.iter().filter(|c| c.params["photo"].is_object()).count()
    };

    // 1. The answer to the first upload is lost: the user got the photo, the bot cannot know. That delivery is
    // failed, not repeated; the next one uploads again.
    news.inject(FaultSpec::drop_response("sendPhoto")).await.unwrap();
    let first = broadcasts::start(&app.storage, None, photo_broadcast()).await.unwrap();
    let summary = admin.next_message_from(&admin_bot).await.unwrap().text.unwrap();
    assert!(summary.starts_with(&format!("✅ Broadcast #{} of news done", first.id)), "{summary}");
    let first = app.storage.broadcasts().get(first.id).await.unwrap().unwrap();
    assert_eq!((first.sent, first.failed), (9, 1), "{first:?}");
    assert_eq!(uploads().await, 2, "the lost upload and the one after it");
    for id in &users {
        assert_eq!(photos_of(*id).await, 1, "user {id}");
    }

    // 2. Telegram refuses the file three times in a row: the broadcast pauses and the admins are told; resumed, it
    // uploads again and finishes.
    let refused = FaultSpec::error("sendPhoto", 400).description("Bad Request: IMAGE_PROCESS_FAILED").times(3);
    news.inject(refused).await.unwrap();
    let second = broadcasts::start(&app.storage, None, photo_broadcast()).await.unwrap();
    let note = admin.next_message_from(&admin_bot).await.unwrap().text.unwrap();
    let paused = format!("⚠️ Broadcast #{} of news paused: 3 uploads of its file failed", second.id);
    assert!(note.starts_with(&paused) && note.contains("IMAGE_PROCESS_FAILED"), "{note}");
    let b = app.storage.broadcasts().get(second.id).await.unwrap().unwrap();
    assert_eq!((b.state, b.sent, b.failed, b.remaining()), (BroadcastState::Paused, 0, 3, 7), "{b:?}");
    broadcasts::control(&app.storage, None, second.id, BroadcastAction::Resume, None).await.unwrap();
    let summary = admin.next_message_from(&admin_bot).await.unwrap().text.unwrap();
    assert!(summary.starts_with(&format!("✅ Broadcast #{} of news done", second.id)), "{summary}");
    let b = app.storage.broadcasts().get(second.id).await.unwrap().unwrap();
    assert_eq!((b.sent, b.failed), (7, 3), "{b:?}");
    assert_eq!(uploads().await, 2 + 4, "three refused uploads and the one that worked");
    let sent = app.storage.broadcasts().deliveries(second.id, Some("sent"), 20).await.unwrap();
    for id in &users {
        let expected = 1 + usize::from(sent.iter().any(|d| d.user_id == *id));
        assert_eq!(photos_of(*id).await, expected, "user {id}: one photo a broadcast that reached them");
    }
    app.stop().await;
}
