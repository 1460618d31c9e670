//! Positions of the `sqlite3_api_routines` fields bop reads, as 0-based
//! pointer-slot indexes (`offsetof(sqlite3_api_routines, X) / sizeof(void*)`
//! in `sqlite3ext.h`). The struct only ever grows at its end, so an index
//! stays valid in every later SQLite release.
//!
//! This file has no dependencies: `tests/c_api.rs` includes it with
//! `#[path]` and checks every index against the C header.

/// `free` (`sqlite3_free`).
pub const FREE: usize = 58;
/// `libversion_number` (`sqlite3_libversion_number`).
pub const LIBVERSION_NUMBER: usize = 67;
/// `malloc` (`sqlite3_malloc`).
pub const MALLOC: usize = 68;
/// `vfs_find` (`sqlite3_vfs_find`).
pub const VFS_FIND: usize = 141;
/// `vfs_register` (`sqlite3_vfs_register`).
pub const VFS_REGISTER: usize = 142;
/// `log` (`sqlite3_log`, SQLite >= 3.6.23).
pub const LOG: usize = 167;
/// `uri_parameter` (`sqlite3_uri_parameter`, SQLite >= 3.7.7).
pub const URI_PARAMETER: usize = 189;
/// `uri_key` (`sqlite3_uri_key`, SQLite >= 3.31.0).
pub const URI_KEY: usize = 245;
/// `open_v2` (`sqlite3_open_v2`).
pub const OPEN_V2: usize = 135;
/// `close` (`sqlite3_close`).
pub const CLOSE: usize = 16;
/// `exec` (`sqlite3_exec`).
pub const EXEC: usize = 55;
/// `wal_checkpoint_v2` (`sqlite3_wal_checkpoint_v2`, SQLite >= 3.7.6).
pub const WAL_CHECKPOINT_V2: usize = 191;

/// The oldest SQLite whose api routines hold every slot above
/// (`sqlite3_uri_key` arrived in 3.31.0).
pub const MIN_SQLITE_VERSION_NUMBER: i32 = 3_031_000;

/// Every slot with its C field name, for the layout test.
#[allow(dead_code)] // read by tests/c_api.rs only
pub const ALL: &[(&str, usize)] = &[
    ("free", FREE),
    ("libversion_number", LIBVERSION_NUMBER),
    ("malloc", MALLOC),
    ("vfs_find", VFS_FIND),
    ("vfs_register", VFS_REGISTER),
    ("log", LOG),
    ("uri_parameter", URI_PARAMETER),
    ("uri_key", URI_KEY),
    ("open_v2", OPEN_V2),
    ("close", CLOSE),
    ("exec", EXEC),
    ("wal_checkpoint_v2", WAL_CHECKPOINT_V2),
];
