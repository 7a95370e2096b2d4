//! The admin bot, command by command, through the emulator.

use std::time::{Duration, Instant};

use botapi_emulator::{TestBot, TestUser, types::Message};
use multibot::{config::BotId, fleet::BotState, plugins::PluginRegistry};

use crate::helpers::{TestApp, eventually, spawn_app_with, token};

const ADMIN: i64 = 900;
const SECOND_ADMIN: i64 = 905;

const ECHO: &str = "id: echo_bot\nname: Echo Bot\ntoken: \"${TOKEN_1}\"\nplugins:\n  - name: echo\n    config: { echo_all: true }\n  - name: error_handler\n    config: { notify_admins: true }\n";
const GREETER: &str = "id: greeter\nname: Greeter\ntoken: \"${TOKEN_2}\"\nplugins:\n  - name: start\n    config:\n      welcome_message: v1\n";

async fn spawn(extra: &[(&str, String)]) -> (TestApp, TestBot, TestUser) {
    let mut vars = vec![("ADMIN_BOT_TOKEN", token(3)), ("ADMIN_ALLOWED_USERS", format!("{ADMIN},{SECOND_ADMIN}"))];
    vars.extend(extra.iter().cloned());
    let app =
        spawn_app_with(&[("echo.yaml", ECHO), ("greeter.yaml", GREETER)], 3, PluginRegistry::builtin(), &vars).await;
    let admin_bot = app.bot(3).await;
    let admin = app.emu.user(ADMIN);
    (app, admin_bot, admin)
}

async fn ask(user: &TestUser, bot: &TestBot, text: &str) -> String {
    user.send(bot, text).await.unwrap();
    user.next_message_from(bot).await.unwrap().text.unwrap()
}

async fn ask_message(user: &TestUser, bot: &TestBot, text: &str) -> Message {
    user.send(bot, text).await.unwrap();
    user.next_message_from(bot).await.unwrap()
}

fn button(message: &Message, prefix: &str) -> String {
    message.callback_data().into_iter().find(|d| d.starts_with(prefix)).expect("the button")
}

/// The last callback answer's text.
async fn last_answer(bot: &TestBot) -> String {
    let answers = bot.callback_answers().await.unwrap();
    answers.last().and_then(|a| a.detail.as_ref()).and_then(|d| d["text"].as_str()).unwrap_or_default().to_owned()
}

async fn wait_edit(bot: &TestBot, after: u64, chat: i64) -> String {
    let edit = bot.next_event(after, Some(chat), Some("edit"), Duration::from_secs(10)).await.unwrap();
    edit.message.unwrap().text.unwrap()
}

async fn last_seq(bot: &TestBot) -> u64 {
    bot.events(0, None, None, Duration::ZERO).await.unwrap().last().map_or(0, |e| e.seq)
}

#[tokio::test]
async fn status_list_health_and_unknown_ids() {
    let (app, bot, admin) = spawn(&[]).await;
    let status = ask(&admin, &bot, "/status").await;
    assert!(status.starts_with("📊 Bot Status Overview\n\n"), "{status}");
    assert!(status.contains("✅ echo_bot (Echo Bot) - ") && status.contains("✅ greeter (Greeter) - "), "{status}");
    assert!(status.ends_with("Summary: 2/2 running"), "{status}");
    let detail = ask(&admin, &bot, "/status echo_bot").await;
    for part in [
        "✅ echo_bot (Echo Bot)",
        "State: Running",
        "Mode: polling",
        "Plugins: echo, error_handler",
        "Users: ",
        "Updates handled: ",
        "Errors: 0",
    ] {
        assert!(detail.contains(part), "{part:?} missing from {detail}");
    }
    let list = ask(&admin, &bot, "/list").await;
    assert!(
        list.contains("echo_bot (Echo Bot)") && list.contains("echo.yaml") && list.contains("greeter.yaml"),
        "{list}"
    );
    let health = ask(&admin, &bot, "/health").await;
    for part in ["🩺 System health", "Uptime: ", "Memory: ", "Database: ok", "Bots: 2/2 running, 0 failed"] {
        assert!(health.contains(part), "{part:?} missing from {health}");
    }
    // Bad input: an unknown id and a missing one get the valid ids.
    assert_eq!(ask(&admin, &bot, "/status nobody").await, "No bot \"nobody\". Valid ids: echo_bot, greeter");
    assert_eq!(ask(&admin, &bot, "/stop_bot").await, "Which bot? Valid ids: echo_bot, greeter");
    // The commands are registered with setMyCommands.
    let commands = bot.commands().await.unwrap().to_string();
    for command in ["status", "list", "health", "start_bot", "stop_bot", "restart_bot", "reload", "reload_all"] {
        assert!(commands.contains(&format!("\"{command}\"")), "{command} in {commands}");
    }
    app.stop().await;
}

