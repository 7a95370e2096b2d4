//! Bot API trouble (unreachable, a conflicting poller) shown as a degraded bot in `/health/full`, the metrics and
//! the admin bot, and cleared on recovery.

use std::time::Duration;

use botapi_emulator::{Emulator, EmulatorConfig, FaultSpec};
use multibot::plugins::PluginRegistry;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::helpers::{Served, TempDir, Web, eventually, serve, token};

const UNREACHABLE: &str = "id: unreachable\nname: Unreachable\ntoken: \"${TOKEN_1}\"\nplugins:\n  - name: echo\n    config: { echo_all: true }\n";
const CONFLICTED: &str = "id: conflicted\nname: Conflicted\ntoken: \"${TOKEN_1}\"\nplugins:\n  - name: echo\n    config: { echo_all: true }\n";

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("server answers");
    (response.status().as_u16(), response.text().await.expect("body"))
}

async fn health(app: &Served) -> Value {
    serde_json::from_str(&get(&app.url("/health/full")).await.1).expect("JSON")
}

/// The `/health/full` entry of a bot.
async fn bot_health(app: &Served, id: &str) -> Value {
    let full = health(app).await;
    full["bots"].as_array().unwrap().iter().find(|b| b["id"] == id).cloned().expect("the bot")
}

