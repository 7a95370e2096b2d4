//! Access control, per-user rate limiting and outgoing flood control, observed through the emulator.

use std::{sync::Arc, time::Duration};

use botapi_emulator::{FaultSpec, types::CallRecord};
use multibot::{config::BotId, plugins::PluginRegistry, prelude::*};

use crate::helpers::{eventually, spawn_app, spawn_app_with};

/// Sends many messages on command, and has an admin-only command.
struct Blaster;

#[derive(Deserialize)]
struct NoConfig {}

impl Plugin for Blaster {
    type Config = NoConfig;
    fn meta() -> PluginMeta {
        PluginMeta::new("blaster")
    }
    fn new(_config: NoConfig, _cx: &PluginContext) -> anyhow::Result<Blaster> {
        Ok(Blaster)
    }
    fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
        handlers
            .command("blast", "Send N messages here", |_: Arc<Blaster>, cx: Ctx| async move {
                let n: usize = cx.command_args().parse()?;
                for i in 0..n {
                    cx.reply(format!("blast {i}")).await?;
                }
                Ok(())
            })
            .command("fanout", "Send two messages to each chat listed", |_: Arc<Blaster>, cx: Ctx| async move {
                let chats: Vec<i64> = cx.command_args().split(',').map(str::parse).collect::<Result<_, _>>()?;
                for round in 0..2 {
                    for chat in &chats {
                        cx.send(ChatId(*chat), format!("fanout {round}")).await?;
                    }
                }
                Ok(())
            })
            .admin_command("secret", |_: Arc<Blaster>, cx: Ctx| async move {
                cx.reply("admin only").await?;
                Ok(())
            });
    }
}

fn registry() -> PluginRegistry {
    let mut registry = PluginRegistry::builtin();
    registry.register::<Blaster>();
    registry
}

const GUARDED: &str = r#"
id: guarded
name: Guarded
token: "${TOKEN_1}"
access:
  allowed_users: [1001, 1002, 1003]
  blocked_users: [1003]
  admin_users: [1001]
plugins:
  - name: blaster
  - name: echo
    config: { echo_all: true }
"#;

#[tokio::test]
async fn allowed_blocked_and_admin_users() {
    let app = spawn_app(&[("guarded.yaml", GUARDED)], 1, registry()).await;
    let bot = app.bot(1).await;
    let id = BotId::parse("guarded").unwrap();
    let (admin, member, blocked, stranger) =
        (app.emu.user(1001), app.emu.user(1002), app.emu.user(1003), app.emu.user(1004));
    // Bad input: a blocked user and one not on the allow list write.
    blocked.send(&bot, "let me in").await.unwrap();
    stranger.send(&bot, "hello?").await.unwrap();
    eventually(Duration::from_secs(10), "two dropped updates", || async {
        app.manager.status_of(&id).unwrap().access_denied == 2
    })
    .await;
    assert!(blocked.transcript(&bot).await.unwrap().iter().all(|m| !m.from_bot), "no reply to a blocked user");
    // Sampled into events: the first refusal of the bot is stored.
    eventually(Duration::from_secs(10), "an access_denied event", || async {
        let events = app.storage.events().list(Some("guarded"), Some("access_denied"), 10).await.unwrap();
        events.len() == 1 && events[0].actor_user_id.is_some_and(|u| u == 1003 || u == 1004)
    })
    .await;
    assert!(stranger.transcript(&bot).await.unwrap().iter().all(|m| !m.from_bot), "no reply to a stranger");
    member.send(&bot, "hi").await.unwrap();
    assert_eq!(member.next_message_from(&bot).await.unwrap().text.as_deref(), Some("You said: hi"));
    // An admin-only command: the admin runs it, a member is refused.
    admin.send(&bot, "/secret").await.unwrap();
    assert_eq!(admin.next_message_from(&bot).await.unwrap().text.as_deref(), Some("admin only"));
    member.send(&bot, "/secret").await.unwrap();
    assert_eq!(
        member.next_message_from(&bot).await.unwrap().text.as_deref(),
        Some("This command is only for the bot's admins.")
    );
    app.stop().await;
}

const LIMITED: &str = r#"
id: limited
name: Limited
token: "${TOKEN_1}"
rate_limiting:
  enabled: true
  default_rate: 30
  burst_size: 3
plugins:
  - name: echo
    config: { echo_all: true }
