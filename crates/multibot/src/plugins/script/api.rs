//! The host API a script sees: the globals ([`install`]) that declare metadata and register handlers at the top
//! level, read the configuration, send, log and use the plugin's `store`; [`LuaCtx`], the `ctx` a handler
//! receives; and [`LuaFsm`], its `ctx.fsm`. docs/scripts.md is its reference.
//!
//! Registration calls run only while the top level runs: they collect [`Registrations`] in the VM's app data,
//! which the instance turns into routes once the top level returns. Host calls that wait (sending, the store, the FSM) run
//! only in handlers and lifecycle hooks, where the script runs as a coroutine that yields while they wait.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use mlua::{Function, Lua, Table, UserData, UserDataFields, UserDataMethods, Value};
use regex::Regex;
use teloxide_core::types::{
    ChatId, ChatKind, InlineKeyboardButton, InlineKeyboardMarkup, ParseMode, PublicChatKind, ReplyMarkup,
};

use super::{
    state::ScriptStateStore,
    vm::{to_json, to_lua, to_lua_frozen},
};
use crate::{
    config::BotId,
    plugins::{
        CallbackFilter, ChatType, ContentType, Ctx, HandlerError, MessageFilter, StateFilter, check_keyboard,
        router::parse_command,
    },
    telegram::{BotApi, SendOptions},
};

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

/// A handler's route, as declared.
pub(super) enum RouteDecl {
    Command { name: String, description: String, state: StateFilter, admin: bool },
    Message(MessageFilter),
    EditedMessage(MessageFilter),
    Callback(CallbackFilter),
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
    if let Some(content) = filter.get::<Option<String>>("content")? {
        let content = match content.as_str() {
            "text" => ContentType::Text,
            "photo" => ContentType::Photo,
            "document" => ContentType::Document,
            "sticker" => ContentType::Sticker,
            "voice" => ContentType::Voice,
            "video" => ContentType::Video,
            "location" => ContentType::Location,
            "contact" => ContentType::Contact,
            other => {
                return Err(runtime(format!(
                    "{what}: unknown content {other:?} (expected text, photo, document, sticker, voice, video, location or contact)"
                )));
            }
        };
        result = result.content(content);
    }
    if let Some(chat) = filter.get::<Option<String>>("chat")? {
        let chat = match chat.as_str() {
            "private" => ChatType::Private,
            "group" => ChatType::Group,
            "supergroup" => ChatType::Supergroup,
            "channel" => ChatType::Channel,
            other => {
                return Err(runtime(format!(
                    "{what}: unknown chat {other:?} (expected private, group, supergroup or channel)"
                )));
            }
        };
        result = result.chat(chat);
    }
    Ok(result.with_state(state_filter(filter.get("state")?)?))
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
    globals.set(
        "message",
        lua.create_function(|lua, (first, second): (Value, Option<Function>)| {
            let (filter, handler) = filter_and_handler(first, second, "message")?;
            let filter = message_filter(filter, "message filter")?;
            registering(lua, "message", |r| r.routes.push((RouteDecl::Message(filter), handler)))
        })?,
    )?;
    globals.set(
        "edited_message",
        lua.create_function(|lua, (first, second): (Value, Option<Function>)| {
            let (filter, handler) = filter_and_handler(first, second, "edited_message")?;
            let filter = message_filter(filter, "edited_message filter")?;
            registering(lua, "edited_message", |r| r.routes.push((RouteDecl::EditedMessage(filter), handler)))
        })?,
    )?;
    globals.set(
        "callback",
        lua.create_function(|lua, (first, second): (Value, Option<Function>)| {
            let (filter, handler) = filter_and_handler(first, second, "callback")?;
            let filter = callback_filter(filter)?;
            registering(lua, "callback", |r| r.routes.push((RouteDecl::Callback(filter), handler)))
        })?,
    )?;
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
    {
        let (bot_id, plugin) = (bot_id.clone(), plugin.clone());
        globals.set(
            "print",
            lua.create_function(move |_, values: mlua::MultiValue| {
                let words: Vec<String> = values.iter().map(|v| v.to_string().unwrap_or_default()).collect();
                emit("info", &bot_id, &plugin, &words.join("\t"), "");
                Ok(())
            })?,
        )?;
    }

