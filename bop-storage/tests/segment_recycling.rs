//! Segments dropped after a checkpoint are kept (at most two) and reused
//! for new segments; old records left in a reused segment are never taken
//! for new ones, after a crash or a clean close.

mod common;

use bop_storage::log::LogConfig;
use bop_storage::{Store, StoreOptions};
use common::*;

fn opts() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            segment_bytes: 1 << 20,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn files_with(path: &std::path::Path, ext: &str) -> usize {
    std::fs::read_dir(path.join("wal"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == ext)
        })
        .count()
}

/// Writes one generation of `txns` 8-page transactions (filling several
/// 1 MiB segments) and returns the frame count.
fn generation(store: &Store, fill: u8, txns: u32) -> u64 {
    let mut f = 1;
    for t in 0..txns {
        let pages: Vec<(u32, u8)> = (1..=8).map(|p| (p + t % 4, fill)).collect();
        f = write_txn(store, f, &pages, 16);
        store.wal_image_sync().unwrap();
    }
    f - 1
}

#[test]
fn dropped_segments_are_reused_and_old_records_stay_dead() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let store = Store::open_shared(&path, &opts()).unwrap();
    for g in 0..6u8 {
        // Each generation restarts the image at offset 0, as SQLite does
        // after a complete checkpoint: the previous segments are dropped.
        generation(&store, 0x10 + g, 100);
    }
    let s = store.stats();
    assert!(s.log.segments_recycled >= 4, "{:?}", s.log);
    assert!(files_with(&path, "spare") <= 2);
    let frames = store.stats().wal_image_frames;
    assert_eq!(read_frame(&store, frames), vec![0x15; PAGE as usize]);

    // After a crash: the image is exactly the last generation.
    store.halt();
    drop(store);
    let store = Store::open_shared(&path, &opts()).unwrap();
    assert_eq!(store.stats().wal_image_frames, frames);
    assert_eq!(read_frame(&store, 1), vec![0x15; PAGE as usize]);
    // New generations after recovery reuse the spares kept on disk.
    generation(&store, 0x30, 100);
    generation(&store, 0x31, 100);
    assert!(
        store.stats().log.segments_recycled >= 1,
        "{:?}",
        store.stats().log
    );
    let frames = store.stats().wal_image_frames;
    drop(store); // clean close
                 // A closed store keeps no preallocated spares.
    assert_eq!(files_with(&path, "spare"), 0);
    let store = Store::open_shared(&path, &opts()).unwrap();
    assert_eq!(store.stats().wal_image_frames, frames);
    assert_eq!(read_frame(&store, frames), vec![0x31; PAGE as usize]);
}
