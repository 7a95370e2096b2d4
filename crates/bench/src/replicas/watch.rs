//! What the bench reads to follow the fleet: [`Leases`], the `bot_leases` table (who holds each bot, until when,
//! and its fencing token), and [`CallLog`], the emulator's log of getUpdates calls (when each bot polled, and the
//! 409s, sorted by cause in [`Conflicts`]).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::SocketAddr,
    time::Duration,
};

use anyhow::{Context, ensure};
use botapi_emulator::types::CallRecord;
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool, Row, postgres::PgPoolOptions};
use tokio_util::sync::CancellationToken;

use super::process::bot_index;
use crate::{fleet::child::telegram_id, http::Conn};

/// One row of `bot_leases`.
#[derive(Debug, Clone)]
pub(super) struct Lease {
    /// The bench bot's index.
    pub(super) bot: usize,
    /// The `REPLICA_ID` that holds (or last held) it.
    pub(super) owner: String,
    /// Whether it has not expired (the server's clock).
    pub(super) live: bool,
    /// When it expires (or expired), Unix milliseconds of the server's clock (the same machine's).
    pub(super) expires_ms: i64,
    /// The fencing token: 1 at the first taking, one more at each change of hands.
    pub(super) token: i64,
}

/// Reads `bot_leases` over a connection of its own.
pub(super) struct Leases {
    pool: PgPool,
}

impl Leases {
    pub(super) async fn connect(url: &str) -> anyhow::Result<Leases> {
        let pool =
            PgPoolOptions::new().max_connections(1).connect(url).await.with_context(|| format!("opening {url}"))?;
        Ok(Leases { pool })
    }

    /// Every lease; none before the first replica created the table.
    pub(super) async fn read(&self) -> anyhow::Result<Vec<Lease>> {
        let exists: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('bot_leases')::text").fetch_one(&self.pool).await?;
        if exists.is_none() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT bot_id, owner, expires_at > now(), (extract(epoch FROM expires_at) * 1000)::bigint, token \
             FROM bot_leases",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut leases = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get(0)?;
            // Only the bench's bots are configured; anything else would be a stray row.
            let Some(bot) = bot_index(&id) else { continue };
            leases.push(Lease {
                bot,
                owner: row.try_get(1)?,
                live: row.try_get(2)?,
                expires_ms: row.try_get(3)?,
                token: row.try_get(4)?,
            });
        }
        Ok(leases)
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }
}

/// Until `stop`, holds an exclusive lock on `bot_leases` for `hold` every `hold` + 500 ms, over a connection of
/// its own: the replicas' lease rounds wait as they would on a slow database. Returns how many times it locked.
pub(super) async fn stall_leases(url: String, hold: Duration, stop: CancellationToken) -> anyhow::Result<u32> {
    let mut conn = PgConnection::connect(&url).await?;
    let mut stalls = 0;
    while !stop.is_cancelled() {
        let mut tx = conn.begin().await?;
        sqlx::query("LOCK TABLE bot_leases IN ACCESS EXCLUSIVE MODE").execute(&mut *tx).await?;
        stalls += 1;
        tokio::select! {
            () = tokio::time::sleep(hold) => {}
            () = stop.cancelled() => {}
        }
        tx.commit().await?;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = stop.cancelled() => {}
        }
    }
    conn.close().await?;
    Ok(stalls)
}

/// Live leases per replica.
pub(super) fn counts(leases: &[Lease]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for lease in leases.iter().filter(|l| l.live) {
        *counts.entry(lease.owner.clone()).or_default() += 1;
    }
    counts
}

/// Whether `bots` are spread over exactly `replicas` as the keeper's shares say: every bot leased, each replica
/// holding `bots / R` or one more.
pub(super) fn balanced(counts: &BTreeMap<String, usize>, replicas: &[String], bots: usize) -> bool {
    let r = replicas.len().max(1);
    let (low, high) = (bots / r, bots / r + usize::from(!bots.is_multiple_of(r)));
    counts.values().sum::<usize>() == bots
        && counts.len() == replicas.len()
        && replicas.iter().all(|id| counts.get(id).is_some_and(|&n| n >= low && n <= high))
}

