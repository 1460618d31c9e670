//! The one mapping from engine errors to SQLite result codes, keyed by
//! what the front end was doing ([`Op`]); both front ends (the VFS and
//! libSQL's virtual WAL) use it.

use std::ffi::c_int;

use bop_storage::StorageError;

use crate::report::{report, report_busy};
use crate::sys::*;

/// What a front end was doing when an engine error happened; picks the
/// extended code of an I/O error, and the code of a few others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Opening a database (xOpen, libSQL's WAL open).
    Open,
    /// Reading pages or WAL frames, starting a read transaction.
    Read,
    /// Writing pages or WAL frames; starting, sealing or undoing a write
    /// transaction.
    Write,
    /// Making writes durable (xSync).
    Sync,
    /// Cutting a file (xTruncate).
    Truncate,
    /// Deleting a file (xDelete).
    Delete,
    /// Anything else (checkpoint, close, control calls): plain codes.
    Other,
}

/// The SQLite result code of `e` during `op`.
pub fn sqlite_code(e: &StorageError, op: Op) -> c_int {
    match e {
        _ if e.is_disk_full() => SQLITE_FULL,
        StorageError::Io { .. } => match op {
            Op::Open => SQLITE_CANTOPEN,
            Op::Read => SQLITE_IOERR_READ,
            Op::Write => SQLITE_IOERR_WRITE,
            Op::Sync => SQLITE_IOERR_FSYNC,
            Op::Truncate => SQLITE_IOERR_TRUNCATE,
            Op::Delete => SQLITE_IOERR_DELETE,
            Op::Other => SQLITE_IOERR,
        },
        // A checksum failure while reading data: the code SQLite's own
        // checksum VFS uses. Elsewhere (at open) the store is unusable.
        StorageError::Corrupt { .. } if op == Op::Read => SQLITE_IOERR_DATA,
        StorageError::Corrupt { .. } => SQLITE_CORRUPT,
        StorageError::Locked { .. } | StorageError::Busy(_) => SQLITE_BUSY,
        StorageError::Config(_) if op == Op::Open => SQLITE_CANTOPEN,
        StorageError::Config(_) => SQLITE_MISUSE,
        StorageError::Format { .. } => SQLITE_NOTADB,
        StorageError::Limit(_) => SQLITE_FULL,
        StorageError::Refused(_) if op == Op::Write => SQLITE_IOERR_WRITE,
        StorageError::Refused(_) => SQLITE_IOERR,
        StorageError::Manifest { .. } if op == Op::Open => SQLITE_CANTOPEN,
        StorageError::Manifest { .. }
        | StorageError::Failed { .. }
        | StorageError::Invariant(_) => SQLITE_IOERR,
        // Change-log consumers are not on SQLite's paths; should one be,
        // the cursor's data is gone, not the database's.
        StorageError::CursorLagged { .. } => SQLITE_ERROR,
    }
}

/// Whether SQLite's busy handler retries an error with `code` returned
/// during `op` (an open that meets a locked store is not retried).
pub fn is_retried(code: c_int, op: Op) -> bool {
    code & 0xff == SQLITE_BUSY && op != Op::Open
}

/// Maps `e` to its SQLite code and reports its message (see `report.rs`).
pub fn to_code(e: &StorageError, op: Op) -> c_int {
    let code = sqlite_code(e, op);
    report_code(code, &e.to_string(), op);
    code
}

/// Reports `msg` for an error with `code` returned during `op`: retried
/// (busy) errors are kept but not logged.
pub fn report_code(code: c_int, msg: &str, op: Op) {
    if is_retried(code, op) {
        report_busy(code, msg);
    } else {
        report(code, msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn io(errno: i32) -> StorageError {
        StorageError::io(
            "write",
            PathBuf::from("/s/x.seg"),
            std::io::Error::from_raw_os_error(errno),
        )
    }

    #[test]
    fn io_errors_take_the_extended_code_of_the_operation() {
        let e = io(libc::EIO);
        assert_eq!(sqlite_code(&e, Op::Open), SQLITE_CANTOPEN);
        assert_eq!(sqlite_code(&e, Op::Read), SQLITE_IOERR_READ);
        assert_eq!(sqlite_code(&e, Op::Write), SQLITE_IOERR_WRITE);
        assert_eq!(sqlite_code(&e, Op::Sync), SQLITE_IOERR_FSYNC);
        assert_eq!(sqlite_code(&e, Op::Truncate), SQLITE_IOERR_TRUNCATE);
        assert_eq!(sqlite_code(&e, Op::Delete), SQLITE_IOERR_DELETE);
        assert_eq!(sqlite_code(&e, Op::Other), SQLITE_IOERR);
        for op in [Op::Open, Op::Write, Op::Other] {
            assert_eq!(sqlite_code(&io(libc::ENOSPC), op), SQLITE_FULL);
        }
    }

    #[test]
    fn other_errors() {
        let corrupt = StorageError::corrupt("/s/x", 0, "checksum");
        assert_eq!(sqlite_code(&corrupt, Op::Read), SQLITE_IOERR_DATA);
        assert_eq!(sqlite_code(&corrupt, Op::Open), SQLITE_CORRUPT);
        let config = StorageError::Config("x".into());
        assert_eq!(sqlite_code(&config, Op::Open), SQLITE_CANTOPEN);
        assert_eq!(sqlite_code(&config, Op::Write), SQLITE_MISUSE);
        let refused = StorageError::Refused("x".into());
        assert_eq!(sqlite_code(&refused, Op::Write), SQLITE_IOERR_WRITE);
        assert_eq!(sqlite_code(&refused, Op::Sync), SQLITE_IOERR);
        let busy = StorageError::Busy("x".into());
        assert_eq!(sqlite_code(&busy, Op::Write), SQLITE_BUSY);
        assert!(is_retried(SQLITE_BUSY, Op::Write));
        assert!(is_retried(SQLITE_BUSY_SNAPSHOT, Op::Write));
        assert!(!is_retried(SQLITE_BUSY, Op::Open));
        assert!(!is_retried(SQLITE_IOERR, Op::Write));
    }

    #[test]
    fn to_code_keeps_the_message() {
        let e = io(libc::EIO);
        assert_eq!(to_code(&e, Op::Sync), SQLITE_IOERR_FSYNC);
        assert_eq!(crate::last_error(), Some(e.to_string()));
    }
}
