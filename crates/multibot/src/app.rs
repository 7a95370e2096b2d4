//! [`Application`]: wires settings, plugins, configuration and the bot manager together, watches `CONFIG_DIR`
//! for hot reload, and runs until the shutdown token is cancelled (SIGINT/SIGTERM in `main`).
//!
//! Hot reload is a pipeline: the watcher (debounced file events) or SIGHUP sends a [`ReloadSignal`]; the
//! reloader loads and validates the whole directory, diffs it against the running fleet, and applies the diff
//! bot by bot (the manager rolls a bot back when its new configuration cannot start).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use anyhow::Context;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::{
    admin::{AdminFactory, Fleet, Notifier, admin_bot_config},
    bots::{BotManager, Deps, ReloadOutcome},
    config::{
        self, BotId, ConfigError, FsmBackend, Settings, WebhookEnv,
        diff::{Current, diff},
        watcher::{self, ConfigWatcher, ReloadSignal},
    },
    fsm::{DatabaseFsm, FsmStorage, MemoryFsm, RedisFsm},
    plugins::PluginRegistry,
    storage::{Recorder, Storage, events},
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
}

/// A built application, its bots started.
pub struct Application {
    manager: BotManager,
    storage: Storage,
    recorder: Recorder,
    shutdown_timeout: Duration,
    shutdown: CancellationToken,
    config_errors: Vec<ConfigError>,
    reloads: mpsc::Sender<ReloadSignal>,
    reloader: Arc<Reloader>,
    _watcher: Option<ConfigWatcher>,
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

    /// Reloads one bot's file now (the admin bot's `/reload <bot_id>`).
    pub async fn reload_bot(&self, id: &BotId) -> ReloadReport {
        self.0.reload_matching(Some(id), false).await
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
    env: EnvLookup,
    config_dir: PathBuf,
    webhooks: WebhookEnv,
    recorder: Recorder,
    notifier: Notifier,
    /// The environment settings at start, to tell which ones a reload would change.
    baseline: Option<Settings>,
    /// One reload at a time.
    running: tokio::sync::Mutex<()>,
    last: parking_lot::Mutex<Option<ReloadReport>>,
    /// The last problem sent to the admins, so that a repeat is not sent again.
    last_note: parking_lot::Mutex<Option<String>>,
    count: std::sync::atomic::AtomicU64,
}

impl Application {
    /// Opens the database (migrating it unless `MIGRATE_ON_START=false`), loads the bot configurations and starts
    /// every enabled bot; bad files are logged, recorded as events and skipped. With `ENABLE_HOT_RELOAD`, starts
    /// watching `CONFIG_DIR`.
    pub async fn build(
        settings: Settings,
        mut registry: PluginRegistry,
        env: EnvLookup,
    ) -> anyhow::Result<Application> {
        let fleet: Arc<OnceLock<Fleet>> = Arc::default();
        registry.register_factory(Arc::new(AdminFactory::new(fleet.clone())));
        let notifier = Notifier::default();
        let api_url = reqwest::Url::parse(&settings.telegram_api_url).context("TELEGRAM_API_URL")?;
        let http = reqwest::Client::builder()
            .timeout(settings.polling_timeout + Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        let storage = open_storage(&settings).await?;
        let recorder = Recorder::spawn(storage.clone(), Recorder::DEFAULT_CAPACITY);
        let shutdown = CancellationToken::new();
        let webhooks =
            WebhookEnv { enabled: settings.webhook_enabled, base_url_set: settings.webhook_base_url.is_some() };
        let loaded = config::load_dir(&settings.config_dir, &*env, &registry, webhooks);
        config_invalid(&recorder, &loaded.errors);
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
            fsm: fsm_storage(&settings, &storage)?,
            shutdown: shutdown.clone(),
            storage: storage.clone(),
            recorder: recorder.clone(),
            notifier: notifier.clone(),
        };
        let manager = BotManager::new(deps);
        let reloader = Arc::new(Reloader {
            manager: manager.clone(),
            registry,
            baseline: Settings::from_env(&*env).ok(),
            env,
            config_dir: settings.config_dir.clone(),
            webhooks,
            recorder: recorder.clone(),
            notifier: notifier.clone(),
            running: tokio::sync::Mutex::new(()),
            last: parking_lot::Mutex::new(None),
            last_note: parking_lot::Mutex::new(None),
            count: std::sync::atomic::AtomicU64::new(0),
        });
        let _ = fleet.set(Fleet {
            manager: manager.clone(),
            reloads: ReloadHandle(reloader.clone()),
            storage: storage.clone(),
            allowed: Arc::new(settings.admin_allowed_users.iter().copied().collect()),
            confirm_timeout: settings.admin_confirm_timeout,
            notifier,
            started: Instant::now(),
        });
        let mut bots = loaded.bots;
        match &settings.admin_bot_token {
            Some(token) => {
                if settings.admin_allowed_users.is_empty() {
                    warn!("ADMIN_ALLOWED_USERS is empty: the admin bot will refuse everyone");
                }
                bots.push(admin_bot_config(token.clone()));
            }
            None => info!("ADMIN_BOT_TOKEN is not set: running without an admin bot"),
        }
        let configured = bots.len();
        let running = manager.start_all(bots).await;
        info!(configured, running, invalid_files = loaded.errors.len(), "fleet started");

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
        tokio::spawn(reloader.clone().run(signals, shutdown.clone()));
        Ok(Application {
            manager,
            storage,
            recorder,
            shutdown_timeout: settings.shutdown_timeout,
            shutdown,
            config_errors: loaded.errors,
            reloads,
            reloader,
            _watcher: watcher,
        })
    }

