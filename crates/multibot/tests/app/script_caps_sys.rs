//! Script capabilities of the system kind, through the emulator and the real fleet: timers (`timer.after`,
//! `timer.every`, cancelled on reload), outbound HTTP to the hosts the bot's YAML allows (a local plain-HTTP
//! server on loopback), and shared modules (`require` of `PLUGINS_DIR/lib/*.luau`, hot-reloaded with their users).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use botapi_emulator::{TestBot, TestUser};
use multibot::{config::BotId, outcomes::ReloadOutcome, plugins::PluginRegistry};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::helpers::{TempDir, TestApp, eventually, spawn_app_with};

const WAIT: Duration = Duration::from_secs(10);
/// How long a timer's message may take on a busy machine: script threads run at a lower priority.
const TIMER_WAIT: Duration = Duration::from_secs(60);

/// A bot file: `id`, token 1, then the `plugins:` entries as YAML lines.
fn bot(id: &str, plugins: &[&str]) -> String {
    let mut yaml = format!("id: {id}\nname: {id}\ntoken: \"${{TOKEN_1}}\"\nplugins:\n");
    for plugin in plugins {
        yaml.push_str(&format!("  - {plugin}\n"));
    }
    yaml
}

/// An application with one bot (`bot_yaml`) whose PLUGINS_DIR holds `scripts` (`lib/x.luau` for modules).
async fn spawn(bot_yaml: String, scripts: &[(&str, &str)], extra: &[(&str, &str)]) -> (TestApp, TempDir) {
    let plugins = TempDir::new();
    std::fs::create_dir_all(plugins.path().join("lib")).unwrap();
    for (name, text) in scripts {
        plugins.write(name, text);
    }
    let mut settings = vec![("PLUGINS_DIR", plugins.path().display().to_string())];
    settings.extend(extra.iter().map(|(name, value)| (*name, (*value).to_owned())));
    let app = spawn_app_with(&[("bot.yaml", &bot_yaml)], 1, PluginRegistry::builtin(), &settings).await;
    (app, plugins)
}

/// Sends `said` and returns the bot's next message's text.
async fn ask(user: &TestUser, bot: &TestBot, said: &str) -> String {
    user.send(bot, said).await.unwrap();
    user.next_message_from(bot).await.unwrap().text.unwrap_or_default()
}

/// The texts the bot sent in the user's chat that start with `prefix`.
async fn sent(user: &TestUser, bot: &TestBot, prefix: &str) -> Vec<String> {
    let transcript = user.transcript(bot).await.unwrap();
    transcript
        .into_iter()
        .filter(|m| m.from_bot)
        .filter_map(|m| m.message.text)
        .filter(|t| t.starts_with(prefix))
        .collect()
}

const TICKER: &str = r#"
plugin { name = "ticker" }
local handle
command("after", "", function(ctx)
  local chat = ctx.chat_id
  timer.after(1, function() send(chat, "ding") end)
  ctx:reply("set")
end)
command("every", "", function(ctx)
  local chat, n = ctx.chat_id, 0
  handle = timer.every(1, function()
    n += 1
    send(chat, "tick " .. n)
    if n == 2 then error("tick two fails") end
  end)
  ctx:reply("started")
end)
command("stop", "", function(ctx) ctx:reply("cancelled: " .. tostring(handle:cancel())) end)
command("flood", "", function(ctx)
  local ok, err = pcall(function()
    for _ = 1, 20 do timer.after(3600, function() end) end
  end)
  ctx:reply("flood: " .. tostring(err))
end)
"#;

