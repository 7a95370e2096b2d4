//! The web console over real HTTP, as a browser without JavaScript would use it: sessions, CSRF, actions through
//! to the emulator, reload errors, the audit log, the live stream, and no secret in any page. The same flows in
//! a real Chromium are in `browser_console`.

use std::time::Duration;

use botapi_emulator::Emulator;
use multibot::{
    config::BotId,
    fleet::BotState,
    plugins::PluginRegistry,
    storage::{EventKind, NewEvent},
};
use reqwest::{StatusCode, header};

use crate::{
    db::TestDb,
    helpers::{Served, TempDir, Web, emulator, eventually, serve, token},
    replicas::{Fleet, free_port, leases},
};

/// The console token of these tests.
pub(crate) const CONSOLE_TOKEN: &str = "console-test-token-0123456789";
const METRICS_TOKEN: &str = "metrics-test-token-9876543210";
pub(crate) const ECHO: &str =
    "id: echo\nname: Echo Bot\ntoken: \"${TOKEN_1}\"\nplugins:\n  - name: echo\n    config: { echo_all: true }\n";
const MENU: &str = "id: menu\nname: Menu Bot\ntoken: \"${TOKEN_2}\"\nplugins:\n  - name: menu\n";

/// An application with a console, two bots (`echo`, `menu`) and the emulator.
pub(crate) struct ConsoleApp {
    pub(crate) emu: Emulator,
    pub(crate) dir: TempDir,
    pub(crate) served: Served,
}

pub(crate) async fn console_app() -> ConsoleApp {
    let emu = emulator(2).await;
    let dir = TempDir::new();
    dir.write("echo.yaml", ECHO);
    dir.write("menu.yaml", MENU);
    // The tests edit files and ask for reloads themselves: the file watcher would race them to the change (the
    // reload then finds nothing changed).
    let extra = [
        ("CONSOLE_TOKEN", CONSOLE_TOKEN.to_owned()),
        ("METRICS_TOKEN", METRICS_TOKEN.to_owned()),
        ("ENABLE_HOT_RELOAD", "false".to_owned()),
    ];
    let served = serve(&emu, dir.path(), Web::Off, &extra, PluginRegistry::builtin()).await;
    ConsoleApp { emu, dir, served }
}

/// A client that keeps the session cookie and follows no redirect, so that each answer can be checked.
struct Client {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Client {
    fn new(app: &ConsoleApp) -> Client {
        Client::at(app.served.url(""))
    }

    /// A client of the console at `base` (`http://host:port`).
    fn at(base: String) -> Client {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Client { http, base, cookie: None }
    }

    async fn get(&self, path: &str) -> (StatusCode, String, header::HeaderMap) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, response.text().await.unwrap(), headers)
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> (StatusCode, String, header::HeaderMap) {
        let mut request = self.http.post(format!("{}{path}", self.base)).form(form);
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, response.text().await.unwrap(), headers)
    }

    /// Logs in with `token`; keeps the cookie when it worked.
    async fn login(&mut self, token: &str) -> (StatusCode, String, header::HeaderMap) {
        let answer = self.post("/console/login", &[("token", token)], &[]).await;
        if let Some(set) = answer.2.get(header::SET_COOKIE) {
            self.cookie = set.to_str().unwrap().split(';').next().map(str::to_owned);
        }
        answer
    }

    /// The CSRF token on the fleet page.
    async fn csrf(&self) -> String {
        let (_, page, _) = self.get("/console").await;
        let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
        page[at..].split('"').next().unwrap().to_owned()
    }

    /// Follows the redirect an action answers with, to the page that shows its outcome.
    async fn outcome(&self, answer: &(StatusCode, String, header::HeaderMap)) -> String {
        assert_eq!(answer.0, StatusCode::SEE_OTHER, "{}", answer.1);
        let location = answer.2[header::LOCATION].to_str().unwrap();
        self.get(location.split('#').next().unwrap()).await.1
    }
}

/// Form fields or headers.
type Pairs<'a> = &'a [(&'a str, &'a str)];

