//! Fuzz tests on stable Rust (no nightly for cargo-fuzz here): each target feeds inputs from the seeded
//! [`mutator::Mutator`] to a parser that faces the outside and fails on the first panic, printing the input. The
//! targets: a bot's YAML file (`config::parse_bot_file`), a webhook body (what the webhook handler does with it:
//! `decode_update`, then its checks), a `getUpdates` answer (`read_answer`, then
//! what the poller does with each update) and a Luau script (`ScriptPlugin::from_source`, what the catalog scan
//! loads each file with).
//!
//! A bounded run is part of `cargo test` (a few seconds per target); `FUZZ_ITERATIONS=<n>` runs each target for
//! `n` inputs and `FUZZ_SEED=<n>` changes the inputs (docs/fuzzing.md has the long runs).

mod mutator;

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    path::Path,
    time::{Duration, Instant},
};

use mutator::Mutator;
use reqwest::StatusCode;
use serde_json::value::RawValue;

use crate::{
    config::{Settings, WebhookEnv, parse_bot_file},
    plugins::{
        PluginRegistry,
        script::{ScriptHost, ScriptLimits, ScriptPlugin},
    },
    telegram::{decode_update, read_answer, unknown_type, unreadable_callback},
};

/// The inputs each target gets: `FUZZ_ITERATIONS`, else `default`.
fn iterations(default: u64) -> u64 {
    std::env::var("FUZZ_ITERATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

/// `FUZZ_SEED`, else a fixed seed (a CI failure replays as it is).
fn seed() -> u64 {
    std::env::var("FUZZ_SEED").ok().and_then(|n| n.parse().ok()).unwrap_or(0x5EED)
}

/// Feeds `target` its inputs (it says whether it accepted one); fails listing the inputs that panicked (the
/// first five stop the run). Prints the count, the time, how many inputs were accepted (a mutator that only made
/// garbage would test the first line of each parser) and the slowest input's time.
fn fuzz(
    name: &str,
    default: u64,
    samples: &[&str],
    dictionary: &'static [&'static str],
    mut target: impl FnMut(&[u8]) -> bool,
) {
    let (count, seed) = (iterations(default), seed());
    let mut mutator = Mutator::new(seed, samples.iter().map(|s| s.as_bytes().to_vec()).collect(), dictionary);
    let (started, mut slowest, mut accepted, mut panicked) = (Instant::now(), Duration::ZERO, 0u64, Vec::new());
    for _ in 0..count {
        let input = mutator.input();
        let began = Instant::now();
        match catch_unwind(AssertUnwindSafe(|| target(&input))) {
            Ok(ok) => accepted += u64::from(ok),
            Err(_) => {
                panicked.push(String::from_utf8_lossy(&input).into_owned());
                if panicked.len() == 5 {
                    break;
                }
            }
        }
        slowest = slowest.max(began.elapsed());
    }
    eprintln!(
        "fuzz {name}: {count} inputs (FUZZ_SEED={seed}) in {:.1?}, {} panics, {accepted} accepted, slowest input \
         {slowest:.1?}",
        started.elapsed(),
        panicked.len()
    );
    assert!(panicked.is_empty(), "{name}: inputs that panicked (FUZZ_SEED={seed}): {panicked:#?}");
}

#[test]
#[should_panic(expected = "inputs that panicked")]
fn a_panicking_target_fails_the_run() {
    // Bad input for the runner itself: a target that panics on inputs longer than three bytes.
    fuzz("self-check", 100, &["{\"a\": 1}"], &[], |input| {
        assert!(input.len() <= 3, "long input");
        true
    });
}

const YAML_SAMPLES: &[&str] = &[
    include_str!("../../../config/bots/echo_bot.yaml"),
    include_str!("../../../config/bots/support_bot.yaml"),
    include_str!("../../../config/bots/script_bot.yaml"),
    "id: a\nname: A\ntoken: \"${T}\"\nmode: webhook\nwebhook: {path: /a, secret: \"${S:-x}\"}\nplugins: [{name: echo}]\n",
    "base: &b {name: echo, config: {echo_all: true}}\nid: b\nname: B\ntoken: t\nplugins:\n  - *b\n  - <<: *b\n",
];
const YAML_TOKENS: &[&str] = &[
    ": ",
    "- ",
    "\n  ",
    "\t",
    "&a ",
    "*a",
    "<<: *a",
    "!!str ",
    "!!binary ",
    "${",
    "${A:-",
    "}",
    "{",
    "[",
    "]",
    "'",
    "\"",
    "\\u",
    "---\n",
    "...\n",
    "|\n",
    ">-\n",
    "? ",
    "#",
    "~",
    "null",
    "0x7fffffffffffffff",
    "-1",
    "1e999",
    ".nan",
    "\u{feff}",
    "\u{0}",
    "é",
    "plugins:",
    "access:",
    "rate_limiting:",
    "settings:",
    "webhook:",
    "mode: ",
];

#[test]
fn yaml_bot_files_never_panic() {
    let registry = PluginRegistry::builtin();
    // Every variable resolves to a well-formed token, so inputs get past `${...}` into validation.
    let env = |_: &str| Some("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw".to_owned());
    let webhooks = WebhookEnv { enabled: true, base_url_set: true };
    fuzz("yaml", 10_000, YAML_SAMPLES, YAML_TOKENS, |input| {
        let text = String::from_utf8_lossy(input);
        match parse_bot_file(Path::new("fuzz.yaml"), &text, &env, &registry, webhooks) {
            Ok(_) => true,
            Err(problems) => {
                assert!(!problems.is_empty(), "an error without a problem");
                problems.iter().for_each(|p| assert!(!p.to_string().is_empty()));
                false
            }
        }
    });
}

const UPDATE_SAMPLES: &[&str] = &[
    r#"{"update_id":1,"message":{"message_id":5,"date":1700000000,"chat":{"id":42,"type":"private","first_name":"A"},"from":{"id":42,"is_bot":false,"first_name":"A","language_code":"en"},"text":"/start@bot1_bot hi","entities":[{"type":"bot_command","offset":0,"length":15}]}}"#,
    r#"{"update_id":2,"callback_query":{"id":"cb1","from":{"id":42,"is_bot":false,"first_name":"A"},"chat_instance":"ci","data":"menu:1","message":{"message_id":6,"date":1700000000,"chat":{"id":42,"type":"private"},"text":"pick"}}}"#,
    r#"{"update_id":3,"channel_post":{"message_id":1,"sender_chat":{"id":-1001234,"type":"channel","title":"N"},"date":1700000000,"chat":{"id":-1001234,"type":"channel","title":"N"},"text":"news"}}"#,
    r#"{"update_id":4,"edited_message":{"message_id":5,"date":1700000000,"edit_date":1700000060,"chat":{"id":-5,"type":"group","title":"G"},"from":{"id":7,"is_bot":false,"first_name":"B"},"photo":[{"file_id":"f","file_unique_id":"u","width":1,"height":1}],"caption":"c"}}"#,
    r#"{"update_id":5,"inline_query":{"id":"iq","from":{"id":7,"is_bot":false,"first_name":"B"},"query":"gif","offset":""}}"#,
    r#"{"update_id":6,"my_chat_member":{"chat":{"id":7,"type":"private"},"from":{"id":7,"is_bot":false,"first_name":"B"},"date":1700000000,"old_chat_member":{"status":"member","user":{"id":1,"is_bot":true,"first_name":"Bot"}},"new_chat_member":{"status":"kicked","user":{"id":1,"is_bot":true,"first_name":"Bot"},"until_date":0}}}"#,
    r#"{"update_id":7,"poll":{"id":"p","question":"q","options":[{"text":"a","voter_count":1}],"total_voter_count":1,"is_closed":false,"is_anonymous":true,"type":"regular","allows_multiple_answers":false}}"#,
    r#"{"update_id":8,"future_kind":{"x":1}}"#,
    r#"{"update_id":9,"callback_query":{"id":"cb2","from":{"id":1},"data":7}}"#,
];
const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "null",
    "true",
    "-0",
    "1e999",
    "-9223372036854775809",
    "18446744073709551616",
    "0.5",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "\\",
    "\"update_id\":",
    "\"message\":",
    "\"chat\":",
    "\"from\":",
    "\"id\":",
    "\"text\":",
    "\"entities\":",
    "\"offset\":",
    "\"length\":",
    "\"type\":\"private\"",
    "\"reply_to_message\":{",
    "\"result\":",
    "\"ok\":true",
    "\"ok\":false",
    "\"parameters\":{\"retry_after\":",
    "\"error_code\":",
];

