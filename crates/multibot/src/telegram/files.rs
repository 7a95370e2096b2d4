//! Files up and down. [`BotApi::send_file`] sends a photo, document, audio, video, voice note, animation, sticker
//! or video note ([`FileKind`]) from an [`InputFile`]: a `file_id` Telegram has, a URL it fetches, bytes made in
//! memory or a local file streamed from disk, as a multipart upload. [`BotApi::get_file`] and
//! [`BotApi::download`] bring a user's file down through the Bot API's file endpoint, streamed and size-capped.
//! Neither the token (it is in both URLs) nor a file's bytes reach a log line or an error.

use std::{path::PathBuf, sync::Arc};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use reqwest::{
    RequestBuilder, Url,
    multipart::{Form, Part},
};
use serde::Deserialize;
use teloxide_core::types::{ChatId, Message, MessageEntity, ParseMode, ReplyMarkup};

use super::{ApiCallError, BotApi};

/// The largest file a bot may upload (the Bot API's limit for multipart uploads).
pub const UPLOAD_LIMIT: u64 = 50 * 1024 * 1024;

/// The largest file a bot may download through the Bot API.
pub const DOWNLOAD_LIMIT: u64 = 20 * 1024 * 1024;

/// A file to send.
#[derive(Debug, Clone)]
pub enum InputFile {
    /// A file Telegram already has: the `file_id` of an earlier message.
    Id(String),
    /// A URL Telegram downloads the file from.
    Url(Url),
    /// Bytes made in memory, uploaded under `name` (the name decides how Telegram shows a document).
    Bytes {
        /// The file name.
        name: String,
        /// The content.
        data: Bytes,
    },
    /// A local file, streamed from disk when sent (read again if the send is retried).
    Path(PathBuf),
    /// Bytes produced while they are sent (see [`InputFile::stream`]); sent once, so a send that must be retried
    /// fails instead.
    Stream(OneShot),
}

/// The body of an [`InputFile::Stream`]: taken by the first attempt that sends it.
#[derive(Clone)]
pub struct OneShot {
    name: String,
    body: Arc<Mutex<Option<reqwest::Body>>>,
}

impl std::fmt::Debug for OneShot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OneShot({:?})", self.name)
    }
}

impl InputFile {
    /// Bytes uploaded as `name`.
    pub fn bytes(name: impl Into<String>, data: impl Into<Bytes>) -> InputFile {
        InputFile::Bytes { name: name.into(), data: data.into() }
    }

    /// A local file.
    pub fn path(path: impl Into<PathBuf>) -> InputFile {
        InputFile::Path(path.into())
    }

    /// A stream of chunks uploaded as `name` while it is produced (a file made on the fly, a download passed on).
    /// It can be sent once: a send whose first attempt fails is not retried.
    pub fn stream<S, E>(name: impl Into<String>, stream: S) -> InputFile
    where
        S: futures_util::Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        let body = reqwest::Body::wrap_stream(stream);
        InputFile::Stream(OneShot { name: name.into(), body: Arc::new(Mutex::new(Some(body))) })
    }

    /// The form part of an upload, or `None` for an id or a URL (sent as text).
    pub(super) async fn part(&self) -> Result<Option<Part>, ApiCallError> {
        match self {
            InputFile::Id(_) | InputFile::Url(_) => Ok(None),
            InputFile::Bytes { name, data } => {
                if data.len() as u64 > UPLOAD_LIMIT {
                    return Err(too_big(name, data.len() as u64));
                }
                Ok(Some(Part::stream_with_length(data.clone(), data.len() as u64).file_name(name.clone())))
            }
            InputFile::Path(path) => {
                let name = path.file_name().map_or_else(|| "file".to_owned(), |n| n.to_string_lossy().into_owned());
                let unreadable = |e: std::io::Error| ApiCallError::File(format!("cannot read {}: {e}", path.display()));
                let file = tokio::fs::File::open(path).await.map_err(unreadable)?;
                let size = file.metadata().await.map_err(unreadable)?.len();
                if size > UPLOAD_LIMIT {
                    return Err(too_big(&name, size));
                }
                Ok(Some(Part::stream_with_length(file, size).file_name(name)))
            }
            InputFile::Stream(OneShot { name, body }) => {
                let Some(body) = body.lock().take() else {
                    return Err(ApiCallError::File(format!("{name} was a stream, already sent by a failed attempt")));
                };
                Ok(Some(Part::stream(body).file_name(name.clone())))
            }
        }
    }

    /// The text of an id or a URL.
    pub(super) fn text(&self) -> Option<String> {
        match self {
            InputFile::Id(id) => Some(id.clone()),
            InputFile::Url(url) => Some(url.to_string()),
            InputFile::Bytes { .. } | InputFile::Path(_) | InputFile::Stream(_) => None,
        }
    }
}

