//! Files: the bytes bots and users uploaded (`Blob`), the file ids each bot was given for them, and the paths
//! `getFile` hands out for the file endpoint. A file id belongs to one bot and one kind of media, as on Telegram;
//! the `file_unique_id` is the same for every bot. Storage is bounded: one upload may not exceed the per-file
//! limit, all stored bytes together not the storage limit; a refused upload stores nothing.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use parking_lot::RwLock;

use crate::types::{Animation, Audio, Document, Message, PhotoSize, Sticker, StoredFile, Video, VideoNote, Voice};

/// The kinds of media a file can be sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Photo,
    Document,
    Audio,
    Video,
    Animation,
    Voice,
    VideoNote,
    Sticker,
}

impl FileKind {
    /// Every kind.
    pub(crate) const ALL: [FileKind; 8] = [
        FileKind::Photo,
        FileKind::Document,
        FileKind::Audio,
        FileKind::Video,
        FileKind::Animation,
        FileKind::Voice,
        FileKind::VideoNote,
        FileKind::Sticker,
    ];

    /// The name Telegram uses for the send parameter and the message field (`video_note`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            FileKind::Photo => "photo",
            FileKind::Document => "document",
            FileKind::Audio => "audio",
            FileKind::Video => "video",
            FileKind::Animation => "animation",
            FileKind::Voice => "voice",
            FileKind::VideoNote => "video_note",
            FileKind::Sticker => "sticker",
        }
    }

    /// The kind named `name`, as `name` spells it.
    pub(crate) fn parse(name: &str) -> Option<FileKind> {
        FileKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The name TDLib gives the file type in its errors (`can't use file of type Photo as Document`).
    pub(crate) fn label(self) -> &'static str {
        match self {
            FileKind::Photo => "Photo",
            FileKind::Document => "Document",
            FileKind::Audio => "Audio",
            FileKind::Video => "Video",
            FileKind::Animation => "Animation",
            FileKind::Voice => "VoiceNote",
            FileKind::VideoNote => "VideoNote",
            FileKind::Sticker => "Sticker",
        }
    }

    /// The directory of `file_path`, as Telegram names it.
    fn dir(self) -> &'static str {
        match self {
            FileKind::Photo => "photos",
            FileKind::Document => "documents",
            FileKind::Audio => "music",
            FileKind::Video => "videos",
            FileKind::Animation => "animations",
            FileKind::Voice => "voice",
            FileKind::VideoNote => "video_notes",
            FileKind::Sticker => "stickers",
        }
    }

    /// How Telegram's file ids of this kind begin.
    fn id_prefix(self) -> &'static str {
        match self {
            FileKind::Photo => "AgAC",
            FileKind::Document => "BQAC",
            FileKind::Audio => "CQAC",
            FileKind::Video => "BAAC",
            FileKind::Animation => "CgAC",
            FileKind::Voice => "AwAC",
            FileKind::VideoNote => "DQAC",
            FileKind::Sticker => "CAAC",
        }
    }

    /// The extension of `file_path` when the file name gives none.
    fn extension(self) -> &'static str {
        match self {
            FileKind::Photo => "jpg",
            FileKind::Document => "bin",
            FileKind::Audio => "mp3",
            FileKind::Video | FileKind::Animation | FileKind::VideoNote => "mp4",
            FileKind::Voice => "oga",
            FileKind::Sticker => "webp",
        }
    }
}

/// What a file looks like in a message besides its bytes: sizes, duration, tags, as the sender gave them or as
/// read from the bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct MediaMeta {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) duration: u32,
    pub(crate) length: u32,
    pub(crate) performer: Option<String>,
    pub(crate) title: Option<String>,
    pub(crate) emoji: Option<String>,
    pub(crate) is_animated: bool,
    pub(crate) is_video: bool,
}

/// A file to store.
#[derive(Debug, Clone)]
pub(crate) struct NewFile {
    pub(crate) kind: FileKind,
    pub(crate) name: Option<String>,
    pub(crate) mime_type: Option<String>,
    /// `None` for a file sent by URL: the emulator never fetches it.
    pub(crate) bytes: Option<Bytes>,
    pub(crate) meta: MediaMeta,
}

/// A stored file as one bot knows it.
#[derive(Debug, Clone)]
pub(crate) struct FileInfo {
    pub(crate) file_id: String,
    pub(crate) bot_id: i64,
    pub(crate) kind: FileKind,
    pub(crate) unique_id: String,
    pub(crate) name: Option<String>,
    pub(crate) mime_type: Option<String>,
    pub(crate) size: Option<u64>,
    pub(crate) path: Option<String>,
    pub(crate) meta: MediaMeta,
}