#[tokio::test]
async fn a_timer_sends_after_its_delay_repeats_through_errors_and_stops_when_cancelled() {
    let (app, _plugins) = spawn(bot("ticker", &["name: ticker"]), &[("ticker.luau", TICKER)], &[]).await;
    let (ticker, alice) = (app.bot(1).await, app.emu.user(7001));
    let asked = Instant::now();
    assert_eq!(ask(&alice, &ticker, "/after").await, "set");
    let ding = alice.next_message_in(&ticker, 7001, TIMER_WAIT).await.unwrap();
    assert_eq!(ding.text.as_deref(), Some("ding"));
    assert!(asked.elapsed() >= Duration::from_millis(950), "the delay is 1 s: {:?}", asked.elapsed());
    // Every second; the second run fails (logged with the script's line) and the timer goes on.
    assert_eq!(ask(&alice, &ticker, "/every").await, "started");
    for n in 1..=3 {
        let tick = alice.next_message_in(&ticker, 7001, TIMER_WAIT).await.unwrap().text.unwrap_or_default();
        assert_eq!(tick, format!("tick {n}"));
    }
    assert_eq!(ask(&alice, &ticker, "/stop").await, "cancelled: true");
    let ticks = sent(&alice, &ticker, "tick ").await.len();
    // Two more periods, marked by two one-shot timers of 1 s each: at most a run already under way when the
    // timer was cancelled.
    for _ in 0..2 {
        assert_eq!(ask(&alice, &ticker, "/after").await, "set");
        eventually(TIMER_WAIT, "the one-shot timer", || async {
            alice.next_message_in(&ticker, 7001, TIMER_WAIT).await.unwrap().text.as_deref() == Some("ding")
        })
        .await;
    }
    let after = sent(&alice, &ticker, "tick ").await.len();
    assert!(after <= ticks + 1 && after >= 3, "ticks: {ticks} then {after}");
    assert_eq!(ask(&alice, &ticker, "/stop").await, "cancelled: false");
    // Past the live-timer limit: a clear error.
    let flood = ask(&alice, &ticker, "/flood").await;
    assert!(flood.contains("at most 16 live timers per plugin in a bot"), "{flood}");
    app.stop().await;
}

fn repeater(version: &str) -> String {
    format!(
        r#"plugin {{ name = "repeater" }}
command("go", "", function(ctx)
  local chat = ctx.chat_id
  timer.every(1, function() send(chat, "{version} tick") end)
  ctx:reply("{version} going")
end)
"#
    )
}

#[tokio::test]
async fn no_timer_of_an_old_version_fires_after_a_reload() {
    let yaml = bot("repeater", &["name: repeater"]);
    let (app, plugins) = spawn(yaml, &[("repeater.luau", &repeater("v1"))], &[("ENABLE_HOT_RELOAD", "false")]).await;
    let (repeater_bot, bob) = (app.bot(1).await, app.emu.user(7101));
    assert_eq!(ask(&bob, &repeater_bot, "/go").await, "v1 going");
    eventually(TIMER_WAIT, "two ticks of v1", || async { sent(&bob, &repeater_bot, "v1 tick").await.len() >= 2 }).await;
    plugins.write("repeater.luau", &repeater("v2"));
    let report = app.reloads.reload_now().await;
    assert_eq!(report.applied, [(BotId::parse("repeater").unwrap(), ReloadOutcome::Reloaded)]);
    let old = sent(&bob, &repeater_bot, "v1 tick").await.len();
    // The new version runs, its own timer included; its ticks mark the time (two periods of v1's timer).
    bob.send(&repeater_bot, "/go").await.unwrap();
    eventually(WAIT, "v2's answer", || async { !sent(&bob, &repeater_bot, "v2 going").await.is_empty() }).await;
    eventually(TIMER_WAIT, "two ticks of v2", || async { sent(&bob, &repeater_bot, "v2 tick").await.len() >= 2 }).await;
    assert_eq!(sent(&bob, &repeater_bot, "v1 tick").await.len(), old, "v1's timer fired after the reload");
    app.stop().await;
}

/// A local plain-HTTP server: `/hello`, `/redirect-in` (to `/hello`), `/redirect-out` (to `localhost`, not
/// allowed), `/big` (2 MiB), `/slow` (answers after 5 s, past the script's 3 s; a loaded machine may take a second for the others), `/echo` (the request's body). Counts its requests.
async fn web_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(answer(stream, port));
        }
    });
    (port, requests)
}

