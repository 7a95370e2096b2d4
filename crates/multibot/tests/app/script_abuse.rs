//! Script code that cannot yield to the runtime (a busy `table.sort` comparator, a `gsub` callback, a
//! metamethod) runs on the script threads: while it computes for its whole budget, on a runtime of two workers,
//! the health probe and another bot keep answering, and a second update to the same VM waits off the workers. So
//! does a top level that computes for its whole budget, when a reload discovers the script or a bot loads it.

use std::time::{Duration, Instant};

use botapi_emulator::{Emulator, EmulatorConfig};
use multibot::plugins::PluginRegistry;

use crate::helpers::{TempDir, Web, serve, token};

/// What the other bot's answers may take while a script computes: the 99th percentile under 200 ms, and none
/// over a second. A script holding a runtime worker would stall every round for its whole budget (2 s); one slow
/// round in hundreds is the test suite's other tests sharing the two cores (seen once in CI: 385 ms in 419 rounds).
fn assert_echoes_kept_up(what: &str, echoes: &mut [Duration]) {
    echoes.sort();
    let p99 = echoes[(echoes.len() * 99).div_ceil(100).saturating_sub(1)];
    let slowest = *echoes.last().expect("rounds");
    assert!(p99 < Duration::from_millis(200), "{what}: the other bot's p99 was {p99:?}");
    assert!(slowest < Duration::from_secs(1), "{what}: the other bot once took {slowest:?}");
}

/// Each command computes inside a call Luau cannot yield from, until the budget stops it.
const STUCK: &str = r#"
plugin { name = "stuck" }
local function busy() local x = 0 while true do x += 1 end end
command("sort", "", function(ctx) table.sort({3, 2, 1}, function(a, b) busy() return a < b end) end)
command("gsub", "", function(ctx) string.gsub("abc", "%w", function(c) busy() return c end) end)
command("meta", "", function(ctx) local t = setmetatable({}, { __index = function() busy() end }) local _ = t.x end)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_that_cannot_yield_holds_neither_the_health_probe_nor_other_bots() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let stuck = emu.control().bot_named(&token(1), "Stuck", "stuck_bot").await.unwrap();
    let echo = emu.control().bot_named(&token(2), "Echo", "echo_bot").await.unwrap();
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    dir.write("plugins/stuck.luau", STUCK);
    dir.write(
        "stuck.yaml",
        "id: stuck\nname: Stuck\ntoken: \"${TOKEN_1}\"\nplugins:\n  - name: stuck\n  - name: error_handler\n",
    );
    dir.write(
        "echo.yaml",
        "id: echo\nname: Echo\ntoken: \"${TOKEN_2}\"\nplugins:\n  - name: echo\n    config: { echo_all: true }\n",
    );
    let extra =
        [("PLUGINS_DIR", dir.path().join("plugins").display().to_string()), ("SCRIPT_TIMEOUT_MS", "2000".to_owned())];
    let app = serve(&emu, dir.path(), Web::Off, &extra, PluginRegistry::builtin()).await;
    let http = reqwest::Client::new();
    let live = app.url("/health/live");
    for command in ["/sort", "/gsub", "/meta"] {
        // Bad input: three updates to one VM at once, each stuck where the script cannot yield.
        let attackers: Vec<_> = (0..3).map(|i| emu.user(6100 + i)).collect();
        for attacker in &attackers {
            attacker.send(&stuck, command).await.unwrap();
        }
        let started = Instant::now();
        let mut slowest_probe = Duration::ZERO;
        let mut echoes = Vec::new();
        let bob = emu.user(6200);
        // For a budget's length: probe the health endpoint and talk to the other bot.
        let mut round = 0;
        while started.elapsed() < Duration::from_millis(1800) {
            let probe = Instant::now();
            let answer = http.get(&live).send().await.unwrap();
            assert_eq!(answer.status(), 200);
            slowest_probe = slowest_probe.max(probe.elapsed());
            let sent = Instant::now();
            bob.send(&echo, &format!("ping {round}")).await.unwrap();
            let reply = bob.next_message_from(&echo).await.unwrap();
            assert_eq!(reply.text.as_deref(), Some(format!("You said: ping {round}").as_str()));
            echoes.push(sent.elapsed());
            round += 1;
        }
        println!("{command}: {round} rounds, slowest probe {slowest_probe:?}, slowest echo {:?}", echoes.iter().max());
        assert!(slowest_probe < Duration::from_millis(100), "{command}: /health/live took {slowest_probe:?}");
        assert_echoes_kept_up(command, &mut echoes);
        // Each stuck update ends with the budget, and the error handler tells its user.
        for attacker in &attackers {
            let reply = attacker.next_message_from(&stuck).await.unwrap();
            assert!(reply.text.unwrap().starts_with("Something went wrong (error id "));
        }
    }
    let status = app.manager.status_of(&multibot::config::BotId::parse("stuck").unwrap()).unwrap();
    assert!(status.last_error.unwrap().contains("time budget of 2000 ms"));
    app.stop().await;
}

