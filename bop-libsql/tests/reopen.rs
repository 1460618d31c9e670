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

/// A named database of a store (`<store>/<name>`) and ATTACH of another
/// store: each gets its own virtual WAL; both survive a reopen.
#[test]
fn named_database_and_attach() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("s.db");
    let c = conn(&main);
    c.execute_batch("CREATE TABLE m(a); INSERT INTO m VALUES (1);")
        .unwrap();
    let users = conn(&main.join("users"));
    users
        .execute_batch("CREATE TABLE u(name); INSERT INTO u VALUES ('ada'), ('bob');")
        .unwrap();
    let other = dir.path().join("other.db");
    c.execute(
        "ATTACH ? AS o",
        &[Value::Text(format!("file:{}?vfs=bop", other.display()))],
    )
    .unwrap();
    c.execute_batch("CREATE TABLE o.x(v); INSERT INTO o.x VALUES (42); INSERT INTO m VALUES (2);")
        .unwrap();
    drop(users);
    drop(c);
    let c = conn(&main);
    assert_eq!(c.query_i64("SELECT count(*) FROM m").unwrap(), 2);
    let users = conn(&main.join("users"));
    assert_eq!(users.query_i64("SELECT count(*) FROM u").unwrap(), 2);
    let o = conn(&other);
    assert_eq!(o.query_i64("SELECT v FROM x").unwrap(), 42);
}