    // `store` is the plugin's persistent store; `state` is its name of the previous release, kept one release.
    let table = lua.create_table()?;
    let store = env.state;
    {
        let (store, bot_id, plugin) = (store.clone(), bot_id.clone(), plugin.clone());
        table.set(
            "get",
            lua.create_async_function(move |lua, key: String| {
                let (store, bot_id, plugin) = (store.clone(), bot_id.clone(), plugin.clone());
                let ready = not_at_top_level(&lua, "store.get");
                async move {
                    ready?;
                    let value = off_vm("store.get", async move { store.get(&bot_id, &plugin, &key).await }).await?;
                    value.map_or(Ok(Value::Nil), |v| to_lua(&lua, &v))
                }
            })?,
        )?;
    }
    {
        let (store, bot_id, plugin) = (store.clone(), bot_id.clone(), plugin.clone());
        table.set(
            "set",
            lua.create_async_function(move |lua, (key, value): (String, Value)| {
                let (store, bot_id, plugin) = (store.clone(), bot_id.clone(), plugin.clone());
                let ready = not_at_top_level(&lua, "store.set").and_then(|()| to_json(&value));
                async move {
                    let value = ready?;
                    off_vm("store.set", async move {
                        if value.is_null() {
                            store.delete(&bot_id, &plugin, &key).await.map(drop)
                        } else {
                            store.set(&bot_id, &plugin, &key, &value).await
                        }
                    })
                    .await
                }
            })?,
        )?;
    }
    {
        let (store, bot_id, plugin) = (store.clone(), bot_id.clone(), plugin.clone());
        table.set(
            "delete",
            lua.create_async_function(move |lua, key: String| {
                let (store, bot_id, plugin) = (store.clone(), bot_id.clone(), plugin.clone());
                let ready = not_at_top_level(&lua, "store.delete");
                async move {
                    ready?;
                    off_vm("store.delete", async move { store.delete(&bot_id, &plugin, &key).await }).await
                }
            })?,
        )?;
    }
    table.set(
        "list",
        lua.create_async_function(move |lua, ()| {
            let (store, bot_id, plugin) = (store.clone(), bot_id.clone(), plugin.clone());
            let ready = not_at_top_level(&lua, "store.list");
            async move {
                ready?;
                let entries = off_vm("store.list", async move { store.list(&bot_id, &plugin).await }).await?;
                let table = lua.create_table()?;
                for (key, value) in entries {
                    table.set(key, to_lua(&lua, &value)?)?;
                }
                Ok(table)
            }
        })?,
    )?;
    globals.set("store", table.clone())?;
    globals.set("state", table)?;
    Ok(())
}

/// A log line from a script, with the bot and plugin it came from.
fn emit(level: &str, bot_id: &str, plugin: &str, message: &str, fields: &str) {
    match level {
        "debug" => tracing::debug!(bot_id, plugin, script = true, fields, "{message}"),
        "warn" => tracing::warn!(bot_id, plugin, script = true, fields, "{message}"),
        "error" => tracing::error!(bot_id, plugin, script = true, fields, "{message}"),
        _ => tracing::info!(bot_id, plugin, script = true, fields, "{message}"),
    }
}

/// `{ keyboard = ..., parse_mode = ..., disable_preview = ... }` of `reply`, `send` and `edit`.
#[derive(Default)]
struct SendOpts {
    keyboard: Option<InlineKeyboardMarkup>,
    parse_mode: Option<Option<ParseMode>>,
    disable_preview: Option<bool>,
}

impl SendOpts {
    fn parse(options: Option<&Table>) -> mlua::Result<SendOpts> {
        let Some(options) = options else { return Ok(SendOpts::default()) };
        only_keys(options, "options", &["keyboard", "parse_mode", "disable_preview"])?;
        let parse_mode = match options.get::<Option<String>>("parse_mode")? {
            None => None,
            Some(mode) if mode == "plain" => Some(None),
            Some(mode) => Some(Some(ParseMode::try_from(mode.as_str()).map_err(|()| {
                runtime(format!("options: unknown parse_mode {mode:?} (expected HTML, MarkdownV2, Markdown or plain)"))
            })?)),
        };
        let keyboard = match options.get::<Option<Table>>("keyboard")? {
            None => None,
            Some(rows) => Some(keyboard(&rows)?),
        };
        Ok(SendOpts { keyboard, parse_mode, disable_preview: options.get("disable_preview")? })
    }

    fn into_send_options(self) -> SendOptions {
        SendOptions {
            parse_mode: self.parse_mode,
            reply_markup: self.keyboard.map(ReplyMarkup::InlineKeyboard),
            disable_preview: self.disable_preview,
            ..SendOptions::default()
        }
    }
}

