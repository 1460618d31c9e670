//! bop-libsql: libSQL with bop as its storage engine.
//!
//! libSQL (a fork of SQLite) lets an application replace the WAL with a
//! *virtual WAL* (`libsql_wal_manager` / `libsql_wal_methods`). This crate
//! implements one over `bop-storage`:
//!
//! - the main database file is bop's page store, served by the `bop` VFS
//!   (`bop-vfs`, registered in libSQL's bundled SQLite);
//! - the WAL is the store's SQLite WAL image, kept as one bop WAL record per
//!   commit; this crate writes the standard SQLite WAL bytes into it
//!   (`format.rs`), so the same store opens through stock SQLite and the
//!   `bop` VFS, and the reverse;
//! - the wal-index is an in-process index shared by the connections to a
//!   database (`wal.rs`): snapshots for readers, one writer, checkpoints
//!   into the page store.
//!
//! ```no_run
//! let conn = bop_libsql::open("/tmp/app.db", bop_libsql::OpenFlags::default())?;
//! conn.execute_batch("CREATE TABLE IF NOT EXISTS t(a); INSERT INTO t VALUES (1);")?;
//! let n = conn.query_i64("SELECT count(*) FROM t")?;
//! # Ok::<(), bop_libsql::Error>(())
//! ```
//!
//! Layers: `shim` (every `unsafe` and `extern "C"` item: libSQL's WAL
//! callbacks, the connection wrapper, the C API; panics caught at every
//! entry), `wal` (the virtual WAL as a safe trait and its implementation),
//! `format` (SQLite's WAL bytes), `error` (the one error type and its
//! SQLite codes).
//!
//! Never link this crate into a binary that also links `libsqlite3-sys` or
//! rusqlite: both define the `sqlite3_*` symbols.

mod error;
pub mod format;
mod shim;
pub mod virtual_wal;

use std::path::Path;

pub use error::{last_error, Error, Result};
pub use shim::{Connection, Statement};

/// Flags of [`open`] (SQLite's `SQLITE_OPEN_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFlags(pub i32);

impl OpenFlags {
    pub const READ_ONLY: OpenFlags = OpenFlags(libsql_ffi::SQLITE_OPEN_READONLY);
    pub const READ_WRITE: OpenFlags = OpenFlags(libsql_ffi::SQLITE_OPEN_READWRITE);
    pub const CREATE: OpenFlags = OpenFlags(libsql_ffi::SQLITE_OPEN_CREATE);
    /// Accept `file:` URIs with bop's parameters (`max_txn_mb`, `io`, ...).
    pub const URI: OpenFlags = OpenFlags(libsql_ffi::SQLITE_OPEN_URI);
    pub const NO_MUTEX: OpenFlags = OpenFlags(libsql_ffi::SQLITE_OPEN_NOMUTEX);
}

impl Default for OpenFlags {
    /// Read-write, create, URIs accepted.
    fn default() -> Self {
        OpenFlags::READ_WRITE | OpenFlags::CREATE | OpenFlags::URI
    }
}

impl std::ops::BitOr for OpenFlags {
    type Output = OpenFlags;
    fn bitor(self, o: OpenFlags) -> OpenFlags {
        OpenFlags(self.0 | o.0)
    }
}

/// A value of a result column or a parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Integer(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Blob(v)
    }
}

/// Opens (or creates, with [`OpenFlags::CREATE`]) the bop store at `path`
/// as a libSQL connection whose WAL is bop's. `path` names the store
/// directory (or `<store>/<name>` for a named database of a store), or a
/// `file:` URI with bop's parameters when `flags` has [`OpenFlags::URI`].
pub fn open(path: impl AsRef<Path>, flags: OpenFlags) -> Result<Connection> {
    Connection::open(path.as_ref(), flags)
}

impl Connection {
    /// The first column of the first row as an integer.
    pub fn query_i64(&self, sql: &str) -> Result<i64> {
        let rows = self.query(sql, &[])?;
        rows.first()
            .and_then(|r| r.first())
            .and_then(Value::as_i64)
            .ok_or_else(|| Error::Misuse(format!("{sql}: no integer result")))
    }

    /// The first column of the first row as text (NULL: `None`).
    pub fn query_string(&self, sql: &str) -> Result<Option<String>> {
        let rows = self.query(sql, &[])?;
        Ok(rows
            .first()
            .and_then(|r| r.first())
            .and_then(|v| v.as_str().map(str::to_owned)))
    }
}
