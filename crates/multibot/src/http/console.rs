//! The web console at `/console`, on the health listener when `CONSOLE_TOKEN` is set: the fleet at a glance
//! (updated live), each bot's page, the audit log, and the admin bot's actions (start, stop, restart, reload one
//! bot or all) behind a confirmation step. Actions go through [`Control`], so with replicas they apply wherever
//! the bot runs, and each is audited as an `admin_action` event with `"via": "console"`.
//!
//! - `auth`: session cookies and CSRF tokens, signed with a key derived from the token; failed-login throttling.
//! - `pages`: logging in and out, the fleet page and its live stream; `records`: a bot's page and the audit log;
//!   `actions`: confirmations and actions; `broadcasts`: a bot's broadcasts, started, paused, resumed, cancelled. Pages are askama templates of `templates/console/`.
//! - `rates`: updates per second over the last minutes, drawn as sparklines.
//!
//! Pages are rendered on the server and work without JavaScript; `assets/console.js` only keeps the fleet table
//! live through server-sent events. The assets are embedded in the binary. Every answer forbids framing, scripts
//! from elsewhere and caching; a request that changes something must carry the session's CSRF token and, when the
//! browser names its origin, come from the console's own.

mod actions;
mod auth;
mod broadcasts;
mod pages;
mod rates;
mod records;

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts},
    middleware::{self, Next},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use parking_lot::Mutex;
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::{
    config::BotId,
    fleet::{BotManager, broadcasts::Broadcasts, control::Control},
    storage::{Recorder, Storage},
};

/// The largest form a console action takes: a broadcast's text of 4096 characters, percent-encoded, fits.
const MAX_FORM: usize = 64 * 1024;
/// Outcomes of actions kept for the page the browser is sent to after one.
const OUTCOMES: usize = 64;

/// Users per bot id.
type UserCounts = Arc<HashMap<String, i64>>;

/// Everything the console's routes read.
pub struct Console {
    keys: auth::Keys,
    logins: auth::Logins,
    control: Control,
    broadcasts: Broadcasts,
    manager: BotManager,
    storage: Storage,
    recorder: Recorder,
    rates: rates::Rates,
    outcomes: Mutex<VecDeque<(u64, Outcome)>>,
    next_outcome: AtomicU64,
    /// The fleet table's rows, with when they were built.
    rows: Mutex<Option<(Instant, Arc<Vec<pages::Row>>)>>,
    /// Users per bot, with when they were counted.
    users: Mutex<Option<(Instant, UserCounts)>>,
    /// Ends the live streams when the server stops.
    stop: CancellationToken,
}

/// What an action did, as the page after it shows.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    ok: bool,
    title: String,
    lines: Vec<String>,
}

impl Outcome {
    /// The CSS class of its banner.
    fn class(&self) -> &'static str {
        if self.ok { "ok" } else { "failed" }
    }
}

impl Console {
    /// A console for `manager`'s fleet, acting through `control` and `broadcasts`, logged in with `token`; its live
    /// streams end when `stop` is cancelled.
    pub fn new(
        token: &SecretString,
        control: Control,
        broadcasts: Broadcasts,
        manager: BotManager,
        storage: Storage,
        recorder: Recorder,
        stop: CancellationToken,
    ) -> Arc<Console> {
        Arc::new(Console {
            keys: auth::Keys::new(token.expose_secret()),
            logins: auth::Logins::default(),
            control,
            broadcasts,
            manager,
            storage,
            recorder,
            rates: rates::Rates::default(),
            outcomes: Mutex::default(),
            next_outcome: AtomicU64::new(1),
            rows: Mutex::default(),
            users: Mutex::default(),
            stop,
        })
    }

    /// Reads the fleet's counters every few seconds, for the charts, until the server stops.
    pub async fn sample(self: Arc<Self>) {
        let mut tick = tokio::time::interval(rates::STEP);
        loop {
            tokio::select! {
                _ = tick.tick() => self.rates.sample(&self.manager.status()),
                () = self.stop.cancelled() => return,
            }
        }
    }

    /// The bot `id` names, if it is one of the fleet's.
    fn bot(&self, id: &str) -> Option<BotId> {
        BotId::parse(id).ok().filter(|bot| self.manager.status_of(bot).is_some())
    }

    fn remember(&self, outcome: Outcome) -> u64 {
        let n = self.next_outcome.fetch_add(1, Ordering::Relaxed);
        let mut outcomes = self.outcomes.lock();
        if outcomes.len() == OUTCOMES {
            outcomes.pop_front();
        }
        outcomes.push_back((n, outcome));
        n
    }

    fn outcome(&self, n: u64) -> Option<Outcome> {
        self.outcomes.lock().iter().find(|(id, _)| *id == n).map(|(_, outcome)| outcome.clone())
    }
}

