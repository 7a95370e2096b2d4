//! [`Application`]: wires settings, plugins, configuration, the bot manager and the HTTP servers together,
//! watches `CONFIG_DIR` for hot reload, and runs until the shutdown token is cancelled (SIGINT/SIGTERM in
//! `main`). [`Listeners`] are the sockets the HTTP servers use, bound by the caller or from the settings.
//!
//! Hot reload: the watchers (debounced file events) and SIGHUP send a [`ReloadSignal`] to the fleet's
//! [`ReloadHandle`], which applies what changed.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use anyhow::Context;
use tokio::{net::TcpListener, sync::mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{error, info, warn};

use crate::{
    config::{
        self, ConfigError, EnvLookup, FsmBackend, Settings, WebhookEnv,
        watcher::{self, ConfigWatcher, ReloadSignal},
    },
    fleet::{
        BotManager, ReloadHandle, ReloadSetup,
        admin::{AdminFactory, Fleet, admin_bot_config},
        broadcasts::Broadcasts,
        control::Control,
        leases::Replication,
        reload::{config_invalid, scan_scripts},
    },
    fsm::{DatabaseFsm, FsmStorage, MemoryFsm, RedisFsm},
    http::{self, DatabaseProbe, HttpState, Phase, Readiness, console::Console},
    plugins::{
        Notifier, PluginRegistry,
        script::{ScriptCatalog, ScriptError, ScriptHost, ScriptLimits, is_script_file},
    },
    runtime::{
        Deps, InboxWriter,
        webhook::{StorageSecrets, Webhooks},
    },
    storage::{FleetLock, Holder, ProcessLock, Recorder, Storage},
    telegram::ApiClients,
    telemetry,
};

/// How long the HTTP servers may take to finish their requests once the bots have stopped.
const HTTP_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How often histograms are folded even when nobody scrapes `/metrics`, so they do not grow.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// The sockets the HTTP servers listen on, bound before the application is built (port 0 in tests).
pub struct Listeners {
    /// The health and metrics server's; `None` runs no health server.
    pub health: Option<TcpListener>,
    /// The webhook server's; `None` while webhooks are enabled serves them on `health` (one shared listener).
    pub webhook: Option<TcpListener>,
}

impl Listeners {
    /// Binds `0.0.0.0:HEALTH_CHECK_PORT` when `HEALTH_CHECK_ENABLED` and `0.0.0.0:WEBHOOK_PORT` when
    /// `WEBHOOK_ENABLED`; one listener for both when the ports are the same.
    pub async fn bind(settings: &Settings) -> anyhow::Result<Listeners> {
        let bind = |port: u16, what: &'static str| async move {
            TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
                .await
                .with_context(|| format!("binding the {what} server to port {port}"))
        };
        let health = match settings.health_check_enabled {
            true => Some(bind(settings.health_check_port, "health").await?),
            false => None,
        };
        let shared = health.is_some() && settings.webhook_port == settings.health_check_port;
        let webhook = match settings.webhook_enabled && !shared {
            true => Some(bind(settings.webhook_port, "webhook").await?),
            false => None,
        };
        Ok(Listeners { health, webhook })
    }
}

/// A built application, its bots started.
pub struct Application {
    manager: BotManager,
    storage: Storage,
    recorder: Recorder,
    inbox: InboxWriter,
    shutdown_timeout: Duration,
    shutdown: CancellationToken,
    config_errors: Vec<ConfigError>,
    script_errors: Vec<ScriptError>,
    reloads: mpsc::Sender<ReloadSignal>,
    reload_handle: ReloadHandle,
    _watcher: Option<ConfigWatcher>,
    _script_watcher: Option<ConfigWatcher>,
    readiness: Arc<Readiness>,
    health_addr: Option<SocketAddr>,
    webhook_addr: Option<SocketAddr>,
    /// Stops the HTTP servers, after the bots.
    http_stop: CancellationToken,
    http_tasks: TaskTracker,
    /// The application's own tasks (the reloader); the shutdown waits for them before it stops the bots.
    tasks: TaskTracker,
    /// No other process runs a fleet on this SQLite file while this one lives.
    _process_lock: Option<ProcessLock>,
    /// On PostgreSQL: no process runs this database's fleet beside this one, unless both are replicas.
    fleet_lock: Option<FleetLock>,
    /// With `REPLICA_ID`: the leases of the bots this replica runs, released once they are stopped.
    replication: Option<Arc<Replication>>,
}

