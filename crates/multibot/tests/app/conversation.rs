//! Users talk to bots composed of the built-in plugins.

use std::time::Duration;

use multibot::{fleet::BotState, plugins::PluginRegistry};

use crate::helpers::spawn_app;

const SUPPORT: &str = r#"
id: "support_bot"
name: "Support Bot"
token: "${TOKEN_1}"
settings:
  parse_mode: "HTML"
  disable_web_page_preview: true
plugins:
  - name: "start"
    config:
      welcome_message: "<b>Welcome</b> to Support!"
  - name: "help"
    config:
      header: "Available Commands"
      commands:
        - command: "/start"
          description: "Start the bot"
        - command: "/ticket"
          description: "Create support ticket"
  - name: "form"
  - name: "menu"
  - name: "error_handler"
"#;

const ECHO: &str = r#"
id: "echo_bot"
name: "Echo Bot"
token: "${TOKEN_2}"
plugins:
  - name: "start"
    config:
      welcome_message: "Echo here."
  - name: "help"
  - name: "echo"
    config:
      echo_all: true
"#;

#[tokio::test]
async fn two_bots_answer_with_their_own_configuration() {
    let app = spawn_app(&[("support.yaml", SUPPORT), ("echo.yaml", ECHO)], 2, PluginRegistry::builtin()).await;
    let (support, echo) = (app.bot(1).await, app.bot(2).await);
    let alice = app.emu.user(1001);
    alice.send(&support, "/start").await.unwrap();
    alice.send(&echo, "/start").await.unwrap();
    let from_support = alice.next_message_from(&support).await.unwrap();
    let from_echo = alice.next_message_from(&echo).await.unwrap();
    assert_eq!(from_support.text.as_deref(), Some("Welcome to Support!"));
    assert_eq!(from_echo.text.as_deref(), Some("Echo here."));
    // settings: parse_mode and disable_web_page_preview apply to what the plugin sent.
    let sent = support.transcript(1001).await.unwrap().into_iter().find(|m| m.from_bot).unwrap();
    assert_eq!(sent.parse_mode.as_deref(), Some("HTML"));
    assert_eq!(sent.message.entities.unwrap()[0].kind, "bold");
    assert_eq!(sent.options["link_preview_options"]["is_disabled"], true);
    // Nothing crossed: each bot sent exactly one message.
    assert_eq!(support.stats().await.unwrap().messages_sent, 1);
    assert_eq!(echo.stats().await.unwrap().messages_sent, 1);
    let statuses = app.manager.status();
    assert!(statuses.iter().all(|s| s.state == BotState::Running), "{statuses:?}");
    app.stop().await;
}

#[tokio::test]
async fn help_lists_configured_or_generated_commands() {
    let app = spawn_app(&[("support.yaml", SUPPORT), ("echo.yaml", ECHO)], 2, PluginRegistry::builtin()).await;
    let (support, echo) = (app.bot(1).await, app.bot(2).await);
    let bob = app.emu.user(1002);
    bob.send(&support, "/help").await.unwrap();
    let help = bob.next_message_from(&support).await.unwrap().text.unwrap();
    assert_eq!(help, "Available Commands\n\n/start - Start the bot\n/ticket - Create support ticket");
    bob.send(&echo, "/help").await.unwrap();
    let help = bob.next_message_from(&echo).await.unwrap().text.unwrap();
    assert_eq!(help, "Available Commands\n\n/start - Start the bot\n/help - Show help\n/echo - Repeat your text");
    // The same commands were registered with setMyCommands.
    let commands = echo.commands().await.unwrap();
    let listed: Vec<_> = commands
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, ["start", "help", "echo"]);
    app.stop().await;
}

