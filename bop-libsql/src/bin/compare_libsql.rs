//! Side-by-side: libSQL with its own WAL on a plain file ("libsql") against
//! libSQL on bop ("bop"), in one process, one build of libSQL. Workloads
//! run alternately A B A B (B A in odd rounds); the table shows the median
//! of each side and the ratio bop / libsql (higher is better for rates).
//!
//! Usage: compare-libsql [--rounds N] [--short] [--dir DIR] [--only TEXT]
//! [--verbose] (`--verbose`: every round's figure on stderr).
//! (bop's I/O backend: BOP_IO, default `direct`.)

use std::path::{Path, PathBuf};
use std::time::Instant;

use bop_libsql::{Connection, OpenFlags, Value};

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Libsql,
    Bop,
}

fn connect(side: Side, path: &Path) -> Connection {
    match side {
        Side::Libsql => Connection::open_libsql_default_wal(path).expect("open libsql"),
        Side::Bop => bop_libsql::open(path, OpenFlags::default()).expect("open bop"),
    }
}

struct Sizes {
    commits: i64,
    small_txns: i64,
    bulk_txns: i64,
    read_rows: i64,
    reads: i64,
}

/// Durable single-row commits (synchronous=FULL): commits per second.
fn full_commits(side: Side, path: &Path, s: &Sizes) -> f64 {
    let c = connect(side, path);
    c.execute_batch("PRAGMA synchronous=FULL; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);")
        .unwrap();
    let mut st = c
        .prepare("INSERT INTO t VALUES (?, randomblob(100))")
        .unwrap();
    let t0 = Instant::now();
    for i in 0..s.commits {
        st.execute(&[Value::Integer(i)]).unwrap();
    }
    s.commits as f64 / t0.elapsed().as_secs_f64()
}

/// Bulk load in 1000-row transactions (synchronous=FULL): rows per second.
fn bulk_load(side: Side, path: &Path, s: &Sizes) -> f64 {
    let c = connect(side, path);
    c.execute_batch(
        "PRAGMA synchronous=FULL; CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT);",
    )
    .unwrap();
    let mut st = c.prepare("INSERT INTO t VALUES (?, ?, ?)").unwrap();
    let t0 = Instant::now();
    for txn in 0..s.bulk_txns {
        c.execute_batch("BEGIN").unwrap();
        for k in 0..1000 {
            let id = txn * 1000 + k;
            st.execute(&[
                Value::Integer(id),
                Value::Integer(id * 7 % 1000),
                Value::Text(format!("row-{id:08}")),
            ])
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
    }
    (s.bulk_txns * 1000) as f64 / t0.elapsed().as_secs_f64()
}

/// Small transactions under frequent WAL restarts (`cache_size=10`,
/// `wal_autocheckpoint=10`, synchronous=NORMAL): each transaction updates
/// a few rows of a 2,000-row table, and the automatic checkpoint copies and
/// restarts the WAL every few transactions: transactions per second.
fn restarts(side: Side, path: &Path, s: &Sizes) -> f64 {
    let c = connect(side, path);
    c.execute_batch(
        "PRAGMA cache_size=10; PRAGMA wal_autocheckpoint=10; PRAGMA synchronous=NORMAL;
         CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT);",
    )
    .unwrap();
    c.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO t SELECT i, i, printf('row-%09d', i) FROM n",
        &[],
    )
    .unwrap();
    let mut up = c.prepare("UPDATE t SET a = a + 1 WHERE id = ?").unwrap();
    let mut ins = c
        .prepare("INSERT INTO t(a, b) VALUES (?, printf('new-%09d', ?))")
        .unwrap();
    let t0 = Instant::now();
    for i in 0..s.small_txns {
        c.execute_batch("BEGIN").unwrap();
        for k in 0..3 {
            up.execute(&[Value::Integer((i * 37 + k * 613) % 2000 + 1)])
                .unwrap();
        }
        ins.execute(&[Value::Integer(i), Value::Integer(i)])
            .unwrap();
        c.execute_batch("COMMIT").unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(
        c.query_i64("SELECT count(*) FROM t").unwrap(),
        2000 + s.small_txns
    );
    s.small_txns as f64 / secs
}

