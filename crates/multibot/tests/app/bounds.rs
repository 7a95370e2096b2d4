//! Bounded waits: a handler past the bot's time limit is dropped and the chat moves on; a call's 429 waits are
//! capped; the updates a bot has pending show in the metrics, `/health/full` and the admin bot's `/status`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use botapi_emulator::{Emulator, EmulatorConfig, FaultSpec};
use multibot::{
    config::{BotId, Settings},
    plugins::PluginRegistry,
    prelude::*,
    telegram::SendOptions,
};
use parking_lot::Mutex;
use serde_json::Value;

use crate::helpers::{TempDir, Web, eventually, serve, token};

/// A plugin whose handlers never finish or report how a send went.
struct Stuck;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StuckConfig {}

impl Plugin for Stuck {
    type Config = StuckConfig;

    fn meta() -> PluginMeta {
        PluginMeta::new("stuck").description("Hangs or reports on purpose")
    }

    fn new(_config: StuckConfig, _cx: &PluginContext) -> anyhow::Result<Stuck> {
        Ok(Stuck)
    }

    fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
        handlers.command("hang", "Never answers", Stuck::hang).command("send", "Sends once", Stuck::send);
    }
}

impl Stuck {
    async fn hang(self: Arc<Self>, _cx: Ctx) -> anyhow::Result<()> {
        std::future::pending().await
    }

    /// Sends through the Bot API client and tells the user how the send ended, as the plugin saw it.
    async fn send(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        let chat = cx.chat_id().ok_or_else(|| anyhow::anyhow!("no chat"))?;
        match cx.api().send_message(chat, "sent".to_owned(), SendOptions::default()).await {
            Ok(_) => Ok(()),
            Err(e) => {
                cx.reply(format!("the send failed: code {:?}, retry_after {:?}", e.code(), e.retry_after())).await?;
                Ok(())
            }
        }
    }
}

fn registry() -> PluginRegistry {
    let mut registry = PluginRegistry::builtin();
    registry.register::<Stuck>();
    registry
}

const BOUNDED: &str = r#"
id: "bounded"
name: "Bounded Bot"
token: "${TOKEN_1}"
settings:
  handler_timeout: 1
plugins:
  - name: "stuck"
  - name: "echo"
    config: { echo_all: true }
  - name: "error_handler"
    config: { show_error_id: true }
"#;

/// A thread's log lines, for a test on the current-thread runtime (where the application's tasks run too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }
}

async fn get(url: &str) -> String {
    reqwest::get(url).await.expect("server answers").text().await.expect("body")
}

/// The value of `name` for the sample whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn app_on(emu: &Emulator, dir: &TempDir, extra: &[(&str, String)]) -> crate::helpers::Served {
    serve(emu, dir.path(), Web::Off, extra, registry()).await
}

#[tokio::test]
async fn a_handler_that_never_returns_is_dropped_at_the_time_limit_and_the_chat_moves_on() {
    let logs = Logs::default();
    let writer = {
        let logs = logs.clone();
        move || logs.clone()
    };
    let subscriber = tracing_subscriber::fmt().with_writer(writer).with_ansi(false).finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let bot = emu.control().bot_named(&token(1), "Bounded", "bounded_bot").await.unwrap();
    let dir = TempDir::new();
    dir.write("bounded.yaml", BOUNDED);
    // HANDLER_TIMEOUT says 60 s: the bot's own `settings.handler_timeout: 1` wins.
    let app = app_on(&emu, &dir, &[("HANDLER_TIMEOUT", "60".to_owned())]).await;
    let user = emu.user(5001);
    // Bad input: a command whose handler never returns, then an ordinary message in the same chat.
    let sent = Instant::now();
    user.send(&bot, "/hang").await.unwrap();
    user.send(&bot, "after the hang").await.unwrap();
    let reply = user.next_message_from(&bot).await.unwrap().text.unwrap();
    assert!(reply.starts_with("Something went wrong (error id "), "the error hook answered: {reply}");
    assert!(sent.elapsed() >= Duration::from_millis(900), "not before the limit: {:?}", sent.elapsed());
    assert_eq!(user.next_message_from(&bot).await.unwrap().text.as_deref(), Some("You said: after the hang"));
    let id = BotId::parse("bounded").unwrap();
    let status = app.manager.status_of(&id).unwrap();
    assert_eq!(status.errors, 1);
    let last_error = status.last_error.unwrap();
    assert!(last_error.starts_with("handler timed out after 1 s (error id "), "{last_error}");
    let metrics = get(&app.url("/metrics")).await;
    let timeouts = [("bot_id", "bounded"), ("plugin", "stuck"), ("outcome", "timeout")];
    assert_eq!(sample(&metrics, "multibot_updates_handled_total", &timeouts), Some(1.0), "{metrics}");
    let errors = [("bot_id", "bounded"), ("plugin", "stuck"), ("outcome", "error")];
    assert_eq!(sample(&metrics, "multibot_updates_handled_total", &errors), None, "a timeout is not an error");
    let error_id: String = reply["Something went wrong (error id ".len()..].chars().take(8).collect();
    let logged = logs.text();
    let line = logged.lines().find(|l| l.contains("handler failed") && l.contains(&error_id));
    let line = line.unwrap_or_else(|| panic!("no log line for {error_id} in:\n{logged}"));
    assert!(line.contains("handler timed out after 1 s") && line.contains("plugin=stuck"), "{line}");
    app.stop().await;
}

