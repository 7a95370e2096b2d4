//! Replicas sharing one fleet through PostgreSQL (`REPLICA_ID`), as real processes against the emulator: each
//! bot runs on one replica, the bots spread evenly, a killed replica's bots move to the other once its leases
//! expire, and a stopping replica hands its bots over at once. No two replicas ever poll one bot (the emulator
//! would answer 409 to one of them). `replicas_load` runs more bots and replicas under a stream of messages with
//! the helpers here.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use botapi_emulator::{Emulator, EmulatorConfig, TestBot, TestUser, types::CallRecord};
use multibot::storage::{Owner, Storage};

use crate::{
    db::{Proxy, TestDb},
    helpers::{TempDir, eventually, param_i64, token},
    process::Process,
};

const BOTS: u32 = 6;

/// The live leases in the `bot_leases` table: who runs each bot now.
pub(crate) async fn live_leases(storage: &Storage) -> Vec<Owner> {
    storage.leases().expect("PostgreSQL").owners().await.unwrap().into_iter().filter(|o| o.live).collect()
}

/// How many of `leases` each replica holds.
pub(crate) fn by_replica(leases: &[Owner]) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for owner in leases {
        *count.entry(owner.replica.clone()).or_default() += 1;
    }
    count
}

/// How many live leases each replica holds.
async fn owners(db: &TestDb) -> BTreeMap<String, usize> {
    let storage = db.storage().await;
    let count = by_replica(&live_leases(&storage).await);
    storage.close().await;
    count
}

pub(crate) fn spread(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(replica, n)| ((*replica).to_owned(), *n)).collect()
}

/// Every bot answers a message of the same user; after a kill, the answer to `may_repeat` (the update whose
/// done mark the kill may have beaten) may come once more first, from the replica that resumed it.
async fn all_answer(user: &TestUser, bots: &[TestBot], text: &str, may_repeat: Option<&str>) {
    for bot in bots {
        user.send(bot, text).await.unwrap();
        let mut reply = user.next_message_in(bot, user.id, Duration::from_secs(15)).await.unwrap().text;
        if let Some(repeated) = may_repeat
            && reply == Some(format!("You said: {repeated}"))
        {
            reply = user.next_message_in(bot, user.id, Duration::from_secs(15)).await.unwrap().text;
        }
        assert_eq!(reply.as_deref(), Some(format!("You said: {text}").as_str()), "{}", bot.username);
    }
}

/// One fleet at a time: with a lease of 2 s a replica has 0.5 s to renew (a quarter of it), and on a 2-core machine
/// two fleets of debug builds side by side starve each other's lease keepers, which then fence their bots.
static ONE_FLEET_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `n` echo bots in one configuration directory, and the replicas' environment: one PostgreSQL database, a
/// lease of 2 s, a shutdown grace of 1 s. Bot `i` (from 1) is `replicated_<i>`, with `token(60 + i)`. While it
/// lives, no other test's fleet runs.
pub(crate) struct Fleet {
    pub(crate) emu: Emulator,
    dir: TempDir,
    /// The bots in the emulator, in order.
    pub(crate) bots: Vec<TestBot>,
    /// Their ids in the YAML files (and in `bot_leases`), in the same order.
    pub(crate) ids: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Fleet {
    pub(crate) async fn new(db: &TestDb, n: u32) -> Fleet {
        let turn = ONE_FLEET_AT_A_TIME.lock().await;
        // Migrated before any replica starts, so that the test's own reads never race the replicas' migrations.
        db.storage().await.close().await;
        let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
        let dir = TempDir::new();
        std::fs::create_dir_all(dir.path().join("bots")).unwrap();
        let (mut bots, mut ids) = (Vec::new(), Vec::new());
        let mut env: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), db.url.clone()),
            ("LEASE_TTL_SECONDS".into(), "2".into()),
            ("SHUTDOWN_TIMEOUT".into(), "1".into()),
        ];
        for i in 1..=n {
            let name = format!("replicated_{i}");
            bots.push(emu.control().bot_named(&token(60 + i), &name, &format!("{name}_bot")).await.unwrap());
            let yaml = format!(
                "id: {name}\nname: {name}\ntoken: \"${{TOKEN_{i}}}\"\nplugins:\n  - name: echo\n    config: {{ echo_all: true }}\n"
            );
            dir.write(&format!("bots/{name}.yaml"), &yaml);
            env.push((format!("TOKEN_{i}"), token(60 + i)));
            ids.push(name);
        }
        Fleet { emu, dir, bots, ids, env, _turn: turn }
    }

    /// Starts `multibot run` as the replica `replica`, its health server on `port` (0: any).
    pub(crate) fn start_on(&self, replica: &str, port: u16) -> Process {
        self.start_with(&[("REPLICA_ID", replica), ("HEALTH_CHECK_PORT", &port.to_string())])
    }

    /// Starts `multibot run` with the fleet's environment and `extra` (which wins), without `REPLICA_ID` unless
    /// `extra` has it.
    pub(crate) fn start_with(&self, extra: &[(&str, &str)]) -> Process {
        let mut vars: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        vars.extend(extra);
        Process::start_with(&self.emu, &self.dir, &vars)
    }

    pub(crate) fn start(&self, replica: &str) -> Process {
        self.start_on(replica, 0)
    }
}

