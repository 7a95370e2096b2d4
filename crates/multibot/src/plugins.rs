//! Plugins: the [`Plugin`] trait (the spec's `BasePlugin`), the [`PluginContext`] a plugin receives, the
//! [`PluginRegistry`] of plugins by name, and the order a bot loads them in (dependencies first, then YAML
//! order).
//!
//! - `router`: the [`Router`] handlers register on, the [`UpdateFilter`] of each update type and its filters, and
//!   [`Handlers`], a plugin's view of it.
//! - `ctx`: [`Ctx`], what a handler gets for one update; `keyboard`: [`check_keyboard`], Telegram's button limits.
//! - `handle`: [`BotHandle`], the bot as its plugins see it, and the [`Notifier`] to its admins.
//! - `builtin`: the plugins compiled in, one file each.
//! - [`script`]: script plugins, Luau files in `PLUGINS_DIR`.

pub mod builtin;
mod ctx;
mod handle;
mod keyboard;
mod router;
pub mod script;

use std::{collections::BTreeMap, marker::PhantomData, sync::Arc};

use async_trait::async_trait;
pub use ctx::{Ctx, Fsm, HandlerError, Reply};
pub use handle::{BotHandle, Notifier};
pub use keyboard::{CALLBACK_DATA_LIMIT, KeyboardError, check_keyboard};
use parking_lot::RwLock;
pub use router::{
    CallbackFilter, ChatType, CommandInfo, ContentType, ErrorHookFn, HandlerFn, Handlers, MemberFilter, MessageFilter,
    PayloadFilter, QueryFilter, ReactionFilter, Router, StateFilter, UpdateFilter,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::{BotId, PluginCatalog, PluginEntry},
    storage::{PluginStore, Storage},
    telegram::BotApi,
};

/// What a plugin says about itself (the spec's class attributes).
#[derive(Debug, Clone, PartialEq)]
pub struct PluginMeta {
    /// The name bots use in their YAML.
    pub name: String,
    /// One line about what it does.
    pub description: String,
    /// Semantic version.
    pub version: String,
    /// Who wrote it.
    pub author: String,
    /// Plugins that must be loaded first.
    pub dependencies: Vec<String>,
    /// Whether it can be reloaded in a running bot; if not, the bot is restarted instead.
    pub supports_hot_reload: bool,
    /// True for script plugins, false for native ones.
    pub script: bool,
}

impl PluginMeta {
    /// Metadata with this name, version 1.0.0, no dependencies and hot reload supported.
    pub fn new(name: &str) -> PluginMeta {
        PluginMeta {
            name: name.to_owned(),
            description: String::new(),
            version: "1.0.0".to_owned(),
            author: "Multibot".to_owned(),
            dependencies: Vec::new(),
            supports_hot_reload: true,
            script: false,
        }
    }

    /// Sets the description.
    pub fn description(mut self, text: &str) -> PluginMeta {
        self.description = text.to_owned();
        self
    }

    /// Sets the version.
    pub fn version(mut self, version: &str) -> PluginMeta {
        self.version = version.to_owned();
        self
    }

    /// Sets the author.
    pub fn author(mut self, author: &str) -> PluginMeta {
        self.author = author.to_owned();
        self
    }

    /// Sets the dependencies.
    pub fn dependencies(mut self, names: &[&str]) -> PluginMeta {
        self.dependencies = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    /// Sets whether the plugin supports hot reload.
    pub fn supports_hot_reload(mut self, yes: bool) -> PluginMeta {
        self.supports_hot_reload = yes;
        self
    }
}

/// Everything a plugin instance may touch: its bot, the Bot API, its configuration, the database and its shutdown
/// token.
#[derive(Clone)]
pub struct PluginContext {
    /// The bot this instance belongs to (the spec's `bot_id`).
    pub bot_id: BotId,
    /// The plugin's name.
    pub plugin: String,
    /// The bot's Bot API client.
    pub api: BotApi,
    /// The raw `config:` block.
    pub config: Value,
    /// `http:` of the plugin's entry: the hosts a script plugin may reach (nothing unless listed).
    pub http_allow: crate::config::HttpAllow,
    /// Cancelled when the bot stops.
    pub shutdown: CancellationToken,
    /// The database (the spec's `db`): bots, users, events and plugin state.
    pub db: Storage,
    /// The bot's tasks: a plugin spawns here (see [`PluginContext::spawn`]) so that stopping the bot waits for it.
    pub tasks: TaskTracker,
}

impl PluginContext {
    /// Runs `task` as one of the bot's tasks: stopping the bot waits for it (it should end on `shutdown`).
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// The value of `key` in the `config:` block, or `default` when absent or of another type (the spec's
    /// `get_config(key, default)`).
    pub fn get_config<T: DeserializeOwned>(&self, key: &str, default: T) -> T {
        PluginContext::get_config_of(&self.config, key, default)
    }

