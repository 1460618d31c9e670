//! The WAL: an append-only log of checksummed records in preallocated
//! segment files under `<store>/wal/`.
//!
//! Invariants (asserted in debug builds where cheap):
//! 1. Records carry consecutive LSNs; within a segment they are back to back
//!    from `SEGMENT_HEADER_LEN`; a segment's first record has its header's
//!    `first_lsn`.
//! 2. A segment is synced before the next one is created, so only the last
//!    segment can hold unsynced records, and a torn tail can only be there.
//! 3. `durable_lsn <= written_lsn < next_lsn` (the watermarks live in the
//!    flush controller, `flush.rs`); every record written carries the
//!    `durable_lsn` known at the time, so recovery can tell a torn tail
//!    (nothing after it was ever durable) from damage to durable data.
//! 4. Every segment file in the manifest exists; files in `wal/` that the
//!    manifest does not list are leftovers of a crash and are removed at open,
//!    except up to `SPARE_SEGMENTS_MAX` spares (`<id>.spare`: dropped
//!    segments of the standard size kept for reuse) and the index files
//!    (`<id>.idx`) of listed segments.
//! 5. A segment index file exists only for a sealed segment (synced, with
//!    a successor) and describes exactly its records; recovery trusts one
//!    only after checking it against the segment and its successor
//!    (`segment_index.rs`).

pub mod buffer;
pub mod flush;
mod preparer;
pub mod record;
pub mod recovery;
pub mod segment;
pub mod segment_index;
pub mod shared;
mod writer;

pub use flush::{FlushConfig, FlushStats, Flusher};
pub use recovery::RecoveredRecord;
pub use shared::SharedLog;
pub use writer::{
    lazy_verifications, spare_file_name, LogConfig, LogStats, RecordLoc, RecordLog,
    SPARE_SEGMENTS_MAX,
};
