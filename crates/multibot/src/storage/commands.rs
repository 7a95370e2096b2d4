//! The `fleet_commands` and `fleet_replies` tables, on PostgreSQL: an admin's order for the replica that runs a
//! bot (or for every replica), and each replica's answer. Every new row is announced with `NOTIFY` on the channel
//! [`CHANNEL`] (the payload is the command's id), so that the replica concerned acts at once and the one that
//! asked reads the answer at once. A notice can be lost (a listener reconnecting): the replicas also read the
//! commands past the last one they saw at each lease round, and the asker reads the answers on a timer too.

use async_trait::async_trait;
use sqlx::{Postgres, Row, postgres::PgListener};

use super::{StorageError, sql::Sql};

/// The `LISTEN`/`NOTIFY` channel of commands and replies.
pub const CHANNEL: &str = "multibot_fleet";

/// An order for a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Grows with each command.
    pub id: i64,
    /// The bot it concerns; none for the whole fleet.
    pub bot_id: Option<String>,
    /// What to do (`start`, `stop`, `restart`, `reload`, `reload_all`).
    pub action: String,
}

/// The command tables.
#[async_trait]
pub trait CommandRepository: Send + Sync {
    /// Records an order for `target` (a replica's id, or `*` for all) and announces it; returns its id.
    async fn issue(&self, target: &str, bot: Option<&str>, action: &str) -> Result<i64, StorageError>;
    /// The id of the newest command (0 with none): a starting replica acts only on later ones.
    async fn newest(&self) -> Result<i64, StorageError>;
    /// The commands for `replica` (or for all) issued after the command `after`, oldest first.
    async fn after(&self, replica: &str, after: i64) -> Result<Vec<Command>, StorageError>;
    /// Records `replica`'s answer to a command and announces it.
    async fn reply(&self, command: i64, replica: &str, body: &str) -> Result<(), StorageError>;
    /// The answers to a command so far, as (replica, body).
    async fn replies(&self, command: i64) -> Result<Vec<(String, String)>, StorageError>;
    /// Sends `payload` to every replica listening on [`CHANNEL`], with no row.
    async fn announce(&self, payload: &str) -> Result<(), StorageError>;
    /// A connection listening on [`CHANNEL`].
    async fn listen(&self) -> Result<PgListener, StorageError>;
}

const ISSUE: &str = "INSERT INTO fleet_commands (target, bot_id, action) VALUES ($1, $2, $3) RETURNING id";
const NOTIFY: &str = "SELECT pg_notify($1, $2)";
const NEWEST: &str = "SELECT COALESCE(max(id), 0) FROM fleet_commands";
const AFTER: &str = "SELECT id, bot_id, action FROM fleet_commands \
     WHERE id > $2 AND (target = $1 OR target = '*') ORDER BY id";
const REPLY: &str = "INSERT INTO fleet_replies (command_id, replica, body) VALUES ($1, $2, $3) \
     ON CONFLICT (command_id, replica) DO UPDATE SET body = excluded.body";
const REPLIES: &str = "SELECT replica, body FROM fleet_replies WHERE command_id = $1 ORDER BY replica";

#[async_trait]
impl CommandRepository for Sql<Postgres> {
    async fn issue(&self, target: &str, bot: Option<&str>, action: &str) -> Result<i64, StorageError> {
        let id: i64 = sqlx::query_scalar(ISSUE).bind(target).bind(bot).bind(action).fetch_one(&self.0).await?;
        sqlx::query(NOTIFY).bind(CHANNEL).bind(id.to_string()).execute(&self.0).await?;
        Ok(id)
    }

    async fn newest(&self) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar(NEWEST).fetch_one(&self.0).await?)
    }

    async fn after(&self, replica: &str, after: i64) -> Result<Vec<Command>, StorageError> {
        let rows = sqlx::query(AFTER).bind(replica).bind(after).fetch_all(&self.0).await?;
        let commands = rows
            .iter()
            .map(|row| Ok(Command { id: row.try_get(0)?, bot_id: row.try_get(1)?, action: row.try_get(2)? }));
        commands.collect::<Result<Vec<_>, sqlx::Error>>().map_err(StorageError::from)
    }

    async fn reply(&self, command: i64, replica: &str, body: &str) -> Result<(), StorageError> {
        sqlx::query(REPLY).bind(command).bind(replica).bind(body).execute(&self.0).await?;
        sqlx::query(NOTIFY).bind(CHANNEL).bind(command.to_string()).execute(&self.0).await?;
        Ok(())
    }

    async fn replies(&self, command: i64) -> Result<Vec<(String, String)>, StorageError> {
        let rows = sqlx::query(REPLIES).bind(command).fetch_all(&self.0).await?;
        let replies = rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?)));
        replies.collect::<Result<Vec<_>, sqlx::Error>>().map_err(StorageError::from)
    }

    async fn announce(&self, payload: &str) -> Result<(), StorageError> {
        sqlx::query(NOTIFY).bind(CHANNEL).bind(payload).execute(&self.0).await?;
        Ok(())
    }

    async fn listen(&self) -> Result<PgListener, StorageError> {
        let mut listener = PgListener::connect_with(&self.0).await?;
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }
}
