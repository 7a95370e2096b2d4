//! The traffic: users write to the bots through the control API (`POST /control/bots/{id}/messages`), and the
//! bots' replies are read back from their event streams (`GET /control/bots/{id}/events?kind=message`).
//! [`burst`] sends everything at once over many connections, [`steady`] paces messages with a tokio interval;
//! [`analyze`] matches replies to messages: latency, lost, duplicated, out of order within a chat.
//!
//! Every message text is `<phase letter><number in its chat>` and the echo plugin answers `You said: <text>`,
//! so each reply names the message it answers.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail, ensure};
use botapi_emulator::types::{BotStats, Event};
use tokio::{sync::mpsc, time::MissedTickBehavior};

use super::child::telegram_id;
use crate::http::Conn;

/// Users per bot in the burst.
pub(crate) const BURST_USERS: i64 = 100;
/// Messages per user in the burst.
pub(crate) const BURST_PER_CHAT: u32 = 10;
/// Users the steady load is spread over, per bot.
const STEADY_USERS: i64 = 100;
/// Connections injecting the burst (each user's messages go over one connection, in order).
const BURST_CONNECTIONS: usize = 64;
/// Connections carrying the steady load.
const STEADY_CONNECTIONS: usize = 16;
/// How long replies may take after the last message was sent before the missing ones count as lost.
const REPLY_DEADLINE: Duration = Duration::from_secs(60);
/// After every expected reply is there, how long to keep watching for duplicates.
const DUPLICATE_GRACE: Duration = Duration::from_millis(500);

/// Current Unix time in microseconds, the clock of the emulator's `Event::at_us`.
fn unix_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// A message a user sent: bot index, user (= private chat id), number within the chat, when.
#[derive(Debug, Clone, Copy)]
struct Sent {
    bot: usize,
    user: i64,
    number: u32,
    at_us: u64,
}

/// A reply a bot sent.
#[derive(Debug, Clone, Copy)]
struct Reply {
    bot: usize,
    user: i64,
    number: u32,
    at_us: u64,
}

/// What one phase measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct PhaseStats {
    /// Messages sent.
    pub(crate) messages: usize,
    /// Distinct messages answered.
    pub(crate) answered: usize,
    /// Messages never answered by the deadline.
    pub(crate) lost: usize,
    /// Replies beyond the first to the same message.
    pub(crate) duplicated: usize,
    /// Replies that came before the reply to an earlier message of the same chat.
    pub(crate) out_of_order: usize,
    /// Replies that match no message sent (should never happen).
    pub(crate) unexpected: usize,
    /// Answered messages per second, from the first message sent to the last reply.
    pub(crate) per_second: f64,
    /// Median latency, µs.
    pub(crate) p50_us: u64,
    /// 99th percentile latency, µs.
    pub(crate) p99_us: u64,
    /// From the first message sent to the last, seconds.
    pub(crate) injection_seconds: f64,
    /// What the emulator counted for the bots during the phase.
    pub(crate) counters: Counters,
}

/// The emulator's per-bot counters that tell where a phase's work went.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    /// Messages the bots sent.
    pub(crate) messages_sent: u64,
    /// Bot API calls the bots made.
    pub(crate) calls: u64,
    /// Updates handed out by getUpdates, re-deliveries included.
    pub(crate) deliveries: u64,
    /// Distinct updates handed out.
    pub(crate) updates_delivered: u64,
}

impl Counters {
    fn since(self, before: Counters) -> Counters {
        Counters {
            messages_sent: self.messages_sent - before.messages_sent,
            calls: self.calls - before.calls,
            deliveries: self.deliveries - before.deliveries,
            updates_delivered: self.updates_delivered - before.updates_delivered,
        }
    }
}

/// Reads the bots' events from where it left off, so each phase sees only its own replies.
pub(crate) struct Observer {
    conn: Conn,
    cursors: HashMap<usize, u64>,
}

