//! The `replicas` and `bot_leases` tables, on PostgreSQL: which replicas are alive, and which one owns each bot.
//!
//! A lease is a row with its owner, an expiry and a fencing token. Every time is the database server's clock
//! (`now()`), never a replica's: replicas whose clocks differ still agree on what has expired. A lease changes
//! hands only once it has expired, and its token then grows by one; releasing a lease expires it rather than
//! deleting it, so that the token never goes back. An owner renews only a lease that has not expired: one that
//! expired may already be another's.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Postgres, Row};

use super::{StorageError, sql::Sql};

/// A lease a replica holds: the bot, and the fencing token it holds it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The bot's id.
    pub bot_id: String,
    /// Grows by one each time the bot changes hands.
    pub token: i64,
    /// Stopped by an admin: held, but not run, wherever it moves.
    pub stopped: bool,
}

/// Who owns a bot now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The bot's id.
    pub bot_id: String,
    /// The replica holding (or last holding) its lease.
    pub replica: String,
    /// The lease's token.
    pub token: i64,
    /// Whether the lease is still valid.
    pub live: bool,
    /// Stopped by an admin.
    pub stopped: bool,
}

/// The lease tables.
#[async_trait]
pub trait LeaseRepository: Send + Sync {
    /// Records `replica` as alive for `ttl` more (the first time, as started now); returns every replica alive
    /// now, by id. Replicas dead for an hour are forgotten.
    async fn heartbeat(&self, replica: &str, ttl: Duration) -> Result<Vec<String>, StorageError>;
    /// Takes the leases of `bots` that are free or expired, for `ttl`; returns those taken.
    async fn acquire(&self, replica: &str, bots: &[String], ttl: Duration) -> Result<Vec<Lease>, StorageError>;
    /// Extends, by `ttl` from now, the leases of `bots` that `replica` holds and that have not expired; returns
    /// those extended (a missing one is lost).
    async fn renew(&self, replica: &str, bots: &[String], ttl: Duration) -> Result<Vec<Lease>, StorageError>;
    /// Ends the leases of `bots` that `replica` holds, so that another replica may take them at once.
    async fn release(&self, replica: &str, bots: &[String]) -> Result<(), StorageError>;
    /// Every lease, by bot id.
    async fn owners(&self) -> Result<Vec<Owner>, StorageError>;
    /// Marks `bot` as stopped by an admin (or no longer): whichever replica holds it, now or later, follows.
    async fn set_stopped(&self, bot: &str, stopped: bool) -> Result<(), StorageError>;
    /// `replica` stops: its leases end and it no longer counts as alive, so the others take its share at once.
    async fn leave(&self, replica: &str) -> Result<(), StorageError>;
}

const HEARTBEAT: &str = "INSERT INTO replicas (id, started_at, alive_until) VALUES ($1, now(), now() + $2) \
     ON CONFLICT (id) DO UPDATE SET alive_until = excluded.alive_until";
const FORGET: &str = "DELETE FROM replicas WHERE alive_until < now() - interval '1 hour'";
const FORGET_COMMANDS: &str = "DELETE FROM fleet_commands WHERE issued_at < now() - interval '1 hour'";
const ALIVE: &str = "SELECT id FROM replicas WHERE alive_until > now() ORDER BY id";
const ACQUIRE: &str = "INSERT INTO bot_leases (bot_id, owner, token, expires_at) \
     SELECT b, $1, 1, now() + $3 FROM unnest($2::text[]) AS b \
     ON CONFLICT (bot_id) DO UPDATE SET owner = excluded.owner, token = bot_leases.token + 1, \
     expires_at = excluded.expires_at WHERE bot_leases.expires_at <= now() RETURNING bot_id, token, stopped";
const RENEW: &str = "UPDATE bot_leases SET expires_at = now() + $3 \
     WHERE owner = $1 AND bot_id = ANY($2) AND expires_at > now() RETURNING bot_id, token, stopped";
const RELEASE: &str = "UPDATE bot_leases SET expires_at = now() WHERE owner = $1 AND bot_id = ANY($2)";
const LEAVE_LEASES: &str = "UPDATE bot_leases SET expires_at = now() WHERE owner = $1 AND expires_at > now()";
const LEAVE: &str = "UPDATE replicas SET alive_until = now() WHERE id = $1";
const OWNERS: &str = "SELECT bot_id, owner, token, expires_at > now(), stopped FROM bot_leases ORDER BY bot_id";
// A bot no replica has held yet gets an expired row, free to take, that remembers the stop.
const SET_STOPPED: &str = "INSERT INTO bot_leases (bot_id, owner, token, expires_at, stopped) \
     VALUES ($1, '', 0, now(), $2) ON CONFLICT (bot_id) DO UPDATE SET stopped = excluded.stopped";

fn leases(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<Lease>, StorageError> {
    let leases =
        rows.iter().map(|row| Ok(Lease { bot_id: row.try_get(0)?, token: row.try_get(1)?, stopped: row.try_get(2)? }));
    leases.collect::<Result<Vec<_>, sqlx::Error>>().map_err(StorageError::from)
}

#[async_trait]
impl LeaseRepository for Sql<Postgres> {
    async fn heartbeat(&self, replica: &str, ttl: Duration) -> Result<Vec<String>, StorageError> {
        sqlx::query(HEARTBEAT).bind(replica).bind(ttl).execute(&self.0).await?;
        sqlx::query(FORGET).execute(&self.0).await?;
        sqlx::query(FORGET_COMMANDS).execute(&self.0).await?;
        Ok(sqlx::query_scalar(ALIVE).fetch_all(&self.0).await?)
    }

    async fn acquire(&self, replica: &str, bots: &[String], ttl: Duration) -> Result<Vec<Lease>, StorageError> {
        if bots.is_empty() {
            return Ok(Vec::new());
        }
        leases(&sqlx::query(ACQUIRE).bind(replica).bind(bots).bind(ttl).fetch_all(&self.0).await?)
    }

    async fn renew(&self, replica: &str, bots: &[String], ttl: Duration) -> Result<Vec<Lease>, StorageError> {
        if bots.is_empty() {
            return Ok(Vec::new());
        }
        leases(&sqlx::query(RENEW).bind(replica).bind(bots).bind(ttl).fetch_all(&self.0).await?)
    }

    async fn release(&self, replica: &str, bots: &[String]) -> Result<(), StorageError> {
        sqlx::query(RELEASE).bind(replica).bind(bots).execute(&self.0).await?;
        Ok(())
    }

    async fn set_stopped(&self, bot: &str, stopped: bool) -> Result<(), StorageError> {
        sqlx::query(SET_STOPPED).bind(bot).bind(stopped).execute(&self.0).await?;
        Ok(())
    }

    async fn leave(&self, replica: &str) -> Result<(), StorageError> {
        let mut tx = self.0.begin().await?;
        sqlx::query(LEAVE_LEASES).bind(replica).execute(&mut *tx).await?;
        sqlx::query(LEAVE).bind(replica).execute(&mut *tx).await?;
        Ok(tx.commit().await?)
    }

    async fn owners(&self) -> Result<Vec<Owner>, StorageError> {
        let rows = sqlx::query(OWNERS).fetch_all(&self.0).await?;
        let owners = rows.iter().map(|row| {
            Ok(Owner {
                bot_id: row.try_get(0)?,
                replica: row.try_get(1)?,
                token: row.try_get(2)?,
                live: row.try_get(3)?,
                stopped: row.try_get(4)?,
            })
        });
        owners.collect::<Result<Vec<_>, sqlx::Error>>().map_err(StorageError::from)
    }
}
