//! Ordering and acknowledgement. The [`Tracker`] knows which updates are in flight and gives the offset that is
//! safe to confirm without a durable inbox (the low-water mark: every update below it has been handled); with
//! one, it reports each finished update to the inbox. The [`Sequencer`] handles the
//! updates of one chat in order and different chats in parallel, at most `max_concurrent_updates` at once; with an
//! inbox, a chat's next update starts once the previous one is marked done, so that a crash leaves at most one
//! update per chat handled but not marked done (the only kind that runs again). A chat's queue holds at most
//! `CHAT_BACKLOG` updates, past which its oldest waiting ones are dropped (finished unhandled, counted, and
//! recorded as one event per burst), so one flooding chat cannot fill the memory.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
    time::Instant,
};

use parking_lot::Mutex;
use serde_json::value::RawValue;
use teloxide_core::types::{Update, UpdateKind};
use tokio::sync::{Notify, Semaphore, oneshot};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::handle::{BotRuntime, handle_update};
use crate::{storage::events, telegram::decode_update, telemetry::metrics};

/// Updates received but not yet handled, and the highest id seen.
#[derive(Default)]
pub(crate) struct Tracker {
    inner: Mutex<TrackerInner>,
    /// Signalled whenever an update finishes.
    pub(crate) progress: Notify,
    /// Told each finished update's id (the durable inbox marks it done; the receiver resolves then), if the bot
    /// has an inbox.
    on_done: Option<Box<OnDone>>,
}

type OnDone = dyn Fn(i64) -> oneshot::Receiver<()> + Send + Sync;

#[derive(Default)]
struct TrackerInner {
    /// Update ids, with when each was taken in.
    in_flight: BTreeMap<i64, Instant>,
    last_seen: Option<i64>,
}

impl Tracker {
    /// A tracker that tells `on_done` each finished update's id.
    pub(crate) fn reporting_to(on_done: impl Fn(i64) -> oneshot::Receiver<()> + Send + Sync + 'static) -> Tracker {
        Tracker { on_done: Some(Box::new(on_done)), ..Tracker::default() }
    }

    /// Keeps the updates not seen before (Telegram re-sends unconfirmed ones), parses them and marks them in
    /// flight. Only an update's `update_id` is read before deciding, so re-sent updates cost almost nothing.
    #[allow(clippy::vec_box)] // Boxed by `decode_update`: each is queued and handled on its own.
    pub(crate) fn admit(&self, updates: Vec<Box<RawValue>>) -> Vec<Box<Update>> {
        #[derive(serde::Deserialize)]
        struct Id {
            update_id: i64,
        }
        let mut inner = self.inner.lock();
        let mut fresh = Vec::with_capacity(updates.len());
        for raw in updates {
            let Ok(Id { update_id: id }) = serde_json::from_str(raw.get()) else { continue };
            if inner.last_seen.is_some_and(|last| id <= last) {
                continue;
            }
            inner.last_seen = Some(id);
            match decode_update(raw.get().as_bytes()) {
                Ok(update) => {
                    inner.in_flight.insert(id, Instant::now());
                    fresh.push(update);
                }
                // Nothing can handle it; it counts as handled and is confirmed with the next poll.
                Err(e) => tracing::warn!(update_id = id, error = %e, "an update that does not parse was skipped"),
            }
        }
        fresh
    }

    /// Marks an update in flight that arrived out of order by design (a webhook push or a stored update, already
    /// deduplicated).
    pub(crate) fn track(&self, id: i64) {
        let mut inner = self.inner.lock();
        inner.in_flight.insert(id, Instant::now());
        inner.last_seen = inner.last_seen.max(Some(id));
    }

    /// Marks an update handled; with an inbox, returns what resolves once the inbox has marked it done.
    pub(crate) fn done(&self, id: i64) -> Option<oneshot::Receiver<()>> {
        self.inner.lock().in_flight.remove(&id);
        let written = self.on_done.as_ref().map(|on_done| on_done(id));
        self.progress.notify_waiters();
        written
    }