fn id(text: &str) -> BotId {
    BotId::parse(text).unwrap()
}

#[tokio::test]
async fn without_a_session_every_console_route_is_refused() {
    let app = console_app().await;
    let mut client = Client::new(&app);
    for path in ["/console", "/console/events", "/console/bots/echo", "/console/bots/echo/stop", "/console/reload"] {
        let (status, body, headers) = client.get(path).await;
        assert_eq!(
            (status, &headers[header::LOCATION]),
            (StatusCode::SEE_OTHER, &"/console/login".parse().unwrap()),
            "{path}"
        );
        assert!(!body.contains("Echo Bot"), "{path}");
    }
    assert_eq!(client.get("/console/live").await.0, StatusCode::UNAUTHORIZED);
    for path in ["/console/bots/echo/stop", "/console/reload", "/console/logout"] {
        assert_eq!(client.post(path, &[("csrf", "x")], &[]).await.0, StatusCode::UNAUTHORIZED, "{path}");
    }
    // Bad input: a forged cookie, an empty one.
    for forged in ["multibot_console=1999999999.00.00", "multibot_console="] {
        client.cookie = Some(forged.to_owned());
        assert_eq!(client.get("/console").await.0, StatusCode::SEE_OTHER, "{forged}");
        assert_eq!(client.post("/console/bots/echo/stop", &[("csrf", "x")], &[]).await.0, StatusCode::UNAUTHORIZED);
    }
    client.cookie = None;
    assert_eq!(app.served.manager.status_of(&id("echo")).unwrap().state, BotState::Running, "nothing was stopped");
    // The assets and the login page are open; they hold nothing about the fleet.
    assert_eq!(client.get("/console/assets/console.css").await.0, StatusCode::OK);
    let (status, page, headers) = client.get("/console/login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Console token") && !page.contains("echo"));
    assert!(headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("frame-ancestors 'none'"));

    // Bad input: a wrong token, an empty one, the right one with a character missing.
    for wrong in ["wrong", "", &CONSOLE_TOKEN[1..]] {
        let (status, page, headers) = client.login(wrong).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert!(page.contains("That is not the console token.") && headers.get(header::SET_COOKIE).is_none());
    }
    let (status, _, headers) = client.login(CONSOLE_TOKEN).await;
    assert_eq!((status, &headers[header::LOCATION]), (StatusCode::SEE_OTHER, &"/console".parse().unwrap()));
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(client.get("/console").await.1.contains("Echo Bot"));
    // Logging out ends the session: the same cookie is refused afterwards.
    let csrf = client.csrf().await;
    assert_eq!(client.post("/console/logout", &[("csrf", &csrf)], &[]).await.0, StatusCode::SEE_OTHER);
    assert_eq!(client.get("/console").await.0, StatusCode::SEE_OTHER);

    // Guessing is throttled: after five wrong tokens from one address (the three above and two more), even the
    // right one waits.
    let mut guesser = Client::new(&app);
    for n in 0..2 {
        assert_eq!(guesser.login(&format!("guess-{n}")).await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, page, _) = guesser.login(CONSOLE_TOKEN).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.contains("Too many failed attempts"));
    app.served.stop().await;
}

