//! The broadcast benchmark: one broadcast to 100,000 users through the real `multibot` binary, flood control off,
//! against the emulator: messages per second and the process's resident memory, sampled every second over the
//! job (it should stay flat: the runner holds one batch of deliveries at a time, never the audience).
//!
//! ```text
//! cargo build --release -p multibot -p multibot-bench
//! cargo run --release -p multibot-bench -- broadcast
//! ```
//!
//! Set-up, not measured: the emulator (in this process) gets one message from each user, so that the bot may
//! write to them; the bench confirms those updates itself (the bot has no backlog to handle) and writes the users
//! into the SQLite database's `bot_users`, as the bot would have. Then `multibot run` starts, `multibot broadcast`
//! starts the job from the command line, and the bench samples the job's counters (from the database) and the
//! process's `VmRSS` until it is done.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use botapi_emulator::{Emulator, EmulatorConfig};
use futures_util::{StreamExt, stream};
use multibot::{
    config::DatabaseUrl,
    storage::{BroadcastState, Storage, UserProfile, UserSeen, now},
};

use crate::fleet::child::memory;

/// Options of the broadcast benchmark.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Users of the bot (the audience).
    #[arg(long, default_value_t = 100_000)]
    users: i64,
}

const TOKEN: &str = "4242:BenchTokenForBroadcasts_000001";
const WORDS: &str = "Benchmark broadcast";

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(measure(args))
}

async fn measure(args: Args) -> anyhow::Result<()> {
    let config = EmulatorConfig {
        history_limit: 10,
        call_log_capacity: 1_000,
        event_capacity: 1_000,
        ..EmulatorConfig::default()
    };
    let emu = Emulator::start(config).await?;
    let bot = emu.control().bot_named(TOKEN, "News", "news_bot").await?;
    let setup = Instant::now();
    let last = stream::iter(1..=args.users)
        .map(|id| {
            let (user, bot) = (emu.user(id), bot.clone());
            async move { user.send(&bot, "hi").await.map(|sent| sent.update_id.unwrap_or_default()) }
        })
        .buffer_unordered(64)
        .fold(Ok::<i64, anyhow::Error>(0), |max, id| async move { Ok(max?.max(id?)) })
        .await?;
    // Confirm every update, as a bot that handled them would have.
    let url = format!("{}/bot{TOKEN}/getUpdates?offset={}&timeout=0", emu.api_url(), last + 1);
    reqwest::get(&url).await?.error_for_status()?;
    let dir = std::env::temp_dir().join(format!("multibot-bench-broadcast-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("bots"))?;
    std::fs::write(
        dir.join("bots/news.yaml"),
        "id: news\nname: News\ntoken: \"${NEWS_TOKEN}\"\nplugins:\n  - name: start\n",
    )?;
    let database = format!("sqlite://{}/multibot.db", dir.display());
    let storage = Storage::open(&DatabaseUrl::parse(&database).map_err(anyhow::Error::msg)?).await?;
    storage.migrate().await?;
    let at = now();
    let users: Vec<UserSeen> = (1..=args.users)
        .map(|user_id| UserSeen {
            bot_id: "news".into(),
            user_id,
            profile: UserProfile { first_name: format!("User {user_id}"), ..UserProfile::default() },
            first_seen: at,
            last_seen: at,
            messages: 1,
        })
        .collect();
    for chunk in users.chunks(5_000) {
        storage.users().upsert(chunk).await?;
    }
    drop(users);
    eprintln!("set-up: {} users in {:.1} s", args.users, setup.elapsed().as_secs_f64());

    let exe = crate::fleet::multibot_path()?;
    let mut child = Command::new(&exe)
        .arg("run")
        .env_clear()
        .env("CONFIG_DIR", dir.join("bots"))
        .env("DATA_DIR", &dir)
        .env("DATABASE_URL", &database)
        .env("NEWS_TOKEN", TOKEN)
        .env("TELEGRAM_API_URL", emu.api_url())
        .env("LOG_LEVEL", "WARNING")
        .env("HEALTH_CHECK_PORT", "0")
        .env("FLOOD_CONTROL", "false")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("multibot.log"))?)
        .spawn()
        .with_context(|| format!("starting {} (cargo build --release -p multibot first)", exe.display()))?;
    let pid = child.id();
    let started = Instant::now();
    while bot.calls(Some("getUpdates")).await?.is_empty() {
        ensure!(started.elapsed() < Duration::from_secs(60), "multibot did not start polling");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The fleet records its bots in the background; the command line refuses a bot it does not know.
    while storage.bots().get("news").await?.is_none() {
        ensure!(started.elapsed() < Duration::from_secs(60), "multibot did not record its bot");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = memory(pid)?;
    let cli = Command::new(&exe)
        .args(["broadcast", "news", "--text", WORDS])
        .env_clear()
        .env("DATABASE_URL", &database)
        .current_dir(&dir)
        .output()?;
    ensure!(cli.status.success(), "multibot broadcast: {}", String::from_utf8_lossy(&cli.stderr));
    let id = storage.broadcasts().list(Some("news"), 1).await?.first().context("no broadcast")?.id;
    let began = Instant::now();
    let mut samples: Vec<(f64, i64, u64)> = Vec::new();
    let mut last_sent = 0;
    let mut last_at = began;
    let mut first_send: Option<Instant> = None;
    println!("| second | sent | messages/s | RSS (MiB) |");
    println!("|---:|---:|---:|---:|");
    let done = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let b = storage.broadcasts().get(id).await?.context("the broadcast went")?;
        let rss = memory(pid)?.rss_kib;
        let now = Instant::now();
        if b.sent > 0 && first_send.is_none() {
            first_send = Some(now);
        }
        let rate = (b.sent - last_sent) as f64 / now.duration_since(last_at).as_secs_f64();
        let second = now.duration_since(began).as_secs_f64();
        samples.push((second, b.sent, rss));
        let every = if args.users >= 50_000 { 2 } else { 1 };
        if samples.len().is_multiple_of(every) || b.state == BroadcastState::Done {
            println!("| {second:.0} | {} | {rate:.0} | {:.1} |", b.sent, rss as f64 / 1024.0);
        }
        (last_sent, last_at) = (b.sent, now);
        if b.state == BroadcastState::Done {
            break b;
        }
        ensure!(began.elapsed() < Duration::from_secs(1_800), "the broadcast did not finish in 30 minutes");
    };
    let took = done.finished_at.zip(Some(done.created_at)).and_then(|(f, c)| (f - c).to_std().ok()).unwrap_or_default();
    let rss: Vec<u64> = samples.iter().map(|s| s.2).collect();
    let (low, high) = (rss.iter().min().copied().unwrap_or(0), rss.iter().max().copied().unwrap_or(0));
    let peak = memory(pid)?.peak_kib;
    println!();
    println!(
        "| users | sent | failed | blocked | job time | messages/s | RSS before | RSS during (min-max) | peak RSS |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {:.1} s | {:.0} | {:.1} MiB | {:.1}-{:.1} MiB | {:.1} MiB |",
        args.users,
        done.sent,
        done.failed,
        done.blocked,
        took.as_secs_f64(),
        done.sent as f64 / took.as_secs_f64().max(0.001),
        before.rss_kib as f64 / 1024.0,
        low as f64 / 1024.0,
        high as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    let _ = child.kill();
    let _ = child.wait();
    storage.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
