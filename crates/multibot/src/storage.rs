//! Persistence: [`Storage`] opens PostgreSQL (`DATABASE_URL=postgres://...`) or an embedded SQLite file (the
//! default, `DATA_DIR/multibot.db`), applies the embedded migrations, and hands out the repositories:
//! [`BotRepository`] (`bots`), [`UserRepository`] (`bot_users`), [`EventRepository`] (`bot_events`) and
//! [`PluginStateRepository`] (`plugin_state`) and [`InboxRepository`] (`inbox`), plus [`PluginStore`], one
//! plugin's persistent store in one bot.
//!
//! - `sql`: one implementation of every repository per backend, sharing their SQL text; the migrations.
//! - `checkpoint`: an SQLite file's WAL checkpoints, on a connection of their own, off the writer's path.
//! - `inbox`: the `inbox` table, updates stored before they are confirmed.
//! - `broadcasts`: [`BroadcastRepository`], broadcast jobs and their deliveries, one per user.
//! - `recorder`: [`Recorder`], the background writer that batches user sightings, events and bot status off the
//!   reply path and retries while the database is down.
//! - `events`: the `bot_events` table's types ([`EventKind`], [`NewEvent`], [`BotEvent`], [`EventRepository`]) and
//!   one function per audit event kind (bot started, stopped, failed, reloaded, ...): each logs it, counts it and
//!   records it.
//! - `retention`: old events pruned in small batches (`EVENTS_RETENTION_DAYS`).

mod broadcasts;
mod checkpoint;
mod commands;
pub mod events;
mod inbox;
mod leases;
mod lock;
mod recorder;
pub mod retention;
mod sql;

use std::{fmt, path::PathBuf, str::FromStr, sync::Arc, time::Duration};

use async_trait::async_trait;
pub use broadcasts::{
    Broadcast, BroadcastMessage, BroadcastRepository, BroadcastState, Delivery, DeliveryOutcome, INTERRUPTED,
    NewBroadcast, Transition, Upload,
};
use chrono::{DateTime, SubsecRound, Utc};
pub use commands::{CHANNEL, Command, CommandRepository};
pub use events::{BotEvent, EventFilter, EventKind, EventRepository, NewEvent};
pub use inbox::{InboxDepth, InboxRepository, InboxUpdate, PendingUpdate};
pub use leases::{Lease, LeaseRepository, Owner};
pub use lock::{FleetLock, Holder, ProcessLock};
pub use recorder::Recorder;
use secrecy::ExposeSecret;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::config::{Backend, DatabaseTarget, DatabaseUrl};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database could not be reached; the text names the cause (refused, TLS certificate, DNS, ...).
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// The database refused or failed the operation, or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying a migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database was migrated by a newer Multibot.
    #[error(
        "the database schema is at version {database}, newer than this binary knows (version {known}): \
         upgrade multibot, or point DATABASE_URL at another database"
    )]
    SchemaTooNew {
        /// The newest migration applied to the database.
        database: i64,
        /// The newest migration this binary embeds.
        known: i64,
    },
    /// Migrations are pending and were not applied (`MIGRATE_ON_START=false`).
    #[error("the database schema lacks {0} migration(s): run `multibot migrate`, or set MIGRATE_ON_START=true")]
    Pending(usize),
    /// A stored JSON value does not have the requested type, or a value does not serialize.
    #[error("plugin state value: {0}")]
    Json(#[from] serde_json::Error),
    /// Another process runs a fleet on this SQLite file ([`ProcessLock`]).
    #[error(
        "the SQLite database {} is in use by another Multibot process{}: one SQLite file serves one process; stop \
         that one first, or give this one another DATABASE_URL or DATA_DIR",
        database.display(),
        pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    InUse {
        /// The database file.
        database: PathBuf,
        /// The other process, as its lock file says.
        pid: Option<u32>,
    },
    /// Another process runs a fleet on this PostgreSQL database in a way this one cannot join ([`FleetLock`]).
    #[error("{}", fleet_in_use(*holder, *alone, *replicas))]
    FleetInUse {
        /// How this process wanted the lock.
        holder: lock::Holder,
        /// Whether a process without `REPLICA_ID` holds it.
        alone: bool,
        /// How many replicas share it.
        replicas: i64,
    },
    /// The lock file beside an SQLite database could not be opened or written.
    #[error("cannot lock the database with {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The SQLite file's directory could not be created.
    #[error("cannot create the database directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn fleet_in_use(holder: lock::Holder, alone: bool, replicas: i64) -> String {
    let other = if alone {
        "another Multibot process without REPLICA_ID runs".to_owned()
    } else if replicas == 1 {
        "a Multibot replica with REPLICA_ID runs".to_owned()
    } else {
        format!("{replicas} Multibot replicas with REPLICA_ID run")
    };
    let what = match holder {
        lock::Holder::Alone => {
            "without REPLICA_ID a process runs the fleet alone; stop the other, give this one another DATABASE_URL, \
             or give every process its own REPLICA_ID to share the fleet"
        }
        lock::Holder::Replica => {
            "replicas share a fleet only with other replicas; stop that process, or restart it with a REPLICA_ID"
        }
    };
    format!("{other} a fleet on this PostgreSQL database: {what}")
}

