//! The replicas' surroundings: [`FleetDir`], N echo bots' files in a temporary directory; [`Database`], a
//! PostgreSQL database of the run's own, dropped at the end; [`Replica`], one `multibot run` child process, killed
//! when dropped (on every exit path, panics included).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use sqlx::{Postgres, migrate::MigrateDatabase};

use crate::fleet::child::{self, Memory, token};

/// The bot files and the environment every replica shares; the directory is removed when dropped.
pub(super) struct FleetDir {
    path: PathBuf,
    /// The variables every replica gets (`REPLICA_ID` and `HEALTH_CHECK_PORT` are added per replica).
    env: Vec<(String, String)>,
}

impl FleetDir {
    /// Writes `bots` echo bots (`echo_all: true`), each with its token in `BENCH_TOKEN_<i>`, for replicas of
    /// `LEASE_TTL_SECONDS=ttl` against the Bot API at `api_url` and the database at `database_url`.
    pub(super) fn create(bots: usize, api_url: &str, database_url: &str, ttl: u64) -> anyhow::Result<FleetDir> {
        let path = std::env::temp_dir().join(format!("multibot-replicas-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        let config_dir = path.join("bots");
        fs::create_dir_all(&config_dir).with_context(|| format!("creating {}", config_dir.display()))?;
        let plugins_dir = path.join("plugins");
        fs::create_dir_all(&plugins_dir)?;
        for i in 0..bots {
            let yaml = format!(
                "id: \"{}\"\nname: \"Bench {i}\"\ntoken: \"${{BENCH_TOKEN_{i}}}\"\nplugins:\n  - name: \"echo\"\n    config:\n      echo_all: true\n",
                bot_id(i)
            );
            fs::write(config_dir.join(format!("{}.yaml", bot_id(i))), yaml)?;
        }
        let mut env: Vec<(String, String)> = vec![
            ("CONFIG_DIR".into(), config_dir.display().to_string()),
            ("PLUGINS_DIR".into(), plugins_dir.display().to_string()),
            ("TELEGRAM_API_URL".into(), api_url.into()),
            ("DATABASE_URL".into(), database_url.into()),
            ("LEASE_TTL_SECONDS".into(), ttl.to_string()),
            ("LOG_LEVEL".into(), "WARNING".into()),
            ("LOG_FORMAT".into(), "json".into()),
            // As in the fleet bench: the emulator enforces no flood limits, and Telegram's pacing would measure
            // itself, not the replicas.
            ("FLOOD_CONTROL".into(), "false".into()),
        ];
        env.extend((0..bots).map(|i| (format!("BENCH_TOKEN_{i}"), token(i))));
        Ok(FleetDir { path, env })
    }
}

impl Drop for FleetDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The YAML `id` of bench bot `i`, as `bot_leases.bot_id` names it.
pub(super) fn bot_id(i: usize) -> String {
    format!("bench_{i}")
}

/// The index of the bench bot whose YAML `id` is `id`.
pub(super) fn bot_index(id: &str) -> Option<usize> {
    id.strip_prefix("bench_")?.parse().ok()
}

/// A database of the run's own on the PostgreSQL server; force-dropped when dropped.
pub(super) struct Database {
    /// Its `DATABASE_URL`.
    pub(super) url: String,
}

impl Database {
    /// Creates `multibot_bench_<pid>` on `server` (`postgres://user@host:port`).
    pub(super) async fn create(server: &str) -> anyhow::Result<Database> {
        let url = format!("{}/multibot_bench_{}", server.trim_end_matches('/'), std::process::id());
        if Postgres::database_exists(&url).await.with_context(|| format!("reaching PostgreSQL at {server}"))? {
            Postgres::force_drop_database(&url).await?;
        }
        Postgres::create_database(&url).await.with_context(|| format!("creating {url}"))?;
        Ok(Database { url })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let url = self.url.clone();
        // Dropped inside the bench's runtime, which cannot block on its own futures: a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(Postgres::force_drop_database(&url)).map_err(anyhow::Error::from)
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("replicas: warning: could not drop the database {}: {dropped:?}", self.url);
        }
    }
}

/// Runs `exe migrate` on the database at `url`.
pub(super) fn migrate(exe: &Path, url: &str) -> anyhow::Result<()> {
    let output = Command::new(exe).arg("migrate").env_clear().env("DATABASE_URL", url).stdin(Stdio::null()).output()?;
    if !output.status.success() {
        bail!("multibot migrate failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

/// One `multibot run` process, its own `REPLICA_ID` and `HEALTH_CHECK_PORT`; killed when dropped.
pub(super) struct Replica {
    /// Its `REPLICA_ID`.
    pub(super) id: String,
    child: Child,
    log: PathBuf,
    /// Set once it was killed or exited and reaped.
    gone: bool,
}

impl Replica {
    /// Starts `exe run` as replica `id` on the fleet's files, its health server on a free port.
    pub(super) fn spawn(exe: &Path, fleet: &FleetDir, id: &str) -> anyhow::Result<Replica> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = fleet.path.join(format!("{id}.log"));
        let stderr = fs::File::create(&log)?;
        let child = Command::new(exe)
            .arg("run")
            .env_clear()
            .envs(fleet.env.iter().map(|(k, v)| (k, v)))
            .env("REPLICA_ID", id)
            .env("HEALTH_CHECK_PORT", port.to_string())
            .current_dir(&fleet.path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (build it first: cargo build --release -p multibot -p multibot-bench)",
                    exe.display()
                )
            })?;
        Ok(Replica { id: id.to_owned(), child, log, gone: false })
    }

    /// `kill -9`, and reaps it.
    pub(super) fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        self.gone = true;
        Ok(())
    }

    /// SIGTERM.
    pub(super) fn signal_term(&self) -> anyhow::Result<()> {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status()?;
        anyhow::ensure!(status.success(), "kill -TERM {} failed", self.child.id());
        Ok(())
    }

    /// Waits up to `grace` for it to exit (SIGKILL after that; `None` then).
    pub(super) async fn wait_exit(&mut self, grace: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                self.gone = true;
                return Ok(Some(status));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill9()?;
        Ok(None)
    }

    /// Fails, with the end of its log, when it has exited.
    pub(super) fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            self.gone = true;
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("replica {} exited ({status}); its log ends with:\n{}", self.id, tail.join("\n"));
        }
        Ok(())
    }

    /// CPU time used so far (user + system, all threads), in seconds.
    pub(super) fn cpu_seconds(&self) -> anyhow::Result<f64> {
        child::cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }

    /// Resident memory now and at its peak.
    pub(super) fn memory(&self) -> anyhow::Result<Memory> {
        child::memory(self.child.id())
    }

    /// The lines it logged (warnings and errors only, at `LOG_LEVEL=WARNING`).
    pub(super) fn log_lines(&self) -> Vec<String> {
        fs::read_to_string(&self.log).unwrap_or_default().lines().map(str::to_owned).collect()
    }
}

/// How many times each message was logged, from JSON log lines (`fields.message`; a line that is not JSON
/// counts as itself).
pub(super) fn messages(lines: &[String]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for line in lines {
        let message = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["fields"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| line.clone());
        *counts.entry(message).or_default() += 1;
    }
    counts
}

impl Drop for Replica {
    fn drop(&mut self) {
        if !self.gone {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