    /// This plugin's persistent store in this bot: `cx.store().get::<T>("key")`, `.set("key", &value)`, ...
    ///
    /// A plugin keeps it from [`Plugin::new`]; its handlers can also reach it with
    /// [`Ctx::plugin_store`]. Values are JSON in the database, so they outlive restarts.
    ///
    /// ```rust
    /// # use multibot::{
    /// #     config::{BotId, BotSettings, BotToken},
    /// #     prelude::*,
    /// #     storage::Storage,
    /// #     telegram::BotApi,
    /// # };
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// # let token = BotToken::parse("123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ").expect("a well-formed token");
    /// # let api_url = "http://127.0.0.1:1".parse()?;
    /// # let cx = PluginContext {
    /// #     bot_id: BotId::parse("shop").expect("a valid id"),
    /// #     plugin: "visits".to_owned(),
    /// #     api: BotApi::new(reqwest::Client::new(), &api_url, &token, &BotSettings::default(), None),
    /// #     config: serde_json::json!({}),
    /// #     http_allow: Default::default(),
    /// #     shutdown: Default::default(),
    /// #     db: Storage::in_memory().await?,
    /// #     tasks: Default::default(),
    /// # };
    /// // `cx` is the `PluginContext` of the plugin `visits` in the bot `shop`.
    /// let store = cx.store();
    /// let visits = store.get::<u64>("visits").await?.unwrap_or(0) + 1;
    /// store.set("visits", &visits).await?;
    /// assert_eq!(store.get::<u64>("visits").await?, Some(1));
    ///
    /// // A handler's `cx.plugin_store("visits")` is the same store; each bot has its own.
    /// assert_eq!(cx.db.plugin_store("shop", "visits").list().await?, [("visits".to_owned(), serde_json::json!(1))]);
    /// assert_eq!(cx.db.plugin_store("other_bot", "visits").get::<u64>("visits").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn store(&self) -> PluginStore {
        self.db.plugin_store(self.bot_id.as_str(), &self.plugin)
    }

    /// Deprecated: [`PluginContext::store`].
    #[deprecated(note = "use `cx.store()`")]
    pub fn state(&self) -> PluginStore {
        self.store()
    }

    fn get_config_of<T: DeserializeOwned>(config: &Value, key: &str, default: T) -> T {
        config.get(key).and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or(default)
    }
}

