//! Hot reload: [`ReloadHandle`] rescans the script plugins of `PLUGINS_DIR`, loads and validates the whole
//! configuration directory, diffs it against the running fleet and applies the diff bot by bot (the manager rolls a
//! bot back when its new configuration cannot start); then it rebuilds the other bots that use a script with a new
//! version. The watcher (debounced file events), SIGHUP and the admin bot's `/reload` trigger it; one runs at a
//! time, and [`ReloadReport`] says what it did.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::BotManager;
use crate::{
    config::{
        self, BotId, ConfigError, EnvLookup, Settings, WebhookEnv,
        diff::{Current, diff},
        watcher::ReloadSignal,
    },
    fleet::ManagerError,
    outcomes::ReloadOutcome,
    plugins::{
        Notifier, PluginRegistry,
        script::{ScanReport, ScriptCatalog, off_workers},
    },
    storage::{Recorder, events},
    telemetry,
};

/// What one reload did, for logs, the admin bot and tests.
#[derive(Debug, Default, Clone)]
pub struct ReloadReport {
    /// Bots and what happened to each (added, reloaded, restarted, disabled, removed).
    pub applied: Vec<(BotId, ReloadOutcome)>,
    /// Bots whose new configuration failed to start; each keeps its previous configuration.
    pub failed: Vec<(BotId, ManagerError)>,
    /// Configuration problems; the bots of those files keep running as they were.
    pub errors: Vec<String>,
    /// Environment settings that changed but cannot change while running.
    pub refused_settings: Vec<&'static str>,
    /// Script plugins and what happened to each (added, reloaded, removed); script errors are in `errors`.
    pub scripts: Vec<(String, ReloadOutcome)>,
}

/// What a [`ReloadHandle`] works with.
pub struct ReloadSetup {
    /// The fleet the changes apply to.
    pub manager: BotManager,
    /// Native and script plugins; bot files are checked against it.
    pub registry: Arc<PluginRegistry>,
    /// The script plugins of `PLUGINS_DIR`, rescanned by every reload.
    pub scripts: ScriptCatalog,
    /// Where settings and `${VAR}` come from.
    pub env: EnvLookup,
    /// `CONFIG_DIR`.
    pub config_dir: PathBuf,
    /// Whether webhooks can be configured.
    pub webhooks: WebhookEnv,
    /// Events.
    pub recorder: Recorder,
    /// Problems go to the admins through it.
    pub notifier: Notifier,
}

impl ReloadReport {
    /// Adds what one bot's change did; `what` names the change in the log line.
    fn record(&mut self, id: BotId, result: Result<ReloadOutcome, ManagerError>, what: &str) {
        match result {
            Ok(ReloadOutcome::Unchanged) => {}
            Ok(outcome) => {
                info!(bot_id = %id, ?outcome, "{what} applied");
                self.applied.push((id, outcome));
            }
            Err(e) => {
                error!(bot_id = %id, error = %e, "{what} failed; the previous one stays");
                self.failed.push((id, e));
            }
        }
    }
}

/// Reloads the configuration on demand and tells what the last reload did.
#[derive(Clone)]
pub struct ReloadHandle(Arc<Reloader>);

impl ReloadHandle {
    /// A handle over `setup`; the environment settings as they are now are the baseline a reload compares with.
    pub fn new(setup: ReloadSetup) -> ReloadHandle {
        let ReloadSetup { manager, registry, scripts, env, config_dir, webhooks, recorder, notifier } = setup;
        ReloadHandle(Arc::new(Reloader {
            manager,
            registry,
            scripts: Arc::new(parking_lot::Mutex::new(scripts)),
            baseline: Settings::from_env(&*env).ok(),
            env,
            config_dir,
            webhooks,
            recorder,
            notifier,
            running: tokio::sync::Mutex::new(()),
            last: parking_lot::Mutex::new(None),
            last_note: parking_lot::Mutex::new(None),
            count: AtomicU64::new(0),
        }))
    }