/// The bench bots waiting in getUpdates now, as the emulator's `GET /control/bots` lists them.
pub(super) async fn polling_bots(control: &mut Conn) -> anyhow::Result<HashSet<usize>> {
    let answer = control.get("/control/bots").await?;
    ensure!(answer.status == 200, "GET /control/bots: {}", answer.status);
    let listed: Vec<Value> = serde_json::from_slice(&answer.body).context("GET /control/bots")?;
    Ok(listed.iter().filter(|b| b["polling"] == true).filter_map(|b| b["id"].as_u64()).filter_map(index_of).collect())
}

/// A getUpdates call as the emulator logged it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Poll {
    pub(super) bot: usize,
    /// When it arrived, Unix milliseconds.
    pub(super) at_ms: u64,
}

/// The 409s the emulator answered to getUpdates, by cause.
#[derive(Debug, Default, Clone)]
pub(super) struct Conflicts {
    /// A stopping replica's own long poll, ended by its last getUpdates (`timeout` 0, `limit` 1) that confirms
    /// what it handled (as `tests/app/replicas.rs` allows).
    pub(super) own: usize,
    /// A killed replica's long poll, still open in the emulator, cut short by the new owner's first poll.
    pub(super) dead: usize,
    /// Anything else: a poll cut short by another poll of the same bot. With replicas, a replica that fenced
    /// itself may still have a long poll under way when another takes the bot (as the design allows: it gets no
    /// updates); with one replica alone, it is two polls of one bot from the same process.
    pub(super) other: usize,
    /// The first few of `other`, described.
    pub(super) examples: Vec<String>,
    /// The bots that had an `other` 409.
    pub(super) other_bots: HashSet<usize>,
    /// When the first and the last `other` 409 arrived (the polls cut short), Unix milliseconds.
    pub(super) other_span: Option<(u64, u64)>,
    /// getUpdates calls read.
    pub(super) calls: u64,
    /// Calls answered with neither 200 nor 409.
    pub(super) failed: usize,
}

impl Conflicts {
    /// What was counted since `earlier` (bots: those with an `other` 409 since then).
    pub(super) fn since(&self, earlier: &Conflicts) -> Conflicts {
        Conflicts {
            own: self.own - earlier.own,
            dead: self.dead - earlier.dead,
            other: self.other - earlier.other,
            examples: Vec::new(),
            other_bots: self.other_bots.difference(&earlier.other_bots).copied().collect(),
            other_span: None,
            failed: self.failed - earlier.failed,
            calls: self.calls - earlier.calls,
        }
    }
}

/// A kill, for telling its replica's abandoned polls from conflicts.
struct Killed {
    at_ms: u64,
    /// The log's position when it happened.
    cursor: u64,
    bots: HashSet<usize>,
}

/// Reads the emulator's call log of getUpdates, from where it left off.
pub(super) struct CallLog {
    conn: Conn,
    cursor: u64,
    /// Each bot's previous getUpdates in the log: (`timeout`, `limit`).
    previous: HashMap<usize, (u64, u64)>,
    kills: Vec<Killed>,
    pub(super) conflicts: Conflicts,
    /// getUpdates calls read so far.
    pub(super) calls: u64,
}

impl CallLog {
    pub(super) async fn connect(addr: SocketAddr) -> anyhow::Result<CallLog> {
        Ok(CallLog {
            conn: Conn::connect(addr).await?,
            cursor: 0,
            previous: HashMap::new(),
            kills: Vec::new(),
            conflicts: Conflicts::default(),
            calls: 0,
        })
    }

