//! A WAL restart costs one manifest commit, one chunk file and one sync of
//! the chunks directory: under frequent restarts (`wal_autocheckpoint=10`,
//! small transactions) each checkpoint that restarts the WAL publishes its
//! pages and moves the database's base in the record log in one manifest
//! transaction (it took a second commit for the base before), writes the
//! pages compaction moves into the same chunk file as the checkpoint's (a
//! second chunk file and sync before), and leaves the sync that makes its
//! unlinks durable to the next publish's sync of the directory (a second
//! directory sync per publish before).

mod common;
use bop_libsql::Value;

#[test]
fn a_wal_restart_is_one_commit_one_chunk_file_one_directory_sync() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let c = common::conn(&path);
    c.execute_batch(
        "PRAGMA cache_size=10; PRAGMA wal_autocheckpoint=10; PRAGMA synchronous=NORMAL;
         CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT);",
    )
    .unwrap();
    c.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO t SELECT i, i, printf('row-%09d', i) FROM n",
        &[],
    )
    .unwrap();
    let restarts0 = common::stat(&c, "generations");
    let commits0 = common::stat(&c, "manifest_commits");
    let chunks0 = common::stat(&c, "chunks_written");
    let dir_syncs0 = common::stat(&c, "chunk_dir_syncs");
    let mut up = c.prepare("UPDATE t SET a = a + 1 WHERE id = ?").unwrap();
    const TXNS: i64 = 300;
    for i in 0..TXNS {
        c.execute_batch("BEGIN").unwrap();
        for k in 0..3 {
            up.execute(&[Value::Integer((i * 37 + k * 613) % 2000 + 1)])
                .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
    }
    let restarts = common::stat(&c, "generations") - restarts0;
    let commits = common::stat(&c, "manifest_commits") - commits0;
    let chunks = common::stat(&c, "chunks_written") - chunks0;
    let dir_syncs = common::stat(&c, "chunk_dir_syncs") - dir_syncs0;
    // Compaction did run (it is what wrote a second chunk file).
    assert!(common::stat(&c, "chunks_deleted") >= restarts / 2);
    assert!(
        restarts >= 50,
        "{restarts} WAL restarts in {TXNS} transactions"
    );
    // A few more for the record log's new segments and the background
    // checkpointer's own work.
    assert!(
        commits <= restarts + restarts / 10 + 3,
        "{commits} manifest commits for {restarts} WAL restarts"
    );
    assert!(
        chunks <= restarts + restarts / 10 + 3,
        "{chunks} chunk files written for {restarts} WAL restarts"
    );
    assert!(
        dir_syncs <= restarts + restarts / 10 + 3,
        "{dir_syncs} syncs of the chunks directory for {restarts} WAL restarts"
    );
    assert_eq!(
        c.query_i64("SELECT sum(a) - 2001000 FROM t").unwrap(),
        3 * TXNS
    );
    drop(up);
    drop(c);
    // Everything is there after a reopen.
    let c = common::conn(&path);
    assert_eq!(
        c.query_i64("SELECT sum(a) - 2001000 FROM t").unwrap(),
        3 * TXNS
    );
    assert_eq!(
        c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
        Some("ok")
    );
}
