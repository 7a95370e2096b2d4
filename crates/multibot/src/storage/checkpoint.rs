//! SQLite's WAL checkpoints, off the writer's path. By default SQLite checkpoints inside the commit that grows the
//! WAL past 1,000 pages: that commit (an inbox insert a poll waits for, say) copies the pages into the database
//! file and syncs it, while every other statement of the one connection waits. Here the connection that writes
//! never checkpoints (`wal_autocheckpoint=0`); a connection of the [`Checkpointer`]'s own runs a passive
//! checkpoint every [`EVERY`], which never waits for the writer nor makes it wait. A writer that never pauses
//! would outrun it (the WAL starts over only once a checkpoint has caught up), so past [`RESTART_AT`] pages a
//! restart checkpoint follows, which holds the writer while it copies the few pages written since. The WAL stays
//! small; `journal_size_limit` gives back the disk space of one that a burst grew. Durability is SQLite's either
//! way: a commit is in the WAL before it returns.

use std::time::Duration;

use sqlx::{ConnectOptions, Connection, sqlite::SqliteConnectOptions};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::warn;

/// How often the checkpointer copies what the WAL holds into the database file.
pub(super) const EVERY: Duration = Duration::from_millis(250);
/// The WAL's length, in pages, from which a round ends with a restart checkpoint: SQLite's own default threshold.
pub(super) const RESTART_AT: i64 = 1000;
/// The size a WAL file is cut back to once checkpointed, in bytes.
pub(super) const WAL_KEPT: u64 = 64 << 20;

/// One round: a passive checkpoint, then, if the WAL still holds [`RESTART_AT`] frames or more (a writer that never
/// pauses keeps appending behind it, and the WAL starts over only once a checkpoint has caught up), a restart
/// checkpoint: it waits for the writer's current transaction, holds the next one while it copies the few frames
/// written since the passive one, and has the next commit start the WAL over.
async fn checkpoint(connection: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    let (_busy, frames, _copied): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&mut *connection).await?;
    if frames >= RESTART_AT {
        sqlx::query("PRAGMA wal_checkpoint(RESTART)").execute(connection).await?;
    }
    Ok(())
}

/// The task that checkpoints an SQLite database; [`Checkpointer::stop`] ends it.
#[derive(Debug)]
pub(super) struct Checkpointer {
    stop: CancellationToken,
    task: TaskTracker,
}

impl Checkpointer {
    /// Opens a connection of its own to the database of `options` and starts checkpointing it.
    pub(super) async fn start(options: &SqliteConnectOptions) -> Result<Checkpointer, sqlx::Error> {
        let mut connection = options.connect().await?;
        let (stop, task) = (CancellationToken::new(), TaskTracker::new());
        let stopping = stop.clone();
        task.spawn(async move {
            let mut failing = false;
            loop {
                tokio::select! {
                    () = stopping.cancelled() => break,
                    () = tokio::time::sleep(EVERY) => {}
                }
                match checkpoint(&mut connection).await {
                    Ok(()) => failing = false,
                    // Once per failing streak: the writer's own statements report the database's trouble.
                    Err(e) if !failing => {
                        failing = true;
                        warn!(error = %e, "could not checkpoint the SQLite database; retrying");
                    }
                    Err(_) => {}
                }
            }
            let _ = connection.close().await;
        });
        task.close();
        Ok(Checkpointer { stop, task })
    }

    /// Stops checkpointing and closes its connection (the last connection to close checkpoints what is left).
    pub(super) async fn stop(&self) {
        self.stop.cancel();
        self.task.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::{
        config::DatabaseUrl,
        storage::{InboxUpdate, Storage, now},
        testing::TempDir,
    };

    fn size(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }

    #[tokio::test]
    async fn the_database_file_is_checkpointed_off_the_writers_path_while_open() {
        let dir = TempDir::new("checkpoint");
        let (db, wal) = (dir.path().join("multibot.db"), dir.path().join("multibot.db-wal"));
        let storage = Storage::open(&DatabaseUrl::sqlite_file(&db)).await.unwrap();
        storage.migrate().await.unwrap();
        // The writer's connection leaves checkpoints to the checkpointer (it alone would never fill the file).
        assert!(storage.checkpoints.is_some());
        let before = size(&db);
        // About 4 MB of updates, in batches as polls store them: far past SQLite's 1,000-page default.
        let payload = "x".repeat(1000);
        for batch in 0..40 {
            let updates: Vec<InboxUpdate> = (0..100)
                .map(|i| InboxUpdate { update_id: batch * 100 + i, chat_key: i, payload: payload.clone() })
                .collect();
            storage.inbox().insert("bot", &updates, now()).await.unwrap();
        }
        // The rows reach the database file while the storage is open, and the WAL starts over.
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while size(&db) < before + 4_000_000 && Instant::now() < deadline {
            tokio::time::sleep(super::EVERY).await;
        }
        assert!(size(&db) >= before + 4_000_000, "database file {} bytes, WAL {} bytes", size(&db), size(&wal));
        assert_eq!(storage.inbox().depth("bot").await.unwrap().pending, 4000);
        storage.close().await;
        // The last connection closed checkpointed the rest and removed the WAL.
        assert_eq!(size(&wal), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_that_never_pauses_still_has_its_wal_start_over() {
        let dir = TempDir::new("checkpoint-busy");
        let (db, wal) = (dir.path().join("multibot.db"), dir.path().join("multibot.db-wal"));
        let storage = Storage::open(&DatabaseUrl::sqlite_file(&db)).await.unwrap();
        storage.migrate().await.unwrap();
        // Three seconds of back-to-back commits, as a poller and a handler make them: a passive checkpoint alone
        // never catches up with them (the WAL passed 100 MB in this time), the restart ones do.
        let (payload, started, mut id, mut largest) = ("x".repeat(300), Instant::now(), 0, 0);
        while started.elapsed() < std::time::Duration::from_secs(3) {
            let first = id + 1;
            id += 20;
            let updates: Vec<InboxUpdate> =
                (first..=id).map(|i| InboxUpdate { update_id: i, chat_key: i % 7, payload: payload.clone() }).collect();
            storage.inbox().insert("bot", &updates, now()).await.unwrap();
            let marks: Vec<(&str, i64)> = (first..=id).map(|i| ("bot", i)).collect();
            storage.inbox().mark_done(&marks, now()).await.unwrap();
            largest = largest.max(size(&wal));
        }
        assert!(largest < 32 << 20, "the WAL grew to {largest} bytes over {id} updates");
        storage.close().await;
    }
}
