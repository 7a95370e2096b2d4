//! Files up and down through the real Bot API client: a plugin uploads a PNG made in memory and a file from disk
//! (the emulator stores the bytes intact), downloads a user's document, and is refused an oversized upload or
//! download before anything is sent.

use std::{path::PathBuf, sync::Arc};

use botapi_emulator::UserFile;
use bytes::Bytes;
use multibot::{plugins::PluginRegistry, prelude::*, telegram::MediaItem};

use crate::helpers::{TempDir, spawn_app};

/// A 1x1 PNG, as a plugin would draw one.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0D, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0, 0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D,
    0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// Sends and fetches files.
struct Files {
    config: FilesConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesConfig {
    /// The file `/report` sends.
    report: PathBuf,
    /// The most bytes a download may have.
    download_limit: u64,
}

impl Plugin for Files {
    type Config = FilesConfig;

    fn meta() -> PluginMeta {
        PluginMeta::new("files").description("Sends and fetches files")
    }

    fn new(config: FilesConfig, _cx: &PluginContext) -> anyhow::Result<Files> {
        Ok(Files { config })
    }

    fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
        handlers
            .command("png", "A picture", Files::png)
            .command("report", "A file from disk", Files::report)
            .command("album", "Two pictures as one album", Files::album)
            .message(MessageFilter::any().content(ContentType::Document), Files::fetch);
    }
}

impl Files {
    async fn png(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        let options = FileOptions { caption: Some("a dot".to_owned()), ..FileOptions::default() };
        cx.reply_file(FileKind::Photo, InputFile::bytes("dot.png", PNG), options).await?;
        Ok(())
    }

    async fn report(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        let sent = cx.reply_file(FileKind::Document, InputFile::path(&self.config.report), FileOptions::default());
        if let Err(e) = sent.await {
            cx.reply(format!("not sent: {e:#}")).plain().await?;
        }
        Ok(())
    }

    async fn album(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        let chat = cx.chat_id().expect("a chat");
        // One picture from memory, one made while it is sent: a stream of two chunks.
        let chunks = [Ok::<_, std::io::Error>(Bytes::from_static(&PNG[..20])), Ok(Bytes::from_static(&PNG[20..]))];
        let items = vec![
            MediaItem::new(FileKind::Photo, InputFile::bytes("one.png", PNG)).caption("one"),
            MediaItem::new(FileKind::Photo, InputFile::stream("two.png", futures_util::stream::iter(chunks))),
        ];
        let sent = cx.api().send_media_group(chat, items).await?;
        // The first picture becomes the second one, by its file id (a photo in an album stays a photo).
        let second = sent[1].photo().and_then(|sizes| sizes.last()).expect("a photo").file.id.0.clone();
        let swapped = MediaItem::new(FileKind::Photo, InputFile::Id(second)).caption("swapped");
        cx.api().edit_message_media(chat, sent[0].id, swapped, None).await?;
        cx.reply(format!("album of {}, first swapped", sent.len())).plain().await?;
        Ok(())
    }

    async fn fetch(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        let document = cx.message().and_then(|m| m.document()).expect("a document");
        let answer = match cx.download(&document.file.id.0, self.config.download_limit).await {
            Ok(bytes) => format!("got {} bytes: {}", bytes.len(), String::from_utf8_lossy(&bytes)),
            Err(e) => format!("not fetched: {e:#}"),
        };
        cx.reply(answer).plain().await?;
        Ok(())
    }
}

fn config(report: &std::path::Path, download_limit: u64) -> String {
    format!(
        "id: files\nname: Files\ntoken: \"${{TOKEN_1}}\"\nplugins:\n  - name: files\n    config:\n      report: \"{}\"\n      \
         download_limit: {download_limit}\n",
        report.display()
    )
}

fn registry() -> PluginRegistry {
    let mut registry = PluginRegistry::builtin();
    registry.register::<Files>();
    registry
}

