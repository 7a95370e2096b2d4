//! [`Application`]: wires settings, plugins, configuration and the bot manager together, watches `CONFIG_DIR`
//! for hot reload, and runs until the shutdown token is cancelled (SIGINT/SIGTERM in `main`).
//!
//! Hot reload is a pipeline: the watcher (debounced file events) or SIGHUP sends a [`ReloadSignal`]; the
//! reloader rescans the script plugins of `PLUGINS_DIR`, loads and validates the whole directory, diffs it against
//! the running fleet, and applies the diff bot by bot (the manager rolls a bot back when its new configuration
//! cannot start); then it rebuilds the other bots that use a script with a new version.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::{
    bots::{BotManager, Deps, ReloadOutcome},
    config::{
        self, BotId, ConfigError, Settings, WebhookEnv,
        diff::{Current, diff},
        watcher::{self, ConfigWatcher, ReloadSignal},
    },
    fsm::MemoryFsm,
    plugins::{
        PluginRegistry,
        script::{ScriptCatalog, ScriptError, ScriptHost, is_script_file},
    },
};

/// Looks up a variable for `${VAR}` substitution and settings.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process environment, then the `.env` file of the working directory read afresh at each lookup (real
/// variables win), so that a reload sees a token rotated in `.env`.
pub fn process_env() -> EnvLookup {
    Arc::new(|name| std::env::var(name).ok().or_else(|| dotenv_value(name)))
}

fn dotenv_value(name: &str) -> Option<String> {
    let entries = dotenvy::from_path_iter(".env").ok()?;
    entries.filter_map(Result::ok).find(|(key, _)| key == name).map(|(_, value)| value)
}

/// What one reload did, for logs, the admin bot and tests.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ReloadReport {
    /// Bots and what happened to each (`added`, `reloaded`, `restarted`, `disabled`, `removed`).
    pub applied: Vec<(BotId, String)>,
    /// Bots whose new configuration failed to start; each keeps its previous configuration.
    pub failed: Vec<(BotId, String)>,
    /// Configuration problems; the bots of those files keep running as they were.
    pub errors: Vec<String>,
    /// Environment settings that changed but cannot change while running.
    pub refused_settings: Vec<&'static str>,
    /// Script plugins and what happened to each (`added`, `reloaded`, `removed`); script errors are in `errors`.
    pub scripts: Vec<(String, String)>,
}

/// A built application, its bots started.
pub struct Application {
    manager: BotManager,
    shutdown: CancellationToken,
    config_errors: Vec<ConfigError>,
    script_errors: Vec<ScriptError>,
    reloads: mpsc::Sender<ReloadSignal>,
    reloader: Arc<Reloader>,
    _watcher: Option<ConfigWatcher>,
    _script_watcher: Option<ConfigWatcher>,
}

/// Reloads the configuration on demand and tells what the last reload did.
#[derive(Clone)]
pub struct ReloadHandle(Arc<Reloader>);

impl ReloadHandle {
    /// Reloads every file now and reports what changed.
    pub async fn reload_now(&self) -> ReloadReport {
        self.0.reload().await
    }

    /// The report of the last reload, whatever triggered it.
    pub fn last_report(&self) -> Option<ReloadReport> {
        self.0.last.lock().clone()
    }

