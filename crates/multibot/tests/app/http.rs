//! The health and metrics server: `/metrics` parses as Prometheus text and counts a conversation, `/health/full`
//! agrees with the manager, `/health/ready` follows start-up and shutdown, and no token or secret shows.

use std::{collections::BTreeMap, time::Duration};

use botapi_emulator::{Emulator, EmulatorConfig, FaultSpec};
use multibot::{
    app::{Application, Listeners},
    config::{BotId, Settings},
    fleet::BotState,
    plugins::PluginRegistry,
    runtime::webhook::StorageSecrets,
};
use serde_json::Value;

use crate::helpers::{
    Served, TempDir, Web, env, eventually, listeners, serve, settings as app_settings, shared_redis, token,
};

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses the Prometheus text format strictly enough to catch a broken exposition: every comment is `# HELP name
/// text` or `# TYPE name kind`, and every other non-empty line is `name{label="value",...} value`.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let (keyword, name, rest) = (parts.next(), parts.next(), parts.next());
            assert!(matches!(keyword, Some("HELP" | "TYPE")), "unknown comment: {line}");
            assert!(name.is_some_and(is_name), "bad metric name in: {line}");
            if keyword == Some("TYPE") {
                let kinds = ["counter", "gauge", "histogram", "summary", "untyped"];
                assert!(rest.is_some_and(|k| kinds.contains(&k)), "bad type in: {line}");
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels in: {line}"));
                let mut labels = BTreeMap::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let (key, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("bad label in: {line}"));
                    assert!(is_name(key), "bad label name {key:?} in: {line}");
                    // The value runs to the next unescaped quote.
                    let mut end = None;
                    let mut escaped = false;
                    for (i, c) in after.char_indices() {
                        match (c, escaped) {
                            ('\\', false) => escaped = true,
                            ('"', false) => {
                                end = Some(i);
                                break;
                            }
                            _ => escaped = false,
                        }
                    }
                    let end = end.unwrap_or_else(|| panic!("unterminated label value in: {line}"));
                    labels.insert(key.to_owned(), after[..end].to_owned());
                    rest = after[end + 1..].strip_prefix(',').unwrap_or(&after[end + 1..]);
                }
                (name, labels)
            }
        };
        assert!(is_name(name), "bad metric name in: {line}");
        samples.push(Sample { name: name.to_owned(), labels, value });
    }
    samples
}

/// The value of the sample named `name` whose labels include `labels`, when exactly one matches.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .collect();
    assert!(matching.len() <= 1, "several samples match {name} {labels:?}: {matching:?}");
    matching.first().map(|s| s.value)
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("server answers");
    (response.status().as_u16(), response.text().await.expect("body"))
}

async fn get_json(url: &str) -> (u16, Value) {
    let (status, body) = get(url).await;
    (status, serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}")))
}

/// A webhook bot with a bot id no other test uses, since metrics are process-wide.
const METERED: &str = r#"
id: "metered"
name: "Metered"
token: "${TOKEN_1}"
mode: "webhook"
plugins:
  - name: "start"
    config:
      welcome_message: "Counted."
  - name: "echo"
  - name: "error_handler"
"#;

