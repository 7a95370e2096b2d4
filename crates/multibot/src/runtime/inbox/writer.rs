//! [`InboxWriter`]: the one writer of `done` marks for every bot of the process. Each bot's [`super::Inbox`]
//! reports its handled updates to it; it marks everything that arrived meanwhile done in one statement (a group
//! commit: one write for all the bots, instead of one per bot), tells each reporter once its update is written,
//! retries while the database is down, and prunes the done rows of the bots it marked for. An update that a poll
//! has already confirmed (the usual case: the offset moves past everything stored) is deleted instead of marked.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{mpsc, oneshot};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::warn;

use crate::storage::{Storage, StorageError, now};

/// Done rows are kept this long, so that an update Telegram delivers again (its confirmation was lost in a
/// crash, or a webhook's 200 was lost on the way) is recognised and not handled twice. A polling bot's rows go
/// sooner: once a poll has confirmed them ([`super::Inbox::confirmed`]), Telegram never sends them again.
const DONE_KEPT: Duration = Duration::from_secs(3600);
/// How often the writer prunes the rows of the bots it marked rows done for since the last time.
const PRUNE_EVERY: Duration = Duration::from_secs(5);
/// How long the writer waits before writing again after the database failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A bot as the writer sees it.
pub(super) struct BotMarks {
    pub(super) id: String,
    /// The offset the bot's last successful poll sent: every update below it is confirmed (0 before the first).
    pub(super) confirmed: AtomicI64,
}

enum Message {
    /// A bot's update was handled; the sender is told once it is marked done.
    Done(Arc<BotMarks>, i64, oneshot::Sender<()>),
    /// Answered once what came before was written (or tried once, with the database down).
    Flush(oneshot::Sender<()>),
    /// A bot's poll confirmed more updates: its done rows below the offset can go at the next prune.
    Confirmed(Arc<BotMarks>),
}

/// The handle to the process-wide writer of `done` marks. Cheap to clone.
#[derive(Clone)]
pub struct InboxWriter {
    tx: mpsc::UnboundedSender<Message>,
    stop: CancellationToken,
    /// The writer task; [`InboxWriter::close`] waits for it.
    writer: TaskTracker,
}

impl InboxWriter {
    /// Starts the writer on `storage`.
    pub fn spawn(storage: Storage) -> InboxWriter {
        // Unbounded, yet bounded by what is stored: one message per update taken from the inbox.
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, writer) = (CancellationToken::new(), TaskTracker::new());
        writer.spawn(run(storage, rx, stop.clone()));
        writer.close();
        InboxWriter { tx, stop, writer }
    }

    /// Reports a bot's update handled; the receiver resolves once it is marked done (or errs if the writer
    /// stopped first).
    pub(super) fn done(&self, bot: &Arc<BotMarks>, id: i64) -> oneshot::Receiver<()> {
        let (written, receiver) = oneshot::channel();
        let _ = self.tx.send(Message::Done(bot.clone(), id, written));
        receiver
    }

    /// Has `bot`'s done rows pruned at the next prune, even if it marks nothing more (an idle bot's last burst).
    pub(super) fn confirmed(&self, bot: &Arc<BotMarks>) {
        let _ = self.tx.send(Message::Confirmed(bot.clone()));
    }

    /// Waits until the updates reported so far are written (one try if the database is down).
    pub(super) async fn flush(&self) {
        let (answer, flushed) = oneshot::channel();
        if self.tx.send(Message::Flush(answer)).is_ok() {
            let _ = flushed.await;
        }
    }

    /// Writes what is reported (one try, waiting at most `within`), then stops the writer; marks not written
    /// leave their updates pending, to run again at the next start.
    pub async fn close(&self, within: Duration) {
        if tokio::time::timeout(within, self.flush()).await.is_err() {
            warn!(within_ms = within.as_millis() as u64, "the inbox's done marks were not written in time");
        }
        self.stop.cancel();
        let _ = tokio::time::timeout(within, self.writer.wait()).await;
    }
}

