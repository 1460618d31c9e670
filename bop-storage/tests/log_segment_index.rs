//! Sealed segments and their index files (`wal/segment_index.rs`): open
//! takes a sealed segment's records from its index without reading the
//! segment, and verifies each record whole at its first read, so damage
//! there is an error naming the file and offset, never wrong bytes. An
//! index that does not check out (torn, stale, another segment's, lost in
//! a power cut) is ignored and the segment is read as before.

mod common;

use std::sync::Arc;

use bop_storage::io::sim::{CrashMode, SimFs, SimRng};
use bop_storage::log::segment_index;
use bop_storage::{Lsn, SegmentId, Store, StoreOptions};
use common::*;

/// 50 transactions of 100 pages: about 20 MiB, in 4 MiB segments.
const TXNS: usize = 50;
const PAGES: u32 = 100;
const SEGMENT_BYTES: u64 = 4 << 20;

fn fill(txn: usize, page: u32) -> u8 {
    (txn as u32 * 7 + page) as u8
}

fn opts() -> StoreOptions {
    let mut o = StoreOptions::default();
    o.log.segment_bytes = SEGMENT_BYTES;
    o
}

/// Writes every transaction (each synced) and crashes.
fn write_all(store: &Store) -> Vec<u64> {
    let mut f = 1;
    let mut firsts = Vec::new();
    for t in 0..TXNS {
        firsts.push(f);
        let pages: Vec<(u32, u8)> = (1..=PAGES).map(|p| (p, fill(t, p))).collect();
        f = write_txn(store, f, &pages, PAGES);
        store.wal_image_sync().unwrap();
    }
    store.halt();
    firsts
}

fn check_all(store: &Store, firsts: &[u64]) {
    for (t, first) in firsts.iter().enumerate() {
        for p in [1, PAGES / 2, PAGES] {
            let got = read_frame(store, first + u64::from(p) - 1);
            assert_eq!(got, vec![fill(t, p); PAGE as usize], "txn {t} page {p}");
        }
    }
}

#[test]
fn sealed_segments_come_from_their_index_and_are_verified_at_first_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.db");
    let firsts = write_all(&Store::open_shared(&path, &opts()).unwrap());
    let segs = wal_files(&path, "seg");
    assert!(segs.len() >= 3, "{segs:?}");
    assert_eq!(
        wal_files(&path, "idx").len(),
        segs.len() - 1,
        "every sealed segment"
    );

    let verified_before = bop_storage::log::lazy_verifications();
    let store = Store::open_shared(&path, &opts()).unwrap();
    let s = store.stats().log;
    assert_eq!(s.segments_indexed_at_open, segs.len() as u64 - 1);
    // The last segment's records (windows overlap where a record crosses
    // one) and its unwritten rest (searched for a record proving damage
    // durable): at most about two segments' worth, of six.
    assert!(
        s.recovery_bytes_scanned <= 2 * SEGMENT_BYTES,
        "only the last segment is read: {s:?}"
    );
    check_all(&store, &firsts);
    assert!(bop_storage::log::lazy_verifications() > verified_before);
    store.verify().unwrap();
}

#[test]
fn damage_in_an_indexed_segment_is_an_error_at_first_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let firsts = write_all(&Store::open_shared(&path, &opts()).unwrap());
    // The second segment (the store's first one is small, 1 MiB): damage
    // its third record, in its 50th frame.
    let segs = wal_files(&path, "seg");
    let before = record_offsets(&std::fs::read(&segs[0]).unwrap()).len();
    let seg = &segs[1];
    let mut bytes = std::fs::read(seg).unwrap();
    let offs = record_offsets(&bytes);
    let t = before + 2;
    let at = offs[2] + 48 + 49 * FRAME as usize + 100;
    bytes[at] ^= 0x40;
    std::fs::write(seg, &bytes).unwrap();

    let store = Store::open_shared(&path, &opts()).expect("open does not read sealed segments");
    // Any page of the damaged record is refused, not only the damaged one.
    let mut buf = vec![0u8; PAGE as usize];
    let err = store
        .wal_image_read(32 + (firsts[t] - 1) * FRAME + 24, &mut buf)
        .unwrap_err()
        .to_string();
    assert!(err.contains("corrupt"), "{err}");
    assert!(err.contains(&seg.display().to_string()), "{err}");
    assert!(err.contains(&format!("offset {}", offs[2] + 48)), "{err}");
    // Other records read fine.
    let ok = read_frame(&store, firsts[t + 1]);
    assert_eq!(ok, vec![fill(t + 1, 1); PAGE as usize]);
    assert!(store.verify().is_err());
}

