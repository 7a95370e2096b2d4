//! A tiny WebDriver client for browser tests: [`Browser::start`] runs Debian's `chromedriver` on a free loopback
//! port, in a process group of its own, with a headless Chromium in a profile directory of its own, and drives it
//! over the W3C WebDriver protocol (reqwest and JSON, no client crate). Every wait has a deadline and polls a
//! condition; nothing sleeps blindly. A test that panics leaves a screenshot in
//! `<target dir>/browser-screenshots/<test>.png`. On a machine without Chromium or chromedriver, `start` skips
//! loudly (a failure under `CI=true`, where `.ci/run` installs them).

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::helpers::{TempDir, service_available};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long [`Browser::find`] and the `wait_*` methods wait.
pub(crate) const WAIT: Duration = Duration::from_secs(15);

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

/// The key of an element reference in WebDriver JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The Enter key, for [`Element::type_text`].
pub(crate) const ENTER: &str = "\u{E007}";

/// A WebDriver error: its code (`no such element`, ...) and message.
pub(crate) struct WebDriverError {
    pub(crate) error: String,
    pub(crate) message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

/// A headless Chromium, driven through its own chromedriver; both end when it is dropped.
pub(crate) struct Browser {
    test: String,
    /// `http://127.0.0.1:<port>/session/<id>`.
    session: String,
    http: reqwest::Client,
    // Dropped after the session is closed: chromedriver's process group, then the profile directory.
    _driver: Driver,
    _profile: TempDir,
}

/// The chromedriver process, leader of its process group (Chromium runs in it too).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        // The session is closed by now; whatever of Chromium is left goes with chromedriver's group.
        let group = rustix::process::Pid::from_child(&self.0);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = self.0.wait();
    }
}