    /// The getUpdates calls logged since the last read, in the order they ended; sorts their 409s.
    pub(super) async fn drain(&mut self) -> anyhow::Result<Vec<Poll>> {
        const PAGE: usize = 10_000;
        let mut polls = Vec::new();
        loop {
            let path = format!("/control/calls?method=getUpdates&after={}&limit={PAGE}", self.cursor);
            let answer = self.conn.get(&path).await?;
            ensure!(answer.status == 200, "GET {path}: {}", answer.status);
            let records: Vec<CallRecord> =
                serde_json::from_slice(&answer.body).with_context(|| format!("GET {path}"))?;
            for record in &records {
                self.cursor = self.cursor.max(record.seq);
                let Some(bot) = record.bot_id.and_then(|id| u64::try_from(id).ok()).and_then(index_of) else {
                    continue;
                };
                self.calls += 1;
                self.conflicts.calls += 1;
                self.classify(bot, record);
                polls.push(Poll { bot, at_ms: record.at_ms });
            }
            if records.len() < PAGE {
                return Ok(polls);
            }
        }
    }

    /// Records that the bots `bots` lost their replica at `at_ms` (call [`CallLog::drain`] just before).
    pub(super) fn killed(&mut self, at_ms: u64, bots: HashSet<usize>) {
        self.kills.push(Killed { at_ms, cursor: self.cursor, bots });
    }

    fn classify(&mut self, bot: usize, record: &CallRecord) {
        let number = |name: &str| -> u64 {
            match &record.params[name] {
                Value::Number(n) => n.as_u64().unwrap_or(0),
                Value::String(s) => s.parse().unwrap_or(0),
                _ => 0,
            }
        };
        let this = (number("timeout"), number("limit"));
        let previous = self.previous.insert(bot, this);
        match record.status {
            200 => {}
            409 => {
                let abandoned = self
                    .kills
                    .iter()
                    .any(|k| k.bots.contains(&bot) && record.at_ms <= k.at_ms && record.seq > k.cursor);
                if previous == Some((0, 1)) {
                    self.conflicts.own += 1;
                } else if abandoned {
                    self.conflicts.dead += 1;
                } else {
                    self.conflicts.other += 1;
                    self.conflicts.other_bots.insert(bot);
                    let (first, last) = self.conflicts.other_span.get_or_insert((record.at_ms, record.at_ms));
                    (*first, *last) = ((*first).min(record.at_ms), (*last).max(record.at_ms));
                    if self.conflicts.examples.len() < 5 {
                        self.conflicts.examples.push(format!(
                            "bench_{bot}: poll that arrived at {} (timeout {}) cut short; the bot's previous call logged: {:?}",
                            record.at_ms, this.0, previous
                        ));
                    }
                }
            }
            _ => self.conflicts.failed += 1,
        }
    }
}

/// The bench bot whose Telegram id is `id`.
fn index_of(id: u64) -> Option<usize> {
    let index = id.checked_sub(telegram_id(0))?;
    (telegram_id(index as usize) == id).then_some(index as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(bot: usize, owner: &str, live: bool) -> Lease {
        Lease { bot, owner: owner.into(), live, expires_ms: 0, token: 1 }
    }

    #[test]
    fn a_spread_is_balanced_when_every_replica_holds_its_share() {
        let replicas: Vec<String> = ["a", "b", "c"].map(String::from).into();
        let mut leases: Vec<Lease> = (0..7).map(|i| lease(i, ["a", "b", "c"][i % 3], true)).collect();
        assert!(balanced(&counts(&leases), &replicas, 7), "3, 2, 2");
        leases[1].owner = "a".into();
        assert!(!balanced(&counts(&leases), &replicas, 7), "4, 1, 2");
        leases[1].owner = "b".into();
        leases[6].live = false;
        assert!(!balanced(&counts(&leases), &replicas, 7), "one bot without a live lease");
        leases[6] = lease(6, "gone", true);
        assert!(!balanced(&counts(&leases), &replicas, 7), "a replica not running holds one");
    }

    #[test]
    fn telegram_ids_map_back_to_bots() {
        assert_eq!(index_of(telegram_id(2999)), Some(2999));
        assert_eq!(index_of(5), None);
    }
}
