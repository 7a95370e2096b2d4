//! The sandboxed Luau VM of one script plugin instance ([`new_vm`]), the CPU budget every call into it runs
//! under ([`Budgeted`], [`with_budget`]), errors in words with file and line ([`describe`]), and conversions
//! between Lua values and JSON.
//!
//! The budget is CPU time spent running the script, not time waiting on host calls: a handler that waits two
//! seconds for Telegram has used almost none of it, and neither does the time its thread waits for a core on a
//! busy machine. Luau calls the interrupt at every function call and loop back-edge; the interrupt compares the
//! (cheap) clock with the deadline of the call being polled on this OS thread (a thread-local set around each
//! poll), so calls of one VM interleaving at their host calls each keep their own budget. Only when that
//! deadline passes does it read the thread's CPU clock (a system call): if the thread was waiting for a core
//! meanwhile, the deadline moves by what is left of the budget. A call that computes for longer than a [`SLICE`] yields to the runtime and goes on at its next
//! poll, so a busy script delays the other bots on its worker thread by a slice at a time, not by its budget.

use std::{
    cell::Cell,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use mlua::{Function, IntoLuaMulti, Lua, LuaOptions, StdLib, Table, Thread, Value, VmState, thread::AsyncThread};
use serde_json::{Map, Number};

use super::{ScriptLimits, scope::CallScope};

/// How long a call computes before it yields to the runtime: long enough that a handler normally finishes
/// within one, short enough that a script computing for its whole budget leaves its worker thread to the other
/// bots' tasks every few milliseconds.
const SLICE: Duration = Duration::from_millis(5);

/// A poll that cannot yield (a busy `table.sort` comparator, a top level) holds a script thread; on a machine so
/// busy that it gets a small share of a core, its CPU budget would last many times longer in wall time, and the
/// other bots' scripts would wait. It stops once this many times its budget has passed, whatever it used.
const WALL_FACTOR: u32 = 3;

/// The call being polled on this OS thread.
#[derive(Clone, Copy)]
struct Running {
    /// When its budget runs out if the thread keeps its core.
    deadline: Instant,
    /// The thread's CPU time when the poll began, and the budget left then.
    cpu_start: Duration,
    remaining: Duration,
    /// However little CPU it got, the poll stops here: [`WALL_FACTOR`] times the budget left when it began.
    wall_end: Instant,
    /// When it should yield.
    slice_end: Instant,
    /// Its coroutine (as a pointer), which may yield; 0 when it cannot (the top level).
    thread: usize,
}

thread_local! {
    static RUNNING: Cell<Option<Running>> = const { Cell::new(None) };
}

/// The globals a script never gets, although Luau or mlua provide them: `require` reads files, `loadstring`
/// compiles code at run time, `getfenv`/`setfenv` reach other functions' environments, `print` writes to
/// stdout (the host replaces it with logging).
const REMOVED_GLOBALS: [&str; 5] = ["require", "loadstring", "getfenv", "setfenv", "print"];

/// Raised by the interrupt when a call has used its CPU budget.
#[derive(Debug, thiserror::Error)]
#[error("stopped: the script ran longer than its time budget of {budget_ms} ms{place}")]
pub(super) struct BudgetExceeded {
    budget_ms: u128,
    place: String,
}

/// A Luau VM with the safe libraries only (no `io`, `os`, `debug`, file `require`), the interrupt that enforces
/// the CPU budget, and no memory limit yet: the caller installs the host API, then calls [`seal`]. `chunk` is
/// the name the script's code is loaded under.
pub(super) fn new_vm(limits: &ScriptLimits, chunk: &str) -> mlua::Result<Lua> {
    let libs = StdLib::COROUTINE
        | StdLib::TABLE
        | StdLib::STRING
        | StdLib::UTF8
        | StdLib::BIT
        | StdLib::MATH
        | StdLib::BUFFER
        | StdLib::VECTOR;
    let lua = Lua::new_with(libs, LuaOptions::default())?;
    let globals = lua.globals();
    for name in REMOVED_GLOBALS {
        globals.raw_remove(name)?;
    }
    let budget_ms = limits.cpu.as_millis();
    let source = format!("={chunk}");
    lua.set_interrupt(move |lua| {
        let Some(running) = RUNNING.with(Cell::get) else { return Ok(VmState::Continue) };
        let now = Instant::now();
        if now >= running.deadline {
            let spent = thread_cpu().saturating_sub(running.cpu_start);
            if spent < running.remaining && now < running.wall_end {
                // The thread waited for a core: what it has not run is still the call's.
                RUNNING.with(|r| r.set(Some(Running { deadline: now + (running.remaining - spent), ..running })));
                return Ok(VmState::Continue);
            }
            let place = lua
                .inspect_stack(0, |d| {
                    let line = d.current_line()?;
                    Some(format!(" (at {}:{line})", d.source().short_src.unwrap_or_default()))
                })
                .flatten()
                .unwrap_or_default();
            return Err(mlua::Error::external(BudgetExceeded { budget_ms, place }));
        }
        if now < running.slice_end || running.thread == 0 {
            return Ok(VmState::Continue);
        }
        RUNNING.with(|r| r.set(Some(Running { slice_end: now + SLICE, ..running })));
        // Yield only in the script's own code of the call's own coroutine: a coroutine the script runs itself
        // would hand the yield to the script, and mlua's loop that polls a host call cannot be resumed midway.
        let in_script = lua.inspect_stack(0, |d| d.source().source.is_some_and(|s| s == source.as_str()));
        if in_script == Some(true) && lua.current_thread().to_pointer() as usize == running.thread {
            Ok(VmState::Yield)
        } else {
            Ok(VmState::Continue)
        }
    });
    Ok(lua)
}

/// Makes the globals and every library read-only (Luau's sandbox: a script's own globals go to a table of its
/// own) and applies the memory limit to the whole VM.
pub(super) fn seal(lua: &Lua, limits: &ScriptLimits) -> mlua::Result<()> {
    lua.sandbox(true)?;
    lua.set_memory_limit(limits.memory)?;
    Ok(())
}

/// Runs synchronous script code (the top level of a script) under a CPU budget.
pub(super) fn with_budget<R>(budget: Duration, run: impl FnOnce() -> R) -> R {
    let now = Instant::now();
    let (cpu_start, remaining) = (thread_cpu(), budget);
    let wall_end = now + budget * WALL_FACTOR;
    let running =
        Running { deadline: now + budget, cpu_start, remaining, wall_end, slice_end: now + budget, thread: 0 };
    let previous = RUNNING.with(|r| r.replace(Some(running)));
    let result = run();
    RUNNING.with(|r| r.set(previous));
    result
}

/// A call of the coroutine `thread` whose polls, together, may run for at most `budget`.
fn budgeted(thread: Thread, args: impl IntoLuaMulti, budget: Duration) -> mlua::Result<Budgeted<AsyncThread<()>>> {
    let key = thread.to_pointer() as usize;
    let inner = Box::pin(thread.into_async(args)?);
    Ok(Budgeted { inner, remaining: budget, thread: key, scope: CallScope::default() })
}

/// The finished coroutines of one VM, reset and reused by its next calls: resetting one costs less than creating
/// one. At most [`Coroutines::KEPT`] wait.
#[derive(Default)]
pub(super) struct Coroutines(parking_lot::Mutex<Vec<Thread>>);

impl Coroutines {
    const KEPT: usize = 16;

    /// Calls a script function as a coroutine of its own (a reused one when there is one) under a CPU budget;
    /// give the coroutine back with [`Coroutines::give_back`] once the call succeeded.
    pub(super) fn call(
        &self,
        lua: &Lua,
        function: &Function,
        args: impl IntoLuaMulti,
        budget: Duration,
    ) -> mlua::Result<(Thread, Budgeted<AsyncThread<()>>)> {
        let reused = self.0.lock().pop();
        let thread = match reused {
            Some(thread) => {
                thread.reset(function.clone())?;
                thread
            }
            None => lua.create_thread(function.clone())?,
        };
        Ok((thread.clone(), budgeted(thread, args, budget)?))
    }

    /// Keeps a coroutine whose call has finished.
    pub(super) fn give_back(&self, thread: Thread) {
        let mut kept = self.0.lock();
        if kept.len() < Coroutines::KEPT {
            kept.push(thread);
        }
    }
}

/// A call into a script under a CPU budget (see [`Coroutines::call`]).
pub(super) struct Budgeted<F> {
    inner: Pin<Box<F>>,
    remaining: Duration,
    thread: usize,
    /// Cancels what the call's host calls started when the call ends.
    scope: CallScope,
}

impl<F: Future> Future for Budgeted<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let (started, cpu_start, remaining) = (Instant::now(), thread_cpu(), self.remaining);
        let (deadline, wall_end) = (started + remaining, started + remaining * WALL_FACTOR);
        let slice_end = started + SLICE;
        let running = Running { deadline, cpu_start, remaining, wall_end, slice_end, thread: self.thread };
        let previous = RUNNING.with(|r| r.replace(Some(running)));
        let entered = self.scope.enter();
        let result = self.inner.as_mut().poll(cx);
        drop(entered);
        RUNNING.with(|r| r.set(previous));
        self.remaining = remaining.saturating_sub(thread_cpu().saturating_sub(cpu_start));
        result
    }
}

