//! A failed fdatasync of the WAL is retried, and each retry first rewrites
//! the unsynced bytes: after a writeback error the kernel may have dropped
//! them (the simulated file system does, as Linux does), so syncing again
//! without rewriting would acknowledge a commit that a power cut then loses.

mod common;

use std::sync::Arc;

use bop_storage::io::sim::{CrashMode, Fault, FaultOp, SimFs, SimRng};
use bop_storage::{Store, StoreOptions};
use common::*;

fn opts(fs: &SimFs) -> StoreOptions {
    StoreOptions {
        io: Arc::new(fs.clone()),
        ..Default::default()
    }
}

#[test]
fn a_commit_whose_first_sync_fails_is_rewritten_and_survives_a_power_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let fs = SimFs::new();
    let mut f = 1;
    {
        let store = Store::open_shared(&path, &opts(&fs)).unwrap();
        for i in 1..=3u8 {
            f = write_txn(&store, f, &[(u32::from(i), i)], u32::from(i));
            store.wal_image_sync().unwrap();
        }
        // The next fdatasync of the segment fails, once.
        fs.inject(Fault {
            op: FaultOp::Sync,
            nth: 1,
            errno: libc::EIO,
            path_contains: Some(".seg".into()),
            sticky: false,
        });
        f = write_txn(&store, f, &[(4, 4)], 4);
        store
            .wal_image_sync()
            .expect("acknowledged after the retries succeed");
        let s = store.stats().flush;
        assert_eq!(s.sync_errors, 1, "{s:?}");
        assert_eq!(s.sync_retries, 1, "{s:?}");
        assert_eq!(s.durable_lsn, s.written_lsn);
        store.halt();
    }
    // Power cut losing everything unsynced.
    let fs = fs.crash(CrashMode::LoseAll, &mut SimRng::new(1));
    let store = Store::open_shared(&path, &opts(&fs)).unwrap();
    assert_eq!(store.wal_image_size(), 32 + (f - 1) * FRAME);
    for i in 1..=4u8 {
        assert_eq!(read_frame(&store, u64::from(i)), vec![i; PAGE as usize]);
    }
}
