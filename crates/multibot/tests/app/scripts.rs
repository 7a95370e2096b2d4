//! Script plugins: real `.luau` files in a temporary PLUGINS_DIR, used by bots exactly like native plugins; the
//! examples end to end, the sandbox, the CPU and memory limits, hot reload, and the command line.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use botapi_emulator::FaultSpec;
use multibot::{config::BotId, fleet::BotState, outcomes::ReloadOutcome, plugins::PluginRegistry};

use crate::helpers::{TempDir, TestApp, eventually, spawn_app_with, token};

const ECHO: &str = include_str!("../../../../plugins/script_echo.luau");
const FORM: &str = include_str!("../../../../plugins/script_form.luau");
const MENU: &str = include_str!("../../../../plugins/script_menu.luau");

const WAIT: Duration = Duration::from_secs(10);

/// A bot file: `id`, token number, then the `plugins:` entries as YAML lines.
fn bot(id: &str, token: u32, plugins: &[&str]) -> String {
    let mut yaml = format!("id: {id}\nname: {id}\ntoken: \"${{TOKEN_{token}}}\"\nplugins:\n");
    for plugin in plugins {
        yaml.push_str(&format!("  - {plugin}\n"));
    }
    yaml
}

/// An application whose PLUGINS_DIR holds `scripts`.
async fn spawn(bots: &[(&str, String)], scripts: &[(&str, &str)], extra: &[(&str, &str)]) -> (TestApp, TempDir) {
    let plugins = TempDir::new();
    for (name, text) in scripts {
        plugins.write(name, text);
    }
    let mut settings = vec![("PLUGINS_DIR", plugins.path().display().to_string())];
    settings.extend(extra.iter().map(|(name, value)| (*name, (*value).to_owned())));
    let files: Vec<(&str, &str)> = bots.iter().map(|(name, text)| (*name, text.as_str())).collect();
    let app = spawn_app_with(&files, bots.len() as u32, PluginRegistry::builtin(), &settings).await;
    (app, plugins)
}

fn text(message: &botapi_emulator::types::Message) -> &str {
    message.text.as_deref().unwrap_or_default()
}

#[tokio::test]
async fn the_echo_script_echoes_like_the_native_plugin() {
    let bots = [
        ("all.yaml", bot("echo_all", 1, &["name: script_echo\n    config: { echo_all: true }"])),
        ("cmd.yaml", bot("echo_cmd", 2, &["name: script_echo"])),
    ];
    let (app, _plugins) = spawn(&bots, &[("script_echo.luau", ECHO)], &[]).await;
    let (all, cmd) = (app.bot(1).await, app.bot(2).await);
    assert!(app.manager.status().iter().all(|s| s.state == BotState::Running), "{:?}", app.manager.status());
    let alice = app.emu.user(1001);
    for (bot, said, expected) in [
        (&all, "/echo <b>Hello</b>, world!", "<b>Hello</b>, world!"),
        (&all, "Nice to meet you", "You said: Nice to meet you"),
        (&cmd, "/echo", "Usage: /echo <text>"),
        (&cmd, "Nobody echoes this", "…"),
        (&cmd, "/echo again", "again"),
    ] {
        alice.send(bot, said).await.unwrap();
        if expected != "…" {
            assert_eq!(text(&alice.next_message_from(bot).await.unwrap()), expected, "{said}");
        }
    }
    // Without echo_all the plain message got no answer: the next answer was the one to "/echo again".
    assert_eq!(cmd.stats().await.unwrap().messages_sent, 2);
    // The command is in the bot's menu, with its description.
    let commands = all.commands().await.unwrap();
    assert!(commands.to_string().contains("Repeat your text"), "{commands}");
    app.stop().await;
}

