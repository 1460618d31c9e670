//! The panic guard every `extern "C"` function of bop runs its body in: a
//! panic never unwinds into C (which would abort the process); it becomes
//! the function's error value, and its message, with the location where it
//! happened (`bop_storage::panic`), becomes the thread's last error.

use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use bop_storage::error::panic_message;

use crate::report::report;
use crate::sys::SQLITE_INTERNAL;

/// Runs `body`, turning a panic into its message:
/// `bop: internal error (panic) in <what>: <message> at <file:line:col>`.
/// `what` names the entry point (`xRead`, `bop_register_vfs`, ...).
/// Records nothing: see [`guard`].
pub fn catch<T>(what: &str, body: impl FnOnce() -> T) -> Result<T, String> {
    // The outer catch_unwind holds a panic raised while the inner one drops
    // a panic's payload; that second payload is leaked, not dropped.
    match catch_unwind(AssertUnwindSafe(|| bop_storage::panic::catch(body))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(report)) => {
            let at = report
                .location
                .map(|l| format!(" at {l}"))
                .unwrap_or_default();
            Err(format!(
                "bop: internal error (panic) in {what}: {}{at}",
                report.message
            ))
        }
        Err(payload) => {
            let detail = panic_message(payload.as_ref());
            std::mem::forget(payload);
            Err(format!(
                "bop: internal error (panic) in {what}: {detail} (while dropping a panic payload)"
            ))
        }
    }
}

/// Runs the body of the `extern "C"` function `what`; a panic is reported
/// (last error, `sqlite3_log`) and becomes `on_panic`.
pub fn guard<T>(what: &str, on_panic: T, body: impl FnOnce() -> T) -> T {
    match catch(what, body) {
        Ok(v) => v,
        Err(msg) => {
            report(SQLITE_INTERNAL, &msg);
            on_panic
        }
    }
}

/// [`guard`] for a method that may change a store: a panic there also
/// fails the store (`fail_store` gets the message; the store then refuses
/// writes until it is reopened, when recovery starts from what is durable),
/// because a write path interrupted half-way must not be continued.
/// `on_panic` is an SQLite code, reported with the message.
pub fn guard_write(
    what: &str,
    on_panic: c_int,
    fail_store: impl FnOnce(&str),
    body: impl FnOnce() -> c_int,
) -> c_int {
    match catch(what, body) {
        Ok(v) => v,
        Err(msg) => {
            if let Err(again) = catch(what, || fail_store(&msg)) {
                tracing::error!("{again}");
            }
            report(on_panic, &msg);
            on_panic
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::SQLITE_IOERR_WRITE;

    fn boom() -> c_int {
        if std::hint::black_box(true) {
            panic!("boom {}", 7);
        }
        0
    }

    #[test]
    fn a_panic_becomes_the_error_value_and_the_last_error() {
        assert_eq!(guard("xTest", 1, || 5), 5);
        assert_eq!(guard("xTest", -1, boom), -1);
        let msg = crate::last_error().unwrap();
        assert!(
            msg.starts_with("bop: internal error (panic) in xTest: boom 7 at "),
            "{msg}"
        );
        assert!(msg.contains("guard.rs:"), "the location: {msg}");
    }

    #[test]
    fn a_panic_in_a_write_path_fails_the_store() {
        let mut failed = None;
        let rc = guard_write(
            "xWrite",
            SQLITE_IOERR_WRITE,
            |m| failed = Some(m.to_owned()),
            boom,
        );
        assert_eq!(rc, SQLITE_IOERR_WRITE);
        let failed = failed.expect("the store was failed");
        assert!(failed.contains("boom 7"), "{failed}");
        assert_eq!(crate::last_error(), Some(failed));
        let mut called = false;
        assert_eq!(guard_write("xWrite", 1, |_| called = true, || 0), 0);
        assert!(!called);
    }

    #[test]
    fn a_panicking_payload_drop_is_caught() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("in drop");
            }
        }
        let r = catch("xTest", || std::panic::panic_any(Bomb));
        let msg = r.unwrap_err();
        assert!(msg.contains("in drop"), "{msg}");
    }
}
