//! A commit is written to the WAL with one write call, whatever its size,
//! and a FULL commit costs one data sync. Counted through the I/O trait.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bop_storage::{Store, StoreOptions};
use common::*;

#[derive(Debug, Default)]
struct Counts {
    wal_writes: AtomicUsize,
    wal_syncs: AtomicUsize,
}

impl SegmentHooks for Counts {
    fn before_write(&self) {
        self.wal_writes.fetch_add(1, Ordering::SeqCst);
    }
    fn before_sync(&self) {
        self.wal_syncs.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_commit_is_one_write_and_one_sync() {
    let dir = tempfile::tempdir().unwrap();
    let counts = Arc::new(Counts::default());
    let opts = StoreOptions {
        io: Arc::new(HookedBackend(counts.clone())),
        ..Default::default()
    };
    let store = Store::open_shared(&dir.path().join("c.db"), &opts).unwrap();
    // The first commit creates the segment (header write + sync): measure
    // from the second commit on.
    let mut f = write_txn(&store, 1, &[(1, 1)], 1);
    store.wal_image_sync().unwrap();
    let (w0, s0) = (
        counts.wal_writes.load(Ordering::SeqCst),
        counts.wal_syncs.load(Ordering::SeqCst),
    );
    let pages: Vec<(u32, u8)> = (1..=50).map(|p| (p, p as u8)).collect();
    f = write_txn(&store, f, &pages, 50);
    store.wal_image_sync().unwrap();
    assert_eq!(
        counts.wal_writes.load(Ordering::SeqCst) - w0,
        1,
        "50 frames, one write"
    );
    assert_eq!(counts.wal_syncs.load(Ordering::SeqCst) - s0, 1, "one sync");
    // NORMAL: sealed at the end of the write transaction, no sync.
    write_txn(&store, f, &[(2, 2)], 50);
    store.end_write_transaction().unwrap();
    assert_eq!(counts.wal_writes.load(Ordering::SeqCst) - w0, 2);
    assert_eq!(counts.wal_syncs.load(Ordering::SeqCst) - s0, 1);
    assert_eq!(read_frame(&store, 30), vec![29u8; PAGE as usize]);
}
