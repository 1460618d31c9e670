//! Rollback and savepoints inside transactions large enough that libSQL
//! spills uncommitted pages into the WAL before the commit (a tiny page
//! cache forces it): the spilled frames are served back, rewritten in place,
//! cut back by ROLLBACK TO and dropped by ROLLBACK.

mod common;
use bop_libsql::Value;
use common::{conn, stat};

fn fill(c: &bop_libsql::Connection, from: i64, n: i64) {
    c.execute(
        "WITH RECURSIVE s(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM s WHERE i < ?1 + ?2 - 1)
         INSERT INTO t SELECT i, randomblob(400) FROM s",
        &[Value::Integer(from), Value::Integer(n)],
    )
    .unwrap();
}

#[test]
fn savepoints_in_a_spilling_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sp.db");
    let c = conn(&path);
    c.execute_batch("PRAGMA cache_size=16; CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB);")
        .unwrap();
    let peak0 = stat(&c, "pending_bytes_peak");

    // A whole spilled transaction rolled back leaves nothing.
    c.execute_batch("BEGIN").unwrap();
    fill(&c, 1, 5000);
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 5000);
    c.execute_batch("ROLLBACK").unwrap();
    let peak = stat(&c, "pending_bytes_peak");
    assert!(
        peak > peak0 + 1_000_000,
        "the transaction spilled into the WAL ({peak0} -> {peak} pending bytes)"
    );
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 0);
    assert_eq!(
        c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
        Some("ok")
    );

    // Savepoints: keep the first part, roll back the second, release, commit.
    c.execute_batch("BEGIN").unwrap();
    fill(&c, 1, 3000);
    c.execute_batch("SAVEPOINT a").unwrap();
    fill(&c, 3001, 3000);
    c.execute_batch("UPDATE t SET b = zeroblob(10) WHERE a <= 1000")
        .unwrap();
    c.execute_batch("SAVEPOINT b").unwrap();
    c.execute_batch("DELETE FROM t WHERE a % 2 = 0").unwrap();
    c.execute_batch("ROLLBACK TO b").unwrap();
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 6000);
    c.execute_batch("ROLLBACK TO a").unwrap();
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 3000);
    assert_eq!(
        c.query_i64("SELECT count(*) FROM t WHERE length(b) = 400")
            .unwrap(),
        3000
    );
    c.execute_batch("RELEASE a").unwrap();
    fill(&c, 10_001, 100);
    c.execute_batch("COMMIT").unwrap();
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 3100);
    assert_eq!(
        c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
        Some("ok")
    );

    // A failed statement inside a transaction rolls back only itself.
    c.execute_batch("BEGIN").unwrap();
    fill(&c, 20_001, 2000);
    assert!(c.execute("INSERT INTO t VALUES (1, x'00')", &[]).is_err());
    c.execute_batch("COMMIT").unwrap();
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 5100);
    drop(c);

    let c = conn(&path);
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 5100);
    assert_eq!(c.query_i64("SELECT max(a) FROM t").unwrap(), 22_000);
    assert_eq!(
        c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
        Some("ok")
    );
}

/// A transaction past the store's bound (URI parameter `max_txn_mb`) fails
/// with SQLITE_FULL and leaves the database usable.
#[test]
fn transaction_over_the_bound_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.db");
    let uri = format!("file:{}?max_txn_mb=1", path.display());
    let c = bop_libsql::open(&uri, bop_libsql::OpenFlags::default()).unwrap();
    c.execute_batch("PRAGMA cache_size=16; CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB);")
        .unwrap();
    c.execute_batch("BEGIN").unwrap();
    let e = c
        .execute(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 5000)
             INSERT INTO t SELECT i, randomblob(1000) FROM s",
            &[],
        )
        .unwrap_err();
    assert_eq!(e.code() & 0xff, 13, "SQLITE_FULL, got {e}");
    let _ = c.execute_batch("ROLLBACK");
    fill(&c, 1, 100);
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 100);
    assert_eq!(
        c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
        Some("ok")
    );
}