#[tokio::test]
async fn an_action_needs_the_csrf_token_and_the_consoles_origin_and_is_audited() {
    let app = console_app().await;
    let mut client = Client::new(&app);
    client.login(CONSOLE_TOKEN).await;
    let csrf = client.csrf().await;
    let host = app.served.url("").trim_start_matches("http://").trim_end_matches('/').to_owned();
    // Bad input: no token, a wrong one, the right one from another site (by Origin, by fetch metadata).
    let refused: [(Pairs, Pairs); 4] = [
        (&[], &[]),
        (&[("csrf", "0123abcd")], &[]),
        (&[("csrf", &csrf)], &[("origin", "http://evil.example")]),
        (&[("csrf", &csrf)], &[("sec-fetch-site", "cross-site")]),
    ];
    for (form, headers) in refused {
        let (status, _, _) = client.post("/console/bots/echo/stop", form, headers).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{form:?} {headers:?}");
    }
    // Bad input: a form far larger than a CSRF token.
    let padding = "x".repeat(100 * 1024);
    let (status, _, _) = client.post("/console/bots/echo/stop", &[("csrf", &csrf), ("padding", &padding)], &[]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let echo = app.emu.bot(&token(1)).await.unwrap();
    assert_eq!(app.served.manager.status_of(&id("echo")).unwrap().state, BotState::Running);

    // The confirmation page asks first; its form stops the bot.
    let (status, page, _) = client.get("/console/bots/echo/stop").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Stop bot echo?") && page.contains(&csrf));
    let origin = format!("http://{host}");
    let answer = client.post("/console/bots/echo/stop", &[("csrf", &csrf)], &[("origin", &origin)]).await;
    let page = client.outcome(&answer).await;
    assert!(page.contains("Bot echo stopped"), "{page}");
    assert_eq!(app.served.manager.status_of(&id("echo")).unwrap().state, BotState::Stopped);
    // Polling ended: a user's message waits in Telegram, and no getUpdates comes for it.
    let polls = echo.calls(Some("getUpdates")).await.unwrap().len();
    let user = app.emu.user(501);
    user.send(&echo, "anyone?").await.unwrap();
    let quiet_until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < quiet_until {
        assert_eq!(echo.calls(Some("getUpdates")).await.unwrap().len(), polls, "a stopped bot polled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(echo.stats().await.unwrap().pending, 1);

    // Start it again: the waiting message is answered.
    let answer = client.post("/console/bots/echo/start", &[("csrf", &csrf)], &[]).await;
    assert!(client.outcome(&answer).await.contains("Bot echo started"));
    assert_eq!(user.next_message_from(&echo).await.unwrap().text.as_deref(), Some("You said: anyone?"));

    // Both actions are in the audit log, marked as the console's, and on the events page.
    let storage = &app.served.storage;
    eventually(Duration::from_secs(10), "two audited actions", || async {
        storage.events().list(Some("echo"), Some("admin_action"), 10).await.unwrap().len() == 2
    })
    .await;
    let events = storage.events().list(Some("echo"), Some("admin_action"), 10).await.unwrap();
    let actions: Vec<_> =
        events.iter().map(|e| (e.detail["action"].clone(), e.detail["detail"]["via"].clone())).collect();
    assert_eq!(actions, [("start".into(), "console".into()), ("stop".into(), "console".into())]);
    assert!(events.iter().all(|e| e.actor_user_id.is_none() && e.detail["detail"]["outcome"] == "ok"));
    let (_, page, _) = client.get("/console/events?bot=echo&kind=admin_action").await;
    assert_eq!(page.matches("<td>admin_action</td>").count(), 2, "{page}");
    // Bad input: an unknown action, an unknown bot, an id that is not one.
    for path in ["/console/bots/echo/explode", "/console/bots/ghost/stop", "/console/bots/..%2F/stop"] {
        assert_eq!(client.post(path, &[("csrf", &csrf)], &[]).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    app.served.stop().await;
}

#[tokio::test]
async fn a_broken_file_reload_shows_where_the_problem_is_and_the_bot_keeps_running() {
    let app = console_app().await;
    let mut client = Client::new(&app);
    client.login(CONSOLE_TOKEN).await;
    let csrf = client.csrf().await;
    // Bad input: a file with a plugin that does not exist.
    app.dir.write("echo.yaml", &ECHO.replace("name: echo\n", "name: no_such_plugin\n"));
    let answer = client.post("/console/reload", &[("csrf", &csrf)], &[]).await;
    let page = client.outcome(&answer).await;
    assert!(page.contains("Reload finished with problems"), "{page}");
    let at = page.find("echo.yaml:5:").expect("the file and line are shown") + "echo.yaml:5:".len();
    let column: String = page[at..].chars().take_while(char::is_ascii_digit).collect();
    assert!(!column.is_empty() && page[at + column.len()..].starts_with(':'), "and the column: {page}");
    assert_eq!(app.served.manager.status_of(&id("echo")).unwrap().state, BotState::Running);
    // Mended, the reload of that one bot applies it.
    app.dir.write("echo.yaml", &ECHO.replace("Echo Bot", "Echo Bot Two"));
    let answer = client.post("/console/bots/echo/reload", &[("csrf", &csrf)], &[]).await;
    let page = client.outcome(&answer).await;
    assert!(page.contains("Reload done") && page.contains("echo: reloaded"), "{page}");
    assert!(client.get("/console/bots/echo").await.1.contains("Echo Bot Two"));
    app.served.stop().await;
}

#[tokio::test]
async fn no_token_or_secret_appears_in_any_console_page() {
    let app = console_app().await;
    let mut client = Client::new(&app);
    client.login(CONSOLE_TOKEN).await;
    let csrf = client.csrf().await;
    // Something in every table: a user, an error event, an action.
    let echo = app.emu.bot(&token(1)).await.unwrap();
    app.emu.user(77).send(&echo, "hello").await.unwrap();
    app.emu.user(77).next_message_from(&echo).await.unwrap();
    client.outcome(&client.post("/console/bots/menu/restart", &[("csrf", &csrf)], &[]).await).await;
    let mut pages = Vec::new();
    for path in [
        "/console",
        "/console/events",
        "/console/bots/echo",
        "/console/bots/menu",
        "/console/bots/echo/stop",
        "/console/reload",
        "/console/login",
        "/console/assets/console.js",
    ] {
        let (status, page, _) = client.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        pages.push((path, page));
    }
    assert!(pages[2].1.contains("77"), "the user is listed");
    for (path, page) in &pages {
        for secret in [token(1), token(2), CONSOLE_TOKEN.to_owned(), METRICS_TOKEN.to_owned(), csrf.clone() + "x"] {
            assert!(!page.contains(&secret), "{path} shows a secret");
        }
        // The bot's token is not shown even in part (its digest neither).
        assert!(!page.contains(token(1).split(':').nth(1).unwrap()), "{path}");
    }
    app.served.stop().await;
}

#[tokio::test]
async fn the_live_stream_sends_the_fleet_rows() {
    let app = console_app().await;
    let mut client = Client::new(&app);
    client.login(CONSOLE_TOKEN).await;
    let mut response = client
        .http
        .get(format!("{}/console/live?state=running", client.base))
        .header(header::COOKIE, client.cookie.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("data-bot=\"menu\"") {
        let chunk = tokio::time::timeout_at(deadline, response.chunk()).await.expect("rows within 10 s").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("the stream stays open")));
    }
    assert!(seen.starts_with("event: rows") && seen.contains("data-bot=\"echo\""), "{seen}");
    // The server stops: the stream ends instead of holding the shutdown.
    let stopped = tokio::time::timeout(Duration::from_secs(20), app.served.stop()).await;
    assert!(stopped.is_ok(), "the shutdown waited for the live stream");
}

#[tokio::test]
async fn the_audit_log_pages_and_filters() {
    let app = console_app().await;
    let mut client = Client::new(&app);
    client.login(CONSOLE_TOKEN).await;
    let events: Vec<NewEvent> = (0..60)
        .map(|n| NewEvent {
            bot_id: Some("menu".to_owned()),
            kind: EventKind::PluginError,
            actor_user_id: Some(1000 + n),
            detail: serde_json::json!({"n": n, "html": "<script>alert(1)</script>"}),
            at: multibot::storage::now(),
        })
        .collect();
    app.served.storage.events().append_all(&events).await.unwrap();
    let (status, page, _) = client.get("/console/events?bot=menu&kind=plugin_error").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page.matches("<td>plugin_error</td>").count(), 50);
    assert!(page.contains("<td>1059</td>") && !page.contains("<td>1009</td>"), "newest first");
    assert!(!page.contains("<script>alert(1)</script>"), "details are escaped");
    assert!(page.contains("&lt;script&gt;") || page.contains("&#60;script&#62;"), "details are escaped");
    let at = page.find("href=\"/console/events?").expect("an Older link") + 6;
    let older = page[at..].split('"').next().unwrap().replace("&amp;", "&").replace("&#38;", "&");
    let (_, page, _) = client.get(&older).await;
    assert_eq!(page.matches("<td>plugin_error</td>").count(), 10);
    assert!(page.contains("<td>1009</td>") && page.contains("<td>1000</td>"));
    // Bad input: an unknown kind shows every kind, a bot with no events shows none, a junk cursor is refused.
    let (_, page, _) = client.get("/console/events?bot=echo&kind=nonsense").await;
    assert!(page.contains("No events.") || !page.contains("plugin_error</td>"));
    assert_eq!(client.get("/console/events?before=abc").await.0, StatusCode::BAD_REQUEST);
    app.served.stop().await;
}

#[tokio::test]
async fn without_console_token_there_is_no_console() {
    let emu = emulator(1).await;
    let dir = TempDir::new();
    dir.write("echo.yaml", ECHO);
    let served = serve(&emu, dir.path(), Web::Off, &[], PluginRegistry::builtin()).await;
    let client = reqwest::Client::new();
    for path in ["/console", "/console/login"] {
        assert_eq!(client.get(served.url(path)).send().await.unwrap().status(), StatusCode::NOT_FOUND, "{path}");
    }
    served.stop().await;
}

#[tokio::test]
async fn with_replicas_one_console_acts_on_a_bot_another_replica_runs() {
    let Some(db) = TestDb::postgres().await else { return };
    let mut fleet = Fleet::new(&db, 2).await;
    fleet.env.extend([("CONSOLE_TOKEN".into(), CONSOLE_TOKEN.into()), ("ENABLE_HOT_RELOAD".into(), "false".into())]);
    let ports = [("a", free_port()), ("b", free_port())];
    let replicas: Vec<_> = ports.iter().map(|(replica, port)| fleet.start_on(replica, *port)).collect();
    eventually(Duration::from_secs(30), "one bot on each replica", || async {
        let held = leases(&db).await;
        held.len() == 2 && held.values().any(|(r, _)| r == "a") && held.values().any(|(r, _)| r == "b")
    })
    .await;
    let held = leases(&db).await;
    let (far, _) = held.iter().find(|(_, (replica, _))| replica == "b").unwrap();
    let far_bot = fleet.bots.iter().find(|b| b.username == format!("{far}_bot")).unwrap().clone();

    // Logged in on replica a; the same session holds on b (one key, from the one token).
    let mut here = Client::at(format!("http://127.0.0.1:{}", ports[0].1));
    assert_eq!(here.login(CONSOLE_TOKEN).await.0, StatusCode::SEE_OTHER);
    let mut there = Client::at(format!("http://127.0.0.1:{}", ports[1].1));
    there.cookie = here.cookie.clone();
    assert_eq!(there.get("/console").await.0, StatusCode::OK);
    let (_, page, _) = here.get("/console").await;
    assert!(page.contains(&format!("data-bot=\"{far}\"")) && page.contains("on b"), "{page}");

    // Stopped from a's console, the bot stops on b, which runs it: its polling ends.
    let csrf = here.csrf().await;
    let answer = here.post(&format!("/console/bots/{far}/stop"), &[("csrf", &csrf)], &[]).await;
    let page = here.outcome(&answer).await;
    assert!(page.contains(&format!("Bot {far} stopped on replica b")), "{page}");
    let user = fleet.emu.user(8601);
    user.send(&far_bot, "anyone?").await.unwrap();
    let delivered = far_bot.stats().await.unwrap().updates_delivered;
    let quiet_until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < quiet_until {
        let stats = far_bot.stats().await.unwrap();
        assert_eq!((stats.pending, stats.updates_delivered), (1, delivered), "the stopped bot polled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // a's fleet page shows it stopped, from what b recorded.
    eventually(Duration::from_secs(10), "the bot shown stopped on a", || async {
        let (_, page, _) = here.get(&format!("/console?q={far}")).await;
        page.contains("badge stopped")
    })
    .await;
    // Started again from a's console, b answers the waiting message.
    let answer = here.post(&format!("/console/bots/{far}/start"), &[("csrf", &csrf)], &[]).await;
    assert!(here.outcome(&answer).await.contains(&format!("Bot {far} started on replica b")));
    let reply = user.next_message_in(&far_bot, user.id, Duration::from_secs(15)).await.unwrap().text;
    assert_eq!(reply.as_deref(), Some("You said: anyone?"));
    for replica in replicas {
        replica.stop().await;
    }
}

#[tokio::test]
async fn a_broadcast_is_previewed_started_and_reaches_every_user_once() {
    let app = console_app().await;
    let mut client = Client::new(&app);
    client.login(CONSOLE_TOKEN).await;
    let csrf = client.csrf().await;
    let echo = app.emu.bot(&token(1)).await.unwrap();
    let users: Vec<_> = (801..804).map(|id| app.emu.user(id)).collect();
    for user in &users {
        user.send(&echo, "hi").await.unwrap();
        user.next_message_from(&echo).await.unwrap();
    }
    let storage = &app.served.storage;
    eventually(Duration::from_secs(10), "three users recorded", || async {
        storage.users().get_user_count("echo").await.unwrap() == 3
    })
    .await;
    assert!(client.get("/console/bots/echo").await.1.contains("A message to every user of echo"));

    // Bad input: no text, a text over Telegram's limit, a format Telegram does not know, days that are not a number.
    let long = "x".repeat(4097);
    for (text, mode, days, why) in [
        ("  ", "", "", "The message is empty."),
        (long.as_str(), "", "", "4096 characters"),
        ("News", "Bogus", "", "plain text, HTML or MarkdownV2"),
        ("News", "", "abc", "Active days must be a whole number"),
    ] {
        let form = [("csrf", csrf.as_str()), ("text", text), ("parse_mode", mode), ("active_days", days)];
        let (status, page, _) = client.post("/console/bots/echo/broadcast/preview", &form, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains(why) && !page.contains("Send to every user</button>"), "{why}: {page}");
        // Sent anyway, past the preview: refused the same way, and nothing goes out.
        let answer = client.post("/console/bots/echo/broadcast", &form, &[]).await;
        assert!(client.outcome(&answer).await.contains("The broadcast was not started"), "{why}");
    }
    let form = [("csrf", csrf.as_str()), ("text", "<b>News</b> for all"), ("parse_mode", "HTML"), ("active_days", "")];
    let (_, page, _) = client.post("/console/bots/echo/broadcast/preview", &form, &[]).await;
    assert!(page.contains("Send this to every user of echo?") && page.contains("echo has 3 users"), "{page}");
    assert!(!page.contains("<b>News</b>"), "the text is shown escaped");
    let answer = client.post("/console/bots/echo/broadcast", &form, &[]).await;
    let page = client.outcome(&answer).await;
    assert!(page.contains("Broadcast #1 of echo started to 3 users"), "{page}");
    for user in &users {
        let got = user.next_message_from(&echo).await.unwrap();
        assert_eq!(got.text.as_deref(), Some("News for all"), "formatted as HTML");
    }
    eventually(Duration::from_secs(10), "the broadcast done", || async {
        client.get("/console/bots/echo").await.1.contains("badge done")
    })
    .await;
    for user in &users {
        let transcript = echo.transcript(user.id).await.unwrap();
        let copies =
            transcript.iter().filter(|m| m.from_bot && m.message.text.as_deref() == Some("News for all")).count();
        assert_eq!(copies, 1, "user {}", user.id);
    }
    // A finished broadcast cannot be cancelled: the page says why.
    assert!(client.get("/console/broadcasts/1/cancel").await.1.contains("Cancel broadcast #1 of echo?"));
    let answer = client.post("/console/broadcasts/1/cancel", &[("csrf", &csrf)], &[]).await;
    let page = client.outcome(&answer).await;
    assert!(page.contains("Could not cancel broadcast #1") && page.contains("is done"), "{page}");
    assert_eq!(client.post("/console/broadcasts/99/pause", &[("csrf", &csrf)], &[]).await.0, StatusCode::NOT_FOUND);
    app.served.stop().await;
}