#[tokio::test]
async fn anyone_else_is_refused_once_per_command() {
    let (app, bot, _admin) = spawn(&[]).await;
    let stranger = app.emu.user(901);
    let started = Instant::now();
    for command in [
        "/status",
        "/list",
        "/health",
        "/start_bot echo_bot",
        "/stop_bot echo_bot",
        "/restart_bot echo_bot",
        "/reload echo_bot",
        "/reload_all",
    ] {
        assert_eq!(ask(&stranger, &bot, command).await, "⛔ This bot is for administrators only.", "{command}");
    }
    // Eight refusals, of which one user's first five a minute are stored; the metric counts all eight.
    eventually(Duration::from_secs(10), "five access_denied events", || async {
        app.storage.events().list(Some("admin"), Some("access_denied"), 20).await.unwrap().len() == 5
    })
    .await;
    // Bad input: a flood of refused commands from the same user adds no row within the minute. On a busy machine
    // the flood can outlast the minute: each further minute it reaches may store five more, and no more.
    for _ in 0..1000 {
        stranger.send(&bot, "/stop_bot echo_bot").await.unwrap();
    }
    for _ in 0..1000 {
        stranger.next_message_from(&bot).await.unwrap();
    }
    let minutes = 1 + started.elapsed().as_secs() as usize / 60;
    let rows = app.storage.events().list(Some("admin"), Some("access_denied"), 100).await.unwrap().len();
    assert!((5..=5 * minutes).contains(&rows), "{rows} rows after a flood of {minutes} started minute(s)");
    assert_eq!(app.manager.status_of(&BotId::parse("echo_bot").unwrap()).unwrap().state, BotState::Running);
    app.stop().await;
}

