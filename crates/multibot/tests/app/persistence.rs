//! The application and the database: users, events and plugin state survive a restart; a database outage never
//! stops a bot; `multibot migrate` and the schema checks at start.

use std::{process::Command, sync::Arc, time::Duration};

use botapi_emulator::{Emulator, EmulatorConfig, TestBot, TestUser};
use multibot::{
    app::Application,
    config::{WebhookEnv, parse_bot_file},
    plugins::PluginRegistry,
    prelude::*,
    storage::PluginStore,
};

use crate::{
    db::{Proxy, TestDb, both_backends},
    helpers::{TempDir, env, eventually, settings, spawn_app_with},
    storage::insert_future_migration,
};

/// The README's example plugin: `/stats` (the spec's user count), `/count` on the plugin state, `/boom` fails.
struct Stats {
    store: PluginStore,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsConfig {}

impl Plugin for Stats {
    type Config = StatsConfig;

    fn meta() -> PluginMeta {
        PluginMeta::new("stats").description("User statistics and a counter")
    }

    fn new(_config: StatsConfig, cx: &PluginContext) -> anyhow::Result<Stats> {
        Ok(Stats { store: cx.store() })
    }

    fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
        handlers
            .command("stats", "Show user stats", Stats::stats)
            .command("count", "Count, across restarts", Stats::count)
            .command("boom", "Fail", Stats::boom);
    }
}

impl Stats {
    async fn stats(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        let count = cx.db().users().get_user_count(cx.bot_id().as_str()).await?;
        cx.reply(format!("Total users: {count}")).await?;
        Ok(())
    }

    async fn count(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        let n = self.store.get::<u64>("count").await?.unwrap_or(0) + 1;
        self.store.set("count", &n).await?;
        cx.reply(format!("Count: {n}")).await?;
        Ok(())
    }

    async fn boom(self: Arc<Self>, _cx: Ctx) -> anyhow::Result<()> {
        anyhow::bail!("out of stock")
    }
}

fn registry() -> PluginRegistry {
    let mut registry = PluginRegistry::builtin();
    registry.register::<Stats>();
    registry
}

const COUNTER: &str = r#"
id: "counter"
name: "Counter"
token: "${TOKEN_1}"
plugins:
  - name: "stats"
  - name: "echo"
    config: { echo_all: true }
  - name: "error_handler"
"#;

async fn ask(user: &TestUser, bot: &TestBot, text: &str) -> String {
    user.send(bot, text).await.unwrap();
    user.next_message_from(bot).await.unwrap().text.unwrap()
}

both_backends!(a_restart_finds_users_events_and_plugin_state_intact);

async fn a_restart_finds_users_events_and_plugin_state_intact(db: &TestDb) {
    let vars = [("DATABASE_URL", db.url.clone())];
    let app = spawn_app_with(&[("counter.yaml", COUNTER)], 1, registry(), &vars).await;
    let bot = app.bot(1).await;
    let (alice, bob) = (app.emu.user(5101), app.emu.user(5102));
    assert_eq!(ask(&alice, &bot, "/count").await, "Count: 1");
    assert_eq!(ask(&bob, &bot, "/count").await, "Count: 2");
    let users = || async { app.storage.users().get_user_count("counter").await.unwrap() };
    eventually(Duration::from_secs(10), "two users recorded", || async { users().await == 2 }).await;
    assert_eq!(ask(&alice, &bot, "/stats").await, "Total users: 2");
    app.stop().await;

    let app = spawn_app_with(&[("counter.yaml", COUNTER)], 1, registry(), &vars).await;
    let bot = app.bot(1).await;
    let carol = app.emu.user(5103);
    assert_eq!(ask(&carol, &bot, "/count").await, "Count: 3", "the count survived the restart");
    let users = || async { app.storage.users().get_user_count("counter").await.unwrap() };
    eventually(Duration::from_secs(10), "three users recorded", || async { users().await == 3 }).await;
    assert_eq!(ask(&carol, &bot, "/stats").await, "Total users: 3");
    app.stop().await;

    let storage = db.storage().await;
    let alice = storage.users().get("counter", 5101).await.unwrap().expect("alice is recorded");
    assert_eq!(
        (alice.profile.first_name.as_str(), alice.profile.language_code.as_deref(), alice.message_count),
        ("User 5101", Some("en"), 2)
    );
    assert!(alice.first_seen <= alice.last_seen);
    let kinds: Vec<String> =
        storage.events().list(Some("counter"), None, 10).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["stopped", "started", "stopped", "started"], "newest first");
    let row = storage.bots().get("counter").await.unwrap().expect("the bot's row");
    assert_eq!((row.name.as_str(), row.status.as_str(), row.mode.as_str()), ("Counter", "stopped", "polling"));
    assert!(row.started_at.is_some() && row.stopped_at >= row.started_at && !row.config_hash.is_empty());
    storage.close().await;
}

