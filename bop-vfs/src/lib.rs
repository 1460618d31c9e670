//! bop-vfs: a SQLite VFS named `bop` that runs SQLite in WAL mode over the
//! bop storage engine.
//!
//! - The main database file is served by bop's page store.
//! - The `-wal` file is virtual: each committed transaction becomes one bop
//!   WAL record (see `bop_storage::wal_image`).
//! - The `-shm` wal-index lives in process memory, shared by every
//!   connection to the database in this process.
//! - Temporary files (VACUUM's temp database, statement journals) go to the
//!   default VFS.
//!
//! bop-vfs links against no SQLite library. The caller hands it the few
//! SQLite functions it needs as a [`SqliteApi`]: the loadable extension (the
//! `ffi` crate) takes them from `sqlite3_api_routines`; `bop-rusqlite` takes
//! them from the SQLite that rusqlite links; a C program takes them from its
//! own SQLite through `include/bop.h`.
//!
//! Layers: [`sys`] (C types), `shim` (every `extern "C"` entry: panics
//! caught, pointers checked, then a call into safe code), `vfs` / `file`
//! (safe logic), `locks` and `shm` (in-process lock tables and wal-index
//! memory), `errors` (the one mapping from errors to SQLite codes), `uri`
//! (parameters).

mod checkpointer;
mod errors;
mod file;
mod locks;
mod shim;
mod shm;
pub mod sys;
mod uri;
mod vfs;
mod wal_index;

use std::ffi::{c_char, c_int, c_void};

pub use bop_storage::error::panic_message;
pub use errors::last_error;

/// Hooks for tests and tools that drive stores opened through the VFS.
pub mod testing {
    use std::path::Path;
    use std::sync::Arc;

    use bop_storage::io::IoBackend;
    use bop_storage::{StorageError, VerifyReport};

    fn key(path: &Path) -> std::path::PathBuf {
        crate::vfs::full_pathname(&path.to_string_lossy()).unwrap_or_else(|_| path.to_path_buf())
    }

    /// Routes the I/O of the store at `path`, from its next open on, through
    /// `io` (for example a [`bop_storage::io::sim::SimFs`]); `None` restores
    /// the default backend.
    pub fn set_store_io(path: &Path, io: Option<Arc<dyn IoBackend>>) {
        crate::vfs::set_store_io(&key(path), io);
    }

    /// Stops the open store at `path` dead, as a crash would (see
    /// `Store::halt`). Returns whether it was open.
    pub fn halt(path: &Path) -> bool {
        crate::vfs::find_open(&key(path))
            .map(|db| db.store.halt())
            .is_some()
    }

    /// Whether databases opened from now on start with a wal-index bop
    /// built (the default) or have SQLite rebuild it from the WAL image.
    pub fn set_prebuild_wal_index(on: bool) {
        crate::vfs::set_prebuild_wal_index(on);
    }

    /// The wal-index bytes bop builds for `seed` (all regions, in order).
    pub fn wal_index_bytes(seed: &bop_storage::wal_image::WalIndexSeed) -> Option<Vec<u8>> {
        crate::wal_index::build(seed).map(|regions| {
            regions
                .iter()
                .flat_map(|r| r.iter().flat_map(|w| w.to_ne_bytes()))
                .collect()
        })
    }

    /// Verifies every checksum of the open store at `path`.
    pub fn verify(path: &Path) -> Option<Result<VerifyReport, StorageError>> {
        crate::vfs::find_open(&key(path)).map(|db| db.store.verify())
    }
}
pub use uri::{Params, PARAMS_DOC};
/// The engine store behind a database this process has open through the
/// VFS, by the full pathname SQLite uses for it (what xFullPathname
/// returned). Front ends that drive the store's SQLite WAL image themselves
/// (bop-libsql's virtual WAL) find the store the main file was opened on.
pub fn open_store(path: &std::path::Path) -> Option<std::sync::Arc<bop_storage::Store>> {
    vfs::find_open(path).map(|db| db.store.clone())
}

/// The VFS name used in `file:PATH?vfs=bop`.
pub const VFS_NAME: &str = "bop";

/// The SQLite functions bop-vfs calls. All must stay valid for the life of
/// the process.
#[derive(Clone, Copy, Debug)]
pub struct SqliteApi {
    /// `sqlite3_vfs_find`
    pub vfs_find: unsafe extern "C" fn(*const c_char) -> *mut c_void,
    /// `sqlite3_vfs_register`
    pub vfs_register: unsafe extern "C" fn(*mut c_void, c_int) -> c_int,
    /// `sqlite3_malloc`: strings handed back to SQLite (pragma results) are
    /// allocated with it because SQLite frees them with `sqlite3_free`.
    pub malloc: unsafe extern "C" fn(c_int) -> *mut c_void,
    /// `sqlite3_free`
    pub free: unsafe extern "C" fn(*mut c_void),
    /// `sqlite3_uri_parameter`
    pub uri_parameter: unsafe extern "C" fn(*const c_char, *const c_char) -> *const c_char,
    /// `sqlite3_uri_key` (SQLite >= 3.31)
    pub uri_key: unsafe extern "C" fn(*const c_char, c_int) -> *const c_char,
    /// `sqlite3_log`: where the VFS reports the details behind an error code.
    pub log: unsafe extern "C" fn(c_int, *const c_char, ...),
    /// What bop's background checkpointer needs (see `checkpointer.rs`);
    /// `None` turns the checkpoint policy off.
    pub checkpoint: Option<CheckpointApi>,
}

/// The SQLite functions of bop's background checkpointer: it opens its own
/// connection to a database whose WAL passed the policy's size or age, runs
/// a PASSIVE checkpoint (which never blocks readers or the writer), and
/// closes the connection.
#[derive(Clone, Copy, Debug)]
pub struct CheckpointApi {
    /// `sqlite3_open_v2`
    pub open_v2:
        unsafe extern "C" fn(*const c_char, *mut *mut c_void, c_int, *const c_char) -> c_int,
    /// `sqlite3_close`
    pub close: unsafe extern "C" fn(*mut c_void) -> c_int,
    /// `sqlite3_exec` (with no callback: the connection reads the schema,
    /// which opens its WAL, before it checkpoints)
    pub exec: unsafe extern "C" fn(
        *mut c_void,
        *const c_char,
        *mut c_void,
        *mut c_void,
        *mut *mut c_char,
    ) -> c_int,
    /// `sqlite3_wal_checkpoint_v2`
    pub wal_checkpoint_v2:
        unsafe extern "C" fn(*mut c_void, *const c_char, c_int, *mut c_int, *mut c_int) -> c_int,
}

/// Why registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("bop: sqlite3_vfs_register failed with code {0}")]
    Sqlite(c_int),
    #[error("bop: the default VFS was not found (sqlite3_vfs_find(NULL) returned NULL)")]
    NoDefaultVfs,
}

/// Registers the VFS `bop` for the whole process (once; later calls return
/// `Ok` and only change the default if `make_default`).
///
/// # Safety
/// Every function pointer in `api` must be the corresponding SQLite
/// function of the SQLite library that will use the VFS, valid for the rest
/// of the process.
pub unsafe fn register(api: SqliteApi, make_default: bool) -> Result<(), RegisterError> {
    // SAFETY: forwarded contract.
    unsafe { shim::register(api, make_default) }
}
