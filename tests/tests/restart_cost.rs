//! A WAL restart through the VFS costs one manifest commit: under frequent
//! restarts (`wal_autocheckpoint=10`, small transactions), the pages of the
//! checkpoint before a restart are published, and the database's base moved
//! past the old generation's records, in one manifest transaction when the
//! new generation's first commit is sealed (the checkpoint's own sync
//! publishes nothing while the records hold its pages). It took two before
//! (publish, then the base after the new record). A crash in the middle
//! of it all loses nothing committed.

use bop_tests::{assert_integrity, close, open_with, stat, tempdir};

#[test]
fn a_wal_restart_costs_one_manifest_commit_and_a_crash_loses_nothing() {
    let dir = tempdir();
    let store = dir.path().join("restarts.bop");
    // bop's own background checkpoints off: SQLite's are counted.
    let params = [("ckpt_wal_mb", "0"), ("ckpt_age_s", "0")];
    let c = open_with(&store, &params);
    c.execute_batch(
        "PRAGMA cache_size=10; PRAGMA wal_autocheckpoint=10; PRAGMA synchronous=FULL;
         CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO t SELECT i, i, printf('row-%09d', i) FROM n;",
    )
    .unwrap();
    let restarts0 = stat(&c, "generations");
    let commits0 = stat(&c, "manifest_commits");
    const TXNS: i64 = 300;
    for i in 0..TXNS {
        c.execute_batch("BEGIN").unwrap();
        for k in 0..3 {
            c.execute(
                "UPDATE t SET a = a + 1 WHERE id = ?1",
                [(i * 37 + k * 613) % 2000 + 1],
            )
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
    }
    let restarts = stat(&c, "generations") - restarts0;
    let commits = stat(&c, "manifest_commits") - commits0;
    assert!(
        restarts >= 50,
        "{restarts} WAL restarts in {TXNS} transactions"
    );
    // A few more for new log segments and chunk-id reservations.
    assert!(
        commits <= restarts + restarts / 10 + 3,
        "{commits} manifest commits for {restarts} WAL restarts"
    );
    // The process dies here: every commit returned under FULL survives.
    assert!(bop_vfs::testing::halt(&store));
    drop(c);
    let c = open_with(&store, &params);
    let sum: i64 = c
        .query_row("SELECT sum(a) - 2001000 FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sum, 3 * TXNS);
    assert_integrity(&c);
    close(c);
}
