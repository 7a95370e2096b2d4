//! The repositories and migrations, each test on PostgreSQL and on SQLite.

use chrono::Duration as Span;
use multibot::storage::{BotRecord, EventKind, InboxUpdate, NewEvent, StorageError, UserProfile, UserSeen, now};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::db::{TestDb, both_backends};

both_backends!(
    bots_are_upserted_keeping_created_at_and_unset_timestamps,
    users_are_upserted_counted_and_listed_by_recency,
    events_are_appended_and_listed_by_bot_and_kind,
    plugin_state_is_typed_and_scoped_to_bot_and_plugin,
    migrations_apply_once_and_a_newer_schema_is_refused,
    inbox_stores_a_redelivery_once_and_lists_pending_in_update_order,
    inbox_marks_many_bots_done_at_once_and_stores_a_repeated_id_once,
);

fn bot(id: &str, status: &str) -> BotRecord {
    let at = now();
    BotRecord {
        id: id.into(),
        name: "Shop".into(),
        description: "A shop".into(),
        mode: "polling".into(),
        enabled: true,
        config_hash: "00ff".into(),
        status: status.into(),
        started_at: Some(at),
        stopped_at: None,
        last_error: None,
        created_at: at,
        updated_at: at,
    }
}

async fn bots_are_upserted_keeping_created_at_and_unset_timestamps(db: &TestDb) {
    let storage = db.storage().await;
    let bots = storage.bots();
    let started = bot("shop", "running");
    bots.upsert(std::slice::from_ref(&started)).await.unwrap();
    assert_eq!(bots.get("shop").await.unwrap().as_ref(), Some(&started));
    let later = started.updated_at + Span::seconds(5);
    let failed = BotRecord {
        status: "failed".into(),
        name: "Shop 2".into(),
        started_at: None,
        stopped_at: Some(later),
        last_error: Some("token rejected".into()),
        created_at: later,
        updated_at: later,
        ..started.clone()
    };
    bots.upsert(std::slice::from_ref(&failed)).await.unwrap();
    let stored = bots.get("shop").await.unwrap().unwrap();
    assert_eq!(
        stored,
        BotRecord { started_at: started.started_at, created_at: started.created_at, ..failed },
        "created_at and the unset started_at are kept"
    );
    bots.upsert(&[bot("cafe", "stopped")]).await.unwrap();
    let ids: Vec<String> = bots.list().await.unwrap().into_iter().map(|b| b.id).collect();
    assert_eq!(ids, ["cafe", "shop"]);
    assert_eq!(bots.get("nope").await.unwrap(), None);
}

fn seen(bot_id: &str, user_id: i64, name: &str, at: chrono::DateTime<chrono::Utc>, messages: i64) -> UserSeen {
    UserSeen {
        bot_id: bot_id.into(),
        user_id,
        profile: UserProfile {
            username: Some(name.to_lowercase()),
            first_name: name.into(),
            last_name: None,
            language_code: Some("en".into()),
        },
        first_seen: at,
        last_seen: at,
        messages,
    }
}

async fn users_are_upserted_counted_and_listed_by_recency(db: &TestDb) {
    let storage = db.storage().await;
    let users = storage.users();
    let t0 = now();
    let t = |s: i64| t0 + Span::milliseconds(s);
    users
        .upsert(&[seen("a", 1, "Ann", t(0), 1), seen("a", 2, "Bob", t(10), 1), seen("b", 1, "Ann", t(5), 1)])
        .await
        .unwrap();
    // A later batch: Ann renamed herself and wrote twice more; an out-of-order older sighting of Bob.
    users.upsert(&[seen("a", 1, "Annie", t(20), 2), seen("a", 2, "Bob", t(-10), 0)]).await.unwrap();
    let ann = users.get("a", 1).await.unwrap().unwrap();
    assert_eq!(
        (
            ann.profile.first_name.as_str(),
            ann.profile.username.as_deref(),
            ann.message_count,
            ann.first_seen,
            ann.last_seen
        ),
        ("Annie", Some("annie"), 3, t(0), t(20))
    );
    let bob = users.get("a", 2).await.unwrap().unwrap();
    assert_eq!((bob.first_seen, bob.last_seen, bob.message_count, bob.is_blocked), (t(-10), t(10), 1, false));
    assert_eq!(users.get_user_count("a").await.unwrap(), 2);
    assert_eq!(users.get_user_count("b").await.unwrap(), 1);
    assert_eq!(users.get_user_count("none").await.unwrap(), 0);
    let recent: Vec<i64> = users.list_recent("a", 10).await.unwrap().iter().map(|u| u.user_id).collect();
    assert_eq!(recent, [1, 2], "Ann was seen last");
    assert_eq!(users.list_recent("a", 1).await.unwrap().len(), 1);
    assert!(users.set_blocked("a", 2, true).await.unwrap());
    assert!(users.get("a", 2).await.unwrap().unwrap().is_blocked);
    assert!(!users.set_blocked("a", 99, true).await.unwrap(), "an unknown user");
    assert_eq!(users.get("b", 2).await.unwrap(), None);

    // A batch larger than one statement (150 users: 64 + 64 + 16 + 4 + 2 per statement), one of them twice.
    let many: Vec<UserSeen> =
        (100..250).map(|id| seen("c", id, "Many", t(id), 1)).chain([seen("c", 100, "Again", t(300), 1)]).collect();
    users.upsert(&many).await.unwrap();
    assert_eq!(users.get_user_count("c").await.unwrap(), 150);
    let twice = users.get("c", 100).await.unwrap().unwrap();
    assert_eq!((twice.profile.first_name.as_str(), twice.message_count, twice.last_seen), ("Again", 2, t(300)));
    let last = users.get("c", 249).await.unwrap().unwrap();
    assert_eq!((last.profile.first_name.as_str(), last.message_count, last.first_seen), ("Many", 1, t(249)));
}