/// The value of `multibot_bot_degraded` for this bot and reason.
async fn degraded_gauge(app: &Served, id: &str, reason: &str) -> Option<f64> {
    let text = get(&app.url("/metrics")).await.1;
    let (bot, reason) = (format!("bot_id=\"{id}\""), format!("reason=\"{reason}\""));
    text.lines()
        .find(|l| l.starts_with("multibot_bot_degraded{") && l.contains(&bot) && l.contains(&reason))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn an_unreachable_bot_api_degrades_the_bot_until_it_answers_again() {
    unreachable_then_back("1.1").await;
}

/// Over HTTP/2 each dropped poll takes the connection its group's polls share: the line connects again for the
/// next poll, and the bot degrades and recovers as over HTTP/1.1.
#[tokio::test]
async fn over_http2_an_unreachable_bot_api_degrades_the_bot_until_it_answers_again() {
    unreachable_then_back("2").await;
}

/// An echo bot speaking `http` (`TELEGRAM_API_HTTP`) loses every poll's connection, shows as degraded, and
/// recovers when the Bot API answers again, with nothing written meanwhile lost.
async fn unreachable_then_back(http: &str) {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let bot = emu.control().bot_named(&token(1), "Unreachable", "unreachable_bot").await.unwrap();
    let dir = TempDir::new();
    dir.write("unreachable.yaml", UNREACHABLE);
    let vars = [("TELEGRAM_API_HTTP", http.to_owned())];
    let app = serve(&emu, dir.path(), Web::Off, &vars, PluginRegistry::builtin()).await;
    eventually(Duration::from_secs(10), "the bot running", || async {
        bot_health(&app, "unreachable").await["state"] == "running"
    })
    .await;
    assert_eq!(degraded_gauge(&app, "unreachable", "api_unreachable").await, Some(0.0));
    let user = emu.user(5001);
    user.send(&bot, "before the outage").await.unwrap();
    assert_eq!(user.next_message_from(&bot).await.unwrap().text.as_deref(), Some("You said: before the outage"));
    // Then every getUpdates loses its connection, from the one after the poll waiting now (at most POLLING_TIMEOUT,
    // 5 s). Not before the reply is in: over HTTP/2 a lost connection fails the sends in flight on it too, and a
    // send Telegram had taken is sent again (docs/operations.md), which is not what this test is about.
    bot.inject(FaultSpec::drop_request("getUpdates").times(10_000)).await.unwrap();
    eventually(Duration::from_secs(30), "the bot degraded", || async {
        bot_health(&app, "unreachable").await["state"] == "degraded"
    })
    .await;
    let full = health(&app).await;
    assert_eq!(full["status"], "degraded", "{full}");
    let shown = bot_health(&app, "unreachable").await;
    let reason = shown["reason"].as_str().unwrap();
    assert!(reason.starts_with("cannot reach the Bot API"), "{reason}");
    assert!(!reason.contains(&token(1)), "no token in {reason}");
    assert_eq!(degraded_gauge(&app, "unreachable", "api_unreachable").await, Some(1.0));
    // Ready stays 200: the process works, and restarting it would not bring the Bot API back.
    assert_eq!(get(&app.url("/health/ready")).await.0, 200);
    // The Bot API answers again: the bot recovers and what was written meanwhile is answered.
    user.send(&bot, "during the outage").await.unwrap();
    bot.clear_faults().await.unwrap();
    eventually(Duration::from_secs(40), "the bot running again", || async {
        bot_health(&app, "unreachable").await["state"] == "running"
    })
    .await;
    assert_eq!(health(&app).await["status"], "ok");
    assert_eq!(bot_health(&app, "unreachable").await["reason"], Value::Null);
    assert_eq!(degraded_gauge(&app, "unreachable", "api_unreachable").await, Some(0.0));
    assert_eq!(user.next_message_from(&bot).await.unwrap().text.as_deref(), Some("You said: during the outage"));
    // Every poll came over `http`.
    let polls = bot.calls(Some("getUpdates")).await.unwrap();
    let version = if http == "2" { "HTTP/2.0" } else { "HTTP/1.1" };
    assert!(polls.iter().all(|c| c.http == version), "{:?}", polls.iter().map(|c| &c.http).collect::<Vec<_>>());
    app.stop().await;
}

/// Polls with `token` until `stop`, as a second process using the same token would.
fn second_poller(api_url: String, token: String, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let url = format!("{api_url}/bot{token}/getUpdates?timeout=1");
        while !stop.is_cancelled() {
            tokio::select! {
                _ = client.get(&url).send() => {}
                () = stop.cancelled() => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

#[tokio::test]
async fn a_second_poller_on_the_same_token_shows_as_a_conflict() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let bot = emu.control().bot_named(&token(1), "Conflicted", "conflicted_bot").await.unwrap();
    let admin_bot = emu.control().bot_named(&token(2), "Admin", "admin_bot").await.unwrap();
    let dir = TempDir::new();
    dir.write("conflicted.yaml", CONFLICTED);
    let extra = [("ADMIN_BOT_TOKEN", token(2)), ("ADMIN_ALLOWED_USERS", "901".to_owned())];
    let app = serve(&emu, dir.path(), Web::Off, &extra, PluginRegistry::builtin()).await;
    eventually(Duration::from_secs(10), "the bot running", || async {
        bot_health(&app, "conflicted").await["state"] == "running"
    })
    .await;
    let stop = CancellationToken::new();
    let poller = second_poller(emu.api_url(), token(1), stop.clone());
    eventually(Duration::from_secs(20), "the conflict shown", || async {
        bot_health(&app, "conflicted").await["state"] == "degraded"
    })
    .await;
    let full = health(&app).await;
    assert_eq!(full["status"], "degraded", "{full}");
    let reason = bot_health(&app, "conflicted").await["reason"].as_str().unwrap().to_owned();
    assert!(reason.starts_with("another poller uses this token, or a webhook is set (409"), "{reason}");
    assert!(!reason.contains(&token(1)), "no token in {reason}");
    assert_eq!(degraded_gauge(&app, "conflicted", "conflict").await, Some(1.0));
    assert_eq!(get(&app.url("/health/ready")).await.0, 200);
    // The admin bot tells it apart from running and failed, with the reason.
    let admin = emu.user(901);
    admin.send(&admin_bot, "/status").await.unwrap();
    let status = admin.next_message_from(&admin_bot).await.unwrap().text.unwrap();
    assert!(status.contains("⚠️ conflicted (Conflicted)"), "{status}");
    assert!(status.contains("another poller uses this token"), "{status}");
    assert!(status.ends_with("Summary: 1/1 running, 1 degraded"), "{status}");
    admin.send(&admin_bot, "/health").await.unwrap();
    let health_text = admin.next_message_from(&admin_bot).await.unwrap().text.unwrap();
    assert!(health_text.contains("1 degraded"), "{health_text}");
    assert!(health_text.contains("⚠️ conflicted: another poller uses this token"), "{health_text}");
    stop.cancel();
    poller.await.unwrap();
    app.stop().await;
    drop(bot);
}

#[tokio::test]
async fn a_webhook_set_for_a_polling_bot_shows_as_a_conflict() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emu.control().bot_named(&token(1), "Hooked", "hooked_bot").await.unwrap();
    let dir = TempDir::new();
    dir.write("hooked.yaml", &CONFLICTED.replace("conflicted", "hooked"));
    let app = serve(&emu, dir.path(), Web::Off, &[], PluginRegistry::builtin()).await;
    eventually(Duration::from_secs(10), "the bot running", || async {
        bot_health(&app, "hooked").await["state"] == "running"
    })
    .await;
    // Someone sets a webhook with the bot's token: Telegram then answers getUpdates 409.
    let url = format!("{}/bot{}/setWebhook?url=https://example.com/hook", emu.api_url(), token(1));
    assert_eq!(reqwest::get(&url).await.unwrap().status().as_u16(), 200);
    eventually(Duration::from_secs(20), "the conflict shown", || async {
        bot_health(&app, "hooked").await["state"] == "degraded"
    })
    .await;
    let shown = bot_health(&app, "hooked").await;
    assert_eq!(shown["trouble"], "conflict");
    let reason = shown["reason"].as_str().unwrap();
    assert!(reason.contains("webhook is active"), "{reason}");
    assert_eq!(degraded_gauge(&app, "hooked", "conflict").await, Some(1.0));
    app.stop().await;
}
