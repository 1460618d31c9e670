//! The `page_size` URI parameter: honoured for new stores, bad values
//! rejected.

use bop_tests::{assert_integrity, close, open, open_with, tempdir, try_open_with};

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
        match result {
            Ok(ps) => panic!("page_size={bad:?} was accepted (PRAGMA page_size = {ps})"),
            Err(e) => println!(
                "page_size={bad:?} rejected: {e} ({:?})",
                bop_rusqlite::last_error()
            ),
        }
    }
}

#[test]
fn existing_store_keeps_its_page_size() {
    let dir = tempdir();
    let store = dir.path().join("keep.db");
    let conn = open_with(&store, &[("page_size", "8192")]);
    conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    close(conn);
    // Asking for another page size for an existing store must never yield a
    // database read with the wrong page size: either the open is refused or
    // the store's own page size wins.
    match try_open_with(&store, &[("page_size", "4096")]).and_then(|c| {
        c.query_row(
            "SELECT (SELECT page_size FROM pragma_page_size), x FROM t",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        )
    }) {
        Ok(got) => assert_eq!(got, (8192, 1)),
        Err(e) => println!("refused: {e}"),
    }
    let conn = open(&store);
    assert_eq!(page_size(&conn), 8192);
    assert_integrity(&conn);
    close(conn);
}
