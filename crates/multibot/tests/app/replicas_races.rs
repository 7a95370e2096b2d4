//! A bot that a replica stops while it is still starting it (a handover, or a fence, overtaking the start), as real
//! processes against the emulator: the start must not install the bot once its lease is gone (the stop found no
//! running bot to stop), so that when the replica takes the lease back it starts afresh and resumes the inbox's
//! pending updates.

use std::time::Duration;

use botapi_emulator::FaultSpec;

use crate::{
    db::TestDb,
    helpers::eventually,
    replicas::{Fleet, by_replica, free_port, live_leases, spread},
    replicas_load::running_without_lease,
};

#[tokio::test]
async fn a_bot_handed_over_while_it_starts_stops_and_later_resumes_its_pending_updates() {
    let Some(db) = TestDb::postgres().await else { return };
    let fleet = Fleet::new(&db, 2).await;
    let (emu, bots) = (&fleet.emu, &fleet.bots);
    let storage = db.storage().await;
    let holds = |pairs: &'static [(&'static str, usize)]| {
        let storage = &storage;
        move || async move { by_replica(&live_leases(storage).await) == spread(pairs) }
    };
    // a's starts are slow (each bot's first getMe takes 5 s): b comes, and a hands a bot over, while a still
    // starts both.
    for bot in bots {
        bot.inject(FaultSpec::delay("getMe", Duration::from_secs(5)).times(1)).await.unwrap();
    }
    let a_port = free_port();
    let a = fleet.start_on("a", a_port);
    eventually(Duration::from_secs(10), "a to hold both bots", holds(&[("a", 2)])).await;
    let b = fleet.start("b");
    eventually(Duration::from_secs(10), "a bot on each replica", holds(&[("a", 1), ("b", 1)])).await;
    let on_b = live_leases(&storage).await.into_iter().find(|o| o.replica == "b").unwrap().bot_id;
    let moved = &bots[fleet.ids.iter().position(|id| *id == on_b).unwrap()];
    // Once a's slow starts are over, a runs only the bot whose lease it holds.
    eventually(Duration::from_secs(15), "a's slow getMe calls to end", || async {
        emu.control().calls(None, Some("getMe")).await.unwrap().len() >= 3
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut without_lease = running_without_lease(a_port).await;
    while !without_lease.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        without_lease = running_without_lease(a_port).await;
    }

    // b stores three messages of one chat and confirms them to Telegram; the first answer is slow, so b dies with
    // the three pending in the inbox. a takes the bot back and resumes them.
    moved.inject(FaultSpec::delay("sendMessage", Duration::from_secs(4)).times(1)).await.unwrap();
    let user = emu.user(8700);
    for text in ["one", "two", "three"] {
        user.send(moved, text).await.unwrap();
    }
    eventually(Duration::from_secs(10), "b to confirm the three messages", || async {
        moved.stats().await.unwrap().updates_confirmed >= 3
    })
    .await;
    b.kill9();
    eventually(Duration::from_secs(10), "a to hold both bots again", holds(&[("a", 2)])).await;
    let answered = || async {
        let transcript = user.transcript(moved).await.unwrap();
        transcript.into_iter().filter(|m| m.from_bot).filter_map(|m| m.message.text).collect::<Vec<_>>()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while answered().await.len() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let answered = answered().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let inbox: Vec<(i64, String)> = sqlx::query_as("SELECT update_id, state FROM inbox WHERE bot_id = $1 ORDER BY 1")
        .bind(&on_b)
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    let quoted = format!("\"{on_b}\"");
    let about: Vec<String> =
        a.lines().into_iter().filter(|l| l.contains(&quoted) && !l.contains("\"DEBUG\"")).collect();
    assert!(
        without_lease.is_empty() && answered.len() == 3,
        "a ran {without_lease:?} without their leases after handing {on_b} over while starting it; 15 s after a took \
         {on_b} back, answered {answered:?}, inbox rows {inbox:?}; a's log about {on_b}:\n{}",
        about.join("\n")
    );
    a.terminate();
    let (status, output) = a.wait(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", output.join("\n"));
}