/// Now, to the microsecond both backends store, so that a value read back equals the value written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A bot's `status` in the `bots` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotRowStatus {
    /// Receiving updates.
    Running,
    /// Stopped (by an admin, a reload or the shutdown).
    Stopped,
    /// Could not start, or failed while running.
    Failed,
    /// `enabled: false` in its YAML.
    Disabled,
}

impl BotRowStatus {
    /// The word stored in the column.
    pub fn as_str(self) -> &'static str {
        match self {
            BotRowStatus::Running => "running",
            BotRowStatus::Stopped => "stopped",
            BotRowStatus::Failed => "failed",
            BotRowStatus::Disabled => "disabled",
        }
    }
}

/// A row of `bots`: a configured bot and its last known state (the spec's `BotRecord`).
#[derive(Debug, Clone, PartialEq)]
pub struct BotRecord {
    /// The YAML id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Description (empty when none).
    pub description: String,
    /// `polling` or `webhook`.
    pub mode: String,
    /// `enabled` in its YAML.
    pub enabled: bool,
    /// The configuration's fingerprint, to see when it changed.
    pub config_hash: String,
    /// `running`, `stopped`, `disabled` or `failed`.
    pub status: String,
    /// When it last started; on upsert, `None` keeps the stored value.
    pub started_at: Option<DateTime<Utc>>,
    /// When it last stopped or failed; on upsert, `None` keeps the stored value.
    pub stopped_at: Option<DateTime<Utc>>,
    /// Why it failed, when it did.
    pub last_error: Option<String>,
    /// When the row was created (kept by upserts).
    pub created_at: DateTime<Utc>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
}

/// Who a Telegram user is: their names and language, as their latest update showed them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserProfile {
    /// `@username`, without the `@`.
    pub username: Option<String>,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: Option<String>,
    /// IETF language tag of the user's client.
    pub language_code: Option<String>,
}

impl From<&teloxide_core::types::User> for UserProfile {
    fn from(user: &teloxide_core::types::User) -> UserProfile {
        UserProfile {
            username: user.username.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            language_code: user.language_code.clone(),
        }
    }
}

/// A user seen by a bot, to add to `bot_users`: one sighting, or several merged.
#[derive(Debug, Clone, PartialEq)]
pub struct UserSeen {
    /// The bot's YAML id.
    pub bot_id: String,
    /// Telegram user id.
    pub user_id: i64,
    /// Who the user is, as Telegram last showed them.
    pub profile: UserProfile,
    /// The earliest sighting.
    pub first_seen: DateTime<Utc>,
    /// The latest sighting.
    pub last_seen: DateTime<Utc>,
    /// Messages to add to the user's count.
    pub messages: i64,
}

impl UserSeen {
    /// Folds a later sighting of the same user into this one.
    pub fn merge(&mut self, later: UserSeen) {
        self.first_seen = self.first_seen.min(later.first_seen);
        self.last_seen = self.last_seen.max(later.last_seen);
        self.messages += later.messages;
        self.profile = later.profile;
    }
}