/// A native plugin: a typed configuration, a constructor, handlers and lifecycle hooks.
///
/// # Example
/// `/poll` asks the question of the `config:` block with Yes and No buttons; a press answers it. A test can build
/// the plugin for a made-up bot, without a network, and see what it registered.
///
/// ```rust
/// # use teloxide_core::types::AllowedUpdate;
/// use std::sync::Arc;
///
/// use multibot::{
///     config::{BotId, BotSettings, BotToken},
///     plugins::{PluginRegistry, Router},
///     prelude::*,
///     storage::Storage,
///     telegram::BotApi,
/// };
///
/// /// `config:` of the `poll` plugin.
/// #[derive(Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct PollConfig {
///     question: String,
/// }
///
/// /// The `poll` plugin.
/// struct Poll {
///     question: String,
/// }
///
/// impl Plugin for Poll {
///     type Config = PollConfig;
///
///     fn meta() -> PluginMeta {
///         PluginMeta::new("poll").description("Asks a yes/no question").version("0.2.0")
///     }
///
///     fn new(config: PollConfig, _cx: &PluginContext) -> anyhow::Result<Poll> {
///         Ok(Poll { question: config.question })
///     }
///
///     fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
///         handlers
///             .command("poll", "Ask the question", Poll::ask)
///             .callback_query(CallbackFilter::prefix("vote:"), Poll::vote);
///     }
/// }
///
/// impl Poll {
///     async fn ask(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
///         let buttons = [
///             InlineKeyboardButton::callback("Yes", "vote:yes"),
///             InlineKeyboardButton::callback("No", "vote:no"),
///         ];
///         cx.reply(&self.question).keyboard(InlineKeyboardMarkup::new([buttons])).await?;
///         Ok(())
///     }
///
///     async fn vote(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
///         let choice = cx.callback_data().and_then(|data| data.strip_prefix("vote:")).unwrap_or_default();
///         cx.answer_callback(Some("Thanks!")).await?;
///         cx.edit_text(format!("{} You said {choice}.", self.question), None).await?;
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mut registry = PluginRegistry::default();
/// registry.register::<Poll>();
///
/// // The context the runtime gives each plugin of a bot; building the plugin calls no Bot API method.
/// let token = BotToken::parse("123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ").expect("a well-formed token");
/// let api_url = "https://api.telegram.org".parse()?;
/// let cx = PluginContext {
///     bot_id: BotId::parse("survey").expect("a valid id"),
///     plugin: "poll".to_owned(),
///     api: BotApi::new(reqwest::Client::new(), &api_url, &token, &BotSettings::default(), None),
///     config: serde_json::json!({ "question": "Lunch at noon?" }),
///     http_allow: Default::default(),
///     shutdown: Default::default(),
///     db: Storage::in_memory().await?,
///     tasks: Default::default(),
/// };
/// let mut router = Router::default();
/// registry.get("poll").expect("registered").build(&cx, &mut router)?;
/// assert_eq!(router.commands()[0].command, "poll");
/// assert_eq!(router.update_types(), [AllowedUpdate::Message, AllowedUpdate::CallbackQuery]);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait Plugin: Send + Sync + Sized + 'static {
    /// The `config:` block, deserialized; an absent block is `{}`. Use `#[serde(deny_unknown_fields)]` so
    /// typos are configuration errors.
    type Config: DeserializeOwned + Send + Sync + 'static;

    /// Name, description, version, author, dependencies, hot reload support.
    fn meta() -> PluginMeta;

    /// Builds the instance for one bot.
    fn new(config: Self::Config, cx: &PluginContext) -> anyhow::Result<Self>;

    /// Registers the handlers.
    fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>);

    /// Called when the plugin is loaded for a bot.
    async fn on_load(&self, _cx: &PluginContext) -> anyhow::Result<()> {
        Ok(())
    }

    /// Called when the plugin is unloaded.
    async fn on_unload(&self, _cx: &PluginContext) -> anyhow::Result<()> {
        Ok(())
    }

    /// Called when the bot starts receiving updates.
    async fn on_bot_start(&self, _cx: &PluginContext) -> anyhow::Result<()> {
        Ok(())
    }

    /// Called when the bot stops.
    async fn on_bot_stop(&self, _cx: &PluginContext) -> anyhow::Result<()> {
        Ok(())
    }
}

/// A plugin instance loaded in a bot, whatever its kind.
#[async_trait]
pub trait LoadedPlugin: Send + Sync {
    /// See [`Plugin::on_load`].
    async fn on_load(&self, cx: &PluginContext) -> anyhow::Result<()>;
    /// See [`Plugin::on_unload`].
    async fn on_unload(&self, cx: &PluginContext) -> anyhow::Result<()>;
    /// See [`Plugin::on_bot_start`].
    async fn on_bot_start(&self, cx: &PluginContext) -> anyhow::Result<()>;
    /// See [`Plugin::on_bot_stop`].
    async fn on_bot_stop(&self, cx: &PluginContext) -> anyhow::Result<()>;
}

#[async_trait]
impl<P: Plugin> LoadedPlugin for P {
    async fn on_load(&self, cx: &PluginContext) -> anyhow::Result<()> {
        Plugin::on_load(self, cx).await
    }
    async fn on_unload(&self, cx: &PluginContext) -> anyhow::Result<()> {
        Plugin::on_unload(self, cx).await
    }
    async fn on_bot_start(&self, cx: &PluginContext) -> anyhow::Result<()> {
        Plugin::on_bot_start(self, cx).await
    }
    async fn on_bot_stop(&self, cx: &PluginContext) -> anyhow::Result<()> {
        Plugin::on_bot_stop(self, cx).await
    }
}