impl Observer {
    /// An observer that has seen nothing yet.
    pub(crate) async fn connect(addr: SocketAddr) -> anyhow::Result<Observer> {
        Ok(Observer { conn: Conn::connect(addr).await?, cursors: HashMap::new() })
    }

    /// The emulator's counters of these bots, added up.
    async fn counters(&mut self, bots: &[usize]) -> anyhow::Result<Counters> {
        let mut total = Counters::default();
        for &bot in bots {
            let path = format!("/control/bots/{}/stats", telegram_id(bot));
            let answer = self.conn.get(&path).await?;
            ensure!(answer.status == 200, "GET {path}: {}", answer.status);
            let stats: BotStats = serde_json::from_slice(&answer.body)?;
            total.messages_sent += stats.messages_sent;
            total.calls += stats.calls;
            total.deliveries += stats.deliveries;
            total.updates_delivered += stats.updates_delivered;
        }
        Ok(total)
    }

    /// Waits until these bots have sent `expected` more messages than `baseline` (or the deadline passed), then
    /// a little longer for duplicates.
    async fn wait_for(
        &mut self,
        bots: &[usize],
        baseline: u64,
        expected: u64,
        deadline: tokio::time::Instant,
    ) -> anyhow::Result<()> {
        let mut ticks = tokio::time::interval(Duration::from_millis(10));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let sent = self.counters(bots).await?.messages_sent;
            if sent >= baseline + expected || tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        tokio::time::sleep(DUPLICATE_GRACE).await;
        Ok(())
    }

    /// Every reply these bots sent since the last read, with the text's `phase` letter.
    async fn replies(&mut self, bots: &[usize], phase: char) -> anyhow::Result<Vec<Reply>> {
        const PAGE: usize = 1000;
        let mut replies = Vec::new();
        for &bot in bots {
            loop {
                let cursor = self.cursors.entry(bot).or_default();
                let path =
                    format!("/control/bots/{}/events?kind=message&after={cursor}&limit={PAGE}", telegram_id(bot));
                let answer = self.conn.get(&path).await?;
                ensure!(answer.status == 200, "GET {path}: {}", answer.status);
                let events: Vec<Event> = serde_json::from_slice(&answer.body).with_context(|| format!("GET {path}"))?;
                if let Some(last) = events.last() {
                    *cursor = last.seq;
                }
                for event in &events {
                    let text = event.message.as_ref().and_then(|m| m.text.as_deref());
                    let number = text
                        .and_then(|t| t.strip_prefix("You said: "))
                        .and_then(|t| t.strip_prefix(phase))
                        .and_then(|n| n.parse().ok());
                    // A reply of another phase or with another text becomes "unexpected" (u32::MAX matches nothing).
                    replies.push(Reply {
                        bot,
                        user: event.chat_id.unwrap_or_default(),
                        number: number.unwrap_or(u32::MAX),
                        at_us: event.at_us,
                    });
                }
                if events.len() < PAGE {
                    break;
                }
            }
        }
        Ok(replies)
    }
}

