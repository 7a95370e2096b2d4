//! Hot reload with real files in a temporary CONFIG_DIR: the watcher, the diff, in-place reloads and restarts.

use std::{sync::Arc, time::Duration};

use multibot::{config::BotId, fleet::BotState, outcomes::ReloadOutcome, plugins::PluginRegistry, prelude::*};

use botapi_emulator::FaultSpec;

use crate::helpers::{eventually, spawn_app};

fn greeter(id: &str, token: u32, welcome: &str) -> String {
    format!(
        "id: {id}\nname: Greeter\ntoken: \"${{TOKEN_{token}}}\"\nplugins:\n  - name: start\n    config:\n      welcome_message: \"{welcome}\"\n  - name: form\n"
    )
}

const WAIT: Duration = Duration::from_secs(10);

/// Asks `/start` until the answer is `expected` (the watcher applies edits asynchronously).
async fn wait_for_welcome(app: &crate::helpers::TestApp, bot: &botapi_emulator::TestBot, user: i64, expected: &str) {
    let user = app.emu.user(user);
    eventually(WAIT, &format!("the welcome {expected:?}"), || async {
        user.send(bot, "/start").await.unwrap();
        user.next_message_from(bot).await.unwrap().text.as_deref() == Some(expected)
    })
    .await;
}

#[tokio::test]
async fn an_edited_file_is_served_without_a_restart() {
    let app = spawn_app(&[("greeter.yaml", &greeter("greeter", 1, "v1"))], 1, PluginRegistry::builtin()).await;
    let bot = app.bot(1).await;
    wait_for_welcome(&app, &bot, 100, "v1").await;
    // An editor's save (temp file renamed over the original), then a touch.
    app.dir.write("greeter.yaml", &greeter("greeter", 1, "v2"));
    std::fs::OpenOptions::new().append(true).open(app.dir.path().join("greeter.yaml")).unwrap().sync_all().unwrap();
    wait_for_welcome(&app, &bot, 100, "v2").await;
    let status = app.manager.status_of(&BotId::parse("greeter").unwrap()).unwrap();
    assert_eq!(status.last_reload, Some(ReloadOutcome::Reloaded), "reloaded in place, not restarted");
    assert_eq!(bot.calls(Some("getMe")).await.unwrap().len(), 1, "no restart: getMe ran once");
    app.stop().await;
}

#[tokio::test]
async fn an_added_file_starts_a_bot_and_a_removed_one_stops_it() {
    let app = spawn_app(&[("a.yaml", &greeter("first", 1, "first"))], 2, PluginRegistry::builtin()).await;
    let second = app.bot(2).await;
    app.dir.write("b.yaml", &greeter("second", 2, "second"));
    wait_for_welcome(&app, &second, 200, "second").await;
    std::fs::remove_file(app.dir.path().join("b.yaml")).unwrap();
    let id = BotId::parse("second").unwrap();
    eventually(WAIT, "the bot removed", || async { app.manager.status_of(&id).is_none() }).await;
    // It no longer answers: the message stays pending in Telegram.
    app.emu.user(201).send(&second, "/start").await.unwrap();
    eventually(WAIT, "the emulator to see no poller", || async { second.stats().await.unwrap().pending == 1 }).await;
    // `enabled: false` stops a bot too, and a changed id replaces the bot.
    app.dir.write("a.yaml", &greeter("first", 1, "first").replace("name: Greeter", "name: Greeter\nenabled: false"));
    let first = BotId::parse("first").unwrap();
    eventually(WAIT, "the bot disabled", || async {
        app.manager.status_of(&first).is_some_and(|s| s.state == BotState::Disabled)
    })
    .await;
    app.dir.write("a.yaml", &greeter("renamed", 1, "renamed"));
    let bot = app.bot(1).await;
    wait_for_welcome(&app, &bot, 202, "renamed").await;
    assert!(app.manager.status_of(&first).is_none(), "the old id is gone");
    app.stop().await;
}

