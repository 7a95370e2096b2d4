//! Logging in and out, and the fleet page with its live stream. Each handler of the console gathers what its page
//! shows and renders a template of `templates/console/` (askama escapes every value). The fleet table is built by
//! [`Console::rows`], which the fleet page, the bot page and the live stream share.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use askama::Template;
use axum::{
    Form,
    extract::{ConnectInfo, FromRequest, Query, Request, State},
    http::{StatusCode, header},
    response::{
        Html, IntoResponse, Redirect, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures_util::Stream;
use serde::Deserialize;
use tracing::{info, warn};

use super::{Console, Outcome, Visit, auth, rates};
use crate::fleet::{
    BotState,
    admin::{ADMIN_BOT_ID, format_uptime},
};

/// Rows on one page of the fleet table.
const PAGE: usize = 100;
/// How often a live fleet table is brought up to date.
const LIVE_EVERY: Duration = Duration::from_secs(2);
/// How long the fleet's rows are reused.
const ROWS_FRESH: Duration = Duration::from_secs(1);
/// How long a count of users per bot is reused.
const USERS_FRESH: Duration = Duration::from_secs(15);

/// One bot's line in the fleet table.
#[derive(Debug, Clone)]
pub(super) struct Row {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) state: &'static str,
    pub(super) reason: Option<String>,
    pub(super) mode: String,
    pub(super) replica: Option<String>,
    pub(super) uptime: String,
    pub(super) users: String,
    pub(super) rate_now: String,
    pub(super) rate_label: String,
    pub(super) spark: String,
    pub(super) errors: u64,
    pub(super) last_error: Option<String>,
    pub(super) pending: usize,
    pub(super) actions: Vec<&'static str>,
    /// For sorting and filtering.
    pub(super) uptime_secs: u64,
    pub(super) rate: f64,
    pub(super) plugins: Vec<String>,
}

/// `pairs` as a URL's query, leaving out the empty ones.
pub(super) fn query_string(pairs: &[(&str, &str)]) -> String {
    let kept: Vec<_> = pairs.iter().filter(|(_, value)| !value.is_empty()).collect();
    serde_urlencoded::to_string(kept).unwrap_or_default()
}

fn state_word(state: &BotState) -> &'static str {
    match state {
        BotState::Running => "running",
        BotState::Stopped => "stopped",
        BotState::Disabled => "disabled",
        BotState::Failed => "failed",
        BotState::Degraded => "degraded",
    }
}

/// The fleet table's query: filter, state, sort, page, and the outcome of the action just done.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct FleetQuery {
    q: String,
    state: String,
    sort: String,
    page: usize,
    outcome: Option<u64>,
}

impl FleetQuery {
    fn href(&self, sort: &str, page: usize) -> String {
        let page = if page > 1 { page.to_string() } else { String::new() };
        let query = query_string(&[("q", &self.q), ("state", &self.state), ("sort", sort), ("page", &page)]);
        if query.is_empty() { "/console".to_owned() } else { format!("/console?{query}") }
    }

    /// The rows that match, sorted.
    fn apply<'a>(&self, rows: &'a [Row]) -> Vec<&'a Row> {
        let mut rows: Vec<&Row> = rows.iter().collect();
        let needle = self.q.trim().to_lowercase();
        rows.retain(|row| {
            let text = || {
                [&row.id, &row.name]
                    .into_iter()
                    .chain(&row.plugins)
                    .chain(&row.last_error)
                    .chain(&row.reason)
                    .any(|field| field.to_lowercase().contains(&needle))
            };
            (self.state.is_empty() || row.state == self.state) && (needle.is_empty() || text())
        });
        match self.sort.as_str() {
            "state" => rows.sort_by(|a, b| a.state.cmp(b.state).then_with(|| a.id.cmp(&b.id))),
            "rate" => rows.sort_by(|a, b| b.rate.total_cmp(&a.rate).then_with(|| a.id.cmp(&b.id))),
            "errors" => rows.sort_by(|a, b| b.errors.cmp(&a.errors).then_with(|| a.id.cmp(&b.id))),
            "pending" => rows.sort_by(|a, b| b.pending.cmp(&a.pending).then_with(|| a.id.cmp(&b.id))),
            "uptime" => rows.sort_by(|a, b| b.uptime_secs.cmp(&a.uptime_secs).then_with(|| a.id.cmp(&b.id))),
            _ => rows.sort_by(|a, b| a.id.cmp(&b.id)),
        }
        rows
    }
}

