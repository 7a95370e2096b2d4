//! Finite-state-machine storage: a conversation's state and data, keyed by bot and by the bot's
//! `fsm_strategy` ([`FsmKey`]). Storage sits behind the small [`FsmStorage`] trait: [`MemoryFsm`] (the default,
//! lost on restart, expiring after `FSM_TTL` like Redis), [`DatabaseFsm`] (`FSM_STORAGE=database`: the `plugin_state` table under the plugin name
//! `fsm`) and [`RedisFsm`] (`REDIS_URL`: one key per conversation, prefixed by the bot id, with an optional TTL).
//! With the database or Redis, a conversation survives a restart.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::BotId;

/// Whose conversation a state belongs to. The strategy decides the parts: `GLOBAL_USER` uses the user id twice,
/// `USER_IN_CHAT` the chat and the user, `CHAT` the chat twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FsmKey {
    /// The bot's YAML id, so that bots never share state.
    pub bot_id: BotId,
    /// Chat part of the key.
    pub chat_id: i64,
    /// User part of the key.
    pub user_id: i64,
}

/// A conversation's state and data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FsmRecord {
    /// The current state, if any.
    pub state: Option<String>,
    /// Data collected so far.
    pub data: Map<String, Value>,
}

impl FsmRecord {
    /// True when there is nothing to keep.
    pub fn is_empty(&self) -> bool {
        self.state.is_none() && self.data.is_empty()
    }
}

/// Where FSM records live.
#[async_trait]
pub trait FsmStorage: Send + Sync {
    /// The record for `key` (empty when there is none).
    async fn load(&self, key: &FsmKey) -> anyhow::Result<FsmRecord>;
    /// Stores `record` for `key`; an empty record deletes it.
    async fn save(&self, key: &FsmKey, record: &FsmRecord) -> anyhow::Result<()>;
}

/// FSM records in process memory (lost on restart). With a TTL, a record not saved for that long is gone: a
/// load no longer sees it, and [`MemoryFsm::sweep`] (run every [`MemoryFsm::sweep_period`] by
/// [`MemoryFsm::sweep_every`]) frees those nobody reads again.
#[derive(Default)]
pub struct MemoryFsm {
    records: Mutex<HashMap<FsmKey, (FsmRecord, Instant)>>,
    ttl: Option<Duration>,
}

impl MemoryFsm {
    /// A store whose records expire `ttl` after they were last saved (`None`: never), as in Redis.
    pub fn new(ttl: Option<Duration>) -> MemoryFsm {
        MemoryFsm { records: Mutex::default(), ttl }
    }

    fn expired(&self, saved: Instant) -> bool {
        self.ttl.is_some_and(|ttl| saved.elapsed() >= ttl)
    }

    /// Frees the expired records; returns how many are left.
    pub fn sweep(&self) -> usize {
        let mut records = self.records.lock();
        records.retain(|_, (_, saved)| !self.expired(*saved));
        records.len()
    }

    /// How often [`MemoryFsm::sweep_every`] sweeps: half the TTL, from 1 s to 1 min; `None` without a TTL.
    pub fn sweep_period(&self) -> Option<Duration> {
        self.ttl.map(|ttl| (ttl / 2).clamp(Duration::from_secs(1), Duration::from_secs(60)))
    }

    /// Sweeps every [`MemoryFsm::sweep_period`] until `stop` is cancelled (at once without a TTL).
    pub async fn sweep_every(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let Some(period) = self.sweep_period() else { return };
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.sweep();
                }
                () = stop.cancelled() => return,
            }
        }
    }
}

#[async_trait]
impl FsmStorage for MemoryFsm {
    async fn load(&self, key: &FsmKey) -> anyhow::Result<FsmRecord> {
        let mut records = self.records.lock();
        match records.get(key) {
            Some((_, saved)) if self.expired(*saved) => {
                records.remove(key);
                Ok(FsmRecord::default())
            }
            Some((record, _)) => Ok(record.clone()),
            None => Ok(FsmRecord::default()),
        }
    }

    async fn save(&self, key: &FsmKey, record: &FsmRecord) -> anyhow::Result<()> {
        let mut records = self.records.lock();
        if record.is_empty() {
            records.remove(key);
        } else {
            records.insert(key.clone(), (record.clone(), Instant::now()));
        }
        Ok(())
    }
}

impl FsmKey {
    /// The key's chat and user part, as the database and Redis store it.
    fn suffix(&self) -> String {
        format!("{}:{}", self.chat_id, self.user_id)
    }
}

/// FSM records in the database's `plugin_state` table (plugin `fsm`, key `<chat>:<user>`).
pub struct DatabaseFsm {
    storage: crate::storage::Storage,
}

impl DatabaseFsm {
    /// Records in `storage`.
    pub fn new(storage: crate::storage::Storage) -> DatabaseFsm {
        DatabaseFsm { storage }
    }
}

#[async_trait]
impl FsmStorage for DatabaseFsm {
    async fn load(&self, key: &FsmKey) -> anyhow::Result<FsmRecord> {
        let value = self.storage.plugin_states().get(key.bot_id.as_str(), "fsm", &key.suffix()).await?;
        Ok(value.map(serde_json::from_value).transpose()?.unwrap_or_default())
    }

    async fn save(&self, key: &FsmKey, record: &FsmRecord) -> anyhow::Result<()> {
        let states = self.storage.plugin_states();
        if record.is_empty() {
            states.delete(key.bot_id.as_str(), "fsm", &key.suffix()).await?;
        } else {
            states.set(key.bot_id.as_str(), "fsm", &key.suffix(), &serde_json::to_value(record)?).await?;
        }
        Ok(())
    }
}