/// The CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let time = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(time.tv_sec as u64, time.tv_nsec as u32)
}

/// A script error in one line for logs and users: `file:line: message`, without Lua's stack traceback. `chunk` is
/// the script's file name, used to find the script's line in a traceback when the error came from a host call.
pub(super) fn describe(error: &mlua::Error, chunk: &str, limits: &ScriptLimits) -> String {
    if let Some(budget) = error.downcast_ref::<BudgetExceeded>() {
        return budget.to_string();
    }
    match error {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(message) => first_line(message).to_owned(),
        mlua::Error::MemoryError(_) => format!(
            "stopped: the script used more than its memory limit of {} MiB",
            limits.memory.div_ceil(1024 * 1024)
        ),
        mlua::Error::CallbackError { traceback, cause } => {
            let cause = describe(cause, chunk, limits);
            let prefix = format!("\t{chunk}:");
            let place = traceback.lines().find_map(|l| {
                let rest = l.strip_prefix(&prefix)?;
                let line = rest.split(':').next()?;
                Some(format!("{chunk}:{line}: "))
            });
            if cause.starts_with(chunk) || cause.starts_with("stopped") {
                cause
            } else {
                format!("{}{cause}", place.unwrap_or_default())
            }
        }
        mlua::Error::WithContext { context, cause } => format!("{context}: {}", describe(cause, chunk, limits)),
        mlua::Error::ExternalError(inner) => inner.to_string(),
        other => first_line(&other.to_string()).to_owned(),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// Whether the error, or one it wraps, is the memory limit.
fn is_memory_error(error: &mlua::Error) -> bool {
    match error {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => is_memory_error(cause),
        _ => false,
    }
}

/// After a call failed on the memory limit, what it allocated is garbage: collects it now, before the next call
/// needs the room.
pub(super) fn recover(lua: &Lua, error: &mlua::Error) {
    if is_memory_error(error) {
        // Two cycles: the first may only finish one already under way.
        let _ = lua.gc_collect();
        let _ = lua.gc_collect();
    }
}

/// Tables nested deeper than this are refused (and a table that contains itself is).
pub(super) const MAX_DEPTH: usize = 32;
/// The most values one conversion may produce. A table referenced twice is converted twice, so without this a
/// few dozen small tables that each refer twice to the next would expand into millions of values on the host,
/// outside the script's memory limit.
pub(super) const MAX_VALUES: usize = 100_000;
/// The most bytes of strings (keys included) one conversion may copy.
pub(super) const MAX_BYTES: usize = 4 << 20;

/// A Lua value as JSON: nil is null, whole numbers are integers, a table with keys 1..n is an array, any other
/// table an object (number keys become strings). Functions, userdata and threads are refused, and so is a value
/// past [`MAX_DEPTH`], [`MAX_VALUES`] or [`MAX_BYTES`].
pub(super) fn to_json(value: &Value) -> mlua::Result<serde_json::Value> {
    to_json_with(value, &mut |_| Err(mlua::Error::runtime("a userdata cannot be converted to JSON")))
}

/// [`to_json`], with `userdata` converting the userdata values it meets (`api.file`'s files).
pub(super) fn to_json_with(value: &Value, userdata: &mut UserdataToJson<'_>) -> mlua::Result<serde_json::Value> {
    ToJson { values: MAX_VALUES, bytes: MAX_BYTES, userdata }.value(value, 0)
}

/// How [`to_json_with`] converts a userdata.
pub(super) type UserdataToJson<'a> = dyn FnMut(&mlua::AnyUserData) -> mlua::Result<serde_json::Value> + 'a;

/// One conversion to JSON: what it may still produce, and how it converts a userdata.
struct ToJson<'a, 'u> {
    values: usize,
    bytes: usize,
    userdata: &'a mut UserdataToJson<'u>,
}

impl ToJson<'_, '_> {
    fn spend(&mut self, bytes: usize) -> mlua::Result<()> {
        self.values = self.values.checked_sub(1).ok_or_else(|| {
            mlua::Error::runtime(format!(
                "the value is too large to convert: more than {MAX_VALUES} values (a table referenced n times \
                 counts n times)"
            ))
        })?;
        self.bytes = self.bytes.checked_sub(bytes).ok_or_else(|| {
            mlua::Error::runtime(format!("the value is too large to convert: more than {MAX_BYTES} bytes of text"))
        })?;
        Ok(())
    }

    fn value(&mut self, value: &Value, depth: usize) -> mlua::Result<serde_json::Value> {
        if depth > MAX_DEPTH {
            return Err(mlua::Error::runtime(format!(
                "a table nested deeper than {MAX_DEPTH} levels (or containing itself)"
            )));
        }
        Ok(match value {
            Value::Nil => serde_json::Value::Null,
            Value::Boolean(b) => serde_json::Value::Bool(*b),
            Value::Integer(i) => serde_json::Value::from(*i),
            Value::Number(n) => number_to_json(*n)?,
            Value::String(s) => {
                let text = s.to_str()?;
                self.spend(text.len())?;
                return Ok(serde_json::Value::String(text.to_owned()));
            }
            Value::Table(table) => self.table(table, depth)?,
            Value::UserData(data) => (self.userdata)(data)?,
            other => return Err(mlua::Error::runtime(format!("a {} cannot be converted to JSON", other.type_name()))),
        })
        .and_then(|json| self.spend(0).map(|()| json))
    }

    fn table(&mut self, table: &Table, depth: usize) -> mlua::Result<serde_json::Value> {
        let len = table.raw_len();
        let mut count = 0;
        for pair in table.pairs::<Value, Value>() {
            pair?;
            count += 1;
        }
        if len > 0 && count == len {
            let mut items = Vec::with_capacity(len.min(self.values));
            for item in table.sequence_values::<Value>() {
                items.push(self.value(&item?, depth + 1)?);
            }
            return Ok(serde_json::Value::Array(items));
        }
        let mut object = Map::new();
        for pair in table.pairs::<Value, Value>() {
            let (key, value) = pair?;
            let key = match key {
                Value::String(s) => s.to_str()?.to_owned(),
                Value::Integer(i) => i.to_string(),
                Value::Number(n) => n.to_string(),
                other => {
                    return Err(mlua::Error::runtime(format!(
                        "a {} key cannot be converted to JSON",
                        other.type_name()
                    )));
                }
            };
            self.spend(key.len())?;
            object.insert(key, self.value(&value, depth + 1)?);
        }
        Ok(serde_json::Value::Object(object))
    }
}

fn number_to_json(n: f64) -> mlua::Result<serde_json::Value> {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        return Ok(serde_json::Value::from(n as i64));
    }
    Number::from_f64(n)
        .map(serde_json::Value::Number)
        .ok_or_else(|| mlua::Error::runtime(format!("{n} cannot be converted to JSON")))
}

/// JSON as a Lua value: null is nil, arrays are sequences, objects are tables with string keys.
pub(super) fn to_lua(lua: &Lua, value: &serde_json::Value) -> mlua::Result<Value> {
    Ok(match value {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(items) => {
            let table = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                table.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            Value::Table(table)
        }
        serde_json::Value::Object(fields) => {
            let table = lua.create_table_with_capacity(0, fields.len())?;
            for (key, item) in fields {
                table.raw_set(key.as_str(), to_lua(lua, item)?)?;
            }
            Value::Table(table)
        }
    })
}

/// [`to_lua`], with every table read-only (a script's `config`).
pub(super) fn to_lua_frozen(lua: &Lua, value: &serde_json::Value) -> mlua::Result<Value> {
    let converted = to_lua(lua, value)?;
    freeze(&converted)?;
    Ok(converted)
}

fn freeze(value: &Value) -> mlua::Result<()> {
    if let Value::Table(table) = value {
        for pair in table.pairs::<Value, Value>() {
            freeze(&pair?.1)?;
        }
        table.set_readonly(true);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn limits() -> ScriptLimits {
        ScriptLimits { memory: 4 << 20, cpu: Duration::from_millis(100) }
    }

    fn vm() -> Lua {
        let lua = new_vm(&limits(), "t.luau").unwrap();
        seal(&lua, &limits()).unwrap();
        lua
    }

    fn run(lua: &Lua, source: &str) -> Result<(), String> {
        with_budget(limits().cpu, || lua.load(source).set_name("=t.luau").exec())
            .map_err(|e| describe(&e, "t.luau", &limits()))
    }

    #[test]
    fn the_sandbox_has_no_io_os_debug_or_require_and_builtins_are_read_only() {
        let lua = vm();
        for (source, expected) in [
            ("io.write('x')", "t.luau:1: attempt to index nil with 'write'"),
            ("os.execute('ls')", "t.luau:1: attempt to index nil with 'execute'"),
            ("debug.traceback()", "t.luau:1: attempt to index nil with 'traceback'"),
            ("require('x')", "t.luau:1: attempt to call a nil value"),
            ("loadstring('return 1')", "t.luau:1: attempt to call a nil value"),
            ("string.len = nil", "t.luau:1: attempt to modify a readonly table"),
            ("\n\nlocal t = nil; t.x = 1", "t.luau:3: attempt to index nil with 'x'"),
        ] {
            assert_eq!(run(&lua, source).unwrap_err(), expected, "{source}");
        }
        // A script's own globals are its own.
        run(&lua, "counter = 1; counter += 1; assert(counter == 2)").unwrap();
    }

    #[test]
    fn loops_and_allocations_are_stopped() {
        let lua = vm();
        let error = run(&lua, "local n = 0\nwhile true do n += 1 end").unwrap_err();
        assert_eq!(error, "stopped: the script ran longer than its time budget of 100 ms (at t.luau:2)");
        // pcall does not shield a loop from the budget.
        let error = run(&lua, "while true do pcall(function() while true do end end) end").unwrap_err();
        assert!(error.starts_with("stopped: the script ran longer"), "{error}");
        let bomb = "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end";
        let error = with_budget(limits().cpu, || lua.load(bomb).exec()).unwrap_err();
        recover(&lua, &error);
        let error = describe(&error, "t.luau", &limits());
        assert_eq!(error, "stopped: the script used more than its memory limit of 4 MiB");
        // The VM goes on.
        run(&lua, "local t = {} for i = 1, 1000 do t[i] = i end").unwrap();
    }

    #[test]
    fn time_the_thread_does_not_run_is_not_spent_up_to_three_budgets() {
        let lua = vm();
        // Stands in for a busy machine: for `ms`, the thread runs nothing.
        let off_core = lua
            .create_function(|_, ms: u64| {
                std::thread::sleep(Duration::from_millis(ms));
                Ok(())
            })
            .unwrap();
        lua.globals().set("off_core", off_core).unwrap();
        run(&lua, "off_core(200) local n = 0 for i = 1, 1000 do n += i end").unwrap();
        // Past three budgets of wall time, it stops however little CPU it used: the thread is for other scripts.
        let error = run(&lua, "off_core(320) local n = 0 for i = 1, 1000 do n += i end").unwrap_err();
        assert!(error.starts_with("stopped: the script ran longer than its time budget of 100 ms"), "{error}");
        // The CPU the script does use is still counted.
        let error = run(&lua, "off_core(50) while true do end").unwrap_err();
        assert!(error.starts_with("stopped: the script ran longer than its time budget of 100 ms"), "{error}");
    }

    fn call(
        lua: &Lua,
        function: &Function,
        args: impl IntoLuaMulti,
        budget: Duration,
    ) -> mlua::Result<Budgeted<AsyncThread<()>>> {
        Coroutines::default().call(lua, function, args, budget).map(|(_, call)| call)
    }

    #[tokio::test]
    async fn a_busy_call_yields_every_slice_and_still_ends_on_its_budget() {
        let lua = vm();
        let polls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let function = lua.load("local n = 0 while true do n += 1 end").set_name("=t.luau").into_function().unwrap();
        let mut busy = call(&lua, &function, (), limits().cpu).unwrap();
        let counted = polls.clone();
        let result = std::future::poll_fn(|cx| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Pin::new(&mut busy).poll(cx)
        })
        .await;
        let error = describe(&result.unwrap_err(), "t.luau", &limits());
        assert!(error.starts_with("stopped: the script ran longer"), "{error}");
        let polls = polls.load(std::sync::atomic::Ordering::Relaxed);
        // 100 ms in slices of 5 ms is 20 polls on an idle machine; a loaded one (the slices are wall-clock time)
        // gives fewer, and a call that never yields is polled once.
        assert!(polls >= 4, "100 ms in slices of 5 ms: {polls} polls");
        // A coroutine of the script's own is never interrupted by a slice's yield.
        let function = lua
            .load("local co = coroutine.wrap(function() local n = 0 for i = 1, 2e5 do n += 1 end return n end) return co()")
            .set_name("=t.luau")
            .into_function()
            .unwrap();
        call(&lua, &function, (), Duration::from_secs(5)).unwrap().await.unwrap();
        // Nor is mlua's loop that polls a host call, even when the slice runs out while the host call is polled.
        let slow = lua
            .create_async_function(|_, n: i64| async move {
                std::thread::sleep(SLICE * 2);
                tokio::task::yield_now().await;
                Ok(n)
            })
            .unwrap();
        let function = lua
            .load("local slow = ... local n = 0 for i = 1, 3 do n += slow(i) end return n")
            .set_name("=t.luau")
            .into_function()
            .unwrap();
        let call = call(&lua, &function, slow, Duration::from_secs(5)).unwrap();
        tokio::time::timeout(Duration::from_secs(5), call).await.expect("no hang").unwrap();
    }

    #[test]
    fn json_round_trips() {
        let lua = vm();
        let value = json!({"name": "Alice", "age": 30, "tags": ["a", "b"], "ratio": 0.5, "ok": true, "empty": {}});
        let back = to_json(&to_lua(&lua, &value).unwrap()).unwrap();
        assert_eq!(back, value);
        let function = lua.create_function(|_, ()| Ok(())).unwrap();
        assert!(to_json(&Value::Function(function)).is_err());
        let cyclic = lua.create_table().unwrap();
        cyclic.set("self", &cyclic).unwrap();
        assert!(to_json(&Value::Table(cyclic)).unwrap_err().to_string().contains("deeper than"));
    }

    #[test]
    fn a_small_value_that_would_expand_on_the_host_is_refused_quickly() {
        let lua = vm();
        // Bad input: 22 tiny tables, each referring twice to the next: 2^22 values once expanded.
        let dag: Value = lua.load("local t = {} for _ = 1, 22 do t = {a = t, b = t} end return t").eval().unwrap();
        let error = to_json(&dag).unwrap_err().to_string();
        assert!(error.contains(&format!("more than {MAX_VALUES} values")), "{error}");
        // Bad input: one 1 MiB string listed eight times: 8 MiB of text to copy.
        let wide: Value =
            lua.load("local s = string.rep('x', 1048576) return {s, s, s, s, s, s, s, s}").eval().unwrap();
        let error = to_json(&wide).unwrap_err().to_string();
        assert!(error.contains(&format!("more than {MAX_BYTES} bytes")), "{error}");
        // Within the bounds, the same shapes convert.
        let small: Value = lua.load("local t = {} for _ = 1, 10 do t = {a = t, b = t} end return t").eval().unwrap();
        assert!(to_json(&small).is_ok());
    }
}
