//! [`Application`]: wires settings, plugins, configuration and the bot manager together, and runs until the
//! shutdown token is cancelled (SIGINT/SIGTERM in `main`).

use std::{collections::BTreeMap, path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    bots::{BotManager, Deps},
    config::{self, ConfigError, Settings, WebhookEnv},
    fsm::MemoryFsm,
    plugins::PluginRegistry,
    storage::{Recorder, Storage, events},
};

/// Looks up a variable for `${VAR}` substitution.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process environment as an [`EnvLookup`].
pub fn process_env() -> EnvLookup {
    Arc::new(|name| std::env::var(name).ok())
}

/// A built application, its bots started.
pub struct Application {
    manager: BotManager,
    storage: Storage,
    recorder: Recorder,
    shutdown_timeout: Duration,
    shutdown: CancellationToken,
    config_errors: Vec<ConfigError>,
}

impl Application {
    /// Opens the database (migrating it unless `MIGRATE_ON_START=false`), loads the bot configurations and starts
    /// every enabled bot; bad files are logged, recorded as events and skipped.
    pub async fn build(settings: Settings, registry: PluginRegistry, env: EnvLookup) -> anyhow::Result<Application> {
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
        let mut invalid: BTreeMap<&Path, Vec<&ConfigError>> = BTreeMap::new();
        for problem in &loaded.errors {
            invalid.entry(&problem.file).or_default().push(problem);
        }
        for (file, problems) in invalid {
            events::config_invalid(&recorder, file, &problems);
        }
        if loaded.bots.is_empty() {
            warn!(dir = %settings.config_dir.display(), "no valid bot configuration found");
        }
        let shutdown_timeout = settings.shutdown_timeout;
        let deps = Deps {
            settings: Arc::new(settings),
            registry: Arc::new(registry),
            http,
            api_url,
            fsm: Arc::new(MemoryFsm::default()),
            shutdown: shutdown.clone(),
            storage: storage.clone(),
            recorder: recorder.clone(),
        };
        let manager = BotManager::new(deps);
        let configured = loaded.bots.len();
        let running = manager.start_all(loaded.bots).await;
        info!(configured, running, invalid_files = loaded.errors.len(), "fleet started");
        Ok(Application { manager, storage, recorder, shutdown_timeout, shutdown, config_errors: loaded.errors })
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

    /// Runs until the shutdown token is cancelled, then stops every bot (each drains and confirms its updates)
    /// and writes what is buffered for the database (waiting at most `SHUTDOWN_TIMEOUT`).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.shutdown.cancelled().await;
        info!("shutting down");
        self.manager.stop_all().await;
        self.recorder.close(self.shutdown_timeout).await;
        self.storage.close().await;
        Ok(())
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
