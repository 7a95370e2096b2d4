//! `Settings`: the environment variables Multibot reads, with the spec's defaults. A `.env` file is loaded by
//! `main` before this runs; real environment variables win.

use std::{path::PathBuf, time::Duration};

use super::BotToken;
use super::{Backend, DatabaseUrl};

/// Log line format (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (the default, for production).
    Json,
    /// Human-readable lines.
    Text,
}

/// Process-wide settings from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `ADMIN_BOT_TOKEN`: the admin bot's token; none runs without an admin bot.
    pub admin_bot_token: Option<BotToken>,
    /// `ADMIN_ALLOWED_USERS`: user ids allowed to use the admin bot.
    pub admin_allowed_users: Vec<i64>,
    /// `ADMIN_CONFIRM_TIMEOUT`: seconds an admin's Confirm button stays valid (default 300).
    pub admin_confirm_timeout: Duration,
    /// `LOG_LEVEL`: DEBUG, INFO, WARNING or ERROR (default INFO), as a tracing filter directive.
    pub log_level: String,
    /// `LOG_FORMAT`: json (default) or text.
    pub log_format: LogFormat,
    /// `HEALTH_CHECK_ENABLED` (default true).
    pub health_check_enabled: bool,
    /// `HEALTH_CHECK_PORT` (default 8080).
    pub health_check_port: u16,
    /// `HTTP_HEADER_TIMEOUT`: seconds a client may take to send a request's headers, and an idle keep-alive
    /// connection may wait for its next request (default 10).
    pub http_header_timeout: Duration,
    /// `HTTP_BODY_TIMEOUT`: seconds a client may take to send a request's body (default 30).
    pub http_body_timeout: Duration,
    /// `HTTP_MAX_CONNECTIONS`: connections each HTTP server holds open at once (default 1024).
    pub http_max_connections: usize,
    /// `METRICS_TOKEN`: the bearer token `/health/full` and `/metrics` ask for; none leaves them open.
    pub metrics_token: Option<secrecy::SecretString>,
    /// `CONSOLE_TOKEN`: set (16 characters or more), the web console is served at `/console` on the health
    /// listener and logs in with it; unset, there is no console.
    pub console_token: Option<secrecy::SecretString>,
    /// `WEBHOOK_ENABLED` (default false).
    pub webhook_enabled: bool,
    /// `WEBHOOK_BASE_URL`: public URL of the webhook server.
    pub webhook_base_url: Option<String>,
    /// `WEBHOOK_PORT` (default 8443).
    pub webhook_port: u16,
    /// `WEBHOOK_INBOX_SIZE`: updates a webhook bot holds before answering 503 (default 256).
    pub webhook_inbox_size: usize,
    /// `ENABLE_HOT_RELOAD` (default true).
    pub enable_hot_reload: bool,
    /// `CONFIG_DIR` (default `./config/bots`).
    pub config_dir: PathBuf,
    /// `PLUGINS_DIR` (default `./plugins`).
    pub plugins_dir: PathBuf,
    /// `TELEGRAM_API_URL` (default `https://api.telegram.org`).
    pub telegram_api_url: String,
    /// `TELEGRAM_API_HTTP`: the HTTP version spoken to the Bot API, `auto`, `1.1` or `2` (default `auto`: HTTP/2
    /// when an `https://` server offers it, as `api.telegram.org` does).
    pub telegram_api_http: HttpVersion,
    /// `DATA_DIR` (default `./data`).
    pub data_dir: PathBuf,
    /// `POLLING_TIMEOUT`: getUpdates long-poll timeout in seconds (default 25).
    pub polling_timeout: Duration,
    /// `SHUTDOWN_TIMEOUT`: seconds a stopping bot may take to finish in-flight updates (default 10).
    pub shutdown_timeout: Duration,
    /// `MAX_CONCURRENT_UPDATES`: updates one bot handles at once, across chats (default 64).
    pub max_concurrent_updates: usize,
    /// `FLOOD_CONTROL`: pace what bots send within Telegram's limits (default true; turn it off only against a
    /// local emulator, e.g. for benchmarks).
    pub flood_control: bool,
    /// `FLOOD_MAX_WAIT`: seconds one Bot API call may spend waiting out 429 answers in total before it fails
    /// with the 429 (default 60; 0 retries no 429).
    pub flood_max_wait: Duration,
    /// `HANDLER_TIMEOUT`: how long one handler may run before its update is finished as failed (default 60 s;
    /// `0`, none: no limit). A bot's `settings.handler_timeout` overrides it.
    pub handler_timeout: Option<Duration>,
    /// `SCRIPT_MEMORY_LIMIT_MB`: memory one script plugin instance may use, in MiB (default 16).
    pub script_memory_limit_mb: usize,
    /// `SCRIPT_TIMEOUT_MS`: CPU time one script handler call may run (default 1000 ms).
    pub script_timeout: Duration,
    /// `DATABASE_URL`: PostgreSQL or SQLite (default: the SQLite file `DATA_DIR/multibot.db`).
    pub database_url: DatabaseUrl,
    /// `MIGRATE_ON_START`: apply pending migrations when `run` starts (default true).
    pub migrate_on_start: bool,
    /// `REDIS_URL`: Redis for FSM storage; set, it selects Redis unless `FSM_STORAGE` says otherwise. Secret: it
    /// may hold a password.
    pub redis_url: Option<secrecy::SecretString>,
    /// `FSM_STORAGE`: `memory`, `database` or `redis` (default: `redis` when `REDIS_URL` is set, else `database`
    /// with `REPLICA_ID`, else `memory`).
    pub fsm_storage: FsmBackend,
    /// `FSM_TTL`: seconds after which an idle conversation's state expires, in memory and in Redis (default: never).
    pub fsm_ttl: Option<Duration>,
    /// `INBOX`: where a polling bot keeps updates between receiving and handling them (default `database`).
    pub inbox: InboxMode,
    /// `CHAT_BACKLOG`: updates of one chat a bot keeps waiting; past it the chat's oldest are dropped (default 1000).
    pub chat_backlog: usize,
    /// `MAX_PENDING_UPDATES`: updates a polling bot holds received but unfinished before it stops polling until
    /// some finish (default 10000).
    pub max_pending_updates: usize,
    /// `EVENTS_RETENTION_DAYS`: days `bot_events` rows are kept (default 30); `None` (`0`) keeps them forever.
    pub events_retention: Option<Duration>,
    /// `REPLICA_ID`: this process's name among the replicas sharing one PostgreSQL database (`auto`: the host
    /// name); set, each bot runs on the one replica that holds its lease (unset: this process runs every bot).
    pub replica_id: Option<String>,
    /// `LEASE_TTL_SECONDS`: how long a lease on a bot lasts without renewal (default 6).
    pub lease_ttl: Duration,
}