impl Application {
    /// Binds the HTTP servers' ports from the settings, then builds as [`Application::build_with`] does.
    ///
    /// A program that runs the fleet of `CONFIG_DIR` with the built-in plugins and one of its own, as `multibot
    /// run` does:
    ///
    /// ```rust,no_run
    /// use multibot::{
    ///     app::Application,
    ///     config::{Settings, process_env},
    ///     plugins::PluginRegistry,
    ///     signals::{reload_on_sighup, shutdown_on_signals},
    ///     telemetry,
    /// };
    /// # use multibot::prelude::*;
    /// # #[derive(Deserialize)]
    /// # struct NoConfig {}
    /// # struct MyPlugin;
    /// # impl Plugin for MyPlugin {
    /// #     type Config = NoConfig;
    /// #     fn meta() -> PluginMeta {
    /// #         PluginMeta::new("my_plugin")
    /// #     }
    /// #     fn new(_config: NoConfig, _cx: &PluginContext) -> anyhow::Result<MyPlugin> {
    /// #         Ok(MyPlugin)
    /// #     }
    /// #     fn setup_handlers(&self, _handlers: &mut Handlers<'_, Self>) {}
    /// # }
    ///
    /// #[tokio::main]
    /// async fn main() -> anyhow::Result<()> {
    ///     let env = process_env();
    ///     let settings = Settings::from_env(&*env).map_err(|problems| anyhow::anyhow!(problems.join("\n")))?;
    ///     telemetry::init(&settings);
    ///     let mut registry = PluginRegistry::builtin();
    ///     registry.register::<MyPlugin>();
    ///
    ///     let app = Application::build(settings, registry, env).await?;
    ///     for problem in app.config_errors() {
    ///         eprintln!("not started: {problem}");
    ///     }
    ///     let (signals, stop) = (shutdown_on_signals(), app.shutdown_token());
    ///     // Only passes SIGINT or SIGTERM on to the application: nothing to track.
    ///     tokio::spawn(async move {
    ///         signals.cancelled().await;
    ///         stop.cancel();
    ///     });
    ///     reload_on_sighup(app.reload_sender());
    ///     app.run_until_stopped().await
    /// }
    /// ```
    pub async fn build(settings: Settings, registry: PluginRegistry, env: EnvLookup) -> anyhow::Result<Application> {
        let listeners = Listeners::bind(&settings).await?;
        Application::build_with(settings, registry, env, listeners).await
    }

