//! Process signals: SIGINT and SIGTERM stop the application, SIGHUP reloads its configuration.

use tokio_util::sync::CancellationToken;

/// A token cancelled by SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    // Outside any tracker on purpose: it only waits for a signal and cancels a token, holds nothing to flush,
    // and must live as long as the process.
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    cancel.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                _ = term.recv() => tracing::info!("SIGTERM received"),
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        cancel.cancel();
    });
    token
}

/// Sends a reload request on every SIGHUP.
pub fn reload_on_sighup(reloads: tokio::sync::mpsc::Sender<crate::config::watcher::ReloadSignal>) {
    // Outside any tracker on purpose: it only forwards signals to the reloader (a full or closed channel is
    // ignored) and lives as long as the process.
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP received: reloading the configuration");
            let _ = reloads.try_send(crate::config::watcher::ReloadSignal::Requested);
        }
    });
}
