//! `http.get(url [, opts])` and `http.post(url, body [, opts])`: outbound HTTP from a script, to the hosts its
//! plugin entry allows (`http.allow` in the bot's YAML, [`HttpAllow`]) and nowhere else, redirects included.
//!
//! Bounds: a timeout for the whole exchange, redirects included ([`DEFAULT_TIMEOUT`], at most [`MAX_TIMEOUT`]);
//! at most [`MAX_REDIRECTS`] redirects; an answer's body of at most [`MAX_BODY`] bytes (the body becomes a string
//! in the VM, under its memory limit too); at most [`MAX_IN_FLIGHT`] requests at a time per instance. Errors
//! name the host, never the whole URL (it may hold credentials or a token).

use std::{
    sync::{Arc, LazyLock},
    time::Duration,
};

use anyhow::{anyhow, bail};
use mlua::{Lua, Table, Value};
use reqwest::{Method, StatusCode, Url, header};
use tokio::sync::Semaphore;

use super::{not_at_top_level, off_vm, only_keys, runtime};
use crate::{config::HttpAllow, plugins::script::vm::to_json};

/// How long an exchange may take when the script does not say.
pub(in crate::plugins::script) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest `timeout` a script may ask for.
pub(in crate::plugins::script) const MAX_TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects followed, each to an allowed host.
pub(in crate::plugins::script) const MAX_REDIRECTS: usize = 5;
/// The largest body of an answer: 1 MiB.
pub(in crate::plugins::script) const MAX_BODY: usize = 1 << 20;
/// Requests one instance may have under way.
pub(in crate::plugins::script) const MAX_IN_FLIGHT: usize = 4;

/// The client of every script: no redirects of its own (they are followed here, each checked).
static CLIENT: LazyLock<reqwest::Result<reqwest::Client>> = LazyLock::new(|| {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(MAX_TIMEOUT)
        .user_agent(concat!("multibot/", env!("CARGO_PKG_VERSION")))
        .build()
});

/// A request as the script asked for it.
struct Request {
    method: Method,
    url: Url,
    headers: header::HeaderMap,
    body: Option<Vec<u8>>,
    timeout: Duration,
}

/// An answer: status, headers (lowercase names; repeated ones joined with `, `) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// The URL of a script, checked: http or https, a host the entry allows.
fn allowed(allow: &HttpAllow, url: &Url) -> anyhow::Result<()> {
    if !matches!(url.scheme(), "http" | "https") {
        bail!("only http and https URLs are allowed, not {}:", url.scheme());
    }
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(0);
    if !allow.allows(host, port) {
        bail!("the host {host} is not allowed: add it to http.allow of this plugin's entry in the bot's YAML");
    }
    Ok(())
}

