//! One process owns a store: a second process gets SQLITE_BUSY ("database
//! is locked"), while connections within one process share it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use bop_tests::{close, kill9, open, tempdir, try_open_with};
use rusqlite::ErrorCode;

fn probe(store: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_probe"))
        .arg(store)
        .output()
        .expect("running the probe");
    assert!(out.status.success(), "probe crashed: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn assert_locked(answer: &str) {
    assert!(
        answer.starts_with("err Some(DatabaseBusy)") || answer.to_lowercase().contains("locked"),
        "a second process must get SQLITE_BUSY / database is locked, got: {answer}"
    );
}

#[test]
fn second_process_is_refused_while_open_here() {
    let dir = tempdir();
    let store = dir.path().join("owned.db");
    let a = open(&store);
    let b = open(&store);
    a.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    // Same process: shared.
    let n: i64 = b
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    assert_locked(&probe(&store));
    close(a);
    assert_locked(&probe(&store));
    close(b);
    // Once every connection here is closed, another process may open it.
    assert_eq!(probe(&store), "ok 1");
    // And then this process can again.
    let c = open(&store);
    let n: i64 = c
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    close(c);
}

#[test]
fn this_process_is_refused_while_a_child_owns_the_store() {
    let dir = tempdir();
    let store = dir.path().join("child.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
        .arg(&store)
        .args(["--txns", "3", "--max-rows", "5"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning crash_writer");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l == "done" => break,
            Some(Ok(_)) => {}
            other => {
                kill9(&mut child);
                panic!("crash_writer ended early: {other:?}");
            }
        }
    }
    let r = try_open_with(&store, &[])
        .and_then(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)));
    kill9(&mut child);
    match r {
        Ok(n) => panic!("opened a store another process owns (read {n} rows)"),
        Err(e) => {
            let msg = bop_rusqlite::last_error().unwrap_or_default();
            assert_eq!(
                e.sqlite_error_code(),
                Some(ErrorCode::DatabaseBusy),
                "{e}: {msg}"
            );
            assert!(msg.contains("locked by another process"), "{e}: {msg}");
        }
    }
    // The owner is gone (SIGKILL releases the flock): now it opens, with the
    // child's three transactions.
    let c = open(&store);
    let n: i64 = c
        .query_row("SELECT count(DISTINCT txn) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
    bop_tests::assert_integrity(&c);
    close(c);
}
