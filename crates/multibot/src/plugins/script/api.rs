//! The host API a script sees: the globals ([`install`]) that declare metadata and register handlers at the top
//! level, read the configuration, send, log and use the plugin's `store`; and (`ctx`) [`LuaCtx`], the `ctx` a
//! handler receives, with its `ctx.fsm`; `bot_api`: the `api` global (every Bot API method); `update`:
//! `ctx.update` and `on_update`; `libs`: `json` and `time`. docs/scripts.md is its reference.
//!
//! Registration calls run only while the top level runs: they collect [`Registrations`] in the VM's app data,
//! which the instance turns into routes once the top level returns. Host calls that wait (sending, the store, the FSM) run
//! only in handlers and lifecycle hooks, where the script runs as a coroutine that yields while they wait.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use mlua::{Function, Lua, Table, Value};
use regex::Regex;
use teloxide_core::types::ChatId;

mod bot_api;
mod coroutines;
mod ctx;
mod fleet;
mod http;
mod libs;
mod timers;
mod update;

pub(super) use ctx::{LuaCtx, error_table};
use ctx::{SendOpts, off_vm};
pub(super) use fleet::{BotSlot, FleetEnv, saw};
pub(super) use timers::{Runner as TimerRunner, Start as TimerStart, Timers};

use super::{
    state::ScriptStateStore,
    vm::{to_json, to_lua, to_lua_frozen},
};
use crate::{
    config::BotId,
    plugins::{CallbackFilter, MessageFilter, StateFilter},
    telegram::BotApi,
};

/// Turns the filter table of `message(filter, handler)` (and its kin) into the route it declares.
type RouteOf = fn(Option<Table>) -> mlua::Result<RouteDecl>;

/// What the host gives one VM: whose it is, the Bot API, its state and its configuration.
pub(super) struct HostEnv {
    /// The bot's id; none while discovering.
    pub(super) bot_id: Option<BotId>,
    /// The plugin's name.
    pub(super) plugin: String,
    /// The bot's Bot API client; none while discovering.
    pub(super) api: Option<BotApi>,
    /// Plugin state.
    pub(super) state: Arc<dyn ScriptStateStore>,
    /// The `config:` block.
    pub(super) config: serde_json::Value,
    /// The hosts `http.get`/`http.post` may reach.
    pub(super) http_allow: crate::config::HttpAllow,
    /// The bot's data and the admins' notifier; none while discovering.
    pub(super) fleet: Option<FleetEnv>,
}

/// A type a `config_schema` entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SchemaType {
    String,
    Number,
    Integer,
    Boolean,
    Table,
    List,
    Any,
}

impl SchemaType {
    fn parse(name: &str) -> Option<SchemaType> {
        Some(match name {
            "string" => SchemaType::String,
            "number" => SchemaType::Number,
            "integer" => SchemaType::Integer,
            "boolean" => SchemaType::Boolean,
            "table" => SchemaType::Table,
            "list" => SchemaType::List,
            "any" => SchemaType::Any,
            _ => return None,
        })
    }

    /// Whether a YAML value has this type.
    pub(super) fn accepts(self, value: &serde_json::Value) -> bool {
        match self {
            SchemaType::String => value.is_string(),
            SchemaType::Number => value.is_number(),
            SchemaType::Integer => value.is_i64() || value.is_u64(),
            SchemaType::Boolean => value.is_boolean(),
            SchemaType::Table => value.is_object(),
            SchemaType::List => value.is_array(),
            SchemaType::Any => true,
        }
    }

    /// The type in words, for errors.
    pub(super) fn describe(self) -> &'static str {
        match self {
            SchemaType::String => "a string",
            SchemaType::Number => "a number",
            SchemaType::Integer => "an integer",
            SchemaType::Boolean => "a boolean",
            SchemaType::Table => "a mapping",
            SchemaType::List => "a list",
            SchemaType::Any => "any value",
        }
    }
}

/// A `config_schema` entry: the type and whether the key must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SchemaEntry {
    pub(super) kind: SchemaType,
    pub(super) required: bool,
}

/// What `plugin { ... }` declared.
#[derive(Debug, Clone, Default)]
pub(super) struct MetaDecl {
    pub(super) name: Option<String>,
    pub(super) description: Option<String>,
    pub(super) version: Option<String>,
    pub(super) author: Option<String>,
    pub(super) dependencies: Vec<String>,
    pub(super) supports_hot_reload: Option<bool>,
    pub(super) config_schema: Option<BTreeMap<String, SchemaEntry>>,
}

