//! The Bot API over a bare HTTP/2 connection ([`Line`]), spoken with `h2` directly: a group of bots' long polls
//! (`getUpdates`) and their JSON calls (sends, answers, edits), as streams of one connection. Each call's stream is
//! polled by the caller itself; hyper's client would add a task, a channel and a callback per request.
//!
//! Through reqwest a waiting request holds about 12 KiB (its request machinery, the connection pool's checkout,
//! the header map, a timer); here a waiting poll is an HTTP/2 stream and a future of a few hundred bytes, which is
//! most of what an idle bot costs. A call costs less too: reqwest also parses each answer's URL back into a `Url`
//! (its redirect layer) and formats it first, about a tenth of a reply's CPU. Uploads (multipart forms) stay on
//! reqwest. Used where HTTP/2 is known or offered (see [`super::clients`]): over TLS the server must choose `h2`
//! by ALPN, else the line reports [`LineError::NotHttp2`] once and the bots call through reqwest. Not used behind
//! a proxy (`HTTPS_PROXY` and the like): reqwest honours those.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use hyper::{Request, StatusCode};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

/// The largest answer read (100 updates are far below it).
const ANSWER_LIMIT: usize = 64 << 20;
/// How long connecting (TCP, TLS, HTTP/2's handshake) may take (a second in unit tests).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(if cfg!(test) { 1 } else { 10 });

/// An answer: its status, `Content-Type` and body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Bytes,
}

/// Why a poll did not get an answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LineError {
    /// The server chose HTTP/1.1 in the TLS handshake: poll through reqwest instead.
    #[error("the server does not speak HTTP/2")]
    NotHttp2,
    /// Connecting, sending or reading failed; the message names the cause and never the URL.
    #[error("{0}")]
    Network(String),
}

/// The connection's sender, and the last failure to connect.
#[derive(Default)]
struct Slot {
    sender: Option<Sender>,
    failed: Option<(Instant, String)>,
}

/// The connection's sender, and whether the connection has closed.
#[derive(Clone)]
struct Sender {
    streams: h2::client::SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
}

/// How long a failure to connect answers the polls that come after it, instead of each of them trying (and
/// waiting up to `CONNECT_TIMEOUT`) in turn while the server is down.
const FAILURE_HOLDS: Duration = Duration::from_secs(1);

/// One HTTP/2 connection (made on first use, remade after it closes) for the calls of a group of bots.
pub(crate) struct Line {
    host: String,
    port: u16,
    /// `None`: plain `http://` with HTTP/2 by prior knowledge.
    tls: Option<tokio_rustls::TlsConnector>,
    /// The connection; connecting holds the lock, so a group's bots wait for one connection together.
    slot: tokio::sync::Mutex<Slot>,
    /// The most a call without a time limit of its own waits for its answer.
    timeout: Duration,
    /// Cleared when the server chose HTTP/1.1: the group's calls go through reqwest from then on.
    http2: AtomicBool,
}

impl Line {
    /// A line to `api_url`'s host; over `https://` with `tls` (which must offer `h2` by ALPN); a call without a
    /// time limit of its own gets `timeout`.
    pub(crate) fn new(
        api_url: &reqwest::Url,
        tls: Option<Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Option<Line> {
        let host = api_url.host_str()?.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = api_url.port_or_known_default()?;
        let tls = match api_url.scheme() {
            "https" => Some(tokio_rustls::TlsConnector::from(tls?)),
            _ => None,
        };
        Some(Line { host, port, tls, slot: tokio::sync::Mutex::default(), timeout, http2: AtomicBool::new(true) })
    }

    /// The time limit of a call without one of its own.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// False once the server chose HTTP/1.1 (then [`Line::get`] is not worth calling).
    pub(crate) fn speaks_http2(&self) -> bool {
        self.http2.load(Ordering::Relaxed)
    }

    /// GETs `url` on the connection, waiting at most `timeout` for the whole answer.
    pub(crate) async fn get(&self, url: &reqwest::Url, timeout: Duration) -> Result<Answer, LineError> {
        self.exchange(Request::get(url.as_str()), Bytes::new(), timeout).await
    }

    /// POSTs the JSON `body` to `url` on the connection, waiting at most `timeout` for the whole answer.
    pub(crate) async fn post_json(
        &self,
        url: &reqwest::Url,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, LineError> {
        let request = Request::post(url.as_str()).header(hyper::header::CONTENT_TYPE, "application/json");
        self.exchange(request, body, timeout).await
    }

    async fn exchange(
        &self,
        request: hyper::http::request::Builder,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, LineError> {
        // A poll (a GET) goes without a length, as hyper's client sent it.
        let request = if body.is_empty() { request } else { request.header(hyper::header::CONTENT_LENGTH, body.len()) };
        let request = request.body(()).map_err(|_| LineError::Network("not a valid URI".to_owned()))?;
        let sender = match self.sender().await {
            Err(LineError::NotHttp2) => {
                self.http2.store(false, Ordering::Relaxed);
                return Err(LineError::NotHttp2);
            }
            other => other?,
        };
        // The request is a stream of the connection, polled here: no task, channel or callback in between.
        let exchange = async {
            let mut streams = sender.streams.ready().await.map_err(network)?;
            let (response, mut stream) = streams.send_request(request, body.is_empty()).map_err(network)?;
            if !body.is_empty() {
                // Buffered by h2 and sent as the peer's window allows (a JSON call is far below the first window).
                stream.send_data(body, true).map_err(network)?;
            }
            let (head, mut answer) = response.await.map_err(network)?.into_parts();
            // An answer in one frame (most are) is kept as it came; only a longer one is copied together.
            let (mut first, mut rest) = (Bytes::new(), BytesMut::new());
            while let Some(chunk) = answer.data().await {
                let chunk = chunk.map_err(|e| LineError::Network(format!("reading the answer: {e}")))?;
                let _ = answer.flow_control().release_capacity(chunk.len());
                if first.len() + rest.len() + chunk.len() > ANSWER_LIMIT {
                    return Err(LineError::Network("reading the answer: length limit exceeded".to_owned()));
                }
                match (first.is_empty(), rest.is_empty()) {
                    (true, true) => first = chunk,
                    (false, true) => {
                        rest.extend_from_slice(&std::mem::take(&mut first));
                        rest.extend_from_slice(&chunk);
                    }
                    _ => rest.extend_from_slice(&chunk),
                }
            }
            let body = if rest.is_empty() { first } else { rest.freeze() };
            let content_type =
                head.headers.get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
            Ok(Answer { status: head.status, content_type, body })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| LineError::Network("operation timed out: no answer in time".to_owned()))?
    }

    /// The open connection's sender, connecting first when there is none or it closed.
    async fn sender(&self) -> Result<Sender, LineError> {
        let mut slot = self.slot.lock().await;
        if let Some(sender) = slot.sender.as_ref().filter(|s| !s.closed.load(Ordering::Acquire)) {
            return Ok(sender.clone());
        }
        if let Some((at, error)) = &slot.failed
            && at.elapsed() < FAILURE_HOLDS
        {
            return Err(LineError::Network(error.clone()));
        }
        // Boxed: connecting (TLS included) takes several KiB of state, which would otherwise be part of every
        // waiting poll's future.
        let connected = Box::pin(tokio::time::timeout(CONNECT_TIMEOUT, self.connect()))
            .await
            .unwrap_or_else(|_| Err(LineError::Network("connecting timed out".to_owned())));
        match &connected {
            Ok(sender) => *slot = Slot { sender: Some(sender.clone()), failed: None },
            Err(LineError::Network(error)) => {
                *slot = Slot { sender: None, failed: Some((Instant::now(), error.clone())) }
            }
            Err(LineError::NotHttp2) => slot.sender = None,
        }
        connected
    }

    async fn connect(&self) -> Result<Sender, LineError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(network)?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => handshake(tcp).await,
            Some(tls) => {
                let name = ServerName::try_from(self.host.clone()).map_err(|e| LineError::Network(format!("{e}")))?;
                let stream = tls.connect(name, tcp).await.map_err(network)?;
                if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
                    return Err(LineError::NotHttp2);
                }
                handshake(stream).await
            }
        }
    }
}

