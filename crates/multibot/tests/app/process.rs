//! The real binary: SIGTERM mid-stream loses nothing and answers nothing twice (on SQLite and PostgreSQL, through
//! the default durable inbox), and no token reaches the logs; a second process on one SQLite file is refused.
//! [`Process`] runs `multibot run`.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use botapi_emulator::{Emulator, EmulatorConfig, FaultSpec, TestBot};
use parking_lot::Mutex;

use crate::{
    db::{TestDb, both_backends},
    helpers::{TempDir, eventually, token},
};

const ECHO: &str = r#"
id: "stream_bot"
name: "Stream Bot"
token: "${STREAM_TOKEN}"
plugins:
  - name: "echo"
    config:
      echo_all: true
"#;

/// A running `multibot run` whose output lines are collected.
pub(crate) struct Process {
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
}

impl Process {
    fn start(emu: &Emulator, dir: &TempDir) -> Process {
        Process::start_with(emu, dir, &[])
    }

    /// Starts `multibot run` in `dir` (bot files in `dir/bots`) with more variables (which win).
    pub(crate) fn start_with(emu: &Emulator, dir: &TempDir, extra: &[(&str, &str)]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_multibot"))
            .arg("run")
            .current_dir(dir.path())
            .env_clear()
            .env("TELEGRAM_API_URL", emu.api_url())
            .env("CONFIG_DIR", dir.path().join("bots"))
            .env("STREAM_TOKEN", token(50))
            .env("LOG_FORMAT", "json")
            .env("LOG_LEVEL", "DEBUG")
            .env("POLLING_TIMEOUT", "5")
            .env("HEALTH_CHECK_PORT", "0")
            .env("FLOOD_CONTROL", "false")
            // After `env_clear` and the defaults, so that they apply and win.
            .envs(extra.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("multibot starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as _),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().push(line);
                }
            });
        }
        Process { child, output }
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The output lines so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.output.lock().clone()
    }

    /// Sends SIGTERM: a graceful stop.
    pub(crate) fn terminate(&self) {
        self.signal("-TERM");
    }

    /// Stops it with SIGTERM and returns what it printed, once it exited with success (within 30 s).
    pub(crate) async fn stop(self) -> Vec<String> {
        self.terminate();
        let (status, output) = self.wait(Duration::from_secs(30)).await;
        assert!(status.success(), "{output:?}");
        output
    }

    /// Kills it with SIGKILL (no chance to finish anything) and waits until it is gone; returns its output.
    pub(crate) fn kill9(mut self) -> Vec<String> {
        // `Child::kill` sends SIGKILL on Unix.
        self.child.kill().expect("SIGKILL");
        let status = self.child.wait().expect("wait for the killed process");
        assert!(!status.success(), "killed, not exited: {status}");
        self.output.lock().clone()
    }

    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().expect("kill runs");
        assert!(status.success());
    }

    pub(crate) async fn wait(mut self, within: Duration) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader threads drain the pipes.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return (status, self.output.lock().clone());
            }
            if tokio::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("multibot did not exit; output:\n{}", self.output.lock().join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A process still running when its handle goes (a test failed before stopping it) is killed, so that it does not
/// outlive the test, polling and holding database connections.
impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until `bot` is polling the emulator.
pub(crate) async fn wait_polling(emu: &Emulator, bot: &TestBot) {
    let url = format!("{}/control/bots/{}", emu.api_url(), bot.id);
    eventually(Duration::from_secs(20), "the bot to poll", || {
        let url = url.clone();
        async move { reqwest::get(url).await.unwrap().json::<serde_json::Value>().await.unwrap()["polling"] == true }
    })
    .await;
}

both_backends!(sigterm_mid_stream_loses_nothing_and_answers_nothing_twice);

async fn sigterm_mid_stream_loses_nothing_and_answers_nothing_twice(db: &TestDb) {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let bot = emu.control().bot_named(&token(50), "Stream Bot", "stream_bot").await.unwrap();
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path().join("bots")).unwrap();
    dir.write("bots/stream.yaml", ECHO);
    // Each reply takes 100 ms to send, so SIGTERM finds updates in flight.
    bot.inject(FaultSpec::delay("sendMessage", Duration::from_millis(100)).times(1000)).await.unwrap();
    // `INBOX` is left unset: the default, the durable inbox.
    let database = [("DATABASE_URL", db.url.as_str())];
    let process = Process::start_with(&emu, &dir, &database);
    wait_polling(&emu, &bot).await;
    let users: Vec<_> = (0..5).map(|u| emu.user(8000 + u)).collect();
    let texts = |u: i64, range: std::ops::Range<i64>| range.map(move |i| format!("message {i} from {u}"));
    for i in 0..5 {
        for (u, user) in users.iter().enumerate() {
            user.send(&bot, &texts(u as i64, i..i + 1).next().unwrap()).await.unwrap();
        }
    }
    // The first reply proves handling has begun; stop in the middle of the stream.
    users[0].next_message_from(&bot).await.unwrap();
    process.terminate();
    // Messages that arrive while the process stops wait in Telegram.
    for i in 5..10 {
        for (u, user) in users.iter().enumerate() {
            user.send(&bot, &texts(u as i64, i..i + 1).next().unwrap()).await.unwrap();
        }
    }
    let (status, first_run) = process.wait(Duration::from_secs(30)).await;
    assert!(status.success(), "exit status {status}; output:\n{}", first_run.join("\n"));
    let between = bot.stats().await.unwrap();
    assert!(between.messages_sent > 0 && between.pending > 0, "the stop fell mid-stream: {between:?}");
    assert_eq!(between.updates_confirmed, between.messages_sent, "what was answered was confirmed, nothing more");
    let process = Process::start_with(&emu, &dir, &database);
    eventually(Duration::from_secs(30), "all 50 replies", || async { bot.stats().await.unwrap().messages_sent >= 50 })
        .await;
    eventually(Duration::from_secs(10), "everything confirmed", || async {
        let stats = bot.stats().await.unwrap();
        stats.pending == 0 || stats.updates_confirmed == 50
    })
    .await;
    let second_run = process.stop().await;
    // Every message was answered exactly once, in order within its chat.
    for (u, user) in users.iter().enumerate() {
        let replies: Vec<String> = user
            .transcript(&bot)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.from_bot)
            .map(|m| m.message.text.unwrap())
            .collect();
        let expected: Vec<String> = texts(u as i64, 0..10).map(|t| format!("You said: {t}")).collect();
        assert_eq!(replies, expected, "user {u}");
    }
    let stats = bot.stats().await.unwrap();
    assert_eq!((stats.messages_sent, stats.updates_confirmed, stats.pending), (50, 50, 0));
    // They went through the inbox in the database, and all are done.
    let states = crate::durability::inbox_states(&db.url).await;
    // (Done rows below a confirmed offset may already be pruned; none is left pending.)
    assert!(states.keys().all(|state| state == "done"), "the inbox rows by state: {states:?}");
    assert!(states.get("done").is_none_or(|&done| done <= 50), "the inbox rows by state: {states:?}");
    // No token in any log line, and the lines about the bot carry its id.
    for line in first_run.iter().chain(&second_run) {
        assert!(!line.contains(&token(50)), "token leaked: {line}");
        assert!(!line.contains("TestTokenForMultibot"), "token secret leaked: {line}");
    }
    let started = first_run.iter().find(|l| l.contains("bot started")).expect("a start line");
    let json: serde_json::Value = serde_json::from_str(started).expect("JSON log lines");
    assert_eq!(json["fields"]["bot_id"], "stream_bot");
}

