//! No head-of-line blocking: with flood control on, a chat with 500 queued messages is answered at about one a
//! second, and meanwhile other chats of the same bot are answered at once.

use std::time::{Duration, Instant};

use super::{Intake, Rig, text};
use crate::{db::TestDb, helpers::eventually};

/// Messages queued in the busy chat.
const QUEUED: u64 = 500;
/// Other chats, one message each, one reply measured each.
const OTHERS: i64 = 100;
/// The bound on the 99th percentile of the other chats' reply times.
const BOUND: Duration = Duration::from_millis(200);
/// One other chat writes this often: 20 replies a second, within the bot's overall limit (about 30 a second), so
/// that the bound measures waiting for the busy chat and not the bot's own pace.
const SPACING: Duration = Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_chat_with_500_queued_messages_does_not_delay_other_chats() {
    let db = TestDb::sqlite();
    let rig = Rig::new(&db.url, Intake::Polling, &[("FLOOD_CONTROL", "true")]).await;
    let process = rig.start().await;
    let busy = rig.user(0);
    for n in 0..QUEUED {
        busy.send(&rig.bot, &text(0, n)).await.unwrap();
    }
    // The bot took the whole backlog from Telegram: it waits in the bot, not in getUpdates.
    eventually(Duration::from_secs(30), "the backlog confirmed to Telegram", || async {
        rig.bot.stats().await.unwrap().updates_confirmed >= QUEUED
    })
    .await;
    let mut waits = Vec::new();
    for c in 1..=OTHERS {
        let user = rig.user(c);
        let sent_at = Instant::now();
        user.send(&rig.bot, &text(c, 0)).await.unwrap();
        let reply = user.next_message_in(&rig.bot, user.id, Duration::from_secs(30)).await.unwrap();
        waits.push(sent_at.elapsed());
        assert_eq!(reply.text, Some(format!("You said: {}", text(c, 0))));
        tokio::time::sleep(SPACING.saturating_sub(sent_at.elapsed())).await;
    }
    let busy_answered = busy.transcript(&rig.bot).await.unwrap().iter().filter(|m| m.from_bot).count();
    let _ = process.kill9();
    waits.sort();
    let (p50, p99, max) = (waits[waits.len() / 2], waits[waits.len() * 99 / 100 - 1], waits[waits.len() - 1]);
    println!(
        "paced chat: {QUEUED} queued, {busy_answered} answered meanwhile; {OTHERS} other chats answered in p50 \
         {p50:?}, p99 {p99:?}, max {max:?}"
    );
    // The premise: the busy chat was paced, so its backlog was still there while the others were measured.
    assert!(busy_answered < QUEUED as usize / 2, "the busy chat was not paced: {busy_answered} answered");
    assert!(p99 <= BOUND, "other chats waited for the paced one: p99 {p99:?} > {BOUND:?} (all: {waits:?})");
}
