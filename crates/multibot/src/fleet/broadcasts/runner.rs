//! A broadcast's runner: claims pending deliveries, sends them in the bot's bulk lane, records each outcome, waits
//! out 429s, uploads a media broadcast's file once, and stops when the broadcast is no longer running here.

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use teloxide_core::{
    payloads::{CopyMessage, SendMessage, SendMessageSetters},
    types::{ChatId, MessageEntity, MessageId},
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{BroadcastAction, Inner, PACE_WINDOW, RECHECK, RETRY, UPLOAD_ATTEMPTS, control, media_of, span};
use crate::{
    config::BotId,
    storage::{Broadcast, BroadcastMessage, BroadcastState, DeliveryOutcome, Storage, Transition, events, now},
    telegram::{ApiCallError, BotApi, FileOptions, InputFile, SendOptions},
    telemetry::metrics,
};

/// Sends a broadcast until it is done, paused, cancelled, its bot stops running here, or `stop`.
pub(super) async fn run_one(inner: &Inner, broadcast: Broadcast, bot: BotId, stop: &CancellationToken) {
    let (id, repo) = (broadcast.id, inner.storage.broadcasts());
    info!(bot_id = %bot, broadcast_id = id, remaining = broadcast.remaining(), "broadcast running");
    let recovered = loop {
        match repo.recover(id, now()).await {
            Ok(0) => break 0,
            Ok(n) => {
                warn!(bot_id = %bot, broadcast_id = id, deliveries = n, "deliveries cut off by a crash marked failed (interrupted), not resent");
                metrics::broadcast_deliveries(bot.as_str(), "failed", n);
                break n;
            }
            Err(e) => {
                warn!(broadcast_id = id, error = %e, "cannot recover the broadcast's deliveries");
                if pause(stop, RETRY).await {
                    return;
                }
            }
        }
    };
    // A broadcast that has sent before may have sent in the last second from another process (this one before a
    // restart, or another replica): the bot's flood control here does not know, so its first window waits.
    if broadcast.sent + broadcast.failed + broadcast.blocked + recovered as i64 > 0 && pause(stop, PACE_WINDOW).await {
        return;
    }
    // Stops the sends not under way yet when the broadcast is paused or cancelled (here or from the CLI).
    let halt = stop.child_token();
    let watcher = tokio::spawn(watch(inner.storage.clone(), id, bot.clone(), halt.clone()));
    let mut remaining = broadcast.remaining();
    metrics::broadcast_remaining(bot.as_str(), remaining);
    let mut message = broadcast.message.clone();
    let mut failed_uploads = 0;
    while !halt.is_cancelled() {
        let Some(api) = inner.manager.api_of(&bot).await else { break };
        let api = api.bulk();
        // A file not uploaded yet goes to one user alone: one upload, whose file id the others then get.
        let file = match &message {
            BroadcastMessage::Media { file_id: None, .. } => match repo.upload(id).await {
                Ok(Some(data)) => Some(data),
                Ok(None) => {
                    halt_broadcast(inner, id, &bot, "its file is gone from the database").await;
                    break;
                }
                Err(e) => {
                    warn!(broadcast_id = id, error = %e, "cannot read the file to upload");
                    pause(&halt, RETRY).await;
                    continue;
                }
            },
            _ => None,
        };
        let claimed = if file.is_some() { 1 } else { inner.in_flight as u32 };
        let users = match repo.claim(id, claimed).await {
            Ok(users) => users,
            Err(e) => {
                warn!(broadcast_id = id, error = %e, "cannot claim deliveries");
                pause(&halt, RETRY).await;
                continue;
            }
        };
        if users.is_empty() {
            finish(inner, id, &bot).await;
            break;
        }
        // Each send waits for its turn in the bot's flood control, where a pause or cancel may still stop it; once
        // its request is on the way it is let finish, so that its outcome is known.
        let sends = users.iter().map(|user| {
            let (api, halt, message, file) = (&api, &halt, &message, &file);
            async move {
                tokio::select! {
                    biased;
                    () = halt.cancelled() => None,
                    () = api.pace(*user) => Some(send(api, message, file.as_ref(), *user).await),
                }
            }
        });
        let results = futures_util::future::join_all(sends).await;
        let (mut outcomes, mut refused, mut wait) = (Vec::new(), Vec::new(), None::<u32>);
        let mut uploaded = None;
        for (user, result) in users.iter().zip(results) {
            match result {
                None => refused.push(*user),
                Some(Ok(file_id)) => {
                    uploaded = uploaded.or(file_id);
                    outcomes.push((*user, DeliveryOutcome::Sent));
                }
                Some(Err(e)) if e.code() == Some(429) => {
                    refused.push(*user);
                    wait = wait.max(Some(e.retry_after().unwrap_or(1).max(1)));
                }
                Some(Err(e)) if e.code() == Some(403) => {
                    outcomes.push((*user, DeliveryOutcome::Blocked(e.to_string())));
                }
                Some(Err(e)) => outcomes.push((*user, DeliveryOutcome::Failed(e.to_string()))),
            }
        }
        if let Some(uploaded) = uploaded {
            // Until stored, a restart uploads the file again (to the next user): retry until written.
            while let Err(e) = repo.set_file_id(id, &uploaded).await {
                warn!(broadcast_id = id, error = %e, "cannot store the uploaded file's id; retrying");
                tokio::time::sleep(RETRY).await;
            }
            info!(bot_id = %bot, broadcast_id = id, "broadcast file uploaded; the other users get its file id");
            if let BroadcastMessage::Media { file_id, upload, .. } = &mut message {
                (*file_id, *upload) = (Some(uploaded), None);
            }
        } else if file.is_some() && outcomes.iter().any(|(_, o)| *o == DeliveryOutcome::Sent) {
            warn!(bot_id = %bot, broadcast_id = id, "Telegram's answer to the upload names no file: uploading again");
        }
        let upload_failed = outcomes.iter().find_map(|(_, o)| match o {
            DeliveryOutcome::Failed(e) if file.is_some() => Some(e.clone()),
            _ => None,
        });
        // The outcomes must be written, or a restart would count these users as interrupted: retry until written.
        while let Err(e) = repo.record(id, &outcomes, now()).await {
            warn!(broadcast_id = id, error = %e, "cannot record deliveries; retrying");
            tokio::time::sleep(RETRY).await;
        }
        while let Err(e) = repo.release(id, &refused).await {
            warn!(broadcast_id = id, error = %e, "cannot release deliveries; retrying");
            tokio::time::sleep(RETRY).await;
        }
        for (label, pick) in [("sent", 0), ("blocked", 1), ("failed", 2)] {
            let n = outcomes.iter().filter(|(_, o)| outcome_index(o) == pick).count() as u64;
            if n > 0 {
                metrics::broadcast_deliveries(bot.as_str(), label, n);
            }
        }
        remaining -= outcomes.len() as i64;
        metrics::broadcast_remaining(bot.as_str(), remaining.max(0));
        if let Some(error) = upload_failed {
            failed_uploads += 1;
            warn!(bot_id = %bot, broadcast_id = id, error = %error, "the broadcast's file could not be uploaded");
            if failed_uploads >= UPLOAD_ATTEMPTS {
                let why = format!("{UPLOAD_ATTEMPTS} uploads of its file failed, the last with: {error}");
                halt_broadcast(inner, id, &bot, &why).await;
                break;
            }
        }
        if let Some(seconds) = wait {
            warn!(bot_id = %bot, broadcast_id = id, retry_after = seconds, "Telegram answered 429: waiting");
            if pause(&halt, Duration::from_secs(u64::from(seconds))).await {
                break;
            }
        }
    }
    halt.cancel();
    let _ = watcher.await;
    info!(bot_id = %bot, broadcast_id = id, "broadcast runner stopped");
}

/// Reads a broadcast's row every [`RECHECK`] and cancels `halt` once it is no longer running; sets its remaining
/// gauge. Ends with `halt`.
async fn watch(storage: Storage, id: i64, bot: BotId, halt: CancellationToken) {
    loop {
        if pause(&halt, RECHECK).await {
            return;
        }
        match storage.broadcasts().get(id).await {
            Ok(Some(row)) if row.state == BroadcastState::Running => {
                metrics::broadcast_remaining(bot.as_str(), row.remaining());
            }
            Ok(_) => {
                halt.cancel();
                return;
            }
            Err(e) => warn!(broadcast_id = id, error = %e, "cannot read the broadcast"),
        }
    }
}

fn outcome_index(outcome: &DeliveryOutcome) -> u8 {
    match outcome {
        DeliveryOutcome::Sent => 0,
        DeliveryOutcome::Blocked(_) => 1,
        DeliveryOutcome::Failed(_) => 2,
    }
}

/// Sleeps `for_`; true when `stop` came first.
async fn pause(stop: &CancellationToken, for_: Duration) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(for_) => false,
    }
}

