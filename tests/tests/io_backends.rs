//! Every I/O backend end to end: a store created with the backend through
//! `Store::open_shared`, 2,000 single-row transactions through SQLite under
//! `synchronous=FULL`, then a reopen that selects the same backend with the
//! `io=` URI parameter, and every row, `integrity_check` and `bop_verify`.
//! Each test also checks, in the process-wide I/O counters, that its
//! backend did the I/O (direct writes, io_uring submissions; under io_uring
//! every commit's write and sync fused into one linked submission, on the
//! other backends never) and did not fall back to buffered I/O: /tmp is
//! ext4 here, where O_DIRECT and io_uring work. The tests that read the counters run one at a time
//! ([`counted`]), so the differences are theirs alone.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bop_storage::io::{backend, IoBackend, IoFile, OpenMode};
use bop_storage::{io_stats, IoMode, IoStats, Store, StoreOptions};
use bop_tests::{assert_integrity, close, open_with, tempdir, try_open_with};

const ROWS: i64 = 2000;

fn value(i: i64) -> String {
    format!("row {i} {}", "x".repeat((i % 97) as usize))
}

/// Routes every open of the record log's segment files through `open_log`
/// (the engine itself opens them with `open_log`; this wrapper also makes
/// the reopen use the same backend object instead of the `io=` parameter).
#[derive(Debug)]
struct LogRouting(Arc<dyn IoBackend>);

fn is_log_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "seg" || e == "spare")
}

