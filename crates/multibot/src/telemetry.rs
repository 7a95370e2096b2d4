//! Logging: a `tracing` subscriber writing JSON (production) or text lines to stderr, filtered by `LOG_LEVEL`.
//! Every line about a bot carries its `bot_id`; tokens never appear (they are secrets, and errors are redacted).
//!
//! - [`metrics`]: the Prometheus recorder and every metric's name and labels.
//! - [`Sampler`]: one log line per period for warnings an outsider can trigger at will.

#[cfg(test)]
pub(crate) mod capture;
pub mod metrics;

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

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

/// Lets one log line through per period, for warnings an outsider can trigger at will (a wrong webhook secret, a
/// refused connection); the next line that passes says how many were suppressed in between.
#[derive(Debug)]
pub struct Sampler {
    every_ms: u64,
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl Sampler {
    /// At most one line every `every`.
    pub const fn new(every: Duration) -> Sampler {
        Sampler { every_ms: every.as_millis() as u64, next_ms: AtomicU64::new(0), suppressed: AtomicU64::new(0) }
    }

    /// `Some(suppressed)` when this occurrence is to be logged, with how many were not since the last one;
    /// `None` otherwise.
    pub fn sample(&self) -> Option<u64> {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        let now = EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self.next_ms.compare_exchange(next, now + self.every_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sampler_lets_one_line_through_per_period_and_counts_the_rest() {
        let sampler = Sampler::new(Duration::from_secs(3600));
        assert_eq!(sampler.sample(), Some(0));
        // Bad input: a flood of occurrences within the period.
        assert!((0..1000).all(|_| sampler.sample().is_none()));
        assert_eq!(sampler.suppressed.load(Ordering::Relaxed), 1000);
    }
}
