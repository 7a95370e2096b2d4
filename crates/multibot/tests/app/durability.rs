//! The durable inbox against the real binary (issue 16): `kill -9` at random moments (`crash`), SIGTERM, the
//! database going away (`outage`) and a paced chat beside quick ones (`fairness`). [`Rig`] starts and restarts
//! `multibot run` with an echo bot, polling or webhook; [`Stream`] keeps users writing numbered messages;
//! [`Replies`] reads what the bot answered from the emulator and [`Replies::verdict`] finds lost, duplicated and
//! reordered answers.

mod crash;
mod fairness;
mod outage;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use botapi_emulator::{Emulator, EmulatorConfig, TestBot, TestUser};
use multibot::{config::DatabaseUrl, storage::Storage};

use crate::{
    helpers::{TempDir, token},
    process::Process,
};

/// The bot's id in its YAML (the `inbox` table's `bot_id`).
const BOT_ID: &str = "stream_bot";
/// The first user's id; user `FIRST_USER + c` writes in chat `FIRST_USER + c`.
const FIRST_USER: i64 = 9_000;

/// How the bot receives updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intake {
    /// getUpdates.
    Polling,
    /// The emulator pushes to the process's webhook (and health) port.
    Webhook { port: u16 },
}

/// The emulator, the bot and its files: everything to start `multibot run` again and again on one database.
pub(crate) struct Rig {
    pub(crate) emu: Emulator,
    pub(crate) bot: TestBot,
    dir: TempDir,
    vars: Vec<(String, String)>,
    intake: Intake,
}

impl Rig {
    /// An emulator that keeps every event and retries failed webhook pushes quickly, the echo bot's YAML, and
    /// `DATABASE_URL`; `extra` variables win over the defaults.
    pub(crate) async fn new(database_url: &str, intake: Intake, extra: &[(&str, &str)]) -> Rig {
        let config = EmulatorConfig {
            webhook_retry_base: Duration::from_millis(20),
            webhook_retry_max: Duration::from_millis(200),
            event_capacity: 1_000_000,
            history_limit: 100_000,
            ..EmulatorConfig::default()
        };
        let emu = Emulator::start(config).await.expect("emulator");
        let bot = emu.control().bot_named(&token(50), "Stream Bot", BOT_ID).await.expect("register the bot");
        let dir = TempDir::new();
        std::fs::create_dir_all(dir.path().join("bots")).expect("bots directory");
        // Telegram pushes a webhook's updates over up to `max_connections` connections at once, so two of one
        // chat can arrive out of order; one connection keeps each chat's order, as the test asserts it.
        let mode = if intake == Intake::Polling { "polling" } else { "webhook\nwebhook:\n  max_connections: 1" };
        dir.write(
            "bots/stream.yaml",
            &format!(
                "id: {BOT_ID}\nname: Stream Bot\ntoken: \"${{STREAM_TOKEN}}\"\nmode: {mode}\nplugins:\n  - name: echo\n    config:\n      echo_all: true\n"
            ),
        );
        let mut vars: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), database_url.into()),
            ("POLLING_TIMEOUT".into(), "1".into()),
            ("LOG_LEVEL".into(), "INFO".into()),
            ("SHUTDOWN_TIMEOUT".into(), "10".into()),
        ];
        if let Intake::Webhook { port } = intake {
            for (name, value) in [
                ("WEBHOOK_ENABLED", "true".to_owned()),
                ("WEBHOOK_BASE_URL", format!("http://127.0.0.1:{port}")),
                ("WEBHOOK_PORT", port.to_string()),
                ("HEALTH_CHECK_PORT", port.to_string()),
            ] {
                vars.push((name.into(), value));
            }
        }
        vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Rig { emu, bot, dir, vars, intake }
    }

    /// A free loopback port for [`Intake::Webhook`] (the public URL names it, so it is chosen before the process
    /// binds it).
    pub(crate) fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
    }

    /// Starts `multibot run` and waits until it takes updates: it asked for them (polling) or its webhook server
    /// is ready. Panics with the process's output if that takes more than 60 s.
    pub(crate) async fn start(&self) -> Process {
        let polls = || async { self.bot.calls(Some("getUpdates")).await.expect("the call log").len() };
        let polls_before = polls().await;
        let vars: Vec<(&str, &str)> = self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let process = Process::start_with(&self.emu, &self.dir, &vars);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let ready = match self.intake {
                Intake::Polling => polls().await > polls_before,
                Intake::Webhook { port } => {
                    reqwest::get(format!("http://127.0.0.1:{port}/health/ready")).await.is_ok_and(|r| r.status() == 200)
                }
            };
            if ready {
                return process;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "multibot did not start taking updates; output:\n{}",
                process.lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The user writing in chat number `c`.
    pub(crate) fn user(&self, c: i64) -> TestUser {
        self.emu.user(FIRST_USER + c)
    }

    /// Waits until the emulator has answered every Bot API call the bot made: a killed process may leave a call
    /// in the emulator (a delayed `sendMessage`), and a reply that lands after a snapshot would be miscounted.
    /// Quiet means no new call for `quiet`, which must be longer than any delay injected.
    pub(crate) async fn settle(&self, quiet: Duration) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut last = self.bot.stats().await.expect("stats").calls;
        loop {
            tokio::time::sleep(quiet).await;
            let now = self.bot.stats().await.expect("stats").calls;
            if now == last {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "the emulator still gets calls from a dead process");
            last = now;
        }
    }
}

