//! Reading committed frames: a planned read of one log record
//! ([`RecordRead`]), served from the process-wide page cache when the
//! commit put the record's pages there ([`FrameCache`]), else from the
//! record in its segment.
//!
//! A commit that waits for durability (`synchronous=FULL`) is written with
//! direct I/O, which leaves nothing of it in the kernel's page cache, so
//! the first read of one of its pages (a checkpoint copying it, a reader)
//! would go to the device: about 50 µs each, milliseconds for a checkpoint
//! in the committing thread. Such a commit's pages (records up to
//! [`CACHE_AT_COMMIT_RECORD_MAX_BYTES`]) are copied into the process-wide
//! page cache when it is sealed, where page-sized reads of that record
//! look first, keyed by (the WAL image's cache owner id, record LSN,
//! offset in the record): records never change and LSNs are never reused,
//! so an entry cannot go stale. The cache's bound and eviction apply as
//! for the page store's pages.
//!
//! A page's newer frame *replaces* the entry of its older one, reusing its
//! buffer (`WalImage::cached_frames` remembers each page's newest key): a
//! checkpoint reads only a page's newest frame, and commits that keep
//! rewriting the same pages then cost no allocation and do not grow the
//! cache. The entries of a generation are dropped when SQLite restarts the
//! WAL.
//!
//! Both the image lock's holder (`WalImage::plan_read`) and readers without
//! it (`CommittedView::plan_read`, `committed.rs`) plan `RecordRead`s; they
//! are done here, after any lock is released.

use crate::cache::{self, CacheKey};
use crate::error::Result;
use crate::log::RecordLoc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A part of a read served from one log record of the WAL image, done
/// without the image lock.
#[derive(Debug)]
pub struct RecordRead {
    pub loc: RecordLoc,
    /// Offset within the record's payload.
    pub within: u64,
    /// Start of the range in the caller's buffer.
    pub buf_at: usize,
    pub len: usize,
    /// The record's pages are in the page cache (see the module doc).
    pub pages_cached: bool,
}

/// Largest record whose pages a durable commit copies into the page cache
/// when it is sealed (see the module doc). A larger transaction's pages
/// are contiguous in its record, so reading them back is sequential and
/// the kernel's readahead serves it.
pub const CACHE_AT_COMMIT_RECORD_MAX_BYTES: u64 = 1 << 20;

/// Page-sized reads of the WAL image served by the page cache, in this
/// process.
static FRAME_CACHE_HITS: AtomicU64 = AtomicU64::new(0);

pub fn frame_cache_hits() -> u64 {
    FRAME_CACHE_HITS.load(Ordering::Relaxed)
}

/// Where a WAL image's frames live in the process-wide page cache.
#[derive(Clone, Copy, Debug)]
pub struct FrameCache {
    pub(super) owner: u64,
    pub(super) page_len: usize,
}

impl FrameCache {
    pub(super) fn key(&self, loc: &RecordLoc, within: u64) -> CacheKey {
        CacheKey {
            owner: self.owner,
            chunk: loc.lsn.0,
            // `within` < `payload_len`, a u32.
            slot: within as u32,
        }
    }

    /// Reads `buf.len()` bytes at `within` of the record: a page-sized read
    /// from the page cache when a commit put it there, any other read (and
    /// a miss) through the record. A miss is not cached: the kernel's page
    /// cache keeps what was read through it, and a scan of a long WAL
    /// image would otherwise pay a fresh allocation per page (count(*) after a
    /// crash: 13 ms -> 27 ms when it did).
    pub fn read(&self, r: &RecordRead, buf: &mut [u8]) -> Result<()> {
        if r.pages_cached
            && buf.len() == self.page_len
            && cache::global().get(&self.key(&r.loc, r.within), buf)
        {
            FRAME_CACHE_HITS.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        r.loc.read(buf, r.within)
    }
}
