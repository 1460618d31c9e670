//! `libbop.so`: bop's C ABI and SQLite loadable extension.
//!
//! - [`extension`]: `sqlite3_bop_init` / `sqlite3_extension_init`, which
//!   register the VFS `bop` with the SQLite that loads the library
//!   (`.load libbop` in the `sqlite3` shell, `load_extension` in Python).
//!   The SQLite functions come from the `sqlite3_api_routines` table that
//!   SQLite passes in ([`api_routines`]), so the library links no SQLite and
//!   has no undefined `sqlite3_*` symbols.
//! - [`c_api`]: `bop_register_vfs`, `bop_last_error`, `bop_version`,
//!   declared in `include/bop.h` for C programs that link SQLite themselves.
//!
//! No panic unwinds into C: every `extern "C"` function runs its body under
//! `catch_unwind` and returns an SQLite error code instead.

mod api_routines;
mod api_slots;
pub mod c_api;
mod errors;
pub mod extension;

const SQLITE_OK: i32 = 0;
const SQLITE_ERROR: i32 = 1;
const SQLITE_INTERNAL: i32 = 2;
const SQLITE_MISUSE: i32 = 21;
const SQLITE_OK_LOAD_PERMANENTLY: i32 = 256;