/// `CONSOLE_TOKEN`, refused when it is short enough to guess (the error does not show it).
fn console_token(token: Option<String>, errors: &mut Vec<String>) -> Option<secrecy::SecretString> {
    const SHORTEST: usize = 16;
    let token = token?;
    if token.chars().count() < SHORTEST {
        errors.push(format!("CONSOLE_TOKEN must be at least {SHORTEST} characters long (its value is not shown)"));
        return None;
    }
    Some(secrecy::SecretString::from(token))
}

/// The HTTP version the Bot API client speaks (`TELEGRAM_API_HTTP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/2 when the server offers it in the TLS handshake (ALPN), as `api.telegram.org` does; HTTP/1.1
    /// otherwise, and always over plain `http://` (a self-hosted Bot API server speaks only HTTP/1.1).
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only, also over plain `http://` (prior knowledge): for a server or proxy known to speak it.
    Http2,
}

impl HttpVersion {
    /// Parses `auto`, `1.1` or `2`.
    pub fn parse(text: &str) -> Option<HttpVersion> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(HttpVersion::Auto),
            "1.1" => Some(HttpVersion::Http1),
            "2" => Some(HttpVersion::Http2),
            _ => None,
        }
    }
}

/// Where received updates wait to be handled (`INBOX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxMode {
    /// The `inbox` table: stored before they are confirmed, so none is lost and a finished one never runs again.
    Database,
    /// Process memory, confirmed once handled: at-least-once, and a slow chat holds back what the bot sees.
    Memory,
}

