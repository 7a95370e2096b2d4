//! Webhook mode: the emulator pushes updates to our server; refused requests change nothing; retries, a full
//! inbox, a stopped bot, and switching between polling and webhook lose nothing and handle nothing twice.

use std::time::Duration;

use botapi_emulator::{Emulator, EmulatorConfig, FaultSpec, TestBot};
use multibot::{
    config::{BotId, DatabaseUrl},
    fleet::BotState,
    plugins::PluginRegistry,
    runtime::webhook::StorageSecrets,
    storage::Storage,
};
use serde_json::{Value, json};

use crate::{
    helpers::{Served, TempDir, Web, eventually, serve, token},
    process::Process,
};

/// An emulator that retries failed pushes quickly, with bots 1..=n registered.
pub(crate) async fn emulator(n: u32) -> Emulator {
    let config = EmulatorConfig {
        webhook_retry_base: Duration::from_millis(20),
        webhook_retry_max: Duration::from_millis(200),
        ..EmulatorConfig::default()
    };
    let emu = Emulator::start(config).await.expect("emulator");
    for n in 1..=n {
        emu.control().bot_named(&token(n), &format!("Bot {n}"), &format!("bot{n}_bot")).await.expect("register");
    }
    emu
}

fn shop(mode: &str) -> String {
    format!(
        r#"
id: "shop"
name: "Shop"
token: "${{TOKEN_1}}"
mode: "{mode}"
webhook:
  path: "/shop-hook"
  max_connections: 5
plugins:
  - name: "start"
    config:
      welcome_message: "Welcome to the shop."
  - name: "form"
  - name: "menu"
  - name: "echo"
    config:
      echo_all: true
"#
    )
}

/// A webhook bot at the default path (`/blog`).
const BLOG: &str = r#"
id: "blog"
name: "Blog"
token: "${TOKEN_2}"
mode: "webhook"
plugins:
  - name: "echo"
    config:
      echo_all: true
"#;

/// The bot's webhook secret, as the application stored it in its database.
pub(crate) async fn secret_of(app: &Served, bot: &str) -> String {
    let state = app.storage.plugin_store(bot, StorageSecrets::PLUGIN);
    state.get::<String>(StorageSecrets::KEY).await.unwrap().expect("a secret for the bot")
}

/// POSTs `body` to `url` with the secret header when given; returns the status.
pub(crate) async fn post(url: &str, secret: Option<&str>, body: impl Into<reqwest::Body>) -> u16 {
    let mut request = reqwest::Client::new().post(url).header("content-type", "application/json").body(body);
    if let Some(secret) = secret {
        request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
    }
    request.send().await.expect("webhook answers").status().as_u16()
}

/// A text message update from `user` in their private chat, as Telegram would push it.
pub(crate) fn message(update_id: u32, user: i64, text: &str) -> String {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000,
            "chat": {"id": user, "type": "private", "first_name": "Tester"},
            "from": {"id": user, "is_bot": false, "first_name": "Tester"},
            "text": text,
        }
    })
    .to_string()
}

fn handled(app: &Served, id: &str) -> u64 {
    app.manager.status_of(&BotId::parse(id).unwrap()).expect("configured").updates_handled
}

/// Waits until the bot has handled `n` updates (the counter moves just after the handler's reply).
async fn wait_handled(app: &Served, id: &str, n: u64) {
    eventually(Duration::from_secs(10), &format!("{id} to have handled {n} updates"), || async {
        handled(app, id) >= n
    })
    .await;
    assert_eq!(handled(app, id), n);
}

/// Texts the bot sent to `user`, oldest first.
pub(crate) async fn replies(bot: &TestBot, user: i64) -> Vec<String> {
    bot.transcript(user).await.unwrap().into_iter().filter(|m| m.from_bot).filter_map(|m| m.message.text).collect()
}

