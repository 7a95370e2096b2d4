//! The replicas benchmark: several real `multibot run` processes sharing one fleet of N echo bots through
//! PostgreSQL leases, against one in-process emulator.
//!
//! ```text
//! cargo build --release -p multibot -p multibot-bench
//! cargo run --release -p multibot-bench -- replicas
//! ```
//!
//! The bench creates a PostgreSQL database of its own (`multibot_bench_<pid>`, dropped at the end), writes N bot
//! files, and starts R replicas at once, each with its own `REPLICA_ID` and `HEALTH_CHECK_PORT` and the same
//! `DATABASE_URL`, bot files and `LEASE_TTL_SECONDS`. It then measures, in this order:
//!
//! 1. **spread**: from the spawns until every bot has a live lease, until the leases are spread evenly (N/R each,
//!    one more for the first N mod R), and until the emulator sees every bot long-polling;
//! 2. **idle**: once every replica's CPU has settled, each one's CPU over an idle window and its resident memory;
//! 3. **burst** with R replicas: a burst to bots spread evenly over the replicas;
//! 4. **failover**, `--kills` times: `kill -9` of one replica (in turn), then from the kill until every bot it held
//!    has polled again from another replica (the emulator's listing of waiting polls, or its call log), split into
//!    lease expiry (the `bot_leases` rows' `expires_at`), the taking replicas' rounds (when the new owners' leases
//!    were taken) and the bots' start; then a replica with a new `REPLICA_ID` is started in its place and the time until the fleet is even
//!    again and every bot polls;
//! 5. **one replica**: SIGTERM to every replica, one fresh replica started alone, its idle memory, and the same
//!    burst to the same bots.
//!
//! The 409s the emulator answered to getUpdates over the whole run are sorted by cause (see [`watch::Conflicts`]).
//! `--stall-leases-ms` locks the `bot_leases` table during the bursts, as a slow database would stall the rounds.
//!
//! - `process`: the bot files, the database and the replica processes;
//! - `watch`: the `bot_leases` table and the emulator's call log.

mod process;
mod watch;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, ensure};
use process::{Database, FleetDir, Replica};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use watch::{CallLog, Conflicts, Leases, balanced, counts, polling_bots};

use crate::{
    fleet::{
        EmulatorThread, count_polling, duration, interrupted,
        load::{self, BURST_PER_CHAT, Observer, PhaseStats},
        mib, micros, multibot_path,
    },
    http::Conn,
};

/// Progress on stderr, with the seconds since the bench started.
macro_rules! say {
    ($($arg:tt)*) => {
        eprintln!("replicas: [{:6.1} s] {}", bench_started().elapsed().as_secs_f64(), format!($($arg)*))
    };
}

/// When the bench started (the first call).
fn bench_started() -> Instant {
    static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *STARTED.get_or_init(Instant::now)
}

/// Options of the replicas benchmark.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Bots in the fleet, shared by every replica.
    #[arg(long, default_value_t = 3000)]
    bots: usize,
    /// Replicas (`multibot run` processes) sharing the fleet.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(2..=16))]
    replicas: u16,
    /// Times a replica is killed with SIGKILL (each in turn) and replaced.
    #[arg(long, default_value_t = 10)]
    kills: usize,
    /// `LEASE_TTL_SECONDS` of every replica, in seconds (6 as shipped).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=300))]
    lease_ttl: u64,
    /// Bots the burst goes to, spread evenly over the replicas; the same bots for one replica.
    #[arg(long, default_value_t = 12)]
    burst_bots: usize,
    /// Users per burst bot, each writing 10 messages at once.
    #[arg(long, default_value_t = 100)]
    burst_users: u16,
    /// Bursts per configuration, one after the other; the table shows the median one.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=5))]
    bursts: u8,
    /// Seconds of the idle window before memory and CPU are read.
    #[arg(long, default_value_t = 5)]
    idle_seconds: u64,
    /// During every burst, lock the `bot_leases` table for this many milliseconds every that + 500 ms (0: never),
    /// as a slow database would stall the replicas' lease rounds (a round waits at most a quarter of the ttl).
    #[arg(long, default_value_t = 0)]
    stall_leases_ms: u64,
    /// Start the replicas on an empty database, each migrating it at start (as replicas of a new deployment
    /// do), instead of running `multibot migrate` once before them. On PostgreSQL that races: see the notes.
    #[arg(long)]
    concurrent_migrations: bool,
    /// The PostgreSQL server; the bench creates a database of its own there and drops it at the end.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
}