async fn events_are_appended_and_listed_by_bot_and_kind(db: &TestDb) {
    let storage = db.storage().await;
    let events = storage.events();
    let event = |bot: Option<&str>, kind, actor| NewEvent {
        bot_id: bot.map(str::to_owned),
        kind,
        actor_user_id: actor,
        detail: json!({"n": 1, "text": "ünïcode ✓"}),
        at: now(),
    };
    let first = events.append(&event(Some("a"), EventKind::Started, None)).await.unwrap();
    let second = events.append(&event(Some("a"), EventKind::AdminAction, Some(42))).await.unwrap();
    // Several in one transaction, in order.
    events
        .append_all(&[event(Some("b"), EventKind::Started, None), event(None, EventKind::ConfigInvalid, None)])
        .await
        .unwrap();
    assert!(second > first);
    let of_a = events.list(Some("a"), None, 10).await.unwrap();
    assert_eq!(of_a.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["admin_action", "started"], "newest first");
    assert_eq!(of_a[0].actor_user_id, Some(42));
    assert_eq!(of_a[0].detail, json!({"n": 1, "text": "ünïcode ✓"}));
    let newest = events.list(None, None, 2).await.unwrap();
    assert_eq!(newest.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["config_invalid", "started"]);
    let started = events.list(None, Some("started"), 10).await.unwrap();
    assert_eq!(started.iter().map(|e| e.bot_id.as_deref()).collect::<Vec<_>>(), [Some("b"), Some("a")]);
    assert_eq!(events.list(None, None, 2).await.unwrap().len(), 2);
    assert_eq!(events.list(None, Some("config_invalid"), 10).await.unwrap()[0].bot_id, None);
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Cart {
    items: Vec<String>,
    total_cents: u64,
}

async fn plugin_state_is_typed_and_scoped_to_bot_and_plugin(db: &TestDb) {
    let storage = db.storage().await;
    let cart = storage.plugin_store("shop", "cart");
    assert_eq!(cart.get::<Cart>("alice").await.unwrap(), None);
    let value = Cart { items: vec!["tea".into(), "cake".into()], total_cents: 750 };
    cart.set("alice", &value).await.unwrap();
    assert_eq!(cart.get::<Cart>("alice").await.unwrap(), Some(value));
    cart.set("alice", &Cart { items: vec![], total_cents: 0 }).await.unwrap();
    cart.set("bob", &json!(null)).await.unwrap();
    assert_eq!(cart.get::<Cart>("alice").await.unwrap().unwrap().total_cents, 0, "replaced");
    // The same key in another plugin and another bot are other values.
    storage.plugin_store("shop", "other").set("alice", "x").await.unwrap();
    storage.plugin_store("cafe", "cart").set("alice", &1).await.unwrap();
    let keys: Vec<String> = cart.list().await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["alice", "bob"]);
    // Bad input: reading a value as the wrong type is an error, not a panic or a default.
    assert!(matches!(cart.get::<u64>("alice").await, Err(StorageError::Json(_))));
    assert!(cart.delete("alice").await.unwrap());
    assert!(!cart.delete("alice").await.unwrap());
    assert_eq!(storage.plugin_store("shop", "other").get::<String>("alice").await.unwrap().as_deref(), Some("x"));
    assert_eq!(storage.plugin_states().get("cafe", "cart", "alice").await.unwrap(), Some(json!(1)));
}

