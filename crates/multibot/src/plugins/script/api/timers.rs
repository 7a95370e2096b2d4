//! `timer.after(seconds, fn)` and `timer.every(seconds, fn)`: functions a script runs later, owned by its
//! instance ([`Timers`]). Each run is a call like a handler's (the CPU budget, the wall-clock limit and the
//! memory of the VM), on the script threads. A timer made at the top level waits until the instance starts; the
//! timers stop when the instance is unloaded (a reload, the bot's stop), and never run after it.
//!
//! Limits: [`MAX_TIMERS`] live timers per instance, delays from [`MIN_DELAY`] to [`MAX_DELAY`]. A failing run is
//! logged with the script's file and line and counted like a handler's error; an `every` timer goes on.

use std::{
    collections::BTreeMap,
    sync::{Arc, Weak},
    time::Duration,
};

use futures_util::future::BoxFuture;
use mlua::{Function, Lua, UserData, UserDataMethods};
use parking_lot::Mutex;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::runtime;

/// Live timers one instance may have.
pub(in crate::plugins::script) const MAX_TIMERS: usize = 16;
/// The shortest delay and interval.
pub(in crate::plugins::script) const MIN_DELAY: Duration = Duration::from_secs(1);
/// The longest delay and interval: 30 days.
const MAX_DELAY: Duration = Duration::from_secs(30 * 86_400);

/// Runs a timer's function as a call of the instance; an error is the script's, in words.
pub(in crate::plugins::script) type Runner =
    Arc<dyn Fn(Function) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// Where the timers of a started instance run, and whom they report to.
pub(in crate::plugins::script) struct Start {
    /// Calls a timer's function.
    pub(in crate::plugins::script) runner: Runner,
    /// Cancelled when the instance's bot generation is unloaded.
    pub(in crate::plugins::script) shutdown: CancellationToken,
    /// The bot's tasks.
    pub(in crate::plugins::script) tasks: TaskTracker,
    /// For the log.
    pub(in crate::plugins::script) bot_id: String,
    pub(in crate::plugins::script) plugin: String,
}

/// A timer not started yet.
struct Timer {
    id: u64,
    every: bool,
    period: Duration,
    function: Function,
    cancel: CancellationToken,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Live timers by id: their cancellation.
    live: BTreeMap<u64, CancellationToken>,
    /// Made before the instance started (at the top level).
    waiting: Vec<Timer>,
    started: Option<Arc<Start>>,
    /// Set on unload: no timer starts any more.
    stopped: bool,
}

/// The timers of one instance (or of a discovery run, where they never start).
#[derive(Default)]
pub(in crate::plugins::script) struct Timers {
    state: Mutex<State>,
    /// Cancelled with every timer on [`Timers::stop`].
    all: CancellationToken,
}

impl Timers {
    /// Starts the timers made so far, and every later one at once.
    pub(in crate::plugins::script) fn start(self: &Arc<Self>, start: Start) {
        let start = Arc::new(start);
        let waiting = {
            let mut state = self.state.lock();
            if state.stopped {
                return;
            }
            state.started = Some(start.clone());
            std::mem::take(&mut state.waiting)
        };
        for timer in waiting {
            self.spawn(&start, timer);
        }
    }

    /// Cancels every timer; none starts any more.
    pub(in crate::plugins::script) fn stop(&self) {
        let mut state = self.state.lock();
        state.stopped = true;
        state.waiting.clear();
        state.live.clear();
        self.all.cancel();
    }

    /// How many timers are live.
    #[cfg(test)]
    fn live(&self) -> usize {
        self.state.lock().live.len()
    }

    fn add(self: &Arc<Self>, what: &str, every: bool, seconds: f64, function: Function) -> mlua::Result<TimerHandle> {
        let period = delay(what, seconds)?;
        let mut state = self.state.lock();
        if state.stopped {
            return Err(runtime(format!("{what}: the plugin is being unloaded; no timer starts any more")));
        }
        if state.live.len() >= MAX_TIMERS {
            return Err(runtime(format!(
                "{what}: at most {MAX_TIMERS} live timers per plugin in a bot; cancel one (handle:cancel()) first"
            )));
        }
        state.next_id += 1;
        let id = state.next_id;
        let cancel = self.all.child_token();
        state.live.insert(id, cancel.clone());
        let timer = Timer { id, every, period, function, cancel };
        match state.started.clone() {
            Some(start) => {
                drop(state);
                self.spawn(&start, timer);
            }
            None => state.waiting.push(timer),
        }
        Ok(TimerHandle { id, timers: Arc::downgrade(self) })
    }

    /// Cancels one timer; whether it was live.
    fn cancel(&self, id: u64) -> bool {
        let mut state = self.state.lock();
        state.waiting.retain(|t| t.id != id);
        match state.live.remove(&id) {
            Some(cancel) => {
                cancel.cancel();
                true
            }
            None => false,
        }
    }

