//! bop-libsql: libSQL with bop as its storage engine.
//!
//! libSQL (a fork of SQLite) lets an application replace the WAL with a
//! *virtual WAL* (`libsql_wal_manager` / `libsql_wal_methods`). This crate
//! implements one over `bop-storage`:
//!
//! - the main database file is bop's page store, served by the `bop` VFS
//!   (`bop-vfs`, registered in libSQL's bundled SQLite);
//! - the WAL is the store's SQLite WAL image, each commit of which is one
//!   record of bop's record log; this crate writes the standard SQLite WAL
//!   bytes into it (`format.rs`), so the same store opens through stock
//!   SQLite and the `bop` VFS, and the reverse;
//! - the wal-index is an in-process index shared by the connections to a
//!   database (`virtual_wal.rs`): snapshots for readers, one writer,
//!   checkpoints into the page store.
//!
//! ```no_run
//! let conn = bop_libsql::open("/tmp/app.db", bop_libsql::OpenFlags::default())?;
//! conn.execute_batch("CREATE TABLE IF NOT EXISTS t(a); INSERT INTO t VALUES (1);")?;
//! let n = conn.query_i64("SELECT count(*) FROM t")?;
//! # Ok::<(), bop_libsql::Error>(())
//! ```
//!
//! Layers, top down (each imports only those below it): `shim` (every
//! `unsafe` and `extern "C"` item: libSQL's WAL callbacks, the connection
//! wrapper, the C API; each entry runs in bop-frontend's panic guard),
//! `virtual_wal` (the virtual WAL as a safe trait and its implementation),
//! `format` (SQLite's WAL bytes), `error` (the one error type; its engine
//! errors get their SQLite codes from bop-frontend), `types` (flags and
//! values).
//!
//! Never link this crate into a binary that also links `libsqlite3-sys` or
//! rusqlite: both define the `sqlite3_*` symbols.

mod error;
pub mod format;
mod shim;
mod types;
pub mod virtual_wal;

use std::path::Path;

pub use bop_frontend::{last_error, Op};
pub use error::{Error, Result};
pub use shim::{Connection, Statement};
pub use types::{OpenFlags, Value};

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