/// A row of `bot_users` (the spec's `BotUser`).
#[derive(Debug, Clone, PartialEq)]
pub struct BotUser {
    /// The bot's YAML id.
    pub bot_id: String,
    /// Telegram user id.
    pub user_id: i64,
    /// Who the user is, as Telegram last showed them.
    pub profile: UserProfile,
    /// Whether the user blocked the bot.
    pub is_blocked: bool,
    /// First interaction.
    pub first_seen: DateTime<Utc>,
    /// Latest interaction.
    pub last_seen: DateTime<Utc>,
    /// Messages the user sent the bot.
    pub message_count: i64,
}

/// The `bots` table.
#[async_trait]
pub trait BotRepository: Send + Sync {
    /// Inserts bots or updates them (keeping `created_at`, and the timestamps given as `None`), in one
    /// transaction.
    async fn upsert(&self, bots: &[BotRecord]) -> Result<(), StorageError>;
    /// One bot.
    async fn get(&self, id: &str) -> Result<Option<BotRecord>, StorageError>;
    /// Every bot, by id.
    async fn list(&self) -> Result<Vec<BotRecord>, StorageError>;
}

/// The `bot_users` table.
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Records sightings in one transaction: new users are inserted; known ones get the newer names, the wider
    /// first/last seen and their message count increased.
    async fn upsert(&self, users: &[UserSeen]) -> Result<(), StorageError>;
    /// One user of a bot.
    async fn get(&self, bot_id: &str, user_id: i64) -> Result<Option<BotUser>, StorageError>;
    /// How many users a bot has seen.
    async fn get_user_count(&self, bot_id: &str) -> Result<i64, StorageError>;
    /// Users per bot, for every bot that has any.
    async fn counts(&self) -> Result<Vec<(String, i64)>, StorageError>;
    /// A bot's users, the most recently seen first.
    async fn list_recent(&self, bot_id: &str, limit: u32) -> Result<Vec<BotUser>, StorageError>;
    /// Marks a user as having blocked (or unblocked) the bot; false when the user is unknown.
    async fn set_blocked(&self, bot_id: &str, user_id: i64, blocked: bool) -> Result<bool, StorageError>;
}

/// The `plugin_state` table: JSON values by bot, plugin and key.
#[async_trait]
pub trait PluginStateRepository: Send + Sync {
    /// A value.
    async fn get(&self, bot_id: &str, plugin: &str, key: &str) -> Result<Option<Value>, StorageError>;
    /// Stores a value, replacing any.
    async fn set(&self, bot_id: &str, plugin: &str, key: &str, value: &Value) -> Result<(), StorageError>;
    /// Removes a value; false when there was none.
    async fn delete(&self, bot_id: &str, plugin: &str, key: &str) -> Result<bool, StorageError>;
    /// Every key and value of a plugin in a bot, by key.
    async fn list(&self, bot_id: &str, plugin: &str) -> Result<Vec<(String, Value)>, StorageError>;
}

/// A migration embedded in the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationInfo {
    /// Its version (the number its file name starts with).
    pub version: i64,
    /// Its description (the rest of its file name).
    pub description: String,
}

/// The database connection behind the repositories: migrations, reachability, closing.
#[async_trait]
trait Database: Send + Sync {
    /// The versions applied to the database (creating the bookkeeping table if needed).
    async fn applied_versions(&self) -> Result<Vec<i64>, StorageError>;
    /// Applies the pending migrations.
    async fn run_migrations(&self) -> Result<(), StorageError>;
    /// One round trip.
    async fn ping(&self) -> Result<(), StorageError>;
    /// Closes every connection.
    async fn close(&self);
}

