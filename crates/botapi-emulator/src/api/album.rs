//! Files described by `InputMedia` objects: `sendMediaGroup` (an album of 2-10 photos, videos, documents or
//! audio files) and `editMessageMedia` (another file in a message the bot sent). Each object's `media` is
//! `attach://<field>`, a file id or an HTTP URL; errors read as the Bot API server words them.

use serde_json::Value;

use super::{
    Answer,
    media::{CAPTION_LIMIT, Source, commit, resolve},
    messages::{
        NOT_MODIFIED, Styled, emit_edit, format_with, own_message, record_sent, reply_markup, reply_target,
        send_options, target_chat,
    },
};
use crate::{
    entities,
    error::ApiError,
    params::Params,
    types::Message,
    world::{BotCell, FileKind, MediaMeta, World, unix_now},
};

/// One `InputMedia` object, read.
struct InputMedia {
    kind: FileKind,
    source: Source,
    caption: Styled,
    raw_caption: String,
}

/// Why an `InputMedia` object was refused.
enum MediaError {
    /// The object does not parse: the detail after `can't parse InputMedia: `.
    Parse(String),
    /// The object parses but its file or caption is refused, with this answer.
    Refused(ApiError),
}

impl From<MediaError> for ApiError {
    fn from(error: MediaError) -> ApiError {
        match error {
            MediaError::Parse(detail) => ApiError::bad_request(format!("can't parse InputMedia: {detail}")),
            MediaError::Refused(error) => error,
        }
    }
}

/// Reads one `InputMedia` object, in the Bot API server's order: caption, type, media, then the type's fields.
fn input_media(
    world: &World,
    bot_id: i64,
    p: &Params,
    value: &Value,
    for_album: bool,
) -> Result<InputMedia, MediaError> {
    let object = value.as_object().ok_or(MediaError::Parse("expected an Object".into()))?;
    let text = |name: &str| match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(MediaError::Parse(format!("Field \"{name}\" must be of type String"))),
    };
    let raw_caption = text("caption")?.unwrap_or_default();
    let styled = format_with(world, &raw_caption, text("parse_mode")?).map_err(|e| MediaError::Parse(detail(&e)))?;
    if entities::utf16_len(&styled.text) > CAPTION_LIMIT {
        return Err(MediaError::Refused(ApiError::bad_request("message caption is too long")));
    }
    let kind_name = text("type")?.ok_or(MediaError::Parse("Can't find field \"type\"".into()))?;
    let reference = text("media")?.unwrap_or_default();
    let attached = reference.strip_prefix("attach://").is_none_or(|name| p.files.contains_key(name));
    if reference.is_empty() || !attached {
        return Err(MediaError::Parse("media not found".into()));
    }
    let kind = match FileKind::parse(&kind_name) {
        Some(FileKind::Animation) if for_album => {
            return Err(MediaError::Parse(format!("type \"{kind_name}\" can't be used in sendMediaGroup")));
        }
        Some(
            kind @ (FileKind::Photo | FileKind::Video | FileKind::Animation | FileKind::Audio | FileKind::Document),
        ) => kind,
        _ => return Err(MediaError::Parse(format!("type \"{kind_name}\" is unsupported"))),
    };
    let number = |name: &str| object.get(name).and_then(Value::as_u64).unwrap_or(0).min(u32::MAX as u64) as u32;
    let meta = MediaMeta {
        width: number("width"),
        height: number("height"),
        duration: number("duration"),
        performer: text("performer")?,
        title: text("title")?,
        ..MediaMeta::default()
    };
    let source = resolve(world, bot_id, p, kind, None, Some(&reference), meta).map_err(MediaError::Refused)?;
    let source = source.ok_or(MediaError::Parse("media not found".into()))?;
    Ok(InputMedia { kind, source, caption: styled, raw_caption })
}