#[tokio::test]
async fn a_whole_conversation_in_webhook_mode() {
    let emu = emulator(2).await;
    let dir = TempDir::new();
    dir.write("shop.yaml", &shop("webhook"));
    dir.write("blog.yaml", BLOG);
    let app = serve(&emu, dir.path(), Web::Separate, &[], PluginRegistry::builtin()).await;
    let (shop_bot, blog_bot) = (emu.bot(&token(1)).await.unwrap(), emu.bot(&token(2)).await.unwrap());
    // Each bot's webhook: its own URL (custom and default path), a secret, max_connections, allowed_updates.
    let hook = shop_bot.webhook().await.unwrap();
    assert_eq!(hook["url"], app.webhook_url("/shop-hook"));
    assert_eq!((&hook["max_connections"], &hook["has_secret"]), (&json!(5), &json!(true)));
    assert_eq!(blog_bot.webhook().await.unwrap()["url"], app.webhook_url("/blog"));
    let set = shop_bot.calls(Some("setWebhook")).await.unwrap();
    assert_eq!(set[0].params["secret_token"], secret_of(&app, "shop").await);
    assert_eq!(
        set[0].params["allowed_updates"],
        json!(["message", "callback_query", "my_chat_member"]),
        "{:?}",
        set[0].params
    );
    assert!(!set[0].params["url"].as_str().unwrap().contains(&token(1)), "the token is never in the URL");

    let alice = emu.user(1001);
    let say = |text: &'static str| {
        let (alice, bot) = (alice.clone(), shop_bot.clone());
        async move {
            alice.send(&bot, text).await.unwrap();
            alice.next_message_from(&bot).await.unwrap()
        }
    };
    assert_eq!(say("/start").await.text.as_deref(), Some("Welcome to the shop."));
    assert_eq!(say("/form").await.text.as_deref(), Some("What's your name?"));
    assert_eq!(say("Alice").await.text.as_deref(), Some("How old are you?"));
    assert_eq!(say("30").await.text.as_deref(), Some("Hello Alice, you are 30 years old!"));
    let menu = say("/menu").await;
    alice.click(&shop_bot, &menu, "opt_2").await.unwrap();
    let edit = shop_bot.next_event(0, Some(1001), Some("edit"), Duration::from_secs(10)).await.unwrap();
    assert_eq!(edit.message.unwrap().text.as_deref(), Some("Selected: Option 2"));
    alice.send(&blog_bot, "hello blog").await.unwrap();
    assert_eq!(alice.next_message_from(&blog_bot).await.unwrap().text.as_deref(), Some("You said: hello blog"));
    // Everything was pushed, answered 200 and so confirmed; nobody polled.
    eventually(Duration::from_secs(5), "every push confirmed", || async {
        let stats = shop_bot.stats().await.unwrap();
        stats.pending == 0 && stats.updates_confirmed == 6
    })
    .await;
    assert_eq!(shop_bot.stats().await.unwrap().webhook_failures, 0);
    assert!(shop_bot.calls(Some("getUpdates")).await.unwrap().is_empty());
    wait_handled(&app, "shop", 6).await;
    app.stop().await;
    // A stopping bot leaves its webhook, so Telegram keeps its updates.
    assert_eq!(shop_bot.webhook().await.unwrap()["url"], hook["url"]);
    assert!(shop_bot.calls(Some("deleteWebhook")).await.unwrap().is_empty());
}

#[tokio::test]
async fn requests_without_the_bots_own_secret_are_refused_and_change_nothing() {
    let emu = emulator(2).await;
    let dir = TempDir::new();
    dir.write("shop.yaml", &shop("webhook"));
    dir.write("blog.yaml", BLOG);
    let app = serve(&emu, dir.path(), Web::Separate, &[], PluginRegistry::builtin()).await;
    let blog_bot = emu.bot(&token(2)).await.unwrap();
    let alice = emu.user(1001);
    alice.send(&blog_bot, "first").await.unwrap();
    alice.next_message_from(&blog_bot).await.unwrap();
    let (shop_secret, blog_secret) = (secret_of(&app, "shop").await, secret_of(&app, "blog").await);
    assert_ne!(shop_secret, blog_secret);
    let url = app.webhook_url("/blog");
    let update = message(500_001, 1001, "forged");
    // Bad input: no secret header.
    assert_eq!(post(&url, None, update.clone()).await, 401);
    // Bad input: a wrong secret, and one character short of the right one.
    assert_eq!(post(&url, Some("not-the-secret"), update.clone()).await, 401);
    assert_eq!(post(&url, Some(&blog_secret[1..]), update.clone()).await, 401);
    // Bad input: bot A's (shop's) secret on bot B's (blog's) path.
    assert_eq!(post(&url, Some(&shop_secret), update.clone()).await, 401);
    // Bad input: a path no bot is served at.
    assert_eq!(post(&app.webhook_url("/nobody"), Some(&blog_secret), update.clone()).await, 404);
    // Nothing was processed: the right secret now gets the same update handled, and only it.
    wait_handled(&app, "blog", 1).await;
    assert_eq!(post(&url, Some(&blog_secret), update).await, 200);
    assert_eq!(alice.next_message_from(&blog_bot).await.unwrap().text.as_deref(), Some("You said: forged"));
    assert_eq!(replies(&blog_bot, 1001).await, ["You said: first", "You said: forged"]);
    wait_handled(&app, "blog", 2).await;
    app.stop().await;
}