impl Console {
    /// Users per bot, counted at most every [`USERS_FRESH`].
    async fn user_counts(&self) -> Arc<HashMap<String, i64>> {
        if let Some((at, counts)) = &*self.users.lock()
            && at.elapsed() < USERS_FRESH
        {
            return counts.clone();
        }
        let counts = match self.storage.users().counts().await {
            Ok(counts) => Arc::new(counts.into_iter().collect::<HashMap<_, _>>()),
            Err(e) => {
                warn!(error = %e, "console: cannot count users");
                Arc::default()
            }
        };
        *self.users.lock() = Some((Instant::now(), counts.clone()));
        counts
    }

    /// Every bot's row, built at most every [`ROWS_FRESH`] whatever the number of open pages and streams.
    pub(super) async fn rows(&self) -> Arc<Vec<Row>> {
        if let Some((at, rows)) = &*self.rows.lock()
            && at.elapsed() < ROWS_FRESH
        {
            return rows.clone();
        }
        let rows = Arc::new(self.build_rows().await);
        *self.rows.lock() = Some((Instant::now(), rows.clone()));
        rows
    }

    /// Every bot's row, with the replica that runs it.
    async fn build_rows(&self) -> Vec<Row> {
        let view = self.control.view().await;
        let users = self.user_counts().await;
        view.bots
            .into_iter()
            .map(|(status, replica)| {
                let series = self.rates.of(Some(status.id.as_str()));
                let state = state_word(&status.state);
                let mut actions = match status.state {
                    BotState::Running | BotState::Degraded => vec!["stop", "restart", "reload"],
                    BotState::Stopped | BotState::Failed => vec!["start", "reload"],
                    BotState::Disabled => vec!["reload"],
                };
                if status.id.as_str() == ADMIN_BOT_ID {
                    actions.retain(|a| *a != "reload");
                }
                Row {
                    id: status.id.to_string(),
                    name: status.name.clone(),
                    state,
                    reason: status.reason.clone(),
                    mode: status.mode.to_string(),
                    replica,
                    uptime: status.uptime.map(format_uptime).unwrap_or_else(|| "—".to_owned()),
                    users: users.get(status.id.as_str()).map_or_else(|| "0".to_owned(), i64::to_string),
                    rate_now: format!("{:.1}", series.last().copied().unwrap_or(0.0)),
                    rate_label: rates::summary(&series),
                    spark: rates::sparkline(&series, 120.0, 24.0),
                    errors: status.errors,
                    last_error: status.last_error.clone(),
                    pending: status.pending_updates,
                    actions,
                    uptime_secs: status.uptime.map_or(0, |u| u.as_secs()),
                    rate: series.last().copied().unwrap_or(0.0),
                    plugins: status.plugins.clone(),
                }
            })
            .collect()
    }

    /// The rows `query` shows on its page, the number that match, and the number of pages.
    async fn page(&self, query: &FleetQuery) -> (Vec<Row>, usize, usize, usize) {
        let all = self.rows().await;
        let matching = query.apply(&all);
        let pages = matching.len().div_ceil(PAGE).max(1);
        let page = query.page.clamp(1, pages);
        let shown = matching.len();
        (matching.into_iter().skip((page - 1) * PAGE).take(PAGE).cloned().collect(), shown, all.len(), pages)
    }
}

pub(super) fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            warn!(error = %e, "console: a page could not be rendered");
            (StatusCode::INTERNAL_SERVER_ERROR, "The page could not be rendered.").into_response()
        }
    }
}

pub(super) fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("{what} not found.")).into_response()
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    csrf: Option<String>,
    error: Option<String>,
}

/// `GET /console/login`.
pub(super) async fn login_page() -> Response {
    render(&LoginPage { csrf: None, error: None })
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    token: String,
}

/// `POST /console/login`: a right token gets a session cookie and the fleet page; a wrong one the form again.
pub(super) async fn login(State(console): State<Arc<Console>>, request: Request) -> Response {
    let from = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
    let (parts, body) = request.into_parts();
    let forwarded_https = parts.headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes() == b"https");
    if !super::same_origin(&parts.headers) {
        return (StatusCode::FORBIDDEN, "Cross-site request refused.").into_response();
    }
    let refuse = |status: StatusCode, error: &str| {
        let mut response = render(&LoginPage { csrf: None, error: Some(error.to_owned()) });
        *response.status_mut() = status;
        response
    };
    if !console.logins.allowed(from) {
        return refuse(StatusCode::TOO_MANY_REQUESTS, "Too many failed attempts; wait a minute and try again.");
    }
    let Ok(Form(form)) = Form::<LoginForm>::from_request(Request::from_parts(parts, body), &()).await else {
        return refuse(StatusCode::BAD_REQUEST, "The form could not be read.");
    };
    if !console.keys.token_matches(&form.token) {
        console.logins.failed(from);
        warn!(from = ?from, "console: login refused (wrong token)");
        return refuse(StatusCode::UNAUTHORIZED, "That is not the console token.");
    }
    let cookie = match console.keys.issue() {
        Ok(cookie) => cookie,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("No session could be made: {e}")).into_response(),
    };
    info!(from = ?from, "console: logged in");
    let secure = if forwarded_https { "; Secure" } else { "" };
    let max_age = auth::SESSION.as_secs();
    let set = format!("{}={cookie}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}", auth::COOKIE);
    ([(header::SET_COOKIE, set)], Redirect::to("/console")).into_response()
}