    /// Opens the database (migrating it unless `MIGRATE_ON_START=false`), starts the HTTP servers on
    /// `listeners`, loads the script plugins of `PLUGINS_DIR` and the bot configurations and starts every enabled
    /// bot (and the admin bot); bad files are logged, recorded as events and skipped. `/health/ready` answers 200
    /// from the moment this returns. With `ENABLE_HOT_RELOAD`, starts watching `CONFIG_DIR` and `PLUGINS_DIR`.
    pub async fn build_with(
        settings: Settings,
        mut registry: PluginRegistry,
        env: EnvLookup,
        listeners: Listeners,
    ) -> anyhow::Result<Application> {
        let fleet: Arc<OnceLock<Fleet>> = Arc::default();
        registry.register_factory(Arc::new(AdminFactory::new(fleet.clone())));
        let notifier = Notifier::default();
        let api_url = reqwest::Url::parse(&settings.telegram_api_url).context("TELEGRAM_API_URL")?;
        crate::tls::install_provider();
        crate::tls::check_trust_settings(|name| std::env::var(name).ok())?;
        let timeout = settings.polling_timeout + Duration::from_secs(15);
        let http = ApiClients::new(&api_url, settings.telegram_api_http, timeout)?;
        let process_lock = ProcessLock::acquire(&settings.database_url)?;
        let url = &settings.database_url;
        let storage = Storage::open(url).await.with_context(|| format!("opening the database {url}"))?;
        let shutdown = CancellationToken::new();
        // Before any migration: a second process must not change the schema under the one running the fleet.
        let holder = if settings.replica_id.is_some() { Holder::Replica } else { Holder::Alone };
        let fleet_lock = FleetLock::acquire(url, holder, shutdown.clone()).await?;
        prepare_schema(&settings, &storage).await?;
        let recorder = Recorder::spawn(storage.clone(), Recorder::DEFAULT_CAPACITY);
        let inbox = InboxWriter::spawn(storage.clone());
        let webhooks =
            WebhookEnv { enabled: settings.webhook_enabled, base_url_set: settings.webhook_base_url.is_some() };
        // Scripts join the registry first: bot files are checked against it. Their `state.*` is in the database.
        let (limits, state) = (ScriptLimits::from_settings(&settings), Arc::new(storage.clone()));
        let host = ScriptHost { limits, state, notifier: notifier.clone() };
        let mut scripts = ScriptCatalog::new(settings.plugins_dir.clone(), host);
        let script_errors = scan_scripts(&mut scripts, &registry, &recorder).errors;
        let loaded = config::load_dir(&settings.config_dir, &*env, &registry, webhooks);
        config_invalid(&recorder, &loaded.errors);
        if loaded.bots.is_empty() {
            warn!(dir = %settings.config_dir.display(), "no valid bot configuration found");
        }
        let registry = Arc::new(registry);
        let settings = Arc::new(settings);
        let webhook_routes = settings.webhook_enabled.then(|| {
            let secrets = Arc::new(StorageSecrets::new(storage.clone()));
            Arc::new(Webhooks::new(settings.webhook_base_url.clone(), settings.webhook_inbox_size, secrets))
        });
        let database: Arc<dyn DatabaseProbe> = Arc::new(storage.clone());
        let tasks = TaskTracker::new();
        let (fsm, redis) = fsm_storage(&settings, &storage, &tasks, &shutdown)?;
        let replication = settings.replica_id.clone().map(|id| Replication::new(id, settings.lease_ttl));
        let deps = Deps {
            settings: settings.clone(),
            registry: registry.clone(),
            http,
            api_url,
            fsm,
            shutdown: shutdown.clone(),
            webhooks: webhook_routes.clone(),
            storage: storage.clone(),
            recorder: recorder.clone(),
            inbox: inbox.clone(),
            notifier: notifier.clone(),
            poll_gate: replication.clone().map(|replication| {
                Arc::new(move |bot: &crate::config::BotId| replication.may_poll(bot)) as crate::runtime::PollGate
            }),
        };
        let manager = match &replication {
            Some(replication) => BotManager::replicated(deps, replication.clone()),
            None => BotManager::new(deps),
        };
        let reload_handle = ReloadHandle::new(ReloadSetup {
            manager: manager.clone(),
            registry,
            scripts,
            env,
            config_dir: settings.config_dir.clone(),
            webhooks,
            recorder: recorder.clone(),
            notifier: notifier.clone(),
        });
        let control = Control::new(manager.clone(), reload_handle.clone(), storage.clone());
        let broadcasts = Broadcasts::new(storage.clone(), manager.clone(), recorder.clone(), notifier.clone());
        let (http_stop, http_tasks) = (CancellationToken::new(), TaskTracker::new());
        if settings.console_token.is_some() && !settings.health_check_enabled {
            warn!(
                "CONSOLE_TOKEN is set but HEALTH_CHECK_ENABLED=false: the console is served on the health port, so there is none"
            );
        }
        let console = settings.console_token.as_ref().filter(|_| settings.health_check_enabled).map(|token| {
            let (control, storage, recorder) = (control.clone(), storage.clone(), recorder.clone());
            Console::new(token, control, broadcasts.clone(), manager.clone(), storage, recorder, http_stop.clone())
        });
        if let Some(console) = &console {
            http_tasks.spawn(console.clone().sample());
        }
        let readiness = Arc::new(Readiness::default());
        let state = HttpState {
            manager: manager.clone(),
            readiness: readiness.clone(),
            database,
            redis: redis.map(|r| r as Arc<dyn DatabaseProbe>),
            metrics: telemetry::metrics::install(),
            webhooks: webhook_routes,
            started_at: Instant::now(),
            metrics_token: settings.metrics_token.clone(),
            probes: Arc::default(),
            console,
        };
        let limits = http::ServerLimits {
            header_timeout: settings.http_header_timeout,
            body_timeout: settings.http_body_timeout,
            max_connections: settings.http_max_connections,
        };
        let (health_addr, webhook_addr) =
            serve_http(state.clone(), listeners, settings.webhook_enabled, limits, &http_stop, &http_tasks)?;
        let upkeep = http_stop.clone();
        http_tasks.spawn(async move {
            let mut tick = tokio::time::interval(METRICS_UPKEEP);
            loop {
                tokio::select! {
                    _ = tick.tick() => state.metrics.run_upkeep(),
                    () = upkeep.cancelled() => return,
                }
            }
        });

        let _ = fleet.set(Fleet {
            manager: manager.clone(),
            control: control.clone(),
            broadcasts: broadcasts.clone(),
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
        readiness.set(Phase::Ready);
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
        let script_watcher = if settings.enable_hot_reload && settings.plugins_dir.is_dir() {
            match watcher::watch_tree(&settings.plugins_dir, is_script_file, reloads.clone()) {
                Ok(watcher) => Some(watcher),
                Err(e) => {
                    warn!(dir = %settings.plugins_dir.display(), error = %e, "script hot reload disabled: cannot watch the directory");
                    None
                }
            }
        } else {
            None
        };
        tasks.spawn(reload_handle.clone().run(signals, shutdown.clone()));
        tasks.spawn(broadcasts.run(shutdown.clone()));
        if let Some(replication) = &replication {
            info!(replica = replication.replica(), "running the bots whose leases this replica takes");
            tasks.spawn(replication.clone().keep(manager.clone(), storage.clone(), shutdown.clone(), tasks.clone()));
            tasks.spawn(control.serve(shutdown.clone()));
        }
        if let Some(retention) = settings.events_retention {
            tasks.spawn(crate::storage::retention::run(storage.clone(), retention, shutdown.clone()));
        }
        Ok(Application {
            manager,
            storage,
            recorder,
            inbox,
            shutdown_timeout: settings.shutdown_timeout,
            shutdown,
            config_errors: loaded.errors,
            script_errors,
            reloads,
            reload_handle,
            _watcher: watcher,
            _script_watcher: script_watcher,
            readiness,
            health_addr,
            webhook_addr,
            http_stop,
            http_tasks,
            tasks,
            _process_lock: process_lock,
            fleet_lock,
            replication,
        })
    }

    /// The address the health and metrics server listens on, when it runs.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_addr
    }

    /// The address the webhook server listens on, when webhooks are enabled (the health address when shared).
    pub fn webhook_addr(&self) -> Option<SocketAddr> {
        self.webhook_addr
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
        self.reload_handle.clone()
    }

    /// Runs until the shutdown token is cancelled, then lets a reload under way finish, stops every bot (each
    /// drains and confirms its updates), the HTTP servers, and writes what is buffered for the database (waiting
    /// at most `SHUTDOWN_TIMEOUT`); meanwhile `/health/ready` answers 503.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.shutdown.cancelled().await;
        info!("shutting down");
        self.readiness.set(Phase::ShuttingDown);
        drop(self._watcher);
        drop(self._script_watcher);
        // A reload under way may still start a bot: it finishes first, so that the bots it starts stop below.
        self.tasks.close();
        if tokio::time::timeout(self.shutdown_timeout, self.tasks.wait()).await.is_err() {
            warn!("a reload still runs after the grace period; stopping the bots anyway");
        }
        self.manager.stop_all().await;
        if let Some(replication) = &self.replication {
            replication.leave(&self.storage).await;
        }
        self.http_stop.cancel();
        self.http_tasks.close();
        if tokio::time::timeout(HTTP_SHUTDOWN_GRACE, self.http_tasks.wait()).await.is_err() {
            warn!("HTTP servers still busy after the grace period; leaving them");
        }
        self.inbox.close(self.shutdown_timeout).await;
        self.recorder.close(self.shutdown_timeout).await;
        self.storage.close().await;
        if self.fleet_lock.as_ref().is_some_and(FleetLock::is_lost) {
            anyhow::bail!("stopped: another process took this database's fleet while the connection to it was down");
        }
        Ok(())
    }
}

