//! The scope of one call into a script ([`CallScope`]): the host work its host calls start (the tasks of
//! `off_vm`) is cancelled when the call ends, however it ends. A host call left waiting inside a coroutine the
//! script abandoned would otherwise go on until the Lua garbage collector drops it, after its handler.

use std::cell::RefCell;

use tokio_util::sync::CancellationToken;

thread_local! {
    /// The scope of the call being polled on this OS thread.
    static CURRENT: RefCell<Option<CancellationToken>> = const { RefCell::new(None) };
}

/// One call's scope: cancelled when dropped.
#[derive(Default)]
pub(super) struct CallScope(CancellationToken);

impl CallScope {
    /// Makes this the current scope until the guard is dropped (around each poll of the call).
    pub(super) fn enter(&self) -> Entered {
        Entered(CURRENT.with(|c| c.replace(Some(self.0.clone()))))
    }
}

impl Drop for CallScope {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Restores the previous scope.
pub(super) struct Entered(Option<CancellationToken>);

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// The token of the call being polled on this thread; `None` outside any call.
pub(super) fn current() -> Option<CancellationToken> {
    CURRENT.with(|c| c.borrow().clone())
}