/// A loopback port free now, for a replica's health server.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// What `/health/full` on `port` says of its replica.
async fn replica_health(port: u16) -> serde_json::Value {
    let url = format!("http://127.0.0.1:{port}/health/full");
    reqwest::get(url).await.unwrap().json::<serde_json::Value>().await.unwrap()["replica"].clone()
}

pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The getUpdates calls of `bots` answered 409, which a newer getUpdates cut short: how many were a stopping
/// replica's own, and, for every other one, the bot's index in `bots` and the calls around it. The only 409s
/// allowed are a stopping replica's own: its long poll, abandoned when it stopped the bot, ended by its last
/// getUpdates (`timeout` 0, which confirms what it handled). The log is in the order the calls ended, so that one
/// comes right before.
pub(crate) async fn polls_cut_short(emu: &Emulator, bots: &[TestBot]) -> (usize, Vec<(usize, String)>) {
    let all = emu.control().calls(None, Some("getUpdates")).await.unwrap();
    let (mut own, mut by_another) = (0, Vec::new());
    for (b, bot) in bots.iter().enumerate() {
        let calls: Vec<&CallRecord> = all.iter().filter(|c| c.bot_id == Some(bot.id)).collect();
        for (i, _) in calls.iter().enumerate().filter(|(_, c)| c.status == 409) {
            let ended_by = i.checked_sub(1).map(|i| &calls[i].params);
            if ended_by.is_some_and(|p| param_i64(&p["timeout"]) == Some(0) && param_i64(&p["limit"]) == Some(1)) {
                own += 1;
                continue;
            }
            let around: Vec<String> = calls[i.saturating_sub(4)..(i + 3).min(calls.len())]
                .iter()
                .map(|c| {
                    let p = &c.params;
                    let (offset, limit, timeout) = (&p["offset"], &p["limit"], &p["timeout"]);
                    let this = if std::ptr::eq(*c, calls[i]) { "  <- cut short" } else { "" };
                    format!(
                        "  seq {} at_ms {} status {} offset {offset} limit {limit} timeout {timeout}{this}",
                        c.seq, c.at_ms, c.status
                    )
                })
                .collect();
            by_another
                .push((b, format!("{}: a poll cut short by another replica's:\n{}", bot.username, around.join("\n"))));
        }
    }
    (own, by_another)
}

/// Never two replicas polling one bot: no 409 but a stopping replica's own ([`polls_cut_short`]).
async fn polls_never_cut_short_by_another(emu: &Emulator, bots: &[TestBot]) {
    let (_, by_another) = polls_cut_short(emu, bots).await;
    assert!(by_another.is_empty(), "{}", by_another.into_iter().map(|(_, s)| s).collect::<Vec<_>>().join("\n"));
}