#[tokio::test]
async fn a_429_past_the_cap_fails_the_call_and_shorter_ones_are_waited_out() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let bot = emu.control().bot_named(&token(1), "Bounded", "bounded_bot").await.unwrap();
    let dir = TempDir::new();
    // Its own bot id: the metrics are process-wide, and the tests run at once.
    let config = BOUNDED.replace("handler_timeout: 1", "handler_timeout: 30").replace("\"bounded\"", "\"capped\"");
    dir.write("capped.yaml", &config);
    let app = app_on(&emu, &dir, &[("FLOOD_MAX_WAIT", "2".to_owned())]).await;
    let user = emu.user(5002);
    let sends = || async {
        let calls = bot.calls(Some("sendMessage")).await.unwrap();
        calls.iter().filter(|c| c.params["chat_id"] == 5002).map(|c| c.status).collect::<Vec<u16>>()
    };

    // Bad input: Telegram asks for 30 s, past the 2 s cap. The call fails at once with that 429.
    bot.inject(FaultSpec::too_many_requests("sendMessage", 30)).await.unwrap();
    let asked = Instant::now();
    user.send(&bot, "/send").await.unwrap();
    let text = user.next_message_from(&bot).await.unwrap().text.unwrap();
    assert_eq!(text, "the send failed: code Some(429), retry_after Some(30)");
    assert!(asked.elapsed() < Duration::from_secs(5), "no 30 s wait: {:?}", asked.elapsed());
    assert_eq!(sends().await, [429, 200]);

    // Bad input: three 429s of 1 s each. Two fit in the cap (and are waited out); the third would pass it.
    bot.inject(FaultSpec::too_many_requests("sendMessage", 1).times(3)).await.unwrap();
    let asked = Instant::now();
    user.send(&bot, "/send").await.unwrap();
    let text = user.next_message_from(&bot).await.unwrap().text.unwrap();
    let took = asked.elapsed();
    assert_eq!(text, "the send failed: code Some(429), retry_after Some(1)");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(5), "about the cap: {took:?}");
    assert_eq!(sends().await, [429, 200, 429, 429, 429, 200]);

    // A short one is still retried, and the send succeeds.
    bot.inject(FaultSpec::too_many_requests("sendMessage", 1)).await.unwrap();
    user.send(&bot, "/send").await.unwrap();
    assert_eq!(user.next_message_from(&bot).await.unwrap().text.as_deref(), Some("sent"));
    assert_eq!(sends().await, [429, 200, 429, 429, 429, 200, 429, 200]);
    app.stop().await;
}

/// The `/health/full` entry of a bot.
async fn bot_health(app: &crate::helpers::Served, id: &str) -> Value {
    let full: Value = serde_json::from_str(&get(&app.url("/health/full")).await).expect("JSON");
    full["bots"].as_array().unwrap().iter().find(|b| b["id"] == id).cloned().expect("the bot")
}

