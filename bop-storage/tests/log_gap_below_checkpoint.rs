//! Records below the checkpoint LSN may be lost unsynced (their pages are
//! already in the page store). Recovery must then continue the log at the
//! checkpoint LSN: commits made after that recovery survive the next open.
//! (Found by the `log_recovery` fuzz target.)

mod common;

use std::sync::Arc;

use bop_storage::io::sim::{CrashMode, SimFs, SimRng};
use bop_storage::{Store, StoreOptions};
use common::*;

#[test]
fn commits_after_losing_records_below_the_checkpoint_survive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let fs = SimFs::new();
    let opts = |fs: &SimFs| StoreOptions {
        io: Arc::new(fs.clone()),
        ..Default::default()
    };
    {
        let store = Store::open_shared(&path, &opts(&fs)).unwrap();
        // Two NORMAL commits: written, never synced.
        let f = write_txn(&store, 1, &[(1, 1)], 1);
        store.end_write_transaction().unwrap();
        write_txn(&store, f, &[(2, 2)], 2);
        store.end_write_transaction().unwrap();
        // SQLite checkpointed everything and truncated its WAL: the
        // checkpoint LSN moves past both records.
        store.wal_image_truncate(0).unwrap();
        store.halt();
    }
    // Power cut: the unsynced records are gone; the manifest is not.
    let fs = fs.crash(CrashMode::LoseAll, &mut SimRng::new(7));
    {
        let store = Store::open_shared(&path, &opts(&fs)).unwrap();
        assert_eq!(store.wal_image_size(), 0);
        write_txn(&store, 1, &[(3, 3)], 3);
        store.wal_image_sync().unwrap(); // acknowledged under FULL
    }
    let store = Store::open_shared(&path, &opts(&fs)).unwrap();
    assert_eq!(
        store.wal_image_size(),
        32 + FRAME,
        "the acknowledged commit is there"
    );
    assert_eq!(read_frame(&store, 1), vec![3u8; PAGE as usize]);
}
