//! One process per SQLite file. Two Multibot processes on one file would both poll every bot (Telegram answers
//! 409 Conflict to one of them), handle updates twice and fight over the inbox. The process that runs the fleet
//! holds an exclusive lock on `<file>.lock` beside the database ([`ProcessLock`]); a second one is refused with
//! a message that names the first one's pid. The kernel releases the lock when the process ends, `kill -9`
//! included, so a crash never leaves the file locked. (A lock file beside the database, not the database file
//! itself: closing another descriptor of the database file would drop SQLite's own locks on it.)

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read, Seek, Write},
    path::{Path, PathBuf},
    str::FromStr,
};

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

    #[test]
    fn a_second_lock_on_one_file_is_refused_with_the_holders_pid_and_released_on_drop() {
        let dir = std::env::temp_dir().join(format!("multibot-lock-{}", std::process::id()));
        let url = DatabaseUrl::sqlite_file(dir.join("data/bots.db"));
        let first = ProcessLock::acquire(&url).unwrap().expect("an SQLite file is locked");
        // Bad input: the same file again, while the first lock is held.
        let error = ProcessLock::acquire(&url).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("bots.db is in use by another Multibot process"), "{text}");
        assert!(text.contains(&format!("(pid {})", std::process::id())), "{text}");
        drop(first);
        assert!(ProcessLock::acquire(&url).unwrap().is_some(), "free again once the holder is gone");
        let by_url = DatabaseUrl::parse(&format!("sqlite://{}", dir.join("other.db").display())).unwrap();
        let _held = ProcessLock::acquire(&by_url).unwrap().expect("an sqlite:// file is locked too");
        assert!(ProcessLock::acquire(&by_url).is_err());
        for free in ["sqlite::memory:", "sqlite://file?mode=memory", "postgres://u:p@localhost/db"] {
            assert!(ProcessLock::acquire(&DatabaseUrl::parse(free).unwrap()).unwrap().is_none(), "{free}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
