//! Several libSQL connections to one bop store in one process: readers keep
//! stable snapshots while writers commit, one writer at a time (SQLITE_BUSY),
//! a stale snapshot cannot write (SQLITE_BUSY_SNAPSHOT), and concurrent
//! transfers keep a conserved total under readers' eyes.

mod common;
use bop_libsql::{Error, Value};
use common::conn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn code(e: &Error) -> i32 {
    e.code()
}

#[test]
fn snapshots_busy_and_stale_writers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let w = conn(&path);
    w.execute_batch("CREATE TABLE t(a INTEGER PRIMARY KEY, b)")
        .unwrap();
    w.execute_batch("INSERT INTO t VALUES (1, 'one')").unwrap();

    // A reader's snapshot is stable while a writer commits.
    let r = conn(&path);
    r.execute_batch("BEGIN").unwrap();
    assert_eq!(r.query_i64("SELECT count(*) FROM t").unwrap(), 1);
    w.execute_batch("INSERT INTO t VALUES (2, 'two'); INSERT INTO t VALUES (3, 'three');")
        .unwrap();
    assert_eq!(r.query_i64("SELECT count(*) FROM t").unwrap(), 1);
    // The stale snapshot may not write.
    let e = r.execute("INSERT INTO t VALUES (9, 'x')", &[]).unwrap_err();
    assert_eq!(code(&e), 517, "SQLITE_BUSY_SNAPSHOT, got {e}");
    r.execute_batch("ROLLBACK").unwrap();
    assert_eq!(r.query_i64("SELECT count(*) FROM t").unwrap(), 3);

    // One writer at a time.
    let w2 = conn(&path);
    w2.execute_batch("PRAGMA busy_timeout=0").unwrap();
    w.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (4, 'four');")
        .unwrap();
    let e = w2.execute_batch("BEGIN IMMEDIATE").unwrap_err();
    assert_eq!(code(&e) & 0xff, 5, "SQLITE_BUSY, got {e}");
    // Readers go on and do not see the open transaction.
    assert_eq!(w2.query_i64("SELECT count(*) FROM t").unwrap(), 3);
    w.execute_batch("COMMIT").unwrap();
    w2.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (5, 'five'); COMMIT;")
        .unwrap();
    assert_eq!(r.query_i64("SELECT count(*) FROM t").unwrap(), 5);
}

#[test]
fn transfers_keep_the_total() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.db");
    let c = conn(&path);
    c.execute_batch(
        "PRAGMA wal_autocheckpoint=50;
         CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER NOT NULL, pad BLOB);
         WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < 99)
         INSERT INTO acct SELECT i, 1000, randomblob(300) FROM s;",
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for t in 0..3u64 {
        let path = path.clone();
        writers.push(std::thread::spawn(move || {
            let c = conn(&path);
            c.execute_batch("PRAGMA busy_timeout=10000").unwrap();
            let mut x = t * 7919 + 1;
            let mut done = 0;
            while done < 150 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let (from, to, amt) = ((x >> 33) % 100, (x >> 45) % 100, (x >> 20) % 50);
                let r = c.execute_batch("BEGIN IMMEDIATE").and_then(|_| {
                    c.execute(
                        "UPDATE acct SET bal = bal - ?2, pad = randomblob(300) WHERE id = ?1",
                        &[Value::Integer(from as i64), Value::Integer(amt as i64)],
                    )?;
                    c.execute(
                        "UPDATE acct SET bal = bal + ?2 WHERE id = ?1",
                        &[Value::Integer(to as i64), Value::Integer(amt as i64)],
                    )?;
                    c.execute_batch("COMMIT")
                });
                match r {
                    Ok(()) => done += 1,
                    Err(e) if e.is_busy() => {
                        let _ = c.execute_batch("ROLLBACK");
                    }
                    Err(e) => panic!("writer {t}: {e}"),
                }
            }
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..2 {
        let path = path.clone();
        let stop = stop.clone();
        readers.push(std::thread::spawn(move || {
            let c = conn(&path);
            let mut checks = 0;
            while !stop.load(Ordering::Relaxed) || checks < 10 {
                c.execute_batch("BEGIN").unwrap();
                let a = c.query_i64("SELECT sum(bal) FROM acct").unwrap();
                std::thread::yield_now();
                let b = c.query_i64("SELECT sum(bal) FROM acct").unwrap();
                let n = c.query_i64("SELECT count(*) FROM acct").unwrap();
                c.execute_batch("COMMIT").unwrap();
                assert_eq!((a, b, n), (100_000, 100_000, 100));
                checks += 1;
            }
            checks
        }));
    }
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() >= 10);
    }
    assert_eq!(c.query_i64("SELECT sum(bal) FROM acct").unwrap(), 100_000);
    assert_eq!(
        c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
        Some("ok")
    );
    drop(c);
    let c = conn(&path);
    assert_eq!(c.query_i64("SELECT sum(bal) FROM acct").unwrap(), 100_000);
}

/// locking_mode=EXCLUSIVE: the connection keeps the database to itself
/// (others get SQLITE_BUSY), commits and rollbacks work, and after going
/// back to NORMAL others see the data.
#[test]
fn exclusive_locking_mode() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("e.db");
    let c = conn(&p);
    // The database exists (is in WAL mode) before the connection takes it
    // exclusively; see exclusive_locking_mode_on_a_new_database.
    c.execute_batch(
        "CREATE TABLE t(a); PRAGMA locking_mode=EXCLUSIVE;
         INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);",
    )
    .unwrap();
    let other = conn(&p);
    other.execute_batch("PRAGMA busy_timeout=0").unwrap();
    let e = other.query_i64("SELECT count(*) FROM t").unwrap_err();
    assert_eq!(code(&e) & 0xff, 5, "SQLITE_BUSY, got {e}");
    c.execute_batch("BEGIN; INSERT INTO t VALUES (3); ROLLBACK; INSERT INTO t VALUES (4);")
        .unwrap();
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 3);
    c.execute_batch("PRAGMA locking_mode=NORMAL; SELECT 1;")
        .unwrap();
    let r = c.query("PRAGMA wal_checkpoint(TRUNCATE)", &[]).unwrap();
    assert_eq!(
        r[0],
        vec![Value::Integer(0), Value::Integer(0), Value::Integer(0)]
    );
    drop(c);
    assert_eq!(other.query_i64("SELECT count(*) FROM t").unwrap(), 3);
}

/// A new database written first in locking_mode=EXCLUSIVE: SQLite runs
/// that connection's transactions in rollback mode (bop keeps the journal
/// in memory; each commit's pages are published atomically) until it
/// leaves exclusive mode; commits and rollbacks work and the data
/// survives a reopen, in WAL mode.
#[test]
fn exclusive_locking_mode_on_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("n.db");
    let c = conn(&p);
    c.execute_batch(
        "PRAGMA locking_mode=EXCLUSIVE; CREATE TABLE t(a);
         INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);
         BEGIN; INSERT INTO t VALUES (3); ROLLBACK; INSERT INTO t VALUES (4);",
    )
    .unwrap();
    assert_eq!(c.query_i64("SELECT sum(a) FROM t").unwrap(), 7);
    drop(c);
    let c = conn(&p);
    assert_eq!(c.query_i64("SELECT sum(a) FROM t").unwrap(), 7);
    c.execute_batch("INSERT INTO t VALUES (8)").unwrap();
    assert!(common::stat(&c, "wal_image_bytes") > 0, "in WAL mode");
    assert_eq!(
        c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
        Some("ok")
    );
}
