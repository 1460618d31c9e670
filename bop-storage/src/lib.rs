//! bop-storage: the engine under bop's SQLite VFS.
//!
//! Layers, bottom up: [`io`] (all file I/O, behind a trait), [`wal`]
//! (checksummed records in preallocated segments), [`page_store`]
//! (checksummed page chunks), [`manifest`] (LMDB: what the store contains),
//! [`log`] (the SQLite WAL image kept as WAL records) and [`store`] (one
//! database: the API the front ends call).

pub mod cache;
pub mod error;
pub mod fail;
pub mod io;
pub mod log;
pub mod manifest;
pub mod metrics;
pub mod open_once;
pub mod page_store;
pub mod panic;
pub mod store;
pub mod store_dir;
pub mod types;
pub mod wal_format;
pub mod wal_image;

pub use error::{Result, StorageError};
pub use io::select::{default_backend, io_stats, DirectMode, IoMode, IoStats};
pub use store::{is_store, validate_page_size, Store, StoreOptions, StoreStats, VerifyReport};
pub use types::{ChunkId, DbId, Epoch, Lsn, PageNo, SegmentId};
