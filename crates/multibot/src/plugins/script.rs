//! Script plugins: Luau files in `PLUGINS_DIR`, sandboxed, hot-reloaded, registering on the same [`Router`] as
//! native plugins.
//!
//! - [`ScriptPlugin`]: one script file, loaded and checked; the [`PluginFactory`] the registry holds under the
//!   script's name. Each bot that uses it gets an instance with a VM of its own ([`ScriptPlugin::build`]).
//! - [`ScriptCatalog`]: every script of the directory, rescanned on reload (`catalog`).
//! - [`ScriptHost`]: what every script shares: the limits ([`ScriptLimits`]) and the plugin state store
//!   ([`ScriptStateStore`], the `store` global).
//! - `vm`: the sandbox, the CPU budget and the memory limit; `api`: the globals and `ctx` a script sees;
//!   `pool`: the threads script calls run on, apart from the runtime's workers; `offload`: loading there;
//!   `scope`: the host work of one call, cancelled with it.

mod api;
mod catalog;
mod modules;
mod offload;
mod pool;
mod scope;
mod state;
mod vm;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::anyhow;
use async_trait::async_trait;
pub use catalog::{ScanReport, ScriptCatalog, is_script_file};
use mlua::{Function, IntoLuaMulti, Lua};
pub(crate) use offload::{build_off_workers, off_workers};
use serde::Serialize;
use serde_json::Value;
pub use state::{MemoryScriptState, ScriptStateStore};

use self::{
    api::{
        BotSlot, FleetEnv, Hooks, HostEnv, LuaCtx, Registrations, RouteDecl, SchemaEntry, TimerRunner, TimerStart,
        Timers,
    },
    modules::Libs,
    vm::describe,
};
use super::{
    ConfigProblem, ErrorHookFn, HandlerFn, LoadedPlugin, Notifier, PluginContext, PluginFactory, PluginMeta, Router,
    UpdateFilter,
};
use crate::config::Settings;

/// A handler still running after this long is stopped, whatever it waits on. Its CPU time is bounded by the
/// budget; this bounds the rest: a host call that never returns, or a loop of sends paced by flood control.
const WALL_LIMIT: Duration = Duration::from_secs(120);

/// The resources one plugin instance may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptLimits {
    /// Bytes the instance's VM may hold (`SCRIPT_MEMORY_LIMIT_MB`).
    pub memory: usize,
    /// CPU time one call (a handler, a hook, the top level) may run (`SCRIPT_TIMEOUT_MS`).
    pub cpu: Duration,
}

impl ScriptLimits {
    /// The limits of the settings.
    pub fn from_settings(settings: &Settings) -> ScriptLimits {
        ScriptLimits { memory: settings.script_memory_limit_mb << 20, cpu: settings.script_timeout }
    }
}

/// What every script plugin shares.
#[derive(Clone)]
pub struct ScriptHost {
    /// Memory and CPU limits.
    pub limits: ScriptLimits,
    /// Where `store.get/set/delete/list` keep values.
    pub state: Arc<dyn ScriptStateStore>,
    /// Where `notify_admins` sends (the admin bot forwards it).
    pub notifier: Notifier,
}

impl ScriptHost {
    /// The limits of the settings and plugin state in memory.
    pub fn in_memory(settings: &Settings) -> ScriptHost {
        let state = Arc::new(MemoryScriptState::default());
        ScriptHost { limits: ScriptLimits::from_settings(settings), state, notifier: Notifier::default() }
    }
}

/// A script that could not be loaded, at a place in its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScriptError {
    /// The script file.
    pub file: PathBuf,
    /// 1-based line, 0 when the problem concerns the whole file.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file.display(), self.message),
            line => write!(f, "{}:{line}: {}", self.file.display(), self.message),
        }
    }
}

impl ScriptError {
    fn whole_file(file: &Path, message: impl Into<String>) -> ScriptError {
        ScriptError { file: file.to_owned(), line: 0, message: message.into() }
    }

    /// Splits `chunk:line: message` as Luau words it.
    fn from_message(file: &Path, chunk: &str, message: String) -> ScriptError {
        let located = message.strip_prefix(chunk).and_then(|rest| rest.strip_prefix(':')).and_then(|rest| {
            let (line, text) = rest.split_once(':')?;
            Some((line.parse::<usize>().ok()?, text.trim_start().to_owned()))
        });
        match located {
            Some((line, text)) => ScriptError { file: file.to_owned(), line, message: text },
            None => ScriptError::whole_file(file, message),
        }
    }
}

