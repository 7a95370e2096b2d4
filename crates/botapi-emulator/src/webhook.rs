//! Webhook delivery: while a bot has a webhook, one pusher task POSTs its pending updates to the URL with the
//! `X-Telegram-Bot-Api-Secret-Token` header, at most `max_connections` at once. A 2xx answer confirms the update;
//! anything else (or a connection error) keeps it pending, records `last_error_*` and pauses delivery with
//! exponential backoff, as Telegram does.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;

use crate::world::{BotCell, World, unix_now};

/// Starts the pusher for webhook `generation` of `bot`; it ends when the webhook changes or is deleted.
pub(crate) fn spawn(world: Arc<World>, bot: Arc<BotCell>, generation: u64) {
    tokio::spawn(run(world, bot, generation));
}

struct Job {
    update_id: i64,
    body: String,
    url: String,
    secret: Option<String>,
}

async fn run(world: Arc<World>, bot: Arc<BotCell>, generation: u64) {
    loop {
        let notified = bot.updates.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (job, retry_at) = {
            let mut st = bot.state.lock();
            if st.webhook_generation != generation {
                return;
            }
            next_job(&mut st)
        };
        if let Some(job) = job {
            tokio::spawn(deliver(world.clone(), bot.clone(), generation, job));
            continue;
        }
        // Nothing to send now: wait for an update, a finished delivery, or the end of a backoff pause.
        let wake = retry_at.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(wake) => {}
            () = world.shutdown.cancelled() => return,
        }
    }
}

/// The next update to push, if a connection is free and no backoff pause is running; else when to look again.
fn next_job(st: &mut crate::world::BotState) -> (Option<Job>, Option<Instant>) {
    let Some(hook) = &st.webhook else {
        return (None, None);
    };
    if let Some(at) = hook.retry_at.filter(|at| *at > Instant::now()) {
        return (None, Some(at));
    }
    if hook.in_flight >= hook.max_connections {
        return (None, None);
    }
    let (url, secret) = (hook.url.clone(), hook.secret.clone());
    let Some(index) = st.queue.iter().position(|p| !p.in_flight) else {
        return (None, None);
    };
    st.note_delivery(index);
    let pending = &mut st.queue[index];
    pending.in_flight = true;
    let job = Job { update_id: pending.id, body: pending.json.get().to_owned(), url, secret };
    if let Some(hook) = &mut st.webhook {
        hook.in_flight += 1;
    }
    (Some(job), None)
}

async fn deliver(world: Arc<World>, bot: Arc<BotCell>, generation: u64, job: Job) {
    let mut request = world
        .http
        .post(&job.url)
        .header("content-type", "application/json")
        .timeout(world.config.webhook_timeout)
        .body(job.body);
    if let Some(secret) = &job.secret {
        request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
    }
    let outcome = match request.send().await {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!("Wrong response from the webhook: {}", response.status())),
        Err(e) if e.is_timeout() => Err("Read timeout expired".to_owned()),
        Err(e) if e.is_connect() => Err("Connection refused".to_owned()),
        Err(_) => Err("Connection closed".to_owned()),
    };
    {
        let mut st = bot.state.lock();
        let same = st.webhook_generation == generation;
        if let Some(hook) = st.webhook.as_mut().filter(|_| same) {
            hook.in_flight = hook.in_flight.saturating_sub(1);
        }
        match outcome {
            Ok(()) => {
                st.confirm_one(job.update_id);
                if let Some(hook) = st.webhook.as_mut().filter(|_| same) {
                    hook.failures = 0;
                    hook.retry_at = None;
                }
            }
            Err(message) => {
                if let Ok(index) = st.queue.binary_search_by_key(&job.update_id, |p| p.id) {
                    st.queue[index].in_flight = false;
                }
                st.stats.webhook_failures += 1;
                if let Some(hook) = st.webhook.as_mut().filter(|_| same) {
                    hook.failures += 1;
                    let exponent = hook.failures.saturating_sub(1).min(16);
                    let delay = world
                        .config
                        .webhook_retry_base
                        .saturating_mul(1 << exponent)
                        .min(world.config.webhook_retry_max);
                    hook.retry_at = Some(Instant::now() + delay);
                    hook.last_error_date = Some(unix_now());
                    hook.last_error_message = Some(message);
                }
            }
        }
    }
    bot.updates.notify_waiters();
}