#[tokio::test]
async fn echo_repeats_commands_and_all_text() {
    let app = spawn_app(&[("echo.yaml", ECHO)], 2, PluginRegistry::builtin()).await;
    let echo = app.bot(2).await;
    let carol = app.emu.user(1003);
    for (said, expected) in [
        ("/echo hello there", "hello there"),
        ("/echo", "Usage: /echo <text>"),
        ("<b>not html</b>", "You said: <b>not html</b>"),
    ] {
        carol.send(&echo, said).await.unwrap();
        assert_eq!(carol.next_message_from(&echo).await.unwrap().text.as_deref(), Some(expected), "{said}");
    }
    // In a group, a command for another bot is not ours; one for us is.
    let group = app.emu.control().group(-4242, "Team");
    carol.send_in(&echo, &group, "/echo@someone_else_bot hi").await.unwrap();
    carol.send_in(&echo, &group, "/echo@bot2_bot in the group").await.unwrap();
    let reply = carol.next_message_in(&echo, -4242, Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        reply.text.as_deref(),
        Some("You said: /echo@someone_else_bot hi"),
        "echo_all takes what no command took"
    );
    let reply = carol.next_message_in(&echo, -4242, Duration::from_secs(10)).await.unwrap();
    assert_eq!(reply.text.as_deref(), Some("in the group"));
    app.stop().await;
}

#[tokio::test]
async fn the_form_keeps_two_users_apart() {
    let app = spawn_app(&[("support.yaml", SUPPORT)], 1, PluginRegistry::builtin()).await;
    let support = app.bot(1).await;
    let (alice, bob) = (app.emu.user(2001), app.emu.user(2002));
    let step = |user: &botapi_emulator::TestUser, text: &'static str| {
        let (user, bot) = (user.clone(), support.clone());
        async move {
            user.send(&bot, text).await.unwrap();
            user.next_message_from(&bot).await.unwrap().text.unwrap()
        }
    };
    assert_eq!(step(&alice, "/form").await, "What's your name?");
    assert_eq!(step(&bob, "/form").await, "What's your name?");
    assert_eq!(step(&alice, "Alice").await, "How old are you?");
    assert_eq!(step(&bob, "Bob").await, "How old are you?");
    assert_eq!(step(&bob, "41").await, "Hello Bob, you are 41 years old!");
    assert_eq!(step(&alice, "30").await, "Hello Alice, you are 30 years old!");
    // The form is over: a plain message is no longer taken as an answer.
    alice.send(&support, "31").await.unwrap();
    assert!(alice.next_message_in(&support, 2001, Duration::from_millis(300)).await.is_err());
    app.stop().await;
}

#[tokio::test]
async fn a_menu_click_is_answered_and_the_message_edited() {
    let app = spawn_app(&[("support.yaml", SUPPORT)], 1, PluginRegistry::builtin()).await;
    let support = app.bot(1).await;
    let dave = app.emu.user(3001);
    dave.send(&support, "/menu").await.unwrap();
    let menu = dave.next_message_from(&support).await.unwrap();
    assert_eq!(menu.callback_data(), ["opt_1", "opt_2", "cancel"]);
    dave.click(&support, &menu, "opt_1").await.unwrap();
    let edit = support.next_event(0, Some(3001), Some("edit"), Duration::from_secs(10)).await.unwrap();
    assert_eq!(edit.message.unwrap().text.as_deref(), Some("Selected: Option 1"));
    let answers = support.callback_answers().await.unwrap();
    assert_eq!(answers[0].detail.as_ref().unwrap()["text"], "You selected option 1");
    // Cancel deletes the menu and is answered too.
    dave.send(&support, "/menu").await.unwrap();
    let menu = dave.next_message_from(&support).await.unwrap();
    dave.click(&support, &menu, "cancel").await.unwrap();
    let deleted = support.next_event(0, Some(3001), Some("delete"), Duration::from_secs(10)).await.unwrap();
    assert_eq!(deleted.message_id, Some(menu.message_id));
    let answers = support.callback_answers().await.unwrap();
    assert_eq!(answers[1].detail.as_ref().unwrap()["text"], "Cancelled");
    app.stop().await;
}