#[tokio::test]
async fn after_a_conversation_metrics_count_it_and_health_agrees_with_the_manager() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let bot = emu.control().bot_named(&token(1), "Metered", "metered_bot").await.unwrap();
    let dir = TempDir::new();
    dir.write("metered.yaml", METERED);
    // Flood control answers the first setMyCommands with 429 (whether or not the call is retried, it is counted).
    bot.inject(FaultSpec::too_many_requests("setMyCommands", 1).times(1)).await.unwrap();
    let app = serve(&emu, dir.path(), Web::Separate, &[], PluginRegistry::builtin()).await;
    let alice = emu.user(1101);
    alice.send(&bot, "/start").await.unwrap();
    assert_eq!(alice.next_message_from(&bot).await.unwrap().text.as_deref(), Some("Counted."));
    alice.send(&bot, "/echo one").await.unwrap();
    assert_eq!(alice.next_message_from(&bot).await.unwrap().text.as_deref(), Some("one"));
    // Bad input from Telegram: the echo's reply is refused once (400); the handler fails, error_handler answers.
    bot.inject(FaultSpec::error("sendMessage", 400).times(1)).await.unwrap();
    alice.send(&bot, "/echo two").await.unwrap();
    let apology = alice.next_message_from(&bot).await.unwrap().text.unwrap();
    assert!(apology.contains("error id"), "{apology}");
    // Bad input: a push with a wrong secret is refused and counted.
    let wrong = reqwest::Client::new()
        .post(format!("http://{}/webhook/metered", app.webhook.unwrap()))
        .header("X-Telegram-Bot-Api-Secret-Token", "wrong")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let id = BotId::parse("metered").unwrap();
    eventually(Duration::from_secs(10), "three updates handled", || async {
        app.manager.status_of(&id).unwrap().updates_handled == 3
    })
    .await;

    // A reload that finds nothing changed is counted too.
    assert!(app.reloads.reload_now().await.applied.is_empty());
    let (status, text) = get(&app.url("/metrics")).await;
    assert_eq!(status, 200);
    let samples = parse_prometheus(&text);
    assert!(value(&samples, "multibot_reloads_total", &[("result", "unchanged")]).unwrap() >= 1.0);
    let bot_label = [("bot_id", "metered")];
    assert_eq!(value(&samples, "multibot_updates_received_total", &bot_label), Some(3.0));
    let handled = |plugin: &str, outcome: &str| {
        value(
            &samples,
            "multibot_updates_handled_total",
            &[("bot_id", "metered"), ("plugin", plugin), ("outcome", outcome)],
        )
    };
    assert_eq!(handled("start", "handled"), Some(1.0));
    assert_eq!(handled("echo", "handled"), Some(1.0));
    assert_eq!(handled("echo", "error"), Some(1.0));
    assert_eq!(value(&samples, "multibot_handler_duration_seconds_count", &bot_label), Some(3.0));
    let inf = [("bot_id", "metered"), ("le", "+Inf")];
    assert_eq!(value(&samples, "multibot_handler_duration_seconds_bucket", &inf), Some(3.0));
    assert!(value(&samples, "multibot_handler_duration_seconds_sum", &bot_label).unwrap() > 0.0);
    assert_eq!(value(&samples, "multibot_rate_limited_total", &bot_label), Some(0.0));
    // Bot API calls are counted per method and result, 429s among them. (Other tests share the process.)
    let calls = |method: &str, result: &str| {
        value(&samples, "multibot_bot_api_calls_total", &[("method", method), ("result", result)]).unwrap_or(0.0)
    };
    assert!(calls("setMyCommands", "429") >= 1.0);
    assert!(calls("sendMessage", "400") >= 1.0);
    assert!(calls("sendMessage", "ok") >= 3.0);
    assert!(calls("setWebhook", "ok") >= 1.0 && calls("getMe", "ok") >= 1.0);
    let requests =
        |status: &str| value(&samples, "multibot_webhook_requests_total", &[("bot_id", "metered"), ("status", status)]);
    assert_eq!(requests("200"), Some(3.0));
    assert_eq!(requests("401"), Some(1.0));
    assert!(value(&samples, "multibot_bots", &[("state", "running")]).unwrap() >= 1.0);
    assert!(value(&samples, "process_resident_memory_bytes", &[]).unwrap() > 1_000_000.0);
    assert!(text.contains("# TYPE multibot_handler_duration_seconds histogram"));
    // Labels stay bounded: never a chat or user id.
    assert!(samples.iter().all(|s| s.labels.keys().all(|k| !k.contains("chat") && !k.contains("user"))));
    // In a label of this test's bot, that is: a value (a histogram's sum of seconds, say) may hold the digits by
    // chance, and so may the random id of another test's bot (the metrics are the process's).
    let ours = |s: &&Sample| s.labels.get("bot_id").is_none_or(|b| b == "metered");
    let leaked = samples.iter().filter(ours).find(|s| s.labels.values().any(|v| v.contains("1101")));
    assert!(leaked.is_none(), "a user id leaked into the metrics: {leaked:?}");

    let (status, full) = get_json(&app.url("/health/full")).await;
    assert_eq!(status, 200);
    assert_eq!(full["status"], "ok");
    assert_eq!(full["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(full["database"]["status"], "ok");
    assert!(full["database"]["latency_ms"].as_f64().is_some());
    assert_eq!(full["redis"], Value::Null);
    assert!(full["memory"]["rss_bytes"].as_u64().unwrap() > 1_000_000);
    assert!(full["uptime_seconds"].as_u64().is_some());
    let bots = full["bots"].as_array().unwrap();
    assert_eq!(bots.len(), 1);
    let status = app.manager.status_of(&id).unwrap();
    let shown = &bots[0];
    assert_eq!(shown["id"], "metered");
    assert_eq!(shown["state"], "running");
    assert_eq!(status.state, BotState::Running);
    assert_eq!(shown["mode"], "webhook");
    assert_eq!(shown["updates_handled"], status.updates_handled);
    assert_eq!(shown["errors"], status.errors);
    assert_eq!(status.errors, 1);
    assert_eq!(shown["last_error"].as_str(), status.last_error.as_deref());
    assert!(shown["last_error"].as_str().unwrap().contains("(error 400)"), "{shown}");
    assert_eq!(shown["plugins"], serde_json::json!(status.plugins));
    assert!(shown["uptime_seconds"].as_u64().unwrap() <= status.uptime.unwrap().as_secs() + 1);

    // No token and no webhook secret anywhere an operator looks.
    let state = app.storage.plugin_store("metered", StorageSecrets::PLUGIN);
    let secret: String = state.get(StorageSecrets::KEY).await.unwrap().expect("a stored secret");
    let full = full.to_string();
    for shown in [&text, &full] {
        assert!(!shown.contains(&token(1)) && !shown.contains("TestTokenForMultibot"), "a token leaked");
        assert!(!shown.contains(&secret), "the webhook secret leaked");
    }
    app.stop().await;
}

#[tokio::test]
async fn ready_follows_start_up_and_shutdown_while_live_stays_200() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let bot = emu.control().bot_named(&token(1), "Slow", "slow_bot").await.unwrap();
    let dir = TempDir::new();
    dir.write(
        "slow.yaml",
        "id: slowpoke\nname: Slow\ntoken: \"${TOKEN_1}\"\nplugins:\n  - name: echo\n    config: { echo_all: true }\n",
    );
    // Start-up takes a while: getMe answers after a second.
    bot.inject(FaultSpec::delay("getMe", Duration::from_secs(1))).await.unwrap();
    let (listeners, vars) = listeners(Web::Off).await;
    let health = listeners.health.as_ref().unwrap().local_addr().unwrap();
    let settings = app_settings(&emu, dir.path(), &vars);
    let building = tokio::spawn(Application::build_with(settings, PluginRegistry::builtin(), env(), listeners));
    let (status, ready) = get_json(&format!("http://{health}/health/ready")).await;
    assert_eq!((status, &ready["reason"]), (503, &Value::from("starting")), "{ready}");
    assert_eq!(get(&format!("http://{health}/health/live")).await.0, 200);
    assert!(!building.is_finished(), "start-up was still running");
    let app = Served::run(building.await.unwrap().unwrap());
    let (status, ready) = get_json(&app.url("/health/ready")).await;
    assert_eq!((status, &ready["status"]), (200, &Value::from("ready")));

    // Shutdown with an update in flight: its reply takes 1.5 s, during which ready is 503 and live 200.
    bot.inject(FaultSpec::delay("sendMessage", Duration::from_millis(1500))).await.unwrap();
    let alice = emu.user(1201);
    alice.send(&bot, "slowly").await.unwrap();
    eventually(Duration::from_secs(10), "the update in flight", || async {
        let samples = parse_prometheus(&get(&app.url("/metrics")).await.1);
        value(&samples, "multibot_updates_received_total", &[("bot_id", "slowpoke")]) == Some(1.0)
    })
    .await;
    app.begin_stop();
    eventually(Duration::from_secs(5), "ready to say shutting down", || async {
        let (status, ready) = get_json(&app.url("/health/ready")).await;
        status == 503 && ready["reason"] == "shutting down"
    })
    .await;
    assert!(!app.finished(), "observed while the bot was still draining");
    assert_eq!(get(&app.url("/health/live")).await.0, 200);
    let url = app.url("/health/live");
    app.stop().await;
    // The in-flight update was finished before the exit, and the server is gone.
    assert_eq!(alice.next_message_from(&bot).await.unwrap().text.as_deref(), Some("You said: slowly"));
    assert!(reqwest::get(url).await.is_err(), "the health server stopped with the application");
}

