//! A failed fdatasync of the record log is retried, and each retry first
//! rewrites the unsynced bytes: after a writeback error the kernel may have
//! dropped them (the simulated file system does, as Linux does), so syncing
//! again without rewriting would acknowledge a commit that a power cut then
//! loses. The same holds where the segment file fuses a write with its sync
//! (as io_uring's do): the failed fused call is retried by a rewrite, then a
//! sync. Both for a commit in the buffer and for a large record written from
//! the caller's memory.

mod common;

use std::sync::Arc;

use bop_storage::io::sim::{CrashMode, Fault, FaultOp, SimFs, SimRng};
use bop_storage::log::{FlushConfig, LogConfig};
use bop_storage::{Store, StoreOptions};
use common::*;

/// The buffer's bound: a record over half of it is a large record.
const MAX: u64 = 64 << 10;

fn opts(fs: &SimFs) -> StoreOptions {
    StoreOptions {
        io: Arc::new(fs.clone()),
        log: LogConfig {
            flush: FlushConfig {
                unsynced_max_bytes: MAX,
                retry_backoff_base_ms: 1,
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The next fdatasync of a segment fails, once.
fn fail_next_sync(fs: &SimFs) {
    fs.inject(Fault {
        op: FaultOp::Sync,
        nth: 1,
        errno: libc::EIO,
        path_contains: Some(".seg".into()),
        sticky: false,
    });
}

/// Three synced one-page commits, then one (`pages`) whose first sync
/// fails; after a power cut that loses everything unsynced, all four are
/// there. Returns the durable writes the simulated file system saw.
fn first_sync_fails(fused: bool, pages: &[(u32, u8)]) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let fs = SimFs::new();
    fs.set_fused_durable_writes(fused);
    let mut f = 1;
    let db_size = pages.iter().map(|p| p.0).max().unwrap().max(3);
    let durable_writes;
    {
        let store = Store::open_shared(&path, &opts(&fs)).unwrap();
        for i in 1..=3u8 {
            f = write_txn(&store, f, &[(u32::from(i), i)], u32::from(i));
            store.wal_image_sync().unwrap();
        }
        fail_next_sync(&fs);
        f = write_txn(&store, f, pages, db_size);
        store
            .wal_image_sync()
            .expect("acknowledged after the retries succeed");
        let s = store.stats().flush;
        assert_eq!(s.sync_errors, 1, "{s:?}");
        assert_eq!(s.sync_retries, 1, "{s:?}");
        assert_eq!(s.durable_lsn, s.written_lsn);
        assert_eq!(s.large_records, u64::from(pages.len() > 1), "{s:?}");
        durable_writes = fs.stats().durable_writes;
        store.halt();
    }
    // Power cut losing everything unsynced.
    let fs = fs.crash(CrashMode::LoseAll, &mut SimRng::new(1));
    let store = Store::open_shared(&path, &opts(&fs)).unwrap();
    assert_eq!(store.wal_image_size(), 32 + (f - 1) * FRAME);
    for i in 1..=3u8 {
        assert_eq!(read_frame(&store, u64::from(i)), vec![i; PAGE as usize]);
    }
    for (k, (_, fill)) in pages.iter().enumerate() {
        assert_eq!(read_frame(&store, 4 + k as u64), vec![*fill; PAGE as usize]);
    }
    durable_writes
}

/// 20 pages (~80 KiB): larger than half the 64 KiB bound.
fn large() -> Vec<(u32, u8)> {
    (1..=20).map(|p| (p, 40 + p as u8)).collect()
}

#[test]
fn a_commit_whose_first_sync_fails_is_rewritten_and_survives_a_power_cut() {
    assert_eq!(first_sync_fails(false, &[(4, 4)]), 0);
}

/// Each of the four commits' leaders wrote and synced with one fused call
/// (the failed one included); the retry rewrote, then synced.
#[test]
fn a_fused_write_and_sync_that_fails_is_rewritten_and_survives_a_power_cut() {
    assert_eq!(first_sync_fails(true, &[(4, 4)]), 4);
}

#[test]
fn a_large_commit_whose_sync_fails_is_rewritten_and_survives_a_power_cut() {
    assert_eq!(first_sync_fails(false, &large()), 0);
}

/// Three small commits fused, then the large record's two tries, each a
/// fused write of the record from the caller's memory and its sync.
#[test]
fn a_large_fused_write_and_sync_that_fails_is_rewritten_and_survives_a_power_cut() {
    assert_eq!(first_sync_fails(true, &large()), 5);
}
