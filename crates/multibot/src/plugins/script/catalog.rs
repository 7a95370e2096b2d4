//! [`ScriptCatalog`]: the script plugins of `PLUGINS_DIR`. Each scan reads every `*.luau` file, loads the ones
//! whose content changed, resolves names (a script may not take a native plugin's name or another script's), and
//! installs the result in the registry. A file that fails to load, or whose new name clashes, keeps its previous
//! version running; the [`ScanReport`] says what changed and what failed, with file and line.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::Serialize;
use tracing::info;

use super::{ScriptError, ScriptHost, ScriptPlugin};
use crate::plugins::{PluginFactory, PluginRegistry};

/// Names no script may take: `fsm` is where the database keeps FSM state (`plugin_state`, plugin `fsm`).
const RESERVED: [&str; 1] = ["fsm"];

/// What one file has given so far.
struct FileState {
    /// Its content when last read.
    content: String,
    /// The version loaded from that content, if it loaded.
    loaded: Option<Arc<ScriptPlugin>>,
    /// Why that content did not load.
    load_error: Option<ScriptError>,
    /// The version bots use now (the previous one when the new content failed).
    running: Option<Arc<ScriptPlugin>>,
}

/// What a scan changed.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ScanReport {
    /// Script plugins that appeared, by name.
    pub added: Vec<String>,
    /// Script plugins with a new version, by name: the bots using them should be rebuilt.
    pub reloaded: Vec<String>,
    /// Script plugins that are gone (their file was removed or renamed).
    pub removed: Vec<String>,
    /// Scripts that failed to load or clash; a previous version of each, if any, keeps running.
    pub errors: Vec<ScriptError>,
}

/// The script plugins of a directory, as last scanned.
pub struct ScriptCatalog {
    dir: PathBuf,
    host: ScriptHost,
    files: BTreeMap<PathBuf, FileState>,
}

/// Whether a path is a script: `*.luau`, not hidden (editors' temporary files are).
pub fn is_script_file(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
    !hidden && path.extension().and_then(|e| e.to_str()) == Some("luau")
}

impl ScriptCatalog {
    /// A catalog of `dir`, empty until scanned.
    pub fn new(dir: PathBuf, host: ScriptHost) -> ScriptCatalog {
        ScriptCatalog { dir, host, files: BTreeMap::new() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Rescans the directory and installs the running versions in `registry` (its native plugins keep their
    /// names); logs what changed and reports the problems (the caller logs them). A directory that does not exist
    /// holds no scripts.
    pub fn scan_into(&mut self, registry: &PluginRegistry) -> ScanReport {
        let before = self.running();
        let mut report = ScanReport::default();
        let paths = match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                let mut paths: Vec<PathBuf> =
                    entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| is_script_file(p)).collect();
                paths.sort();
                paths
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                report.errors.push(ScriptError::whole_file(&self.dir, format!("cannot read the directory: {e}")));
                self.files.keys().cloned().collect()
            }
        };
        self.files.retain(|path, _| paths.contains(path));
        for path in &paths {
            let content = match std::fs::read_to_string(path) {
                Ok(content) => content,
                Err(e) => {
                    report.errors.push(ScriptError::whole_file(path, format!("cannot read the script: {e}")));
                    continue;
                }
            };
            // Unchanged, unless a module (`require`) of the version running has changed.
            if let Some(state) = self.files.get(path)
                && state.content == content
                && !state.running.as_ref().is_some_and(|running| running.libs_changed())
            {
                report.errors.extend(state.load_error.clone());
                continue;
            }
            let (loaded, load_error) = match ScriptPlugin::from_source(path, content.clone(), &self.host) {
                Ok(plugin) => (Some(Arc::new(plugin)), None),
                Err(e) => (None, Some(e)),
            };
            report.errors.extend(load_error.clone());
            let running = self.files.get(path).and_then(|s| s.running.clone());
            self.files.insert(path.clone(), FileState { content, loaded, load_error, running });
        }
        // Names: natives keep theirs, then each running script keeps its own (so an edit cannot take another
        // script's name), then files in name order. Each file offers its newest version, else the running one.
        let reserved: BTreeMap<String, PathBuf> = before
            .iter()
            .filter(|(_, plugin)| self.files.contains_key(plugin.file()))
            .map(|(name, plugin)| (name.clone(), plugin.file().to_owned()))
            .collect();
        let mut taken: BTreeMap<String, PathBuf> = BTreeMap::new();
        for (path, state) in &mut self.files {
            let mut candidates = state
                .loaded
                .iter()
                .chain(state.running.iter().filter(|r| state.loaded.as_ref().is_none_or(|l| !Arc::ptr_eq(l, r))));
            let mut chosen = None;
            for candidate in &mut candidates {
                let name = &candidate.meta().name;
                let clash = if registry.is_native(name) {
                    Some(format!("the plugin name {name:?} is taken by a native plugin"))
                } else if RESERVED.contains(&name.as_str()) {
                    Some(format!("the plugin name {name:?} is reserved"))
                } else {
                    let reserved = reserved.get(name).filter(|file| *file != path);
                    let other = taken.get(name).or(reserved);
                    other.map(|other| format!("the plugin name {name:?} is taken by {}", other.display()))
                };
                match clash {
                    Some(message) => report.errors.push(ScriptError::whole_file(path, message)),
                    None => {
                        chosen = Some(candidate.clone());
                        break;
                    }
                }
            }
            if let Some(chosen) = &chosen {
                taken.insert(chosen.meta().name.clone(), path.clone());
            }
            state.running = chosen;
        }
        let after = self.running();
        for (name, plugin) in &after {
            match before.get(name) {
                None => report.added.push(name.clone()),
                Some(old) if !Arc::ptr_eq(old, plugin) => report.reloaded.push(name.clone()),
                Some(_) => {}
            }
        }
        report.removed = before.keys().filter(|name| !after.contains_key(*name)).cloned().collect();
        registry.set_scripts(after.into_values().map(|p| p as Arc<dyn PluginFactory>).collect());
        for (what, names) in [("added", &report.added), ("reloaded", &report.reloaded), ("removed", &report.removed)] {
            for name in names {
                info!(plugin = %name, "script plugin {what}");
            }
        }
        report
    }

