//! Child process of the crash test (`tests/crash.rs`): commits rows under
//! `synchronous=FULL` through libSQL on bop and prints `ack <id>` after
//! each commit returned, until it is killed.
//!
//! Usage: bop-libsql-crash-child STORE

use std::io::Write;

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: bop-libsql-crash-child STORE");
    let c = bop_libsql::open(&path, bop_libsql::OpenFlags::default()).expect("open");
    c.execute_batch(
        "PRAGMA synchronous=FULL;
         PRAGMA wal_autocheckpoint=40;
         PRAGMA cache_size=50;
         CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, pad BLOB);",
    )
    .expect("setup");
    let mut next = c
        .query_i64("SELECT coalesce(max(id), 0) + 1 FROM t")
        .expect("max");
    let mut ins = c
        .prepare("INSERT INTO t VALUES (?, randomblob(1500 + ?1 % 3000))")
        .expect("prepare");
    let out = std::io::stdout();
    println!("ready");
    loop {
        // Every 16th commit is a larger transaction that spills (the page
        // cache holds 50 pages).
        if next % 16 == 0 {
            c.execute_batch("BEGIN").expect("begin");
            for k in 0..200 {
                ins.execute(&[bop_libsql::Value::Integer(next + k)])
                    .expect("insert");
            }
            c.execute_batch("COMMIT").expect("commit");
            let mut o = out.lock();
            for k in 0..200 {
                writeln!(o, "ack {}", next + k).expect("stdout");
            }
            o.flush().expect("flush");
            next += 200;
        } else {
            ins.execute(&[bop_libsql::Value::Integer(next)])
                .expect("insert");
            let mut o = out.lock();
            writeln!(o, "ack {next}").expect("stdout");
            o.flush().expect("flush");
            next += 1;
        }
    }
}
