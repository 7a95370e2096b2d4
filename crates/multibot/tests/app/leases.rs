//! The lease tables on PostgreSQL: a bot has one live owner at a time, it changes hands only once its lease has
//! expired or been released, its fencing token grows each time it does, and every time is the server's.

use std::time::Duration;

use multibot::storage::{Lease, LeaseRepository};

use crate::{db::TestDb, helpers::eventually};

const LONG: Duration = Duration::from_secs(60);

fn bots(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

async fn sorted(leases: Result<Vec<Lease>, multibot::storage::StorageError>) -> Vec<(String, i64)> {
    let mut leases: Vec<(String, i64)> = leases.unwrap().into_iter().map(|l| (l.bot_id, l.token)).collect();
    leases.sort();
    leases
}

fn pairs(expected: &[(&str, i64)]) -> Vec<(String, i64)> {
    expected.iter().map(|(id, token)| ((*id).to_owned(), *token)).collect()
}

#[tokio::test]
async fn a_lease_changes_hands_only_once_expired_or_released_and_its_token_grows() {
    let Some(db) = TestDb::postgres().await else { return };
    let storage = db.storage().await;
    let leases: &dyn LeaseRepository = storage.leases().expect("PostgreSQL keeps leases");
    let both = bots(&["cafe", "shop"]);
    assert_eq!(sorted(leases.acquire("a", &both, LONG).await).await, pairs(&[("cafe", 1), ("shop", 1)]));
    // Bad input: another replica asks for live leases, and renews leases it does not hold.
    assert!(leases.acquire("b", &both, LONG).await.unwrap().is_empty());
    assert!(leases.renew("b", &both, LONG).await.unwrap().is_empty());
    assert_eq!(sorted(leases.renew("a", &both, LONG).await).await, pairs(&[("cafe", 1), ("shop", 1)]));

    // Released: another replica takes it at once, with the next token; the first can no longer renew it.
    leases.release("a", &bots(&["cafe"])).await.unwrap();
    assert_eq!(sorted(leases.acquire("b", &both, LONG).await).await, pairs(&[("cafe", 2)]));
    assert_eq!(sorted(leases.renew("a", &both, LONG).await).await, pairs(&[("shop", 1)]));

    // Expired: taken once the server's clock passes it, and never renewed by the one who let it expire.
    assert_eq!(leases.renew("a", &bots(&["shop"]), Duration::from_millis(300)).await.unwrap().len(), 1);
    eventually(Duration::from_secs(10), "the expired lease to be taken", || async {
        !leases.acquire("b", &bots(&["shop"]), LONG).await.unwrap().is_empty()
    })
    .await;
    assert!(leases.renew("a", &both, LONG).await.unwrap().is_empty());
    let owners: Vec<(String, String, i64, bool)> =
        leases.owners().await.unwrap().into_iter().map(|o| (o.bot_id, o.replica, o.token, o.live)).collect();
    assert_eq!(owners, [("cafe".to_owned(), "b".to_owned(), 2, true), ("shop".to_owned(), "b".to_owned(), 2, true)]);
}

#[tokio::test]
async fn a_replica_is_alive_until_its_heartbeats_stop() {
    let Some(db) = TestDb::postgres().await else { return };
    let storage = db.storage().await;
    let leases = storage.leases().expect("PostgreSQL keeps leases");
    assert_eq!(leases.heartbeat("a", LONG).await.unwrap(), ["a"]);
    assert_eq!(leases.heartbeat("b", Duration::from_millis(300)).await.unwrap(), ["a", "b"]);
    eventually(Duration::from_secs(10), "b to be dead", || async {
        leases.heartbeat("a", LONG).await.unwrap() == ["a"]
    })
    .await;
    // Leaving ends a replica's leases and its life at once.
    leases.acquire("a", &bots(&["shop"]), LONG).await.unwrap();
    leases.leave("a").await.unwrap();
    assert!(leases.owners().await.unwrap().iter().all(|o| !o.live));
    assert_eq!(leases.heartbeat("b", LONG).await.unwrap(), ["b"]);
}

#[tokio::test]
async fn sqlite_keeps_no_leases() {
    let storage = TestDb::sqlite().storage().await;
    assert!(storage.leases().is_none(), "one process runs an SQLite fleet");
}