/// The letters of the bursts' messages with R replicas, and with one: distinct, so that a late reply of one
/// configuration is never taken for the other's.
const PHASES_REPLICATED: [char; 5] = ['a', 'b', 'c', 'd', 'e'];
const PHASES_SOLO: [char; 5] = ['f', 'g', 'h', 'i', 'j'];
/// Calls the emulator keeps in its log: far more than a run makes (the bench reads getUpdates calls as it goes).
const CALL_LOG: usize = 2_000_000;
/// How often the bench looks at the leases, the call log and the polls while it waits.
const TICK: Duration = Duration::from_millis(50);
/// A pause after each phase, so that its tail is not counted in the next.
const SETTLE: Duration = Duration::from_secs(1);
/// A getUpdates for a killed replica's bot that arrives this long after the kill comes from another replica (the
/// killed one's last requests arrive within a millisecond; its leases last at least 3/4 of a ttl of 1 s).
const FROM_ANOTHER_MS: u64 = 250;
/// A replica is quiet when a second of its CPU stays under this share of a core.
const QUIET_PERCENT: f64 = 5.0;
/// The longest wait for the replicas to be quiet before the idle window.
const QUIET_WAIT: Duration = Duration::from_secs(30);

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let replicas = usize::from(args.replicas);
    ensure!(args.bots >= replicas, "--bots must be at least --replicas");
    ensure!(args.burst_bots >= 1 && args.burst_bots <= args.bots, "--burst-bots must be between 1 and --bots");
    ensure!(args.burst_users >= 1 && args.idle_seconds >= 1, "--burst-users and --idle-seconds must be positive");
    // Every bot holds a long poll: as many sockets in the emulator (this process) as in the replicas together.
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    if (limit as usize) < args.bots + 1024 {
        eprintln!("replicas: warning: the open-file limit is {limit}, short of {} bots' sockets (+1024)", args.bots);
    }
    let exe = multibot_path()?;
    ensure!(
        exe.exists(),
        "{} not found: build it first with `cargo build --release -p multibot -p multibot-bench`",
        exe.display()
    );
    let started = bench_started();
    let load_before = load_average();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // On SIGINT or SIGTERM the run is dropped, and with it the replicas (killed), the files and the database.
    let report = runtime.block_on(async {
        tokio::select! {
            report = Run::measure(exe, &args) => report,
            signal = interrupted() => Err(anyhow::anyhow!("interrupted by {signal}")),
        }
    })?;
    let load = format!("load average (1 min) {load_before} at the start, {} at the end", load_average());
    print_report(&report, &args, started.elapsed(), &load);
    Ok(())
}

/// The 1-minute load average, as `/proc/loadavg` says: how busy the shared machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

/// Unix time in milliseconds, the clock of the emulator's call log and of PostgreSQL on this machine.
fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Everything a run holds; dropped in this order: the replicas (killed), the reader of the leases, the files,
/// the database, the emulator.
struct Run<'a> {
    replicas: Vec<Replica>,
    leases: Leases,
    calls: CallLog,
    control: Conn,
    observer: Observer,
    dir: FleetDir,
    _db: Database,
    emulator: EmulatorThread,
    exe: PathBuf,
    db_url: String,
    started_ms: u64,
    args: &'a Args,
    /// The lines each replica logged (warnings and errors), by `REPLICA_ID`, collected when it goes.
    logs: Vec<(String, Vec<String>)>,
    notes: Vec<String>,
}

/// From the spawns until the fleet is spread.
#[derive(Default)]
struct Spread {
    /// Until every bot had a live lease.
    leased: Option<Duration>,
    /// Until the leases were spread evenly over the replicas.
    even: Option<Duration>,
    /// Until, spread evenly, every bot long-polled in the emulator.
    polling: Option<Duration>,
    /// Live leases per replica at the end.
    counts: BTreeMap<String, usize>,
    /// The most live leases each replica held at once while spreading (as sampled).
    peaks: BTreeMap<String, usize>,
    /// Changes of hands while spreading: the tokens' sum beyond one per bot.
    handovers: i64,
}

/// One replica's idle reading.
struct Idle {
    /// From the end of the previous phase until a second of every replica's CPU stayed under
    /// [`QUIET_PERCENT`] (the tail of starting its bots); `None` if not within [`QUIET_WAIT`].
    quiet_after: Option<Duration>,
    id: String,
    bots: usize,
    rss_kib: u64,
    peak_kib: u64,
    cpu_percent: f64,
}

/// The bursts of one configuration.
struct Bursts {
    /// Replies/s of each burst, in order.
    rates: Vec<f64>,
    /// The median burst, with the losses, duplicates and reorderings of them all.
    median: PhaseStats,
}

/// One kill and what followed.
struct Kill {
    victim: String,
    /// Bots it held.
    bots: usize,
    /// From the kill until the last of its leases expired (the server's `expires_at`).
    expired_ms: Option<i64>,
    /// From the kill until the last of its bots was taken by another replica (the new lease's `expires_at` - ttl).
    taken_ms: Option<i64>,
    /// From the kill until the first and the last of its bots polled again (the emulator's call log).
    first_poll_ms: Option<u64>,
    last_poll_ms: Option<u64>,
    /// Of its bots, those whose time is the exact arrival of their first poll (the others': the listing's).
    exact: usize,
    /// Its bots that never polled again before the deadline.
    missing: usize,
    /// Which replicas took how many of its bots, and when the last of them (ms after the kill).
    takers: BTreeMap<String, (usize, i64)>,
    /// The replica started in its place.
    replacement: String,
    /// From the replacement's spawn until the fleet was even again and every bot polled.
    respread: Option<Duration>,
}

/// When each of a killed replica's bots polled again: the arrival of its first getUpdates after the kill (from
/// the call log: `exact`) or, until that call is logged, when the listing first showed it waiting in one.
#[derive(Default)]
struct Polled {
    at: HashMap<usize, u64>,
    exact: HashSet<usize>,
}