/// Starts the health server (with the webhook route too when it shares the listener) and the webhook server;
/// returns their addresses.
fn serve_http(
    state: HttpState,
    listeners: Listeners,
    webhooks_enabled: bool,
    limits: http::ServerLimits,
    stop: &CancellationToken,
    tasks: &TaskTracker,
) -> anyhow::Result<(Option<SocketAddr>, Option<SocketAddr>)> {
    let shared = webhooks_enabled && listeners.webhook.is_none();
    if shared && listeners.health.is_none() {
        anyhow::bail!("WEBHOOK_ENABLED is true but the webhook server has no listener");
    }
    let spawn = |listener: TcpListener, router: axum::Router, what: &'static str| -> anyhow::Result<SocketAddr> {
        let addr = listener.local_addr().with_context(|| format!("the {what} server's address"))?;
        let stop = stop.clone();
        tasks.spawn(async move {
            if let Err(e) = http::serve(listener, router, stop, limits).await {
                error!(error = %e, server = what, "HTTP server failed");
            }
        });
        info!(%addr, server = what, "HTTP server listening");
        Ok(addr)
    };
    let health_addr = match listeners.health {
        Some(listener) if shared => Some(spawn(listener, http::router(state.clone()), "health and webhook")?),
        Some(listener) => Some(spawn(listener, http::health_router(state.clone()), "health")?),
        None => None,
    };
    let webhook_addr = match listeners.webhook {
        Some(listener) if webhooks_enabled => Some(spawn(listener, http::webhook_router(state), "webhook")?),
        _ if shared => health_addr,
        _ => None,
    };
    Ok((health_addr, webhook_addr))
}