/// Whether a name can be a plugin's: 1-64 characters of `a-z`, `0-9`, `_` and `-`, starting with a letter.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// One script file, loaded and checked: its metadata, its optional config schema, and its source, which every
/// bot using it runs in a VM of its own.
pub struct ScriptPlugin {
    meta: PluginMeta,
    file: PathBuf,
    /// The file name, as Luau names the chunk in errors.
    chunk: String,
    source: Arc<str>,
    schema: Option<BTreeMap<String, SchemaEntry>>,
    host: ScriptHost,
    /// The modules (`require`) this version has read.
    libs: Arc<Libs>,
}

impl ScriptPlugin {
    /// Loads a script: compiles it and runs its top level once with an empty `config` to read its metadata and
    /// check its registrations. The name defaults to the file's stem.
    pub fn load(file: &Path, host: &ScriptHost) -> Result<ScriptPlugin, ScriptError> {
        let source = std::fs::read_to_string(file)
            .map_err(|e| ScriptError::whole_file(file, format!("cannot read the script: {e}")))?;
        ScriptPlugin::from_source(file, source, host)
    }

    /// [`ScriptPlugin::load`] with the source already read.
    pub fn from_source(file: &Path, source: String, host: &ScriptHost) -> Result<ScriptPlugin, ScriptError> {
        let chunk = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let stem = file.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut plugin = ScriptPlugin {
            meta: PluginMeta::new(&stem).author(""),
            file: file.to_owned(),
            chunk,
            source: source.into(),
            schema: None,
            host: host.clone(),
            libs: Arc::new(Libs::new(file.parent().unwrap_or(Path::new(".")))),
        };
        let env = HostEnv {
            bot_id: None,
            plugin: stem.clone(),
            api: None,
            state: host.state.clone(),
            config: Value::Object(Default::default()),
            http_allow: Default::default(),
            fleet: None,
        };
        let (_lua, registrations) = plugin.start(env).map_err(|e| ScriptError::from_message(file, &plugin.chunk, e))?;
        let declared = registrations.meta.unwrap_or_default();
        let name = declared.name.unwrap_or(stem);
        if !valid_name(&name) {
            return Err(ScriptError::whole_file(
                file,
                format!(
                    "invalid plugin name {name:?}: use 1-64 characters of a-z, 0-9, _ and -, starting with a letter"
                ),
            ));
        }
        let mut meta = PluginMeta::new(&name).author("");
        meta.description = declared.description.unwrap_or_default();
        meta.version = declared.version.unwrap_or(meta.version);
        meta.author = declared.author.unwrap_or_default();
        meta.dependencies = declared.dependencies;
        meta.supports_hot_reload = declared.supports_hot_reload.unwrap_or(true);
        meta.script = true;
        plugin.meta = meta;
        plugin.schema = declared.config_schema;
        Ok(plugin)
    }

    /// The script file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// A fresh sandboxed VM with the host API, its top level run: the VM and what the script registered. On
    /// failure, the error as `chunk:line: message`.
    fn start(&self, env: HostEnv) -> Result<(Lua, Registrations), String> {
        let limits = &self.host.limits;
        let fail = |e: mlua::Error| describe(&e, &self.chunk, limits);
        let lua = vm::new_vm(limits, &self.chunk).map_err(fail)?;
        api::install(&lua, env).map_err(fail)?;
        modules::install(&lua, self.libs.clone()).map_err(fail)?;
        vm::seal(&lua, limits).map_err(fail)?;
        // Text only: a file that starts like Luau bytecode would otherwise be loaded as bytecode, which Luau does
        // not check (the fuzzer's malformed "bytecode" crashed the process).
        let chunk = lua.load(&*self.source).set_name(format!("={}", self.chunk)).set_mode(mlua::chunk::ChunkMode::Text);
        vm::with_budget(limits.cpu, || chunk.exec()).map_err(fail)?;
        let registrations = lua.remove_app_data::<Registrations>().unwrap_or_default();
        Ok((lua, registrations))
    }