#[tokio::test]
async fn a_second_process_on_one_sqlite_file_is_refused_and_the_first_keeps_its_bots() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let bot = emu.control().bot_named(&token(50), "Stream Bot", "stream_bot").await.unwrap();
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path().join("bots")).unwrap();
    dir.write("bots/stream.yaml", ECHO);
    let first = Process::start(&emu, &dir);
    wait_polling(&emu, &bot).await;
    // Bad input: a second `multibot run` with the same data directory, so the same SQLite file.
    let (status, output) = Process::start(&emu, &dir).wait(Duration::from_secs(30)).await;
    assert!(!status.success(), "{output:?}");
    let expected = format!("is in use by another Multibot process (pid {})", first.pid());
    assert!(output.iter().any(|l| l.contains(&expected)), "{output:?}");
    // The first one kept its bot: it answers, and no poll of it was cut short by another (409).
    let user = emu.user(8200);
    user.send(&bot, "still here").await.unwrap();
    assert_eq!(user.next_message_from(&bot).await.unwrap().text.as_deref(), Some("You said: still here"));
    let polls = emu.control().calls(Some(&bot), Some("getUpdates")).await.unwrap();
    assert!(polls.iter().all(|c| c.status == 200), "{:?}", polls.iter().map(|c| c.status).collect::<Vec<_>>());
    // A crash leaves nothing locked: the next process takes over at once.
    first.kill9();
    let next = Process::start(&emu, &dir);
    user.send(&bot, "after the crash").await.unwrap();
    let mut reply = user.next_message_from(&bot).await.unwrap().text;
    // The kill may come between the answer and its done mark: that one update may run again, once.
    if reply.as_deref() == Some("You said: still here") {
        reply = user.next_message_from(&bot).await.unwrap().text;
    }
    assert_eq!(reply.as_deref(), Some("You said: after the crash"));
    next.stop().await;
}