/// Why an upload was refused before storing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refusal {
    /// No bytes.
    Empty,
    /// A photo that is not a PNG, GIF or JPEG image.
    NotAnImage,
    /// Over a size limit.
    Store(StoreError),
}

/// Telegram's limit for an uploaded photo.
const PHOTO_LIMIT: u64 = 10 * 1024 * 1024;

/// Why a file was not stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StoreError {
    /// One file is larger than the per-file limit.
    TooBig { size: u64, limit: u64 },
    /// Storing it would take the world over its storage limit.
    Full { limit: u64 },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::TooBig { size, limit } => {
                write!(f, "the file is {size} bytes, over the limit of {limit} bytes for one file")
            }
            StoreError::Full { limit } => write!(f, "the emulator's file storage is full (limit {limit} bytes)"),
        }
    }
}

/// The bytes of one file and what every bot sees of it.
struct Blob {
    name: Option<String>,
    mime_type: Option<String>,
    bytes: Option<Bytes>,
    path: Option<String>,
    meta: MediaMeta,
    /// Bots holding a file id for it: only they may download it.
    bots: HashSet<i64>,
}

/// A file id: which bot holds it, for which blob.
struct FileId {
    bot_id: i64,
    kind: FileKind,
    unique_id: String,
}

#[derive(Default)]
struct Store {
    blobs: HashMap<String, Blob>,
    ids: HashMap<String, FileId>,
    paths: HashMap<String, String>,
    used: u64,
    next: u64,
}

/// Every file of the world.
pub(crate) struct Files {
    store: RwLock<Store>,
    /// Largest upload accepted, in bytes.
    pub(crate) file_limit: u64,
    /// Largest total of stored bytes.
    pub(crate) storage_limit: u64,
}

/// How much is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) files: usize,
    pub(crate) bytes: u64,
}

impl Files {
    pub(crate) fn new(file_limit: u64, storage_limit: u64) -> Files {
        Files { store: RwLock::default(), file_limit, storage_limit }
    }

    /// Checks that `size` bytes fit the per-file limit.
    fn check_size(&self, size: u64) -> Result<(), StoreError> {
        if size > self.file_limit {
            return Err(StoreError::TooBig { size, limit: self.file_limit });
        }
        Ok(())
    }

    /// A new file of `kind` from uploaded bytes, checked against the size limits, with what its bytes tell:
    /// an image's size, a sticker's format, a MIME type when the sender gave none.
    pub(crate) fn prepare(
        &self,
        kind: FileKind,
        name: Option<String>,
        mime_type: Option<String>,
        bytes: Bytes,
        mut meta: MediaMeta,
    ) -> Result<NewFile, Refusal> {
        if bytes.is_empty() {
            return Err(Refusal::Empty);
        }
        let size = bytes.len() as u64;
        self.check_size(size).map_err(Refusal::Store)?;
        if kind == FileKind::Photo && size > PHOTO_LIMIT {
            return Err(Refusal::Store(StoreError::TooBig { size, limit: PHOTO_LIMIT }));
        }
        let name = name.filter(|n| !n.is_empty());
        let mime_type = mime_type.unwrap_or_else(|| guess_mime(kind, name.as_deref(), &bytes));
        match kind {
            FileKind::Photo => (meta.width, meta.height) = image_size(&bytes).ok_or(Refusal::NotAnImage)?,
            FileKind::Animation if meta.width == 0 => {
                (meta.width, meta.height) = image_size(&bytes).unwrap_or_default()
            }
            FileKind::Sticker => {
                meta.is_animated = mime_type == "application/x-tgsticker";
                meta.is_video = mime_type == "video/webm";
                if meta.width == 0 {
                    (meta.width, meta.height) = image_size(&bytes).unwrap_or((512, 512));
                }
            }
            _ => {}
        }
        Ok(NewFile { kind, name, mime_type: Some(mime_type), bytes: Some(bytes), meta })
    }

    /// Stores `files` for bot `bot_id` and issues a file id for each; all or none.
    pub(crate) fn add_all(&self, bot_id: i64, files: Vec<NewFile>) -> Result<Vec<FileInfo>, StoreError> {
        let sizes = files.iter().map(|f| f.bytes.as_ref().map_or(0, |b| b.len() as u64));
        let mut total = 0u64;
        for size in sizes {
            self.check_size(size)?;
            total += size;
        }
        let mut store = self.store.write();
        if store.used + total > self.storage_limit {
            return Err(StoreError::Full { limit: self.storage_limit });
        }
        store.used += total;
        let mut out = Vec::with_capacity(files.len());
        for file in files {
            store.next += 1;
            let n = store.next;
            let unique_id = format!("AQAD{n:08x}");
            let path = file.bytes.as_ref().map(|_| {
                let extension = file.name.as_deref().and_then(extension).unwrap_or(file.kind.extension());
                format!("{}/file_{n}.{extension}", file.kind.dir())
            });
            if let Some(path) = &path {
                store.paths.insert(path.clone(), unique_id.clone());
            }
            let blob = Blob {
                name: file.name,
                mime_type: file.mime_type,
                bytes: file.bytes,
                path,
                meta: file.meta,
                bots: HashSet::new(),
            };
            store.blobs.insert(unique_id.clone(), blob);
            out.push(issue(&mut store, bot_id, file.kind, &unique_id));
        }
        Ok(out)
    }

