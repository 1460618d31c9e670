//! bop-libsql's one error type, and the one place it becomes an SQLite
//! result code ([`Error::code`]).

use std::cell::RefCell;
use std::ffi::c_int;

use bop_storage::StorageError;
use libsql_ffi as ffi;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Another connection writes, or the WAL is being checkpointed; retry.
    #[error("bop-libsql: busy: {0}")]
    Busy(String),
    /// The connection's snapshot is older than the newest commit: it must
    /// end its read transaction before it may write.
    #[error("bop-libsql: snapshot is stale: {0}")]
    BusySnapshot(String),
    /// The store's SQLite WAL image is not a valid WAL.
    #[error("bop-libsql: corrupt WAL image: {0}")]
    Corrupt(String),
    /// The caller broke an API contract (for example a database not opened
    /// through the `bop` VFS).
    #[error("bop-libsql: {0}")]
    Misuse(String),
    /// The database could not be opened.
    #[error("bop-libsql: cannot open: {0}")]
    CantOpen(String),
    /// A bop-libsql invariant does not hold; the operation is refused.
    #[error("bop-libsql: internal invariant violated: {0}")]
    Invariant(String),
    /// A panic was caught at the C boundary.
    #[error("bop-libsql: internal error (panic): {0}")]
    Panic(String),
    /// An SQLite call (through libSQL) failed, or a callback SQLite gave us
    /// returned an error code that must be passed back unchanged.
    #[error("{message} (SQLite code {code})")]
    Sqlite { code: c_int, message: String },
}

impl Error {
    /// The SQLite result code for this error.
    pub fn code(&self) -> c_int {
        match self {
            Error::Storage(e) => match e {
                _ if e.is_disk_full() => ffi::SQLITE_FULL,
                StorageError::Io { .. } => ffi::SQLITE_IOERR,
                StorageError::Corrupt { .. } => ffi::SQLITE_CORRUPT,
                StorageError::Locked { .. } | StorageError::Busy(_) => ffi::SQLITE_BUSY,
                StorageError::Config(_) => ffi::SQLITE_MISUSE,
                StorageError::Format { .. } => ffi::SQLITE_NOTADB,
                StorageError::Limit(_) => ffi::SQLITE_FULL,
                StorageError::CursorLagged { .. } => ffi::SQLITE_ERROR,
                StorageError::Manifest { .. }
                | StorageError::Failed { .. }
                | StorageError::Invariant(_) => ffi::SQLITE_IOERR,
            },
            Error::Busy(_) => ffi::SQLITE_BUSY,
            Error::BusySnapshot(_) => ffi::SQLITE_BUSY_SNAPSHOT,
            Error::Corrupt(_) => ffi::SQLITE_CORRUPT,
            Error::Misuse(_) => ffi::SQLITE_MISUSE,
            Error::CantOpen(_) => ffi::SQLITE_CANTOPEN,
            Error::Invariant(_) => ffi::SQLITE_IOERR,
            Error::Panic(_) => ffi::SQLITE_INTERNAL,
            Error::Sqlite { code, .. } => *code,
        }
    }

    /// Whether SQLite's busy handler may retry the operation.
    pub fn is_busy(&self) -> bool {
        self.code() & 0xff == ffi::SQLITE_BUSY
    }
}

thread_local! {
    static LAST_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The message of the last error bop-libsql returned to SQLite on this
/// thread (SQLite's own message carries only the code).
pub fn last_error() -> Option<String> {
    LAST_ERROR.with(|e| e.borrow().clone())
}

pub(crate) fn set_last_error(msg: String) {
    LAST_ERROR.with(|e| *e.borrow_mut() = Some(msg));
}