/// Marks a broadcast whose deliveries all have an outcome done; tells the admins.
async fn finish(inner: &Inner, id: i64, bot: &BotId) {
    let repo = inner.storage.broadcasts();
    match repo.transition(id, Transition::FINISH, now()).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            warn!(broadcast_id = id, error = %e, "cannot mark the broadcast done");
            return;
        }
    }
    metrics::broadcast_remaining(bot.as_str(), 0);
    if let Ok(Some(b)) = repo.get(id).await {
        let took = b.finished_at.and_then(|f| (f - b.created_at).to_std().ok()).unwrap_or_default();
        let detail = json!({ "sent": b.sent, "failed": b.failed, "blocked": b.blocked, "seconds": took.as_secs() });
        events::broadcast(&inner.recorder, bot.as_str(), id, None, "done", detail);
        inner.notifier.notify(format!(
            "✅ Broadcast #{id} of {bot} done in {}: {} sent, {} failed, {} blocked",
            span(took),
            b.sent,
            b.failed,
            b.blocked
        ));
    }
}

/// Pauses a broadcast that cannot go on by itself, records it and tells the admins why.
async fn halt_broadcast(inner: &Inner, id: i64, bot: &BotId, why: &str) {
    warn!(bot_id = %bot, broadcast_id = id, why, "broadcast paused");
    if control(&inner.storage, Some(&inner.recorder), id, BroadcastAction::Pause, None).await.is_ok() {
        inner.notifier.notify(format!("⚠️ Broadcast #{id} of {bot} paused: {why}"));
    }
}

