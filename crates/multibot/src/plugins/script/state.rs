//! Where script plugins keep their persistent store (`store.get/set/delete/list` in a script): the
//! [`ScriptStateStore`] trait, JSON values by bot, plugin and key, and [`MemoryScriptState`], its in-memory
//! implementation.
//!
//! The trait mirrors the database's `plugin_state` repository ([`PluginStateRepository`], same methods and
//! arguments); [`Storage`] implements it, so the application keeps script state in the database, where native
//! plugins keep theirs (`PluginContext::store`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::Value;

#[cfg(doc)]
use crate::storage::PluginStateRepository;
use crate::storage::Storage;

/// Plugin state: JSON values by bot, plugin and key.
#[async_trait]
pub trait ScriptStateStore: Send + Sync {
    /// A value, or `None` when unset.
    async fn get(&self, bot_id: &str, plugin: &str, key: &str) -> anyhow::Result<Option<Value>>;
    /// Stores a value, replacing any.
    async fn set(&self, bot_id: &str, plugin: &str, key: &str, value: &Value) -> anyhow::Result<()>;
    /// Removes a value; false when there was none.
    async fn delete(&self, bot_id: &str, plugin: &str, key: &str) -> anyhow::Result<bool>;
    /// Every key and value of a plugin in a bot, by key.
    async fn list(&self, bot_id: &str, plugin: &str) -> anyhow::Result<Vec<(String, Value)>>;
}

/// Plugin state in process memory: it survives hot reloads and bot restarts, not a process restart.
#[derive(Default)]
pub struct MemoryScriptState {
    values: Mutex<BTreeMap<(String, String), BTreeMap<String, Value>>>,
}

#[async_trait]
impl ScriptStateStore for MemoryScriptState {
    async fn get(&self, bot_id: &str, plugin: &str, key: &str) -> anyhow::Result<Option<Value>> {
        let values = self.values.lock();
        Ok(values.get(&(bot_id.to_owned(), plugin.to_owned())).and_then(|m| m.get(key)).cloned())
    }

    async fn set(&self, bot_id: &str, plugin: &str, key: &str, value: &Value) -> anyhow::Result<()> {
        let mut values = self.values.lock();
        values.entry((bot_id.to_owned(), plugin.to_owned())).or_default().insert(key.to_owned(), value.clone());
        Ok(())
    }

    async fn delete(&self, bot_id: &str, plugin: &str, key: &str) -> anyhow::Result<bool> {
        let mut values = self.values.lock();
        Ok(values.get_mut(&(bot_id.to_owned(), plugin.to_owned())).is_some_and(|m| m.remove(key).is_some()))
    }

    async fn list(&self, bot_id: &str, plugin: &str) -> anyhow::Result<Vec<(String, Value)>> {
        let values = self.values.lock();
        let entries = values.get(&(bot_id.to_owned(), plugin.to_owned()));
        Ok(entries.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default())
    }
}

#[async_trait]
impl ScriptStateStore for Storage {
    async fn get(&self, bot_id: &str, plugin: &str, key: &str) -> anyhow::Result<Option<Value>> {
        Ok(self.plugin_states().get(bot_id, plugin, key).await?)
    }

    async fn set(&self, bot_id: &str, plugin: &str, key: &str, value: &Value) -> anyhow::Result<()> {
        Ok(self.plugin_states().set(bot_id, plugin, key, value).await?)
    }

    async fn delete(&self, bot_id: &str, plugin: &str, key: &str) -> anyhow::Result<bool> {
        Ok(self.plugin_states().delete(bot_id, plugin, key).await?)
    }

    async fn list(&self, bot_id: &str, plugin: &str) -> anyhow::Result<Vec<(String, Value)>> {
        Ok(self.plugin_states().list(bot_id, plugin).await?)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn values_are_kept_per_bot_and_plugin() {
        let store = MemoryScriptState::default();
        store.set("a", "counter", "n", &json!(1)).await.unwrap();
        store.set("a", "counter", "m", &json!({"x": [1, 2]})).await.unwrap();
        assert_eq!(store.get("a", "counter", "n").await.unwrap(), Some(json!(1)));
        assert_eq!(store.get("b", "counter", "n").await.unwrap(), None);
        assert_eq!(store.get("a", "other", "n").await.unwrap(), None);
        assert_eq!(store.list("a", "counter").await.unwrap().len(), 2);
        assert!(store.delete("a", "counter", "n").await.unwrap());
        assert!(!store.delete("a", "counter", "n").await.unwrap());
        assert_eq!(store.list("a", "counter").await.unwrap(), vec![("m".to_owned(), json!({"x": [1, 2]}))]);
    }
}
