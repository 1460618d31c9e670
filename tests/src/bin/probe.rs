//! Child process for the multi-process lock tests: opens a store through
//! bop, reads the schema, and prints `ok <tables>` or
//! `err <code> <message> | bop: <bop's last error>`. Always exits 0 unless it crashes.

use std::path::PathBuf;

fn main() {
    let store = PathBuf::from(std::env::args().nth(1).expect("usage: probe <store-dir>"));
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