/// A handler's route, as declared (`Update`: by `on_update`, any update type).
pub(super) enum RouteDecl {
    Command { name: String, description: String, state: StateFilter, admin: bool },
    Message(MessageFilter),
    EditedMessage(MessageFilter),
    Callback(CallbackFilter),
    Update(crate::plugins::UpdateFilter),
}

/// Lifecycle hooks a script registered.
#[derive(Default)]
pub(super) struct Hooks {
    pub(super) on_load: Option<Function>,
    pub(super) on_unload: Option<Function>,
    pub(super) on_bot_start: Option<Function>,
    pub(super) on_bot_stop: Option<Function>,
}

/// What the top level declared and registered; present in the VM's app data only while the top level runs.
#[derive(Default)]
pub(super) struct Registrations {
    pub(super) meta: Option<MetaDecl>,
    pub(super) routes: Vec<(RouteDecl, Function)>,
    pub(super) error_hooks: Vec<Function>,
    pub(super) hooks: Hooks,
}

fn runtime(message: impl std::fmt::Display) -> mlua::Error {
    mlua::Error::runtime(message)
}

/// Runs `register` on the registrations, or fails when the top level is over.
fn registering(lua: &Lua, what: &str, register: impl FnOnce(&mut Registrations)) -> mlua::Result<()> {
    let mut registrations = lua
        .app_data_mut::<Registrations>()
        .ok_or_else(|| runtime(format!("{what} can only be called at the top level of the script")))?;
    register(&mut registrations);
    Ok(())
}

/// Fails when called while the top level runs: host calls that wait need a handler or a hook.
fn not_at_top_level(lua: &Lua, what: &str) -> mlua::Result<()> {
    if lua.app_data_ref::<Registrations>().is_some() {
        return Err(runtime(format!(
            "{what} can only be called from a handler or a lifecycle hook, not at the top level"
        )));
    }
    Ok(())
}

/// Checks that a table has only these keys.
fn only_keys(table: &Table, what: &str, allowed: &[&str]) -> mlua::Result<()> {
    for pair in table.pairs::<Value, Value>() {
        let (key, _) = pair?;
        let key = match &key {
            Value::String(s) => s.to_str()?.to_owned(),
            other => format!("{other:?}"),
        };
        if !allowed.contains(&key.as_str()) {
            return Err(runtime(format!("{what}: unknown key `{key}` (expected one of: {})", allowed.join(", "))));
        }
    }
    Ok(())
}

fn state_filter(value: Value) -> mlua::Result<StateFilter> {
    match value {
        Value::Nil => Ok(StateFilter::Any),
        Value::Boolean(false) => Ok(StateFilter::None),
        Value::String(s) => Ok(StateFilter::Is(s.to_str()?.to_owned())),
        other => Err(runtime(format!("state must be a state name or false, not a {}", other.type_name()))),
    }
}

fn message_filter(filter: Option<Table>, what: &str) -> mlua::Result<MessageFilter> {
    let Some(filter) = filter else { return Ok(MessageFilter::any()) };
    only_keys(&filter, what, &["text", "regex", "content", "chat", "state"])?;
    let mut result =
        if filter.get::<Option<bool>>("text")?.unwrap_or(false) { MessageFilter::text() } else { MessageFilter::any() };
    if let Some(pattern) = filter.get::<Option<String>>("regex")? {
        let regex = Regex::new(&pattern).map_err(|e| runtime(format!("{what}: invalid regex {pattern:?}: {e}")))?;
        result = result.with_regex(regex);
    }
    if let Some(content) = named(&filter, what, "content")? {
        result = result.content(content);
    }
    if let Some(chat) = named(&filter, what, "chat")? {
        result = result.chat(chat);
    }
    Ok(result.with_state(state_filter(filter.get("state")?)?))
}

/// The value the name at `filter[key]` stands for (as the Bot API spells it), none without one; an unknown name is
/// an error that lists the known ones.
fn named<T: serde::de::DeserializeOwned>(filter: &Table, what: &str, key: &str) -> mlua::Result<Option<T>> {
    use serde::de::{IntoDeserializer, value::StrDeserializer};
    let Some(name) = filter.get::<Option<String>>(key)? else { return Ok(None) };
    let name: StrDeserializer<'_, serde::de::value::Error> = name.as_str().into_deserializer();
    T::deserialize(name).map(Some).map_err(|e| runtime(format!("{what}: {key}: {e}")))
}

