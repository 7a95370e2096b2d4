//! The Telegram layer: everything about talking to the Bot API, and nothing about bots, plugins or the fleet.
//!
//! - `api`: [`BotApi`], one bot's Bot API client over the process's shared HTTP client; [`ApiCallError`] and
//!   [`CallFailure`] say how a call failed.
//! - `clients`: the HTTP clients bots share ([`ApiClients`]), over HTTP/1.1 or HTTP/2.
//! - `decode`: lenient update decoding (`decode_update`), and what an update that did not decode still tells.
//! - `files`: files up ([`BotApi::send_file`] from an [`InputFile`]) and down ([`BotApi::download`]); `album`:
//!   albums ([`BotApi::send_media_group`]) and media edits ([`BotApi::edit_message_media`]).
//! - `line`: long polls and JSON calls as streams of a bare HTTP/2 connection (`Line`), where HTTP/2 is spoken.
//! - `flood`: outgoing flood control within Telegram's limits ([`FloodLimits`]).
//! - `raw`: any method by name with JSON parameters ([`BotApi::call_method`]), for scripts.

mod album;
mod api;
mod clients;
mod decode;
mod files;
mod flood;
mod line;
mod raw;

pub use album::MediaItem;
pub(crate) use api::parse_mode;
#[cfg(test)]
pub(crate) use api::read_answer;
pub use api::{ApiCallError, BotApi, CallFailure, Me, SendOptions, Sent};
pub use clients::{ApiClient, ApiClients, BOTS_PER_CONNECTION};
pub(crate) use decode::{decode_update, unknown_type, unreadable_callback};
pub use files::{DOWNLOAD_LIMIT, FileKind, FileOptions, InputFile, OneShot, RemoteFile, UPLOAD_LIMIT};
pub use flood::{BULK_SHARE, FloodLimits, Lane, Limit};
pub(crate) use raw::is_method_name;