/// The database: its repositories, migrations and reachability. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    backend: Backend,
    database: Arc<dyn Database>,
    bots: Arc<dyn BotRepository>,
    users: Arc<dyn UserRepository>,
    events: Arc<dyn EventRepository>,
    plugin_state: Arc<dyn PluginStateRepository>,
    inbox: Arc<dyn InboxRepository>,
    broadcasts: Arc<dyn BroadcastRepository>,
    /// The replicas' leases and commands, on a pool of their own: PostgreSQL's only (SQLite runs one process).
    control: Option<Arc<sql::Sql<sqlx::Postgres>>>,
    /// An SQLite file's checkpoints, off the writer's path.
    checkpoints: Option<Arc<checkpoint::Checkpointer>>,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Storage({})", self.backend)
    }
}

impl Storage {
    /// Connects (an SQLite file and its directories are created); does not migrate.
    pub async fn open(url: &DatabaseUrl) -> Result<Storage, StorageError> {
        match url.target() {
            DatabaseTarget::Postgres(url) => {
                let options = sqlx::postgres::PgConnectOptions::from_str(url.expose_secret())?;
                sql::postgres(options.application_name("multibot")).await
            }
            DatabaseTarget::SqliteUrl(text) => {
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(text)?;
                sql::sqlite(options, url.is_sqlite_in_memory()).await
            }
            DatabaseTarget::SqliteFile(path) => {
                sql::sqlite(sqlx::sqlite::SqliteConnectOptions::new().filename(path), false).await
            }
        }
    }

    /// Opens an in-memory SQLite database, migrated: for tests and examples.
    pub async fn in_memory() -> Result<Storage, StorageError> {
        let storage = Storage::open(&DatabaseUrl::in_memory()).await?;
        storage.migrate().await?;
        Ok(storage)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The migrations this binary embeds for this backend, oldest first.
    pub fn known_migrations(&self) -> Vec<MigrationInfo> {
        sql::migrations(self.backend)
            .iter()
            .map(|(version, description, _)| MigrationInfo { version: *version, description: (*description).into() })
            .collect()
    }

    /// The embedded migrations not applied yet; refuses a database migrated by a newer binary.
    pub async fn pending_migrations(&self) -> Result<Vec<MigrationInfo>, StorageError> {
        let applied = self.database.applied_versions().await?;
        let known = self.known_migrations();
        let newest_known = known.last().map_or(0, |m| m.version);
        if let Some(&newest) = applied.iter().max()
            && newest > newest_known
        {
            return Err(StorageError::SchemaTooNew { database: newest, known: newest_known });
        }
        Ok(known.into_iter().filter(|m| !applied.contains(&m.version)).collect())
    }

    /// Applies the pending migrations; returns those it applied (none when the schema is current).
    pub async fn migrate(&self) -> Result<Vec<MigrationInfo>, StorageError> {
        let pending = self.pending_migrations().await?;
        if !pending.is_empty() {
            self.database.run_migrations().await?;
        }
        Ok(pending)
    }

    /// Succeeds when the schema is exactly the one this binary knows: nothing pending, nothing newer.
    pub async fn check_schema(&self) -> Result<(), StorageError> {
        match self.pending_migrations().await?.len() {
            0 => Ok(()),
            n => Err(StorageError::Pending(n)),
        }
    }

    /// One round trip to the database: its latency, or why it is unreachable (for the health endpoints).
    pub async fn ping(&self) -> Result<Duration, StorageError> {
        let started = std::time::Instant::now();
        self.database.ping().await?;
        Ok(started.elapsed())
    }

    /// Closes the connections; later calls fail.
    pub async fn close(&self) {
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.stop().await;
        }
        self.database.close().await;
        if let Some(control) = &self.control {
            control.0.close().await;
        }
    }

    /// The `bots` table.
    pub fn bots(&self) -> &dyn BotRepository {
        &*self.bots
    }

    /// The `bot_users` table.
    pub fn users(&self) -> &dyn UserRepository {
        &*self.users
    }

    /// The `bot_events` table.
    pub fn events(&self) -> &dyn EventRepository {
        &*self.events
    }

    /// The `plugin_state` table.
    pub fn plugin_states(&self) -> &dyn PluginStateRepository {
        &*self.plugin_state
    }

    /// The `inbox` table.
    pub fn inbox(&self) -> &dyn InboxRepository {
        &*self.inbox
    }

