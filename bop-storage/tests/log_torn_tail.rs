//! A torn last record is cut: the store reopens at the last whole commit.

mod common;
use common::*;

#[test]
fn torn_tail_recovers_to_last_whole_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let store = open(&path).unwrap();
        let mut f = write_txn(&store, 1, &[(1, 0xa1)], 1);
        store.wal_image_sync().unwrap();
        f = write_txn(&store, f, &[(2, 0xa2), (3, 0xa3)], 3);
        store.wal_image_sync().unwrap();
        write_txn(&store, f, &[(4, 0xa4)], 4);
        store.wal_image_sync().unwrap();
        // Crash instead of closing cleanly: a torn tail is only possible
        // after a crash.
        store.halt();
    }
    let seg = only_segment(&path);
    let mut bytes = std::fs::read(&seg).unwrap();
    let offs = record_offsets(&bytes);
    assert_eq!(offs.len(), 3);
    // Tear the last record: zero the second half of its payload.
    let last = offs[2];
    let len = u32::from_le_bytes(bytes[last + 32..last + 36].try_into().unwrap()) as usize;
    for b in &mut bytes[last + 48 + len / 2..last + 48 + len] {
        *b = 0;
    }
    std::fs::write(&seg, &bytes).unwrap();

    let store = open(&path).unwrap();
    assert_eq!(
        store.wal_image_size(),
        32 + 3 * FRAME,
        "three frames of two whole commits"
    );
    assert_eq!(read_frame(&store, 1), vec![0xa1; PAGE as usize]);
    assert_eq!(read_frame(&store, 3), vec![0xa3; PAGE as usize]);
    // New commits continue after the cut and survive another reopen.
    write_txn(&store, 4, &[(4, 0xb4)], 4);
    store.wal_image_sync().unwrap();
    drop(store);
    let store = open(&path).unwrap();
    assert_eq!(store.wal_image_size(), 32 + 4 * FRAME);
    assert_eq!(read_frame(&store, 4), vec![0xb4; PAGE as usize]);
}

#[test]
fn stale_record_after_a_cut_is_never_resurrected() {
    // Records 1..3; record 2 torn but 3 intact and never durable (NORMAL
    // mode). After the cut, a new record 2' of the same length lands exactly
    // where 2 was, so the old 3 follows it with the expected LSN: the epoch
    // must stop it from being replayed.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let store = open(&path).unwrap();
        let mut f = write_txn(&store, 1, &[(1, 1)], 1);
        store.end_write_transaction().unwrap();
        f = write_txn(&store, f, &[(2, 2)], 2);
        store.end_write_transaction().unwrap();
        write_txn(&store, f, &[(3, 3)], 3);
        store.end_write_transaction().unwrap();
        store.halt(); // crash
    }
    let seg = only_segment(&path);
    let mut bytes = std::fs::read(&seg).unwrap();
    let offs = record_offsets(&bytes);
    assert_eq!(offs.len(), 3);
    bytes[offs[1] + 48 + 100] ^= 0xff; // damage record 2's payload
    std::fs::write(&seg, &bytes).unwrap();
    {
        let store = open(&path).unwrap();
        assert_eq!(store.wal_image_size(), 32 + FRAME, "cut at record 2");
        write_txn(&store, 2, &[(2, 0x22)], 2);
        store.end_write_transaction().unwrap();
        store.halt(); // crash again, so the next open scans as after a crash
    }
    let store = open(&path).unwrap();
    assert_eq!(
        store.wal_image_size(),
        32 + 2 * FRAME,
        "old record 3 must not come back"
    );
    assert_eq!(read_frame(&store, 2), vec![0x22; PAGE as usize]);
}

#[test]
fn damaged_last_record_after_a_clean_close_is_corruption_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let store = open(&path).unwrap();
        let f = write_txn(&store, 1, &[(1, 1)], 1);
        store.end_write_transaction().unwrap();
        write_txn(&store, f, &[(2, 2)], 2);
        store.end_write_transaction().unwrap();
        // Clean close: everything synced, the manifest says so.
    }
    let seg = only_segment(&path);
    let mut bytes = std::fs::read(&seg).unwrap();
    let offs = record_offsets(&bytes);
    bytes[offs[1] + 48 + 10] ^= 0x01; // bit rot in the last record
    std::fs::write(&seg, &bytes).unwrap();
    let err = open(&path).unwrap_err().to_string();
    assert!(
        err.contains("shut down cleanly") && err.contains(&seg.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_cut_torn_tail_does_not_make_the_next_clean_open_fail() {
    // Crash with a torn last record; recover (the tail is cut); append a
    // shorter record over it; close cleanly; reopen: the leftovers of the
    // torn record beyond the new end must not be taken for damage.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let store = open(&path).unwrap();
        let f = write_txn(&store, 1, &[(1, 1)], 1);
        store.wal_image_sync().unwrap();
        write_txn(&store, f, &[(2, 2), (3, 3), (4, 4)], 4);
        store.wal_image_sync().unwrap();
        store.halt();
    }
    let seg = only_segment(&path);
    let mut bytes = std::fs::read(&seg).unwrap();
    let offs = record_offsets(&bytes);
    bytes[offs[1] + 48 + 3 * 4096] ^= 0xff; // tear the big last record
    std::fs::write(&seg, &bytes).unwrap();
    {
        let store = open(&path).unwrap(); // cuts the tail
        assert_eq!(store.wal_image_size(), 32 + FRAME);
        // Clean close without new records, then with a shorter one.
    }
    {
        let store = open(&path).unwrap();
        write_txn(&store, 2, &[(2, 0x22)], 2);
        store.wal_image_sync().unwrap();
    }
    let store = open(&path).unwrap();
    assert_eq!(store.wal_image_size(), 32 + 2 * FRAME);
    assert_eq!(read_frame(&store, 2), vec![0x22; PAGE as usize]);
}
