//! Files up and down: every upload method by multipart bytes, file ids and URLs; `getFile` and the file endpoint
//! returning the same bytes; storage limits; a user's file downloaded by the bot.

use botapi_emulator::{EmulatorConfig, UserFile};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::{Api, read, spawn, spawn_with};

/// A 3x2 PNG header, enough for the emulator to read its size.
pub(crate) fn png() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.extend_from_slice(&3u32.to_be_bytes());
    bytes.extend_from_slice(&2u32.to_be_bytes());
    bytes.extend_from_slice(&[8, 6, 0, 0, 0]);
    bytes
}

/// Bytes that are the same nowhere else: every byte value, then `seed`.
fn noise(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// POSTs a multipart form; returns the status and the body.
pub(crate) async fn post_form(api: &Api, method: &str, form: Form) -> (u16, Value) {
    read(api.http.post(format!("{}/{method}", api.base)).multipart(form).send().await.unwrap()).await
}

/// The bytes the file endpoint serves for `file_id`, through `getFile`.
pub(crate) async fn download(emu: &botapi_emulator::Emulator, api: &Api, file_id: &str) -> Vec<u8> {
    let file = api.ok("getFile", json!({"file_id": file_id})).await;
    assert_eq!(file["file_id"], file_id);
    let path = file["file_path"].as_str().expect("file_path");
    let url = format!("{}/file/bot{}/{path}", emu.api_url(), api.bot.token);
    let response = api.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

async fn setup() -> (botapi_emulator::Emulator, Api) {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    emu.user(10).send(&api.bot, "hi").await.unwrap();
    (emu, api)
}

#[tokio::test]
async fn every_upload_method_stores_the_bytes_and_serves_them_back() {
    let (emu, api) = setup().await;
    let cases = [
        ("sendPhoto", "photo", png(), "image/png"),
        ("sendDocument", "document", noise(1, 700), "application/pdf"),
        ("sendAudio", "audio", noise(2, 900), "audio/mpeg"),
        ("sendVideo", "video", noise(3, 1100), "video/mp4"),
        ("sendAnimation", "animation", noise(4, 300), "video/mp4"),
        ("sendVoice", "voice", noise(5, 400), "audio/ogg"),
        ("sendVideoNote", "video_note", noise(6, 500), "video/mp4"),
        ("sendSticker", "sticker", noise(7, 600), "image/webp"),
    ];
    for (method, field, bytes, mime) in cases {
        let part = Part::bytes(bytes.clone()).file_name(format!("upload.{field}")).mime_str(mime).unwrap();
        let form = Form::new().text("chat_id", "10").text("duration", "7").part(field, part);
        let (status, body) = post_form(&api, method, form).await;
        assert_eq!(status, 200, "{method}: {body}");
        let sent = &body["result"];
        let file = if field == "photo" { &sent["photo"][0] } else { &sent[field] };
        let file_id = file["file_id"].as_str().unwrap_or_else(|| panic!("{method}: {sent}"));
        assert_eq!(file["file_size"], bytes.len(), "{method}");
        assert_eq!(download(&emu, &api, file_id).await, bytes, "{method}: the download is the upload");
        assert_eq!(emu.control().file_bytes(file_id).await.unwrap(), bytes, "{method}: the control API has it too");
        let stored = emu.control().file(file_id).await.unwrap();
        assert_eq!((stored.kind.as_str(), stored.bot_id, stored.mime_type.as_deref()), (field, 1000, Some(mime)));
    }
    let transcript = api.bot.transcript(10).await.unwrap();
    let last = &transcript.last().unwrap().message;
    assert_eq!(last.sticker.as_ref().map(|s| s.kind.as_str()), Some("regular"));
    let audio = transcript.iter().find_map(|m| m.message.audio.clone()).unwrap();
    assert_eq!(audio.duration, 7);
    // An animation also fills `document`, as Telegram does for older clients.
    let animation = transcript.iter().find(|m| m.message.animation.is_some()).unwrap();
    assert_eq!(
        animation.message.document.as_ref().unwrap().file_id,
        animation.message.animation.as_ref().unwrap().file_id
    );
    assert_eq!(emu.control().storage().await.unwrap().files, 8);
}

#[tokio::test]
async fn files_come_by_attach_file_id_or_url() {
    let (emu, api) = setup().await;
    let bytes = noise(9, 64);
    let part = Part::bytes(bytes.clone()).file_name("notes.txt");
    let form = Form::new().text("chat_id", "10").text("document", "attach://file0").part("file0", part);
    let (status, body) = post_form(&api, "sendDocument", form).await;
    assert_eq!(status, 200, "{body}");
    let document = &body["result"]["document"];
    assert_eq!(
        (document["file_name"].as_str(), document["mime_type"].as_str()),
        (Some("notes.txt"), Some("text/plain"))
    );
    let file_id = document["file_id"].as_str().unwrap();
    // By file id: the same file, nothing stored again.
    let again = api.ok("sendDocument", json!({"chat_id": 10, "document": file_id, "caption": "again"})).await;
    assert_eq!(again["document"]["file_unique_id"], document["file_unique_id"]);
    assert_eq!(emu.control().storage().await.unwrap().files, 1);
    // By URL: kept without bytes (the emulator never fetches), so getFile gives no path.
    let by_url = api.ok("sendDocument", json!({"chat_id": 10, "document": "https://example.com/report.pdf"})).await;
    assert_eq!(by_url["document"]["file_name"], "report.pdf");
    let file = api.ok("getFile", json!({"file_id": by_url["document"]["file_id"]})).await;
    assert!(file.get("file_path").is_none() && file.get("file_size").is_none(), "{file}");
    assert_eq!(download(&emu, &api, file_id).await, bytes);
}

#[tokio::test]
async fn bad_file_inputs_get_telegrams_errors() {
    let (emu, api) = setup().await;
    let form = Form::new().text("chat_id", "10").part("photo", Part::bytes(png()).file_name("a.png"));
    let (_, body) = post_form(&api, "sendPhoto", form).await;
    let photo_id = body["result"]["photo"][0]["file_id"].as_str().unwrap().to_owned();
    // Bad input: attach:// naming a field the request lacks.
    let form = Form::new().text("chat_id", "10").text("document", "attach://missing");
    let (status, body) = post_form(&api, "sendDocument", form).await;
    assert_eq!((status, body["description"].as_str()), (400, Some("Bad Request: there is no document in the request")));
    // Bad input: an unknown file id, a photo's id sent as a document, no file, a video note by URL.
    let cases = [
        (
            "sendDocument",
            json!({"chat_id": 10, "document": "no-such-file"}),
            "wrong file identifier/HTTP URL specified",
        ),
        ("sendDocument", json!({"chat_id": 10, "document": photo_id}), "can't use file of type Photo as Document"),
        ("sendVoice", json!({"chat_id": 10}), "there is no voice in the request"),
        (
            "sendVideoNote",
            json!({"chat_id": 10, "video_note": "https://example.com/a.mp4"}),
            "wrong file identifier/HTTP URL specified",
        ),
        ("getFile", json!({"file_id": "no-such-file"}), "invalid file_id"),
        ("getFile", json!({}), "file_id not specified"),
    ];
    for (method, params, description) in cases {
        assert_eq!(
            api.err(method, params.clone(), 400).await,
            format!("Bad Request: {description}"),
            "{method} {params}"
        );
    }
    // Bad input: an empty upload, and text that is not an image as a photo.
    let form = Form::new().text("chat_id", "10").part("document", Part::bytes(Vec::new()).file_name("empty"));
    assert_eq!(post_form(&api, "sendDocument", form).await.1["description"], "Bad Request: file must be non-empty");
    let form = Form::new().text("chat_id", "10").part("photo", Part::bytes(b"hello".to_vec()).file_name("x.png"));
    assert_eq!(post_form(&api, "sendPhoto", form).await.1["description"], "Bad Request: IMAGE_PROCESS_FAILED");
    // A file id belongs to one bot: another bot cannot use it or download it.
    let other = Api::new(&emu, 2000).await;
    emu.user(10).send(&other.bot, "hi").await.unwrap();
    let description = other.err("sendPhoto", json!({"chat_id": 10, "photo": photo_id}), 400).await;
    assert_eq!(description, "Bad Request: wrong file identifier/HTTP URL specified");
    let path = api.ok("getFile", json!({"file_id": photo_id})).await["file_path"].as_str().unwrap().to_owned();
    let get = |token: String, path: String| {
        let url = format!("{}/file/bot{token}/{path}", emu.api_url());
        async move { read(reqwest::get(url).await.unwrap()).await }
    };
    assert_eq!(get(other.bot.token.clone(), path.clone()).await.0, 404, "another bot's file");
    assert_eq!(
        get(api.bot.token.clone(), "photos/file_999.png".into()).await,
        (404, json!({"ok": false, "error_code": 404, "description": "Not Found"}))
    );
    // Bad input: a token nobody registered.
    assert_eq!(get("999:AAAAAAAAAAAAAAAAAAAAAAAAAA".into(), path).await.0, 401);
    let downloads = api.bot.events(0, None, Some("download"), std::time::Duration::ZERO).await.unwrap();
    assert!(downloads.is_empty(), "nothing was downloaded");
}

#[tokio::test]
async fn uploads_over_the_limits_are_refused_and_store_nothing() {
    let config = EmulatorConfig { file_limit: 1000, storage_limit: 1500, download_limit: 600, ..Default::default() };
    let emu = spawn_with(config).await;
    let api = Api::new(&emu, 1000).await;
    emu.user(10).send(&api.bot, "hi").await.unwrap();
    let send = |bytes: Vec<u8>| {
        let form = Form::new().text("chat_id", "10").part("document", Part::bytes(bytes).file_name("big.bin"));
        post_form(&api, "sendDocument", form)
    };
    // Bad input: one byte over the per-file limit.
    let (status, body) = send(noise(1, 1001)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        body["description"],
        "Request Entity Too Large: the file is 1001 bytes, over the limit of 1000 bytes for one file"
    );
    assert_eq!(emu.control().storage().await.unwrap().files, 0, "nothing stored");
    // At the limit it goes through; the next one would take the storage over its total.
    let (status, body) = send(noise(2, 1000)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(noise(3, 501)).await;
    assert_eq!(status, 413);
    assert_eq!(body["description"], "Request Entity Too Large: the emulator's file storage is full (limit 1500 bytes)");
    let storage = emu.control().storage().await.unwrap();
    assert_eq!((storage.files, storage.bytes), (1, 1000));
    let stored_messages = api.bot.transcript(10).await.unwrap().iter().filter(|m| m.from_bot).count();
    assert_eq!(stored_messages, 1, "refused uploads sent no message");
    // Bots download up to the download limit only.
    let big = body_file_id(&api).await;
    assert_eq!(api.err("getFile", json!({"file_id": big}), 400).await, "Bad Request: file is too big");
}

async fn body_file_id(api: &Api) -> String {
    let transcript = api.bot.transcript(10).await.unwrap();
    let document = transcript.iter().rev().find_map(|m| m.message.document.clone()).unwrap();
    document.file_id
}

#[tokio::test]
async fn a_bot_downloads_the_document_a_user_sent() {
    let (emu, api) = setup().await;
    let bytes = noise(42, 3000);
    let file = UserFile::document("data.csv", bytes.clone()).caption("see /report");
    let sent = emu.user(10).send_file(&api.bot, file).await.unwrap();
    let updates = api.ok("getUpdates", json!({})).await;
    let message = &updates.as_array().unwrap().last().unwrap()["message"];
    assert_eq!(message["message_id"], sent.message_id);
    assert_eq!(message["document"]["file_id"].as_str(), sent.file_id.as_deref());
    assert_eq!(
        (message["document"]["file_name"].as_str(), message["document"]["mime_type"].as_str()),
        (Some("data.csv"), Some("text/csv"))
    );
    assert_eq!(message["caption_entities"][0]["type"], "bot_command");
    let file_id = message["document"]["file_id"].as_str().unwrap();
    assert_eq!(download(&emu, &api, file_id).await, bytes);
    let downloads = api.bot.events(0, None, Some("download"), std::time::Duration::ZERO).await.unwrap();
    assert_eq!(downloads[0].detail.as_ref().unwrap()["file_size"], 3000);
    // A photo must be an image; its size is read from it.
    let photo = emu.user(10).send_file(&api.bot, UserFile::photo(png())).await.unwrap();
    let stored = emu.control().file(photo.file_id.as_deref().unwrap()).await.unwrap();
    assert_eq!(stored.kind, "photo");
    // Bad input: text as a photo.
    assert!(emu.user(10).send_file(&api.bot, UserFile::photo(b"not an image".to_vec())).await.is_err());
}