/// Sends `request`, following redirects to allowed hosts, and reads the answer within the bounds.
async fn exchange(allow: &HttpAllow, mut request: Request) -> anyhow::Result<Answer> {
    let client = CLIENT.as_ref().map_err(|e| anyhow!("no HTTP client: {e}"))?;
    for _ in 0..=MAX_REDIRECTS {
        allowed(allow, &request.url)?;
        let host = request.url.host_str().unwrap_or_default().to_owned();
        let mut builder = client.request(request.method.clone(), request.url.clone()).headers(request.headers.clone());
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let failed = |e: reqwest::Error| anyhow!("{host}: {}", crate::tls::describe(&e.without_url()));
        let mut response = builder.send().await.map_err(failed)?;
        let status = response.status();
        let location = response.headers().get(header::LOCATION).and_then(|l| l.to_str().ok()).map(str::to_owned);
        if let (true, Some(location)) = (status.is_redirection(), location) {
            let next = request.url.join(&location).map_err(|_| anyhow!("{host} redirected to an invalid location"))?;
            if next.host_str() != request.url.host_str() {
                // Credentials meant for one host do not follow a redirect to another.
                request.headers.remove(header::AUTHORIZATION);
                request.headers.remove(header::COOKIE);
            }
            let keeps_method = matches!(status, StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT);
            if !keeps_method && request.method != Method::HEAD {
                request.method = Method::GET;
                request.body = None;
                request.headers.remove(header::CONTENT_TYPE);
            }
            request.url = next;
            continue;
        }
        if response.content_length().is_some_and(|length| length > MAX_BODY as u64) {
            bail!(too_large(&host));
        }
        let mut headers: Vec<(String, String)> = Vec::new();
        for (name, value) in response.headers() {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match headers.iter_mut().find(|(known, _)| known == name.as_str()) {
                Some((_, known)) => {
                    known.push_str(", ");
                    known.push_str(&value);
                }
                None => headers.push((name.as_str().to_owned(), value)),
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_BODY {
                bail!(too_large(&host));
            }
            body.extend_from_slice(&chunk);
        }
        return Ok(Answer { status: status.as_u16(), headers, body });
    }
    bail!("more than {MAX_REDIRECTS} redirects")
}

fn too_large(host: &str) -> String {
    format!("the answer of {host} is larger than the limit of {} KiB", MAX_BODY >> 10)
}

/// Reads `opts` (`headers`, `timeout`, and for a post `json`) and the URL into a request.
fn request(method: Method, url: &str, body: Value, opts: Option<&Table>) -> mlua::Result<Request> {
    let what = if method == Method::GET { "http.get" } else { "http.post" };
    let url = Url::parse(url).map_err(|e| runtime(format!("{what}: invalid URL: {e}")))?;
    let mut request = Request { method, url, headers: header::HeaderMap::new(), body: None, timeout: DEFAULT_TIMEOUT };
    request.body = match body {
        Value::Nil => None,
        Value::String(s) => Some(s.as_bytes().to_vec()),
        other => return Err(runtime(format!("{what}: the body must be a string or nil, not a {}", other.type_name()))),
    };
    let Some(opts) = opts else { return Ok(request) };
    let keys: &[&str] = if what == "http.get" { &["headers", "timeout"] } else { &["headers", "timeout", "json"] };
    only_keys(opts, &format!("{what} options"), keys)?;
    if let Some(headers) = opts.get::<Option<Table>>("headers")? {
        for pair in headers.pairs::<String, String>() {
            let (name, value) = pair?;
            let name = header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| runtime(format!("{what}: invalid header name {name:?}")))?;
            let value = header::HeaderValue::from_str(&value)
                .map_err(|_| runtime(format!("{what}: invalid value of the header {name}")))?;
            request.headers.append(name, value);
        }
    }
    if let Some(seconds) = opts.get::<Option<f64>>("timeout")? {
        if !(seconds > 0.0 && seconds <= MAX_TIMEOUT.as_secs_f64()) {
            return Err(runtime(format!(
                "{what}: timeout must be more than 0 and at most {} seconds, not {seconds}",
                MAX_TIMEOUT.as_secs()
            )));
        }
        request.timeout = Duration::from_secs_f64(seconds);
    }
    let json = opts.get::<Value>("json")?;
    if !json.is_nil() {
        if request.body.is_some() {
            return Err(runtime(format!("{what}: give a body or opts.json, not both")));
        }
        request.body = Some(to_json(&json)?.to_string().into_bytes());
        request.headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    }
    Ok(request)
}

/// Sends a request of a script: refused at the top level and past the in-flight cap; the answer as a table.
async fn call(
    lua: Lua,
    what: &'static str,
    allow: HttpAllow,
    in_flight: Arc<Semaphore>,
    request: mlua::Result<Request>,
) -> mlua::Result<Table> {
    let request = request?;
    let permit = in_flight.try_acquire_owned().map_err(|_| {
        runtime(format!("{what}: at most {MAX_IN_FLIGHT} requests at a time per plugin in a bot; wait for one to end"))
    })?;
    let (timeout, host) = (request.timeout, request.url.host_str().unwrap_or_default().to_owned());
    let answer = off_vm(what, async move {
        let _permit = permit;
        match tokio::time::timeout(timeout, exchange(&allow, request)).await {
            Ok(answer) => answer,
            Err(_) => Err(anyhow!("no complete answer from {host} within the timeout of {} s", timeout.as_secs_f64())),
        }
    })
    .await?;
    let table = lua.create_table()?;
    table.set("status", answer.status)?;
    let headers = lua.create_table()?;
    for (name, value) in answer.headers {
        headers.set(name, value)?;
    }
    table.set("headers", headers)?;
    table.set("body", lua.create_string(&answer.body)?)?;
    Ok(table)
}

/// Installs `http` in a fresh VM, allowed the hosts of `allow`.
pub(in crate::plugins::script) fn install(lua: &Lua, allow: HttpAllow) -> mlua::Result<()> {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let table = lua.create_table()?;
    {
        let (allow, in_flight) = (allow.clone(), in_flight.clone());
        table.set(
            "get",
            lua.create_async_function(move |lua, (url, opts): (String, Option<Table>)| {
                let ready = not_at_top_level(&lua, "http.get")
                    .and_then(|()| request(Method::GET, &url, Value::Nil, opts.as_ref()));
                call(lua, "http.get", allow.clone(), in_flight.clone(), ready)
            })?,
        )?;
    }
    table.set(
        "post",
        lua.create_async_function(move |lua, (url, body, opts): (String, Value, Option<Table>)| {
            let ready =
                not_at_top_level(&lua, "http.post").and_then(|()| request(Method::POST, &url, body, opts.as_ref()));
            call(lua, "http.post", allow.clone(), in_flight.clone(), ready)
        })?,
    )?;
    lua.globals().set("http", table)?;
    Ok(())
}
