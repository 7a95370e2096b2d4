//! PostgreSQL taken away mid-stream (a [`Proxy`] the test closes and reopens): while it is gone the bot confirms
//! nothing (polling: Telegram keeps the updates; webhook: 503, and the emulator retries), and once it is back every
//! message is answered once, in order.

use std::{collections::HashMap, time::Duration};

use botapi_emulator::TestUser;

use super::{Intake, Replies, Rig, text};
use crate::db::{Proxy, TestDb};

/// Chats written in.
const CHATS: i64 = 10;

/// Sends message `n` in every chat; returns the update ids the emulator gave them.
async fn round(rig: &Rig, users: &[TestUser], n: u64) -> Vec<i64> {
    let mut ids = Vec::new();
    for (c, user) in users.iter().enumerate() {
        let sent = user.send(&rig.bot, &text(c as i64, n)).await.expect("the emulator takes a message");
        ids.extend(sent.update_id);
    }
    ids
}

/// Waits until messages `0..rounds` of every chat are answered.
async fn answered(rig: &Rig, replies: &mut Replies, rounds: u64, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        replies.refresh(&rig.bot).await;
        if replies.all_answered(CHATS, rounds) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The seq of the newest Bot API call the bot made.
async fn last_call(rig: &Rig) -> u64 {
    rig.bot.calls(None).await.unwrap().last().map_or(0, |c| c.seq)
}

async fn database_outage_mid_stream(intake: Intake) {
    let Some(db) = TestDb::postgres().await else { return };
    let proxy = Proxy::start().await;
    let rig = Rig::new(&db.url_via(proxy.port()), intake, &[]).await;
    let process = rig.start().await;
    let users: Vec<TestUser> = (0..CHATS).map(|c| rig.user(c)).collect();
    let mut replies = Replies::default();
    round(&rig, &users, 0).await;
    answered(&rig, &mut replies, 1, "the answers before the outage").await;

    // Bad input: updates arrive while the database is unreachable, so the bot cannot store them.
    proxy.down();
    let before = last_call(&rig).await;
    let outage_ids = round(&rig, &users, 1).await;
    let first_outage_id = outage_ids.iter().copied().min().expect("update ids");
    match intake {
        Intake::Polling => {
            crate::helpers::eventually(Duration::from_secs(30), "three polls during the outage", || async {
                rig.bot.calls(Some("getUpdates")).await.unwrap().iter().filter(|c| c.seq > before).count() >= 3
            })
            .await;
            // Each poll asks from an offset at or below the first update of the outage: nothing is confirmed.
            for call in rig.bot.calls(Some("getUpdates")).await.unwrap().iter().filter(|c| c.seq > before) {
                let offset = crate::helpers::param_i64(&call.params["offset"]).unwrap_or(0);
                assert!(offset <= first_outage_id, "a poll confirmed an update it could not store: {call:?}");
            }
        }
        Intake::Webhook { .. } => {
            crate::helpers::eventually(Duration::from_secs(30), "three refused pushes", || async {
                rig.bot.stats().await.unwrap().webhook_failures >= 3
            })
            .await;
            let hook = rig.bot.webhook().await.unwrap();
            let error = hook["last_error_message"].as_str().unwrap_or_default();
            assert!(error.contains("503"), "the webhook answered 503 while the database was away: {hook}");
        }
    }
    let stats = rig.bot.stats().await.unwrap();
    assert!(stats.pending >= CHATS as u64, "Telegram keeps the updates of the outage: {stats:?}");
    replies.refresh(&rig.bot).await;
    assert!((0..CHATS).all(|c| replies.count(c, 1) == 0), "an update that could not be stored was handled");

    proxy.up();
    answered(&rig, &mut replies, 2, "the answers to the messages sent during the outage").await;
    round(&rig, &users, 2).await;
    answered(&rig, &mut replies, 3, "the answers after the outage").await;
    process.terminate();
    let (status, lines) = process.wait(Duration::from_secs(30)).await;
    assert!(status.success(), "exit status {status}; output:\n{}", lines.join("\n"));
    replies.refresh(&rig.bot).await;
    let verdict = replies.verdict(CHATS, 3, &HashMap::new());
    let stats = rig.bot.stats().await.unwrap();
    println!(
        "database outage ({intake:?}): {} messages, {} replies, duplicates {}, lost {}, refused pushes {}, \
         pending at the end {}",
        3 * CHATS,
        replies.total(),
        verdict.duplicates,
        verdict.lost.len(),
        stats.webhook_failures,
        stats.pending,
    );
    verdict.assert_clean();
    assert_eq!(verdict.duplicates, 0, "nothing answered twice");
    assert_eq!(stats.pending, 0, "everything confirmed in the end: {stats:?}");
    if intake == Intake::Polling {
        assert!(
            lines.iter().any(|l| l.contains("could not store updates in the inbox")),
            "the outage was logged; output:\n{}",
            lines.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_while_polling_confirms_nothing_and_loses_nothing() {
    database_outage_mid_stream(Intake::Polling).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_under_webhooks_answers_503_and_loses_nothing() {
    database_outage_mid_stream(Intake::Webhook { port: Rig::free_port() }).await;
}
