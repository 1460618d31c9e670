//! I/O errors surface as SQLite errors with a message naming the file and
//! the operation; the store then refuses writes rather than pretend; once
//! the fault clears, the database reopens with nothing acknowledged lost.
//! Faults come from the simulated file system (`SimFs`), and disk-full also
//! from a real, small tmpfs where the machine allows mounting one.

use std::path::Path;
use std::sync::Arc;

use bop_storage::io::sim::{Fault, FaultOp, SimFs};
use bop_tests::{assert_integrity, open, open_with, tempdir, try_open_with};
use rusqlite::{Connection, ErrorCode};

const SQLITE_IOERR_READ: i32 = 10 | (1 << 8);
const SQLITE_IOERR_FSYNC: i32 = 10 | (4 << 8);

fn fault(op: FaultOp, errno: i32, path: &str, sticky: bool) -> Fault {
    Fault {
        op,
        nth: 1,
        errno,
        path_contains: Some(path.into()),
        sticky,
    }
}

fn sim_store(name: &str) -> (tempfile::TempDir, std::path::PathBuf, SimFs) {
    let dir = tempdir();
    let path = dir.path().join(name);
    let fs = SimFs::new();
    bop_vfs::testing::set_store_io(&path, Some(Arc::new(fs.clone())));
    (dir, path, fs)
}

fn setup(path: &Path, rows: i64) -> Connection {
    let c = open(path);
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    for i in 1..=rows {
        c.execute("INSERT INTO t(id, v) VALUES (?1, 'row')", [i])
            .unwrap();
    }
    c
}

fn count(c: &Connection) -> i64 {
    c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

fn sqlite_code(e: &rusqlite::Error) -> (ErrorCode, i32) {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => (f.code, f.extended_code),
        other => panic!("not an SQLite failure: {other:?}"),
    }
}

#[test]
fn enospc_on_commit_is_sqlite_full_and_loses_nothing_acknowledged() {
    let (_d, path, fs) = sim_store("full.db");
    let c = setup(&path, 5);
    fs.inject(fault(FaultOp::Write, libc::ENOSPC, ".seg", true));
    let e = c
        .execute("INSERT INTO t(id, v) VALUES (6, 'lost')", [])
        .unwrap_err();
    assert_eq!(sqlite_code(&e).0, ErrorCode::DiskFull, "{e}");
    let msg = bop_rusqlite::last_error().expect("a message");
    assert!(msg.contains(".seg") && msg.contains("write"), "{msg}");
    // The store refuses further writes with a clear error instead of
    // pretending (even once the disk has room again).
    fs.clear_faults();
    let e = c
        .execute("INSERT INTO t(id, v) VALUES (7, 'refused')", [])
        .unwrap_err();
    let msg = bop_rusqlite::last_error().unwrap_or_default();
    assert!(msg.contains("refuses writes"), "{e}: {msg}");
    drop(c);
    let c = open(&path);
    assert_eq!(
        count(&c),
        5,
        "acknowledged rows present, failed ones absent"
    );
    c.execute("INSERT INTO t(id, v) VALUES (6, 'after')", [])
        .unwrap();
    assert_integrity(&c);
}

#[test]
fn eio_on_fsync_fails_the_commit_and_loses_nothing_acknowledged() {
    let (_d, path, fs) = sim_store("fsync.db");
    let c = setup(&path, 3);
    // Sticky: a single failure is retried (rewriting the unsynced bytes) and
    // the commit succeeds; see bop-storage/tests/flush_retry_rewrites.rs.
    fs.inject(fault(FaultOp::Sync, libc::EIO, ".seg", true));
    let e = c
        .execute("INSERT INTO t(id, v) VALUES (4, 'unsure')", [])
        .unwrap_err();
    assert_eq!(sqlite_code(&e).1, SQLITE_IOERR_FSYNC, "{e}");
    let msg = bop_rusqlite::last_error().expect("a message");
    assert!(msg.contains("fdatasync") && msg.contains(".seg"), "{msg}");
    drop(c);
    let c = open(&path);
    // The failed commit was never acknowledged: it may or may not be there,
    // but everything acknowledged is.
    let n = count(&c);
    assert!(n == 3 || n == 4, "{n} rows");
    let first3: i64 = c
        .query_row("SELECT count(*) FROM t WHERE id <= 3", [], |r| r.get(0))
        .unwrap();
    assert_eq!(first3, 3);
    assert_integrity(&c);
}