/// Where FSM state lives (`FSM_STORAGE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsmBackend {
    /// Process memory: lost on restart.
    Memory,
    /// The database's `plugin_state` table.
    Database,
    /// Redis at `REDIS_URL`.
    Redis,
}

/// Every variable [`Settings`] reads, for `.env.example` and the README.
pub const VARIABLES: &[&str] = &[
    "ADMIN_BOT_TOKEN",
    "ADMIN_ALLOWED_USERS",
    "ADMIN_CONFIRM_TIMEOUT",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "HEALTH_CHECK_ENABLED",
    "HEALTH_CHECK_PORT",
    "HTTP_HEADER_TIMEOUT",
    "HTTP_BODY_TIMEOUT",
    "HTTP_MAX_CONNECTIONS",
    "METRICS_TOKEN",
    "CONSOLE_TOKEN",
    "WEBHOOK_ENABLED",
    "WEBHOOK_BASE_URL",
    "WEBHOOK_PORT",
    "WEBHOOK_INBOX_SIZE",
    "ENABLE_HOT_RELOAD",
    "CONFIG_DIR",
    "PLUGINS_DIR",
    "TELEGRAM_API_URL",
    "TELEGRAM_API_HTTP",
    "DATA_DIR",
    "POLLING_TIMEOUT",
    "SHUTDOWN_TIMEOUT",
    "MAX_CONCURRENT_UPDATES",
    "FLOOD_CONTROL",
    "FLOOD_MAX_WAIT",
    "HANDLER_TIMEOUT",
    "SCRIPT_MEMORY_LIMIT_MB",
    "SCRIPT_TIMEOUT_MS",
    "DATABASE_URL",
    "MIGRATE_ON_START",
    "REDIS_URL",
    "FSM_STORAGE",
    "FSM_TTL",
    "INBOX",
    "CHAT_BACKLOG",
    "MAX_PENDING_UPDATES",
    "EVENTS_RETENTION_DAYS",
    "REPLICA_ID",
    "LEASE_TTL_SECONDS",
];

impl Settings {
    /// Settings with every default, for commands that work without a valid environment.
    pub fn defaults() -> Settings {
        let Ok(settings) = Settings::from_env(&|_| None) else { unreachable!("the defaults are valid") };
        settings
    }