impl IoBackend for LogRouting {
    fn open(&self, path: &Path, mode: OpenMode) -> bop_storage::Result<Arc<dyn IoFile>> {
        if is_log_file(path) {
            self.0.open_log(path, mode)
        } else {
            self.0.open(path, mode)
        }
    }
    fn open_log(&self, path: &Path, mode: OpenMode) -> bop_storage::Result<Arc<dyn IoFile>> {
        self.0.open_log(path, mode)
    }
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn remove_file(&self, path: &Path) -> bop_storage::Result<()> {
        self.0.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> bop_storage::Result<()> {
        self.0.rename(from, to)
    }
    fn create_dir_all(&self, path: &Path) -> bop_storage::Result<()> {
        self.0.create_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> bop_storage::Result<()> {
        self.0.sync_dir(path)
    }
    fn list_dir(&self, dir: &Path) -> bop_storage::Result<Vec<PathBuf>> {
        self.0.list_dir(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        self.0.exists(path)
    }
}

fn end_to_end(mode: &str) {
    end_to_end_with(mode, false);
}

/// Runs `f` alone among the tests of this file that call it, and returns
/// the change of the process-wide I/O counters over it.
fn counted(f: impl FnOnce()) -> IoStats {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let before = io_stats();
    f();
    let after = io_stats();
    IoStats {
        direct_writes: after.direct_writes - before.direct_writes,
        rmw_writes: after.rmw_writes - before.rmw_writes,
        bounce_allocs_over_pool: after.bounce_allocs_over_pool - before.bounce_allocs_over_pool,
        direct_fallbacks: after.direct_fallbacks - before.direct_fallbacks,
        uring_submissions: after.uring_submissions - before.uring_submissions,
        uring_fallbacks: after.uring_fallbacks - before.uring_fallbacks,
        durable_writes: after.durable_writes - before.durable_writes,
    }
}

/// `via_open_log`: the store is opened with [`LogRouting`], and reopened
/// the same way (the `io=` parameter would not route).
fn end_to_end_with(mode: &str, via_open_log: bool) {
    let io_mode: IoMode = mode.parse().unwrap();
    let dir = tempdir();
    let path = dir.path().join(format!("{mode}.db"));
    let mut io = backend(io_mode).unwrap();
    if via_open_log {
        io = Arc::new(LogRouting(io));
    }
    let reopen_io = io.clone();
    let name = io.name();
    // The store is opened with the backend first; SQLite joins it.
    let store: Arc<Store> = Store::open_shared(
        &path,
        &StoreOptions {
            io,
            ..Default::default()
        },
    )
    .unwrap();
    let params = [("io", mode)];
    {
        let c = open_with(&path, &params);
        c.execute_batch(
            "PRAGMA synchronous=FULL;
             CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL);",
        )
        .unwrap();
        for i in 0..ROWS {
            c.execute(
                "INSERT INTO t VALUES (?1, ?2)",
                rusqlite::params![i, value(i)],
            )
            .unwrap();
        }
        close(c);
    }
    drop(store);
    let reopen = || {
        via_open_log.then(|| {
            Store::open_shared(
                &path,
                &StoreOptions {
                    io: reopen_io.clone(),
                    ..Default::default()
                },
            )
            .unwrap()
        })
    };
    let held = reopen();
    check(&path, &params, mode);
    drop(held);
    // And once more after a reopen that wrote nothing new.
    let held = reopen();
    check(&path, &params, mode);
    drop(held);
    eprintln!("{mode}: backend {name}, {:?}", io_stats());
}

fn check(path: &Path, params: &[(&str, &str)], mode: &str) {
    let c = open_with(path, params);
    let n: i64 = c
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, ROWS, "{mode}");
    let mut stmt = c.prepare("SELECT id, v FROM t ORDER BY id").unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .unwrap();
    for (expect, row) in rows.enumerate() {
        let (id, v) = row.unwrap();
        assert_eq!(id, expect as i64, "{mode}");
        assert_eq!(v, value(id), "{mode}");
    }
    drop(stmt);
    assert_integrity(&c);
    let verify: String = c.query_row("PRAGMA bop_verify", [], |r| r.get(0)).unwrap();
    assert!(verify.starts_with("ok "), "{mode}: {verify}");
    close(c);
}

#[test]
fn std_backend_end_to_end() {
    let d = counted(|| end_to_end("std"));
    assert_eq!(d.direct_writes, 0, "{d:?}");
    assert_eq!(d.uring_submissions, 0, "{d:?}");
    assert_eq!(d.durable_writes, 0, "a write, then a sync: {d:?}");
}

/// Every commit (`synchronous=FULL`) writes its log record with at least
/// one `O_DIRECT` write, and no file fell back to buffered I/O.
#[test]
fn direct_backend_end_to_end() {
    let d = counted(|| end_to_end("direct"));
    assert_eq!(
        d.direct_fallbacks, 0,
        "io=direct fell back to buffered I/O on /tmp: {d:?}"
    );
    assert!(d.direct_writes >= ROWS as u64, "{d:?}");
    assert_eq!(d.durable_writes, 0, "a write, then a sync: {d:?}");
}

/// io_uring did the I/O; it never fell back to std (io_uring works here).
/// Each commit (`synchronous=FULL`, one connection: each leads its own
/// sync) wrote and synced its record with one fused call.
#[test]
fn uring_backend_end_to_end() {
    let d = counted(|| end_to_end("uring"));
    assert_eq!(
        d.uring_fallbacks, 0,
        "io=uring fell back to std (is io_uring refused on this machine?): {d:?}"
    );
    assert!(d.uring_submissions >= ROWS as u64, "{d:?}");
    assert!(d.durable_writes >= ROWS as u64, "{d:?}");
}

#[test]
fn direct_wal_through_open_log_end_to_end() {
    let d = counted(|| end_to_end_with("direct-required", true));
    assert_eq!(d.direct_fallbacks, 0, "{d:?}");
    assert!(d.direct_writes >= ROWS as u64, "{d:?}");
    assert_eq!(d.durable_writes, 0, "{d:?}");
    // The record log writes whole aligned blocks (it keeps the partial tail
    // block in its buffer), so commits need no read-modify-write.
    assert_eq!(d.rmw_writes, 0, "{d:?}");
}

#[test]
fn uring_wal_through_open_log_end_to_end() {
    let d = counted(|| end_to_end_with("uring", true));
    assert_eq!(d.uring_fallbacks, 0, "{d:?}");
    assert!(d.uring_submissions >= ROWS as u64, "{d:?}");
    assert!(d.durable_writes >= ROWS as u64, "{d:?}");
}

#[test]
fn a_bad_io_parameter_fails_the_open_clearly() {
    let dir = tempdir();
    let path = dir.path().join("bad.db");
    let e = try_open_with(&path, &[("io", "io_uring")]).unwrap_err();
    let msg = format!("{e} {:?}", bop_rusqlite::last_error());
    assert!(msg.contains("direct-required"), "{msg}");
    assert!(!path.exists(), "no store is created");
}
