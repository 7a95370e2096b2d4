//! Logging: a `tracing` subscriber writing JSON (production) or text lines to stderr, filtered by `LOG_LEVEL`.
//! Every line about a bot carries its `bot_id`; tokens never appear (they are secrets, and errors are redacted).
//!
//! - [`metrics`]: the Prometheus recorder and every metric's name and labels.

#[cfg(test)]
pub(crate) mod capture;
pub mod metrics;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, Settings};

/// Installs the global subscriber; `RUST_LOG`, when set, overrides `LOG_LEVEL` for finer filters.
pub fn init(settings: &Settings) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("{},hyper=warn,reqwest=warn,h2=warn", settings.log_level)));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match settings.log_format {
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
    // A second init (tests, the demo) keeps the first subscriber.
    drop(result);
}