#[tokio::test]
async fn two_replicas_split_the_fleet_and_take_over_each_others_bots() {
    let Some(db) = TestDb::postgres().await else { return };
    let fleet = Fleet::new(&db, BOTS).await;
    let (emu, bots, start) = (&fleet.emu, &fleet.bots, |replica: &str| fleet.start(replica));
    let user = emu.user(8300);
    let a = start("a");
    let b_port = free_port();
    let b = fleet.start_on("b", b_port);
    eventually(Duration::from_secs(30), "three bots on each replica", || async {
        owners(&db).await == spread(&[("a", 3), ("b", 3)])
    })
    .await;
    all_answer(&user, bots, "split", None).await;
    // Each replica's health says who it is, who is alive and which bots it holds.
    eventually(Duration::from_secs(10), "b's health to show its share", || async {
        let b = replica_health(b_port).await;
        b["id"] == "b" && b["alive"] == serde_json::json!(["a", "b"]) && b["leases"].as_object().unwrap().len() == 3
    })
    .await;
    assert_eq!(replica_health(b_port).await["fresh"], true);
    // Its metrics count the bots it holds, once over both replicas.
    let metrics = reqwest::get(format!("http://127.0.0.1:{b_port}/metrics")).await.unwrap().text().await.unwrap();
    for line in [
        "multibot_replica_leases 3",
        "multibot_replicas_alive 2",
        "multibot_replica_leases_fresh 1",
        "multibot_bots{state=\"running\"} 3",
        "multibot_bots{state=\"stopped\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line:?} missing from b's metrics:\n{metrics}");
    }

    // kill -9: the other replica takes the bots once their leases expire (2 s), well within 10 s.
    let killed = Instant::now();
    a.kill9();
    eventually(Duration::from_secs(10), "every bot on b", || async { owners(&db).await == spread(&[("b", 6)]) }).await;
    eventually(Duration::from_secs(10), "b's health to show every bot and a gone", || async {
        let b = replica_health(b_port).await;
        b["alive"] == serde_json::json!(["b"]) && b["leases"].as_object().unwrap().len() == 6
    })
    .await;
    all_answer(&user, bots, "after the kill", Some("split")).await;
    println!("failover after kill -9: every bot answered {:?} after the kill", killed.elapsed());

    // A new replica takes its share; then SIGTERM hands the stopping replica's bots over at once.
    let a = start("a");
    eventually(Duration::from_secs(30), "three bots on each again", || async {
        owners(&db).await == spread(&[("a", 3), ("b", 3)])
    })
    .await;
    let stopped = Instant::now();
    b.terminate();
    eventually(Duration::from_secs(10), "every bot on a", || async { owners(&db).await == spread(&[("a", 6)]) }).await;
    let handover = stopped.elapsed();
    let (status, output) = b.wait(Duration::from_secs(30)).await;
    assert!(status.success(), "{output:?}");
    assert!(handover < Duration::from_secs(2), "handover took {handover:?}");
    all_answer(&user, bots, "after the handover", None).await;
    polls_never_cut_short_by_another(emu, bots).await;
    a.stop().await;
}

#[tokio::test]
async fn a_paused_replica_does_not_handle_the_bots_it_lost() {
    let Some(db) = TestDb::postgres().await else { return };
    let fleet = Fleet::new(&db, 2).await;
    let (emu, bots) = (&fleet.emu, &fleet.bots);
    let user = emu.user(8400);
    let a = fleet.start("a");
    let b = fleet.start("b");
    eventually(Duration::from_secs(30), "a bot on each replica", || async {
        owners(&db).await == spread(&[("a", 1), ("b", 1)])
    })
    .await;
    // Bad input: the process is paused (a long GC, a frozen VM) past its lease.
    a.signal("-STOP");
    eventually(Duration::from_secs(10), "both bots on b", || async { owners(&db).await == spread(&[("b", 2)]) }).await;
    all_answer(&user, bots, "while a sleeps", None).await;
    a.signal("-CONT");
    let woke = unix_ms();
    eventually(Duration::from_secs(10), "a to see its lease gone", || async {
        a.lines().iter().any(|l| l.contains("lost the bots' leases") || l.contains("leases not renewed in time"))
    })
    .await;
    all_answer(&user, bots, "after a woke", None).await;
    for bot in bots {
        let calls = emu.control().calls(Some(bot), None).await.unwrap();
        // Each message answered once: by b, not again by a.
        for text in ["You said: while a sleeps", "You said: after a woke"] {
            let sent = calls.iter().filter(|c| c.method == "sendMessage" && c.params["text"] == text).count();
            assert_eq!(sent, 1, "{}: {text:?} sent {sent} times", bot.username);
        }
        // The poll a had waiting when it was paused was cut short by b's; no poll made after it woke was.
        let late = calls.iter().filter(|c| c.method == "getUpdates" && c.status == 409 && c.at_ms >= woke).count();
        assert_eq!(late, 0, "{}: a poll made after a woke was cut short", bot.username);
    }
    for replica in [a, b] {
        replica.stop().await;
    }
}

