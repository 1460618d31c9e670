//! Through libSQL, as through SQLite: a new bop database is empty until its
//! first write, so `PRAGMA page_size` and `auto_vacuum` before the first
//! table take effect and `VACUUM INTO` a bop path works; the database is
//! in WAL mode (bop's virtual WAL) from its first write on.

mod common;
use bop_libsql::{Connection, Value};
use common::conn;

fn fill(c: &Connection, rows: i64) {
    c.execute_batch(&format!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows})
         INSERT INTO t SELECT x, zeroblob(700) FROM c;"
    ))
    .unwrap();
}

fn integrity_ok(c: &Connection) {
    assert_eq!(
        c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
        Some("ok")
    );
}

fn journal_mode(c: &Connection) -> String {
    c.query_string("PRAGMA journal_mode").unwrap().unwrap()
}

#[test]
fn page_size_and_auto_vacuum_before_the_first_table() {
    let dir = tempfile::tempdir().unwrap();
    for (ps, av) in [(8192i64, "full"), (65536, "incremental"), (512, "none")] {
        let path = dir.path().join(format!("ps{ps}.db"));
        let c = conn(&path);
        assert_eq!(c.query_i64("PRAGMA page_count").unwrap(), 0);
        assert_eq!(journal_mode(&c), "wal");
        c.execute_batch(&format!(
            "PRAGMA page_size={ps}; PRAGMA auto_vacuum={av};
             CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);"
        ))
        .unwrap();
        fill(&c, 300);
        let n_av = match av {
            "full" => 1,
            "incremental" => 2,
            _ => 0,
        };
        assert_eq!(c.query_i64("PRAGMA page_size").unwrap(), ps);
        assert_eq!(c.query_i64("PRAGMA auto_vacuum").unwrap(), n_av);
        assert_eq!(journal_mode(&c), "wal");
        let other = conn(&path);
        assert_eq!(other.query_i64("SELECT count(*) FROM t").unwrap(), 300);
        other
            .execute("INSERT INTO t(v) VALUES (?)", &[Value::Integer(1)])
            .unwrap();
        drop(other);
        integrity_ok(&c);
        drop(c);
        let c = conn(&path);
        assert_eq!(c.query_i64("PRAGMA page_size").unwrap(), ps, "reopened");
        assert_eq!(c.query_i64("PRAGMA auto_vacuum").unwrap(), n_av);
        assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 301);
        integrity_ok(&c);
        let verify = c.query_string("PRAGMA bop_verify").unwrap().unwrap();
        assert!(verify.starts_with("ok"), "{verify}");
    }
}

#[test]
fn vacuum_into_a_bop_path() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    let c = conn(&src);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        .unwrap();
    fill(&c, 200);
    let copy = dir.path().join("copy.db");
    let target = format!("file:{}?vfs=bop", copy.display());
    c.execute("VACUUM INTO ?", &[Value::from(target.as_str())])
        .expect("VACUUM INTO a new bop path");
    let err = c
        .execute("VACUUM INTO ?", &[Value::from(target.as_str())])
        .expect_err("VACUUM INTO an existing database");
    assert!(
        err.to_string().contains("output file already exists"),
        "{err}"
    );
    drop(c);
    let c = conn(&copy);
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 200);
    assert_eq!(journal_mode(&c), "wal");
    integrity_ok(&c);
    c.execute("INSERT INTO t(v) VALUES (?)", &[Value::Integer(2)])
        .unwrap();
    drop(c);
    let c = conn(&copy);
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 201);
}
