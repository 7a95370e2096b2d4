//! [`LuaCtx`], the `ctx` a script handler receives: the update and what can be done with it (reply, send, edit,
//! answer, the FSM as `ctx.fsm`); the send options and keyboards scripts pass; the error table of `on_error`.

use std::future::Future;

use mlua::{Lua, Table, UserData, UserDataFields, UserDataMethods, Value};
use teloxide_core::types::{
    ChatId, ChatKind, InlineKeyboardButton, InlineKeyboardMarkup, ParseMode, PublicChatKind, ReplyMarkup,
};

use super::{
    super::{
        pool, scope,
        vm::{to_json, to_lua},
    },
    only_keys, runtime,
};
use crate::{
    plugins::{Ctx, HandlerError, check_keyboard, router::parse_command},
    telegram::SendOptions,
};

/// `{ keyboard = ..., parse_mode = ..., disable_preview = ... }` of `reply`, `send` and `edit`.
#[derive(Default)]
pub(super) struct SendOpts {
    keyboard: Option<InlineKeyboardMarkup>,
    parse_mode: Option<Option<ParseMode>>,
    disable_preview: Option<bool>,
}

impl SendOpts {
    pub(super) fn parse(options: Option<&Table>) -> mlua::Result<SendOpts> {
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

    pub(super) fn into_send_options(self) -> SendOptions {
        SendOptions {
            parse_mode: self.parse_mode,
            reply_markup: self.keyboard.map(ReplyMarkup::InlineKeyboard),
            disable_preview: self.disable_preview,
            ..SendOptions::default()
        }
    }
}

/// `{ { {text = "A", data = "a"}, {text = "Site", url = "https://..."} }, { ... } }`: rows of buttons.
/// A script may ask for a keyboard of at most this many buttons (Telegram refuses more than 100)...
const MAX_BUTTONS: usize = 100;
/// ...and this many bytes of text, data and URLs in all: one table repeated cannot make the host copy more.
const MAX_KEYBOARD_BYTES: usize = 64 << 10;

fn keyboard(rows: &Table) -> mlua::Result<InlineKeyboardMarkup> {
    let mut result = Vec::new();
    let (mut count, mut bytes) = (0, 0);
    for row in rows.sequence_values::<Table>() {
        let mut buttons = Vec::new();
        for button in row?.sequence_values::<Table>() {
            count += 1;
            if count > MAX_BUTTONS {
                return Err(runtime(format!("keyboard: more than {MAX_BUTTONS} buttons")));
            }
            let button = button?;
            only_keys(&button, "keyboard button", &["text", "data", "url"])?;
            let text: String =
                button.get::<Option<String>>("text")?.ok_or_else(|| runtime("keyboard button: text is missing"))?;
            let data: Option<String> = button.get("data")?;
            let url: Option<String> = button.get("url")?;
            bytes += text.len() + data.as_ref().map_or(0, String::len) + url.as_ref().map_or(0, String::len);
            if bytes > MAX_KEYBOARD_BYTES {
                return Err(runtime(format!("keyboard: more than {MAX_KEYBOARD_BYTES} bytes of text, data and urls")));
            }
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
pub(crate) struct LuaCtx(pub(crate) Ctx);

fn host_error(what: &'static str) -> impl Fn(anyhow::Error) -> mlua::Error {
    move |e| runtime(format!("{what} failed: {e:#}"))
}

/// Runs a host call's work (talking to Telegram, the database, Redis) as a task of its own on the runtime that made the
/// script call ([`pool::home`]), so that the script's coroutine only waits for the result: a VM is locked while one of
/// its coroutines is polled, and the other handlers of the same script in the same bot should not wait for that lock
/// while this one does I/O. The task lives no longer than the call into the script that started it ([`scope`]), even
/// when the future waiting for it is left in a coroutine the script abandoned.
pub(super) async fn off_vm<T: Send + 'static>(
    what: &'static str,
    work: impl Future<Output = anyhow::Result<T>> + Send + 'static,
) -> mlua::Result<T> {
    let scope = scope::current().unwrap_or_default();
    let work = async move {
        scope.run_until_cancelled(work).await.unwrap_or_else(|| Err(anyhow::anyhow!("the handler ended first")))
    };
    match tokio_util::task::AbortOnDropHandle::new(pool::home().spawn(work)).await {
        Ok(result) => result.map_err(host_error(what)),
        Err(e) => Err(runtime(format!("{what} failed: {e}"))),
    }
}

impl UserData for LuaCtx {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("bot_id", |_, this| Ok(this.0.bot_id().to_string()));
        fields.add_field_method_get("kind", |_, this| Ok(super::update::kind_name(&this.0.update().kind)));
        fields.add_field_function_get("update", super::update::field);
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
pub(crate) fn error_table(lua: &Lua, error: &HandlerError) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.set("id", error.id.as_str())?;
    table.set("plugin", error.plugin.as_str())?;
    table.set("message", error.message.as_str())?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyboard_is_bounded_in_buttons_and_bytes() {
        let lua = Lua::new();
        let rows = |source: &str| lua.load(source).eval::<Table>().unwrap();
        let ok = rows("return { { { text = 'A', data = 'a' }, { text = 'Site', url = 'https://example.com' } } }");
        assert_eq!(keyboard(&ok).unwrap().inline_keyboard[0].len(), 2);
        // Bad input: one row table listed a thousand times.
        let many =
            rows("local row = { { text = 'A', data = 'a' } } local t = {} for i = 1, 1000 do t[i] = row end return t");
        assert!(keyboard(&many).unwrap_err().to_string().ends_with("keyboard: more than 100 buttons"));
        // Bad input: ten buttons sharing one 100 KiB label.
        let wide = rows(
            "local b = { text = string.rep('x', 102400), data = 'a' } return { { b, b, b, b, b, b, b, b, b, b } }",
        );
        assert!(keyboard(&wide).unwrap_err().to_string().contains("more than 65536 bytes"));
    }
}
