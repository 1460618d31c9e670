//! When the WAL cannot be made durable within the retry bound, the commit
//! fails with the I/O error, the store refuses writes from then on (rather
//! than pretend), and a reopen finds every acknowledged commit.

mod common;

use std::sync::Arc;

use bop_storage::io::sim::{CrashMode, Fault, FaultOp, SimFs, SimRng};
use bop_storage::log::{FlushConfig, LogConfig};
use bop_storage::{StorageError, Store, StoreOptions};
use common::*;

fn opts(fs: &SimFs) -> StoreOptions {
    StoreOptions {
        io: Arc::new(fs.clone()),
        log: LogConfig {
            flush: FlushConfig {
                retries_max: 3,
                retry_backoff_base_ms: 1,
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn retries_are_bounded_then_the_store_fails_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let fs = SimFs::new();
    let mut f = 1;
    {
        let store = Store::open_shared(&path, &opts(&fs)).unwrap();
        for i in 1..=5u8 {
            f = write_txn(&store, f, &[(u32::from(i), i)], u32::from(i));
            store.wal_image_sync().unwrap();
        }
        fs.inject(Fault {
            op: FaultOp::Sync,
            nth: 1,
            errno: libc::EIO,
            path_contains: Some(".seg".into()),
            sticky: true,
        });
        write_txn(&store, f, &[(6, 6)], 6);
        let e = store.wal_image_sync().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
        assert!(e.to_string().contains("fdatasync"), "{e}");
        let s = store.stats().flush;
        assert_eq!(s.sync_errors, 4, "one try and 3 retries: {s:?}");
        assert_eq!(s.sync_retries, 3, "{s:?}");
        assert!(s.durable_lsn < s.written_lsn);

        // Refused from now on, with the reason, even once the disk is well.
        fs.clear_faults();
        let e = store.wal_image_write(32, &[0u8; 24]).unwrap_err();
        match &e {
            StorageError::Failed { reason, errno, .. } => {
                assert!(reason.contains("4 times"), "{reason}");
                assert_eq!(*errno, Some(libc::EIO));
            }
            other => panic!("not refused: {other}"),
        }
        assert!(store.wal_image_sync().is_err());
        store.halt();
    }
    let fs = fs.crash(CrashMode::LoseAll, &mut SimRng::new(3));
    let store = Store::open_shared(&path, &opts(&fs)).unwrap();
    // The sixth commit was never durable (no fdatasync of it succeeded) and
    // the power cut lost everything unsynced: exactly the five acknowledged.
    assert_eq!(store.stats().wal_image_frames, 5);
    for i in 1..=5u8 {
        assert_eq!(read_frame(&store, u64::from(i)), vec![i; PAGE as usize]);
    }
}
