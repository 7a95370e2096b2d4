//! The polling update source. With a durable [`Inbox`] (the default) each batch is stored before the next poll
//! confirms it, the offset moves past everything stored, and updates left pending by the last run are handled
//! first; if the database is down, polling backs off without confirming. Without one (`INBOX=memory`) it asks
//! getUpdates for updates from the low-water mark, so Telegram keeps every update until it has been handled;
//! updates it already has in flight come back and are skipped. On stop it lets in-flight updates finish, then
//! confirms them with one last getUpdates. While `MAX_PENDING_UPDATES` are in flight it does not poll (Telegram
//! keeps the rest), so memory stays bounded although the offset moves on. Failed polls feed
//! [`PollHealth`]: the bot shows as degraded while the Bot API is unreachable or another poller conflicts.

use std::{sync::Arc, time::Duration};

use teloxide_core::types::{AllowedUpdate, Update};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    BotRuntime,
    degraded::{Degraded, Poll, PollHealth},
    inbox::Inbox,
    sequencer::{Sequencer, Tracker},
};
use crate::{
    plugins::BotHandle,
    storage::events,
    telegram::{ApiCallError, CallFailure},
};

const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// While updates are in flight a poll answers at once (they are still pending), so the loop waits for progress
/// between polls, at least this long and at most `MAX_IDLE_WAIT`.
const MIN_IDLE_WAIT: Duration = Duration::from_millis(5);
const MAX_IDLE_WAIT: Duration = Duration::from_millis(500);

/// The update types to ask Telegram for: those the bot's plugins handle, and `my_chat_member`, which tells the
/// runtime that a user blocked or unblocked the bot (see `middleware::track_user`).
pub(crate) fn allowed_updates(bot: &BotHandle) -> Vec<AllowedUpdate> {
    let mut allowed = bot.router.update_types();
    if !allowed.contains(&AllowedUpdate::MyChatMember) {
        allowed.push(AllowedUpdate::MyChatMember);
    }
    allowed
}

/// How a poller runs: the long-poll timeout, the grace period at stop, and how many updates it may hold
/// received but unfinished before it waits for some to finish (`MAX_PENDING_UPDATES`).
pub(crate) struct PollLimits {
    pub(crate) timeout: Duration,
    pub(crate) grace: Duration,
    pub(crate) max_pending: usize,
    /// With replicas: no poll (the last confirming one included) while this says no.
    pub(crate) gate: Option<super::PollGate>,
}

/// How often a poll held back by the gate looks again.
const GATE_RECHECK: Duration = Duration::from_millis(50);

