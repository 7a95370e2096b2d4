//! Outgoing flood control: every bot paces what it sends within Telegram's limits, about 30 messages per second
//! per bot, about 1 per second per private chat (short bursts allowed) and 20 per minute per group, so that
//! Telegram never has to answer 429. A send waits for a token from its bot's bucket and its chat's bucket.

use std::{collections::HashMap, time::Duration};

use parking_lot::Mutex;
use tokio::time::Instant;

/// A bucket's size and refill rate (tokens per second).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Burst size.
    pub capacity: f64,
    /// Tokens per second.
    pub per_second: f64,
}

/// Telegram's limits on what a bot sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloodLimits {
    /// Everything one bot sends.
    pub bot: Limit,
    /// One private chat.
    pub private_chat: Limit,
    /// One group or channel.
    pub group: Limit,
}

impl Default for FloodLimits {
    /// Telegram's limits with a margin of about 10 %, because requests sent on schedule can still arrive bunched.
    fn default() -> FloodLimits {
        FloodLimits {
            bot: Limit { capacity: 25.0, per_second: 27.0 },
            private_chat: Limit { capacity: 3.0, per_second: 0.9 },
            group: Limit { capacity: 18.0, per_second: 18.0 / 60.0 },
        }
    }
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(limit: Limit, now: Instant) -> Bucket {
        Bucket { tokens: limit.capacity, at: now }
    }

    fn refill(&mut self, limit: Limit, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limit.per_second).min(limit.capacity);
        self.at = now;
    }

    /// Time until one token is available.
    fn wait(&self, limit: Limit) -> Duration {
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / limit.per_second)
        }
    }
}

/// One bot's pacing state.
pub(crate) struct Pacer {
    limits: FloodLimits,
    state: Mutex<PacerState>,
}

struct PacerState {
    bot: Bucket,
    chats: HashMap<i64, Bucket>,
    sends: u64,
}

impl Pacer {
    pub(crate) fn new(limits: FloodLimits) -> Pacer {
        let now = Instant::now();
        Pacer {
            limits,
            state: Mutex::new(PacerState { bot: Bucket::full(limits.bot, now), chats: HashMap::new(), sends: 0 }),
        }
    }

    fn chat_limit(&self, chat: i64) -> Limit {
        if chat < 0 { self.limits.group } else { self.limits.private_chat }
    }

    /// Waits until a message to `chat` is within the limits, and counts it.
    pub(crate) async fn acquire(&self, chat: i64) {
        let limit = self.chat_limit(chat);
        loop {
            let wait = {
                let now = Instant::now();
                let mut state = self.state.lock();
                state.bot.refill(self.limits.bot, now);
                let chat_bucket = state.chats.entry(chat).or_insert_with(|| Bucket::full(limit, now));
                chat_bucket.refill(limit, now);
                let wait = chat_bucket.wait(limit).max(state.bot.wait(self.limits.bot));
                if wait.is_zero() {
                    if let Some(bucket) = state.chats.get_mut(&chat) {
                        bucket.tokens -= 1.0;
                    }
                    state.bot.tokens -= 1.0;
                    state.sends += 1;
                    if state.sends.is_multiple_of(1024) {
                        forget_full_buckets(&mut state.chats, self.limits, now);
                    }
                    return;
                }
                wait
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Drops the buckets of chats that have been quiet long enough to be full again.
fn forget_full_buckets(chats: &mut HashMap<i64, Bucket>, limits: FloodLimits, now: Instant) {
    chats.retain(|chat, bucket| {
        let limit = if *chat < 0 { limits.group } else { limits.private_chat };
        bucket.refill(limit, now);
        bucket.tokens < limit.capacity
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_private_chat_gets_a_burst_then_one_per_second() {
        let pacer = Pacer::new(FloodLimits::default());
        let start = Instant::now();
        for _ in 0..3 {
            pacer.acquire(1).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        pacer.acquire(1).await;
        assert!(start.elapsed() >= Duration::from_millis(1000), "{:?}", start.elapsed());
        // Another chat is not held back by the first one's limit.
        let other = Instant::now();
        pacer.acquire(2).await;
        assert_eq!(other.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bot_sends_at_most_about_thirty_per_second() {
        let pacer = Pacer::new(FloodLimits::default());
        let start = Instant::now();
        for chat in 0..79 {
            pacer.acquire(chat + 1).await;
        }
        // 25 at once, then 27 per second: 54 more take two seconds.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(1990) && elapsed < Duration::from_millis(2100), "{elapsed:?}");
    }
}
