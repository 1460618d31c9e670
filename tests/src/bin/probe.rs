//! Child process for the multi-process tests: opens a store through bop,
//! reads the schema, and prints `ok <tables>` or
//! `err <code> <message> | bop: <bop's last error>`. Always exits 0 unless it crashes.
//!
//! `probe <store> write <grace_ms> [linger]` instead opens the store with
//! `close_grace_ms=<grace_ms>`, inserts one row into `t` (created if
//! missing) with `synchronous=FULL`, closes, prints `closed <rows>`, and
//! then exits at once (the store still lingering: the exit closes it), or
//! with `linger` sleeps for a minute (to be killed while it lingers).

use std::io::Write;
use std::path::{Path, PathBuf};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let store = PathBuf::from(args.get(1).expect("usage: probe <store-dir>"));
    if args.get(2).map(String::as_str) == Some("write") {
        write_and_close(&store, &args[3], args.get(4).is_some());
        return;
    }
    let result = bop_tests::try_open_with(&store, &[]).and_then(|c| {
        c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
    });
    match result {
        Ok(n) => println!("ok {n}"),
        Err(e) => println!(
            "err {:?} {e} | bop: {}",
            e.sqlite_error_code(),
            bop_rusqlite::last_error().unwrap_or_default()
        ),
    }
}

fn write_and_close(store: &Path, grace_ms: &str, linger: bool) {
    let c = bop_tests::open_with(store, &[("close_grace_ms", grace_ms)]);
    c.execute_batch(
        "PRAGMA synchronous=FULL; CREATE TABLE IF NOT EXISTS t(x); INSERT INTO t VALUES (1);",
    )
    .expect("write");
    let rows: i64 = c
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .expect("count");
    bop_tests::close(c);
    println!("closed {rows}");
    std::io::stdout().flush().expect("stdout");
    if linger {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}