/// Which replica holds each bot's live lease, and whether an admin stopped it.
pub(crate) async fn leases(db: &TestDb) -> BTreeMap<String, (String, bool)> {
    let storage = db.storage().await;
    let owners = storage.leases().expect("PostgreSQL").owners().await.unwrap();
    storage.close().await;
    owners.into_iter().filter(|o| o.live).map(|o| (o.bot_id, (o.replica, o.stopped))).collect()
}

/// The admin sends `command`, presses Confirm, and reads the edited answer.
async fn confirmed(admin: &TestUser, bot: &TestBot, command: &str) -> String {
    admin.send(bot, command).await.unwrap();
    let question = admin.next_message_in(bot, admin.id, Duration::from_secs(15)).await.unwrap();
    let after = bot.events(0, None, None, Duration::ZERO).await.unwrap().last().map_or(0, |e| e.seq);
    let ok = question.callback_data().into_iter().find(|d| d.starts_with("adm:ok:")).expect("a Confirm button");
    admin.click(bot, &question, &ok).await.unwrap();
    let edit = bot.next_event(after, Some(admin.id), Some("edit"), Duration::from_secs(15)).await.unwrap();
    edit.message.unwrap().text.unwrap()
}

async fn ask(admin: &TestUser, bot: &TestBot, command: &str) -> String {
    admin.send(bot, command).await.unwrap();
    admin.next_message_in(bot, admin.id, Duration::from_secs(15)).await.unwrap().text.unwrap()
}

/// What `/health/full` on `port` says of `bot`.
async fn bot_health(port: u16, bot: &str) -> serde_json::Value {
    let url = format!("http://127.0.0.1:{port}/health/full");
    let full = reqwest::get(url).await.unwrap().json::<serde_json::Value>().await.unwrap();
    full["bots"].as_array().unwrap().iter().find(|b| b["id"] == bot).cloned().unwrap_or_default()
}

