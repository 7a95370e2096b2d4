//! The HTTP server: one axum router for the Bot API (`/bot<TOKEN>/<method>`), its file endpoint
//! (`/file/bot<TOKEN>/<file_path>`), the control API (`/control/...`) and the playground (`/playground`), served
//! by our own accept loop so that a fault can close one connection without answering (`ConnKill`). Each
//! connection speaks HTTP/1.1, or HTTP/2 when the client opens with HTTP/2's preface (prior knowledge, or `h2`
//! chosen by ALPN at a TLS front), as `api.telegram.org` does; at most [`MAX_STREAMS`] requests run at once on one
//! HTTP/2 connection.

use std::sync::Arc;

use axum::{
    Router,
    body::Body,
    extract::{DefaultBodyLimit, Request},
    routing::get,
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::{api, control, playground, world::World};

/// Closes the connection a request came on; inserted into every request's extensions.
#[derive(Clone)]
pub(crate) struct ConnKill(pub(crate) CancellationToken);

/// The emulator's routes.
pub(crate) fn router(world: Arc<World>) -> Router {
    let limit = world.config.body_limit;
    Router::new()
        .nest("/control", control::router())
        .merge(playground::router())
        .route("/file/{*path}", get(api::download))
        .fallback(api::handle)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(world)
}

/// The most requests one HTTP/2 connection may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`); more wait in
/// the client until one ends.
pub const MAX_STREAMS: u32 = 100;

/// Serves `router` on `listener` until `shutdown` is cancelled.
pub(crate) async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).keep_alive(true);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(MAX_STREAMS);
    let builder = Arc::new(builder);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let (shutdown, builder) = (shutdown.clone(), builder.clone());
        tokio::spawn(async move {
            let kill = CancellationToken::new();
            let conn_kill = ConnKill(kill.clone());
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(conn_kill.clone());
                router.clone().oneshot(req.map(Body::new))
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                () = kill.cancelled() => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
}