fn settings(vars: &[(&str, &str)]) -> Settings {
    let vars: BTreeMap<&str, &str> = vars.iter().copied().collect();
    Settings::from_env(&|name| vars.get(name).map(|v| (*v).to_owned())).unwrap()
}

#[tokio::test]
async fn listeners_follow_the_settings() {
    // Equal ports: one listener serves both.
    let shared = settings(&[("HEALTH_CHECK_PORT", "0"), ("WEBHOOK_PORT", "0"), ("WEBHOOK_ENABLED", "true")]);
    let bound = Listeners::bind(&shared).await.unwrap();
    assert!(bound.health.is_some() && bound.webhook.is_none());
    // Health disabled: only the webhook server.
    let webhook_only =
        settings(&[("HEALTH_CHECK_ENABLED", "false"), ("WEBHOOK_PORT", "0"), ("WEBHOOK_ENABLED", "true")]);
    let bound = Listeners::bind(&webhook_only).await.unwrap();
    assert!(bound.health.is_none() && bound.webhook.is_some());
    // Neither.
    let none = settings(&[("HEALTH_CHECK_ENABLED", "false")]);
    let bound = Listeners::bind(&none).await.unwrap();
    assert!(bound.health.is_none() && bound.webhook.is_none());
}

#[tokio::test]
async fn health_check_enabled_false_runs_no_server() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = TempDir::new();
    let settings = app_settings(&emu, dir.path(), &[("HEALTH_CHECK_ENABLED", "false".to_owned())]);
    let app = Application::build(settings, PluginRegistry::builtin(), env()).await.unwrap();
    assert_eq!((app.health_addr(), app.webhook_addr()), (None, None));
    app.shutdown_token().cancel();
    app.run_until_stopped().await.unwrap();
}

