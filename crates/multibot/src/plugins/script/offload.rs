//! The work of loading scripts, moved off the runtime's workers: a script's top level runs when it is discovered
//! ([`off_workers`] around a rescan) and again for each bot that uses it ([`build_off_workers`]), and it may
//! compute for its whole CPU budget, which must not hold the health probes or the other bots.

use std::sync::Arc;

use super::pool;
use crate::plugins::{LoadedPlugin, PluginContext, PluginFactory, Router};

/// Runs `work` on the script threads and waits for it.
pub(crate) async fn off_workers<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> R {
    pool::run_sync(work).await
}

/// Builds a plugin instance for a bot and registers its handlers on `router`: a script's on the script threads,
/// a native plugin's in place.
pub(crate) async fn build_off_workers(
    factory: Arc<dyn PluginFactory>,
    cx: &PluginContext,
    router: &mut Router,
) -> anyhow::Result<Arc<dyn LoadedPlugin>> {
    if !factory.meta().script {
        return factory.build(cx, router);
    }
    let (cx, mut taken) = (cx.clone(), std::mem::take(router));
    let (built, returned) = off_workers(move || {
        let built = factory.build(&cx, &mut taken);
        (built, taken)
    })
    .await;
    *router = returned;
    built
}
