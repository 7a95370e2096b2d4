//! Replicas under load, as real processes against the emulator on one PostgreSQL database (`replicas` has the
//! helpers): three replicas spread 300 bots evenly and every bot answers; a replica killed (`kill -9`) in the middle
//! of a steady stream of messages loses none of them, its bots poll again from the others within 10 s, only its bots
//! answer anything twice, at most one message per chat, and each chat's answers stay in order. No poll is ever cut
//! short by another replica's (409), and no replica runs a bot whose lease it does not hold. Each run prints what
//! it measured and what the lease keepers logged: a replica whose renewal came later than half the ttl (a very busy
//! machine) fences itself, stopping every bot, and those bots change hands too; the stream test then allows, like the kill, one answer again per chat for each time a bot
//! changed hands, which it counts from the lease tokens.
//!
//! The fleets run one at a time (`Fleet` takes a lock): two side by side on a 2-core machine starve each other's
//! lease keepers.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use botapi_emulator::{Emulator, FaultSpec, TestBot, TestUser};
use multibot::storage::Storage;
use tokio::time::MissedTickBehavior;

use crate::{
    db::TestDb,
    helpers::eventually,
    process::Process,
    replicas::{Fleet, by_replica, free_port, live_leases, polls_cut_short, spread, unix_ms},
};

/// Stops each replica with SIGTERM; each exits cleanly.
async fn stop_all(replicas: Vec<Process>) {
    for replica in &replicas {
        replica.terminate();
    }
    for replica in replicas {
        let (status, output) = replica.wait(Duration::from_secs(30)).await;
        assert!(status.success(), "{status}: {}", output.join("\n"));
    }
}

/// What the lease keeper logs, and a short name for each.
const LEASE_EVENTS: [(&str, &str); 6] = [
    ("took the bot's lease", "took"),
    ("handing bots over to other replicas", "handed over"),
    ("lost the bots' leases", "lost"),
    ("leases not renewed in time", "fenced"),
    ("renewing the bots' leases took too long", "slow renewal"),
    ("could not renew the bots' leases", "failed renewal"),
];

/// How many times a replica's log says each thing about its leases.
fn lease_events(lines: &[String]) -> BTreeMap<&'static str, usize> {
    let mut count = BTreeMap::new();
    for line in lines {
        if let Some((_, name)) = LEASE_EVENTS.iter().find(|(message, _)| line.contains(message)) {
            *count.entry(*name).or_default() += 1;
        }
    }
    count
}

/// The lines of `logs` (by replica) where a bot changed hands other than by being taken, or a renewal failed; and
/// where `bot` was taken.
fn lease_trouble(logs: &BTreeMap<&str, Vec<String>>, bot: &str) -> String {
    let mut trouble = Vec::new();
    for (replica, lines) in logs {
        for line in lines {
            let about = LEASE_EVENTS.iter().skip(1).any(|(message, _)| line.contains(message))
                || (line.contains(LEASE_EVENTS[0].0) && line.contains(&format!("\"{bot}\"")));
            if about {
                trouble.push(format!("{replica}: {line}"));
            }
        }
    }
    trouble.join("\n")
}

/// Asserts that no poll was cut short (409) but a stopping replica's own, showing the calls around any other and
/// what the replicas' logs say of that bot's lease; returns how many there were.
async fn no_poll_cut_short_by_another(
    emu: &Emulator,
    bots: &[TestBot],
    ids: &[String],
    logs: &BTreeMap<&str, Vec<String>>,
) -> usize {
    let (own, by_another) = polls_cut_short(emu, bots).await;
    let shown: Vec<String> =
        by_another.iter().map(|(b, calls)| format!("{calls}\n{}", lease_trouble(logs, &ids[*b]))).collect();
    assert!(shown.is_empty(), "{}", shown.join("\n"));
    own
}

