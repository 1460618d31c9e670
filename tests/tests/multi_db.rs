//! Several databases in one store share its WAL (so their commits share
//! syncs) and keep their own pages: each is its own SQLite database, opened
//! as `<store>/<name>`, isolated from the others, surviving reopen and a
//! crash, checkpointing on its own; the shared record log drops a segment only
//! once no database needs it.

use std::sync::Arc;

use bop_storage::io::sim::{CrashMode, SimFs, SimRng};
use bop_tests::{assert_integrity, open, stat, tempdir};
use rusqlite::Connection;

fn count(c: &Connection, table: &str) -> i64 {
    c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn databases_of_one_store_are_isolated_share_the_wal_and_survive_reopen() {
    let dir = tempdir();
    let store = dir.path().join("app.bop");
    let main = open(&store);
    main.execute_batch("CREATE TABLE m(x); INSERT INTO m VALUES (1)")
        .unwrap();
    let names = ["users", "orders", "logs"];
    let conns: Vec<Connection> = names.iter().map(|n| open(&store.join(n))).collect();
    for (i, c) in conns.iter().enumerate() {
        c.pragma_update(None, "synchronous", "FULL").unwrap();
        c.execute_batch(&format!(
            "CREATE TABLE t{i}(id INTEGER PRIMARY KEY, v TEXT)"
        ))
        .unwrap();
        for k in 0..(100 * (i as i64 + 1)) {
            c.execute(&format!("INSERT INTO t{i}(v) VALUES ('db{i}-{k}')"), [])
                .unwrap();
        }
    }
    // Each database sees only its own tables.
    for (i, c) in conns.iter().enumerate() {
        assert_eq!(count(c, &format!("t{i}")), 100 * (i as i64 + 1));
        let tables: i64 = c
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 1, "database {i} sees one table");
    }
    assert_eq!(count(&main, "m"), 1);
    // One WAL: every database reports the same LSN sequence and the same
    // segment files; the records of all of them are in it.
    let lsn0 = stat(&conns[0], "next_lsn");
    let lsn2 = stat(&conns[2], "next_lsn");
    assert_eq!(lsn0, lsn2);
    assert!(lsn0 > 600, "{lsn0}");
    let segs = std::fs::read_dir(store.join("wal")).unwrap().count();
    assert!(segs >= 1);
    assert!(store.join("chunks-1").is_dir() && store.join("chunks-3").is_dir());
    assert!(!store.join("users").exists(), "no file per database");

    // Close one database and reopen it while the store stays open.
    let c1 = conns.into_iter().nth(1).unwrap();
    drop(c1);
    let c1 = open(&store.join("orders"));
    assert_eq!(count(&c1, "t1"), 200);
    drop(c1);
    drop(main);

    // Reopen everything.
    for (i, n) in names.iter().enumerate() {
        let c = open(&store.join(n));
        assert_eq!(count(&c, &format!("t{i}")), 100 * (i as i64 + 1));
        assert_integrity(&c);
    }
}

#[test]
fn a_shared_wal_segment_is_dropped_only_when_every_database_checkpointed() {
    let dir = tempdir();
    let store = dir.path().join("ck.bop");
    let params = [("log_segment_mb", "1")];
    let main = bop_tests::open_with(&store, &params);
    let a = bop_tests::open_with(&store.join("a"), &params);
    let b = bop_tests::open_with(&store.join("b"), &params);
    for c in [&a, &b] {
        // The first write of a new database is not in the WAL: the insert
        // gives each database a record in the first segment.
        c.execute_batch(
            "PRAGMA wal_autocheckpoint=0; CREATE TABLE t(v BLOB); INSERT INTO t VALUES (0);",
        )
        .unwrap();
    }
    // 4.5 MB each: more log records than a WAL restart retains
    // (`publish_defer_log_bytes_max`, 4 MiB), so each database's
    // checkpoint publishes and moves its base.
    let fill = |c: &Connection| {
        for _ in 0..15 {
            c.execute_batch("BEGIN").unwrap();
            for _ in 0..100 {
                c.execute("INSERT INTO t VALUES (randomblob(3000))", [])
                    .unwrap();
            }
            c.execute_batch("COMMIT").unwrap();
        }
    };
    fill(&a);
    fill(&b);
    let segs_before = stat(&a, "log_segments");
    assert!(segs_before >= 3, "{segs_before}");
    // `a` checkpoints and restarts its WAL image: `b` still needs the
    // segments, so none goes.
    a.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    a.execute("INSERT INTO t VALUES (1)", []).unwrap();
    assert!(stat(&a, "log_segments") >= segs_before);
    // Once `b` does too, the old segments are dropped (the main database,
    // open but without records, holds nothing back).
    b.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    b.execute("INSERT INTO t VALUES (1)", []).unwrap();
    let segs_after = stat(&a, "log_segments");
    assert!(segs_after < segs_before, "{segs_after} vs {segs_before}");
    assert_eq!(count(&a, "t"), 1502);
    assert_eq!(count(&b, "t"), 1502);
    drop((a, b, main));
    let b = bop_tests::open_with(&store.join("b"), &params);
    assert_eq!(count(&b, "t"), 1502);
    assert_integrity(&b);
}

