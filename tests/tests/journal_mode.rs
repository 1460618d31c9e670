//! New databases are in WAL mode; other journal modes are refused.

use bop_tests::{assert_integrity, close, journal_mode, open, tempdir};

#[test]
fn journal_mode_is_wal_and_stays_wal() {
    let dir = tempdir();
    let store = dir.path().join("jm.db");
    let conn = open(&store);
    // Before anything is written, and after.
    assert_eq!(journal_mode(&conn), "wal");
    conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    assert_eq!(journal_mode(&conn), "wal");
    // Asking for WAL is fine.
    let m: String = conn
        .query_row("PRAGMA journal_mode=wal", [], |r| r.get(0))
        .unwrap();
    assert_eq!(m, "wal");
    for mode in ["delete", "DELETE", "truncate", "persist", "memory", "off"] {
        let err = conn
            .query_row(&format!("PRAGMA journal_mode={mode}"), [], |r| {
                r.get::<_, String>(0)
            })
            .expect_err(&format!("PRAGMA journal_mode={mode} must fail"));
        let msg = err.to_string().to_lowercase();
        assert!(
            msg.contains("bop") || msg.contains("wal"),
            "journal_mode={mode}: the error should mention bop or WAL: {err}"
        );
        assert_eq!(journal_mode(&conn), "wal", "after refusing {mode}");
    }
    // Also for the schema-qualified form.
    assert!(conn
        .query_row("PRAGMA main.journal_mode=delete", [], |r| r
            .get::<_, String>(0))
        .is_err());
    // Still usable.
    conn.execute("INSERT INTO t VALUES (2)", []).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
    close(conn);
    let conn = open(&store);
    assert_eq!(journal_mode(&conn), "wal");
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
    assert_integrity(&conn);
    close(conn);
    bop_tests::assert_store_layout(&store);
}