    /// Reads the settings through `get` (the process environment in production); reports every bad value.
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Settings, Vec<String>> {
        let mut errors = Vec::new();
        let text = |name: &str| get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let flag = |name: &str, default: bool, errors: &mut Vec<String>| match text(name) {
            None => default,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    errors.push(format!("{name}={v:?} is not a boolean (use true or false)"));
                    default
                }
            },
        };
        let number = |name: &str, default: u64, min: u64, max: u64, errors: &mut Vec<String>| match text(name) {
            None => default,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => n,
                _ => {
                    errors.push(format!("{name}={v:?} must be a whole number from {min} to {max}"));
                    default
                }
            },
        };
        let admin_bot_token = text("ADMIN_BOT_TOKEN").and_then(|t| match BotToken::parse(&t) {
            Ok(token) => Some(token),
            Err(e) => {
                errors.push(format!("ADMIN_BOT_TOKEN: {e}"));
                None
            }
        });
        let mut admin_allowed_users = Vec::new();
        for part in text("ADMIN_ALLOWED_USERS").unwrap_or_default().split(',').map(str::trim).filter(|p| !p.is_empty())
        {
            match part.parse::<i64>() {
                Ok(id) if id > 0 => admin_allowed_users.push(id),
                _ => errors.push(format!("ADMIN_ALLOWED_USERS: {part:?} is not a user id")),
            }
        }
        let log_level = match text("LOG_LEVEL").unwrap_or_else(|| "INFO".into()).to_ascii_uppercase().as_str() {
            "TRACE" => "trace",
            "DEBUG" => "debug",
            "INFO" => "info",
            "WARNING" | "WARN" => "warn",
            "ERROR" | "CRITICAL" => "error",
            other => {
                errors.push(format!("LOG_LEVEL={other:?} must be DEBUG, INFO, WARNING or ERROR"));
                "info"
            }
        }
        .to_owned();
        let log_format = match text("LOG_FORMAT").unwrap_or_else(|| "json".into()).to_ascii_lowercase().as_str() {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                errors.push(format!("LOG_FORMAT={other:?} must be json or text"));
                LogFormat::Json
            }
        };
        let health_check_enabled = flag("HEALTH_CHECK_ENABLED", true, &mut errors);
        let health_check_port = number("HEALTH_CHECK_PORT", 8080, 0, 65535, &mut errors) as u16;
        let webhook_enabled = flag("WEBHOOK_ENABLED", false, &mut errors);
        let webhook_base_url = text("WEBHOOK_BASE_URL").map(|u| u.trim_end_matches('/').to_owned());
        if let Some(url) = &webhook_base_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            errors.push(format!("WEBHOOK_BASE_URL={url:?} must start with https:// (or http://)"));
        }
        let webhook_port = number("WEBHOOK_PORT", 8443, 0, 65535, &mut errors) as u16;
        let webhook_inbox_size = number("WEBHOOK_INBOX_SIZE", 256, 1, 100_000, &mut errors) as usize;
        let enable_hot_reload = flag("ENABLE_HOT_RELOAD", true, &mut errors);
        let telegram_api_url = text("TELEGRAM_API_URL").unwrap_or_else(|| "https://api.telegram.org".into());
        if reqwest::Url::parse(&telegram_api_url).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
            errors.push(format!("TELEGRAM_API_URL={telegram_api_url:?} is not an http(s) URL"));
        }
        let data_dir: PathBuf = text("DATA_DIR").unwrap_or_else(|| "./data".into()).into();
        let database_url = match text("DATABASE_URL") {
            None => DatabaseUrl::sqlite_file(data_dir.join("multibot.db")),
            Some(url) => DatabaseUrl::parse(&url).unwrap_or_else(|e| {
                errors.push(format!("DATABASE_URL: {e}"));
                DatabaseUrl::sqlite_file(data_dir.join("multibot.db"))
            }),
        };
        let migrate_on_start = flag("MIGRATE_ON_START", true, &mut errors);
        // `auto`: the host name, which is the pod's name in Kubernetes and the container's id under Compose.
        let replica_id = text("REPLICA_ID").map(|id| match id.as_str() {
            "auto" => std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned(),
            _ => id,
        });
        if let Some(id) = &replica_id {
            let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
            if id.is_empty() || id.len() > 64 || !id.chars().all(allowed) {
                errors.push(format!("REPLICA_ID={id:?} must be at most 64 letters, digits, '.', '_' or '-'"));
            }
            if database_url.backend() != Backend::Postgres {
                errors.push(
                    "REPLICA_ID needs PostgreSQL (DATABASE_URL=postgres://...): one process runs an SQLite fleet"
                        .to_owned(),
                );
            }
        }
        let redis_url = text("REDIS_URL");
        if let Some(url) = &redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://"))
        {
            errors.push("REDIS_URL must start with redis://, rediss:// or unix://".to_owned());
        }
        let fsm_storage = match text("FSM_STORAGE").map(|v| v.to_ascii_lowercase()).as_deref() {
            None if redis_url.is_some() => FsmBackend::Redis,
            // A bot moves between replicas: its conversations move with it.
            None if replica_id.is_some() => FsmBackend::Database,
            None | Some("memory") => FsmBackend::Memory,
            Some("database") => FsmBackend::Database,
            Some("redis") if redis_url.is_some() => FsmBackend::Redis,
            Some("redis") => {
                errors.push("FSM_STORAGE=redis needs REDIS_URL".to_owned());
                FsmBackend::Memory
            }
            Some(other) => {
                errors.push(format!("FSM_STORAGE={other:?} must be memory, database or redis"));
                FsmBackend::Memory
            }
        };
        let fsm_ttl = match number("FSM_TTL", 0, 0, 10 * 365 * 86_400, &mut errors) {
            0 => None,
            seconds => Some(Duration::from_secs(seconds)),
        };
        let telegram_api_http = match text("TELEGRAM_API_HTTP") {
            None => HttpVersion::Auto,
            Some(value) => HttpVersion::parse(&value).unwrap_or_else(|| {
                errors.push(format!("TELEGRAM_API_HTTP={value:?} must be auto, 1.1 or 2"));
                HttpVersion::Auto
            }),
        };
        let inbox = match text("INBOX").map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("database") => InboxMode::Database,
            Some("memory") => InboxMode::Memory,
            Some(other) => {
                errors.push(format!("INBOX={other:?} must be database or memory"));
                InboxMode::Database
            }
        };
        let events_retention = match number("EVENTS_RETENTION_DAYS", 30, 0, 36_500, &mut errors) {
            0 => None,
            days => Some(Duration::from_secs(days * 86_400)),
        };
        let settings = Settings {
            admin_bot_token,
            admin_allowed_users,
            admin_confirm_timeout: Duration::from_secs(number("ADMIN_CONFIRM_TIMEOUT", 300, 1, 86_400, &mut errors)),
            log_level,
            log_format,
            health_check_enabled,
            health_check_port,
            http_header_timeout: Duration::from_secs(number("HTTP_HEADER_TIMEOUT", 10, 1, 3600, &mut errors)),
            http_body_timeout: Duration::from_secs(number("HTTP_BODY_TIMEOUT", 30, 1, 3600, &mut errors)),
            http_max_connections: number("HTTP_MAX_CONNECTIONS", 1024, 1, 1_000_000, &mut errors) as usize,
            metrics_token: text("METRICS_TOKEN").map(secrecy::SecretString::from),
            console_token: console_token(text("CONSOLE_TOKEN"), &mut errors),
            webhook_enabled,
            webhook_base_url,
            webhook_port,
            webhook_inbox_size,
            enable_hot_reload,
            config_dir: text("CONFIG_DIR").unwrap_or_else(|| "./config/bots".into()).into(),
            plugins_dir: text("PLUGINS_DIR").unwrap_or_else(|| "./plugins".into()).into(),
            telegram_api_url: telegram_api_url.trim_end_matches('/').to_owned(),
            telegram_api_http,
            data_dir,
            polling_timeout: Duration::from_secs(number("POLLING_TIMEOUT", 25, 0, 600, &mut errors)),
            shutdown_timeout: Duration::from_secs(number("SHUTDOWN_TIMEOUT", 10, 0, 3600, &mut errors)),
            max_concurrent_updates: number("MAX_CONCURRENT_UPDATES", 64, 1, 100_000, &mut errors) as usize,
            flood_control: flag("FLOOD_CONTROL", true, &mut errors),
            flood_max_wait: Duration::from_secs(number("FLOOD_MAX_WAIT", 60, 0, 3600, &mut errors)),
            handler_timeout: match number("HANDLER_TIMEOUT", 60, 0, 86_400, &mut errors) {
                0 => None,
                seconds => Some(Duration::from_secs(seconds)),
            },
            script_memory_limit_mb: number("SCRIPT_MEMORY_LIMIT_MB", 16, 2, 4096, &mut errors) as usize,
            script_timeout: Duration::from_millis(number("SCRIPT_TIMEOUT_MS", 1000, 10, 600_000, &mut errors)),
            database_url,
            migrate_on_start,
            redis_url: redis_url.map(secrecy::SecretString::from),
            fsm_storage,
            fsm_ttl,
            inbox,
            chat_backlog: number("CHAT_BACKLOG", 1000, 1, 1_000_000, &mut errors) as usize,
            max_pending_updates: number("MAX_PENDING_UPDATES", 10_000, 1, 1_000_000, &mut errors) as usize,
            events_retention,
            replica_id,
            lease_ttl: Duration::from_secs(number("LEASE_TTL_SECONDS", 6, 1, 300, &mut errors)),
        };
        if errors.is_empty() { Ok(settings) } else { Err(errors) }
    }

    /// The variables whose values differ between two readings of the environment.
    pub fn differences(&self, other: &Settings) -> Vec<&'static str> {
        let changed = [
            ("ADMIN_BOT_TOKEN", self.admin_bot_token != other.admin_bot_token),
            ("ADMIN_ALLOWED_USERS", self.admin_allowed_users != other.admin_allowed_users),
            ("ADMIN_CONFIRM_TIMEOUT", self.admin_confirm_timeout != other.admin_confirm_timeout),
            ("LOG_LEVEL", self.log_level != other.log_level),
            ("LOG_FORMAT", self.log_format != other.log_format),
            ("HEALTH_CHECK_ENABLED", self.health_check_enabled != other.health_check_enabled),
            ("HEALTH_CHECK_PORT", self.health_check_port != other.health_check_port),
            ("HTTP_HEADER_TIMEOUT", self.http_header_timeout != other.http_header_timeout),
            ("HTTP_BODY_TIMEOUT", self.http_body_timeout != other.http_body_timeout),
            ("HTTP_MAX_CONNECTIONS", self.http_max_connections != other.http_max_connections),
            ("METRICS_TOKEN", exposed(&self.metrics_token) != exposed(&other.metrics_token)),
            ("CONSOLE_TOKEN", exposed(&self.console_token) != exposed(&other.console_token)),
            ("WEBHOOK_ENABLED", self.webhook_enabled != other.webhook_enabled),
            ("WEBHOOK_BASE_URL", self.webhook_base_url != other.webhook_base_url),
            ("WEBHOOK_PORT", self.webhook_port != other.webhook_port),
            ("WEBHOOK_INBOX_SIZE", self.webhook_inbox_size != other.webhook_inbox_size),
            ("ENABLE_HOT_RELOAD", self.enable_hot_reload != other.enable_hot_reload),
            ("CONFIG_DIR", self.config_dir != other.config_dir),
            ("PLUGINS_DIR", self.plugins_dir != other.plugins_dir),
            ("TELEGRAM_API_URL", self.telegram_api_url != other.telegram_api_url),
            ("TELEGRAM_API_HTTP", self.telegram_api_http != other.telegram_api_http),
            ("DATA_DIR", self.data_dir != other.data_dir),
            ("POLLING_TIMEOUT", self.polling_timeout != other.polling_timeout),
            ("SHUTDOWN_TIMEOUT", self.shutdown_timeout != other.shutdown_timeout),
            ("MAX_CONCURRENT_UPDATES", self.max_concurrent_updates != other.max_concurrent_updates),
            ("FLOOD_CONTROL", self.flood_control != other.flood_control),
            ("FLOOD_MAX_WAIT", self.flood_max_wait != other.flood_max_wait),
            ("HANDLER_TIMEOUT", self.handler_timeout != other.handler_timeout),
            ("SCRIPT_MEMORY_LIMIT_MB", self.script_memory_limit_mb != other.script_memory_limit_mb),
            ("SCRIPT_TIMEOUT_MS", self.script_timeout != other.script_timeout),
            ("DATABASE_URL", self.database_url.to_string() != other.database_url.to_string()),
            ("MIGRATE_ON_START", self.migrate_on_start != other.migrate_on_start),
            ("REDIS_URL", exposed(&self.redis_url) != exposed(&other.redis_url)),
            ("FSM_STORAGE", self.fsm_storage != other.fsm_storage),
            ("FSM_TTL", self.fsm_ttl != other.fsm_ttl),
            ("INBOX", self.inbox != other.inbox),
            ("CHAT_BACKLOG", self.chat_backlog != other.chat_backlog),
            ("MAX_PENDING_UPDATES", self.max_pending_updates != other.max_pending_updates),
            ("EVENTS_RETENTION_DAYS", self.events_retention != other.events_retention),
            ("REPLICA_ID", self.replica_id != other.replica_id),
            ("LEASE_TTL_SECONDS", self.lease_ttl != other.lease_ttl),
        ];
        changed.into_iter().filter(|(_, differs)| *differs).map(|(name, _)| name).collect()
    }
}

