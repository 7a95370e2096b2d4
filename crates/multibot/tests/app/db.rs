//! Databases for tests: a fresh PostgreSQL database per test on 127.0.0.1:5432 (created here, dropped on drop) or
//! an SQLite file in a temporary directory; [`both_backends!`] runs one test body on each; [`Proxy`] stands
//! between the application and PostgreSQL and can take the database away.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use multibot::{config::DatabaseUrl, storage::Storage};
use parking_lot::Mutex;
use sqlx::{Postgres, migrate::MigrateDatabase};
use tokio::{net::TcpListener, task::AbortHandle};

use crate::helpers::TempDir;

/// The test server: trust authentication for user `postgres`.
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

/// A database of its own for one test.
pub(crate) struct TestDb {
    /// Its `DATABASE_URL`.
    pub(crate) url: String,
    /// The PostgreSQL database's name; `None` for SQLite.
    postgres: Option<String>,
    _dir: Option<TempDir>,
}

impl TestDb {
    /// A new, empty PostgreSQL database with a unique name; `None` (the test is skipped, loudly) when no
    /// PostgreSQL answers on this machine, outside CI.
    pub(crate) async fn postgres() -> Option<TestDb> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("multibot_test_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let url = format!("{POSTGRES}/{name}");
        let reachable = tokio::net::TcpStream::connect("127.0.0.1:5432").await.is_ok();
        if !crate::helpers::service_available("PostgreSQL on 127.0.0.1:5432", reachable) {
            return None;
        }
        Postgres::create_database(&url).await.unwrap_or_else(|e| panic!("creating {name} on {POSTGRES}: {e}"));
        Some(TestDb { url, postgres: Some(name), _dir: None })
    }

    /// A new SQLite file (not created until opened) in a temporary directory.
    pub(crate) fn sqlite() -> TestDb {
        let dir = TempDir::new();
        let url = format!("sqlite://{}/multibot.db", dir.path().display());
        TestDb { url, postgres: None, _dir: Some(dir) }
    }

    /// The same PostgreSQL database, reached through 127.0.0.1:`port` (a [`Proxy`]).
    pub(crate) fn url_via(&self, port: u16) -> String {
        let name = self.postgres.as_deref().expect("a PostgreSQL database");
        format!("postgres://postgres@127.0.0.1:{port}/{name}")
    }

    /// Opens it, unmigrated.
    pub(crate) async fn open(&self) -> Storage {
        Storage::open(&DatabaseUrl::parse(&self.url).unwrap()).await.expect("open the test database")
    }

    /// Opens and migrates it.
    pub(crate) async fn storage(&self) -> Storage {
        let storage = self.open().await;
        storage.migrate().await.expect("migrate the test database");
        storage
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.postgres.is_none() {
            return;
        }
        let url = self.url.clone();
        // Drop runs inside the test's runtime, which cannot block on its own futures: use a thread of our own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(Postgres::force_drop_database(&url))
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop the test database {}: {dropped:?}", self.url);
        }
    }
}

/// Runs `async fn NAME(db: &TestDb)` against PostgreSQL and SQLite, as tests `NAME::postgres` and `NAME::sqlite`;
/// after `multi_thread:`, on a runtime with two worker threads (for tests that keep the emulator busy).
macro_rules! both_backends {
    (multi_thread: $($test:ident),* $(,)?) => {
        crate::db::both_backends!(@tests #[tokio::test(flavor = "multi_thread", worker_threads = 2)] $($test),*);
    };
    (@tests #[$runtime:meta] $($test:ident),*) => {$(
        mod $test {
            #[$runtime]
            async fn postgres() {
                if let Some(db) = crate::db::TestDb::postgres().await {
                    super::$test(&db).await;
                }
            }

            #[$runtime]
            async fn sqlite() {
                super::$test(&crate::db::TestDb::sqlite()).await;
            }
        }
    )*};
    ($($test:ident),* $(,)?) => {
        crate::db::both_backends!(@tests #[tokio::test] $($test),*);
    };
}
pub(crate) use both_backends;

/// A TCP proxy on 127.0.0.1 in front of PostgreSQL. [`Proxy::down`] cuts every connection and refuses new ones
/// (accepts and closes them at once); [`Proxy::up`] relays again.
pub(crate) struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    relays: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    /// Starts relaying to the test server.
    pub(crate) async fn start() -> Proxy {
        let upstream: SocketAddr = "127.0.0.1:5432".parse().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let relays: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (up_flag, relay_list) = (up.clone(), relays.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up_flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let relay = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                relay_list.lock().push(relay.abort_handle());
            }
        })
        .abort_handle();
        Proxy { port, up, relays, accept }
    }

    /// The port it listens on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Takes the database away: open connections are cut, new ones closed at once.
    pub(crate) fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for relay in self.relays.lock().drain(..) {
            relay.abort();
        }
    }

    /// Brings the database back.
    pub(crate) fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.down();
    }
}