/// The [`Plugin::Config`] of a plugin that takes no settings: an absent or empty `config:` block; any key in it
/// is a configuration error.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

/// Makes plugin instances of one kind; the registry holds one per plugin name.
pub trait PluginFactory: Send + Sync {
    /// The plugin's metadata.
    fn meta(&self) -> &PluginMeta;

    /// Checks a `config:` block.
    fn check_config(&self, config: &Value) -> Result<(), ConfigProblem>;

    /// Builds an instance for a bot and registers its handlers on `router`.
    fn build(&self, cx: &PluginContext, router: &mut Router) -> anyhow::Result<Arc<dyn LoadedPlugin>>;
}

/// Why a plugin's `config:` block is refused: where inside the block, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigProblem {
    /// The path inside the block (e.g. `commands[1].command`), empty for the block itself.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigProblem {
    /// A problem at `path` inside the block.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> ConfigProblem {
        ConfigProblem { path: path.into(), message: message.into() }
    }
}

/// The factory of a native plugin type.
struct Native<P> {
    meta: PluginMeta,
    plugin: PhantomData<fn() -> P>,
}

fn parse_config<C: DeserializeOwned>(config: &Value) -> Result<C, ConfigProblem> {
    let config = if config.is_null() { Value::Object(Default::default()) } else { config.clone() };
    serde_path_to_error::deserialize(config).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigProblem::new(path, e.into_inner().to_string())
    })
}

impl<P: Plugin> PluginFactory for Native<P> {
    fn meta(&self) -> &PluginMeta {
        &self.meta
    }

    fn check_config(&self, config: &Value) -> Result<(), ConfigProblem> {
        parse_config::<P::Config>(config).map(drop)
    }

    fn build(&self, cx: &PluginContext, router: &mut Router) -> anyhow::Result<Arc<dyn LoadedPlugin>> {
        let config = parse_config::<P::Config>(&cx.config)
            .map_err(|p| anyhow::anyhow!("plugin {} config {}: {}", self.meta.name, p.path, p.message))?;
        let plugin = Arc::new(P::new(config, cx)?);
        let mut handlers = Handlers::new(plugin.clone(), &self.meta.name, router);
        plugin.setup_handlers(&mut handlers);
        Ok(plugin)
    }
}

/// Every plugin a bot can use, by name: native plugins, and script plugins, which a reload replaces as a whole
/// (clones of a registry share its script plugins, so every holder sees a reload).
#[derive(Clone, Default)]
pub struct PluginRegistry {
    factories: BTreeMap<String, Arc<dyn PluginFactory>>,
    scripts: Arc<RwLock<BTreeMap<String, Arc<dyn PluginFactory>>>>,
}

impl PluginRegistry {
    /// A registry holding the built-in plugins.
    pub fn builtin() -> PluginRegistry {
        let mut registry = PluginRegistry::default();
        builtin::register_all(&mut registry);
        registry
    }

    /// Adds a native plugin type (replacing one of the same name).
    pub fn register<P: Plugin>(&mut self) {
        let meta = P::meta();
        self.factories.insert(meta.name.clone(), Arc::new(Native::<P> { meta, plugin: PhantomData }));
    }

    /// Adds any factory (script plugins use this).
    pub fn register_factory(&mut self, factory: Arc<dyn PluginFactory>) {
        self.factories.insert(factory.meta().name.clone(), factory);
    }

    /// Replaces the script plugins (a native plugin's name is never replaced).
    pub fn set_scripts(&self, scripts: Vec<Arc<dyn PluginFactory>>) {
        *self.scripts.write() = scripts.into_iter().map(|f| (f.meta().name.clone(), f)).collect();
    }

    /// Whether a native plugin has this name.
    pub fn is_native(&self, name: &str) -> bool {
        self.factories.contains_key(name)
    }

    /// The factory for a name.
    pub fn get(&self, name: &str) -> Option<Arc<dyn PluginFactory>> {
        match self.factories.get(name) {
            Some(native) => Some(native.clone()),
            None => self.scripts.read().get(name).cloned(),
        }
    }

