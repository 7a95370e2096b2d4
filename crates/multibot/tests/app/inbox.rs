//! The durable inbox seen from outside: a webhook delivery is in the `inbox` table before its 200 and a
//! re-delivery is handled once; with the database away a delivery gets 503 with `Retry-After` and the emulator's
//! retry lands after; what a webhook bot left pending is handled at the next start, before new updates; a chat
//! past `CHAT_BACKLOG` drops its oldest (counted, one event) without holding up another chat; a polling bot at
//! `MAX_PENDING_UPDATES` does not poll until some finish; a burst's done rows are pruned while the bot is idle.

use std::time::Duration;

use botapi_emulator::{FaultSpec, TestBot};
use multibot::{
    plugins::PluginRegistry,
    storage::{InboxUpdate, Storage},
};

use crate::{
    db::{Proxy, TestDb},
    helpers::{Served, TempDir, Web, eventually, serve, spawn_app_with, token},
    webhook::{emulator, message, post, replies, secret_of},
};

/// A webhook bot at `/blog` that echoes every text.
const BLOG: &str = "id: blog\nname: Blog\ntoken: \"${TOKEN_2}\"\nmode: webhook\nplugins:\n  - name: echo\n    \
                    config:\n      echo_all: true\n";

/// A polling bot `id` that echoes every text.
fn polling_echo(id: &str) -> String {
    format!(
        "id: {id}\nname: Echo\ntoken: \"${{TOKEN_1}}\"\nplugins:\n  - name: echo\n    config:\n      echo_all: true\n"
    )
}

/// Ids of the bot's pending rows in the inbox, oldest first.
async fn pending(storage: &Storage, bot: &str) -> Vec<i64> {
    storage.inbox().pending(bot, 1000).await.unwrap().iter().map(|p| p.update_id).collect()
}

/// Texts of the bot's pending updates in the inbox (stored and dispatched, not finished), oldest first.
async fn pending_texts(storage: &Storage, bot: &str) -> Vec<String> {
    let rows = storage.inbox().pending(bot, 1000).await.unwrap();
    let text = |payload: &str| serde_json::from_str::<serde_json::Value>(payload).unwrap()["message"]["text"].clone();
    rows.iter().filter_map(|r| text(&r.payload).as_str().map(str::to_owned)).collect()
}

/// Now, as the emulator's call log reads time.
fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The metrics text of this test process.
fn metrics() -> String {
    multibot::telemetry::metrics::install().render()
}

/// POSTs an update with the secret; returns the status and the `Retry-After` header.
async fn post_with_retry_after(url: &str, secret: &str, body: String) -> (u16, Option<String>) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("X-Telegram-Bot-Api-Secret-Token", secret)
        .body(body)
        .send()
        .await
        .expect("webhook answers");
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), retry_after)
}

/// Starts the blog bot in webhook mode on `db_url`, and waits until it answers alice (1001) once.
async fn blog(emu: &botapi_emulator::Emulator, dir: &TempDir, db_url: String) -> (Served, TestBot) {
    dir.write("blog.yaml", BLOG);
    let app = serve(emu, dir.path(), Web::Separate, &[("DATABASE_URL", db_url)], PluginRegistry::builtin()).await;
    let bot = emu.bot(&token(2)).await.unwrap();
    (app, bot)
}

