//! bop under a VFS layered over it (`bop_tests::layered_vfs`): a sector
//! size of 512, 4096 or 65536 bytes without power-safe overwrite, so
//! SQLite pads every `synchronous=FULL` commit to the sector size and
//! syncs in the middle of the last padding frame; writes passed as they
//! are, widened to whole sectors (committed bytes rewritten unchanged), or
//! held until the next sync as SQLite's crash simulator does. The same
//! SQL runs on stock SQLite; every result, `PRAGMA integrity_check` and
//! `PRAGMA bop_verify` must agree, also after a reopen that leaves frames
//! in the WAL image, after a crash (`Store::halt`), and when a layered VFS
//! changes committed bytes (that write alone is refused).

use std::path::Path;

use bop_tests::layered_vfs::{self, Layered, Writes};
use bop_tests::{assert_integrity, close, open, tempdir};
use rand::{Rng, SeedableRng};
use rusqlite::config::DbConfig;
use rusqlite::{params, Connection};

type Rows = Vec<(i64, i64, Vec<u8>)>;

fn vfs(sector: i32, writes: Writes) -> &'static Layered {
    layered_vfs::vfs(sector, writes)
}

fn open_layered(path: &Path, v: &Layered) -> Connection {
    layered_vfs::open(path, v)
}

fn rows(c: &Connection) -> Rows {
    let mut s = c.prepare("SELECT id, a, b FROM t ORDER BY id").unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

fn bop_verify(c: &Connection) {
    let v: String = c.query_row("PRAGMA bop_verify", [], |r| r.get(0)).unwrap();
    assert!(v.starts_with("ok "), "PRAGMA bop_verify: {v}");
}

/// Writes of every shape: small and multi-page transactions, overflow
/// pages, updates and deletes, a transaction that spills frames before its
/// commit, one that spills and rolls back, and checkpoints of each kind.
fn workload(c: &Connection, seed: u64, txns: u32) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, a INTEGER, b BLOB);
         CREATE INDEX IF NOT EXISTS t_a ON t(a);",
    )
    .unwrap();
    let mut next_id: i64 = c
        .query_row("SELECT coalesce(max(id), 0) + 1 FROM t", [], |r| r.get(0))
        .unwrap();
    for txn in 0..txns {
        match txn % 13 {
            5 => {
                // Spills frames before COMMIT (SQLite may rewrite them).
                c.execute_batch("PRAGMA cache_size=5").unwrap();
                let tx = c.unchecked_transaction().unwrap();
                for _ in 0..60 {
                    tx.execute(
                        "INSERT INTO t(id, a, b) VALUES (?1, ?2, randomblob(3000))",
                        params![next_id, rng.random_range(0..1000)],
                    )
                    .unwrap();
                    next_id += 1;
                }
                tx.execute("UPDATE t SET a = a + 1 WHERE id % 7 = 0", [])
                    .unwrap();
                tx.commit().unwrap();
                c.execute_batch("PRAGMA cache_size=-2000").unwrap();
            }
            9 => {
                // Spills, then rolls back: stale frames beyond the commit.
                c.execute_batch("PRAGMA cache_size=5").unwrap();
                let tx = c.unchecked_transaction().unwrap();
                for i in 0..40 {
                    tx.execute(
                        "INSERT INTO t(id, a, b) VALUES (?1, 0, randomblob(3000))",
                        params![next_id + i],
                    )
                    .unwrap();
                }
                tx.rollback().unwrap();
                c.execute_batch("PRAGMA cache_size=-2000").unwrap();
            }
            _ => {
                let tx = c.unchecked_transaction().unwrap();
                for _ in 0..rng.random_range(1..12) {
                    let len = rng.random_range(1..9000);
                    let blob: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                    tx.execute(
                        "INSERT INTO t(id, a, b) VALUES (?1, ?2, ?3)",
                        params![next_id, rng.random_range(0..1000), blob],
                    )
                    .unwrap();
                    next_id += 1;
                }
                let victim = rng.random_range(1..next_id);
                tx.execute("DELETE FROM t WHERE id = ?1", [victim]).unwrap();
                tx.execute(
                    "UPDATE t SET a = ?1 WHERE id = ?2",
                    params![rng.random_range(0..1000), rng.random_range(1..next_id)],
                )
                .unwrap();
                tx.commit().unwrap();
            }
        }
        match txn % 17 {
            7 => c.execute_batch("PRAGMA wal_checkpoint(PASSIVE)").unwrap(),
            14 => c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap(),
            _ => {}
        }
    }
}

/// The rows stock SQLite holds after the same workload (the random blobs
/// of the spilled transactions differ, so those are compared by length).
fn stock_rows(dir: &Path, seed: u64, txns: u32) -> Rows {
    let c = Connection::open(dir.join("stock.db")).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    workload(&c, seed, txns);
    rows(&c)
}

