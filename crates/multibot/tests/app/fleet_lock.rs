//! One fleet per PostgreSQL database, as real processes against the emulator: without `REPLICA_ID` a process runs
//! the fleet alone, and a second process (with or without `REPLICA_ID`) is refused at start with a message that
//! says who holds the fleet; replicas refuse a process without `REPLICA_ID` the same way. A process that loses the
//! lock to another while its database connection was cut shuts down, with an error, rather than run the fleet
//! twice.

use std::time::Duration;

use crate::{
    db::{Proxy, TestDb},
    helpers::eventually,
    process::{Process, wait_polling},
    replicas::{Fleet, polls_cut_short},
};

/// Starts a process that must be refused, and returns what it printed.
async fn refused(process: Process) -> Vec<String> {
    let (status, output) = process.wait(Duration::from_secs(30)).await;
    assert!(!status.success(), "{output:?}");
    output
}

fn says(output: &[String], text: &str) -> bool {
    output.iter().any(|line| line.contains(text))
}

#[tokio::test]
async fn a_postgresql_fleet_runs_in_one_process_or_in_replicas_never_both() {
    let Some(db) = TestDb::postgres().await else { return };
    let fleet = Fleet::new(&db, 2).await;
    let (emu, bots) = (&fleet.emu, &fleet.bots);
    let user = emu.user(8400);
    let alone = fleet.start_with(&[]);
    for bot in bots {
        wait_polling(emu, bot).await;
    }
    // Bad input: a second process without REPLICA_ID on the same database.
    let output = refused(fleet.start_with(&[])).await;
    assert!(says(&output, "another Multibot process without REPLICA_ID runs a fleet on this PostgreSQL database"));
    assert!(says(&output, "give every process its own REPLICA_ID to share the fleet"), "{output:?}");
    // Refused before its schema work: a newer binary must not migrate the database under the running fleet.
    assert!(!says(&output, "database ready"), "{output:?}");
    // Bad input: a replica beside it.
    let output = refused(fleet.start("a")).await;
    assert!(says(&output, "replicas share a fleet only with other replicas"), "{output:?}");
    // The first one kept its bots, and nobody cut its polls short (409).
    for bot in bots {
        user.send(bot, "still alone").await.unwrap();
        let reply = user.next_message_in(bot, user.id, Duration::from_secs(15)).await.unwrap();
        assert_eq!(reply.text.as_deref(), Some("You said: still alone"));
    }
    let (own, by_another) = polls_cut_short(emu, bots).await;
    assert_eq!((own, by_another.len()), (0, 0), "{by_another:?}");
    // Gone (kill -9): the server ends its session and frees the lock, so replicas may start, and then a process
    // without REPLICA_ID is the one refused.
    alone.kill9();
    let a = fleet.start("a");
    let b = fleet.start("b");
    for bot in bots {
        wait_polling(emu, bot).await;
    }
    let output = refused(fleet.start_with(&[])).await;
    assert!(says(&output, "2 Multibot replicas with REPLICA_ID run a fleet"), "{output:?}");
    for process in [a, b] {
        process.stop().await;
    }
}

#[tokio::test]
async fn a_process_that_lost_the_fleet_lock_while_cut_off_shuts_down() {
    let Some(db) = TestDb::postgres().await else { return };
    let fleet = Fleet::new(&db, 1).await;
    let proxy = Proxy::start().await;
    let through_proxy = db.url_via(proxy.port());
    let first = fleet.start_with(&[("DATABASE_URL", &through_proxy)]);
    wait_polling(&fleet.emu, &fleet.bots[0]).await;
    // Cut off: its sessions end, the server frees the lock, and a second process takes the fleet.
    proxy.down();
    let second = fleet.start_with(&[]);
    eventually(Duration::from_secs(30), "the second process to take the fleet lock", || async {
        second.lines().iter().any(|l| l.contains("fleet started"))
    })
    .await;
    // Back: the first one finds the lock taken and stops, with an error.
    proxy.up();
    let (status, output) = first.wait(Duration::from_secs(30)).await;
    assert!(!status.success(), "{output:?}");
    assert!(says(&output, "the fleet lock went to another process while its connection was down"), "{output:?}");
    // The second one runs the fleet.
    let user = fleet.emu.user(8401);
    let bot = &fleet.bots[0];
    user.send(bot, "second").await.unwrap();
    let reply = user.next_message_in(bot, user.id, Duration::from_secs(15)).await.unwrap();
    assert_eq!(reply.text.as_deref(), Some("You said: second"));
    second.stop().await;
}