/// The text of message `n` in chat `c`; the echo bot answers `You said: <text>`.
pub(crate) fn text(c: i64, n: u64) -> String {
    format!("chat {c} message {n}")
}

/// Which message (chat number, message number) a text or a reply is about.
fn parse(text: &str) -> Option<(i64, u64)> {
    let rest = text.strip_prefix("You said: ").unwrap_or(text).strip_prefix("chat ")?;
    let (c, n) = rest.split_once(" message ")?;
    Some((c.parse().ok()?, n.parse().ok()?))
}

/// Users writing numbered messages: a round is one message in each of `chats` chats, rounds go on until
/// [`Stream::stop`].
pub(crate) struct Stream {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl Stream {
    /// Starts sending a round every `every`.
    pub(crate) fn start(rig: &Rig, chats: i64, every: Duration) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let users: Vec<TestUser> = (0..chats).map(|c| rig.user(c)).collect();
        let (bot, stopping) = (rig.bot.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut rounds = 0;
            while !stopping.load(Ordering::SeqCst) {
                for (c, user) in users.iter().enumerate() {
                    user.send(&bot, &text(c as i64, rounds)).await.expect("the emulator takes a message");
                }
                rounds += 1;
                tokio::time::sleep(every).await;
            }
            rounds
        });
        Stream { stop, task }
    }

    /// Stops after the round being sent; returns how many rounds were sent (messages `0..rounds` in each chat).
    pub(crate) async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the stream task")
    }
}

/// Every reply the bot sent, as the emulator's events tell: per chat, which message each answered, in order.
#[derive(Default)]
pub(crate) struct Replies {
    after: u64,
    per_chat: HashMap<i64, Vec<u64>>,
    count: HashMap<(i64, u64), u32>,
}

impl Replies {
    /// Reads the replies sent since the last refresh.
    pub(crate) async fn refresh(&mut self, bot: &TestBot) {
        loop {
            let events = bot.events(self.after, None, Some("message"), Duration::ZERO).await.expect("events");
            let Some(last) = events.last() else { return };
            self.after = last.seq;
            for event in &events {
                let text = event.message.as_ref().and_then(|m| m.text.as_deref()).unwrap_or_default();
                let (c, n) = parse(text).unwrap_or_else(|| panic!("a reply to no message of the stream: {text:?}"));
                self.per_chat.entry(c).or_default().push(n);
                *self.count.entry((c, n)).or_default() += 1;
            }
        }
    }

    /// How many times message `n` of chat `c` was answered.
    pub(crate) fn count(&self, c: i64, n: u64) -> u32 {
        self.count.get(&(c, n)).copied().unwrap_or(0)
    }

    /// How many times each message was answered so far.
    pub(crate) fn counts(&self) -> HashMap<(i64, u64), u32> {
        self.count.clone()
    }

    /// Replies in total.
    pub(crate) fn total(&self) -> usize {
        self.count.values().map(|&n| n as usize).sum()
    }

    /// Whether messages `0..rounds` of chats `0..chats` all have a reply.
    pub(crate) fn all_answered(&self, chats: i64, rounds: u64) -> bool {
        (0..chats).all(|c| (0..rounds).all(|n| self.count(c, n) > 0))
    }

