//! The C side of bop's message channel: `bop_last_error` hands out the
//! thread's last error (kept by `bop_frontend`) as a C string this crate
//! owns, and the extension's init writes its failure into SQLite's
//! `*pzErrMsg`.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

thread_local! {
    /// Owns the string `bop_last_error` returned last on this thread.
    static RETURNED: RefCell<Option<CString>> = const { RefCell::new(None) };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interior_nul_is_escaped() {
        assert_eq!(c_string_lossy("a\0b".to_owned()).to_str().unwrap(), "a\\0b");
    }

    #[test]
    fn the_returned_string_is_the_message() {
        let p = to_returned_c_string(Some("bop: x".to_owned()));
        // SAFETY: a NUL-terminated string this thread owns until the next call.
        let s = unsafe { std::ffi::CStr::from_ptr(p) };
        assert_eq!(s.to_str(), Ok("bop: x"));
        assert!(to_returned_c_string(None).is_null());
    }
}
