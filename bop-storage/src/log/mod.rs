//! The record log: bop's own durable, append-only log of checksummed
//! records in preallocated segment files, shared by the databases of a
//! store. Each record holds one committed transaction of one database (a
//! byte range of its WAL image, `wal_image/`). The segments live in
//! `<store>/wal/`, with magic `BOPWALSG`: names that predate the term
//! "record log", kept so existing stores open.
//!
//! Files, bottom up:
//! - `record.rs`, `segment.rs`, `segment_index.rs`: the on-disk layouts of
//!   a record, a segment and a segment's index file; where a record lives
//!   and how it is read back verified ([`RecordLoc`]).
//! - `buffer.rs`, `flush.rs`: the aligned buffer of unsynced bytes and the
//!   write and flush controller (group commit, retries, bounds).
//! - `preparer.rs`: spare segments (dropped segments kept for reuse, and
//!   the next one written in the background).
//! - `recovery.rs`: the steps of opening the log (sweep, scan, cut).
//! - `record_log.rs`: [`RecordLog`] and its numbered invariants: open
//!   (running the steps of `recovery.rs`), append, roll, drop.
//! - `shared.rs`: [`SharedLog`], the record log as the store's databases
//!   share it (each database's base, its recovered records).

pub mod buffer;
pub mod flush;
mod preparer;
pub mod record;
mod record_log;
pub mod recovery;
pub mod segment;
pub mod segment_index;
pub mod shared;

pub use flush::{FlushConfig, FlushStats, Flusher};
pub use preparer::{spare_file_name, SPARE_SEGMENTS_MAX};
pub use record::{lazy_verifications, RecordLoc};
pub use record_log::{LogConfig, LogStats, RecordLog, FIRST_SEGMENT_BYTES};
pub use recovery::RecoveredRecord;
pub use shared::SharedLog;
