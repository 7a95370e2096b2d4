//! Getting updates: `getUpdates` (long polling, confirmation by offset, 409 on a second poller) and the webhook
//! methods `setWebhook`, `deleteWebhook`, `getWebhookInfo`; `allowed_updates` as the reference defines it.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use tokio::time::{Instant, sleep_until};

use super::Answer;
use crate::{
    error::ApiError,
    params::Params,
    webhook,
    world::{BotCell, BotState, UPDATE_TYPES, Webhook, World},
};

/// `getUpdates`: confirms below `offset`, then answers at once or waits up to `timeout` seconds for updates.
/// A newer call, or a webhook being set, ends a waiting one with 409, as Telegram does.
pub(super) async fn get_updates(world: &World, bot: &BotCell, p: &Params) -> Result<Answer, ApiError> {
    let offset = p.int("offset")?.unwrap_or(0);
    let limit = p.int("limit")?.map_or(100, |l| l.clamp(1, 100)) as usize;
    let timeout = p.int("timeout")?.unwrap_or(0).clamp(0, 3600) as u64;
    let allowed = allowed_updates(p);
    let generation = {
        let mut st = bot.state.lock();
        if st.webhook.is_some() {
            return Err(webhook_conflict());
        }
        st.poll_generation += 1;
        st.confirm(offset);
        st.set_allowed(allowed);
        st.poll_generation
    };
    // Ends an older long poll still waiting for this bot.
    bot.updates.notify_waiters();
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        let notified = bot.updates.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut st = bot.state.lock();
            // A webhook set meanwhile also ends the poll (setWebhook bumps the generation): say which.
            if st.webhook.is_some() {
                return Err(webhook_conflict());
            }
            if st.poll_generation != generation {
                return Err(ApiError::conflict(
                    "terminated by other getUpdates request; make sure that only one bot instance is running",
                ));
            }
            let count = st.queue.len().min(limit);
            if count > 0 || timeout == 0 {
                let mut out = String::with_capacity(count * 256 + 2);
                out.push('[');
                for index in 0..count {
                    if index > 0 {
                        out.push(',');
                    }
                    out.push_str(st.queue[index].json.get());
                    st.note_delivery(index);
                }
                out.push(']');
                return Ok(Answer::Raw(out));
            }
            st.waiting_polls += 1;
        }
        let _waiting = Waiting(bot);
        tokio::select! {
            () = &mut notified => {}
            () = sleep_until(deadline) => return Ok(Answer::Raw("[]".into())),
            () = world.shutdown.cancelled() => return Ok(Answer::Raw("[]".into())),
        }
    }
}

/// Counts a long poll as waiting for as long as it lives (the client may go away mid-wait).
struct Waiting<'a>(&'a BotCell);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock();
        st.waiting_polls = st.waiting_polls.saturating_sub(1);
    }
}

pub(super) fn webhook_conflict() -> ApiError {
    ApiError::conflict(
        "can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
    )
}

/// `allowed_updates` as the Bot API server reads it: `None` (keep the previous setting) when the parameter is
/// absent or is not a JSON list of strings; otherwise the update types it names that Telegram knows, matched
/// without regard to case, unknown names ignored. An empty list asks for the default.
pub(super) fn allowed_updates(p: &Params) -> Option<Vec<String>> {
    let value = p.json("allowed_updates", "").ok()??;
    let names = value.as_array()?.iter().map(Value::as_str).collect::<Option<Vec<_>>>()?;
    let mut known: Vec<String> = Vec::new();
    for name in names {
        let name = name.to_ascii_lowercase();
        if UPDATE_TYPES.contains(&name.as_str()) && !known.contains(&name) {
            known.push(name);
        }
    }
    Some(known)
}

pub(super) fn set_webhook(world: &Arc<World>, bot: &Arc<BotCell>, p: &Params) -> Result<Answer, ApiError> {
    let url = p.str("url")?.unwrap_or_default();
    if url.is_empty() {
        let mut st = bot.state.lock();
        let answer = delete_webhook(&mut st, p);
        drop(st);
        bot.updates.notify_waiters();
        return answer;
    }
    let parsed = reqwest::Url::parse(&url).map_err(|_| ApiError::bad_request("bad webhook: invalid URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(ApiError::bad_request("bad webhook: an HTTP or HTTPS URL must be provided for webhook"));
    }
    let secret = p.str("secret_token")?.filter(|s| !s.is_empty());
    if let Some(secret) = &secret {
        let valid = secret.len() <= 256 && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(ApiError::bad_request("secret token contains unallowed characters"));
        }
    }
    let max_connections = p.int("max_connections")?.unwrap_or(40).clamp(1, 100) as usize;
    let allowed = allowed_updates(p);
    let drop_pending = p.bool("drop_pending_updates")?;
    let generation = {
        let mut st = bot.state.lock();
        if drop_pending {
            st.drop_pending();
        }
        for pending in &mut st.queue {
            pending.in_flight = false;
        }
        st.set_allowed(allowed);
        st.webhook = Some(Webhook {
            url,
            secret,
            max_connections,
            in_flight: 0,
            failures: 0,
            retry_at: None,
            last_error_date: None,
            last_error_message: None,
        });
        st.webhook_generation += 1;
        st.poll_generation += 1;
        st.webhook_generation
    };
    bot.updates.notify_waiters();
    webhook::spawn(world.clone(), bot.clone(), generation);
    Answer::ok()
}

pub(super) fn delete_webhook(st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    if p.bool("drop_pending_updates")? {
        st.drop_pending();
    }
    if st.webhook.take().is_some() {
        st.webhook_generation += 1;
        for pending in &mut st.queue {
            pending.in_flight = false;
        }
    }
    Answer::ok()
}

pub(super) fn webhook_info(st: &BotState) -> Value {
    let mut info = json!({
        "url": "",
        "has_custom_certificate": false,
        "pending_update_count": st.queue.len(),
    });
    if let Some(hook) = &st.webhook {
        info["url"] = hook.url.clone().into();
        info["max_connections"] = hook.max_connections.into();
        info["ip_address"] = "127.0.0.1".into();
        if let Some(date) = hook.last_error_date {
            info["last_error_date"] = date.into();
        }
        if let Some(message) = &hook.last_error_message {
            info["last_error_message"] = message.clone().into();
        }
    }
    if let Some(allowed) = st.allowed() {
        info["allowed_updates"] = json!(allowed);
    }
    info
}