fn callback_filter(filter: Option<Table>) -> mlua::Result<CallbackFilter> {
    let Some(filter) = filter else { return Ok(CallbackFilter::any()) };
    only_keys(&filter, "callback filter", &["data", "prefix", "state"])?;
    let data = filter.get::<Option<String>>("data")?;
    let prefix = filter.get::<Option<String>>("prefix")?;
    let mut result = match (data, prefix) {
        (Some(_), Some(_)) => return Err(runtime("callback filter: give data or prefix, not both")),
        (Some(data), None) => CallbackFilter::data(&data),
        (None, Some(prefix)) => CallbackFilter::prefix(&prefix),
        (None, None) => CallbackFilter::any(),
    };
    match state_filter(filter.get("state")?)? {
        StateFilter::Any => {}
        StateFilter::Is(state) => result = result.state(&state),
        StateFilter::None => return Err(runtime("callback filter: state must be a state name")),
    }
    Ok(result)
}

/// `message(filter, handler)` or `message(handler)`.
fn filter_and_handler(first: Value, second: Option<Function>, what: &str) -> mlua::Result<(Option<Table>, Function)> {
    match (first, second) {
        (Value::Function(handler), None) => Ok((None, handler)),
        (Value::Table(filter), Some(handler)) => Ok((Some(filter), handler)),
        (Value::Nil, Some(handler)) => Ok((None, handler)),
        _ => Err(runtime(format!("{what} expects (filter, handler) or (handler)"))),
    }
}

fn parse_meta(table: &Table) -> mlua::Result<MetaDecl> {
    only_keys(
        table,
        "plugin",
        &["name", "description", "version", "author", "dependencies", "supports_hot_reload", "config_schema"],
    )?;
    let mut meta = MetaDecl {
        name: table.get("name")?,
        description: table.get("description")?,
        version: table.get("version")?,
        author: table.get("author")?,
        dependencies: table.get::<Option<Vec<String>>>("dependencies")?.unwrap_or_default(),
        supports_hot_reload: table.get("supports_hot_reload")?,
        config_schema: None,
    };
    if let Some(schema) = table.get::<Option<Table>>("config_schema")? {
        let mut entries = BTreeMap::new();
        for pair in schema.pairs::<String, String>() {
            let (key, kind) = pair?;
            let (name, required) = match kind.strip_suffix('?') {
                Some(name) => (name, false),
                None => (kind.as_str(), true),
            };
            let kind = SchemaType::parse(name).ok_or_else(|| {
                runtime(format!(
                    "plugin: config_schema.{key}: unknown type {kind:?} (expected string, number, integer, boolean, table, list or any, with ? when optional)"
                ))
            })?;
            entries.insert(key, SchemaEntry { kind, required });
        }
        meta.config_schema = Some(entries);
    }
    Ok(meta)
}

