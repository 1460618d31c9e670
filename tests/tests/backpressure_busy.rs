//! The WAL's unsynced-bytes bound reaches SQLite as SQLITE_BUSY: with a
//! slow disk and a small buffer (`log_buffer_kb`, `log_busy_ms`), a write
//! transaction that finds the buffer full waits its bound and then gets
//! "database is locked"; once the disk catches up, writes succeed again and
//! nothing committed is lost.

use std::sync::Arc;
use std::time::Duration;

use bop_storage::io::sim::{FaultOp, SimFs};
use bop_tests::{assert_integrity, open_with, tempdir};
use rusqlite::ErrorCode;

#[test]
fn a_full_wal_buffer_is_sqlite_busy_then_writes_resume() {
    let dir = tempdir();
    let path = dir.path().join("bp.db");
    let fs = SimFs::new();
    bop_vfs::testing::set_store_io(&path, Some(Arc::new(fs.clone())));
    let params = [("log_buffer_kb", "64"), ("log_busy_ms", "20")];
    let c = open_with(&path, &params);
    c.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=0; CREATE TABLE t(v BLOB)")
        .unwrap();
    // Every fdatasync now takes half a second: background flushes fall
    // behind the NORMAL commits.
    fs.set_latency(FaultOp::Sync, Duration::from_millis(500));
    let mut committed = 0;
    let mut busy = None;
    for _ in 0..200 {
        match c.execute("INSERT INTO t VALUES (randomblob(8000))", []) {
            Ok(_) => committed += 1,
            Err(e) => {
                busy = Some(e);
                break;
            }
        }
    }
    let e = busy.expect("a commit was turned away at the bound");
    assert_eq!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy), "{e}");
    let msg = bop_rusqlite::last_error().unwrap_or_default();
    assert!(msg.contains("unsynced"), "{msg}");
    assert!(committed >= 3, "{committed} commits before the bound");
    let stats: String = c.query_row("PRAGMA bop_stats", [], |r| r.get(0)).unwrap();
    assert!(stats.contains("backpressure_rejections=1"), "{stats}");

    // The disk catches up: writes are admitted again.
    fs.set_latency(FaultOp::Sync, Duration::ZERO);
    std::thread::sleep(Duration::from_millis(600));
    c.execute("INSERT INTO t VALUES (randomblob(8000))", [])
        .unwrap();
    committed += 1;
    drop(c);
    let c = open_with(&path, &params);
    let n: i64 = c
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, committed);
    assert_integrity(&c);
    bop_vfs::testing::set_store_io(&path, None);
}