fn too_big(name: &str, size: u64) -> ApiCallError {
    ApiCallError::File(format!("{name} is {size} bytes; the Bot API takes uploads of at most {UPLOAD_LIMIT} bytes"))
}

/// What a file is sent as: the method and its file field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `sendPhoto`.
    Photo,
    /// `sendDocument`.
    Document,
    /// `sendAudio`.
    Audio,
    /// `sendVideo`.
    Video,
    /// `sendVoice`.
    Voice,
    /// `sendAnimation`.
    Animation,
    /// `sendSticker` (no caption).
    Sticker,
    /// `sendVideoNote` (no caption).
    VideoNote,
}

impl FileKind {
    /// Every kind.
    pub const ALL: [FileKind; 8] = [
        FileKind::Photo,
        FileKind::Document,
        FileKind::Audio,
        FileKind::Video,
        FileKind::Voice,
        FileKind::Animation,
        FileKind::Sticker,
        FileKind::VideoNote,
    ];

    /// The Bot API method and the name of its file field.
    fn method_and_field(self) -> (&'static str, &'static str) {
        match self {
            FileKind::Photo => ("sendPhoto", "photo"),
            FileKind::Document => ("sendDocument", "document"),
            FileKind::Audio => ("sendAudio", "audio"),
            FileKind::Video => ("sendVideo", "video"),
            FileKind::Voice => ("sendVoice", "voice"),
            FileKind::Animation => ("sendAnimation", "animation"),
            FileKind::Sticker => ("sendSticker", "sticker"),
            FileKind::VideoNote => ("sendVideoNote", "video_note"),
        }
    }

    /// The name of its file field, which is also how a message names it: `photo`, `video_note`, ...
    pub fn name(self) -> &'static str {
        self.method_and_field().1
    }

    /// The kind [`FileKind::name`] gives `name`.
    pub fn from_name(name: &str) -> Option<FileKind> {
        FileKind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// The rest of a file send.
#[derive(Debug, Clone, Default)]
pub struct FileOptions {
    /// The caption (photos, documents, audio, video, voice notes, animations).
    pub caption: Option<String>,
    /// `Some(None)` sends the caption without a parse mode; `None` uses the bot's default.
    pub parse_mode: Option<Option<ParseMode>>,
    /// The caption's formatting as message entities, sent instead of a parse mode.
    pub caption_entities: Option<Vec<MessageEntity>>,
    /// Keyboard to attach.
    pub reply_markup: Option<ReplyMarkup>,
}

/// A file as `getFile` describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct RemoteFile {
    /// The id to send it again or download it.
    pub file_id: String,
    /// Its size in bytes, when known.
    #[serde(default)]
    pub file_size: Option<u64>,
    /// Where the file endpoint serves it; `None` when Telegram cannot (too big for bots).
    #[serde(default)]
    pub file_path: Option<String>,
}

