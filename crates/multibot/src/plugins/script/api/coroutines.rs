//! `coroutine.resume` and `coroutine.wrap` as scripts see them: a host call that waits (`ctx:reply`,
//! `store.get`, ...) inside a coroutine the script created is tied to the handler running it.
//!
//! A waiting host call suspends its coroutine with mlua's "pending" marker, a raw pointer meant for the host's
//! poll loop. Luau's own `resume` would hand that marker to the script, and the host call, left suspended, would
//! go on after its handler. These versions pass the marker up instead, to the handler's coroutine and so to the
//! host, which polls the call under the handler's budget and wall-clock limit, and resume the script's coroutine
//! when it is ready: to the script, the call simply returns. Where the handler cannot wait (inside a
//! `table.sort` comparator, a `gsub` callback, a metamethod), the call is refused with an error and its
//! coroutine closed.

use mlua::{Lua, Table, Value};

/// Returns `resume` and `wrap`, given the originals and the marker.
const WRAPPERS: &str = r##"
local create, resume, yield, status, close, pending = ...
local pack, unpack = table.pack, table.unpack

local function forward(co)
    local waited = pcall(yield, pending)
    if not waited then
        close(co)
        error("a host call that waits cannot run inside a coroutine resumed from here (a table.sort comparator, a gsub callback or a metamethod)", 0)
    end
    return pack(resume(co))
end

local function settle(co, ...)
    local ok, value = ...
    if not (ok and value == pending and select("#", ...) == 2) then
        return ...
    end
    while true do
        local results = forward(co)
        if not (results[1] and results[2] == pending and results.n == 2) then
            return unpack(results, 1, results.n)
        end
    end
end

local function tied_resume(co, ...)
    return settle(co, resume(co, ...))
end

local function raise(ok, ...)
    if not ok then
        error((...), 0)
    end
    return ...
end

local function tied_wrap(f)
    local co = create(f)
    return function(...)
        return raise(settle(co, resume(co, ...)))
    end
end

return tied_resume, tied_wrap
"##;

/// Replaces `coroutine.resume` and `coroutine.wrap` (before the VM is sealed).
pub(super) fn install(lua: &Lua) -> mlua::Result<()> {
    let coroutine: Table = lua.globals().get("coroutine")?;
    let originals = (
        coroutine.get::<Value>("create")?,
        coroutine.get::<Value>("resume")?,
        coroutine.get::<Value>("yield")?,
        coroutine.get::<Value>("status")?,
        coroutine.get::<Value>("close")?,
        Value::LightUserData(Lua::poll_pending()),
    );
    let (resume, wrap): (Value, Value) = lua.load(WRAPPERS).set_name("=coroutine").call(originals)?;
    coroutine.set("resume", resume)?;
    coroutine.set("wrap", wrap)?;
    Ok(())
}