fn same(bop: &Rows, stock: &Rows, what: &str) {
    assert_eq!(bop.len(), stock.len(), "{what}: row count");
    for (x, y) in bop.iter().zip(stock) {
        assert_eq!(
            (x.0, x.1, x.2.len()),
            (y.0, y.1, y.2.len()),
            "{what}: row {}",
            x.0
        );
        if x.2.len() != 3000 {
            assert_eq!(x.2, y.2, "{what}: blob of row {}", x.0);
        }
    }
}

fn run(sector: i32, writes: Writes) {
    let dir = tempdir();
    let store = dir.path().join("layered.db");
    let v = vfs(sector, writes);
    let seed = 0x5eed ^ sector as u64;
    let stock = stock_rows(dir.path(), seed, 40);
    let c = open_layered(&store, v);
    workload(&c, seed, 40);
    let what = format!("sector {sector}, {writes:?}");
    same(&rows(&c), &stock, &what);
    assert_integrity(&c);
    bop_verify(&c);
    // Close without a checkpoint: the padded frames stay in the WAL image
    // and the next open starts from them (wal-index seed or recovery).
    c.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .unwrap();
    close(c);
    let c = open(&store);
    same(&rows(&c), &stock, &format!("{what}, reopened through bop"));
    assert_integrity(&c);
    bop_verify(&c);
    close(c);
    // The store still takes writes through the layered VFS.
    let c = open_layered(&store, v);
    workload(&c, seed + 1, 6);
    assert_integrity(&c);
    bop_verify(&c);
    close(c);
}

#[test]
fn padded_commits_as_written() {
    for sector in [512, 4096, 65536] {
        run(sector, Writes::AsIs);
    }
}

#[test]
fn padded_commits_written_as_whole_sectors() {
    for sector in [512, 4096, 65536] {
        run(sector, Writes::WholeSectors);
    }
}

#[test]
fn padded_commits_held_until_sync() {
    for sector in [512, 4096, 65536] {
        run(sector, Writes::UntilSync);
    }
}

/// A crash after padded commits: every acknowledged commit is there.
#[test]
fn crash_after_padded_commits_loses_nothing_acknowledged() {
    for (sector, writes) in [
        (512, Writes::AsIs),
        (4096, Writes::WholeSectors),
        (65536, Writes::AsIs),
    ] {
        let dir = tempdir();
        let store = dir.path().join("crash.db");
        let c = open_layered(&store, vfs(sector, writes));
        workload(&c, 7, 30);
        let before = rows(&c);
        assert!(bop_vfs::testing::halt(&store), "store open at the crash");
        drop(c);
        let c = open(&store);
        assert_eq!(
            rows(&c),
            before,
            "sector {sector}, {writes:?}: rows after the crash"
        );
        assert_integrity(&c);
        bop_verify(&c);
        c.execute("INSERT INTO t(id, a, b) VALUES (-1, 0, x'00')", [])
            .unwrap();
        close(c);
    }
}

/// A layered VFS that changes a committed byte while rewriting a sector:
/// that write is refused with a clear error, the statement fails, and the
/// store goes on taking writes.
#[test]
fn changing_committed_bytes_is_refused_for_that_write_only() {
    let dir = tempdir();
    let store = dir.path().join("refused.db");
    let v = vfs(4096, Writes::WholeSectors);
    let c = open_layered(&store, v);
    // NORMAL: no padding, so the next frame follows committed bytes in its
    // sector.
    c.pragma_update(None, "synchronous", "NORMAL").unwrap();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b BLOB)")
        .unwrap();
    c.execute("INSERT INTO t VALUES (1, 1, x'01')", []).unwrap();
    v.corrupt_next_rewrite
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let err = c
        .execute("INSERT INTO t VALUES (2, 2, x'02')", [])
        .expect_err("a write changing committed bytes must fail");
    assert!(
        !v.corrupt_next_rewrite
            .load(std::sync::atomic::Ordering::SeqCst),
        "the broken rewrite happened"
    );
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::SystemIoFailure),
        "{err}"
    );
    let last = bop_rusqlite::last_error().unwrap_or_default();
    assert!(
        last.contains("would change committed byte"),
        "bop's message: {last}"
    );
    c.execute("INSERT INTO t VALUES (3, 3, x'03')", []).unwrap();
    let ids: Vec<i64> = c
        .prepare("SELECT id FROM t ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(ids, vec![1, 3]);
    assert_integrity(&c);
    bop_verify(&c);
    close(c);
    let c = open(&store);
    assert_eq!(
        c.query_row("SELECT group_concat(id) FROM t", [], |r| r
            .get::<_, String>(0))
            .unwrap(),
        "1,3"
    );
    assert_integrity(&c);
    close(c);
}