    /// The bot manager.
    pub fn manager(&self) -> &BotManager {
        &self.manager
    }

    /// The database.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Cancelling it stops the application.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The configuration problems found at start.
    pub fn config_errors(&self) -> &[ConfigError] {
        &self.config_errors
    }

    /// Where to send a reload request (SIGHUP does).
    pub fn reload_sender(&self) -> mpsc::Sender<ReloadSignal> {
        self.reloads.clone()
    }

    /// A handle to reload now and read the last reload's report.
    pub fn reloads(&self) -> ReloadHandle {
        ReloadHandle(self.reloader.clone())
    }

    /// Runs until the shutdown token is cancelled, then stops every bot (each drains and confirms its updates)
    /// and writes what is buffered for the database (waiting at most `SHUTDOWN_TIMEOUT`).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.shutdown.cancelled().await;
        info!("shutting down");
        drop(self._watcher);
        self.manager.stop_all().await;
        self.recorder.close(self.shutdown_timeout).await;
        self.storage.close().await;
        Ok(())
    }
}

/// The FSM store `FSM_STORAGE` (or `REDIS_URL`) selects.
fn fsm_storage(settings: &Settings, storage: &Storage) -> anyhow::Result<Arc<dyn FsmStorage>> {
    use secrecy::ExposeSecret;
    Ok(match (settings.fsm_storage, &settings.redis_url) {
        (FsmBackend::Database, _) => Arc::new(DatabaseFsm::new(storage.clone())),
        (FsmBackend::Redis, Some(url)) => Arc::new(RedisFsm::new(url.expose_secret(), settings.fsm_ttl)?),
        _ => Arc::new(MemoryFsm::default()),
    })
}

/// Records a `config_invalid` event per file with problems (each problem is logged).
fn config_invalid(recorder: &Recorder, errors: &[ConfigError]) {
    let mut invalid: BTreeMap<&Path, Vec<&ConfigError>> = BTreeMap::new();
    for problem in errors {
        invalid.entry(&problem.file).or_default().push(problem);
    }
    for (file, problems) in invalid {
        events::config_invalid(recorder, file, &problems);
    }
}

/// Opens `DATABASE_URL` and brings its schema to this binary's: migrates when `MIGRATE_ON_START`, else checks
/// that nothing is pending. A schema newer than this binary knows is refused either way.
pub async fn open_storage(settings: &Settings) -> anyhow::Result<Storage> {
    let url = &settings.database_url;
    let storage = Storage::open(url).await.with_context(|| format!("opening the database {url}"))?;
    if settings.migrate_on_start {
        for migration in storage.migrate().await.with_context(|| format!("migrating the database {url}"))? {
            info!(version = migration.version, description = %migration.description, "migration applied");
        }
    } else {
        storage.check_schema().await.with_context(|| format!("checking the database {url}"))?;
    }
    info!(database = %url, backend = %storage.backend(), "database ready");
    Ok(storage)
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
            self.reload_matching(None, true).await;
        }
    }

    /// Loads the directory, diffs it against the fleet and applies the difference.
    async fn reload(&self) -> ReloadReport {
        self.reload_matching(None, false).await
    }

    /// Loads the directory, diffs it against the fleet and applies the difference, for every bot or only `only`
    /// (problems of other files are then not reported). With `notify`, problems and failures go to the admins.
    async fn reload_matching(&self, only: Option<&BotId>, notify: bool) -> ReloadReport {
        let _one_at_a_time = self.running.lock().await;
        let mut report = ReloadReport::default();
        if let (Some(baseline), Ok(now)) = (&self.baseline, Settings::from_env(&*self.env)) {
            report.refused_settings = baseline.differences(&now);
            for name in &report.refused_settings {
                error!(setting = name, "{name} changed, but it cannot change while running: restart to apply it");
            }
        }
        let loaded = config::load_dir(&self.config_dir, &*self.env, &*self.registry, self.webhooks);
        // Only bots from CONFIG_DIR take part: the admin bot comes from the environment.
        let current: Vec<Current> =
            self.manager.current().into_iter().filter(|c| c.file.starts_with(&self.config_dir)).collect();
        let mut diff = diff(&current, loaded, &self.config_dir);
        if let Some(id) = only {
            let file = current.iter().find(|c| &c.id == id).map(|c| c.file.clone());
            diff.errors.retain(|e| Some(&e.file) == file.as_ref() || e.file == self.config_dir);
            diff.kept.retain(|k| k == id);
            diff.removed.retain(|r| r == id);
            diff.added.clear();
            diff.changed.retain(|c| &c.id == id);
        }
        config_invalid(&self.recorder, &diff.errors);
        report.errors.extend(diff.errors.iter().map(ToString::to_string));
        for id in &diff.kept {
            let file = current.iter().find(|c| &c.id == id).map(|c| c.file.clone());
            let problems: Vec<String> =
                diff.errors.iter().filter(|e| Some(&e.file) == file.as_ref()).map(ToString::to_string).collect();
            events::reload_failed(&self.recorder, id, &problems.join("; "));
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
        if notify {
            let mut note = "⚠️ Reload failed; the running configuration stays:".to_owned();
            for error in &report.errors {
                note.push_str(&format!("\n{error}"));
            }
            for (id, why) in &report.failed {
                note.push_str(&format!("\n{id}: {why}"));
            }
            let failed = !report.errors.is_empty() || !report.failed.is_empty();
            // An editor's save can trigger two reloads of the same broken file: tell the admins once.
            let mut last = self.last_note.lock();
            if failed && last.as_deref() != Some(note.as_str()) {
                self.notifier.notify(note.clone());
            }
            *last = failed.then_some(note);
        }
        *self.last.lock() = Some(report.clone());
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        report
    }
}