/// The FSM store, and the Redis client when it is Redis (for the health routes).
type FsmChoice = (Arc<dyn FsmStorage>, Option<Arc<RedisFsm>>);

/// The FSM store `FSM_STORAGE` (or `REDIS_URL`) selects; in memory, its sweeper of expired records joins `tasks`.
fn fsm_storage(
    settings: &Settings,
    storage: &Storage,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<FsmChoice> {
    use secrecy::ExposeSecret;
    Ok(match (settings.fsm_storage, &settings.redis_url) {
        (FsmBackend::Database, _) => (Arc::new(DatabaseFsm::new(storage.clone())), None),
        (FsmBackend::Redis, Some(url)) => {
            let redis = Arc::new(RedisFsm::new(url.expose_secret(), settings.fsm_ttl)?);
            (redis.clone(), Some(redis))
        }
        _ => {
            let memory = Arc::new(MemoryFsm::new(settings.fsm_ttl));
            tasks.spawn(memory.clone().sweep_every(shutdown.clone()));
            (memory, None)
        }
    })
}

/// Brings `storage`'s schema to this binary's: migrates when `MIGRATE_ON_START`, else checks that nothing is pending.
/// A schema newer than this binary knows is refused either way.
async fn prepare_schema(settings: &Settings, storage: &Storage) -> anyhow::Result<()> {
    let url = &settings.database_url;
    if settings.migrate_on_start {
        for migration in storage.migrate().await.with_context(|| format!("migrating the database {url}"))? {
            info!(version = migration.version, description = %migration.description, "migration applied");
        }
    } else {
        storage.check_schema().await.with_context(|| format!("checking the database {url}"))?;
    }
    info!(database = %url, backend = %storage.backend(), "database ready");
    Ok(())
}
