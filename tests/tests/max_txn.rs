//! The `max_txn_mb` bound: a larger transaction fails with SQLITE_FULL and
//! leaves the database usable and intact.

use bop_tests::{assert_integrity, close, open, open_with, tempdir};
use rusqlite::{Connection, ErrorCode};

fn digest(conn: &Connection) -> (i64, i64) {
    conn.query_row(
        "SELECT count(*), coalesce(sum(length(v)), 0) FROM t",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

/// Ends a transaction SQLite may or may not have rolled back itself.
fn end_failed_txn(conn: &Connection) {
    if !conn.is_autocommit() {
        conn.execute_batch("ROLLBACK").unwrap();
    }
}

#[test]
fn transaction_over_max_txn_mb_fails_with_full() {
    let dir = tempdir();
    let store = dir.path().join("full.db");
    let params = [("max_txn_mb", "1")];
    let conn = open_with(&store, &params);
    conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        .unwrap();
    // Small transactions work.
    for i in 0..5 {
        conn.execute("INSERT INTO t(v) VALUES (randomblob(100000 + ?1))", [i])
            .unwrap();
    }
    let before = digest(&conn);
    assert_eq!(before.0, 5);

    // 2 MB in one explicit transaction.
    conn.execute_batch("BEGIN").unwrap();
    let mut failure = None;
    for _ in 0..20 {
        if let Err(e) = conn.execute("INSERT INTO t(v) VALUES (randomblob(100000))", []) {
            failure = Some(e);
            break;
        }
    }
    let failure = match failure {
        Some(e) => e,
        None => conn
            .execute_batch("COMMIT")
            .expect_err("committing 2 MB with max_txn_mb=1 must fail"),
    };
    assert_eq!(
        failure.sqlite_error_code(),
        Some(ErrorCode::DiskFull),
        "expected SQLITE_FULL, got {failure}"
    );
    end_failed_txn(&conn);
    assert_eq!(digest(&conn), before, "after the failed transaction");
    assert_integrity(&conn);

    // 2 MB in one autocommit statement.
    let err = conn
        .execute_batch(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20)
             INSERT INTO t(v) SELECT randomblob(100000) FROM c",
        )
        .expect_err("a 2 MB statement with max_txn_mb=1 must fail");
    assert_eq!(
        err.sqlite_error_code(),
        Some(ErrorCode::DiskFull),
        "got {err}"
    );
    end_failed_txn(&conn);
    assert_eq!(digest(&conn), before, "after the failed statement");

    // Smaller transactions still work, from this and another connection.
    conn.execute_batch(
        "BEGIN;
         INSERT INTO t(v) VALUES (randomblob(200000));
         INSERT INTO t(v) VALUES (randomblob(200000));
         COMMIT;",
    )
    .unwrap();
    let other = open_with(&store, &params);
    other
        .execute("INSERT INTO t(v) VALUES (randomblob(300000))", [])
        .unwrap();
    let after = digest(&other);
    assert_eq!(after, (before.0 + 3, before.1 + 700_000));
    assert_integrity(&other);
    close(other);
    close(conn);

    // Reopen: intact, and the default bound (1024 MiB) takes 2 MB easily.
    let conn = open(&store);
    assert_eq!(digest(&conn), after);
    assert_integrity(&conn);
    conn.execute_batch(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20)
         INSERT INTO t(v) SELECT randomblob(100000) FROM c",
    )
    .unwrap();
    assert_eq!(digest(&conn), (after.0 + 20, after.1 + 2_000_000));
    close(conn);
}

#[test]
fn spilling_transaction_over_max_txn_mb_fails_with_full() {
    let dir = tempdir();
    let store = dir.path().join("spill.db");
    let params = [("max_txn_mb", "1")];
    let conn = open_with(&store, &params);
    // A 10-page cache makes SQLite write frames to the WAL long before
    // COMMIT, so the bound is hit in the middle of a statement.
    conn.execute_batch(
        "PRAGMA cache_size=10;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
         INSERT INTO t(v) VALUES (randomblob(300000));",
    )
    .unwrap();
    let before = digest(&conn);
    conn.execute_batch("BEGIN").unwrap();
    conn.execute("UPDATE t SET v = randomblob(300000)", [])
        .unwrap();
    let err = conn
        .execute_batch(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000)
             INSERT INTO t(v) SELECT randomblob(1000) FROM c",
        )
        .and_then(|_| conn.execute_batch("COMMIT"))
        .expect_err("2 MB in one spilling transaction with max_txn_mb=1 must fail");
    assert_eq!(
        err.sqlite_error_code(),
        Some(ErrorCode::DiskFull),
        "got {err}"
    );
    end_failed_txn(&conn);
    assert_eq!(digest(&conn), before, "the failed transaction left traces");
    let v1: Vec<u8> = conn.query_row("SELECT v FROM t", [], |r| r.get(0)).unwrap();
    assert_integrity(&conn);
    // Usable: a smaller transaction commits.
    conn.execute_batch(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300)
         INSERT INTO t(v) SELECT randomblob(1000) FROM c",
    )
    .unwrap();
    let after = digest(&conn);
    assert_eq!(after, (before.0 + 300, before.1 + 300_000));
    close(conn);
    let conn = open(&store);
    assert_eq!(digest(&conn), after);
    let v2: Vec<u8> = conn
        .query_row("SELECT v FROM t WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert!(v1 == v2, "the first row changed");
    assert_integrity(&conn);
    close(conn);
}

#[test]
fn bad_max_txn_mb_is_rejected() {
    let dir = tempdir();
    for bad in ["abc", "-1", "12x"] {
        let store = dir.path().join("bad.db");
        let r = bop_tests::try_open_with(&store, &[("max_txn_mb", bad)]).and_then(|c| {
            c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
        });
        assert!(r.is_err(), "max_txn_mb={bad:?} was accepted");
    }
}