/// Warm point reads by primary key: reads per second.
fn point_reads(side: Side, path: &Path, s: &Sizes) -> f64 {
    let c = connect(side, path);
    c.execute(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         ",
        &[],
    )
    .unwrap();
    c.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
         INSERT INTO t SELECT i, printf('value-%09d', i) FROM n",
        &[Value::Integer(s.read_rows)],
    )
    .unwrap();
    let mut st = c.prepare("SELECT v FROM t WHERE id = ?").unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    // Warm up the cache.
    for _ in 0..s.reads / 10 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        st.query(&[Value::Integer((x >> 33) as i64 % s.read_rows + 1)])
            .unwrap();
    }
    let t0 = Instant::now();
    for _ in 0..s.reads {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        let rows = st
            .query(&[Value::Integer((x >> 33) as i64 % s.read_rows + 1)])
            .unwrap();
        assert_eq!(rows.len(), 1);
    }
    s.reads as f64 / t0.elapsed().as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

type Workload = fn(Side, &Path, &Sizes) -> f64;

fn main() {
    const USAGE: &str =
        "usage: compare-libsql [--rounds N] [--short] [--dir DIR] [--only TEXT] [--verbose]";
    let mut rounds = 5usize;
    let mut verbose = false;
    let mut short = false;
    let mut base: Option<PathBuf> = None;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds N")
            }
            "--short" => short = true,
            "--dir" => base = args.next().map(PathBuf::from),
            "--only" => only = args.next(),
            "--verbose" => verbose = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => {
                eprintln!("unknown argument {other}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let sizes = if short {
        Sizes {
            commits: 300,
            small_txns: 500,
            bulk_txns: 20,
            read_rows: 20_000,
            reads: 50_000,
        }
    } else {
        Sizes {
            commits: 10_000,
            small_txns: 10_000,
            bulk_txns: 200,
            read_rows: 200_000,
            reads: 500_000,
        }
    };
    let base = base.unwrap_or_else(std::env::temp_dir);
    let workloads: [(&str, Workload); 4] = [
        (
            "single-row commits, synchronous=FULL (commits/s)",
            full_commits,
        ),
        ("bulk load, 1000-row transactions, FULL (rows/s)", bulk_load),
        ("point reads by primary key, warm (reads/s)", point_reads),
        (
            "small transactions, wal_autocheckpoint=10, cache_size=10 (txns/s)",
            restarts,
        ),
    ];
    println!(
        "compare-libsql: {rounds} round(s), {}, BOP_IO={}",
        if short { "short" } else { "full" },
        std::env::var("BOP_IO").unwrap_or_else(|_| "direct (default)".into())
    );
    println!("| workload | libsql WAL | bop | ratio |\n|---|---|---|---|");
    for (name, w) in workloads {
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            let order = if r % 2 == 0 {
                [Side::Libsql, Side::Bop]
            } else {
                [Side::Bop, Side::Libsql]
            };
            for side in order {
                let dir = tempdir_in(&base);
                let path = dir.join(if side == Side::Bop {
                    "bop.db"
                } else {
                    "plain.db"
                });
                let v = w(side, &path, &sizes);
                std::fs::remove_dir_all(&dir).unwrap();
                match side {
                    Side::Libsql => a.push(v),
                    Side::Bop => b.push(v),
                }
            }
        }
        if verbose {
            eprintln!("{name}: libsql {a:.1?}; bop {b:.1?}");
        }
        let (ma, mb) = (median(&mut a), median(&mut b));
        println!("| {name} | {ma:.1} | {mb:.1} | {:.2}x |", mb / ma);
    }
}

fn tempdir_in(base: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let d = base.join(format!(
        "compare-libsql-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
