//! A database of one million 100-byte rows, written in transactions of
//! 50,000 rows and read back: count, sum of lengths, a checksum over every
//! row, spot checks, and again after reopening.

use bop_tests::crashdata::mix;
use bop_tests::{assert_integrity, close, open, tempdir};
use rand::{Rng, SeedableRng};
use std::time::Instant;

const ROWS: i64 = 1_000_000;
const PER_TXN: i64 = 50_000;

/// The 100-byte value of row `i`: its number, then letters from a hash.
fn value(i: i64) -> String {
    let mut s = format!("{i:010}");
    let mut h = mix(i as u64);
    while s.len() < 100 {
        h = mix(h);
        for k in 0..8 {
            if s.len() < 100 {
                s.push((b'a' + ((h >> (k * 8)) % 26) as u8) as char);
            }
        }
    }
    s
}

/// What `sum(unicode(substr(v, 50, 1)) * (id % 1000))` must answer.
fn checksum() -> i64 {
    (1..=ROWS)
        .map(|i| i64::from(value(i).as_bytes()[49]) * (i % 1000))
        .sum()
}

fn verify(conn: &rusqlite::Connection, seed: u64) {
    let (n, len, sum_id): (i64, i64, i64) = conn
        .query_row("SELECT count(*), sum(length(v)), sum(id) FROM t", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(n, ROWS);
    assert_eq!(len, ROWS * 100);
    assert_eq!(sum_id, ROWS * (ROWS + 1) / 2);
    let ck: i64 = conn
        .query_row(
            "SELECT sum(unicode(substr(v, 50, 1)) * (id % 1000)) FROM t",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ck, checksum(), "checksum over every row");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut get = conn.prepare("SELECT v FROM t WHERE id = ?1").unwrap();
    for _ in 0..2000 {
        let i = rng.random_range(1..=ROWS);
        let v: String = get.query_row([i], |r| r.get(0)).unwrap();
        assert_eq!(v, value(i), "row {i}");
    }
    for i in [1, ROWS / 2, ROWS] {
        let v: String = get.query_row([i], |r| r.get(0)).unwrap();
        assert_eq!(v, value(i), "row {i}");
    }
}

#[test]
fn one_million_rows() {
    let seed: u64 = rand::rng().random();
    println!("million_rows spot-check seed {seed}");
    let dir = tempdir();
    let store = dir.path().join("million.db");
    let t0 = Instant::now();
    let conn = open(&store);
    conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        .unwrap();
    {
        let mut ins = conn
            .prepare("INSERT INTO t(id, v) VALUES (?1, ?2)")
            .unwrap();
        let mut i = 1;
        while i <= ROWS {
            conn.execute_batch("BEGIN").unwrap();
            for j in i..i + PER_TXN {
                ins.execute(rusqlite::params![j, value(j)]).unwrap();
            }
            conn.execute_batch("COMMIT").unwrap();
            i += PER_TXN;
        }
    }
    println!("wrote {ROWS} rows in {:?}", t0.elapsed());
    let t1 = Instant::now();
    verify(&conn, seed);
    println!("verified in {:?}", t1.elapsed());
    close(conn);

    let t2 = Instant::now();
    let conn = open(&store);
    verify(&conn, seed ^ 1);
    assert_integrity(&conn);
    println!("reopened and verified in {:?}", t2.elapsed());
    close(conn);
    bop_tests::assert_store_layout(&store);
}