#[tokio::test]
async fn the_form_script_keeps_each_users_answers_apart() {
    let bots = [("form.yaml", bot("former", 1, &["name: script_form"]))];
    let (app, _plugins) = spawn(&bots, &[("script_form.luau", FORM)], &[]).await;
    let former = app.bot(1).await;
    let (alice, bob) = (app.emu.user(2001), app.emu.user(2002));
    let step = |user: &botapi_emulator::TestUser, said: &'static str| {
        let (user, former) = (user.clone(), former.clone());
        async move {
            user.send(&former, said).await.unwrap();
            user.next_message_from(&former).await.unwrap().text.unwrap_or_default()
        }
    };
    assert_eq!(step(&alice, "/form").await, "What's your name?");
    assert_eq!(step(&bob, "/form").await, "What's your name?");
    assert_eq!(step(&alice, "Alice").await, "How old are you?");
    assert_eq!(step(&bob, "Bob").await, "How old are you?");
    assert_eq!(step(&bob, "forty").await, "Please send your age as a number.");
    assert_eq!(step(&alice, "30").await, "Hello Alice, you are 30 years old!");
    assert_eq!(step(&bob, "41").await, "Hello Bob, you are 41 years old!");
    // The conversation is over: plain text goes nowhere, /cancel has nothing to cancel.
    assert_eq!(step(&alice, "/cancel").await, "There is nothing to cancel.");
    // The plugin's store counts both forms.
    assert_eq!(step(&bob, "/forms").await, "Forms completed: 2");
    app.stop().await;
}

#[tokio::test]
async fn the_menu_script_answers_a_click_and_edits_or_deletes_the_menu() {
    let bots = [("menu.yaml", bot("menus", 1, &["name: script_menu"]))];
    let (app, _plugins) = spawn(&bots, &[("script_menu.luau", MENU)], &[]).await;
    let menus = app.bot(1).await;
    let dave = app.emu.user(3001);
    dave.send(&menus, "/menu").await.unwrap();
    let menu = dave.next_message_from(&menus).await.unwrap();
    assert_eq!(text(&menu), "Choose an option:");
    assert_eq!(menu.callback_data(), ["script_menu:opt_1", "script_menu:opt_2", "script_menu:cancel"]);
    dave.click(&menus, &menu, "script_menu:opt_2").await.unwrap();
    let edit = menus.next_event(0, Some(3001), Some("edit"), WAIT).await.unwrap();
    assert_eq!(edit.message.unwrap().text.as_deref(), Some("Selected: Option 2"));
    let answers = menus.callback_answers().await.unwrap();
    assert_eq!(answers[0].detail.as_ref().unwrap()["text"], "You selected option 2");
    dave.send(&menus, "/menu").await.unwrap();
    let menu = dave.next_message_from(&menus).await.unwrap();
    dave.click(&menus, &menu, "script_menu:cancel").await.unwrap();
    let deleted = menus.next_event(0, Some(3001), Some("delete"), WAIT).await.unwrap();
    assert_eq!(deleted.message_id, Some(menu.message_id));
    assert_eq!(menus.callback_answers().await.unwrap()[1].detail.as_ref().unwrap()["text"], "Cancelled");
    app.stop().await;
}

const KITCHEN: &str = r#"
plugin { name = "kitchen" }
command("secret", "", function(ctx) ctx:reply("for admins") end, { admin = true })
command("html", "Bold", function(ctx)
  ctx:reply("<b>bold</b>", { parse_mode = "HTML", keyboard = { { { text = "Site", url = "https://example.com" } } } })
end)
command("tell", "", function(ctx) ctx:send(tonumber(ctx.args), "psst") end)
command("who", "", function(ctx)
  ctx:reply(("%s %s %s %d %s"):format(ctx.kind, ctx.command, ctx.chat_type, ctx.user.id, tostring(ctx.message_id ~= nil)))
end)
message({ regex = "^[0-9]+$" }, function(ctx) ctx:reply("number " .. ctx.text) end)
message({ text = true, chat = "group" }, function(ctx) ctx:reply("the group says " .. ctx.text) end)
edited_message({ text = true }, function(ctx) ctx:reply("now: " .. ctx.text) end)
message({ text = true, state = false }, function(ctx) ctx:reply("no state: " .. ctx.text) end)
"#;