/// Installs the host API in a fresh VM (before it is sealed) and starts collecting registrations.
pub(super) fn install(lua: &Lua, env: HostEnv) -> mlua::Result<()> {
    let globals = lua.globals();
    lua.set_app_data(Registrations::default());
    http::install(lua, env.http_allow.clone())?;
    lua.set_app_data(timers::install(lua)?);

    globals.set(
        "plugin",
        lua.create_function(|lua, table: Table| {
            let meta = parse_meta(&table)?;
            let mut registrations = lua
                .app_data_mut::<Registrations>()
                .ok_or_else(|| runtime("plugin can only be called at the top level of the script"))?;
            if registrations.meta.is_some() {
                return Err(runtime("plugin was called twice"));
            }
            registrations.meta = Some(meta);
            Ok(())
        })?,
    )?;
    globals.set(
        "command",
        lua.create_function(
            |lua, (name, description, handler, options): (String, Option<String>, Function, Option<Table>)| {
                let (mut state, mut admin) = (StateFilter::Any, false);
                if let Some(options) = options {
                    only_keys(&options, "command options", &["state", "admin"])?;
                    state = state_filter(options.get("state")?)?;
                    admin = options.get::<Option<bool>>("admin")?.unwrap_or(false);
                }
                let name = name.trim_start_matches('/').to_owned();
                if name.is_empty() || name.contains(char::is_whitespace) {
                    return Err(runtime(format!("command: invalid command name {name:?}")));
                }
                let route = RouteDecl::Command { name, description: description.unwrap_or_default(), state, admin };
                registering(lua, "command", |r| r.routes.push((route, handler)))
            },
        )?,
    )?;
    let routes: [(&'static str, RouteOf); 3] = [
        ("message", |filter| Ok(RouteDecl::Message(message_filter(filter, "message filter")?))),
        ("edited_message", |filter| Ok(RouteDecl::EditedMessage(message_filter(filter, "edited_message filter")?))),
        ("callback", |filter| Ok(RouteDecl::Callback(callback_filter(filter)?))),
    ];
    for (what, route_of) in routes {
        let register = lua.create_function(move |lua, (first, second): (Value, Option<Function>)| {
            let (filter, handler) = filter_and_handler(first, second, what)?;
            let route = route_of(filter)?;
            registering(lua, what, |r| r.routes.push((route, handler)))
        })?;
        globals.set(what, register)?;
    }
    globals.set(
        "on_error",
        lua.create_function(|lua, hook: Function| registering(lua, "on_error", |r| r.error_hooks.push(hook)))?,
    )?;
    type HookSlot = fn(&mut Hooks) -> &mut Option<Function>;
    let slots: [(&str, HookSlot); 4] = [
        ("on_load", |h| &mut h.on_load),
        ("on_unload", |h| &mut h.on_unload),
        ("on_bot_start", |h| &mut h.on_bot_start),
        ("on_bot_stop", |h| &mut h.on_bot_stop),
    ];
    for (name, slot) in slots {
        globals.set(
            name,
            lua.create_function(move |lua, hook: Function| {
                registering(lua, name, |r| *slot(&mut r.hooks) = Some(hook))
            })?,
        )?;
    }
    globals.set(
        "states",
        lua.create_function(|lua, (group, names): (String, Vec<String>)| {
            let table = lua.create_table()?;
            for name in names {
                table.set(name.as_str(), format!("{group}:{name}"))?;
            }
            table.set_readonly(true);
            Ok(table)
        })?,
    )?;

    let bot_id = env.bot_id.as_ref().map_or("", BotId::as_str);
    globals.set("bot_id", bot_id)?;
    coroutines::install(lua)?;
    fleet::install(lua, bot_id, &env.plugin, env.fleet)?;
    globals.set("config", to_lua_frozen(lua, &env.config)?)?;
    let config = env.config.clone();
    globals.set(
        "get_config",
        lua.create_function(move |lua, (key, default): (String, Value)| match config.get(&key) {
            Some(value) if !value.is_null() => to_lua(lua, value),
            _ => Ok(default),
        })?,
    )?;
    globals.set(
        "now",
        lua.create_function(|_, ()| Ok(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())))?,
    )?;

    let api = env.api.clone();
    globals.set(
        "send",
        lua.create_async_function(move |lua, (chat, text, options): (i64, String, Option<Table>)| {
            let api = api.clone();
            let ready = not_at_top_level(&lua, "send").and_then(|()| SendOpts::parse(options.as_ref()));
            async move {
                let options = ready?.into_send_options();
                let api = api.ok_or_else(|| runtime("send is not available while the script is being discovered"))?;
                let sent = off_vm("send", async move { Ok(api.send_message(ChatId(chat), text, options).await?) });
                Ok(sent.await?.id.0)
            }
        })?,
    )?;

    let (bot_id, plugin) = (Arc::<str>::from(bot_id), Arc::<str>::from(env.plugin));
    let log = lua.create_table()?;
    for level in ["debug", "info", "warn", "error"] {
        let (bot_id, plugin) = (bot_id.clone(), plugin.clone());
        log.set(
            level,
            lua.create_function(move |_, (message, fields): (String, Option<Value>)| {
                let fields = match fields {
                    Some(value) => to_json(&value)?.to_string(),
                    None => String::new(),
                };
                emit(level, &bot_id, &plugin, &message, &fields);
                Ok(())
            })?,
        )?;
    }
    globals.set("log", log)?;
    bot_api::install(lua, env.api.clone())?;
    update::install(lua)?;
    libs::install(lua)?;
    {
        let (bot_id, plugin) = (bot_id.clone(), plugin.clone());
        globals.set(
            "print",
            lua.create_function(move |_, values: mlua::MultiValue| {
                // Words past the line's limit are not even converted: `print(table.unpack(t))` of thousands of
                // long strings costs the host one bounded line.
                let mut line = String::new();
                for (i, value) in values.iter().enumerate() {
                    if line.len() > MAX_LOG_LINE {
                        break;
                    }
                    if i > 0 {
                        line.push('\t');
                    }
                    line.push_str(&value.to_string().unwrap_or_default());
                }
                emit("info", &bot_id, &plugin, &line, "");
                Ok(())
            })?,
        )?;
    }

    // `store` is the plugin's persistent store; `state` is its name of the previous release, kept one release.
    let table = lua.create_table()?;
    let scope = StoreScope { store: env.state, bot_id, plugin };
    table.set(
        "get",
        scope.function(lua, "store.get", |lua, scope, key: String| async move {
            let value = off_vm("store.get", async move { scope.store.get(&scope.bot_id, &scope.plugin, &key).await });
            value.await?.map_or(Ok(Value::Nil), |v| to_lua(&lua, &v))
        })?,
    )?;
    table.set(
        "set",
        scope.function(lua, "store.set", |_, scope, (key, value): (String, Value)| async move {
            let value = to_json(&value)?;
            off_vm("store.set", async move {
                let StoreScope { store, bot_id, plugin } = scope;
                if value.is_null() {
                    store.delete(&bot_id, &plugin, &key).await.map(drop)
                } else {
                    store.set(&bot_id, &plugin, &key, &value).await
                }
            })
            .await
        })?,
    )?;
    table.set(
        "delete",
        scope.function(lua, "store.delete", |_, scope, key: String| async move {
            off_vm("store.delete", async move { scope.store.delete(&scope.bot_id, &scope.plugin, &key).await }).await
        })?,
    )?;
    table.set(
        "list",
        scope.function(lua, "store.list", |lua, scope, ()| async move {
            let entries = off_vm("store.list", async move { scope.store.list(&scope.bot_id, &scope.plugin).await });
            let table = lua.create_table()?;
            for (key, value) in entries.await? {
                table.set(key, to_lua(&lua, &value)?)?;
            }
            Ok(table)
        })?,
    )?;
    globals.set("store", table.clone())?;
    globals.set("state", table)?;
    Ok(())
}