/// Polls until `cancel`, then drains and confirms.
pub(crate) async fn run(
    sequencer: Arc<Sequencer>,
    inbox: Option<Arc<Inbox>>,
    limits: PollLimits,
    cancel: CancellationToken,
) {
    let PollLimits { timeout, grace, max_pending, gate } = limits;
    let bot_id = sequencer.runtime().bot.id.clone();
    let may_poll = || gate.as_ref().is_none_or(|open| open(&bot_id));
    let tracker = sequencer.tracker.clone();
    // With an inbox: one past the newest update stored (none until the first batch).
    let mut stored_offset = None;
    if let Some(inbox) = &inbox {
        resume(&sequencer, inbox, &cancel).await;
    }
    let mut backoff = MIN_BACKOFF;
    let mut idle_wait = MIN_IDLE_WAIT;
    let mut health = PollHealth::default();
    super::degraded::show_in_metrics(sequencer.runtime().bot.id.as_str(), None);
    while !cancel.is_cancelled() {
        // At the bound, Telegram keeps what comes next until some updates finish.
        if !at_most(&tracker, max_pending, &cancel).await {
            break;
        }
        // A replica whose lease is not fresh must not poll: another may own the bot by now.
        if !may_poll() {
            tokio::select! {
                () = tokio::time::sleep(GATE_RECHECK) => continue,
                () = cancel.cancelled() => break,
            }
        }
        // With an inbox, updates in flight are not asked for again, so the poll may wait for new ones.
        let idle = inbox.is_some() || tracker.in_flight() == 0;
        let wait = if idle { timeout } else { Duration::ZERO };
        let offset = if inbox.is_some() { stored_offset } else { tracker.offset() };
        // The instance may change between polls (a reload in place), and with it the update types.
        let runtime = sequencer.runtime();
        let bot = &runtime.bot;
        let allowed = allowed_updates(bot);
        // Without an inbox and with updates in flight, the loop may wait for one to finish after the poll: it listens
        // before polling, so that one finishing while the poll is on the way is not missed (it would sleep its whole
        // pause instead).
        let progress = tracker.progress.notified();
        tokio::pin!(progress);
        if !idle {
            progress.as_mut().enable();
        }
        let request = bot.api.get_updates(offset, 100, wait, &allowed);
        let result = tokio::select! {
            result = request => result,
            () = cancel.cancelled() => break,
        };
        let said;
        let poll = match &result {
            Ok(_) => Poll::Ok,
            Err(ApiCallError::Api { code: 409, description, .. }) => {
                said = bot.redact(description.clone());
                Poll::Conflict(&said)
            }
            Err(e @ (ApiCallError::Network(_) | ApiCallError::Api { code: 500.., .. })) => {
                said = bot.redact(e.to_string());
                Poll::Unreachable(&said)
            }
            Err(_) => Poll::Other,
        };
        if let Some(state) = health.record(poll, tokio::time::Instant::now()) {
            set_degraded(&runtime, state);
        }
        let pause = match (result, &inbox) {
            (Ok(batch), Some(inbox)) => match inbox.store(batch).await {
                Ok((fresh, next)) => {
                    // The poll's offset confirmed everything below it: their done rows are no longer needed.
                    if let Some(offset) = offset {
                        inbox.confirmed(offset);
                    }
                    backoff = MIN_BACKOFF;
                    stored_offset = next.or(stored_offset);
                    for update in &fresh {
                        tracker.track(i64::from(update.id.0));
                    }
                    dispatch(&sequencer, fresh);
                    continue;
                }
                // Not confirmed: Telegram keeps the batch and sends it again.
                Err(e) => {
                    warn!(error = %e, "could not store updates in the inbox; backing off");
                    next_backoff(&mut backoff)
                }
            },
            (Ok(updates), None) => {
                backoff = MIN_BACKOFF;
                let fresh = tracker.admit(updates);
                if fresh.is_empty() && !idle {
                    let pause = idle_wait;
                    idle_wait = (idle_wait * 2).min(MAX_IDLE_WAIT);
                    tokio::select! {
                        () = progress.as_mut() => {}
                        () = tokio::time::sleep(pause) => {}
                        () = cancel.cancelled() => break,
                    }
                    continue;
                }
                idle_wait = MIN_IDLE_WAIT;
                dispatch(&sequencer, fresh);
                continue;
            }
            (Err(e), _) if e.code() == Some(429) => {
                let seconds = e.retry_after().unwrap_or(1);
                warn!(retry_after = seconds, "getUpdates hit flood control");
                Duration::from_secs(u64::from(seconds))
            }
            (Err(ApiCallError::Api { code: 401, .. }), _) => {
                let reason = "token rejected by Telegram (401 Unauthorized) while polling".to_owned();
                events::bot_failed(&bot.recorder, &bot.config, &reason);
                bot.notifier.notify(format!("❌ Bot {} failed: {reason}", bot.id));
                *runtime.health.failure.lock() = Some(reason);
                break;
            }
            // Logged when the bot's state changes (set_degraded), not at every failed poll.
            (Err(e), _) => {
                debug!(error = %CallFailure::of(&e, &bot.config.token), "getUpdates failed; backing off");
                next_backoff(&mut backoff)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = cancel.cancelled() => break,
        }
    }
    // A stopped bot is not degraded; a restart starts afresh.
    let runtime = sequencer.runtime();
    super::degraded::show_in_metrics(runtime.bot.id.as_str(), None);
    *runtime.health.degraded.lock() = None;
    finish(&runtime.bot, &sequencer, inbox.as_deref(), stored_offset, grace, &may_poll).await;
}

/// Dispatches the updates the last run left pending, retrying while the database is down (until `cancel`).
/// Returns their ids.
pub(super) async fn resume(sequencer: &Arc<Sequencer>, inbox: &Inbox, cancel: &CancellationToken) -> Vec<u32> {
    let mut backoff = MIN_BACKOFF;
    loop {
        match inbox.resume().await {
            Ok(pending) => {
                if !pending.is_empty() {
                    info!(pending = pending.len(), "resuming updates left pending by the last run");
                }
                let ids: Vec<u32> = pending.iter().map(|update| update.id.0).collect();
                for id in &ids {
                    sequencer.tracker.track(i64::from(*id));
                }
                dispatch(sequencer, pending);
                return ids;
            }
            Err(e) => warn!(error = %e, "could not read the inbox; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(next_backoff(&mut backoff)) => {}
            () = cancel.cancelled() => return Vec::new(),
        }
    }
}

/// Waits until fewer than `max` updates are in flight; false if `cancel` came first.
async fn at_most(tracker: &Tracker, max: usize, cancel: &CancellationToken) -> bool {
    loop {
        let progress = tracker.progress.notified();
        tokio::pin!(progress);
        progress.as_mut().enable();
        if tracker.in_flight() < max {
            return true;
        }
        tokio::select! {
            () = progress => {}
            () = cancel.cancelled() => return false,
        }
    }
}

/// Shows a change of the bot's state: in its status, the `multibot_bot_degraded` gauge and one log line.
fn set_degraded(runtime: &BotRuntime, state: Option<Degraded>) {
    super::degraded::show_in_metrics(runtime.bot.id.as_str(), state.as_ref().map(|d| d.trouble));
    match &state {
        Some(degraded) => warn!(reason = %degraded.reason, "bot degraded"),
        None => info!("bot recovered: the Bot API answers again"),
    }
    *runtime.health.degraded.lock() = state;
}

fn next_backoff(backoff: &mut Duration) -> Duration {
    let pause = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    pause
}

#[allow(clippy::vec_box)] // Boxed by `decode_update`: each is queued and handled on its own.
fn dispatch(sequencer: &Arc<Sequencer>, updates: Vec<Box<Update>>) {
    for update in updates {
        sequencer.dispatch(update);
    }
}

/// Lets in-flight updates finish within `grace`, marks them done in the inbox, then confirms everything handled
/// (with an inbox: everything stored).
async fn finish(
    bot: &BotHandle,
    sequencer: &Sequencer,
    inbox: Option<&Inbox>,
    stored_offset: Option<i64>,
    grace: Duration,
    may_poll: &(dyn Fn() -> bool + Sync),
) {
    let tracker = &sequencer.tracker;
    if !sequencer.drained_within(grace).await {
        warn!(in_flight = tracker.in_flight(), "updates still in flight after the grace period; they will come again");
        sequencer.abort();
    }
    if let Some(inbox) = inbox {
        inbox.close().await;
    }
    let offset = if inbox.is_some() { stored_offset } else { tracker.offset() };
    let Some(offset) = offset else {
        return;
    };
    if !may_poll() {
        // Another replica may own the bot by now: it confirms them itself (the inbox keeps them done).
        return;
    }
    match bot.api.get_updates(Some(offset), 1, Duration::ZERO, &[]).await {
        Ok(_) => debug!(offset, "confirmed handled updates"),
        Err(e) => {
            warn!(error = %CallFailure::of(&e, &bot.config.token), "could not confirm handled updates")
        }
    }
}