    /// Every plugin's metadata, by name.
    pub fn list(&self) -> Vec<PluginMeta> {
        let scripts = self.scripts.read();
        let mut all: BTreeMap<&str, PluginMeta> =
            scripts.iter().map(|(name, f)| (name.as_str(), f.meta().clone())).collect();
        all.extend(self.factories.iter().map(|(name, f)| (name.as_str(), f.meta().clone())));
        all.into_values().collect()
    }

    /// The enabled entries of a bot's `plugins:` in load order: each plugin after its dependencies, otherwise in
    /// YAML order. The loader has already rejected missing and circular dependencies.
    pub fn load_order<'a>(&self, entries: &'a [PluginEntry]) -> Vec<&'a PluginEntry> {
        let enabled: Vec<&PluginEntry> = entries.iter().filter(|e| e.enabled).collect();
        let mut order: Vec<&PluginEntry> = Vec::with_capacity(enabled.len());
        fn visit<'a>(
            registry: &PluginRegistry,
            entry: &'a PluginEntry,
            enabled: &[&'a PluginEntry],
            order: &mut Vec<&'a PluginEntry>,
            path: &mut Vec<String>,
        ) {
            if order.iter().any(|e| e.name == entry.name) || path.contains(&entry.name) {
                return;
            }
            path.push(entry.name.clone());
            let dependencies = registry.get(&entry.name).map(|f| f.meta().dependencies.clone()).unwrap_or_default();
            for dependency in dependencies {
                if let Some(dep) = enabled.iter().find(|e| e.name == dependency) {
                    visit(registry, dep, enabled, order, path);
                }
            }
            path.pop();
            order.push(entry);
        }
        for entry in &enabled {
            visit(self, entry, &enabled, &mut order, &mut Vec::new());
        }
        order
    }
}

impl PluginCatalog for PluginRegistry {
    fn dependencies(&self, name: &str) -> Option<Vec<String>> {
        self.get(name).map(|f| f.meta().dependencies.clone())
    }

    fn check_config(&self, name: &str, config: &Value) -> Result<(), (String, String)> {
        match self.get(name) {
            Some(factory) => factory.check_config(config).map_err(|p| (p.path, p.message)),
            None => Err((String::new(), format!("unknown plugin {name:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A plugin that depends on `start`, to test the load order.
    struct NeedsStart;

    impl Plugin for NeedsStart {
        type Config = NoConfig;
        fn meta() -> PluginMeta {
            PluginMeta::new("needs_start").dependencies(&["start"])
        }
        fn new(_config: NoConfig, _cx: &PluginContext) -> anyhow::Result<NeedsStart> {
            Ok(NeedsStart)
        }
        fn setup_handlers(&self, _handlers: &mut Handlers<'_, Self>) {}
    }

    fn entry(name: &str) -> PluginEntry {
        PluginEntry::new(name)
    }

    #[test]
    fn dependencies_load_first_then_yaml_order() {
        let mut registry = PluginRegistry::builtin();
        registry.register::<NeedsStart>();
        let entries = [
            entry("echo"),
            entry("needs_start"),
            entry("help"),
            entry("start"),
            PluginEntry { enabled: false, ..entry("menu") },
        ];
        let names: Vec<_> = registry.load_order(&entries).iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["echo", "start", "needs_start", "help"]);
    }

    #[test]
    fn typed_config_errors_carry_their_path() {
        let registry = PluginRegistry::builtin();
        let error = registry.check_config("help", &json!({"commands": [{"command": "/a"}]})).unwrap_err();
        assert_eq!(error.0, "commands[0]");
        assert!(error.1.contains("description"), "{}", error.1);
        let error = registry.check_config("start", &json!({"welcome_mesage": "typo"})).unwrap_err();
        assert!(error.1.contains("unknown field `welcome_mesage`"), "{}", error.1);
        registry.check_config("start", &Value::Null).unwrap();
        for (value, valid) in [(json!("Eh?"), true), (json!(false), true), (json!(""), false), (json!(true), false)] {
            let checked = registry.check_config("help", &json!({ "unknown_command": value }));
            assert_eq!(checked.is_ok(), valid, "{value}");
            if let Err((path, message)) = checked {
                assert_eq!(
                    (path.as_str(), message.as_str()),
                    ("unknown_command", "expected a text, or false to send nothing")
                );
            }
        }
        assert!(PluginContext::get_config_of(&json!({"echo_all": true}), "echo_all", false));
    }
}
