//! The playground: `GET /playground`, a chat view like Telegram's in the browser, for talking to any bot
//! registered with the emulator as a user of one's choosing. One HTML page, one stylesheet and one script, embedded
//! in the binary and served with a Content-Security-Policy that allows only them; the script is a client of the
//! control API (`/control/bots`, `/control/bots/{bot}/chats/{chat}/view` long-polled for what the bot does, the
//! user's messages, clicks and files). No build step, nothing from the network.

use std::sync::Arc;

use axum::{
    Router,
    http::header::{
        CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
    },
    response::{IntoResponse, Response},
    routing::get,
};

use crate::world::World;

const PAGE: &str = include_str!("playground/index.html");
const STYLE: &str = include_str!("playground/playground.css");
const SCRIPT: &str = include_str!("playground/playground.js");

/// Only the page's own script, stylesheet, images and control API calls; no inline script or style, no forms
/// posted elsewhere, no framing.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                              media-src 'self'; connect-src 'self'; form-action 'none'; base-uri 'none'; \
                              frame-ancestors 'none'";

/// The routes: the page and its two assets.
pub(crate) fn router() -> Router<Arc<World>> {
    Router::new()
        .route("/playground", get(|| async { asset("text/html; charset=utf-8", PAGE) }))
        .route("/playground/", get(|| async { asset("text/html; charset=utf-8", PAGE) }))
        .route("/playground/playground.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
        .route("/playground/playground.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (CONTENT_TYPE, content_type),
        (CONTENT_SECURITY_POLICY, CSP),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (X_FRAME_OPTIONS, "DENY"),
        (REFERRER_POLICY, "no-referrer"),
        // Always the assets of the running emulator, not of an older build.
        (CACHE_CONTROL, "no-cache"),
    ];
    (headers, body).into_response()
}