/// The detail of an error, as TDLib nests it in another (`Can't parse entities: ...`).
fn detail(error: &ApiError) -> String {
    let text = error.description.strip_prefix("Bad Request: ").unwrap_or(&error.description);
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The `media` parameter, required.
fn media_param(p: &Params, error: &str) -> Result<Value, ApiError> {
    p.json("media", error)?.ok_or_else(|| ApiError::bad_request("parameter \"media\" is required"))
}

/// `sendMediaGroup`: 2-10 files sent as one album, each its own message with the same `media_group_id`.
pub(super) fn send_media_group(world: &World, bot: &BotCell, p: &Params) -> Result<Answer, ApiError> {
    let value = media_param(p, "can't parse media JSON object")?;
    let items = value.as_array().ok_or_else(|| ApiError::bad_request("expected an Array of InputMedia"))?;
    match items.len() {
        0 => return Err(ApiError::bad_request("there are no messages to send")),
        1 => return Err(ApiError::bad_request("media must include 2-10 items")),
        11.. => return Err(ApiError::bad_request("too many messages to send as an album")),
        _ => {}
    }
    let mut media = Vec::with_capacity(items.len());
    for item in items {
        media.push(input_media(world, bot.id, p, item, true)?);
    }
    for alone in [FileKind::Document, FileKind::Audio] {
        let count = media.iter().filter(|m| m.kind == alone).count();
        if count > 0 && count < media.len() {
            return Err(ApiError::bad_request(format!("{} can't be mixed with other media types", alone.name())));
        }
    }
    let mut st = bot.state.lock();
    let chat = target_chat(world, &st, p)?;
    let reply_to_message = reply_target(&mut st, &chat, p)?;
    if world.flood() {
        st.check_flood(&chat)?;
    }
    let (parts, sources): (Vec<_>, Vec<_>) = media.into_iter().map(|m| ((m.caption, m.raw_caption), m.source)).unzip();
    let files = commit(world, bot.id, sources)?;
    let group_id = format!("{}", 13_000_000_000_000_000u64 + world.unique());
    let options = send_options(p, &["media"]);
    let mut sent = Vec::with_capacity(files.len());
    for (info, (styled, raw_caption)) in files.into_iter().zip(parts) {
        let mut message = Message {
            from: Some(st.me.clone()),
            chat: chat.clone(),
            date: unix_now(),
            reply_to_message: reply_to_message.clone(),
            media_group_id: Some(group_id.clone()),
            caption: (!styled.text.is_empty()).then_some(styled.text),
            caption_entities: styled.entities,
            ..Message::default()
        };
        info.attach_to(&mut message);
        let raw_caption = (!raw_caption.is_empty()).then_some(raw_caption);
        sent.push(record_sent(world, &mut st, message, styled.parse_mode, raw_caption, options.clone()));
    }
    drop(st);
    bot.events.notify_waiters();
    Ok(Answer::Json(Value::Array(sent)))
}

/// The kind of file a message shows, if it is one `editMessageMedia` may replace.
fn editable_kind(message: &Message) -> Option<FileKind> {
    let kinds = [
        (message.animation.is_some(), FileKind::Animation),
        (message.photo.is_some(), FileKind::Photo),
        (message.video.is_some(), FileKind::Video),
        (message.audio.is_some(), FileKind::Audio),
        (message.document.is_some(), FileKind::Document),
    ];
    kinds.into_iter().find(|(shown, _)| *shown).map(|(_, kind)| kind)
}

/// `editMessageMedia`: another file (and caption) in a message the bot sent; in an album only a file of the
/// album's sort.
pub(super) fn edit_message_media(world: &World, bot: &BotCell, p: &Params) -> Result<Answer, ApiError> {
    let value = media_param(p, "can't parse input media JSON object")?;
    let media = input_media(world, bot.id, p, &value, false)?;
    let markup = reply_markup(p)?;
    let mut st = bot.state.lock();
    let entry = own_message(&mut st, p)?;
    let current = editable_kind(&entry.message)
        .ok_or_else(|| ApiError::bad_request("there is no media in the message to edit"))?;
    if entry.message.media_group_id.is_some() {
        let fits = match current {
            FileKind::Audio | FileKind::Document => media.kind == current,
            _ => matches!(media.kind, FileKind::Photo | FileKind::Video),
        };
        if !fits {
            return Err(ApiError::bad_request("can't use the media of the specified type in the album"));
        }
    }
    let caption = (!media.caption.text.is_empty()).then(|| media.caption.text.clone());
    if let Source::Held(info) = &media.source {
        let mut same = entry.message.clone();
        info.attach_to(&mut same);
        let unchanged = same == entry.message
            && entry.message.caption == caption
            && entry.message.caption_entities == media.caption.entities
            && entry.message.reply_markup == markup;
        if unchanged {
            return Err(ApiError::bad_request(NOT_MODIFIED));
        }
    }
    let info = commit(world, bot.id, vec![media.source])?.remove(0);
    let previous = entry.message.clone();
    entry.edits.push(previous);
    let message = &mut entry.message;
    (message.photo, message.document, message.audio, message.video, message.animation) = (None, None, None, None, None);
    info.attach_to(message);
    message.caption = caption;
    message.caption_entities = media.caption.entities;
    message.reply_markup = markup;
    message.edit_date = Some(unix_now());
    entry.parse_mode = media.caption.parse_mode;
    entry.raw_text = (!media.raw_caption.is_empty()).then_some(media.raw_caption);
    let edited = entry.clone();
    let result = emit_edit(world, &mut st, edited);
    drop(st);
    bot.events.notify_waiters();
    Ok(Answer::Json(result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_details_start_with_a_capital() {
        let error = ApiError::bad_request("can't parse entities: Unclosed start tag at byte offset 2");
        assert_eq!(detail(&error), "Can't parse entities: Unclosed start tag at byte offset 2");
        let error = ApiError::from(MediaError::Parse("media not found".into()));
        assert_eq!(error.description, "Bad Request: can't parse InputMedia: media not found");
    }
}