/// FSM records in Redis: key `<bot_id>:fsm:<chat>:<user>`, a JSON value, expiring after the TTL if one is set.
/// The connection is made on first use and re-made after failures, so Redis being down fails the handlers that
/// use the FSM, not the start of the process.
pub struct RedisFsm {
    client: redis::Client,
    connection: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    ttl: Option<std::time::Duration>,
}

impl RedisFsm {
    /// A store on `url` (`redis://host:port/db`); records expire after `ttl` when given.
    pub fn new(url: &str, ttl: Option<std::time::Duration>) -> anyhow::Result<RedisFsm> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("REDIS_URL is not a Redis URL: {e}"))?;
        Ok(RedisFsm { client, connection: tokio::sync::OnceCell::new(), ttl })
    }

    async fn connection(&self) -> anyhow::Result<redis::aio::ConnectionManager> {
        let connection = self
            .connection
            .get_or_try_init(|| {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
                    .set_response_timeout(Some(std::time::Duration::from_secs(2)))
                    .set_number_of_retries(1);
                redis::aio::ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await
            .map_err(|e| anyhow::anyhow!("Redis is unreachable: {}", crate::tls::describe(&e)))?;
        Ok(connection.clone())
    }

    fn key(key: &FsmKey) -> String {
        format!("{}:fsm:{}", key.bot_id, key.suffix())
    }

    /// Sends `PING`: whether Redis answers (the health routes ask).
    pub async fn ping(&self) -> anyhow::Result<()> {
        let mut connection = self.connection().await?;
        let _: String = redis::cmd("PING").query_async(&mut connection).await?;
        Ok(())
    }
}

#[async_trait]
impl FsmStorage for RedisFsm {
    async fn load(&self, key: &FsmKey) -> anyhow::Result<FsmRecord> {
        let mut connection = self.connection().await?;
        let value: Option<String> = redis::cmd("GET").arg(RedisFsm::key(key)).query_async(&mut connection).await?;
        Ok(value.map(|v| serde_json::from_str(&v)).transpose()?.unwrap_or_default())
    }

    async fn save(&self, key: &FsmKey, record: &FsmRecord) -> anyhow::Result<()> {
        let mut connection = self.connection().await?;
        let name = RedisFsm::key(key);
        if record.is_empty() {
            let _: i64 = redis::cmd("DEL").arg(name).query_async(&mut connection).await?;
            return Ok(());
        }
        let mut set = redis::cmd("SET");
        set.arg(name).arg(serde_json::to_string(record)?);
        if let Some(ttl) = self.ttl {
            set.arg("PX").arg(ttl.as_millis() as u64);
        }
        let _: () = set.query_async(&mut connection).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_are_kept_per_key_and_deleted_when_empty() {
        let fsm = MemoryFsm::default();
        let a = FsmKey { bot_id: BotId::parse("a").unwrap(), chat_id: 1, user_id: 1 };
        let b = FsmKey { bot_id: BotId::parse("b").unwrap(), ..a.clone() };
        let record = FsmRecord { state: Some("form:name".into()), data: Map::new() };
        fsm.save(&a, &record).await.unwrap();
        assert_eq!(fsm.load(&a).await.unwrap(), record);
        assert_eq!(fsm.load(&b).await.unwrap(), FsmRecord::default());
        fsm.save(&a, &FsmRecord::default()).await.unwrap();
        assert!(fsm.records.lock().is_empty());
    }

    fn key(user_id: i64) -> FsmKey {
        FsmKey { bot_id: BotId::parse("a").unwrap(), chat_id: 1, user_id }
    }

    #[tokio::test]
    async fn with_a_ttl_an_idle_record_is_forgotten_and_its_memory_swept() {
        let fsm = Arc::new(MemoryFsm::new(Some(Duration::from_millis(300))));
        let record = FsmRecord { state: Some("form:age".into()), data: Map::new() };
        fsm.save(&key(1), &record).await.unwrap();
        fsm.save(&key(2), &record).await.unwrap();
        assert_eq!(fsm.load(&key(1)).await.unwrap(), record, "fresh: kept");
        let saved = Instant::now();
        // Bad input: a conversation abandoned mid-form (key 1, read again later) and one never read again (key 2).
        let deadline = saved + Duration::from_secs(5);
        while fsm.load(&key(1)).await.unwrap() == record {
            assert!(Instant::now() < deadline, "key 1 never expired");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(saved.elapsed() >= Duration::from_millis(300), "expired only after the TTL");
        assert_eq!(fsm.records.lock().len(), 1, "the unread record is still held until a sweep");
        let stop = tokio_util::sync::CancellationToken::new();
        let sweeper = tokio::spawn(fsm.clone().sweep_every(stop.clone()));
        while !fsm.records.lock().is_empty() {
            assert!(Instant::now() < deadline + Duration::from_secs(2), "the sweep never freed key 2");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        sweeper.await.unwrap();
    }

    #[tokio::test]
    async fn without_a_ttl_records_stay_and_no_sweeper_runs() {
        let fsm = Arc::new(MemoryFsm::default());
        fsm.save(&key(1), &FsmRecord { state: Some("s".into()), data: Map::new() }).await.unwrap();
        assert_eq!(fsm.sweep_period(), None);
        // Returns at once: nothing to sweep, ever.
        fsm.clone().sweep_every(tokio_util::sync::CancellationToken::new()).await;
        assert_eq!(fsm.sweep(), 1);
    }
}
