//! What a script may read of its own bot, and its line to the admins: the `bot` global (`bot.id`,
//! `bot.username`, `bot.users.count()`, `bot.users.recent(n)`, `bot.events.recent(n [, kind])`,
//! `bot.commands()`) and `notify_admins(text)`. Every read is scoped to the script's bot; the database calls wait,
//! so like the other waiting calls they run only in handlers and hooks.

use std::{
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use mlua::{Lua, Table, Value};
use parking_lot::Mutex;

use super::{ctx::off_vm, not_at_top_level, runtime};
use crate::{
    plugins::{CommandInfo, Ctx, Notifier, script::vm::to_lua},
    storage::{BotEvent, BotUser, EventKind, Storage},
};

/// The most rows `bot.users.recent(n)` and `bot.events.recent(n)` return.
pub(in crate::plugins::script) const MAX_RECENT: u32 = 100;
/// The most bytes of one `notify_admins` text (Telegram takes 4096 characters).
pub(in crate::plugins::script) const MAX_NOTE_BYTES: usize = 2048;
/// The most notifications one plugin instance sends in a [`NOTE_WINDOW`].
pub(in crate::plugins::script) const MAX_NOTES: u32 = 10;
const NOTE_WINDOW: Duration = Duration::from_secs(60);

/// What the bot's router knows once it is complete: learnt from the first update a handler receives.
pub(in crate::plugins::script) struct SeenBot {
    username: String,
    commands: Vec<CommandInfo>,
}

/// Filled by the instance's first handler call ([`BotSlot::saw`]).
pub(in crate::plugins::script) type BotSlot = Arc<OnceLock<SeenBot>>;

/// Records the bot as `cx` shows it, the first time.
pub(in crate::plugins::script) fn saw(slot: &BotSlot, cx: &Ctx) {
    if slot.get().is_none() {
        let _ = slot.set(SeenBot { username: cx.bot_username().to_owned(), commands: cx.commands().to_vec() });
    }
}

/// What the `bot` global and `notify_admins` reach, for a bot's instance of a script.
pub(in crate::plugins::script) struct FleetEnv {
    pub(in crate::plugins::script) storage: Storage,
    pub(in crate::plugins::script) notifier: Notifier,
    pub(in crate::plugins::script) slot: BotSlot,
}

/// Installs `bot` and `notify_admins`. While discovering (`fleet` is `None`) they exist but refuse to run.
pub(super) fn install(lua: &Lua, bot_id: &str, plugin: &str, fleet: Option<FleetEnv>) -> mlua::Result<()> {
    let globals = lua.globals();
    let bot = lua.create_table()?;
    bot.raw_set("id", bot_id)?;
    let reach = fleet.map(|fleet| Arc::new(Reach { bot_id: bot_id.into(), fleet }));

    let users = lua.create_table()?;
    users.raw_set(
        "count",
        waiting(lua, &reach, "bot.users.count", |reach, ()| async move {
            let count = off_vm("bot.users.count", async move {
                Ok(reach.fleet.storage.users().get_user_count(&reach.bot_id).await?)
            });
            count.await
        })?,
    )?;
    users.raw_set(
        "recent",
        waiting(lua, &reach, "bot.users.recent", |reach, n: Option<i64>| async move {
            let limit = limit("bot.users.recent", n)?;
            off_vm("bot.users.recent", async move {
                Ok(reach.fleet.storage.users().list_recent(&reach.bot_id, limit).await?)
            })
            .await
        })?,
    )?;
    users.set_readonly(true);
    bot.raw_set("users", users)?;

    let events = lua.create_table()?;
    events.raw_set(
        "recent",
        waiting(lua, &reach, "bot.events.recent", |reach, (n, kind): (Option<i64>, Option<String>)| async move {
            let limit = limit("bot.events.recent", n)?;
            let kind = kind.map(|k| event_kind(&k)).transpose()?;
            off_vm("bot.events.recent", async move {
                Ok(reach.fleet.storage.events().list(Some(&reach.bot_id), kind, limit).await?)
            })
            .await
        })?,
    )?;
    events.set_readonly(true);
    bot.raw_set("events", events)?;

    let seen = reach.clone();
    bot.raw_set(
        "commands",
        lua.create_function(move |lua, ()| {
            not_at_top_level(lua, "bot.commands")?;
            let seen = seen.as_ref().and_then(|r| r.fleet.slot.get());
            let seen = seen.ok_or_else(|| runtime("bot.commands() is known from the bot's first update on"))?;
            let list = lua.create_table_with_capacity(seen.commands.len(), 0)?;
            for (i, command) in seen.commands.iter().enumerate() {
                let entry = lua.create_table_with_capacity(0, 3)?;
                entry.raw_set("command", command.command.as_str())?;
                entry.raw_set("description", command.description.as_str())?;
                entry.raw_set("plugin", command.plugin.as_str())?;
                list.raw_set(i + 1, entry)?;
            }
            Ok(list)
        })?,
    )?;
    // `bot.username` is read through `__index`: it is learnt with the bot's first update.
    let seen = reach.clone();
    let meta = lua.create_table()?;
    meta.raw_set(
        "__index",
        lua.create_function(move |_, (_, key): (Table, String)| {
            let username = seen.as_ref().and_then(|r| r.fleet.slot.get()).map(|s| s.username.clone());
            Ok(if key == "username" { username } else { None })
        })?,
    )?;
    meta.set_readonly(true);
    bot.set_metatable(Some(meta))?;
    bot.set_readonly(true);
    globals.raw_set("bot", bot)?;

    let notes = Mutex::new(Window { start: Instant::now(), sent: 0 });
    let from = format!("[{bot_id}/{plugin}] ");
    globals.raw_set(
        "notify_admins",
        lua.create_function(move |lua, text: String| {
            not_at_top_level(lua, "notify_admins")?;
            let fleet = reach.as_ref().map(|r| &r.fleet);
            let fleet = fleet.ok_or_else(|| runtime("notify_admins is not available while discovering"))?;
            if text.len() > MAX_NOTE_BYTES {
                return Err(runtime(format!("notify_admins: the text is longer than {MAX_NOTE_BYTES} bytes")));
            }
            notes.lock().spend()?;
            fleet.notifier.notify(format!("{from}{text}"));
            Ok(())
        })?,
    )?;
    Ok(())
}

/// The bot a script's instance may read.
struct Reach {
    bot_id: Arc<str>,
    fleet: FleetEnv,
}

/// Notifications sent in the current window.
struct Window {
    start: Instant,
    sent: u32,
}

impl Window {
    fn spend(&mut self) -> mlua::Result<()> {
        if self.start.elapsed() >= NOTE_WINDOW {
            *self = Window { start: Instant::now(), sent: 0 };
        }
        if self.sent >= MAX_NOTES {
            return Err(runtime(format!(
                "notify_admins: more than {MAX_NOTES} notifications in {} s",
                NOTE_WINDOW.as_secs()
            )));
        }
        self.sent += 1;
        Ok(())
    }
}

/// `n` of a `recent(n)` call: 1 to [`MAX_RECENT`], 10 when absent.
fn limit(what: &str, n: Option<i64>) -> mlua::Result<u32> {
    match n.unwrap_or(10) {
        n @ 1..=100 => Ok(n as u32),
        n => Err(runtime(format!("{what}: n must be 1 to {MAX_RECENT}, not {n}"))),
    }
}

fn event_kind(name: &str) -> mlua::Result<&'static str> {
    EventKind::ALL.iter().map(|k| k.as_str()).find(|k| *k == name).ok_or_else(|| {
        let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        runtime(format!("bot.events.recent: unknown kind {name:?} (expected one of: {})", known.join(", ")))
    })
}