    /// How many reloads have completed.
    pub fn count(&self) -> u64 {
        self.0.count.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Loads, diffs and applies configuration changes.
struct Reloader {
    manager: BotManager,
    registry: Arc<PluginRegistry>,
    /// The script plugins of `PLUGINS_DIR`, rescanned by every reload.
    scripts: parking_lot::Mutex<ScriptCatalog>,
    env: EnvLookup,
    config_dir: PathBuf,
    webhooks: WebhookEnv,
    /// The environment settings at start, to tell which ones a reload would change.
    baseline: Option<Settings>,
    /// One reload at a time.
    running: tokio::sync::Mutex<()>,
    last: parking_lot::Mutex<Option<ReloadReport>>,
    count: std::sync::atomic::AtomicU64,
}

impl Application {
    /// Loads the script plugins of `PLUGINS_DIR` into the registry and the bot configurations, and starts every
    /// enabled bot; bad files are logged and skipped. With `ENABLE_HOT_RELOAD`, starts watching both directories.
    pub async fn build(settings: Settings, registry: PluginRegistry, env: EnvLookup) -> anyhow::Result<Application> {
        let api_url = reqwest::Url::parse(&settings.telegram_api_url).context("TELEGRAM_API_URL")?;
        let http = reqwest::Client::builder()
            .timeout(settings.polling_timeout + Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        let shutdown = CancellationToken::new();
        let webhooks =
            WebhookEnv { enabled: settings.webhook_enabled, base_url_set: settings.webhook_base_url.is_some() };
        // Scripts join the registry first: bot files are checked against it. Their `state.*` lives in memory until
        // the database is wired in (replace `ScriptHost::in_memory` by a host whose `state` is the database's).
        let mut scripts = ScriptCatalog::new(settings.plugins_dir.clone(), ScriptHost::in_memory(&settings));
        let script_errors = scripts.scan_into(&registry).errors;
        let loaded = config::load_dir(&settings.config_dir, &*env, &registry, webhooks);
        for problem in &loaded.errors {
            error!(file = %problem.file.display(), "invalid configuration: {problem}");
        }
        if loaded.bots.is_empty() {
            warn!(dir = %settings.config_dir.display(), "no valid bot configuration found");
        }
        let registry = Arc::new(registry);
        let settings = Arc::new(settings);
        let deps = Deps {
            settings: settings.clone(),
            registry: registry.clone(),
            http,
            api_url,
            fsm: Arc::new(MemoryFsm::default()),
            shutdown: shutdown.clone(),
        };
        let manager = BotManager::new(deps);
        let configured = loaded.bots.len();
        let running = manager.start_all(loaded.bots).await;
        info!(configured, running, invalid_files = loaded.errors.len(), "fleet started");

        let reloader = Arc::new(Reloader {
            manager: manager.clone(),
            registry,
            scripts: parking_lot::Mutex::new(scripts),
            baseline: Settings::from_env(&*env).ok(),
            env,
            config_dir: settings.config_dir.clone(),
            webhooks,
            running: tokio::sync::Mutex::new(()),
            last: parking_lot::Mutex::new(None),
            count: std::sync::atomic::AtomicU64::new(0),
        });
        let (reloads, signals) = mpsc::channel(1);
        let watcher = if settings.enable_hot_reload {
            match watcher::watch(&settings.config_dir, reloads.clone()) {
                Ok(watcher) => {
                    info!(dir = %settings.config_dir.display(), "watching for configuration changes");
                    Some(watcher)
                }
                Err(e) => {
                    warn!(dir = %settings.config_dir.display(), error = %e, "hot reload disabled: cannot watch the directory");
                    None
                }
            }
        } else {
            None
        };
        let script_watcher = if settings.enable_hot_reload && settings.plugins_dir.is_dir() {
            match watcher::watch_files(&settings.plugins_dir, is_script_file, reloads.clone()) {
                Ok(watcher) => Some(watcher),
                Err(e) => {
                    warn!(dir = %settings.plugins_dir.display(), error = %e, "script hot reload disabled: cannot watch the directory");
                    None
                }
            }
        } else {
            None
        };
        tokio::spawn(reloader.clone().run(signals, shutdown.clone()));
        Ok(Application {
            manager,
            shutdown,
            config_errors: loaded.errors,
            script_errors,
            reloads,
            reloader,
            _watcher: watcher,
            _script_watcher: script_watcher,
        })
    }

    /// The bot manager.
    pub fn manager(&self) -> &BotManager {
        &self.manager
    }

    /// Cancelling it stops the application.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The configuration problems found at start.
    pub fn config_errors(&self) -> &[ConfigError] {
        &self.config_errors
    }

    /// The script plugins that failed to load at start.
    pub fn script_errors(&self) -> &[ScriptError] {
        &self.script_errors
    }

    /// Where to send a reload request (SIGHUP does).
    pub fn reload_sender(&self) -> mpsc::Sender<ReloadSignal> {
        self.reloads.clone()
    }

    /// A handle to reload now and read the last reload's report.
    pub fn reloads(&self) -> ReloadHandle {
        ReloadHandle(self.reloader.clone())
    }

    /// Runs until the shutdown token is cancelled, then stops every bot (each drains and confirms its updates).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.shutdown.cancelled().await;
        info!("shutting down");
        drop(self._watcher);
        drop(self._script_watcher);
        self.manager.stop_all().await;
        Ok(())
    }
}

impl Reloader {
    async fn run(self: Arc<Self>, mut signals: mpsc::Receiver<ReloadSignal>, shutdown: CancellationToken) {
        loop {
            let signal = tokio::select! {
                signal = signals.recv() => signal,
                () = shutdown.cancelled() => return,
            };
            let Some(signal) = signal else { return };
            info!(?signal, "reloading configuration");
            self.reload().await;
        }
    }

    /// Loads the directory, diffs it against the fleet and applies the difference.
    async fn reload(&self) -> ReloadReport {
        let _one_at_a_time = self.running.lock().await;
        let mut report = ReloadReport::default();
        if let (Some(baseline), Ok(now)) = (&self.baseline, Settings::from_env(&*self.env)) {
            report.refused_settings = baseline.differences(&now);
            for name in &report.refused_settings {
                error!(setting = name, "{name} changed, but it cannot change while running: restart to apply it");
            }
        }
        let scan = self.scripts.lock().scan_into(&self.registry);
        report.errors.extend(scan.errors.iter().map(ToString::to_string));
        for (what, names) in [("added", &scan.added), ("reloaded", &scan.reloaded), ("removed", &scan.removed)] {
            report.scripts.extend(names.iter().map(|name| (name.clone(), what.to_owned())));
        }
        let loaded = config::load_dir(&self.config_dir, &*self.env, &*self.registry, self.webhooks);
        let current: Vec<Current> = self.manager.current();
        let diff = diff(&current, loaded, &self.config_dir);
        for problem in &diff.errors {
            error!(file = %problem.file.display(), "reload refused: {problem}");
            report.errors.push(problem.to_string());
        }
        for id in diff.removed {
            match self.manager.remove(&id).await {
                Ok(()) => report.applied.push((id, "removed".into())),
                Err(e) => report.failed.push((id, e.to_string())),
            }
        }
        for config in diff.added.into_iter().chain(diff.changed) {
            let id = config.id.clone();
            match self.manager.reload(config).await {
                Ok(ReloadOutcome::Unchanged) => {}
                Ok(outcome) => {
                    info!(bot_id = %id, ?outcome, "configuration applied");
                    report.applied.push((id, format!("{outcome:?}").to_lowercase()));
                }
                Err(e) => {
                    error!(bot_id = %id, error = %e, "reload failed; the previous configuration stays");
                    report.failed.push((id, e.to_string()));
                }
            }
        }
        if !scan.reloaded.is_empty() {
            let done: Vec<BotId> = report.applied.iter().chain(&report.failed).map(|(id, _)| id.clone()).collect();
            for (id, result) in self.manager.reload_plugins(&scan.reloaded, &done).await {
                match result {
                    Ok(outcome) => {
                        info!(bot_id = %id, ?outcome, "new script version applied");
                        report.applied.push((id, format!("{outcome:?}").to_lowercase()));
                    }
                    Err(e) => {
                        error!(bot_id = %id, error = %e, "new script version failed; the previous one stays");
                        report.failed.push((id, e.to_string()));
                    }
                }
            }
        }
        *self.last.lock() = Some(report.clone());
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        report
    }
}
