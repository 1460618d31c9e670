//! Savepoints and rollback, including ROLLBACK TO inside a transaction large
//! enough to spill pages to the WAL before commit.

use bop_tests::{assert_integrity, close, open, tempdir};
use rusqlite::Connection;

fn payload(i: i64, gen: i64) -> String {
    format!("{i:08}-{gen}-{}", "p".repeat(900))
}

/// (count, sum(id*gen), sum(length(v))) of table t.
fn digest(conn: &Connection) -> (i64, i64, i64) {
    conn.query_row(
        "SELECT count(*), coalesce(sum(id * gen), 0), coalesce(sum(length(v)), 0) FROM t",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

fn expected(rows: &std::collections::BTreeMap<i64, i64>) -> (i64, i64, i64) {
    (
        rows.len() as i64,
        rows.iter().map(|(i, g)| i * g).sum(),
        rows.iter().map(|(i, g)| payload(*i, *g).len() as i64).sum(),
    )
}

#[test]
fn nested_savepoints() {
    let dir = tempdir();
    let store = dir.path().join("sp.db");
    let conn = open(&store);
    conn.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, gen INTEGER, v TEXT);
         SAVEPOINT a;
         INSERT INTO t VALUES (1, 1, 'one');
         SAVEPOINT b;
         INSERT INTO t VALUES (2, 1, 'two');
         SAVEPOINT c;
         INSERT INTO t VALUES (3, 1, 'three');
         ROLLBACK TO b;
         INSERT INTO t VALUES (4, 1, 'four');
         RELEASE b;
         SAVEPOINT d;
         UPDATE t SET gen = 9;
         ROLLBACK TO d;
         RELEASE a;",
    )
    .unwrap();
    let ids: Vec<(i64, i64)> = conn
        .prepare("SELECT id, gen FROM t ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(ids, [(1, 1), (4, 1)]);

    // A whole transaction rolled back leaves nothing behind.
    conn.execute_batch("BEGIN; DELETE FROM t; INSERT INTO t VALUES (7, 7, 'x'); ROLLBACK;")
        .unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
    close(conn);
    let conn = open(&store);
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
    assert_integrity(&conn);
    close(conn);
}

#[test]
fn rollback_to_inside_spilling_transaction() {
    let dir = tempdir();
    let store = dir.path().join("spill.db");
    let conn = open(&store);
    // A tiny page cache forces SQLite to spill dirty pages into the WAL
    // long before COMMIT.
    conn.execute_batch(
        "PRAGMA cache_size=10; CREATE TABLE t(id INTEGER PRIMARY KEY, gen INTEGER, v TEXT);",
    )
    .unwrap();
    let mut rows = std::collections::BTreeMap::new();
    {
        let mut ins = conn
            .prepare("INSERT INTO t(id, gen, v) VALUES (?1, ?2, ?3)")
            .unwrap();
        conn.execute_batch("BEGIN").unwrap();
        for i in 0..2000i64 {
            ins.execute(rusqlite::params![i, 1, payload(i, 1)]).unwrap();
            rows.insert(i, 1);
        }
        conn.execute_batch("COMMIT").unwrap();
        assert_eq!(digest(&conn), expected(&rows));

        // Large transaction (~5 MB, far over the 10-page cache).
        conn.execute_batch("BEGIN").unwrap();
        for i in 2000..6000i64 {
            ins.execute(rusqlite::params![i, 2, payload(i, 2)]).unwrap();
            rows.insert(i, 2);
        }
        conn.execute_batch("SAVEPOINT s").unwrap();
        let saved = rows.clone();
        // Changes after the savepoint: inserts, updates of old and new rows,
        // deletes. All undone by ROLLBACK TO.
        for i in 6000..9000i64 {
            ins.execute(rusqlite::params![i, 3, payload(i, 3)]).unwrap();
        }
        conn.execute(
            "UPDATE t SET gen = 4, v = printf('%08d-4-', id) || substr(v, 12) WHERE id % 3 = 0",
            [],
        )
        .unwrap();
        conn.execute("DELETE FROM t WHERE id % 7 = 0", []).unwrap();
        assert_ne!(digest(&conn), expected(&saved));
        conn.execute_batch("ROLLBACK TO s").unwrap();
        assert_eq!(digest(&conn), expected(&saved), "after ROLLBACK TO");
        // More work after the rollback, then commit.
        for i in 6000..6500i64 {
            ins.execute(rusqlite::params![i, 5, payload(i, 5)]).unwrap();
            rows.insert(i, 5);
        }
        conn.execute("DELETE FROM t WHERE id % 11 = 0", []).unwrap();
        rows.retain(|i, _| i % 11 != 0);
        conn.execute_batch("RELEASE s; COMMIT").unwrap();
        assert_eq!(digest(&conn), expected(&rows), "after COMMIT");

        // A spilling transaction rolled back completely.
        conn.execute_batch("BEGIN").unwrap();
        for i in 10_000..14_000i64 {
            ins.execute(rusqlite::params![i, 6, payload(i, 6)]).unwrap();
        }
        conn.execute("UPDATE t SET gen = 6", []).unwrap();
        conn.execute_batch("ROLLBACK").unwrap();
        assert_eq!(digest(&conn), expected(&rows), "after ROLLBACK");
    }
    // Spot-check contents.
    for (i, g) in rows.iter().step_by(97) {
        let v: String = conn
            .query_row("SELECT v FROM t WHERE id = ?1 AND gen = ?2", [i, g], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(v, payload(*i, *g));
    }
    assert_integrity(&conn);
    let other = open(&store);
    assert_eq!(digest(&other), expected(&rows), "another connection");
    close(other);
    close(conn);

    let conn = open(&store);
    assert_eq!(digest(&conn), expected(&rows), "after reopen");
    assert_integrity(&conn);
    close(conn);
}