#[tokio::test]
async fn invalid_edits_keep_the_old_behaviour_until_fixed() {
    let app = spawn_app(&[("greeter.yaml", &greeter("greeter", 1, "v1"))], 1, PluginRegistry::builtin()).await;
    let bot = app.bot(1).await;
    wait_for_welcome(&app, &bot, 300, "v1").await;
    // Bad input: a YAML syntax error, then a semantic error (an unknown plugin).
    for (broken, expected) in [
        ("id: greeter\nname: [unclosed\n", "greeter.yaml:"),
        (
            &greeter("greeter", 1, "v2").replace("name: form", "name: no_such_plugin") as &str,
            "unknown plugin \"no_such_plugin\"",
        ),
    ] {
        app.dir.write("greeter.yaml", broken);
        eventually(WAIT, "the reload to report the problem", || async {
            app.reloads.last_report().is_some_and(|r| r.errors.iter().any(|e| e.contains(expected)))
        })
        .await;
        assert!(app.reloads.last_report().unwrap().applied.is_empty());
        let user = app.emu.user(300);
        user.send(&bot, "/start").await.unwrap();
        assert_eq!(user.next_message_from(&bot).await.unwrap().text.as_deref(), Some("v1"));
    }
    app.dir.write("greeter.yaml", &greeter("greeter", 1, "fixed"));
    wait_for_welcome(&app, &bot, 300, "fixed").await;
    app.stop().await;
}

#[tokio::test]
async fn five_reloads_during_a_stream_lose_nothing_and_answer_nothing_twice() {
    let echo = |n: u32| {
        format!(
            "id: streamer\nname: Streamer {n}\ntoken: \"${{TOKEN_1}}\"\nplugins:\n  - name: echo\n    config: {{ echo_all: true }}\n"
        )
    };
    let app = spawn_app(&[("stream.yaml", &echo(0))], 1, PluginRegistry::builtin()).await;
    let bot = app.bot(1).await;
    let users: Vec<_> = (0..4).map(|u| app.emu.user(900 + u)).collect();
    let sender = {
        let (bot, users) = (bot.clone(), users.clone());
        tokio::spawn(async move {
            for i in 0..50 {
                for user in &users {
                    user.send(&bot, &format!("m{i:02}")).await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
        })
    };
    let id = BotId::parse("streamer").unwrap();
    for n in 1..=5 {
        app.dir.write("stream.yaml", &echo(n));
        let name = format!("Streamer {n}");
        eventually(WAIT, "a reload", || async { app.manager.status_of(&id).is_some_and(|s| s.name == name) }).await;
        assert_eq!(app.manager.status_of(&id).unwrap().last_reload, Some(ReloadOutcome::Reloaded));
    }
    sender.await.unwrap();
    eventually(Duration::from_secs(30), "200 replies", || async { bot.stats().await.unwrap().messages_sent >= 200 })
        .await;
    for user in &users {
        let replies: Vec<String> = user
            .transcript(&bot)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.from_bot)
            .map(|m| m.message.text.unwrap())
            .collect();
        let expected: Vec<String> = (0..50).map(|i| format!("You said: m{i:02}")).collect();
        assert_eq!(replies, expected, "user {}", user.id);
    }
    assert_eq!(bot.stats().await.unwrap().messages_sent, 200);
    app.stop().await;
}

#[tokio::test]
async fn reloading_one_bot_does_not_interrupt_another() {
    let files = [("a.yaml", greeter("alpha", 1, "alpha v1")), ("b.yaml", greeter("beta", 2, "beta"))];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let app = spawn_app(&files, 2, PluginRegistry::builtin()).await;
    let (alpha, beta) = (app.bot(1).await, app.bot(2).await);
    let user = app.emu.user(400);
    user.send(&beta, "/form").await.unwrap();
    assert_eq!(user.next_message_from(&beta).await.unwrap().text.as_deref(), Some("What's your name?"));
    app.dir.write("a.yaml", &greeter("alpha", 1, "alpha v2"));
    wait_for_welcome(&app, &alpha, 401, "alpha v2").await;
    // The conversation with beta goes on where it was.
    user.send(&beta, "Bea").await.unwrap();
    assert_eq!(user.next_message_from(&beta).await.unwrap().text.as_deref(), Some("How old are you?"));
    let status = app.manager.status_of(&BotId::parse("beta").unwrap()).unwrap();
    assert_eq!(status.last_reload, None);
    assert_eq!(beta.calls(Some("getMe")).await.unwrap().len(), 1);
    app.stop().await;
}

/// A plugin that cannot be reloaded in place.
struct Sticky;

#[derive(Deserialize)]
struct StickyConfig {
    #[serde(default)]
    #[allow(dead_code)]
    version: u32,
}

impl Plugin for Sticky {
    type Config = StickyConfig;
    fn meta() -> PluginMeta {
        PluginMeta::new("sticky").supports_hot_reload(false)
    }
    fn new(_config: StickyConfig, _cx: &PluginContext) -> anyhow::Result<Sticky> {
        Ok(Sticky)
    }
    fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
        handlers.command("sticky", "Sticky", |_: Arc<Sticky>, cx: Ctx| async move {
            cx.reply("stuck").await?;
            Ok(())
        });
    }
}

