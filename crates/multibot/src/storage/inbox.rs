//! The `inbox` table: updates stored before Telegram is told they arrived, so none is lost in a crash.
//! [`InboxRepository`] inserts a batch in one statement (a redelivered update is not stored twice), lists a
//! bot's pending updates in update order, marks handled ones done in batches (many bots' in one statement) and
//! prunes old done rows.
//! [`InboxUpdate`] is a row to insert, [`PendingUpdate`] one read back.

use std::collections::{HashMap, HashSet};

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
    /// One update of a bot, if it is pending.
    async fn pending_one(&self, bot_id: &str, update_id: i64) -> Result<Option<PendingUpdate>, StorageError>;
    /// Marks updates done, each given as its bot's id and its `update_id` (of one bot or many), in one
    /// transaction.
    async fn mark_done(&self, updates: &[(&str, i64)], at: DateTime<Utc>) -> Result<(), StorageError>;
    /// Deletes handled updates, each given as its bot's id and its `update_id` (of one bot or many), in one
    /// transaction: those that a poll confirmed, which Telegram never sends again, need no done row to recognise
    /// a redelivery.
    async fn forget(&self, updates: &[(&str, i64)]) -> Result<(), StorageError>;
    /// Deletes a bot's rows marked done before `before`, or whose id is below `confirmed` (Telegram was told it
    /// has them all, so it never sends them again); returns how many. (Each bot prunes its own rows, so that N
    /// bots do not each sweep the whole table.)
    async fn prune(&self, bot_id: &str, before: DateTime<Utc>, confirmed: Option<i64>) -> Result<u64, StorageError>;
    /// How many updates of a bot are pending, and the oldest one's arrival.
    async fn depth(&self, bot_id: &str) -> Result<InboxDepth, StorageError>;
}

/// A done row whose payload differs is another update under a reused id (Telegram picks ids at random after a
/// week without updates; a bot id may get another token): it is stored anew. The rows come as one JSON array
/// (`$2`, see [`rows_json`]), so that a batch is one statement of one fixed text (prepared once, cached), whatever its
/// size; the dialects differ only in how they read the array.
macro_rules! insert {
    ($rows:literal) => {
        concat!(
            "INSERT INTO inbox (bot_id, update_id, chat_key, payload, state, received_at) ",
            "SELECT $1, u.update_id, u.chat_key, u.payload, 'pending', $3 FROM ",
            $rows,
            // `WHERE true` tells SQLite that `ON CONFLICT` below belongs to the insert, not to a join.
            " WHERE true ON CONFLICT (bot_id, update_id) DO UPDATE SET ",
            "chat_key = excluded.chat_key, payload = excluded.payload, state = 'pending', ",
            "received_at = excluded.received_at, done_at = NULL ",
            "WHERE inbox.state = 'done' AND inbox.payload <> excluded.payload RETURNING update_id"
        )
    };
}
const INSERT_POSTGRES: &str =
    insert!("jsonb_to_recordset($2::jsonb) AS u (update_id BIGINT, chat_key BIGINT, payload TEXT)");
const INSERT_SQLITE: &str = insert!(
    "(SELECT json_extract(value, '$.update_id') AS update_id, json_extract(value, '$.chat_key') AS chat_key, \
     json_extract(value, '$.payload') AS payload FROM json_each($2)) AS u"
);
const PENDING: &str = "SELECT update_id, chat_key, payload, received_at FROM inbox \
     WHERE bot_id = $1 AND state = 'pending' ORDER BY update_id LIMIT $2";
const PENDING_ONE: &str = "SELECT update_id, chat_key, payload, received_at FROM inbox \
     WHERE bot_id = $1 AND update_id = $2 AND state = 'pending'";
/// The updates come as one JSON array of `[bot_id, update_id]` pairs (`$1`), for the same reason as the insert's
/// rows; the join looks each up by the primary key.
const MARK_DONE_POSTGRES: &str = "UPDATE inbox SET state = 'done', done_at = $2 FROM (SELECT e ->> 0 AS bot_id, \
     (e ->> 1)::BIGINT AS update_id FROM jsonb_array_elements($1::jsonb) AS e) AS d \
     WHERE inbox.bot_id = d.bot_id AND inbox.update_id = d.update_id AND inbox.state = 'pending'";
const MARK_DONE_SQLITE: &str = "UPDATE inbox SET state = 'done', done_at = $2 FROM (SELECT json_extract(value, '$[0]') \
     AS bot_id, json_extract(value, '$[1]') AS update_id FROM json_each($1)) AS d \
     WHERE inbox.bot_id = d.bot_id AND inbox.update_id = d.update_id AND inbox.state = 'pending'";
