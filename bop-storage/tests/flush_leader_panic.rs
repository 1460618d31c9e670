//! A panic in the write a committing leader makes before its sync (here,
//! injected into the log segment's write) must not leave the flush
//! controller believing a sync still runs: the next durable commit leads a
//! sync of its own and returns, and what it acknowledged survives a power
//! cut. (The front ends also fail the store on such a panic; the engine
//! must not strand waiting committers either way.)

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use bop_storage::io::sim::{CrashMode, Fault, FaultOp, SimFs, SimRng};
use bop_storage::{Store, StoreOptions};
use common::*;

#[test]
fn a_panic_in_the_leaders_write_does_not_strand_the_next_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let fs = SimFs::new();
    let opts = StoreOptions {
        io: Arc::new(fs.clone()),
        ..Default::default()
    };
    let store = Store::open_shared(&path, &opts).unwrap();
    let f = write_txn(&store, 1, &[(1, 0x11)], 1);
    store.wal_image_sync().unwrap();
    // The next write of the segment is the leader's write of commit 2.
    let f = write_txn(&store, f, &[(2, 0x22)], 2);
    fs.inject(Fault {
        op: FaultOp::Write,
        nth: 1,
        errno: SimFs::PANIC,
        path_contains: Some(".seg".into()),
        sticky: false,
    });
    let panicked = catch_unwind(AssertUnwindSafe(|| store.wal_image_sync()));
    assert!(
        panicked.is_err(),
        "the injected panic reached the committer"
    );

    // The next durable commit, from another thread: it must lead a sync
    // of its own (or fail), never wait forever for the panicked one.
    let (tx, rx) = mpsc::channel();
    let s2 = store.clone();
    std::thread::spawn(move || {
        let _ = write_txn(&s2, f, &[(3, 0x33)], 3);
        let _ = tx.send(s2.wal_image_sync());
    });
    let second = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the next durable commit returned");
    second.expect("the next durable commit succeeded");
    let frames = store.stats().wal_image_frames;
    assert_eq!(frames, 3, "all three commits are in the WAL image");
    store.halt();
    drop(store);

    // What was acknowledged survives a power cut.
    let fs = fs.crash(CrashMode::LoseAll, &mut SimRng::new(1));
    let opts = StoreOptions {
        io: Arc::new(fs),
        ..Default::default()
    };
    let store = Store::open_shared(&path, &opts).unwrap();
    assert_eq!(store.stats().wal_image_frames, 3);
    for (frame, fill) in [(1, 0x11u8), (2, 0x22), (3, 0x33)] {
        assert_eq!(read_frame(&store, frame), vec![fill; PAGE as usize]);
    }
}