    fn check(&self, config: &Value) -> Result<(), ConfigProblem> {
        let empty = serde_json::Map::new();
        let fields = match config {
            Value::Null => &empty,
            Value::Object(fields) => fields,
            _ => return Err(ConfigProblem::new("", "expected a mapping of settings")),
        };
        let Some(schema) = &self.schema else { return Ok(()) };
        for (key, value) in fields {
            let Some(entry) = schema.get(key) else {
                let known: Vec<&str> = schema.keys().map(String::as_str).collect();
                let message = format!("unknown setting `{key}` (expected one of: {})", known.join(", "));
                return Err(ConfigProblem::new(key, message));
            };
            let optional_null = value.is_null() && !entry.required;
            if !optional_null && !entry.kind.accepts(value) {
                return Err(ConfigProblem::new(key, format!("expected {}", entry.kind.describe())));
            }
        }
        if let Some((key, _)) = schema.iter().find(|(key, entry)| entry.required && !fields.contains_key(*key)) {
            return Err(ConfigProblem::new("", format!("missing setting `{key}`")));
        }
        Ok(())
    }
}

impl PluginFactory for ScriptPlugin {
    fn meta(&self) -> &PluginMeta {
        &self.meta
    }

    /// Any mapping, unless the script declares a `config_schema`: then only its keys, with their types, and
    /// every key not marked optional.
    fn check_config(&self, config: &Value) -> Result<(), ConfigProblem> {
        self.check(config)
    }

    fn build(&self, cx: &PluginContext, router: &mut Router) -> anyhow::Result<Arc<dyn LoadedPlugin>> {
        let config = if cx.config.is_null() { Value::Object(Default::default()) } else { cx.config.clone() };
        let slot = BotSlot::default();
        let fleet = FleetEnv { storage: cx.db.clone(), notifier: self.host.notifier.clone(), slot: slot.clone() };
        let env = HostEnv {
            bot_id: Some(cx.bot_id.clone()),
            plugin: self.meta.name.clone(),
            api: Some(cx.api.clone()),
            state: self.host.state.clone(),
            config,
            http_allow: cx.http_allow.clone(),
            fleet: Some(fleet),
        };
        let (lua, registrations) = self.start(env).map_err(|e| anyhow!("{}", self.located(e)))?;
        let timers = lua.app_data_ref::<Arc<Timers>>().map(|t| t.clone()).unwrap_or_default();
        let instance = Arc::new_cyclic(|me| ScriptInstance {
            me: me.clone(),
            timers,
            lua,
            coroutines: vm::Coroutines::default(),
            chunk: self.chunk.clone(),
            limits: self.host.limits,
            hooks: registrations.hooks,
            slot,
        });
        let name = &self.meta.name;
        for (route, function) in registrations.routes {
            let handler = instance.handler(function);
            match route {
                RouteDecl::Command { name: command, description, state, admin: false } => {
                    router.add_command(name, &command, &description, state, handler);
                }
                RouteDecl::Command { name: command, state, admin: true, .. } => {
                    router.add_admin_command(name, &command, state, handler);
                }
                RouteDecl::Message(filter) => router.add(name, UpdateFilter::Message(filter), handler),
                RouteDecl::EditedMessage(filter) => router.add(name, UpdateFilter::EditedMessage(filter), handler),
                RouteDecl::Callback(filter) => router.add(name, UpdateFilter::CallbackQuery(filter), handler),
                RouteDecl::Update(filter) => router.add(name, filter, handler),
            }
        }
        for hook in registrations.error_hooks {
            router.add_error_hook(name, instance.error_hook(hook));
        }
        let (bot_id, plugin) = (cx.bot_id.to_string(), name.clone());
        let (shutdown, tasks) = (cx.shutdown.clone(), cx.tasks.clone());
        instance.timers.start(TimerStart { runner: instance.timer_runner(), shutdown, tasks, bot_id, plugin });
        Ok(instance)
    }
}

impl ScriptPlugin {
    /// Whether a module this version required has changed since.
    fn libs_changed(&self) -> bool {
        self.libs.changed()
    }

    /// `chunk:line: message` with the script's path instead of its file name.
    fn located(&self, message: String) -> String {
        ScriptError::from_message(&self.file, &self.chunk, message).to_string()
    }
}

/// One bot's instance of a script: its VM and lifecycle hooks. Handlers hold it; it goes when the bot's router
/// does.
struct ScriptInstance {
    /// Itself, for the calls that run on the script threads and must own it.
    me: std::sync::Weak<ScriptInstance>,
    /// Its `timer`s, stopped on unload.
    timers: Arc<Timers>,
    lua: Lua,
    coroutines: vm::Coroutines,
    chunk: String,
    limits: ScriptLimits,
    hooks: Hooks,
    /// The bot as its first update showed it (`bot.username`, `bot.commands()`).
    slot: BotSlot,
}

