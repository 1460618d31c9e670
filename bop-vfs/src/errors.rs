//! The one place where errors become SQLite result codes, and where their
//! messages are kept for the caller (`last_error`) and sent to `sqlite3_log`.

use std::cell::RefCell;
use std::ffi::{c_int, CString};

use bop_storage::StorageError;

use crate::sys::*;

thread_local! {
    static LAST_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The message of the last error the VFS reported on this thread, if any.
/// SQLite's own messages carry only the code ("disk I/O error"); this names
/// the file, offset and cause.
pub fn last_error() -> Option<String> {
    LAST_ERROR.with(|e| e.borrow().clone())
}

/// What the VFS was doing when an error happened; picks the extended code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Open,
    Read,
    Write,
    Sync,
    Truncate,
    Delete,
}

/// Records `msg` as this thread's last error and logs it through SQLite.
pub fn report(code: c_int, msg: &str) {
    tracing::warn!(code, "{msg}");
    LAST_ERROR.with(|e| *e.borrow_mut() = Some(msg.to_string()));
    if let Some(api) = crate::shim::api() {
        if let Ok(c) = CString::new(msg.replace('%', "%%")) {
            // SAFETY: `log` is sqlite3_log of the SQLite using this VFS; the
            // format string has no conversions left, so no varargs are read.
            unsafe { (api.log)(code, c.as_ptr()) };
        }
    }
}

/// Maps an engine error to an SQLite code and reports its message.
pub fn to_code(e: &StorageError, op: Op) -> c_int {
    let code = match e {
        StorageError::Io { source, .. } => match source.raw_os_error() {
            _ if e.is_disk_full() => SQLITE_FULL,
            Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) if op == Op::Open => {
                SQLITE_CANTOPEN
            }
            Some(libc::ENOENT) if op == Op::Open => SQLITE_CANTOPEN,
            _ => match op {
                Op::Open => SQLITE_CANTOPEN,
                Op::Read => SQLITE_IOERR_READ,
                Op::Write => SQLITE_IOERR_WRITE,
                Op::Sync => SQLITE_IOERR_FSYNC,
                Op::Truncate => SQLITE_IOERR_TRUNCATE,
                Op::Delete => SQLITE_IOERR_DELETE,
            },
        },
        // A checksum failure while reading data: the code SQLite's own
        // checksum VFS uses. At open, the store as a whole is unusable.
        StorageError::Corrupt { .. } if op == Op::Read => SQLITE_IOERR_DATA,
        StorageError::Corrupt { .. } => SQLITE_CORRUPT,
        StorageError::Locked { .. } | StorageError::Busy(_) => SQLITE_BUSY,
        StorageError::Config(_) => {
            if op == Op::Open {
                SQLITE_CANTOPEN
            } else {
                SQLITE_MISUSE
            }
        }
        StorageError::Format { .. } => SQLITE_NOTADB,
        StorageError::Limit(_) => SQLITE_FULL,
        StorageError::Manifest { .. } if e.is_disk_full() => SQLITE_FULL,
        StorageError::Manifest { .. } => {
            if op == Op::Open {
                SQLITE_CANTOPEN
            } else {
                SQLITE_IOERR
            }
        }
        StorageError::Failed { .. } if e.is_disk_full() => SQLITE_FULL,
        StorageError::Failed { .. } | StorageError::Invariant(_) => SQLITE_IOERR,
        // Change-log consumers are not on SQLite's paths; should one be,
        // the cursor's data is gone, not the database's.
        StorageError::CursorLagged { .. } => SQLITE_ERROR,
    };
    report(code, &e.to_string());
    code
}
