//! Files through the control API: how much is stored, one file's record and bytes (so a test can check that an
//! upload arrived intact), and a user sending a file to a bot, the request body being the file's bytes.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{Path, Query, State},
    http::{
        StatusCode,
        header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS},
    },
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Answer, ControlError, UserRef, bad, find,
    messages::{Sent, deliver, detected, resolve_chat},
};
use crate::{
    types::Message,
    world::{FileKind, MediaMeta, Refusal, World, unix_now},
};

/// The routes of this topic.
pub(super) fn routes() -> Router<Arc<World>> {
    Router::new()
        .route("/files", get(usage))
        .route("/files/{file_id}", get(record))
        .route("/files/{file_id}/content", get(content))
        .route("/bots/{bot}/files", post(user_file))
}

async fn usage(State(world): State<Arc<World>>) -> Json<Value> {
    let usage = world.files.usage();
    Json(json!({
        "files": usage.files,
        "bytes": usage.bytes,
        "file_limit": world.files.file_limit,
        "storage_limit": world.files.storage_limit,
    }))
}

fn not_found(file_id: &str) -> ControlError {
    ControlError(StatusCode::NOT_FOUND, format!("no file {file_id}"))
}

async fn record(State(world): State<Arc<World>>, Path(file_id): Path<String>) -> Answer {
    let (info, _) = world.files.inspect(&file_id).ok_or_else(|| not_found(&file_id))?;
    Ok(Json(serde_json::to_value(info.stored()).unwrap_or_default()))
}

/// The file's bytes as they were uploaded. A page the playground links to must not run in the emulator's origin: a
/// user's `.html` document is served sandboxed, with its type as given and never sniffed.
async fn content(State(world): State<Arc<World>>, Path(file_id): Path<String>) -> Result<Response, ControlError> {
    let (info, bytes) = world.files.inspect(&file_id).ok_or_else(|| not_found(&file_id))?;
    let bytes = bytes.ok_or_else(|| {
        ControlError(StatusCode::NOT_FOUND, format!("file {file_id} was sent by URL: the emulator has no bytes for it"))
    })?;
    let mime_type = info.mime_type.unwrap_or_else(|| "application/octet-stream".into());
    let headers = [
        (CONTENT_TYPE, mime_type.as_str()),
        (CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'; img-src 'self'; media-src 'self'"),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    Ok((StatusCode::OK, headers, Body::from(bytes)).into_response())
}

/// Who sends which file where: the query string of `POST /control/bots/{bot}/files`.
#[derive(Deserialize)]
struct FileQuery {
    from: i64,
    /// `document` unless given.
    kind: Option<String>,
    file_name: Option<String>,
    mime_type: Option<String>,
    caption: Option<String>,
    /// The caption's formatting (a JSON array of message entities); else the entities Telegram detects (links,
    /// mentions).
    caption_entities: Option<String>,
    /// A group the user writes in (known from an earlier message); the private chat unless given.
    chat_id: Option<i64>,
    duration: Option<u32>,
    width: Option<u32>,
    height: Option<u32>,
    emoji: Option<String>,
}

/// A user sends the request body as a file (a `message` update with the file's field set).
async fn user_file(
    State(world): State<Arc<World>>,
    Path(bot): Path<String>,
    Query(q): Query<FileQuery>,
    bytes: Bytes,
) -> Answer {
    let bot = find(&world, &bot)?;
    let user = UserRef::Id(q.from).resolve(&world)?;
    let chat = resolve_chat(&world, &user, None, q.chat_id)?;
    let kind_name = q.kind.as_deref().unwrap_or("document");
    let kind = FileKind::parse(kind_name).ok_or_else(|| {
        let names: Vec<&str> = FileKind::ALL.iter().map(|k| k.name()).collect();
        bad(format!("unknown kind {kind_name:?}: one of {}", names.join(", ")))
    })?;
    let meta = MediaMeta {
        width: q.width.unwrap_or(0),
        height: q.height.unwrap_or(0),
        duration: q.duration.unwrap_or(0),
        length: q.width.unwrap_or(0),
        emoji: q.emoji,
        ..MediaMeta::default()
    };
    let file = world.files.prepare(kind, q.file_name, q.mime_type, bytes, meta).map_err(|refusal| match refusal {
        Refusal::Empty => bad("the request body is the file's bytes, and it is empty"),
        Refusal::NotAnImage => bad("a photo must be a PNG, GIF or JPEG image"),
        Refusal::Store(error) => ControlError(StatusCode::PAYLOAD_TOO_LARGE, error.to_string()),
    })?;
    let info = world
        .files
        .add(bot.id, file)
        .map_err(|error| ControlError(StatusCode::PAYLOAD_TOO_LARGE, error.to_string()))?;
    let caption = q.caption.filter(|c| !c.is_empty());
    let given = match q.caption_entities.as_deref() {
        Some(json) => Some(
            serde_json::from_str::<Vec<crate::types::MessageEntity>>(json)
                .map_err(|e| bad(format!("caption_entities is not a JSON array of entities: {e}")))?,
        ),
        None => None,
    };
    let mut message = Message {
        from: Some(user),
        chat: chat.clone(),
        date: unix_now(),
        caption_entities: given.or_else(|| caption.as_deref().and_then(detected)),
        caption,
        ..Message::default()
    };
    info.attach_to(&mut message);
    let sent = {
        let mut st = bot.state.lock();
        let (message_id, update_id) = deliver(&world, &mut st, message, "message");
        Sent { file_id: Some(info.file_id), ..Sent::message(chat.id, message_id, update_id) }
    };
    bot.updates.notify_waiters();
    Ok(Json(serde_json::to_value(sent).unwrap_or_default()))
}