#[tokio::test]
async fn scripts_filter_edit_send_and_format_like_native_plugins() {
    let yaml = bot("kitchen", 1, &["name: kitchen"]) + "access:\n  admin_users: [9101]\n";
    let (app, _plugins) = spawn(&[("kitchen.yaml", yaml)], &[("kitchen.luau", KITCHEN)], &[]).await;
    let kitchen = app.bot(1).await;
    let (admin, user, friend) = (app.emu.user(9101), app.emu.user(9102), app.emu.user(9103));
    let ask = |who: &botapi_emulator::TestUser, said: &'static str| {
        let (who, kitchen) = (who.clone(), kitchen.clone());
        async move {
            who.send(&kitchen, said).await.unwrap();
            who.next_message_from(&kitchen).await.unwrap()
        }
    };
    // Admin-only commands: refused to others, run for admins.
    assert_eq!(text(&ask(&user, "/secret").await), "This command is only for the bot's admins.");
    assert_eq!(text(&ask(&admin, "/secret").await), "for admins");
    // Filters: a regex, no state, a group chat.
    assert_eq!(text(&ask(&user, "42").await), "number 42");
    assert_eq!(text(&ask(&user, "hello").await), "no state: hello");
    let group = app.emu.control().group(-9100, "Kitchen");
    user.send_in(&kitchen, &group, "hi all").await.unwrap();
    assert_eq!(text(&user.next_message_in(&kitchen, -9100, WAIT).await.unwrap()), "the group says hi all");
    // An edited message goes to edited_message.
    let sent = user.send(&kitchen, "first").await.unwrap();
    assert_eq!(text(&user.next_message_from(&kitchen).await.unwrap()), "no state: first");
    user.edit(&kitchen, sent.message_id, "second").await.unwrap();
    assert_eq!(text(&user.next_message_from(&kitchen).await.unwrap()), "now: second");
    // Parse mode and a URL button; the update's fields.
    let html = ask(&user, "/html").await;
    assert_eq!(text(&html), "bold");
    assert_eq!(html.entities.unwrap()[0].kind, "bold");
    assert_eq!(html.reply_markup.unwrap()["inline_keyboard"][0][0]["url"], "https://example.com/");
    assert_eq!(text(&ask(&user, "/who").await), "message who private 9102 true");
    // Sending to another chat (one whose user wrote to the bot before).
    assert_eq!(text(&ask(&friend, "hey").await), "no state: hey");
    user.send(&kitchen, "/tell 9103").await.unwrap();
    assert_eq!(text(&friend.next_message_from(&kitchen).await.unwrap()), "psst");
    app.stop().await;
}