async fn answer(mut stream: TcpStream, port: u16) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    let (head, body) = loop {
        let Ok(n) = stream.read(&mut buffer).await else { return };
        if n == 0 {
            return;
        }
        request.extend_from_slice(&buffer[..n]);
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..end]).into_owned();
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            while request.len() < end + 4 + length {
                let Ok(n) = stream.read(&mut buffer).await else { return };
                if n == 0 {
                    return;
                }
                request.extend_from_slice(&buffer[..n]);
            }
            break (head, request[end + 4..end + 4 + length].to_vec());
        }
    };
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let (status, headers, body): (&str, String, Vec<u8>) = match path.as_str() {
        "/hello" => ("200 OK", "x-test: yes\r\n".to_owned(), b"hello from the server".to_vec()),
        "/redirect-in" => ("302 Found", "location: /hello\r\n".to_owned(), Vec::new()),
        "/redirect-out" => ("302 Found", format!("location: http://localhost:{port}/hello\r\n"), Vec::new()),
        "/big" => ("200 OK", String::new(), vec![b'x'; 2 << 20]),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            ("200 OK", String::new(), b"too late".to_vec())
        }
        "/echo" => ("200 OK", String::new(), body),
        _ => ("404 Not Found", String::new(), Vec::new()),
    };
    let head = format!("HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n", body.len());
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}

const FETCHER: &str = r#"
plugin { name = "fetcher" }
command("get", "", function(ctx)
  local ok, r = pcall(http.get, ctx.args, { timeout = 3 })
  if ok then
    ctx:reply(("%d %s %s"):format(r.status, r.headers["x-test"] or "-", r.body), { parse_mode = "plain" })
  else
    ctx:reply("error: " .. tostring(r), { parse_mode = "plain" })
  end
end)
command("post", "", function(ctx)
  local r = http.post(ctx.args, nil, { json = { n = 42 } })
  ctx:reply(r.status .. " " .. r.body, { parse_mode = "plain" })
end)
"#;

#[tokio::test]
async fn http_reaches_the_allowed_hosts_only_within_its_bounds() {
    let (port, requests) = web_server().await;
    let entry = format!("name: fetcher\n    http: {{ allow: [\"127.0.0.1:{port}\"] }}");
    let (app, _plugins) = spawn(bot("fetcher", &[&entry]), &[("fetcher.luau", FETCHER)], &[]).await;
    let (fetcher, carol) = (app.bot(1).await, app.emu.user(7201));
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    // Allowed: the body reaches the user, with a header; a redirect within the list is followed.
    assert_eq!(ask(&carol, &fetcher, &format!("/get {}", url("/hello"))).await, "200 yes hello from the server");
    assert_eq!(ask(&carol, &fetcher, &format!("/get {}", url("/redirect-in"))).await, "200 yes hello from the server");
    assert_eq!(ask(&carol, &fetcher, &format!("/post {}", url("/echo"))).await, r#"200 {"n":42}"#);
    // Not allowed: refused before any request, naming the host and the YAML key.
    let before = requests.load(Ordering::SeqCst);
    for refused in [format!("http://localhost:{port}/hello"), format!("http://127.0.0.1:{}/hello", port + 1)] {
        let answer = ask(&carol, &fetcher, &format!("/get {refused}")).await;
        let host = if refused.contains("localhost") { "localhost" } else { "127.0.0.1" };
        assert!(answer.contains(&format!("the host {host} is not allowed")), "{answer}");
        assert!(answer.contains("http.allow"), "{answer}");
    }
    assert_eq!(requests.load(Ordering::SeqCst), before, "a refused host gets no request");
    // A redirect to a host off the list is refused.
    let answer = ask(&carol, &fetcher, &format!("/get {}", url("/redirect-out"))).await;
    assert!(answer.contains("the host localhost is not allowed"), "{answer}");
    // An oversized answer, a slow server, a scheme other than http(s).
    let answer = ask(&carol, &fetcher, &format!("/get {}", url("/big"))).await;
    assert!(answer.contains("larger than the limit of 1024 KiB"), "{answer}");
    // The script gave up at its own timeout: the server's late answer never reached it.
    let answer = ask(&carol, &fetcher, &format!("/get {}", url("/slow"))).await;
    assert!(answer.contains("no complete answer from 127.0.0.1 within the timeout of 3 s"), "{answer}");
    let answer = ask(&carol, &fetcher, "/get file:///etc/passwd").await;
    assert!(answer.contains("only http and https"), "{answer}");
    app.stop().await;
}

#[test]
fn check_config_reports_a_bad_http_allow_entry_with_its_line() {
    let (dir, plugins) = (TempDir::new(), TempDir::new());
    plugins.write("fetcher.luau", FETCHER);
    let yaml = "id: fetch\nname: Fetch\ntoken: \"${GOOD_TOKEN}\"\nplugins:\n  - name: fetcher\n    http:\n      allow: [\"api.example.com\", \"*.example.org:8443\"]\n";
    dir.write("fetch.yaml", yaml);
    let check = || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_multibot"))
            .arg("check-config")
            .current_dir(dir.path())
            .env_clear()
            .env("CONFIG_DIR", dir.path())
            .env("PLUGINS_DIR", plugins.path())
            .env("GOOD_TOKEN", crate::helpers::token(1))
            .output()
            .expect("multibot runs");
        let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        (output.status.code().unwrap_or(-1), text)
    };
    let (code, text) = check();
    assert_eq!(code, 0, "{text}");
    // Bad input: a URL where a host belongs, and a key that is not `allow`.
    dir.write("fetch.yaml", &yaml.replace("\"api.example.com\"", "\"https://api.example.com/\""));
    let (code, text) = check();
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("fetch.yaml:7:15: plugins[0].http.allow[0]: invalid host pattern"), "{text}");
    dir.write("fetch.yaml", &yaml.replace("allow:", "allowed:"));
    let (code, text) = check();
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("fetch.yaml:7:7: plugins[0].http.allowed") && text.contains("allow"), "{text}");
}

