//! A panic in a flush worker is caught: the store fails safe (refuses
//! writes, with the panic's message and location in the error) and the
//! stats report it with its backtrace. Nothing acknowledged is lost.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bop_storage::io::sim::{CrashMode, Fault, FaultOp, SimFs, SimRng};
use bop_storage::log::{FlushConfig, LogConfig};
use bop_storage::{StorageError, Store, StoreOptions};
use common::*;

fn opts(fs: &SimFs) -> StoreOptions {
    StoreOptions {
        io: Arc::new(fs.clone()),
        log: LogConfig {
            flush: FlushConfig {
                unsynced_max_bytes: 64 << 10,
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn a_panicking_flush_worker_fails_the_store_safe() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let fs = SimFs::new();
    {
        let store = Store::open_shared(&path, &opts(&fs)).unwrap();
        let f = write_txn(&store, 1, &[(1, 1)], 1);
        store.wal_image_sync().unwrap(); // acknowledged under FULL
                                         // The next sync of the segment panics; only a background flush
                                         // will sync (the commits below are NORMAL).
        fs.inject(Fault {
            op: FaultOp::Sync,
            nth: 1,
            errno: SimFs::PANIC,
            path_contains: Some(".seg".into()),
            sticky: false,
        });
        let mut f = f;
        for t in 0..3u32 {
            let pages: Vec<(u32, u8)> = (1..=4).map(|p| (p, 0x10 + t as u8)).collect();
            f = write_txn(&store, f, &pages, 4);
            store.end_write_transaction().unwrap();
        }
        let started = Instant::now();
        while store.stats().flush.worker_panics == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no worker flush"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let s = store.stats().flush;
        let report = s.last_panic.expect("panic reported in the stats");
        assert!(report.message.contains("injected"), "{report:?}");
        assert!(
            report.location.as_deref().unwrap_or("").contains("sim.rs"),
            "{report:?}"
        );
        assert!(report.backtrace.is_some());
        // The store refuses writes, naming the panic and where it was.
        let e = store.wal_image_write(32, &[0u8; 24]).unwrap_err();
        match &e {
            StorageError::Failed { reason, .. } => {
                assert!(
                    reason.contains("panic") && reason.contains("sim.rs"),
                    "{reason}"
                );
            }
            other => panic!("not refused: {other}"),
        }
        assert!(
            store.wal_image_sync().is_err(),
            "a commit cannot be acknowledged"
        );
        store.halt();
    }
    let fs = fs.crash(CrashMode::LoseAll, &mut SimRng::new(5));
    let store = Store::open_shared(&path, &opts(&fs)).unwrap();
    assert!(store.stats().wal_image_frames >= 1);
    assert_eq!(read_frame(&store, 1), vec![1u8; PAGE as usize]);
}
