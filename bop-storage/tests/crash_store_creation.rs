//! A power cut at every file operation of creating a store, its first
//! commit and its close, under POSIX's directory rules (the simulated file
//! system loses every directory entry whose directory was not synced: the
//! store's own directory in its parent included). After every cut the
//! store opens (or is created afresh), a commit that returned is there, and
//! the store goes on working; nothing but the store is left beside it.
//!
//! The manifest (LMDB) lives on the real file system. The store's
//! directory is one entry on a disk: when the cut loses it (or the
//! temporary directory it is built in) in the simulated file system, the
//! test removes it from the real one too, as the disk would have.

mod common;

use std::path::Path;
use std::sync::Arc;

use bop_storage::io::sim::{CrashMode, Fault, FaultOp, SimFs, SimRng};
use bop_storage::io::IoBackend;
use bop_storage::{Store, StoreOptions};
use common::{read_frame, write_txn};

fn opts(fs: &SimFs) -> StoreOptions {
    StoreOptions {
        io: Arc::new(fs.clone()),
        ..Default::default()
    }
}

/// Creates the store, commits one transaction (page 1 filled with 0x5a)
/// and closes it. Returns whether the commit returned.
fn create_commit_close(path: &Path, fs: &SimFs) -> bool {
    let Ok(store) = Store::open_shared(path, &opts(fs)) else {
        return false;
    };
    let wrote = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        write_txn(&store, 1, &[(1, 0x5a)], 1);
    }));
    let acked = wrote.is_ok() && store.wal_image_sync().is_ok();
    drop(store);
    acked
}

/// The entries of `dir` on the real file system.
fn real_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn power_cut_during_creation_and_first_commit() {
    let mut runs = 0;
    let mut acked_runs = 0;
    for (mi, mode) in [CrashMode::LoseAll, CrashMode::Random, CrashMode::KeepAll]
        .into_iter()
        .enumerate()
    {
        for n in 1.. {
            let scratch = tempfile::tempdir().unwrap();
            let path = scratch.path().join("s");
            let fs = SimFs::new();
            fs.inject(Fault {
                op: FaultOp::Any,
                nth: n,
                errno: SimFs::CRASH,
                path_contains: None,
                sticky: false,
            });
            let acked = create_commit_close(&path, &fs);
            let fired = fs.stats().faults_fired > 0;
            let what = format!("{mode:?} cut at operation {n}");
            if !fired {
                assert!(acked, "{what}: nothing fired, yet the commit failed");
            }
            let seed = (mi as u64) << 32 | n;
            let after = fs.crash(mode, &mut SimRng::new(seed));
            for name in real_names(scratch.path()) {
                let p = scratch.path().join(&name);
                if !after.exists(&p) {
                    std::fs::remove_dir_all(&p).unwrap();
                }
            }
            let store = Store::open_shared(&path, &opts(&after))
                .unwrap_or_else(|e| panic!("{what}: the store does not open: {e}"));
            if acked {
                acked_runs += 1;
                assert!(
                    store.stats().wal_image_frames >= 1,
                    "{what}: the acknowledged commit is lost"
                );
                assert!(read_frame(&store, 1).iter().all(|&b| b == 0x5a), "{what}");
            }
            store.verify().unwrap_or_else(|e| panic!("{what}: {e}"));
            // It goes on working, and nothing else is left beside it.
            let f = write_txn(&store, 1, &[(1, 0x77)], 1);
            assert_eq!(f, 2);
            store.wal_image_sync().unwrap();
            drop(store);
            assert_eq!(real_names(scratch.path()), ["s"], "{what}");
            runs += 1;
            if !fired {
                break;
            }
        }
    }
    println!("{runs} runs, {acked_runs} with the commit acknowledged");
    assert!(runs > 30 && acked_runs > 3, "{runs} {acked_runs}");
}

/// The store's directory entry itself is made durable: without the sync of
/// the parent, a cut after the first commit loses the store under
/// POSIX's rules.
#[test]
fn the_store_directory_is_synced_into_its_parent() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("s");
    let fs = SimFs::new();
    assert!(create_commit_close(&path, &fs));
    let after = fs.crash(CrashMode::LoseAll, &mut SimRng::new(7));
    assert!(after.exists(&path), "the store's entry in its parent");
    for sub in ["wal", "chunks", "manifest"] {
        assert!(after.exists(&path.join(sub)), "{sub}/ in the store");
    }
    assert!(!after.exists(&scratch.path().join(".s.bop-creating.1")));
}
