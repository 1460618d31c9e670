//! With direct I/O the WAL must write whole aligned blocks: the simulated
//! file system refuses any unaligned write to a WAL file (as O_DIRECT
//! does), and the WAL still commits under FULL (leader writes aligned
//! blocks) and NORMAL (through the page cache), rolls segments, marks its
//! end, and recovers every acknowledged commit after a power cut.

mod common;

use std::sync::Arc;

use bop_storage::io::sim::{CrashMode, SimFs, SimRng};
use bop_storage::log::LogConfig;
use bop_storage::{Store, StoreOptions};
use common::*;

fn opts(fs: &SimFs) -> StoreOptions {
    StoreOptions {
        io: Arc::new(fs.clone()),
        log: LogConfig {
            segment_bytes: 1 << 20,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn an_aligned_only_wal_commits_rolls_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let fs = SimFs::new();
    fs.set_log_alignment(4096);
    let mut f = 1;
    let mut acked = 0;
    {
        let store = Store::open_shared(&path, &opts(&fs)).unwrap();
        // 600 commits of 1 to 3 pages (several 1 MiB segments), alternating
        // FULL (acknowledged durable) and NORMAL.
        for t in 0..600u32 {
            let pages: Vec<(u32, u8)> = (0..1 + t % 3).map(|p| (1 + p, t as u8)).collect();
            f = write_txn(&store, f, &pages, 3);
            if t % 2 == 0 {
                store.wal_image_sync().unwrap();
                acked = f - 1;
            } else {
                store.end_write_transaction().unwrap();
            }
        }
        let s = store.stats();
        assert!(
            s.log.segments_created + s.log.segments_recycled >= 3,
            "{s:?}"
        );
        store.halt();
    }
    let fs = fs.crash(CrashMode::LoseAll, &mut SimRng::new(9));
    fs.set_log_alignment(4096);
    let store = Store::open_shared(&path, &opts(&fs)).unwrap();
    let frames = store.stats().wal_image_frames;
    assert!(frames >= acked, "{frames} frames, {acked} acknowledged");
    // The last acknowledged transaction is intact.
    assert_eq!(read_frame(&store, acked), vec![598u32 as u8; PAGE as usize]);
    store.verify().unwrap();
    // A clean close and reopen with the end marker written aligned.
    drop(store);
    let store = Store::open_shared(&path, &opts(&fs)).unwrap();
    assert_eq!(store.stats().wal_image_frames, frames);
}