/// What happened to a bot, to explain a failure: who holds its lease, its inbox rows not done, its last
/// getUpdates calls, and what the replicas logged about it (and about their leases).
async fn bot_history(
    db: &TestDb,
    storage: &Storage,
    emu: &Emulator,
    bot: &TestBot,
    id: &str,
    logs: &BTreeMap<&str, Vec<String>>,
) -> String {
    let mut out = vec![format!("== {id} ({})", bot.username)];
    let lease = storage.leases().expect("PostgreSQL").owners().await.unwrap().into_iter().find(|o| o.bot_id == id);
    out.push(format!("lease now: {lease:?}"));
    let pool = sqlx::PgPool::connect(&db.url).await.expect("open PostgreSQL");
    let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT update_id, state, received_at::text, payload FROM inbox WHERE bot_id = $1 AND state <> 'done' \
         ORDER BY update_id",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    for (update_id, state, received_at, payload) in rows {
        let text = serde_json::from_str::<serde_json::Value>(&payload).unwrap_or_default()["message"]["text"].clone();
        out.push(format!("inbox: update {update_id} {state} since {received_at}: {text}"));
    }
    out.push(format!("emulator: {:?}", bot.stats().await.unwrap()));
    let polls = emu.control().calls(Some(bot), Some("getUpdates")).await.unwrap();
    for c in &polls[polls.len().saturating_sub(8)..] {
        let p = &c.params;
        out.push(format!(
            "poll seq {} at_ms {} status {} offset {} timeout {} limit {}",
            c.seq, c.at_ms, c.status, p["offset"], p["timeout"], p["limit"]
        ));
    }
    let quoted = format!("\"{id}\"");
    for (replica, lines) in logs {
        for line in lines {
            let about_bot = line.contains(&quoted) && !line.contains("\"DEBUG\"");
            if about_bot || LEASE_EVENTS.iter().skip(1).any(|(message, _)| line.contains(message)) {
                out.push(format!("{replica}: {line}"));
            }
        }
    }
    out.join("\n")
}

/// The bots the replica with its health server on `port` runs although it does not hold their leases.
pub(crate) async fn running_without_lease(port: u16) -> Vec<String> {
    let url = format!("http://127.0.0.1:{port}/health/full");
    let health: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    let leases = health["replica"]["leases"].as_object().cloned().unwrap_or_default();
    let running = health["bots"].as_array().unwrap().iter().filter(|b| b["state"] == "running");
    running.map(|b| b["id"].as_str().unwrap().to_owned()).filter(|id| !leases.contains_key(id)).collect()
}

/// Each bot's lease token (live or not), by bot id.
async fn tokens(storage: &Storage) -> HashMap<String, i64> {
    let owners = storage.leases().expect("PostgreSQL").owners().await.unwrap();
    owners.into_iter().map(|o| (o.bot_id, o.token)).collect()
}