/// What the webhook handler does with a body once the secret and size passed; whether it decoded.
fn handle_webhook_body(body: &[u8]) -> bool {
    let Ok(update) = decode_update(body) else { return false };
    let _ = (unreadable_callback(&update), unknown_type(&update), update.id.0);
    let _ = (update.chat().map(|c| c.id), update.from().map(|u| u.id));
    true
}

#[test]
fn webhook_bodies_never_panic() {
    fuzz("webhook", 50_000, UPDATE_SAMPLES, JSON_TOKENS, handle_webhook_body);
}

#[test]
fn get_updates_answers_never_panic() {
    let answers: Vec<String> = [
        format!("{{\"ok\":true,\"result\":[{}]}}", UPDATE_SAMPLES.join(",")),
        format!("{{\"ok\":true,\"result\":[{}]}}", UPDATE_SAMPLES[0]),
        "{\"ok\":true,\"result\":[]}".to_owned(),
        "{\"ok\":false,\"error_code\":429,\"description\":\"Too Many Requests: retry after 3\",\"parameters\":{\"retry_after\":3}}".to_owned(),
        "{\"ok\":false,\"error_code\":409,\"description\":\"Conflict: terminated by other getUpdates request\"}".to_owned(),
        "<html><body>502 Bad Gateway</body></html>".to_owned(),
    ]
    .into();
    let samples: Vec<&str> = answers.iter().map(String::as_str).collect();
    let statuses = [StatusCode::OK, StatusCode::TOO_MANY_REQUESTS, StatusCode::BAD_GATEWAY, StatusCode::CONFLICT];
    let mut round = 0;
    fuzz("getUpdates", 50_000, &samples, JSON_TOKENS, |body| {
        round += 1;
        let status = statuses[round % statuses.len()];
        let content_type = (round % 3 == 0).then_some("text/html");
        // What the poller does with an answer: each update's id first, then the whole update.
        let Ok(updates) = read_answer::<Vec<Box<RawValue>>>(status, content_type, body) else { return false };
        for raw in updates {
            let _ = serde_json::from_str::<serde_json::Value>(raw.get()).map(|v| v["update_id"].as_i64());
            handle_webhook_body(raw.get().as_bytes());
        }
        true
    });
}

