//! Several connections in one process: a writer committing continuously,
//! readers whose snapshots must stay consistent and who never get
//! SQLITE_BUSY, and checkpoints taken while readers hold snapshots.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bop_tests::{assert_integrity, close, open, tempdir};
use rand::{Rng, SeedableRng};
use rusqlite::Connection;

const ACCOUNTS: i64 = 100;
const TOTAL: i64 = ACCOUNTS * 1000;
const RUN: Duration = Duration::from_secs(4);

fn setup(store: &std::path::Path) {
    let c = open(store);
    c.execute_batch(
        "CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER NOT NULL);
         CREATE TABLE log(seq INTEGER PRIMARY KEY, pad BLOB NOT NULL);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100)
         INSERT INTO acct SELECT x, 1000 FROM c;",
    )
    .unwrap();
    close(c);
}

/// (sum of balances, rows in log, max seq, a digest of every balance)
fn snapshot(c: &Connection) -> rusqlite::Result<(i64, i64, i64, i64)> {
    c.query_row(
        "SELECT (SELECT sum(bal) FROM acct),
                (SELECT count(*) FROM log),
                (SELECT coalesce(max(seq), 0) FROM log),
                (SELECT sum(id * bal) FROM acct)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
}

#[test]
fn readers_see_consistent_snapshots_while_a_writer_commits() {
    let seed: u64 = rand::rng().random();
    println!("concurrency seed {seed}");
    let dir = tempdir();
    let store = dir.path().join("conc.db");
    setup(&store);

    let stop = AtomicBool::new(false);
    let commits = AtomicU64::new(0);
    let ckpt_frames = AtomicU64::new(0);
    let ckpt_calls = AtomicU64::new(0);
    let reader_stats = Mutex::new(Vec::new());
    let deadline = Instant::now() + RUN;
    // Every connection closes only once all have stopped: a close tries
    // for an EXCLUSIVE lock (to checkpoint and delete the WAL), and while
    // it holds PENDING a reader starting a transaction gets SQLITE_BUSY,
    // in stock SQLite as in bop. The test is about running readers.
    let running = AtomicU64::new(5);
    let all_stopped = || {
        running.fetch_sub(1, Ordering::AcqRel);
        let waited = Instant::now();
        // Bounded: a thread that panicked never counts down.
        while running.load(Ordering::Acquire) > 0 && waited.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(1));
        }
    };

    std::thread::scope(|s| {
        // Writer.
        let writer = s.spawn(|| {
            let c = open(&store);
            c.busy_timeout(Duration::from_secs(10)).unwrap();
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut seq = 0i64;
            let result = (|| -> rusqlite::Result<()> {
                while Instant::now() < deadline {
                    c.execute_batch("BEGIN IMMEDIATE")?;
                    let from = rng.random_range(1..=ACCOUNTS);
                    let to = rng.random_range(1..=ACCOUNTS);
                    let amount = rng.random_range(1..=50);
                    c.execute(
                        "UPDATE acct SET bal = bal - ?2 WHERE id = ?1",
                        [from, amount],
                    )?;
                    c.execute("UPDATE acct SET bal = bal + ?2 WHERE id = ?1", [to, amount])?;
                    // Mostly small commits, sometimes a large one.
                    let rows = if rng.random_range(0..20) == 0 { 200 } else { 1 };
                    for _ in 0..rows {
                        seq += 1;
                        c.execute(
                            "INSERT INTO log(seq, pad) VALUES (?1, randomblob(600))",
                            [seq],
                        )?;
                    }
                    c.execute_batch("COMMIT")?;
                    commits.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })();
            stop.store(true, Ordering::Relaxed);
            result.unwrap_or_else(|e| panic!("writer failed: {e}"));
            all_stopped();
            close(c);
            seq
        });

        // Readers: busy_timeout 0, so any SQLITE_BUSY surfaces as an error.
        for r in 0..3u64 {
            let store = &store;
            let stop = &stop;
            let all_stopped = &all_stopped;
            let reader_stats = &reader_stats;
            s.spawn(move || {
                let c = open(store);
                c.busy_timeout(Duration::ZERO).unwrap();
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (r + 1));
                let mut last_count = 0i64;
                let mut txns = 0u64;
                let mut distinct = std::collections::BTreeSet::new();
                while !stop.load(Ordering::Relaxed) {
                    let res = (|| -> rusqlite::Result<()> {
                        c.execute_batch("BEGIN")?;
                        let first = snapshot(&c)?;
                        for _ in 0..rng.random_range(1..4) {
                            std::thread::sleep(Duration::from_millis(rng.random_range(0..4)));
                            let again = snapshot(&c)?;
                            assert_eq!(
                                again, first,
                                "reader {r}: snapshot changed inside a read transaction"
                            );
                        }
                        // Read every log row's length: pages a checkpoint
                        // may be moving must still read as this snapshot.
                        let (n, bytes): (i64, i64) = c.query_row(
                            "SELECT count(*), coalesce(sum(length(pad)), 0) FROM log",
                            [],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )?;
                        assert_eq!((n, bytes), (first.1, first.1 * 600), "reader {r}: log scan");
                        c.execute_batch("COMMIT")?;
                        assert_eq!(first.0, TOTAL, "reader {r}: money created or destroyed");
                        assert_eq!(first.1, first.2, "reader {r}: log has gaps");
                        assert!(
                            first.1 >= last_count,
                            "reader {r}: count went back {last_count} -> {}",
                            first.1
                        );
                        last_count = first.1;
                        distinct.insert(first.1);
                        Ok(())
                    })();
                    if let Err(e) = res {
                        panic!(
                            "reader {r} failed (busy_timeout 0): {e} [{:?}]",
                            e.sqlite_error_code()
                        );
                    }
                    txns += 1;
                }
                all_stopped();
                close(c);
                reader_stats.lock().unwrap().push((r, txns, distinct.len()));
            });
        }

        // Checkpointer: PASSIVE and TRUNCATE while readers hold snapshots.
        s.spawn(|| {
            let c = open(&store);
            c.busy_timeout(Duration::from_millis(50)).unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mode = ["PASSIVE", "TRUNCATE"][(i % 2) as usize];
                let (busy, log, done): (i64, i64, i64) = c
                    .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .unwrap_or_else(|e| panic!("wal_checkpoint({mode}) failed: {e}"));
                assert!(busy == 0 || busy == 1, "busy column {busy}");
                assert!(done <= log || log == -1, "checkpointed {done} of {log}");
                if done > 0 {
                    ckpt_frames.fetch_add(done as u64, Ordering::Relaxed);
                }
                ckpt_calls.fetch_add(1, Ordering::Relaxed);
                i += 1;
                std::thread::sleep(Duration::from_millis(15));
            }
            all_stopped();
            close(c);
        });

        let seq = writer.join().unwrap();
        assert!(seq > 0);
    });

    let commits = commits.load(Ordering::Relaxed);
    let stats = reader_stats.into_inner().unwrap();
    println!(
        "commits {commits}, checkpoints {} ({} frames), readers {stats:?}",
        ckpt_calls.load(Ordering::Relaxed),
        ckpt_frames.load(Ordering::Relaxed)
    );
    assert!(
        commits >= 50,
        "the writer made only {commits} commits in {RUN:?}"
    );
    assert_eq!(stats.len(), 3);
    for (r, txns, distinct) in &stats {
        assert!(
            *txns >= 20,
            "reader {r} finished only {txns} read transactions"
        );
        assert!(*distinct >= 2, "reader {r} never saw the writer's progress");
    }
    assert!(ckpt_calls.load(Ordering::Relaxed) >= 10);
    assert!(
        ckpt_frames.load(Ordering::Relaxed) > 0,
        "no checkpoint ever moved a frame"
    );

    let c = open(&store);
    let (sum, n, max, _) = snapshot(&c).unwrap();
    assert_eq!(sum, TOTAL);
    assert_eq!(n, max);
    assert!(n as u64 >= commits);
    assert_integrity(&c);
    close(c);
    let c = open(&store);
    assert_eq!(snapshot(&c).unwrap().1, n, "after reopen");
    assert_integrity(&c);
    close(c);
}

