//! Opening and closing a store that was shut down cleanly is cheap: the
//! open's epoch begins with its first change, so an open that only reads
//! writes nothing (not the manifest, not the record log) and its close
//! needs no clean-shutdown mark. The first write begins the epoch durably
//! before its record, so a crash right after it recovers that record.

use std::collections::BTreeMap;
use std::path::Path;

use bop_tests::{assert_integrity, close, open, open_with, stat, tempdir};
use rusqlite::Connection;

/// Every file of the store but `LOCK` (which holds the owner's pid), with
/// its bytes.
fn snapshot(store: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![store.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.file_name().unwrap() != "LOCK" {
                let rel = p.strip_prefix(store).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn count(c: &Connection) -> i64 {
    c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

/// A store holding table `t` with `rows` rows, closed cleanly.
fn make_store(store: &Path, rows: i64) {
    let c = open(store);
    c.execute_batch("CREATE TABLE t(x)").unwrap();
    for i in 0..rows {
        c.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
    }
    close(c);
}

#[test]
fn an_open_that_only_reads_leaves_every_store_file_unchanged() {
    let dir = tempdir();
    let store = dir.path().join("ro.bop");
    make_store(&store, 10);
    let before = snapshot(&store);
    assert!(
        before.contains_key("manifest/data.mdb"),
        "{:?}",
        before.keys()
    );
    for round in 0..3 {
        let c = open(&store);
        assert_eq!(count(&c), 10, "round {round}");
        assert_eq!(stat(&c, "previous_shutdown_clean"), 1, "round {round}");
        close(c);
        let after = snapshot(&store);
        assert_eq!(
            after.keys().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>(),
            "round {round}: files added or removed"
        );
        for (name, bytes) in &before {
            assert!(after[name] == *bytes, "round {round}: {name} changed");
        }
    }
    // The snapshot does see a write: a commit changes the store's files.
    let c = open(&store);
    c.execute("INSERT INTO t VALUES (10)", []).unwrap();
    close(c);
    assert_ne!(snapshot(&store), before, "a commit changed nothing on disk");
    let c = open(&store);
    assert_eq!(count(&c), 11);
    assert_eq!(stat(&c, "previous_shutdown_clean"), 1);
    assert_integrity(&c);
    close(c);
}

#[test]
fn a_crash_after_the_first_write_of_a_clean_open_recovers_it() {
    let dir = tempdir();
    let store = dir.path().join("first.bop");
    make_store(&store, 3);
    for round in 0..3i64 {
        // Opened after a clean shutdown (or after the recovery below), one
        // commit, then the process "dies" before closing.
        let c = open(&store);
        c.execute_batch("PRAGMA synchronous=FULL").unwrap();
        c.execute("INSERT INTO t VALUES (?1)", [100 + round])
            .unwrap();
        assert!(bop_vfs::testing::halt(&store), "store open at the crash");
        drop(c);
        let c = open(&store);
        assert_eq!(count(&c), 4 + round, "round {round}");
        assert_eq!(stat(&c, "previous_shutdown_clean"), 0, "round {round}");
        assert_integrity(&c);
        close(c);
    }
    // A read-only open that crashes leaves the store clean (once the
    // last close's grace ended: the store lingered, open, until then).
    bop_storage::linger::close(&store);
    let c = open(&store);
    assert_eq!(count(&c), 6);
    assert!(bop_vfs::testing::halt(&store));
    drop(c);
    let c = open(&store);
    assert_eq!(stat(&c, "previous_shutdown_clean"), 1);
    assert_eq!(count(&c), 6);
    close(c);
}

#[test]
fn the_lock_file_holds_the_owners_pid() {
    let dir = tempdir();
    let store = dir.path().join("pid.bop");
    make_store(&store, 1);
    // A longer id left by an earlier owner is replaced whole.
    std::fs::write(store.join("LOCK"), "4294967295").unwrap();
    let c = open(&store);
    let pid = std::process::id().to_string();
    assert_eq!(std::fs::read_to_string(store.join("LOCK")).unwrap(), pid);
    close(c);
    let c = open(&store);
    assert_eq!(std::fs::read_to_string(store.join("LOCK")).unwrap(), pid);
    close(c);
}

/// A connection per request on a store that stays open in the process
/// (the close grace): each open + insert + close costs one manifest commit
/// (SQLite's checkpoint at the last close is published with its deletion of
/// the WAL, not at its sync, and the chunk-id reservation outlives the
/// connection). The store's own close then
/// settles the reservation: the next open finds nothing to replay.
#[test]
fn a_connection_per_insert_costs_one_manifest_commit() {
    let dir = tempdir();
    let store = dir.path().join("cycle.bop");
    make_store(&store, 10);
    let cycles = 6;
    let mut deltas = Vec::new();
    // The longest grace: a slow machine's cycle stays within it.
    const GRACE: &[(&str, &str)] = &[("close_grace_ms", "1000")];
    let c = open_with(&store, GRACE);
    let mut m = stat(&c, "manifest_commits");
    c.execute("INSERT INTO t VALUES (-1)", []).unwrap();
    close(c);
    for i in 0..cycles {
        let c = open_with(&store, GRACE);
        let now = stat(&c, "manifest_commits");
        deltas.push(now - m);
        m = now;
        c.execute("INSERT INTO t VALUES (?1)", [100 + i as i64])
            .unwrap();
        close(c);
    }
    let c = open_with(&store, GRACE);
    deltas.push(stat(&c, "manifest_commits") - m);
    assert_eq!(count(&c), 10 + 1 + cycles as i64);
    close(c);
    // One commit per cycle: the publish of the close's checkpoint with the
    // base move. A reservation of chunk ids (the store's earlier ones
    // continue) or a publish at the checkpoint's sync would add one.
    assert!(deltas.iter().all(|&d| d == 1), "{deltas:?}");
    bop_storage::linger::close(&store);
    let c = open(&store);
    assert_eq!(stat(&c, "journal_pending"), 0);
    assert_eq!(stat(&c, "journal_replayed"), 0);
    assert_eq!(stat(&c, "previous_shutdown_clean"), 1);
    assert_eq!(count(&c), 10 + 1 + cycles as i64);
    assert_integrity(&c);
    close(c);
}
