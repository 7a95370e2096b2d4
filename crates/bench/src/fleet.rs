//! The fleet benchmark: the real `multibot` binary running N echo bots against the emulator.
//!
//! Build both binaries first, in one command, then run the benchmark:
//!
//! ```text
//! cargo build --release -p multibot -p multibot-bench
//! cargo run --release -p multibot-bench -- fleet
//! ```
//!
//! The bench runs the emulator in-process on a thread of its own (a current-thread runtime: one core) and
//! starts `multibot run` (found next to its own executable) as a child, once per fleet size, with N generated
//! YAML files (echo plugin, `echo_all: true`). For each size it measures the time from the spawn until the
//! emulator sees all N bots long-polling, the child's resident memory and CPU over an idle window, then a burst
//! (10 bots x 100 users x 10 messages at once) and a steady load (200 messages/s), and prints one Markdown table
//! with the targets next to it. Targets are reported, never enforced.
//!
//! Every size is also run first, in the same run and on the same load, by a bare echo loop with no framework
//! (`bare`): the baseline that multibot's replies/s and memory are quoted against (`--no-baseline` skips it).
//!
//! - `bare`: the baseline, started as a child process of this executable (`multibot-bench bare-echo`).
//! - `child`: [`child::Fleet`], the child process, its temporary directory and `/proc` readings.
//! - `load`: the burst, the steady load and the matching of replies to messages.

pub(crate) mod bare;
pub(crate) mod child;
pub(crate) mod load;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use botapi_emulator::{Emulator, EmulatorConfig};
use child::{Fleet, Memory};
use load::{BURST_PER_CHAT, BURST_USERS, Observer, PhaseStats};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::http::Conn;

/// Options of the fleet benchmark.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Fleet sizes to measure fully (launch, idle, burst, steady), each in a fresh multibot process.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000")]
    bots: Vec<usize>,
    /// Fleet sizes to measure idle only (launch, memory, CPU); `--idle-bots` alone for none.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "10000")]
    idle_bots: Vec<usize>,
    /// Measure every size idle only: no burst, no steady load.
    #[arg(long)]
    idle_only: bool,
    /// Seconds of the idle window and of the steady load.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Messages per second of the steady load.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Bursts per fleet, one after the other; the table shows the median one (by replies/s), and the losses,
    /// duplicates and reorderings of them all. One burst of a second and a half varies by a fifth from run to
    /// run on a shared machine.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=5))]
    bursts: u8,
    /// Echo with the `script_echo` Luau example of `plugins/` instead of the native `echo` plugin.
    #[arg(long)]
    script: bool,
    /// The `INBOX` modes to measure each size with, in this order: `database` (the durable inbox, on SQLite)
    /// and `memory`; the table compares them.
    #[arg(long, value_delimiter = ',', default_value = "database,memory")]
    inbox: Vec<InboxMode>,
    /// Leave out the baseline (the bare echo loop run before multibot on every size).
    #[arg(long)]
    no_baseline: bool,
    /// Speak HTTP/2 to the emulator (multibot with `TELEGRAM_API_HTTP=2`, the bare loop with prior knowledge;
    /// both in groups of 50 bots) instead of HTTP/1.1.
    #[arg(long)]
    http2: bool,
}

/// An `INBOX` setting of the child.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum InboxMode {
    Database,
    Memory,
}

impl InboxMode {
    fn as_str(self) -> &'static str {
        match self {
            InboxMode::Database => "database",
            InboxMode::Memory => "memory",
        }
    }
}

/// What runs the bots: multibot with an inbox mode, or the baseline.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Subject {
    Multibot(InboxMode),
    Bare,
}

impl Subject {
    /// How the tables name it.
    fn as_str(self) -> &'static str {
        match self {
            Subject::Multibot(inbox) => inbox.as_str(),
            Subject::Bare => "bare loop",
        }
    }
}

/// How often multibot prunes handled inbox rows (`runtime/inbox/writer.rs`, `PRUNE_EVERY`).
const PRUNE_EVERY_SECONDS: i64 = 5;