/// A dead connection stalls every poll on it: it is pinged this often, and given up when no answer comes within
/// `PING_TIMEOUT`.
const PING_EVERY: Duration = Duration::from_secs(20);
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP/2's handshake on `io` (the windows hyper's client would ask for: 2 MiB per stream, 5 MiB for the
/// connection); the connection is then driven, and pinged, by a task of its own until it closes.
async fn handshake<T>(io: T) -> Result<Sender, LineError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (streams, mut connection) = h2::client::Builder::new()
        .initial_window_size(2 << 20)
        .initial_connection_window_size(5 << 20)
        .enable_push(false)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(network)?;
    let closed = Arc::new(AtomicBool::new(false));
    let mut ping_pong = connection.ping_pong();
    let on_close = closed.clone();
    tokio::spawn(async move {
        let pinger = async {
            let Some(ping_pong) = ping_pong.as_mut() else { return std::future::pending().await };
            loop {
                tokio::time::sleep(PING_EVERY).await;
                match tokio::time::timeout(PING_TIMEOUT, ping_pong.ping(h2::Ping::opaque())).await {
                    Ok(Ok(_)) => {}
                    _ => return,
                }
            }
        };
        tokio::select! {
            closed = &mut connection => if let Err(e) = closed {
                tracing::debug!(error = %crate::tls::describe(&e), "a Bot API connection (HTTP/2) closed");
            },
            () = pinger => tracing::debug!("a Bot API connection (HTTP/2) did not answer a ping; closed"),
        }
        on_close.store(true, Ordering::Release);
    });
    Ok(Sender { streams, closed })
}

/// A network error, described by its cause (`crate::tls::describe`); hyper's and io's errors carry no URL.
fn network<E: std::error::Error + 'static>(e: E) -> LineError {
    LineError::Network(crate::tls::describe(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_server_that_never_finishes_the_handshake_fails_a_groups_polls_within_one_connect_timeout() {
        crate::tls::install_provider();
        // Bad input: a server that accepts TCP and then says nothing, so the TLS handshake never ends.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let url: reqwest::Url = format!("https://localhost:{}/bot1:x/getUpdates", addr.port()).parse().unwrap();
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let line = Arc::new(Line::new(&url, Some(Arc::new(config)), Duration::from_secs(60)).unwrap());
        let started = Instant::now();
        let polls: Vec<_> = (0..20)
            .map(|_| {
                let (line, url) = (line.clone(), url.clone());
                tokio::spawn(async move { line.get(&url, Duration::from_secs(60)).await })
            })
            .collect();
        for poll in polls {
            let failed = poll.await.unwrap();
            assert!(matches!(&failed, Err(LineError::Network(e)) if e.contains("timed out")), "{:?}", failed.err());
        }
        // One attempt for the group, not one after another: 20 polls would otherwise take 20 timeouts.
        assert!(started.elapsed() < CONNECT_TIMEOUT + FAILURE_HOLDS, "{:?}", started.elapsed());
        silent.abort();
    }
}
