//! The LMDB structure check (`src/manifest/lmdb_check.rs`) accepts every
//! manifest bop writes, at every commit, and with it no flipped bit in a
//! manifest crashes the process inside LMDB.
//!
//! The checker is private to bop-storage; the test compiles the same source
//! file as a module of its own (it needs only `crate::error`).

mod common;

#[path = "../src/manifest/lmdb_check.rs"]
#[allow(dead_code)]
mod lmdb_check;

/// What `lmdb_check.rs` imports as `crate::error`.
mod error {
    pub use bop_storage::{Result, StorageError};
}

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bop_storage::io::sim::SimRng;
use bop_storage::log::LogConfig;
use bop_storage::page_store::PageStoreConfig;
use bop_storage::{Store, StoreOptions};
use common::{child_outcome, copy_dir};
use lmdb_check::{check, check_report, Report};

fn data_mdb(store: &Path) -> PathBuf {
    store.join("manifest").join("data.mdb")
}

fn opts(page_size: u32, chunk_pages: u64) -> StoreOptions {
    StoreOptions {
        page_size: Some(page_size),
        log: LogConfig {
            segment_bytes: 1 << 20,
            ..Default::default()
        },
        page_store: PageStoreConfig {
            chunk_bytes_max: chunk_pages * u64::from(page_size),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn must_pass(path: &Path, when: &str) -> Report {
    let r = match check_report(&data_mdb(path)) {
        Ok(r) => r,
        Err(e) => panic!("false positive {when}: {e}"),
    };
    // Not checked by lmdb_check (LMDB has leaked pages in the past), but
    // it holds for every manifest here: every page up to the last one is in
    // a tree, in the free list, or a meta page (mdb.c's mdb_audit).
    assert_eq!(
        r.tree_pages + r.free_pages + 2,
        r.last_pg + 1,
        "{when}: {r:?}"
    );
    r
}

/// Drives one store through `rounds` rounds of page writes, publishes,
/// truncates, WAL traffic and reopens, checking the manifest after every
/// publish and every reopen. Returns the last report.
fn exercise(path: &Path, page_size: u32, db_pages: u32, rounds: u32, seed: u64) -> Report {
    let o = opts(page_size, 16 + u64::from(db_pages / 8));
    let ps = u64::from(page_size);
    let mut rng = SimRng::new(seed);
    let mut store: Arc<Store> = Store::open_shared(path, &o).unwrap();
    let mut want: BTreeMap<u32, u8> = BTreeMap::new();
    let mut size = 0u32;
    let mut frame = 1u64;
    let mut checks = 0u32;
    for round in 0..rounds {
        // First fill the database, then rewrite random pages.
        let (from, count) = if round == 0 {
            (1, db_pages)
        } else {
            let n = 1 + rng.below(u64::from(db_pages / 4).max(1)) as u32;
            (0, n)
        };
        for i in 0..count {
            let p = if from == 0 {
                1 + rng.below(u64::from(db_pages)) as u32
            } else {
                from + i
            };
            let fill = rng.below(256) as u8;
            let page = vec![fill; page_size as usize];
            store.db_write(u64::from(p - 1) * ps, &page).unwrap();
            want.insert(p, fill);
            size = size.max(p);
        }
        store.db_sync().unwrap();
        must_pass(path, &format!("after publish {round}"));
        checks += 1;
        if rng.chance(20) && size > 2 {
            // Shrink the database: page entries are deleted.
            let keep = 1 + rng.below(u64::from(size - 1)) as u32;
            store.db_truncate(u64::from(keep) * ps).unwrap();
            store.db_sync().unwrap();
            want.retain(|&p, _| p <= keep);
            size = keep;
            must_pass(path, &format!("after truncate to {keep} in round {round}"));
            checks += 1;
        }
        if page_size == common::PAGE && rng.chance(50) {
            // WAL traffic registers segments; deleting the WAL drops them.
            let pages: Vec<(u32, u8)> = (0..1 + rng.below(40))
                .map(|i| (1 + i as u32, rng.below(256) as u8))
                .collect();
            frame = common::write_txn(&store, frame, &pages, size.max(1));
            store.wal_image_sync().unwrap();
            if rng.chance(40) {
                store.wal_image_delete().unwrap();
                frame = 1;
            }
            must_pass(path, &format!("after WAL traffic in round {round}"));
            checks += 1;
        }
        if rng.chance(25) {
            if rng.chance(50) {
                store.halt();
            }
            drop(store);
            must_pass(path, &format!("after closing in round {round}"));
            store = Store::open_shared(path, &o).unwrap();
            must_pass(path, &format!("after reopening in round {round}"));
            checks += 2;
            frame = 1;
            // What the WAL held may have been recovered into the image;
            // forget it: only pages written with db_write are compared.
            if store.wal_image_size() > 0 {
                store.wal_image_delete().unwrap();
            }
            want.retain(|&p, _| u64::from(p) * ps <= store.db_size());
        }
    }
    let mut buf = vec![0u8; page_size as usize];
    if store.wal_image_size() == 0 {
        for (&p, &fill) in &want {
            store.db_read(u64::from(p - 1) * ps, &mut buf).unwrap();
            assert!(buf.iter().all(|&b| b == fill), "page {p}");
        }
    }
    drop(store);
    let report = must_pass(path, "at the end");
    assert!(checks > rounds);
    report
}

#[test]
fn real_manifests_pass() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let cases: &[(u32, u32, u32)] = &[
        // (page size, database pages, rounds)
        (4096, 3, 40),
        (4096, 200, 60),
        (512, 5_000, 40),
        (512, 30_000, 25),
        (512, 100_000, 12),
    ];
    for (n, &(page_size, db_pages, rounds)) in cases.iter().enumerate() {
        let path = root.path().join(format!("s{n}.db"));
        let r = exercise(&path, page_size, db_pages, rounds, 0x5eed + n as u64);
        println!("{page_size}-byte pages, {db_pages} pages, {rounds} rounds: {r:?}");
        assert_eq!(
            r.databases, 7,
            "meta, segments, changes, cursors, journal, chunks, pages: {r:?}"
        );
        if db_pages >= 100_000 {
            assert!(r.max_depth >= 3, "a multi-level pages tree: {r:?}");
        }
        // Time the check on the final manifest (it runs at every open).
        let t = std::time::Instant::now();
        for _ in 0..10 {
            check(&data_mdb(&path)).unwrap();
        }
        println!(
            "  check of {} KiB of LMDB: {:?} each",
            r.file_pages * u64::from(r.page_size) / 1024,
            t.elapsed() / 10
        );
        let _ = std::fs::remove_dir_all(&path);
    }
}

#[test]
fn fresh_and_empty_files_pass() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("data.mdb");
    std::fs::write(&f, b"").unwrap();
    check(&f).expect("an empty data.mdb is a new LMDB environment");
    // A store's first open writes the meta pages, then commits.
    let path = dir.path().join("s.db");
    drop(Store::open_shared(&path, &opts(4096, 16)).unwrap());
    let r = must_pass(&path, "after creation");
    assert_eq!(
        r.databases, 7,
        "meta, segments, changes, cursors, journal, chunks, pages: {r:?}"
    );
    // Garbage past the last page (an interrupted write transaction) and
    // the lock file are not read.
    let mut bytes = std::fs::read(data_mdb(&path)).unwrap();
    bytes.extend(std::iter::repeat_n(0xa5, 3 * r.page_size as usize));
    std::fs::write(data_mdb(&path), &bytes).unwrap();
    std::fs::write(path.join("manifest").join("lock.mdb"), [0x5a; 100]).unwrap();
    must_pass(&path, "with garbage after the last page");
    drop(Store::open_shared(&path, &opts(4096, 16)).unwrap());
    must_pass(&path, "after reopening");
}

// ----- flip sweep ----------------------------------------------------------

const CHILD_ENV: &str = "BOP_LMDB_CHECK_CHILD";
const SWEEP_PAGE: u32 = 512;

#[derive(Debug, Default)]
struct Tally {
    rejected_by_check: u64,
    detected_at_open: u64,
    detected_at_read: u64,
    harmless: u64,
    crashed: u64,
}

fn read_image(store: &Store) -> bop_storage::Result<Vec<u8>> {
    let mut db = vec![0u8; store.db_size() as usize];
    for (i, page) in db.chunks_mut(SWEEP_PAGE as usize).enumerate() {
        store.db_read(i as u64 * u64::from(SWEEP_PAGE), page)?;
    }
    store.verify()?;
    Ok(db)
}

/// Runs in a child process: checks one damaged store, then opens it, reads
/// it back and writes to it (LMDB's write paths read the free list).
#[test]
fn flipped_manifest_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let want = std::fs::read(dir.with_extension("want")).unwrap();
    let outcome = (|| {
        if check(&data_mdb(&dir)).is_err() {
            return "RejectedByCheck";
        }
        let o = StoreOptions {
            create: false,
            ..opts(SWEEP_PAGE, 64)
        };
        let Ok(store) = Store::open_shared(&dir, &o) else {
            return "DetectedAtOpen";
        };
        match read_image(&store) {
            Err(_) => return "DetectedAtRead",
            Ok(got) if got != want => return "Silent",
            Ok(_) => {}
        }
        for p in 1..=20u32 {
            let page = vec![p as u8; SWEEP_PAGE as usize];
            if store.db_write(u64::from(p - 1) * 512, &page).is_err() {
                return "DetectedAtRead";
            }
        }
        if store.db_sync().is_err() {
            return "DetectedAtRead";
        }
        drop(store);
        match Store::open_shared(&dir, &o) {
            Ok(_) => "Harmless",
            Err(_) => "DetectedAtRead",
        }
    })();
    println!("OUTCOME {outcome}");
}