#[tokio::test]
async fn bots_keep_answering_while_the_database_is_away_and_the_buffered_users_land_after() {
    let Some(db) = TestDb::postgres().await else { return };
    let proxy = Proxy::start().await;
    // With the durable inbox a polling bot stops taking updates while the database is away (Telegram keeps
    // them); the in-memory inbox answers on.
    let vars = [("DATABASE_URL", db.url_via(proxy.port())), ("INBOX", "memory".into())];
    let app = spawn_app_with(&[("counter.yaml", COUNTER)], 1, registry(), &vars).await;
    let bot = app.bot(1).await;
    let direct = db.storage().await;
    let alice = app.emu.user(5201);
    assert_eq!(ask(&alice, &bot, "hello").await, "You said: hello");
    eventually(Duration::from_secs(10), "alice recorded", || async {
        direct.users().get("counter", 5201).await.unwrap().is_some()
    })
    .await;

    proxy.down();
    let others: Vec<TestUser> = (5202..5207).map(|id| app.emu.user(id)).collect();
    for user in &others {
        assert_eq!(ask(user, &bot, "still there?").await, "You said: still there?");
    }
    // A handler that needs the database fails, and error_handler tells the user.
    let reply = ask(&alice, &bot, "/stats").await;
    assert!(reply.starts_with("Something went wrong (error id "), "{reply}");
    assert_eq!(direct.users().get("counter", 5202).await.unwrap(), None, "nothing reached the database");

    proxy.up();
    eventually(Duration::from_secs(30), "the buffered users in the database", || async {
        direct.users().get_user_count("counter").await.unwrap() == 6
    })
    .await;
    for user in &others {
        let row = direct.users().get("counter", user.id).await.unwrap().unwrap();
        assert_eq!(row.message_count, 1);
    }
    assert_eq!(ask(&alice, &bot, "/stats").await, "Total users: 6");
    // The failure during the outage was buffered too: its event names the user and the error id they saw.
    let error_id: String = reply["Something went wrong (error id ".len()..].chars().take(8).collect();
    eventually(Duration::from_secs(10), "the plugin_error event", || async {
        let events = direct.events().list(Some("counter"), Some("plugin_error"), 10).await.unwrap();
        events.iter().any(|e| e.actor_user_id == Some(5201) && e.detail["error_id"] == error_id.as_str())
    })
    .await;
    app.stop().await;
    direct.close().await;
}

const GOOD: &str = "id: good\nname: Good\ntoken: \"${TOKEN_1}\"\nplugins:\n  - name: echo\n";
const REJECTED: &str = "id: rejected\nname: Rejected\ntoken: \"${TOKEN_9}\"\nplugins:\n  - name: echo\n";
const OFF: &str = "id: off\nname: Off\ntoken: \"${TOKEN_2}\"\nenabled: false\nplugins:\n  - name: echo\n";

#[tokio::test]
async fn lifecycle_changes_are_events_and_keep_the_bots_table_current() {
    let db = TestDb::sqlite();
    let vars = [("DATABASE_URL", db.url.clone())];
    let files = [("good.yaml", GOOD), ("rejected.yaml", REJECTED), ("off.yaml", OFF), ("broken.yaml", "id: [")];
    let app = spawn_app_with(&files, 2, registry(), &vars).await;
    let reloaded = GOOD.replace("name: Good", "name: Better");
    let config = parse_bot_file("good.yaml".as_ref(), &reloaded, &*env(), &registry(), WebhookEnv::default()).unwrap();
    app.manager.reload(config).await.unwrap();
    app.stop().await;

    let storage = db.storage().await;
    let kinds = |bot: &'static str| {
        let storage = storage.clone();
        async move {
            let events = storage.events().list(Some(bot), None, 10).await.unwrap();
            events.into_iter().rev().map(|e| e.kind).collect::<Vec<_>>()
        }
    };
    // A name change reloads in place: no stop and start in between.
    assert_eq!(kinds("good").await, ["started", "reloaded", "stopped"]);
    assert_eq!(kinds("rejected").await, ["failed"]);
    let invalid = storage.events().list(None, Some("config_invalid"), 10).await.unwrap();
    assert_eq!(invalid.len(), 1);
    assert!(invalid[0].detail["file"].as_str().unwrap().ends_with("broken.yaml"), "{:?}", invalid[0].detail);
    let status = |id: &'static str| {
        let storage = storage.clone();
        async move { storage.bots().get(id).await.unwrap().unwrap() }
    };
    let good = status("good").await;
    assert_eq!((good.name.as_str(), good.status.as_str()), ("Better", "stopped"));
    let rejected = status("rejected").await;
    assert_eq!(rejected.status, "failed");
    assert!(rejected.last_error.as_deref().unwrap().contains("401"), "{:?}", rejected.last_error);
    assert_eq!(status("off").await.status, "disabled");
}