#[tokio::test]
async fn commands_are_not_form_answers_and_cancel_leaves_the_form() {
    let app = spawn_app(&[("support.yaml", SUPPORT)], 1, PluginRegistry::builtin()).await;
    let support = app.bot(1).await;
    let dave = app.emu.user(2003);
    let step = |text: &'static str| {
        let (user, bot) = (dave.clone(), support.clone());
        async move {
            user.send(&bot, text).await.unwrap();
            user.next_message_from(&bot).await.unwrap().text.unwrap()
        }
    };
    assert_eq!(step("/form").await, "What's your name?");
    assert_eq!(step("/cancel").await, "Cancelled.");
    assert_eq!(step("/cancel").await, "There is nothing to cancel.", "the form was left");
    // Other commands during the form go to their handlers; the form waits for its answer.
    assert_eq!(step("/form").await, "What's your name?");
    assert!(step("/help").await.starts_with("Available Commands"));
    assert_eq!(step("Dave").await, "How old are you?");
    assert_eq!(step("/start").await, "Welcome to Support!");
    assert_eq!(step("30").await, "Hello Dave, you are 30 years old!");
    app.stop().await;
}

/// `help` first, so the fallback must still wait for the plugins after it.
const FALLBACK: &str = r#"
id: "fallback_bot"
name: "Fallback Bot"
token: "${TOKEN_1}"
plugins:
  - name: "help"
  - name: "start"
    config:
      welcome_message: "Hi."
  - name: "echo"
"#;

#[tokio::test]
async fn an_unknown_command_gets_the_fallback_and_nothing_else_does() {
    let quiet = FALLBACK
        .replace("fallback_bot", "quiet_bot")
        .replace("TOKEN_1", "TOKEN_2")
        .replace(r#"- name: "help""#, "- name: \"help\"\n    config: { unknown_command: false }");
    let custom = FALLBACK
        .replace("fallback_bot", "custom_bot")
        .replace("TOKEN_1", "TOKEN_3")
        .replace(r#"- name: "help""#, "- name: \"help\"\n    config: { unknown_command: \"Eh? Try /help.\" }");
    let files = [("fallback.yaml", FALLBACK), ("quiet.yaml", &quiet), ("custom.yaml", &custom)];
    let app = spawn_app(&files, 3, PluginRegistry::builtin()).await;
    let (bot, quiet, custom) = (app.bot(1).await, app.bot(2).await, app.bot(3).await);
    let erin = app.emu.user(1004);
    // Each update of a chat is handled in order, so the reply to the next message is the next one in the chat.
    for (said, expected) in [
        ("/nope", "Unknown command. Use /help to see available commands."),
        ("/echo hi", "hi"),
        ("just text", "Hi."),
        ("/NOPE@bot1_bot with args", "Unknown command. Use /help to see available commands."),
    ] {
        erin.send(&bot, said).await.unwrap();
        if said == "just text" {
            erin.send(&bot, "/start").await.unwrap();
        }
        assert_eq!(erin.next_message_from(&bot).await.unwrap().text.as_deref(), Some(expected), "{said}");
    }
    let group = app.emu.control().group(-4343, "Team");
    // Bad input: a command for another bot, and a bare unknown command that every bot of the group sees.
    erin.send_in(&bot, &group, "/nope@someone_else_bot").await.unwrap();
    erin.send_in(&bot, &group, "/nope").await.unwrap();
    erin.send_in(&bot, &group, "/start@bot1_bot").await.unwrap();
    let reply = erin.next_message_in(&bot, -4343, Duration::from_secs(10)).await.unwrap();
    assert_eq!(reply.text.as_deref(), Some("Hi."), "only a command addressed to this bot gets the fallback in a group");
    erin.send_in(&bot, &group, "/nope@bot1_bot").await.unwrap();
    let reply = erin.next_message_in(&bot, -4343, Duration::from_secs(10)).await.unwrap();
    assert_eq!(reply.text.as_deref(), Some("Unknown command. Use /help to see available commands."));
    // Turned off, and with a text of its own.
    erin.send(&quiet, "/nope").await.unwrap();
    erin.send(&quiet, "/start").await.unwrap();
    assert_eq!(erin.next_message_from(&quiet).await.unwrap().text.as_deref(), Some("Hi."));
    erin.send(&custom, "/nope").await.unwrap();
    assert_eq!(erin.next_message_from(&custom).await.unwrap().text.as_deref(), Some("Eh? Try /help."));
    app.stop().await;
}
