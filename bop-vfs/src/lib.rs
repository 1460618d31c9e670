//! bop-vfs: a SQLite VFS named `bop` that runs SQLite in WAL mode over the
//! bop storage engine.
//!
//! - The main database file is served by bop's page store.
//! - The `-wal` file is virtual: it is the store's WAL image, in which each
//!   committed transaction is one record of bop's record log (see
//!   `bop_storage::wal_image`).
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
//! Layers, top down (each imports only those below it): `shim` (every
//! `extern "C"` entry: run in bop-frontend's panic guard, pointers checked,
//! then a call into safe code; registration); `file` (per-handle logic);
//! `vfs` (names, opening stores, the per-database state); `checkpointer`
//! (the checkpoint policy: the shim installs the function that runs a
//! checkpoint), `uri` (parameters), `locks` and `shm` (in-process lock
//! tables and wal-index memory), `wal_index` (the wal-index bop builds);
//! `api` (what a front end hands in). Errors become SQLite codes, panics
//! error codes, and `PRAGMA bop_stats` its line, in `bop_frontend`.

mod api;
mod checkpointer;
mod file;
mod locks;
mod shim;
mod shm;
mod uri;
mod vfs;
mod wal_index;

pub use api::{CheckpointApi, RegisterError, SqliteApi, VFS_NAME};
pub use bop_frontend::last_error;
pub use bop_frontend::sys;
pub use uri::{Params, PARAMS_DOC};

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

    /// Makes the next call on this thread of a method bop passes through to
    /// the default VFS (xDlOpen, xDlError, xDlSym, xDlClose, xRandomness,
    /// xSleep, xCurrentTime, xGetLastError, xCurrentTimeInt64) panic inside
    /// bop, before it reaches the default VFS: tests check that the panic
    /// guard turns it into an error value and a message.
    pub fn panic_in_next_pass_through() {
        crate::shim::panic_in_next_pass_through();
    }
}

/// The engine store behind a database this process has open through the
/// VFS, by the full pathname SQLite uses for it (what xFullPathname
/// returned). Front ends that drive the store's SQLite WAL image themselves
/// (bop-libsql's virtual WAL) find the store the main file was opened on.
pub fn open_store(path: &std::path::Path) -> Option<std::sync::Arc<bop_storage::Store>> {
    vfs::find_open(path).map(|db| db.store.clone())
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
