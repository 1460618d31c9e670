//! Registers bop's VFS with the SQLite library rusqlite links (bundled or
//! system: the application picks rusqlite's features).
//!
//! ```no_run
//! bop_rusqlite::register().unwrap();
//! let conn = rusqlite::Connection::open_with_flags(
//!     "file:/tmp/app.db?vfs=bop",
//!     rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
//!         | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
//!         | rusqlite::OpenFlags::SQLITE_OPEN_URI,
//! ).unwrap();
//! ```
//!
//! The `extern "C"` functions below hand rusqlite's SQLite to bop-vfs; like
//! every `extern "C"` function of bop they run in bop-frontend's panic
//! guard.

use std::ffi::{c_char, c_int, c_void};
use std::ptr::null_mut;

use bop_frontend::guard;
use bop_frontend::sys::SQLITE_INTERNAL;
use rusqlite::ffi;

pub use bop_vfs::{last_error, RegisterError, VFS_NAME};

unsafe extern "C" fn vfs_find(name: *const c_char) -> *mut c_void {
    guard("sqlite3_vfs_find", null_mut(), || {
        // SAFETY: same contract as sqlite3_vfs_find.
        unsafe { ffi::sqlite3_vfs_find(name).cast() }
    })
}

unsafe extern "C" fn vfs_register(vfs: *mut c_void, make_default: c_int) -> c_int {
    guard("sqlite3_vfs_register", SQLITE_INTERNAL, || {
        // SAFETY: bop-vfs passes a sqlite3_vfs that lives for the process.
        unsafe { ffi::sqlite3_vfs_register(vfs.cast(), make_default) }
    })
}

unsafe extern "C" fn uri_parameter(file: *const c_char, key: *const c_char) -> *const c_char {
    guard("sqlite3_uri_parameter", std::ptr::null(), || {
        // SAFETY: `file` is a filename SQLite passed to xOpen.
        unsafe { ffi::sqlite3_uri_parameter(file as _, key) }
    })
}

unsafe extern "C" fn uri_key(file: *const c_char, n: c_int) -> *const c_char {
    guard("sqlite3_uri_key", std::ptr::null(), || {
        // SAFETY: `file` is a filename SQLite passed to xOpen.
        unsafe { ffi::sqlite3_uri_key(file as _, n) }
    })
}

unsafe extern "C" fn malloc(n: c_int) -> *mut c_void {
    guard("sqlite3_malloc", null_mut(), || {
        // SAFETY: plain allocation.
        unsafe { ffi::sqlite3_malloc(n) }
    })
}

unsafe extern "C" fn free(p: *mut c_void) {
    guard("sqlite3_free", (), || {
        // SAFETY: `p` came from sqlite3_malloc.
        unsafe { ffi::sqlite3_free(p) }
    })
}

unsafe extern "C" fn open_v2(
    name: *const c_char,
    db: *mut *mut c_void,
    flags: c_int,
    vfs: *const c_char,
) -> c_int {
    guard("sqlite3_open_v2", SQLITE_INTERNAL, || {
        // SAFETY: same contract as sqlite3_open_v2.
        unsafe { ffi::sqlite3_open_v2(name, db.cast(), flags, vfs) }
    })
}

unsafe extern "C" fn close(db: *mut c_void) -> c_int {
    guard("sqlite3_close", SQLITE_INTERNAL, || {
        // SAFETY: `db` came from sqlite3_open_v2.
        unsafe { ffi::sqlite3_close(db.cast()) }
    })
}

unsafe extern "C" fn exec(
    db: *mut c_void,
    sql: *const c_char,
    callback: *mut c_void,
    arg: *mut c_void,
    errmsg: *mut *mut c_char,
) -> c_int {
    guard("sqlite3_exec", SQLITE_INTERNAL, || {
        debug_assert!(callback.is_null());
        // SAFETY: same contract as sqlite3_exec; bop passes no callback.
        unsafe { ffi::sqlite3_exec(db.cast(), sql, None, arg, errmsg) }
    })
}

unsafe extern "C" fn wal_checkpoint_v2(
    db: *mut c_void,
    name: *const c_char,
    mode: c_int,
    log: *mut c_int,
    ckpt: *mut c_int,
) -> c_int {
    guard("sqlite3_wal_checkpoint_v2", SQLITE_INTERNAL, || {
        // SAFETY: same contract as sqlite3_wal_checkpoint_v2.
        unsafe { ffi::sqlite3_wal_checkpoint_v2(db.cast(), name, mode, log, ckpt) }
    })
}

/// Registers the VFS `bop` (not as the default). Idempotent.
pub fn register() -> Result<(), RegisterError> {
    register_with(false)
}

/// Registers the VFS `bop`, optionally as the default VFS.
pub fn register_with(make_default: bool) -> Result<(), RegisterError> {
    let api = bop_vfs::SqliteApi {
        vfs_find,
        vfs_register,
        malloc,
        free,
        uri_parameter,
        uri_key,
        log: ffi::sqlite3_log,
        checkpoint: Some(bop_vfs::CheckpointApi {
            open_v2,
            close,
            exec,
            wal_checkpoint_v2,
        }),
    };
    // SAFETY: every pointer is a function of the SQLite rusqlite links,
    // which lives as long as the process.
    unsafe { bop_vfs::register(api, make_default) }
}
