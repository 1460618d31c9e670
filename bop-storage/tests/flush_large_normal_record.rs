//! A NORMAL commit too large for the WAL buffer (over half its bound) is
//! written straight from SQLite's frames and *not* synced at commit, as
//! SQLite's NORMAL does: it becomes durable with the next sync (requested
//! at once, or a later FULL commit's). Its bytes are then not in the buffer,
//! so a sync that fails cannot be retried by rewriting them: the store
//! fails at once instead of risking a sync that proves nothing. A power cut
//! before that sync loses the commit cleanly; after it, nothing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bop_storage::io::sim::{CrashMode, Fault, FaultOp, SimFs, SimRng};
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
                retries_max: 3,
                retry_backoff_base_ms: 1,
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

/// 20 pages (~80 KiB): larger than half the 64 KiB bound.
fn big(t: u8) -> Vec<(u32, u8)> {
    (1..=20).map(|p| (p, t)).collect()
}

#[test]
fn a_large_normal_commit_is_not_synced_at_commit_and_durable_at_the_next_sync() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let fs = SimFs::new();
    let store = Store::open_shared(&path, &opts(&fs)).unwrap();
    let f = write_txn(&store, 1, &[(1, 1)], 1);
    store.wal_image_sync().unwrap();
    // Syncs take 300 ms from now: the commit below returns long before
    // the background sync it requests completes.
    fs.set_latency(FaultOp::Sync, Duration::from_millis(300));
    let f = write_txn(&store, f, &big(2), 20);
    store.end_write_transaction().unwrap();
    let s = store.stats().flush;
    assert_eq!(s.large_records, 1, "{s:?}");
    assert!(
        s.durable_lsn < s.written_lsn,
        "a NORMAL commit waited for its sync: {s:?}"
    );
    // A small NORMAL commit after it goes to the buffer as usual.
    let f = write_txn(&store, f, &[(21, 3)], 21);
    store.end_write_transaction().unwrap();
    fs.set_latency(FaultOp::Sync, Duration::ZERO);
    store.wal_image_sync().unwrap();
    let s = store.stats().flush;
    assert_eq!(s.durable_lsn, s.written_lsn, "{s:?}");
    store.halt();
    drop(store);

    // Synced: a power cut keeps all of it.
    let fs = fs.crash(CrashMode::LoseAll, &mut SimRng::new(1));
    let store = Store::open_shared(&path, &opts(&fs)).unwrap();
    assert_eq!(store.stats().wal_image_frames, f - 1);
    assert_eq!(read_frame(&store, 2), vec![2; PAGE as usize]);
    assert_eq!(read_frame(&store, f - 1), vec![3; PAGE as usize]);
}

#[test]
fn a_power_cut_before_the_sync_loses_the_large_commit_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let fs = SimFs::new();
    let store = Store::open_shared(&path, &opts(&fs)).unwrap();
    let f = write_txn(&store, 1, &[(1, 1)], 1);
    store.wal_image_sync().unwrap();
    fs.set_latency(FaultOp::Sync, Duration::from_millis(500));
    write_txn(&store, f, &big(2), 20);
    store.end_write_transaction().unwrap();
    store.halt();
    drop(store);
    let fs = fs.crash(CrashMode::LoseAll, &mut SimRng::new(2));
    fs.set_latency(FaultOp::Sync, Duration::ZERO);
    let store = Store::open_shared(&path, &opts(&fs)).unwrap();
    let frames = store.stats().wal_image_frames;
    assert!(frames == 1 || frames == 21, "{frames} frames: cut cleanly");
    assert_eq!(read_frame(&store, 1), vec![1; PAGE as usize]);
}

#[test]
fn a_failed_sync_after_a_large_normal_commit_fails_the_store_without_retrying() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.db");
    let fs = SimFs::new();
    let store = Store::open_shared(&path, &opts(&fs)).unwrap();
    let f = write_txn(&store, 1, &[(1, 1)], 1);
    store.wal_image_sync().unwrap();
    // Every sync fails from now on (also the background one the large
    // commit requests).
    fs.inject(Fault {
        op: FaultOp::Sync,
        nth: 1,
        errno: libc::EIO,
        path_contains: Some(".seg".into()),
        sticky: true,
    });
    write_txn(&store, f, &big(2), 20);
    store.end_write_transaction().unwrap();
    let e = store.wal_image_sync().unwrap_err();
    assert!(
        matches!(e, StorageError::Io { .. } | StorageError::Failed { .. }),
        "{e}"
    );
    let s = store.stats().flush;
    assert_eq!(
        s.sync_retries, 0,
        "no retry can prove bytes it cannot rewrite: {s:?}"
    );
    match store.wal_image_write(32, &[0u8; 24]).unwrap_err() {
        StorageError::Failed { reason, .. } => {
            assert!(reason.contains("large record"), "{reason}")
        }
        other => panic!("not refused: {other}"),
    }
    store.halt();
    drop(store);
    fs.clear_faults();
    let fs = fs.crash(CrashMode::LoseAll, &mut SimRng::new(3));
    let store = Store::open_shared(&path, &opts(&fs)).unwrap();
    assert_eq!(read_frame(&store, 1), vec![1; PAGE as usize]);
}
