//! `api`: every Bot API method from a script. `api.call(method, params)` sends `params` (a table, converted as
//! bounded as every host copy) through the bot's own client, so flood control, 429 waits and `FLOOD_MAX_WAIT`
//! apply, and returns Telegram's `result` as Lua values; `api.file(bytes, name)` is a file to upload;
//! `api.error(err)` reads a failed call's code and description. It needs no `ctx`: any handler or hook may call
//! it, and so may anything that later runs outside the top level.

use bytes::Bytes;
use mlua::{AnyUserData, Lua, Table, UserData, UserDataFields, UserDataMethods, Value};
use serde_json::{Map, Value as Json};

use super::{
    super::vm::{MAX_BYTES, MAX_VALUES, to_json_with, to_lua},
    not_at_top_level, off_vm, runtime,
};
use crate::telegram::{ApiCallError, BotApi, InputFile};

/// The most bytes of files one call uploads, all files together (a file referred to twice counts twice). A file's
/// bytes also live in the script's VM, so `SCRIPT_MEMORY_LIMIT_MB` bounds each one first.
pub(super) const MAX_UPLOAD_BYTES: usize = 20 << 20;

/// Methods a script may not call: the host receives the bot's updates and owns its connection to Telegram.
const HOST_METHODS: [&str; 5] = ["getUpdates", "setWebhook", "deleteWebhook", "logOut", "close"];

/// The longest file name `api.file` takes.
const MAX_FILE_NAME: usize = 255;

/// A file `api.file` made: bytes that stay in the VM until a call uploads them.
struct ScriptFile {
    name: String,
    data: mlua::LuaString,
}

impl UserData for ScriptFile {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("name", |_, this| Ok(this.name.clone()));
        fields.add_field_method_get("size", |_, this| Ok(this.data.as_bytes().len()));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method("__tostring", |_, this, ()| {
            Ok(format!("file {:?} ({} bytes)", this.name, this.data.as_bytes().len()))
        });
    }
}

/// A failed `api.call`, as the script's error: its message names the method, Telegram's description and code.
#[derive(Debug, thiserror::Error)]
#[error("api.call({method}): {error}")]
struct CallFailed {
    method: String,
    error: ApiCallError,
}

/// The `api` global.
pub(super) fn install(lua: &Lua, api: Option<BotApi>) -> mlua::Result<()> {
    let table = lua.create_table()?;
    table.set(
        "call",
        lua.create_async_function(move |lua, (method, params): (String, Option<Table>)| {
            let api = api.clone();
            let ready = prepare(&lua, &method, params);
            async move {
                let (params, uploads) = ready?;
                let api =
                    api.ok_or_else(|| runtime("api.call is not available while the script is being discovered"))?;
                let method_name = method.clone();
                // Like every host call: its own task, cancelled with the handler that made it.
                let answer =
                    off_vm("api.call", async move { Ok(api.call_method(&method_name, params, uploads).await) }).await?;
                match answer {
                    Ok(result) => answer_to_lua(&lua, &result),
                    Err(error) => Err(mlua::Error::external(CallFailed { method, error })),
                }
            }
        })?,
    )?;
    table.set(
        "file",
        lua.create_function(|_, (data, name): (mlua::LuaString, String)| {
            if name.is_empty() || name.len() > MAX_FILE_NAME || name.chars().any(char::is_control) {
                return Err(runtime(format!(
                    "api.file: the name must be 1-{MAX_FILE_NAME} bytes without control characters"
                )));
            }
            if data.as_bytes().len() > MAX_UPLOAD_BYTES {
                return Err(runtime(format!("api.file: more than {MAX_UPLOAD_BYTES} bytes")));
            }
            Ok(ScriptFile { name, data })
        })?,
    )?;
    table.set("error", lua.create_function(|lua, error: Value| error_fields(lua, &error))?)?;
    table.set_readonly(true);
    lua.globals().set("api", table)?;
    Ok(())
}

/// The files of a call: form field name and file.
type Uploads = Vec<(String, InputFile)>;

