//! Albums and media edits: [`BotApi::send_media_group`] sends 2-10 photos, videos, documents or audio files as one
//! album, and [`BotApi::edit_message_media`] replaces a message's photo, video, document, audio or animation.
//! Each item is an [`InputFile`] like any file send: uploads go out as parts of one multipart form, named in the
//! `media` JSON as `attach://<part>`.

use serde_json::{Value, json};
use teloxide_core::types::{ChatId, InlineKeyboardMarkup, Message, MessageId};

use super::{
    ApiCallError, BotApi, FileKind, InputFile,
    files::{check, form},
};

/// One photo, video, document or audio file of an album, or the new media of an edited message.
#[derive(Debug, Clone)]
pub struct MediaItem {
    /// What it is: a photo, a video, a document or an audio file (an animation only in an edit).
    pub kind: FileKind,
    /// The file.
    pub file: InputFile,
    /// Its caption, if any.
    pub caption: Option<String>,
}

impl MediaItem {
    /// An item without a caption.
    pub fn new(kind: FileKind, file: InputFile) -> MediaItem {
        MediaItem { kind, file, caption: None }
    }

    /// Sets the caption.
    pub fn caption(mut self, caption: impl Into<String>) -> MediaItem {
        self.caption = Some(caption.into());
        self
    }
}

/// Form parts to upload, by part name.
type Uploads = Vec<(String, InputFile)>;

/// The `InputMedia` JSON of `items`, and the uploads it names as `attach://file<n>`.
fn input_media(items: Vec<MediaItem>) -> Result<(Vec<Value>, Uploads), ApiCallError> {
    let mut media = Vec::new();
    let mut uploads = Vec::new();
    for (n, item) in items.into_iter().enumerate() {
        let kind = match item.kind {
            FileKind::Photo => "photo",
            FileKind::Video => "video",
            FileKind::Document => "document",
            FileKind::Audio => "audio",
            FileKind::Animation => "animation",
            other => return Err(ApiCallError::File(format!("{other:?} cannot be part of an album or a media edit"))),
        };
        let reference = match item.file.text() {
            Some(id_or_url) => id_or_url,
            None => {
                let part = format!("file{n}");
                uploads.push((part.clone(), item.file));
                format!("attach://{part}")
            }
        };
        let mut entry = json!({ "type": kind, "media": reference });
        if let Some(caption) = item.caption {
            entry["caption"] = json!(caption);
        }
        media.push(entry);
    }
    Ok((media, uploads))
}

fn text_fields(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect()
}

impl BotApi {
    /// Sends `items` (2-10) to `chat` as one album; gives the messages it became. Uploads that are too big or
    /// unreadable are refused before anything is sent.
    pub async fn send_media_group(&self, chat: ChatId, items: Vec<MediaItem>) -> Result<Vec<Message>, ApiCallError> {
        let (media, uploads) = input_media(items)?;
        check(&uploads).await?;
        let fields = text_fields(&[("chat_id", chat.0.to_string()), ("media", Value::Array(media).to_string())]);
        self.request_form("sendMediaGroup", Some(chat.0), form(fields, uploads)).await
    }

    /// Replaces the media of message `message_id` in `chat` with `item` (and its keyboard with `keyboard`).
    pub async fn edit_message_media(
        &self,
        chat: ChatId,
        message_id: MessageId,
        item: MediaItem,
        keyboard: Option<InlineKeyboardMarkup>,
    ) -> Result<(), ApiCallError> {
        let (mut media, uploads) = input_media(vec![item])?;
        check(&uploads).await?;
        let mut fields = vec![
            ("chat_id", chat.0.to_string()),
            ("message_id", message_id.0.to_string()),
            ("media", media.remove(0).to_string()),
        ];
        if let Some(keyboard) = keyboard {
            fields.push((
                "reply_markup",
                serde_json::to_string(&keyboard).map_err(|e| ApiCallError::Decode(e.to_string()))?,
            ));
        }
        // Telegram answers the edited message, or `true` for an inline message: either is fine.
        let _: Value = self.request_form("editMessageMedia", Some(chat.0), form(text_fields(&fields), uploads)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_named_as_attachments_and_ids_pass_through() {
        let items = vec![
            MediaItem::new(FileKind::Photo, InputFile::bytes("a.png", vec![1, 2])).caption("first"),
            MediaItem::new(FileKind::Video, InputFile::Id("BAAD".to_owned())),
        ];
        let (media, uploads) = input_media(items).unwrap();
        assert_eq!(media[0], json!({"type": "photo", "media": "attach://file0", "caption": "first"}));
        assert_eq!(media[1], json!({"type": "video", "media": "BAAD"}));
        assert_eq!(uploads.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(), ["file0"]);
        // Bad input: a sticker cannot be part of an album; refused before anything is sent.
        let sticker = vec![MediaItem::new(FileKind::Sticker, InputFile::Id("CAAC".to_owned()))];
        let error = input_media(sticker).unwrap_err().to_string();
        assert_eq!(error, "Sticker cannot be part of an album or a media edit");
    }
}
