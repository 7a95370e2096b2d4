//! Spawns the application against an emulator, with bot YAML files in a temporary `CONFIG_DIR`.

use std::{
    collections::HashMap,
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use botapi_emulator::{Emulator, EmulatorConfig, TestBot};
use multibot::{
    app::{Application, Listeners},
    config::{EnvLookup, Settings},
    fleet::{BotManager, ReloadHandle},
    plugins::PluginRegistry,
    storage::Storage,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A well-formed token for bot number `n`.
/// A call's parameter as a number, however it was sent: a JSON number, or a string in a query or form (the call
/// log keeps values as given; `getUpdates` goes as a GET with its parameters in the query).
pub(crate) fn param_i64(value: &serde_json::Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_str()?.parse().ok())
}

/// A call's parameter holding JSON (a list, an object), however it was sent: as JSON, or serialized into a
/// query or form string.
pub(crate) fn param_json(value: &serde_json::Value) -> serde_json::Value {
    value.as_str().and_then(|text| serde_json::from_str(text).ok()).unwrap_or_else(|| value.clone())
}

pub(crate) fn token(n: u32) -> String {
    format!("{}:TestTokenForMultibot_{n:04}_secret", 700_000 + n)
}

/// A directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "multibot-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }

    /// Writes a file the way editors save: a hidden temporary file renamed over the target, so a watcher never
    /// sees it half written.
    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        let temp = self.0.join(format!(".{}.tmp", name.replace('/', "_")));
        std::fs::write(&temp, text).expect("write file");
        std::fs::rename(&temp, &path).expect("rename file");
        path
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running application and its emulator.
pub(crate) struct TestApp {
    pub(crate) emu: Emulator,
    pub(crate) manager: BotManager,
    pub(crate) reloads: ReloadHandle,
    pub(crate) storage: Storage,
    pub(crate) dir: TempDir,
    /// Variables tests may set while the application runs (`${TOKEN_<n>}` works without them).
    pub(crate) vars: Arc<parking_lot::Mutex<HashMap<String, String>>>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Stops the application and waits for it.
    pub(crate) async fn stop(mut self) {
        self.stop_app().await;
    }

    /// Stops the application and waits for it; the emulator keeps running, to read what the bots did.
    pub(crate) async fn stop_app(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("app task").expect("app stops cleanly");
        }
    }

    /// The emulator handle of a registered bot.
    pub(crate) async fn bot(&self, n: u32) -> TestBot {
        self.emu.bot(&token(n)).await.expect("bot")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Settings for a test: the emulator as Telegram, `dir` as `CONFIG_DIR`, an SQLite file under `dir` as the
/// database, any free health port, short timeouts, no flood control (Telegram's 1 message per second per chat
/// would make every conversation slow); `extra` adds or overrides variables.
pub(crate) fn settings(emu: &Emulator, dir: &Path, extra: &[(&str, String)]) -> Settings {
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("FLOOD_CONTROL", "false".into()),
        ("TELEGRAM_API_URL", emu.api_url()),
        ("CONFIG_DIR", dir.display().to_string()),
        ("DATA_DIR", dir.join("data").display().to_string()),
        ("HEALTH_CHECK_PORT", "0".into()),
        ("POLLING_TIMEOUT", "5".into()),
        ("SHUTDOWN_TIMEOUT", "10".into()),
        ("LOG_FORMAT", "text".into()),
    ]);
    vars.extend(extra.iter().cloned());
    Settings::from_env(&|name| vars.get(name).cloned()).expect("valid settings")
}

/// `${TOKEN_<n>}` resolves to `token(n)`; everything else is unset.
pub(crate) fn env() -> EnvLookup {
    Arc::new(|name| name.strip_prefix("TOKEN_").and_then(|n| n.parse().ok()).map(token))
}

/// `env()` plus variables from `vars`.
fn env_with(vars: Arc<parking_lot::Mutex<HashMap<String, String>>>) -> EnvLookup {
    let base = env();
    Arc::new(move |name| vars.lock().get(name).cloned().or_else(|| base(name)))
}

/// Starts an emulator with bots `1..=registered` registered, writes `files` and starts the application.
pub(crate) async fn spawn_app(files: &[(&str, &str)], registered: u32, registry: PluginRegistry) -> TestApp {
    spawn_app_with(files, registered, registry, &[]).await
}

/// [`spawn_app`] with more environment variables (`DATABASE_URL`, `FLOOD_CONTROL`, ...).
pub(crate) async fn spawn_app_with(
    files: &[(&str, &str)],
    registered: u32,
    registry: PluginRegistry,
    extra: &[(&str, String)],
) -> TestApp {
    spawn_app_on(emulator(registered).await, files, registry, extra).await
}

/// An emulator with bots `1..=registered` registered. Method names are case-sensitive, as on some gateways and
/// proxies, so every test checks that they go out as the Bot API spells them.
pub(crate) async fn emulator(registered: u32) -> Emulator {
    let emu = Emulator::start(EmulatorConfig { strict_method_names: true, ..EmulatorConfig::default() })
        .await
        .expect("emulator");
    for n in 1..=registered {
        emu.control().bot_named(&token(n), &format!("Bot {n}"), &format!("bot{n}_bot")).await.expect("register");
    }
    emu
}