#[tokio::test]
async fn the_admin_bot_controls_bots_on_every_replica() {
    let Some(db) = TestDb::postgres().await else { return };
    let mut fleet = Fleet::new(&db, 2).await;
    let admin_bot = fleet.emu.control().bot_named(&token(59), "Admin", "fleet_admin_bot").await.unwrap();
    fleet.env.extend([("ADMIN_BOT_TOKEN".into(), token(59)), ("ADMIN_ALLOWED_USERS".into(), "8500".into())]);
    // The test edits a file and asks for the reload itself: the file watcher would otherwise race it to the change
    // (the reload then finds "Nothing changed", as it did once in CI).
    fleet.env.push(("ENABLE_HOT_RELOAD".into(), "false".into()));
    let admin = fleet.emu.user(8500);
    let ports: BTreeMap<&str, u16> = ["a", "b"]
        .into_iter()
        .map(|r| (r, std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()))
        .collect();
    let mut replicas: BTreeMap<&str, Process> = ports.iter().map(|(r, port)| (*r, fleet.start_on(r, *port))).collect();
    // Three bots (the admin bot is one) over two replicas: two on a, one on b.
    eventually(Duration::from_secs(30), "two bots on a, one on b", || async {
        owners(&db).await == spread(&[("a", 2), ("b", 1)])
    })
    .await;
    let held = leases(&db).await;
    let here = held["admin"].0.clone();
    let (far, there) =
        held.iter().find(|(_, (replica, _))| *replica != here).map(|(b, (r, _))| (b.clone(), r.clone())).unwrap();
    let far_bot = fleet.bots.iter().find(|b| b.username == format!("{far}_bot")).unwrap().clone();

    // `/status` names the replica of every bot and the replicas alive.
    let status = ask(&admin, &admin_bot, "/status").await;
    assert!(
        status.contains(&format!("✅ {far} ({far}) - ")) && status.contains(&format!(" - on {there}\n")),
        "{status}"
    );
    assert!(status.contains(&format!("Replicas alive: a, b (this one: {here})")), "{status}");

    // A reload asked of the admin bot's replica reaches the replica that runs the bot: it reloads there.
    let file = format!("bots/{far}.yaml");
    let yaml = std::fs::read_to_string(fleet.dir.path().join(&file)).unwrap();
    fleet.dir.write(&file, &yaml.replace(&format!("name: {far}\n"), "name: Renamed\n"));
    let report = ask(&admin, &admin_bot, &format!("/reload {far}")).await;
    assert_eq!(report, format!("🔄 Reload done\n✅ {far}: reloaded"));
    assert_eq!(bot_health(ports[there.as_str()], &far).await["name"], "Renamed");

    // `/stop_bot` stops it on its replica, which stops polling it: a user's message waits in Telegram.
    let answer = confirmed(&admin, &admin_bot, &format!("/stop_bot {far}")).await;
    assert_eq!(answer, format!("✅ Bot {far} stopped successfully on replica {there}"));
    assert_eq!(bot_health(ports[there.as_str()], &far).await["state"], "stopped");
    let user = fleet.emu.user(8501);
    user.send(&far_bot, "are you there?").await.unwrap();
    let delivered = far_bot.stats().await.unwrap().updates_delivered;
    let detail = ask(&admin, &admin_bot, &format!("/status {far}")).await;
    for part in ["State: Stopped", "Reason: stopped by an admin", &format!("Replica: {there}")] {
        assert!(detail.contains(part), "{part:?} missing from {detail}");
    }

    // Its replica stops: the other takes the bot over and keeps it stopped.
    let leaving = replicas.remove(there.as_str()).unwrap();
    leaving.terminate();
    assert!(leaving.wait(Duration::from_secs(30)).await.0.success());
    eventually(Duration::from_secs(10), "the stopped bot held by the other replica", || async {
        leases(&db).await.get(&far) == Some(&(here.clone(), true))
    })
    .await;
    let detail = ask(&admin, &admin_bot, &format!("/status {far}")).await;
    assert!(detail.contains("State: Stopped") && detail.contains(&format!("Replica: {here}")), "{detail}");
    assert_eq!(bot_health(ports[here.as_str()], &far).await["state"], "stopped");
    let stats = far_bot.stats().await.unwrap();
    assert_eq!((stats.pending, stats.updates_delivered), (1, delivered), "the stopped bot polled");

    // `/start_bot` starts it where it now runs, and the waiting message is answered.
    let asked_to_start = unix_ms();
    let answer = confirmed(&admin, &admin_bot, &format!("/start_bot {far}")).await;
    assert_eq!(answer, format!("✅ Bot {far} started successfully"));
    let reply = user.next_message_in(&far_bot, user.id, Duration::from_secs(15)).await.unwrap().text;
    assert_eq!(reply.as_deref(), Some("You said: are you there?"));
    // Answered once, and only after /start_bot: the replica that took the bot over kept it stopped.
    let sent = far_bot.calls(Some("sendMessage")).await.unwrap();
    let answers: Vec<u64> =
        sent.iter().filter(|c| c.params["text"] == "You said: are you there?").map(|c| c.at_ms).collect();
    assert!(answers.len() == 1 && answers[0] >= asked_to_start, "answered at {answers:?}, started at {asked_to_start}");
    assert_eq!(leases(&db).await[&far], (here.clone(), false));
    for (_, replica) in replicas {
        replica.stop().await;
    }
}

