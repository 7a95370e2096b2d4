//! Files the bot sends: `sendPhoto`, `sendDocument`, `sendAudio`, `sendVideo`, `sendAnimation`, `sendVoice`,
//! `sendVideoNote` and `sendSticker` (one function for all), `getFile`, and the file endpoint
//! `/file/bot<TOKEN>/<file_path>`. A file comes as a multipart upload (in the parameter's own field, or in the
//! field that `attach://<name>` names), as a file id the bot holds, or as an HTTP URL (kept without bytes: the
//! emulator never fetches it).

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{
        StatusCode,
        header::{CONTENT_LENGTH, CONTENT_TYPE},
    },
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{
    Answer,
    messages::{self, Styled, record_sent, reply_markup, reply_target, send_options, target_chat},
};
use crate::{
    entities,
    error::ApiError,
    params::{Params, Upload},
    types::{File, Message},
    world::{BotCell, FileInfo, FileKind, MediaMeta, NewFile, Refusal, StoreError, World, parse_token, unix_now},
};

pub(super) const CAPTION_LIMIT: usize = 1024;

/// The kind of file a send method sends.
pub(super) fn kind_of(method: &str) -> Option<FileKind> {
    let name = method.strip_prefix("send")?;
    FileKind::ALL.into_iter().find(|k| k.name().replace('_', "").eq_ignore_ascii_case(name))
}

/// A file to send: a new one, stored once the call is valid, or one the bot already holds.
pub(super) enum Source {
    New(NewFile),
    Held(FileInfo),
}

/// The file given as an `upload` or a `reference` (`attach://<field>`, a file id or an HTTP URL), to be sent as
/// `kind`; `None` when neither names a file.
pub(super) fn resolve(
    world: &World,
    bot_id: i64,
    p: &Params,
    kind: FileKind,
    upload: Option<&Upload>,
    reference: Option<&str>,
    meta: MediaMeta,
) -> Result<Option<Source>, ApiError> {
    if let Some(upload) = upload {
        return uploaded(world, kind, upload, meta).map(Some);
    }
    let Some(reference) = reference.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if let Some(name) = reference.strip_prefix("attach://") {
        return p.files.get(name).map(|upload| uploaded(world, kind, upload, meta)).transpose();
    }
    if let Some(info) = world.files.get(bot_id, reference) {
        if info.kind != kind {
            let (held, wanted) = (info.kind.label(), kind.label());
            return Err(ApiError::bad_request(format!("can't use file of type {held} as {wanted}")));
        }
        return Ok(Some(Source::Held(info)));
    }
    let url = reqwest::Url::parse(reference).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
    // Telegram does not send video notes by URL.
    let Some(url) = url.filter(|_| kind != FileKind::VideoNote) else {
        return Err(ApiError::bad_request("wrong file identifier/HTTP URL specified"));
    };
    let name = url.path_segments().and_then(|mut s| s.next_back()).filter(|s| !s.is_empty()).map(str::to_owned);
    Ok(Some(Source::New(NewFile { kind, name, mime_type: None, bytes: None, meta })))
}

/// A multipart upload as a new file of `kind`, checked against the size limits.
fn uploaded(world: &World, kind: FileKind, upload: &Upload, meta: MediaMeta) -> Result<Source, ApiError> {
    let (name, mime_type, bytes) = (upload.file_name.clone(), upload.mime_type.clone(), upload.bytes.clone());
    match world.files.prepare(kind, name, mime_type, bytes, meta) {
        Ok(file) => Ok(Source::New(file)),
        Err(Refusal::Empty) => Err(ApiError::bad_request("file must be non-empty")),
        Err(Refusal::NotAnImage) => Err(ApiError::bad_request("IMAGE_PROCESS_FAILED")),
        Err(Refusal::Store(error)) => Err(too_large(error)),
    }
}

/// A storage refusal as Telegram's 413, naming the limit.
pub(super) fn too_large(error: StoreError) -> ApiError {
    ApiError::new(413, format!("Request Entity Too Large: {error}"))
}

/// Stores the new files among `sources` (all or none) and returns every file, in order.
pub(super) fn commit(world: &World, bot_id: i64, sources: Vec<Source>) -> Result<Vec<FileInfo>, ApiError> {
    let new: Vec<NewFile> =
        sources.iter().filter_map(|s| if let Source::New(f) = s { Some(f.clone()) } else { None }).collect();
    let mut stored = world.files.add_all(bot_id, new).map_err(too_large)?.into_iter();
    let files = sources.into_iter().map(|source| match source {
        Source::Held(info) => Some(info),
        Source::New(_) => stored.next(),
    });
    Ok(files.flatten().collect())
}