    /// Reloads on every signal until `shutdown` (the watcher's and SIGHUP's reloads).
    pub async fn run(self, signals: mpsc::Receiver<ReloadSignal>, shutdown: CancellationToken) {
        self.0.clone().run(signals, shutdown).await
    }

    /// Reloads every file now and reports what changed.
    pub async fn reload_now(&self) -> ReloadReport {
        self.0.reload().await
    }

    /// The report of the last reload, whatever triggered it.
    pub fn last_report(&self) -> Option<ReloadReport> {
        self.0.last.lock().clone()
    }

    /// Reloads one bot's file now (the admin bot's `/reload <bot_id>`).
    pub async fn reload_bot(&self, id: &BotId) -> ReloadReport {
        self.0.reload_matching(Some(id), false).await
    }

    /// How many reloads have completed.
    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::SeqCst)
    }
}

/// Loads, diffs and applies configuration changes.
struct Reloader {
    manager: BotManager,
    registry: Arc<PluginRegistry>,
    /// The script plugins of `PLUGINS_DIR`, rescanned by every reload.
    scripts: Arc<parking_lot::Mutex<ScriptCatalog>>,
    env: EnvLookup,
    config_dir: PathBuf,
    webhooks: WebhookEnv,
    recorder: Recorder,
    notifier: Notifier,
    /// The environment settings at start, to tell which ones a reload would change.
    baseline: Option<Settings>,
    /// One reload at a time.
    running: tokio::sync::Mutex<()>,
    last: parking_lot::Mutex<Option<ReloadReport>>,
    /// The last problem sent to the admins, so that a repeat is not sent again.
    last_note: parking_lot::Mutex<Option<String>>,
    count: AtomicU64,
}

/// Rescans `PLUGINS_DIR` into the registry; each script that did not load is an event.
pub(crate) fn scan_scripts(catalog: &mut ScriptCatalog, registry: &PluginRegistry, recorder: &Recorder) -> ScanReport {
    let scan = catalog.scan_into(registry);
    for problem in &scan.errors {
        events::script_invalid(recorder, &problem.file, problem.line, &problem.to_string());
    }
    scan
}

/// Records a `config_invalid` event per file with problems (each problem is logged).
pub(crate) fn config_invalid(recorder: &Recorder, errors: &[ConfigError]) {
    let mut invalid: BTreeMap<&Path, Vec<&ConfigError>> = BTreeMap::new();
    for problem in errors {
        invalid.entry(&problem.file).or_default().push(problem);
    }
    for (file, problems) in invalid {
        events::config_invalid(recorder, file, &problems);
    }
}

impl Reloader {
    async fn run(self: Arc<Self>, mut signals: mpsc::Receiver<ReloadSignal>, shutdown: CancellationToken) {
        loop {
            let signal = tokio::select! {
                signal = signals.recv() => signal,
                () = shutdown.cancelled() => return,
            };
            let Some(signal) = signal else { return };
            info!(?signal, "reloading configuration");
            self.reload_matching(None, true).await;
        }
    }

    /// Loads the directory, diffs it against the fleet and applies the difference.
    async fn reload(&self) -> ReloadReport {
        self.reload_matching(None, false).await
    }