#[tokio::test]
async fn webhook_deliveries_to_a_replica_that_does_not_run_the_bot_reach_the_one_that_does() {
    let Some(db) = TestDb::postgres().await else { return };
    let mut fleet = Fleet::new(&db, 0).await;
    let mut bots = Vec::new();
    for i in 1..=2 {
        let name = format!("hooked_{i}");
        bots.push(fleet.emu.control().bot_named(&token(70 + i), &name, &format!("{name}_bot")).await.unwrap());
        // One connection keeps each chat's order, as the test asserts it.
        let yaml = format!(
            "id: {name}\nname: {name}\ntoken: \"${{HOOK_{i}}}\"\nmode: webhook\nwebhook:\n  max_connections: 1\nplugins:\n  - name: echo\n    config: {{ echo_all: true }}\n"
        );
        fleet.dir.write(&format!("bots/{name}.yaml"), &yaml);
        fleet.env.push((format!("HOOK_{i}"), token(70 + i)));
    }
    fleet.env.push(("WEBHOOK_ENABLED".into(), "true".into()));
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ports: BTreeMap<&str, u16> = [("a", free()), ("b", free())].into();
    // Each replica gives Telegram the other's address: every delivery lands on the replica that does not run
    // the bot, as a load balancer could send it.
    let start = |me: &str, other: &str| {
        let base = format!("http://127.0.0.1:{}", ports[other]);
        let (port, mut env) = (ports[me].to_string(), fleet.env.clone());
        env.extend([("WEBHOOK_BASE_URL".into(), base), ("WEBHOOK_PORT".into(), port.clone())]);
        env.extend([("REPLICA_ID".into(), me.to_owned()), ("HEALTH_CHECK_PORT".into(), port)]);
        let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Process::start_with(&fleet.emu, &fleet.dir, &vars)
    };
    let replicas = [start("a", "b"), start("b", "a")];
    eventually(Duration::from_secs(30), "a bot on each replica", || async {
        owners(&db).await == spread(&[("a", 1), ("b", 1)])
    })
    .await;
    let held = leases(&db).await;
    for bot in &bots {
        let id = bot.username.trim_end_matches("_bot");
        let other = if held[id].0 == "a" { "b" } else { "a" };
        eventually(Duration::from_secs(10), "the webhook set by the bot's replica", || async {
            bot.webhook().await.unwrap()["url"] == format!("http://127.0.0.1:{}/webhook/{id}", ports[other])
        })
        .await;
    }
    // Two users write ten messages each to both bots; every one is answered once, in order.
    let users = [fleet.emu.user(8600), fleet.emu.user(8601)];
    for n in 0..10 {
        for (user, bot) in users.iter().flat_map(|u| bots.iter().map(move |b| (u, b))) {
            user.send(bot, &format!("m{n}")).await.unwrap();
        }
    }
    for (user, bot) in users.iter().flat_map(|u| bots.iter().map(move |b| (u, b))) {
        for n in 0..10 {
            let reply = user.next_message_in(bot, user.id, Duration::from_secs(15)).await.unwrap().text;
            assert_eq!(reply.as_deref(), Some(format!("You said: m{n}").as_str()), "{}", bot.username);
        }
    }
    for bot in &bots {
        let sent = bot.calls(Some("sendMessage")).await.unwrap().len();
        assert_eq!(sent, 20, "{}: each message answered once", bot.username);
        let hook = bot.webhook().await.unwrap();
        assert!(hook["last_error_message"].is_null(), "{}: a delivery failed: {hook}", bot.username);
    }
    for replica in replicas {
        replica.stop().await;
    }
}

