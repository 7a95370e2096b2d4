//! [`Fleet`]: one `multibot run` child process with N generated bot configurations in a temporary directory,
//! killed and cleaned up when dropped (on every exit path, panics included), and what `/proc` says about it.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Instant,
};

use anyhow::{Context, bail};

/// Clock ticks per second of `utime`/`stime` in `/proc/<pid>/stat` (`USER_HZ`, 100 on every Linux build).
const USER_HZ: f64 = 100.0;

/// The token of bench bot `i`; the emulator accepts any well-formed token.
pub(crate) fn token(i: usize) -> String {
    format!("{}:BenchFleetToken_{i:08}", telegram_id(i))
}

/// The Telegram id of bench bot `i` (the digits of its token), as the control API names it.
pub(crate) fn telegram_id(i: usize) -> u64 {
    1_000_000 + i as u64
}

/// CPU time (user + system) in seconds from a proc(5) `stat` file: `/proc/<pid>/stat` for a whole process,
/// `/proc/<pid>/task/<tid>/stat` for one thread.
pub(crate) fn cpu_seconds(stat_path: &str) -> anyhow::Result<f64> {
    let stat = fs::read_to_string(stat_path).with_context(|| format!("reading {stat_path}"))?;
    // The command name may contain spaces and parentheses: fields are counted after the last ')'.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of proc(5) are utime and stime; after ')' the first field is field 3.
    let ticks = |index: usize| -> anyhow::Result<u64> {
        Ok(fields.get(index).with_context(|| format!("short {stat_path}"))?.parse()?)
    };
    Ok((ticks(11)? + ticks(12)?) as f64 / USER_HZ)
}

/// CPU time all processes of the machine have used so far (all cores), in seconds, from `/proc/stat`.
pub(crate) fn machine_busy_seconds() -> anyhow::Result<f64> {
    let stat = fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).map(str::parse).collect::<Result<_, _>>()?;
    // user, nice, system: what processes are charged for. Interrupt time (the loopback traffic's softirqs,
    // mostly ours) is charged to no process, so it is left out to compare with the processes' own times.
    let busy: u64 = ticks.iter().take(3).sum();
    Ok(busy as f64 / USER_HZ)
}

/// Resident memory of process `pid` now and at its peak, from `/proc/<pid>/status`.
pub(crate) fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line =
            status.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name} in /proc/<pid>/status"))?;
        Ok(line.trim_start_matches(name).trim().trim_end_matches("kB").trim().parse()?)
    };
    Ok(Memory { rss_kib: field("VmRSS:")?, peak_kib: field("VmHWM:")? })
}

