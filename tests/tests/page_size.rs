//! The `page_size` URI parameter: honoured for new stores, bad values
//! rejected with a message naming them, another page size than an existing
//! store's refused at open.

use bop_tests::{assert_integrity, close, code, open, open_with, tempdir, try_open_with};
use rusqlite::ErrorCode;

fn page_size(conn: &rusqlite::Connection) -> i64 {
    conn.query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn default_page_size_is_4096() {
    let dir = tempdir();
    let store = dir.path().join("default.db");
    let conn = open(&store);
    conn.execute_batch("CREATE TABLE t(x)").unwrap();
    assert_eq!(page_size(&conn), 4096);
    close(conn);
}

#[test]
fn page_size_parameter_is_honoured() {
    let dir = tempdir();
    for ps in [512i64, 1024, 8192, 16384, 65536] {
        let store = dir.path().join(format!("ps{ps}.db"));
        let p = ps.to_string();
        let conn = open_with(&store, &[("page_size", &p)]);
        assert_eq!(page_size(&conn), ps, "new store with page_size={ps}");
        conn.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500)
             INSERT INTO t SELECT x, randomblob(700) FROM c;",
        )
        .unwrap();
        assert_eq!(page_size(&conn), ps);
        close(conn);
        // Reopened without the parameter, the store keeps its page size.
        let conn = open(&store);
        assert_eq!(page_size(&conn), ps, "reopened store with page_size={ps}");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 500);
        assert_integrity(&conn);
        close(conn);
    }
}

#[test]
fn bad_page_sizes_are_rejected() {
    let dir = tempdir();
    for bad in [
        "3000", "abc", "", "256", "131072", "0", "-4096", "4096x", "8193",
    ] {
        let store = dir.path().join("bad.db");
        let result = try_open_with(&store, &[("page_size", bad)]).and_then(|c| {
            // SQLite opens the main file during open; if a VFS deferred the
            // check, the first read would have to fail instead.
            c.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
        });
        let e = match result {
            Ok(ps) => panic!("page_size={bad:?} was accepted (PRAGMA page_size = {ps})"),
            Err(e) => e,
        };
        let msg = bop_rusqlite::last_error().unwrap_or_default();
        assert!(
            msg.contains(&format!("page_size={bad}"))
                || msg.contains(&format!("page_size={bad:?}")),
            "page_size={bad:?}: {e}: {msg}"
        );
        assert!(!store.exists(), "page_size={bad:?}: no store is created");
    }
}

/// Opens `store` with `page_size=ps` and runs a query: the error, if any,
/// with bop's message.
fn open_and_read(store: &std::path::Path, ps: &str) -> Result<i64, (rusqlite::Error, String)> {
    try_open_with(store, &[("page_size", ps)])
        .and_then(|c| c.query_row("SELECT x FROM t", [], |r| r.get::<_, i64>(0)))
        .map_err(|e| (e, bop_rusqlite::last_error().unwrap_or_default()))
}

/// `StoreOptions::page_size` and the URI parameter: the page size of a new
/// store; an existing store "must be opened with its own page size or
/// none". Another page size is refused at open with an error naming both,
/// whether the store is closed or already open in the process; the store
/// is untouched and keeps its page size. (SQLite's own `PRAGMA page_size =
/// N` on an existing database is a no-op, as in stock SQLite.)
#[test]
fn existing_store_keeps_its_page_size() {
    let dir = tempdir();
    let store = dir.path().join("keep.db");
    let conn = open_with(&store, &[("page_size", "8192")]);
    conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    close(conn);
    let want = "page_size=4096 does not match the store's page size 8192";
    // The store closed: refused by the open.
    let (e, msg) = open_and_read(&store, "4096").expect_err("another page size must be refused");
    assert!(msg.contains(want), "{e}: {msg}");
    assert_eq!(code(&e), Some(ErrorCode::CannotOpen), "{e}: {msg}");
    // The store open in this process: refused the same way.
    let held = open(&store);
    let (e, msg) = open_and_read(&store, "4096").expect_err("refused while open too");
    assert!(msg.contains(want), "{e}: {msg}");
    assert_eq!(code(&e), Some(ErrorCode::CannotOpen), "{e}: {msg}");
    // Its own page size, or none, opens it.
    assert_eq!(open_and_read(&store, "8192").map_err(|e| e.1), Ok(1));
    // SQL cannot change it either: the pragma is a no-op on a database with
    // content (SQLite's behaviour), not an error.
    held.execute_batch("PRAGMA page_size = 4096").unwrap();
    assert_eq!(page_size(&held), 8192);
    close(held);
    let conn = open(&store);
    assert_eq!(page_size(&conn), 8192);
    assert_integrity(&conn);
    close(conn);
}
