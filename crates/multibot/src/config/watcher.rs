//! The config watcher: file-system events in `CONFIG_DIR` (and, for script plugins, `PLUGINS_DIR`), debounced,
//! become [`ReloadSignal`]s. Only content changes count: a reload reads every file, so a reload triggered by
//! reading would trigger the next one, forever. A Kubernetes ConfigMap counts too: the kubelet updates one by
//! writing a new hidden directory and renaming a `..data` symlink onto it, so that no `*.yaml` path (each a
//! symlink through `..data`) ever changes; the swap of [`CONFIGMAP_DATA`] is the change.

use std::{path::Path, time::Duration};

use notify_debouncer_full::{
    DebounceEventResult, Debouncer, RecommendedCache, new_debouncer,
    notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, event::ModifyKind},
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
    /// Watched files changed (added, modified, removed or renamed): bot configurations or scripts.
    Changed,
    /// SIGHUP, the admin bot or an API asked to reload everything.
    Requested,
}

/// A running watcher; dropping it stops watching.
pub struct ConfigWatcher {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

/// The symlink through which a mounted ConfigMap's files point at its current version.
pub const CONFIGMAP_DATA: &str = "..data";

/// Whether an event on `path` may change a bot configuration: a `*.yaml`/`*.yml` file, or the ConfigMap's
/// `..data` link that every such file goes through.
fn is_config_change(path: &Path) -> bool {
    is_config_file(path) || path.file_name().is_some_and(|n| n == CONFIGMAP_DATA)
}

fn is_config_file(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
    !hidden && path.extension().and_then(|e| e.to_str()).is_some_and(|e| e == "yaml" || e == "yml")
}

/// Whether an event may have changed what a reload would read: a file created, written, renamed or removed (or
/// events lost, so anything may have changed). Opening, reading and closing a file (inotify reports them as
/// access events) and metadata changes (times, permissions) never do.
fn is_content_change(event: &Event) -> bool {
    event.need_rescan()
        || match event.kind {
            EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any => true,
            EventKind::Modify(kind) => !matches!(kind, ModifyKind::Metadata(_)),
            EventKind::Access(_) | EventKind::Other => false,
        }
}

/// Watches `dir` (not recursively) and sends [`ReloadSignal::Changed`] after each debounced batch of events that
/// changes a `*.yaml` or `*.yml` file, or swaps a ConfigMap's `..data` link.
pub fn watch(dir: &Path, signals: mpsc::Sender<ReloadSignal>) -> notify_debouncer_full::notify::Result<ConfigWatcher> {
    watch_in(dir, RecursiveMode::NonRecursive, is_config_change, signals)
}

/// Watches `dir` and every directory below it (`PLUGINS_DIR` and its `lib/` of script modules) and sends
/// [`ReloadSignal::Changed`] after each debounced batch of events that changes a file `wanted` accepts.
pub fn watch_tree(
    dir: &Path,
    wanted: fn(&Path) -> bool,
    signals: mpsc::Sender<ReloadSignal>,
) -> notify_debouncer_full::notify::Result<ConfigWatcher> {
    watch_in(dir, RecursiveMode::Recursive, wanted, signals)
}

fn watch_in(
    dir: &Path,
    mode: RecursiveMode,
    wanted: fn(&Path) -> bool,
    signals: mpsc::Sender<ReloadSignal>,
) -> notify_debouncer_full::notify::Result<ConfigWatcher> {
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| match result {
        Ok(events) => {
            if events.iter().any(|e| is_content_change(e) && e.paths.iter().any(|p| wanted(p))) {
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
    debouncer.watch(dir, mode)?;
    Ok(ConfigWatcher { _debouncer: debouncer })
}

#[cfg(test)]
mod tests {
    use notify_debouncer_full::notify::{
        Event, EventKind,
        event::{AccessKind, AccessMode, CreateKind, DataChange, MetadataKind, ModifyKind, RemoveKind, RenameMode},
    };

    use super::{is_config_change, is_config_file, is_content_change};

    #[test]
    fn only_content_changes_count() {
        let counts = |kind| is_content_change(&Event::new(kind));
        assert!(counts(EventKind::Create(CreateKind::File)));
        assert!(counts(EventKind::Modify(ModifyKind::Data(DataChange::Any))));
        assert!(counts(EventKind::Modify(ModifyKind::Name(RenameMode::To))));
        assert!(counts(EventKind::Remove(RemoveKind::File)));
        assert!(!counts(EventKind::Access(AccessKind::Open(AccessMode::Any))));
        assert!(!counts(EventKind::Access(AccessKind::Close(AccessMode::Read))));
        assert!(!counts(EventKind::Access(AccessKind::Close(AccessMode::Write))));
        assert!(!counts(EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime))));
    }

    #[test]
    fn only_visible_yaml_files_count() {
        let counted = ["config/bots/a.yaml", "b.yml"];
        let ignored = [".a.yaml.swp", ".#a.yaml", "a.yaml~", "notes.txt"];
        for path in counted.iter().chain(&ignored) {
            assert_eq!(is_config_file(path.as_ref()), counted.contains(path), "{path}");
        }
    }

    #[test]
    fn the_configmap_data_link_counts_and_its_versions_do_not() {
        let dir = "/etc/multibot/bots";
        // The kubelet's other steps: the new version's directory, the temporary link renamed onto `..data`.
        for (name, counts) in
            [("..data", true), ("a.yaml", true), ("..2026_11_30_13_00_00.12345", false), ("..data_tmp", false)]
        {
            assert_eq!(is_config_change(format!("{dir}/{name}").as_ref()), counts, "{name}");
        }
    }
}
