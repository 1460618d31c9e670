//! Data survives close and reopen, over several cycles, with and without
//! checkpoints in between, and with several connections in the process.

mod common;
use bop_libsql::Value;
use common::{checkpoint, conn};

#[test]
fn reopen_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let mut expect = 0i64;
    for round in 0..6i64 {
        let c = conn(&path);
        if round == 0 {
            c.execute_batch("CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT)")
                .unwrap();
            // Keep the WAL between rounds: no automatic checkpoints.
            c.execute_batch("PRAGMA wal_autocheckpoint=0").unwrap();
        }
        assert_eq!(
            c.query_i64("SELECT count(*) FROM t").unwrap(),
            expect,
            "round {round}"
        );
        let other = conn(&path);
        for i in 0..50 {
            let id = round * 1000 + i;
            c.execute(
                "INSERT INTO t VALUES (?, ?)",
                &[Value::Integer(id), Value::from("v")],
            )
            .unwrap();
        }
        expect += 50;
        assert_eq!(other.query_i64("SELECT count(*) FROM t").unwrap(), expect);
        if round % 2 == 1 {
            checkpoint(&c, "TRUNCATE");
        }
        c.execute_batch("UPDATE t SET b = b || 'x' WHERE a % 7 = 0")
            .unwrap();
        drop(other);
        drop(c);
    }
    let c = conn(&path);
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), expect);
    assert_eq!(
        c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
        Some("ok")
    );
    assert_eq!(
        c.query_i64("SELECT count(*) FROM t WHERE b = 'v' || substr('xxxxxx', 1, 6 - a / 1000)")
            .unwrap(),
        c.query_i64("SELECT count(*) FROM t WHERE a % 7 = 0")
            .unwrap()
    );
    let verify = c.query_string("PRAGMA bop_verify").unwrap().unwrap();
    assert!(verify.starts_with("ok"), "{verify}");
}