const SCRIPT_SAMPLES: &[&str] = &[
    include_str!("../../../plugins/script_echo.luau"),
    include_str!("../../../plugins/script_form.luau"),
    include_str!("../../../plugins/script_menu.luau"),
];
const LUAU_TOKENS: &[&str] = &[
    "local ",
    "function",
    "end",
    "(",
    ")",
    "{",
    "}",
    "[[",
    "]]",
    "--",
    "\"",
    "'",
    "..",
    "...",
    "=",
    "==",
    "~=",
    "#",
    "nil",
    "true",
    "0/0",
    "1e309",
    "math.huge",
    "string.rep(\"x\", 1e9)",
    "while true do end",
    "error(\"x\")",
    "error(nil)",
    "error({})",
    "setmetatable({}, {__index = function() error(1) end})",
    "plugin.",
    "meta",
    "on",
    "command",
    "callback",
    "state",
    "name = ",
    "coroutine.wrap(function() end)()",
    "return ",
    "::a:: goto a",
];

#[test]
fn luau_scripts_never_panic() {
    let settings = Settings::defaults();
    // A short CPU budget: a mutated script that loops forever costs 50 ms, not the default second.
    let limits = ScriptLimits { cpu: Duration::from_millis(50), ..ScriptLimits::from_settings(&settings) };
    let host = ScriptHost { limits, ..ScriptHost::in_memory(&settings) };
    fuzz("luau", 1_000, SCRIPT_SAMPLES, LUAU_TOKENS, |input| {
        let source = String::from_utf8_lossy(input).into_owned();
        match ScriptPlugin::from_source(Path::new("fuzz.luau"), source, &host) {
            Ok(_) => true,
            Err(problem) => {
                assert!(!problem.to_string().is_empty(), "an error without a message");
                false
            }
        }
    });
}