impl ScriptInstance {
    /// Calls a script function, with the arguments `args` makes in its VM, on the script threads ([`pool`]):
    /// as a coroutine, under the CPU budget and the wall-clock limit.
    async fn call<A>(
        self: Arc<Self>,
        what: &'static str,
        function: Function,
        args: impl FnOnce(&Lua) -> mlua::Result<A> + Send + 'static,
    ) -> anyhow::Result<()>
    where
        A: IntoLuaMulti + 'static,
    {
        pool::run(async move {
            let args = args(&self.lua).map_err(|e| anyhow!("{what}: {e}"))?;
            let (thread, call) = self
                .coroutines
                .call(&self.lua, &function, args, self.limits.cpu)
                .map_err(|e| anyhow!("{what}: {e}"))?;
            match tokio::time::timeout(WALL_LIMIT, call).await {
                Ok(Ok(())) => {
                    self.coroutines.give_back(thread);
                    Ok(())
                }
                Ok(Err(error)) => {
                    vm::recover(&self.lua, &error);
                    Err(anyhow!("{}", describe(&error, &self.chunk, &self.limits)))
                }
                Err(_) => {
                    Err(anyhow!("{}: {what} was still running after {} s; stopped", self.chunk, WALL_LIMIT.as_secs()))
                }
            }
        })
        .await?
    }

    /// Runs a timer's function as a call of this instance, while the instance lives.
    fn timer_runner(self: &Arc<Self>) -> TimerRunner {
        let me = Arc::downgrade(self);
        Arc::new(move |function| {
            let me = me.clone();
            Box::pin(async move {
                match me.upgrade() {
                    Some(instance) => instance.call("the timer", function, |_| Ok(())).await,
                    None => Ok(()),
                }
            })
        })
    }

    fn handler(self: &Arc<Self>, function: Function) -> HandlerFn {
        let instance = self.clone();
        Arc::new(move |cx| {
            api::saw(&instance.slot, &cx);
            let (instance, function) = (instance.clone(), function.clone());
            Box::pin(instance.call("the handler", function, move |_| Ok(LuaCtx(cx))))
        })
    }

    fn error_hook(self: &Arc<Self>, function: Function) -> ErrorHookFn {
        let instance = self.clone();
        Arc::new(move |cx, error| {
            api::saw(&instance.slot, &cx);
            let (instance, function) = (instance.clone(), function.clone());
            Box::pin(instance.call("on_error", function, move |lua| Ok((LuaCtx(cx), api::error_table(lua, &error)?))))
        })
    }