    /// Stores one file (see [`Files::add_all`]).
    pub(crate) fn add(&self, bot_id: i64, file: NewFile) -> Result<FileInfo, StoreError> {
        Ok(self.add_all(bot_id, vec![file])?.remove(0))
    }

    /// The file with this id, if bot `bot_id` holds it.
    pub(crate) fn get(&self, bot_id: i64, file_id: &str) -> Option<FileInfo> {
        let store = self.store.read();
        let id = store.ids.get(file_id).filter(|id| id.bot_id == bot_id)?;
        Some(info(&store, file_id, id))
    }

    /// The file with this id, whichever bot holds it, with its bytes.
    pub(crate) fn inspect(&self, file_id: &str) -> Option<(FileInfo, Option<Bytes>)> {
        let store = self.store.read();
        let id = store.ids.get(file_id)?;
        let bytes = store.blobs.get(&id.unique_id).and_then(|b| b.bytes.clone());
        Some((info(&store, file_id, id), bytes))
    }

    /// The bytes and MIME type at `path`, if bot `bot_id` holds a file id for them.
    pub(crate) fn download(&self, bot_id: i64, path: &str) -> Option<(Bytes, Option<String>)> {
        let store = self.store.read();
        let blob = store.paths.get(path).and_then(|unique| store.blobs.get(unique))?;
        if !blob.bots.contains(&bot_id) {
            return None;
        }
        Some((blob.bytes.clone()?, blob.mime_type.clone()))
    }

    /// How many files and bytes are stored.
    pub(crate) fn usage(&self) -> Usage {
        let store = self.store.read();
        Usage { files: store.blobs.len(), bytes: store.used }
    }

    /// Forgets every file.
    pub(crate) fn clear(&self) {
        *self.store.write() = Store::default();
    }
}

/// Issues a new file id of `kind` for bot `bot_id`.
fn issue(store: &mut Store, bot_id: i64, kind: FileKind, unique_id: &str) -> FileInfo {
    store.next += 1;
    let file_id = format!("{}{bot_id:x}_{:08x}", kind.id_prefix(), store.next);
    store.ids.insert(file_id.clone(), FileId { bot_id, kind, unique_id: unique_id.to_owned() });
    if let Some(blob) = store.blobs.get_mut(unique_id) {
        blob.bots.insert(bot_id);
    }
    let id = &store.ids[&file_id];
    info(store, &file_id, id)
}

fn info(store: &Store, file_id: &str, id: &FileId) -> FileInfo {
    let blob = store.blobs.get(&id.unique_id);
    FileInfo {
        file_id: file_id.to_owned(),
        bot_id: id.bot_id,
        kind: id.kind,
        unique_id: id.unique_id.clone(),
        name: blob.and_then(|b| b.name.clone()),
        mime_type: blob.and_then(|b| b.mime_type.clone()),
        size: blob.and_then(|b| b.bytes.as_ref()).map(|b| b.len() as u64),
        path: blob.and_then(|b| b.path.clone()),
        meta: blob.map(|b| b.meta.clone()).unwrap_or_default(),
    }
}

/// The extension of a file name, if it is a plain one.
fn extension(name: &str) -> Option<&str> {
    let (_, extension) = name.rsplit_once('.')?;
    let plain = !extension.is_empty() && extension.len() <= 8 && extension.bytes().all(|b| b.is_ascii_alphanumeric());
    plain.then_some(extension)
}

