//! I/O errors surface as SQLite errors with a message naming the file and
//! the operation; the store then refuses writes rather than pretend; once
//! the fault clears, the database reopens with nothing acknowledged lost.
//! Faults come from the simulated file system (`SimFs`), and disk-full also
//! from a real, small tmpfs (mounted in a mount namespace of the test's own).

use std::path::Path;
use std::sync::Arc;

use bop_storage::io::sim::{CrashMode, Fault, FaultOp, SimFs, SimRng};
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

/// Commits 2 MiB more (a table of its own): a checkpoint of it writes
/// more pages than a checkpoint's sync leaves unpublished
/// (`publish_defer_bytes_max`, 1 MiB), so it writes a chunk file.
fn past_the_deferred_publish(c: &Connection) {
    c.execute_batch("CREATE TABLE big(b BLOB); INSERT INTO big VALUES (zeroblob(2097152));")
        .unwrap();
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
    // A power cut losing everything unsynced: the failed commit was never
    // durable (no fdatasync of it succeeded), so exactly the acknowledged
    // rows are there.
    let fs = fs.crash(CrashMode::LoseAll, &mut SimRng::new(1));
    bop_vfs::testing::set_store_io(&path, Some(Arc::new(fs)));
    let c = open(&path);
    let ids: Vec<i64> = c
        .prepare("SELECT id FROM t ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids, [1, 2, 3]);
    assert_integrity(&c);
    c.execute("INSERT INTO t(id, v) VALUES (4, 'after')", [])
        .unwrap();
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
    past_the_deferred_publish(&c);
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
    // Close the store now rather than at the end of its close grace (a
    // revival would open no file).
    bop_storage::linger::close(&path);
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

// ----- a real disk full -----
//
// The scenario runs on a small tmpfs mounted for it. Mounting needs
// CAP_SYS_ADMIN, so the test re-runs itself (this test binary, this one
// test) in a child process with a mount namespace of its own (root may
// create one), inside a new user namespace as well when not root (there an
// unprivileged user may mount a tmpfs). The mount disappears with the
// child, whatever happens to it. Where neither is possible the test fails
// and says what the machine lacks; it never passes without running.

const DISK_FULL_TEST: &str = "real_disk_full_is_sqlite_full_and_recovers_when_space_returns";
/// Set in the child: the directory to mount the tmpfs on.
const DISK_FULL_DIR_ENV: &str = "BOP_TEST_DISK_FULL_DIR";
/// Printed by the child once the scenario has run to its end.
const DISK_FULL_DONE: &str = "disk-full scenario done:";

#[test]
fn real_disk_full_is_sqlite_full_and_recovers_when_space_returns() {
    if let Some(dir) = std::env::var_os(DISK_FULL_DIR_ENV) {
        // The child, inside its own mount namespace.
        let acked = real_disk_full_scenario(Path::new(&dir));
        println!("{DISK_FULL_DONE} {acked} rows acknowledged before ENOSPC");
        return;
    }
    let dir = tempdir();
    let out = run_in_mount_namespace(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the disk-full scenario failed in its mount namespace ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // The harness prints the test's name on the same line, before it.
    let done = stdout.find(DISK_FULL_DONE).map(|at| &stdout[at..]);
    let done =
        done.unwrap_or_else(|| panic!("the child did not run the scenario:\n{stdout}\n{stderr}"));
    println!("{}", done.lines().next().unwrap_or_default());
}

/// Re-runs this test in a child process with a private mount namespace (and
/// a user namespace mapping the caller to root there, when not root or
/// when root may not create a mount namespace alone), the child mounting
/// its tmpfs on `dir`. Panics, naming what the machine lacks, where neither
/// can be set up.
fn run_in_mount_namespace(dir: &Path) -> std::process::Output {
    // SAFETY: getuid cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    let mut refused = Vec::new();
    let user_ns = if uid == 0 {
        &[false, true][..]
    } else {
        &[true][..]
    };
    for &user_ns in user_ns {
        match spawn_in_mount_namespace(dir, user_ns) {
            Ok(out) => return out,
            Err(e) => refused.push(format!("user namespace {user_ns}: {e}")),
        }
    }
    panic!(
        "the real disk-full test mounts a tmpfs in a mount namespace of its own, and this \
         machine refuses one to uid {uid} ({}). As root that is unshare(CLONE_NEWNS), which \
         needs CAP_SYS_ADMIN; otherwise an unprivileged user namespace \
         (unshare(CLONE_NEWUSER|CLONE_NEWNS)), which needs user.max_user_namespaces > 0 (ENOSPC \
         when it is 0) and no LSM or seccomp filter refusing it (for example \
         kernel.apparmor_restrict_unprivileged_userns=1). Run the suite as root or allow \
         unprivileged user namespaces.",
        refused.join("; ")
    )
}

/// Runs this test binary's disk-full test in a child process that first
/// enters a new mount namespace (and, with `user_ns`, a new user namespace
/// where the caller is root). An `Err` is the namespace being refused.
fn spawn_in_mount_namespace(dir: &Path, user_ns: bool) -> std::io::Result<std::process::Output> {
    use std::os::unix::process::CommandExt;
    // SAFETY: getuid/getgid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // Built before the fork: the child may not allocate (another thread of
    // this process could hold the allocator's lock at the fork).
    let maps = [
        (c"/proc/self/setgroups", "deny".to_string()),
        (c"/proc/self/uid_map", format!("0 {uid} 1")),
        (c"/proc/self/gid_map", format!("0 {gid} 1")),
    ];
    let flags = if user_ns {
        libc::CLONE_NEWUSER | libc::CLONE_NEWNS
    } else {
        libc::CLONE_NEWNS
    };
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(["--exact", DISK_FULL_TEST, "--nocapture", "--test-threads=1"])
        .env(DISK_FULL_DIR_ENV, dir);
    // SAFETY: the closure runs in the forked child before exec and makes
    // only system calls on memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(flags) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if user_ns {
                for (file, text) in &maps {
                    write_proc_file(file, text.as_bytes())?;
                }
            }
            // Mounts made in the child must not propagate back to the
            // parent's namespace (on systemd machines `/` is shared).
            let private = libc::MS_REC | libc::MS_PRIVATE;
            let none = std::ptr::null();
            if libc::mount(none, c"/".as_ptr(), none, private, none.cast()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output()
}

/// Writes `text` to a /proc file with plain system calls (no allocation).
///
/// # Safety
/// Safe to call between fork and exec.
unsafe fn write_proc_file(file: &std::ffi::CStr, text: &[u8]) -> std::io::Result<()> {
    // SAFETY: `file` is NUL-terminated; `text` is a live buffer.
    unsafe {
        let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = libc::write(fd, text.as_ptr().cast(), text.len());
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if n != text.len() as isize {
            return Err(err);
        }
    }
    Ok(())
}

/// Mounts (or, with `remount`, resizes) a tmpfs of `size` on `dir`.
fn mount_tmpfs(dir: &Path, size: &str, remount: bool) {
    use std::os::unix::ffi::OsStrExt;
    let target = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    let data = std::ffi::CString::new(format!("size={size}")).unwrap();
    let flags = if remount { libc::MS_REMOUNT } else { 0 };
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    let r = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    assert_eq!(
        r,
        0,
        "mounting a {size} tmpfs on {} (remount: {remount}): {}",
        dir.display(),
        std::io::Error::last_os_error()
    );
}

/// Fills a 12 MiB tmpfs on `dir` until a commit fails, checks the failure
/// is SQLITE_FULL with the OS's message, grows the tmpfs and checks every
/// acknowledged row is there. Returns how many rows were acknowledged.
fn real_disk_full_scenario(dir: &Path) -> i64 {
    mount_tmpfs(dir, "12m", false);
    let path = dir.join("full.db");
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
    assert!(acked > 0, "the disk filled before the first commit");
    drop(c);
    mount_tmpfs(dir, "64m", true);
    let c = open(&path);
    assert_eq!(count(&c), acked, "every acknowledged row is there");
    assert_integrity(&c);
    drop(c);
    acked
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

/// A panic while the page store is locked (writing a chunk during a
/// checkpoint) leaves reads working: the VFS turns the panic into an error
/// and fails the store, later reads return every row (from the page store,
/// whose lock the panic poisoned), writes are refused, and the reopened
/// store has every acknowledged row.
#[test]
fn a_panic_in_a_checkpoint_leaves_reads_working() {
    let (_d, path, fs) = sim_store("ckpt-panic.db");
    drop(setup(&path, 200)); // checkpoints everything into chunks
    let c = open(&path);
    for i in 201..=300 {
        c.execute("INSERT INTO t(id, v) VALUES (?1, 'more')", [i])
            .unwrap();
    }
    past_the_deferred_publish(&c);
    fs.inject(Fault {
        op: FaultOp::Write,
        nth: 1,
        errno: SimFs::PANIC,
        path_contains: Some(".chunk".into()),
        sticky: false,
    });
    let r = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    });
    let msg = bop_rusqlite::last_error().unwrap_or_default();
    assert!(r.is_err() && msg.contains("panic"), "{r:?}: {msg}");
    // A second connection to the same open store: its page cache is empty,
    // so its reads reach the store.
    let reader = open(&path);
    let sum: i64 = reader
        .query_row("SELECT sum(id) FROM t", [], |r| r.get(0))
        .unwrap_or_else(|e| {
            panic!(
                "reads after the panic: {e}: {:?}",
                bop_rusqlite::last_error()
            )
        });
    assert_eq!(sum, 300 * 301 / 2);
    assert_eq!(count(&c), 300);
    drop(reader);
    let e = c
        .execute("INSERT INTO t(id, v) VALUES (301, 'refused')", [])
        .unwrap_err();
    let msg = bop_rusqlite::last_error().unwrap_or_default();
    assert!(msg.contains("refuses writes"), "{e}: {msg}");
    drop(c);
    let c = open(&path);
    assert_eq!(count(&c), 300, "every acknowledged row after reopen");
    assert_integrity(&c);
    c.execute("INSERT INTO t(id, v) VALUES (301, 'after')", [])
        .unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    })
    .unwrap();
    assert_eq!(count(&c), 301);
}
