//! The repositories on PostgreSQL and SQLite. Both dialects accept the same statements here (`$n` parameters,
//! `ON CONFLICT ... DO UPDATE`, `RETURNING`), so the SQL text is written once and [`repositories!`] implements
//! every trait for each backend's pool from it. Only the schema differs, in `migrations/{postgres,sqlite}/`,
//! embedded here.

use std::{borrow::Cow, time::Duration};

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{
    Pool, Postgres, Row, SqlSafeStr, Sqlite,
    migrate::{Migrate, Migration, MigrationType, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    types::Json,
};

use super::checkpoint::{Checkpointer, WAL_KEPT};
use super::{
    BotEvent, BotRecord, BotRepository, BotUser, BroadcastRepository, Database, EventFilter, EventRepository,
    InboxRepository, NewEvent, PluginStateRepository, Storage, StorageError, UserProfile, UserRepository, UserSeen,
};
use crate::config::Backend;

/// The embedded migrations of a backend: version, description, SQL. A test checks that the lists match the files.
pub(super) fn migrations(backend: Backend) -> &'static [(i64, &'static str, &'static str)] {
    // One list for both backends: each migration is a file of the same name in each backend's directory.
    macro_rules! embedded {
        ($(($version:literal, $name:literal, $file:literal)),* $(,)?) => {
            match backend {
                Backend::Postgres => {
                    &[$(($version, $name, include_str!(concat!("../../../../migrations/postgres/", $file)))),*]
                }
                Backend::Sqlite => {
                    &[$(($version, $name, include_str!(concat!("../../../../migrations/sqlite/", $file)))),*]
                }
            }
        };
    }
    embedded!(
        (1, "initial", "0001_initial.sql"),
        (2, "inbox", "0002_inbox.sql"),
        (3, "inbox_lean", "0003_inbox_lean.sql"),
        (4, "leases", "0004_leases.sql"),
        (5, "fleet_commands", "0005_fleet_commands.sql"),
        (6, "broadcasts", "0006_broadcasts.sql"),
        (7, "broadcast_media", "0007_broadcast_media.sql"),
    )
}

fn migrator(backend: Backend) -> Migrator {
    Migrator::with_migrations(
        migrations(backend)
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(*version, Cow::Borrowed(*description), MigrationType::Simple, sql.into_sql_str(), false)
            })
            .collect(),
    )
}

/// The table sqlx keeps applied migrations in.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// How long a query waits for a connection: while the database is down, a handler that needs it fails after this
/// instead of hanging (error_handler then tells the user).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a PostgreSQL pool; fails when the server cannot be reached.
pub(super) async fn postgres(options: PgConnectOptions) -> Result<Storage, StorageError> {
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.clone())
        .await
        .map_err(|e| StorageError::Connect(crate::tls::describe(&e)))?;
    // The replicas' leases and commands get connections of their own, opened only when used (with REPLICA_ID):
    // a renewal must not wait behind the bots' queries. One of the three listens for the commands.
    let control = PgPoolOptions::new().max_connections(3).acquire_timeout(ACQUIRE_TIMEOUT).connect_lazy_with(options);
    Ok(storage(Backend::Postgres, std::sync::Arc::new(Sql(pool)), Some(std::sync::Arc::new(Sql(control)))))
}