const PROBE: &str = r#"
plugin { name = "probe" }
command("io", "", function(ctx) io.write("x") end)
command("os", "", function(ctx) os.execute("touch /tmp/multibot-pwned") end)
command("require", "", function(ctx) require("./secrets") end)
command("debug", "", function(ctx) debug.traceback() end)
command("builtin", "", function(ctx) string.len = nil end)
command("ok", "", function(ctx)
  ctx:reply(("still here: %d, errors seen: %d"):format(string.len("abc"), store.get("errors") or 0))
end)
on_error(function(ctx, err)
  assert(err.plugin == "probe" and #err.id > 0 and err.message:find("probe.luau"))
  store.set("errors", (store.get("errors") or 0) + 1)
end)
"#;

#[tokio::test]
async fn io_os_require_debug_and_builtins_are_out_of_reach() {
    let bots = [("probe.yaml", bot("prober", 1, &["name: probe", "name: error_handler"]))];
    let (app, _plugins) = spawn(&bots, &[("probe.luau", PROBE)], &[]).await;
    let prober = app.bot(1).await;
    let id = BotId::parse("prober").unwrap();
    let eve = app.emu.user(4001);
    for (seen, (command, line, error)) in [
        ("/io", 3, "attempt to index nil with 'write'"),
        ("/os", 4, "attempt to index nil with 'execute'"),
        ("/require", 5, "require: invalid module name \"./secrets\""),
        ("/debug", 6, "attempt to index nil with 'traceback'"),
        ("/builtin", 7, "attempt to modify a readonly table"),
    ]
    .into_iter()
    .enumerate()
    {
        eve.send(&prober, command).await.unwrap();
        let reply = eve.next_message_from(&prober).await.unwrap();
        assert!(text(&reply).starts_with("Something went wrong (error id "), "{command}: {reply:?}");
        let status = app.manager.status_of(&id).unwrap();
        let last = status.last_error.unwrap();
        assert!(last.starts_with(&format!("probe.luau:{line}: {error}")), "{command}: {last}");
        // The bot goes on, builtins intact; the script's own error hook saw the error too.
        eve.send(&prober, "/ok").await.unwrap();
        let expected = format!("still here: 3, errors seen: {}", seen + 1);
        assert_eq!(text(&eve.next_message_from(&prober).await.unwrap()), expected);
    }
    assert!(!std::path::Path::new("/tmp/multibot-pwned").exists());
    app.stop().await;
}

const HOG: &str = r#"
plugin { name = "hog" }
command("loop", "", function(ctx) local n = 0 while true do n += 1 end end)
command("bomb", "", function(ctx)
  local t, i = {}, 0
  while true do i += 1; t[i] = string.rep("x", 1024) .. i end
end)
command("ok", "", function(ctx) ctx:reply("ok") end)
"#;

/// Sends `command` to the hog and, while it runs, a message to the echo bot, which must answer before the hog's
/// error reply arrives; then the hog answers again.
async fn hog_is_stopped_while_others_answer(app: &TestApp, command: &str, expected_error: &str) {
    let (hog, echo) = (app.bot(1).await, app.bot(2).await);
    let (alice, bob) = (app.emu.user(5001), app.emu.user(5002));
    alice.send(&hog, command).await.unwrap();
    let started = Instant::now();
    bob.send(&echo, "still there?").await.unwrap();
    assert_eq!(text(&bob.next_message_from(&echo).await.unwrap()), "You said: still there?");
    let echoed = started.elapsed();
    // Script threads run at a lower priority: on a machine busy with other work the hog may take a while to reach
    // its limit.
    let error = alice.next_message_in(&hog, 5001, Duration::from_secs(60)).await.unwrap();
    let stopped = started.elapsed();
    assert!(text(&error).starts_with("Something went wrong (error id "), "{error:?}");
    assert!(echoed < stopped, "the other bot answered ({echoed:?}) before the hog was stopped ({stopped:?})");
    let status = app.manager.status_of(&BotId::parse("hog").unwrap()).unwrap();
    let last = status.last_error.unwrap();
    assert!(last.contains(expected_error), "{last}");
    alice.send(&hog, "/ok").await.unwrap();
    assert_eq!(text(&alice.next_message_from(&hog).await.unwrap()), "ok");
}

/// One runtime thread: a script hogging it must still let the other bot (and the emulator) run.
#[tokio::test(flavor = "current_thread")]
async fn an_infinite_loop_is_stopped_by_the_time_budget_while_other_bots_answer() {
    let bots = [
        ("hog.yaml", bot("hog", 1, &["name: hog", "name: error_handler"])),
        ("echo.yaml", bot("echo", 2, &["name: echo\n    config: { echo_all: true }"])),
    ];
    let extra = [("SCRIPT_TIMEOUT_MS", "1500")];
    let (app, _plugins) = spawn(&bots, &[("hog.luau", HOG)], &extra).await;
    let started = Instant::now();
    hog_is_stopped_while_others_answer(&app, "/loop", "time budget of 1500 ms (at hog.luau:3)").await;
    assert!(started.elapsed() >= Duration::from_millis(1500));
    app.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_memory_bomb_is_stopped_by_the_memory_limit_while_other_bots_answer() {
    let bots = [
        ("hog.yaml", bot("hog", 1, &["name: hog", "name: error_handler"])),
        ("echo.yaml", bot("echo", 2, &["name: echo\n    config: { echo_all: true }"])),
    ];
    let extra = [("SCRIPT_MEMORY_LIMIT_MB", "64"), ("SCRIPT_TIMEOUT_MS", "20000")];
    let (app, _plugins) = spawn(&bots, &[("hog.luau", HOG)], &extra).await;
    hog_is_stopped_while_others_answer(&app, "/bomb", "memory limit of 64 MiB").await;
    // The memory was given back: the bomb goes off the same way again.
    hog_is_stopped_while_others_answer(&app, "/bomb", "memory limit of 64 MiB").await;
    app.stop().await;
}

#[tokio::test]
async fn a_script_waiting_on_telegram_blocks_neither_other_chats_nor_other_bots() {
    let bots = [
        ("one.yaml", bot("one", 1, &["name: script_echo\n    config: { echo_all: true }"])),
        ("two.yaml", bot("two", 2, &["name: script_echo\n    config: { echo_all: true }"])),
    ];
    let (app, _plugins) = spawn(&bots, &[("script_echo.luau", ECHO)], &[]).await;
    let (one, two) = (app.bot(1).await, app.bot(2).await);
    let (alice, bob, carol) = (app.emu.user(6001), app.emu.user(6002), app.emu.user(6003));
    one.inject(FaultSpec::delay("sendMessage", Duration::from_secs(3)).times(1)).await.unwrap();
    alice.send(&one, "slow").await.unwrap();
    // Alice's reply is waiting on Telegram; Carol (same bot, same script instance) and Bob (another bot) are
    // answered meanwhile.
    eventually(WAIT, "Alice's reply to be on its way", || async {
        one.calls(Some("sendMessage")).await.unwrap().iter().any(|c| c.params.to_string().contains("slow"))
    })
    .await;
    let started = Instant::now();
    carol.send(&one, "quick").await.unwrap();
    bob.send(&two, "quick too").await.unwrap();
    assert_eq!(text(&carol.next_message_from(&one).await.unwrap()), "You said: quick");
    assert_eq!(text(&bob.next_message_from(&two).await.unwrap()), "You said: quick too");
    assert!(started.elapsed() < Duration::from_secs(2), "answered while Alice's reply waited: {:?}", started.elapsed());
    assert_eq!(text(&alice.next_message_from(&one).await.unwrap()), "You said: slow");
    app.stop().await;
}

const COUNTER: &str = r#"
plugin { name = "counter", description = "Counts", version = "1.0.0" }
local count = 0 -- lives in this bot's VM
local function bump(key) store.set(key, (store.get(key) or 0) + 1) end
on_load(function() bump("loads") end)
on_bot_start(function() bump("starts") end)
on_unload(function() bump("unloads") end)
command("count", "Count", function(ctx)
  count += 1
  local s = store.list()
  ctx:reply(("%s: count %d, loads %d, starts %d, unloads %d, by %s"):format(
    bot_id, count, s.loads, s.starts, s.unloads or 0, ctx.user.first_name))
end)
"#;

/// A script written against the names of the previous release: `ctx:get_state`, `ctx:set_state`,
/// `ctx:update_data`, `ctx:get_data`, `ctx:clear` and the `state` global, beside the new `ctx.fsm` and `store`.
const LEGACY: &str = r#"
plugin { name = "legacy" }
command("old", "Old names", function(ctx)
  ctx:set_state("stale")
  ctx:clear()
  ctx:set_state("asked")
  ctx:update_data("name", ctx.args)
  state.set("visits", (state.get("visits") or 0) + 1)
  ctx:reply(("old: %s %s"):format(ctx:get_state(), ctx:get_data().name))
end)
command("new", "New names", function(ctx)
  local reply = ("new: %s %s %s"):format(tostring(ctx.fsm:state()), tostring(ctx.fsm:data().name), tostring(store.get("visits")))
  ctx.fsm:clear()
  ctx:reply(reply)
end)
"#;

#[tokio::test]
async fn the_deprecated_script_names_reach_the_same_conversation_and_store() {
    let bots = [("legacy.yaml", bot("legacy", 1, &["name: legacy"]))];
    let (app, _plugins) = spawn(&bots, &[("legacy.luau", LEGACY)], &[]).await;
    let (legacy, alice) = (app.bot(1).await, app.emu.user(7401));
    let ask = |said: &'static str| {
        let (alice, legacy) = (alice.clone(), legacy.clone());
        async move {
            alice.send(&legacy, said).await.unwrap();
            alice.next_message_from(&legacy).await.unwrap().text.unwrap_or_default()
        }
    };
    assert_eq!(ask("/old Alice").await, "old: asked Alice");
    assert_eq!(ask("/new").await, "new: asked Alice 1");
    assert_eq!(ask("/new").await, "new: nil nil 1", "ctx.fsm:clear() emptied the conversation");
    app.stop().await;
}

#[tokio::test]
async fn each_bot_has_its_own_vm_and_state_survives_a_reload() {
    let bots = [("a.yaml", bot("one", 1, &["name: counter"])), ("b.yaml", bot("two", 2, &["name: counter"]))];
    let (app, plugins) = spawn(&bots, &[("counter.luau", COUNTER)], &[]).await;
    let (one, two) = (app.bot(1).await, app.bot(2).await);
    let user = app.emu.user(7001);
    let count = |bot: &botapi_emulator::TestBot| {
        let (user, bot) = (user.clone(), bot.clone());
        async move {
            user.send(&bot, "/count").await.unwrap();
            user.next_message_from(&bot).await.unwrap().text.unwrap_or_default()
        }
    };
    assert_eq!(count(&one).await, "one: count 1, loads 1, starts 1, unloads 0, by User 7001");
    assert_eq!(count(&one).await, "one: count 2, loads 1, starts 1, unloads 0, by User 7001");
    assert_eq!(count(&two).await, "two: count 1, loads 1, starts 1, unloads 0, by User 7001");
    // A new version: a fresh VM (the count starts again), the state kept; the hooks ran for both versions.
    plugins.write("counter.luau", &COUNTER.replace("\"Counts\"", "\"Counts things\""));
    for id in ["one", "two"] {
        let id = BotId::parse(id).unwrap();
        eventually(WAIT, "the reload", || async {
            app.manager.status_of(&id).is_some_and(|s| s.last_reload == Some(ReloadOutcome::Reloaded))
        })
        .await;
    }
    assert_eq!(count(&one).await, "one: count 1, loads 2, starts 2, unloads 1, by User 7001");
    assert_eq!(count(&two).await, "two: count 1, loads 2, starts 2, unloads 1, by User 7001");
    // The state is the database's `plugin_state`, per bot and plugin.
    let loads = app.storage.plugin_states().get("one", "counter", "loads").await.unwrap();
    assert_eq!(loads, Some(serde_json::json!(2)));
    app.stop().await;
}

fn greeter(reply: &str) -> String {
    format!(
        "plugin {{ name = \"greeter\" }}\n\ncommand(\"hi\", \"Say hi\", function(ctx) ctx:reply(\"{reply}\") end)\n"
    )
}

/// Asks `/hi` until the answer is `expected` (the watcher applies edits asynchronously).
async fn wait_for_greeting(app: &TestApp, user: i64, expected: &str) {
    let (bot, user) = (app.bot(1).await, app.emu.user(user));
    eventually(WAIT, &format!("the greeting {expected:?}"), || async {
        user.send(&bot, "/hi").await.unwrap();
        user.next_message_from(&bot).await.unwrap().text.as_deref() == Some(expected)
    })
    .await;
}

#[tokio::test]
async fn an_edited_script_is_reloaded_in_place_and_a_broken_one_keeps_the_old_version() {
    let bots = [("greeter.yaml", bot("greeter", 1, &["name: greeter"]))];
    let (app, plugins) = spawn(&bots, &[("greeter.luau", &greeter("v1"))], &[]).await;
    let greeter_bot = app.bot(1).await;
    wait_for_greeting(&app, 8001, "v1").await;
    plugins.write("greeter.luau", &greeter("v2"));
    wait_for_greeting(&app, 8001, "v2").await;
    let id = BotId::parse("greeter").unwrap();
    assert_eq!(app.manager.status_of(&id).unwrap().last_reload, Some(ReloadOutcome::Reloaded));
    // A syntax error: reported with file and line, the old version answers.
    plugins.write("greeter.luau", "plugin { name = \"greeter\" }\n\ncommand(\"hi\", \"Say hi\", function(ctx)\n");
    let expected = format!("{}:4: ", plugins.path().join("greeter.luau").display());
    eventually(WAIT, "the error, with file and line", || async {
        app.reloads.last_report().is_some_and(|r| r.errors.iter().any(|e| e.starts_with(&expected)))
    })
    .await;
    let report = app.reloads.last_report().unwrap();
    assert!(report.applied.is_empty() && report.scripts.is_empty(), "{report:?}");
    wait_for_greeting(&app, 8001, "v2").await;
    // A runtime error in the new top level, likewise.
    plugins.write("greeter.luau", &format!("{}\nlocal x = nil + 1\n", greeter("v3")));
    eventually(WAIT, "the error", || async {
        app.reloads
            .last_report()
            .is_some_and(|r| r.errors.iter().any(|e| e.contains("greeter.luau:5: attempt to perform arithmetic")))
    })
    .await;
    wait_for_greeting(&app, 8001, "v2").await;
    // Fixing it applies, still without a restart.
    plugins.write("greeter.luau", &greeter("v4"));
    wait_for_greeting(&app, 8001, "v4").await;
    assert_eq!(greeter_bot.calls(Some("getMe")).await.unwrap().len(), 1, "no restart: getMe ran once");
    app.stop().await;
}

#[tokio::test]
async fn a_reload_reports_script_versions_and_errors_with_file_and_line() {
    // No watcher: each reload here is this test's own (as SIGHUP or the admin bot would ask for one).
    let bots = [("greeter.yaml", bot("greeter", 1, &["name: greeter"]))];
    let (app, plugins) = spawn(&bots, &[("greeter.luau", &greeter("v1"))], &[("ENABLE_HOT_RELOAD", "false")]).await;
    let id = BotId::parse("greeter").unwrap();
    plugins.write("greeter.luau", &greeter("v2"));
    let report = app.reloads.reload_now().await;
    assert_eq!(report.scripts, [("greeter".to_owned(), ReloadOutcome::Reloaded)]);
    assert_eq!(report.applied, [(id.clone(), ReloadOutcome::Reloaded)]);
    assert!(report.errors.is_empty() && report.failed.is_empty(), "{report:?}");
    wait_for_greeting(&app, 8201, "v2").await;
    plugins.write("greeter.luau", "plugin { name = \"greeter\" }\n\nlocal = 1\n");
    let report = app.reloads.reload_now().await;
    let file = plugins.path().join("greeter.luau");
    assert_eq!(
        report.errors,
        [format!("{}:3: Expected identifier when parsing variable name, got '='", file.display())]
    );
    assert!(report.applied.is_empty() && report.scripts.is_empty(), "{report:?}");
    // The problem is an audit event too, naming the file.
    eventually(WAIT, "the config_invalid event", || async {
        let events = app.storage.events().list(None, Some("config_invalid"), 10).await.unwrap();
        events.iter().any(|e| e.detail["script"] == true && e.detail["file"] == file.display().to_string())
    })
    .await;
    // Nothing changed since: the problem is reported again, nothing is applied.
    let report = app.reloads.reload_now().await;
    assert_eq!(report.errors.len(), 1);
    assert!(report.applied.is_empty());
    wait_for_greeting(&app, 8201, "v2").await;
    // A removed script leaves its bots running on the version they have; their file now names an unknown plugin.
    std::fs::remove_file(&file).unwrap();
    let report = app.reloads.reload_now().await;
    assert_eq!(report.scripts, [("greeter".to_owned(), ReloadOutcome::Removed)]);
    assert!(report.errors.iter().any(|e| e.contains("unknown plugin \"greeter\"")), "{:?}", report.errors);
    wait_for_greeting(&app, 8201, "v2").await;
    app.stop().await;
}

#[tokio::test]
async fn the_admins_hear_of_a_broken_script_with_its_file_and_line() {
    let plugins = TempDir::new();
    plugins.write("greeter.luau", &greeter("v1"));
    let vars = [
        ("PLUGINS_DIR", plugins.path().display().to_string()),
        ("ADMIN_BOT_TOKEN", token(2)),
        ("ADMIN_ALLOWED_USERS", "900".to_owned()),
    ];
    let greeter_yaml = bot("greeter", 1, &["name: greeter"]);
    let app = spawn_app_with(&[("greeter.yaml", &greeter_yaml)], 2, PluginRegistry::builtin(), &vars).await;
    let (admin_bot, admin) = (app.bot(2).await, app.emu.user(900));
    // The admin must have written to the admin bot for Telegram to let it write back.
    admin.send(&admin_bot, "/health").await.unwrap();
    admin.next_message_from(&admin_bot).await.unwrap();
    plugins.write("greeter.luau", "plugin { name = \"greeter\" }\n\nlocal = 1\n");
    let note = admin.next_message_in(&admin_bot, 900, WAIT).await.unwrap().text.unwrap();
    let expected = format!("{}:3: Expected identifier", plugins.path().join("greeter.luau").display());
    assert!(note.starts_with("⚠️ Reload failed") && note.contains(&expected), "{note}");
    wait_for_greeting(&app, 8301, "v1").await;
    app.stop().await;
}

#[tokio::test]
async fn a_script_without_hot_reload_restarts_the_bots_that_use_it() {
    let sticky =
        |reply: &str| greeter(reply).replace("name = \"greeter\"", "name = \"greeter\", supports_hot_reload = false");
    let bots = [("greeter.yaml", bot("greeter", 1, &["name: greeter", "name: start"]))];
    let (app, plugins) = spawn(&bots, &[("greeter.luau", &sticky("v1"))], &[]).await;
    let greeter_bot = app.bot(1).await;
    wait_for_greeting(&app, 8101, "v1").await;
    plugins.write("greeter.luau", &sticky("v2"));
    wait_for_greeting(&app, 8101, "v2").await;
    let id = BotId::parse("greeter").unwrap();
    assert_eq!(app.manager.status_of(&id).unwrap().last_reload, Some(ReloadOutcome::Restarted));
    assert_eq!(greeter_bot.calls(Some("getMe")).await.unwrap().len(), 2, "restarted: getMe ran again");
    app.stop().await;
}

fn multibot(dir: &TempDir, plugins: &TempDir, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_multibot"))
        .args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("CONFIG_DIR", dir.path())
        .env("PLUGINS_DIR", plugins.path())
        .env("GOOD_TOKEN", token(1))
        .output()
        .expect("multibot runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn plugins_lists_scripts_beside_native_plugins() {
    let (dir, plugins) = (TempDir::new(), TempDir::new());
    for (name, text) in [("script_echo.luau", ECHO), ("script_form.luau", FORM), ("script_menu.luau", MENU)] {
        plugins.write(name, text);
    }
    let (code, text) = multibot(&dir, &plugins, &["plugins"]);
    assert_eq!(code, 0, "{text}");
    for line in [
        "echo             1.0.0    native  Echoes user messages back",
        "script_echo      1.0.0    script  Echoes user messages back (a Luau script)",
        "script_form      1.0.0    script  A two-step form on the FSM (a Luau script)",
        "script_menu      1.0.0    script  Interactive menu (a Luau script)",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing from:\n{text}");
    }
    let file = plugins.path().join("script_echo.luau");
    assert!(text.contains(&format!("file: {}, by Multibot", file.display())), "{text}");
}

#[test]
fn check_config_sees_scripts_their_schemas_and_name_clashes() {
    let (dir, plugins) = (TempDir::new(), TempDir::new());
    plugins.write("script_echo.luau", ECHO);
    let good = "id: good\nname: Good\ntoken: \"${GOOD_TOKEN}\"\nplugins:\n  - name: script_echo\n    config: { echo_all: true }\n";
    dir.write("good.yaml", good);
    let (code, text) = multibot(&dir, &plugins, &["check-config"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("good (Good) polling, enabled, plugins: script_echo"), "{text}");
    assert!(text.contains(&format!("1 script plugin(s) in {}: script_echo", plugins.path().display())), "{text}");
    // Bad input: a typo in the script's config (its schema catches it), a script named like a native plugin, and
    // two scripts with one name.
    dir.write("good.yaml", &good.replace("echo_all", "echo_al"));
    plugins.write("echo.luau", "plugin { name = \"echo\" }");
    plugins.write("twin_a.luau", "plugin { name = \"twin\" }");
    plugins.write("twin_b.luau", "plugin { name = \"twin\" }");
    let (code, text) = multibot(&dir, &plugins, &["check-config"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("good.yaml:6:24: plugins[0].config.echo_al: unknown setting `echo_al`"), "{text}");
    let echo = plugins.path().join("echo.luau");
    assert!(
        text.contains(&format!("{}: the plugin name \"echo\" is taken by a native plugin", echo.display())),
        "{text}"
    );
    let (a, b) = (plugins.path().join("twin_a.luau"), plugins.path().join("twin_b.luau"));
    let clash = format!("{}: the plugin name \"twin\" is taken by {}", b.display(), a.display());
    assert!(text.contains(&clash), "{clash} missing from:\n{text}");
}
