//! bop-libsql's one error type. Its own conditions (busy, stale snapshot,
//! a corrupt WAL image, ...) have their SQLite codes here; engine errors
//! get theirs from bop-frontend's one mapping, keyed by what the virtual
//! WAL was doing ([`Error::code_at`]).

use std::ffi::c_int;

use bop_frontend::sys::*;
use bop_frontend::{sqlite_code, Op};
use bop_storage::StorageError;

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
    /// An SQLite call (through libSQL) failed, or a callback SQLite gave us
    /// returned an error code that must be passed back unchanged.
    #[error("{message} (SQLite code {code})")]
    Sqlite { code: c_int, message: String },
}

impl Error {
    /// The SQLite result code for this error returned during `op` (which
    /// picks the code of an engine error; see `bop_frontend::sqlite_code`).
    pub fn code_at(&self, op: Op) -> c_int {
        match self {
            Error::Storage(e) => sqlite_code(e, op),
            Error::Busy(_) => SQLITE_BUSY,
            Error::BusySnapshot(_) => SQLITE_BUSY_SNAPSHOT,
            Error::Corrupt(_) => SQLITE_CORRUPT,
            Error::Misuse(_) => SQLITE_MISUSE,
            Error::CantOpen(_) => SQLITE_CANTOPEN,
            Error::Invariant(_) => SQLITE_IOERR,
            Error::Sqlite { code, .. } => *code,
        }
    }

    /// The SQLite result code for this error outside a particular
    /// operation (an engine error gets its plain code).
    pub fn code(&self) -> c_int {
        self.code_at(Op::Other)
    }

    /// Whether SQLite's busy handler may retry the operation.
    pub fn is_busy(&self) -> bool {
        self.code() & 0xff == SQLITE_BUSY
    }
}