/// Where a script's `store` functions read and write: its bot's and plugin's keys.
#[derive(Clone)]
struct StoreScope {
    store: Arc<dyn ScriptStateStore>,
    bot_id: Arc<str>,
    plugin: Arc<str>,
}

impl StoreScope {
    /// A `store.*` function: refused at the top level of a script, else `call` with this scope.
    fn function<A, R, F, Fut>(&self, lua: &Lua, what: &'static str, call: F) -> mlua::Result<Function>
    where
        A: mlua::FromLuaMulti + Send + 'static,
        R: mlua::IntoLuaMulti,
        F: Fn(Lua, StoreScope, A) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = mlua::Result<R>> + Send + 'static,
    {
        let scope = self.clone();
        lua.create_async_function(move |lua, args: A| {
            let ready = not_at_top_level(&lua, what);
            let call = ready.map(|()| call(lua, scope.clone(), args));
            async move { call?.await }
        })
    }
}

/// The most bytes of a script's log message, and of its fields, written to the log; the rest is cut.
const MAX_LOG_LINE: usize = 8 << 10;

/// `text` cut to [`MAX_LOG_LINE`] bytes (at a character boundary), saying how much was cut.
fn bounded(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_LOG_LINE {
        return text.into();
    }
    let cut = text.floor_char_boundary(MAX_LOG_LINE);
    format!("{}… ({} more bytes cut)", &text[..cut], text.len() - cut).into()
}

/// A log line from a script, with the bot and plugin it came from; message and fields bounded.
fn emit(level: &str, bot_id: &str, plugin: &str, message: &str, fields: &str) {
    let (message, fields) = (bounded(message), bounded(fields));
    let fields = fields.as_ref();
    match level {
        "debug" => tracing::debug!(bot_id, plugin, script = true, fields, "{message}"),
        "warn" => tracing::warn!(bot_id, plugin, script = true, fields, "{message}"),
        "error" => tracing::error!(bot_id, plugin, script = true, fields, "{message}"),
        _ => tracing::info!(bot_id, plugin, script = true, fields, "{message}"),
    }
}
