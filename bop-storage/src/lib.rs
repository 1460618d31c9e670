//! bop-storage: the engine under bop's SQLite VFS and libSQL virtual WAL.
//!
//! Vocabulary: the **record log** ([`log`]) is bop's own durable log of
//! checksummed records; **WAL** is SQLite's write-ahead log (the `-wal`
//! file SQLite believes it writes); the **WAL image** ([`wal_image`]) is
//! the bytes of that file as bop keeps them, one log record per committed
//! transaction. On-disk names that predate these terms (`wal/`,
//! `BOPWALSG`) are kept.
//!
//! Layers, bottom up (each imports only the layers below it):
//! - the bottom: [`io`] (all file I/O, behind a trait) and the helpers
//!   every layer uses: [`error`], [`types`], [`fail`], [`panic`](mod@panic),
//!   [`metrics`], [`open_once`], and [`wal_format`] (SQLite's WAL format,
//!   as bop reads it).
//! - [`cache`] (the process-wide page cache) and [`manifest`] (LMDB: what
//!   the store contains; its change log and journal).
//! - [`log`] (the record log: checksummed records in preallocated
//!   segments) and [`page_store`] (checksummed page chunks).
//! - [`wal_image`] (a database's WAL image, kept as log records).
//! - [`store_dir`] (what a store's databases share, and how to open a
//!   store) and [`store`] (one database: the API the front ends call).

pub mod cache;
pub mod error;
pub mod fail;
pub mod io;
pub mod linger;
pub mod log;
pub mod manifest;
pub mod metrics;
pub mod open_once;
pub mod page_store;
pub mod panic;
pub mod store;
mod store_create;
pub mod store_dir;
pub mod types;
pub mod wal_format;
pub mod wal_image;

pub use error::{Result, StorageError};
pub use io::select::{default_backend, io_stats, DirectMode, IoMode, IoStats};
pub use store::{is_store, validate_page_size, Store, StoreOptions, StoreStats, VerifyReport};
pub use types::{ChunkId, DbId, Epoch, Lsn, PageNo, SegmentId};
