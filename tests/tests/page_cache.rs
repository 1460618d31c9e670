//! bop's page cache through SQLite: one per process, shared by every
//! connection and database, bounded by `cache_mb`. Pages of page chunks
//! are read and verified once, then served from the cache to other
//! connections (SQLite's own cache is per connection); the cache never
//! holds more than its bound, and what it returns is always right (also
//! after a checkpoint moved the pages).

use bop_tests::{assert_integrity, close, open_with, tempdir};
use rusqlite::Connection;

fn stat(conn: &Connection, key: &str) -> u64 {
    let s: String = conn
        .query_row("PRAGMA bop_stats", [], |r| r.get(0))
        .unwrap();
    s.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} missing in {s}"))
        .parse()
        .unwrap()
}

fn sum(conn: &Connection) -> (i64, i64) {
    conn.query_row("SELECT count(*), sum(length(v) + k) FROM t", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .unwrap()
}

#[test]
fn pages_are_shared_across_connections_within_the_bound() {
    let dir = tempdir();
    let store = dir.path().join("cache.db");
    // 1 MiB bound: `t` (about 350 KiB of pages) fits, `big` (3 MiB) does
    // not, so scanning it evicts.
    let params = [("cache_mb", "1")];
    let w = open_with(&store, &params);
    w.execute_batch(
        "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
         INSERT INTO t SELECT i, randomblob(900) FROM n;
         CREATE TABLE big(k INTEGER PRIMARY KEY, v BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO big SELECT i, randomblob(900) FROM n;
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
    let expected = sum(&w);
    assert_eq!(expected.0, 300);
    let capacity = stat(&w, "cache_capacity_bytes");
    assert_eq!(capacity, 1 << 20);

    // Each new connection starts with an empty SQLite cache and reads the
    // table from bop: the first scan loads pages into bop's cache (the
    // part that fits), later connections hit it.
    let misses0 = stat(&w, "cache_misses");
    let hits0 = stat(&w, "cache_hits");
    for round in 0..3 {
        let r = open_with(&store, &params);
        assert_eq!(sum(&r), expected, "round {round}");
        assert_eq!(sum(&r), expected, "round {round}");
        let bytes = stat(&r, "cache_bytes");
        assert!(
            bytes <= capacity,
            "cache holds {bytes} bytes, bound {capacity}"
        );
        close(r);
    }
    let (misses, hits) = (stat(&w, "cache_misses"), stat(&w, "cache_hits"));
    assert!(misses > misses0, "the first scan read chunks");
    assert!(
        hits > hits0 + 150,
        "later connections were served from the cache ({} hits)",
        hits - hits0
    );
    let scan = open_with(&store, &params);
    let n: i64 = scan
        .query_row("SELECT count(*) FROM big WHERE length(v) = 900", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 3000);
    assert!(
        stat(&w, "cache_evictions") > 0,
        "3 MiB through a 1 MiB cache"
    );
    assert!(stat(&w, "cache_bytes") <= capacity);
    close(scan);

    // Pages a checkpoint moves get new locations: the cache never returns
    // an old version.
    w.execute_batch(
        "UPDATE t SET v = zeroblob(900) WHERE k % 2 = 0;
         UPDATE big SET v = zeroblob(900) WHERE k % 2 = 0;
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
    let r = open_with(&store, &params);
    let zeros: i64 = r
        .query_row(
            "SELECT (SELECT count(*) FROM t WHERE v = zeroblob(900) AND k % 2 = 0)
                  + (SELECT count(*) FROM big WHERE v = zeroblob(900) AND k % 2 = 0)",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(zeros, 150 + 1500);
    assert_integrity(&r);
    close(r);

    // Off (cache_mb=0): nothing is cached, reads still right.
    let off = open_with(&store, &[("cache_mb", "0")]);
    assert_eq!(stat(&off, "cache_bytes"), 0);
    assert_eq!(sum(&off).0, 300);
    assert_eq!(stat(&off, "cache_bytes"), 0);
    close(off);
    close(w);
}