#[tokio::test]
async fn sighup_reloads_the_configuration() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let bot = emu.control().bot_named(&token(50), "Stream Bot", "stream_bot").await.unwrap();
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path().join("bots")).unwrap();
    let greeter = |welcome: &str| {
        format!(
            "id: hup\nname: Hup\ntoken: \"${{STREAM_TOKEN}}\"\nplugins:\n  - name: start\n    config:\n      welcome_message: {welcome}\n"
        )
    };
    dir.write("bots/hup.yaml", &greeter("before"));
    // The watcher is off: only SIGHUP reloads.
    let process = Process::start_with(&emu, &dir, &[("ENABLE_HOT_RELOAD", "false")]);
    wait_polling(&emu, &bot).await;
    let user = emu.user(8100);
    user.send(&bot, "/start").await.unwrap();
    assert_eq!(user.next_message_from(&bot).await.unwrap().text.as_deref(), Some("before"));
    dir.write("bots/hup.yaml", &greeter("after"));
    process.signal("-HUP");
    eventually(Duration::from_secs(20), "the new welcome", || async {
        user.send(&bot, "/start").await.unwrap();
        user.next_message_from(&bot).await.unwrap().text.as_deref() == Some("after")
    })
    .await;
    let output = process.stop().await;
    assert!(output.iter().any(|l| l.contains("SIGHUP received")), "{output:?}");
}

#[tokio::test]
async fn an_unreachable_bot_api_is_logged_once_when_it_goes_and_once_when_it_comes_back() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let bot = emu.control().bot_named(&token(50), "Stream Bot", "stream_bot").await.unwrap();
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path().join("bots")).unwrap();
    dir.write("bots/stream.yaml", ECHO);
    let process = Process::start(&emu, &dir);
    wait_polling(&emu, &bot).await;
    // Every getUpdates loses its connection; a message ends the poll waiting now (and is answered).
    bot.inject(FaultSpec::drop_request("getUpdates").times(10_000)).await.unwrap();
    let user = emu.user(8200);
    user.send(&bot, "before the outage").await.unwrap();
    assert_eq!(user.next_message_from(&bot).await.unwrap().text.as_deref(), Some("You said: before the outage"));
    eventually(Duration::from_secs(20), "five failed polls", || async {
        bot.calls(Some("getUpdates")).await.unwrap().iter().filter(|c| c.status == 0).count() >= 5
    })
    .await;
    user.send(&bot, "during the outage").await.unwrap();
    bot.clear_faults().await.unwrap();
    assert_eq!(user.next_message_from(&bot).await.unwrap().text.as_deref(), Some("You said: during the outage"));
    let output = process.stop().await;
    let lines: Vec<serde_json::Value> = output.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let about_polling = |level: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l["level"] == level)
            .map(|l| l["fields"]["message"].as_str().unwrap_or_default().to_owned())
            .filter(|m| m.contains("getUpdates") || m.contains("degraded") || m.contains("recovered"))
            .collect()
    };
    assert_eq!(about_polling("WARN"), ["bot degraded"], "one warning, not one per failed poll");
    assert_eq!(about_polling("INFO"), ["bot recovered: the Bot API answers again"]);
    let degraded = lines.iter().find(|l| l["fields"]["message"] == "bot degraded").unwrap();
    assert!(degraded["fields"]["reason"].as_str().unwrap().starts_with("cannot reach the Bot API"), "{degraded}");
    assert_eq!(degraded["span"]["bot_id"], "stream_bot", "{degraded}");
}
