//! `kill -9` at random moments during a steady stream over 50 chats, restarting each time (polling, and webhook
//! once its intake goes through the inbox): nothing lost, nothing reordered, and the only second answers are for
//! updates whose handler had run when the process died but that the inbox had not marked done yet.

use std::{collections::HashMap, time::Duration};

use botapi_emulator::FaultSpec;

use super::{Intake, Replies, Rig, Rng, Stream, inbox_states, pending_in_inbox};
use crate::db::{TestDb, both_backends};

/// Chats written in at once.
const CHATS: i64 = 50;
/// Kills per run.
const KILLS: u32 = 20;
/// The emulator holds each `sendMessage` this long, so that a kill often lands while handlers run.
const SEND_DELAY: Duration = Duration::from_millis(20);
/// A round (one message in each chat) this often.
const ROUND_EVERY: Duration = Duration::from_millis(250);
/// The kill comes this long (at most) after the restarted process's first reply.
const KILL_WITHIN_MS: u64 = 400;

/// What the kills left behind.
#[derive(Debug, Default)]
struct Kills {
    /// How many second answers each message may have: once per kill that found it answered in the run just
    /// killed yet still pending in the inbox (its handler ran, so it runs again after the restart).
    allowed: HashMap<(i64, u64), u32>,
    /// The sum of `allowed`.
    allowed_total: u64,
    /// The most such updates one chat had at one kill.
    most_in_one_chat: u32,
    /// Kills that found at least one.
    kills_mid_handler: u32,
}

async fn kill_nine_during_a_stream(db: &TestDb, intake: Intake, name: &str) {
    let rig = Rig::new(&db.url, intake, &[]).await;
    rig.bot.inject(FaultSpec::delay("sendMessage", SEND_DELAY).times(1_000_000)).await.unwrap();
    let mut rng = Rng::seeded(name);
    let started = std::time::Instant::now();
    let mut process = rig.start().await;
    let stream = Stream::start(&rig, CHATS, ROUND_EVERY);
    let (mut replies, mut kills) = (Replies::default(), Kills::default());
    // Replies per message when the run now going began (a dead process answers nothing).
    let mut at_start = HashMap::new();
    for _ in 0..KILLS {
        let before = rig.bot.stats().await.unwrap().messages_sent;
        crate::helpers::eventually(Duration::from_secs(30), "a reply from the restarted process", || async {
            rig.bot.stats().await.unwrap().messages_sent > before
        })
        .await;
        tokio::time::sleep(Duration::from_millis(rng.below(KILL_WITHIN_MS))).await;
        process.kill9();
        rig.settle(SEND_DELAY * 5).await;
        replies.refresh(&rig.bot).await;
        let mut per_chat: HashMap<i64, u32> = HashMap::new();
        for (c, n) in pending_in_inbox(&db.url).await {
            if replies.count(c, n) > at_start.get(&(c, n)).copied().unwrap_or(0) {
                *kills.allowed.entry((c, n)).or_default() += 1;
                *per_chat.entry(c).or_default() += 1;
                kills.allowed_total += 1;
            }
        }
        kills.most_in_one_chat = kills.most_in_one_chat.max(per_chat.values().copied().max().unwrap_or(0));
        kills.kills_mid_handler += u32::from(!per_chat.is_empty());
        at_start = replies.counts();
        process = rig.start().await;
    }
    let rounds = stream.stop().await;
    // Past the deadline, the verdict names what was lost.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !replies.all_answered(CHATS, rounds) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        replies.refresh(&rig.bot).await;
    }
    process.terminate();
    let (status, lines) = process.wait(Duration::from_secs(30)).await;
    assert!(status.success(), "exit status {status}; output:\n{}", lines.join("\n"));
    replies.refresh(&rig.bot).await;
    let verdict = replies.verdict(CHATS, rounds, &kills.allowed);
    println!(
        "{name}: {KILLS} kills ({} mid-handler), {} messages in {CHATS} chats, {} replies, duplicates observed {} vs \
         allowed {} (handlers that had run but were not marked done at a kill; at most {} in one chat at one kill), \
         lost {}, out of order {}, {:.1} s",
        kills.kills_mid_handler,
        rounds * CHATS as u64,
        replies.total(),
        verdict.duplicates,
        kills.allowed_total,
        kills.most_in_one_chat,
        verdict.lost.len(),
        verdict.out_of_order.len(),
        started.elapsed().as_secs_f64(),
    );
    verdict.assert_clean();
    assert_eq!(verdict.duplicates, kills.allowed_total, "each update found running at a kill runs again once");
    assert!(kills.most_in_one_chat <= 1, "a chat had {} handled updates not marked done", kills.most_in_one_chat);
    let stats = rig.bot.stats().await.unwrap();
    assert_eq!(stats.pending, 0, "everything confirmed to Telegram: {stats:?}");
    let states = inbox_states(&db.url).await;
    assert_eq!(states.get("pending"), None, "nothing left pending in the inbox: {states:?}");
}

async fn kill_nine_while_polling(db: &TestDb) {
    kill_nine_during_a_stream(db, Intake::Polling, "kill -9 while polling").await;
}

both_backends!(multi_thread: kill_nine_while_polling);

async fn kill_nine_under_webhooks(db: &TestDb) {
    let port = Rig::free_port();
    kill_nine_during_a_stream(db, Intake::Webhook { port }, "kill -9 under webhooks").await;
}

mod webhook {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(db) = crate::db::TestDb::postgres().await {
            super::kill_nine_under_webhooks(&db).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::kill_nine_under_webhooks(&crate::db::TestDb::sqlite()).await;
    }
}
