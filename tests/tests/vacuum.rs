//! VACUUM through bop: the database shrinks and the data is intact.

use bop_tests::{assert_integrity, close, open, tempdir};
use rusqlite::Connection;

fn digest(conn: &Connection) -> (i64, i64, String) {
    conn.query_row(
        "SELECT count(*), sum(id), group_concat(hex(substr(v, 1, 4)), '') FROM (SELECT * FROM t ORDER BY id)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

#[test]
fn vacuum_keeps_data() {
    let dir = tempdir();
    let store = dir.path().join("vac.db");
    let conn = open(&store);
    conn.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
         CREATE INDEX t_v ON t(v);
         BEGIN;
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 8000)
         INSERT INTO t SELECT x, zeroblob(200) || CAST(printf('%08d', x) AS BLOB) FROM c;
         COMMIT;
         DELETE FROM t WHERE id % 4 != 0;",
    )
    .unwrap();
    let before = digest(&conn);
    assert_eq!(before.0, 2000);
    let pages_before: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let free_before: i64 = conn
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    assert!(free_before > 0, "deleting rows should free pages");

    conn.execute_batch("VACUUM").unwrap();

    let pages_after: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let free_after: i64 = conn
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    assert_eq!(free_after, 0);
    assert!(
        pages_after < pages_before,
        "VACUUM shrank {pages_before} -> {pages_after}"
    );
    assert_eq!(digest(&conn), before);
    assert_eq!(bop_tests::journal_mode(&conn), "wal");
    assert_integrity(&conn);

    // The data is still there for another connection and after reopening.
    let other = open(&store);
    assert_eq!(digest(&other), before);
    close(other);
    conn.execute("INSERT INTO t VALUES (100000, x'01020304')", [])
        .unwrap();
    close(conn);
    let conn = open(&store);
    let (n, s, _) = digest(&conn);
    assert_eq!((n, s), (before.0 + 1, before.1 + 100_000));
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    assert!(
        pages <= pages_after + 1,
        "page_count after reopen {pages} (after VACUUM {pages_after})"
    );
    assert_integrity(&conn);
    close(conn);
    bop_tests::assert_store_layout(&store);
}
