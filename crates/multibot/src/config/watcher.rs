//! The config watcher: file-system events in `CONFIG_DIR`, debounced, become [`ReloadSignal`]s.

use std::{path::Path, time::Duration};

use notify_debouncer_full::{
    DebounceEventResult, Debouncer, RecommendedCache, new_debouncer,
    notify::{RecommendedWatcher, RecursiveMode},
};
use tokio::sync::mpsc;
use tracing::warn;

/// Editors save in storms: write a temp file, rename it over the original, touch it; inotify reports each step
/// within a few milliseconds. 50 ms of quiet collapses a storm into one reload while keeping the whole path from
/// the write to the new behaviour well under the 300 ms target (loading and a reload take a few ms more).
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// Why a reload happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadSignal {
    /// Files in the config directory changed (added, modified, removed or renamed).
    Changed,
    /// SIGHUP, the admin bot or an API asked to reload everything.
    Requested,
}

/// A running watcher; dropping it stops watching.
pub struct ConfigWatcher {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

fn is_config_file(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
    !hidden && path.extension().and_then(|e| e.to_str()).is_some_and(|e| e == "yaml" || e == "yml")
}

/// Watches `dir` (not recursively) and sends [`ReloadSignal::Changed`] after each debounced batch of events that
/// touches a `*.yaml` or `*.yml` file.
pub fn watch(dir: &Path, signals: mpsc::Sender<ReloadSignal>) -> notify_debouncer_full::notify::Result<ConfigWatcher> {
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| match result {
        Ok(events) => {
            if events.iter().any(|e| e.paths.iter().any(|p| is_config_file(p))) {
                // A reload is already queued if the channel is full: nothing is lost by dropping this one.
                let _ = signals.try_send(ReloadSignal::Changed);
            }
        }
        Err(errors) => {
            for error in errors {
                warn!(error = %error, "config watcher error");
            }
        }
    })?;
    debouncer.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(ConfigWatcher { _debouncer: debouncer })
}

#[cfg(test)]
mod tests {
    use super::is_config_file;

    #[test]
    fn only_visible_yaml_files_count() {
        assert!(is_config_file("config/bots/a.yaml".as_ref()));
        assert!(is_config_file("b.yml".as_ref()));
        assert!(!is_config_file(".a.yaml.swp".as_ref()));
        assert!(!is_config_file(".#a.yaml".as_ref()));
        assert!(!is_config_file("a.yaml~".as_ref()));
        assert!(!is_config_file("notes.txt".as_ref()));
    }
}
