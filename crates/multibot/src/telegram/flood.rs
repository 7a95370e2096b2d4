//! Outgoing flood control: every bot paces what it sends within Telegram's limits (the Bots FAQ): about 30
//! messages per second per bot, about 1 per second per private chat and 20 per minute per group, so that
//! Telegram never has to answer 429. Each limit is a sliding window: a send waits until both its bot's and its
//! chat's last windows hold fewer than their maximum. [`Pacer`] keeps the send times; [`FloodLimits`] the windows.
//! A [`Lane::Bulk`] send (a broadcast) may use only [`BULK_SHARE`] of the bot's window, so the bot's replies, in
//! [`Lane::Reply`], always find room beside it.

use std::{
    collections::{HashMap, VecDeque},
    time::Duration,
};

use parking_lot::Mutex;
use tokio::time::Instant;

/// At most `max` sends in any window of `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Sends allowed per window.
    pub max: usize,
    /// The window's length.
    pub window: Duration,
}

/// Telegram's limits on what a bot sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodLimits {
    /// Everything one bot sends.
    pub bot: Limit,
    /// One private chat.
    pub private_chat: Limit,
    /// One group or channel.
    pub group: Limit,
}

/// Added to each of Telegram's windows: requests sent on schedule can arrive bunched by up to this much, and
/// Telegram counts arrivals.
const SLACK: Duration = Duration::from_millis(100);

impl Default for FloodLimits {
    /// Telegram's limits, each window lengthened by 100 ms of slack (`SLACK`): at most 30 sends in any 1 s per
    /// bot, 20 in any 60 s per group, and 1 in any 1 s per private chat. The FAQ allows private chats "short bursts" without
    /// saying how short; a burst would break the 1 s window, so there is none: a second message to the same
    /// person waits 1.1 s.
    fn default() -> FloodLimits {
        let limit = |max, seconds| Limit { max, window: Duration::from_secs(seconds) + SLACK };
        FloodLimits { bot: limit(30, 1), private_chat: limit(1, 1), group: limit(20, 60) }
    }
}

/// Which of a bot's sends a call is: a reply to a user, or one of many (a broadcast) that leaves room for replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lane {
    /// A reply or any other send: the whole window.
    #[default]
    Reply,
    /// A broadcast's send: at most [`BULK_SHARE`] of the bot's window.
    Bulk,
}

/// The share of a bot's window bulk sends may fill, in fifths: 4 of 5 (24 of 30 a second), leaving at least 6 a
/// second to replies however long a broadcast runs.
pub const BULK_SHARE: usize = 4;

/// The times of the sends still inside a limit's window, oldest first.
#[derive(Default)]
struct Sends(VecDeque<Instant>);

impl Sends {
    /// Forgets sends that left the window; returns when the next send may go (`now` or later).
    fn next_free(&mut self, limit: Limit, now: Instant) -> Instant {
        while self.0.front().is_some_and(|at| now.saturating_duration_since(*at) >= limit.window) {
            self.0.pop_front();
        }
        match self.0.front() {
            Some(oldest) if self.0.len() >= limit.max => *oldest + limit.window,
            _ => now,
        }
    }
}

/// One bot's pacing state.
pub(crate) struct Pacer {
    limits: FloodLimits,
    state: Mutex<PacerState>,
}

struct PacerState {
    bot: Sends,
    chats: HashMap<i64, Sends>,
    sends: u64,
}

impl Pacer {
    pub(crate) fn new(limits: FloodLimits) -> Pacer {
        Pacer { limits, state: Mutex::new(PacerState { bot: Sends::default(), chats: HashMap::new(), sends: 0 }) }
    }

    fn chat_limit(&self, chat: i64) -> Limit {
        if chat < 0 { self.limits.group } else { self.limits.private_chat }
    }

    /// Waits until a message to `chat` is within the limits, and counts it.
    #[cfg(test)]
    pub(crate) async fn acquire(&self, chat: i64) {
        self.acquire_in(chat, Lane::Reply).await;
    }

    /// Waits until a message to `chat` in `lane` is within the limits, and counts it.
    pub(crate) async fn acquire_in(&self, chat: i64, lane: Lane) {
        let limit = self.chat_limit(chat);
        let bot = match lane {
            Lane::Reply => self.limits.bot,
            Lane::Bulk => Limit { max: (self.limits.bot.max * BULK_SHARE / 5).max(1), ..self.limits.bot },
        };
        loop {
            let at = {
                let now = Instant::now();
                let mut state = self.state.lock();
                let chat_free = state.chats.entry(chat).or_default().next_free(limit, now);
                let at = chat_free.max(state.bot.next_free(bot, now));
                if at <= now {
                    state.chats.entry(chat).or_default().0.push_back(now);
                    state.bot.0.push_back(now);
                    state.sends += 1;
                    if state.sends.is_multiple_of(1024) {
                        forget_quiet_chats(&mut state.chats, self.limits, now);
                    }
                    return;
                }
                at
            };
            tokio::time::sleep_until(at).await;
        }
    }
}

