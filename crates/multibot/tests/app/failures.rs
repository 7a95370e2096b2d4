//! Failures stay contained: a panicking or failing handler, a rejected token, an invalid file.

use std::{sync::Arc, time::Duration};

use multibot::{fleet::BotState, plugins::PluginRegistry, prelude::*};

use crate::helpers::{eventually, spawn_app, token};

/// A plugin whose handlers break on purpose.
struct Boom;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoomConfig {}

impl Plugin for Boom {
    type Config = BoomConfig;

    fn meta() -> PluginMeta {
        PluginMeta::new("boom").description("Fails on purpose")
    }

    fn new(_config: BoomConfig, _cx: &PluginContext) -> anyhow::Result<Boom> {
        Ok(Boom)
    }

    fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
        handlers.command("panic", "Panic", Boom::panic).command("fail", "Fail", Boom::fail);
    }
}

impl Boom {
    async fn panic(self: Arc<Self>, _cx: Ctx) -> anyhow::Result<()> {
        panic!("handler exploded")
    }

    async fn fail(self: Arc<Self>, _cx: Ctx) -> anyhow::Result<()> {
        anyhow::bail!("database on fire")
    }
}

fn registry() -> PluginRegistry {
    let mut registry = PluginRegistry::builtin();
    registry.register::<Boom>();
    registry
}

const FRAGILE: &str = r#"
id: "fragile"
name: "Fragile Bot"
token: "${TOKEN_1}"
access:
  admin_users: [9001]
plugins:
  - name: "boom"
  - name: "echo"
    config: { echo_all: true }
  - name: "error_handler"
    config:
      show_error_id: true
      notify_admins: true
"#;

fn error_id(text: &str) -> String {
    let start = text.find("error id ").expect("an error id") + "error id ".len();
    text[start..].chars().take_while(char::is_ascii_hexdigit).collect()
}

#[tokio::test]
async fn a_panic_or_an_error_gets_the_error_id_reply_and_the_next_message_is_answered() {
    let app = spawn_app(&[("fragile.yaml", FRAGILE)], 1, registry()).await;
    let bot = app.bot(1).await;
    let (user, admin) = (app.emu.user(5001), app.emu.user(9001));
    admin.send(&bot, "hi").await.unwrap();
    admin.next_message_from(&bot).await.unwrap();
    for command in ["/panic", "/fail"] {
        user.send(&bot, command).await.unwrap();
        let reply = user.next_message_from(&bot).await.unwrap().text.unwrap();
        assert!(reply.starts_with("Something went wrong (error id "), "{reply}");
        let id = error_id(&reply);
        assert_eq!(id.len(), 8);
        // The admin hears of it, with the same id.
        let report = admin.next_message_from(&bot).await.unwrap().text.unwrap();
        assert!(report.contains(&id) && report.contains("fragile") && report.contains("boom"), "{report}");
        // The bot goes on.
        user.send(&bot, "still there?").await.unwrap();
        assert_eq!(user.next_message_from(&bot).await.unwrap().text.as_deref(), Some("You said: still there?"));
    }
    let status = app.manager.status().pop().unwrap();
    assert_eq!(status.state, BotState::Running);
    assert_eq!(status.errors, 2);
    assert!(status.last_error.unwrap().contains("database on fire"));
    app.stop().await;
}

const GOOD: &str = r#"
id: "good"
name: "Good Bot"
token: "${TOKEN_1}"
plugins:
  - name: "echo"
    config: { echo_all: true }
"#;

const REJECTED: &str = r#"
id: "rejected"
name: "Rejected Bot"
token: "${TOKEN_3}"
plugins:
  - name: "echo"
"#;

const BROKEN: &str = r#"
id: "broken"
name: "Broken Bot"
token: "${TOKEN_4}"
plugins:
  - name: "no_such_plugin"
"#;

#[tokio::test]
async fn a_rejected_token_or_a_bad_file_fails_alone() {
    // Bad input: TOKEN_3 is well formed but unknown to Telegram; broken.yaml names a plugin that does not exist.
    let app =
        spawn_app(&[("good.yaml", GOOD), ("rejected.yaml", REJECTED), ("broken.yaml", BROKEN)], 1, registry()).await;
    let statuses = app.manager.status();
    let rejected = statuses.iter().find(|s| s.id.as_str() == "rejected").expect("rejected bot is listed");
    assert_eq!(rejected.state, BotState::Failed);
    let reason = rejected.reason.clone().unwrap();
    assert!(reason.contains("401"), "{reason}");
    assert!(!reason.contains(&token(3)), "the reason never shows the token");
    assert!(statuses.iter().all(|s| s.id.as_str() != "broken"), "an invalid file is skipped");
    let good = app.bot(1).await;
    let user = app.emu.user(5002);
    user.send(&good, "ping").await.unwrap();
    assert_eq!(user.next_message_from(&good).await.unwrap().text.as_deref(), Some("You said: ping"));
    // Registering the token later and starting the bot again brings it up.
    app.emu.bot(&token(3)).await.unwrap();
    let id = multibot::config::BotId::parse("rejected").unwrap();
    app.manager.start(&id).await.unwrap();
    eventually(Duration::from_secs(5), "the bot running", || async {
        app.manager.status_of(&id).unwrap().state == BotState::Running
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_user_who_blocked_the_bot_gets_no_error_reply() {
    let app = spawn_app(&[("fragile.yaml", FRAGILE)], 1, registry()).await;
    let bot = app.bot(1).await;
    let leaver = app.emu.user(6001);
    leaver.send(&bot, "hello").await.unwrap();
    assert_eq!(leaver.next_message_from(&bot).await.unwrap().text.as_deref(), Some("You said: hello"));
    // A message Telegram queued before the user blocked the bot: the echo gets 403 "bot was blocked by the user".
    leaver.block(&bot).await.unwrap();
    let from = serde_json::json!({ "id": 6001, "is_bot": false, "first_name": "Leaver" });
    let chat = serde_json::json!({ "id": 6001, "type": "private", "first_name": "Leaver" });
    let message =
        serde_json::json!({ "message_id": 1000, "date": 1_800_000_000, "from": from, "chat": chat, "text": "bye" });
    bot.push_update(serde_json::json!({ "message": message })).await.unwrap();
    let id = multibot::config::BotId::parse("fragile").unwrap();
    let sends = || async {
        let calls = bot.calls(Some("sendMessage")).await.unwrap();
        calls.iter().filter(|c| c.params["chat_id"] == 6001).map(|c| c.status).collect::<Vec<u16>>()
    };
    // Wait for the echo's attempt itself rather than for a count of handled updates, which it may not lead.
    eventually(Duration::from_secs(10), "the update handled", || async { sends().await.len() == 2 }).await;
    eventually(Duration::from_secs(10), "the update counted", || async {
        app.manager.status_of(&id).unwrap().errors == 1
    })
    .await;
    let sends = sends().await;
    assert_eq!(sends, [200, 403], "nothing more was sent to the user who blocked the bot");
    assert_eq!(app.manager.status_of(&id).unwrap().errors, 1, "the failed reply is still an error");
    eventually(Duration::from_secs(10), "the user marked blocked", || async {
        app.storage.users().get("fragile", 6001).await.unwrap().is_some_and(|u| u.is_blocked)
    })
    .await;
    app.stop().await;
}