/// The console's routes; every one but the login page and the assets asks for a session.
pub fn router(console: Arc<Console>) -> Router {
    let guarded = Router::new()
        .route("/console", get(pages::fleet))
        .route("/console/live", get(pages::live))
        .route("/console/events", get(records::events))
        .route("/console/reload", get(actions::confirm_reload).post(actions::reload_all))
        .route("/console/bots/{id}", get(records::bot))
        .route("/console/bots/{id}/{action}", get(actions::confirm).post(actions::act))
        .route("/console/bots/{id}/broadcast/preview", post(broadcasts::preview))
        .route("/console/bots/{id}/broadcast", post(broadcasts::start))
        .route("/console/broadcasts/{n}/cancel", get(broadcasts::confirm_cancel).post(broadcasts::cancel))
        .route("/console/broadcasts/{n}/{action}", post(broadcasts::act))
        .route("/console/logout", post(pages::logout))
        .route_layer(middleware::from_fn_with_state(console.clone(), require_session));
    Router::new()
        .route("/console/login", get(pages::login_page).post(pages::login))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/assets/console.js", get(script))
        .merge(guarded)
        .layer(middleware::from_fn(protect))
        .with_state(console)
}

/// The session cookie's value, if the request has one.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(auth::COOKIE)?.strip_prefix('='))
}

/// Whether a request comes from the console's own pages, as far as the browser says: by fetch metadata
/// (`Sec-Fetch-Site`) when it sends it, else by `Origin`. A request with neither is not a browser's cross-site
/// request (browsers send one of the two with every POST); the CSRF token still guards it.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        return matches!(site, "same-origin" | "none");
    }
    match (text(header::ORIGIN), text(header::HOST)) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
        }
        (Some(_), None) => false,
    }
}

/// Lets a request with a valid session through, with the [`auth::Session`] in its extensions. Without one, a
/// page is sent to the login form and anything else gets 401. A request that changes something gets 403 when it
/// comes from another site or its form lacks the session's CSRF token: every action is guarded here, in one place.
async fn require_session(State(console): State<Arc<Console>>, mut request: Request, next: Next) -> Response {
    let changes = request.method() != Method::GET && request.method() != Method::HEAD;
    if changes && !same_origin(request.headers()) {
        return (StatusCode::FORBIDDEN, "Cross-site request refused.").into_response();
    }
    let session = cookie(request.headers()).and_then(|value| console.keys.session(value));
    let Some(session) = session else {
        if !changes && request.uri().path() != "/console/live" {
            return Redirect::to("/console/login").into_response();
        }
        return (StatusCode::UNAUTHORIZED, "Log in first.").into_response();
    };
    if changes {
        request = match with_csrf_checked(&console, &session, request).await {
            Ok(request) => request,
            Err(refused) => return refused,
        };
    }
    request.extensions_mut().insert(session);
    next.run(request).await
}

/// What a page behind the login gets: the console, and the session [`require_session`] let through.
pub(super) struct Visit {
    console: Arc<Console>,
    session: auth::Session,
}

impl axum::extract::FromRequestParts<Arc<Console>> for Visit {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, console: &Arc<Console>) -> Result<Visit, StatusCode> {
        // Only a route outside `require_session` lacks it: a wiring mistake, answered as a refusal.
        let session = parts.extensions.get::<auth::Session>().cloned().ok_or(StatusCode::UNAUTHORIZED)?;
        Ok(Visit { console: console.clone(), session })
    }
}

/// `request`, read whole, if its form carries `session`'s CSRF token; an answer that refuses it otherwise.
async fn with_csrf_checked(console: &Console, session: &auth::Session, request: Request) -> Result<Request, Response> {
    #[derive(serde::Deserialize)]
    struct CsrfField {
        #[serde(default)]
        csrf: String,
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.").into_response());
    };
    let presented = serde_urlencoded::from_bytes::<CsrfField>(&bytes).map(|form| form.csrf).unwrap_or_default();
    if !console.keys.csrf_matches(session, &presented) {
        let text = "This form expired or came from another page; go back, reload it and try again.";
        return Err((StatusCode::FORBIDDEN, text).into_response());
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

/// Headers on every answer of the console: no framing, no script or style from elsewhere, nothing cached.
async fn protect(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let policy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                  form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("console/assets/console.css"))
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("console/assets/console.js"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")];
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let found = headers(&[("cookie", "a=1; multibot_console=abc.def.012; b=2")]);
        assert_eq!(cookie(&found), Some("abc.def.012"));
        // Bad input: a cookie whose name only starts like ours, none at all.
        assert_eq!(cookie(&headers(&[("cookie", "multibot_console_x=1")])), None);
        assert_eq!(cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn only_the_consoles_own_origin_may_change_things() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[("host", "ops.example"), ("origin", "https://ops.example")])));
        assert!(same_origin(&headers(&[("host", "ops.example")])));
        assert!(same_origin(&headers(&[("origin", "null"), ("sec-fetch-site", "same-origin")])));
        // Bad input: another site's origin, a site named by fetch metadata, an origin without a host.
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://evil.example")])));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("origin", "http://127.0.0.1:8080")])));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "null")])));
    }
}
