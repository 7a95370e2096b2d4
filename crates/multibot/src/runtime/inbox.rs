//! The durable inbox of a bot (`INBOX=database`). [`Inbox::store`] commits a getUpdates batch to the `inbox`
//! table before the next poll confirms it, so the offset can move past everything stored: a slow chat no longer
//! limits what the bot sees. [`Inbox::store_one`] commits one webhook delivery before it is answered 200.
//! [`Inbox::resume`] gives the updates left pending by the last run, to handle
//! before new ones. A finished update is reported to [`Inbox::done`]; a background writer marks them done in
//! batches (retrying while the database is down), tells each reporter once its update is written, and prunes old
//! done rows.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use serde_json::value::RawValue;
use teloxide_core::types::Update;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;
use tracing::warn;

use super::sequencer::order_key;
use crate::{
    storage::{InboxUpdate, Storage, StorageError, now},
    telegram::decode_update,
};

/// Done rows are kept this long, so that an update Telegram delivers again (its confirmation was lost in a
/// crash, or a webhook's 200 was lost on the way) is recognised and not handled twice. A polling bot's rows go
/// sooner: once a poll has confirmed them ([`Inbox::confirmed`]), Telegram never sends them again.
const DONE_KEPT: Duration = Duration::from_secs(3600);
/// How often a writer that marked rows done prunes (an idle bot's writer does not).
const PRUNE_EVERY: Duration = Duration::from_secs(5);
/// How long the writer waits before writing again after the database failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Most pending updates resumed at start.
const RESUME_LIMIT: u32 = 100_000;

/// What the writer is told.
enum Message {
    /// An update was handled; the sender is told once it is marked done.
    Done(i64, oneshot::Sender<()>),
    /// Write what is queued, answer, and stop.
    Close(oneshot::Sender<()>),
}

/// One bot's inbox in the database.
pub(crate) struct Inbox {
    storage: Storage,
    bot_id: String,
    writer: mpsc::UnboundedSender<Message>,
    /// The offset the last successful poll sent: every update below it is confirmed (0 before the first).
    confirmed: Arc<AtomicI64>,
}

impl Inbox {
    /// Opens a bot's inbox and starts its writer on `tasks`.
    pub(crate) fn start(storage: Storage, bot_id: &str, tasks: &TaskTracker) -> Inbox {
        let (writer, messages) = mpsc::unbounded_channel();
        let confirmed = Arc::new(AtomicI64::new(0));
        tasks.spawn(write_done(storage.clone(), bot_id.to_owned(), messages, confirmed.clone()));
        Inbox { storage, bot_id: bot_id.to_owned(), writer, confirmed }
    }

    /// A poll with `offset` succeeded: Telegram forgets every update below it, so their done rows can go.
    pub(crate) fn confirmed(&self, offset: i64) {
        self.confirmed.fetch_max(offset, Ordering::Relaxed);
    }

    /// The updates the last run left pending, in update order.
    pub(crate) async fn resume(&self) -> Result<Vec<Update>, StorageError> {
        let pending = self.storage.inbox().pending(&self.bot_id, RESUME_LIMIT).await?;
        Ok(pending.into_iter().filter_map(|row| decode(row.update_id, &row.payload)).collect())
    }

    /// Stores a getUpdates batch; returns the updates not stored before (to handle) and the offset that confirms
    /// the whole batch (none for an empty batch).
    pub(crate) async fn store(&self, batch: Vec<Box<RawValue>>) -> Result<(Vec<Update>, Option<i64>), StorageError> {
        #[derive(serde::Deserialize)]
        struct Id {
            update_id: i64,
        }
        let mut next = None;
        let mut updates = Vec::with_capacity(batch.len());
        let mut rows = Vec::with_capacity(batch.len());
        for raw in batch {
            let Ok(Id { update_id: id }) = serde_json::from_str(raw.get()) else { continue };
            next = next.max(Some(id + 1));
            // One that does not parse cannot be handled; the offset confirms it with the others.
            let Some(update) = decode(id, raw.get()) else { continue };
            rows.push(InboxUpdate { update_id: id, chat_key: order_key(&update), payload: raw.get().to_owned() });
            updates.push(update);
        }
        if rows.is_empty() {
            return Ok((Vec::new(), next));
        }
        let new: HashSet<i64> = self.storage.inbox().insert(&self.bot_id, &rows, now()).await?.into_iter().collect();
        updates.retain(|u| new.contains(&i64::from(u.id.0)));
        Ok((updates, next))
    }

