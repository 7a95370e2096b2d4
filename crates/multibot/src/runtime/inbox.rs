//! The durable inbox of a bot (`INBOX=database`). [`Inbox::store`] commits a getUpdates batch to the `inbox`
//! table before the next poll confirms it, so the offset can move past everything stored: a slow chat no longer
//! limits what the bot sees. [`Inbox::store_one`] commits one webhook delivery before it is answered 200.
//! [`Inbox::resume`] gives the updates left pending by the last run, to handle
//! before new ones. A finished update is reported to [`Inbox::done`]; the process-wide [`InboxWriter`] marks
//! every bot's in batches and tells each reporter once its update is written.

mod writer;

use std::{
    collections::HashSet,
    sync::{Arc, atomic::Ordering},
};

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use teloxide_core::types::Update;
use tokio::sync::oneshot;
use tracing::warn;
pub use writer::InboxWriter;

use super::sequencer::order_key;
use crate::{
    storage::{InboxUpdate, Storage, StorageError, now},
    telegram::decode_update,
};

/// Most pending updates resumed at start.
const RESUME_LIMIT: u32 = 100_000;
/// Most pending updates one sweep for relayed updates reads.
const SWEEP_LIMIT: u32 = 1_000;

/// One bot's inbox in the database.
pub(crate) struct Inbox {
    storage: Storage,
    writer: InboxWriter,
    bot: Arc<writer::BotMarks>,
}

impl Inbox {
    /// Opens a bot's inbox; `writer` marks its handled updates done.
    pub(crate) fn open(storage: Storage, writer: InboxWriter, bot_id: &str) -> Inbox {
        let bot = Arc::new(writer::BotMarks { id: bot_id.to_owned(), confirmed: Default::default() });
        Inbox { storage, writer, bot }
    }

    /// A poll with `offset` succeeded: Telegram forgets every update below it, so their done rows can go.
    pub(crate) fn confirmed(&self, offset: i64) {
        if self.bot.confirmed.fetch_max(offset, Ordering::Relaxed) < offset {
            self.writer.confirmed(&self.bot);
        }
    }

    /// The updates the last run left pending, in update order.
    pub(crate) async fn resume(&self) -> Result<Vec<Box<Update>>, StorageError> {
        let pending = self.storage.inbox().pending(&self.bot.id, RESUME_LIMIT).await?;
        Ok(pending.into_iter().filter_map(|row| decode(row.update_id, &row.payload)).collect())
    }

    /// One update, if it is pending (another replica stored it).
    pub(crate) async fn pending_one(&self, id: i64) -> Result<Option<Box<Update>>, StorageError> {
        let row = self.storage.inbox().pending_one(&self.bot.id, id).await?;
        Ok(row.and_then(|row| decode(row.update_id, &row.payload)))
    }

    /// The pending updates stored before `before`, in update order (at most [`SWEEP_LIMIT`]).
    pub(crate) async fn pending_before(&self, before: DateTime<Utc>) -> Result<Vec<Box<Update>>, StorageError> {
        let pending = self.storage.inbox().pending(&self.bot.id, SWEEP_LIMIT).await?;
        let old = pending.into_iter().filter(|row| row.received_at < before);
        Ok(old.filter_map(|row| decode(row.update_id, &row.payload)).collect())
    }

    /// Stores a getUpdates batch; returns the updates not stored before (to handle) and the offset that confirms
    /// the whole batch (none for an empty batch).
    pub(crate) async fn store(
        &self,
        batch: Vec<Box<RawValue>>,
    ) -> Result<(Vec<Box<Update>>, Option<i64>), StorageError> {
        #[derive(serde::Deserialize)]
        struct Id {
            update_id: i64,
        }
        let mut next = None;
        let mut updates = Vec::with_capacity(batch.len());
        let mut rows = Vec::with_capacity(batch.len());
        for raw in batch {
            // One that does not parse cannot be handled; the offset confirms it with the others.
            let update = match decode_update(raw.get().as_bytes()) {
                Ok(update) => update,
                Err(e) => {
                    if let Ok(Id { update_id: id }) = serde_json::from_str(raw.get()) {
                        warn!(update_id = id, error = %e, "an update that does not parse was skipped");
                        next = next.max(Some(id + 1));
                    }
                    continue;
                }
            };
            let id = i64::from(update.id.0);
            next = next.max(Some(id + 1));
            rows.push(InboxUpdate { update_id: id, chat_key: order_key(&update), payload: raw.get().to_owned() });
            updates.push(update);
        }
        if rows.is_empty() {
            return Ok((Vec::new(), next));
        }
        let new: HashSet<i64> = self.storage.inbox().insert(&self.bot.id, &rows, now()).await?.into_iter().collect();
        updates.retain(|u| new.contains(&i64::from(u.id.0)));
        Ok((updates, next))
    }

    /// Stores one webhook delivery (`payload`, the request's body, decoded as `update`); whether it is new (a
    /// re-delivery of a stored update is not).
    pub(crate) async fn store_one(&self, update: &Update, payload: &str) -> Result<bool, StorageError> {
        let id = i64::from(update.id.0);
        let row = InboxUpdate { update_id: id, chat_key: order_key(update), payload: payload.to_owned() };
        let new = self.storage.inbox().insert(&self.bot.id, std::slice::from_ref(&row), now()).await?;
        Ok(new.contains(&id))
    }

    /// Reports an update handled; the writer marks it done, and the receiver resolves then (or with an error if
    /// the writer stopped without writing it).
    pub(crate) fn done(&self, id: i64) -> oneshot::Receiver<()> {
        self.writer.done(&self.bot, id)
    }

    /// Writes the updates reported done so far (one try if the database is down).
    pub(crate) async fn close(&self) {
        self.writer.flush().await;
    }
}

fn decode(id: i64, payload: &str) -> Option<Box<Update>> {
    match decode_update(payload.as_bytes()) {
        Ok(update) => Some(update),
        Err(e) => {
            warn!(update_id = id, error = %e, "an update that does not parse was skipped");
            None
        }
    }
}