    /// The running script plugins by name.
    fn running(&self) -> BTreeMap<String, Arc<ScriptPlugin>> {
        self.files.values().filter_map(|s| s.running.clone()).map(|p| (p.meta().name.clone(), p)).collect()
    }

    /// The running script plugins and their files, by name.
    pub fn plugins(&self) -> Vec<(String, PathBuf)> {
        self.running().into_iter().map(|(name, p)| (name, p.file().to_owned())).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        plugins::script::{MemoryScriptState, ScriptLimits},
        testing::TempDir,
    };

    fn catalog(name: &str) -> (TempDir, ScriptCatalog) {
        let dir = TempDir::new(&format!("catalog-{name}"));
        let host = ScriptHost {
            limits: ScriptLimits { memory: 8 << 20, cpu: Duration::from_millis(200) },
            state: Arc::new(MemoryScriptState::default()),
            notifier: Default::default(),
        };
        let catalog = ScriptCatalog::new(dir.path().to_owned(), host);
        (dir, catalog)
    }

    #[test]
    fn changes_errors_and_clashes() {
        let (dir, mut catalog) = catalog("changes");
        let registry = PluginRegistry::builtin();
        dir.write("a.luau", "plugin { name = 'alpha' }");
        dir.write("b.luau", "plugin { name = 'beta' }");
        dir.write("notes.txt", "not a script");
        let report = catalog.scan_into(&registry);
        assert_eq!((report.added, report.errors), (vec!["alpha".to_owned(), "beta".to_owned()], vec![]));
        assert!(registry.get("alpha").is_some_and(|f| f.meta().script));
        // Nothing changed: nothing to do.
        let report = catalog.scan_into(&registry);
        assert!(report.added.is_empty() && report.reloaded.is_empty() && report.errors.is_empty());
        // A syntax error keeps the running version; the report has file and line.
        dir.write("a.luau", "plugin { name = 'alpha', version = '2.0.0' }\nlocal = 1");
        let report = catalog.scan_into(&registry);
        assert!(report.reloaded.is_empty());
        assert_eq!((report.errors[0].file.file_name().unwrap().to_str(), report.errors[0].line), (Some("a.luau"), 2));
        assert_eq!(registry.get("alpha").unwrap().meta().version, "1.0.0");
        // A clash with another script keeps the running version too; with a native plugin likewise.
        dir.write("a.luau", "plugin { name = 'beta' }");
        let report = catalog.scan_into(&registry);
        assert!(report.errors[0].message.contains("\"beta\" is taken by"), "{:?}", report.errors);
        assert!(registry.get("alpha").is_some());
        dir.write("c.luau", "plugin { name = 'echo' }");
        let report = catalog.scan_into(&registry);
        assert!(report.errors.iter().any(|e| e.message.contains("taken by a native plugin")), "{:?}", report.errors);
        assert!(!registry.get("echo").unwrap().meta().script);
        dir.write("c.luau", "plugin { name = 'fsm' }");
        let report = catalog.scan_into(&registry);
        assert!(report.errors.iter().any(|e| e.message.contains("\"fsm\" is reserved")), "{:?}", report.errors);
        assert!(registry.get("fsm").is_none());
        // A fix applies; a removed file removes its plugin.
        dir.write("a.luau", "plugin { name = 'alpha', version = '2.0.0' }");
        std::fs::remove_file(dir.path().join("b.luau")).unwrap();
        std::fs::remove_file(dir.path().join("c.luau")).unwrap();
        let report = catalog.scan_into(&registry);
        assert_eq!((report.reloaded, report.removed), (vec!["alpha".to_owned()], vec!["beta".to_owned()]));
        assert_eq!(registry.get("alpha").unwrap().meta().version, "2.0.0");
        assert!(registry.get("beta").is_none());
    }
}