/// `{ { {text = "A", data = "a"}, {text = "Site", url = "https://..."} }, { ... } }`: rows of buttons.
fn keyboard(rows: &Table) -> mlua::Result<InlineKeyboardMarkup> {
    let mut result = Vec::new();
    for row in rows.sequence_values::<Table>() {
        let mut buttons = Vec::new();
        for button in row?.sequence_values::<Table>() {
            let button = button?;
            only_keys(&button, "keyboard button", &["text", "data", "url"])?;
            let text: String =
                button.get::<Option<String>>("text")?.ok_or_else(|| runtime("keyboard button: text is missing"))?;
            let data: Option<String> = button.get("data")?;
            let url: Option<String> = button.get("url")?;
            buttons.push(match (data, url) {
                (Some(data), None) => InlineKeyboardButton::callback(text, data),
                (None, Some(url)) => {
                    let url = url.parse().map_err(|e| runtime(format!("keyboard button: invalid url {url:?}: {e}")))?;
                    InlineKeyboardButton::url(text, url)
                }
                _ => return Err(runtime("keyboard button: give data or url (one of them)")),
            });
        }
        result.push(buttons);
    }
    let keyboard = InlineKeyboardMarkup::new(result);
    check_keyboard(&keyboard).map_err(|e| runtime(e.to_string()))?;
    Ok(keyboard)
}

/// The `ctx` a script handler receives: the update and what can be done with it.
pub(super) struct LuaCtx(pub(super) Ctx);

fn host_error(what: &'static str) -> impl Fn(anyhow::Error) -> mlua::Error {
    move |e| runtime(format!("{what} failed: {e:#}"))
}

/// Runs a host call's work (talking to Telegram, the database, Redis) as a task of its own, so that the script's
/// coroutine only waits for the result: a VM is locked while one of its coroutines is polled, and the other
/// handlers of the same script in the same bot should not wait for that lock while this one does I/O.
/// The task lives no longer than the handler waiting for it (which runs in the bot's tracker): dropping the
/// handler (aborted after the shutdown grace period) aborts it.
async fn off_vm<T: Send + 'static>(
    what: &'static str,
    work: impl Future<Output = anyhow::Result<T>> + Send + 'static,
) -> mlua::Result<T> {
    match tokio_util::task::AbortOnDropHandle::new(tokio::spawn(work)).await {
        Ok(result) => result.map_err(host_error(what)),
        Err(e) => Err(runtime(format!("{what} failed: {e}"))),
    }
}

impl UserData for LuaCtx {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("bot_id", |_, this| Ok(this.0.bot_id().to_string()));
        fields.add_field_method_get("kind", |_, this| {
            let update = this.0.update();
            Ok(match &update.kind {
                teloxide_core::types::UpdateKind::Message(_) => "message",
                teloxide_core::types::UpdateKind::EditedMessage(_) => "edited_message",
                teloxide_core::types::UpdateKind::CallbackQuery(_) => "callback_query",
                _ => "other",
            })
        });
        fields.add_field_method_get("text", |_, this| Ok(this.0.text().map(str::to_owned)));
        fields.add_field_method_get("command", |_, this| {
            Ok(this.0.text().and_then(|t| parse_command(t, this.0.bot_username())).map(|(name, _)| name.to_owned()))
        });
        fields.add_field_method_get("args", |_, this| Ok(this.0.command_args().to_owned()));
        fields.add_field_method_get("data", |_, this| Ok(this.0.callback_data().map(str::to_owned)));
        fields.add_field_method_get("chat_id", |_, this| Ok(this.0.chat_id().map(|c| c.0)));
        fields.add_field_method_get("message_id", |_, this| Ok(this.0.message().map(|m| m.id.0)));
        fields.add_field_method_get("chat_type", |_, this| {
            Ok(this.0.message().map(|m| match &m.chat.kind {
                ChatKind::Private(_) => "private",
                ChatKind::Public(public) => match public.kind {
                    PublicChatKind::Group => "group",
                    PublicChatKind::Supergroup(_) => "supergroup",
                    PublicChatKind::Channel(_) => "channel",
                },
            }))
        });
        fields.add_field_method_get("user", |lua, this| {
            let Some(user) = this.0.user() else { return Ok(Value::Nil) };
            let table = lua.create_table()?;
            table.set("id", user.id.0 as i64)?;
            table.set("is_bot", user.is_bot)?;
            table.set("first_name", user.first_name.as_str())?;
            table.set("last_name", user.last_name.as_deref())?;
            table.set("username", user.username.as_deref())?;
            table.set("language_code", user.language_code.as_deref())?;
            Ok(Value::Table(table))
        });
        fields.add_field_method_get("fsm", |_, this| Ok(LuaFsm(this.0.clone())));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_async_method("reply", |_, this, (text, options): (String, Option<Table>)| {
            let cx = this.0.clone();
            let options = SendOpts::parse(options.as_ref());
            async move {
                let options = options?.into_send_options();
                let chat = cx.chat_id().ok_or_else(|| runtime("ctx:reply: this update has no chat to reply in"))?;
                let sent = off_vm("ctx:reply", async move { Ok(cx.api().send_message(chat, text, options).await?) });
                Ok(sent.await?.id.0)
            }
        });
        methods.add_async_method("send", |_, this, (chat, text, options): (i64, String, Option<Table>)| {
            let cx = this.0.clone();
            let options = SendOpts::parse(options.as_ref());
            async move {
                let options = options?.into_send_options();
                let sent =
                    off_vm("ctx:send", async move { Ok(cx.api().send_message(ChatId(chat), text, options).await?) });
                Ok(sent.await?.id.0)
            }
        });
        methods.add_async_method("edit", |_, this, (text, options): (String, Option<Table>)| {
            let cx = this.0.clone();
            let options = SendOpts::parse(options.as_ref()).and_then(|o| {
                if o.parse_mode.is_some() || o.disable_preview.is_some() {
                    return Err(runtime("ctx:edit: only the keyboard option applies to an edit"));
                }
                Ok(o.keyboard)
            });
            async move {
                let keyboard = options?;
                off_vm("ctx:edit", async move { cx.edit_text(text, keyboard).await }).await
            }
        });
        methods.add_async_method("answer", |_, this, text: Option<String>| {
            let cx = this.0.clone();
            off_vm("ctx:answer", async move { cx.answer_callback(text.as_deref()).await })
        });
        methods.add_async_method("delete", |_, this, ()| {
            let cx = this.0.clone();
            off_vm("ctx:delete", async move { cx.delete_message().await })
        });
        // The names of the previous release, kept one release: `ctx.fsm:state()` and so on.
        add_fsm_methods(methods, ["get_state", "set_state", "get_data", "update_data", "clear"]);
    }
}