impl FileInfo {
    /// Sets the message field of this file's kind (and `document` too for an animation, as Telegram does).
    pub(crate) fn attach_to(&self, message: &mut Message) {
        let (file_id, file_unique_id) = (self.file_id.clone(), self.unique_id.clone());
        let (file_name, mime_type, file_size, meta) =
            (self.name.clone(), self.mime_type.clone(), self.size, &self.meta);
        match self.kind {
            FileKind::Photo => {
                let (width, height) = (meta.width, meta.height);
                message.photo = Some(vec![PhotoSize { file_id, file_unique_id, width, height, file_size }]);
            }
            FileKind::Document => {
                message.document = Some(Document { file_id, file_unique_id, file_name, mime_type, file_size });
            }
            FileKind::Audio => {
                let (duration, performer, title) = (meta.duration, meta.performer.clone(), meta.title.clone());
                let audio =
                    Audio { file_id, file_unique_id, duration, performer, title, file_name, mime_type, file_size };
                message.audio = Some(audio);
            }
            FileKind::Video => {
                let (width, height, duration) = (meta.width, meta.height, meta.duration);
                let video = Video { file_id, file_unique_id, width, height, duration, file_name, mime_type, file_size };
                message.video = Some(video);
            }
            FileKind::Animation => {
                let (width, height, duration) = (meta.width, meta.height, meta.duration);
                let document = Document {
                    file_id: file_id.clone(),
                    file_unique_id: file_unique_id.clone(),
                    file_name: file_name.clone(),
                    mime_type: mime_type.clone(),
                    file_size,
                };
                message.document = Some(document);
                let animation =
                    Animation { file_id, file_unique_id, width, height, duration, file_name, mime_type, file_size };
                message.animation = Some(animation);
            }
            FileKind::Voice => {
                message.voice = Some(Voice { file_id, file_unique_id, duration: meta.duration, mime_type, file_size });
            }
            FileKind::VideoNote => {
                let (length, duration) = (meta.length, meta.duration);
                message.video_note = Some(VideoNote { file_id, file_unique_id, length, duration, file_size });
            }
            FileKind::Sticker => {
                message.sticker = Some(Sticker {
                    file_id,
                    file_unique_id,
                    kind: "regular".into(),
                    width: meta.width,
                    height: meta.height,
                    is_animated: meta.is_animated,
                    is_video: meta.is_video,
                    emoji: meta.emoji.clone(),
                    file_size,
                });
            }
        }
    }

    /// What the control API shows of it.
    pub(crate) fn stored(&self) -> StoredFile {
        StoredFile {
            file_id: self.file_id.clone(),
            file_unique_id: self.unique_id.clone(),
            bot_id: self.bot_id,
            kind: self.kind.name().to_owned(),
            file_name: self.name.clone(),
            mime_type: self.mime_type.clone(),
            file_size: self.size,
            file_path: self.path.clone(),
        }
    }
}

/// Width and height of a PNG, GIF or JPEG image; `None` when the bytes are none of these.
fn image_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let be16 = |i: usize| Some(u16::from_be_bytes([*bytes.get(i)?, *bytes.get(i + 1)?]) as u32);
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() >= 24 {
        let be32 = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        return Some((be32(16), be32(20)));
    }
    if bytes.starts_with(b"GIF8") && bytes.len() >= 10 {
        let le16 = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]) as u32;
        return Some((le16(6), le16(8)));
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let mut i = 2;
        while i + 9 < bytes.len() {
            if bytes[i] != 0xFF {
                return None;
            }
            let marker = bytes[i + 1];
            let sof = (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
            if sof {
                return Some((be16(i + 7)?, be16(i + 5)?));
            }
            i += 2 + be16(i + 2)? as usize;
        }
    }
    None
}

/// The MIME type a file of this name and these first bytes most likely has, when the sender gave none.
fn guess_mime(kind: FileKind, name: Option<&str>, bytes: &[u8]) -> String {
    let by_magic: &[(&[u8], &str)] = &[
        (b"\x89PNG", "image/png"),
        (b"\xFF\xD8\xFF", "image/jpeg"),
        (b"GIF8", "image/gif"),
        (b"%PDF", "application/pdf"),
        (b"PK\x03\x04", "application/zip"),
        (b"OggS", "audio/ogg"),
        (b"ID3", "audio/mpeg"),
        (b"\x1A\x45\xDF\xA3", "video/webm"),
        (b"\x1F\x8B", "application/x-tgsticker"),
    ];
    if let Some((_, mime)) = by_magic.iter().find(|(magic, _)| bytes.starts_with(magic)) {
        return (*mime).to_owned();
    }
    if bytes.get(4..8) == Some(b"ftyp") {
        return "video/mp4".into();
    }
    if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        return "image/webp".into();
    }
    let by_extension = match name.and_then(extension).map(str::to_ascii_lowercase).as_deref() {
        Some("txt") => Some("text/plain"),
        Some("csv") => Some("text/csv"),
        Some("json") => Some("application/json"),
        Some("html" | "htm") => Some("text/html"),
        _ => None,
    };
    let default = match kind {
        FileKind::Photo => "image/jpeg",
        FileKind::Audio => "audio/mpeg",
        FileKind::Voice => "audio/ogg",
        FileKind::Video | FileKind::Animation | FileKind::VideoNote => "video/mp4",
        FileKind::Sticker => "image/webp",
        FileKind::Document => "application/octet-stream",
    };
    by_extension.unwrap_or(default).to_owned()
}