    /// The `broadcasts` and `broadcast_deliveries` tables.
    pub fn broadcasts(&self) -> &dyn BroadcastRepository {
        &*self.broadcasts
    }

    /// The `replicas` and `bot_leases` tables, on PostgreSQL (`None` on SQLite, where one process runs the fleet).
    pub fn leases(&self) -> Option<&dyn LeaseRepository> {
        self.control.as_deref().map(|sql| sql as &dyn LeaseRepository)
    }

    /// The `fleet_commands` and `fleet_replies` tables, on PostgreSQL (`None` on SQLite).
    pub fn commands(&self) -> Option<&dyn CommandRepository> {
        self.control.as_deref().map(|sql| sql as &dyn CommandRepository)
    }

    /// The persistent store of one plugin in one bot.
    pub fn plugin_store(&self, bot_id: &str, plugin: &str) -> PluginStore {
        PluginStore { repository: self.plugin_state.clone(), bot_id: bot_id.into(), plugin: plugin.into() }
    }

    /// Deprecated: [`Storage::plugin_store`].
    #[deprecated(note = "use `Storage::plugin_store`")]
    pub fn plugin_state(&self, bot_id: &str, plugin: &str) -> PluginStore {
        self.plugin_store(bot_id, plugin)
    }
}

/// Deprecated: [`PluginStore`].
#[deprecated(note = "use `PluginStore`")]
pub type PluginState = PluginStore;

/// One plugin's persistent store in one bot (the `plugin_state` table): typed values by key, stored as JSON.
#[derive(Clone)]
pub struct PluginStore {
    repository: Arc<dyn PluginStateRepository>,
    bot_id: String,
    plugin: String,
}

impl PluginStore {
    /// The value of `key`, or `None` when unset; an error when it does not deserialize as `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StorageError> {
        match self.repository.get(&self.bot_id, &self.plugin, key).await? {
            Some(value) => Ok(Some(serde_json::from_value(value)?)),
            None => Ok(None),
        }
    }

    /// Stores `value` under `key`.
    pub async fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), StorageError> {
        self.repository.set(&self.bot_id, &self.plugin, key, &serde_json::to_value(value)?).await
    }

    /// Removes `key`; false when it was unset.
    pub async fn delete(&self, key: &str) -> Result<bool, StorageError> {
        self.repository.delete(&self.bot_id, &self.plugin, key).await
    }

    /// Every key and its JSON value, by key.
    pub async fn list(&self) -> Result<Vec<(String, Value)>, StorageError> {
        self.repository.list(&self.bot_id, &self.plugin).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_a_backend_and_never_show_a_password() {
        let url = DatabaseUrl::parse("postgresql://multibot:s3cret@db.example:5432/multibot?sslmode=require").unwrap();
        assert_eq!(url.backend(), Backend::Postgres);
        assert_eq!(url.to_string(), "postgresql://multibot:***@db.example:5432/multibot");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(DatabaseUrl::parse("postgres://localhost/x").unwrap().backend(), Backend::Postgres);
        assert_eq!(DatabaseUrl::parse("sqlite::memory:").unwrap().backend(), Backend::Sqlite);
        assert_eq!(DatabaseUrl::parse("sqlite://data/x.db").unwrap().backend(), Backend::Sqlite);
        // Bad input: a MySQL URL with a password; the error names the scheme, never the URL.
        let error = DatabaseUrl::parse("mysql://root:hunter2@localhost/db").unwrap_err();
        assert!(error.contains("\"mysql\"") && !error.contains("hunter2"), "{error}");
        assert!(DatabaseUrl::parse("just words").is_err());
    }

    #[tokio::test]
    async fn in_memory_storage_is_migrated_and_shared_by_its_clones() {
        let storage = Storage::in_memory().await.unwrap();
        let store = storage.clone().plugin_store("bot", "counter");
        store.set("n", &41).await.unwrap();
        assert_eq!(storage.plugin_store("bot", "counter").get::<i64>("n").await.unwrap(), Some(41));
        assert!(storage.pending_migrations().await.unwrap().is_empty());
        assert!(storage.ping().await.is_ok());
    }
}
