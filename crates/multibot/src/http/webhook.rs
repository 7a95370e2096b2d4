//! `POST /webhook/<path>`: one update pushed by Telegram for the bot served at `<path>`.
//!
//! In order: an unknown path is 404; a missing or wrong `X-Telegram-Bot-Api-Secret-Token` (compared in constant
//! time with that bot's secret) is 401 and nothing is read (the warning is sampled); a body over [`MAX_WEBHOOK_BODY`] is 413; a body that
//! is not an update is 400; an update that does not decode even leniently is 200 and ignored (a callback query of
//! that kind still goes on, to be answered); otherwise the update goes to the bot's inbox (one of a type we do not
//! know too, to be counted and skipped there) and the answer is 200 (also for a re-delivery, which is dropped), or
//! 503 with `Retry-After` when the inbox is full, the bot has stopped or is still resuming, or the database could
//! not store the update (durable inbox), so that Telegram retries later.

use std::sync::Arc;

use axum::{
    body::{Body, to_bytes},
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header::RETRY_AFTER},
    response::{IntoResponse, Response},
};
use teloxide_core::types::UpdateKind;
use tracing::{debug, warn};

use super::{HttpState, MAX_WEBHOOK_BODY};
use crate::{
    config::BotId,
    runtime::webhook::{Offer, WebhookInbox, WebhookSecret},
    telegram::{decode_update, unknown_type, unreadable_callback},
    telemetry::{Sampler, metrics},
};

/// The header Telegram carries the secret in.
const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// Seconds a refused delivery should wait before it is sent again (`Retry-After`).
const RETRY_SECONDS: HeaderValue = HeaderValue::from_static("1");

/// Where a delivery goes: the bot's inbox in this process, or the shared inbox for the replica running it.
enum Entrance {
    Here(Arc<WebhookInbox>),
    Relay(BotId, WebhookSecret),
}

impl Entrance {
    fn bot_id(&self) -> &BotId {
        match self {
            Entrance::Here(inbox) => inbox.bot_id(),
            Entrance::Relay(bot, _) => bot,
        }
    }

    fn secret_matches(&self, presented: &[u8]) -> bool {
        match self {
            Entrance::Here(inbox) => inbox.secret_matches(presented),
            Entrance::Relay(_, secret) => secret.matches(presented),
        }
    }
}

/// Receives one update.
pub(super) async fn receive(State(state): State<HttpState>, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let status = take(state, uri, headers, body).await;
    if status == StatusCode::SERVICE_UNAVAILABLE {
        return (status, [(RETRY_AFTER, RETRY_SECONDS)]).into_response();
    }
    status.into_response()
}

async fn take(state: HttpState, uri: Uri, headers: HeaderMap, body: Body) -> StatusCode {
    let Some(webhooks) = &state.webhooks else {
        return StatusCode::NOT_FOUND;
    };
    let path = uri.path().strip_prefix("/webhook").unwrap_or_default();
    // With replicas, a bot that does not run here (any more) may run on another replica: relay its deliveries.
    let entrance = match webhooks.inbox(path) {
        Some(inbox) if !inbox.is_closed() => Entrance::Here(inbox),
        here => match (state.manager.relay_target(path), here) {
            (Some(bot), _) => match webhooks.secret_of(&bot).await {
                Ok(secret) => Entrance::Relay(bot, secret),
                Err(e) => {
                    warn!(bot_id = %bot, error = %e, "cannot read the webhook secret to relay a delivery; answered 503");
                    metrics::webhook_request(Some(bot.as_str()), 503);
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
            },
            // A bot that stopped here answers 503 (Telegram retries) as before, an unknown path 404.
            (None, Some(stopped)) => Entrance::Here(stopped),
            (None, None) => {
                metrics::webhook_request(None, 404);
                return StatusCode::NOT_FOUND;
            }
        },
    };
    let bot_id = entrance.bot_id().as_str();
    let answer = |status: StatusCode| {
        metrics::webhook_request(Some(bot_id), status.as_u16());
        status
    };
    let presented = headers.get(SECRET_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    if !entrance.secret_matches(presented) {
        // Anyone can send these: one line per period, not one per request.
        static WRONG_SECRET: Sampler = Sampler::new(std::time::Duration::from_secs(10));
        if let Some(suppressed) = WRONG_SECRET.sample() {
            let with_header = headers.contains_key(SECRET_HEADER);
            warn!(bot_id, with_header, suppressed, "webhook request with a wrong secret refused");
        }
        return answer(StatusCode::UNAUTHORIZED);
    }
    let Ok(bytes) = to_bytes(body, MAX_WEBHOOK_BODY).await else {
        warn!(bot_id, limit = MAX_WEBHOOK_BODY, "webhook request body too large (or cut short)");
        return answer(StatusCode::PAYLOAD_TOO_LARGE);
    };
    let decoded = tracing::info_span!("bot", bot_id).in_scope(|| decode_update(&bytes));
    let update = match decoded {
        Ok(update) => update,
        Err(e) => {
            warn!(bot_id, error = %e, "webhook request is not an update");
            return answer(StatusCode::BAD_REQUEST);
        }
    };
    // An update of an unknown type goes on to be counted (`handle_update`); one that did not decode is dropped here.
    if matches!(update.kind, UpdateKind::Error(_))
        && unreadable_callback(&update).is_none()
        && unknown_type(&update).is_none()
    {
        debug!(bot_id, update_id = update.id.0, "update that does not decode ignored");
        return answer(StatusCode::OK);
    }
    let update_id = update.id.0;
    let offered = match &entrance {
        Entrance::Here(inbox) => inbox.offer(update, &bytes).await,
        Entrance::Relay(bot, _) => state.manager.relay(bot, &update, &bytes).await,
    };
    match offered {
        Offer::Accepted => answer(StatusCode::OK),
        Offer::Duplicate => {
            debug!(bot_id, update_id, "re-delivered update dropped");
            answer(StatusCode::OK)
        }
        Offer::Full => {
            warn!(bot_id, update_id, "webhook inbox full; Telegram will retry");
            answer(StatusCode::SERVICE_UNAVAILABLE)
        }
        Offer::Stopped | Offer::NotReady => {
            debug!(bot_id, update_id, "bot stopped or starting; Telegram will retry");
            answer(StatusCode::SERVICE_UNAVAILABLE)
        }
        // Logged (sampled) and counted where it failed.
        Offer::Unavailable => answer(StatusCode::SERVICE_UNAVAILABLE),
    }
}