    /// Loads the directory, diffs it against the fleet and applies the difference, for every bot or only `only`
    /// (problems of other files are then not reported). With `notify`, problems and failures go to the admins.
    async fn reload_matching(&self, only: Option<&BotId>, notify: bool) -> ReloadReport {
        let _one_at_a_time = self.running.lock().await;
        let mut report = ReloadReport::default();
        if let (Some(baseline), Ok(now)) = (&self.baseline, Settings::from_env(&*self.env)) {
            report.refused_settings = baseline.differences(&now);
            for name in &report.refused_settings {
                error!(setting = name, "{name} changed, but it cannot change while running: restart to apply it");
            }
        }
        // Scripts are shared by every bot: a new version rebuilds all the bots using it, even for a reload of one.
        // Each new or changed script's top level runs: off the workers.
        let (scripts, registry, recorder) = (self.scripts.clone(), self.registry.clone(), self.recorder.clone());
        let scan = off_workers(move || scan_scripts(&mut scripts.lock(), &registry, &recorder)).await;
        report.errors.extend(scan.errors.iter().map(ToString::to_string));
        let changes = [
            (ReloadOutcome::Added, &scan.added),
            (ReloadOutcome::Reloaded, &scan.reloaded),
            (ReloadOutcome::Removed, &scan.removed),
        ];
        for (what, names) in changes {
            report.scripts.extend(names.iter().map(|name| (name.clone(), what)));
        }
        let loaded = config::load_dir(&self.config_dir, &*self.env, &*self.registry, self.webhooks);
        // Only bots from CONFIG_DIR take part: the admin bot comes from the environment.
        let current: Vec<Current> =
            self.manager.current().into_iter().filter(|c| c.file.starts_with(&self.config_dir)).collect();
        let mut diff = diff(&current, loaded, &self.config_dir);
        if let Some(id) = only {
            let file = current.iter().find(|c| &c.id == id).map(|c| c.file.clone());
            diff.errors.retain(|e| Some(&e.file) == file.as_ref() || e.file == self.config_dir);
            diff.kept.retain(|k| k == id);
            diff.removed.retain(|r| r == id);
            // A file that is new since the last reload adds its bot: `/reload <new_id>` is how an admin adds one.
            diff.added.retain(|a| &a.id == id);
            diff.changed.retain(|c| &c.id == id);
        }
        config_invalid(&self.recorder, &diff.errors);
        report.errors.extend(diff.errors.iter().map(ToString::to_string));
        for id in &diff.kept {
            let file = current.iter().find(|c| &c.id == id).map(|c| c.file.clone());
            let problems: Vec<String> =
                diff.errors.iter().filter(|e| Some(&e.file) == file.as_ref()).map(ToString::to_string).collect();
            events::reload_failed(&self.recorder, id, &problems.join("; "));
        }
        for id in diff.removed {
            match self.manager.remove(&id).await {
                Ok(()) => report.applied.push((id, ReloadOutcome::Removed)),
                Err(e) => report.failed.push((id, e)),
            }
        }
        for config in diff.added.into_iter().chain(diff.changed) {
            let id = config.id.clone();
            let result = self.manager.reload(config).await;
            report.record(id, result, "the new configuration");
        }
        if !scan.reloaded.is_empty() {
            let failed = report.failed.iter().map(|(id, _)| id);
            let done: Vec<BotId> = report.applied.iter().map(|(id, _)| id).chain(failed).cloned().collect();
            for (id, result) in self.manager.reload_plugins(&scan.reloaded, &done).await {
                report.record(id, result, "the new script version");
            }
        }
        let result = match (&report.failed[..], &report.errors[..], &report.applied[..]) {
            ([], [], []) => "unchanged",
            ([], [], _) => "applied",
            _ => "failed",
        };
        telemetry::metrics::reload(result);
        if notify {
            let mut note = "⚠️ Reload failed; the running configuration stays:".to_owned();
            for error in &report.errors {
                note.push_str(&format!("\n{error}"));
            }
            for (id, why) in &report.failed {
                note.push_str(&format!("\n{id}: {why}"));
            }
            let failed = !report.errors.is_empty() || !report.failed.is_empty();
            // An editor's save can trigger two reloads of the same broken file: tell the admins once.
            let mut last = self.last_note.lock();
            if failed && last.as_deref() != Some(note.as_str()) {
                self.notifier.notify(note.clone());
            }
            *last = failed.then_some(note);
        }
        *self.last.lock() = Some(report.clone());
        self.count.fetch_add(1, Ordering::SeqCst);
        report
    }
}