#[test]
fn an_index_that_does_not_check_out_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let firsts = write_all(&Store::open_shared(&path, &opts()).unwrap());
    let idx = wal_files(&path, "idx");
    let sealed = idx.len() as u64;
    // Torn: cut short.
    let b = std::fs::read(&idx[0]).unwrap();
    std::fs::write(&idx[0], &b[..b.len() / 2]).unwrap();
    // Another segment's index in its place.
    std::fs::copy(&idx[3], &idx[1]).unwrap();
    // Stale: a well-formed index of its own segment missing the last
    // record (as a rewrite lost in a power cut could leave it).
    let seg2 = &wal_files(&path, "seg")[2];
    let head = std::fs::read(seg2).unwrap();
    let (id, first) = (
        SegmentId(u64::from_le_bytes(head[16..24].try_into().unwrap())),
        Lsn(u64::from_le_bytes(head[24..32].try_into().unwrap())),
    );
    let entries = segment_index::decode(&std::fs::read(&idx[2]).unwrap(), id, first, SEGMENT_BYTES)
        .expect("a good index");
    let mut stale = segment_index::IndexBuilder::new(id, first);
    for e in &entries[..entries.len() - 1] {
        stale.push(&e.head, e.frames.as_ref());
    }
    std::fs::write(&idx[2], stale.finish()).unwrap();
    let store = Store::open_shared(&path, &opts()).unwrap();
    assert_eq!(store.stats().log.segments_indexed_at_open, sealed - 3);
    check_all(&store, &firsts);
}

#[test]
fn index_files_lost_in_a_power_cut_only_cost_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let fs = SimFs::new();
    let o = StoreOptions {
        io: Arc::new(fs.clone()),
        ..opts()
    };
    let firsts = write_all(&Store::open_shared(&path, &o).unwrap());
    // Index files are never synced: a power cut that loses every unsynced
    // byte leaves them empty or absent.
    let fs = fs.crash(CrashMode::LoseAll, &mut SimRng::new(3));
    let o = StoreOptions {
        io: Arc::new(fs.clone()),
        ..opts()
    };
    let store = Store::open_shared(&path, &o).unwrap();
    assert_eq!(store.stats().log.segments_indexed_at_open, 0);
    check_all(&store, &firsts);
    // The next roll writes indexes again.
    let mut f = firsts[TXNS - 1] + u64::from(PAGES);
    for t in 0..12 {
        let pages: Vec<(u32, u8)> = (1..=PAGES).map(|p| (p, fill(t, p))).collect();
        f = write_txn(&store, f, &pages, PAGES);
    }
    store.wal_image_sync().unwrap();
    assert!(store.stats().log.segment_indexes_written >= 1);
}

#[test]
fn a_large_indexed_record_is_verified_whole_past_its_first_megabyte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let store = Store::open_shared(&path, &opts()).unwrap();
    // A 400-page record (1.6 MiB: verified in more than one chunk), then
    // enough small ones to seal its segment.
    let big: Vec<(u32, u8)> = (1..=400).map(|p| (p, 9)).collect();
    let mut f = write_txn(&store, 1, &big, 400);
    store.wal_image_sync().unwrap();
    for t in 0..30 {
        let pages: Vec<(u32, u8)> = (1..=PAGES).map(|p| (p, fill(t, p))).collect();
        f = write_txn(&store, f, &pages, 400);
        store.wal_image_sync().unwrap();
    }
    store.halt();
    drop(store);
    let seg = &wal_files(&path, "seg")[0];
    let mut bytes = std::fs::read(seg).unwrap();
    let first = record_offsets(&bytes)[0];
    // Past the first megabyte of the payload.
    bytes[first + 48 + 1_300_000] ^= 0x08;
    std::fs::write(seg, &bytes).unwrap();

    let store = Store::open_shared(&path, &opts()).unwrap();
    assert!(store.stats().log.segments_indexed_at_open >= 1);
    let mut buf = vec![0u8; PAGE as usize];
    let err = store
        .wal_image_read(32 + 24, &mut buf)
        .unwrap_err()
        .to_string();
    assert!(err.contains("corrupt"), "{err}");
    assert!(err.contains(&format!("offset {}", first + 48)), "{err}");
}
