//! Finite-state-machine storage: a conversation's state and data, keyed by bot and by the bot's
//! `fsm_strategy` ([`FsmKey`]). Storage sits behind the small [`FsmStorage`] trait; [`MemoryFsm`] is the
//! default implementation.

use std::collections::HashMap;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Whose conversation a state belongs to. The strategy decides the parts: `GLOBAL_USER` uses the user id twice,
/// `USER_IN_CHAT` the chat and the user, `CHAT` the chat twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FsmKey {
    /// The bot's YAML id, so that bots never share state.
    pub bot_id: String,
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

/// FSM records in process memory (lost on restart).
#[derive(Default)]
pub struct MemoryFsm {
    records: Mutex<HashMap<FsmKey, FsmRecord>>,
}

#[async_trait]
impl FsmStorage for MemoryFsm {
    async fn load(&self, key: &FsmKey) -> anyhow::Result<FsmRecord> {
        Ok(self.records.lock().get(key).cloned().unwrap_or_default())
    }

    async fn save(&self, key: &FsmKey, record: &FsmRecord) -> anyhow::Result<()> {
        let mut records = self.records.lock();
        if record.is_empty() {
            records.remove(key);
        } else {
            records.insert(key.clone(), record.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_are_kept_per_key_and_deleted_when_empty() {
        let fsm = MemoryFsm::default();
        let a = FsmKey { bot_id: "a".into(), chat_id: 1, user_id: 1 };
        let b = FsmKey { bot_id: "b".into(), ..a.clone() };
        let record = FsmRecord { state: Some("form:name".into()), data: Map::new() };
        fsm.save(&a, &record).await.unwrap();
        assert_eq!(fsm.load(&a).await.unwrap(), record);
        assert_eq!(fsm.load(&b).await.unwrap(), FsmRecord::default());
        fsm.save(&a, &FsmRecord::default()).await.unwrap();
        assert!(fsm.records.lock().is_empty());
    }
}