async fn migrations_apply_once_and_a_newer_schema_is_refused(db: &TestDb) {
    let storage = db.open().await;
    assert!(matches!(storage.check_schema().await, Err(StorageError::Pending(7))));
    let applied = storage.migrate().await.unwrap();
    assert_eq!(
        applied.iter().map(|m| (m.version, m.description.as_str())).collect::<Vec<_>>(),
        [
            (1, "initial"),
            (2, "inbox"),
            (3, "inbox_lean"),
            (4, "leases"),
            (5, "fleet_commands"),
            (6, "broadcasts"),
            (7, "broadcast_media")
        ]
    );
    assert!(storage.migrate().await.unwrap().is_empty(), "nothing the second time");
    storage.check_schema().await.unwrap();
    // A newer binary migrated this database: this one must not touch it.
    insert_future_migration(db).await;
    let error = storage.migrate().await.unwrap_err();
    assert!(matches!(error, StorageError::SchemaTooNew { database: 99, known: 7 }), "{error}");
    assert!(error.to_string().contains("newer than this binary knows"), "{error}");
    assert!(matches!(storage.check_schema().await, Err(StorageError::SchemaTooNew { .. })));
}

fn update(update_id: i64, chat_key: i64) -> InboxUpdate {
    InboxUpdate { update_id, chat_key, payload: format!(r#"{{"update_id":{update_id}}}"#) }
}

async fn inbox_stores_a_redelivery_once_and_lists_pending_in_update_order(db: &TestDb) {
    let storage = db.storage().await;
    let inbox = storage.inbox();
    let at = now();
    assert_eq!(inbox.depth("shop").await.unwrap().pending, 0);
    assert_eq!(inbox.insert("shop", &[update(12, 7), update(10, 7), update(11, 8)], at).await.unwrap(), [12, 10, 11]);
    // Bad input: Telegram delivers 11 and 12 again (their confirmation was lost) with one new update.
    let later = at + Span::seconds(1);
    assert_eq!(inbox.insert("shop", &[update(11, 8), update(12, 7), update(13, 7)], later).await.unwrap(), [13]);
    inbox.insert("cafe", &[update(10, 1)], at).await.unwrap();
    let pending = inbox.pending("shop", 10).await.unwrap();
    let ids: Vec<(i64, i64)> = pending.iter().map(|p| (p.update_id, p.chat_key)).collect();
    assert_eq!(ids, [(10, 7), (11, 8), (12, 7), (13, 7)], "in update order, one row per update");
    assert_eq!(pending[0].payload, r#"{"update_id":10}"#);
    assert_eq!((pending[0].received_at, pending[3].received_at), (at, later));
    assert_eq!(inbox.pending("shop", 2).await.unwrap().len(), 2, "the limit holds");
    let depth = inbox.depth("shop").await.unwrap();
    assert_eq!((depth.pending, depth.oldest), (4, Some(at)));

    inbox.mark_done(&[("shop", 10), ("shop", 12)], later).await.unwrap();
    let ids: Vec<i64> = inbox.pending("shop", 10).await.unwrap().iter().map(|p| p.update_id).collect();
    assert_eq!(ids, [11, 13]);
    // A done update delivered again stays done: it is never handled twice.
    assert!(inbox.insert("shop", &[update(10, 7)], later).await.unwrap().is_empty());
    assert_eq!(inbox.pending("shop", 10).await.unwrap().len(), 2);
    assert_eq!(inbox.pending("cafe", 10).await.unwrap().len(), 1, "another bot's inbox is its own");
    // Bad input: id 12 reused for another update (ids restart after a week's silence): stored anew.
    let reused = InboxUpdate { payload: r#"{"update_id":12,"other":1}"#.into(), ..update(12, 9) };
    assert_eq!(inbox.insert("shop", &[reused], later).await.unwrap(), [12]);
    inbox.mark_done(&[("shop", 12)], later).await.unwrap();

    assert_eq!(inbox.prune("shop", later, None).await.unwrap(), 0, "only rows done before the limit go");
    // A poll confirmed everything below 11: done row 10 goes; done row 12 and pending 11 stay.
    assert_eq!(inbox.prune("shop", later, Some(11)).await.unwrap(), 1);
    assert_eq!(inbox.pending("shop", 10).await.unwrap().len(), 2, "pending rows below the offset stay");
    inbox.mark_done(&[("cafe", 10)], at).await.unwrap();
    assert_eq!(inbox.prune("shop", later + Span::seconds(1), None).await.unwrap(), 1);
    assert_eq!(inbox.prune("shop", later + Span::seconds(1), None).await.unwrap(), 0, "another bot's rows stay");
    assert_eq!(inbox.prune("cafe", later + Span::seconds(1), None).await.unwrap(), 1);
    assert_eq!(inbox.depth("shop").await.unwrap().pending, 2, "pending rows are never pruned");
}

async fn inbox_marks_many_bots_done_at_once_and_stores_a_repeated_id_once(db: &TestDb) {
    let storage = db.storage().await;
    let inbox = storage.inbox();
    let at = now();
    // Bad input: one batch names update 5 twice; it is stored once, the first payload kept.
    let twice = InboxUpdate { payload: r#"{"update_id":5,"again":1}"#.into(), ..update(5, 1) };
    assert_eq!(inbox.insert("shop", &[update(5, 1), update(6, 2), twice], at).await.unwrap(), [5, 6]);
    let shop = inbox.pending("shop", 10).await.unwrap();
    assert_eq!(
        shop.iter().map(|p| p.payload.as_str()).collect::<Vec<_>>(),
        [r#"{"update_id":5}"#, r#"{"update_id":6}"#]
    );
    // A payload with quotes, backslashes and non-ASCII text comes back byte for byte.
    let text = InboxUpdate { payload: r#"{"update_id":7,"text":"a \"b\" \\ é 🙂"}"#.into(), ..update(7, 1) };
    inbox.insert("cafe", &[update(6, 1), text.clone()], at).await.unwrap();
    assert_eq!(inbox.pending("cafe", 10).await.unwrap()[1].payload, text.payload);

    // One write for two bots, an unknown id and a repeated one among them.
    inbox.mark_done(&[("shop", 6), ("cafe", 6), ("cafe", 6), ("shop", 99)], at).await.unwrap();
    let ids = |rows: Vec<multibot::storage::PendingUpdate>| rows.iter().map(|p| p.update_id).collect::<Vec<_>>();
    assert_eq!(ids(inbox.pending("shop", 10).await.unwrap()), [5]);
    assert_eq!(ids(inbox.pending("cafe", 10).await.unwrap()), [7]);
    inbox.mark_done(&[], at).await.unwrap();
    assert_eq!(inbox.depth("shop").await.unwrap().pending, 1, "nothing to mark changes nothing");

    // A batch larger than one statement (100 updates: 64 + 32 + 4), stored whole, each id given back once.
    let big: Vec<InboxUpdate> = (1000..1100).map(|id| update(id, id % 7)).collect();
    assert_eq!(inbox.insert("big", &big, at).await.unwrap(), (1000..1100).collect::<Vec<i64>>());
    assert_eq!(ids(inbox.pending("big", 200).await.unwrap()), (1000..1100).collect::<Vec<i64>>());
    assert!(inbox.insert("big", &big, at).await.unwrap().is_empty(), "a redelivered batch is not new");

    // Handled updates that a poll confirmed are deleted, pending or done, by bot and id: shop's 5 (pending) and
    // cafe's 6 (done) go; cafe's 7 and the big bot's rows stay. An unknown pair changes nothing.
    inbox.forget(&[("shop", 5), ("cafe", 6), ("shop", 1000)]).await.unwrap();
    assert_eq!(inbox.depth("shop").await.unwrap().pending, 0);
    assert_eq!(ids(inbox.pending("cafe", 10).await.unwrap()), [7]);
    assert_eq!(inbox.depth("big").await.unwrap().pending, 100);
    // No row is left: the same update stored again is new (a poll confirmed it, so Telegram never sends it again).
    assert_eq!(inbox.insert("cafe", &[update(6, 1)], at).await.unwrap(), [6]);
    inbox.forget(&[]).await.unwrap();
}

/// Marks version 99 applied, as a newer Multibot would.
pub(crate) async fn insert_future_migration(db: &TestDb) {
    const SQL: &str = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                       VALUES (99, 'future', TRUE, $1, 0)";
    if db.url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::query(SQL).bind(vec![0u8]).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        sqlx::query(SQL).bind(vec![0u8]).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

#[tokio::test]
async fn processes_migrating_one_empty_postgres_database_at_once_all_succeed() {
    let Some(db) = TestDb::postgres().await else { return };
    // Bad input: eight replicas of a first rollout, each with its own pool, migrate at the same moment.
    let storages = futures_util::future::join_all((0..8).map(|_| db.open())).await;
    let migrated = futures_util::future::join_all(storages.iter().map(|s| s.migrate())).await;
    let applied: usize = migrated.into_iter().map(|m| m.expect("every migration succeeds").len()).sum();
    // Each migration counts where it was pending when asked; the schema ends current, once.
    assert!(applied >= storages[0].known_migrations().len(), "{applied}");
    for storage in &storages {
        storage.check_schema().await.unwrap();
        storage.close().await;
    }
}
