//! `libbop.so`: bop's C ABI and SQLite loadable extension.
//!
//! - [`extension`]: `sqlite3_bop_init` / `sqlite3_extension_init`, which
//!   register the VFS `bop` with the SQLite that loads the library
//!   (`.load libbop` in the `sqlite3` shell, `load_extension` in Python).
//!   The SQLite functions come from the `sqlite3_api_routines` table that
//!   SQLite passes in (`api_routines`), so the library links no SQLite and
//!   has no undefined `sqlite3_*` symbols.
//! - [`c_api`]: `bop_register_vfs`, `bop_last_error`, `bop_version`,
//!   declared in `include/bop.h` for C programs that link SQLite themselves.
//!
//! No panic unwinds into C: every `extern "C"` function runs its body in
//! bop-frontend's panic guard and returns an SQLite error code instead; the
//! message is the thread's last error (`bop_last_error`), which
//! bop-frontend keeps for every front end.
//!
//! Layers, top down: `extension` and `c_api` (the `extern "C"` entries),
//! `api_routines` -> `api_slots`, `errors` (C strings of messages).

mod api_routines;
mod api_slots;
pub mod c_api;
mod errors;
pub mod extension;