/// An element on the page.
pub(crate) struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Browser {
    /// Starts chromedriver and opens a headless session; `None` (after a loud SKIPPED line) when Chromium or
    /// chromedriver is not installed. `test` names the screenshot saved on failure.
    pub(crate) async fn start(test: &str) -> Option<Browser> {
        let installed = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
        if !service_available("Chromium with chromedriver (/usr/bin/chromium, /usr/bin/chromedriver)", installed) {
            return None;
        }
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("HTTP client");
        let profile = TempDir::new();
        let (driver, base) = launch(&http, profile.path()).await;
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1000,900".to_owned(),
            "--no-first-run".to_owned(),
            "--no-default-browser-check".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-extensions".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        }}});
        let session = request(&http, reqwest::Method::POST, &format!("{base}/session"), Some(capabilities))
            .await
            .unwrap_or_else(|e| panic!("chromedriver opens no session: {e}"));
        let id = session["sessionId"].as_str().expect("a session id");
        let session = format!("{base}/session/{id}");
        Some(Browser { test: test.to_owned(), session, http, _driver: driver, _profile: profile })
    }

    /// Runs a WebDriver command of this session (`path` after `/session/<id>`).
    pub(crate) async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        request(&self.http, method, &format!("{}{path}", self.session), body).await
    }

    async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.command(method, path, body).await.unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
    }

    /// Opens `url` and waits for the page to load.
    pub(crate) async fn goto(&self, url: &str) {
        self.ok(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    /// The page's URL now.
    pub(crate) async fn current_url(&self) -> String {
        self.ok(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// The page's cookies, as WebDriver lists them (`name`, `value`, `httpOnly`, `sameSite`, ...).
    pub(crate) async fn cookies(&self) -> Vec<Value> {
        self.ok(reqwest::Method::GET, "/cookie", None).await.as_array().cloned().unwrap_or_default()
    }

    /// Runs `script` (a function body; `arguments` are `args`, elements as [`Element::json`]) and returns its value.
    pub(crate) async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.ok(reqwest::Method::POST, "/execute/sync", Some(json!({ "script": script, "args": args }))).await
    }

    /// The first element matching `css`, waiting up to [`WAIT`] for one.
    pub(crate) async fn find(&self, css: &str) -> Element<'_> {
        let body = json!({ "using": "css selector", "value": css });
        let deadline = Instant::now() + WAIT;
        loop {
            match self.command(reqwest::Method::POST, "/element", Some(body.clone())).await {
                Ok(found) => return self.element(&found).expect("an element reference"),
                Err(e) if e.error == "no such element" && Instant::now() < deadline => {}
                Err(e) => panic!("no element {css:?} within {WAIT:?}: {e}"),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every element matching `css` now.
    pub(crate) async fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let body = json!({ "using": "css selector", "value": css });
        let found = self.ok(reqwest::Method::POST, "/elements", Some(body)).await;
        found.as_array().into_iter().flatten().filter_map(|e| self.element(e)).collect()
    }

    /// The first element matching `css` whose text contains `text`, waiting up to [`WAIT`] for one.
    pub(crate) async fn find_text(&self, css: &str, text: &str) -> Element<'_> {
        let script = "return [...document.querySelectorAll(arguments[0])]\
                      .find((e) => e.textContent.includes(arguments[1])) || null;";
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self.execute(script, vec![json!(css), json!(text)]).await;
            if let Some(element) = self.element(&found) {
                return element;
            }
            assert!(Instant::now() < deadline, "no {css:?} with the text {text:?} within {WAIT:?}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits up to [`WAIT`] until `script` (a function body, `arguments` as `args`) returns `true`; `what` says
    /// what was awaited when it does not.
    pub(crate) async fn wait_until(&self, what: &str, script: &str, args: Vec<Value>) {
        let deadline = Instant::now() + WAIT;
        while self.execute(script, args.clone()).await != Value::Bool(true) {
            assert!(Instant::now() < deadline, "timed out after {WAIT:?} waiting until {what}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// A PNG of the window.
    pub(crate) async fn screenshot(&self) -> Vec<u8> {
        let encoded = self.ok(reqwest::Method::GET, "/screenshot", None).await;
        base64_decode(encoded.as_str().unwrap_or_default()).expect("a base64 PNG")
    }

    fn element(&self, value: &Value) -> Option<Element<'_>> {
        let id = value.get(ELEMENT)?.as_str()?.to_owned();
        Some(Element { browser: self, id })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let (session, panicking) = (self.session.clone(), std::thread::panicking());
        let file = screenshot_dir().join(format!("{}.png", self.test));
        // Drop cannot wait on the test's runtime: a thread of its own closes the session (and Chromium with it).
        let closed = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async move {
                let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().ok()?;
                if panicking {
                    let shot = request(&http, reqwest::Method::GET, &format!("{session}/screenshot"), None).await;
                    match shot.ok().as_ref().and_then(Value::as_str).and_then(base64_decode) {
                        Some(png) => {
                            let saved =
                                std::fs::create_dir_all(screenshot_dir()).and_then(|()| std::fs::write(&file, png));
                            match saved {
                                Ok(()) => eprintln!("browser screenshot of the failed test: {}", file.display()),
                                Err(e) => eprintln!("browser screenshot not saved to {}: {e}", file.display()),
                            }
                        }
                        None => eprintln!("browser screenshot of the failed test could not be taken"),
                    }
                }
                request(&http, reqwest::Method::DELETE, &session, None).await.ok()
            })
        });
        let _ = closed.join();
    }
}

impl Element<'_> {
    /// The element as a script argument.
    pub(crate) fn json(&self) -> Value {
        json!({ ELEMENT: self.id })
    }

    async fn ok(&self, method: reqwest::Method, action: &str, body: Option<Value>) -> Value {
        self.browser.ok(method, &format!("/element/{}{action}", self.id), body).await
    }

    /// Clicks it (scrolled into view first).
    pub(crate) async fn click(&self) {
        self.ok(reqwest::Method::POST, "/click", Some(json!({}))).await;
    }

    /// Types `text` into it ([`ENTER`] presses Enter; a file input takes a file's path).
    pub(crate) async fn type_text(&self, text: &str) {
        self.ok(reqwest::Method::POST, "/value", Some(json!({ "text": text }))).await;
    }

    /// Empties a text field.
    pub(crate) async fn clear(&self) {
        self.ok(reqwest::Method::POST, "/clear", Some(json!({}))).await;
    }

    /// Its rendered text.
    pub(crate) async fn text(&self) -> String {
        self.ok(reqwest::Method::GET, "/text", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// A DOM property (`value`, `tagName`, ...).
    pub(crate) async fn property(&self, name: &str) -> Value {
        self.ok(reqwest::Method::GET, &format!("/property/{name}"), None).await
    }
}

/// `<target dir>/browser-screenshots`.
pub(crate) fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("browser-screenshots")
}

/// Starts chromedriver on a free port and waits until it is ready; a port taken in between gets another try.
/// Chromium's temporary files go to `temp` (removed with the profile), not to the shared `/tmp`.
async fn launch(http: &reqwest::Client, temp: &Path) -> (Driver, String) {
    for _ in 0..3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .env("TMPDIR", temp)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // A group of its own, so that dropping the driver ends Chromium too, and a terminal's Ctrl-C does not
            // reach it before the test's cleanup.
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let mut driver = Driver(child);
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if driver.0.try_wait().ok().flatten().is_some() {
                break;
            }
            let status = request(http, reqwest::Method::GET, &format!("{base}/status"), None).await;
            if status.is_ok_and(|s| s["ready"] == true) {
                return (driver, base);
            }
            tokio::time::sleep(POLL).await;
        }
        drop(driver);
    }
    panic!("chromedriver did not start");
}

/// One WebDriver request; the answer's `value`, or its error.
async fn request(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, WebDriverError> {
    let transport = |e: reqwest::Error| WebDriverError { error: "transport".into(), message: e.to_string() };
    let mut builder = http.request(method, url);
    if let Some(body) = body {
        builder = builder.json(&body);
    }
    let response = builder.send().await.map_err(transport)?;
    let status = response.status();
    let answer: Value = response.json().await.map_err(transport)?;
    let value = answer.get("value").cloned().unwrap_or(Value::Null);
    match value.get("error").and_then(Value::as_str) {
        Some(error) if !status.is_success() => Err(WebDriverError {
            error: error.to_owned(),
            message: value["message"].as_str().unwrap_or_default().to_owned(),
        }),
        _ => Ok(value),
    }
}

/// Decodes standard base64 (what WebDriver's screenshots are); `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let sextet = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let digits: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let digits = digits.strip_suffix(b"==").or_else(|| digits.strip_suffix(b"=")).unwrap_or(&digits);
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0);
    for &c in digits {
        buffer = (buffer << 6) | u32::from(sextet(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

#[test]
fn base64_decodes_what_encoders_write() {
    assert_eq!(base64_decode("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
    assert_eq!(base64_decode("aGVsbG8hIQ==").as_deref(), Some(&b"hello!!"[..]));
    assert_eq!(base64_decode("iVBORw0KGgo=").as_deref(), Some(&b"\x89PNG\r\n\x1a\n"[..]));
    assert_eq!(base64_decode("not base64!"), None);
}
