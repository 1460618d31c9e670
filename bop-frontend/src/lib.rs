//! bop-frontend: what bop's SQLite front ends share, once.
//!
//! bop has three front ends over one engine (`bop-storage`): the SQLite VFS
//! (`bop-vfs`), libSQL's virtual WAL (`bop-libsql`), and the loadable
//! extension and C API (`ffi`, `libbop.so`). Each has a thin FFI shim of
//! `extern "C"` functions on top; below the shims they share this crate:
//!
//! - [`guard`] / [`guard_write`] / [`catch`]: the panic guard every
//!   `extern "C"` function runs its body in (`guard.rs`);
//! - [`sqlite_code`] / [`to_code`] with [`Op`]: the one mapping from engine
//!   errors to SQLite result codes, keyed by the operation (`codes.rs`);
//! - [`report`], [`last_error`], [`install_log_sink`]: the message channel
//!   behind a code (the thread's last error, `sqlite3_log`) (`report.rs`);
//! - [`bop_stats`]: the `PRAGMA bop_stats` line (`stats.rs`);
//! - [`sys`]: the SQLite C types and constants the front ends need.
//!
//! It links no SQLite library: a front end hands it `sqlite3_log` as a
//! function pointer. Layers, top down: `guard`, `codes` -> `report` ->
//! `sys`; `stats` stands alone.

mod codes;
mod guard;
mod report;
mod stats;
pub mod sys;

pub use codes::{is_retried, report_code, sqlite_code, to_code, Op};
pub use guard::{catch, guard, guard_write};
pub use report::{clear_last_error, install_log_sink, last_error, report, report_busy, LogFn};
pub use stats::bop_stats;