#[test]
fn eio_reading_a_chunk_is_ioerr_read_naming_the_chunk() {
    let (_d, path, fs) = sim_store("read.db");
    let c = setup(&path, 200);
    drop(c); // checkpoints everything into chunks
    let c = open(&path);
    fs.inject(fault(FaultOp::Read, libc::EIO, ".chunk", true));
    let e = c
        .query_row("SELECT sum(length(v)) FROM t", [], |r| r.get::<_, i64>(0))
        .unwrap_err();
    assert_eq!(sqlite_code(&e).1, SQLITE_IOERR_READ, "{e}");
    let msg = bop_rusqlite::last_error().expect("a message");
    assert!(msg.contains(".chunk") && msg.contains("read"), "{msg}");
    fs.clear_faults();
    assert_eq!(count(&c), 200, "reads work again once the fault clears");
}

#[test]
fn enospc_during_checkpoint_fails_it_and_loses_nothing() {
    let (_d, path, fs) = sim_store("ckpt.db");
    let c = setup(&path, 300);
    fs.inject(fault(FaultOp::Write, libc::ENOSPC, ".chunk", true));
    let r = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    });
    assert!(r.is_err(), "the checkpoint must fail, got {r:?}");
    let msg = bop_rusqlite::last_error().expect("a message");
    assert!(msg.contains(".chunk"), "{msg}");
    fs.clear_faults();
    drop(c);
    let c = open(&path);
    assert_eq!(count(&c), 300);
    assert_integrity(&c);
}

#[test]
fn permission_denied_at_open_is_cantopen_naming_the_file() {
    let (_d, path, fs) = sim_store("perm.db");
    drop(setup(&path, 2));
    fs.inject(fault(FaultOp::Open, libc::EACCES, ".seg", true));
    let e = try_open_with(&path, &[]).and_then(|c| {
        c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
            .map(|_| c)
    });
    let e = e.map(|_| ()).expect_err("open must fail");
    assert_eq!(sqlite_code(&e).0, ErrorCode::CannotOpen, "{e}");
    let msg = bop_rusqlite::last_error().expect("a message");
    assert!(
        msg.contains("open") && msg.contains(".seg") && msg.contains("ermission"),
        "{msg}"
    );
    fs.clear_faults();
    let c = open(&path);
    assert_eq!(count(&c), 2);
}

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn real_disk_full_is_sqlite_full_and_recovers_when_space_returns() {
    let dir = tempdir();
    let Some(fs) = Tmpfs::mount(dir.path(), "12m") else {
        println!("SKIPPED: cannot mount a tmpfs here (needs root); the SimFs tests cover ENOSPC");
        return;
    };
    let path = dir.path().join("full.db");
    let c = open_with(&path, &[("log_segment_mb", "1")]);
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        .unwrap();
    let mut acked = 0i64;
    let err = loop {
        match c.execute(
            "INSERT INTO t(id, v) VALUES (?1, zeroblob(200000))",
            [acked + 1],
        ) {
            Ok(_) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 10_000, "the disk never filled");
    };
    assert_eq!(
        sqlite_code(&err).0,
        ErrorCode::DiskFull,
        "{err}: {:?}",
        bop_rusqlite::last_error()
    );
    let msg = bop_rusqlite::last_error().expect("a message");
    assert!(msg.contains("No space left"), "{msg}");
    drop(c);
    fs.resize("64m");
    let c = open(&path);
    assert_eq!(count(&c), acked, "every acknowledged row is there");
    assert_integrity(&c);
    drop(c);
}

#[test]
fn a_panic_in_the_write_path_fails_safe() {
    let (_d, path, fs) = sim_store("panic.db");
    let c = setup(&path, 4);
    fs.inject(Fault {
        op: FaultOp::Write,
        nth: 1,
        errno: SimFs::PANIC,
        path_contains: Some(".seg".into()),
        sticky: false,
    });
    // The panic is caught inside the VFS: an error, never an unwind into
    // SQLite; the store then refuses writes instead of going on half-way.
    let e = c
        .execute("INSERT INTO t(id, v) VALUES (5, 'x')", [])
        .unwrap_err();
    let msg = bop_rusqlite::last_error().unwrap_or_default();
    assert!(msg.contains("panic"), "{e}: {msg}");
    let e = c
        .execute("INSERT INTO t(id, v) VALUES (6, 'y')", [])
        .unwrap_err();
    let msg = bop_rusqlite::last_error().unwrap_or_default();
    assert!(msg.contains("refuses writes"), "{e}: {msg}");
    assert_eq!(count(&c), 4, "reads still work");
    drop(c);
    let c = open(&path);
    assert_eq!(
        count(&c),
        4,
        "nothing acknowledged lost, nothing half-written visible"
    );
    c.execute("INSERT INTO t(id, v) VALUES (5, 'after')", [])
        .unwrap();
    assert_integrity(&c);
}
