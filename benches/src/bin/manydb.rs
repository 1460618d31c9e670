//! N databases of one bop store, one writer thread each, single-row
//! commits under FULL for a few seconds; prints commits/s and the store's
//! WAL statistics (how many commits each sync covered, latencies). A
//! diagnostic companion to `compare`'s many-database rows.
//!
//! `manydb [DBS] [SECS] [bop|stock]` (stock: one file per database, for
//! profiling the two side by side).

use std::time::Duration;

use bop_benches::{many_writers, open, Engine};

fn main() {
    let mut args = std::env::args().skip(1);
    let dbs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    let secs: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3.0);
    let engine = match args.next().as_deref() {
        Some("stock") => Engine::Stock,
        _ => Engine::Bop,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let main_db = open(engine, dir.path(), "many.bop", "FULL");
    let stats = |c: &rusqlite::Connection| -> String {
        c.query_row("PRAGMA bop_stats", [], |r| r.get(0))
            .unwrap_or_default()
    };
    let (n, (s0, s1)) = many_writers(engine, dir.path(), dbs, || {
        let s0 = stats(&main_db);
        std::thread::sleep(Duration::from_secs_f64(secs));
        (s0, stats(&main_db))
    });
    let get = |s: &str, k: &str| -> f64 {
        s.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let syncs = get(&s1, "log_syncs") - get(&s0, "log_syncs");
    println!(
        "{dbs} databases: {:.0} commits/s, {:.0} syncs/s, {:.1} commits per sync",
        n as f64 / secs,
        syncs / secs,
        n as f64 / syncs
    );
    for k in [
        "sync_p50_us",
        "sync_p99_us",
        "commit_p50_us",
        "commit_p99_us",
        "write_p50_us",
    ] {
        println!("  {k} = {}", get(&s1, k));
    }
}
