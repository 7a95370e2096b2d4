//! Files in messages (`PhotoSize`, `Document`, `Audio`, `Video`, `Animation`, `Voice`, `VideoNote`, `Sticker`),
//! the `File` that `getFile` returns, and `StoredFile`, the control API's view of a stored file.

use serde::{Deserialize, Serialize};

/// One size of a photo (`PhotoSize`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhotoSize {
    /// Identifier to send the file again.
    pub file_id: String,
    /// Identifier stable across bots.
    pub file_unique_id: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

/// A general file (`Document`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Identifier to send the file again.
    pub file_id: String,
    /// Identifier stable across bots.
    pub file_unique_id: String,
    /// Original file name, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// MIME type, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

/// A music file (`Audio`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Audio {
    /// Identifier to send the file again.
    pub file_id: String,
    /// Identifier stable across bots.
    pub file_unique_id: String,
    /// Duration in seconds, as the sender gave it.
    pub duration: u32,
    /// Performer, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performer: Option<String>,
    /// Title, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Original file name, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// MIME type, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

/// A video file (`Video`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Video {
    /// Identifier to send the file again.
    pub file_id: String,
    /// Identifier stable across bots.
    pub file_unique_id: String,
    /// Width, as the sender gave it.
    pub width: u32,
    /// Height, as the sender gave it.
    pub height: u32,
    /// Duration in seconds, as the sender gave it.
    pub duration: u32,
    /// Original file name, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// MIME type, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

/// A GIF or a silent video (`Animation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Animation {
    /// Identifier to send the file again.
    pub file_id: String,
    /// Identifier stable across bots.
    pub file_unique_id: String,
    /// Width, as the sender gave it.
    pub width: u32,
    /// Height, as the sender gave it.
    pub height: u32,
    /// Duration in seconds, as the sender gave it.
    pub duration: u32,
    /// Original file name, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// MIME type, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

/// A voice note (`Voice`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Voice {
    /// Identifier to send the file again.
    pub file_id: String,
    /// Identifier stable across bots.
    pub file_unique_id: String,
    /// Duration in seconds, as the sender gave it.
    pub duration: u32,
    /// MIME type, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

/// A round video message (`VideoNote`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoNote {
    /// Identifier to send the file again.
    pub file_id: String,
    /// Identifier stable across bots.
    pub file_unique_id: String,
    /// Diameter, as the sender gave it.
    pub length: u32,
    /// Duration in seconds, as the sender gave it.
    pub duration: u32,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

/// A sticker (`Sticker`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sticker {
    /// Identifier to send the file again.
    pub file_id: String,
    /// Identifier stable across bots.
    pub file_unique_id: String,
    /// `regular`, `mask` or `custom_emoji`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// True for an animated `.TGS` sticker.
    pub is_animated: bool,
    /// True for a `.WEBM` video sticker.
    pub is_video: bool,
    /// The emoji it stands for, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

/// A file ready to download (`File`, what `getFile` returns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct File {
    /// Identifier to send the file again.
    pub file_id: String,
    /// Identifier stable across bots.
    pub file_unique_id: String,
    /// Size in bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
    /// Path to download it from: `/file/bot<token>/<file_path>`. Absent for a file sent by URL, whose bytes the
    /// emulator never fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_path: Option<String>,
}

/// A stored file as the control API shows it (`GET /control/files/{file_id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFile {
    /// The file id.
    pub file_id: String,
    /// Identifier stable across bots.
    pub file_unique_id: String,
    /// The bot the file id was issued to.
    pub bot_id: i64,
    /// `photo`, `document`, `audio`, `video`, `animation`, `voice`, `video_note` or `sticker`.
    pub kind: String,
    /// Original file name, if known.
    pub file_name: Option<String>,
    /// MIME type, if known.
    pub mime_type: Option<String>,
    /// Size in bytes; `None` for a file sent by URL.
    pub file_size: Option<u64>,
    /// Path on the file endpoint; `None` for a file sent by URL.
    pub file_path: Option<String>,
}
