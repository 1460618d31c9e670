//! Direct-I/O leaders, and leaders whose write is fused with their sync
//! (as io_uring's are), write a copy of the record log's blocks without the
//! flush lock while commits of other databases keep arriving, some of them
//! under NORMAL (written at once through the page cache). Writes of one
//! block must still land in the order of their content: after a power cut
//! that keeps every write that reached the kernel, every commit of both
//! kinds is there.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bop_storage::io::sim::{CrashMode, FaultOp, SimFs, SimRng};
use bop_storage::{Store, StoreOptions};
use common::*;

fn opts(fs: &SimFs) -> StoreOptions {
    StoreOptions {
        io: Arc::new(fs.clone()),
        ..Default::default()
    }
}

#[test]
fn normal_commits_beside_direct_leader_writes_all_survive() {
    let fs = SimFs::new();
    fs.set_log_alignment(4096);
    normal_commits_beside_unlocked_leader_writes_all_survive(&fs);
    assert_eq!(fs.stats().durable_writes, 0);
}

/// As io_uring's files: buffered, write fused with the sync.
#[test]
fn normal_commits_beside_fused_leader_writes_all_survive() {
    let fs = SimFs::new();
    fs.set_fused_durable_writes(true);
    normal_commits_beside_unlocked_leader_writes_all_survive(&fs);
    assert!(fs.stats().durable_writes > 0);
}

/// Fused and aligned: the leader's fused write pads the tail block, so a
/// NORMAL commit's write of that block must wait for it (invariant 4).
#[test]
fn normal_commits_beside_fused_aligned_leader_writes_all_survive() {
    let fs = SimFs::new();
    fs.set_log_alignment(4096);
    fs.set_fused_durable_writes(true);
    normal_commits_beside_unlocked_leader_writes_all_survive(&fs);
    assert!(fs.stats().durable_writes > 0);
}

fn normal_commits_beside_unlocked_leader_writes_all_survive(fs: &SimFs) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    // Slow writes widen the window in which a leader writes unlocked.
    fs.set_latency(FaultOp::Write, Duration::from_micros(200));
    let dbs = ["full1", "full2", "full3", "normal"];
    let frames: Vec<u64> = {
        let _main = Store::open_shared(&path, &opts(fs)).unwrap();
        let stores: Vec<_> = dbs
            .iter()
            .map(|n| Store::open_db_shared(&path, Some(n), &opts(fs)).unwrap())
            .collect();
        let frames = std::thread::scope(|s| {
            let hs: Vec<_> = stores
                .iter()
                .enumerate()
                .map(|(i, st)| {
                    s.spawn(move || {
                        let mut f = 1;
                        for t in 0..150u32 {
                            f = write_txn(st, f, &[(1 + t % 5, (t % 251) as u8)], 5);
                            if i < 3 {
                                st.wal_image_sync().unwrap();
                            } else {
                                // Now and then, so most syncs see no NORMAL
                                // commit before they start and write their
                                // batch directly, unlocked.
                                std::thread::sleep(Duration::from_micros(300));
                                st.end_write_transaction().unwrap();
                            }
                        }
                        f - 1
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        for st in &stores {
            st.halt();
        }
        frames
    };
    // Every write that reached the (simulated) kernel survives (the crash
    // keeps the alignment and fusing of the file system).
    let fs = fs.crash(CrashMode::KeepAll, &mut SimRng::new(3));
    for (n, want) in dbs.iter().zip(frames) {
        let st = Store::open_db_shared(&path, Some(n), &opts(&fs)).unwrap();
        assert_eq!(st.stats().wal_image_frames, want, "database {n}");
        assert_eq!(read_frame(&st, want), vec![149u8; PAGE as usize]);
        st.verify().unwrap();
    }
}
