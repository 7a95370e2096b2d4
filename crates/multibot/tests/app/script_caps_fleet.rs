//! Scripts reading their own bot's data (`bot.*`), writing to the admins (`notify_admins`), and host calls made
//! inside coroutines a script created: tied to their handler, never handing the script mlua's raw pointer.

use std::time::{Duration, Instant};

use botapi_emulator::FaultSpec;
use multibot::{config::BotId, plugins::PluginRegistry};

use crate::helpers::{TempDir, TestApp, eventually, spawn_app_with, token};

const ADMIN: i64 = 900;
/// Script threads run at a lower priority: on a machine busy with other tests (the abuse suite fills them), a
/// script's answer can take far longer than a native one.
const WAIT: Duration = Duration::from_secs(60);

/// The `/stats` example of docs/scripts.md, as the docs show it.
fn stats_example() -> String {
    let docs = include_str!("../../../../docs/scripts.md");
    let start = docs.find("The spec's `/stats`, as a script:").expect("the example in docs/scripts.md");
    let block = &docs[start..];
    let code = &block[block.find("```lua\n").expect("a lua block") + "```lua\n".len()..];
    code[..code.find("```").expect("the block's end")].to_owned()
}

/// Reads what the script may, and refuses what it may not, then says what it saw.
const PROBE: &str = r#"
plugin { name = "probe" }
command("probe", "Probe the bot", function(ctx)
  local names = {}
  for _, c in ipairs(bot.commands()) do table.insert(names, c.command .. "@" .. c.plugin) end
  local started = bot.events.recent(100, "started")
  local ok, err = pcall(bot.users.recent, 101)
  local bad, kind = pcall(bot.events.recent, 5, "nope")
  ctx:reply(table.concat({
    "id=" .. bot.id, "username=" .. tostring(bot.username), "commands=" .. table.concat(names, ","),
    "started=" .. #started .. ":" .. started[1].kind, "n101=" .. tostring(ok) .. ":" .. tostring(err),
    "kind=" .. tostring(bad) .. ":" .. tostring(kind),
  }, "\n"), { parse_mode = "plain" })
end)
"#;

fn bot(id: &str, n: u32, plugins: &[&str]) -> String {
    let mut yaml = format!("id: {id}\nname: {id}\ntoken: \"${{TOKEN_{n}}}\"\nplugins:\n");
    for plugin in plugins {
        yaml.push_str(&format!("  - name: {plugin}\n"));
    }
    yaml
}

async fn spawn(scripts: &[(&str, &str)], bots: &[(&str, String)], extra: &[(&str, String)]) -> (TestApp, TempDir) {
    let plugins = TempDir::new();
    for (name, text) in scripts {
        plugins.write(name, text);
    }
    let mut settings = vec![("PLUGINS_DIR", plugins.path().display().to_string())];
    settings.extend(extra.iter().cloned());
    let files: Vec<(&str, &str)> = bots.iter().map(|(name, text)| (*name, text.as_str())).collect();
    let app = spawn_app_with(&files, 3, PluginRegistry::builtin(), &settings).await;
    (app, plugins)
}

#[tokio::test]
async fn the_stats_script_reads_its_own_bots_users_and_events_and_tells_the_admins() {
    let example = stats_example();
    let bots = [("a.yaml", bot("stats_a", 1, &["stats", "probe", "help"])), ("b.yaml", bot("stats_b", 2, &["stats"]))];
    let admin_bot = [("ADMIN_BOT_TOKEN", token(3)), ("ADMIN_ALLOWED_USERS", ADMIN.to_string())];
    let (app, _plugins) = spawn(&[("stats.luau", &example), ("probe.luau", PROBE)], &bots, &admin_bot).await;
    let (a, b, admin_bot) = (app.bot(1).await, app.bot(2).await, app.bot(3).await);
    // Three users talk to bot A, one (with many messages) to bot B only.
    for id in [1001, 1002, 1003] {
        app.emu.user(id).send(&a, "hello").await.unwrap();
    }
    let other = app.emu.user(2001);
    for _ in 0..5 {
        other.send(&b, "hello").await.unwrap();
    }
    let users = app.storage.users();
    eventually(WAIT, "the users stored", || async {
        users.get_user_count("stats_a").await.unwrap() == 3 && users.get_user_count("stats_b").await.unwrap() == 1
    })
    .await;
    let alice = app.emu.user(1001);
    alice.send(&a, "/stats").await.unwrap();
    let stats = alice.next_message_in(&a, alice.id, WAIT).await.unwrap().text.unwrap();
    let lines: Vec<&str> = stats.lines().collect();
    assert_eq!(lines[0], "Total users: 3", "{stats}");
    assert_eq!(lines.len(), 4, "{stats}");
    assert!(!stats.contains("user2001"), "{stats}");
    // The most recent first: once Alice's /stats is stored (sightings are written off the reply path), she leads.
    eventually(WAIT, "Alice's /stats stored", || async {
        users.list_recent("stats_a", 1).await.unwrap().first().is_some_and(|u| u.user_id == 1001)
    })
    .await;
    alice.send(&a, "/stats").await.unwrap();
    let stats = alice.next_message_in(&a, alice.id, WAIT).await.unwrap().text.unwrap();
    let lines: Vec<&str> = stats.lines().collect();
    assert!(lines[1].starts_with("- user1001 ("), "{stats}");
    assert!(!stats.contains("user2001"), "{stats}");
    other.send(&b, "/stats").await.unwrap();
    let stats = other.next_message_in(&b, other.id, WAIT).await.unwrap().text.unwrap();
    assert!(stats.starts_with("Total users: 1\n- user2001 ("), "{stats}");

    // The probe: id, username and commands of its own bot; bounds and unknown kinds refused.
    alice.send(&a, "/probe").await.unwrap();
    let probe = alice.next_message_in(&a, alice.id, WAIT).await.unwrap().text.unwrap();
    assert!(probe.contains("id=stats_a\n"), "{probe}");
    assert!(probe.contains(&format!("username={}\n", a.username)), "{probe}");
    assert!(probe.contains("commands=stats@stats,errors@stats,probe@probe,help@help\n"), "{probe}");
    // Only its own bot's start: bot B's is not there.
    assert!(probe.contains("started=1:started\n"), "{probe}");
    assert!(probe.contains("n101=false:") && probe.contains("n must be 1 to 100, not 101"), "{probe}");
    assert!(probe.contains("kind=false:") && probe.contains("unknown kind \"nope\""), "{probe}");

    // notify_admins goes through the admin bot, with the bot and plugin it came from.
    let admin = app.emu.user(ADMIN);
    admin.send(&admin_bot, "/health").await.unwrap();
    admin.next_message_in(&admin_bot, admin.id, WAIT).await.unwrap();
    alice.send(&a, "/errors").await.unwrap();
    assert_eq!(
        alice.next_message_in(&a, alice.id, WAIT).await.unwrap().text.unwrap(),
        "0 recent errors; the admins were told"
    );
    let note = admin.next_message_in(&admin_bot, ADMIN, WAIT).await.unwrap().text.unwrap();
    assert_eq!(note, "[stats_a/stats] 0 recent errors, asked by User 1001");
    app.stop().await;
}

