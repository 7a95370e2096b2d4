//! The threads script calls run on: a small runtime of its own, apart from the workers that serve HTTP, poll
//! Telegram and run native plugins. Script code that cannot yield to the runtime (a busy `table.sort`
//! comparator, a `gsub` callback, a metamethod) holds one of these threads for at most its CPU budget, and a
//! second call waiting for the same VM waits here too: the health probes and the other bots' native handlers
//! never wait on a script. The threads run at a lower priority (nice 10) than the rest of the process, so that
//! scripts computing on every core still leave the workers the CPU they need. A script's host calls do their I/O
//! back on the runtime that made the call ([`home`]), beside the connections they use.

use std::{future::Future, sync::LazyLock};

use tokio::runtime::{Builder, Handle, Runtime};
use tokio_util::task::AbortOnDropHandle;

/// Threads for script calls: as many as the machine has cores, at least four, so that two scripts busy where they
/// cannot yield (each for at most its budget) still leave threads to the other bots' scripts.
static POOL: LazyLock<Result<Runtime, String>> = LazyLock::new(|| {
    let threads = std::thread::available_parallelism().map_or(4, |n| n.get().max(4));
    Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("multibot-script")
        .on_thread_start(lower_priority)
        .enable_all()
        .build()
        .map_err(|e| format!("could not start the script threads: {e}"))
});

tokio::task_local! {
    /// The runtime that made the script call being run.
    static HOME: Handle;
}

/// Runs `work` on the script threads and waits for it; dropping the returned future cancels `work` at its next
/// await (a handler stopped by its time limit or by the shutdown stops its script call with it).
pub(super) async fn run<F>(work: F) -> anyhow::Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let pool = POOL.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
    let work = HOME.scope(Handle::current(), work);
    AbortOnDropHandle::new(pool.spawn(work)).await.map_err(|e| anyhow::anyhow!("the script call failed: {e}"))
}

/// The runtime that made the script call being run, where its host calls' I/O goes: the Bot API's connections are
/// driven there, so a send from a script wakes no script thread until its answer is in. Outside a call (or where the
/// script threads could not start): the current runtime.
pub(super) fn home() -> Handle {
    HOME.try_with(Handle::clone).unwrap_or_else(|_| Handle::current())
}

/// Gives the calling thread a lower scheduling priority (nice 10), so that the kernel prefers the runtime's
/// workers when both want a core. Where the system does not allow it, the thread keeps its priority.
fn lower_priority() {
    let thread = rustix::thread::gettid();
    // On Linux, the nice value of `PRIO_PROCESS` with a thread id is that thread's own.
    if let Err(e) = rustix::process::setpriority_process(Some(thread), 10) {
        tracing::debug!(error = %e, "could not lower the priority of a script thread");
    }
}

/// Runs the synchronous `work` (a script's top level: it may compute for the whole CPU budget) on the script
/// threads and waits for it, so that it holds none of the runtime's workers. What `work` spawns still goes to
/// the caller's runtime. Where the script threads could not start, `work` runs in place.
pub(super) async fn run_sync<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> R {
    let Ok(pool) = POOL.as_ref() else { return work() };
    let caller = tokio::runtime::Handle::current();
    let task = pool.spawn(async move {
        let _entered = caller.enter();
        work()
    });
    match AbortOnDropHandle::new(task).await {
        Ok(result) => result,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the script threads stopped: {e}"),
        },
    }
}