/// Rows a waiting `bot.*` call returns, as Lua values.
trait IntoRows {
    fn into_lua_rows(self, lua: &Lua) -> mlua::Result<Value>;
}

impl IntoRows for i64 {
    fn into_lua_rows(self, _: &Lua) -> mlua::Result<Value> {
        Ok(Value::Integer(self))
    }
}

/// A list of rows: a Lua list of tables.
impl<T: IntoRow> IntoRows for Vec<T> {
    fn into_lua_rows(self, lua: &Lua) -> mlua::Result<Value> {
        let list = lua.create_table_with_capacity(self.len(), 0)?;
        for (i, item) in self.into_iter().enumerate() {
            list.raw_set(i + 1, item.into_lua_row(lua)?)?;
        }
        Ok(Value::Table(list))
    }
}

/// One row of a list a waiting `bot.*` call returns, as a Lua table.
trait IntoRow {
    fn into_lua_row(self, lua: &Lua) -> mlua::Result<Table>;
}

impl IntoRow for BotUser {
    fn into_lua_row(self, lua: &Lua) -> mlua::Result<Table> {
        let row = lua.create_table_with_capacity(0, 10)?;
        row.raw_set("id", self.user_id)?;
        row.raw_set("username", self.profile.username)?;
        row.raw_set("first_name", self.profile.first_name)?;
        row.raw_set("last_name", self.profile.last_name)?;
        row.raw_set("language_code", self.profile.language_code)?;
        row.raw_set("is_blocked", self.is_blocked)?;
        row.raw_set("first_seen", self.first_seen.timestamp())?;
        row.raw_set("last_seen", self.last_seen.timestamp())?;
        row.raw_set("message_count", self.message_count)?;
        Ok(row)
    }
}

impl IntoRow for BotEvent {
    fn into_lua_row(self, lua: &Lua) -> mlua::Result<Table> {
        let row = lua.create_table_with_capacity(0, 5)?;
        row.raw_set("id", self.id)?;
        row.raw_set("kind", self.kind)?;
        row.raw_set("user_id", self.actor_user_id)?;
        row.raw_set("detail", to_lua(lua, &self.detail)?)?;
        row.raw_set("at", self.at.timestamp())?;
        Ok(row)
    }
}

/// A `bot.*` function that waits on the database: refused at the top level and while discovering.
fn waiting<A, R, F, Fut>(lua: &Lua, reach: &Option<Arc<Reach>>, what: &'static str, call: F) -> mlua::Result<Value>
where
    A: mlua::FromLuaMulti + Send + 'static,
    R: IntoRows,
    F: Fn(Arc<Reach>, A) -> Fut + Send + 'static,
    Fut: Future<Output = mlua::Result<R>> + Send + 'static,
{
    let reach = reach.clone();
    let function = lua.create_async_function(move |lua, args: A| {
        let ready = not_at_top_level(&lua, what).and_then(|()| match &reach {
            Some(reach) => Ok(call(reach.clone(), args)),
            None => Err(runtime(format!("{what} is not available while discovering"))),
        });
        async move { ready?.await?.into_lua_rows(&lua) }
    })?;
    Ok(Value::Function(function))
}