"#;

#[tokio::test]
async fn a_burst_passes_then_one_notice_then_silence_until_refill() {
    // Outgoing pacing on: the notice and replies go out at Telegram's pace. The burst is in a group, where
    // replies may go out 20 at once; in a private chat, one reply per second would let the bucket refill.
    let app = spawn_app_with(&[("limited.yaml", LIMITED)], 1, registry(), &[("FLOOD_CONTROL", "true".into())]).await;
    let bot = app.bot(1).await;
    let id = BotId::parse("limited").unwrap();
    let (eager, calm) = (app.emu.user(2001), app.emu.user(2002));
    let group = app.emu.control().group(-2001, "Eager");
    for i in 0..6 {
        eager.send_in(&bot, &group, &format!("m{i}")).await.unwrap();
    }
    eventually(Duration::from_secs(10), "three refusals", || async {
        app.manager.status_of(&id).unwrap().rate_limited == 3
    })
    .await;
    let replies: Vec<String> = bot
        .transcript(group.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.from_bot)
        .map(|m| m.message.text.unwrap())
        .collect();
    assert_eq!(replies, ["You said: m0", "You said: m1", "You said: m2", "Too many requests, try again in 2 s"]);
    // Three refusals, one event: the episode's first.
    eventually(Duration::from_secs(10), "one rate_limited event", || async {
        let events = app.storage.events().list(Some("limited"), Some("rate_limited"), 10).await.unwrap();
        events.len() == 1 && events[0].actor_user_id == Some(2001)
    })
    .await;
    // Another user is unaffected.
    calm.send(&bot, "me too").await.unwrap();
    assert_eq!(calm.next_message_from(&bot).await.unwrap().text.as_deref(), Some("You said: me too"));
    // After the bucket refills (one token every two seconds), messages pass again.
    eventually(Duration::from_secs(10), "a refilled bucket", || async {
        eager.send(&bot, "again").await.unwrap();
        let last = eager.transcript(&bot).await.unwrap().into_iter().rev().find(|m| m.from_bot);
        last.and_then(|m| m.message.text).as_deref() == Some("You said: again")
    })
    .await;
    app.stop().await;
}

const ORDERED: &str = r#"
id: ordered
name: Ordered
token: "${TOKEN_1}"
access:
  blocked_users: [3002]
rate_limiting:
  enabled: true
  default_rate: 1
  burst_size: 1
plugins:
  - name: echo
    config: { echo_all: true }
"#;

/// The middleware run in their documented order: user tracking sees every update, access control drops a blocked
/// user's before the rate limiter counts them, and the rate limiter drops the rest before the router.
#[tokio::test]
async fn middleware_run_in_order_tracking_then_access_then_rate_limit() {
    let app = spawn_app(&[("ordered.yaml", ORDERED)], 1, registry()).await;
    let bot = app.bot(1).await;
    let id = BotId::parse("ordered").unwrap();
    let (eager, blocked) = (app.emu.user(3001), app.emu.user(3002));
    for i in 0..3 {
        blocked.send(&bot, &format!("b{i}")).await.unwrap();
    }
    eventually(Duration::from_secs(10), "three access refusals", || async {
        app.manager.status_of(&id).unwrap().access_denied == 3
    })
    .await;
    assert_eq!(app.manager.status_of(&id).unwrap().rate_limited, 0, "access runs before the rate limit");
    for i in 0..3 {
        eager.send(&bot, &format!("e{i}")).await.unwrap();
    }
    eventually(Duration::from_secs(10), "two rate-limit refusals", || async {
        app.manager.status_of(&id).unwrap().rate_limited == 2
    })
    .await;
    let status = app.manager.status_of(&id).unwrap();
    assert_eq!((status.access_denied, status.rate_limited), (3, 2));
    let replies: Vec<String> = eager
        .transcript(&bot)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.from_bot)
        .filter_map(|m| m.message.text)
        .collect();
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[0], "You said: e0");
    assert!(replies[1].starts_with("Too many requests, try again in "), "{replies:?}");
    assert!(blocked.transcript(&bot).await.unwrap().iter().all(|m| !m.from_bot), "no reply to a blocked user");
    // User tracking comes first: both users are recorded with every message, refused or not.
    for user in [3001, 3002] {
        eventually(Duration::from_secs(10), "the user recorded with three messages", || async {
            app.storage.users().get("ordered", user).await.unwrap().is_some_and(|u| u.message_count == 3)
        })
        .await;
    }
    app.stop().await;
}