/// One bot's ids (`$2`, a JSON array), each looked up by the primary key. (With pairs of many bots, SQLite's
/// row-value `IN` would look up only the bot and scan all its rows.)
const FORGET_POSTGRES: &str = "DELETE FROM inbox WHERE bot_id = $1 AND update_id IN \
     (SELECT e::BIGINT FROM jsonb_array_elements_text($2::jsonb) AS e)";
const FORGET_SQLITE: &str = "DELETE FROM inbox WHERE bot_id = $1 AND update_id IN (SELECT value FROM json_each($2))";
const PRUNE: &str = "DELETE FROM inbox WHERE bot_id = $1 AND state = 'done' AND (done_at < $2 OR update_id < $3)";
const DEPTH: &str = "SELECT COUNT(*), MIN(received_at) FROM inbox WHERE bot_id = $1 AND state = 'pending'";

/// The rows of an insert as the JSON array its statement reads: one object per update, the first of each id only
/// (PostgreSQL refuses to upsert one row twice in a statement).
fn rows_json(updates: &[InboxUpdate]) -> String {
    #[derive(serde::Serialize)]
    struct Row<'a> {
        update_id: i64,
        chat_key: i64,
        payload: &'a str,
    }
    let mut seen = HashSet::with_capacity(updates.len());
    let rows: Vec<Row<'_>> = updates
        .iter()
        .filter(|u| seen.insert(u.update_id))
        .map(|u| Row { update_id: u.update_id, chat_key: u.chat_key, payload: &u.payload })
        .collect();
    serde_json::to_string(&rows).unwrap_or_default()
}

fn pending_row<R: Row>(row: &R) -> Result<PendingUpdate, sqlx::Error>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(PendingUpdate {
        update_id: row.try_get(0)?,
        chat_key: row.try_get(1)?,
        payload: row.try_get(2)?,
        received_at: row.try_get(3)?,
    })
}

/// Implements [`InboxRepository`] for `Sql<$db>`, with its dialect's insert, mark-done and forget statements.
macro_rules! inbox {
    ($db:ty, $insert:expr, $mark_done:expr, $forget:expr) => {
        #[async_trait]
        impl InboxRepository for Sql<$db> {
            async fn insert(
                &self,
                bot_id: &str,
                updates: &[InboxUpdate],
                at: DateTime<Utc>,
            ) -> Result<Vec<i64>, StorageError> {
                if updates.is_empty() {
                    return Ok(Vec::new());
                }
                // One statement: atomic without a transaction around it.
                let rows =
                    sqlx::query($insert).bind(bot_id).bind(rows_json(updates)).bind(at).fetch_all(&self.0).await?;
                let mut stored = rows.iter().map(|row| row.try_get(0)).collect::<Result<HashSet<i64>, _>>()?;
                // In the order given (RETURNING promises none), each once.
                Ok(updates.iter().map(|u| u.update_id).filter(|id| stored.remove(id)).collect())
            }

            async fn pending(&self, bot_id: &str, limit: u32) -> Result<Vec<PendingUpdate>, StorageError> {
                let rows = sqlx::query(PENDING).bind(bot_id).bind(i64::from(limit)).fetch_all(&self.0).await?;
                rows.iter().map(pending_row).collect::<Result<_, sqlx::Error>>().map_err(StorageError::from)
            }

            async fn pending_one(&self, bot_id: &str, update_id: i64) -> Result<Option<PendingUpdate>, StorageError> {
                let row = sqlx::query(PENDING_ONE).bind(bot_id).bind(update_id).fetch_optional(&self.0).await?;
                Ok(row.as_ref().map(pending_row).transpose()?)
            }

            async fn mark_done(&self, updates: &[(&str, i64)], at: DateTime<Utc>) -> Result<(), StorageError> {
                if updates.is_empty() {
                    return Ok(());
                }
                let pairs = serde_json::to_string(updates).unwrap_or_default();
                // One statement: atomic without a transaction around it.
                sqlx::query($mark_done).bind(pairs).bind(at).execute(&self.0).await?;
                Ok(())
            }

            async fn forget(&self, updates: &[(&str, i64)]) -> Result<(), StorageError> {
                if updates.is_empty() {
                    return Ok(());
                }
                let mut by_bot: HashMap<&str, Vec<i64>> = HashMap::new();
                for (bot_id, id) in updates {
                    by_bot.entry(*bot_id).or_default().push(*id);
                }
                let mut tx = self.0.begin().await?;
                for (bot_id, ids) in by_bot {
                    let ids = serde_json::to_string(&ids).unwrap_or_default();
                    sqlx::query($forget).bind(bot_id).bind(ids).execute(&mut *tx).await?;
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

inbox!(Postgres, INSERT_POSTGRES, MARK_DONE_POSTGRES, FORGET_POSTGRES);
inbox!(Sqlite, INSERT_SQLITE, MARK_DONE_SQLITE, FORGET_SQLITE);