impl BotApi {
    /// Sends a file to `chat` as `kind`. An upload (bytes or a path) goes out as a multipart form, an id or a URL
    /// as text; either way sends are paced and retried as [`BotApi::call`] says. A file over [`UPLOAD_LIMIT`]
    /// or a path that cannot be read is refused before anything is sent.
    pub async fn send_file(
        &self,
        chat: ChatId,
        kind: FileKind,
        file: InputFile,
        options: FileOptions,
    ) -> Result<Message, ApiCallError> {
        let (method, field) = kind.method_and_field();
        let mut fields = vec![("chat_id".to_owned(), chat.0.to_string())];
        if let Some(caption) = options.caption {
            fields.push(("caption".to_owned(), caption));
            if let Some(entities) = &options.caption_entities {
                let json = serde_json::to_string(entities).map_err(|e| ApiCallError::Decode(e.to_string()))?;
                fields.push(("caption_entities".to_owned(), json));
            } else if let Some(mode) = options.parse_mode.unwrap_or(self.parse_mode) {
                fields.push(("parse_mode".to_owned(), parse_mode_name(mode).to_owned()));
            }
        }
        if let Some(markup) = &options.reply_markup {
            let json = serde_json::to_string(markup).map_err(|e| ApiCallError::Decode(e.to_string()))?;
            fields.push(("reply_markup".to_owned(), json));
        }
        let mut files = Vec::new();
        match file.text() {
            Some(text) => fields.push((field.to_owned(), text)),
            None => files.push((field.to_owned(), file)),
        }
        check(&files).await?;
        let form = form(fields, files);
        self.request_form(method, Some(chat.0), form).await
    }

    /// `getFile`: where the file endpoint serves a file.
    pub async fn get_file(&self, file_id: &str) -> Result<RemoteFile, ApiCallError> {
        let body = serde_json::to_vec(&serde_json::json!({ "file_id": file_id }))
            .map_err(|e| ApiCallError::Decode(e.to_string()))?;
        self.request_json("getFile", None, None, body.into()).await
    }

    /// Downloads the file at `file_path` (from [`BotApi::get_file`]), refusing one over `limit` bytes before or
    /// while it streams, so a large file never fills memory.
    pub async fn download(&self, file_path: &str, limit: u64) -> Result<Bytes, ApiCallError> {
        let url = self.files.join(file_path).map_err(|e| ApiCallError::Decode(e.to_string()))?;
        // `without_url`: the URL holds the token.
        let network = |e: reqwest::Error| ApiCallError::Network(crate::tls::describe(&e.without_url()));
        let mut response = self.http.get(url).send().await.map_err(network)?;
        let status = response.status();
        if !status.is_success() {
            return Err(ApiCallError::Api {
                code: status.as_u16(),
                description: format!("the file endpoint answered {status}"),
                retry_after: None,
            });
        }
        let over = |size: u64| ApiCallError::File(format!("the file is over the {limit} bytes allowed ({size} bytes)"));
        if let Some(size) = response.content_length().filter(|size| *size > limit) {
            return Err(over(size));
        }
        let mut data = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(network)? {
            if (data.len() + chunk.len()) as u64 > limit {
                return Err(over((data.len() + chunk.len()) as u64));
            }
            data.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(data))
    }
}

/// Checks the uploads once before the first attempt, so that a refused file is never half sent (a stream is
/// checked as it is sent: it can be read only once).
pub(super) async fn check(files: &[(String, InputFile)]) -> Result<(), ApiCallError> {
    for (_, file) in files.iter().filter(|(_, file)| !matches!(file, InputFile::Stream(_))) {
        file.part().await?;
    }
    Ok(())
}

/// The body of a file send: text fields and file parts, made afresh for each attempt.
pub(super) fn form(
    fields: Vec<(String, String)>,
    files: Vec<(String, InputFile)>,
) -> impl Fn(RequestBuilder) -> BoxFuture<'static, Result<RequestBuilder, ApiCallError>> {
    move |request| {
        let (fields, files) = (fields.clone(), files.clone());
        Box::pin(async move {
            let mut form = Form::new();
            for (name, value) in fields {
                form = form.text(name, value);
            }
            for (name, file) in files {
                if let Some(part) = file.part().await? {
                    form = form.part(name, part);
                }
            }
            Ok(request.multipart(form))
        })
    }
}

/// The Bot API's name for a parse mode.
pub(super) fn parse_mode_name(mode: ParseMode) -> &'static str {
    match mode {
        ParseMode::Html => "HTML",
        ParseMode::MarkdownV2 => "MarkdownV2",
        #[allow(deprecated)]
        ParseMode::Markdown => "Markdown",
    }
}
