//! Files from a test's side: a user sending a file to a bot ([`UserFile`]), and reading what the emulator stored
//! (a file's record and bytes, the storage totals).

use serde::Deserialize;

use super::{Control, Sent, TestBot, TestUser};
use crate::types::StoredFile;

/// A file a user sends: its kind, bytes, and optionally a name, MIME type and caption.
#[derive(Debug, Clone)]
pub struct UserFile {
    kind: &'static str,
    bytes: Vec<u8>,
    query: Vec<(&'static str, String)>,
}

impl UserFile {
    /// A document with this file name.
    pub fn document(file_name: &str, bytes: impl Into<Vec<u8>>) -> UserFile {
        UserFile::of_kind("document", bytes).file_name(file_name)
    }

    /// A photo (PNG, GIF or JPEG bytes).
    pub fn photo(bytes: impl Into<Vec<u8>>) -> UserFile {
        UserFile::of_kind("photo", bytes)
    }

    /// A file of any kind: `photo`, `document`, `audio`, `video`, `animation`, `voice`, `video_note`, `sticker`.
    pub fn of_kind(kind: &'static str, bytes: impl Into<Vec<u8>>) -> UserFile {
        UserFile { kind, bytes: bytes.into(), query: Vec::new() }
    }

    /// Sets the file name.
    pub fn file_name(self, name: &str) -> UserFile {
        self.with("file_name", name)
    }

    /// Sets the MIME type (else it is guessed from the bytes and the name).
    pub fn mime_type(self, mime_type: &str) -> UserFile {
        self.with("mime_type", mime_type)
    }

    /// Sets the caption.
    pub fn caption(self, caption: &str) -> UserFile {
        self.with("caption", caption)
    }

    /// Sets the caption's formatting, as a user's app does (bold, links, ...), instead of the detected entities.
    pub fn caption_entities(self, entities: &[crate::types::MessageEntity]) -> UserFile {
        let json = serde_json::to_string(entities).unwrap_or_default();
        self.with("caption_entities", &json)
    }

    /// Sends it in a group the user wrote in before, instead of the private chat.
    pub fn in_chat(self, chat_id: i64) -> UserFile {
        self.with("chat_id", &chat_id.to_string())
    }

    fn with(mut self, name: &'static str, value: &str) -> UserFile {
        self.query.push((name, value.to_owned()));
        self
    }
}

/// What the emulator stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Storage {
    /// Files stored.
    pub files: usize,
    /// Their bytes in total.
    pub bytes: u64,
    /// Largest file one upload may carry.
    pub file_limit: u64,
    /// Largest total.
    pub storage_limit: u64,
}

impl Control {
    /// A stored file's record, by file id.
    pub async fn file(&self, file_id: &str) -> anyhow::Result<StoredFile> {
        self.get(&format!("/files/{file_id}")).await
    }

    /// A stored file's bytes, as they were uploaded.
    pub async fn file_bytes(&self, file_id: &str) -> anyhow::Result<Vec<u8>> {
        let path = format!("/files/{file_id}/content");
        self.send(self.http.get(format!("{}/control{path}", self.base)), &path).await
    }

    /// How many files and bytes the emulator stores, and its limits.
    pub async fn storage(&self) -> anyhow::Result<Storage> {
        self.get("/files").await
    }
}

impl TestUser {
    /// Sends a file to the bot (a `message` update with the file's field set); [`Sent::file_id`] is the file id
    /// the bot got.
    pub async fn send_file(&self, bot: &TestBot, file: UserFile) -> anyhow::Result<Sent> {
        let path = bot.path("/files");
        let mut query = vec![("from", self.id.to_string()), ("kind", file.kind.to_owned())];
        query.extend(file.query);
        let request = self.control.http.post(format!("{}/control{path}", self.control.base)).query(&query);
        let bytes = self.control.send(request.body(file.bytes), &path).await?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}