/// How many live leases each replica holds, through one open storage.
async fn owners(storage: &Storage) -> BTreeMap<String, usize> {
    by_replica(&live_leases(storage).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_spread_300_bots_and_every_bot_answers() {
    let Some(db) = TestDb::postgres().await else { return };
    let fleet = Fleet::new(&db, 300).await;
    let began = Instant::now();
    let (emu, bots) = (&fleet.emu, &fleet.bots);
    let storage = db.storage().await;
    let ports = [free_port(), free_port(), free_port()];
    let replicas: Vec<Process> =
        ["a", "b", "c"].into_iter().zip(ports).map(|(r, port)| fleet.start_on(r, port)).collect();
    let started = Instant::now();
    eventually(Duration::from_secs(60), "100 ± 1 of the 300 bots on each of a, b and c", || async {
        let count = owners(&storage).await;
        count.len() == 3 && count.values().sum::<usize>() == 300 && count.values().all(|n| (99..=101).contains(n))
    })
    .await;
    let spread_in = started.elapsed();
    println!("300 bots spread over three replicas in {spread_in:?}: {:?}", owners(&storage).await);

    // Every bot answers: all the messages first, then the replies.
    let user = emu.user(8500);
    let sent = Instant::now();
    for (i, bot) in bots.iter().enumerate() {
        user.send(bot, &format!("hello {i}")).await.unwrap();
    }
    for (i, bot) in bots.iter().enumerate() {
        let reply = user.next_message_in(bot, user.id, Duration::from_secs(30)).await.unwrap().text;
        assert_eq!(reply, Some(format!("You said: hello {i}")), "{}", bot.username);
    }
    println!("all 300 bots answered {:?} after the first message was sent", sent.elapsed());

    let logs: BTreeMap<&str, Vec<String>> =
        ["a", "b", "c"].into_iter().zip(replicas.iter().map(Process::lines)).collect();
    let own = no_poll_cut_short_by_another(emu, bots, &fleet.ids, &logs).await;
    println!("getUpdates cut short (409): {own}, every one a replica's own handover");
    // A bot that a replica hands over (or fences) while it is still starting it must not go on running there.
    for ((replica, lines), port) in logs.iter().zip(ports) {
        println!("{replica}'s lease keeper: {:?}", lease_events(lines));
        eventually(Duration::from_secs(10), "no bot running without its lease", || async {
            running_without_lease(port).await.is_empty()
        })
        .await;
    }
    storage.close().await;
    stop_all(replicas).await;
    println!("three replicas, 300 bots: {:?} in all", began.elapsed());
}

/// Bots in the stream test, users who write to them, how often each bot gets a message, for how long, and how long
/// each answer takes to send (so that the kill finds answers on their way, without more load). (Every 50 ms is
/// more than a 2-core machine sends alongside three debug replicas: the stream then runs flat out, about every
/// 80-130 ms, and starves the lease keepers.)
const STREAM_BOTS: u32 = 30;
const USERS: usize = 3;
const TICK: Duration = Duration::from_millis(100);
const TICKS: u32 = 60;
const SEND_TAKES: Duration = Duration::from_millis(50);

/// A message the stream sent: to which bot (index), in which chat (the user's id), with which text.
type Sent = (usize, i64, String);

/// Every `TICK`, each bot gets one numbered message (`#<tick>`) from one of `users`, in turn; at half time, once
/// that tick's messages are sent (so that their answers are on their way), says so on `halfway`. Returns what it
/// sent.
async fn stream(bots: Vec<TestBot>, users: Vec<TestUser>, halfway: tokio::sync::oneshot::Sender<()>) -> Vec<Sent> {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut halfway = Some(halfway);
    let mut sent = Vec::new();
    for tick in 0..TICKS as usize {
        ticker.tick().await;
        let sends = bots.iter().enumerate().map(|(b, bot)| {
            let (user, text) = (&users[(tick + b) % users.len()], format!("#{tick}"));
            async move { user.send(bot, &text).await.map(|_| (b, user.id, text)) }
        });
        sent.extend(futures_util::future::join_all(sends).await.into_iter().map(Result::unwrap));
        if tick == TICKS as usize / 2 {
            let _ = halfway.take().unwrap().send(());
        }
    }
    sent
}

/// The answers: the sendMessage calls the emulator accepted, as (bot id, chat, text), in the order they ended.
async fn answers(emu: &Emulator) -> Vec<(i64, i64, String)> {
    let mut answers = Vec::new();
    for call in emu.control().calls(None, Some("sendMessage")).await.unwrap() {
        if call.status != 200 {
            continue;
        }
        let (Some(bot), Some(chat), Some(text)) =
            (call.bot_id, call.params["chat_id"].as_i64(), call.params["text"].as_str())
        else {
            continue;
        };
        answers.push((bot, chat, text.to_owned()));
    }
    answers
}

/// How many times each (bot id, chat, text) was answered.
fn counted(answers: &[(i64, i64, String)]) -> HashMap<(i64, i64, String), usize> {
    let mut counts = HashMap::new();
    for answer in answers {
        *counts.entry(answer.clone()).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_a_steady_stream_loses_nothing() {
    let Some(db) = TestDb::postgres().await else { return };
    let fleet = Fleet::new(&db, STREAM_BOTS).await;
    let began = Instant::now();
    let (emu, bots) = (&fleet.emu, &fleet.bots);
    for bot in bots {
        bot.inject(FaultSpec::delay("sendMessage", SEND_TAKES).times(TICKS * 10)).await.unwrap();
    }
    let storage = db.storage().await;
    let ports = [free_port(), free_port(), free_port()];
    let mut replicas: Vec<Process> =
        ["a", "b", "c"].into_iter().zip(ports).map(|(r, port)| fleet.start_on(r, port)).collect();
    eventually(Duration::from_secs(30), "ten bots on each of a, b and c", || async {
        owners(&storage).await == spread(&[("a", 10), ("b", 10), ("c", 10)])
    })
    .await;
    // The bots b runs: the ones that move when it dies.
    let on_b: Vec<usize> = {
        let leases = live_leases(&storage).await;
        let b: Vec<&str> = leases.iter().filter(|o| o.replica == "b").map(|o| o.bot_id.as_str()).collect();
        (0..bots.len()).filter(|&i| b.contains(&fleet.ids[i].as_str())).collect()
    };
    assert_eq!(on_b.len(), 10);
    let tokens_before = tokens(&storage).await;

    // The stream; kill -9 hits b at half time.
    let users: Vec<TestUser> = (0..USERS).map(|u| emu.user(8600 + u as i64)).collect();
    let (halfway, at_halfway) = tokio::sync::oneshot::channel();
    let streaming = Instant::now();
    let stream = tokio::spawn(stream(bots.clone(), users, halfway));
    at_halfway.await.unwrap();
    let b_log = replicas.remove(1).kill9();
    let (killed, killed_ms) = (Instant::now(), unix_ms());
    eventually(Duration::from_secs(10), "a or c to hold each of b's bots", || async {
        let leases = live_leases(&storage).await;
        on_b.iter().all(|&b| leases.iter().any(|o| o.bot_id == fleet.ids[b] && o.replica != "b"))
    })
    .await;
    let moved = killed.elapsed();
    let sent = stream.await.unwrap();
    let stream_took = streaming.elapsed();

    // Every message answered, at least once.
    let expected = |&(b, chat, ref text): &Sent| (bots[b].id, chat, format!("You said: {text}"));
    let missing = |answers: &HashMap<(i64, i64, String), usize>| -> Vec<Sent> {
        sent.iter().filter(|s| !answers.contains_key(&expected(s))).cloned().collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (answers, times) = loop {
        let answers = answers(emu).await;
        let times = counted(&answers);
        let lost = missing(&times);
        if lost.is_empty() {
            break (answers, times);
        }
        if Instant::now() > deadline {
            let logs = BTreeMap::from([("a", replicas[0].lines()), ("b", b_log.clone()), ("c", replicas[1].lines())]);
            let mut lost_bots: Vec<usize> = lost.iter().map(|s| s.0).collect();
            lost_bots.sort_unstable();
            lost_bots.dedup();
            let mut why = Vec::new();
            for &b in lost_bots.iter().take(2) {
                why.push(bot_history(&db, &storage, emu, &bots[b], &fleet.ids[b], &logs).await);
            }
            panic!(
                "{} of {} messages never answered, e.g. {:?}\n{}",
                lost.len(),
                sent.len(),
                &lost[..lost.len().min(10)],
                why.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let drained = streaming.elapsed();
    let logs = BTreeMap::from([("a", replicas[0].lines()), ("b", b_log), ("c", replicas[1].lines())]);
    for (replica, lines) in &logs {
        println!("{replica}'s lease keeper: {:?}", lease_events(lines));
    }
    for port in [ports[0], ports[2]] {
        eventually(Duration::from_secs(10), "no bot running without its lease", || async {
            running_without_lease(port).await.is_empty()
        })
        .await;
    }

    // How many times each bot changed hands during the stream (its lease's token grows by one each time): b's bots
    // once, by the kill; any other change is a replica that fenced itself (its renewal came too late).
    let tokens_after = tokens(&storage).await;
    let handovers: Vec<i64> = fleet.ids.iter().map(|id| tokens_after[id] - tokens_before[id]).collect();
    let fenced: Vec<(&str, i64)> = (0..bots.len())
        .map(|b| (fleet.ids[b].as_str(), handovers[b] - i64::from(on_b.contains(&b))))
        .filter(|(_, n)| *n > 0)
        .collect();
    // Answered again only where the bot changed hands, at most one message per chat each time (an update whose
    // handler was running, or whose done mark the kill beat): with no fence, only on b's bots, at most one per chat.
    let mut again: BTreeMap<(usize, i64), Vec<String>> = BTreeMap::new();
    for s in &sent {
        for _ in 1..times[&expected(s)] {
            again.entry((s.0, s.1)).or_default().push(s.2.clone());
        }
    }
    for ((b, chat), texts) in &again {
        assert!(
            texts.len() as i64 <= handovers[*b],
            "{} (b's: {}), which changed hands {} times, answered again in chat {chat}: {texts:?}\n{}",
            bots[*b].username,
            on_b.contains(b),
            handovers[*b],
            lease_trouble(&logs, &fleet.ids[*b])
        );
    }
    let duplicates: usize = again.values().map(Vec::len).sum();
    // In order within each chat: a message answered again comes right after its first answer (it is the one the
    // replica taking over resumed first), before the next message's.
    let mut chats: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
    for (bot, chat, text) in &answers {
        let number = text.strip_prefix("You said: #").and_then(|n| n.parse().ok()).expect("a numbered answer");
        chats.entry((*bot, *chat)).or_default().push(number);
    }
    for ((bot, chat), numbers) in &chats {
        assert!(numbers.is_sorted(), "bot {bot}, chat {chat}: answered out of order: {numbers:?}");
    }

    // b's bots polled again, from a or c, within 10 s of the kill.
    let polls = emu.control().calls(None, Some("getUpdates")).await.unwrap();
    let mut gaps = Vec::new();
    for &b in &on_b {
        let first =
            polls.iter().filter(|c| c.bot_id == Some(bots[b].id) && c.at_ms >= killed_ms).map(|c| c.at_ms).min();
        let gap = Duration::from_millis(
            first.unwrap_or_else(|| panic!("{} never polled again", bots[b].username)) - killed_ms,
        );
        assert!(gap < Duration::from_secs(10), "{} polled again {gap:?} after the kill", bots[b].username);
        gaps.push(gap);
    }
    let (fastest, slowest) = (gaps.iter().min().unwrap(), gaps.iter().max().unwrap());

    // And no two replicas ever polled one bot.
    let own = no_poll_cut_short_by_another(emu, bots, &fleet.ids, &logs).await;
    println!(
        "stream: {} messages to {STREAM_BOTS} bots from {USERS} users in {stream_took:?}, one every {:?} per bot \
         (aiming at {TICK:?}), each answer taking {SEND_TAKES:?} to send",
        sent.len(),
        stream_took / TICKS,
    );
    println!(
        "kill -9 of b at half time: a and c held its 10 bots {moved:?} after the kill; they polled again \
         {fastest:?} to {slowest:?} after it; other handovers (a replica fenced itself): {fenced:?}"
    );
    println!(
        "answered: {} answers, all {} messages by {drained:?} after the stream began, 0 lost, {duplicates} \
         answered again (in {} chats, {} of them b's); 409s: {own}, all a replica's own",
        answers.len(),
        sent.len(),
        again.len(),
        again.keys().filter(|(b, _)| on_b.contains(b)).count(),
    );
    storage.close().await;
    stop_all(replicas).await;
    println!("kill under a stream: {:?} in all", began.elapsed());
}