#[tokio::test]
async fn malformed_oversized_and_unknown_updates() {
    let emu = emulator(2).await;
    let dir = TempDir::new();
    dir.write("blog.yaml", BLOG);
    let app = serve(&emu, dir.path(), Web::Separate, &[], PluginRegistry::builtin()).await;
    let blog_bot = emu.bot(&token(2)).await.unwrap();
    let alice = emu.user(1001);
    alice.send(&blog_bot, "first").await.unwrap();
    alice.next_message_from(&blog_bot).await.unwrap();
    let (url, secret) = (app.webhook_url("/blog"), secret_of(&app, "blog").await);
    let secret = Some(secret.as_str());
    // Bad input: not JSON, JSON that is not an update (no update_id), an update_id that is not a number.
    assert_eq!(post(&url, secret, "this is not json").await, 400);
    assert_eq!(post(&url, secret, r#"{"message": {"text": "hi"}}"#).await, 400);
    assert_eq!(post(&url, secret, r#"{"update_id": "seven", "message": {}}"#).await, 400);
    // Bad input: a 2 MiB body.
    let huge = format!(r#"{{"update_id": 600001, "padding": "{}"}}"#, "x".repeat(2 * 1024 * 1024));
    assert_eq!(post(&url, secret, huge).await, 413);
    // An update type this build does not know: 200 so Telegram does not retry it, and ignored.
    assert_eq!(post(&url, secret, r#"{"update_id": 600002, "future_update": {"x": 1}}"#).await, 200);
    // Bad input: GET instead of POST.
    let get = reqwest::get(&url).await.unwrap().status().as_u16();
    assert_eq!(get, 405);
    // None of it reached the bot: the next real message is the second update it handles.
    alice.send(&blog_bot, "second").await.unwrap();
    assert_eq!(alice.next_message_from(&blog_bot).await.unwrap().text.as_deref(), Some("You said: second"));
    wait_handled(&app, "blog", 2).await;
    // The update of an unknown type was counted.
    let metrics = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "multibot_updates_unknown_total{bot_id=\"blog\"} 1"), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn a_retried_update_is_handled_once() {
    let emu = emulator(2).await;
    let dir = TempDir::new();
    dir.write("blog.yaml", BLOG);
    let app = serve(&emu, dir.path(), Web::Separate, &[], PluginRegistry::builtin()).await;
    let blog_bot = emu.bot(&token(2)).await.unwrap();
    let alice = emu.user(1001);
    alice.send(&blog_bot, "first").await.unwrap();
    alice.next_message_from(&blog_bot).await.unwrap();
    let (url, secret) = (app.webhook_url("/blog"), secret_of(&app, "blog").await);
    // Bad input: the same update_id three times (Telegram retrying after a lost answer); each gets 200.
    for _ in 0..3 {
        assert_eq!(post(&url, Some(&secret), message(700_001, 1001, "once")).await, 200);
    }
    // A later update in the same chat is handled after any copy would have been.
    assert_eq!(post(&url, Some(&secret), message(700_002, 1001, "after")).await, 200);
    eventually(Duration::from_secs(10), "the reply to the later update", || async {
        replies(&blog_bot, 1001).await.last().map(String::as_str) == Some("You said: after")
    })
    .await;
    assert_eq!(replies(&blog_bot, 1001).await, ["You said: first", "You said: once", "You said: after"]);
    app.stop().await;
}

#[tokio::test]
async fn a_full_inbox_answers_503_and_the_retry_is_taken() {
    let emu = emulator(2).await;
    let dir = TempDir::new();
    dir.write("blog.yaml", BLOG);
    let extra = [("WEBHOOK_INBOX_SIZE", "2".to_owned()), ("MAX_CONCURRENT_UPDATES", "1".to_owned())];
    let app = serve(&emu, dir.path(), Web::Separate, &extra, PluginRegistry::builtin()).await;
    let blog_bot = emu.bot(&token(2)).await.unwrap();
    let alice = emu.user(1001);
    alice.send(&blog_bot, "first").await.unwrap();
    alice.next_message_from(&blog_bot).await.unwrap();
    let (url, secret) = (app.webhook_url("/blog"), secret_of(&app, "blog").await);
    // Every reply takes 600 ms, so updates pile up: at most 2 in flight and 2 in the inbox.
    blog_bot.inject(FaultSpec::delay("sendMessage", Duration::from_millis(600)).times(100)).await.unwrap();
    let mut refused = Vec::new();
    for i in 0..10u32 {
        match post(&url, Some(&secret), message(800_000 + i, 1001, &format!("burst {i}"))).await {
            200 => {}
            503 => refused.push(i),
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(refused.len() >= 4, "a burst of 10 into room for 4 must be refused in part: {refused:?}");
    // Telegram retries what was refused; once there is room, each is taken.
    for &i in &refused {
        let update = message(800_000 + i, 1001, &format!("burst {i}"));
        eventually(Duration::from_secs(20), "the retry to be taken", || {
            let (url, secret, update) = (url.clone(), secret.clone(), update.clone());
            async move { post(&url, Some(&secret), update).await == 200 }
        })
        .await;
    }
    eventually(Duration::from_secs(30), "every burst message answered", || async {
        replies(&blog_bot, 1001).await.len() == 11
    })
    .await;
    let mut answered = replies(&blog_bot, 1001).await;
    answered.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("You said: burst {i}")).collect();
    expected.push("You said: first".to_owned());
    expected.sort();
    assert_eq!(answered, expected, "each message answered exactly once");
    app.stop().await;
}

#[tokio::test]
async fn a_stopped_bots_path_answers_503_until_it_runs_again() {
    let emu = emulator(2).await;
    let dir = TempDir::new();
    dir.write("blog.yaml", BLOG);
    let app = serve(&emu, dir.path(), Web::Separate, &[], PluginRegistry::builtin()).await;
    let blog_bot = emu.bot(&token(2)).await.unwrap();
    let alice = emu.user(1001);
    alice.send(&blog_bot, "first").await.unwrap();
    alice.next_message_from(&blog_bot).await.unwrap();
    let (url, secret) = (app.webhook_url("/blog"), secret_of(&app, "blog").await);
    let id = BotId::parse("blog").unwrap();
    app.manager.stop(&id).await.unwrap();
    assert_eq!(app.manager.status_of(&id).unwrap().state, BotState::Stopped);
    // Bad input: an update for a stopped bot.
    assert_eq!(post(&url, Some(&secret), message(900_001, 1001, "while stopped")).await, 503);
    // Telegram keeps what users send meanwhile: the webhook stays set and the pushes fail.
    alice.send(&blog_bot, "queued").await.unwrap();
    eventually(Duration::from_secs(10), "a failed push", || async {
        blog_bot.stats().await.unwrap().webhook_failures > 0
    })
    .await;
    assert_eq!(blog_bot.webhook().await.unwrap()["url"], url);
    app.manager.start(&id).await.unwrap();
    assert_eq!(alice.next_message_from(&blog_bot).await.unwrap().text.as_deref(), Some("You said: queued"));
    assert_eq!(post(&url, Some(&secret), message(900_001, 1001, "while stopped")).await, 200);
    assert_eq!(alice.next_message_from(&blog_bot).await.unwrap().text.as_deref(), Some("You said: while stopped"));
    app.stop().await;
}

#[tokio::test]
async fn switching_between_polling_and_webhook_loses_nothing() {
    let emu = emulator(1).await;
    let dir = TempDir::new();
    dir.write("shop.yaml", &shop("polling"));
    let app = serve(&emu, dir.path(), Web::Separate, &[], PluginRegistry::builtin()).await;
    let shop_bot = emu.bot(&token(1)).await.unwrap();
    // Users keep writing while the bot moves from polling to webhook and back, by edits of its YAML.
    let users: Vec<_> = (0..3).map(|u| emu.user(5000 + u)).collect();
    let writer = {
        let (users, bot) = (users.clone(), shop_bot.clone());
        tokio::spawn(async move {
            for i in 0..30 {
                for user in &users {
                    user.send(&bot, &format!("message {i}")).await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    eventually(Duration::from_secs(10), "some replies while polling", || async {
        shop_bot.stats().await.unwrap().messages_sent >= 3
    })
    .await;
    dir.write("shop.yaml", &shop("webhook"));
    let hook_url = app.webhook_url("/shop-hook");
    eventually(Duration::from_secs(10), "hot reload to set the webhook", || async {
        shop_bot.webhook().await.unwrap()["url"] == hook_url.as_str()
    })
    .await;
    let at_switch = shop_bot.stats().await.unwrap().messages_sent;
    eventually(Duration::from_secs(10), "replies through the webhook", || async {
        shop_bot.stats().await.unwrap().messages_sent >= at_switch + 3
    })
    .await;
    dir.write("shop.yaml", &shop("polling"));
    // Polling deletes the webhook before its first getUpdates.
    eventually(Duration::from_secs(10), "hot reload to delete the webhook", || async {
        shop_bot.webhook().await.unwrap() == Value::Null
    })
    .await;
    let id = BotId::parse("shop").unwrap();
    eventually(Duration::from_secs(10), "the polling bot running", || async {
        app.manager.status_of(&id).unwrap().state == BotState::Running
    })
    .await;
    let report = app.reloads.last_report().expect("a reload happened");
    assert_eq!(report.applied, [(id.clone(), multibot::outcomes::ReloadOutcome::Restarted)], "{report:?}");
    let calls = emu.control().calls(Some(&shop_bot), None).await.unwrap();
    let last_delete = calls.iter().rposition(|c| c.method == "deleteWebhook").expect("deleteWebhook called");
    let last_set = calls.iter().rposition(|c| c.method == "setWebhook").unwrap();
    assert!(last_set < last_delete);
    writer.await.unwrap();
    eventually(Duration::from_secs(30), "every message answered", || async {
        shop_bot.stats().await.unwrap().messages_sent >= 90
    })
    .await;
    for user in &users {
        let mut answered = replies(&shop_bot, user.id).await;
        answered.sort();
        let mut expected: Vec<String> = (0..30).map(|i| format!("You said: message {i}")).collect();
        expected.sort();
        assert_eq!(answered, expected, "user {}: every message answered exactly once", user.id);
    }
    eventually(Duration::from_secs(10), "everything confirmed", || async {
        shop_bot.stats().await.unwrap().pending == 0
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn the_secret_survives_a_restart_and_stays_private() {
    let emu = emulator(2).await;
    let dir = TempDir::new();
    dir.write("blog.yaml", BLOG);
    let first = serve(&emu, dir.path(), Web::Shared, &[], PluginRegistry::builtin()).await;
    // One listener serves health and webhooks when their ports are the same.
    assert_eq!(first.webhook, Some(first.health));
    let secret = secret_of(&first, "blog").await;
    first.stop().await;
    let blog_bot = emu.bot(&token(2)).await.unwrap();
    let alice = emu.user(1001);
    // Sent while no process runs: Telegram keeps it.
    alice.send(&blog_bot, "during the restart").await.unwrap();
    let second = serve(&emu, dir.path(), Web::Shared, &[], PluginRegistry::builtin()).await;
    assert_eq!(alice.next_message_from(&blog_bot).await.unwrap().text.as_deref(), Some("You said: during the restart"));
    let set = blog_bot.calls(Some("setWebhook")).await.unwrap();
    assert_eq!(set.len(), 2);
    assert!(set.iter().all(|call| call.params["secret_token"] == secret.as_str()), "the same secret both times");
    // The secret is nowhere an operator looks.
    for path in ["/health/full", "/metrics"] {
        let body = reqwest::get(second.url(path)).await.unwrap().text().await.unwrap();
        assert!(!body.contains(&secret), "{path} shows the secret");
        assert!(!body.contains(&token(2)), "{path} shows the token");
    }
    second.stop().await;
}

#[tokio::test]
async fn the_real_binary_serves_webhooks_and_health_on_one_port_and_logs_no_secret() {
    let emu = emulator(0).await;
    let bot = emu.control().bot_named(&token(50), "Stream Bot", "stream_bot").await.unwrap();
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path().join("bots")).unwrap();
    dir.write(
        "bots/hooked.yaml",
        "id: hooked\nname: Hooked\ntoken: \"${STREAM_TOKEN}\"\nmode: webhook\nplugins:\n  - name: echo\n    config: { echo_all: true }\n",
    );
    // The public URL names the port, so the port is chosen before the process binds it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (base, port) = (format!("http://127.0.0.1:{port}"), port.to_string());
    let vars = [
        ("WEBHOOK_ENABLED", "true"),
        ("WEBHOOK_BASE_URL", &base),
        ("WEBHOOK_PORT", &port),
        ("HEALTH_CHECK_PORT", &port),
    ];
    let process = Process::start_with(&emu, &dir, &vars);
    eventually(Duration::from_secs(20), "the process to be ready", || {
        let url = format!("{base}/health/ready");
        async move { reqwest::get(url).await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    let alice = emu.user(1301);
    alice.send(&bot, "through the webhook").await.unwrap();
    assert_eq!(alice.next_message_from(&bot).await.unwrap().text.as_deref(), Some("You said: through the webhook"));
    // Bad input: a push with a wrong secret, logged as refused.
    assert_eq!(post(&format!("{base}/webhook/hooked"), Some("guess"), message(1, 1301, "forged")).await, 401);
    let mut shown = Vec::new();
    for path in ["/health/full", "/metrics"] {
        shown.push(reqwest::get(format!("{base}{path}")).await.unwrap().text().await.unwrap());
    }
    process.terminate();
    let (status, lines) = process.wait(Duration::from_secs(30)).await;
    // The secret, from the process's database (the default SQLite file under ./data).
    let storage = Storage::open(&DatabaseUrl::sqlite_file(dir.path().join("data/multibot.db"))).await.unwrap();
    let state = storage.plugin_store("hooked", StorageSecrets::PLUGIN);
    let secret = state.get::<String>(StorageSecrets::KEY).await.unwrap().expect("a stored secret");
    storage.close().await;
    assert!(status.success(), "exit status {status}; output:\n{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.contains("webhook set") && l.contains("hooked")), "{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.contains("wrong secret")), "{}", lines.join("\n"));
    for line in lines.iter().chain(&shown) {
        assert!(!line.contains(&token(50)) && !line.contains("TestTokenForMultibot"), "token leaked: {line}");
        assert!(!line.contains(&secret), "webhook secret leaked: {line}");
    }
}

fn greeter(welcome: &str, extra_plugin: &str) -> String {
    format!(
        "id: greeter\nname: Greeter\ntoken: \"${{TOKEN_1}}\"\nmode: webhook\nplugins:\n  - name: start\n    config:\n      welcome_message: \"{welcome}\"\n{extra_plugin}"
    )
}

#[tokio::test]
async fn a_webhook_bot_reloaded_in_place_keeps_its_webhook_and_updates_its_types() {
    let emu = emulator(1).await;
    let dir = TempDir::new();
    dir.write("greeter.yaml", &greeter("v1", ""));
    let app = serve(&emu, dir.path(), Web::Separate, &[], PluginRegistry::builtin()).await;
    let bot = emu.bot(&token(1)).await.unwrap();
    let alice = emu.user(1501);
    alice.send(&bot, "/start").await.unwrap();
    assert_eq!(alice.next_message_from(&bot).await.unwrap().text.as_deref(), Some("v1"));
    // The YAML changes its plugins only: the bot is reloaded in place, its webhook stays, and setWebhook is called
    // again because the menu plugin handles callback queries too.
    dir.write("greeter.yaml", &greeter("v2", "  - name: menu\n"));
    let id = BotId::parse("greeter").unwrap();
    eventually(Duration::from_secs(10), "the reload in place", || async {
        app.manager.status_of(&id).unwrap().last_reload == Some(multibot::outcomes::ReloadOutcome::Reloaded)
    })
    .await;
    alice.send(&bot, "/start").await.unwrap();
    assert_eq!(alice.next_message_from(&bot).await.unwrap().text.as_deref(), Some("v2"));
    let set = bot.calls(Some("setWebhook")).await.unwrap();
    assert_eq!(set.len(), 2, "{set:?}");
    assert_eq!(set[0].params["secret_token"], set[1].params["secret_token"]);
    assert_eq!(set[0].params["allowed_updates"], json!(["message", "my_chat_member"]));
    assert_eq!(set[1].params["allowed_updates"], json!(["message", "callback_query", "my_chat_member"]));
    assert!(bot.calls(Some("deleteWebhook")).await.unwrap().is_empty());
    assert!(bot.calls(Some("getUpdates")).await.unwrap().is_empty());
    app.stop().await;
}