#[test]
fn several_writers_in_one_process() {
    let dir = tempdir();
    let store = dir.path().join("writers.db");
    let c = open(&store);
    c.execute_batch("CREATE TABLE t(w INTEGER, i INTEGER, PRIMARY KEY(w, i))")
        .unwrap();
    std::thread::scope(|s| {
        for w in 0..4i64 {
            let store = &store;
            s.spawn(move || {
                let c = open(store);
                c.busy_timeout(Duration::from_secs(20)).unwrap();
                for i in 0..150i64 {
                    if i % 3 == 0 {
                        c.execute_batch("BEGIN IMMEDIATE").unwrap();
                        c.execute("INSERT INTO t VALUES (?1, ?2)", [w, i]).unwrap();
                        c.execute_batch("COMMIT").unwrap();
                    } else {
                        c.execute("INSERT INTO t VALUES (?1, ?2)", [w, i]).unwrap();
                    }
                }
                close(c);
            });
        }
    });
    let per_writer: Vec<(i64, i64, i64)> = c
        .prepare("SELECT w, count(*), sum(i) FROM t GROUP BY w ORDER BY w")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let exp: Vec<(i64, i64, i64)> = (0..4).map(|w| (w, 150, 149 * 150 / 2)).collect();
    assert_eq!(per_writer, exp);
    assert_integrity(&c);
    close(c);
}