/// `POST /console/logout`.
pub(super) async fn logout(Visit { console, session }: Visit) -> Response {
    console.keys.revoke(&session);
    let clear = format!("{}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0", auth::COOKIE);
    ([(header::SET_COOKIE, clear)], Redirect::to("/console/login")).into_response()
}

/// A column of the fleet table: its label, and the link that sorts by it.
struct Column {
    label: &'static str,
    href: Option<String>,
    aria_sort: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "console/fleet.html")]
struct FleetPage {
    csrf: Option<String>,
    outcome: Option<Outcome>,
    counts: Vec<(&'static str, usize)>,
    replicas: Option<String>,
    fleet_spark: String,
    fleet_rate_label: String,
    query: FleetQuery,
    state_options: Vec<(&'static str, bool, &'static str)>,
    columns: Vec<Column>,
    rows: Vec<Row>,
    shown: usize,
    total: usize,
    page: usize,
    pages: usize,
    live_url: String,
    prev_href: Option<String>,
    next_href: Option<String>,
}

#[derive(Template)]
#[template(path = "console/rows.html")]
struct Rows {
    rows: Vec<Row>,
}

/// `GET /console`: the fleet.
pub(super) async fn fleet(Visit { console, session }: Visit, Query(query): Query<FleetQuery>) -> Response {
    let (rows, shown, total, pages) = console.page(&query).await;
    let page = query.page.clamp(1, pages);
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for row in console.rows().await.iter() {
        match counts.iter_mut().find(|(state, _)| *state == row.state) {
            Some((_, n)) => *n += 1,
            None => counts.push((row.state, 1)),
        }
    }
    counts.sort();
    let replicas = console.manager.replica().map(|r| format!("this replica: {}; alive: {}", r.id, r.alive.join(", ")));
    let series = console.rates.of(None);
    let sortable = [
        ("Bot", "id"),
        ("State", "state"),
        ("Mode", ""),
        ("Uptime", "uptime"),
        ("Users", ""),
        ("Updates/s", "rate"),
        ("Errors", "errors"),
        ("Pending", "pending"),
        ("Actions", ""),
    ];
    let current = if query.sort.is_empty() { "id" } else { query.sort.as_str() };
    let columns = sortable
        .iter()
        .map(|&(label, key)| Column {
            label,
            href: (!key.is_empty()).then(|| query.href(key, 1)),
            aria_sort: (key == current).then_some(if key == "id" || key == "state" {
                "ascending"
            } else {
                "descending"
            }),
        })
        .collect();
    let states = [
        ("", "any"),
        ("running", "running"),
        ("degraded", "degraded"),
        ("stopped", "stopped"),
        ("failed", "failed"),
        ("disabled", "disabled"),
    ];
    let live = [
        ("q", query.q.as_str()),
        ("state", query.state.as_str()),
        ("sort", query.sort.as_str()),
        ("page", &page.to_string()),
    ];
    render(&FleetPage {
        csrf: Some(console.keys.csrf(&session)),
        outcome: query.outcome.and_then(|n| console.outcome(n)),
        counts,
        replicas,
        fleet_spark: rates::sparkline(&series, 120.0, 24.0),
        fleet_rate_label: rates::summary(&series),
        state_options: states.iter().map(|&(value, label)| (value, value == query.state, label)).collect(),
        columns,
        rows,
        shown,
        total,
        page,
        pages,
        live_url: format!("/console/live?{}", query_string(&live)),
        prev_href: (page > 1).then(|| query.href(&query.sort, page - 1)),
        next_href: (page < pages).then(|| query.href(&query.sort, page + 1)),
        query,
    })
}

/// `GET /console/live`: the fleet table's rows as server-sent events (`rows`), whenever they change, until the
/// session ends or the server stops.
pub(super) async fn live(
    Visit { console, session }: Visit,
    Query(query): Query<FleetQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold(String::new(), move |last| {
        let (console, query, session) = (console.clone(), query.clone(), session.clone());
        async move {
            loop {
                tokio::select! {
                    () = console.stop.cancelled() => return None,
                    () = tokio::time::sleep(LIVE_EVERY) => {}
                }
                if !console.keys.still_valid(&session) {
                    return None;
                }
                let (rows, ..) = console.page(&query).await;
                let Ok(html) = (Rows { rows }).render() else { return None };
                if html != last {
                    return Some((Ok(Event::default().event("rows").data(html.clone())), html));
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
