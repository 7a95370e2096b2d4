//! The polling update source. It asks getUpdates for updates from the low-water mark, so Telegram keeps every
//! update until it has been handled; updates it already has in flight come back and are skipped. On stop it
//! lets in-flight updates finish, then confirms them with one last getUpdates.

use std::{sync::Arc, time::Duration};

use teloxide_core::{
    ApiError, RequestError,
    payloads::GetUpdatesSetters,
    prelude::Requester,
    requests::Request,
    types::{AllowedUpdate, Update},
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use super::{BotRuntime, runtime::describe_request_error, sequencer::Sequencer};

const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// While updates are in flight a poll answers at once (they are still pending), so the loop waits for progress
/// between polls, at least this long and at most `MAX_IDLE_WAIT`.
const MIN_IDLE_WAIT: Duration = Duration::from_millis(5);
const MAX_IDLE_WAIT: Duration = Duration::from_millis(500);

fn allowed_updates(bot: &BotRuntime) -> Vec<AllowedUpdate> {
    let mut allowed: Vec<AllowedUpdate> = bot
        .router
        .update_types()
        .into_iter()
        .filter_map(|kind| match kind {
            "message" => Some(AllowedUpdate::Message),
            "edited_message" => Some(AllowedUpdate::EditedMessage),
            "callback_query" => Some(AllowedUpdate::CallbackQuery),
            _ => None,
        })
        .collect();
    if allowed.is_empty() {
        allowed.push(AllowedUpdate::Message);
    }
    allowed
}

/// Polls until `cancel`, then drains and confirms.
pub(crate) async fn run(
    bot: Arc<BotRuntime>,
    sequencer: Arc<Sequencer>,
    timeout: Duration,
    grace: Duration,
    cancel: CancellationToken,
) {
    let tracker = sequencer.tracker.clone();
    let allowed = allowed_updates(&bot);
    let mut backoff = MIN_BACKOFF;
    let mut idle_wait = MIN_IDLE_WAIT;
    while !cancel.is_cancelled() {
        let idle = tracker.in_flight() == 0;
        let mut request = bot
            .api
            .raw()
            .get_updates()
            .limit(100)
            .allowed_updates(allowed.clone());
        request = request.timeout(if idle { timeout.as_secs() as u32 } else { 0 });
        if let Some(offset) = tracker.offset() {
            request = request.offset(offset as i32);
        }
        let result = tokio::select! {
            result = request.send() => result,
            () = cancel.cancelled() => break,
        };
        let pause = match result {
            Ok(updates) => {
                backoff = MIN_BACKOFF;
                let fresh = tracker.admit(updates);
                if fresh.is_empty() && !idle {
                    let pause = idle_wait;
                    idle_wait = (idle_wait * 2).min(MAX_IDLE_WAIT);
                    tokio::select! {
                        () = tracker.progress.notified() => {}
                        () = tokio::time::sleep(pause) => {}
                        () = cancel.cancelled() => break,
                    }
                    continue;
                }
                idle_wait = MIN_IDLE_WAIT;
                dispatch(&sequencer, fresh);
                continue;
            }
            Err(RequestError::RetryAfter(seconds)) => {
                warn!(
                    retry_after = seconds.seconds(),
                    "getUpdates hit flood control"
                );
                seconds.duration()
            }
            Err(RequestError::Api(ApiError::InvalidToken)) => {
                let reason =
                    "token rejected by Telegram (401 Unauthorized) while polling".to_owned();
                error!(reason = %reason, "bot failed");
                *bot.health.failure.lock() = Some(reason);
                break;
            }
            Err(RequestError::Api(ApiError::TerminatedByOtherGetUpdates)) => {
                warn!("another process is polling with this token (409 Conflict); backing off");
                next_backoff(&mut backoff)
            }
            Err(e) => {
                warn!(error = %bot.redact(describe_request_error(&e)), "getUpdates failed; backing off");
                next_backoff(&mut backoff)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = cancel.cancelled() => break,
        }
    }
    finish(&bot, &sequencer, grace).await;
}

fn next_backoff(backoff: &mut Duration) -> Duration {
    let pause = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    pause
}

fn dispatch(sequencer: &Arc<Sequencer>, updates: Vec<Update>) {
    for update in updates {
        sequencer.dispatch(update);
    }
}

/// Lets in-flight updates finish within `grace`, then confirms everything handled.
async fn finish(bot: &BotRuntime, sequencer: &Sequencer, grace: Duration) {
    let tracker = &sequencer.tracker;
    if tokio::time::timeout(grace, tracker.drained())
        .await
        .is_err()
    {
        warn!(
            in_flight = tracker.in_flight(),
            "updates still in flight after the grace period; they will come again"
        );
        sequencer.abort();
    }
    let Some(offset) = tracker.offset() else {
        return;
    };
    let confirm = bot
        .api
        .raw()
        .get_updates()
        .offset(offset as i32)
        .limit(1)
        .timeout(0);
    match confirm.await {
        Ok(_) => debug!(offset, "confirmed handled updates"),
        Err(e) => {
            warn!(error = %bot.redact(describe_request_error(&e)), "could not confirm handled updates")
        }
    }
}
