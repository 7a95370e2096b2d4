//! The `inbox` table: updates stored before Telegram is told they arrived, so none is lost in a crash.
//! [`InboxRepository`] inserts a batch in one transaction (a redelivered update is not stored twice), lists a
//! bot's pending updates in update order, marks handled ones done in batches and prunes old done rows.
//! [`InboxUpdate`] is a row to insert, [`PendingUpdate`] one read back.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Row, Sqlite};

use super::{StorageError, sql::Sql};

/// An update to store: its id, the key that orders it (its chat, or its user) and its JSON as received.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxUpdate {
    /// Telegram's `update_id`.
    pub update_id: i64,
    /// The chat (or user) whose updates run in order.
    pub chat_key: i64,
    /// The update's JSON, as Telegram sent it.
    pub payload: String,
}

/// A stored update not handled yet.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingUpdate {
    /// Telegram's `update_id`.
    pub update_id: i64,
    /// The chat (or user) whose updates run in order.
    pub chat_key: i64,
    /// The update's JSON, as Telegram sent it.
    pub payload: String,
    /// When it was stored.
    pub received_at: DateTime<Utc>,
}

/// How many updates of a bot wait in the inbox, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct InboxDepth {
    /// Pending updates.
    pub pending: i64,
    /// When the oldest pending update was stored.
    pub oldest: Option<DateTime<Utc>>,
}

/// The `inbox` table.
#[async_trait]
pub trait InboxRepository: Send + Sync {
    /// Stores updates of a bot as pending, in one transaction; an update already stored (pending or done, the
    /// same payload) is left as it is. Returns the ids of those that were new.
    async fn insert(&self, bot_id: &str, updates: &[InboxUpdate], at: DateTime<Utc>) -> Result<Vec<i64>, StorageError>;
    /// Up to `limit` pending updates of a bot, oldest `update_id` first.
    async fn pending(&self, bot_id: &str, limit: u32) -> Result<Vec<PendingUpdate>, StorageError>;
    /// Marks updates of a bot done, in one transaction.
    async fn mark_done(&self, bot_id: &str, update_ids: &[i64], at: DateTime<Utc>) -> Result<(), StorageError>;
    /// Deletes a bot's rows marked done before `before`, or whose id is below `confirmed` (Telegram was told it
    /// has them all, so it never sends them again); returns how many. (Each bot prunes its own rows, so that N
    /// bots do not each sweep the whole table.)
    async fn prune(&self, bot_id: &str, before: DateTime<Utc>, confirmed: Option<i64>) -> Result<u64, StorageError>;
    /// How many updates of a bot are pending, and the oldest one's arrival.
    async fn depth(&self, bot_id: &str) -> Result<InboxDepth, StorageError>;
}

/// A done row whose payload differs is another update under a reused id (Telegram picks ids at random after a
/// week without updates; a bot id may get another token): it is stored anew.
const INSERT: &str = "INSERT INTO inbox (bot_id, update_id, chat_key, payload, state, received_at) \
     VALUES ($1, $2, $3, $4, 'pending', $5) ON CONFLICT (bot_id, update_id) DO UPDATE SET \
     chat_key = excluded.chat_key, payload = excluded.payload, state = 'pending', \
     received_at = excluded.received_at, done_at = NULL \
     WHERE inbox.state = 'done' AND inbox.payload <> excluded.payload";
const PENDING: &str = "SELECT update_id, chat_key, payload, received_at FROM inbox \
     WHERE bot_id = $1 AND state = 'pending' ORDER BY update_id LIMIT $2";
const MARK_DONE: &str =
    "UPDATE inbox SET state = 'done', done_at = $3 WHERE bot_id = $1 AND update_id = $2 AND state = 'pending'";
const PRUNE: &str = "DELETE FROM inbox WHERE bot_id = $1 AND state = 'done' AND (done_at < $2 OR update_id < $3)";
const DEPTH: &str = "SELECT COUNT(*), MIN(received_at) FROM inbox WHERE bot_id = $1 AND state = 'pending'";

/// Implements [`InboxRepository`] for `Sql<$db>`.
macro_rules! inbox {
    ($db:ty) => {
        #[async_trait]
        impl InboxRepository for Sql<$db> {
            async fn insert(
                &self,
                bot_id: &str,
                updates: &[InboxUpdate],
                at: DateTime<Utc>,
            ) -> Result<Vec<i64>, StorageError> {
                let mut tx = self.0.begin().await?;
                let mut new = Vec::new();
                for update in updates {
                    let stored = sqlx::query(INSERT)
                        .bind(bot_id)
                        .bind(update.update_id)
                        .bind(update.chat_key)
                        .bind(&update.payload)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if stored > 0 {
                        new.push(update.update_id);
                    }
                }
                tx.commit().await?;
                Ok(new)
            }

            async fn pending(&self, bot_id: &str, limit: u32) -> Result<Vec<PendingUpdate>, StorageError> {
                let rows = sqlx::query(PENDING).bind(bot_id).bind(i64::from(limit)).fetch_all(&self.0).await?;
                rows.iter()
                    .map(|row| {
                        Ok(PendingUpdate {
                            update_id: row.try_get(0)?,
                            chat_key: row.try_get(1)?,
                            payload: row.try_get(2)?,
                            received_at: row.try_get(3)?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StorageError::from)
            }

            async fn mark_done(&self, bot_id: &str, update_ids: &[i64], at: DateTime<Utc>) -> Result<(), StorageError> {
                let mut tx = self.0.begin().await?;
                for id in update_ids {
                    sqlx::query(MARK_DONE).bind(bot_id).bind(id).bind(at).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn prune(
                &self,
                bot_id: &str,
                before: DateTime<Utc>,
                confirmed: Option<i64>,
            ) -> Result<u64, StorageError> {
                let query = sqlx::query(PRUNE).bind(bot_id).bind(before).bind(confirmed);
                Ok(query.execute(&self.0).await?.rows_affected())
            }

            async fn depth(&self, bot_id: &str) -> Result<InboxDepth, StorageError> {
                let row = sqlx::query(DEPTH).bind(bot_id).fetch_one(&self.0).await?;
                Ok(InboxDepth { pending: row.try_get(0)?, oldest: row.try_get(1)? })
            }
        }
    };
}

inbox!(Postgres);
inbox!(Sqlite);