/// A running `multibot run` with its temporary directory.
pub(crate) struct Fleet {
    // Declared first so that it is dropped (killed) before the directory is removed.
    child: KillOnDrop,
    log: PathBuf,
    dir: TempDir,
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Resident memory of the child.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Memory {
    /// `VmRSS`, in KiB.
    pub(crate) rss_kib: u64,
    /// `VmHWM` (peak resident), in KiB.
    pub(crate) peak_kib: u64,
}

impl Fleet {
    /// Writes `bots` configurations (the echo plugin, or with `script` the `script_echo` Luau example, with
    /// `echo_all: true`) and starts `exe run` on them against the Bot API at `api_url`, with `INBOX=inbox` (and
    /// `TELEGRAM_API_HTTP=2` with `http2`); returns the fleet and the instant just before the spawn.
    pub(crate) fn launch(
        exe: &Path,
        bots: usize,
        api_url: &str,
        script: bool,
        inbox: &str,
        http2: bool,
    ) -> anyhow::Result<(Fleet, Instant)> {
        let dir = TempDir(std::env::temp_dir().join(format!("multibot-fleet-{}-{bots}", std::process::id())));
        let _ = fs::remove_dir_all(&dir.0);
        let config_dir = dir.0.join("bots");
        fs::create_dir_all(&config_dir).with_context(|| format!("creating {}", config_dir.display()))?;
        let plugins_dir = dir.0.join("plugins");
        fs::create_dir_all(&plugins_dir)?;
        let plugin = if script { "script_echo" } else { "echo" };
        if script {
            fs::write(plugins_dir.join("script_echo.luau"), include_str!("../../../../plugins/script_echo.luau"))?;
        }
        for i in 0..bots {
            let yaml = format!(
                "id: \"bench_{i}\"\nname: \"Bench {i}\"\ntoken: \"${{BENCH_TOKEN_{i}}}\"\nplugins:\n  - name: \"{plugin}\"\n    config:\n      echo_all: true\n"
            );
            fs::write(config_dir.join(format!("bench_{i}.yaml")), yaml)?;
        }
        let log = dir.0.join("multibot.log");
        let stderr = fs::File::create(&log)?;
        let mut command = Command::new(exe);
        command
            .arg("run")
            .env_clear()
            .env("CONFIG_DIR", &config_dir)
            .env("PLUGINS_DIR", &plugins_dir)
            .env("TELEGRAM_API_URL", api_url)
            .env("LOG_LEVEL", "WARNING")
            .env("LOG_FORMAT", "json")
            // A free port, so that the health server (once there is one) never collides with anything.
            .env("HEALTH_CHECK_PORT", "0")
            // The emulator enforces no flood limits; Telegram's one message per second per chat would pace the
            // burst's ten messages per chat instead of measuring the system.
            .env("FLOOD_CONTROL", "false")
            .env("INBOX", inbox)
            .env("TELEGRAM_API_HTTP", if http2 { "2" } else { "1.1" })
            // jemalloc's and tokio's settings, for experiments.
            .envs(
                ["_RJEM_MALLOC_CONF", "TOKIO_WORKER_THREADS"]
                    .map(|name| (name, std::env::var_os(name)))
                    .into_iter()
                    .filter_map(|(name, value)| Some((name, value?))),
            )
            .envs((0..bots).map(|i| (format!("BENCH_TOKEN_{i}"), token(i))))
            .current_dir(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let spawned_at = Instant::now();
        let child = command.spawn().with_context(|| {
            format!("starting {} (build it first: cargo build --release -p multibot -p multibot-bench)", exe.display())
        })?;
        Ok((Fleet { child: KillOnDrop(child), log, dir }, spawned_at))
    }

    /// Starts the baseline instead: this executable's `bare-echo` with `bots` bots against `api_url` (see
    /// [`super::bare`]), over HTTP/2 with `http2`; returns it and the instant just before the spawn.
    pub(crate) fn launch_bare(bots: usize, api_url: &str, http2: bool) -> anyhow::Result<(Fleet, Instant)> {
        let dir = TempDir(std::env::temp_dir().join(format!("multibot-bare-{}-{bots}", std::process::id())));
        let _ = fs::remove_dir_all(&dir.0);
        fs::create_dir_all(&dir.0).with_context(|| format!("creating {}", dir.0.display()))?;
        let log = dir.0.join("bare.log");
        let mut command = Command::new(std::env::current_exe()?);
        command
            .args(["bare-echo", "--api-url", api_url, "--bots", &bots.to_string()])
            .args(http2.then_some("--http2"))
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log)?);
        let spawned_at = Instant::now();
        let child = command.spawn().context("starting the bare echo loop")?;
        Ok((Fleet { child: KillOnDrop(child), log, dir }, spawned_at))
    }

    /// Rows in the child's durable inbox (its SQLite file under `data/`), handled ones not yet pruned included;
    /// `None` without one (`INBOX=memory`, or before the first update).
    pub(crate) async fn inbox_rows(&self) -> anyhow::Result<Option<i64>> {
        let file = self.dir.0.join("data").join("multibot.db");
        if !file.exists() {
            return Ok(None);
        }
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&file).read_only(true);
        let mut conn = sqlx::ConnectOptions::connect(&options).await?;
        let rows = sqlx::query_scalar("SELECT COUNT(*) FROM inbox").fetch_one(&mut conn).await?;
        Ok(Some(rows))
    }

    /// Fails, with the end of its log, when the child has exited.
    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.0.try_wait()? {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("multibot exited ({status}); its log ends with:\n{}", tail.join("\n"));
        }
        Ok(())
    }

    /// CPU time used so far (user + system, all threads), in seconds.
    pub(crate) fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(&format!("/proc/{}/stat", self.child.0.id()))
    }

    /// Resident memory now and at its peak.
    pub(crate) fn memory(&self) -> anyhow::Result<Memory> {
        memory(self.child.0.id())
    }

    /// The lines the child logged (warnings and errors only, at `LOG_LEVEL=WARNING`).
    pub(crate) fn log_lines(&self) -> Vec<String> {
        fs::read_to_string(&self.log).unwrap_or_default().lines().map(str::to_owned).collect()
    }
}
