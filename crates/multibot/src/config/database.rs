//! `DATABASE_URL`: which database ([`Backend`]) and where ([`DatabaseUrl`]), never showing its password.

use std::{fmt, path::PathBuf};

use secrecy::{ExposeSecret, SecretString};

/// Which database a [`DatabaseUrl`] points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A PostgreSQL server.
    Postgres,
    /// An SQLite file, or an in-memory SQLite database.
    Sqlite,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        })
    }
}

/// `DATABASE_URL`: `postgres://` or `postgresql://` (PostgreSQL), `sqlite://PATH` or `sqlite::memory:`, or an
/// SQLite file path. `Debug` and `Display` never show the password.
///
/// ```rust
/// use multibot::config::{Backend, DatabaseUrl};
///
/// let url = DatabaseUrl::parse("postgres://multibot:s3cret@db.internal:5432/multibot?sslmode=require")
///     .expect("a PostgreSQL URL");
/// assert_eq!(url.backend(), Backend::Postgres);
/// // What logs and error messages show: no password, no query (it may hold one too).
/// assert_eq!(url.to_string(), "postgres://multibot:***@db.internal:5432/multibot");
/// assert!(!format!("{url:?}").contains("s3cret"));
///
/// assert_eq!(DatabaseUrl::parse("sqlite://data/multibot.db").expect("an SQLite URL").backend(), Backend::Sqlite);
/// // Bad input: an unsupported scheme; the error names it and never quotes the URL.
/// let error = DatabaseUrl::parse("mysql://root:hunter2@localhost/db").unwrap_err();
/// assert!(error.contains("\"mysql\"") && !error.contains("hunter2"), "{error}");
/// ```
#[derive(Clone)]
pub struct DatabaseUrl(DatabaseTarget);

/// Where a [`DatabaseUrl`] leads.
#[derive(Clone)]
pub enum DatabaseTarget {
    /// A PostgreSQL URL (it may hold a password).
    Postgres(SecretString),
    /// An `sqlite:` URL.
    SqliteUrl(String),
    /// An SQLite file path.
    SqliteFile(PathBuf),
}

impl DatabaseUrl {
    /// Checks the scheme; the error never quotes the URL (it may hold a password).
    pub fn parse(url: &str) -> Result<DatabaseUrl, String> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Ok(DatabaseUrl(DatabaseTarget::Postgres(SecretString::from(url.to_owned())))),
            "sqlite" => Ok(DatabaseUrl(DatabaseTarget::SqliteUrl(url.to_owned()))),
            _ => Err(format!(
                "unsupported scheme {scheme:?}: use postgres://, postgresql://, sqlite://PATH or sqlite::memory: \
                 (or leave DATABASE_URL unset for an SQLite file in DATA_DIR)"
            )),
        }
    }

    /// A private in-memory SQLite database.
    pub fn in_memory() -> DatabaseUrl {
        DatabaseUrl(DatabaseTarget::SqliteUrl("sqlite::memory:".to_owned()))
    }

    /// An SQLite file at `path`, created (with its directories) when opened.
    pub fn sqlite_file(path: impl Into<PathBuf>) -> DatabaseUrl {
        DatabaseUrl(DatabaseTarget::SqliteFile(path.into()))
    }

    /// Whether it is an SQLite database in memory (`sqlite::memory:`, `mode=memory`): no file, gone at exit.
    pub fn is_sqlite_in_memory(&self) -> bool {
        matches!(&self.0, DatabaseTarget::SqliteUrl(url) if url.contains(":memory:") || url.contains("mode=memory"))
    }

    /// Where it leads.
    pub fn target(&self) -> &DatabaseTarget {
        &self.0
    }

    /// The backend it selects.
    pub fn backend(&self) -> Backend {
        match self.0 {
            DatabaseTarget::Postgres(_) => Backend::Postgres,
            DatabaseTarget::SqliteUrl(_) | DatabaseTarget::SqliteFile(_) => Backend::Sqlite,
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            DatabaseTarget::Postgres(url) => match reqwest::Url::parse(url.expose_secret()) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        let _ = url.set_password(Some("***"));
                    }
                    url.set_query(None);
                    write!(f, "{url}")
                }
                Err(_) => f.write_str("postgres://<unparsable URL>"),
            },
            DatabaseTarget::SqliteUrl(url) => f.write_str(url),
            DatabaseTarget::SqliteFile(path) => write!(f, "sqlite://{}", path.display()),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}
