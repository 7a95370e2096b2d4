//! [`Recorder`]: writes user sightings, audit events and bot status in the background, so that no update waits for
//! the database. Writes go through a bounded channel to one task that batches them (it lets more join the first
//! for up to 100 ms; sightings of one user merge into one upsert) and retries with backoff while the database is
//! down. A full channel drops the write, counts it (`multibot_storage_dropped_writes_total`) and logs it; memory
//! stays bounded whatever the outage. A bot's row is never dropped: only its latest state waits (one per
//! configured bot), beside the channel.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{info, warn};

use super::{BotRecord, NewEvent, Storage, StorageError, UserSeen};
use crate::telemetry::metrics;

/// Writes taken into one batch, at most.
const MAX_BATCH: usize = 1_000;
/// Bot rows or events written in one transaction.
const ROWS_PER_TRANSACTION: usize = 500;
/// How long the writer lets more writes join the first one of a batch: a burst's sightings of one user merge into
/// one row, the database takes one write instead of many (each a commit on the connection the durable inbox
/// waits for), and the writer wakes once, not per update. A flush ends the wait.
const LINGER: Duration = Duration::from_millis(100);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

enum Op {
    User(UserSeen),
    Event(NewEvent),
    Blocked { bot_id: String, user_id: i64, blocked: bool },
    Flush(oneshot::Sender<()>),
}

/// The handle to the background writer. Cheap to clone; every method returns at once.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Op>,
    dropped: Arc<AtomicU64>,
    stop: CancellationToken,
    /// The writer task; [`Recorder::close`] waits for it.
    writer: TaskTracker,
    /// How many rows each user has added this minute, per bot and kind (see [`super::events`]).
    pub(super) budgets: Arc<parking_lot::Mutex<super::events::Budgets>>,
    /// The latest row of each bot not written yet.
    bots: Arc<PendingBots>,
}

/// Bots' rows waiting for the writer, beside the channel: at most one per bot, so they need no bound.
#[derive(Default)]
struct PendingBots {
    rows: parking_lot::Mutex<BTreeMap<String, BotRecord>>,
    /// Wakes the writer; a permit is kept when it is busy, so none is lost.
    changed: Notify,
}

impl Recorder {
    /// Writes that may wait in the buffer by default.
    pub const DEFAULT_CAPACITY: usize = 10_000;

    /// Starts the writer on `storage` with room for `capacity` waiting writes.
    pub fn spawn(storage: Storage, capacity: usize) -> Recorder {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (stop, writer) = (CancellationToken::new(), TaskTracker::new());
        let bots = Arc::<PendingBots>::default();
        writer.spawn(run(storage, rx, bots.clone(), stop.clone()));
        writer.close();
        Recorder { tx, dropped: Arc::default(), stop, writer, budgets: Arc::default(), bots }
    }

    /// Records that a user interacted with a bot.
    pub fn user_seen(&self, user: UserSeen) {
        self.send(Op::User(user), "user");
    }

    /// Appends an audit event.
    pub fn event(&self, event: NewEvent) {
        self.send(Op::Event(event), "event");
    }

    /// Inserts or updates a bot's row. Never dropped: a newer row of the same bot replaces one not written yet.
    pub fn bot(&self, bot: BotRecord) {
        self.bots.rows.lock().insert(bot.id.clone(), bot);
        self.bots.changed.notify_one();
    }

    /// Marks whether a user blocked the bot (Telegram answered 403 "bot was blocked by the user").
    pub fn user_blocked(&self, bot_id: &str, user_id: i64, blocked: bool) {
        self.send(Op::Blocked { bot_id: bot_id.to_owned(), user_id, blocked }, "blocked");
    }

