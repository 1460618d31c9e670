//! The message channel behind an SQLite result code: SQLite's own message
//! names only the code ("disk I/O error"), so every error a front end
//! returns to SQLite is also
//! - kept as the thread's last error ([`last_error`]: `bop_last_error()`,
//!   `bop_vfs::last_error`, `bop_libsql::last_error`), and
//! - sent to `sqlite3_log` through the sink the front end installed at
//!   registration ([`install_log_sink`]), and to `tracing`.
//!
//! Errors SQLite's busy handler retries ([`report_busy`]) are kept but not
//! logged: under contention they would flood the log.
//!
//! Nothing here panics: it runs on the error paths of `extern "C"`
//! functions, including the one taken after a panic was caught.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

/// `sqlite3_log`'s type.
pub type LogFn = unsafe extern "C" fn(c_int, *const c_char, ...);

static LOG_SINK: OnceLock<LogFn> = OnceLock::new();

thread_local! {
    static LAST_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Sends every later reported error to `log` (SQLite's `sqlite3_log`).
/// The first sink installed in the process stays (a process registers
/// bop with one SQLite library); returns whether this one was installed.
///
/// # Safety
/// `log` must be the `sqlite3_log` of an SQLite library that stays loaded
/// for the rest of the process.
pub unsafe fn install_log_sink(log: LogFn) -> bool {
    LOG_SINK.set(log).is_ok()
}

/// The message of the last error a bop front end reported on this thread,
/// if any (cleared by [`clear_last_error`]).
pub fn last_error() -> Option<String> {
    LAST_ERROR
        .try_with(|e| e.try_borrow().ok().and_then(|e| e.clone()))
        .ok()
        .flatten()
}

/// Forgets this thread's last error (after an entry point succeeded).
pub fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|e| e.try_borrow_mut().map(|mut e| e.take()));
}

/// Keeps `msg` as this thread's last error and logs it with `code`
/// (`tracing` and `sqlite3_log`).
pub fn report(code: c_int, msg: &str) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        tracing::warn!(code, "{msg}");
        keep(msg);
        log(code, msg);
    }));
}

/// [`report`] for an error SQLite's busy handler retries: kept as the last
/// error, logged to `tracing` at debug level only.
pub fn report_busy(code: c_int, msg: &str) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        tracing::debug!(code, "{msg}");
        keep(msg);
    }));
}

fn keep(msg: &str) {
    // `try_with` fails only while the thread is being torn down: then no
    // one is left to read the error.
    let _ = LAST_ERROR.try_with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            *e = Some(msg.to_owned());
        }
    });
}

fn log(code: c_int, msg: &str) {
    let Some(log) = LOG_SINK.get() else { return };
    if let Ok(c) = CString::new(msg.replace('%', "%%")) {
        // SAFETY: `log` is sqlite3_log of a loaded SQLite
        // (`install_log_sink`); the format string has no conversions left,
        // so no variadic argument is read.
        unsafe { log(code, c.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_error_is_kept_per_thread_and_cleared() {
        report(1, "bop: first");
        report_busy(5, "bop: busy");
        assert_eq!(last_error().as_deref(), Some("bop: busy"));
        std::thread::spawn(|| assert_eq!(last_error(), None))
            .join()
            .unwrap();
        clear_last_error();
        assert_eq!(last_error(), None);
    }
}
