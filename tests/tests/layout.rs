//! No plain SQLite files on disk: the URI path names a directory holding
//! only bop's own files, while connections are open and after they close.

use bop_tests::{assert_store_layout, close, open, tempdir, walk};

#[test]
fn only_bop_files_on_disk() {
    let dir = tempdir();
    let store = dir.path().join("layout.db");
    let a = open(&store);
    let b = open(&store);
    a.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
         BEGIN;
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000)
         INSERT INTO t SELECT x, randomblob(300) FROM c;
         COMMIT;",
    )
    .unwrap();
    // A transaction in progress, a reader, a checkpoint and a VACUUM: the
    // moments a plain SQLite would have -wal, -shm or -journal files.
    b.execute_batch("BEGIN; SELECT count(*) FROM t;").unwrap();
    a.execute_batch("BEGIN; UPDATE t SET v = randomblob(400) WHERE id % 2 = 0;")
        .unwrap();
    assert_top_level(dir.path());
    assert_store_layout(&store);
    a.execute_batch("COMMIT").unwrap();
    b.execute_batch("COMMIT").unwrap();
    a.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    a.execute_batch("VACUUM").unwrap();
    assert_top_level(dir.path());
    assert_store_layout(&store);
    let segs = walk(&store)
        .into_iter()
        .filter(|e| e.rel.starts_with("wal") && !e.is_dir)
        .count();
    assert!(segs >= 1, "the store has log segments while open");
    close(a);
    close(b);
    assert_top_level(dir.path());
    assert_store_layout(&store);
    let chunks = walk(&store)
        .into_iter()
        .filter(|e| e.rel.starts_with("chunks") && !e.is_dir)
        .count();
    assert!(chunks >= 1, "a cleanly closed store has page chunks");
}

/// The temporary directory holds the store directory and nothing else (no
/// `layout.db-wal`, `-shm` or `-journal`).
fn assert_top_level(dir: &std::path::Path) {
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["layout.db"], "entries next to the store");
    assert!(dir.join("layout.db").is_dir());
}