#[test]
fn acknowledged_commits_of_every_database_survive_a_power_cut() {
    let dir = tempdir();
    let store = dir.path().join("pc.bop");
    let fs = SimFs::new();
    bop_vfs::testing::set_store_io(&store, Some(Arc::new(fs.clone())));
    let main = open(&store);
    let dbs: Vec<Connection> = (0..4).map(|i| open(&store.join(format!("d{i}")))).collect();
    for c in &dbs {
        c.pragma_update(None, "synchronous", "FULL").unwrap();
        c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY)")
            .unwrap();
    }
    // Interleaved commits from four threads, one database each.
    let dbs: Vec<Connection> = std::thread::scope(|s| {
        let handles: Vec<_> = dbs
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                s.spawn(move || {
                    for k in 0..50 {
                        c.execute("INSERT INTO t(id) VALUES (?1)", [k * 10 + i as i64])
                            .unwrap();
                    }
                    c
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let next = fs.crash(CrashMode::LoseAll, &mut SimRng::new(11));
    assert!(bop_vfs::testing::halt(&store));
    drop(dbs);
    drop(main);
    bop_vfs::testing::set_store_io(&store, Some(Arc::new(next)));
    for i in 0..4 {
        let c = open(&store.join(format!("d{i}")));
        assert_eq!(count(&c, "t"), 50, "database d{i}");
        assert_integrity(&c);
    }
    bop_vfs::testing::set_store_io(&store, None);
}

#[test]
fn repeated_power_cuts_across_databases_lose_no_acknowledged_commit() {
    use bop_storage::io::sim::CrashMode;
    let dir = tempdir();
    let store = dir.path().join("rp.bop");
    let mut fs = SimFs::new();
    bop_vfs::testing::set_store_io(&store, Some(Arc::new(fs.clone())));
    let mut rng = SimRng::new(0x5eed);
    // acked[i]: rows of database d<i> acknowledged under FULL (d0, d1) or
    // committed under NORMAL (d2, d3), across all rounds.
    let mut acked = [0i64; 4];
    for round in 0..40 {
        let main = open(&store);
        let dbs: Vec<Connection> = (0..4)
            .map(|i| {
                let c = open(&store.join(format!("d{i}")));
                let sync = if i < 2 { "FULL" } else { "NORMAL" };
                c.execute_batch(&format!(
                    "PRAGMA synchronous={sync}; CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, r INT)"
                ))
                .unwrap();
                c
            })
            .collect();
        // After a cut, FULL databases hold exactly what was acknowledged;
        // NORMAL ones at most what was committed.
        for (i, c) in dbs.iter().enumerate() {
            let n = count(c, "t");
            if i < 2 {
                assert_eq!(n, acked[i], "round {round}: d{i}");
            } else {
                assert!(n <= acked[i], "round {round}: d{i} {n} > {}", acked[i]);
                acked[i] = n;
            }
            assert_integrity(c);
        }
        let per = 1 + rng.below(40) as i64;
        let dbs: Vec<(Connection, i64)> = std::thread::scope(|s| {
            let hs: Vec<_> = dbs
                .into_iter()
                .enumerate()
                .map(|(i, c)| {
                    let start = acked[i];
                    s.spawn(move || {
                        for k in 0..per {
                            c.execute(
                                "INSERT INTO t(id, r) VALUES (?1, ?2)",
                                [start + k + 1, round],
                            )
                            .unwrap();
                        }
                        (c, start + per)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, (_, n)) in dbs.iter().enumerate() {
            acked[i] = *n;
        }
        let mode =
            [CrashMode::LoseAll, CrashMode::Random, CrashMode::KeepAll][rng.below(3) as usize];
        let next = fs.crash(mode, &mut rng);
        assert!(bop_vfs::testing::halt(&store));
        drop(dbs);
        drop(main);
        fs = next;
        bop_vfs::testing::set_store_io(&store, Some(Arc::new(fs.clone())));
    }
    bop_vfs::testing::set_store_io(&store, None);
}