/// Sends the broadcast's message to one user; `file` is the media's bytes when it has no file id yet. Returns the
/// file id Telegram gave an upload.
async fn send(
    api: &BotApi,
    message: &BroadcastMessage,
    file: Option<&Bytes>,
    user: i64,
) -> Result<Option<String>, ApiCallError> {
    let decode = |e: serde_json::Error| ApiCallError::Decode(e.to_string());
    match message {
        BroadcastMessage::Text { text, entities: Some(entities), .. } => {
            let entities: Vec<MessageEntity> = serde_json::from_str(entities).map_err(decode)?;
            api.call(&SendMessage::new(ChatId(user), text.clone()).entities(entities)).await.map(|_| None)
        }
        BroadcastMessage::Text { text, parse_mode, entities: None } => {
            let mode = parse_mode.as_deref().map(crate::telegram::parse_mode);
            let options = SendOptions { parse_mode: mode, ..SendOptions::default() };
            api.send_message(ChatId(user), text.clone(), options).await.map(|_| None)
        }
        BroadcastMessage::Copy { from_chat_id, message_id } => {
            let message = MessageId(i32::try_from(*message_id).unwrap_or_default());
            let payload = CopyMessage::new(ChatId(user), ChatId(*from_chat_id), message);
            api.call(&payload).await.map(|_| None)
        }
        BroadcastMessage::Media { kind, caption, caption_entities, file_id, upload } => {
            let input = match (file_id, file) {
                (Some(file_id), _) => InputFile::Id(file_id.clone()),
                (None, Some(data)) => {
                    let name = upload.as_ref().map_or("file", |u| u.name.as_str());
                    InputFile::bytes(name, data.clone())
                }
                (None, None) => return Err(ApiCallError::File("the broadcast's file is missing".to_owned())),
            };
            let entities = caption_entities.as_deref().map(serde_json::from_str).transpose().map_err(decode)?;
            let options = FileOptions {
                caption: caption.clone(),
                parse_mode: Some(None),
                caption_entities: entities,
                reply_markup: None,
            };
            let sent = api.send_file(ChatId(user), *kind, input, options).await?;
            Ok(file_id.is_none().then(|| media_of(&sent).map(|m| m.file_id)).flatten())
        }
    }
}