    /// Writes dropped because the buffer was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn send(&self, op: Op, kind: &'static str) {
        if self.tx.try_send(op).is_err() {
            metrics::storage_dropped_write(kind);
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // The first drop and every thousandth: an outage under load must not flood the log too.
            if dropped % 1000 == 1 {
                warn!(kind, dropped_total = dropped, "storage buffer full: a database write was dropped");
            }
        }
    }

    /// Waits until everything recorded before this call is written; false when `within` passed first.
    pub async fn flush(&self, within: Duration) -> bool {
        let (done, written) = oneshot::channel();
        let flushed = async {
            let sent = self.tx.send(Op::Flush(done)).await.is_ok();
            // Ends the writer's wait for more writes.
            self.bots.changed.notify_one();
            sent && written.await.is_ok()
        };
        tokio::time::timeout(within, flushed).await.unwrap_or(false)
    }

    /// Flushes (waiting at most `within`), then stops the writer and waits for it (at most `within` again);
    /// what could not be written is logged as lost.
    pub async fn close(&self, within: Duration) {
        if !self.flush(within).await {
            warn!(within_ms = within.as_millis() as u64, "the database did not take the buffered writes in time");
        }
        self.stop.cancel();
        if tokio::time::timeout(within, self.writer.wait()).await.is_err() {
            warn!("the database writer did not stop in time");
        }
    }
}

/// What the writer took from the channel and has not written yet.
#[derive(Default)]
struct Batch {
    bots: BTreeMap<String, BotRecord>,
    users: HashMap<(String, i64), UserSeen>,
    blocked: VecDeque<(String, i64, bool)>,
    events: VecDeque<NewEvent>,
    flushes: Vec<oneshot::Sender<()>>,
}

impl Batch {
    fn len(&self) -> usize {
        self.bots.len() + self.users.len() + self.blocked.len() + self.events.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0 && self.flushes.is_empty()
    }

    fn add(&mut self, op: Op) {
        match op {
            Op::User(user) => match self.users.entry((user.bot_id.clone(), user.user_id)) {
                std::collections::hash_map::Entry::Occupied(mut seen) => seen.get_mut().merge(user),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(user);
                }
            },
            Op::Event(event) => self.events.push_back(event),
            Op::Blocked { bot_id, user_id, blocked } => self.blocked.push_back((bot_id, user_id, blocked)),
            Op::Flush(done) => self.flushes.push(done),
        }
    }

    /// Writes in order (bots, users, blocked flags, events), forgetting each part once it is stored, so a retry after a failure
    /// never writes anything twice.
    async fn write(&mut self, storage: &Storage) -> Result<(), StorageError> {
        // A few hundred rows to a transaction: one commit each instead of one per row (10,000 bots start at once).
        while !self.bots.is_empty() {
            let rows: Vec<BotRecord> = self.bots.values().take(ROWS_PER_TRANSACTION).cloned().collect();
            storage.bots().upsert(&rows).await?;
            for row in &rows {
                self.bots.remove(&row.id);
            }
        }
        if !self.users.is_empty() {
            let users: Vec<UserSeen> = self.users.values().cloned().collect();
            storage.users().upsert(&users).await?;
            self.users.clear();
        }
        while let Some((bot_id, user_id, blocked)) = self.blocked.front() {
            storage.users().set_blocked(bot_id, *user_id, *blocked).await?;
            self.blocked.pop_front();
        }
        while !self.events.is_empty() {
            let events = self.events.make_contiguous();
            let events = &events[..events.len().min(ROWS_PER_TRANSACTION)];
            storage.events().append_all(events).await?;
            let written = events.len();
            self.events.drain(..written);
        }
        Ok(())
    }
}

/// Waits up to [`LINGER`] for more writes; in steps, so that a channel filling fast (a batch's worth, or half its
/// room, waiting) is taken at once, far from full.
async fn linger(rx: &mpsc::Receiver<Op>, changed: &Notify, stop: &CancellationToken) {
    let until = tokio::time::Instant::now() + LINGER;
    let enough = MAX_BATCH.min(rx.max_capacity() / 2);
    while rx.len() < enough && tokio::time::Instant::now() < until {
        tokio::select! {
            () = tokio::time::sleep(LINGER / 10) => {}
            () = changed.notified() => return,
            () = stop.cancelled() => return,
        }
    }
}

