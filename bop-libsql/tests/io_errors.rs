//! Failures under libSQL on bop, injected through the simulated file
//! system: a panic inside the engine during a commit is caught at the C
//! boundary (an SQLite error, never an unwind into libSQL) and fails the
//! store safe; a failed fdatasync under FULL is an I/O error and the store
//! refuses writes; after reopening nothing acknowledged is lost.

use std::path::Path;
use std::sync::Arc;

use bop_libsql::{Connection, OpenFlags, Value};
use bop_storage::io::sim::{CrashMode, Fault, FaultOp, SimFs, SimRng};

fn open(path: &Path, fs: &SimFs) -> Connection {
    bop_vfs::testing::set_store_io(path, Some(Arc::new(fs.clone())));
    let c = bop_libsql::open(path, OpenFlags::default()).unwrap();
    c.execute_batch(
        "PRAGMA synchronous=FULL; CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v);",
    )
    .unwrap();
    c
}

fn insert(c: &Connection, id: i64) -> bop_libsql::Result<usize> {
    c.execute("INSERT INTO t VALUES (?, 'x')", &[Value::Integer(id)])
}

#[test]
fn a_panic_in_a_commit_fails_safe() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("panic.db");
    let fs = SimFs::new();
    let c = open(&path, &fs);
    for i in 0..4 {
        insert(&c, i).unwrap();
    }
    fs.inject(Fault {
        op: FaultOp::Write,
        nth: 1,
        errno: SimFs::PANIC,
        path_contains: Some(".seg".into()),
        sticky: false,
    });
    let e = insert(&c, 10).unwrap_err();
    let msg = bop_libsql::last_error().unwrap_or_default();
    assert!(msg.contains("panic"), "{e}: {msg}");
    // The store refuses writes now; reads go on.
    let e = insert(&c, 11).unwrap_err();
    let msg = bop_libsql::last_error().unwrap_or_default();
    assert!(msg.contains("refuses writes"), "{e}: {msg}");
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 4);
    drop(c);
    let c = open(&path, &fs);
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 4);
    insert(&c, 12).unwrap();
    assert_eq!(
        c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
        Some("ok")
    );
    drop(c);
    bop_vfs::testing::set_store_io(&path, None);
}

#[test]
fn a_failed_sync_is_an_io_error_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("eio.db");
    let fs = SimFs::new();
    let c = open(&path, &fs);
    for i in 0..5 {
        insert(&c, i).unwrap();
    }
    fs.inject(Fault {
        op: FaultOp::Sync,
        nth: 1,
        errno: libc::EIO,
        path_contains: Some(".seg".into()),
        sticky: true,
    });
    let e = insert(&c, 100).unwrap_err();
    assert_eq!(e.code() & 0xff, 10, "SQLITE_IOERR, got {e}");
    let msg = bop_libsql::last_error().unwrap_or_default();
    assert!(msg.contains(".seg"), "the message names the file: {msg}");
    assert!(insert(&c, 101).is_err(), "the store refuses writes");
    drop(c);
    // A power cut losing everything unsynced: the failed commit was never
    // durable (no fdatasync of it succeeded), so exactly the 5 acknowledged
    // rows are there.
    let fs = fs.crash(CrashMode::LoseAll, &mut SimRng::new(1));
    let c = open(&path, &fs);
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 5);
    assert_eq!(c.query_i64("SELECT sum(id) FROM t").unwrap(), 1 + 2 + 3 + 4);
    insert(&c, 200).unwrap();
    drop(c);
    bop_vfs::testing::set_store_io(&path, None);
}