/// What a run measured.
struct Report {
    spread: Spread,
    idle: Vec<Idle>,
    replicated: Bursts,
    /// The burst bots on each replica.
    burst_spread: BTreeMap<String, usize>,
    kills: Vec<Kill>,
    /// From SIGTERM to every replica until the last one exited.
    stopped: Duration,
    /// From the lone replica's spawn until it held every bot and every bot polled.
    solo_launch: Option<Duration>,
    solo_idle: Idle,
    solo: Bursts,
    conflicts: Conflicts,
    /// When the run started, Unix milliseconds.
    started_ms: u64,
    /// What the call log counted in each phase, in order.
    phases: Vec<(&'static str, Conflicts)>,
    calls: u64,
    logs: Vec<(String, Vec<String>)>,
    notes: Vec<String>,
}

impl<'a> Run<'a> {
    async fn measure(exe: PathBuf, args: &'a Args) -> anyhow::Result<Report> {
        let emulator = EmulatorThread::start_with(CALL_LOG)?;
        let db = Database::create(&args.postgres).await?;
        let dir = FleetDir::create(args.bots, &format!("http://{}", emulator.addr), &db.url, args.lease_ttl)?;
        let mut notes = Vec::new();
        if args.concurrent_migrations {
            notes.push("the replicas started on an empty database and migrated it at start".to_owned());
        } else {
            // Replicas that start together on an empty database race to create sqlx's `_sqlx_migrations` table
            // (before the migrator's advisory lock): all but one may exit with "duplicate key value violates
            // unique constraint pg_type_typname_nsp_index". Migrate once first.
            process::migrate(&exe, &db.url)?;
            notes.push("the database was migrated by `multibot migrate` before the replicas started".to_owned());
        }
        let mut run = Run {
            replicas: Vec::new(),
            leases: Leases::connect(&db.url).await?,
            calls: CallLog::connect(emulator.addr).await?,
            control: Conn::connect(emulator.addr).await?,
            observer: Observer::connect(emulator.addr).await?,
            dir,
            db_url: db.url.clone(),
            started_ms: unix_ms() - bench_started().elapsed().as_millis() as u64,
            _db: db,
            emulator,
            exe,
            args,
            logs: Vec::new(),
            notes,
        };
        let report = run.phases().await;
        run.replicas.clear();
        run.leases.close().await;
        report
    }

    async fn phases(&mut self) -> anyhow::Result<Report> {
        let (n, r) = (self.args.bots, usize::from(self.args.replicas));
        let (mut marks, mut last) = (Vec::new(), Conflicts::default());
        say!("{n} bots over {r} replicas, LEASE_TTL_SECONDS={}", self.args.lease_ttl);
        let spread = self.spread().await?;
        say!(
            "spread: every bot leased after {}, even after {}, all polling after {}: {:?}",
            maybe(spread.leased),
            maybe(spread.even),
            maybe(spread.polling),
            spread.counts
        );
        ensure!(spread.polling.is_some(), "the fleet never spread: {:?}", spread.counts);
        self.mark("spread", &mut marks, &mut last).await?;
        let idle = self.idle().await?;
        self.mark("idle, R replicas", &mut marks, &mut last).await?;
        for i in &idle {
            say!("{}: {} bots, {} resident, {:.2} % CPU idle", i.id, i.bots, mib(i.rss_kib), i.cpu_percent);
        }

        let burst_bots = self.burst_bots().await?;
        let leases = self.leases.read().await?;
        let mut burst_spread: BTreeMap<String, usize> = counts(&leases).keys().map(|id| (id.clone(), 0)).collect();
        let owners: HashMap<usize, String> = leases.into_iter().filter(|l| l.live).map(|l| (l.bot, l.owner)).collect();
        for bot in &burst_bots {
            *burst_spread.entry(owners.get(bot).cloned().unwrap_or_default()).or_default() += 1;
        }
        let replicated = self.bursts(&burst_bots, &PHASES_REPLICATED, "replicated").await?;
        self.mark("bursts, R replicas", &mut marks, &mut last).await?;

        let mut kills = Vec::with_capacity(self.args.kills);
        for k in 0..self.args.kills {
            let kill = self.failover(k % r, k + 1).await?;
            say!(
                "kill {}: {} ({} bots): leases expired +{}, taken +{}, all polling +{}; {} back in {}",
                k + 1,
                kill.victim,
                kill.bots,
                maybe_ms(kill.expired_ms),
                maybe_ms(kill.taken_ms),
                maybe_ms(kill.last_poll_ms.map(|ms| ms as i64)),
                kill.replacement,
                maybe(kill.respread)
            );
            kills.push(kill);
        }

        self.mark("kills and re-spreads", &mut marks, &mut last).await?;

        // One replica alone: every replica stops (SIGTERM), and a fresh one takes the whole fleet.
        let stopped = self.stop_all().await?;
        say!("every replica stopped {} after SIGTERM", duration(stopped));
        let solo_launch = self.solo().await?;
        say!("one replica: every bot leased and polling after {}", maybe(solo_launch));
        ensure!(solo_launch.is_some(), "the lone replica never took the whole fleet");
        let solo_idle = self.idle().await?.pop().context("no replica")?;
        self.mark("SIGTERM to all; one replica starts, idle", &mut marks, &mut last).await?;
        say!("solo: {} resident, {:.2} % CPU idle", mib(solo_idle.rss_kib), solo_idle.cpu_percent);
        let solo = self.bursts(&burst_bots, &PHASES_SOLO, "one replica").await?;
        self.mark("bursts, one replica", &mut marks, &mut last).await?;
        // Whether anything the bursts left behind goes on once the traffic stops.
        tokio::time::sleep(Duration::from_secs(self.args.idle_seconds)).await;
        self.check_alive()?;
        self.mark("idle after the bursts, one replica", &mut marks, &mut last).await?;

        for replica in std::mem::take(&mut self.replicas) {
            self.logs.push((replica.id.clone(), replica.log_lines()));
        }
        Ok(Report {
            spread,
            idle,
            replicated,
            burst_spread,
            kills,
            stopped,
            solo_launch,
            solo_idle,
            solo,
            conflicts: self.calls.conflicts.clone(),
            phases: marks,
            started_ms: self.started_ms,
            calls: self.calls.calls,
            logs: std::mem::take(&mut self.logs),
            notes: std::mem::take(&mut self.notes),
        })
    }

