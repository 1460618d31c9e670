//! The wal-index bop hands SQLite at open (bop-vfs `wal_index.rs`): byte
//! for byte what stock SQLite's own recovery builds, and through bop after
//! a crash, SQLite starts from it without reading the WAL again, sees
//! every committed row, and goes on committing frames whose checksums
//! continue the chain (SQLite's own recovery, run afterwards, accepts
//! them).

use std::path::Path;

use bop_storage::wal_format::{parse_record, GenerationState};
use bop_storage::wal_image::WalIndexSeed;
use bop_tests::{assert_integrity, open_with, tempdir};
use rusqlite::{Connection, OpenFlags};

/// The value of `PRAGMA bop_stats` field `name`.
fn stat(c: &Connection, name: &str) -> u64 {
    let s: String = c.query_row("PRAGMA bop_stats", [], |r| r.get(0)).unwrap();
    s.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} not in bop_stats: {s}"))
        .parse()
        .unwrap()
}

/// Writes `txns` transactions that touch many pages, and pages again and
/// again (so hash chains hold several frames of one page).
fn write_txns(c: &Connection, from: i64, txns: i64) {
    for t in from..from + txns {
        let tx = c.unchecked_transaction().unwrap();
        for i in 0..12 {
            let id = t * 12 + i;
            tx.execute(
                "INSERT INTO t(id, v) VALUES (?1, ?2)",
                rusqlite::params![id, vec![(id % 251) as u8; 900]],
            )
            .unwrap();
        }
        tx.execute("UPDATE hot SET n = n + 1", []).unwrap();
        tx.commit().unwrap();
    }
}

fn check_rows(c: &Connection, txns: i64) {
    let (n, bad): (i64, i64) = c
        .query_row(
            "SELECT count(*), sum(length(v) != 900 OR hex(substr(v, 1, 1)) != printf('%02X', id % 251)) FROM t",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(n, txns * 12);
    assert_eq!(bad, 0, "rows with wrong content");
    let hot: i64 = c.query_row("SELECT n FROM hot", [], |r| r.get(0)).unwrap();
    assert_eq!(hot, txns, "the page updated by every transaction");
}

#[test]
fn the_prebuilt_index_is_the_one_sqlite_recovery_builds() {
    let dir = tempdir();
    let live = dir.path().join("live.db");
    let c = Connection::open(&live).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
         CREATE TABLE hot(n INTEGER); INSERT INTO hot VALUES (0);",
    )
    .unwrap();
    // Over 4062 frames: the index spills into its second region.
    write_txns(&c, 0, 800);
    // A crash copy: the database and its WAL as they are, no -shm.
    let copy = dir.path().join("copy.db");
    std::fs::copy(&live, &copy).unwrap();
    let wal = std::fs::read(dir.path().join("live.db-wal")).unwrap();
    std::fs::write(dir.path().join("copy.db-wal"), &wal).unwrap();
    drop(c);

    // bop's index from the frames of the copied WAL (one record here).
    let frames = parse_record(&mut GenerationState::default(), 0, &wal).expect("frames");
    assert!(frames.frames.len() > 4100, "{} frames", frames.frames.len());
    let seed = WalIndexSeed {
        header: frames.header.unwrap(),
        frames: frames.frames,
        last_cksum: frames.last_cksum,
    };
    let ours = bop_vfs::testing::wal_index_bytes(&seed).expect("an index");

    // Stock SQLite recovers the copy; its -shm file is the index it built.
    let stock = Connection::open_with_flags(&copy, OpenFlags::SQLITE_OPEN_READ_WRITE).unwrap();
    check_rows(&stock, 800);
    let shm = std::fs::read(dir.path().join("copy.db-shm")).unwrap();
    assert_eq!(shm.len(), ours.len(), "regions");
    for (region, (a, b)) in shm.chunks(32768).zip(ours.chunks(32768)).enumerate() {
        if let Some(at) = a.iter().zip(b).position(|(x, y)| x != y) {
            panic!(
                "region {region} differs at byte {at}: stock {:?}, bop {:?}",
                &a[at..(at + 8).min(a.len())],
                &b[at..(at + 8).min(b.len())]
            );
        }
    }
}

fn crash(store: &Path, conns: Vec<Connection>) {
    assert!(bop_vfs::testing::halt(store));
    drop(conns);
}

#[test]
fn after_a_crash_sqlite_starts_from_the_prebuilt_index_and_keeps_committing() {
    let dir = tempdir();
    let store = dir.path().join("w.bop");
    // The background checkpoint policy off: the WAL keeps every frame.
    let params = [("ckpt_wal_mb", "0"), ("ckpt_age_s", "0")];
    let c = open_with(&store, &params);
    c.execute_batch(
        "PRAGMA wal_autocheckpoint=0;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
         CREATE TABLE hot(n INTEGER); INSERT INTO hot VALUES (0);",
    )
    .unwrap();
    write_txns(&c, 0, 800);
    let frames = (stat(&c, "wal_image_bytes") - 32) / (4096 + 24);
    assert!(frames > 4100, "{frames} frames");
    let reader = open_with(&store, &params);
    check_rows(&reader, 800);
    crash(&store, vec![c, reader]);

    // Reopen: the index is bop's, and SQLite reads what it needs only.
    let c = open_with(&store, &params);
    assert_eq!(stat(&c, "wal_index_prebuilt_frames"), frames);
    check_rows(&c, 800);
    assert_integrity(&c);
    // New commits continue the WAL from the prebuilt header's checksum.
    c.execute_batch("PRAGMA wal_autocheckpoint=0").unwrap();
    write_txns(&c, 800, 50);
    crash(&store, vec![c]);

    // SQLite's own recovery (bop's index turned off) walks the checksum
    // chain through the frames written after the first reopen: had bop's
    // header carried a wrong checksum, it would stop at the first of them.
    bop_vfs::testing::set_prebuild_wal_index(false);
    let c = open_with(&store, &params);
    bop_vfs::testing::set_prebuild_wal_index(true);
    assert_eq!(stat(&c, "wal_index_prebuilt_frames"), 0);
    check_rows(&c, 850);
    assert_integrity(&c);
}
