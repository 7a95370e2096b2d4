//! Broadcasts: one message to every user of a bot, paced, resumable and observable. The job and its deliveries
//! live in the database ([`crate::storage::BroadcastRepository`]); [`Broadcasts`] runs the running ones whose bot
//! runs in this process (with replicas: the bots whose leases this replica holds), one runner task each, and
//! carries out the admin's start, pause, resume and cancel.
//!
//! A runner claims [`IN_FLIGHT`] pending deliveries at a time (the claim marks them `sending`), sends them through the
//! bot's own client in its bulk lane ([`crate::telegram::BotApi::bulk`]: flood control shared with the bot's replies,
//! which keep a fifth of the window), and records each outcome with the counters in one transaction: sent, blocked
//! (403; the user is marked blocked in `bot_users`) or failed (any other error). A 429 puts the deliveries it refused
//! back to pending and the runner waits its `retry_after`. A send is never retried after its request may have reached
//! Telegram (a timeout, a lost answer), and a delivery a crash left `sending` is marked failed (interrupted) when the
//! broadcast resumes: no user ever gets the message twice, and a crash leaves at most [`IN_FLIGHT`] users uncertain
//! (each got the message once or not at all).
//!
//! A media broadcast ([`BroadcastMessage::Media`], from the admin bot) goes to its first user alone, as an upload of
//! the file's bytes kept in the database; the file id Telegram answers with is valid for this bot only, so it is
//! stored (the bytes are dropped) and every other user gets that id. An upload that fails leaves the next user to
//! upload again; [`UPLOAD_ATTEMPTS`] failed uploads in a row pause the broadcast and tell the admins. A crash
//! between the upload and storing its file id leaves that delivery interrupted, as any other, and the next one
//! uploads again.
//!
//! The service reads the table every [`POLL`] (and at once when this process starts or resumes a broadcast), so a
//! broadcast started from the CLI, or moved to this replica with its bot, is picked up within seconds; a runner
//! reads its row every [`RECHECK`] and stops when it is no longer running (a pause or cancel from the CLI): the
//! sends still waiting for their turn in flood control are dropped (back to pending), the ones on the way finish.
//!
//! - `runner`: one broadcast's runner, from its first claim to done (or paused, cancelled, moved away).

use std::{collections::HashMap, fmt::Write as _, sync::Arc, time::Duration};

use parking_lot::Mutex;
use serde_json::json;
use teloxide_core::types::Message;
use tokio::sync::Notify;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::warn;

mod runner;

use runner::run_one;

use super::BotManager;
use crate::{
    config::BotId,
    plugins::Notifier,
    storage::{
        Broadcast, BroadcastMessage, BroadcastState, NewBroadcast, Recorder, Storage, StorageError, Transition, events,
        now,
    },
    telegram::FileKind,
};

/// Deliveries a runner claims and sends at once: enough to keep 30 a second going over a link with 100 ms of
/// latency, and the most users a crash can leave uncertain.
pub const IN_FLIGHT: usize = 8;
/// How often the service looks for running broadcasts it does not run yet.
pub const POLL: Duration = Duration::from_secs(2);
/// How often a runner reads its broadcast's row, to see a pause or cancel made elsewhere (the CLI).
pub const RECHECK: Duration = Duration::from_millis(250);
/// A database error's pause before trying again.
const RETRY: Duration = Duration::from_secs(1);
/// The window of Telegram's limit of about 30 messages a second per bot.
const PACE_WINDOW: Duration = Duration::from_secs(1);
/// Failed uploads of a media broadcast's file in a row (each to another user) that pause it: the file itself is
/// likely refused.
pub const UPLOAD_ATTEMPTS: u32 = 3;

/// What an admin does to a broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastAction {
    /// Stop sending until resumed.
    Pause,
    /// Go on sending.
    Resume,
    /// Stop for good.
    Cancel,
}

