//! The WAL's unsynced buffer is bounded. When a slow disk lets it fill, a
//! writer waits at most `backpressure_wait_max_ms` for room and then gets
//! `Busy` (SQLITE_BUSY); memory never exceeds the bound by more than one
//! record; once the flush catches up writers are admitted again, and
//! nothing written is lost.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bop_storage::io::sim::{FaultOp, SimFs};
use bop_storage::log::{FlushConfig, LogConfig};
use bop_storage::{StorageError, Store, StoreOptions};
use common::*;

const MAX: u64 = 64 << 10;

fn opts(fs: &SimFs) -> StoreOptions {
    StoreOptions {
        io: Arc::new(fs.clone()),
        log: LogConfig {
            flush: FlushConfig {
                unsynced_max_bytes: MAX,
                backpressure_wait_max_ms: 50,
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn a_full_buffer_makes_writers_wait_then_busy_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.db");
    let fs = SimFs::new();
    let store = Store::open_shared(&path, &opts(&fs)).unwrap();
    // Every fdatasync now takes 400 ms.
    fs.set_latency(FaultOp::Sync, Duration::from_millis(400));

    // NORMAL commits (no sync) of 4 frames (~16 KiB) each, each admitted
    // first as the VFS does when SQLite takes its write lock.
    let mut f = 1;
    let mut busy = None;
    for t in 0..40u32 {
        match store.admit_writer() {
            Ok(()) => {}
            Err(e) => {
                busy = Some((t, e));
                break;
            }
        }
        let pages: Vec<(u32, u8)> = (1..=4).map(|p| (p, t as u8)).collect();
        f = write_txn(&store, f, &pages, 4);
        store.end_write_transaction().unwrap();
    }
    let (t, e) = busy.expect("a writer was turned away");
    assert!(matches!(e, StorageError::Busy(_)), "{e}");
    assert!(t >= 3, "the buffer took several commits first ({t})");
    let s = store.stats().flush;
    assert_eq!(s.backpressure_rejections, 1, "{s:?}");
    assert!(s.background_flushes >= 1, "{s:?}");
    let record = 48 + 4 * FRAME;
    assert!(
        s.unsynced_bytes_peak <= MAX + MAX / 2 + record,
        "peak {} over the bound",
        s.unsynced_bytes_peak
    );

    // Once the slow flush completes, writers are admitted again.
    let started = Instant::now();
    let admitted = loop {
        if store.admit_writer().is_ok() {
            break true;
        }
        if started.elapsed() > Duration::from_secs(10) {
            break false;
        }
    };
    assert!(admitted, "{:?}", store.stats().flush);
    fs.set_latency(FaultOp::Sync, Duration::ZERO);
    store.wal_image_sync().unwrap();
    let frames = f - 1;
    drop(store);
    let store = Store::open_shared(&path, &opts(&fs)).unwrap();
    assert_eq!(store.stats().wal_image_frames, frames);
    assert_eq!(read_frame(&store, frames), vec![t as u8 - 1; PAGE as usize]);
}

#[test]
fn without_admission_an_append_flushes_inline_at_the_hard_bound() {
    // Writers that bypass admission (SQLite in exclusive locking mode takes
    // no shared-memory locks) still never grow the buffer past the bound.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let fs = SimFs::new();
    let store = Store::open_shared(&path, &opts(&fs)).unwrap();
    let mut f = 1;
    for t in 0..100u32 {
        let pages: Vec<(u32, u8)> = (1..=4).map(|p| (p, t as u8)).collect();
        f = write_txn(&store, f, &pages, 4);
        store.end_write_transaction().unwrap();
    }
    let s = store.stats().flush;
    let record = 48 + 4 * FRAME;
    assert!(s.unsynced_bytes_peak <= MAX + MAX / 2 + record, "{s:?}");
    assert!(s.syncs >= 1, "{s:?}");
    assert_eq!(store.stats().wal_image_frames, f - 1);
}
