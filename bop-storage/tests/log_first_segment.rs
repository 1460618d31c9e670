//! A store's first log segment is small (`FIRST_SEGMENT_BYTES`, 1 MiB): a
//! new database writes 1 MiB of zeros at its first commit, not a whole
//! 8 MiB segment. The segments after it have the standard size, and the
//! small one is never kept as a spare for reuse.

mod common;

use bop_storage::log::FIRST_SEGMENT_BYTES;
use bop_storage::StoreOptions;
use common::*;

fn seg_sizes(path: &std::path::Path) -> Vec<u64> {
    wal_files(path, "seg")
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect()
}

#[test]
fn the_first_segment_is_small_and_the_next_ones_standard() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.bop");
    let store = open(&path).unwrap();
    let standard = StoreOptions::default().log.segment_bytes;
    assert!(FIRST_SEGMENT_BYTES < standard);
    let mut f = write_txn(&store, 1, &[(1, 1)], 1);
    store.wal_image_sync().unwrap();
    assert_eq!(seg_sizes(&path), [FIRST_SEGMENT_BYTES]);
    // Past 1 MiB of records: the next segment has the standard size.
    for t in 0..4u8 {
        let pages: Vec<(u32, u8)> = (1..=100).map(|p| (p, t)).collect();
        f = write_txn(&store, f, &pages, 100);
        store.wal_image_sync().unwrap();
    }
    assert_eq!(seg_sizes(&path), [FIRST_SEGMENT_BYTES, standard]);
    // A new generation drops the first segment: it is deleted, not kept
    // as a spare (spares have the standard size).
    store.wal_image_delete().unwrap();
    write_txn(&store, 1, &[(1, 9)], 100);
    store.wal_image_sync().unwrap();
    assert_eq!(seg_sizes(&path), [standard]);
    assert!(wal_files(&path, "spare")
        .iter()
        .all(|p| std::fs::metadata(p).unwrap().len() == standard));
    drop(store);
    let store = open(&path).unwrap();
    assert_eq!(read_frame(&store, 1), vec![9; PAGE as usize]);
}
