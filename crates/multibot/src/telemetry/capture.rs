//! For tests: what a piece of code logs ([`logged_by`]).

use std::sync::Arc;

use parking_lot::Mutex;

/// Collects log output.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` with a text subscriber of its own; gives its result and the lines it logged.
pub(crate) fn logged_by<T>(f: impl FnOnce() -> T) -> (T, String) {
    let capture = Capture::default();
    let writer = {
        let capture = capture.clone();
        move || capture.clone()
    };
    let subscriber = tracing_subscriber::fmt().with_writer(writer).with_ansi(false).finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let logged = String::from_utf8_lossy(&capture.0.lock()).into_owned();
    (result, logged)
}