#[tokio::test]
async fn waiting_calls_on_the_bots_data_are_refused_at_the_top_level() {
    let (app, plugins) = spawn(&[("top.luau", "plugin { name = \"top\" }\n")], &[], &[]).await;
    for (call, what) in [
        ("bot.users.count()", "bot.users.count"),
        ("bot.events.recent(1)", "bot.events.recent"),
        ("notify_admins('x')", "notify_admins"),
        ("bot.commands()", "bot.commands"),
    ] {
        plugins.write("top.luau", &format!("plugin {{ name = \"top\" }}\n{call}\n"));
        let report = app.reloads.reload_now().await;
        let errors = report.errors.join("\n");
        assert!(errors.contains(&format!("top.luau:2: {what} can only be called from a handler")), "{call}: {errors}");
    }
    app.stop().await;
}

/// Host calls inside coroutines the script creates.
const COROUTINES: &str = r#"
plugin { name = "co" }
command("inside", "", function(ctx)
  local co = coroutine.create(function(text) local id = ctx:reply(text) return id end)
  local ok, id = coroutine.resume(co, "from a coroutine")
  store.set("k", "v")
  local value = coroutine.wrap(function() return store.get("k") end)()
  -- Nested, and a generator of the script's own between host calls.
  local nested = coroutine.wrap(function()
    return coroutine.wrap(function() coroutine.yield(ctx:reply("nested")) end)()
  end)()
  local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
  ctx:reply(table.concat({
    tostring(ok), type(id), coroutine.status(co), value, type(nested), gen() + gen() + gen(),
  }, " "), { parse_mode = "plain" })
end)
command("abandon", "", function(ctx)
  local late = coroutine.wrap(function() ctx:reply("late") end)
  table.sort({ 2, 1 }, function(a, b) late() return a < b end)
end)
command("ping", "", function(ctx) ctx:reply("pong") end)
"#;

#[tokio::test]
async fn host_calls_in_a_scripts_coroutines_belong_to_the_handler() {
    let (app, _plugins) = spawn(&[("co.luau", COROUTINES)], &[("a.yaml", bot("co_a", 1, &["co"]))], &[]).await;
    let a = app.bot(1).await;
    let alice = app.emu.user(1001);
    alice.send(&a, "/inside").await.unwrap();
    assert_eq!(alice.next_message_in(&a, alice.id, WAIT).await.unwrap().text.unwrap(), "from a coroutine");
    assert_eq!(alice.next_message_in(&a, alice.id, WAIT).await.unwrap().text.unwrap(), "nested");
    // `resume` returned what the coroutine returned (the message id), never mlua's pending marker (a
    // lightuserdata, which `type` calls "userdata").
    assert_eq!(alice.next_message_in(&a, alice.id, WAIT).await.unwrap().text.unwrap(), "true number dead v number 6");

    // A host call where the handler cannot wait (a sort comparator) is refused, and what it started ends with
    // the handler: Telegram answers the first attempt of the reply 429, retry in 1 s, which never comes.
    a.inject(FaultSpec::too_many_requests("sendMessage", 1)).await.unwrap();
    alice.send(&a, "/abandon").await.unwrap();
    let id = BotId::parse("co_a").unwrap();
    eventually(WAIT, "the handler's error", || async {
        app.manager
            .status_of(&id)
            .and_then(|s| s.last_error)
            .is_some_and(|e| e.contains("cannot run inside a coroutine"))
    })
    .await;
    let failed = Instant::now();
    let attempts = || async { a.calls(Some("sendMessage")).await.unwrap().len() };
    let before = attempts().await;
    // The retry would be sent 1 s after the 429; give it twice that to show up.
    while failed.elapsed() < Duration::from_secs(2) {
        assert_eq!(attempts().await, before, "the abandoned reply was retried after its handler ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    alice.send(&a, "/ping").await.unwrap();
    assert_eq!(alice.next_message_in(&a, alice.id, WAIT).await.unwrap().text.unwrap(), "pong");
    let said: Vec<String> = alice
        .transcript(&a)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| m.message.text)
        .filter(|t| t == "late")
        .collect();
    assert!(said.is_empty(), "{said:?}");
    app.stop().await;
}