#[tokio::test]
async fn pending_updates_show_while_a_chat_is_busy_and_go_back_to_zero() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let bot = emu.control().bot_named(&token(1), "Bounded", "bounded_bot").await.unwrap();
    let admin_bot = emu.control().bot_named(&token(2), "Admin", "admin_bot").await.unwrap();
    let dir = TempDir::new();
    // The answers are slowed below, not stuck: a limit they stay within. Its own bot id, as above.
    let config = BOUNDED.replace("handler_timeout: 1", "handler_timeout: 30").replace("\"bounded\"", "\"busy\"");
    dir.write("busy.yaml", &config);
    let extra = [("ADMIN_BOT_TOKEN", token(2)), ("ADMIN_ALLOWED_USERS", "901".to_owned())];
    let app = app_on(&emu, &dir, &extra).await;
    let pending = |metrics: &str| sample(metrics, "multibot_updates_pending", &[("bot_id", "busy")]);
    let oldest = |metrics: &str| sample(metrics, "multibot_oldest_pending_update_seconds", &[("bot_id", "busy")]);
    eventually(Duration::from_secs(10), "the gauges at zero", || async {
        let metrics = get(&app.url("/metrics")).await;
        pending(&metrics) == Some(0.0) && oldest(&metrics) == Some(0.0)
    })
    .await;
    // The first answer takes 6 s to go out: the chat's next two messages wait behind it.
    bot.inject(FaultSpec::delay("sendMessage", Duration::from_secs(6))).await.unwrap();
    let user = emu.user(5003);
    for text in ["one", "two", "three"] {
        user.send(&bot, text).await.unwrap();
    }
    eventually(Duration::from_secs(3), "three updates pending", || async {
        let metrics = get(&app.url("/metrics")).await;
        pending(&metrics) == Some(3.0) && oldest(&metrics).is_some_and(|age| age > 0.0)
    })
    .await;
    let shown = bot_health(&app, "busy").await;
    assert_eq!(shown["pending_updates"], 3, "{shown}");
    assert!(shown["oldest_pending_seconds"].as_f64().is_some_and(|age| age > 0.0), "{shown}");
    let admin = emu.user(901);
    admin.send(&admin_bot, "/status busy").await.unwrap();
    let status = admin.next_message_from(&admin_bot).await.unwrap().text.unwrap();
    assert!(status.contains("Pending updates: 3 (oldest "), "{status}");
    for text in ["one", "two", "three"] {
        assert_eq!(user.next_message_from(&bot).await.unwrap().text, Some(format!("You said: {text}")));
    }
    eventually(Duration::from_secs(5), "nothing pending", || async {
        let metrics = get(&app.url("/metrics")).await;
        pending(&metrics) == Some(0.0) && oldest(&metrics) == Some(0.0)
    })
    .await;
    assert_eq!(bot_health(&app, "busy").await["pending_updates"], 0);
    admin.send(&admin_bot, "/status busy").await.unwrap();
    let status = admin.next_message_from(&admin_bot).await.unwrap().text.unwrap();
    assert!(status.contains("Pending updates: 0\n"), "{status}");
    app.stop().await;
}

#[test]
fn bad_handler_timeouts_and_flood_caps_are_refused_by_name() {
    let read = |name: &str, value: &str| {
        let (name, value) = (name.to_owned(), value.to_owned());
        Settings::from_env(&move |asked| (asked == name).then(|| value.clone()))
    };
    // Bad input: not a number, negative, a unit, past the maximum.
    for (value, shown) in [("soon", "\"soon\""), ("-1", "\"-1\""), ("5s", "\"5s\""), ("86401", "\"86401\"")] {
        let errors = read("HANDLER_TIMEOUT", value).expect_err(value);
        assert_eq!(errors, [format!("HANDLER_TIMEOUT={shown} must be a whole number from 0 to 86400")]);
    }
    for value in ["-5", "forever", "3601"] {
        let errors = read("FLOOD_MAX_WAIT", value).expect_err(value);
        assert_eq!(errors, [format!("FLOOD_MAX_WAIT={value:?} must be a whole number from 0 to 3600")]);
    }
    assert_eq!(read("HANDLER_TIMEOUT", "0").unwrap().handler_timeout, None, "0 is no limit");
    assert_eq!(read("HANDLER_TIMEOUT", "5").unwrap().handler_timeout, Some(Duration::from_secs(5)));
    let defaults = Settings::defaults();
    assert_eq!(defaults.handler_timeout, Some(Duration::from_secs(60)));
    assert_eq!(defaults.flood_max_wait, Duration::from_secs(60));
}
