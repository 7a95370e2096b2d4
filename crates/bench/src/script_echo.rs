//! Script echo against native echo: the same fleet of polling bots, each with `echo_all`, once with the native
//! `echo` plugin and once with the `script_echo` Luau example, through the real application (router, handlers,
//! Bot API client) against the emulator. The emulator runs on a thread of its own; the updates are queued in it
//! before the fleet starts, and the rate is measured between 10% and 90% of the replies, so start-up and the tail
//! do not count.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use botapi_emulator::{Control, Emulator, EmulatorConfig};
use multibot::{
    app::Application,
    config::{EnvLookup, Settings},
    plugins::PluginRegistry,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Options of the script echo benchmark.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Bots in the fleet.
    #[arg(long, default_value_t = 8)]
    bots: usize,
    /// Users writing to each bot (each user's messages are handled in order, users in parallel).
    #[arg(long, default_value_t = 64)]
    users: usize,
    /// Messages each user sends.
    #[arg(long, default_value_t = 50)]
    messages: usize,
    /// Runs of each variant; the best is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

const SCRIPT_ECHO: &str = include_str!("../../../plugins/script_echo.luau");

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Native,
    Script,
}

fn token(bot: usize) -> String {
    format!("{}:BenchTokenForScriptEcho_{bot:06}", 300_000 + bot)
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut best = [0.0f64; 2];
    for _ in 0..args.runs {
        for (slot, variant) in [(0, Variant::Native), (1, Variant::Script)] {
            let rate = runtime.block_on(measure(&args, variant))?;
            best[slot] = best[slot].max(rate);
        }
    }
    let total = args.bots * args.users * args.messages;
    println!(
        "| benchmark | bots | users per bot | messages | native echo replies/s | script echo replies/s | script / native |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| echo_all, native vs Luau script, polling | {} | {} | {total} | {:.0} | {:.0} | {:.2} |",
        args.bots,
        args.users,
        best[0],
        best[1],
        best[1] / best[0]
    );
    Ok(())
}

/// Starts an emulator on a thread of its own; returns its base URL and what stops it.
fn start_emulator() -> anyhow::Result<(String, CancellationToken, std::thread::JoinHandle<anyhow::Result<()>>)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let url = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let server_stop = stop.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async move {
            let emulator =
                Emulator::serve(TcpListener::from_std(listener)?, EmulatorConfig::default(), server_stop.clone());
            ready_tx.send(())?;
            server_stop.cancelled().await;
            emulator.stop().await;
            anyhow::Ok(())
        })
    });
    ready_rx.recv()?;
    Ok((url, stop, thread))
}

/// A fresh directory for one run's configuration, scripts and database.
fn scratch(variant: Variant) -> anyhow::Result<PathBuf> {
    let kind = if variant == Variant::Script { "script" } else { "native" };
    let dir = std::env::temp_dir().join(format!("multibot-bench-{}-{kind}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["bots", "plugins", "data"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    Ok(dir)
}

fn write_fleet(dir: &Path, bots: usize, variant: Variant) -> anyhow::Result<()> {
    let plugin = match variant {
        Variant::Native => "echo",
        Variant::Script => "script_echo",
    };
    std::fs::write(dir.join("plugins/script_echo.luau"), SCRIPT_ECHO)?;
    for bot in 0..bots {
        let yaml = format!(
            "id: bench_{bot}\nname: Bench {bot}\ntoken: \"{}\"\nplugins:\n  - name: {plugin}\n    config: {{ echo_all: true }}\n",
            token(bot)
        );
        std::fs::write(dir.join(format!("bots/bench_{bot}.yaml")), yaml)?;
    }
    Ok(())
}

/// Replies per second of one variant.
async fn measure(args: &Args, variant: Variant) -> anyhow::Result<f64> {
    let (url, stop, emulator) = start_emulator()?;
    let dir = scratch(variant)?;
    write_fleet(&dir, args.bots, variant)?;
    let control = Control::new(url.clone());
    let mut bots = Vec::new();
    for bot in 0..args.bots {
        bots.push(control.bot_named(&token(bot), &format!("Bench {bot}"), &format!("bench{bot}_bot")).await?);
    }
    // Queue every message before the fleet starts: a bot then finds its updates waiting.
    let mut senders = Vec::new();
    for (b, bot) in bots.iter().enumerate() {
        for u in 0..args.users {
            let (user, bot, messages) = (control.user((b * 10_000 + u + 1) as i64), bot.clone(), args.messages);
            senders.push(tokio::spawn(async move {
                for m in 0..messages {
                    user.send(&bot, &format!("message {m}")).await?;
                }
                anyhow::Ok(())
            }));
        }
    }
    for sender in senders {
        sender.await??;
    }
    let vars = [
        ("TELEGRAM_API_URL", url.clone()),
        ("CONFIG_DIR", dir.join("bots").display().to_string()),
        ("PLUGINS_DIR", dir.join("plugins").display().to_string()),
        ("DATA_DIR", dir.join("data").display().to_string()),
        ("FLOOD_CONTROL", "false".to_owned()),
        ("HEALTH_CHECK_ENABLED", "false".to_owned()),
        ("ENABLE_HOT_RELOAD", "false".to_owned()),
        ("LOG_LEVEL", "ERROR".to_owned()),
        ("POLLING_TIMEOUT", "1".to_owned()),
    ];
    let settings = Settings::from_env(&|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()))
        .map_err(|errors| anyhow::anyhow!(errors.join("; ")))?;
    let env: EnvLookup = Arc::new(|_| None);
    let total = (args.bots * args.users * args.messages) as u64;
    let app = Application::build(settings, PluginRegistry::builtin(), env).await?;
    let manager = app.manager().clone();
    let shutdown = app.shutdown_token();
    let running = tokio::spawn(app.run_until_stopped());
    let handled = || manager.status().iter().map(|s| s.updates_handled).sum::<u64>();
    let (low, high) = (total / 10, total * 9 / 10);
    let mut start: Option<(Instant, u64)> = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    let rate = loop {
        let now = handled();
        if start.is_none() && now >= low {
            start = Some((Instant::now(), now));
        }
        if let Some((at, from)) = start
            && now >= high
        {
            break (now - from) as f64 / at.elapsed().as_secs_f64();
        }
        anyhow::ensure!(Instant::now() < deadline, "only {now} of {total} updates handled in 300 s");
        // Each look walks every bot's updates in flight: often enough to time a run of a second or more to 1 %,
        // seldom enough not to take the fleet's CPU.
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    while handled() < total {
        anyhow::ensure!(Instant::now() < deadline, "only {} of {total} updates handled in 300 s", handled());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut sent = 0;
    for bot in &bots {
        sent += bot.stats().await?.messages_sent;
    }
    anyhow::ensure!(sent == total, "{sent} replies for {total} messages");
    shutdown.cancel();
    running.await??;
    stop.cancel();
    emulator.join().map_err(|_| anyhow::anyhow!("emulator thread panicked"))??;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rate)
}
