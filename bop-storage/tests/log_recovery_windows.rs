//! Recovery reads segments a window at a time (`RECOVERY_WINDOW_BYTES`), or
//! one record at a time when a record is larger, and stops where the log
//! ends. Records that straddle window edges, records larger than a window
//! and records in a second segment all come back byte for byte; damage
//! far past a window edge of a segment recovery reads (one without an
//! index, `log_segment_index.rs`) is still found and proven durable by a
//! record several windows later.

mod common;

use bop_storage::log::recovery::RECOVERY_WINDOW_BYTES;
use common::*;

/// Transactions of these many pages: small ones, ones that end past a
/// window edge, and one of about three windows.
const TXN_PAGES: &[u32] = &[1, 100, 100, 1, 700, 100, 3, 250, 250, 250, 1, 600, 400, 2];

fn fill(txn: usize, page: u32) -> u8 {
    (txn as u32 * 31 + page) as u8
}

/// Writes every transaction, each synced, then crashes; returns the first
/// frame of each transaction and the next frame.
fn write_all(path: &std::path::Path) -> (Vec<u64>, u64) {
    let store = open(path).unwrap();
    let mut f = 1;
    let mut firsts = Vec::new();
    for (t, &n) in TXN_PAGES.iter().enumerate() {
        firsts.push(f);
        let pages: Vec<(u32, u8)> = (1..=n).map(|p| (p, fill(t, p))).collect();
        f = write_txn(&store, f, &pages, n);
        store.wal_image_sync().unwrap();
    }
    store.halt();
    (firsts, f)
}

#[test]
fn records_across_window_edges_and_segments_come_back_whole() {
    assert_eq!(RECOVERY_WINDOW_BYTES, 1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let (firsts, next) = write_all(&path);
    let total_bytes: u64 = TXN_PAGES.iter().map(|&n| u64::from(n) * FRAME).sum();
    assert!(
        total_bytes > 8 << 20,
        "the records fill more than one 8 MiB segment"
    );

    let store = open(&path).unwrap();
    assert_eq!(store.stats().wal_image_frames, next - 1);
    assert!(store.stats().log_segments >= 2);
    for (t, &n) in TXN_PAGES.iter().enumerate() {
        for p in [1, n.div_ceil(2), n] {
            let got = read_frame(&store, firsts[t] + u64::from(p) - 1);
            assert_eq!(got, vec![fill(t, p); PAGE as usize], "txn {t} page {p}");
        }
    }
}

#[test]
fn damage_before_a_later_durable_record_is_found_across_windows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    write_all(&path);
    let mut segs: Vec<_> = std::fs::read_dir(path.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    // Without the segment indexes, so recovery reads every segment.
    for e in std::fs::read_dir(path.join("wal")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|e| e == "idx") {
            std::fs::remove_file(p).unwrap();
        }
    }
    // The 700-page record (the first longer than two windows; the store's
    // small first segment does not hold it): damage a byte two windows
    // into it.
    let len =
        |b: &[u8], o: usize| u32::from_le_bytes(b[o + 32..o + 36].try_into().unwrap()) as usize;
    let (seg, mut bytes, rec) = segs
        .iter()
        .find_map(|s| {
            let b = std::fs::read(s).unwrap();
            let o = record_offsets(&b)
                .into_iter()
                .find(|&o| len(&b, o) > 2 * RECOVERY_WINDOW_BYTES + 5)?;
            Some((s, b, o))
        })
        .expect("a record longer than two windows");
    let at = rec + 48 + 2 * RECOVERY_WINDOW_BYTES + 5;
    bytes[at] ^= 0x01;
    std::fs::write(seg, &bytes).unwrap();

    let err = open(&path).unwrap_err().to_string();
    assert!(err.contains("corrupt"), "{err}");
    assert!(err.contains(&seg.display().to_string()), "{err}");
    assert!(err.contains(&format!("offset {rec}")), "{err}");
    assert!(err.contains("shows it was durable"), "{err}");
}

#[test]
fn a_clean_reopen_reads_the_log_and_not_the_rest_of_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    {
        let store = open(&path).unwrap();
        let mut f = 1;
        for t in 0..3u8 {
            f = write_txn(&store, f, &[(1, t), (2, t)], 2);
            store.wal_image_sync().unwrap();
        }
        // Dropped without a crash: a clean shutdown.
    }
    let store = open(&path).unwrap();
    let s = store.stats();
    assert_eq!(s.wal_image_frames, 6);
    assert!(
        s.log.recovery_bytes_scanned <= RECOVERY_WINDOW_BYTES as u64,
        "the 8 MiB segment past the end marker is not searched: {:?}",
        s.log
    );
}
