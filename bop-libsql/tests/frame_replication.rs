//! libSQL's frame-level WAL API (what its replication uses) over bop:
//! `libsql_wal_frame_count` and `libsql_wal_get_frame` read a primary's
//! frames (standard SQLite WAL frames), `libsql_wal_insert_*` apply them to
//! a replica, which then holds the same data, survives a reopen, and
//! reports an existing frame with different bytes as a conflict.

mod common;
use bop_libsql::Value;
use common::conn;

#[test]
fn frames_copied_to_a_replica_reproduce_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let primary = conn(&dir.path().join("primary.db"));
    // A new database's first write transaction runs outside the WAL, as
    // SQLite's on a new file: a primary whose frames replicate everything
    // from the start switches to WAL mode first, as with libSQL's own WAL.
    primary
        .execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=20;
             CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB);",
        )
        .unwrap();
    for i in 0..50 {
        primary
            .execute(
                "INSERT INTO t VALUES (?, randomblob(?1 * 10))",
                &[Value::Integer(i)],
            )
            .unwrap();
    }
    primary
        .execute_batch(
            "BEGIN;
             WITH RECURSIVE s(i) AS (SELECT 100 UNION ALL SELECT i + 1 FROM s WHERE i < 2099)
             INSERT INTO t SELECT i, randomblob(200) FROM s;
             COMMIT;",
        )
        .unwrap();
    let n = primary.wal_frame_count().unwrap();
    assert!(n > 100, "{n} frames");
    let ps = primary.query_i64("PRAGMA page_size").unwrap() as usize;
    let mut frames = Vec::new();
    for f in 1..=n {
        let mut buf = vec![0u8; 24 + ps];
        primary.wal_get_frame(f, &mut buf).unwrap();
        frames.push(buf);
    }
    let fp =
        |c: &bop_libsql::Connection| c.query("SELECT a, hex(b) FROM t ORDER BY a", &[]).unwrap();
    let want = fp(&primary);

    let rpath = dir.path().join("replica.db");
    // A new replica: wal_insert_begin puts it in WAL mode.
    let replica = conn(&rpath);
    replica.wal_insert_begin().unwrap();
    for (i, f) in frames.iter().enumerate() {
        assert!(
            !replica.wal_insert_frame(i as u32 + 1, f).unwrap(),
            "frame {}",
            i + 1
        );
    }
    replica.wal_insert_end().unwrap();
    assert_eq!(fp(&replica), want);
    assert_eq!(replica.wal_frame_count().unwrap(), n);
    // Re-inserting an existing frame with other bytes is a conflict.
    replica.wal_insert_begin().unwrap();
    let mut other = frames[0].clone();
    let last = other.len() - 1;
    other[last] ^= 0xff;
    assert!(replica.wal_insert_frame(1, &other).unwrap());
    assert!(!replica.wal_insert_frame(1, &frames[0]).unwrap());
    replica.wal_insert_end().unwrap();
    drop(replica);
    let replica = conn(&rpath);
    assert_eq!(fp(&replica), want);
    assert_eq!(
        replica
            .query_string("PRAGMA integrity_check")
            .unwrap()
            .as_deref(),
        Some("ok")
    );
}