#[tokio::test]
async fn a_plugin_without_hot_reload_makes_the_bot_restart() {
    let sticky = |v: u32| {
        format!(
            "id: sticky\nname: Sticky\ntoken: \"${{TOKEN_1}}\"\nplugins:\n  - name: sticky\n    config: {{ version: {v} }}\n"
        )
    };
    let mut registry = PluginRegistry::builtin();
    registry.register::<Sticky>();
    let app = spawn_app(&[("sticky.yaml", &sticky(1))], 1, registry).await;
    let bot = app.bot(1).await;
    let id = BotId::parse("sticky").unwrap();
    app.dir.write("sticky.yaml", &sticky(2));
    eventually(WAIT, "the restart", || async {
        app.manager.status_of(&id).is_some_and(|s| s.last_reload.is_some() && s.state == BotState::Running)
    })
    .await;
    let status = app.manager.status_of(&id).unwrap();
    assert_eq!((status.state, status.last_reload), (BotState::Running, Some(ReloadOutcome::Restarted)));
    assert_eq!(bot.calls(Some("getMe")).await.unwrap().len(), 2, "a restart checks the token again");
    app.stop().await;
}

#[tokio::test]
async fn environment_settings_are_refused_by_name() {
    let app = spawn_app(&[("greeter.yaml", &greeter("greeter", 1, "v1"))], 1, PluginRegistry::builtin()).await;
    app.vars.lock().insert("HEALTH_CHECK_PORT".into(), "9999".into());
    app.vars.lock().insert("LOG_LEVEL".into(), "DEBUG".into());
    let report = app.reloads.reload_now().await;
    assert_eq!(report.refused_settings, ["LOG_LEVEL", "HEALTH_CHECK_PORT"]);
    assert!(report.applied.is_empty() && report.failed.is_empty(), "{report:?}");
    app.stop().await;
}

