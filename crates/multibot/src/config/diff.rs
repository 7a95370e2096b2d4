//! The reload diff: what a freshly loaded configuration directory changes in the running fleet.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use super::{BotConfig, BotId, ConfigError, LoadedConfig};

/// A running bot as the diff sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// Its id.
    pub id: BotId,
    /// The file it came from.
    pub file: PathBuf,
    /// Its configuration hash.
    pub hash: String,
}

/// What to do to the fleet.
#[derive(Debug, Default)]
pub struct ConfigDiff {
    /// Bots to start.
    pub added: Vec<BotConfig>,
    /// Bots whose configuration changed.
    pub changed: Vec<BotConfig>,
    /// Bots to stop and forget (their file was removed, or its `id` changed).
    pub removed: Vec<BotId>,
    /// Bots left as they are because their file does not validate now.
    pub kept: Vec<BotId>,
    /// The problems found; a bot whose file has one keeps its running configuration.
    pub errors: Vec<ConfigError>,
}

/// Compares the running bots with a loaded directory. A file with errors never changes what runs from it; a
/// problem with the directory itself (it vanished) changes nothing at all.
pub fn diff(current: &[Current], loaded: LoadedConfig, dir: &std::path::Path) -> ConfigDiff {
    let mut out = ConfigDiff { errors: loaded.errors, ..ConfigDiff::default() };
    if out.errors.iter().any(|e| e.file == dir) {
        out.kept = current.iter().map(|c| c.id.clone()).collect();
        return out;
    }
    let bad_files: BTreeSet<&PathBuf> = out.errors.iter().map(|e| &e.file).collect();
    let running: BTreeMap<&BotId, &Current> = current.iter().map(|c| (&c.id, c)).collect();
    let loaded_ids: BTreeSet<BotId> = loaded.bots.iter().map(|b| b.id.clone()).collect();
    for bot in loaded.bots {
        match running.get(&bot.id) {
            // A bot moved into a file that is bad now: leave it.
            Some(now) if bad_files.contains(&now.file) && now.file != bot.file => out.kept.push(bot.id.clone()),
            Some(now) if now.hash == bot.hash => {}
            Some(_) => out.changed.push(bot),
            None => out.added.push(bot),
        }
    }
    for now in current {
        if loaded_ids.contains(&now.id) {
            continue;
        }
        if bad_files.contains(&now.file) {
            out.kept.push(now.id.clone());
        } else {
            out.removed.push(now.id.clone());
        }
    }
    out
}