/// Sends `messages` in order over one connection.
async fn send_all(
    mut conn: Conn,
    mut messages: mpsc::UnboundedReceiver<(Sent, char)>,
    stamp_on_send: bool,
) -> anyhow::Result<Vec<Sent>> {
    let mut sent = Vec::new();
    while let Some((mut message, phase)) = messages.recv().await {
        let path = format!("/control/bots/{}/messages", telegram_id(message.bot));
        let body = format!(r#"{{"from":{},"text":"{phase}{}"}}"#, message.user, message.number);
        if stamp_on_send {
            message.at_us = unix_us();
        }
        let answer = conn.post_json(&path, &body).await?;
        if answer.status != 200 {
            bail!("POST {path}: {}: {}", answer.status, String::from_utf8_lossy(&answer.body));
        }
        sent.push(message);
    }
    Ok(sent)
}

/// The letters of the bursts' messages, one per burst (the steady load's is `s`).
pub(crate) const BURST_PHASES: [char; 5] = ['a', 'b', 'c', 'd', 'e'];

/// A burst: each of `bots` gets `users` users ([`BURST_USERS`] in the fleet bench) writing [`BURST_PER_CHAT`]
/// messages each, all injected
/// as fast as the emulator takes them; a message's time is when its request is written. `phase` is the letter of
/// its messages, one of [`BURST_PHASES`].
pub(crate) async fn burst(
    addr: SocketAddr,
    observer: &mut Observer,
    bots: &[usize],
    phase: char,
    users: i64,
) -> anyhow::Result<PhaseStats> {
    let baseline = observer.counters(bots).await?;
    let chats: Vec<(usize, i64)> = bots.iter().flat_map(|&bot| (1..=users).map(move |user| (bot, user))).collect();
    let connections = BURST_CONNECTIONS.min(chats.len());
    // Connect and queue everything first, so that the injection itself is only requests.
    let mut senders = Vec::with_capacity(connections);
    let mut workers = Vec::with_capacity(connections);
    let mut queued = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        queued.push((Conn::connect(addr).await?, rx));
    }
    // Round by round, so that every chat progresses at once; a chat always uses the same connection, so its
    // messages reach the emulator in the order the user wrote them.
    for number in 0..BURST_PER_CHAT {
        for (index, &(bot, user)) in chats.iter().enumerate() {
            let message = Sent { bot, user, number, at_us: 0 };
            senders[index % connections].send((message, phase))?;
        }
    }
    drop(senders);
    for (conn, rx) in queued {
        workers.push(tokio::spawn(send_all(conn, rx, true)));
    }
    let mut sent = Vec::with_capacity(chats.len() * BURST_PER_CHAT as usize);
    for worker in workers {
        sent.extend(worker.await??);
    }
    let deadline = tokio::time::Instant::now() + REPLY_DEADLINE;
    observer.wait_for(bots, baseline.messages_sent, sent.len() as u64, deadline).await?;
    let replies = observer.replies(bots, phase).await?;
    let counters = observer.counters(bots).await?.since(baseline);
    Ok(PhaseStats { counters, ..analyze(&sent, &replies) })
}

/// The steady load: `rate` messages per second for `seconds`, message `i` to bot `i % bots` from one of
/// [`STEADY_USERS`] users; a message's time is its tick (so a late sender cannot hide latency).
pub(crate) async fn steady(
    addr: SocketAddr,
    observer: &mut Observer,
    bots: usize,
    rate: u32,
    seconds: u64,
) -> anyhow::Result<PhaseStats> {
    const PHASE: char = 's';
    let all: Vec<usize> = (0..bots).collect();
    let baseline = observer.counters(&all).await?;
    let total = u64::from(rate) * seconds;
    let mut senders = Vec::with_capacity(STEADY_CONNECTIONS);
    let mut workers = Vec::with_capacity(STEADY_CONNECTIONS);
    for _ in 0..STEADY_CONNECTIONS {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        let conn = Conn::connect(addr).await?;
        workers.push(tokio::spawn(send_all(conn, rx, false)));
    }
    let mut numbers: HashMap<(usize, i64), u32> = HashMap::new();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    for i in 0..total as usize {
        ticks.tick().await;
        let bot = i % bots;
        let user = 1 + ((i / bots) as i64 % STEADY_USERS);
        let number = numbers.entry((bot, user)).or_default();
        let message = Sent { bot, user, number: *number, at_us: unix_us() };
        *number += 1;
        // One connection per chat keeps each chat's messages in order.
        let chat = bot * STEADY_USERS as usize + user as usize;
        senders[chat % STEADY_CONNECTIONS].send((message, PHASE))?;
    }
    drop(senders);
    let mut sent = Vec::with_capacity(total as usize);
    for worker in workers {
        sent.extend(worker.await??);
    }
    let deadline = tokio::time::Instant::now() + REPLY_DEADLINE;
    observer.wait_for(&all, baseline.messages_sent, sent.len() as u64, deadline).await?;
    let replies = observer.replies(&all, PHASE).await?;
    let counters = observer.counters(&all).await?.since(baseline);
    Ok(PhaseStats { counters, ..analyze(&sent, &replies) })
}

