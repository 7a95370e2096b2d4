//! A broadcast across replicas (real processes on PostgreSQL against the emulator, Telegram's limits simulated and
//! flood control on): the replica running the bot runs its broadcast; when that replica is killed, the other takes
//! the bot and resumes the broadcast from the shared tables. No user gets two copies, every user but the few whose
//! send was under way at the kill gets exactly one, and the emulator never accepts more than 30 of the bot's
//! messages in a second, across the handover.

use std::{collections::HashMap, time::Duration};

use multibot::{
    fleet::broadcasts::{self, IN_FLIGHT},
    storage::{BroadcastMessage, BroadcastState, INTERRUPTED, NewBroadcast},
};

use crate::{
    broadcasts::users_write,
    db::TestDb,
    helpers::{eventually, param_i64},
    replicas::{Fleet, live_leases},
};

const WORDS: &str = "Replicated news";
const USERS: i64 = 400;

#[tokio::test(flavor = "multi_thread")]
async fn a_broadcast_moves_with_its_bot_when_its_replica_dies_and_sends_each_user_at_most_one_copy() {
    let Some(db) = TestDb::postgres().await else { return };
    let fleet = Fleet::new(&db, 1).await;
    let (emu, bot, bot_id) = (&fleet.emu, &fleet.bots[0], fleet.ids[0].clone());
    emu.control().set_flood(true).await.unwrap();
    let flood = [("FLOOD_CONTROL", "true")];
    let mut a = Some(fleet.start_with(&[flood[0], ("REPLICA_ID", "a")]));
    let mut b = Some(fleet.start_with(&[flood[0], ("REPLICA_ID", "b")]));
    let storage = db.storage().await;
    eventually(Duration::from_secs(30), "the bot leased", || async { live_leases(&storage).await.len() == 1 }).await;
    users_write(emu, &storage, bot, &bot_id, 1..=USERS, Duration::from_secs(60)).await;
    let new = NewBroadcast {
        bot_id: bot_id.clone(),
        message: BroadcastMessage::Text { text: WORDS.into(), parse_mode: None, entities: None },
        active_days: None,
        created_by: None,
    };
    let id = broadcasts::start(&storage, None, new).await.unwrap().id;
    eventually(Duration::from_secs(60), "a third sent", || async {
        storage.broadcasts().get(id).await.unwrap().is_some_and(|b| b.sent >= USERS / 3)
    })
    .await;
    // Kill the replica running the bot (and so its broadcast).
    let owner = live_leases(&storage).await[0].replica.clone();
    let killed = if owner == "a" { a.take() } else { b.take() };
    killed.expect("the owner runs").kill9();
    eventually(Duration::from_secs(90), "the broadcast done on the other replica", || async {
        storage.broadcasts().get(id).await.unwrap().is_some_and(|b| b.state == BroadcastState::Done)
    })
    .await;
    let survivor = live_leases(&storage).await[0].replica.clone();
    assert_ne!(survivor, owner, "the bot moved");
    let job = storage.broadcasts().get(id).await.unwrap().unwrap();
    let interrupted = storage.broadcasts().deliveries(id, Some("failed"), 100).await.unwrap();
    assert!(interrupted.iter().all(|d| d.error.as_deref() == Some(INTERRUPTED)), "{interrupted:?}");
    assert!(interrupted.len() <= IN_FLIGHT, "{} interrupted", interrupted.len());
    assert_eq!(job.sent + job.failed, USERS, "{job:?}");
    let (mut copies, mut accepted) = (HashMap::<i64, u32>::new(), Vec::new());
    for call in bot.calls(Some("sendMessage")).await.unwrap() {
        if call.status == 200 && call.params.get("text").and_then(|t| t.as_str()) == Some(WORDS) {
            *copies.entry(param_i64(&call.params["chat_id"]).unwrap_or_default()).or_default() += 1;
            accepted.push(call.at_ms);
        }
    }
    let twice: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "users with two copies: {twice:?}");
    let uncertain: Vec<i64> = interrupted.iter().map(|d| d.user_id).collect();
    for user in (1..=USERS).filter(|u| !uncertain.contains(u)) {
        assert_eq!(copies.get(&user), Some(&1), "user {user}");
    }
    accepted.sort_unstable();
    let most = (0..accepted.len())
        .map(|i| accepted[i..].iter().take_while(|t| **t - accepted[i] < 1000).count())
        .max()
        .unwrap_or(0);
    assert!(most <= 30, "{most} messages accepted in one second");
    eprintln!(
        "broadcast moved from {owner} to {survivor} after {} sent: {} interrupted, at most {most} accepted in a second",
        USERS / 3,
        uncertain.len()
    );
    for process in [a, b].into_iter().flatten() {
        process.stop().await;
    }
    storage.close().await;
}