fn exposed(secret: &Option<secrecy::SecretString>) -> Option<&str> {
    use secrecy::ExposeSecret;
    secret.as_ref().map(|s| s.expose_secret())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &'static str, value: &'static str) -> Result<Settings, Vec<String>> {
        Settings::from_env(&move |asked| (asked == name).then(|| value.to_owned()))
    }

    #[test]
    fn telegram_api_http_is_auto_by_default_and_refuses_what_it_does_not_know() {
        assert_eq!(with("TELEGRAM_API_HTTP", " AUTO ").unwrap().telegram_api_http, HttpVersion::Auto);
        assert_eq!(with("TELEGRAM_API_HTTP", "1.1").unwrap().telegram_api_http, HttpVersion::Http1);
        assert_eq!(with("TELEGRAM_API_HTTP", "2").unwrap().telegram_api_http, HttpVersion::Http2);
        // Bad input: a version this client does not speak.
        let errors = with("TELEGRAM_API_HTTP", "3").unwrap_err();
        assert!(errors.iter().any(|e| e.contains("TELEGRAM_API_HTTP=\"3\" must be auto, 1.1 or 2")), "{errors:?}");
    }

    #[test]
    fn a_console_token_must_be_long_and_is_never_shown() {
        use secrecy::ExposeSecret;
        assert!(Settings::defaults().console_token.is_none());
        let set = with("CONSOLE_TOKEN", " a-long-enough-console-token ").unwrap();
        assert_eq!(set.console_token.unwrap().expose_secret(), "a-long-enough-console-token");
        // Bad input: a token short enough to guess.
        let errors = with("CONSOLE_TOKEN", "hunter2").unwrap_err();
        assert_eq!(errors, ["CONSOLE_TOKEN must be at least 16 characters long (its value is not shown)"]);
    }

    #[test]
    fn events_are_kept_30_days_by_default_and_0_keeps_them_forever() {
        assert_eq!(Settings::defaults().events_retention, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(with("EVENTS_RETENTION_DAYS", "7").unwrap().events_retention, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(with("EVENTS_RETENTION_DAYS", "0").unwrap().events_retention, None);
        // Bad input: a negative number and a unit the variable does not take.
        for bad in ["-1", "30d"] {
            let errors = with("EVENTS_RETENTION_DAYS", bad).unwrap_err();
            assert!(errors[0].starts_with("EVENTS_RETENTION_DAYS="), "{errors:?}");
        }
    }

    #[test]
    fn replica_id_auto_is_the_host_name_and_needs_postgresql() {
        let env = |id: &'static str, url: &'static str| {
            Settings::from_env(&move |asked| match asked {
                "REPLICA_ID" => Some(id.to_owned()),
                "DATABASE_URL" => Some(url.to_owned()),
                _ => None,
            })
        };
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned();
        let auto = env("auto", "postgresql://u@db/fleet").unwrap();
        assert_eq!(auto.replica_id.as_deref(), Some(host.as_str()));
        // Conversations move with their bot from replica to replica.
        assert_eq!(auto.fsm_storage, FsmBackend::Database);
        assert_eq!(env("pod-7", "postgresql://u@db/fleet").unwrap().replica_id.as_deref(), Some("pod-7"));
        // Bad input: a name with a space, and a replica on SQLite.
        let errors = env("pod 7", "postgresql://u@db/fleet").unwrap_err();
        assert!(errors[0].starts_with("REPLICA_ID=\"pod 7\" must be"), "{errors:?}");
        let errors = env("auto", "sqlite:///tmp/fleet.db").unwrap_err();
        assert!(errors[0].contains("REPLICA_ID needs PostgreSQL"), "{errors:?}");
    }
}