    /// Ends a phase of the getUpdates tally: reads the call log to now and keeps what it counted since the last
    /// mark.
    async fn mark(
        &mut self,
        phase: &'static str,
        marks: &mut Vec<(&'static str, Conflicts)>,
        last: &mut Conflicts,
    ) -> anyhow::Result<()> {
        self.calls.drain().await?;
        let now = self.calls.conflicts.clone();
        marks.push((phase, now.since(last)));
        *last = now;
        Ok(())
    }

    /// The `REPLICA_ID`s running now.
    fn ids(&self) -> Vec<String> {
        self.replicas.iter().map(|r| r.id.clone()).collect()
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        self.replicas.iter_mut().try_for_each(Replica::check_alive)
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(60 + 3 * self.args.lease_ttl) + Duration::from_millis(20) * self.args.bots as u32
    }

    /// Starts R replicas at once and waits until the fleet is spread evenly and every bot polls.
    async fn spread(&mut self) -> anyhow::Result<Spread> {
        let started = Instant::now();
        for r in 0..self.args.replicas {
            let replica = Replica::spawn(&self.exe, &self.dir, &format!("r{r}"))?;
            self.replicas.push(replica);
        }
        let ids = self.ids();
        let n = self.args.bots;
        let deadline = started + self.deadline();
        let mut spread = Spread::default();
        let mut ticks = every_tick();
        loop {
            ticks.tick().await;
            self.check_alive()?;
            let leases = self.leases.read().await?;
            spread.counts = counts(&leases);
            for (id, &held) in &spread.counts {
                let peak = spread.peaks.entry(id.clone()).or_default();
                *peak = (*peak).max(held);
            }
            let now = started.elapsed();
            if spread.leased.is_none() && spread.counts.values().sum::<usize>() == n {
                spread.leased = Some(now);
            }
            if !balanced(&spread.counts, &ids, n) {
                spread.even = None;
            } else if spread.even.is_none() {
                spread.even = Some(now);
            }
            if spread.even.is_some() && count_polling(&mut self.control).await? >= n {
                spread.polling = Some(started.elapsed());
                spread.handovers = leases.iter().map(|l| l.token - 1).sum();
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        self.calls.drain().await?;
        Ok(spread)
    }

    /// Waits until a second of every replica's CPU stays under [`QUIET_PERCENT`] of a core (at most
    /// [`QUIET_WAIT`]); returns how long that took.
    async fn quiet(&mut self) -> anyhow::Result<Option<Duration>> {
        let started = Instant::now();
        let mut last: Vec<f64> = self.replicas.iter().map(Replica::cpu_seconds).collect::<Result<_, _>>()?;
        while started.elapsed() < QUIET_WAIT {
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.check_alive()?;
            let now: Vec<f64> = self.replicas.iter().map(Replica::cpu_seconds).collect::<Result<_, _>>()?;
            let busy = now.iter().zip(&last).any(|(n, l)| 100.0 * (n - l) >= QUIET_PERCENT);
            last = now;
            if !busy {
                return Ok(Some(started.elapsed()));
            }
        }
        Ok(None)
    }

    /// Once the replicas are quiet, each one's CPU over the idle window and its memory at the end.
    async fn idle(&mut self) -> anyhow::Result<Vec<Idle>> {
        let quiet_after = self.quiet().await?;
        say!("quiet after {}", maybe(quiet_after));
        let before: Vec<f64> = self.replicas.iter().map(Replica::cpu_seconds).collect::<Result<_, _>>()?;
        let started = Instant::now();
        // Each second's CPU on stderr, to see whether the window was idle throughout.
        let mut last = before.clone();
        for _ in 0..self.args.idle_seconds {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now: Vec<f64> = self.replicas.iter().map(Replica::cpu_seconds).collect::<Result<_, _>>()?;
            let shares: Vec<String> = now.iter().zip(&last).map(|(n, l)| format!("{:.0} %", 100.0 * (n - l))).collect();
            say!("  idle second: {}", shares.join(", "));
            last = now;
        }
        let seconds = started.elapsed().as_secs_f64();
        self.check_alive()?;
        let held = counts(&self.leases.read().await?);
        let mut idle = Vec::new();
        for (replica, before) in self.replicas.iter().zip(before) {
            let memory = replica.memory()?;
            idle.push(Idle {
                quiet_after,
                id: replica.id.clone(),
                bots: held.get(&replica.id).copied().unwrap_or(0),
                rss_kib: memory.rss_kib,
                peak_kib: memory.peak_kib,
                cpu_percent: 100.0 * (replica.cpu_seconds()? - before) / seconds,
            });
        }
        self.calls.drain().await?;
        Ok(idle)
    }

    /// `--burst-bots` bots, taken in turn from each replica's (by `REPLICA_ID`, lowest bot numbers first).
    async fn burst_bots(&mut self) -> anyhow::Result<Vec<usize>> {
        let mut by_owner: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for lease in self.leases.read().await?.into_iter().filter(|l| l.live) {
            by_owner.entry(lease.owner).or_default().push(lease.bot);
        }
        by_owner.values_mut().for_each(|bots| bots.sort_unstable());
        let mut chosen = Vec::with_capacity(self.args.burst_bots);
        for round in 0.. {
            let before = chosen.len();
            for bots in by_owner.values() {
                if chosen.len() < self.args.burst_bots
                    && let Some(&bot) = bots.get(round)
                {
                    chosen.push(bot);
                }
            }
            if chosen.len() == self.args.burst_bots || chosen.len() == before {
                break;
            }
        }
        Ok(chosen)
    }

    /// `--bursts` bursts to `bots`, one after the other.
    async fn bursts(&mut self, bots: &[usize], phases: &[char], what: &str) -> anyhow::Result<Bursts> {
        let mut all = Vec::new();
        let logged_before: Vec<usize> = self.replicas.iter().map(|r| r.log_lines().len()).collect();
        let stop_stalling = CancellationToken::new();
        let stalling = (self.args.stall_leases_ms > 0).then(|| {
            let hold = Duration::from_millis(self.args.stall_leases_ms);
            tokio::spawn(watch::stall_leases(self.db_url.clone(), hold, stop_stalling.clone()))
        });
        for &phase in &phases[..usize::from(self.args.bursts)] {
            let stats =
                load::burst(self.emulator.addr, &mut self.observer, bots, phase, i64::from(self.args.burst_users))
                    .await?;
            say!(
                "burst ({what}) {phase}: {} of {} answered, {:.0} replies/s, p99 {}",
                stats.answered,
                stats.messages,
                stats.per_second,
                micros(stats.p99_us)
            );
            all.push(stats);
            self.check_alive()?;
            tokio::time::sleep(SETTLE).await;
        }
        stop_stalling.cancel();
        if let Some(stalling) = stalling {
            let stalls = stalling.await??;
            self.notes.push(format!(
                "during the bursts ({what}) the bench locked bot_leases {stalls} times for {} ms",
                self.args.stall_leases_ms
            ));
        }
        self.calls.drain().await?;
        for (replica, before) in self.replicas.iter().zip(logged_before) {
            let lines = replica.log_lines();
            if lines.len() > before {
                let said: Vec<String> =
                    process::messages(&lines[before..]).iter().map(|(m, n)| format!("\"{m}\" x{n}")).collect();
                self.notes.push(format!("during the bursts ({what}) {} logged {}", replica.id, said.join(", ")));
            }
        }
        let rates = all.iter().map(|s| s.per_second).collect();
        let (lost, duplicated, out_of_order, unexpected) = all
            .iter()
            .fold((0, 0, 0, 0), |(l, d, o, u), s| (l + s.lost, d + s.duplicated, o + s.out_of_order, u + s.unexpected));
        all.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
        let median = all.swap_remove(all.len() / 2);
        Ok(Bursts { rates, median: PhaseStats { lost, duplicated, out_of_order, unexpected, ..median } })
    }

    /// Kills the replica in `slot` with SIGKILL, follows its bots to the others, then starts a replica with a new
    /// `REPLICA_ID` in its place and waits until the fleet is even again.
    async fn failover(&mut self, slot: usize, number: usize) -> anyhow::Result<Kill> {
        let victim = self.replicas[slot].id.clone();
        let ttl_ms = self.args.lease_ttl as i64 * 1000;
        let leases = self.leases.read().await?;
        let bots: HashSet<usize> = leases.iter().filter(|l| l.live && l.owner == victim).map(|l| l.bot).collect();
        let mut expires: HashMap<usize, i64> =
            leases.iter().filter(|l| bots.contains(&l.bot)).map(|l| (l.bot, l.expires_ms)).collect();
        self.calls.drain().await?;
        let kill_ms = unix_ms();
        let killed_at = Instant::now();
        self.replicas[slot].kill9()?;
        self.calls.killed(kill_ms, bots.clone());

        let mut taken: HashMap<usize, (i64, String)> = HashMap::new();
        let mut polled = Polled::default();
        // The killed replica's bots still listed as waiting in getUpdates a little after the kill, before any was
        // taken: its long polls, which the emulator would keep until another replica's poll cuts them short.
        let mut lingering = None;
        let deadline = killed_at + self.deadline();
        let mut ticks = every_tick();
        loop {
            ticks.tick().await;
            for (i, replica) in self.replicas.iter_mut().enumerate() {
                if i != slot {
                    replica.check_alive()?;
                }
            }
            for lease in self.leases.read().await?.into_iter().filter(|l| bots.contains(&l.bot)) {
                if lease.owner == victim {
                    // A renewal it sent just before the kill may still have landed.
                    let latest = expires.entry(lease.bot).or_insert(lease.expires_ms);
                    *latest = (*latest).max(lease.expires_ms);
                } else if lease.live {
                    // Seen within a round of the taking, before any renewal: taken at `expires_at` - ttl.
                    taken.entry(lease.bot).or_insert((lease.expires_ms - ttl_ms, lease.owner));
                }
            }
            // A long poll is logged when it ends (up to 25 s later, or never if its replica abandons it), so the
            // listing of the bots waiting in getUpdates tells first, within a tick; the log's arrival time, when
            // it is there, is exact.
            let seen = unix_ms();
            let waiting = polling_bots(&mut self.control).await?;
            if lingering.is_none() && seen >= kill_ms + FROM_ANOTHER_MS && taken.is_empty() {
                lingering = Some(waiting.iter().filter(|b| bots.contains(b)).count());
            }
            for bot in waiting {
                if bots.contains(&bot) && taken.contains_key(&bot) {
                    polled.at.entry(bot).or_insert(seen);
                }
            }
            self.drain_polls(&bots, kill_ms, &mut polled).await?;
            if (polled.at.len() == bots.len() && taken.len() == bots.len()) || Instant::now() >= deadline {
                break;
            }
        }
        let missing = bots.len() - polled.at.len();
        if missing > 0 {
            let mut never: Vec<usize> = bots.iter().copied().filter(|b| !polled.at.contains_key(b)).collect();
            never.sort_unstable();
            self.notes.push(format!(
                "kill {number}: {missing} of {victim}'s bots never polled again within {} (first: {:?})",
                duration(self.deadline()),
                &never[..never.len().min(5)]
            ));
        }
        if let Some(lingering) = lingering.filter(|&n| n > 0) {
            self.notes.push(format!(
                "kill {number}: {lingering} of {victim}'s bots still listed as long-polling {FROM_ANOTHER_MS} ms after the kill"
            ));
        }

        // A new REPLICA_ID: the old one's leases have all expired by now, but a new name never waits for them.
        let replacement = format!("r{slot}-{number}");
        let old = std::mem::replace(&mut self.replicas[slot], Replica::spawn(&self.exe, &self.dir, &replacement)?);
        self.logs.push((old.id.clone(), old.log_lines()));
        let spawned = Instant::now();
        let ids = self.ids();
        let deadline = spawned + self.deadline();
        let mut respread = None;
        let mut ticks = every_tick();
        loop {
            ticks.tick().await;
            self.check_alive()?;
            // Long polls that began after the kill end meanwhile: their exact arrival times.
            self.drain_polls(&bots, kill_ms, &mut polled).await?;
            let even = balanced(&counts(&self.leases.read().await?), &ids, self.args.bots);
            if even && count_polling(&mut self.control).await? >= self.args.bots {
                respread = Some(spawned.elapsed());
                break;
            }
            if Instant::now() >= deadline {
                let held = counts(&self.leases.read().await?);
                self.notes.push(format!("after kill {number}: the fleet never spread again: {held:?}"));
                break;
            }
        }
        tokio::time::sleep(SETTLE).await;
        self.drain_polls(&bots, kill_ms, &mut polled).await?;

        let since_kill = |at: Option<i64>| at.map(|at| at - kill_ms as i64);
        let mut takers: BTreeMap<String, (usize, i64)> = BTreeMap::new();
        for (at, owner) in taken.values() {
            let (count, last) = takers.entry(owner.clone()).or_insert((0, i64::MIN));
            *count += 1;
            *last = (*last).max(at - kill_ms as i64);
        }
        Ok(Kill {
            victim,
            bots: bots.len(),
            expired_ms: since_kill(expires.values().max().copied()),
            taken_ms: since_kill(taken.values().map(|(at, _)| *at).max()),
            first_poll_ms: polled.at.values().min().map(|at| at - kill_ms),
            last_poll_ms: polled.at.values().max().map(|at| at - kill_ms),
            exact: polled.exact.len(),
            missing,
            takers,
            replacement,
            respread,
        })
    }

    /// Reads the call log; the first getUpdates of each of `bots` that arrived after the kill at `kill_ms`.
    async fn drain_polls(&mut self, bots: &HashSet<usize>, kill_ms: u64, polled: &mut Polled) -> anyhow::Result<()> {
        for poll in self.calls.drain().await? {
            if bots.contains(&poll.bot) && poll.at_ms >= kill_ms + FROM_ANOTHER_MS {
                let at = polled.at.entry(poll.bot).or_insert(poll.at_ms);
                if poll.at_ms <= *at {
                    *at = poll.at_ms;
                    polled.exact.insert(poll.bot);
                }
            }
        }
        Ok(())
    }

    /// SIGTERM to every replica at once; waits until all have exited.
    async fn stop_all(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        for replica in &self.replicas {
            replica.signal_term()?;
        }
        for mut replica in std::mem::take(&mut self.replicas) {
            match replica.wait_exit(Duration::from_secs(60)).await? {
                Some(status) if status.success() => {}
                Some(status) => self.notes.push(format!("{} exited with {status} after SIGTERM", replica.id)),
                None => self.notes.push(format!("{} had not exited 60 s after SIGTERM: killed", replica.id)),
            }
            self.logs.push((replica.id.clone(), replica.log_lines()));
        }
        let stopped = started.elapsed();
        self.calls.drain().await?;
        Ok(stopped)
    }

    /// Starts one replica alone and waits until it holds every bot and every bot polls.
    async fn solo(&mut self) -> anyhow::Result<Option<Duration>> {
        let spawned = Instant::now();
        self.replicas.push(Replica::spawn(&self.exe, &self.dir, "solo")?);
        let ids = self.ids();
        let deadline = spawned + self.deadline();
        let mut ticks = every_tick();
        loop {
            ticks.tick().await;
            self.check_alive()?;
            let even = balanced(&counts(&self.leases.read().await?), &ids, self.args.bots);
            if even && count_polling(&mut self.control).await? >= self.args.bots {
                self.calls.drain().await?;
                return Ok(Some(spawned.elapsed()));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }
}

fn every_tick() -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks
}

fn maybe(d: Option<Duration>) -> String {
    d.map_or_else(|| "never".into(), duration)
}

fn maybe_ms(ms: Option<i64>) -> String {
    ms.map_or_else(|| "never".into(), seconds_ms)
}

fn seconds_ms(ms: i64) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

/// Nearest-rank percentile (0 when empty).
fn percentile(values: &[i64], q: f64) -> Option<i64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

fn print_report(report: &Report, args: &Args, took: Duration, load: &str) {
    let (n, r, ttl) = (args.bots, usize::from(args.replicas), args.lease_ttl);
    let machine = machine_facts();
    println!(
        "Replicas: {n} echo bots, {r} replicas, LEASE_TTL_SECONDS={ttl} (rounds every {} ms); {machine}.",
        ttl * 250
    );
    println!();
    println!("Spread, from spawning {r} replicas at once:");
    println!();
    println!(
        "| bots | replicas | lease ttl | → every bot leased | → spread evenly | → every bot polling | bots per replica | most held at once while spreading | lease changes of hands while spreading |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let s = &report.spread;
    let per_replica: Vec<String> = s.counts.iter().map(|(id, n)| format!("{id}: {n}")).collect();
    let peaks: Vec<String> = s.peaks.iter().map(|(id, n)| format!("{id}: {n}")).collect();
    println!(
        "| {n} | {r} | {ttl} s | {} | {} | {} | {} | {} | {} |",
        maybe(s.leased),
        maybe(s.even),
        maybe(s.polling),
        per_replica.join(", "),
        peaks.join(", "),
        s.handovers
    );
    println!();
    println!(
        "Memory and CPU once spread and idle: from every bot polling until a second of every replica's CPU stays \
         under {QUIET_PERCENT} % of a core (the tail of starting the bots), then a {} s window; `VmRSS` at its end, \
         and `VmHWM`, the peak since the process started:",
        args.idle_seconds
    );
    println!();
    println!("| replica | bots held | CPU settled after | RSS idle | RSS peak | CPU idle |");
    println!("|---|---|---|---|---|---|");
    for i in &report.idle {
        println!(
            "| {} | {} | {} | {} | {} | {:.2} % |",
            i.id,
            i.bots,
            maybe(i.quiet_after),
            mib(i.rss_kib),
            mib(i.peak_kib),
            i.cpu_percent
        );
    }
    let (rss, cpu): (u64, f64) = report.idle.iter().fold((0, 0.0), |(m, c), i| (m + i.rss_kib, c + i.cpu_percent));
    println!("| all {r} | {n} | | {} | | {cpu:.2} % |", mib(rss));
    let solo = &report.solo_idle;
    println!(
        "| one replica alone (at the end) | {} | {} | {} | {} | {:.2} % |",
        solo.bots,
        maybe(solo.quiet_after),
        mib(solo.rss_kib),
        mib(solo.peak_kib),
        solo.cpu_percent
    );
    println!();

    println!(
        "Failover: `kill -9` of one replica (in turn), then a replica with a new `REPLICA_ID` started in its place. \
         Times from the kill: until the last of its leases expired (`expires_at`: its last renewal + ttl), until the \
         last of its bots was taken by a survivor (`expires_at` of the new lease - ttl), until the last of its bots \
         polled again (its first getUpdates after the kill: the arrival the emulator's call log records, or, for a \
         long poll not yet ended, when `GET /control/bots` first listed it waiting, within a {} ms tick; \
         \"exact\" counts the former):",
        TICK.as_millis()
    );
    println!();
    println!(
        "| kill | killed | its bots | → leases expired | → all taken | → first bot polling | → all polling again | exact | taken by | never back | replacement | its spawn → even again, all polling |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (i, k) in report.kills.iter().enumerate() {
        let takers: Vec<String> =
            k.takers.iter().map(|(id, (n, last))| format!("{id}: {n} (last {})", seconds_ms(*last))).collect();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            k.victim,
            k.bots,
            maybe_ms(k.expired_ms),
            maybe_ms(k.taken_ms),
            maybe_ms(k.first_poll_ms.map(|ms| ms as i64)),
            maybe_ms(k.last_poll_ms.map(|ms| ms as i64)),
            k.exact,
            takers.join(", "),
            k.missing,
            k.replacement,
            maybe(k.respread)
        );
    }
    println!();
    let complete: Vec<&Kill> = report.kills.iter().filter(|k| k.missing == 0 && k.last_poll_ms.is_some()).collect();
    let total: Vec<i64> = complete.iter().filter_map(|k| k.last_poll_ms.map(|ms| ms as i64)).collect();
    let expiry: Vec<i64> = complete.iter().filter_map(|k| k.expired_ms).collect();
    let round: Vec<i64> = complete.iter().filter_map(|k| Some(k.taken_ms? - k.expired_ms?)).collect();
    let start: Vec<i64> = complete.iter().filter_map(|k| Some(k.last_poll_ms? as i64 - k.taken_ms?)).collect();
    let respread: Vec<i64> = report.kills.iter().filter_map(|k| k.respread.map(|d| d.as_millis() as i64)).collect();
    let never: usize = report.kills.iter().map(|k| k.missing).sum();
    let cell = |values: &[i64], q: f64| percentile(values, q).map_or_else(|| "-".into(), seconds_ms);
    println!(
        "| lease ttl | kills | kill → all its bots polling again, p50 | max | of which lease expiry (kill → last lease expired), p50 / max | survivors' round (→ last taken), p50 / max | bots' start (→ last polling), p50 / max | re-spread after the replacement's spawn, p50 / max | bots never back |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {ttl} s | {} | {} | {} | {} / {} | {} / {} | {} / {} | {} / {} | {never} |",
        report.kills.len(),
        cell(&total, 0.5),
        cell(&total, 1.0),
        cell(&expiry, 0.5),
        cell(&expiry, 1.0),
        cell(&round, 0.5),
        cell(&round, 1.0),
        cell(&start, 0.5),
        cell(&start, 1.0),
        cell(&respread, 0.5),
        cell(&respread, 1.0),
    );
    println!();

    let burst_spread: Vec<String> = report.burst_spread.iter().map(|(id, n)| format!("{id}: {n}")).collect();
    println!(
        "Burst: {} bots ({}) x {} users x {BURST_PER_CHAT} messages at once over 64 connections, {} time(s) per \
         configuration, the median shown; the same bots with {r} replicas (after the spread) and with one replica \
         alone (at the end). On this machine ({machine}) every process shares the same cores, so this shows what \
         replication costs, not how it scales:",
        args.burst_bots,
        burst_spread.join(", "),
        args.burst_users,
        args.bursts
    );
    println!();
    println!("| replicas | messages | bursts (replies/s) | median replies/s | p50 | p99 | lost / dup / out of order |");
    println!("|---|---|---|---|---|---|---|");
    for (label, b) in [(format!("{r}"), &report.replicated), ("1".to_owned(), &report.solo)] {
        let rates: Vec<String> = b.rates.iter().map(|x| format!("{x:.0}")).collect();
        let m = &b.median;
        println!(
            "| {label} | {} | {} | {:.0} | {} | {} | {} / {} / {} |",
            m.messages,
            rates.join(", "),
            m.per_second,
            micros(m.p50_us),
            micros(m.p99_us),
            m.lost,
            m.duplicated,
            m.out_of_order
        );
    }
    println!();
    if report.solo.median.per_second > 0.0 {
        println!(
            "{r} replicas / 1 replica, burst replies/s, same run: **{:.2}** (overhead of replication on {machine}; \
             not a measure of scaling).",
            report.replicated.median.per_second / report.solo.median.per_second
        );
        println!();
    }

    let c = &report.conflicts;
    println!("getUpdates calls in the emulator's log over the run, and its 409 answers by cause:");
    println!();
    println!(
        "| getUpdates calls | 409: a stopping replica's own long poll | 409: a killed replica's long poll, cut short by the new owner | 409: other (a poll cut short by another, neither of those) | other errors |"
    );
    println!("|---|---|---|---|---|");
    println!("| {} | {} | {} | {} | {} |", report.calls, c.own, c.dead, c.other, c.failed);
    println!();
    println!(
        "By phase (the bots: how many had a first 409 of the last kind in that phase; with one replica, such a 409 \
         means two polls of one bot from the same process):"
    );
    println!();
    println!("| phase | getUpdates calls | 409 own | 409 killed replica's | 409 other (bots) | other errors |");
    println!("|---|---|---|---|---|---|");
    for (phase, c) in &report.phases {
        println!(
            "| {phase} | {} | {} | {} | {} ({}) | {} |",
            c.calls,
            c.own,
            c.dead,
            c.other,
            c.other_bots.len(),
            c.failed
        );
    }
    println!();
    let mut notes = report.notes.clone();
    if let Some((first, last)) = c.other_span {
        let at = |ms: u64| (ms as f64 - report.started_ms as f64) / 1000.0;
        notes.push(format!(
            "the polls cut short by another (409 other) arrived from {:.1} s to {:.1} s into the run",
            at(first),
            at(last)
        ));
    }
    notes.extend(c.examples.iter().map(|e| format!("409 other: {e}")));
    notes.push(format!("every replica exited {} after SIGTERM to all at once", duration(report.stopped)));
    notes.push(format!("the lone replica held and polled every bot {} after its spawn", maybe(report.solo_launch)));
    for (id, lines) in report.logs.iter().filter(|(_, lines)| !lines.is_empty()) {
        let said: Vec<String> = process::messages(lines).iter().map(|(m, n)| format!("\"{m}\" x{n}")).collect();
        notes.push(format!("{id} logged (warnings and errors, its whole life): {}", said.join(", ")));
    }
    println!("Notes:");
    println!();
    for note in notes {
        println!("- {note}");
    }
    for (id, lines) in &report.logs {
        let mut seen = HashSet::new();
        for line in lines {
            let said = process::messages(std::slice::from_ref(line)).into_keys().next().unwrap_or_default();
            if seen.insert(said) {
                eprintln!("replicas: {id} logged first: {line}");
            }
        }
    }
    println!("- the bench took {} in all; {load}", duration(took));
}

/// Cores and memory of this machine, for the tables.
fn machine_facts() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<u64>().ok()))
        .map_or_else(String::new, |kib| format!(", {:.0} GiB", kib as f64 / 1024.0 / 1024.0));
    format!("{cores} cores{memory}")
}