/// A writer child under the layered VFS, killed with SIGKILL at random
/// moments (inside padded commits, between the sync in the middle of a
/// padding frame and the rest of that frame, inside checkpoints): every
/// acknowledged transaction is there after each kill, nothing else but at
/// most the one in flight, and the store passes integrity_check and
/// bop_verify.
#[test]
fn kill_9_under_padded_commits_loses_nothing_acknowledged() {
    use bop_tests::crashdata::verify;
    use bop_tests::Child;
    use std::ffi::OsStr;
    use std::time::Duration;
    const MAX_ROWS: u64 = 100;
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempdir();
    let store = dir.path().join("kill.db");
    let mut k = 0u64;
    for it in 0..12u32 {
        let sector = [512, 4096, 65536][it as usize % 3];
        let writes = ["as-is", "whole-sectors"][it as usize / 3 % 2];
        let mut args: Vec<String> = vec![
            store.to_str().unwrap().into(),
            "--max-rows".into(),
            MAX_ROWS.to_string(),
            "--layered-sector".into(),
            sector.to_string(),
            "--layered-writes".into(),
            writes.into(),
        ];
        if it % 2 == 1 {
            args.extend(["--checkpoint-every", "3"].map(String::from));
        }
        let os_args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let mut child = Child::spawn(env!("CARGO_BIN_EXE_crash_writer"), &os_args);
        std::thread::sleep(Duration::from_millis(rng.random_range(50..=400)));
        assert!(
            child.exited().is_none(),
            "iteration {it}: the writer exited: {}",
            child.stderr()
        );
        let stderr = child.stderr();
        let lines = child.kill9();
        assert!(stderr.is_empty(), "iteration {it}: writer stderr: {stderr}");
        let acked = lines
            .iter()
            .filter_map(|l| l.strip_prefix("ack "))
            .map(|n| n.parse::<u64>().unwrap())
            .max()
            .unwrap_or(k);
        let c = open(&store);
        let now = verify(&c, MAX_ROWS, 1);
        let what = format!("iteration {it} (seed {seed}, sector {sector}, {writes})");
        assert!(
            now >= acked,
            "{what}: {acked} acknowledged, 1..={now} present"
        );
        assert!(
            now <= acked + 1,
            "{what}: 1..={now} present, {acked} acknowledged"
        );
        assert_integrity(&c);
        bop_verify(&c);
        close(c);
        k = now;
    }
    println!("{k} transactions");
    assert!(k > 12, "the writers committed ({k} transactions)");
}

/// walcrash-6's SQL on a new database through a VFS that holds writes
/// until a sync it never passes down and turns size hints into truncates
/// that grow the file (SQLite's crash simulator, `test6.c`): the first
/// transaction (rollback mode) grows the empty file before it writes page
/// 1 of a page size that is not bop's default. (The first `page_size`
/// stands for testfixture's default page size, 1024: `journal_mode`
/// writes page 1 before walcrash-6's own `page_size` runs.)
fn crash_vfs_sql(c: &Connection, page_size: u32) {
    c.execute_batch(&format!(
        "PRAGMA page_size = {page_size};
         PRAGMA journal_mode = WAL;
         PRAGMA page_size = {page_size};
         BEGIN;
           CREATE TABLE t1(x PRIMARY KEY);
           INSERT INTO t1 VALUES(randomblob(900));
           INSERT INTO t1 VALUES(randomblob(900));
           INSERT INTO t1 SELECT randomblob(900) FROM t1;
         COMMIT;
         INSERT INTO t1 SELECT randomblob(900) FROM t1 LIMIT 4;
         INSERT INTO t1 SELECT randomblob(900) FROM t1 LIMIT 4;
         PRAGMA wal_checkpoint;
         INSERT INTO t1 VALUES(randomblob(9000));
         INSERT INTO t1 VALUES(randomblob(9000));"
    ))
    .unwrap();
}

fn blobs(c: &Connection) -> Vec<Vec<u8>> {
    c.prepare("SELECT x FROM t1 ORDER BY x")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// A new database written through the crash simulator's way of writing
/// keeps every commit, with SQLite's page size: after a close, and after a
/// crash (`Store::halt`, no close: bop never sees an xSync of either file).
/// With an empty database taking the grown size (a page of bop's default
/// size counted before SQLite's first page), the page size stayed bop's
/// default, the WAL's frames of SQLite's page size were never sealed, and
/// everything after page 1 was lost.
#[test]
fn new_database_through_a_crash_simulator_vfs_keeps_its_commits() {
    let v = vfs(512, Writes::UntilSync);
    for page_size in [1024u32, 8192, 65536] {
        for crash in [false, true] {
            let what = format!("page size {page_size}, crash {crash}");
            let dir = tempdir();
            let store = dir.path().join("walcrash6.db");
            let c = open_layered(&store, v);
            crash_vfs_sql(&c, page_size);
            let before = blobs(&c);
            assert_eq!(before.len(), 14, "{what}: rows written");
            if crash {
                assert!(bop_vfs::testing::halt(&store), "{what}: store open");
                drop(c);
            } else {
                close(c);
            }
            let c = open(&store);
            assert_eq!(blobs(&c), before, "{what}: rows after reopening");
            let ps: u32 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
            assert_eq!(ps, page_size, "{what}: page size");
            assert_integrity(&c);
            bop_verify(&c);
            close(c);
        }
    }
}
