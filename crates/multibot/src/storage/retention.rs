//! Events retention: [`prune_events`] deletes the `bot_events` rows older than `EVENTS_RETENTION_DAYS`, in
//! batches of [`BATCH`] so that a huge table is never held by one long `DELETE`; [`run`] does it at start and
//! then every [`PERIOD`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Storage, StorageError};

/// Rows one `DELETE` removes at most: a short transaction, whatever the table's size.
pub const BATCH: u32 = 1000;
/// How often the pruning runs (after the run at start).
pub const PERIOD: Duration = Duration::from_secs(3600);

/// Deletes every event older than `before`, a batch at a time, stopping early when `stop` is cancelled;
/// returns how many rows went.
pub async fn prune_events(
    storage: &Storage,
    before: DateTime<Utc>,
    stop: &CancellationToken,
) -> Result<u64, StorageError> {
    let mut deleted = 0;
    loop {
        let batch = storage.events().prune(before, BATCH).await?;
        deleted += batch;
        if batch < u64::from(BATCH) || stop.is_cancelled() {
            return Ok(deleted);
        }
        // Between batches, other writers (the recorder, the inbox) get the database.
        tokio::task::yield_now().await;
    }
}

/// Prunes events older than `retention` now and every [`PERIOD`] until `stop` is cancelled; a failure is logged
/// and retried at the next period.
pub async fn run(storage: Storage, retention: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let Ok(age) = chrono::Duration::from_std(retention) else { return };
        let before = super::now() - age;
        match prune_events(&storage, before, &stop).await {
            Ok(0) => {}
            Ok(deleted) => info!(deleted, %before, "pruned old events"),
            Err(e) => warn!(error = %e, "pruning old events failed; retrying in an hour"),
        }
    }
}
