//! A new bop database looks empty to SQLite (size 0) until its first
//! write, as a new SQLite file does: `PRAGMA page_size` and `auto_vacuum`
//! before the first table take effect, `VACUUM INTO` a bop path works, and
//! the database is in WAL mode from its first write on. The page size
//! SQLite chose is the store's (the manifest's) from then on.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bop_tests::{
    assert_integrity, close, journal_mode, libbop, open, open_with, tempdir, try_open_with, uri,
    wait_for,
};
use rusqlite::Connection;

fn int(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn fill(conn: &Connection, rows: i64) {
    conn.execute_batch(&format!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows})
         INSERT INTO t SELECT x, zeroblob(700) FROM c;"
    ))
    .unwrap();
}

/// The WAL image's size in bytes (`PRAGMA bop_stats`): commits in WAL
/// mode grow it.
fn wal_image_bytes(conn: &Connection) -> u64 {
    let s: String = conn
        .query_row("PRAGMA bop_stats", [], |r| r.get(0))
        .unwrap();
    s.split_whitespace()
        .find_map(|kv| kv.strip_prefix("wal_image_bytes="))
        .unwrap_or_else(|| panic!("no wal_image_bytes in {s}"))
        .parse()
        .unwrap()
}

/// The store's page size is `ps` in its manifest: opening with
/// `page_size=ps` works and another page size is refused.
fn assert_store_page_size(store: &Path, ps: i64) {
    let conn = open_with(store, &[("page_size", &ps.to_string())]);
    assert_eq!(int(&conn, "PRAGMA page_size"), ps);
    close(conn);
    let other = if ps == 4096 { "8192" } else { "4096" };
    assert!(
        try_open_with(store, &[("page_size", other)])
            .and_then(|c| c.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0)))
            .is_err(),
        "page_size={other} must be refused: the store's page size is {ps}"
    );
}

#[test]
fn page_size_before_the_first_table_is_the_databases() {
    let dir = tempdir();
    for ps in [512i64, 8192, 65536] {
        let store = dir.path().join(format!("ps{ps}.db"));
        let conn = open(&store);
        assert_eq!(
            int(&conn, "PRAGMA page_count"),
            0,
            "a new database is empty"
        );
        assert_eq!(journal_mode(&conn), "wal");
        conn.execute_batch(&format!(
            "PRAGMA page_size={ps}; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);"
        ))
        .unwrap();
        assert_eq!(int(&conn, "PRAGMA page_size"), ps);
        assert_eq!(journal_mode(&conn), "wal", "WAL mode after the first write");
        assert_eq!(
            wal_image_bytes(&conn),
            0,
            "the first write is not in the WAL"
        );
        fill(&conn, 400);
        assert!(
            wal_image_bytes(&conn) > 0,
            "the next commits are in the WAL"
        );
        assert_integrity(&conn);
        close(conn);
        let conn = open(&store);
        assert_eq!(int(&conn, "PRAGMA page_size"), ps, "reopened");
        assert_eq!(journal_mode(&conn), "wal");
        assert_eq!(int(&conn, "SELECT count(*) FROM t"), 400);
        assert_integrity(&conn);
        close(conn);
        assert_store_page_size(&store, ps);
    }
}

