//! A WAL restart through the VFS costs no manifest commit while the old
//! generation can be retained (`bop-storage/src/wal_image/retained.rs`):
//! under frequent restarts (`wal_autocheckpoint=10`, small transactions)
//! the checkpointed pages stay pending and the old generations' records in
//! the log until they reach `publish_defer_log_bytes_max` (4 MiB); then one
//! manifest transaction publishes them and moves the base past them all.
//! (Before, each restart published: two manifest commits, then one.) A
//! crash with generations retained loses nothing committed.

use bop_tests::{assert_integrity, close, open_with, stat, tempdir};

#[test]
fn a_wal_restart_retains_the_old_generation_and_a_crash_loses_nothing() {
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
    const TXNS: i64 = 600;
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
    let retained = stat(&c, "generations_retained");
    assert!(
        restarts >= 50,
        "{restarts} WAL restarts in {TXNS} transactions"
    );
    assert!(
        retained + commits >= restarts,
        "{retained} generations retained, {commits} manifest commits, {restarts} restarts"
    );
    // A publish per 4 MiB of records; a few more commits for new log
    // segments and chunk-id reservations.
    let publishes_max = stat(&c, "record_bytes") / (4 << 20) + 3;
    assert!(
        commits <= publishes_max,
        "{commits} manifest commits for {restarts} WAL restarts"
    );
    let retained_bytes = stat(&c, "retained_bytes");
    assert!(
        retained_bytes > 0 && retained_bytes <= 4 << 20,
        "{retained_bytes}"
    );
    assert!(
        commits >= 1,
        "the records passed the bound: one publish at least"
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
