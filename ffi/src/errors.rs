//! The thread-local error behind `bop_last_error`, and the panic guard every
//! `extern "C"` entry point runs its body in.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// An error recorded by this crate, with the VFS's last error at that time:
/// once the VFS records a newer one, the VFS's error is the latest.
struct Recorded {
    message: String,
    vfs_error_then: Option<String>,
}

thread_local! {
    /// The last error recorded by an entry point of this crate.
    static LAST: RefCell<Option<Recorded>> = const { RefCell::new(None) };
    /// Owns the string `bop_last_error` returned last on this thread.
    static RETURNED: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Records `message` as this thread's last error. Never panics (it runs on
/// the error paths of `extern "C"` functions, outside their panic guard).
pub(crate) fn set(message: String) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let vfs_error_then = bop_vfs::last_error();
        // `try_with` fails only while the thread is being torn down: then
        // there is no one left to read the error.
        let _ = LAST.try_with(|last| {
            *last.borrow_mut() = Some(Recorded {
                message,
                vfs_error_then,
            })
        });
    }));
}

/// Forgets this crate's last error (after a successful call). Never panics.
pub(crate) fn clear() {
    let _ = LAST.try_with(|last| last.try_borrow_mut().map(|mut l| l.take()));
}

/// This thread's latest error: this crate's own, unless the VFS recorded a
/// different one since.
pub(crate) fn latest() -> Option<String> {
    let vfs_now = bop_vfs::last_error();
    let own = LAST
        .try_with(|last| {
            last.borrow()
                .as_ref()
                .filter(|r| r.vfs_error_then == vfs_now)
                .map(|r| r.message.clone())
        })
        .ok()
        .flatten();
    own.or(vfs_now)
}

/// Stores `message` as a C string owned by this thread and returns a pointer
/// to it, valid until the next call on this thread (or NULL for `None`).
pub(crate) fn to_returned_c_string(message: Option<String>) -> *const c_char {
    RETURNED
        .try_with(|slot| {
            let mut slot = slot.borrow_mut();
            *slot = message.map(c_string_lossy);
            slot.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
        })
        .unwrap_or(std::ptr::null())
}

/// `s` as a C string, with interior NUL bytes written as `\0`.
pub(crate) fn c_string_lossy(s: String) -> CString {
    CString::new(s).unwrap_or_else(|e| {
        let escaped = String::from_utf8_lossy(&e.into_vec()).replace('\0', "\\0");
        CString::new(escaped).unwrap_or_default()
    })
}

/// Runs `f`, turning a panic into `Err(message)` so that it never unwinds
/// into C. `what` names the entry point in the message.
pub(crate) fn catch_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| panic_message(what, payload))
}

fn panic_message(what: &str, payload: Box<dyn Any + Send>) -> String {
    let detail = bop_vfs::panic_message(payload.as_ref());
    // Dropping a payload can itself panic; leak it rather than risk
    // unwinding out of this function.
    std::mem::forget(payload);
    format!("bop: internal error (panic) in {what}: {detail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_messages() {
        let err = catch_panic("test_fn", || -> i32 { panic!("boom {}", 7) }).unwrap_err();
        assert_eq!(err, "bop: internal error (panic) in test_fn: boom 7");
        assert_eq!(catch_panic("x", || 5), Ok(5));
    }

    #[test]
    fn own_errors_are_reported_and_cleared() {
        set("bop: something failed".to_owned());
        assert_eq!(latest().as_deref(), Some("bop: something failed"));
        clear();
        assert_eq!(latest(), bop_vfs::last_error());
    }

    #[test]
    fn interior_nul_is_escaped() {
        assert_eq!(c_string_lossy("a\0b".to_owned()).to_str().unwrap(), "a\\0b");
    }
}