fn multibot(dir: &TempDir, args: &[&str], vars: &[(&str, &str)]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_multibot"))
        .args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("LOG_FORMAT", "text")
        .envs(vars.iter().copied())
        .output()
        .expect("multibot runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn migrate_on_an_empty_postgres_database_applies_the_schema_once() {
    let Some(db) = TestDb::postgres().await else { return };
    let dir = TempDir::new();
    let (code, first) = multibot(&dir, &["migrate"], &[("DATABASE_URL", &db.url)]);
    assert_eq!(code, 0, "{first}");
    assert!(first.contains("applied 0001 initial"), "{first}");
    assert!(first.contains("(PostgreSQL) is at version 7"), "{first}");
    let (code, second) = multibot(&dir, &["migrate"], &[("DATABASE_URL", &db.url)]);
    assert_eq!(code, 0, "{second}");
    assert!(second.contains("nothing to apply") && !second.contains("applied 0001"), "{second}");
    db.open().await.check_schema().await.expect("the schema is current");
}

#[tokio::test]
async fn migrate_creates_a_new_sqlite_file_in_data_dir() {
    let dir = TempDir::new();
    let file = dir.path().join("state/db/multibot.db");
    let (code, first) = multibot(&dir, &["migrate"], &[("DATA_DIR", "state/db")]);
    assert_eq!(code, 0, "{first}");
    assert!(first.contains("applied 0001 initial") && first.contains("(SQLite)"), "{first}");
    assert!(file.exists(), "{first}");
    let (code, second) = multibot(&dir, &["migrate"], &[("DATA_DIR", "state/db")]);
    assert_eq!(code, 0, "{second}");
    assert!(second.contains("nothing to apply"), "{second}");
}

#[tokio::test]
async fn migrate_refuses_a_newer_schema_and_never_prints_the_password() {
    let db = TestDb::sqlite();
    db.storage().await.close().await;
    insert_future_migration(&db).await;
    let dir = TempDir::new();
    let (code, text) = multibot(&dir, &["migrate"], &[("DATABASE_URL", &db.url)]);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("schema is at version 99, newer than this binary knows (version 7)"), "{text}");
    // Bad input: a server that drops every connection, reached with a password.
    let proxy = Proxy::start().await;
    proxy.down();
    let url = format!("postgres://postgres:hunter2@127.0.0.1:{}/nowhere", proxy.port());
    let (code, text) =
        tokio::task::spawn_blocking(move || multibot(&TempDir::new(), &["migrate"], &[("DATABASE_URL", &url)]))
            .await
            .unwrap();
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("postgres://postgres:***@127.0.0.1"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let (code, text) = multibot(&dir, &["migrate"], &[("DATABASE_URL", "mysql://root:hunter2@localhost/db")]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("DATABASE_URL: unsupported scheme \"mysql\"") && !text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn run_refuses_an_unmigrated_database_when_told_not_to_migrate() {
    let db = TestDb::sqlite();
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = TempDir::new();
    let vars = [("DATABASE_URL", db.url.clone()), ("MIGRATE_ON_START", "false".into())];
    let built = Application::build(settings(&emu, dir.path(), &vars), PluginRegistry::builtin(), env()).await;
    let error = format!("{:#}", built.err().expect("an unmigrated database is refused"));
    assert!(error.contains("lacks 7 migration(s): run `multibot migrate`"), "{error}");
    db.storage().await.close().await;
    let app = Application::build(settings(&emu, dir.path(), &vars), PluginRegistry::builtin(), env())
        .await
        .expect("a migrated database is accepted");
    app.shutdown_token().cancel();
    app.run_until_stopped().await.unwrap();
}
