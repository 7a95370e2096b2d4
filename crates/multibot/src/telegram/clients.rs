//! The HTTP clients bots reach the Bot API with ([`ApiClients`]), and the HTTP version they speak
//! ([`HttpVersion`], `TELEGRAM_API_HTTP`).
//!
//! Over HTTP/1.1 every request in flight holds a connection of its own, so each polling bot keeps one open for
//! its long poll (about 26 KiB with its buffers, in the client and in the kernel). Over HTTP/2 many bots' polls
//! share one connection as streams. A server limits the streams one connection carries
//! (`SETTINGS_MAX_CONCURRENT_STREAMS`, commonly 100 to 128) and a request past the limit waits for a free stream:
//! a long poll could wait tens of seconds. So bots are spread over connections, [`BOTS_PER_CONNECTION`] to each,
//! which leaves streams free for the messages they send. Each group is a client of its own (one client keeps one
//! HTTP/2 connection per host); a group's client is dropped with its last bot. The TLS configuration (the root
//! certificates) is built once and shared.
//!
//! Where HTTP/2 may be spoken, each group also has a [`Line`]: its bots' long polls and JSON calls go over an
//! HTTP/2 connection driven without reqwest, where a waiting poll costs a stream instead of about 12 KiB of
//! request machinery (see [`super::line`]); the group's reqwest client is left the uploads. Behind a proxy
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`) every call stays on reqwest, which honours them.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use parking_lot::Mutex;

use super::line::Line;
use crate::config::HttpVersion;

/// How many bots share one HTTP/2 connection.
pub const BOTS_PER_CONNECTION: usize = 50;

/// What one bot talks to the Bot API with.
pub struct ApiClient {
    /// Uploads, and every call where `line` is `None` or finds no HTTP/2.
    pub http: reqwest::Client,
    /// The group's HTTP/2 connection, where HTTP/2 may be spoken.
    pub(crate) line: Option<Arc<Line>>,
}

/// Hands each bot a client; bots are grouped [`BOTS_PER_CONNECTION`] to a client when HTTP/2 may be spoken, and
/// all share one client when it will not. Cloning shares the groups.
#[derive(Clone)]
pub struct ApiClients {
    inner: Arc<Inner>,
}

struct Inner {
    /// Builds one more client.
    build: Box<dyn Fn() -> reqwest::Result<reqwest::Client> + Send + Sync>,
    /// Whether bots are grouped (else `filling` is the only client, for every bot).
    grouped: bool,
    /// The HTTP/2 line of a group, made for each new one; `None` where calls stay on reqwest.
    line: Box<dyn Fn() -> Option<Arc<Line>> + Send + Sync>,
    /// The group new bots join.
    filling: Mutex<Group>,
}

/// A group of bots: its client, its HTTP/2 line, and how many bots have joined it.
struct Group {
    http: reqwest::Client,
    line: Option<Arc<Line>>,
    bots: usize,
}

impl ApiClients {
    /// Clients for `api_url` speaking `version`; `timeout` bounds each request (a long poll included).
    pub fn new(api_url: &reqwest::Url, version: HttpVersion, timeout: Duration) -> anyhow::Result<ApiClients> {
        let tls = Arc::new(tls_config(version));
        let proxied = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
        let grouped = match version {
            HttpVersion::Auto => api_url.scheme() == "https",
            HttpVersion::Http1 => false,
            HttpVersion::Http2 => true,
        };
        let line = {
            let (api_url, tls) = (api_url.clone(), tls.clone());
            move || {
                (grouped && !proxied).then(|| Line::new(&api_url, Some(tls.clone()), timeout).map(Arc::new)).flatten()
            }
        };
        let build = move || {
            let builder = reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(Duration::from_secs(10))
                .tcp_nodelay(true)
                .use_preconfigured_tls((*tls).clone())
                // A dead HTTP/2 connection stalls every bot on it: ping it, and give it up when no answer comes.
                .http2_keep_alive_interval(Duration::from_secs(20))
                .http2_keep_alive_timeout(Duration::from_secs(10))
                .http2_keep_alive_while_idle(true);
            match version {
                HttpVersion::Auto => builder,
                HttpVersion::Http1 => builder.http1_only(),
                HttpVersion::Http2 => builder.http2_prior_knowledge(),
            }
            .build()
        };
        let first = Group { http: build().context("building the HTTP client")?, line: line(), bots: 0 };
        let (build, line) = (Box::new(build), Box::new(line));
        Ok(ApiClients { inner: Arc::new(Inner { build, grouped, line, filling: Mutex::new(first) }) })
    }

    /// One client for every bot, as given (tests).
    pub fn single(client: reqwest::Client) -> ApiClients {
        let (build, line) = (Box::new(|| Ok(reqwest::Client::new())), Box::new(|| None));
        let filling = Mutex::new(Group { http: client, line: None, bots: 0 });
        ApiClients { inner: Arc::new(Inner { build, grouped: false, line, filling }) }
    }

    /// How many bots have joined the group new bots join (each started bot takes one place; a reload keeps it).
    pub fn joined(&self) -> usize {
        self.inner.filling.lock().bots
    }

    /// The client for one more bot.
    pub fn client(&self) -> ApiClient {
        let mut filling = self.inner.filling.lock();
        if self.inner.grouped && filling.bots == BOTS_PER_CONNECTION {
            match (self.inner.build)() {
                Ok(http) => *filling = Group { http, line: (self.inner.line)(), bots: 0 },
                // Built once at start with the same settings; should it fail now, the bot joins a full group.
                Err(e) => tracing::warn!(error = %e, "could not build one more HTTP client"),
            }
        }
        filling.bots += 1;
        ApiClient { http: filling.http.clone(), line: filling.line.clone() }
    }
}

/// TLS for the Bot API: Mozilla's root certificates (bundled) and the system's (`SSL_CERT_FILE` and
/// `SSL_CERT_DIR` replace the system's store), offering the HTTP versions `version` allows by ALPN.
fn tls_config(version: HttpVersion) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "reading the system's root certificates");
    }
    // Stores hold some certificates rustls cannot parse (very old roots); the rest still count.
    roots.add_parsable_certificates(native.certs);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Ok(builder) = rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()
    else {
        unreachable!("ring supports the default protocol versions")
    };
    let mut config = builder.with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = match version {
        HttpVersion::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
        HttpVersion::Http2 => vec![b"h2".to_vec()],
    };
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bots_are_grouped_only_where_http2_may_be_spoken() {
        let https: reqwest::Url = "https://api.telegram.org".parse().unwrap();
        let http: reqwest::Url = "http://127.0.0.1:8081".parse().unwrap();
        let timeout = Duration::from_secs(40);
        // How many bots the client that new bots join has, after 2 x BOTS_PER_CONNECTION bots joined.
        let last_group = |url: &reqwest::Url, version| {
            let clients = ApiClients::new(url, version, timeout).unwrap();
            for _ in 0..2 * BOTS_PER_CONNECTION {
                let _ = clients.client();
            }
            let filling = clients.inner.filling.lock();
            // An HTTP/2 line exactly where bots are grouped.
            assert_eq!(filling.line.is_some(), filling.bots < 2 * BOTS_PER_CONNECTION);
            filling.bots
        };
        // Grouped: after 2 x BOTS_PER_CONNECTION bots the second group is full.
        assert_eq!(last_group(&https, HttpVersion::Auto), BOTS_PER_CONNECTION);
        assert_eq!(last_group(&http, HttpVersion::Http2), BOTS_PER_CONNECTION);
        // One client for all.
        assert_eq!(last_group(&http, HttpVersion::Auto), 2 * BOTS_PER_CONNECTION);
        assert_eq!(last_group(&https, HttpVersion::Http1), 2 * BOTS_PER_CONNECTION);
    }
}