#[tokio::test]
async fn stop_and_start_with_confirmation() {
    let (app, bot, admin) = spawn(&[]).await;
    let echo = app.bot(1).await;
    let id = BotId::parse("echo_bot").unwrap();
    // In the admins' group, one admin asks and another presses Confirm.
    let group = app.emu.control().group(-4900, "Admins");
    admin.send_in(&bot, &group, "/stop_bot echo_bot").await.unwrap();
    let question = admin.next_message_in(&bot, -4900, Duration::from_secs(10)).await.unwrap();
    assert_eq!(question.text.as_deref(), Some("Stop bot Echo Bot (echo_bot)?"));
    assert_eq!(question.callback_data().len(), 2, "Confirm and Cancel");
    // Bad input: the confirmation pressed by another admin.
    let other = app.emu.user(SECOND_ADMIN);
    other.click(&bot, &question, &button(&question, "adm:ok:")).await.unwrap();
    eventually(Duration::from_secs(10), "the refusal", || async { !bot.callback_answers().await.unwrap().is_empty() })
        .await;
    assert_eq!(last_answer(&bot).await, "Only the admin who asked can confirm.");
    assert_eq!(app.manager.status_of(&id).unwrap().state, BotState::Running, "nothing happened");
    let before = last_seq(&bot).await;
    admin.click(&bot, &question, &button(&question, "adm:ok:")).await.unwrap();
    assert_eq!(wait_edit(&bot, before, -4900).await, "✅ Bot echo_bot stopped successfully");
    assert_eq!(app.manager.status_of(&id).unwrap().state, BotState::Stopped);
    // Pressed twice: nothing more happens, and the admin is told why.
    let answers = bot.callback_answers().await.unwrap().len();
    admin.click_stale(&bot, &question, &button(&question, "adm:ok:")).await.unwrap();
    eventually(Duration::from_secs(10), "the second answer", || async {
        bot.callback_answers().await.unwrap().len() > answers
    })
    .await;
    assert_eq!(last_answer(&bot).await, "Already done.");
    // Stopped for real: a user's message waits in Telegram.
    let user = app.emu.user(903);
    user.send(&echo, "are you there?").await.unwrap();
    eventually(Duration::from_secs(10), "a pending update", || async { echo.stats().await.unwrap().pending == 1 })
        .await;
    // Start it again: the waiting message is answered.
    let question = ask_message(&admin, &bot, "/start_bot echo_bot").await;
    let before = last_seq(&bot).await;
    admin.click(&bot, &question, &button(&question, "adm:ok:")).await.unwrap();
    assert_eq!(wait_edit(&bot, before, ADMIN).await, "✅ Bot echo_bot started successfully");
    assert_eq!(user.next_message_from(&echo).await.unwrap().text.as_deref(), Some("You said: are you there?"));
    // Cancel leaves the bot alone.
    let question = ask_message(&admin, &bot, "/restart_bot echo_bot").await;
    let before = last_seq(&bot).await;
    admin.click(&bot, &question, &button(&question, "adm:no:")).await.unwrap();
    assert_eq!(wait_edit(&bot, before, ADMIN).await, "Restart bot echo_bot: cancelled.");
    // Every action is an event naming the admin and the outcome.
    eventually(Duration::from_secs(10), "admin_action events", || async {
        let events = app.storage.events().list(Some("echo_bot"), Some("admin_action"), 10).await.unwrap();
        events.len() == 2
            && events.iter().all(|e| e.actor_user_id == Some(ADMIN) && e.detail["detail"]["outcome"] == "ok")
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn an_expired_confirmation_does_nothing() {
    let (app, bot, admin) = spawn(&[("ADMIN_CONFIRM_TIMEOUT", "1".to_owned())]).await;
    let question = ask_message(&admin, &bot, "/stop_bot greeter").await;
    let id = BotId::parse("greeter").unwrap();
    // Wait out the one-second timeout, measured by the clock rather than guessed.
    let asked = Instant::now();
    eventually(Duration::from_secs(5), "the timeout", || async { asked.elapsed() > Duration::from_millis(1100) }).await;
    admin.click(&bot, &question, &button(&question, "adm:ok:")).await.unwrap();
    eventually(Duration::from_secs(10), "the answer", || async { !bot.callback_answers().await.unwrap().is_empty() })
        .await;
    assert_eq!(last_answer(&bot).await, "This confirmation expired; ask again.");
    assert_eq!(app.manager.status_of(&id).unwrap().state, BotState::Running);
    app.stop().await;
}

#[tokio::test]
async fn a_button_from_before_a_restart_or_another_question_does_nothing() {
    let (app, bot, admin) = spawn(&[]).await;
    let (echo, greeter) = (BotId::parse("echo_bot").unwrap(), BotId::parse("greeter").unwrap());
    let old = ask_message(&admin, &bot, "/restart_bot greeter").await;
    // The admin bot restarts (as after a restart of the process), then a new question is asked.
    app.manager.restart(&BotId::parse("admin").unwrap()).await.unwrap();
    let new = ask_message(&admin, &bot, "/stop_bot echo_bot").await;
    let answered = |count: usize| {
        let bot = &bot;
        async move {
            eventually(Duration::from_secs(10), "an answer", || async {
                bot.callback_answers().await.unwrap().len() > count
            })
            .await;
            last_answer(bot).await
        }
    };
    // Bad input: the old question's Confirm, pressed after the restart.
    admin.click(&bot, &old, &button(&old, "adm:ok:")).await.unwrap();
    let answer = answered(0).await;
    assert!(answer.starts_with("This button expired (the system restarted since it was asked"), "{answer}");
    // Bad input: the new question's Confirm, replayed on the old message.
    admin.click_stale(&bot, &old, &button(&new, "adm:ok:")).await.unwrap();
    assert_eq!(answered(1).await, "This button belongs to another message.");
    assert_eq!(app.manager.status_of(&echo).unwrap().state, BotState::Running, "nothing stopped");
    assert_eq!(app.manager.status_of(&greeter).unwrap().state, BotState::Running);
    // On its own message the new button works once; replayed, it does nothing and says why.
    let before = last_seq(&bot).await;
    admin.click(&bot, &new, &button(&new, "adm:ok:")).await.unwrap();
    assert_eq!(wait_edit(&bot, before, ADMIN).await, "✅ Bot echo_bot stopped successfully");
    app.manager.start(&echo).await.unwrap();
    let answers = bot.callback_answers().await.unwrap().len();
    admin.click_stale(&bot, &new, &button(&new, "adm:ok:")).await.unwrap();
    assert_eq!(answered(answers).await, "Already done.");
    assert_eq!(app.manager.status_of(&echo).unwrap().state, BotState::Running, "the replay stopped nothing");
    // The ids cannot be guessed: 128 random bits each.
    let id = button(&new, "adm:ok:").trim_start_matches("adm:ok:").to_owned();
    assert_eq!((id.len(), id.chars().all(|c| c.is_ascii_hexdigit())), (32, true), "{id}");
    app.stop().await;
}

#[tokio::test]
async fn reload_shows_errors_and_keeps_the_old_behaviour() {
    let (app, bot, admin) = spawn(&[("ENABLE_HOT_RELOAD", "false".to_owned())]).await;
    let greeter = app.bot(2).await;
    let user = app.emu.user(904);
    // Bad input: an unknown plugin in the file.
    app.dir.write("greeter.yaml", &GREETER.replace("name: start", "name: nope"));
    let reply = ask(&admin, &bot, "/reload greeter").await;
    assert!(reply.starts_with("⚠️ Reload finished with problems"), "{reply}");
    assert!(reply.contains("greeter.yaml:5:11: plugins[0].name: unknown plugin \"nope\""), "{reply}");
    assert_eq!(ask(&user, &greeter, "/start").await, "v1", "the old behaviour stays");
    app.dir.write("greeter.yaml", &GREETER.replace("v1", "v2"));
    let reply = ask(&admin, &bot, "/reload greeter").await;
    assert_eq!(reply, "🔄 Reload done\n✅ greeter: reloaded");
    assert_eq!(ask(&user, &greeter, "/start").await, "v2");
    assert_eq!(ask(&admin, &bot, "/reload_all").await, "🔄 Reload done\nNothing changed.");
    app.stop().await;
}

#[tokio::test]
async fn reload_of_an_id_whose_file_is_new_adds_that_bot_only() {
    let (app, bot, admin) = spawn(&[("ENABLE_HOT_RELOAD", "false".to_owned())]).await;
    app.emu.control().bot_named(&token(4), "Bot 4", "bot4_bot").await.unwrap();
    let newcomer = GREETER.replace("id: greeter", "id: newcomer").replace("TOKEN_2", "TOKEN_4").replace("v1", "hi");
    // Bad input: an id with no file yet is unknown, and says so.
    let reply = ask(&admin, &bot, "/reload newcomer").await;
    assert!(reply.starts_with("No bot \"newcomer\". Valid ids: "), "{reply}");
    app.dir.write("newcomer.yaml", &newcomer);
    app.dir.write("later.yaml", &GREETER.replace("id: greeter", "id: later").replace("TOKEN_2", "TOKEN_5"));
    let reply = ask(&admin, &bot, "/reload newcomer").await;
    assert_eq!(reply, "🔄 Reload done\n✅ newcomer: added");
    let started = app.bot(4).await;
    assert_eq!(ask(&app.emu.user(907), &started, "/start").await, "hi", "the new bot answers");
    assert!(app.manager.status_of(&BotId::parse("later").unwrap()).is_none(), "another new file waits its turn");
    assert!(ask(&admin, &bot, "/list").await.contains("newcomer"));
    app.stop().await;
}

#[tokio::test]
async fn admins_hear_of_failures_and_plugin_errors() {
    let (app, bot, admin) = spawn(&[]).await;
    let echo = app.bot(1).await;
    // The admin must have written to the admin bot for Telegram to let it write back.
    ask(&admin, &bot, "/health").await;
    // A broken reload from the watcher is reported with its file and line.
    app.dir.write("greeter.yaml", "id: greeter\nname: [unclosed\n");
    let note = admin.next_message_in(&bot, ADMIN, Duration::from_secs(10)).await.unwrap().text.unwrap();
    assert!(note.starts_with("⚠️ Reload failed") && note.contains("greeter.yaml:"), "{note}");
    // error_handler's notify_admins reaches the fleet's admins through the admin bot.
    echo.inject(botapi_emulator::FaultSpec::error("sendMessage", 400)).await.unwrap();
    app.emu.user(906).send(&echo, "trigger").await.unwrap();
    let note = admin.next_message_in(&bot, ADMIN, Duration::from_secs(10)).await.unwrap().text.unwrap();
    assert!(note.starts_with("⚠️ Error in bot echo_bot (plugin echo, error id "), "{note}");
    // A token revoked while running fails the bot; the admins are told.
    reqwest::Client::new().delete(format!("{}/control/bots/{}", app.emu.api_url(), echo.id)).send().await.unwrap();
    let mut note = String::new();
    for _ in 0..5 {
        note = admin.next_message_in(&bot, ADMIN, Duration::from_secs(20)).await.unwrap().text.unwrap();
        if note.contains("echo_bot failed") {
            break;
        }
    }
    assert!(note.contains("echo_bot failed") && note.contains("401"), "{note}");
    assert!(!note.contains(&token(1)));
    app.stop().await;
}
