//! One fleet per database. Two Multibot processes on one database would both poll every bot (Telegram answers
//! 409 Conflict to one of them), handle updates twice and fight over the inbox. So the process that runs the
//! fleet holds a lock ([`ProcessLock`]), and a second one is refused at start with a message that says who holds
//! it:
//!
//! - **SQLite**: an exclusive lock on `<file>.lock` beside the database, holding the holder's pid. The kernel
//!   releases it when the process ends, `kill -9` included. (A lock file beside the database, not the database
//!   file itself: closing another descriptor of the database file would drop SQLite's own locks on it.)
//! - **PostgreSQL** ([`FleetLock`]): a session advisory lock on a connection of its own, exclusive without
//!   `REPLICA_ID`, shared by the replicas with it. So one process runs the fleet alone, or any number of replicas
//!   share it through their leases, never both. The server releases the lock when the session ends: at once for
//!   a process that exits or is killed, and within about 15 s for one whose machine or network is gone (the
//!   session's TCP keepalives are set short). The lock's connection is checked every 5 s; when it breaks (a
//!   database restart) it is made again and the lock taken again, and if another process took it meanwhile,
//!   this one shuts down rather than run the fleet twice.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read, Seek, Write},
    path::{Path, PathBuf},
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use secrecy::ExposeSecret;
use sqlx::{
    Connection,
    postgres::{PgConnectOptions, PgConnection},
};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{error, info, warn};

use super::StorageError;
use crate::config::{DatabaseTarget, DatabaseUrl};

/// The lock of the SQLite file this process runs the fleet on; released when dropped.
#[derive(Debug)]
pub struct ProcessLock {
    _file: File,
}

impl ProcessLock {
    /// Locks the SQLite file of `url` for this process, writing its pid into the lock file. PostgreSQL and an
    /// in-memory SQLite database need no lock (`None`).
    pub fn acquire(url: &DatabaseUrl) -> Result<Option<ProcessLock>, StorageError> {
        let Some(database) = sqlite_file(url) else { return Ok(None) };
        let mut path = database.clone().into_os_string();
        path.push(".lock");
        let path = PathBuf::from(path);
        let failed = |source: std::io::Error| StorageError::Lock { path: path.clone(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StorageError::Directory { path: dir.to_owned(), source })?;
        }
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(failed)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let pid = holder.trim().parse().ok();
                return Err(StorageError::InUse { database, pid });
            }
            Err(TryLockError::Error(e)) => return Err(failed(e)),
        }
        file.set_len(0).and_then(|()| file.rewind()).map_err(failed)?;
        writeln!(file, "{}", std::process::id()).map_err(failed)?;
        Ok(Some(ProcessLock { _file: file }))
    }
}

/// The advisory lock's key: "multibot" in ASCII. It is per database, so fleets on other databases of one server
/// do not meet.
const FLEET_KEY: i64 = 0x6d75_6c74_6962_6f74;

/// How often the lock's connection is checked, and how soon a broken one is made again.
const CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The PostgreSQL fleet lock, held by a task of its own on a connection of its own; released when dropped.
#[derive(Debug)]
pub struct FleetLock {
    _stop: DropGuard,
    lost: Arc<AtomicBool>,
}

/// Who takes the PostgreSQL fleet lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// A process without `REPLICA_ID`: the fleet is its alone.
    Alone,
    /// A replica (`REPLICA_ID`): shared with the other replicas.
    Replica,
}

impl Holder {
    fn statement(self) -> &'static str {
        match self {
            Holder::Alone => "SELECT pg_try_advisory_lock($1)",
            Holder::Replica => "SELECT pg_try_advisory_lock_shared($1)",
        }
    }
}

