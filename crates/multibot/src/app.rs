//! [`Application`]: wires settings, plugins, configuration, the bot manager and the HTTP servers together, and
//! runs until the shutdown token is cancelled (SIGINT/SIGTERM in `main`). [`Listeners`] are the sockets the HTTP
//! servers use, bound by the caller or from the settings.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{error, info, warn};

use crate::{
    bots::{
        BotManager, Deps,
        webhook::{FileSecrets, Webhooks},
    },
    config::{self, ConfigError, Settings, WebhookEnv},
    fsm::MemoryFsm,
    http::{self, DatabaseProbe, HttpState, NoDatabase, Phase, Readiness},
    plugins::PluginRegistry,
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

/// Looks up a variable for `${VAR}` substitution.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process environment as an [`EnvLookup`].
pub fn process_env() -> EnvLookup {
    Arc::new(|name| std::env::var(name).ok())
}

/// A built application, its bots started.
pub struct Application {
    manager: BotManager,
    shutdown: CancellationToken,
    config_errors: Vec<ConfigError>,
    readiness: Arc<Readiness>,
    health_addr: Option<SocketAddr>,
    webhook_addr: Option<SocketAddr>,
    /// Stops the HTTP servers, after the bots.
    http_stop: CancellationToken,
    http_tasks: TaskTracker,
}

impl Application {
    /// Binds the HTTP servers' ports from the settings, then builds as [`Application::build_with`] does.
    pub async fn build(settings: Settings, registry: PluginRegistry, env: EnvLookup) -> anyhow::Result<Application> {
        let listeners = Listeners::bind(&settings).await?;
        Application::build_with(settings, registry, env, listeners).await
    }

    /// Starts the HTTP servers on `listeners`, loads the bot configurations and starts every enabled bot (bad
    /// files are logged and skipped); `/health/ready` answers 200 from the moment this returns.
    pub async fn build_with(
        settings: Settings,
        registry: PluginRegistry,
        env: EnvLookup,
        listeners: Listeners,
    ) -> anyhow::Result<Application> {
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
        let loaded = config::load_dir(&settings.config_dir, &*env, &registry, webhooks);
        for problem in &loaded.errors {
            error!(file = %problem.file.display(), "invalid configuration: {problem}");
        }
        if loaded.bots.is_empty() {
            warn!(dir = %settings.config_dir.display(), "no valid bot configuration found");
        }
        // Integration points: the secrets store and the database check move to the database once it exists.
        let webhooks = settings.webhook_enabled.then(|| {
            let secrets = Arc::new(FileSecrets::new(&settings.data_dir));
            Arc::new(Webhooks::new(settings.webhook_base_url.clone(), settings.webhook_inbox_size, secrets))
        });
        let database: Arc<dyn DatabaseProbe> = Arc::new(NoDatabase);
        let deps = Deps {
            settings: Arc::new(settings),
            registry: Arc::new(registry),
            http,
            api_url,
            fsm: Arc::new(MemoryFsm::default()),
            shutdown: shutdown.clone(),
            webhooks: webhooks.clone(),
        };
        let webhooks_enabled = deps.settings.webhook_enabled;
        let manager = BotManager::new(deps);
        let readiness = Arc::new(Readiness::default());
        let state = HttpState {
            manager: manager.clone(),
            readiness: readiness.clone(),
            database,
            metrics: telemetry::metrics::install(),
            webhooks,
            started_at: Instant::now(),
        };
        let (http_stop, http_tasks) = (CancellationToken::new(), TaskTracker::new());
        let (health_addr, webhook_addr) =
            serve_http(state.clone(), listeners, webhooks_enabled, &http_stop, &http_tasks)?;
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
        let configured = loaded.bots.len();
        let running = manager.start_all(loaded.bots).await;
        readiness.set(Phase::Ready);
        info!(configured, running, invalid_files = loaded.errors.len(), "fleet started");
        Ok(Application {
            manager,
            shutdown,
            config_errors: loaded.errors,
            readiness,
            health_addr,
            webhook_addr,
            http_stop,
            http_tasks,
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

    /// Cancelling it stops the application.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The configuration problems found at start.
    pub fn config_errors(&self) -> &[ConfigError] {
        &self.config_errors
    }

    /// Runs until the shutdown token is cancelled, then stops every bot (each drains and confirms its updates),
    /// then the HTTP servers; meanwhile `/health/ready` answers 503.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.shutdown.cancelled().await;
        info!("shutting down");
        self.readiness.set(Phase::ShuttingDown);
        self.manager.stop_all().await;
        self.http_stop.cancel();
        self.http_tasks.close();
        if tokio::time::timeout(HTTP_SHUTDOWN_GRACE, self.http_tasks.wait()).await.is_err() {
            warn!("HTTP servers still busy after the grace period; leaving them");
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
            if let Err(e) = http::serve(listener, router, stop).await {
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