#[tokio::test]
async fn a_webhook_delivery_is_stored_before_its_200_and_a_redelivery_is_handled_once() {
    let emu = emulator(2).await;
    let (dir, db) = (TempDir::new(), TestDb::sqlite());
    let (app, bot) = blog(&emu, &dir, db.url.clone()).await;
    let alice = emu.user(1001);
    alice.send(&bot, "first").await.unwrap();
    alice.next_message_from(&bot).await.unwrap();
    let (url, secret) = (app.webhook_url("/blog"), secret_of(&app, "blog").await);
    // The reply takes 1.5 s, so the update is still pending when we look right after the 200.
    bot.inject(FaultSpec::delay("sendMessage", Duration::from_millis(1500)).times(1)).await.unwrap();
    let delivery = message(700_001, 1001, "stored");
    assert_eq!(post(&url, Some(&secret), delivery.clone()).await, 200);
    let rows = app.storage.inbox().pending("blog", 10).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.update_id).collect::<Vec<_>>(), [700_001], "stored before the 200");
    assert_eq!((rows[0].chat_key, rows[0].payload.as_str()), (1001, delivery.as_str()));
    // Bad input: the same update_id twice more (Telegram retrying after a lost answer); each gets 200.
    for _ in 0..2 {
        assert_eq!(post(&url, Some(&secret), delivery.clone()).await, 200);
    }
    assert_eq!(post(&url, Some(&secret), message(700_002, 1001, "after")).await, 200);
    eventually(Duration::from_secs(10), "the reply to the later update", || async {
        replies(&bot, 1001).await.last().map(String::as_str) == Some("You said: after")
    })
    .await;
    assert_eq!(replies(&bot, 1001).await, ["You said: first", "You said: stored", "You said: after"]);
    eventually(Duration::from_secs(10), "handled rows marked done", || async {
        pending(&app.storage, "blog").await.is_empty()
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn with_the_database_away_a_webhook_delivery_gets_503_and_its_retry_lands_after() {
    let Some(db) = TestDb::postgres().await else { return };
    let proxy = Proxy::start().await;
    let emu = emulator(2).await;
    let dir = TempDir::new();
    let (app, bot) = blog(&emu, &dir, db.url_via(proxy.port())).await;
    let alice = emu.user(1001);
    alice.send(&bot, "first").await.unwrap();
    alice.next_message_from(&bot).await.unwrap();
    let (url, secret) = (app.webhook_url("/blog"), secret_of(&app, "blog").await);

    proxy.down();
    // Bad input: a delivery the database cannot store.
    let (status, retry_after) = post_with_retry_after(&url, &secret, message(710_001, 1001, "direct")).await;
    assert_eq!((status, retry_after.as_deref()), (503, Some("1")));
    // A user writes meanwhile: the emulator's push is refused, and it keeps retrying.
    alice.send(&bot, "during the outage").await.unwrap();
    eventually(Duration::from_secs(30), "a refused push", || async { bot.stats().await.unwrap().webhook_failures > 0 })
        .await;
    assert_eq!(replies(&bot, 1001).await, ["You said: first"], "nothing was handled that was not stored");
    let counted = metrics().lines().any(|l| l.starts_with("multibot_inbox_store_failures_total{bot_id=\"blog\"}"));
    assert!(counted, "{}", metrics());

    proxy.up();
    eventually(Duration::from_secs(30), "the retried push handled", || async { replies(&bot, 1001).await.len() == 2 })
        .await;
    assert_eq!(post(&url, Some(&secret), message(710_001, 1001, "direct")).await, 200);
    eventually(Duration::from_secs(10), "the re-sent delivery handled", || async {
        replies(&bot, 1001).await.len() == 3
    })
    .await;
    assert_eq!(replies(&bot, 1001).await, ["You said: first", "You said: during the outage", "You said: direct"]);
    app.stop().await;
}

#[tokio::test]
async fn what_a_webhook_bot_left_pending_is_handled_at_the_next_start_before_new_updates() {
    let emu = emulator(2).await;
    let (dir, db) = (TempDir::new(), TestDb::sqlite());
    let (app, bot) = blog(&emu, &dir, db.url.clone()).await;
    let (alice, bob) = (emu.user(1001), emu.user(1002));
    for user in [&alice, &bob] {
        user.send(&bot, "hello").await.unwrap();
        user.next_message_from(&bot).await.unwrap();
    }
    app.stop().await;
    // What a killed run leaves behind: stored (so answered 200), never marked done.
    let storage = db.storage().await;
    let row = |id: u32, chat: i64, text: &str| InboxUpdate {
        update_id: i64::from(id),
        chat_key: chat,
        payload: message(id, chat, text),
    };
    let rows = [row(900_001, 1001, "one"), row(900_002, 1002, "two"), row(900_003, 1001, "three")];
    storage.inbox().insert("blog", &rows, chrono::Utc::now()).await.unwrap();
    storage.close().await;
    // Telegram numbers what comes next past them: a new delivery queued behind them stays behind them.
    bot.skip_update_ids(900_004).await.unwrap();

    let (app, bot) = blog(&emu, &dir, db.url.clone()).await;
    alice.send(&bot, "after").await.unwrap();
    eventually(Duration::from_secs(10), "every reply", || async {
        replies(&bot, 1001).await.len() == 4 && replies(&bot, 1002).await.len() == 2
    })
    .await;
    let said = ["You said: hello", "You said: one", "You said: three", "You said: after"];
    assert_eq!(replies(&bot, 1001).await, said, "pending first, in order, then the new one");
    assert_eq!(replies(&bot, 1002).await, ["You said: hello", "You said: two"]);
    eventually(Duration::from_secs(10), "resumed rows marked done", || async {
        pending(&app.storage, "blog").await.is_empty()
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_chat_past_its_backlog_drops_its_oldest_once_per_burst_and_other_chats_go_on() {
    let file = polling_echo("backlog");
    let app =
        spawn_app_with(&[("backlog.yaml", &file)], 1, PluginRegistry::builtin(), &[("CHAT_BACKLOG", "3".into())]).await;
    let bot = app.bot(1).await;
    let (alice, bob) = (app.emu.user(6001), app.emu.user(6002));
    for user in [&alice, &bob] {
        user.send(&bot, "hello").await.unwrap();
        user.next_message_from(&bot).await.unwrap();
    }
    // Alice's next reply takes 3 s; while it is sent, she writes 9 more (bad input: a flood in one chat).
    // (The emulator logs a call when it is answered, so "in flight" is read from the inbox.)
    bot.inject(FaultSpec::delay("sendMessage", Duration::from_secs(3)).times(1)).await.unwrap();
    alice.send(&bot, "m0").await.unwrap();
    eventually(Duration::from_secs(5), "m0 in flight", || async {
        pending_texts(&app.storage, "backlog").await == ["m0"]
    })
    .await;
    for i in 1..10 {
        alice.send(&bot, &format!("m{i}")).await.unwrap();
    }
    bob.send(&bot, "am I stuck?").await.unwrap();
    assert_eq!(bob.next_message_from(&bot).await.unwrap().text.as_deref(), Some("You said: am I stuck?"));
    assert_eq!(replies(&bot, 6001).await, ["You said: hello"], "bob was answered while alice's chat was busy");
    // In flight m0, waiting at most 3: m1..m6 dropped, m7..m9 answered.
    eventually(Duration::from_secs(15), "alice's last reply", || async { replies(&bot, 6001).await.len() == 5 }).await;
    let said: Vec<String> = ["hello", "m0", "m7", "m8", "m9"].iter().map(|t| format!("You said: {t}")).collect();
    assert_eq!(replies(&bot, 6001).await, said);
    let line = "multibot_updates_dropped_total{bot_id=\"backlog\",reason=\"chat_backlog\"} 6";
    assert!(metrics().lines().any(|l| l == line), "{}", metrics());
    eventually(Duration::from_secs(10), "the drop event", || async {
        !app.storage.events().list(Some("backlog"), Some("updates_dropped"), 10).await.unwrap().is_empty()
    })
    .await;
    let events = app.storage.events().list(Some("backlog"), Some("updates_dropped"), 10).await.unwrap();
    assert_eq!(events.len(), 1, "one event for the burst, not one per drop: {events:?}");
    assert_eq!((&events[0].detail["chat_key"], &events[0].detail["limit"]), (&6001.into(), &3.into()));
    eventually(Duration::from_secs(10), "dropped rows marked done", || async {
        pending(&app.storage, "backlog").await.is_empty()
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_polling_bot_at_its_bound_does_not_poll_until_an_update_finishes() {
    const DELAY: Duration = Duration::from_millis(1500);
    let file = polling_echo("bounded");
    let extra = [("MAX_PENDING_UPDATES", "2".into())];
    let app = spawn_app_with(&[("bounded.yaml", &file)], 1, PluginRegistry::builtin(), &extra).await;
    let bot = app.bot(1).await;
    let users: Vec<_> = (6101..6104).map(|id| app.emu.user(id)).collect();
    for user in &users {
        user.send(&bot, "hello").await.unwrap();
        user.next_message_from(&bot).await.unwrap();
    }
    // Two slow replies put the bot at its bound of 2. (The emulator logs a call when it is answered, with the
    // time it arrived, so "in flight" is read from the inbox.)
    bot.inject(FaultSpec::delay("sendMessage", DELAY).times(2)).await.unwrap();
    let before = bot.calls(Some("sendMessage")).await.unwrap().len();
    users[0].send(&bot, "a").await.unwrap();
    users[1].send(&bot, "b").await.unwrap();
    eventually(Duration::from_secs(5), "a and b in flight", || async {
        pending_texts(&app.storage, "bounded").await == ["a", "b"]
    })
    .await;
    let at_bound = unix_ms();
    users[2].send(&bot, "c").await.unwrap();
    assert_eq!(users[2].next_message_from(&bot).await.unwrap().text.as_deref(), Some("You said: c"));
    // Bad input would be a poll while both are in flight: the poll that took "c" came only once a slow update
    // had finished (50 ms for clocks and rounding).
    let slow = bot.calls(Some("sendMessage")).await.unwrap().split_off(before);
    let first_done = slow.iter().map(|c| c.at_ms).min().unwrap() + DELAY.as_millis() as u64;
    // A poll is logged when it is answered: the last one answered is the one that took "c" (the next waits).
    let polls = bot.calls(Some("getUpdates")).await.unwrap();
    let took_c = polls.last().unwrap();
    let early = first_done.saturating_sub(took_c.at_ms);
    assert!(took_c.at_ms + 50 >= first_done, "the poll that took c came {early} ms before any update finished");
    for poll in polls.iter().filter(|c| c.at_ms > at_bound) {
        assert!(poll.at_ms + 50 >= first_done, "polled {} ms before any update finished", first_done - poll.at_ms);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_bursts_done_rows_are_pruned_while_the_bot_stays_idle() {
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.path().join("idle.db").display());
    let extra = [("DATABASE_URL", url.clone())];
    let app = spawn_app_with(&[("idle.yaml", &polling_echo("idle"))], 1, PluginRegistry::builtin(), &extra).await;
    let bot = app.bot(1).await;
    let user = app.emu.user(6201);
    for n in 0..5 {
        user.send(&bot, &format!("m{n}")).await.unwrap();
    }
    for _ in 0..5 {
        user.next_message_from(&bot).await.unwrap();
    }
    // Then nothing more arrives. Bad input would be the burst's done rows kept until the bot's next update: the
    // writer prunes them on its own, within its period of 5 s once the polls confirmed them.
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM inbox WHERE bot_id = 'idle'").fetch_one(&pool).await.unwrap()
    };
    eventually(Duration::from_secs(20), "the idle bot's inbox emptied", || async { rows().await == 0 }).await;
    pool.close().await;
    app.stop().await;
}
