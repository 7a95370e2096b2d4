//! Files the bot sends: `sendPhoto`, `sendDocument`.

use super::{
    Answer,
    messages::{Styled, format_text, record_sent, reply_markup, reply_target, send_options, target_chat},
};
use crate::{
    entities,
    error::ApiError,
    params::{Params, Upload},
    types::{Document, Message, PhotoSize},
    world::{BotCell, FileInfo, World, unix_now},
};

const CAPTION_LIMIT: usize = 1024;

/// `sendPhoto` and `sendDocument`: the file is an upload (a multipart field, or `attach://<field>`), a file id
/// the emulator issued, or an HTTP URL.
pub(super) fn send_file(world: &World, bot: &BotCell, method: &str, p: &Params) -> Result<Answer, ApiError> {
    let field = if method == "sendPhoto" { "photo" } else { "document" };
    let (file_id, info) = input_file(world, p, field)?;
    let raw_caption = p.str("caption")?.unwrap_or_default();
    let Styled { text: caption, entities: caption_entities, parse_mode } = format_text(world, &raw_caption, p)?;
    if entities::utf16_len(&caption) > CAPTION_LIMIT {
        return Err(ApiError::bad_request("message caption is too long"));
    }
    let markup = reply_markup(p)?;
    let mut st = bot.state.lock();
    let chat = target_chat(world, &st, p)?;
    let reply_to_message = reply_target(&mut st, &chat, p)?;
    if world.flood() {
        st.check_flood(&chat)?;
    }
    let (photo, document) = if field == "photo" {
        let size = PhotoSize {
            file_id: file_id.clone(),
            file_unique_id: info.unique_id.clone(),
            width: info.width,
            height: info.height,
            file_size: info.size,
        };
        (Some(vec![size]), None)
    } else {
        let document = Document {
            file_id,
            file_unique_id: info.unique_id.clone(),
            file_name: info.name.clone(),
            mime_type: info.mime_type.clone(),
            file_size: info.size,
        };
        (None, Some(document))
    };
    let message = Message {
        message_id: 0,
        from: Some(st.me.clone()),
        chat,
        date: unix_now(),
        edit_date: None,
        reply_to_message,
        text: None,
        entities: None,
        photo,
        document,
        caption: (!caption.is_empty()).then_some(caption),
        caption_entities,
        link_preview_options: None,
        reply_markup: markup,
    };
    let options = send_options(p, &["caption", field]);
    let result =
        record_sent(world, &mut st, message, parse_mode, (!raw_caption.is_empty()).then_some(raw_caption), options);
    drop(st);
    bot.events.notify_waiters();
    Ok(Answer::Json(result))
}

pub(super) fn input_file(world: &World, p: &Params, field: &str) -> Result<(String, FileInfo), ApiError> {
    let kind = if field == "photo" { "photo" } else { "document" };
    if let Some(upload) = p.files.get(field) {
        return store_upload(world, kind, upload);
    }
    let Some(reference) = p.str(field)?.filter(|s| !s.is_empty()) else {
        return Err(ApiError::bad_request(format!("there is no {kind} in the request")));
    };
    if let Some(name) = reference.strip_prefix("attach://") {
        let upload = p.files.get(name).ok_or_else(|| ApiError::bad_request("wrong HTTP URL specified"))?;
        return store_upload(world, kind, upload);
    }
    if let Some(info) = world.file(&reference) {
        return Ok((reference, info));
    }
    if let Ok(url) = reqwest::Url::parse(&reference)
        .map_err(|_| ())
        .and_then(|u| if matches!(u.scheme(), "http" | "https") { Ok(u) } else { Err(()) })
    {
        let name = url.path_segments().and_then(|mut s| s.next_back()).filter(|s| !s.is_empty()).map(str::to_owned);
        let info = FileInfo {
            unique_id: format!("U{:08x}", world.unique()),
            kind,
            name,
            mime_type: None,
            size: None,
            width: 0,
            height: 0,
        };
        let id = world.add_file(info.clone());
        return Ok((id, info));
    }
    Err(ApiError::bad_request("wrong file identifier/HTTP URL specified"))
}

pub(super) fn store_upload(world: &World, kind: &'static str, upload: &Upload) -> Result<(String, FileInfo), ApiError> {
    if upload.bytes.is_empty() {
        return Err(ApiError::bad_request("file must be non-empty"));
    }
    let (width, height) = if kind == "photo" {
        image_size(&upload.bytes).ok_or_else(|| ApiError::bad_request("IMAGE_PROCESS_FAILED"))?
    } else {
        (0, 0)
    };
    let mime_type = upload.mime_type.clone().or_else(|| Some("application/octet-stream".into()));
    let info = FileInfo {
        unique_id: format!("U{:08x}", world.unique()),
        kind,
        name: upload.file_name.clone(),
        mime_type,
        size: Some(upload.bytes.len() as u64),
        width,
        height,
    };
    let id = world.add_file(info.clone());
    Ok((id, info))
}

/// Width and height of a PNG, GIF or JPEG image; `None` when the bytes are none of these.
pub(super) fn image_size(bytes: &[u8]) -> Option<(u32, u32)> {
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