/// Opens an SQLite pool, creating the file and its directory unless the database is `in_memory`.
pub(super) async fn sqlite(options: SqliteConnectOptions, in_memory: bool) -> Result<Storage, StorageError> {
    if !in_memory && let Some(dir) = options.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::Directory { path: dir.to_owned(), source })?;
    }
    let options = options
        .create_if_missing(true)
        // WAL lets readers run beside the one writer. NORMAL syncs the WAL at checkpoints, not at each commit: a
        // commit survives a crash of the process (the durable inbox's promise), only a power loss may undo the
        // last ones; FULL would add an fsync per commit, the inbox's insert and done marks included.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(ACQUIRE_TIMEOUT);
    let pool = if in_memory {
        // An in-memory database lives as long as a connection to it: keep exactly one, forever.
        SqlitePoolOptions::new().max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None)
    } else {
        // SQLite has one writer. With several connections the bots' writes meet its lock and sleep in its busy
        // handler; one connection queues them in the pool instead (docs/BENCHMARKS.md, durable inbox).
        SqlitePoolOptions::new().max_connections(1)
    };
    // A file's checkpoints run off the writer's path, on a connection of their own (`checkpoint.rs`).
    let options = if in_memory {
        options
    } else {
        options.pragma("wal_autocheckpoint", "0").pragma("journal_size_limit", WAL_KEPT.to_string())
    };
    // A file on this machine does not drop a connection: no `SELECT 1` (a trip to the connection's thread)
    // before every query.
    let pool = pool.acquire_timeout(ACQUIRE_TIMEOUT).test_before_acquire(false).connect_with(options.clone()).await?;
    let checkpoints = if in_memory { None } else { Some(std::sync::Arc::new(Checkpointer::start(&options).await?)) };
    Ok(Storage { checkpoints, ..storage(Backend::Sqlite, std::sync::Arc::new(Sql(pool)), None) })
}

fn storage<DB: sqlx::Database>(
    backend: Backend,
    sql: std::sync::Arc<Sql<DB>>,
    postgres: Option<std::sync::Arc<Sql<Postgres>>>,
) -> Storage
where
    Sql<DB>: Database
        + BotRepository
        + UserRepository
        + EventRepository
        + PluginStateRepository
        + InboxRepository
        + BroadcastRepository,
{
    Storage {
        control: postgres,
        checkpoints: None,
        backend,
        database: sql.clone(),
        bots: sql.clone(),
        users: sql.clone(),
        events: sql.clone(),
        plugin_state: sql.clone(),
        inbox: sql.clone(),
        broadcasts: sql,
    }
}

/// A pool of one backend; the repositories are implemented on it.
pub(super) struct Sql<DB: sqlx::Database>(pub(super) Pool<DB>);

const UPSERT_BOT: &str = "INSERT INTO bots (id, name, description, mode, enabled, config_hash, status, started_at, \
     stopped_at, last_error, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description, mode = excluded.mode, \
     enabled = excluded.enabled, config_hash = excluded.config_hash, status = excluded.status, \
     started_at = COALESCE(excluded.started_at, bots.started_at), \
     stopped_at = COALESCE(excluded.stopped_at, bots.stopped_at), \
     last_error = excluded.last_error, updated_at = excluded.updated_at";
const GET_BOT: &str = "SELECT id, name, description, mode, enabled, config_hash, status, started_at, stopped_at, \
     last_error, created_at, updated_at FROM bots WHERE id = $1";
const LIST_BOTS: &str = "SELECT id, name, description, mode, enabled, config_hash, status, started_at, stopped_at, \
     last_error, created_at, updated_at FROM bots ORDER BY id";

/// A statement that writes many rows at once: `head`, then `row` once per row, then `tail`. Built once per row
/// count, a power of two up to [`BATCH_MAX`] ([`batch_len`] cuts a batch so), so that a handful of statements, each
/// prepared once per connection, write any batch in one round trip per statement rather than one per row.
/// PostgreSQL gets `row`'s `?` numbered (`$1`, `$2`, ...); SQLite keeps them anonymous, because it looks a numbered
/// parameter up by walking a list, which makes binding hundreds of them quadratic.
struct Batched {
    head: &'static str,
    row: &'static str,
    tail: &'static str,
    /// For PostgreSQL, for SQLite; per power of two.
    built: [std::sync::OnceLock<[String; 7]>; 2],
}

/// Most rows one [`Batched`] statement writes.
const BATCH_MAX: usize = 64;

impl Batched {
    const fn new(head: &'static str, row: &'static str, tail: &'static str) -> Batched {
        Batched { head, row, tail, built: [std::sync::OnceLock::new(), std::sync::OnceLock::new()] }
    }