/// What the parameters of a send say about the file: duration, sizes, tags.
pub(super) fn meta_params(p: &Params) -> Result<MediaMeta, ApiError> {
    let number =
        |name: &str| -> Result<u32, ApiError> { Ok(p.int(name)?.unwrap_or(0).clamp(0, u32::MAX as i64) as u32) };
    Ok(MediaMeta {
        width: number("width")?,
        height: number("height")?,
        duration: number("duration")?,
        length: number("length")?,
        performer: p.str("performer")?,
        title: p.str("title")?,
        emoji: p.str("emoji")?,
        is_animated: false,
        is_video: false,
    })
}

/// A caption after `parse_mode`, or with the `caption_entities` given instead, checked against Telegram's limit.
pub(super) fn caption(world: &World, raw: &str, p: &Params) -> Result<Styled, ApiError> {
    let styled = messages::styled(world, raw, p, "caption_entities")?;
    if entities::utf16_len(&styled.text) > CAPTION_LIMIT {
        return Err(ApiError::bad_request("message caption is too long"));
    }
    Ok(styled)
}

/// `sendPhoto`, `sendDocument`, `sendAudio`, `sendVideo`, `sendAnimation`, `sendVoice`, `sendVideoNote`,
/// `sendSticker`.
pub(super) fn send_media(world: &World, bot: &BotCell, kind: FileKind, p: &Params) -> Result<Answer, ApiError> {
    let field = kind.name();
    let reference = p.str(field)?;
    let source = resolve(world, bot.id, p, kind, p.files.get(field), reference.as_deref(), meta_params(p)?)?;
    let missing = || ApiError::bad_request(format!("there is no {} in the request", field.replace('_', " ")));
    let source = source.ok_or_else(missing)?;
    let has_caption = !matches!(kind, FileKind::Sticker | FileKind::VideoNote);
    let raw_caption = p.str("caption")?.filter(|_| has_caption).unwrap_or_default();
    let Styled { text, entities, parse_mode } = caption(world, &raw_caption, p)?;
    let markup = reply_markup(p)?;
    let mut st = bot.state.lock();
    let chat = target_chat(world, &st, p)?;
    let reply_to_message = reply_target(&mut st, &chat, p)?;
    if world.flood() {
        st.check_flood(&chat)?;
    }
    let info = commit(world, bot.id, vec![source])?.remove(0);
    let mut message = Message {
        from: Some(st.me.clone()),
        chat,
        date: unix_now(),
        reply_to_message,
        caption: (!text.is_empty()).then_some(text),
        caption_entities: entities,
        reply_markup: markup,
        ..Message::default()
    };
    info.attach_to(&mut message);
    let options = send_options(p, &["caption", field]);
    let raw_caption = (!raw_caption.is_empty()).then_some(raw_caption);
    let result = record_sent(world, &mut st, message, parse_mode, raw_caption, options);
    drop(st);
    bot.events.notify_waiters();
    Ok(Answer::Json(result))
}

/// `getFile`: the file's path on the file endpoint, for files up to the download limit.
pub(super) fn get_file(world: &World, bot: &BotCell, p: &Params) -> Result<Answer, ApiError> {
    let file_id = p.str("file_id")?.filter(|id| !id.is_empty());
    let file_id = file_id.ok_or_else(|| ApiError::bad_request("file_id not specified"))?;
    let info = world.files.get(bot.id, &file_id).ok_or_else(|| ApiError::bad_request("invalid file_id"))?;
    if info.size.is_some_and(|size| size > world.config.download_limit as u64) {
        return Err(ApiError::bad_request("file is too big"));
    }
    let file = File { file_id, file_unique_id: info.unique_id, file_size: info.size, file_path: info.path };
    Ok(Answer::Json(serde_json::to_value(file).unwrap_or_default()))
}

/// Serves `/file/bot<TOKEN>/<file_path>`: the bytes of a file the bot holds (401 for a bad token, 404 for a path
/// the bot was not given).
pub(crate) async fn download(State(world): State<Arc<World>>, req: Request) -> Response {
    // Clients may escape the slashes of the path (teloxide does); the server reads it decoded.
    let path = percent_decode(req.uri().path());
    let Some((token, file_path)) = path.strip_prefix("/file/bot").and_then(|rest| rest.split_once('/')) else {
        return ApiError::new(404, "Not Found").into_response();
    };
    let Some(bot) = parse_token(token).and_then(|_| world.authorize(token)) else {
        return ApiError::unauthorized().into_response();
    };
    let Some((bytes, mime_type)) = world.files.download(bot.id, file_path) else {
        return ApiError::new(404, "Not Found").into_response();
    };
    let detail = json!({ "file_path": file_path, "file_size": bytes.len() });
    bot.state.lock().emit("download", None, None, Some(detail), world.config.event_capacity);
    bot.events.notify_waiters();
    let mime_type = mime_type.unwrap_or_else(|| "application/octet-stream".into());
    let headers = [(CONTENT_TYPE, mime_type), (CONTENT_LENGTH, bytes.len().to_string())];
    (StatusCode::OK, headers, Body::from(bytes)).into_response()
}

/// `path` with its `%XX` escapes decoded (an invalid escape stays as it is).
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