#[tokio::test]
async fn rate_limited_and_refused_updates_are_counted() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let bot = emu.control().bot_named(&token(1), "Limited", "limited_bot").await.unwrap();
    let dir = TempDir::new();
    dir.write(
        "limited.yaml",
        "id: limited\nname: Limited\ntoken: \"${TOKEN_1}\"\nrate_limiting:\n  enabled: true\n  default_rate: 1\n  \
         burst_size: 1\nplugins:\n  - name: echo\n    config: { echo_all: true }\n",
    );
    let app = serve(&emu, dir.path(), Web::Off, &[], PluginRegistry::builtin()).await;
    let alice = emu.user(1401);
    // Bad input: three messages where the bucket holds one.
    for text in ["one", "two", "three"] {
        alice.send(&bot, text).await.unwrap();
    }
    let id = BotId::parse("limited").unwrap();
    eventually(Duration::from_secs(10), "two updates rate limited", || async {
        app.manager.status_of(&id).unwrap().rate_limited == 2
    })
    .await;
    let samples = parse_prometheus(&get(&app.url("/metrics")).await.1);
    assert_eq!(value(&samples, "multibot_rate_limited_total", &[("bot_id", "limited")]), Some(2.0));
    let refused = [("bot_id", "limited"), ("plugin", "none"), ("outcome", "refused")];
    assert_eq!(value(&samples, "multibot_updates_handled_total", &refused), Some(2.0));
    assert_eq!(value(&samples, "multibot_updates_received_total", &[("bot_id", "limited")]), Some(3.0));
    app.stop().await;
}

#[tokio::test]
async fn health_full_shows_redis_when_fsm_state_lives_there() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = TempDir::new();
    // Redis answering (the one CI runs on 6379, as the FSM tests use).
    let Some(redis) = shared_redis().await else { return };
    let up = [("FSM_STORAGE", "redis".to_owned()), ("REDIS_URL", redis.to_owned())];
    let app = serve(&emu, dir.path(), Web::Off, &up, PluginRegistry::builtin()).await;
    let (_, full) = get_json(&app.url("/health/full")).await;
    assert_eq!((&full["redis"]["status"], &full["status"]), (&Value::from("ok"), &Value::from("ok")), "{full}");
    assert!(full["redis"]["latency_ms"].as_f64().is_some());
    app.stop().await;
    // Bad input: Redis configured where nothing listens. Full health says so; readiness does not depend on it.
    let down = [("FSM_STORAGE", "redis".to_owned()), ("REDIS_URL", "redis://127.0.0.1:1".to_owned())];
    let app = serve(&emu, dir.path(), Web::Off, &down, PluginRegistry::builtin()).await;
    let (_, full) = get_json(&app.url("/health/full")).await;
    assert_eq!((&full["redis"]["status"], &full["status"]), (&Value::from("down"), &Value::from("degraded")), "{full}");
    assert!(full["redis"]["error"].as_str().unwrap().contains("Redis"), "{full}");
    assert_eq!(get(&app.url("/health/ready")).await.0, 200);
    app.stop().await;
    // Without Redis, `redis` is null (the other tests check that).
}
