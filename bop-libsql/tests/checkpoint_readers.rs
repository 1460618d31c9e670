//! RESTART and TRUNCATE checkpoints beside a writer and constantly reading
//! connections wait for the readers through the busy handler, as `wal.c`
//! does: the same scenario runs on libSQL's own WAL (a plain file) and on
//! bop, and bop's checkpoints must succeed about as often and keep the WAL
//! as short, with every commit kept.

mod common;
use bop_libsql::{Connection, OpenFlags, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    Libsql,
    Bop,
}

fn connect(side: Side, path: &Path) -> Connection {
    let c = match side {
        Side::Libsql => Connection::open_libsql_default_wal(path).unwrap(),
        Side::Bop => bop_libsql::open(path, OpenFlags::default()).unwrap(),
    };
    c.execute_batch("PRAGMA busy_timeout=2000").unwrap();
    c
}

/// Frames in the WAL. libSQL's `wal.c` answers only while no checkpoint
/// holds its write lock (SQLITE_BUSY otherwise): ask again.
fn frame_count(c: &Connection) -> u32 {
    loop {
        match c.wal_frame_count() {
            Ok(n) => return n,
            Err(e) if e.is_busy() => std::thread::sleep(std::time::Duration::from_micros(200)),
            Err(e) => panic!("wal_frame_count: {e}"),
        }
    }
}

#[derive(Debug)]
struct Outcome {
    checkpoints: u64,
    succeeded: u64,
    /// The most frames the writer saw in the WAL after one of its commits.
    max_frames: u32,
    commits: i64,
}

const RUN: std::time::Duration = std::time::Duration::from_millis(2000);
const READERS: usize = 3;
const WRITER_PAUSE: std::time::Duration = std::time::Duration::from_micros(200);

/// For `RUN`, a writer commits single-row transactions while `READERS`
/// connections read back to back and one more runs `mode` checkpoints in
/// a loop, all started together. Asserts that no reader ever sees a row
/// vanish and that every commit is there at the end.
fn run(side: Side, path: &Path, mode: &str) -> Outcome {
    let setup = connect(side, path);
    setup
        .execute_batch(
            "PRAGMA wal_autocheckpoint=0;
             CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);",
        )
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let max_frames = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(READERS + 2));
    let writer = {
        let (path, max_frames, start) = (path.to_path_buf(), max_frames.clone(), start.clone());
        std::thread::spawn(move || {
            let c = connect(side, &path);
            c.execute_batch("PRAGMA wal_autocheckpoint=0; PRAGMA synchronous=NORMAL")
                .unwrap();
            let mut st = c
                .prepare("INSERT INTO t VALUES (?, randomblob(200))")
                .unwrap();
            start.wait();
            let t0 = std::time::Instant::now();
            let mut i = 0;
            while t0.elapsed() < RUN {
                match st.execute(&[Value::Integer(i)]) {
                    Ok(_) => {}
                    // wal.c's writer can get SQLITE_BUSY_SNAPSHOT, which
                    // the busy handler does not retry, when a TRUNCATE
                    // restarts the WAL between its read and its write
                    // lock: the row was not written; write it again.
                    Err(e) if e.is_busy() => continue,
                    Err(e) => panic!("{side:?}: commit {i}: {e}"),
                }
                max_frames.fetch_max(u64::from(frame_count(&c)), Ordering::Relaxed);
                i += 1;
                // A paced writer: back to back, it would hold the write
                // lock nearly always and starve the checkpoints of it on
                // either WAL.
                std::thread::sleep(WRITER_PAUSE);
            }
            i
        })
    };
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (path, stop, start) = (path.to_path_buf(), stop.clone(), start.clone());
            std::thread::spawn(move || {
                let c = connect(side, &path);
                // Short reads, back to back: at any moment one of the
                // readers holds a snapshot that reads the WAL.
                let mut newest = c.prepare("SELECT max(id) FROM t").unwrap();
                let mut row = c.prepare("SELECT length(v) FROM t WHERE id = ?").unwrap();
                start.wait();
                let mut last = -1;
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let r = newest.query(&[]).unwrap();
                    let n = r[0][0].as_i64().unwrap_or(-1);
                    assert!(n >= last, "{side:?}: a reader saw row {n} after {last}");
                    if n >= 0 {
                        let id = Value::Integer((reads as i64 * 7919) % (n + 1));
                        let r = row.query(&[id]).unwrap();
                        assert_eq!(r[0][0].as_i64(), Some(200), "{side:?}: a row vanished");
                    }
                    last = n;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let checkpointer = {
        let (path, stop, mode) = (path.to_path_buf(), stop.clone(), mode.to_string());
        std::thread::spawn(move || {
            let c = connect(side, &path);
            start.wait();
            let (mut n, mut ok) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let (busy, _, _) = common::checkpoint(&c, &mode);
                n += 1;
                ok += u64::from(busy == 0);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            (n, ok)
        })
    };
    let written = writer.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let (checkpoints, succeeded) = checkpointer.join().unwrap();
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let commits = setup.query_i64("SELECT count(*) FROM t").unwrap();
    assert_eq!(commits, written, "{side:?}: every commit is kept");
    assert_eq!(
        setup
            .query_string("PRAGMA integrity_check")
            .unwrap()
            .as_deref(),
        Some("ok")
    );
    Outcome {
        checkpoints,
        succeeded,
        max_frames: max_frames.load(Ordering::Relaxed) as u32,
        commits,
    }
}

fn compare(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let plain = run(Side::Libsql, &dir.path().join("plain.db"), mode);
    let bop_path = dir.path().join("bop.db");
    let bop = run(Side::Bop, &bop_path, mode);
    eprintln!("{mode}: libsql {plain:?}; bop {bop:?}");
    // The comparison means something only if libSQL's own WAL truncates
    // most of the time in this scenario.
    assert!(
        plain.succeeded * 2 > plain.checkpoints,
        "libSQL's WAL: {plain:?}"
    );
    let rate = |o: &Outcome| o.succeeded as f64 / o.checkpoints as f64;
    assert!(
        rate(&bop) >= rate(&plain) * 0.8,
        "{mode} succeeded in {} of {} checkpoints on bop, {} of {} on libSQL's WAL",
        bop.succeeded,
        bop.checkpoints,
        plain.succeeded,
        plain.checkpoints
    );
    // Bounded: a few checkpoint intervals' worth of commits, never the
    // whole run (each commit adds one or two frames).
    let bound = (plain.max_frames * 3).max(300);
    assert!(
        bop.max_frames <= bound,
        "{mode}: bop's WAL reached {} frames (libSQL's {}; bound {bound})",
        bop.max_frames,
        plain.max_frames
    );
    // Nothing is lost across a reopen.
    let c = common::conn(&bop_path);
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), bop.commits);
}

#[test]
fn truncate_waits_for_readers() {
    compare("TRUNCATE");
}

#[test]
fn restart_waits_for_readers() {
    compare("RESTART");
}
