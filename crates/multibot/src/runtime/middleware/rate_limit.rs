//! Per-user rate limiting: a token bucket per bot and user (GCRA: one timestamp per user), `default_rate`
//! updates per minute with bursts of `burst_size`. The first update over the limit gets a notice; later ones are
//! dropped silently until the bucket refills. Users whose bucket is full again are forgotten by
//! [`RateLimiter::evict_idle`], which a bot runs on a timer, so memory follows the users active in the last
//! minute, not every user ever seen.

use std::{
    collections::HashMap,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{Refusals, Verdict};
use crate::{
    config::{BotToken, RateLimitConfig},
    plugins::Ctx,
    storage::events,
};

/// What the limiter decides for one update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Under the limit.
    Allow,
    /// Over the limit; `notify` is true for the first update over it (send the notice), false after.
    Limited {
        /// When a new update will pass.
        retry_after: Duration,
        /// Whether this is the first refused update since the user was last allowed.
        notify: bool,
    },
}

#[derive(Clone, Copy)]
struct Slot {
    /// Theoretical arrival time, in milliseconds since the limiter's epoch.
    tat: u64,
    notified: bool,
}

/// One bot's per-user limiter.
pub struct RateLimiter {
    interval_ms: u64,
    tolerance_ms: u64,
    epoch: Instant,
    users: Mutex<HashMap<i64, Slot>>,
}

impl RateLimiter {
    /// A limiter for `rate` updates per minute with bursts of `burst`.
    pub fn new(rate: u32, burst: u32) -> RateLimiter {
        let interval_ms = 60_000 / u64::from(rate.max(1));
        RateLimiter {
            interval_ms,
            tolerance_ms: interval_ms * u64::from(burst.max(1) - 1),
            epoch: Instant::now(),
            users: Mutex::default(),
        }
    }

    /// The limiter a `rate_limiting:` block asks for, if enabled.
    pub fn from_config(config: &RateLimitConfig) -> Option<RateLimiter> {
        config.enabled.then(|| RateLimiter::new(config.default_rate, config.burst_size))
    }

    fn millis(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Counts an update from `user` at `now`.
    pub fn check(&self, user: i64, now: Instant) -> RateDecision {
        let t = self.millis(now);
        let mut users = self.users.lock();
        let slot = users.entry(user).or_insert(Slot { tat: t, notified: false });
        let tat = slot.tat.max(t);
        if tat - t > self.tolerance_ms {
            let notify = !slot.notified;
            slot.notified = true;
            return RateDecision::Limited { retry_after: Duration::from_millis(tat - t - self.tolerance_ms), notify };
        }
        slot.tat = tat + self.interval_ms;
        slot.notified = false;
        RateDecision::Allow
    }

    /// Forgets users whose bucket is full again and returns the memory; returns how many remain.
    pub fn evict_idle(&self, now: Instant) -> usize {
        let t = self.millis(now);
        let mut users = self.users.lock();
        users.retain(|_, slot| slot.tat > t);
        if users.capacity() > 64 && users.len() < users.capacity() / 4 {
            users.shrink_to_fit();
        }
        users.len()
    }

    /// Users remembered now.
    pub fn len(&self) -> usize {
        self.users.lock().len()
    }

    /// Whether no user is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The rate-limit step: stops an update over its sender's rate; the first one over it gets a notice (the answer
/// to a callback query, a reply to a message; other update types, such as inline queries or membership changes,
/// get none). Updates without a sender pass.
pub(crate) async fn admit(limiter: &RateLimiter, refusals: &Refusals, cx: &Ctx, token: &BotToken) -> Verdict {
    let Some(user) = cx.user().map(|u| u.id.0 as i64) else { return Verdict::Pass };
    let RateDecision::Limited { retry_after, notify } = limiter.check(user, Instant::now()) else {
        return Verdict::Pass;
    };
    refusals.rate_limited.fetch_add(1, Ordering::Relaxed);
    let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    events::rate_limited(cx.recorder(), cx.bot_id(), user, seconds, notify);
    if notify {
        let notice = format!("Too many requests, try again in {seconds} s");
        let sent = if cx.callback().is_some() {
            cx.answer_callback(Some(&notice)).await
        } else if cx.message().is_some() {
            cx.reply(notice).plain().await.map(drop)
        } else {
            Ok(())
        };
        if let Err(e) = sent {
            warn!(bot_id = %cx.bot_id(), error = %token.redact(format!("{e:#}")), "rate-limit notice failed");
        }
    }
    Verdict::Stop
}

/// Forgets idle rate-limit buckets every few seconds, until `cancel`.
pub(crate) async fn evict_idle_users(limiter: Arc<RateLimiter>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = tick.tick() => { limiter.evict_idle(Instant::now()); }
            () = cancel.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_burst_passes_then_one_notice_then_silence_until_refill() {
        let limiter = RateLimiter::new(60, 3); // one per second, bursts of three
        let start = Instant::now();
        let decisions: Vec<_> = (0..6).map(|_| limiter.check(1, start)).collect();
        assert_eq!(&decisions[..3], [RateDecision::Allow; 3]);
        assert!(
            matches!(decisions[3], RateDecision::Limited { notify: true, retry_after } if retry_after == Duration::from_secs(1))
        );
        assert!(matches!(decisions[4], RateDecision::Limited { notify: false, .. }));
        // Another user is unaffected.
        assert_eq!(limiter.check(2, start), RateDecision::Allow);
        // One second later one more passes, and the next over the limit gets a notice again.
        let later = start + Duration::from_secs(1);
        assert_eq!(limiter.check(1, later), RateDecision::Allow);
        assert!(matches!(limiter.check(1, later), RateDecision::Limited { notify: true, .. }));
    }

    #[test]
    fn idle_users_are_forgotten() {
        let limiter = RateLimiter::new(60, 2);
        let start = Instant::now();
        for user in 0..1000 {
            limiter.check(user, start);
        }
        assert_eq!(limiter.evict_idle(start), 1000);
        assert_eq!(limiter.evict_idle(start + Duration::from_secs(2)), 0);
        assert!(limiter.users.lock().capacity() < 1000, "memory is returned");
    }
}