    /// The statement for `rows` rows, a power of two up to [`BATCH_MAX`].
    fn statement(&'static self, rows: usize, backend: Backend) -> &'static str {
        debug_assert!(rows.is_power_of_two() && rows <= BATCH_MAX);
        let numbered = backend == Backend::Postgres;
        let built =
            self.built[usize::from(!numbered)].get_or_init(|| std::array::from_fn(|i| self.build(1 << i, numbered)));
        &built[rows.ilog2() as usize]
    }

    fn build(&self, rows: usize, numbered: bool) -> String {
        let mut sql = String::from(self.head);
        let mut param = 0;
        for row in 0..rows {
            if row > 0 {
                sql.push_str(", ");
            }
            for c in self.row.chars() {
                match c {
                    '?' if numbered => {
                        param += 1;
                        sql.push_str(&format!("${param}"));
                    }
                    c => sql.push(c),
                }
            }
        }
        sql.push_str(self.tail);
        sql
    }
}

/// How many rows the next statement of a batch with `left` rows writes: the largest power of two that fits, at most
/// [`BATCH_MAX`].
fn batch_len(left: usize) -> usize {
    if left >= BATCH_MAX { BATCH_MAX } else { 1 << left.ilog2() }
}

static UPSERT_USERS: Batched = Batched::new(
    "INSERT INTO bot_users (bot_id, user_id, username, first_name, last_name, language_code, first_seen, \
     last_seen, message_count) VALUES ",
    "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
    " ON CONFLICT (bot_id, user_id) DO UPDATE SET username = excluded.username, \
     first_name = excluded.first_name, last_name = excluded.last_name, language_code = excluded.language_code, \
     first_seen = CASE WHEN excluded.first_seen < bot_users.first_seen \
         THEN excluded.first_seen ELSE bot_users.first_seen END, \
     last_seen = CASE WHEN excluded.last_seen > bot_users.last_seen \
         THEN excluded.last_seen ELSE bot_users.last_seen END, \
     message_count = bot_users.message_count + excluded.message_count",
);

/// The sightings with those of one user folded into one, in order of first sighting.
fn distinct(users: &[UserSeen]) -> std::borrow::Cow<'_, [UserSeen]> {
    let mut seen = std::collections::HashSet::with_capacity(users.len());
    if users.iter().all(|u| seen.insert((u.bot_id.as_str(), u.user_id))) {
        return std::borrow::Cow::Borrowed(users);
    }
    let (mut merged, mut at): (Vec<UserSeen>, std::collections::HashMap<(&str, i64), usize>) = Default::default();
    for user in users {
        match at.get(&(user.bot_id.as_str(), user.user_id)) {
            Some(&i) => merged[i].merge(user.clone()),
            None => {
                at.insert((user.bot_id.as_str(), user.user_id), merged.len());
                merged.push(user.clone());
            }
        }
    }
    std::borrow::Cow::Owned(merged)
}

const GET_USER: &str = "SELECT bot_id, user_id, username, first_name, last_name, language_code, is_blocked, \
     first_seen, last_seen, message_count FROM bot_users WHERE bot_id = $1 AND user_id = $2";
const COUNT_USERS: &str = "SELECT COUNT(*) FROM bot_users WHERE bot_id = $1";
const COUNT_USERS_PER_BOT: &str = "SELECT bot_id, COUNT(*) FROM bot_users GROUP BY bot_id";
const RECENT_USERS: &str = "SELECT bot_id, user_id, username, first_name, last_name, language_code, is_blocked, \
     first_seen, last_seen, message_count FROM bot_users WHERE bot_id = $1 \
     ORDER BY last_seen DESC, user_id LIMIT $2";
const BLOCK_USER: &str = "UPDATE bot_users SET is_blocked = $3 WHERE bot_id = $1 AND user_id = $2";

const APPEND_EVENT: &str =
    "INSERT INTO bot_events (bot_id, kind, actor_user_id, detail, at) VALUES ($1, $2, $3, $4, $5) RETURNING id";
const LIST_EVENTS: &str = "SELECT id, bot_id, kind, actor_user_id, detail, at FROM bot_events \
     WHERE ($1 IS NULL OR bot_id = $1) AND ($2 IS NULL OR kind = $2) AND ($3 IS NULL OR id < $3) \
     ORDER BY id DESC LIMIT $4";