/// What "bounded" means for the inbox table at the end of the steady load: a handled row is deleted at the first
/// prune after a poll confirmed it, so what stays is each bot's last handled row (confirmed by its next poll) and
/// at most one prune interval of the load. The bound does not grow with the load's length.
fn inbox_rows_bound(bots: usize, rate: u32) -> i64 {
    bots as i64 + i64::from(rate) * PRUNE_EVERY_SECONDS
}

/// Bots the burst goes to (the first ones of the fleet).
const BURST_BOTS: usize = 10;
/// Pause between "all polling" and the idle window, so that start-up work is not counted as idle.
const SETTLE: Duration = Duration::from_secs(1);

/// One line of the table.
struct Row {
    bots: usize,
    subject: Subject,
    /// Rows in the inbox table when the steady load began and when it ended.
    inbox_rows: Option<(i64, i64)>,
    launch: Launch,
    idle_rss_kib: u64,
    idle_cpu_percent: f64,
    burst: Option<PhaseStats>,
    steady: Option<PhaseStats>,
    after_load: Option<Memory>,
    burst_cpu: Option<BurstCpu>,
    notes: Vec<String>,
}

/// Where the CPU went during the burst, in core-seconds: the child, the emulator's thread, the load generator's.
struct BurstCpu {
    /// From the first message sent to the last reply, seconds.
    wall: f64,
    multibot: f64,
    emulator: f64,
    generator: f64,
}

/// From the spawn until every bot long-polls.
struct Launch {
    elapsed: Duration,
    polling: usize,
    complete: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.rate > 0 && args.seconds > 0, "--rate and --seconds must be positive");
    // Every bot holds a long poll: as many sockets here (the emulator's side) as in the child.
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    let exe = multibot_path()?;
    ensure!(
        exe.exists(),
        "{} not found: build it first with `cargo build --release -p multibot -p multibot-bench`",
        exe.display()
    );
    ensure!(!args.inbox.is_empty(), "--inbox needs at least one of database, memory");
    let mut plan: Vec<(usize, bool)> = args.bots.iter().map(|&n| (n, !args.idle_only)).collect();
    plan.extend(args.idle_bots.iter().map(|&n| (n, false)));
    plan.retain(|&(n, _)| n > 0);
    let plan: Vec<(usize, bool, Subject)> = plan
        .into_iter()
        .flat_map(|(n, full)| {
            let baseline = (!args.no_baseline).then_some(Subject::Bare);
            baseline
                .into_iter()
                .chain(args.inbox.iter().map(|&inbox| Subject::Multibot(inbox)))
                .map(move |s| (n, full, s))
        })
        .collect();
    if let Some(&(largest, _, _)) = plan.iter().max_by_key(|(n, _, _)| *n)
        && (limit as usize) < largest + 1024
    {
        eprintln!("fleet: warning: the open-file limit is {limit}, short of {largest} bots' sockets (+1024)");
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut rows = Vec::new();
    for (bots, full, subject) in plan {
        let plugin = if args.script { "script_echo" } else { "echo" };
        let what = if full { "" } else { ", idle only" };
        match subject {
            Subject::Multibot(inbox) => eprintln!("fleet: {bots} bot(s) with {plugin}, INBOX={}{what}", inbox.as_str()),
            Subject::Bare => eprintln!("fleet: {bots} bot(s) in the bare echo loop{what}"),
        }
        // On SIGINT or SIGTERM the measurement is dropped, and with it the child (killed) and its directory.
        let row = runtime
            .block_on(async {
                tokio::select! {
                    row = measure(&exe, bots, full, subject, &args) => row,
                    signal = interrupted() => Err(anyhow::anyhow!("interrupted by {signal}")),
                }
            })
            .with_context(|| format!("fleet of {bots} bot(s)"))?;
        rows.push(row);
    }
    print_table(&rows, &args);
    Ok(())
}