/// Marks reported updates done, as many per statement as arrived meanwhile, until stopped.
async fn run(storage: Storage, mut rx: mpsc::UnboundedReceiver<Message>, stop: CancellationToken) {
    let mut pending = Pending::default();
    let mut pruned = tokio::time::Instant::now();
    loop {
        if pending.marks.is_empty() {
            // Idle, yet the bots marked for or confirmed since the last prune still get theirs: the rows of a
            // burst do not wait for the bot's next update.
            let prune_due = pruned + PRUNE_EVERY;
            tokio::select! {
                message = rx.recv() => match message {
                    Some(message) => pending.take(message),
                    None => return,
                },
                () = tokio::time::sleep_until(prune_due), if !pending.to_prune.is_empty() => {}
                () = stop.cancelled() => return,
            }
        }
        while let Ok(message) = rx.try_recv() {
            pending.take(message);
        }
        let mut failed = false;
        if !pending.marks.is_empty() {
            match write(&storage, &pending.marks).await {
                Ok(()) => pending.written(),
                // Kept, and written with the next ones.
                Err(e) => {
                    warn!(error = %e, marks = pending.marks.len(), "could not mark handled updates done; retrying");
                    failed = true;
                }
            }
        }
        for answer in pending.flushes.drain(..) {
            let _ = answer.send(());
        }
        if failed {
            tokio::select! {
                () = tokio::time::sleep(RETRY_AFTER) => {}
                () = stop.cancelled() => return,
            }
        }
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = tokio::time::Instant::now();
            prune(&storage, pending.to_prune.drain().map(|(_, bot)| bot)).await;
        }
    }
}

/// Writes handled updates: those a poll has confirmed are deleted (Telegram never sends them again), the others
/// marked done. Written again after a failure, which changes nothing for those already written.
async fn write(storage: &Storage, marks: &[(Arc<BotMarks>, i64, oneshot::Sender<()>)]) -> Result<(), StorageError> {
    let (mut confirmed, mut unconfirmed) = (Vec::new(), Vec::new());
    for (bot, id, _) in marks {
        let to = if *id < bot.confirmed.load(Ordering::Relaxed) { &mut confirmed } else { &mut unconfirmed };
        to.push((bot.id.as_str(), *id));
    }
    storage.inbox().mark_done(&unconfirmed, now()).await?;
    storage.inbox().forget(&confirmed).await
}

/// Deletes the done rows of `bots` that are old, or confirmed by a poll.
async fn prune(storage: &Storage, bots: impl Iterator<Item = Arc<BotMarks>>) {
    let before = now() - chrono::Duration::from_std(DONE_KEPT).unwrap_or_default();
    for bot in bots {
        let below = Some(bot.confirmed.load(Ordering::Relaxed)).filter(|&offset| offset > 0);
        if let Err(e) = storage.inbox().prune(&bot.id, before, below).await {
            warn!(bot_id = %bot.id, error = %e, "could not prune the inbox");
        }
    }
}

/// What the writer took in and has not written yet.
#[derive(Default)]
struct Pending {
    marks: Vec<(Arc<BotMarks>, i64, oneshot::Sender<()>)>,
    flushes: Vec<oneshot::Sender<()>>,
    /// The bots marked for since the last prune.
    to_prune: HashMap<String, Arc<BotMarks>>,
}

impl Pending {
    fn take(&mut self, message: Message) {
        match message {
            Message::Done(bot, id, written) => self.marks.push((bot, id, written)),
            Message::Flush(answer) => self.flushes.push(answer),
            Message::Confirmed(bot) => self.prune_later(bot),
        }
    }

    fn written(&mut self) {
        for (bot, _, written) in std::mem::take(&mut self.marks) {
            let _ = written.send(());
            self.prune_later(bot);
        }
    }

    fn prune_later(&mut self, bot: Arc<BotMarks>) {
        if !self.to_prune.contains_key(&bot.id) {
            self.to_prune.insert(bot.id.clone(), bot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::InboxUpdate;

    #[tokio::test]
    async fn a_handled_update_a_poll_confirmed_is_deleted_and_one_not_confirmed_yet_is_marked_done() {
        let storage = Storage::in_memory().await.unwrap();
        let row = |id: i64| InboxUpdate { update_id: id, chat_key: 1, payload: format!(r#"{{"update_id":{id}}}"#) };
        storage.inbox().insert("shop", &[row(5), row(12)], now()).await.unwrap();
        let writer = InboxWriter::spawn(storage.clone());
        // The bot's last poll sent offset 10: update 5 is confirmed, update 12 is not.
        let bot = Arc::new(BotMarks { id: "shop".to_owned(), confirmed: AtomicI64::new(10) });
        let (five, twelve) = (writer.done(&bot, 5), writer.done(&bot, 12));
        five.await.unwrap();
        twelve.await.unwrap();
        assert!(storage.inbox().pending("shop", 10).await.unwrap().is_empty(), "both are handled");
        // Update 12 was kept as done, so Telegram delivering it again is recognised; update 5's row is gone.
        assert!(storage.inbox().insert("shop", &[row(12)], now()).await.unwrap().is_empty());
        assert_eq!(storage.inbox().insert("shop", &[row(5)], now()).await.unwrap(), [5]);
        writer.close(Duration::from_secs(5)).await;
    }
}