const BLASTER: &str = "id: blaster\nname: Blaster\ntoken: \"${TOKEN_1}\"\nplugins:\n  - name: blaster\n";

/// The most calls that arrived in any closed window of `window_ms` (from one call to `window_ms` later).
fn most_in_any_window(calls: &[&CallRecord], window_ms: u64) -> usize {
    let mut times: Vec<u64> = calls.iter().map(|c| c.at_ms).collect();
    times.sort_unstable();
    (0..times.len()).map(|i| times[i..].iter().take_while(|t| **t - times[i] <= window_ms).count()).max().unwrap_or(0)
}

fn chat_of(call: &CallRecord) -> i64 {
    let chat = &call.params["chat_id"];
    chat.as_i64().or_else(|| chat.as_str().and_then(|s| s.parse().ok())).expect("chat_id")
}

#[tokio::test]
async fn sends_keep_telegrams_windows_per_bot_chat_and_group() {
    let extra = [("FLOOD_CONTROL", "true".into()), ("SHUTDOWN_TIMEOUT", "1".into())];
    let app = spawn_app_with(&[("blaster.yaml", BLASTER)], 1, registry(), &extra).await;
    let bot = app.bot(1).await;
    // The emulator also answers 429 to anything over Telegram's limits.
    app.emu.control().set_flood(true).await.unwrap();
    let users: Vec<_> = (0..40).map(|u| app.emu.user(3000 + u)).collect();
    for user in &users {
        user.send(&bot, "/start").await.unwrap();
    }
    // 21 messages to one group (Telegram allows 20 per minute) ...
    let group = app.emu.control().group(-3100, "Pacing");
    users[2].send_in(&bot, &group, "/blast 21").await.unwrap();
    // ... 6 to one private chat (1 per second) ...
    users[0].send(&bot, "/blast 6").await.unwrap();
    // ... and 80 to 40 chats (30 per second for the bot).
    let chats: Vec<String> = users.iter().map(|u| u.id.to_string()).collect();
    users[1].send(&bot, &format!("/fanout {}", chats.join(","))).await.unwrap();
    eventually(Duration::from_secs(30), "106 messages", || async { bot.stats().await.unwrap().messages_sent >= 106 })
        .await;
    // The group's 21st message must wait a minute after its first: watch the group until 12 s after its first
    // message (the old buckets, 18 at once then 0.3 per second, had sent 21 by then).
    let group_sends = bot.events(0, Some(group.id), Some("message"), Duration::ZERO).await.unwrap();
    let (first, twentieth) = (&group_sends[0], &group_sends[group_sends.len() - 1]);
    assert_eq!(group_sends.len(), 20, "twenty at once");
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let watch = Duration::from_millis((first.at_ms + 12_000).saturating_sub(now_ms));
    let more = bot.events(twentieth.seq, Some(group.id), Some("message"), watch).await.unwrap();
    assert!(more.is_empty(), "a 21st message to the group within 12 s: {more:?}");
    let sends = bot.calls(Some("sendMessage")).await.unwrap();
    assert!(sends.iter().all(|c| c.status == 200), "no 429: {:?}", sends.iter().find(|c| c.status != 200));
    let all: Vec<&CallRecord> = sends.iter().collect();
    let to = |chat: i64| -> Vec<&CallRecord> { sends.iter().filter(|c| chat_of(c) == chat).collect() };
    assert_eq!(all.len(), 106, "the group's 21st message still waits");
    assert!(most_in_any_window(&all, 1000) <= 30, "{} in one second", most_in_any_window(&all, 1000));
    assert_eq!(most_in_any_window(&to(group.id), 60_000), 20);
    assert_eq!(most_in_any_window(&to(users[0].id), 1000), 1, "one per second to a private chat, no burst");
    let blasts: Vec<String> = users[0]
        .transcript(&bot)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.from_bot)
        .map(|m| m.message.text.unwrap())
        .filter(|t| t.starts_with("blast"))
        .collect();
    assert_eq!(blasts, (0..6).map(|i| format!("blast {i}")).collect::<Vec<_>>(), "in order");
    app.stop().await;
}

const ECHO_A: &str =
    "id: echo_a\nname: A\ntoken: \"${TOKEN_1}\"\nplugins:\n  - name: echo\n    config: { echo_all: true }\n";
