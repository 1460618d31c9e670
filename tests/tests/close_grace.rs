//! The close grace (`close_grace_ms`): a store whose last connection
//! closed stays open in the process for the grace, so the next open
//! revives it cheaply; it keeps its process lock meanwhile, another process
//! opening it waits for the grace to end, at most `LINGERING_MAX` stores
//! linger, the reaper closes a store cleanly when its grace ends, process
//! exit closes lingering stores cleanly, and a kill -9 while lingering
//! loses nothing acknowledged.

use std::io::{BufRead, BufReader};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bop_storage::linger::LINGERING_MAX;
use bop_tests::{assert_integrity, close, kill9, open_with, tempdir};
use rusqlite::Connection;

/// The lingering counters are process-wide: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time, starting with no store lingering.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    bop_storage::linger::close_all();
    g
}

fn stat(c: &Connection, key: &str) -> u64 {
    let s: String = c.query_row("PRAGMA bop_stats", [], |r| r.get(0)).unwrap();
    s.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} not in {s}"))
        .parse()
        .unwrap()
}

fn count(c: &Connection) -> i64 {
    c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

/// Whether some open file description holds `<store>/LOCK` (this
/// process's lingering store, or another process).
fn lock_held(store: &Path) -> bool {
    let f = std::fs::File::open(store.join("LOCK")).unwrap();
    // SAFETY: flock on a descriptor we own; no pointers.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    rc != 0
}

fn grace(ms: &str) -> [(&str, &str); 1] {
    [("close_grace_ms", ms)]
}

/// A store with table `t` of `rows` rows; its last connection closed.
fn make_store(store: &Path, grace_ms: &str, rows: i64) {
    let c = open_with(store, &grace(grace_ms));
    c.execute_batch("CREATE TABLE t(x)").unwrap();
    for i in 0..rows {
        c.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
    }
    close(c);
}

#[test]
fn an_open_within_the_grace_revives_the_store_and_sees_every_commit() {
    let _s = serial();
    let dir = tempdir();
    let store = dir.path().join("revive.bop");
    make_store(&store, "1000", 5);
    assert!(lock_held(&store), "a lingering store keeps its lock");
    for round in 0..3i64 {
        let c = open_with(&store, &grace("1000"));
        let revivals = stat(&c, "store_revivals");
        assert_eq!(stat(&c, "stores_lingering"), 0, "round {round}");
        assert_eq!(count(&c), 5 + round, "round {round}");
        c.execute("INSERT INTO t VALUES (?1)", [round]).unwrap();
        close(c);
        let c = open_with(&store, &grace("1000"));
        assert_eq!(stat(&c, "store_revivals"), revivals + 1, "round {round}");
        assert_eq!(count(&c), 6 + round, "round {round}");
        assert_integrity(&c);
        close(c);
    }
    bop_storage::linger::close(&store);
    assert!(!lock_held(&store), "closed: the lock is free");
}

#[test]
fn the_grace_ends_with_a_clean_shutdown_by_the_reaper() {
    let _s = serial();
    let dir = tempdir();
    let store = dir.path().join("expiry.bop");
    make_store(&store, "50", 3);
    assert!(lock_held(&store), "lingering");
    let t = Instant::now();
    while lock_held(&store) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the grace never ended"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let c = open_with(&store, &grace("50"));
    let revivals = stat(&c, "store_revivals");
    assert_eq!(stat(&c, "previous_shutdown_clean"), 1);
    assert_eq!(count(&c), 3);
    close(c);
    let c = open_with(&store, &grace("0"));
    assert_eq!(stat(&c, "store_revivals"), revivals + 1, "revived once");
    close(c);
}

#[test]
fn at_most_lingering_max_stores_linger_and_the_oldest_close_first() {
    let _s = serial();
    let dir = tempdir();
    let stores: Vec<_> = (0..LINGERING_MAX + 2)
        .map(|i| dir.path().join(format!("s{i}.bop")))
        .collect();
    // Created first (a creation syncs several files and directories: under
    // load, 18 of them can outlast the grace), then each opened and closed
    // within a grace.
    for s in &stores {
        make_store(s, "0", 1);
    }
    for s in &stores {
        close(open_with(s, &grace("1000")));
    }
    let held: Vec<bool> = stores.iter().map(|s| lock_held(s)).collect();
    let mut want = vec![true; stores.len()];
    want[0] = false;
    want[1] = false;
    assert_eq!(held, want, "the two oldest closed, the rest linger");
    let c = open_with(&stores[0], &grace("0"));
    assert_eq!(stat(&c, "stores_lingering"), LINGERING_MAX as u64);
    assert_eq!(stat(&c, "previous_shutdown_clean"), 1, "closed cleanly");
    close(c);
    bop_storage::linger::close_all();
    assert!(stores.iter().all(|s| !lock_held(s)));
}

fn probe(store: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_probe"))
        .arg(store)
        .args(args)
        .output()
        .expect("running the probe");
    assert!(out.status.success(), "probe crashed: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn another_process_opens_a_store_lingering_here_and_a_held_one_is_busy_soon() {
    let _s = serial();
    let dir = tempdir();
    let store = dir.path().join("handover.bop");
    // Held open here: SQLITE_BUSY without waiting for any grace.
    let c = open_with(&store, &grace("1000"));
    c.execute_batch("CREATE TABLE t(x)").unwrap();
    let t = Instant::now();
    let answer = probe(&store, &[]);
    assert!(answer.starts_with("err Some(DatabaseBusy)"), "{answer}");
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "busy after {:?}",
        t.elapsed()
    );
    // Closed here, lingering for a second: the other process waits it out.
    close(c);
    assert!(lock_held(&store));
    assert_eq!(probe(&store, &[]), "ok 1");
}

#[test]
fn process_exit_closes_a_lingering_store_cleanly() {
    let _s = serial();
    let dir = tempdir();
    let store = dir.path().join("exit.bop");
    for round in 1..=3i64 {
        assert_eq!(probe(&store, &["write", "1000"]), format!("closed {round}"));
        let c = open_with(&store, &grace("0"));
        assert_eq!(stat(&c, "previous_shutdown_clean"), 1, "round {round}");
        assert_eq!(count(&c), round);
        close(c);
    }
}

#[test]
fn a_kill_9_while_lingering_loses_nothing_acknowledged() {
    let _s = serial();
    let dir = tempdir();
    let store = dir.path().join("kill.bop");
    for round in 1..=3i64 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_probe"))
            .arg(&store)
            .args(["write", "1000", "linger"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning the probe");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), format!("closed {round}"));
        kill9(&mut child);
        let c = open_with(&store, &grace("0"));
        assert_eq!(stat(&c, "previous_shutdown_clean"), 0, "round {round}");
        assert_eq!(count(&c), round, "round {round}");
        assert_integrity(&c);
        close(c);
    }
}

#[test]
fn a_forked_child_exiting_leaves_the_parents_lingering_store_alone() {
    let _s = serial();
    let dir = tempdir();
    let store = dir.path().join("fork.bop");
    make_store(&store, "1000", 2);
    let revivals = bop_storage::linger::stats().1;
    // SAFETY: the child only calls exit(3) (running the atexit hooks, as a
    // child that returns from its work does); the parent waits for it.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: ends the child; no Rust state is used after it.
        unsafe { libc::exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above, with a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    // The child closed nothing: the store is revived as it was left.
    let c = open_with(&store, &grace("1000"));
    assert_eq!(stat(&c, "store_revivals"), revivals + 1, "revived");
    assert_eq!(count(&c), 2);
    close(c);
}

#[test]
fn a_store_whose_files_changed_while_it_lingered_is_opened_afresh() {
    let _s = serial();
    let dir = tempdir();
    let store = dir.path().join("changed.bop");
    make_store(&store, "1000", 4);
    let revivals = bop_storage::linger::stats().1;
    // Another writer (here: the same bytes written back, after the mtime
    // can tell) touched a record-log segment behind the lingering store.
    std::thread::sleep(Duration::from_millis(20));
    let seg = std::fs::read_dir(store.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("a segment");
    let bytes = std::fs::read(&seg).unwrap();
    std::fs::write(&seg, &bytes).unwrap();
    let c = open_with(&store, &grace("0"));
    assert_eq!(stat(&c, "store_revivals"), revivals, "not revived");
    assert_eq!(count(&c), 4);
    assert_integrity(&c);
    close(c);
}

/// Copies a store directory as `cp -a` does (SQLite's test suite copies a
/// closed database's files back the same way: `db_restore`).
fn copy_dir(from: &Path, to: &Path) {
    let st = Command::new("cp").arg("-a").arg(from).arg(to).status();
    assert!(st.expect("running cp").success(), "cp -a {from:?} {to:?}");
}

/// Every file under `dir` with its size and modification time.
fn listing(dir: &Path) -> Vec<(String, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::metadata(&p).unwrap();
            if m.is_dir() {
                todo.push(p);
            } else {
                let name = p.strip_prefix(dir).unwrap().display().to_string();
                out.push((name, m.size(), m.mtime(), m.mtime_nsec()));
            }
        }
    }
    out.sort();
    out
}

/// Waits until the store's record log has a prepared spare segment of
/// `bytes` (prepared in the background once a segment is half full).
fn wait_for_spare(store: &Path, bytes: u64) {
    let t = Instant::now();
    loop {
        let ready = std::fs::read_dir(store.join("wal")).unwrap().any(|e| {
            let p = e.unwrap().path();
            p.extension().is_some_and(|x| x == "spare")
                && std::fs::metadata(&p).is_ok_and(|m| m.len() == bytes)
        });
        if ready {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no spare segment");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// SQLite's walcrash3.test: a copy of the store's directory is restored
/// over it while the store lingers, and another process may already use
/// the copy when the grace ends. The reaper then closes the lingering
/// store without a write into the copy: before, its clean close deleted
/// the copy's spare log segments by name (under a process that had
/// adopted them), and the next open failed.
#[test]
fn a_directory_restored_over_a_lingering_store_is_left_alone_at_its_close() {
    let _s = serial();
    let dir = tempdir();
    let store = dir.path().join("restored.bop");
    let saved = dir.path().join("saved.bop");
    let params = [("close_grace_ms", "300"), ("log_segment_mb", "1")];
    let c = open_with(&store, &params);
    c.execute_batch("CREATE TABLE t(x)").unwrap();
    for _ in 0..40 {
        c.execute("INSERT INTO t VALUES (zeroblob(16000))", [])
            .unwrap();
    }
    close(c);
    wait_for_spare(&store, 1 << 20);
    copy_dir(&store, &saved);
    // One more commit, revived and lingering again: it is not in the copy.
    let c = open_with(&store, &params);
    c.execute("INSERT INTO t VALUES (1)", []).unwrap();
    close(c);
    assert!(lock_held(&store), "lingering");
    std::fs::remove_dir_all(&store).unwrap();
    copy_dir(&saved, &store);
    let restored = listing(&store);
    // The grace ends: the reaper closes the store it held.
    let t = Instant::now();
    while bop_storage::linger::stats().0 > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the grace never ended"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        listing(&store),
        restored,
        "the closing store wrote into the directory restored over it"
    );
    let c = open_with(&store, &grace("0"));
    assert_eq!(count(&c), 40, "the copy's commits");
    assert_integrity(&c);
    close(c);
}

/// A store whose directory is replaced while a connection reads it
/// neither lingers nor is revived for the replacement: the next open
/// reads the replacement's commits, not the replaced store's.
#[test]
fn a_store_whose_directory_was_replaced_while_open_is_not_revived_for_it() {
    let _s = serial();
    let dir = tempdir();
    let store = dir.path().join("replaced.bop");
    let saved = dir.path().join("saved.bop");
    make_store(&store, "0", 3);
    copy_dir(&store, &saved);
    let c = open_with(&store, &grace("0"));
    c.execute("INSERT INTO t VALUES (3)", []).unwrap();
    close(c);
    let c = open_with(&store, &grace("1000"));
    assert_eq!(count(&c), 4);
    std::fs::remove_dir_all(&store).unwrap();
    copy_dir(&saved, &store);
    close(c);
    let revivals = bop_storage::linger::stats().1;
    let c = open_with(&store, &grace("0"));
    assert_eq!(bop_storage::linger::stats().1, revivals, "not revived");
    assert_eq!(count(&c), 3, "the replacement's commits");
    assert_integrity(&c);
    close(c);
}
