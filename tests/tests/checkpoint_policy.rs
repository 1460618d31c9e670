//! bop's checkpoint policy through SQLite: with SQLite's autocheckpoint
//! off, bop still checkpoints a database in the background once its WAL
//! passes `ckpt_wal_mb` (or its oldest frame passes `ckpt_age_s`), so the
//! WAL stays short; a reader holding an old snapshot makes checkpoints
//! incomplete, which is counted and warned about instead of blocking
//! anyone; nothing is lost, and closing leaves nothing running.

use std::time::Duration;

use bop_tests::{assert_integrity, close, open_with, stat, tempdir, wait_for};
use rusqlite::Connection;

fn insert(c: &Connection, from: i64, n: i64) {
    for k in from..from + n {
        c.execute(
            "INSERT INTO t VALUES (?1, randomblob(3000))",
            rusqlite::params![k],
        )
        .unwrap();
    }
}

#[test]
fn the_wal_stays_short_without_autocheckpoint_and_readers_are_never_blocked() {
    let dir = tempdir();
    let store = dir.path().join("policy.db");
    let params = [
        ("ckpt_wal_mb", "1"),
        ("ckpt_age_s", "0"),
        ("ckpt_warn_s", "0"),
    ];
    let w = open_with(&store, &params);
    w.execute_batch("PRAGMA wal_autocheckpoint=0; CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB);")
        .unwrap();

    // Bursts of single-row commits, each taking the WAL past the 1 MiB
    // policy. A writer that commits back to back outruns a background
    // PASSIVE checkpoint (SQLite restarts its WAL only when a write
    // transaction starts with every frame checkpointed), so after each
    // burst the writer commits one row at a time, a few ms apart, until its
    // WAL restarts: the background checkpointer must get it there (SQLite
    // alone, with autocheckpoint off, never would). No timing is assumed
    // beyond a generous bound.
    // A new database's first write (the CREATE TABLE) is not in the WAL;
    // the first WAL commit starts the first generation, which is not a
    // restart: make it before counting generations.
    insert(&w, 0, 1);
    let mut k = 1;
    for burst in 0..4 {
        let g0 = stat(&w, "generations");
        insert(&w, k, 96);
        k += 96;
        // The burst took the WAL past the policy's 1 MiB; on a loaded
        // machine its commits can be slow enough for the background
        // checkpoint to run and the WAL to restart before it ends, which
        // shows the same (autocheckpoint is off: nothing else restarts it).
        assert!(
            stat(&w, "wal_image_bytes") >= 1 << 20 || stat(&w, "generations") > g0,
            "burst {burst}: the WAL neither passed 1 MiB nor restarted"
        );
        let restarted = wait_for(Duration::from_secs(30), || {
            std::thread::sleep(Duration::from_millis(20));
            insert(&w, k, 1);
            k += 1;
            (stat(&w, "generations") > g0).then_some(())
        });
        assert!(
            restarted.is_some(),
            "burst {burst}: the WAL was not restarted ({} bytes, {} checkpoints run)",
            stat(&w, "wal_image_bytes"),
            stat(&w, "ckpt_runs")
        );
        let wal = stat(&w, "wal_image_bytes");
        assert!(
            wal < 1 << 20,
            "burst {burst}: {wal} bytes after the restart"
        );
    }
    assert!(
        stat(&w, "ckpt_complete") >= 4,
        "no background checkpoint completed"
    );
    assert!(
        stat(&w, "chunks") >= 1,
        "checkpointed pages are in the page store"
    );

    // A reader holding an old snapshot: checkpoints stay incomplete,
    // are counted and warned about, and neither side waits.
    let r = open_with(&store, &params);
    r.execute_batch("BEGIN").unwrap();
    let seen: i64 = r
        .query_row("SELECT count(*) FROM t", [], |x| x.get(0))
        .unwrap();
    for _ in 0..20 {
        insert(&w, k, 32);
        k += 32;
    }
    let blocked = wait_for(Duration::from_secs(20), || {
        (stat(&w, "ckpt_incomplete") >= 1 && stat(&w, "ckpt_blocked_warnings") >= 1).then_some(())
    });
    assert!(
        blocked.is_some(),
        "an incomplete checkpoint was not reported"
    );
    let still: i64 = r
        .query_row("SELECT count(*) FROM t", [], |x| x.get(0))
        .unwrap();
    assert_eq!(still, seen, "the reader's snapshot is stable");
    r.execute_batch("COMMIT").unwrap();
    close(r);

    let total: i64 = w
        .query_row("SELECT count(*) FROM t", [], |x| x.get(0))
        .unwrap();
    assert_eq!(total, k);
    assert_integrity(&w);
    close(w);

    // Closed: reopen finds everything.
    let c = open_with(&store, &[]);
    let total: i64 = c
        .query_row("SELECT count(*) FROM t", [], |x| x.get(0))
        .unwrap();
    assert_eq!(total, k);
    close(c);
}

#[test]
fn an_old_wal_is_checkpointed_by_age() {
    let dir = tempdir();
    let store = dir.path().join("age.db");
    let params = [("ckpt_wal_mb", "0"), ("ckpt_age_s", "1")];
    let w = open_with(&store, &params);
    w.execute_batch(
        "PRAGMA wal_autocheckpoint=0;
         CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB);",
    )
    .unwrap();
    insert(&w, 0, 10);
    assert_eq!(stat(&w, "ckpt_runs"), 0);
    let done = wait_for(Duration::from_secs(20), || {
        (stat(&w, "ckpt_complete") >= 1).then_some(())
    });
    assert!(done.is_some(), "the idle WAL was not checkpointed");
    let n: i64 = w
        .query_row("SELECT count(*) FROM t", [], |x| x.get(0))
        .unwrap();
    assert_eq!(n, 10);
    close(w);
}
