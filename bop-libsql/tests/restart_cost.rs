//! A WAL restart costs no manifest commit, no chunk file and no sync of
//! the chunks directory while the old generation can be retained
//! (`bop-storage/src/wal_image/retained.rs`): under frequent restarts
//! (`wal_autocheckpoint=10`, small transactions) the checkpointed pages stay
//! pending and the old generations' records stay in the log until their
//! bytes reach the bound (`publish_defer_log_bytes_max`, 4 MiB); then one
//! publish carries them all. A crash with generations retained loses
//! nothing: recovery applies them.

mod common;
use bop_libsql::Value;

#[test]
fn a_wal_restart_retains_the_old_generation_and_a_crash_loses_nothing() {
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
    let retained = common::stat(&c, "generations_retained");
    assert!(
        restarts >= 50,
        "{restarts} WAL restarts in {TXNS} transactions"
    );
    assert!(
        retained + commits >= restarts,
        "{retained} generations retained, {commits} manifest commits, {restarts} WAL restarts"
    );
    // A publish per 4 MiB of records, and a few commits for the record
    // log's new segments and chunk-id reservations.
    let publishes_max = common::stat(&c, "record_bytes") / (4 << 20) + 3;
    assert!(
        commits <= publishes_max,
        "{commits} manifest commits for {restarts} WAL restarts"
    );
    assert!(
        chunks <= publishes_max,
        "{chunks} chunk files written for {restarts} WAL restarts"
    );
    assert!(
        dir_syncs <= publishes_max,
        "{dir_syncs} syncs of the chunks directory for {restarts} WAL restarts"
    );
    assert_eq!(
        c.query_i64("SELECT sum(a) - 2001000 FROM t").unwrap(),
        3 * TXNS
    );
    drop(up);
    // The process dies with generations retained: every commit is there
    // after the reopen (recovery applies the retained generations).
    assert!(common::stat(&c, "retained_bytes") > 0);
    assert!(bop_vfs::testing::halt(&path));
    drop(c);
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