    /// How many updates are in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.inner.lock().in_flight.len()
    }

    /// How many updates are in flight, and when the longest-waiting of them was taken in.
    pub(crate) fn pending(&self) -> (usize, Option<Instant>) {
        let inner = self.inner.lock();
        (inner.in_flight.len(), inner.in_flight.values().min().copied())
    }

    /// The offset to poll with: the oldest update in flight, else one past the newest seen.
    pub(crate) fn offset(&self) -> Option<i64> {
        let inner = self.inner.lock();
        inner.in_flight.first_key_value().map(|(id, _)| *id).or(inner.last_seen.map(|id| id + 1))
    }

    /// Waits until nothing is in flight.
    pub(crate) async fn drained(&self) {
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Runs updates: in order within a chat, chats in parallel.
pub(crate) struct Sequencer {
    /// The instance handling updates; a reload in place swaps it.
    bot: Mutex<Arc<BotRuntime>>,
    /// Handlers hold it shared; a swap takes it exclusively, so the old instance's in-flight updates finish
    /// first and queued ones wait for the new instance.
    gate: tokio::sync::RwLock<()>,
    pub(crate) tracker: Arc<Tracker>,
    chats: Mutex<HashMap<i64, ChatQueue>>,
    /// Most updates one chat keeps waiting.
    backlog: usize,
    permits: Arc<Semaphore>,
    tasks: TaskTracker,
    /// Cancels handlers still running after the shutdown grace period.
    hard_stop: CancellationToken,
}

/// The updates of one chat waiting behind the one being handled.
#[derive(Default)]
struct ChatQueue {
    waiting: VecDeque<Box<Update>>,
    /// Dropped since the chat last had an empty queue (its burst).
    dropped: u64,
}

/// The key that orders updates: the chat, or the user for updates without one.
pub(crate) fn order_key(update: &Update) -> i64 {
    match &update.kind {
        UpdateKind::CallbackQuery(q) => q.message.as_ref().map_or(q.from.id.0 as i64, |m| m.chat().id.0),
        _ => update.chat().map(|c| c.id.0).or(update.from().map(|u| u.id.0 as i64)).unwrap_or(0),
    }
}

impl Sequencer {
    /// Runs `bot`'s updates, at most `max_concurrent` at once and `backlog` waiting per chat.
    pub(crate) fn new(
        bot: Arc<BotRuntime>,
        tracker: Arc<Tracker>,
        max_concurrent: usize,
        backlog: usize,
    ) -> Arc<Sequencer> {
        Arc::new(Sequencer {
            bot: Mutex::new(bot),
            gate: tokio::sync::RwLock::new(()),
            tracker,
            chats: Mutex::default(),
            backlog: backlog.max(1),
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            tasks: TaskTracker::new(),
            hard_stop: CancellationToken::new(),
        })
    }

    /// The instance handling updates now.
    pub(crate) fn runtime(&self) -> Arc<BotRuntime> {
        self.bot.lock().clone()
    }

    /// Lets in-flight updates finish, then makes `new` handle the next ones; returns the old instance.
    pub(crate) async fn swap(&self, new: Arc<BotRuntime>) -> Arc<BotRuntime> {
        let _exclusive = self.gate.write().await;
        std::mem::replace(&mut *self.bot.lock(), new)
    }

    /// Queues an update with the others of its chat, in update order (the tracker must have admitted it); past
    /// the chat's backlog the oldest waiting update is dropped.
    pub(crate) fn dispatch(self: &Arc<Self>, update: Box<Update>) {
        let runtime = self.runtime();
        metrics::update_received(runtime.bot.id.as_str());
        let key = order_key(&update);
        let mut chats = self.chats.lock();
        let Some(queue) = chats.get_mut(&key) else {
            chats.insert(key, ChatQueue::default());
            drop(chats);
            self.tasks.spawn(self.clone().run_chat(key, update));
            return;
        };
        // In update order: webhook deliveries of one chat may arrive out of order (Telegram pushes over several
        // connections at once); those still waiting run in the order Telegram numbered them.
        let at = queue.waiting.partition_point(|waiting| waiting.id.0 <= update.id.0);
        queue.waiting.insert(at, update);
        if queue.waiting.len() <= self.backlog {
            return;
        }
        let Some(oldest) = queue.waiting.pop_front() else { return };
        queue.dropped += 1;
        let first_of_burst = queue.dropped == 1;
        drop(chats);
        let bot = &runtime.bot;
        metrics::update_dropped(bot.id.as_str(), "chat_backlog");
        if first_of_burst {
            events::updates_dropped(&bot.recorder, &bot.id, key, "chat_backlog", self.backlog);
        }
        self.tracker.done(i64::from(oldest.id.0));
    }

    async fn run_chat(self: Arc<Self>, key: i64, first: Box<Update>) {
        let mut next = Some(first);
        while let Some(update) = next {
            let id = i64::from(update.id.0);
            let work = async {
                let _permit = self.permits.acquire().await;
                let _shared = self.gate.read().await;
                // Boxed: handling takes a few KB of state, which would otherwise make this task's future that much
                // larger, and it is moved as a whole when the task is spawned and when it finishes.
                Box::pin(handle_update(self.runtime(), update)).await;
            };
            tokio::select! {
                () = work => {}
                () = self.hard_stop.cancelled() => return,
            }
            if let Some(written) = self.tracker.done(id) {
                tokio::select! {
                    _ = written => {}
                    () = self.hard_stop.cancelled() => return,
                }
            }
            let mut chats = self.chats.lock();
            next = match chats.get_mut(&key).and_then(|queue| queue.waiting.pop_front()) {
                Some(update) => Some(update),
                None => {
                    if let Some(ChatQueue { dropped: dropped @ 1.., .. }) = chats.remove(&key) {
                        let bot_id = self.runtime().bot.id.clone();
                        tracing::info!(%bot_id, dropped, "a chat's backlog burst is over");
                    }
                    None
                }
            };
        }
    }

    /// Waits until nothing is in flight, at most `grace` and no longer than until [`Sequencer::abort`]; whether
    /// everything finished.
    pub(crate) async fn drained_within(&self, grace: std::time::Duration) -> bool {
        tokio::select! {
            () = self.tracker.drained() => true,
            () = tokio::time::sleep(grace) => false,
            () = self.hard_stop.cancelled() => false,
        }
    }

    /// Abandons handlers still running (their updates stay unconfirmed and come again after a restart).
    pub(crate) fn abort(&self) {
        self.hard_stop.cancel();
        self.tasks.close();
    }
}
