//! A one-million-row database through libSQL on bop: loaded in one
//! transaction (a large spilling transaction), checkpointed, reopened.

mod common;
use common::{checkpoint, conn};

#[test]
fn million_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let c = conn(&path);
    c.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER, s TEXT);
         BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
         INSERT INTO t SELECT i, i * 7 % 1000, printf('row-%07d', i) FROM n;
         COMMIT;",
    )
    .unwrap();
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 1_000_000);
    let sum = c.query_i64("SELECT sum(v) FROM t").unwrap();
    assert_eq!(
        c.query_string("SELECT s FROM t WHERE id = 765432")
            .unwrap()
            .as_deref(),
        Some("row-0765432")
    );
    let (busy, log, done) = checkpoint(&c, "TRUNCATE");
    assert_eq!((busy, log, done), (0, 0, 0));
    drop(c);
    let c = conn(&path);
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 1_000_000);
    assert_eq!(c.query_i64("SELECT sum(v) FROM t").unwrap(), sum);
    assert_eq!(
        c.query_string("PRAGMA quick_check").unwrap().as_deref(),
        Some("ok")
    );
}