/// A top level that computes inside a `table.sort` comparator until the budget stops it: `{when}` says when.
fn busy_top_level(name: &str, when: &str) -> String {
    format!(
        "plugin {{ name = \"{name}\" }}\nlocal function busy() local x = 0 while true do x += 1 end end\n\
         if {when} then table.sort({{3, 2, 1}}, function(a, b) busy() return a < b end) end\n\
         command(\"never\", \"\", function(ctx) end)\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_top_level_holds_neither_the_health_probe_nor_other_bots() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emu.control().bot_named(&token(1), "Busy", "busy_bot").await.unwrap();
    let echo = emu.control().bot_named(&token(2), "Echo", "echo_bot").await.unwrap();
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    dir.write(
        "echo.yaml",
        "id: echo\nname: Echo\ntoken: \"${TOKEN_2}\"\nplugins:\n  - name: echo\n    config: { echo_all: true }\n",
    );
    // No watcher: each reload is the test's own, so that its report is the one that ran the top level.
    let extra = [
        ("PLUGINS_DIR", dir.path().join("plugins").display().to_string()),
        ("SCRIPT_TIMEOUT_MS", "2000".to_owned()),
        ("ENABLE_HOT_RELOAD", "false".to_owned()),
    ];
    let app = serve(&emu, dir.path(), Web::Off, &extra, PluginRegistry::builtin()).await;
    let http = reqwest::Client::new();
    let live = app.url("/health/live");
    let bob = emu.user(6300);
    // Bad input: a script busy when it is discovered, then one busy only when a bot loads it.
    let cases = [("discovered", "true"), ("loaded", "bot_id ~= \"\"")];
    for (round, (case, when)) in cases.into_iter().enumerate() {
        dir.write(&format!("plugins/busy_{case}.luau"), &busy_top_level(&format!("busy_{case}"), when));
        if case == "loaded" {
            dir.write("busy.yaml", "id: busy\nname: Busy\ntoken: \"${TOKEN_1}\"\nplugins:\n  - name: busy_loaded\n");
        }
        let reloads = app.reloads.clone();
        let reload = tokio::spawn(async move { reloads.reload_now().await });
        let (mut slowest_probe, mut echoes, mut rounds) = (Duration::ZERO, Vec::new(), 0);
        // While the reload runs the top level: probe the health endpoint and talk to the other bot.
        while !reload.is_finished() {
            let probe = Instant::now();
            assert_eq!(http.get(&live).send().await.unwrap().status(), 200);
            slowest_probe = slowest_probe.max(probe.elapsed());
            let sent = Instant::now();
            bob.send(&echo, &format!("ping {round}.{rounds}")).await.unwrap();
            let reply = bob.next_message_from(&echo).await.unwrap();
            assert_eq!(reply.text.unwrap(), format!("You said: ping {round}.{rounds}"));
            echoes.push(sent.elapsed());
            rounds += 1;
        }
        let report = reload.await.unwrap();
        println!("{case}: {rounds} rounds, slowest probe {slowest_probe:?}, slowest echo {:?}", echoes.iter().max());
        // The budget is 2 s: that long, at 100 ms a round at most, is many rounds.
        assert!(rounds >= 5, "{case}: {rounds} rounds: the reload did not run the top level");
        assert!(slowest_probe < Duration::from_millis(100), "{case}: /health/live took {slowest_probe:?}");
        assert_echoes_kept_up(case, &mut echoes);
        // The script gets the error that names the limit: as a script that does not load, or as a bot that does
        // not start.
        let problems =
            if case == "discovered" { format!("{:?}", report.errors) } else { format!("{:?}", report.failed) };
        assert!(problems.contains("time budget of 2000 ms"), "{case}: {problems}");
        std::fs::remove_file(dir.path().join(format!("plugins/busy_{case}.luau"))).unwrap();
    }
    app.stop().await;
}