/// Watches the reload count for ten debounce periods (the watcher's delay before a reload): it must stay `n`.
async fn assert_no_reload_after(app: &crate::helpers::TestApp, n: u64, what: &str) {
    let window = multibot::config::watcher::DEBOUNCE * 10;
    let end = tokio::time::Instant::now() + window;
    while tokio::time::Instant::now() < end {
        assert_eq!(app.reloads.count(), n, "a reload after {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn reading_the_files_never_reloads() {
    let app = spawn_app(&[("greeter.yaml", &greeter("greeter", 1, "v1"))], 1, PluginRegistry::builtin()).await;
    let bot = app.bot(1).await;
    let path = app.dir.path().join("greeter.yaml");
    // Each edit (the positive control) is one reload, and a reload reads the file; so does `cat`. After each edit's
    // reload and after many reads, no further reload may come.
    for (n, welcome) in [(1, "v2"), (2, "v3")] {
        app.dir.write("greeter.yaml", &greeter("greeter", 1, welcome));
        eventually(WAIT, "the edit's reload", || async { app.reloads.count() >= n }).await;
        wait_for_welcome(&app, &bot, 100, welcome).await;
        assert_no_reload_after(&app, n, "the edit's reload").await;
        for _ in 0..50 {
            std::fs::read(&path).unwrap();
        }
        assert_no_reload_after(&app, n, "reading the file").await;
    }
    app.stop().await;
}

/// Stopping the application while a reload is starting a bot: the reload finishes and that bot is stopped with the
/// others before the application returns, instead of starting after the fleet stopped.
#[tokio::test]
async fn a_reload_under_way_at_shutdown_finishes_and_its_bot_stops_before_the_application_returns() {
    let mut app = spawn_app(&[("a.yaml", &greeter("first", 1, "first"))], 2, PluginRegistry::builtin()).await;
    let second = app.bot(2).await;
    // The new bot's start waits on deleteWebhook (right after getMe) for a while.
    second.inject(FaultSpec::delay("deleteWebhook", Duration::from_secs(2))).await.unwrap();
    app.dir.write("b.yaml", &greeter("second", 2, "second"));
    eventually(WAIT, "the reload to start the second bot", || async {
        !second.calls(Some("getMe")).await.unwrap().is_empty()
    })
    .await;
    app.stop_app().await;
    let methods: Vec<String> = second.calls(None).await.unwrap().into_iter().map(|c| c.method).collect();
    assert!(methods.iter().any(|m| m == "setMyCommands"), "the reload finished before the stop: {methods:?}");
    let state = app.manager.status_of(&BotId::parse("second").unwrap()).map(|s| s.state);
    assert_eq!(state, Some(BotState::Stopped), "the bot it started was stopped with the others");
}

/// Publishes `files` as a new version of a mounted ConfigMap in `dir`, step by step as the kubelet does: the
/// files in a new hidden timestamped directory, a `..data_tmp` link to it renamed over `..data` (atomic), each
/// `name.yaml` a link to `..data/name.yaml` (made once), the previous version's directory removed.
fn publish_configmap(dir: &std::path::Path, version: &str, files: &[(&str, &str)]) {
    use std::os::unix::fs::symlink;
    let versioned = format!("..2026_11_30_13_00_{version}.000000001");
    std::fs::create_dir(dir.join(&versioned)).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(&versioned).join(name), text).unwrap();
    }
    let previous = std::fs::read_link(dir.join("..data")).ok();
    symlink(&versioned, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    for (name, _) in files {
        if std::fs::symlink_metadata(dir.join(name)).is_err() {
            symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
    }
    if let Some(previous) = previous {
        std::fs::remove_dir_all(dir.join(previous)).unwrap();
    }
}

#[tokio::test]
async fn a_configmap_update_swapping_the_data_link_is_applied() {
    let app = spawn_app(&[], 1, PluginRegistry::builtin()).await;
    let bot = app.bot(1).await;
    publish_configmap(app.dir.path(), "00", &[("greeter.yaml", &greeter("greeter", 1, "v1"))]);
    wait_for_welcome(&app, &bot, 400, "v1").await;
    // Bad input for a watcher of `*.yaml` paths: the update changes no such path, only where `..data` points.
    publish_configmap(app.dir.path(), "05", &[("greeter.yaml", &greeter("greeter", 1, "v2"))]);
    wait_for_welcome(&app, &bot, 400, "v2").await;
    let status = app.manager.status_of(&BotId::parse("greeter").unwrap()).unwrap();
    assert_eq!(status.last_reload, Some(ReloadOutcome::Reloaded), "reloaded in place, not restarted");
    app.stop().await;
}