/// Waits for SIGINT or SIGTERM; returns its name.
pub(crate) async fn interrupted() -> &'static str {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// The emulator on a thread of its own with a current-thread runtime (one core); stopped when dropped.
pub(crate) struct EmulatorThread {
    pub(crate) addr: SocketAddr,
    /// `/proc/<pid>/task/<tid>/stat` of the thread, for its CPU time.
    pub(crate) stat: String,
    shutdown: CancellationToken,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl EmulatorThread {
    /// With the call log off: the fleet bench reads events, never the call log.
    fn start() -> anyhow::Result<EmulatorThread> {
        EmulatorThread::start_with(0)
    }

    /// With a call log of `call_log_capacity` calls (0: none).
    pub(crate) fn start_with(call_log_capacity: usize) -> anyhow::Result<EmulatorThread> {
        let shutdown = CancellationToken::new();
        let server_shutdown = shutdown.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async move {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
                // Thousands of bots connect at once on start: a deep accept queue (the kernel caps it at
                // net.core.somaxconn).
                let listener = socket.listen(4096)?;
                let config = EmulatorConfig {
                    accept_any_token: true,
                    call_log_capacity,
                    event_capacity: 100_000,
                    ..EmulatorConfig::default()
                };
                let emu = Emulator::serve(listener, config, server_shutdown.clone());
                let thread = std::fs::read_link("/proc/thread-self")?;
                ready_tx.send((emu.addr(), format!("/proc/{}/stat", thread.display())))?;
                server_shutdown.cancelled().await;
                emu.stop().await;
                anyhow::Ok(())
            })
        });
        let (addr, stat) = ready_rx.recv().context("the emulator thread failed to start")?;
        Ok(EmulatorThread { addr, stat, shutdown, thread: Some(thread) })
    }
}

