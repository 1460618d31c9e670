//! A damaged log record below the checkpoint (its pages are in the page
//! store, no database needs it) must not cost the records after it in the
//! same segment: recovery skips to the next valid record and goes on.
//! (Found by the libSQL corruption sweep: one flipped bit in an old
//! generation's record silently dropped every later commit, after a clean
//! close too.)

mod common;

use std::path::Path;

use bop_storage::Store;
use common::*;

/// Generation 1 (two commits, checkpointed), then generation 2 (two
/// commits) in the same segment.
fn build(path: &Path, clean_close: bool) {
    let store = open(path).unwrap();
    let f = write_txn(&store, 1, &[(1, 0xA1)], 1);
    store.wal_image_sync().unwrap();
    write_txn(&store, f, &[(2, 0xA2)], 2);
    store.wal_image_sync().unwrap();
    // SQLite's checkpoint copies the pages and syncs the database.
    store.db_write(0, &[0xA1; PAGE as usize]).unwrap();
    store
        .db_write(u64::from(PAGE), &[0xA2; PAGE as usize])
        .unwrap();
    store.db_sync().unwrap();
    // The next transaction restarts the WAL: generation 2.
    let g = write_txn(&store, 1, &[(1, 0xB1)], 2);
    store.wal_image_sync().unwrap();
    write_txn(&store, g, &[(2, 0xB2)], 2);
    store.wal_image_sync().unwrap();
    if !clean_close {
        store.halt();
    }
}

fn check_generation_2(path: &Path) {
    let store = Store::open_shared(path, &Default::default()).unwrap();
    assert_eq!(
        store.wal_image_frames(),
        2,
        "generation 2's frames are recovered"
    );
    assert!(
        store.stats().log.records_skipped_at_open >= 1,
        "the damaged record is counted as skipped"
    );
    assert_eq!(read_frame(&store, 1), vec![0xB1u8; PAGE as usize]);
    assert_eq!(read_frame(&store, 2), vec![0xB2u8; PAGE as usize]);
    let mut p = vec![0u8; PAGE as usize];
    store.db_read(0, &mut p).unwrap();
    assert_eq!(p, vec![0xA1u8; PAGE as usize], "the checkpointed page");
}

fn damage_first_record(path: &Path, at_in_record: usize) {
    let seg = only_segment(path);
    let mut bytes = std::fs::read(&seg).unwrap();
    let recs = record_offsets(&bytes);
    assert_eq!(recs.len(), 4, "two generations of two commits");
    bytes[recs[0] + at_in_record] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
}

#[test]
fn damage_in_a_checkpointed_record_keeps_the_later_generation() {
    for clean in [true, false] {
        // A payload byte, then the length field of the header (the scan
        // cannot step over the record: it searches for the next one).
        for at in [48 + 100, 32] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("d.db");
            build(&path, clean);
            damage_first_record(&path, at);
            check_generation_2(&path);
        }
    }
}

#[test]
fn damage_in_a_needed_record_is_still_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.db");
    build(&path, true);
    let seg = only_segment(&path);
    let mut bytes = std::fs::read(&seg).unwrap();
    let recs = record_offsets(&bytes);
    // Generation 2's first record (needed, shut down cleanly).
    bytes[recs[2] + 48 + 100] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
    let err = Store::open_shared(&path, &Default::default()).unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");
}