async fn run(storage: Storage, mut rx: mpsc::Receiver<Op>, bots: Arc<PendingBots>, stop: CancellationToken) {
    let mut batch = Batch::default();
    loop {
        if batch.is_empty() {
            tokio::select! {
                op = rx.recv() => match op {
                    Some(op) => batch.add(op),
                    None => return,
                },
                () = bots.changed.notified() => {}
                () = stop.cancelled() => return,
            }
            if batch.flushes.is_empty() && !batch.is_empty() {
                linger(&rx, &bots.changed, &stop).await;
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.add(op),
                Err(_) => break,
            }
        }
        // After the channel: a flush taken above covers every row recorded before it. Newer rows replace those
        // a failed round kept.
        batch.bots.append(&mut bots.rows.lock());
        let mut backoff = FIRST_BACKOFF;
        let mut failures = 0u64;
        while let Err(error) = batch.write(&storage).await {
            failures += 1;
            metrics::storage_write_failure();
            if failures == 1 || failures.is_power_of_two() {
                warn!(%error, pending = batch.len(), failures, retry_in_ms = backoff.as_millis() as u64, "database write failed; retrying");
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stop.cancelled() => {
                    warn!(lost = batch.len() + rx.len(), "storage writer stopped with writes the database did not take");
                    return;
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        if failures > 0 {
            info!(failures, "database writes resumed");
        }
        for done in batch.flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{BotRecord, UserProfile, now};

    fn seen(user_id: i64, first_name: &str) -> UserSeen {
        let at = now();
        UserSeen {
            bot_id: "bot".into(),
            user_id,
            profile: UserProfile { first_name: first_name.into(), ..UserProfile::default() },
            first_seen: at,
            last_seen: at,
            messages: 1,
        }
    }

    #[tokio::test]
    async fn sightings_of_one_user_merge_and_land_on_flush() {
        let storage = Storage::in_memory().await.unwrap();
        let recorder = Recorder::spawn(storage.clone(), 100);
        for name in ["Ann", "Anne", "Annie"] {
            recorder.user_seen(seen(1, name));
        }
        recorder.user_seen(seen(2, "Bob"));
        assert!(recorder.flush(Duration::from_secs(5)).await);
        let ann = storage.users().get("bot", 1).await.unwrap().unwrap();
        assert_eq!((ann.profile.first_name.as_str(), ann.message_count), ("Annie", 3));
        assert_eq!(storage.users().get_user_count("bot").await.unwrap(), 2);
    }

    fn bot_row(id: usize, status: &str) -> BotRecord {
        let at = now();
        BotRecord {
            id: format!("bot_{id}"),
            name: format!("Bot {id}"),
            description: String::new(),
            mode: "polling".into(),
            enabled: true,
            config_hash: String::new(),
            status: status.into(),
            started_at: None,
            stopped_at: None,
            last_error: None,
            created_at: at,
            updated_at: at,
        }
    }

    #[tokio::test]
    async fn bot_rows_are_never_dropped_and_the_latest_wins() {
        let storage = Storage::in_memory().await.unwrap();
        // Bad input: a buffer of 1 flooded with sightings while 300 bots start (10,000 bots once overflowed it).
        let recorder = Recorder::spawn(storage.clone(), 1);
        for n in 0..300 {
            recorder.user_seen(seen(n, "U"));
            recorder.bot(bot_row(n as usize, "starting"));
            recorder.bot(bot_row(n as usize, "running"));
        }
        assert!(recorder.dropped() > 0, "the sightings overflowed the buffer");
        assert!(recorder.flush(Duration::from_secs(5)).await);
        let rows = storage.bots().list().await.unwrap();
        assert_eq!(rows.len(), 300);
        assert!(rows.iter().all(|row| row.status == "running"), "{:?}", rows.iter().find(|r| r.status != "running"));
    }

    #[tokio::test]
    async fn a_full_buffer_drops_and_counts_instead_of_blocking() {
        let storage = Storage::in_memory().await.unwrap();
        // Bad input: the database is gone, so the writer retries and the buffer of 2 fills up.
        storage.close().await;
        let recorder = Recorder::spawn(storage, 2);
        for n in 0..50 {
            recorder.user_seen(seen(n, "U"));
        }
        assert!(recorder.dropped() >= 40, "dropped {}", recorder.dropped());
        assert!(!recorder.flush(Duration::from_millis(300)).await, "nothing can be written");
        recorder.close(Duration::from_millis(10)).await;
    }
}
