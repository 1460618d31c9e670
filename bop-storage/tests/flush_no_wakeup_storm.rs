//! While a slow sync runs, commits under NORMAL keep filling the buffer
//! past half its bound. They must not hand the flush pool one request per
//! commit (each a futex wake-up of a pool thread that finds the sync busy
//! and goes back to sleep): the leader of the running sync checks the
//! buffer again when it ends. Nothing written is lost either way.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bop_storage::io::sim::{FaultOp, SimFs};
use bop_storage::log::{FlushConfig, LogConfig};
use bop_storage::{Store, StoreOptions};
use common::*;

const MAX: u64 = 256 << 10;

#[test]
fn commits_during_a_slow_sync_queue_no_flood_of_background_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let fs = SimFs::new();
    let opts = StoreOptions {
        io: Arc::new(fs.clone()),
        log: LogConfig {
            flush: FlushConfig {
                unsynced_max_bytes: MAX,
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    };
    let store = Store::open_shared(&path, &opts).unwrap();
    fs.set_latency(FaultOp::Sync, Duration::from_millis(300));

    // One-frame NORMAL commits (~4 KiB each): past half the bound after
    // about 32 of them, then 48 more, 3 ms apart, while the background sync sleeps.
    let mut f = 1;
    let commits = 80u32;
    for t in 0..commits {
        f = write_txn(&store, f, &[(1 + t % 8, t as u8)], 8);
        store.end_write_transaction().unwrap();
        // Spaced out, so a pool thread woken by a request has run before
        // the next commit (all stay inside the first slow sync).
        std::thread::sleep(Duration::from_millis(3));
    }
    let s = store.stats().flush;
    assert!(s.background_requests >= 1, "{s:?}");
    assert!(
        s.background_requests <= 2,
        "commits during a running sync queued {} background flushes (expected at most 2)",
        s.background_requests
    );

    // The sync's leader queues the next flush itself when it ends: the
    // bytes written meanwhile become durable without another commit.
    let written = s.written_lsn;
    let started = Instant::now();
    while store.stats().flush.durable_lsn < written {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            store.stats().flush
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    fs.set_latency(FaultOp::Sync, Duration::ZERO);
    let frames = f - 1;
    drop(store);
    let store = Store::open_shared(&path, &opts).unwrap();
    assert_eq!(store.stats().wal_image_frames, frames);
    assert_eq!(
        read_frame(&store, frames),
        vec![(commits - 1) as u8; PAGE as usize]
    );
}