/// `ctx.fsm`: the conversation's FSM, its state and data (the native [`Ctx::fsm`]).
pub(super) struct LuaFsm(Ctx);

/// The script objects that reach an update's FSM: `ctx.fsm`, and `ctx` through the deprecated names.
trait FsmOwner: Send + 'static {
    fn cx(&self) -> Ctx;
}

impl FsmOwner for LuaCtx {
    fn cx(&self) -> Ctx {
        self.0.clone()
    }
}

impl FsmOwner for LuaFsm {
    fn cx(&self) -> Ctx {
        self.0.clone()
    }
}

impl UserData for LuaFsm {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        add_fsm_methods(methods, ["state", "set_state", "data", "update_data", "clear"]);
    }
}

/// Registers the FSM methods under `names` (state, set state, data, update data, clear), once for `ctx.fsm` and
/// once for the deprecated names on `ctx`.
fn add_fsm_methods<T: FsmOwner, M: UserDataMethods<T>>(methods: &mut M, names: [&'static str; 5]) {
    let [state, set_state, data, update_data, clear] = names;
    methods.add_async_method(state, |_, this, ()| {
        let cx = this.cx();
        off_vm("ctx.fsm:state", async move { cx.fsm().state().await })
    });
    methods.add_async_method(set_state, |_, this, state: Option<String>| {
        let cx = this.cx();
        off_vm("ctx.fsm:set_state", async move { cx.fsm().set_state(state.as_deref()).await })
    });
    methods.add_async_method(data, |lua, this, ()| {
        let cx = this.cx();
        async move {
            let data = off_vm("ctx.fsm:data", async move { cx.fsm().data().await }).await?;
            to_lua(&lua, &serde_json::Value::Object(data))
        }
    });
    methods.add_async_method(update_data, |_, this, (first, second): (Value, Value)| {
        let cx = this.cx();
        let fields = match (&first, &second) {
            (Value::String(key), value) => to_json(value).and_then(|v| Ok(vec![(key.to_str()?.to_owned(), v)])),
            (Value::Table(_), Value::Nil) => match to_json(&first) {
                Ok(serde_json::Value::Object(map)) => Ok(map.into_iter().collect()),
                Ok(_) => Err(runtime("ctx.fsm:update_data: expected a table of fields")),
                Err(e) => Err(e),
            },
            _ => Err(runtime("ctx.fsm:update_data expects (key, value) or a table of fields")),
        };
        async move {
            let fields = fields?;
            off_vm("ctx.fsm:update_data", async move {
                for (key, value) in fields {
                    cx.fsm().update_data(&key, value).await?;
                }
                Ok(())
            })
            .await
        }
    });
    methods.add_async_method(clear, |_, this, ()| {
        let cx = this.cx();
        off_vm("ctx.fsm:clear", async move { cx.fsm().clear().await })
    });
}

/// The `err` an `on_error` hook receives: `{ id, plugin, message }`.
pub(super) fn error_table(lua: &Lua, error: &HandlerError) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.set("id", error.id.as_str())?;
    table.set("plugin", error.plugin.as_str())?;
    table.set("message", error.message.as_str())?;
    Ok(table)
}