const UTIL_V1: &str = r#"
local util = {}
function util.greet(name) return "Hello, " .. name .. "!" end
return util
"#;

const GREETER: &str = r#"
plugin { name = "libgreeter" }
local util = require("util")
command("hi", "", function(ctx) ctx:reply(util.greet(ctx.args), { parse_mode = "plain" }) end)
command("again", "", function(ctx) ctx:reply(tostring(require("util") == util)) end)
command("bad", "", function(ctx)
  local ok, err = pcall(require, "../secrets")
  ctx:reply(tostring(err), { parse_mode = "plain" })
end)
command("cycle", "", function(ctx)
  local ok, err = pcall(require, "cycle_a")
  ctx:reply(tostring(err), { parse_mode = "plain" })
end)
"#;

#[tokio::test]
async fn require_loads_a_lib_module_once_and_an_edit_reloads_its_users() {
    let scripts = [
        ("libgreeter.luau", GREETER),
        ("lib/util.luau", UTIL_V1),
        ("lib/cycle_a.luau", "return require('cycle_b')"),
        ("lib/cycle_b.luau", "return require('cycle_a')"),
    ];
    let (app, plugins) = spawn(bot("greeter", &["name: libgreeter"]), &scripts, &[]).await;
    let (greeter, dave) = (app.bot(1).await, app.emu.user(7301));
    assert_eq!(ask(&dave, &greeter, "/hi Dave").await, "Hello, Dave!");
    assert_eq!(ask(&dave, &greeter, "/again").await, "true", "cached per VM");
    let bad = ask(&dave, &greeter, "/bad").await;
    assert!(bad.contains("invalid module name \"../secrets\""), "{bad}");
    let cycle = ask(&dave, &greeter, "/cycle").await;
    assert!(cycle.contains("a cycle of modules: cycle_a -> cycle_b -> cycle_a"), "{cycle}");
    // Editing the module reloads the script that required it, without a restart.
    plugins.write("lib/util.luau", &UTIL_V1.replace("Hello", "Hi"));
    eventually(WAIT, "the new module", || async { ask(&dave, &greeter, "/hi Dave").await == "Hi, Dave!" }).await;
    // A broken module: the error names the module's file and line; the running version stays.
    plugins.write("lib/util.luau", "local util = {}\n\nutil.x = nil + 1\nreturn util\n");
    let file = plugins.path().join("lib/util.luau");
    let expected = format!("{}:3: attempt to perform arithmetic", file.display());
    eventually(WAIT, "the module's error", || async {
        app.reloads.last_report().is_some_and(|r| r.errors.iter().any(|e| e.contains(&expected)))
    })
    .await;
    assert_eq!(ask(&dave, &greeter, "/hi Dave").await, "Hi, Dave!");
    assert_eq!(greeter.calls(Some("getMe")).await.unwrap().len(), 1, "no restart: getMe ran once");
    app.stop().await;
}