    async fn hook(&self, what: &'static str, hook: &Option<Function>) -> anyhow::Result<()> {
        match (hook, self.me.upgrade()) {
            (Some(function), Some(me)) => me.call(what, function.clone(), |_| Ok(())).await,
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl LoadedPlugin for ScriptInstance {
    async fn on_load(&self, _cx: &PluginContext) -> anyhow::Result<()> {
        self.hook("on_load", &self.hooks.on_load).await
    }

    async fn on_unload(&self, _cx: &PluginContext) -> anyhow::Result<()> {
        let unloaded = self.hook("on_unload", &self.hooks.on_unload).await;
        self.timers.stop();
        unloaded
    }

    async fn on_bot_start(&self, _cx: &PluginContext) -> anyhow::Result<()> {
        self.hook("on_bot_start", &self.hooks.on_bot_start).await
    }

    async fn on_bot_stop(&self, _cx: &PluginContext) -> anyhow::Result<()> {
        self.hook("on_bot_stop", &self.hooks.on_bot_stop).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn host() -> ScriptHost {
        ScriptHost {
            limits: ScriptLimits { memory: 8 << 20, cpu: Duration::from_millis(200) },
            state: Arc::new(MemoryScriptState::default()),
            notifier: Notifier::default(),
        }
    }

    fn load(source: &str) -> Result<ScriptPlugin, ScriptError> {
        ScriptPlugin::from_source(Path::new("plugins/t.luau"), source.to_owned(), &host())
    }

    #[test]
    fn metadata_is_declared_or_defaults_to_the_file_name() {
        let plugin = load(
            r#"plugin { name = "greeter", description = "Greets", version = "2.1.0", author = "Ann",
                       dependencies = { "start" }, supports_hot_reload = false }
               command("hi", "Say hi", function(ctx) ctx:reply("hi") end)"#,
        )
        .unwrap();
        let meta = plugin.meta();
        assert_eq!((meta.name.as_str(), meta.version.as_str(), meta.author.as_str()), ("greeter", "2.1.0", "Ann"));
        assert_eq!(meta.dependencies, ["start"]);
        assert!(!meta.supports_hot_reload && meta.script);
        let plugin = load("message(function(ctx) end)").unwrap();
        assert_eq!(plugin.meta().name, "t");
        assert!(plugin.meta().supports_hot_reload);
    }

    #[test]
    fn load_errors_carry_file_and_line() {
        let error = load("plugin { name = 'x' }\n\nlocal = 1\n").err().unwrap();
        assert_eq!((error.file.as_path(), error.line), (Path::new("plugins/t.luau"), 3), "{error}");
        assert!(error.to_string().starts_with("plugins/t.luau:3: Expected identifier"), "{error}");
        // Registration errors point at the call.
        let error = load("\nmessage({ regex = '(' }, function() end)").err().unwrap();
        assert_eq!(error.line, 2, "{error}");
        assert!(error.message.contains("invalid regex"), "{error}");
        let error = load("callback({ dat = 'x' }, function() end)").err().unwrap();
        assert!(error.message.contains("unknown key `dat`"), "{error}");
        let error = load("plugin { name = 'Bad Name' }").err().unwrap();
        assert!(error.message.contains("invalid plugin name"), "{error}");
        // Waiting host calls are refused at the top level.
        let error = load("store.set('x', 1)").err().unwrap();
        assert!(error.message.contains("not at the top level"), "{error}");
        let error = load("while true do end").err().unwrap();
        assert!(error.message.contains("time budget"), "{error}");
    }

    #[test]
    fn a_config_schema_checks_the_yaml_block() {
        let plugin = load("plugin { config_schema = { greeting = 'string', times = 'integer?' } }").unwrap();
        plugin.check(&json!({"greeting": "hi", "times": 2})).unwrap();
        plugin.check(&json!({"greeting": "hi"})).unwrap();
        assert_eq!(
            plugin.check(&json!({"greeting": 1})).unwrap_err(),
            ConfigProblem::new("greeting", "expected a string")
        );
        let ConfigProblem { path, message } = plugin.check(&json!({"greeting": "hi", "tims": 2})).unwrap_err();
        assert_eq!(path, "tims");
        assert!(message.contains("unknown setting `tims`"), "{message}");
        assert!(plugin.check(&json!({})).unwrap_err().message.contains("missing setting `greeting`"));
        // Without a schema any mapping goes, and nothing else.
        let plugin = load("").unwrap();
        plugin.check(&json!({"anything": [1]})).unwrap();
        plugin.check(&Value::Null).unwrap();
        assert!(plugin.check(&json!([1, 2])).is_err());
    }

    #[test]
    fn a_file_that_looks_like_bytecode_is_read_as_text() {
        // Bad input: bytes that start like a Luau bytecode chunk (version 3), which Luau would load unchecked.
        let error = load("\u{3};\u{e0}\u{1}\u{ff}\u{ff}\u{ff}\u{ff}").err().expect("not a script");
        assert_eq!(error.file, Path::new("plugins/t.luau"), "{error}");
    }

    #[test]
    fn what_a_script_logs_is_bounded_on_the_host() {
        use crate::telemetry::capture::logged_by;
        // Bad input: print of many long strings, and a log line whose fields would expand into 2^22 values.
        let (loaded, logged) = logged_by(|| {
            load("local s = string.rep('y', 100000) print(s, s, s, s, s, s, s, s, s, s) log.info(s)")
                .map(drop)
                .unwrap();
            load("local t = {} for _ = 1, 22 do t = {a = t, b = t} end log.info('dag', t)").map(drop)
        });
        let error = loaded.unwrap_err();
        assert!(error.message.contains("too large to convert"), "{error}");
        let lines: Vec<&str> = logged.lines().filter(|l| l.contains("yyyy")).collect();
        assert_eq!(lines.len(), 2, "{logged:.300}");
        for line in lines {
            assert!(line.len() < 9 << 10, "a line of {} bytes", line.len());
            assert!(line.contains("more bytes cut)"), "{line:.100}");
        }
    }
}