impl BroadcastAction {
    /// `pause`, `resume` or `cancel`.
    pub fn as_str(self) -> &'static str {
        match self {
            BroadcastAction::Pause => "pause",
            BroadcastAction::Resume => "resume",
            BroadcastAction::Cancel => "cancel",
        }
    }

    /// The move it makes.
    fn transition(self) -> Transition {
        match self {
            BroadcastAction::Pause => Transition::PAUSE,
            BroadcastAction::Resume => Transition::RESUME,
            BroadcastAction::Cancel => Transition::CANCEL,
        }
    }
}

/// Why a broadcast could not be started or changed.
#[derive(Debug, thiserror::Error)]
pub enum BroadcastError {
    /// No broadcast with this id.
    #[error("no broadcast #{0}")]
    Unknown(i64),
    /// It is not in a state the action applies to.
    #[error("broadcast #{0} is {1}: cannot {2} it")]
    Refused(i64, &'static str, &'static str),
    /// The text is longer than one Telegram message (4096 characters).
    #[error("the text has {0} characters; a broadcast sends one message, at most 4096")]
    TooLong(usize),
    /// The caption is longer than Telegram takes (1024 characters).
    #[error("the caption has {0} characters; Telegram takes at most 1024")]
    CaptionTooLong(usize),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Starts a broadcast in the database (the running fleet picks it up) and records the event.
pub async fn start(
    storage: &Storage,
    recorder: Option<&Recorder>,
    new: NewBroadcast,
) -> Result<Broadcast, BroadcastError> {
    if let BroadcastMessage::Text { text, .. } = &new.message
        && text.encode_utf16().count() > 4096
    {
        return Err(BroadcastError::TooLong(text.encode_utf16().count()));
    }
    if let BroadcastMessage::Media { caption: Some(caption), .. } = &new.message
        && caption.encode_utf16().count() > 1024
    {
        return Err(BroadcastError::CaptionTooLong(caption.encode_utf16().count()));
    }
    let broadcast = storage.broadcasts().create(&new, now()).await?;
    let detail = json!({
        "audience": broadcast.total,
        "active_days": broadcast.active_days,
        "message": broadcast.message.summary(),
    });
    audit(storage, recorder, &broadcast.bot_id, broadcast.id, new.created_by, "start", detail).await;
    Ok(broadcast)
}

/// Pauses, resumes or cancels a broadcast in the database and records the event; the runner sees it within
/// [`RECHECK`].
pub async fn control(
    storage: &Storage,
    recorder: Option<&Recorder>,
    id: i64,
    action: BroadcastAction,
    actor: Option<i64>,
) -> Result<Broadcast, BroadcastError> {
    let repo = storage.broadcasts();
    if !repo.transition(id, action.transition(), now()).await? {
        let current = repo.get(id).await?.ok_or(BroadcastError::Unknown(id))?;
        return Err(BroadcastError::Refused(id, current.state.as_str(), action.as_str()));
    }
    let broadcast = repo.get(id).await?.ok_or(BroadcastError::Unknown(id))?;
    let detail = json!({ "sent": broadcast.sent, "remaining": broadcast.remaining() });
    audit(storage, recorder, &broadcast.bot_id, id, actor, action.as_str(), detail).await;
    Ok(broadcast)
}

/// Records a broadcast event: through the recorder in a running fleet, straight to the table from the CLI.
async fn audit(
    storage: &Storage,
    recorder: Option<&Recorder>,
    bot_id: &str,
    id: i64,
    actor: Option<i64>,
    action: &str,
    detail: serde_json::Value,
) {
    match recorder {
        Some(recorder) => events::broadcast(recorder, bot_id, id, actor, action, detail),
        None => {
            let event = crate::storage::NewEvent {
                bot_id: Some(bot_id.to_owned()),
                kind: crate::storage::EventKind::Broadcast,
                actor_user_id: actor,
                detail: json!({"action": action, "broadcast_id": id, "detail": detail}),
                at: now(),
            };
            if let Err(e) = storage.events().append(&event).await {
                warn!(broadcast_id = id, error = %e, "could not record the broadcast event");
            }
        }
    }
}

/// A broadcast in a few lines: what it sends, its counters, remaining, and with `rate` (deliveries a second) the
/// ETA.
pub fn describe(b: &Broadcast, rate: Option<f64>) -> String {
    let header = format!("📣 Broadcast #{} of {} ({})", b.id, b.bot_id, b.state.as_str());
    format!("{header}\nMessage: {}\n{}", b.message.summary(), progress(b, rate))
}

/// A broadcast's counters, remaining, and with `rate` (deliveries a second) the ETA.
pub fn progress(b: &Broadcast, rate: Option<f64>) -> String {
    let mut text = format!("Sent: {}  Failed: {}  Blocked: {}\n", b.sent, b.failed, b.blocked);
    let _ = write!(text, "Remaining: {} of {}", b.remaining(), b.total);
    if let Some(rate) = rate.filter(|r| *r > 0.0 && b.state == BroadcastState::Running) {
        let eta = Duration::from_secs_f64(b.remaining() as f64 / rate);
        let _ = write!(text, "\nRate: {rate:.1}/s  ETA: {}", span(eta));
    }
    text
}

/// `2h 34m`, `5m 3s`, `42s`.
fn span(time: Duration) -> String {
    let secs = time.as_secs();
    match (secs / 3600, secs / 60 % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

/// The average rate of a broadcast since it was created, deliveries a second.
pub fn average_rate(b: &Broadcast) -> Option<f64> {
    let elapsed = (now() - b.created_at).to_std().ok()?.as_secs_f64();
    let done = (b.sent + b.failed + b.blocked) as f64;
    (elapsed > 0.5 && done > 0.0).then(|| done / elapsed)
}

/// Runs this process's share of the running broadcasts. Cheap to clone.
#[derive(Clone)]
pub struct Broadcasts {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    manager: BotManager,
    recorder: Recorder,
    notifier: Notifier,
    /// The runner of each broadcast running here, by id.
    runners: Mutex<HashMap<i64, CancellationToken>>,
    wake: Notify,
    tasks: TaskTracker,
    in_flight: usize,
}

impl Broadcasts {
    /// A service for the bots `manager` runs.
    pub fn new(storage: Storage, manager: BotManager, recorder: Recorder, notifier: Notifier) -> Broadcasts {
        Broadcasts::with_in_flight(storage, manager, recorder, notifier, IN_FLIGHT)
    }

    /// [`Broadcasts::new`] sending `in_flight` deliveries at once (a benchmark without flood control wants more).
    pub fn with_in_flight(
        storage: Storage,
        manager: BotManager,
        recorder: Recorder,
        notifier: Notifier,
        in_flight: usize,
    ) -> Broadcasts {
        let inner = Inner {
            storage,
            manager,
            recorder,
            notifier,
            runners: Mutex::default(),
            wake: Notify::new(),
            tasks: TaskTracker::new(),
            in_flight: in_flight.max(1),
        };
        Broadcasts { inner: Arc::new(inner) }
    }

    /// The database the broadcasts live in.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// Starts a broadcast; it begins sending at once if its bot runs here.
    pub async fn start(&self, new: NewBroadcast) -> Result<Broadcast, BroadcastError> {
        let broadcast = start(&self.inner.storage, Some(&self.inner.recorder), new).await?;
        self.inner.wake.notify_one();
        Ok(broadcast)
    }

    /// Pauses, resumes or cancels a broadcast; a runner here stops at once (after the sends under way).
    pub async fn control(
        &self,
        id: i64,
        action: BroadcastAction,
        actor: Option<i64>,
    ) -> Result<Broadcast, BroadcastError> {
        let broadcast = control(&self.inner.storage, Some(&self.inner.recorder), id, action, actor).await?;
        match action {
            BroadcastAction::Resume => self.inner.wake.notify_one(),
            BroadcastAction::Pause | BroadcastAction::Cancel => {
                if let Some(token) = self.inner.runners.lock().get(&id) {
                    token.cancel();
                }
            }
        }
        Ok(broadcast)
    }

    /// Runs the broadcasts of the bots running here until `shutdown`, then stops their runners (each finishes the
    /// sends under way and records them) and waits for them.
    pub async fn run(self, shutdown: CancellationToken) {
        let inner = &self.inner;
        loop {
            if let Err(e) = self.spawn_runners(&shutdown).await {
                warn!(error = %e, "cannot read the running broadcasts");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = inner.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
        for token in inner.runners.lock().values() {
            token.cancel();
        }
        inner.tasks.close();
        inner.tasks.wait().await;
    }

    /// Starts a runner for each running broadcast whose bot runs here and that has none.
    async fn spawn_runners(&self, shutdown: &CancellationToken) -> Result<(), StorageError> {
        for broadcast in self.inner.storage.broadcasts().running().await? {
            let Ok(bot) = BotId::parse(&broadcast.bot_id) else { continue };
            if self.inner.runners.lock().contains_key(&broadcast.id) || self.inner.manager.api_of(&bot).await.is_none()
            {
                continue;
            }
            let token = shutdown.child_token();
            self.inner.runners.lock().insert(broadcast.id, token.clone());
            let inner = self.inner.clone();
            self.inner.tasks.spawn(async move {
                let id = broadcast.id;
                run_one(&inner, broadcast, bot, &token).await;
                inner.runners.lock().remove(&id);
            });
        }
        Ok(())
    }
}

/// The file of a message that a media broadcast can send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMedia {
    /// What it is sent as.
    pub kind: FileKind,
    /// Its file id (for a photo, its largest size's).
    pub file_id: String,
    /// Its size in bytes, when Telegram tells.
    pub size: u64,
    /// A name to upload it under.
    pub file_name: String,
}

/// The photo, video, animation, document, audio or voice note of `message`; `None` for any other message.
pub fn media_of(message: &Message) -> Option<MessageMedia> {
    let media = |kind: FileKind, file: &teloxide_core::types::FileMeta, name: Option<&str>, extension: &str| {
        let file_name =
            name.filter(|n| !n.is_empty()).map_or_else(|| format!("{}.{extension}", kind.name()), str::to_owned);
        MessageMedia { kind, file_id: file.id.0.clone(), size: u64::from(file.size), file_name }
    };
    if let Some(sizes) = message.photo() {
        let largest = sizes.iter().max_by_key(|s| (u64::from(s.width) * u64::from(s.height), s.file.size))?;
        return Some(media(FileKind::Photo, &largest.file, None, "jpg"));
    }
    if let Some(a) = message.animation() {
        return Some(media(FileKind::Animation, &a.file, a.file_name.as_deref(), "mp4"));
    }
    if let Some(v) = message.video() {
        return Some(media(FileKind::Video, &v.file, v.file_name.as_deref(), "mp4"));
    }
    if let Some(d) = message.document() {
        return Some(media(FileKind::Document, &d.file, d.file_name.as_deref(), "bin"));
    }
    if let Some(a) = message.audio() {
        return Some(media(FileKind::Audio, &a.file, a.file_name.as_deref(), "mp3"));
    }
    message.voice().map(|v| media(FileKind::Voice, &v.file, None, "ogg"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(media: serde_json::Value) -> Message {
        let mut json = json!({
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": 7, "type": "private", "first_name": "A"},
            "from": {"id": 7, "is_bot": false, "first_name": "A"},
        });
        json.as_object_mut().unwrap().extend(media.as_object().unwrap().clone());
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_photos_largest_size_is_the_one_broadcast_and_stickers_are_not_media() {
        let size = |id: &str, side: u32, bytes: u32| json!({"file_id": id, "file_unique_id": id, "width": side, "height": side, "file_size": bytes});
        let photo = message(json!({"photo": [size("s", 90, 1_000), size("x", 1280, 90_000), size("m", 320, 9_000)]}));
        let media = media_of(&photo).unwrap();
        assert_eq!((media.kind, media.file_id.as_str(), media.size), (FileKind::Photo, "x", 90_000));
        assert_eq!(media.file_name, "photo.jpg");
        let document = message(json!({"document": {"file_id": "d", "file_unique_id": "d", "file_name": "menu.pdf"}}));
        let media = media_of(&document).unwrap();
        assert_eq!((media.kind, media.file_name.as_str()), (FileKind::Document, "menu.pdf"));
        let sticker = json!({"sticker": {"file_id": "k", "file_unique_id": "k", "width": 512, "height": 512,
            "is_animated": false, "is_video": false, "type": "regular"}});
        assert_eq!(media_of(&message(sticker)), None);
    }
}