/// Ids grow with time, so the oldest rows are found from the start of the primary key without an index on `at`.
const PRUNE_EVENTS: &str =
    "DELETE FROM bot_events WHERE id IN (SELECT id FROM bot_events WHERE at < $1 ORDER BY id LIMIT $2)";

const GET_STATE: &str = "SELECT value FROM plugin_state WHERE bot_id = $1 AND plugin = $2 AND key = $3";
const SET_STATE: &str = "INSERT INTO plugin_state (bot_id, plugin, key, value, updated_at) \
     VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (bot_id, plugin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";
const DELETE_STATE: &str = "DELETE FROM plugin_state WHERE bot_id = $1 AND plugin = $2 AND key = $3";
const LIST_STATE: &str = "SELECT key, value FROM plugin_state WHERE bot_id = $1 AND plugin = $2 ORDER BY key";

/// A struct read from a row: each field from the column of its name, or `field: value` as given.
macro_rules! from_row {
    (@field $row:ident, $field:ident) => {
        $row.try_get(stringify!($field))?
    };
    (@field $row:ident, $field:ident, $value:expr) => {
        $value
    };
    ($row:ident, $ty:ident { $($field:ident $(: $value:expr)?),* $(,)? }) => {
        $ty { $($field: from_row!(@field $row, $field $(, $value)?)),* }
    };
}

