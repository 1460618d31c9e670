//! Differential testing of the virtual WAL: the same random SQL (the
//! workspace's generator, `tests/src/sqlgen.rs`) runs on libSQL with its
//! own WAL on a plain file and on libSQL over bop, statement by statement.
//! Outcomes must agree (success or the extended error code, every row with
//! reals bit-exact, `changes()`, `last_insert_rowid()`, autocommit); every
//! 500 statements outside transactions and at the end both sides are closed
//! and reopened and their canonical dumps compared, with integrity_check.
//! The seed picks two interleaved connections (odd seeds), a 10-page cache
//! so transactions spill (multiples of 3) and synchronous=FULL (ending in 4
//! or 9). `BOP_LIBSQL_DIFF_SEEDS` (default 4), `BOP_LIBSQL_DIFF_STMTS`
//! (default 1200), `BOP_LIBSQL_DIFF_SEED` replays one seed.

#[allow(dead_code, unused_imports)]
#[path = "../../tests/src/sqlgen.rs"]
mod sqlgen;

use std::collections::BTreeMap;
use std::path::Path;

use bop_libsql::{Connection, OpenFlags, Value};
use sqlgen::{Compare, Config, Generator, Stmt};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Val {
    Null,
    Int(i64),
    Real(u64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<Value> for Val {
    fn from(v: Value) -> Val {
        match v {
            Value::Null => Val::Null,
            Value::Integer(i) => Val::Int(i),
            Value::Real(f) => Val::Real(f.to_bits()),
            Value::Text(t) => Val::Text(t),
            Value::Blob(b) => Val::Blob(b),
        }
    }
}

type Rows = Vec<Vec<Val>>;

#[derive(Debug)]
enum Outcome {
    Rows(Rows),
    Error(i32, String),
}

fn run(c: &Connection, sql: &str) -> Outcome {
    match c.query(sql, &[]) {
        Ok(rows) => Outcome::Rows(
            rows.into_iter()
                .map(|r| r.into_iter().map(Val::from).collect())
                .collect(),
        ),
        Err(e) => Outcome::Error(e.code(), e.to_string()),
    }
}

fn differ(a: &Outcome, b: &Outcome, cmp: Compare) -> Option<String> {
    match (a, b) {
        (Outcome::Error(ca, _), Outcome::Error(cb, _)) => {
            (ca != cb).then(|| format!("error codes {ca} and {cb}"))
        }
        (Outcome::Rows(ra), Outcome::Rows(rb)) => {
            if cmp == Compare::SuccessOnly {
                return None;
            }
            let (mut ra, mut rb) = (ra.clone(), rb.clone());
            if cmp == Compare::Unordered {
                ra.sort();
                rb.sort();
            }
            (ra != rb).then(|| format!("rows differ: {} vs {} rows", ra.len(), rb.len()))
        }
        _ => Some("one side succeeded, the other failed".into()),
    }
}

fn dump(c: &Connection) -> BTreeMap<String, Rows> {
    let q = |sql: &str| match run(c, sql) {
        Outcome::Rows(r) => r,
        Outcome::Error(code, m) => panic!("{sql}: {m} ({code})"),
    };
    let mut out = BTreeMap::new();
    out.insert(
        "schema".into(),
        q("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name"),
    );
    for t in q("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name") {
        let Val::Text(name) = &t[0] else { panic!() };
        let n = c
            .query(&format!("SELECT * FROM \"{name}\" LIMIT 1"), &[])
            .unwrap();
        let ncol = n.first().map_or(1, |r| r.len());
        let order: Vec<String> = (1..=ncol).map(|i| i.to_string()).collect();
        out.insert(
            name.clone(),
            q(&format!(
                "SELECT * FROM \"{name}\" ORDER BY {}",
                order.join(", ")
            )),
        );
    }
    out
}

struct Side {
    bop: bool,
    conns: Vec<Connection>,
}

fn open_side(bop: bool, path: &Path, n: usize, cache: i64, sync: &str) -> Side {
    let conns = (0..n)
        .map(|_| {
            let c = if bop {
                bop_libsql::open(path, OpenFlags::default()).unwrap()
            } else {
                Connection::open_libsql_default_wal(path).unwrap()
            };
            c.execute_batch(&format!(
                "PRAGMA busy_timeout=0; PRAGMA cache_size={cache}; PRAGMA synchronous={sync};"
            ))
            .unwrap();
            c
        })
        .collect();
    Side { bop, conns }
}

fn run_seed(seed: u64, stmts: usize) -> usize {
    let conns = if seed % 2 == 1 { 2 } else { 1 };
    let cache = if seed.is_multiple_of(3) { 10 } else { -2000 };
    let sync = if seed % 5 == 4 { "FULL" } else { "NORMAL" };
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (dir.path().join("plain.db"), dir.path().join("bop.db"));
    let open = || {
        (
            open_side(false, &pa, conns, cache, sync),
            open_side(true, &pb, conns, cache, sync),
        )
    };
    let (mut a, mut b) = open();
    let mut gen = Generator::new(
        seed,
        Config {
            connections: conns,
            ..Config::default()
        },
    );
    let mut failed = 0;
    let mut exec = |a: &Side, b: &Side, s: &Stmt, i: usize| -> (bool, bool) {
        let (oa, ob) = (run(&a.conns[s.conn], &s.sql), run(&b.conns[s.conn], &s.sql));
        if let Some(why) = differ(&oa, &ob, s.compare) {
            panic!(
                "seed {seed} #{i} conn {}: {}\n{why}\nlibsql: {oa:?}\nbop: {ob:?}\n(bop last error: {:?})",
                s.conn,
                &s.sql[..s.sql.len().min(2000)],
                bop_libsql::last_error()
            );
        }
        for c in 0..conns {
            let (x, y) = (&a.conns[c], &b.conns[c]);
            let sa = (x.changes(), x.last_insert_rowid(), x.is_autocommit());
            let sb = (y.changes(), y.last_insert_rowid(), y.is_autocommit());
            assert_eq!(sa, sb, "seed {seed} #{i}: {}: connection {c} state", s.sql);
        }
        let ok = matches!(oa, Outcome::Rows(_));
        if !ok {
            failed += 1;
        }
        (ok, a.conns[0].is_autocommit())
    };
    let mut reopen_due = false;
    for i in 0..stmts {
        if i > 0 && i % 500 == 0 {
            reopen_due = true;
        }
        if reopen_due && !gen.in_transaction() {
            drop((a, b));
            (a, b) = open();
            assert_eq!(
                dump(&a.conns[0]),
                dump(&b.conns[0]),
                "seed {seed} #{i}: dumps"
            );
            gen.reopened();
            reopen_due = false;
        }
        let s = gen.next_stmt();
        let (ok, auto) = exec(&a, &b, &s, i);
        gen.observe(ok, auto);
    }
    while let Some(s) = gen.end_transaction() {
        let (ok, auto) = exec(&a, &b, &s, stmts);
        gen.observe(ok, auto);
        if !gen.in_transaction() {
            break;
        }
    }
    assert!(a.bop != b.bop);
    drop((a, b));
    let (a, b) = open();
    assert_eq!(
        dump(&a.conns[0]),
        dump(&b.conns[0]),
        "seed {seed}: final dumps"
    );
    for c in [&a.conns[0], &b.conns[0]] {
        assert_eq!(
            c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
            Some("ok")
        );
    }
    failed
}

#[test]
fn libsql_wal_and_bop_agree() {
    let env = |k: &str| std::env::var(k).ok().map(|v| v.parse::<u64>().unwrap());
    let stmts = env("BOP_LIBSQL_DIFF_STMTS").unwrap_or(1200) as usize;
    let seeds: Vec<u64> = match env("BOP_LIBSQL_DIFF_SEED") {
        Some(s) => vec![s],
        None => (1..=env("BOP_LIBSQL_DIFF_SEEDS").unwrap_or(4)).collect(),
    };
    let t0 = std::time::Instant::now();
    for seed in seeds {
        let failed = run_seed(seed, stmts);
        println!(
            "seed {seed}: {stmts} statements ({failed} failed on both sides), {:.1?}",
            t0.elapsed()
        );
    }
}