/// Matches replies (in the order each bot sent them) to messages.
fn analyze(sent: &[Sent], replies: &[Reply]) -> PhaseStats {
    let sent_at: HashMap<(usize, i64, u32), u64> = sent.iter().map(|s| ((s.bot, s.user, s.number), s.at_us)).collect();
    let mut stats = PhaseStats { messages: sent.len(), ..PhaseStats::default() };
    let mut answered = HashSet::new();
    let mut highest: HashMap<(usize, i64), u32> = HashMap::new();
    let mut latencies = Vec::with_capacity(replies.len());
    let mut last_reply = 0;
    for reply in replies {
        let key = (reply.bot, reply.user, reply.number);
        let Some(&sent_at) = sent_at.get(&key) else {
            stats.unexpected += 1;
            continue;
        };
        if !answered.insert(key) {
            stats.duplicated += 1;
            continue;
        }
        latencies.push(reply.at_us.saturating_sub(sent_at));
        last_reply = last_reply.max(reply.at_us);
        let top = highest.entry((reply.bot, reply.user)).or_insert(reply.number);
        if reply.number < *top {
            stats.out_of_order += 1;
        } else {
            *top = reply.number;
        }
    }
    stats.answered = answered.len();
    stats.lost = sent.len() - answered.len();
    let first_sent = sent.iter().map(|s| s.at_us).min().unwrap_or_default();
    let last_sent = sent.iter().map(|s| s.at_us).max().unwrap_or_default();
    stats.injection_seconds = last_sent.saturating_sub(first_sent) as f64 / 1e6;
    let span = last_reply.saturating_sub(first_sent) as f64 / 1e6;
    if span > 0.0 {
        stats.per_second = stats.answered as f64 / span;
    }
    latencies.sort_unstable();
    stats.p50_us = percentile(&latencies, 0.50);
    stats.p99_us = percentile(&latencies, 0.99);
    stats
}

/// Nearest-rank percentile of sorted values (0 when empty).
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(bot: usize, user: i64, number: u32, at_us: u64) -> Sent {
        Sent { bot, user, number, at_us }
    }

    fn reply(bot: usize, user: i64, number: u32, at_us: u64) -> Reply {
        Reply { bot, user, number, at_us }
    }

    #[test]
    fn replies_are_matched_to_messages() {
        let sent = [sent(0, 1, 0, 1_000), sent(0, 1, 1, 1_100), sent(0, 2, 0, 1_200), sent(1, 1, 0, 1_300)];
        let replies = [
            reply(0, 1, 1, 2_000),
            reply(0, 1, 0, 2_100),
            reply(0, 1, 0, 2_200),
            reply(0, 2, 0, 2_000),
            reply(0, 2, 7, 2_000),
        ];
        let stats = analyze(&sent, &replies);
        assert_eq!(stats.messages, 4);
        assert_eq!(stats.answered, 3);
        assert_eq!(stats.lost, 1, "bot 1 never answered");
        assert_eq!(stats.duplicated, 1);
        assert_eq!(stats.out_of_order, 1, "0 came after 1 in chat (0, 1)");
        assert_eq!(stats.unexpected, 1);
        assert_eq!(stats.p50_us, 900);
        assert_eq!(stats.p99_us, 1_100);
        assert!((stats.per_second - 3.0 / 0.0011).abs() < 1e-6);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.50), 50);
        assert_eq!(percentile(&values, 0.99), 99);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }
}
