//! Pages of a durable (FULL) commit are copied into the page cache when
//! the commit is sealed, so reading them back (a checkpoint, a reader)
//! does not go to the segment file, which direct I/O left out of the
//! kernel's page cache. Counted through the I/O trait: reads of `*.seg`.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bop_storage::wal_image::{frame_cache_hits, CACHE_AT_COMMIT_RECORD_MAX_BYTES};
use bop_storage::{Store, StoreOptions};
use common::*;

/// Counts reads of log segment files.
#[derive(Debug, Default)]
struct SegReads(Arc<AtomicUsize>);

impl SegmentHooks for SegReads {
    fn before_read(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn open_counting(dir: &Path) -> (Arc<Store>, Arc<AtomicUsize>) {
    let seg_reads = Arc::new(AtomicUsize::new(0));
    let opts = StoreOptions {
        io: Arc::new(HookedBackend(Arc::new(SegReads(seg_reads.clone())))),
        ..Default::default()
    };
    (
        Store::open_shared(&dir.join("f.db"), &opts).unwrap(),
        seg_reads,
    )
}

#[test]
fn pages_of_a_durable_commit_are_read_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (store, seg_reads) = open_counting(dir.path());
    let next = write_txn(&store, 1, &[(1, 0x11), (2, 0x22), (3, 0x33)], 3);
    store.wal_image_sync().unwrap();
    write_txn(&store, next, &[(2, 0x44)], 3);
    store.wal_image_sync().unwrap();
    let cached = store.stats().wal_image.frames_cached_at_commit;
    assert_eq!(cached, 4, "every page of both commits");

    let before = seg_reads.load(Ordering::SeqCst);
    let hits = frame_cache_hits();
    // Page 2's first frame (frame 2) was replaced by its newer one.
    for (frame, fill) in [(1, 0x11u8), (3, 0x33), (4, 0x44)] {
        assert_eq!(read_frame(&store, frame), vec![fill; PAGE as usize]);
    }
    assert_eq!(
        seg_reads.load(Ordering::SeqCst),
        before,
        "no newest page of a durable commit was read from its segment"
    );
    assert!(frame_cache_hits() >= hits + 3);
    // Page 2's older frame is read from its segment.
    assert_eq!(read_frame(&store, 2), vec![0x22u8; PAGE as usize]);
    assert!(seg_reads.load(Ordering::SeqCst) > before);
    let before = seg_reads.load(Ordering::SeqCst);
    // Reads that are not page-sized go to the record.
    let mut hdr = [0u8; 24];
    store.wal_image_read(32, &mut hdr).unwrap();
    assert_eq!(u32::from_be_bytes(hdr[..4].try_into().unwrap()), 1);
    assert_eq!(seg_reads.load(Ordering::SeqCst), before + 1);
}

#[test]
fn a_normal_commit_is_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let (store, seg_reads) = open_counting(dir.path());
    write_txn(&store, 1, &[(1, 0x51), (2, 0x52)], 2);
    store.end_write_transaction().unwrap();
    assert_eq!(store.stats().wal_image.frames_cached_at_commit, 0);
    // Written through the kernel's page cache, read from there each time.
    for _ in 0..2 {
        let before = seg_reads.load(Ordering::SeqCst);
        assert_eq!(read_frame(&store, 2), vec![0x52u8; PAGE as usize]);
        assert!(seg_reads.load(Ordering::SeqCst) > before);
    }
}

#[test]
fn a_record_over_the_bound_is_not_cached_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open_counting(dir.path());
    let frame = 24 + u64::from(PAGE);
    // The largest transaction the bound admits, then one frame more.
    let at_bound = ((CACHE_AT_COMMIT_RECORD_MAX_BYTES - 32) / frame) as u32;
    let pages: Vec<(u32, u8)> = (1..=at_bound).map(|p| (p, p as u8)).collect();
    let next = write_txn(&store, 1, &pages, at_bound);
    store.wal_image_sync().unwrap();
    assert_eq!(
        store.stats().wal_image.frames_cached_at_commit,
        u64::from(at_bound)
    );
    let over = (CACHE_AT_COMMIT_RECORD_MAX_BYTES / frame + 1) as u32;
    let pages: Vec<(u32, u8)> = (1..=over).map(|p| (p, 0xEE)).collect();
    write_txn(&store, next, &pages, over);
    store.wal_image_sync().unwrap();
    assert_eq!(
        store.stats().wal_image.frames_cached_at_commit,
        u64::from(at_bound),
        "a record over {CACHE_AT_COMMIT_RECORD_MAX_BYTES} bytes is not copied"
    );
    assert_eq!(
        read_frame(&store, next + u64::from(over) - 1),
        vec![0xEEu8; PAGE as usize]
    );
}

#[test]
fn a_page_rewritten_by_many_commits_keeps_one_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (store, seg_reads) = open_counting(dir.path());
    let removals = bop_storage::cache::global().stats().removals;
    const COMMITS: u64 = 200;
    let mut next = 1;
    for c in 0..COMMITS {
        next = write_txn(&store, next, &[(1, c as u8), (2, !(c as u8))], 2);
        store.wal_image_sync().unwrap();
    }
    assert_eq!(store.stats().wal_image.frames_cached_at_commit, 2 * COMMITS);
    // Every commit after the first replaced the two entries of the one
    // before (other tests of this binary only add removals).
    let removed = bop_storage::cache::global().stats().removals - removals;
    assert!(removed >= 2 * (COMMITS - 1), "{removed} removals");
    // The newest frames come from the cache; an old one was replaced, so
    // it is read from its segment (and is still right).
    let before = seg_reads.load(Ordering::SeqCst);
    let last = (COMMITS - 1) as u8;
    assert_eq!(read_frame(&store, next - 2), vec![last; PAGE as usize]);
    assert_eq!(read_frame(&store, next - 1), vec![!last; PAGE as usize]);
    assert_eq!(seg_reads.load(Ordering::SeqCst), before);
    assert_eq!(read_frame(&store, 1), vec![0u8; PAGE as usize]);
    assert!(seg_reads.load(Ordering::SeqCst) > before);

    // SQLite restarts the WAL: the old generation's entries are dropped.
    let removals = bop_storage::cache::global().stats().removals;
    write_txn(&store, 1, &[(3, 0x33)], 3);
    store.wal_image_sync().unwrap();
    let removed = bop_storage::cache::global().stats().removals - removals;
    assert!(removed >= 2, "{removed} removals at the restart");
    assert_eq!(read_frame(&store, 1), vec![0x33u8; PAGE as usize]);
}
