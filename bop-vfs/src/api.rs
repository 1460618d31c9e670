//! What a front end hands bop-vfs at registration: the SQLite functions it
//! calls ([`SqliteApi`], [`CheckpointApi`]), and why registration can fail.

use std::ffi::{c_char, c_int, c_void};

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