#[test]
fn an_existing_database_keeps_its_page_size() {
    let dir = tempdir();
    let store = dir.path().join("keep.db");
    let conn = open(&store);
    conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        .unwrap();
    conn.execute_batch("PRAGMA page_size=16384").unwrap();
    fill(&conn, 50);
    assert_eq!(int(&conn, "PRAGMA page_size"), 4096);
    close(conn);
    assert_store_page_size(&store, 4096);
    // The page_size parameter of a new store still fixes its page size.
    let fixed = dir.path().join("fixed.db");
    let conn = open_with(&fixed, &[("page_size", "8192")]);
    assert_eq!(int(&conn, "PRAGMA page_size"), 8192);
    conn.execute_batch("PRAGMA page_size=1024; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        .unwrap();
    assert_eq!(int(&conn, "PRAGMA page_size"), 8192);
    close(conn);
    assert_store_page_size(&fixed, 8192);
}

#[test]
fn auto_vacuum_before_the_first_table_is_the_databases() {
    let dir = tempdir();
    for (mode, n) in [("full", 1i64), ("incremental", 2)] {
        let store = dir.path().join(format!("{mode}.db"));
        let conn = open(&store);
        conn.execute_batch(&format!(
            "PRAGMA auto_vacuum={mode}; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);"
        ))
        .unwrap();
        assert_eq!(int(&conn, "PRAGMA auto_vacuum"), n, "auto_vacuum={mode}");
        fill(&conn, 500);
        let before = int(&conn, "PRAGMA page_count");
        conn.execute_batch("DELETE FROM t WHERE id > 50").unwrap();
        if mode == "incremental" {
            assert!(int(&conn, "PRAGMA freelist_count") > 0);
            // One page per step: step to the end.
            let mut st = conn.prepare("PRAGMA incremental_vacuum").unwrap();
            let mut rows = st.query([]).unwrap();
            while rows.next().unwrap().is_some() {}
        }
        assert_eq!(int(&conn, "PRAGMA freelist_count"), 0, "{mode}");
        assert!(
            int(&conn, "PRAGMA page_count") < before / 2,
            "{mode}: the file shrank"
        );
        close(conn);
        let conn = open(&store);
        assert_eq!(int(&conn, "PRAGMA auto_vacuum"), n, "reopened, {mode}");
        assert_eq!(int(&conn, "SELECT count(*) FROM t"), 50);
        assert_integrity(&conn);
        close(conn);
    }
}

#[test]
fn vacuum_into_a_bop_path() {
    let dir = tempdir();
    // From a bop database.
    let src = dir.path().join("src.db");
    let conn = open(&src);
    conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        .unwrap();
    fill(&conn, 300);
    let copy = dir.path().join("copy.db");
    conn.execute("VACUUM INTO ?1", [uri(&copy, &[])])
        .expect("VACUUM INTO a new bop path");
    // Into an existing, non-empty database: refused, as SQLite refuses an
    // existing file.
    let err = conn
        .execute("VACUUM INTO ?1", [uri(&copy, &[])])
        .expect_err("VACUUM INTO an existing database");
    assert!(
        err.to_string().contains("output file already exists"),
        "{err}"
    );
    // With another page size, which VACUUM INTO honours.
    let big = dir.path().join("big.db");
    conn.execute_batch("PRAGMA page_size=16384").unwrap();
    conn.execute("VACUUM INTO ?1", [uri(&big, &[])]).unwrap();
    close(conn);
    for (path, ps) in [(&copy, 4096i64), (&big, 16384)] {
        let c = open(path);
        assert_eq!(int(&c, "SELECT count(*) FROM t"), 300);
        assert_eq!(int(&c, "PRAGMA page_size"), ps);
        assert_eq!(journal_mode(&c), "wal");
        assert_integrity(&c);
        c.execute("INSERT INTO t(v) VALUES (x'01')", []).unwrap();
        close(c);
        assert_store_page_size(path, ps);
    }
    // From a plain SQLite file.
    let plain = dir.path().join("plain.sqlite");
    let p = Connection::open(&plain).unwrap();
    p.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        .unwrap();
    fill(&p, 200);
    bop_tests::register();
    let from_plain = dir.path().join("from_plain.db");
    p.execute("VACUUM INTO ?1", [uri(&from_plain, &[])])
        .expect("VACUUM INTO a bop path from a plain file");
    drop(p);
    let c = open(&from_plain);
    assert_eq!(int(&c, "SELECT count(*) FROM t"), 200);
    assert_eq!(journal_mode(&c), "wal");
    assert_integrity(&c);
    close(c);
}

#[test]
fn two_connections_open_a_new_database() {
    let dir = tempdir();
    let store = dir.path().join("two.db");
    let a = open(&store);
    let b = open(&store);
    assert_eq!(int(&b, "SELECT count(*) FROM sqlite_schema"), 0);
    a.execute_batch("PRAGMA page_size=8192; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);")
        .unwrap();
    fill(&a, 100);
    assert_eq!(int(&b, "SELECT count(*) FROM t"), 100);
    assert_eq!(int(&b, "PRAGMA page_size"), 8192);
    assert_eq!(journal_mode(&b), "wal");
    b.execute("INSERT INTO t(v) VALUES (x'02')", []).unwrap();
    assert_eq!(int(&a, "SELECT count(*) FROM t"), 101);
    // A reader holds a snapshot while the other writes: WAL mode.
    b.execute_batch("BEGIN; SELECT count(*) FROM t;").unwrap();
    a.execute("INSERT INTO t(v) VALUES (x'03')", []).unwrap();
    assert_eq!(int(&b, "SELECT count(*) FROM t"), 101);
    b.execute_batch("COMMIT").unwrap();
    assert_eq!(int(&b, "SELECT count(*) FROM t"), 102);
    close(a);
    close(b);

    // Two threads race to create the same new database.
    let race = dir.path().join("race.db");
    let threads: Vec<_> = (0..2)
        .map(|i| {
            let race = race.clone();
            std::thread::spawn(move || {
                let c = open(&race);
                c.busy_timeout(Duration::from_secs(10)).unwrap();
                c.execute_batch("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v)")
                    .unwrap();
                for k in 0..50 {
                    c.execute("INSERT INTO t(v) VALUES (?1)", [i * 1000 + k])
                        .unwrap();
                }
                assert_eq!(journal_mode(&c), "wal");
                close(c);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let c = open(&race);
    assert_eq!(int(&c, "SELECT count(*) FROM t"), 100);
    assert_integrity(&c);
    close(c);
}

/// Runs the sqlite3 shell with bop on `store`, feeding it `script`; waits
/// for the line `ready`, then kills it with SIGKILL.
fn shell_killed_after(store: &Path, script: &str) {
    let lib = libbop();
    let lib = lib.to_str().unwrap().strip_suffix(".so").unwrap();
    let mut child = Command::new("sqlite3")
        .args([
            "-bail",
            "-cmd",
            &format!(".load {lib}"),
            "-cmd",
            &format!(".open {}", uri(store, &[])),
            ":memory:",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning sqlite3");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(script.as_bytes()).unwrap();
    stdin.write_all(b"SELECT 'ready';\n").unwrap();
    stdin.flush().unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let ready = wait_for(Duration::from_secs(60), || {
        rx.recv_timeout(Duration::from_millis(100))
            .ok()
            .filter(|l| l == "ready")
    });
    assert!(ready.is_some(), "the shell never printed ready");
    bop_tests::kill9(&mut child);
    drop(stdin);
}

#[test]
fn a_crash_in_the_first_transaction_leaves_an_empty_database() {
    let dir = tempdir();
    let store = dir.path().join("cut.db");
    // The first transaction spills pages to the database file (a small
    // cache) and is killed before its commit.
    shell_killed_after(
        &store,
        "PRAGMA cache_size=5; BEGIN; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000)
         INSERT INTO t SELECT x, zeroblob(700) FROM c;\n",
    );
    let conn = open(&store);
    assert_eq!(int(&conn, "PRAGMA page_count"), 0, "nothing was committed");
    assert_eq!(int(&conn, "SELECT count(*) FROM sqlite_schema"), 0);
    conn.execute_batch("PRAGMA page_size=2048; CREATE TABLE u(x); INSERT INTO u VALUES (1);")
        .unwrap();
    assert_eq!(int(&conn, "PRAGMA page_size"), 2048);
    assert_integrity(&conn);
    close(conn);
}

#[test]
fn a_crash_after_the_first_commit_without_sync_is_consistent() {
    let dir = tempdir();
    let store = dir.path().join("nosync.db");
    // The first transaction commits without syncing the database file
    // (synchronous=OFF); the next ones, in WAL mode, are durable.
    shell_killed_after(
        &store,
        "PRAGMA synchronous=OFF; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
         INSERT INTO t(v) VALUES (1);
         PRAGMA synchronous=FULL; INSERT INTO t(v) VALUES (2);\n",
    );
    let conn = open(&store);
    assert_integrity(&conn);
    let rows: Vec<i64> = conn
        .prepare("SELECT v FROM t ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows, [1, 2], "the durable commit and the one under it");
    close(conn);
}

#[test]
fn a_rolled_back_first_transaction_leaves_the_page_size_open() {
    let dir = tempdir();
    let store = dir.path().join("undo.db");
    let a = open(&store);
    let b = open(&store);
    // `a`'s first transaction spills 8 KiB pages to the database file,
    // more than a chunk's worth (16 MiB), then rolls back: the database is
    // empty again. With synchronous=OFF the rollback does not sync the
    // file, so the undone chunk is still there when `b` writes.
    a.execute_batch(
        "PRAGMA page_size=8192; PRAGMA cache_size=5; PRAGMA synchronous=OFF; BEGIN;
         CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000)
         INSERT INTO big SELECT x, zeroblob(7000) FROM c;
         ROLLBACK;",
    )
    .unwrap();
    assert_eq!(int(&a, "PRAGMA page_count"), 0);
    // `b` creates the database with SQLite's default page size.
    b.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        .unwrap();
    fill(&b, 300);
    assert_eq!(int(&b, "PRAGMA page_size"), 4096);
    assert_eq!(int(&a, "SELECT count(*) FROM t"), 300);
    assert_integrity(&a);
    close(a);
    close(b);
    let c = open(&store);
    assert_eq!(int(&c, "SELECT count(*) FROM t"), 300);
    assert_integrity(&c);
    close(c);
    assert_store_page_size(&store, 4096);
}

/// SQLite's online backup into a new bop database takes the source's page
/// size, as into a new file: the backup may change the page size of a
/// destination that is not in WAL mode yet (with page 1 written at
/// creation, bop's new database was a 4096-byte WAL database and the
/// backup failed with SQLITE_READONLY; found by SQLite's own test suite:
/// recover1, recovercorrupt2, the shell's `.restore`).
#[test]
fn a_backup_into_a_new_database_takes_the_sources_page_size() {
    let dir = tempdir();
    let store = dir.path().join("copy.db");
    let src = Connection::open_in_memory().unwrap();
    src.execute_batch("PRAGMA page_size=1024; CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB);")
        .unwrap();
    fill(&src, 300);
    let mut dst = open(&store);
    {
        let backup = rusqlite::backup::Backup::new(&src, &mut dst).unwrap();
        backup
            .run_to_completion(64, Duration::from_millis(0), None)
            .unwrap();
    }
    assert_eq!(int(&dst, "PRAGMA page_size"), 1024);
    assert_eq!(int(&dst, "SELECT count(*) FROM t"), 300);
    assert_integrity(&dst);
    // The backup was the first write; the next commit is in WAL mode.
    dst.execute("INSERT INTO t VALUES (1000, x'01')", [])
        .unwrap();
    assert!(
        wal_image_bytes(&dst) > 0,
        "the commit after the backup is a WAL commit"
    );
    close(dst);
    let again = open(&store);
    assert_eq!(int(&again, "SELECT count(*) FROM t"), 301);
    assert_eq!(int(&again, "PRAGMA page_size"), 1024);
    assert_integrity(&again);
    close(again);
    assert_store_page_size(&store, 1024);
}
