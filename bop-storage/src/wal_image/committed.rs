//! The committed part of the WAL image, readable without the image lock
//! (`wal_image/mod.rs` invariants 1 and 5, and its lock order). Reads
//! planned here are done by `frame_cache.rs`.

use crate::log::RecordLoc;
use std::sync::{Arc, RwLock};

use super::frame_cache::{FrameCache, RecordRead};

/// One log record of the committed image.
#[derive(Debug)]
pub(crate) struct ImageRecord {
    /// Where the record's payload starts in the WAL image.
    pub(super) wal_offset: u64,
    pub(super) loc: RecordLoc,
    /// The cumulative SQLite checksum of the record's last (commit) frame.
    pub(super) last_cksum: [u32; 2],
    /// The commit put the record's pages into the page cache (reads of
    /// other records do not look there).
    pub(super) pages_cached: bool,
}

/// The committed image (invariants 1 and 5): shared by the [`WalImage`]
/// and its [`CommittedView`]s.
///
/// [`WalImage`]: super::WalImage
#[derive(Debug, Default)]
pub(crate) struct Committed {
    pub(super) records: Vec<ImageRecord>,
    pub(super) end: u64,
    pub(super) restarting: bool,
}

impl Committed {
    /// Empties the image (a new generation, a reset, a close) and returns
    /// its records.
    pub(super) fn take(&mut self) -> Vec<ImageRecord> {
        self.end = 0;
        self.restarting = false;
        std::mem::take(&mut self.records)
    }
}

/// Reads of committed bytes of the WAL image without the image lock, for
/// readers: SQLite readers only read frames of their snapshot, which are
/// committed, so they need not wait while the writer seals a commit (its
/// I/O runs under the image lock).
#[derive(Clone, Debug)]
pub struct CommittedView {
    pub(super) committed: Arc<RwLock<Committed>>,
    pub(crate) frames: FrameCache,
}

impl CommittedView {
    /// Plans a read of `len` bytes at `offset` if they lie inside one
    /// committed record and no open transaction restarts the image
    /// (invariant 5); `None` sends the caller to
    /// [`super::WalImage::plan_read`], under the image lock.
    pub fn plan_read(&self, offset: u64, len: usize) -> Option<RecordRead> {
        let c = self.committed.read().unwrap_or_else(|p| p.into_inner());
        let end = offset.checked_add(len as u64)?;
        if c.restarting || end > c.end || len == 0 {
            return None;
        }
        let i = c.records.partition_point(|r| r.wal_offset <= offset) - 1;
        let r = &c.records[i];
        let within = offset - r.wal_offset;
        if within + len as u64 > u64::from(r.loc.payload_len) {
            return None;
        }
        Some(RecordRead {
            loc: r.loc.clone(),
            within,
            buf_at: 0,
            len,
            pages_cached: r.pages_cached,
        })
    }
}
