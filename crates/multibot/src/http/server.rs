//! The accept loop under every HTTP server ([`serve`]) and its [`ServerLimits`]: a cap on open connections
//! (one past it is closed at once, not queued), a time limit for a request's headers (hyper starts the same
//! timer while a keep-alive connection waits for its next request, so it is also the idle limit) and one for its
//! body, and a graceful stop. axum's own `serve` has none of these limits, so one slow client could hold a
//! descriptor per connection for ever.

use std::{io, sync::Arc, time::Duration};

use axum::{
    Router,
    body::{Body, HttpBody},
    extract::Request,
};
use futures_util::{StreamExt, stream};
use hyper::{body::Incoming, server::conn::http1, service::Service};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::warn;

use crate::telemetry::Sampler;

/// How long the accept loop waits after a failed accept (out of descriptors, usually) before it tries again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What one HTTP server allows a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Time to send a request's headers, and time an idle keep-alive connection may wait for its next request.
    pub header_timeout: Duration,
    /// Time to send a request's body, from the end of its headers.
    pub body_timeout: Duration,
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// Warnings about refused connections and failed accepts: at most one line every 10 s each.
static REFUSED: Sampler = Sampler::new(Duration::from_secs(10));
static ACCEPT_FAILED: Sampler = Sampler::new(Duration::from_secs(10));

/// Serves `router` on `listener` within `limits` until `shutdown` is cancelled, then stops accepting and lets
/// the requests in progress finish (idle connections close at once).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    limits: ServerLimits,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let service = TowerToHyperService::new(router);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if let Some(suppressed) = ACCEPT_FAILED.sample() {
                        warn!(error = %e, suppressed, "HTTP server cannot accept a connection");
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if let Some(suppressed) = REFUSED.sample() {
                warn!(limit = limits.max_connections, suppressed, "HTTP connection refused: too many open");
            }
            drop(stream);
            continue;
        };
        // Nagle's delay would hold small answers back for the client's delayed acknowledgement.
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let body_timeout = limits.body_timeout;
        let requests = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut request = request.map(|body| timed(Body::new(body), body_timeout));
            // The client's address, for the console's login throttling.
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            service.call(request)
        });
        let connection = builder.serve_connection(TokioIo::new(stream), requests);
        let stop = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                () = stop.cancelled() => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// `body`, failing with a timeout error when it has not all arrived `limit` after this call.
fn timed(body: Body, limit: Duration) -> Body {
    if body.is_end_stream() {
        return body;
    }
    let deadline = tokio::time::Instant::now() + limit;
    let chunks = stream::unfold(Some(body.into_data_stream()), move |chunks| async move {
        let mut chunks = chunks?;
        match tokio::time::timeout_at(deadline, chunks.next()).await {
            Ok(Some(chunk)) => Some((chunk, Some(chunks))),
            Ok(None) => None,
            Err(_) => {
                let late = io::Error::new(io::ErrorKind::TimedOut, "request body not received in time");
                Some((Err(axum::Error::new(late)), None))
            }
        }
    });
    Body::from_stream(chunks)
}

#[cfg(test)]
mod tests {
    use axum::{
        body::to_bytes,
        http::StatusCode,
        routing::{get, post},
    };
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
    };

    use std::time::Instant;

    use super::*;

    /// `/health/live`, and `/echo`, which reads the whole body (408 when it does not arrive).
    fn app() -> Router {
        Router::new().route("/health/live", get(|| async { "alive" })).route(
            "/echo",
            post(|body: Body| async move {
                match to_bytes(body, 1 << 20).await {
                    Ok(bytes) => (StatusCode::OK, bytes.len().to_string()),
                    Err(e) => (StatusCode::REQUEST_TIMEOUT, e.to_string()),
                }
            }),
        )
    }

    async fn start(limits: ServerLimits) -> (std::net::SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, app(), stop.clone(), limits));
        (addr, stop)
    }

    /// One request on a fresh connection; the answer's status line and how long it took.
    async fn request(addr: std::net::SocketAddr, text: &str) -> (String, Duration) {
        let started = Instant::now();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        // A refused connection may be closed before the request is written.
        let _ = stream.write_all(text.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        (answer.lines().next().unwrap_or_default().to_owned(), started.elapsed())
    }

    /// When the server closed `stream`.
    async fn closed_at(stream: &mut TcpStream) -> Instant {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => {}
            }
        }
    }

    const LIVE: &str = "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slowloris_connections_are_closed_while_live_answers() {
        let header_timeout = Duration::from_secs(1);
        let limits = ServerLimits { header_timeout, max_connections: 1100, ..ServerLimits::default() };
        let (addr, stop) = start(limits).await;
        // Bad input: 1,000 clients that send half a request line's headers and then nothing.
        let opened = Instant::now();
        let mut slow = tokio::task::JoinSet::new();
        for _ in 0..1000 {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
            slow.spawn(async move { closed_at(&mut stream).await });
        }
        let all_open = opened.elapsed();
        // Meanwhile the probe answers at once, each time, until every slow connection is closed.
        let mut probes = 0;
        while !slow.is_empty() && opened.elapsed() < header_timeout * 2 + all_open {
            let (status, took) = request(addr, LIVE).await;
            assert_eq!(status, "HTTP/1.1 200 OK");
            assert!(took < Duration::from_millis(100), "/health/live took {took:?} with slow connections open");
            probes += 1;
            while slow.try_join_next().is_some() {}
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(probes > 10, "only {probes} probes");
        let deadline = opened + all_open + header_timeout + Duration::from_secs(2);
        let all_closed = tokio::time::timeout(Duration::from_secs(10), slow.join_all()).await;
        let closed = all_closed.expect("slow connections still open 10 s after the header timeout");
        assert!(closed.into_iter().all(|at| at <= deadline), "a slow connection outlived the header timeout");
        stop.cancel();
    }

    #[tokio::test]
    async fn idle_keep_alive_connections_and_slow_bodies_time_out() {
        let limits = ServerLimits {
            header_timeout: Duration::from_millis(500),
            body_timeout: Duration::from_millis(500),
            ..ServerLimits::default()
        };
        let (addr, stop) = start(limits).await;
        // Bad input: a keep-alive connection that asks once and then says nothing more.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let asked = Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(5), closed_at(&mut idle)).await.unwrap();
        assert!(closed - asked >= Duration::from_millis(400), "closed before the idle limit");

        // Bad input: a body announced as 100 bytes of which 10 come.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789").await.unwrap();
        let mut answer = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut answer)).await.unwrap().unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request body not received in time"), "{answer}");

        // A body that comes in time is read.
        let (status, _) =
            request(addr, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        stop.cancel();
    }

    #[tokio::test]
    async fn connections_past_the_cap_are_closed_at_once() {
        let limits = ServerLimits { max_connections: 3, ..ServerLimits::default() };
        let (addr, stop) = start(limits).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(TcpStream::connect(addr).await.unwrap());
        }
        // Bad input: a fourth connection while three are open.
        let (status, took) = request(addr, LIVE).await;
        assert_eq!(status, "", "a connection past the cap was served");
        assert!(took < Duration::from_secs(2), "a connection past the cap waited {took:?}");
        // One closes: the next is served.
        drop(held.pop());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (status, _) = request(addr, LIVE).await;
            if status == "HTTP/1.1 200 OK" {
                break;
            }
            assert!(Instant::now() < deadline, "no connection served after one closed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
    }
}
