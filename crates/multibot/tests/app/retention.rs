//! Events retention: `EVENTS_RETENTION_DAYS` prunes old `bot_events` rows at start, in batches, and keeps the
//! newer ones.

use std::time::Duration;

use chrono::Duration as Span;
use multibot::{
    plugins::PluginRegistry,
    storage::{EventKind, NewEvent, Storage, now},
};
use serde_json::json;

use crate::{
    db::{TestDb, both_backends},
    helpers::{eventually, spawn_app_with},
};

const ECHO: &str = "id: \"keeper\"\nname: \"Keeper\"\ntoken: \"${TOKEN_1}\"\nplugins:\n  - name: \"echo\"\n";

/// More old rows than one pruning batch (1,000), so the pruning has to loop.
const OLD_ROWS: usize = 1_200;

async fn append(storage: &Storage, age: Span, n: usize, kind: EventKind) {
    for i in 0..n {
        let event = NewEvent {
            bot_id: Some("keeper".into()),
            kind,
            actor_user_id: Some(i as i64),
            detail: json!({"age_hours": age.num_hours()}),
            at: now() - age,
        };
        storage.events().append(&event).await.unwrap();
    }
}

async fn count(storage: &Storage, kind: &str) -> usize {
    storage.events().list(Some("keeper"), Some(kind), 10_000).await.unwrap().len()
}

both_backends!(events_older_than_the_retention_are_pruned_at_start_and_newer_ones_stay);

async fn events_older_than_the_retention_are_pruned_at_start_and_newer_ones_stay(db: &TestDb) {
    let storage = db.storage().await;
    // Bad input: a table with more stale rows than one batch, and rows just inside the retention that must stay.
    append(&storage, Span::hours(25), OLD_ROWS, EventKind::AccessDenied).await;
    append(&storage, Span::days(400), 3, EventKind::AccessDenied).await;
    append(&storage, Span::hours(23), 4, EventKind::PluginError).await;
    append(&storage, Span::minutes(1), 2, EventKind::PluginError).await;
    assert_eq!(count(&storage, "access_denied").await, OLD_ROWS + 3);

    let vars = [("DATABASE_URL", db.url.clone()), ("EVENTS_RETENTION_DAYS", "1".into())];
    let app = spawn_app_with(&[("keeper.yaml", ECHO)], 1, PluginRegistry::builtin(), &vars).await;
    eventually(Duration::from_secs(20), "the stale events pruned", || async {
        count(&storage, "access_denied").await == 0
    })
    .await;
    assert_eq!(count(&storage, "plugin_error").await, 6, "events inside the retention stay");
    eventually(Duration::from_secs(10), "the start recorded", || async { count(&storage, "started").await == 1 }).await;
    app.stop().await;
    storage.close().await;
}
