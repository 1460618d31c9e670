//! Basic SQL through libSQL on bop: DDL, DML, transactions, rollback, and
//! the store's layout (a bop store directory, no SQLite files).

mod common;
use bop_libsql::{open, OpenFlags, Value};
use common::stat;

#[test]
fn basic_sql() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let c = open(&path, OpenFlags::default()).unwrap();
    assert_eq!(
        c.query_string("PRAGMA journal_mode").unwrap().as_deref(),
        Some("wal")
    );
    c.execute_batch("CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT)")
        .unwrap();
    for i in 0..100 {
        c.execute(
            "INSERT INTO t VALUES (?, ?)",
            &[Value::Integer(i), Value::from("x")],
        )
        .unwrap();
    }
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 100);

    c.execute_batch("BEGIN; INSERT INTO t VALUES (1000, 'y'); COMMIT;")
        .unwrap();
    c.execute_batch("BEGIN; DELETE FROM t; ROLLBACK;").unwrap();
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 101);

    let rows = c
        .query(
            "SELECT a, b FROM t WHERE a >= ? ORDER BY a",
            &[Value::Integer(99)],
        )
        .unwrap();
    assert_eq!(
        rows,
        vec![
            vec![Value::Integer(99), Value::from("x")],
            vec![Value::Integer(1000), Value::from("y")]
        ]
    );
    // A constraint error is an error, and the database goes on.
    assert!(c.execute("INSERT INTO t VALUES (1, 'dup')", &[]).is_err());
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 101);
    assert_eq!(
        c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
        Some("ok")
    );
    // The engine's pragmas reach the store through the bop VFS.
    let stats = c.query_string("PRAGMA bop_stats").unwrap().unwrap();
    assert!(stats.contains("records="), "{stats}");
    // bop stores are always in WAL mode (refused by the bop VFS).
    let e = c.execute_batch("PRAGMA journal_mode=DELETE").unwrap_err();
    assert!(e.to_string().contains("always use WAL"), "{e}");
    // Under synchronous=FULL a commit returns once its record in the
    // record log is durable: the durable watermark covers the last record.
    c.execute_batch("PRAGMA synchronous=FULL").unwrap();
    let syncs = stat(&c, "log_syncs");
    c.execute("INSERT INTO t VALUES (2000, 'durable')", &[])
        .unwrap();
    assert_eq!(stat(&c, "durable_lsn"), stat(&c, "next_lsn") - 1);
    assert!(stat(&c, "log_syncs") > syncs);
    drop(c);

    // A bop store: a directory with the manifest, the record log's
    // segments (in `wal/`, the name on disk), chunks.
    assert!(path.is_dir());
    assert!(path.join("manifest").is_dir());
    assert!(path.join("wal").is_dir());
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let n = e.unwrap().file_name().into_string().unwrap();
        assert!(!n.ends_with("-wal") && !n.ends_with("-shm"), "{n}");
    }
}