const ECHO_B: &str =
    "id: echo_b\nname: B\ntoken: \"${TOKEN_2}\"\nplugins:\n  - name: echo\n    config: { echo_all: true }\n";

#[tokio::test]
async fn a_429_delays_one_bot_and_delivers_once_while_another_goes_on() {
    failed_sends_are_retried_as_their_answers_say("HTTP/1.1").await;
}

#[tokio::test]
async fn over_http2_a_429_delays_one_bot_and_delivers_once_while_another_goes_on() {
    failed_sends_are_retried_as_their_answers_say("HTTP/2.0").await;
}

/// Bad answers from Telegram to bot a's sends, over `version` (`TELEGRAM_API_HTTP`): a 429 with `retry_after`, a
/// 502, a 400; bot b goes on meanwhile.
async fn failed_sends_are_retried_as_their_answers_say(version: &str) {
    let http = if version == "HTTP/2.0" { "2" } else { "1.1" };
    let extra = [("TELEGRAM_API_HTTP", http.to_owned())];
    let app = spawn_app_with(&[("a.yaml", ECHO_A), ("b.yaml", ECHO_B)], 2, registry(), &extra).await;
    let (a, b) = (app.bot(1).await, app.bot(2).await);
    let user = app.emu.user(4001);
    a.inject(FaultSpec::too_many_requests("sendMessage", 2)).await.unwrap();
    user.send(&a, "to a").await.unwrap();
    user.send(&b, "to b").await.unwrap();
    let reply_b = user.next_message_from(&b).await.unwrap();
    let reply_a = user.next_message_from(&a).await.unwrap();
    assert_eq!((reply_a.text.as_deref(), reply_b.text.as_deref()), (Some("You said: to a"), Some("You said: to b")));
    let calls = a.calls(Some("sendMessage")).await.unwrap();
    assert_eq!(calls.iter().map(|c| c.status).collect::<Vec<_>>(), [429, 200], "retried once, delivered once");
    assert!(calls[1].at_ms - calls[0].at_ms >= 2000, "waited retry_after: {} ms", calls[1].at_ms - calls[0].at_ms);
    let b_sent = b.calls(Some("sendMessage")).await.unwrap()[0].at_ms;
    assert!(b_sent < calls[1].at_ms, "bot b was not held back by bot a's 429");
    // 5xx is retried; 400 is not.
    a.inject(FaultSpec::error("sendMessage", 502)).await.unwrap();
    user.send(&a, "after 502").await.unwrap();
    assert_eq!(user.next_message_from(&a).await.unwrap().text.as_deref(), Some("You said: after 502"));
    a.inject(FaultSpec::error("sendMessage", 400)).await.unwrap();
    user.send(&a, "after 400").await.unwrap();
    let id = BotId::parse("echo_a").unwrap();
    eventually(Duration::from_secs(10), "the 400 reported as an error", || async {
        app.manager.status_of(&id).unwrap().errors == 1
    })
    .await;
    let statuses: Vec<u16> = a.calls(Some("sendMessage")).await.unwrap().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [429, 200, 502, 200, 400], "no retry after a 400");
    let calls = a.calls(Some("sendMessage")).await.unwrap();
    assert!(calls.iter().all(|c| c.http == version), "{calls:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_user_who_blocked_the_bot_is_marked_blocked() {
    let app = spawn_app(&[("blaster.yaml", BLASTER)], 1, registry()).await;
    let bot = app.bot(1).await;
    let (leaver, sender) = (app.emu.user(5001), app.emu.user(5002));
    leaver.send(&bot, "/start").await.unwrap();
    leaver.block(&bot).await.unwrap();
    // Bad input from Telegram: 403 "bot was blocked by the user" for the message to the leaver.
    sender.send(&bot, "/fanout 5001").await.unwrap();
    eventually(Duration::from_secs(10), "the user marked blocked", || async {
        app.storage.users().get("blaster", 5001).await.unwrap().is_some_and(|u| u.is_blocked)
    })
    .await;
    // Sightings are written in the background: the sender's row may land after the leaver's.
    eventually(Duration::from_secs(10), "the sender recorded, not blocked", || async {
        app.storage.users().get("blaster", 5002).await.unwrap().is_some_and(|u| !u.is_blocked)
    })
    .await;
    app.stop().await;
}