impl FleetLock {
    /// Takes the fleet lock of the PostgreSQL database `url` as `holder` (`None` for SQLite). Refused with
    /// [`StorageError::FleetInUse`] while a process of the other kind (or, `Alone`, any other process) holds it.
    /// `lost` is cancelled if the lock is lost to another process after a broken connection.
    pub async fn acquire(
        url: &DatabaseUrl,
        holder: Holder,
        lost: CancellationToken,
    ) -> Result<Option<FleetLock>, StorageError> {
        let DatabaseTarget::Postgres(url) = url.target() else { return Ok(None) };
        let options = std::str::FromStr::from_str(url.expose_secret())
            .map(|options: PgConnectOptions| options.application_name("multibot fleet lock"))?;
        let mut connection = take(&options, holder).await?;
        let (stop, lost_flag) = (CancellationToken::new(), Arc::new(AtomicBool::new(false)));
        let (guard, flag) = (stop.clone().drop_guard(), lost_flag.clone());
        // Not in a tracker: the task lives as long as the lock, which the application drops last.
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(CHECK_EVERY) => {}
                }
                // A network that silently drops packets would hold a ping for minutes: it gets one interval.
                if matches!(tokio::time::timeout(CHECK_EVERY, connection.ping()).await, Ok(Ok(()))) {
                    continue;
                }
                warn!("the database connection holding the fleet lock broke; taking the lock again");
                loop {
                    let again = tokio::time::timeout(CHECK_EVERY, take(&options, holder)).await;
                    let silent = |_| Err(StorageError::Connect(format!("no answer within {CHECK_EVERY:?}")));
                    match again.unwrap_or_else(silent) {
                        Ok(again) => {
                            connection = again;
                            info!("fleet lock taken again");
                            break;
                        }
                        Err(e @ StorageError::FleetInUse { .. }) => {
                            error!(error = %e, "the fleet lock went to another process while its connection was down; shutting down");
                            flag.store(true, Ordering::SeqCst);
                            lost.cancel();
                            return;
                        }
                        Err(e) => warn!(error = %e, "cannot take the fleet lock again yet"),
                    }
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(CHECK_EVERY) => {}
                    }
                }
            }
        });
        Ok(Some(FleetLock { _stop: guard, lost: lost_flag }))
    }

    /// Whether another process took the lock after this one's connection broke.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

/// Connects and takes the lock, or says who holds it.
async fn take(options: &PgConnectOptions, holder: Holder) -> Result<PgConnection, StorageError> {
    let mut connection =
        PgConnection::connect_with(options).await.map_err(|e| StorageError::Connect(crate::tls::describe(&e)))?;
    // The server notices a vanished client after 5 + 3 x 3 s instead of the system's two hours, and frees the lock.
    sqlx::raw_sql("SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 3; SET tcp_keepalives_count = 3")
        .execute(&mut connection)
        .await?;
    let taken: bool = sqlx::query_scalar(holder.statement()).bind(FLEET_KEY).fetch_one(&mut connection).await?;
    if taken {
        return Ok(connection);
    }
    // Who holds it: the lock's other sessions, by mode (`ExclusiveLock` alone, `ShareLock` replicas).
    let (alone, replicas): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE mode = 'ExclusiveLock'), count(*) FILTER (WHERE mode = 'ShareLock') \
         FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = \
         (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND classid = ($1 >> 32)::oid AND objid = ($1 & 4294967295)::oid AND objsubid = 1",
    )
    .bind(FLEET_KEY)
    .fetch_one(&mut connection)
    .await?;
    Err(StorageError::FleetInUse { holder, alone: alone > 0, replicas })
}

/// The file of an SQLite `url`, unless it is in memory or PostgreSQL.
fn sqlite_file(url: &DatabaseUrl) -> Option<PathBuf> {
    match url.target() {
        DatabaseTarget::Postgres(_) => None,
        DatabaseTarget::SqliteFile(path) => Some(path.clone()),
        DatabaseTarget::SqliteUrl(_) if url.is_sqlite_in_memory() => None,
        DatabaseTarget::SqliteUrl(text) => sqlx::sqlite::SqliteConnectOptions::from_str(text)
            .ok()
            .map(|options| options.get_filename().to_owned())
            .filter(|file| file != Path::new(":memory:") && !file.as_os_str().is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;

    #[test]
    fn a_second_lock_on_one_file_is_refused_with_the_holders_pid_and_released_on_drop() {
        let dir = TempDir::new("lock");
        let url = DatabaseUrl::sqlite_file(dir.path().join("data/bots.db"));
        let first = ProcessLock::acquire(&url).unwrap().expect("an SQLite file is locked");
        // Bad input: the same file again, while the first lock is held.
        let error = ProcessLock::acquire(&url).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("bots.db is in use by another Multibot process"), "{text}");
        assert!(text.contains(&format!("(pid {})", std::process::id())), "{text}");
        drop(first);
        assert!(ProcessLock::acquire(&url).unwrap().is_some(), "free again once the holder is gone");
        let by_url = DatabaseUrl::parse(&format!("sqlite://{}", dir.path().join("other.db").display())).unwrap();
        let _held = ProcessLock::acquire(&by_url).unwrap().expect("an sqlite:// file is locked too");
        assert!(ProcessLock::acquire(&by_url).is_err());
        for free in ["sqlite::memory:", "sqlite://file?mode=memory", "postgres://u:p@localhost/db"] {
            assert!(ProcessLock::acquire(&DatabaseUrl::parse(free).unwrap()).unwrap().is_none(), "{free}");
        }
    }
}