    /// Stores one webhook delivery (`payload`, the request's body, decoded as `update`); whether it is new (a
    /// re-delivery of a stored update is not).
    pub(crate) async fn store_one(&self, update: &Update, payload: &str) -> Result<bool, StorageError> {
        let id = i64::from(update.id.0);
        let row = InboxUpdate { update_id: id, chat_key: order_key(update), payload: payload.to_owned() };
        let new = self.storage.inbox().insert(&self.bot_id, std::slice::from_ref(&row), now()).await?;
        Ok(new.contains(&id))
    }

    /// Reports an update handled; the writer marks it done, and the receiver resolves then (or with an error if
    /// the writer stopped without writing it).
    pub(crate) fn done(&self, id: i64) -> oneshot::Receiver<()> {
        let (written, receiver) = oneshot::channel();
        let _ = self.writer.send(Message::Done(id, written));
        receiver
    }

    /// Writes the updates reported done so far (one try) and stops the writer.
    pub(crate) async fn close(&self) {
        let (answer, written) = oneshot::channel();
        if self.writer.send(Message::Close(answer)).is_ok() {
            let _ = written.await;
        }
    }
}

fn decode(id: i64, payload: &str) -> Option<Update> {
    match decode_update(payload.as_bytes()) {
        Ok(update) => Some(update),
        Err(e) => {
            warn!(update_id = id, error = %e, "an update that does not parse was skipped");
            None
        }
    }
}

/// Marks reported updates done, as many per transaction as arrived meanwhile, until told to close.
async fn write_done(
    storage: Storage,
    bot_id: String,
    mut messages: mpsc::UnboundedReceiver<Message>,
    confirmed: Arc<AtomicI64>,
) {
    let mut pruned = tokio::time::Instant::now();
    let mut done = Done::default();
    loop {
        let mut closing = None;
        if done.ids.is_empty() {
            match messages.recv().await {
                Some(message) => done.take(message, &mut closing),
                None => return,
            }
        }
        while let Ok(message) = messages.try_recv() {
            done.take(message, &mut closing);
        }
        if !done.ids.is_empty() {
            match storage.inbox().mark_done(&bot_id, &done.ids, now()).await {
                Ok(()) => done.written(),
                // Kept, and written with the next ones; a stop with the database down leaves them pending.
                Err(e) if closing.is_none() => {
                    warn!(%bot_id, error = %e, "could not mark handled updates done; retrying");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
                Err(e) => warn!(%bot_id, error = %e, "could not mark handled updates done; they run again at start"),
            }
        }
        if let Some(answer) = closing {
            let _ = answer.send(());
            return;
        }
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = tokio::time::Instant::now();
            let before = now() - chrono::Duration::from_std(DONE_KEPT).unwrap_or_default();
            let below = Some(confirmed.load(Ordering::Relaxed)).filter(|&offset| offset > 0);
            if let Err(e) = storage.inbox().prune(&bot_id, before, below).await {
                warn!(%bot_id, error = %e, "could not prune the inbox");
            }
        }
    }
}

/// Updates reported done and not written yet, with whom to tell once they are.
#[derive(Default)]
struct Done {
    ids: Vec<i64>,
    waiting: Vec<oneshot::Sender<()>>,
}

impl Done {
    fn take(&mut self, message: Message, closing: &mut Option<oneshot::Sender<()>>) {
        match message {
            Message::Done(id, written) => {
                self.ids.push(id);
                self.waiting.push(written);
            }
            Message::Close(answer) => *closing = Some(answer),
        }
    }

    fn written(&mut self) {
        self.ids.clear();
        for written in self.waiting.drain(..) {
            let _ = written.send(());
        }
    }
}
