//! Power cuts under libSQL on bop: random transactions (with spills,
//! savepoints, rollbacks, checkpoints of every mode, readers holding
//! snapshots, reopens) on two libSQL connections over the simulated file
//! system (`bop_storage::io::sim::SimFs`); at random points the power is cut
//! (unsynced writes lost in full, in part or torn, unsynced directory
//! entries gone) and the store reopened on what a reboot would find:
//!
//! - `synchronous=FULL`: the database is exactly the last acknowledged state;
//! - `synchronous=NORMAL`: it is exactly *some* committed state;
//! - `PRAGMA integrity_check` and `PRAGMA bop_verify` pass.
//!
//! `BOP_LIBSQL_POWER_CUTS` sets the number of scenarios (default 30);
//! `BOP_LIBSQL_POWER_SEED` replays one.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use bop_libsql::{Connection, OpenFlags, Value};
use bop_storage::io::sim::{CrashMode, SimFs, SimRng};

/// id -> (txn, blob length, fill byte)
type Model = BTreeMap<i64, (i64, usize, u8)>;

fn digest(m: &Model) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for (k, (t, l, b)) in m {
        for x in [*k as u64, *t as u64, *l as u64, u64::from(*b)] {
            h ^= x;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn read_model(c: &Connection) -> Model {
    let mut m = Model::new();
    for row in c
        .query("SELECT id, txn, v FROM t ORDER BY id", &[])
        .unwrap()
    {
        let k = row[0].as_i64().unwrap();
        let t = row[1].as_i64().unwrap();
        let v = match &row[2] {
            Value::Blob(b) => b.clone(),
            other => panic!("row {k}: {other:?}"),
        };
        let b = v.first().copied().unwrap_or(0);
        assert!(v.iter().all(|&x| x == b), "row {k}: blob bytes differ");
        m.insert(k, (t, v.len(), b));
    }
    m
}

fn open_conn(path: &Path, full: bool, autockpt: u32) -> Connection {
    let uri = format!("file:{}?log_segment_mb=1", path.display());
    let c = bop_libsql::open(&uri, OpenFlags::default()).unwrap();
    c.execute_batch(&format!(
        "PRAGMA synchronous={}; PRAGMA wal_autocheckpoint={autockpt}; PRAGMA cache_size=64;",
        if full { "FULL" } else { "NORMAL" }
    ))
    .unwrap();
    c
}

const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, txn INTEGER NOT NULL, v BLOB NOT NULL)";

fn run_scenario(seed: u64) -> (u64, u64) {
    let mut rng = SimRng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.db");
    let mut fs = SimFs::new();
    bop_vfs::testing::set_store_io(&path, Some(Arc::new(fs.clone())));
    let full = !rng.chance(25);
    let autockpt = [0u32, 20, 100, 1000][rng.below(4) as usize];
    let mut conns = vec![
        open_conn(&path, full, autockpt),
        open_conn(&path, full, autockpt),
    ];
    conns[0].execute_batch(SCHEMA).unwrap();
    let mut model = Model::new();
    let mut txn = 0i64;
    let mut commits = 0;
    let mut allowed: HashSet<u64> = HashSet::from([digest(&model)]);
    let cuts = 2 + rng.below(2);
    for cut in 0..cuts {
        for _ in 0..1 + rng.below(20) {
            let c = &conns[rng.below(2) as usize];
            match rng.below(10) {
                0..=5 => {
                    txn += 1;
                    let mut m2 = model.clone();
                    c.execute_batch("BEGIN").unwrap();
                    let rows = if rng.chance(10) {
                        200 + rng.below(1500)
                    } else {
                        1 + rng.below(20)
                    };
                    for _ in 0..rows {
                        let id = rng.below(3000) as i64;
                        let len = if rng.chance(5) {
                            5000 + rng.below(30_000) as usize
                        } else {
                            rng.below(300) as usize
                        };
                        let b = (rng.below(250) + 1) as u8;
                        c.execute(
                            "INSERT OR REPLACE INTO t(id, txn, v) VALUES (?1, ?2, ?3)",
                            &[
                                Value::Integer(id),
                                Value::Integer(txn),
                                Value::Blob(vec![b; len]),
                            ],
                        )
                        .unwrap();
                        m2.insert(id, (txn, len, if len == 0 { 0 } else { b }));
                    }
                    if rng.chance(30) {
                        let lo = rng.below(3000) as i64;
                        c.execute(
                            "DELETE FROM t WHERE id BETWEEN ?1 AND ?1 + 40",
                            &[Value::Integer(lo)],
                        )
                        .unwrap();
                        m2.retain(|k, _| !(lo..=lo + 40).contains(k));
                    }
                    if rng.chance(20) {
                        c.execute_batch("SAVEPOINT s; DELETE FROM t WHERE id % 7 = 3; ROLLBACK TO s; RELEASE s;")
                            .unwrap();
                    }
                    if rng.chance(10) {
                        c.execute_batch("ROLLBACK").unwrap();
                    } else {
                        c.execute_batch("COMMIT").unwrap();
                        model = m2;
                        commits += 1;
                        if full {
                            allowed.clear();
                        }
                        allowed.insert(digest(&model));
                    }
                }
                6 => {
                    let mode = ["PASSIVE", "FULL", "RESTART", "TRUNCATE"][rng.below(4) as usize];
                    c.execute_batch("PRAGMA busy_timeout=20").unwrap();
                    let _ = c.query(&format!("PRAGMA wal_checkpoint({mode})"), &[]);
                    c.execute_batch("PRAGMA busy_timeout=5000").unwrap();
                }
                7 => {
                    // A reader holds a snapshot across another connection's commit.
                    let (writer, reader) = (&conns[0], &conns[1]);
                    reader.execute_batch("BEGIN").unwrap();
                    let before = reader.query_i64("SELECT count(*) FROM t").unwrap();
                    txn += 1;
                    let id = 10_000 + txn;
                    writer
                        .execute(
                            "INSERT INTO t(id, txn, v) VALUES (?1, ?2, x'01')",
                            &[Value::Integer(id), Value::Integer(txn)],
                        )
                        .unwrap();
                    model.insert(id, (txn, 1, 1));
                    commits += 1;
                    if full {
                        allowed.clear();
                    }
                    allowed.insert(digest(&model));
                    assert_eq!(
                        reader.query_i64("SELECT count(*) FROM t").unwrap(),
                        before,
                        "seed {seed}: snapshot moved"
                    );
                    reader.execute_batch("COMMIT").unwrap();
                }
                8 => {
                    let i = rng.below(2) as usize;
                    let fresh = open_conn(&path, full, autockpt);
                    drop(std::mem::replace(&mut conns[i], fresh));
                }
                _ => {
                    assert_eq!(read_model(c), model, "seed {seed}: live read differs");
                }
            }
        }

        // Power cut.
        let mode = [
            CrashMode::LoseAll,
            CrashMode::Random,
            CrashMode::Random,
            CrashMode::KeepAll,
        ][rng.below(4) as usize];
        let next = fs.crash(mode, &mut rng);
        assert!(bop_vfs::testing::halt(&path), "store open at the cut");
        conns.clear();
        fs = next;
        bop_vfs::testing::set_store_io(&path, Some(Arc::new(fs.clone())));

        let c = open_conn(&path, full, autockpt);
        let has_table = c
            .query_i64("SELECT count(*) FROM sqlite_schema WHERE name = 't'")
            .unwrap()
            == 1;
        assert!(
            has_table || !full,
            "seed {seed}: the acknowledged CREATE TABLE was lost"
        );
        c.execute_batch(SCHEMA).unwrap();
        let got = read_model(&c);
        if full {
            assert_eq!(
                got, model,
                "seed {seed}: after power cut {cut} ({mode:?}) the database is not the last acknowledged state"
            );
        } else {
            assert!(
                allowed.contains(&digest(&got)),
                "seed {seed}: after power cut {cut} ({mode:?}) the database is not a committed state"
            );
            model = got;
        }
        assert_eq!(
            c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
            Some("ok")
        );
        let verify = c.query_string("PRAGMA bop_verify").unwrap().unwrap();
        assert!(verify.starts_with("ok"), "seed {seed}: {verify}");
        allowed = HashSet::from([digest(&model)]);
        conns = vec![c, open_conn(&path, full, autockpt)];
    }
    drop(conns);
    bop_vfs::testing::set_store_io(&path, None);
    (cuts, commits)
}

#[test]
fn power_cuts_lose_nothing_acknowledged() {
    let n: u64 = std::env::var("BOP_LIBSQL_POWER_CUTS")
        .ok()
        .map(|v| v.parse().unwrap())
        .unwrap_or(30);
    let seeds: Vec<u64> = match std::env::var("BOP_LIBSQL_POWER_SEED") {
        Ok(s) => vec![s.parse().unwrap()],
        Err(_) => {
            let base: u64 = rand::random();
            (0..n).map(|i| base.wrapping_add(i)).collect()
        }
    };
    let started = std::time::Instant::now();
    let (mut cuts, mut commits) = (0, 0);
    for seed in &seeds {
        println!("libSQL power-cut scenario: BOP_LIBSQL_POWER_SEED={seed}");
        let (c, n) = run_scenario(*seed);
        cuts += c;
        commits += n;
    }
    println!(
        "libSQL power cuts: {} scenarios, {cuts} cuts, {commits} commits checked, {:.1} s",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
}