#[tokio::test]
async fn a_replica_cut_off_from_the_database_stops_its_bots_before_another_takes_them() {
    let Some(db) = TestDb::postgres().await else { return };
    let fleet = Fleet::new(&db, 2).await;
    let (emu, bots) = (&fleet.emu, &fleet.bots);
    let user = emu.user(8700);
    // Bad input: the network between replica a and PostgreSQL fails, through a proxy the test owns.
    let proxy = Proxy::start().await;
    let through_proxy = db.url_via(proxy.port());
    let a = {
        let mut env = fleet.env.clone();
        env.retain(|(k, _)| k != "DATABASE_URL");
        env.extend([("DATABASE_URL".into(), through_proxy), ("REPLICA_ID".into(), "a".into())]);
        let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Process::start_with(emu, &fleet.dir, &vars)
    };
    let b = fleet.start("b");
    eventually(Duration::from_secs(30), "a bot on each replica", || async {
        owners(&db).await == spread(&[("a", 1), ("b", 1)])
    })
    .await;
    all_answer(&user, bots, "before the cut", None).await;
    let cut = unix_ms();
    proxy.down();
    eventually(Duration::from_secs(10), "both bots on b", || async { owners(&db).await == spread(&[("b", 2)]) }).await;
    assert!(a.lines().iter().any(|l| l.contains("leases not renewed in time")), "a did not fence");
    // As after a crash, the last update a handled may run again on b: a could not mark it done.
    all_answer(&user, bots, "while a is cut off", Some("before the cut")).await;
    // a stopped polling before b took its bot: no poll of either replica was cut short by the other's after the
    // cut (the one allowed: a's own last poll, ended by its confirming call when it stopped the bot).
    for bot in bots {
        let calls = emu.control().calls(Some(bot), Some("getUpdates")).await.unwrap();
        for (i, call) in calls.iter().enumerate().filter(|(_, c)| c.status == 409 && c.at_ms >= cut) {
            let own = i.checked_sub(1).is_some_and(|i| param_i64(&calls[i].params["timeout"]) == Some(0));
            assert!(own, "{}: a poll cut short by another replica's: {:?}", bot.username, call.params);
        }
    }
    // The network comes back: a takes its share again, and every bot answers once.
    proxy.up();
    eventually(Duration::from_secs(30), "a bot on each replica again", || async {
        owners(&db).await == spread(&[("a", 1), ("b", 1)])
    })
    .await;
    all_answer(&user, bots, "after the cut", None).await;
    for bot in bots {
        let sent = emu.control().calls(Some(bot), Some("sendMessage")).await.unwrap();
        let texts: Vec<&str> = sent.iter().filter_map(|c| c.params["text"].as_str()).collect();
        for (text, most) in [("before the cut", 2), ("while a is cut off", 1), ("after the cut", 1)] {
            let n = texts.iter().filter(|t| **t == format!("You said: {text}")).count();
            assert!((1..=most).contains(&n), "{}: {text:?} answered {n} times: {texts:?}", bot.username);
        }
    }
    for replica in [a, b] {
        replica.stop().await;
    }
}

#[tokio::test]
async fn sigterm_under_a_steady_stream_hands_over_within_2_s_and_answers_everything_once() {
    let Some(db) = TestDb::postgres().await else { return };
    let fleet = Fleet::new(&db, 4).await;
    let (emu, bots) = (&fleet.emu, &fleet.bots);
    let a = fleet.start("a");
    let b = fleet.start("b");
    eventually(Duration::from_secs(30), "two bots on each replica", || async {
        owners(&db).await == spread(&[("a", 2), ("b", 2)])
    })
    .await;
    // Every 100 ms each bot gets a numbered message; half way through, b is told to stop.
    let user = emu.user(8900);
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let (mut handover, mut b) = (None, Some(b));
    for n in 0..30 {
        ticker.tick().await;
        for bot in bots {
            user.send(bot, &format!("#{n}")).await.unwrap();
        }
        if n == 15 {
            b.as_ref().unwrap().terminate();
            handover = Some(Instant::now());
        }
        if let Some(at) = handover
            && owners(&db).await == spread(&[("a", 4)])
        {
            println!("every bot on a {:?} after SIGTERM", at.elapsed());
            assert!(at.elapsed() < Duration::from_secs(2), "handover took {:?}", at.elapsed());
            handover = None;
            let (status, output) = b.take().unwrap().wait(Duration::from_secs(30)).await;
            assert!(status.success(), "{output:?}");
        }
    }
    assert!(b.is_none(), "b's bots were not all on a by the end of the stream");
    // Every message answered exactly once, in order.
    for bot in bots {
        let expected: Vec<String> = (0..30).map(|n| format!("You said: #{n}")).collect();
        eventually(Duration::from_secs(15), "every message answered", || async {
            emu.control().calls(Some(bot), Some("sendMessage")).await.unwrap().len() >= expected.len()
        })
        .await;
        let sent = emu.control().calls(Some(bot), Some("sendMessage")).await.unwrap();
        let texts: Vec<String> = sent.iter().filter_map(|c| c.params["text"].as_str().map(str::to_owned)).collect();
        assert_eq!(texts, expected, "{}", bot.username);
    }
    polls_never_cut_short_by_another(emu, bots).await;
    a.stop().await;
}