impl Drop for EmulatorThread {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One fleet size in a fresh emulator and a fresh multibot process.
async fn measure(exe: &Path, bots: usize, full: bool, subject: Subject, args: &Args) -> anyhow::Result<Row> {
    let emulator = EmulatorThread::start()?;
    let addr = emulator.addr;
    let own_stat = format!("/proc/{}/stat", std::process::id());
    let (machine_before, own_before, measuring_since) =
        (child::machine_busy_seconds()?, child::cpu_seconds(&own_stat)?, Instant::now());
    let api_url = format!("http://{addr}");
    let (mut fleet, spawned_at) = match subject {
        Subject::Multibot(inbox) => Fleet::launch(exe, bots, &api_url, args.script, inbox.as_str(), args.http2)?,
        Subject::Bare => Fleet::launch_bare(bots, &api_url, args.http2)?,
    };
    let mut control = Conn::connect(addr).await?;
    let launch = wait_all_polling(&mut fleet, &mut control, bots, spawned_at).await?;
    eprintln!("fleet:   {} of {bots} polling after {}", launch.polling, duration(launch.elapsed));
    let mut notes = Vec::new();
    if !launch.complete {
        notes.push(format!("only {} of {bots} ever polled", launch.polling));
    }

    tokio::time::sleep(SETTLE).await;
    let window = Duration::from_secs(args.seconds);
    let cpu_before = fleet.cpu_seconds()?;
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let cpu = fleet.cpu_seconds()? - cpu_before;
    let idle_cpu_percent = 100.0 * cpu / started.elapsed().as_secs_f64();
    let idle = fleet.memory()?;
    fleet.check_alive()?;
    // A bot whose long poll just expired is between two getUpdates for a moment: allow 1 % of the fleet.
    let still_polling = count_polling(&mut control).await?;
    if still_polling * 100 < bots * 99 {
        notes.push(format!("{still_polling} of {bots} polling after the idle window"));
    }
    eprintln!("fleet:   idle: {} resident, {idle_cpu_percent:.2} % CPU", mib(idle.rss_kib));

    let (mut burst, mut steady, mut after_load, mut burst_cpu, mut inbox_rows) = (None, None, None, None, None);
    if full {
        let mut observer = Observer::connect(addr).await?;
        let burst_bots: Vec<usize> = (0..bots.min(BURST_BOTS)).collect();
        if burst_bots.len() < BURST_BOTS {
            notes.push(format!("burst: {} bot(s) x {BURST_USERS} users x {BURST_PER_CHAT}", burst_bots.len()));
        }
        let bench_stat = format!("/proc/{}/task/{}/stat", std::process::id(), std::process::id());
        let cpu = |fleet: &Fleet| -> anyhow::Result<[f64; 3]> {
            Ok([fleet.cpu_seconds()?, child::cpu_seconds(&emulator.stat)?, child::cpu_seconds(&bench_stat)?])
        };
        let mut bursts = Vec::with_capacity(usize::from(args.bursts));
        for &phase in &load::BURST_PHASES[..usize::from(args.bursts)] {
            let before = cpu(&fleet)?;
            let stats = load::burst(addr, &mut observer, &burst_bots, phase, BURST_USERS).await?;
            let after = cpu(&fleet)?;
            let used = BurstCpu {
                wall: if stats.per_second > 0.0 { stats.answered as f64 / stats.per_second } else { 0.0 },
                multibot: after[0] - before[0],
                emulator: after[1] - before[1],
                generator: after[2] - before[2],
            };
            eprintln!(
                "fleet:   burst {phase}: {} of {} answered, {:.0} replies/s, p99 {}",
                stats.answered,
                stats.messages,
                stats.per_second,
                micros(stats.p99_us)
            );
            bursts.push((stats, used));
            tokio::time::sleep(SETTLE).await;
        }
        if bursts.len() > 1 {
            let rates: Vec<String> = bursts.iter().map(|(b, _)| format!("{:.0}", b.per_second)).collect();
            notes.push(format!("bursts: {} replies/s (median shown)", rates.join(", ")));
        }
        let (mut lost, mut duplicated, mut out_of_order, mut unexpected) = (0, 0, 0, 0);
        for (b, _) in &bursts {
            (lost, duplicated, out_of_order, unexpected) =
                (lost + b.lost, duplicated + b.duplicated, out_of_order + b.out_of_order, unexpected + b.unexpected);
        }
        // The CPU of all bursts, per burst: steadier than the median burst's alone.
        let n = bursts.len() as f64;
        let mean = |part: fn(&BurstCpu) -> f64| bursts.iter().map(|(_, used)| part(used)).sum::<f64>() / n;
        burst_cpu = Some(BurstCpu {
            wall: mean(|u| u.wall),
            multibot: mean(|u| u.multibot),
            emulator: mean(|u| u.emulator),
            generator: mean(|u| u.generator),
        });
        bursts.sort_by(|(a, _), (b, _)| a.per_second.total_cmp(&b.per_second));
        let (median, _) = bursts.swap_remove(bursts.len() / 2);
        let stats = PhaseStats { lost, duplicated, out_of_order, unexpected, ..median };
        if stats.unexpected > 0 {
            notes.push(format!("burst: {} unexpected replies", stats.unexpected));
        }
        burst = Some(stats);
        fleet.check_alive()?;

        let rows_before = fleet.inbox_rows().await?;
        let stats = load::steady(addr, &mut observer, bots, args.rate, args.seconds).await?;
        if let (Some(before), Some(after)) = (rows_before, fleet.inbox_rows().await?) {
            inbox_rows = Some((before, after));
        }
        eprintln!("fleet:   steady: {} of {} answered, p99 {}", stats.answered, stats.messages, micros(stats.p99_us));
        for (count, what) in [
            (stats.lost, "lost"),
            (stats.duplicated, "duplicated"),
            (stats.out_of_order, "out of order"),
            (stats.unexpected, "unexpected"),
        ] {
            if count > 0 {
                notes.push(format!("steady: {count} {what}"));
            }
        }
        steady = Some(stats);
        fleet.check_alive()?;
        after_load = Some(fleet.memory()?);
    }

    // Anything else running (a build, say) takes cores from the emulator and the fleet: say so next to the row.
    let others = child::machine_busy_seconds()?
        - machine_before
        - fleet.cpu_seconds()?
        - (child::cpu_seconds(&own_stat)? - own_before);
    let others_percent = 100.0 * others / measuring_since.elapsed().as_secs_f64();
    if others_percent > 5.0 {
        notes.push(format!("other processes used {others_percent:.0} % of a core meanwhile"));
    }
    let logged = fleet.log_lines();
    if !logged.is_empty() {
        notes.push(format!("{} warning/error log line(s)", logged.len()));
        for line in logged.iter().take(3) {
            eprintln!("fleet:   multibot logged: {line}");
        }
    }
    drop(fleet);
    drop(emulator);
    Ok(Row {
        bots,
        subject,
        inbox_rows,
        launch,
        idle_rss_kib: idle.rss_kib,
        idle_cpu_percent,
        burst,
        steady,
        after_load,
        burst_cpu,
        notes,
    })
}

/// Polls `GET /control/bots` until all `bots` long-poll, the child exits, or a deadline passes.
async fn wait_all_polling(
    fleet: &mut Fleet,
    control: &mut Conn,
    bots: usize,
    spawned_at: Instant,
) -> anyhow::Result<Launch> {
    let deadline = spawned_at + Duration::from_secs(30) + Duration::from_millis(10) * bots as u32;
    // The listing grows with the fleet (about 130 bytes a bot): ask less often for large fleets, so that the
    // asking does not slow the start it measures.
    let every = Duration::from_millis(5).max(Duration::from_micros(5 * bots as u64));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut polling = 0;
    loop {
        ticks.tick().await;
        fleet.check_alive()?;
        polling = polling.max(count_polling(control).await?);
        let now = Instant::now();
        if polling >= bots || now >= deadline {
            return Ok(Launch { elapsed: now - spawned_at, polling, complete: polling >= bots });
        }
    }
}

/// How many bots wait in getUpdates now.
pub(crate) async fn count_polling(control: &mut Conn) -> anyhow::Result<usize> {
    let answer = control.get("/control/bots").await?;
    ensure!(answer.status == 200, "GET /control/bots: {}", answer.status);
    let needle = br#""polling":true"#;
    Ok(answer.body.windows(needle.len()).filter(|w| w == needle).count())
}

pub(crate) fn micros(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

pub(crate) fn duration(d: Duration) -> String {
    micros(d.as_micros() as u64)
}

pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn print_table(rows: &[Row], args: &Args) {
    println!(
        "| bots | run | launch → all polling | burst replies/s | burst p50 | burst p99 | lost | dup | out of order | steady p50 | steady p99 | inbox rows (steady start → end) | RSS idle | CPU idle | RSS after load (peak) | notes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let launch = if row.launch.complete {
            duration(row.launch.elapsed)
        } else {
            format!("> {}", duration(row.launch.elapsed))
        };
        let (rate, b50, b99, lost, dup, ooo) = match &row.burst {
            Some(b) => (
                format!("{:.0}", b.per_second),
                micros(b.p50_us),
                micros(b.p99_us),
                b.lost.to_string(),
                b.duplicated.to_string(),
                b.out_of_order.to_string(),
            ),
            None => Default::default(),
        };
        let (s50, s99) = match &row.steady {
            Some(s) => (micros(s.p50_us), micros(s.p99_us)),
            None => Default::default(),
        };
        let after = row.after_load.map(|m| format!("{} ({})", mib(m.rss_kib), mib(m.peak_kib))).unwrap_or_default();
        let rows = row.inbox_rows.map(|(before, after)| format!("{before} → {after}")).unwrap_or_default();
        println!(
            "| {} | {} | {launch} | {rate} | {b50} | {b99} | {lost} | {dup} | {ooo} | {s50} | {s99} | {rows} | {} | {:.2} % | {after} | {} |",
            row.bots,
            row.subject.as_str(),
            mib(row.idle_rss_kib),
            row.idle_cpu_percent,
            row.notes.join("; "),
        );
    }
    println!();
    println!(
        "Bots speak {} to the emulator. Burst: {BURST_BOTS} bots x {BURST_USERS} users x {BURST_PER_CHAT} \
         messages at once over 64 connections, {} time(s), the median shown. Steady: {} messages/s for {} s over \
         every bot, 100 users each. Idle: {} s with no traffic.",
        if args.http2 { "HTTP/2 (in groups of 50 bots)" } else { "HTTP/1.1" },
        args.bursts,
        args.rate,
        args.seconds,
        args.seconds
    );
    println!();
    print_targets(rows, args.rate);
    if rows.iter().any(|r| r.burst_cpu.is_some()) {
        println!();
        println!(
            "Where the burst went: CPU in core-seconds from its start until the last reply plus 0.5 s (2 cores), the mean"
        );
        println!("of the bursts (the first message → last reply column too);");
        println!("Bot API calls and getUpdates hand-outs as the emulator counted them.");
        println!();
        println!(
            "| bots | run | injecting | first message → last reply | multibot CPU | emulator thread CPU | load generator CPU | multibot CPU per reply | Bot API calls per reply | hand-outs per update |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for row in rows {
            if let (Some(c), Some(b)) = (&row.burst_cpu, &row.burst) {
                let per_reply = |x: f64| x / b.answered.max(1) as f64;
                println!(
                    "| {} | {} | {:.2} s | {:.2} s | {:.2} | {:.2} | {:.2} | {:.0} µs | {:.2} | {:.2} |",
                    row.bots,
                    row.subject.as_str(),
                    b.injection_seconds,
                    c.wall,
                    c.multibot,
                    c.emulator,
                    c.generator,
                    1e6 * per_reply(c.multibot),
                    per_reply(b.counters.calls as f64),
                    b.counters.deliveries as f64 / b.counters.updates_delivered.max(1) as f64,
                );
            }
        }
    }
}

/// The targets, each next to what was measured; reported, never enforced.
fn print_targets(rows: &[Row], rate: u32) {
    const DATABASE: Subject = Subject::Multibot(InboxMode::Database);
    // Each figure is named by its fleet size and what ran it.
    let label = |r: &Row| format!("{} bots ({})", r.bots, r.subject.as_str());
    let durable: Vec<&Row> = rows.iter().filter(|r| r.subject == DATABASE).collect();
    let multibot: Vec<&Row> = rows.iter().filter(|r| r.subject != Subject::Bare).collect();
    let burst_of = |r: &Row, subject: Subject| {
        rows.iter().find(|o| o.bots == r.bots && o.subject == subject).and_then(|o| o.burst.as_ref())
    };
    // multibot's burst against the bare loop's, and the durable inbox's against the in-memory one's, per size
    // whose burst is full (10 bots).
    let share = |of: Subject| -> Vec<(usize, f64)> {
        durable
            .iter()
            .filter(|r| r.bots >= BURST_BOTS)
            .filter_map(|r| {
                let (mine, theirs) = (r.burst.as_ref()?.per_second, burst_of(r, of)?.per_second);
                (theirs > 0.0).then_some((r.bots, mine / theirs))
            })
            .collect()
    };
    let (of_bare, of_memory) = (share(Subject::Bare), share(Subject::Multibot(InboxMode::Memory)));
    let all_bursts: Vec<(String, &PhaseStats)> =
        rows.iter().filter_map(|r| r.burst.as_ref().map(|b| (label(r), b))).collect();
    let cpu_per_reply: Vec<(String, f64)> = durable
        .iter()
        .filter_map(|r| {
            let (cpu, burst) = (r.burst_cpu.as_ref()?, r.burst.as_ref()?);
            Some((label(r), 1e6 * cpu.multibot / burst.answered.max(1) as f64))
        })
        .collect();
    let steady: Vec<(String, &PhaseStats)> =
        multibot.iter().filter_map(|r| r.steady.as_ref().map(|s| (label(r), s))).collect();
    let hand_outs: Vec<(String, f64)> = durable
        .iter()
        .filter_map(|r| {
            let counters = &r.burst.as_ref()?.counters;
            Some((label(r), counters.deliveries as f64 / counters.updates_delivered.max(1) as f64))
        })
        .collect();
    let inbox_rows: Vec<(String, i64, i64)> = rows
        .iter()
        .filter_map(|r| r.inbox_rows.map(|(_, after)| (label(r), after, inbox_rows_bound(r.bots, rate))))
        .collect();
    let sized = |n: usize| -> Vec<&Row> { multibot.iter().copied().filter(|r| r.bots == n).collect() };
    let percent = |shares: &[(usize, f64)]| -> Vec<String> {
        shares.iter().map(|(n, share)| format!("{n} bots: {:.0} %", 100.0 * share)).collect()
    };
    let mut lines: Vec<(String, Vec<String>, Option<bool>)> = Vec::new();
    lines.push((
        "burst of 10 bots, durable inbox: replies/s at least 80 % of the bare loop's, same run".into(),
        percent(&of_bare),
        verdict(of_bare.iter().map(|(_, share)| *share >= 0.8)),
    ));
    lines.push((
        "burst: zero lost, duplicated, out of order".into(),
        all_bursts.iter().map(|(n, b)| format!("{n}: {} / {} / {}", b.lost, b.duplicated, b.out_of_order)).collect(),
        verdict(all_bursts.iter().map(|(_, b)| b.lost + b.duplicated + b.out_of_order == 0)),
    ));
    lines.push((
        "burst, durable inbox: multibot CPU per reply at most 40 µs".into(),
        cpu_per_reply.iter().map(|(n, us)| format!("{n}: {us:.0} µs")).collect(),
        verdict(cpu_per_reply.iter().map(|(_, us)| *us <= 40.0)),
    ));
    lines.push((
        "steady load: latency p99 under 5 ms".into(),
        steady.iter().map(|(n, s)| format!("{n}: {}", micros(s.p99_us))).collect(),
        verdict(steady.iter().map(|(_, s)| s.p99_us < 5_000)),
    ));
    lines.push((
        "durable inbox: burst replies/s at least 90 % of INBOX=memory's, same run".into(),
        percent(&of_memory),
        verdict(of_memory.iter().map(|(_, share)| *share >= 0.9)),
    ));
    lines.push((
        "durable inbox: getUpdates hand-outs per update at most 1.1".into(),
        hand_outs.iter().map(|(n, h)| format!("{n}: {h:.2}")).collect(),
        verdict(hand_outs.iter().map(|(_, h)| *h <= 1.1)),
    ));
    lines.push((
        format!(
            "durable inbox: rows at the end of the steady load at most one per bot plus {PRUNE_EVERY_SECONDS} s of the \
             load (the prune interval), whatever its length"
        ),
        inbox_rows.iter().map(|(n, rows, bound)| format!("{n}: {rows} (bound {bound})")).collect(),
        verdict(inbox_rows.iter().map(|(_, rows, bound)| rows <= bound)),
    ));
    let thousand = sized(1000);
    let loaded: Vec<(String, Memory)> = thousand.iter().filter_map(|r| Some((label(r), r.after_load?))).collect();
    lines.push((
        "1,000 bots after the burst and the steady load: under 65 MiB resident".into(),
        loaded.iter().map(|(n, m)| format!("{n}: {}", mib(m.rss_kib))).collect(),
        verdict(loaded.iter().map(|(_, m)| m.rss_kib < 65 * 1024)),
    ));
    let ten_thousand = sized(10_000);
    lines.push((
        "10,000 idle polling bots: under 300 MiB resident".into(),
        ten_thousand.iter().map(|r| format!("{}: {}", label(r), mib(r.idle_rss_kib))).collect(),
        verdict(ten_thousand.iter().map(|r| r.idle_rss_kib < 300 * 1024)),
    ));
    lines.push((
        "10,000 idle polling bots: idle CPU under 2 %".into(),
        ten_thousand.iter().map(|r| format!("{}: {:.2} %", label(r), r.idle_cpu_percent)).collect(),
        verdict(ten_thousand.iter().map(|r| r.idle_cpu_percent < 2.0)),
    ));
    lines.push((
        "10,000 bots: all polling within 3 s of launch".into(),
        ten_thousand.iter().map(|r| format!("{}: {}", label(r), duration(r.launch.elapsed))).collect(),
        verdict(ten_thousand.iter().map(|r| r.launch.complete && r.launch.elapsed < Duration::from_secs(3))),
    ));
    println!("| target | measured | |");
    println!("|---|---|---|");
    for (target, measured, met) in lines {
        let met = match met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "not measured",
        };
        println!("| {target} | {} | {met} |", measured.join("; "));
    }
}

/// Met when every measurement meets the target; `None` when nothing was measured.
fn verdict(results: impl Iterator<Item = bool>) -> Option<bool> {
    results.fold(None, |all, ok| Some(all.unwrap_or(true) && ok))
}

/// Where the `multibot` binary is expected: next to this executable (both built by one `cargo build`).
pub(crate) fn multibot_path() -> anyhow::Result<PathBuf> {
    Ok(std::env::current_exe()?.with_file_name("multibot"))
}