    /// Compares the replies with messages `0..rounds` in chats `0..chats`, where `allowed` says how many
    /// second answers each message may have.
    pub(crate) fn verdict(&self, chats: i64, rounds: u64, allowed: &HashMap<(i64, u64), u32>) -> Verdict {
        let mut verdict = Verdict::default();
        for c in 0..chats {
            for n in 0..rounds {
                let extra = self.count(c, n).saturating_sub(1);
                verdict.duplicates += u64::from(extra);
                if self.count(c, n) == 0 {
                    verdict.lost.push((c, n));
                }
                if extra > allowed.get(&(c, n)).copied().unwrap_or(0) {
                    verdict.unexpected_duplicates.push((c, n));
                }
            }
            // In order: each reply answers the next message, or one answered before (a duplicate, checked above).
            let mut next = 0;
            for &n in self.per_chat.get(&c).map(Vec::as_slice).unwrap_or_default() {
                if n == next {
                    next += 1;
                } else if n > next {
                    verdict.out_of_order.push((c, n));
                }
            }
        }
        verdict.extra = self.count.keys().filter(|(c, n)| *c >= chats || *n >= rounds).count();
        verdict
    }
}

/// What [`Replies::verdict`] found.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    /// Messages never answered.
    pub(crate) lost: Vec<(i64, u64)>,
    /// Second (third, ...) answers in total.
    pub(crate) duplicates: u64,
    /// Messages answered more often than allowed.
    pub(crate) unexpected_duplicates: Vec<(i64, u64)>,
    /// Replies that came before the reply to an earlier message of their chat.
    pub(crate) out_of_order: Vec<(i64, u64)>,
    /// Replies to messages nobody sent.
    pub(crate) extra: usize,
}

impl Verdict {
    /// Panics unless nothing was lost, reordered, invented or answered twice beyond what was allowed.
    pub(crate) fn assert_clean(&self) {
        assert!(self.lost.is_empty(), "lost (chat, message): {:?}", self.lost);
        assert!(self.unexpected_duplicates.is_empty(), "answered twice, not allowed: {:?}", self.unexpected_duplicates);
        assert!(self.out_of_order.is_empty(), "answered out of order: {:?}", self.out_of_order);
        assert_eq!(self.extra, 0, "replies to messages nobody sent");
    }
}

/// The pending rows of the bot's inbox, as (chat number, message number), read with the process dead.
pub(crate) async fn pending_in_inbox(database_url: &str) -> Vec<(i64, u64)> {
    if database_url.starts_with("postgres") {
        killed_sessions_ended(database_url).await;
    }
    let storage = Storage::open(&DatabaseUrl::parse(database_url).expect("a database URL")).await.expect("open");
    let rows = storage.inbox().pending(BOT_ID, 1_000_000).await.expect("read the inbox");
    storage.close().await;
    rows.iter()
        .map(|row| {
            let update: serde_json::Value = serde_json::from_str(&row.payload).expect("a stored update is JSON");
            let text = update["message"]["text"].as_str().unwrap_or_default();
            parse(text).unwrap_or_else(|| panic!("a stored update that is not from the stream: {}", row.payload))
        })
        .collect()
}

/// Waits until no other session is connected to the PostgreSQL database. A statement that a process sent just
/// before its `kill -9` (a done mark) still runs and commits on the server, and its session ends only after it:
/// the inbox is read once the killed process's sessions are gone, not while its last write may still land.
async fn killed_sessions_ended(database_url: &str) {
    const OTHERS: &str =
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()";
    let pool = sqlx::PgPool::connect(database_url).await.expect("open PostgreSQL");
    crate::helpers::eventually(Duration::from_secs(20), "the killed process's sessions to end", || async {
        sqlx::query_scalar::<_, i64>(OTHERS).fetch_one(&pool).await.expect("count the sessions") == 0
    })
    .await;
    pool.close().await;
}

/// Rows of the bot's inbox per state (`pending`, `done`).
pub(crate) async fn inbox_states(database_url: &str) -> HashMap<String, i64> {
    const QUERY: &str = "SELECT state, COUNT(*) FROM inbox WHERE bot_id = $1 GROUP BY state";
    let rows: Vec<(String, i64)> = if database_url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(database_url).await.expect("open SQLite");
        let rows = sqlx::query_as(QUERY).bind(BOT_ID).fetch_all(&pool).await.expect("count inbox rows");
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(database_url).await.expect("open PostgreSQL");
        let rows = sqlx::query_as(QUERY).bind(BOT_ID).fetch_all(&pool).await.expect("count inbox rows");
        pool.close().await;
        rows
    };
    rows.into_iter().collect()
}

/// A small seeded generator (SplitMix64), so that a failing run can be repeated: the seed is printed, and
/// `DURABILITY_SEED` sets it.
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeded from `DURABILITY_SEED`, else from the clock; prints the seed.
    pub(crate) fn seeded(test: &str) -> Rng {
        let seed = std::env::var("DURABILITY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
        });
        println!("{test}: seed {seed} (DURABILITY_SEED={seed} repeats this run)");
        Rng(seed)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}