    fn spawn(self: &Arc<Self>, start: &Arc<Start>, timer: Timer) {
        let (timers, start_, all) = (Arc::downgrade(self), start.clone(), self.all.clone());
        // On the script threads: the function is the VM's, and only they should wait for its lock.
        let task = async move {
            let Timer { id, every, period, function, cancel } = timer;
            let stopping = start_.shutdown.clone();
            let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = cancel.cancelled() => break,
                    () = stopping.cancelled() => break,
                }
                // A run ends when it ends, or when the instance is unloaded: cancelling an `every` timer (from
                // its own function, say) only stops the next runs.
                let run = tokio::select! {
                    result = (start_.runner)(function.clone()) => result,
                    () = stopping.cancelled() => break,
                    () = all.cancelled() => break,
                    () = cancel.cancelled(), if !every => break,
                };
                if let Err(e) = run {
                    let error = format!("{e:#}");
                    tracing::error!(bot_id = %start_.bot_id, plugin = %start_.plugin, error = %error, "script timer failed");
                    crate::telemetry::metrics::bot_event(&start_.bot_id, "plugin_error");
                }
                if !every {
                    break;
                }
            }
            if let Some(timers) = timers.upgrade() {
                timers.state.lock().live.remove(&id);
            }
        };
        start.tasks.spawn(async move {
            if let Err(e) = crate::plugins::script::pool::run(task).await {
                tracing::error!(error = %e, "a script timer could not run");
            }
        });
    }
}

/// The delay in `seconds`, within the limits.
fn delay(what: &str, seconds: f64) -> mlua::Result<Duration> {
    if !(seconds >= MIN_DELAY.as_secs_f64() && seconds <= MAX_DELAY.as_secs_f64()) {
        return Err(runtime(format!(
            "{what}: the delay must be from {} to {} seconds, not {seconds}",
            MIN_DELAY.as_secs(),
            MAX_DELAY.as_secs()
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// What `timer.after` and `timer.every` return: `handle:cancel()`.
struct TimerHandle {
    id: u64,
    timers: Weak<Timers>,
}

impl UserData for TimerHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("cancel", |_, this, ()| Ok(this.timers.upgrade().is_some_and(|t| t.cancel(this.id))));
    }
}

/// Installs `timer` in a fresh VM; the instance starts the returned timers once it is built.
pub(in crate::plugins::script) fn install(lua: &Lua) -> mlua::Result<Arc<Timers>> {
    let timers = Arc::new(Timers::default());
    let table = lua.create_table()?;
    for (name, every) in [("after", false), ("every", true)] {
        let what = if every { "timer.every" } else { "timer.after" };
        let weak = Arc::downgrade(&timers);
        table.set(
            name,
            lua.create_function(move |_, (seconds, function): (f64, Function)| {
                let timers = weak.upgrade().ok_or_else(|| runtime(format!("{what}: the plugin is unloaded")))?;
                timers.add(what, every, seconds, function)
            })?,
        )?;
    }
    lua.globals().set("timer", table)?;
    Ok(timers)
}

#[cfg(test)]
mod tests {
    use mlua::ObjectLike;

    use super::*;

    #[test]
    fn timers_are_counted_bounded_cancelled_and_stopped() {
        let lua = Lua::new();
        let timers = install(&lua).unwrap();
        let handle: mlua::AnyUserData = lua.load("return timer.every(1, function() end)").eval().unwrap();
        for _ in 1..MAX_TIMERS {
            lua.load("timer.after(60, function() end)").exec().unwrap();
        }
        assert_eq!(timers.live(), MAX_TIMERS);
        let error = lua.load("timer.after(60, function() end)").exec().unwrap_err().to_string();
        assert!(error.contains("at most 16 live timers"), "{error}");
        // Cancelling frees a place, once.
        assert!(handle.call_method::<bool>("cancel", ()).unwrap());
        assert!(!handle.call_method::<bool>("cancel", ()).unwrap(), "cancelled once");
        assert_eq!(timers.live(), MAX_TIMERS - 1);
        lua.load("timer.after(60, function() end)").exec().unwrap();
        // The shortest and longest delays; not a number.
        for (delay, expected) in [("0.5", "not 0.5"), ("1e9", "not 1000000000"), ("0/0", "not NaN")] {
            let error = lua.load(format!("timer.every({delay}, function() end)")).exec().unwrap_err().to_string();
            assert!(error.contains("from 1 to 2592000 seconds") && error.contains(expected), "{error}");
        }
        // Stopped: nothing is live, nothing starts.
        timers.stop();
        assert_eq!(timers.live(), 0);
        let error = lua.load("timer.after(60, function() end)").exec().unwrap_err().to_string();
        assert!(error.contains("being unloaded"), "{error}");
    }
}
