//! `InputMedia`: albums (`sendMediaGroup`) and media edits (`editMessageMedia`), with uploads by attach://, file
//! ids, and the Bot API server's errors for bad media.

use botapi_emulator::EmulatorConfig;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::{
    files::{download, png, post_form},
    helpers::{Api, spawn, spawn_with},
};

async fn setup() -> (botapi_emulator::Emulator, Api) {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    emu.user(10).send(&api.bot, "hi").await.unwrap();
    (emu, api)
}

/// A form for chat 10 with `media` as JSON and one attached file per `(field, bytes)`.
fn album(media: Value, files: &[(&str, Vec<u8>)]) -> Form {
    let mut form = Form::new().text("chat_id", "10").text("media", media.to_string());
    for (field, bytes) in files {
        form = form.part(field.to_string(), Part::bytes(bytes.clone()).file_name(format!("{field}.bin")));
    }
    form
}

#[tokio::test]
async fn an_album_is_one_message_per_file_with_one_media_group_id() {
    let (emu, api) = setup().await;
    let media = json!([
        {"type": "photo", "media": "attach://a", "caption": "<b>first</b>", "parse_mode": "HTML"},
        {"type": "video", "media": "attach://b", "width": 640, "height": 480, "duration": 3},
        {"type": "photo", "media": "attach://c"},
    ]);
    let files = [("a", png()), ("b", b"\0\0\0\x18ftypmp42 video bytes".to_vec()), ("c", png())];
    let (status, body) = post_form(&api, "sendMediaGroup", album(media, &files)).await;
    assert_eq!(status, 200, "{body}");
    let sent = body["result"].as_array().unwrap();
    assert_eq!(sent.len(), 3);
    let group = sent[0]["media_group_id"].as_str().unwrap();
    assert!(sent.iter().all(|m| m["media_group_id"] == group));
    let ids: Vec<i64> = sent.iter().map(|m| m["message_id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [ids[0], ids[0] + 1, ids[0] + 2]);
    assert_eq!(
        (sent[0]["caption"].as_str(), sent[0]["caption_entities"][0]["type"].as_str()),
        (Some("first"), Some("bold"))
    );
    assert_eq!(
        (sent[1]["video"]["width"].as_u64(), sent[1]["video"]["mime_type"].as_str()),
        (Some(640), Some("video/mp4"))
    );
    // Every file round-trips byte for byte.
    assert_eq!(download(&emu, &api, sent[1]["video"]["file_id"].as_str().unwrap()).await, files[1].1);
    assert_eq!(download(&emu, &api, sent[2]["photo"][0]["file_id"].as_str().unwrap()).await, png());
    // Documents go together; a file id works as well as an upload.
    let document_id = {
        let form = album(
            json!([{"type": "document", "media": "attach://x"}, {"type": "document", "media": "attach://y"}]),
            &[("x", b"one".to_vec()), ("y", b"two".to_vec())],
        );
        let (status, body) = post_form(&api, "sendMediaGroup", form).await;
        assert_eq!(status, 200, "{body}");
        body["result"][0]["document"]["file_id"].as_str().unwrap().to_owned()
    };
    let again = api.ok("sendMediaGroup", json!({"chat_id": 10, "media": [{"type": "document", "media": document_id}, {"type": "document", "media": document_id}]})).await;
    assert_eq!(again[1]["document"]["file_id"], document_id.as_str());
    let events = api.bot.events(0, Some(10), Some("message"), std::time::Duration::ZERO).await.unwrap();
    assert_eq!(events.len(), 7);
}

#[tokio::test]
async fn bad_albums_get_the_bot_api_servers_errors() {
    let (emu, api) = setup().await;
    let photo = |field: &str| json!({"type": "photo", "media": format!("attach://{field}")});
    let two = [("a", png()), ("b", png())];
    let cases: Vec<(Value, &str)> = vec![
        // Bad input: nothing, one item, eleven items.
        (json!([]), "there are no messages to send"),
        (json!([photo("a")]), "media must include 2-10 items"),
        (Value::Array((0..11).map(|_| photo("a")).collect()), "too many messages to send as an album"),
        // Bad input: a missing attach field, no type, an animation, a sticker, a file id nobody issued.
        (json!([photo("a"), photo("nope")]), "can't parse InputMedia: media not found"),
        (json!([photo("a"), {"media": "attach://b"}]), "can't parse InputMedia: Can't find field \"type\""),
        (
            json!([photo("a"), {"type": "animation", "media": "attach://b"}]),
            "can't parse InputMedia: type \"animation\" can't be used in sendMediaGroup",
        ),
        (
            json!([photo("a"), {"type": "sticker", "media": "attach://b"}]),
            "can't parse InputMedia: type \"sticker\" is unsupported",
        ),
        (json!([photo("a"), {"type": "photo", "media": "AgACno-such-id"}]), "wrong file identifier/HTTP URL specified"),
        // Bad input: documents mixed with photos, a caption that does not parse.
        (
            json!([photo("a"), {"type": "document", "media": "attach://b"}]),
            "document can't be mixed with other media types",
        ),
        (
            json!([photo("a"), {"type": "photo", "media": "attach://b", "caption": "<b>", "parse_mode": "HTML"}]),
            "can't parse InputMedia: Can't parse entities: Can't find end tag corresponding to start tag \"b\"",
        ),
    ];
    for (media, description) in cases {
        let (status, body) = post_form(&api, "sendMediaGroup", album(media.clone(), &two)).await;
        assert_eq!(
            (status, body["description"].as_str()),
            (400, Some(format!("Bad Request: {description}").as_str())),
            "{media}"
        );
    }
    // Bad input: media that is not JSON, not a list, or missing.
    let form = Form::new().text("chat_id", "10").text("media", "[{not json");
    assert_eq!(
        post_form(&api, "sendMediaGroup", form).await.1["description"],
        "Bad Request: can't parse media JSON object"
    );
    assert_eq!(
        api.err("sendMediaGroup", json!({"chat_id": 10, "media": {"type": "photo"}}), 400).await,
        "Bad Request: expected an Array of InputMedia"
    );
    assert_eq!(
        api.err("sendMediaGroup", json!({"chat_id": 10}), 400).await,
        "Bad Request: parameter \"media\" is required"
    );
    assert_eq!(emu.control().storage().await.unwrap().files, 0, "no refused album stored a file");
    assert!(api.bot.transcript(10).await.unwrap().iter().all(|m| !m.from_bot));
}

#[tokio::test]
async fn an_album_over_the_storage_limit_stores_none_of_its_files() {
    let emu = spawn_with(EmulatorConfig { storage_limit: 1000, ..Default::default() }).await;
    let api = Api::new(&emu, 1000).await;
    emu.user(10).send(&api.bot, "hi").await.unwrap();
    let media = json!([{"type": "document", "media": "attach://a"}, {"type": "document", "media": "attach://b"}]);
    // Bad input: each file fits, both together do not.
    let (status, body) =
        post_form(&api, "sendMediaGroup", album(media, &[("a", vec![1; 600]), ("b", vec![2; 600])])).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(emu.control().storage().await.unwrap().files, 0);
}

#[tokio::test]
async fn edit_message_media_replaces_the_file_and_keeps_the_history() {
    let (emu, api) = setup().await;
    let (_, body) = post_form(
        &api,
        "sendPhoto",
        Form::new().text("chat_id", "10").part("photo", Part::bytes(png()).file_name("a.png")),
    )
    .await;
    let first = body["result"].clone();
    let id = first["message_id"].clone();
    let media =
        json!({"type": "document", "media": "attach://new", "caption": "now a *document*", "parse_mode": "MarkdownV2"});
    let form = Form::new()
        .text("chat_id", "10")
        .text("message_id", id.to_string())
        .text("media", media.to_string())
        .part("new", Part::bytes(b"fresh bytes".to_vec()).file_name("fresh.txt"));
    let (status, body) = post_form(&api, "editMessageMedia", form).await;
    assert_eq!(status, 200, "{body}");
    let edited = &body["result"];
    assert!(edited.get("photo").is_none() && edited["edit_date"].is_i64(), "{edited}");
    assert_eq!(
        (edited["caption"].as_str(), edited["caption_entities"][0]["type"].as_str()),
        (Some("now a document"), Some("bold"))
    );
    let file_id = edited["document"]["file_id"].as_str().unwrap().to_owned();
    assert_eq!(download(&emu, &api, &file_id).await, b"fresh bytes");
    let entry = api.bot.transcript(10).await.unwrap().into_iter().find(|m| m.message.message_id == id).unwrap();
    assert_eq!(entry.edits[0].photo.as_ref().unwrap()[0].file_id, first["photo"][0]["file_id"].as_str().unwrap());
    // The same file, caption and keyboard again: not modified.
    let same = json!({"chat_id": 10, "message_id": id, "media": {"type": "document", "media": file_id, "caption": "now a *document*", "parse_mode": "MarkdownV2"}});
    assert!(api.err("editMessageMedia", same, 400).await.starts_with("Bad Request: message is not modified"));
    // Bad input: a text message, media that is not JSON, an inline message, a document into a photo album.
    let text = api.ok("sendMessage", json!({"chat_id": 10, "text": "plain"})).await;
    let photo_media = json!({"type": "photo", "media": first["photo"][0]["file_id"]});
    assert_eq!(
        api.err(
            "editMessageMedia",
            json!({"chat_id": 10, "message_id": text["message_id"], "media": photo_media}),
            400
        )
        .await,
        "Bad Request: there is no media in the message to edit"
    );
    assert_eq!(
        api.err("editMessageMedia", json!({"chat_id": 10, "message_id": id, "media": "{oops"}), 400).await,
        "Bad Request: can't parse input media JSON object"
    );
    assert_eq!(
        api.err("editMessageMedia", json!({"inline_message_id": "abc", "media": photo_media}), 400).await,
        "Bad Request: message to edit not found"
    );
    let album = api.ok("sendMediaGroup", json!({"chat_id": 10, "media": [photo_media, photo_media]})).await;
    let into_album =
        json!({"chat_id": 10, "message_id": album[0]["message_id"], "media": {"type": "document", "media": file_id}});
    assert_eq!(
        api.err("editMessageMedia", into_album, 400).await,
        "Bad Request: can't use the media of the specified type in the album"
    );
    let kinds: Vec<String> = api
        .bot
        .events(0, Some(10), None, std::time::Duration::ZERO)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "edit").count(), 1);
}