/// Implements [`Database`] and every repository for `Sql<$db>`, whose rows are `$row`.
macro_rules! repositories {
    ($db:ty, $row:ty, $backend:expr) => {
        #[async_trait]
        impl Database for Sql<$db> {
            async fn applied_versions(&self) -> Result<Vec<i64>, StorageError> {
                let mut conn = self.0.acquire().await?;
                // Under the migrator's lock: replicas starting together on an empty database would otherwise race
                // to create the table, and all but one fail.
                conn.lock().await?;
                let ensured = conn.ensure_migrations_table(MIGRATIONS_TABLE).await;
                conn.unlock().await?;
                ensured?;
                let applied = conn.list_applied_migrations(MIGRATIONS_TABLE).await?;
                Ok(applied.into_iter().map(|m| m.version).collect())
            }

            async fn run_migrations(&self) -> Result<(), StorageError> {
                Ok(migrator($backend).run(&self.0).await?)
            }

            async fn ping(&self) -> Result<(), StorageError> {
                sqlx::query("SELECT 1").execute(&self.0).await?;
                Ok(())
            }

            async fn close(&self) {
                self.0.close().await;
            }
        }

        impl Sql<$db> {
            fn bot(row: &$row) -> Result<BotRecord, sqlx::Error> {
                Ok(from_row!(
                    row,
                    BotRecord {
                        id,
                        name,
                        description,
                        mode,
                        enabled,
                        config_hash,
                        status,
                        started_at,
                        stopped_at,
                        last_error,
                        created_at,
                        updated_at,
                    }
                ))
            }

            fn user(row: &$row) -> Result<BotUser, sqlx::Error> {
                Ok(from_row!(
                    row,
                    BotUser {
                        bot_id,
                        user_id,
                        profile: from_row!(row, UserProfile { username, first_name, last_name, language_code }),
                        is_blocked,
                        first_seen,
                        last_seen,
                        message_count,
                    }
                ))
            }

            fn event(row: &$row) -> Result<BotEvent, sqlx::Error> {
                Ok(from_row!(
                    row,
                    BotEvent {
                        id,
                        bot_id,
                        kind,
                        actor_user_id,
                        detail: row.try_get::<Json<Value>, _>("detail")?.0,
                        at,
                    }
                ))
            }
        }

        #[async_trait]
        impl BotRepository for Sql<$db> {
            async fn upsert(&self, bots: &[BotRecord]) -> Result<(), StorageError> {
                let mut tx = self.0.begin().await?;
                for bot in bots {
                    sqlx::query(UPSERT_BOT)
                        .bind(&bot.id)
                        .bind(&bot.name)
                        .bind(&bot.description)
                        .bind(&bot.mode)
                        .bind(bot.enabled)
                        .bind(&bot.config_hash)
                        .bind(&bot.status)
                        .bind(bot.started_at)
                        .bind(bot.stopped_at)
                        .bind(&bot.last_error)
                        .bind(bot.created_at)
                        .bind(bot.updated_at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get(&self, id: &str) -> Result<Option<BotRecord>, StorageError> {
                let row = sqlx::query(GET_BOT).bind(id).fetch_optional(&self.0).await?;
                Ok(row.as_ref().map(Self::bot).transpose()?)
            }

            async fn list(&self) -> Result<Vec<BotRecord>, StorageError> {
                let rows = sqlx::query(LIST_BOTS).fetch_all(&self.0).await?;
                Ok(rows.iter().map(Self::bot).collect::<Result<_, _>>()?)
            }
        }

        #[async_trait]
        impl UserRepository for Sql<$db> {
            async fn upsert(&self, users: &[UserSeen]) -> Result<(), StorageError> {
                let users = distinct(users);
                let mut tx = self.0.begin().await?;
                let mut left = &users[..];
                while !left.is_empty() {
                    let (chunk, rest) = left.split_at(batch_len(left.len()));
                    let mut query = sqlx::query(UPSERT_USERS.statement(chunk.len(), $backend));
                    for user in chunk {
                        query = query
                            .bind(&user.bot_id)
                            .bind(user.user_id)
                            .bind(&user.profile.username)
                            .bind(&user.profile.first_name)
                            .bind(&user.profile.last_name)
                            .bind(&user.profile.language_code)
                            .bind(user.first_seen)
                            .bind(user.last_seen)
                            .bind(user.messages);
                    }
                    query.execute(&mut *tx).await?;
                    left = rest;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get(&self, bot_id: &str, user_id: i64) -> Result<Option<BotUser>, StorageError> {
                let row = sqlx::query(GET_USER).bind(bot_id).bind(user_id).fetch_optional(&self.0).await?;
                Ok(row.as_ref().map(Self::user).transpose()?)
            }

            async fn get_user_count(&self, bot_id: &str) -> Result<i64, StorageError> {
                Ok(sqlx::query(COUNT_USERS).bind(bot_id).fetch_one(&self.0).await?.try_get(0)?)
            }

            async fn counts(&self) -> Result<Vec<(String, i64)>, StorageError> {
                let rows = sqlx::query(COUNT_USERS_PER_BOT).fetch_all(&self.0).await?;
                Ok(rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect::<Result<_, sqlx::Error>>()?)
            }

            async fn list_recent(&self, bot_id: &str, limit: u32) -> Result<Vec<BotUser>, StorageError> {
                let rows = sqlx::query(RECENT_USERS).bind(bot_id).bind(i64::from(limit)).fetch_all(&self.0).await?;
                Ok(rows.iter().map(Self::user).collect::<Result<_, _>>()?)
            }

            async fn set_blocked(&self, bot_id: &str, user_id: i64, blocked: bool) -> Result<bool, StorageError> {
                let done = sqlx::query(BLOCK_USER).bind(bot_id).bind(user_id).bind(blocked).execute(&self.0).await?;
                Ok(done.rows_affected() > 0)
            }
        }

        #[async_trait]
        impl EventRepository for Sql<$db> {
            async fn append(&self, event: &NewEvent) -> Result<i64, StorageError> {
                let row = sqlx::query(APPEND_EVENT)
                    .bind(&event.bot_id)
                    .bind(event.kind.as_str())
                    .bind(event.actor_user_id)
                    .bind(Json(&event.detail))
                    .bind(event.at)
                    .fetch_one(&self.0)
                    .await?;
                Ok(row.try_get(0)?)
            }

            async fn append_all(&self, events: &[NewEvent]) -> Result<(), StorageError> {
                let mut tx = self.0.begin().await?;
                for event in events {
                    sqlx::query(APPEND_EVENT)
                        .bind(&event.bot_id)
                        .bind(event.kind.as_str())
                        .bind(event.actor_user_id)
                        .bind(Json(&event.detail))
                        .bind(event.at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn page(
                &self,
                of: EventFilter<'_>,
                before: Option<i64>,
                limit: u32,
            ) -> Result<Vec<BotEvent>, StorageError> {
                let query = sqlx::query(LIST_EVENTS).bind(of.bot_id).bind(of.kind).bind(before).bind(i64::from(limit));
                let rows = query.fetch_all(&self.0).await?;
                Ok(rows.iter().map(Self::event).collect::<Result<_, _>>()?)
            }

            async fn prune(&self, before: chrono::DateTime<chrono::Utc>, limit: u32) -> Result<u64, StorageError> {
                let done = sqlx::query(PRUNE_EVENTS).bind(before).bind(i64::from(limit)).execute(&self.0).await?;
                Ok(done.rows_affected())
            }
        }

        #[async_trait]
        impl PluginStateRepository for Sql<$db> {
            async fn get(&self, bot_id: &str, plugin: &str, key: &str) -> Result<Option<Value>, StorageError> {
                let row = sqlx::query(GET_STATE).bind(bot_id).bind(plugin).bind(key).fetch_optional(&self.0).await?;
                Ok(row.map(|row| row.try_get::<Json<Value>, _>(0)).transpose()?.map(|json| json.0))
            }

            async fn set(&self, bot_id: &str, plugin: &str, key: &str, value: &Value) -> Result<(), StorageError> {
                sqlx::query(SET_STATE)
                    .bind(bot_id)
                    .bind(plugin)
                    .bind(key)
                    .bind(Json(value))
                    .bind(super::now())
                    .execute(&self.0)
                    .await?;
                Ok(())
            }

            async fn delete(&self, bot_id: &str, plugin: &str, key: &str) -> Result<bool, StorageError> {
                let done = sqlx::query(DELETE_STATE).bind(bot_id).bind(plugin).bind(key).execute(&self.0).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn list(&self, bot_id: &str, plugin: &str) -> Result<Vec<(String, Value)>, StorageError> {
                let rows = sqlx::query(LIST_STATE).bind(bot_id).bind(plugin).fetch_all(&self.0).await?;
                rows.iter()
                    .map(|row| Ok((row.try_get(0)?, row.try_get::<Json<Value>, _>(1)?.0)))
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StorageError::from)
            }
        }
    };
}

repositories!(Postgres, sqlx::postgres::PgRow, Backend::Postgres);
repositories!(Sqlite, sqlx::sqlite::SqliteRow, Backend::Sqlite);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_migrations_are_the_files_in_migrations() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        for (backend, dir) in [(Backend::Postgres, "postgres"), (Backend::Sqlite, "sqlite")] {
            let mut files: Vec<String> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            let embedded: Vec<String> = migrations(backend).iter().map(|(v, d, _)| format!("{v:04}_{d}.sql")).collect();
            assert_eq!(files, embedded, "{dir}: add the new file to `migrations()`");
        }
    }

    #[tokio::test]
    async fn the_lean_inbox_keeps_the_updates_a_version_2_database_left_pending() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let version_2 = Migrator::with_migrations(migrator(Backend::Sqlite).migrations[..2].to_vec());
        version_2.run(&pool).await.unwrap();
        let insert = "INSERT INTO inbox (bot_id, update_id, chat_key, payload, state, received_at, done_at) VALUES \
             ('shop', 7, 1, '{\"update_id\":7}', 'pending', '2026-11-30T00:00:00Z', NULL), \
             ('shop', 6, 1, '{\"update_id\":6}', 'done', '2026-11-30T00:00:00Z', '2026-11-30T00:00:01Z')";
        sqlx::query(insert).execute(&pool).await.unwrap();
        migrator(Backend::Sqlite).run(&pool).await.unwrap();
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT update_id, state, payload FROM inbox ORDER BY update_id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            rows,
            [(6, "done".into(), r#"{"update_id":6}"#.into()), (7, "pending".into(), r#"{"update_id":7}"#.into())]
        );
        // The rows live in the primary key's b-tree, and `state` has no index to keep up.
        let sql: String =
            sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE name = 'inbox'").fetch_one(&pool).await.unwrap();
        assert!(sql.ends_with("WITHOUT ROWID"), "{sql}");
        let indexes: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'inbox' AND sql IS NOT NULL",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(indexes, 0);
    }
}
