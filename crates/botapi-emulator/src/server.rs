//! The HTTP server: one axum router for the Bot API (`/bot<TOKEN>/<method>`), its file endpoint
//! (`/file/bot<TOKEN>/<file_path>`) and the control API (`/control/...`), served over HTTP/1.1 by our own accept
//! loop so that a fault can close one connection without answering (`ConnKill`).

use std::sync::Arc;

use axum::{
    Router,
    body::Body,
    extract::{DefaultBodyLimit, Request},
    routing::get,
};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::{api, control, world::World};

/// Closes the connection a request came on; inserted into every request's extensions.
#[derive(Clone)]
pub(crate) struct ConnKill(pub(crate) CancellationToken);

/// The emulator's routes.
pub(crate) fn router(world: Arc<World>) -> Router {
    let limit = world.config.body_limit;
    Router::new()
        .nest("/control", control::router())
        .route("/file/{*path}", get(api::download))
        .fallback(api::handle)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(world)
}

/// Serves `router` on `listener` until `shutdown` is cancelled.
pub(crate) async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
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
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let kill = CancellationToken::new();
            let conn_kill = ConnKill(kill.clone());
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(conn_kill.clone());
                router.clone().oneshot(req.map(Body::new))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                () = kill.cancelled() => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
}
