//! [`Application`]: wires settings, plugins, configuration and the bot manager together, and runs until the
//! shutdown token is cancelled (SIGINT/SIGTERM in `main`).

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::{
    bots::{BotManager, Deps},
    config::{self, ConfigError, Settings, WebhookEnv},
    fsm::MemoryFsm,
    plugins::PluginRegistry,
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
    shutdown: CancellationToken,
    config_errors: Vec<ConfigError>,
}

impl Application {
    /// Loads the bot configurations and starts every enabled bot; bad files are logged and skipped.
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
        let loaded = config::load_dir(&settings.config_dir, &*env, &registry, webhooks);
        for problem in &loaded.errors {
            error!(file = %problem.file.display(), "invalid configuration: {problem}");
        }
        if loaded.bots.is_empty() {
            warn!(dir = %settings.config_dir.display(), "no valid bot configuration found");
        }
        let deps = Deps {
            settings: Arc::new(settings),
            registry: Arc::new(registry),
            http,
            api_url,
            fsm: Arc::new(MemoryFsm::default()),
            shutdown: shutdown.clone(),
        };
        let manager = BotManager::new(deps);
        let configured = loaded.bots.len();
        let running = manager.start_all(loaded.bots).await;
        info!(configured, running, invalid_files = loaded.errors.len(), "fleet started");
        Ok(Application { manager, shutdown, config_errors: loaded.errors })
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

    /// Runs until the shutdown token is cancelled, then stops every bot (each drains and confirms its updates).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.shutdown.cancelled().await;
        info!("shutting down");
        self.manager.stop_all().await;
        Ok(())
    }
}