/// [`spawn_app_with`] against `emu`, prepared by the caller (e.g. with faults injected before the bots start).
pub(crate) async fn spawn_app_on(
    emu: Emulator,
    files: &[(&str, &str)],
    registry: PluginRegistry,
    extra: &[(&str, String)],
) -> TestApp {
    let dir = TempDir::new();
    for (name, text) in files {
        dir.write(name, text);
    }
    let vars: Arc<parking_lot::Mutex<HashMap<String, String>>> = Arc::default();
    let app = Application::build(settings(&emu, dir.path(), extra), registry, env_with(vars.clone()))
        .await
        .expect("app builds");
    let manager = app.manager().clone();
    let reloads = app.reloads();
    let storage = app.storage().clone();
    let shutdown = app.shutdown_token();
    let task = tokio::spawn(app.run_until_stopped());
    TestApp { emu, manager, reloads, storage, dir, vars, shutdown, task: Some(task) }
}

/// Whether a test may use a service: `false`, with a loud SKIPPED line, on a developer's machine that lacks it; a
/// failure under `CI=true`, where `.ci/run` provides every service.
pub(crate) fn service_available(what: &str, available: bool) -> bool {
    if !available {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{what} is required under CI=true");
        // Straight to the stream, past the test harness's capture, so the skip shows in `cargo test`'s output.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {what} is not available on this machine (the test passes without checking anything)"
        );
    }
    available
}

/// The shared Redis on 127.0.0.1:6379, when it answers (else [`service_available`] reports the skip).
pub(crate) async fn shared_redis() -> Option<&'static str> {
    const URL: &str = "redis://127.0.0.1:6379";
    let up = async {
        let client = redis::Client::open(URL).ok()?;
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING").query_async::<String>(&mut connection).await.ok()
    };
    let up = tokio::time::timeout(Duration::from_secs(3), up).await.ok().flatten().is_some();
    service_available("Redis on 127.0.0.1:6379", up).then_some(URL)
}

/// Waits until `check` passes, or panics after `within`.
pub(crate) async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Where a served application takes webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Web {
    /// `WEBHOOK_ENABLED` unset.
    Off,
    /// A webhook listener of its own.
    Separate,
    /// On the health listener (`WEBHOOK_PORT` = `HEALTH_CHECK_PORT`).
    Shared,
}

/// Binds loopback listeners for `web`; returns them with the variables that describe them
/// (`WEBHOOK_ENABLED`, `WEBHOOK_BASE_URL` pointing at the webhook listener).
pub(crate) async fn listeners(web: Web) -> (Listeners, Vec<(&'static str, String)>) {
    let health = TcpListener::bind("127.0.0.1:0").await.expect("bind health");
    let webhook = match web {
        Web::Separate => Some(TcpListener::bind("127.0.0.1:0").await.expect("bind webhook")),
        Web::Off | Web::Shared => None,
    };
    let mut vars = Vec::new();
    if web != Web::Off {
        let at = webhook.as_ref().unwrap_or(&health).local_addr().expect("address");
        vars.push(("WEBHOOK_ENABLED", "true".to_owned()));
        vars.push(("WEBHOOK_BASE_URL", format!("http://{at}")));
    }
    (Listeners { health: Some(health), webhook }, vars)
}

/// A running application with HTTP servers on loopback. The emulator and the directory belong to the caller, so a
/// test can stop it and start another on the same files.
pub(crate) struct Served {
    pub(crate) manager: BotManager,
    pub(crate) reloads: ReloadHandle,
    pub(crate) storage: Storage,
    pub(crate) health: SocketAddr,
    pub(crate) webhook: Option<SocketAddr>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Served {
    /// Runs a built application in a task.
    pub(crate) fn run(app: Application) -> Served {
        let (health, webhook) = (app.health_addr().expect("health server"), app.webhook_addr());
        let manager = app.manager().clone();
        let reloads = app.reloads();
        let storage = app.storage().clone();
        let shutdown = app.shutdown_token();
        let task = tokio::spawn(app.run_until_stopped());
        Served { manager, reloads, storage, health, webhook, shutdown, task: Some(task) }
    }

    /// `http://<health address><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.health)
    }

    /// `http://<webhook address>/webhook<path>`.
    pub(crate) fn webhook_url(&self, path: &str) -> String {
        format!("http://{}/webhook{path}", self.webhook.expect("webhooks enabled"))
    }

    /// Cancels the shutdown token, without waiting.
    pub(crate) fn begin_stop(&self) {
        self.shutdown.cancel();
    }

    /// Whether the application has finished stopping.
    pub(crate) fn finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the application and waits for it.
    pub(crate) async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("app task").expect("app stops cleanly");
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Builds and runs the application on `dir` (bot files at its top, `DATA_DIR` at `dir/data`) against `emu`,
/// with its HTTP servers on loopback as `web` says and `extra` variables.
pub(crate) async fn serve(
    emu: &Emulator,
    dir: &Path,
    web: Web,
    extra: &[(&str, String)],
    registry: PluginRegistry,
) -> Served {
    let (listeners, mut vars) = listeners(web).await;
    vars.extend(extra.iter().cloned());
    let app = Application::build_with(settings(emu, dir, &vars), registry, env(), listeners).await.expect("app builds");
    Served::run(app)
}