fn run_child(dir: &Path) -> Option<String> {
    child_outcome("flipped_manifest_child", CHILD_ENV, dir)
}

#[test]
fn flipped_manifest_bits_never_crash() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let golden = root.path().join("golden.db");
    // A manifest with a multi-level pages tree and a used free list.
    exercise(&golden, SWEEP_PAGE, 4000, 12, 7);
    let want = {
        let store = Store::open_shared(&golden, &opts(SWEEP_PAGE, 64)).unwrap();
        read_image(&store).unwrap()
    };
    let report = must_pass(&golden, "golden");
    println!("golden manifest: {report:?}");
    let env = |k: &str| std::env::var(k).ok().map(|v| v.parse::<u64>().expect(k));
    let seed = env("BOP_LMDB_SWEEP_SEED").unwrap_or(0x1db);
    let trials = env("BOP_LMDB_SWEEP_TRIALS").unwrap_or(400);
    println!("LMDB flip sweep: BOP_LMDB_SWEEP_SEED={seed}");
    let mut rng = SimRng::new(seed);
    let mut tally = Tally::default();
    let ps = u64::from(report.page_size);
    let used = (report.last_pg + 1).min(report.file_pages) * ps;
    for t in 0..trials {
        let dir = root.path().join(format!("t{t}.db"));
        copy_dir(&golden, &dir);
        std::fs::write(dir.with_extension("want"), &want).unwrap();
        let file = data_mdb(&dir);
        let mut bytes = std::fs::read(&file).unwrap();
        // Aim a third of the flips at the meta pages, a third at page
        // headers and node offsets, a third anywhere in the used pages.
        let at = match t % 3 {
            0 => rng.below(2) * ps + rng.below(152),
            1 => rng.below(used / ps) * ps + rng.below(64),
            _ => rng.below(used),
        } as usize;
        let bit = rng.below(8);
        bytes[at] ^= 1 << bit;
        std::fs::write(&file, &bytes).unwrap();
        match run_child(&dir).as_deref() {
            None => {
                tally.crashed += 1;
                println!("trial {t}: bit {bit} of byte {at} crashed the process");
            }
            Some("RejectedByCheck") => tally.rejected_by_check += 1,
            Some("DetectedAtOpen") => tally.detected_at_open += 1,
            Some("DetectedAtRead") => tally.detected_at_read += 1,
            Some("Harmless") => tally.harmless += 1,
            Some(other) => {
                panic!("trial {t} (BOP_LMDB_SWEEP_SEED={seed}): bit {bit} of byte {at}: {other}")
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!("LMDB flip sweep: {trials} flips: {tally:?}");
    assert_eq!(tally.crashed, 0, "{tally:?}");
    // The check rejects about 27-33% of these flips (seeds 1-3: 110, 132,
    // 128 of 400); the share depends on where LMDB put the pages, and
    // the default seed gives 99 of 400 since a new store's manifest has one
    // transaction fewer (no page 1 published at creation). A fifth is the
    // bar: far above what a check that misses whole classes would reach.
    assert!(tally.rejected_by_check > trials / 5, "{tally:?}");
}