#[tokio::test]
async fn a_plugin_uploads_bytes_and_a_file_from_disk_and_downloads_a_document() {
    let dir = TempDir::new();
    let report = dir.write("report.csv", "day,sales\nmonday,12\n");
    let app = spawn_app(&[("files.yaml", &config(&report, 1024))], 1, registry()).await;
    let bot = app.bot(1).await;
    let user = app.emu.user(6001);

    user.send(&bot, "/png").await.unwrap();
    let photo = user.next_message_from(&bot).await.unwrap();
    assert_eq!(photo.caption.as_deref(), Some("a dot"));
    let biggest = photo.photo.as_ref().and_then(|sizes| sizes.last()).expect("a photo");
    assert_eq!(app.emu.control().file_bytes(&biggest.file_id).await.unwrap(), PNG, "the PNG arrived intact");

    user.send(&bot, "/report").await.unwrap();
    let document = user.next_message_from(&bot).await.unwrap();
    let document = document.document.expect("a document");
    assert_eq!(document.file_name.as_deref(), Some("report.csv"));
    let stored = app.emu.control().file_bytes(&document.file_id).await.unwrap();
    assert_eq!(stored, b"day,sales\nmonday,12\n", "the file from disk arrived intact");

    user.send_file(&bot, UserFile::document("note.txt", "hello from a user")).await.unwrap();
    let answer = user.next_message_from(&bot).await.unwrap();
    assert_eq!(answer.text.as_deref(), Some("got 17 bytes: hello from a user"));

    // An album of two pictures (bytes and a stream), then its first picture replaced by the second.
    user.send(&bot, "/album").await.unwrap();
    let (one, two) = (user.next_message_from(&bot).await.unwrap(), user.next_message_from(&bot).await.unwrap());
    assert!(one.media_group_id.is_some() && one.media_group_id == two.media_group_id, "one album");
    for picture in [&one, &two] {
        let file_id = &picture.photo.as_ref().and_then(|sizes| sizes.last()).expect("a photo").file_id;
        assert_eq!(app.emu.control().file_bytes(file_id).await.unwrap(), PNG, "each picture arrived intact");
    }
    let done = user.next_message_from(&bot).await;
    let edits = app.emu.control().calls(Some(&bot), Some("editMessageMedia")).await.unwrap();
    let error = app.manager.status()[0].last_error.clone();
    assert_eq!(done.ok().and_then(|m| m.text).as_deref(), Some("album of 2, first swapped"), "{error:?} {edits:?}");
    assert_eq!(edits.iter().map(|c| c.status).collect::<Vec<_>>(), [200]);
    app.stop().await;
}

#[tokio::test]
async fn a_missing_file_and_a_download_over_the_limit_are_refused_with_a_reason() {
    let dir = TempDir::new();
    // Bad input: the file to upload does not exist.
    let missing = dir.path().join("gone.csv");
    let app = spawn_app(&[("files.yaml", &config(&missing, 10))], 1, registry()).await;
    let bot = app.bot(1).await;
    let user = app.emu.user(6002);

    user.send(&bot, "/report").await.unwrap();
    let answer = user.next_message_from(&bot).await.unwrap().text.unwrap_or_default();
    assert!(answer.starts_with("not sent: cannot read ") && answer.contains("gone.csv"), "{answer}");

    // Bad input: a document of 17 bytes, over the plugin's limit of 10.
    user.send_file(&bot, UserFile::document("note.txt", "hello from a user")).await.unwrap();
    let answer = user.next_message_from(&bot).await.unwrap().text.unwrap_or_default();
    assert!(answer.starts_with("not fetched: the file is over the 10 bytes allowed"), "{answer}");
    let calls = app.emu.control().calls(Some(&bot), Some("sendDocument")).await.unwrap();
    assert!(calls.is_empty(), "nothing was sent for the missing file: {calls:?}");
    app.stop().await;
}
