//! Checkpoints copy committed pages into bop's page store: frame counts as
//! SQLite reports them, readers of older snapshots hold a checkpoint back,
//! the WAL restarts once everything is copied, and the data is intact after
//! checkpoints and a reopen.

mod common;
use bop_libsql::Value;
use common::{checkpoint, conn, stat};

#[test]
fn checkpoint_counts_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let c = conn(&path);
    c.execute_batch("PRAGMA wal_autocheckpoint=0; CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB);")
        .unwrap();
    for i in 0..20 {
        c.execute(
            "INSERT INTO t VALUES (?, randomblob(3000))",
            &[Value::Integer(i)],
        )
        .unwrap();
    }
    // Every commit added at least one frame; nothing is copied yet.
    let (busy, log, done) = checkpoint(&c, "PASSIVE");
    assert_eq!(busy, 0);
    assert!(log >= 21, "log frames {log}");
    assert_eq!(
        done, log,
        "a passive checkpoint with no reader copies everything"
    );
    let pages_before = stat(&c, "db_pages");
    assert!(pages_before >= 21, "db_pages {pages_before}");

    // The WAL restarted: the next commit starts a new generation at frame 1.
    c.execute("INSERT INTO t VALUES (100, x'01')", &[]).unwrap();
    let (_, log2, _) = checkpoint(&c, "PASSIVE");
    assert!(
        log2 < log,
        "a new WAL generation ({log2} frames, was {log})"
    );
    assert!(stat(&c, "generations") >= 2);

    // A reader holding an older snapshot holds the checkpoint back.
    let reader = conn(&path);
    reader.execute_batch("BEGIN").unwrap();
    let n0 = reader.query_i64("SELECT count(*) FROM t").unwrap();
    for i in 200..230 {
        c.execute(
            "INSERT INTO t VALUES (?, randomblob(3000))",
            &[Value::Integer(i)],
        )
        .unwrap();
    }
    let (busy, log3, done3) = checkpoint(&c, "PASSIVE");
    assert_eq!(busy, 0);
    assert!(done3 < log3, "held back by the reader: {done3} of {log3}");
    assert_eq!(reader.query_i64("SELECT count(*) FROM t").unwrap(), n0);
    // FULL waits for the reader through the busy handler, then reports busy.
    reader.execute_batch("PRAGMA busy_timeout=0").unwrap();
    c.execute_batch("PRAGMA busy_timeout=100").unwrap();
    let (busy, _, _) = checkpoint(&c, "FULL");
    assert_eq!(busy, 1);
    reader.execute_batch("COMMIT").unwrap();
    let (busy, log4, done4) = checkpoint(&c, "FULL");
    assert_eq!((busy, done4), (0, log4));
    // TRUNCATE empties the WAL: SQLite reports 0 frames.
    assert_eq!(checkpoint(&c, "TRUNCATE"), (0, 0, 0));
    assert_eq!(stat(&c, "wal_image_frames"), 0);

    let total = c.query_i64("SELECT count(*) FROM t").unwrap();
    let sum = c.query_i64("SELECT sum(length(b)) FROM t").unwrap();
    assert_eq!(total, 51);
    assert_eq!(
        c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
        Some("ok")
    );
    drop(reader);
    drop(c);

    let c = conn(&path);
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), total);
    assert_eq!(c.query_i64("SELECT sum(length(b)) FROM t").unwrap(), sum);
    assert_eq!(
        c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
        Some("ok")
    );
}

#[test]
fn autocheckpoint_bounds_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let c = conn(&path);
    c.execute_batch(
        "PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=50;
         CREATE TABLE t(a INTEGER PRIMARY KEY, b);",
    )
    .unwrap();
    let mut st = c
        .prepare("INSERT INTO t VALUES (?, randomblob(500))")
        .unwrap();
    for i in 0..1000 {
        st.execute(&[Value::Integer(i)]).unwrap();
    }
    drop(st);
    let frames = stat(&c, "wal_image_frames");
    assert!(
        frames <= 300,
        "the WAL keeps {frames} frames despite autocheckpoint=100"
    );
    assert!(stat(&c, "generations") >= 5);
    drop(c);
    let c = conn(&path);
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 1000);
}