/// Drops the send times of chats that have been quiet for a whole window.
fn forget_quiet_chats(chats: &mut HashMap<i64, Sends>, limits: FloodLimits, now: Instant) {
    chats.retain(|chat, sends| {
        let limit = if *chat < 0 { limits.group } else { limits.private_chat };
        sends.next_free(limit, now);
        !sends.0.is_empty()
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// The most sends that fall in any closed window of `window` (from one send to `window` later).
    fn most_in_any_window(times: &[Instant], window: Duration) -> usize {
        let mut times = times.to_vec();
        times.sort();
        (0..times.len()).map(|i| times[i..].iter().take_while(|t| **t - times[i] <= window).count()).max().unwrap_or(0)
    }

    /// Sends to `chats[i]` from one task each, all at once, and returns when each went out.
    async fn send_all(pacer: Arc<Pacer>, chats: Vec<i64>) -> Vec<Instant> {
        let tasks: Vec<_> = chats
            .into_iter()
            .map(|chat| {
                let pacer = pacer.clone();
                tokio::spawn(async move {
                    pacer.acquire(chat).await;
                    Instant::now()
                })
            })
            .collect();
        let mut times = Vec::new();
        for task in tasks {
            times.push(task.await.unwrap());
        }
        times
    }

    #[tokio::test(start_paused = true)]
    async fn a_bot_sends_at_most_thirty_in_any_second() {
        let pacer = Arc::new(Pacer::new(FloodLimits::default()));
        let start = Instant::now();
        let times = send_all(pacer, (1..=200).collect()).await;
        assert_eq!(most_in_any_window(&times, Duration::from_secs(1)), 30);
        // And no slower than needed: 30 every 1.1 s.
        assert!(start.elapsed() < Duration::from_secs(8), "{:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_gets_at_most_twenty_in_any_minute() {
        let pacer = Arc::new(Pacer::new(FloodLimits::default()));
        let times = send_all(pacer, vec![-100; 45]).await;
        assert_eq!(most_in_any_window(&times, Duration::from_secs(60)), 20);
        // The first twenty go at once; the rest wait for the window.
        assert_eq!(most_in_any_window(&times, Duration::ZERO), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn a_private_chat_gets_one_message_per_second_without_bursts() {
        let pacer = Arc::new(Pacer::new(FloodLimits::default()));
        let start = Instant::now();
        let times = send_all(pacer.clone(), vec![1; 5]).await;
        assert_eq!(most_in_any_window(&times, Duration::from_secs(1)), 1, "{times:?}");
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
        // Another chat is not held back by the first one's limit.
        let other = Instant::now();
        pacer.acquire(2).await;
        assert_eq!(other.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn every_window_holds_at_once_for_a_mixed_load() {
        let pacer = Arc::new(Pacer::new(FloodLimits::default()));
        // 30 to one group, 10 to each of 3 private chats, one each to 60 others, all at once.
        let mut chats = vec![-5; 30];
        for chat in 1..=3 {
            chats.extend(std::iter::repeat_n(chat, 10));
        }
        chats.extend(100..160);
        let times = send_all(pacer, chats.clone()).await;
        assert!(most_in_any_window(&times, Duration::from_secs(1)) <= 30);
        let of = |chat: i64| -> Vec<Instant> {
            chats.iter().zip(&times).filter(|(c, _)| **c == chat).map(|(_, t)| *t).collect()
        };
        assert!(most_in_any_window(&of(-5), Duration::from_secs(60)) <= 20);
        for chat in 1..=3 {
            assert_eq!(most_in_any_window(&of(chat), Duration::from_secs(1)), 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bulk_sends_leave_room_for_replies() {
        let pacer = Arc::new(Pacer::new(FloodLimits::default()));
        // A broadcast to 300 users keeps the bulk lane full for seconds.
        let bulk = {
            let pacer = pacer.clone();
            tokio::spawn(async move {
                let mut times = Vec::new();
                for chat in 1..=300 {
                    pacer.acquire_in(chat, Lane::Bulk).await;
                    times.push(Instant::now());
                }
                times
            })
        };
        tokio::time::advance(Duration::from_secs(3)).await;
        // Meanwhile six users get replies, at once.
        let started = Instant::now();
        let replies = send_all(pacer.clone(), (1001..=1006).collect()).await;
        assert!(replies.iter().all(|t| *t == started), "replies waited behind the broadcast");
        let bulk = bulk.await.unwrap();
        assert_eq!(most_in_any_window(&bulk, Duration::from_secs(1)), 24);
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_chats_are_forgotten() {
        let pacer = Pacer::new(FloodLimits::default());
        for chat in 1..=2000 {
            pacer.acquire(chat).await;
        }
        tokio::time::advance(Duration::from_secs(61)).await;
        for chat in 3000..3100 {
            pacer.acquire(chat).await;
        }
        assert!(pacer.state.lock().chats.len() < 1100, "{}", pacer.state.lock().chats.len());
    }
}