/// `params` as JSON and the files it uploads, each named `attach://fileN` where it stood; or why the call cannot go.
fn prepare(lua: &Lua, method: &str, params: Option<Table>) -> mlua::Result<(Map<String, Json>, Uploads)> {
    not_at_top_level(lua, "api.call")?;
    if !crate::telegram::is_method_name(method) {
        return Err(runtime(format!("api.call: {method:?} is not a Bot API method name")));
    }
    if HOST_METHODS.contains(&method) {
        return Err(runtime(format!(
            "api.call: {method} is the host's (it receives the bot's updates); a script gets updates through its handlers"
        )));
    }
    let Some(params) = params else { return Ok((Map::new(), Vec::new())) };
    let mut uploads: Uploads = Vec::new();
    let mut bytes = 0;
    let json = to_json_with(&Value::Table(params), &mut |data: &AnyUserData| {
        let file = data
            .borrow::<ScriptFile>()
            .map_err(|_| runtime("api.call: a parameter is a userdata that is not a file of api.file"))?;
        let content = file.data.as_bytes();
        bytes += content.len();
        if bytes > MAX_UPLOAD_BYTES {
            return Err(runtime(format!("api.call: more than {MAX_UPLOAD_BYTES} bytes of files in one call")));
        }
        let field = format!("file{}", uploads.len());
        uploads.push((field.clone(), InputFile::bytes(file.name.clone(), Bytes::copy_from_slice(&content))));
        Ok(Json::String(format!("attach://{field}")))
    })
    .map_err(|e| runtime(format!("api.call({method}): params: {}", plain(&e))))?;
    match json {
        Json::Object(map) => Ok((map, uploads)),
        Json::Array(_) => Err(runtime(format!("api.call({method}): params must be a table of named parameters"))),
        _ => Err(runtime(format!("api.call({method}): params must be a table"))),
    }
}

/// A conversion error's message, without mlua's wrapping.
fn plain(error: &mlua::Error) -> String {
    match error {
        mlua::Error::RuntimeError(message) => message.clone(),
        mlua::Error::CallbackError { cause, .. } => plain(cause),
        other => other.to_string(),
    }
}

/// Whether JSON from Telegram (an answer, an update) is within what a conversion from a script may produce: the
/// VM's memory limit bounds the tables it becomes; this bounds the host's work.
pub(super) fn fits(value: &Json) -> bool {
    fn count(value: &Json, depth: usize, budget: &mut (usize, usize)) -> bool {
        budget.0 += 1;
        if let Json::String(text) = value {
            budget.1 += text.len();
        }
        if depth > 64 || budget.0 > MAX_VALUES || budget.1 > MAX_BYTES {
            return false;
        }
        match value {
            Json::Array(items) => items.iter().all(|item| count(item, depth + 1, budget)),
            Json::Object(fields) => fields.iter().all(|(key, item)| {
                budget.1 += key.len();
                count(item, depth + 1, budget)
            }),
            _ => true,
        }
    }
    count(value, 0, &mut (0, 0))
}

/// Telegram's result as Lua values, refused past [`fits`].
fn answer_to_lua(lua: &Lua, result: &Json) -> mlua::Result<Value> {
    if !fits(result) {
        return Err(runtime(format!(
            "api.call: the answer is too large for a script (more than {MAX_VALUES} values or {MAX_BYTES} bytes of text)"
        )));
    }
    to_lua(lua, result)
}

/// `api.error(err)`: `{ method, code, description, retry_after }` of a failed `api.call`, or nil for any other
/// error. `code` is Telegram's error code (nil when Telegram was not reached).
fn error_fields(lua: &Lua, error: &Value) -> mlua::Result<Value> {
    fn failed(error: &mlua::Error) -> Option<&CallFailed> {
        match error {
            mlua::Error::ExternalError(inner) => inner.downcast_ref::<CallFailed>(),
            mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => failed(cause),
            _ => None,
        }
    }
    let Value::Error(error) = error else { return Ok(Value::Nil) };
    let Some(CallFailed { method, error }) = failed(error) else { return Ok(Value::Nil) };
    let table = lua.create_table()?;
    table.set("method", method.as_str())?;
    match error {
        ApiCallError::Api { code, description, retry_after } => {
            table.set("code", *code)?;
            table.set("description", description.as_str())?;
            table.set("retry_after", *retry_after)?;
        }
        other => table.set("description", other.to_string())?,
    }
    Ok(Value::Table(table))
}
