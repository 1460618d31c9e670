//! The storage layer's one error type.

use std::path::PathBuf;

/// Every failure the engine reports. The front ends map these to SQLite
/// result codes in one place (`bop-frontend/src/codes.rs`).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system I/O call failed.
    #[error("bop: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bytes on disk failed verification (checksum, magic, version, layout).
    #[error("bop: corrupt {path} at offset {offset}: {what}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    /// The store is held by another process.
    #[error("bop: store {path} is locked by another process")]
    Locked { path: PathBuf },
    /// A configuration value or URI parameter is invalid.
    #[error("bop: invalid configuration: {0}")]
    Config(String),
    /// The store on disk is from a newer or foreign format.
    #[error("bop: {path}: {what}")]
    Format { path: PathBuf, what: String },
    /// A bounded resource is exhausted.
    #[error("bop: limit reached: {0}")]
    Limit(String),
    /// The LMDB manifest failed.
    #[error("bop: manifest {path}: {source}")]
    Manifest {
        path: PathBuf,
        #[source]
        source: heed::Error,
    },
    /// A bounded resource is full for now (a writer waited its bound for
    /// room); retrying later can succeed. SQLite sees SQLITE_BUSY.
    #[error("bop: busy: {0}")]
    Busy(String),
    /// A caller broke the engine's contract (for example SQLite rewriting a
    /// committed WAL frame); the operation is refused.
    #[error("bop: internal invariant violated: {0}")]
    Invariant(String),
    /// One write was refused because it would change bytes that are
    /// already committed (a VFS layered over bop rewriting a committed WAL
    /// frame with other bytes). Only that write fails; the store goes on.
    #[error("bop: write refused: {0}")]
    Refused(String),
    /// A change-log cursor fell more than the change log's bound behind: the
    /// changes after `acked` up to `oldest` were truncated. The consumer must
    /// resync from a snapshot, then drop and register the cursor again.
    #[error("bop: change-log cursor {cursor:?} lagged: it acknowledged change {acked}, but the oldest change kept is {oldest}; resync and register it again")]
    CursorLagged {
        cursor: String,
        acked: u64,
        oldest: u64,
    },
    /// The store refuses writes after an earlier unrecoverable failure.
    #[error("bop: store {path} is failed and refuses writes: {reason}")]
    Failed {
        path: PathBuf,
        reason: String,
        /// The OS error behind the original failure (ENOSPC keeps being
        /// reported as a full disk).
        errno: Option<i32>,
    },
}

impl StorageError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub fn corrupt(path: impl Into<PathBuf>, offset: u64, what: impl Into<String>) -> Self {
        StorageError::Corrupt {
            path: path.into(),
            offset,
            what: what.into(),
        }
    }

    /// Whether the failure is (or was caused by) a full disk or a full
    /// manifest map.
    pub fn is_disk_full(&self) -> bool {
        matches!(self.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
            || matches!(
                self,
                StorageError::Manifest {
                    source: heed::Error::Mdb(heed::MdbError::MapFull),
                    ..
                }
            )
    }

    /// The raw OS error number, when the failure came from the kernel.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            StorageError::Io { source, .. } => source.raw_os_error(),
            StorageError::Failed { errno, .. } => *errno,
            StorageError::Manifest {
                source: heed::Error::Io(io),
                ..
            } => io.raw_os_error(),
            _ => None,
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// The message carried by a caught panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_owned())
}
