//! Child process for the crash and corruption tests.
//!
//! ```text
//! crash_writer <store-dir> [--max-rows N] [--txns N]
//!              [--checkpoint-every N] [--checkpoint-mode PASSIVE|FULL|RESTART|TRUNCATE]
//!              [--autocheckpoint N] [--cache-size N] [--reopen-every N]
//!              [--pad-kb N] [--layered-sector N] [--layered-writes as-is|whole-sectors]
//! ```
//!
//! Opens the store with `PRAGMA synchronous=FULL`, creates the table of
//! [`bop_tests::crashdata`] if needed, then commits transactions with ids
//! continuing after the largest present. After each commit it prints
//! `ack <txn>` and flushes stdout. With `--txns N` it stops after N
//! transactions, prints `done` and waits to be killed (so nothing is
//! checkpointed or closed); otherwise it loops until killed. With
//! `--reopen-every N` it closes the connection (the last one: SQLite
//! checkpoints and bop shuts the store down) and opens it again after every
//! N transactions, so kills also land inside close and open. `--pad-kb N`
//! adds an N KiB blob to table `pad` in every transaction (to fill WAL
//! segments). `--layered-sector N` opens the store through the test VFS
//! layered over bop (`bop_tests::layered_vfs`) with that sector size and
//! no power-safe overwrite (SQLite pads every commit), its writes passed
//! as they are or, with `--layered-writes whole-sectors`, widened to whole
//! sectors.

use std::io::Write;
use std::path::PathBuf;

use bop_tests::crashdata::{rows_in, value, SCHEMA};

struct Args {
    store: PathBuf,
    max_rows: u64,
    txns: Option<u64>,
    checkpoint_every: u64,
    checkpoint_mode: String,
    autocheckpoint: Option<u64>,
    cache_size: Option<u64>,
    reopen_every: u64,
    pad_kb: u64,
    layered_sector: Option<u64>,
    whole_sectors: bool,
}

fn parse() -> Args {
    let mut it = std::env::args().skip(1);
    let store = PathBuf::from(
        it.next()
            .expect("usage: crash_writer <store-dir> [options]"),
    );
    let mut a = Args {
        store,
        max_rows: 300,
        txns: None,
        checkpoint_every: 0,
        checkpoint_mode: "PASSIVE".into(),
        autocheckpoint: None,
        cache_size: None,
        reopen_every: 0,
        pad_kb: 0,
        layered_sector: None,
        whole_sectors: false,
    };
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let num = || {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{flag}: bad number {v}"))
        };
        match flag.as_str() {
            "--max-rows" => a.max_rows = num(),
            "--txns" => a.txns = Some(num()),
            "--checkpoint-every" => a.checkpoint_every = num(),
            "--checkpoint-mode" => a.checkpoint_mode = v.clone(),
            "--autocheckpoint" => a.autocheckpoint = Some(num()),
            "--cache-size" => a.cache_size = Some(num()),
            "--reopen-every" => a.reopen_every = num(),
            "--pad-kb" => a.pad_kb = num(),
            "--layered-sector" => a.layered_sector = Some(num()),
            "--layered-writes" => a.whole_sectors = v == "whole-sectors",
            _ => panic!("unknown option {flag}"),
        }
    }
    a
}

fn connect(a: &Args) -> rusqlite::Connection {
    let conn = match a.layered_sector {
        Some(sector) => {
            use bop_tests::layered_vfs::{open, vfs, Writes};
            let writes = if a.whole_sectors {
                Writes::WholeSectors
            } else {
                Writes::AsIs
            };
            open(&a.store, vfs(sector as i32, writes))
        }
        None => bop_tests::open(&a.store),
    };
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .expect("busy_timeout");
    conn.execute_batch("PRAGMA synchronous=FULL")
        .expect("synchronous=FULL");
    if let Some(n) = a.autocheckpoint {
        conn.execute_batch(&format!("PRAGMA wal_autocheckpoint={n}"))
            .expect("wal_autocheckpoint");
    }
    if let Some(n) = a.cache_size {
        conn.execute_batch(&format!("PRAGMA cache_size={n}"))
            .expect("cache_size");
    }
    conn
}

fn main() {
    let a = parse();
    let mut conn = connect(&a);
    conn.execute_batch(SCHEMA).expect("creating the table");
    if a.pad_kb > 0 {
        conn.execute_batch("CREATE TABLE IF NOT EXISTS pad(b BLOB)")
            .expect("creating the pad table");
    }
    let mut next: u64 = conn
        .query_row("SELECT coalesce(max(txn), 0) + 1 FROM t", [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|v| v as u64)
        .expect("finding the next transaction id");
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "start {next}").expect("stdout");
    out.flush().expect("stdout");
    let mut done = 0u64;
    loop {
        if a.txns.is_some_and(|t| done >= t) {
            writeln!(out, "done").expect("stdout");
            out.flush().expect("stdout");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(60));
            }
        }
        let txn = next;
        conn.execute_batch("BEGIN IMMEDIATE").expect("BEGIN");
        {
            let mut ins = conn
                .prepare("INSERT INTO t(txn, idx, n, val) VALUES (?1, ?2, ?3, ?4)")
                .expect("prepare insert");
            let n = rows_in(txn, a.max_rows);
            for idx in 0..n {
                ins.execute(rusqlite::params![
                    txn as i64,
                    idx as i64,
                    n as i64,
                    value(txn, idx)
                ])
                .expect("insert");
            }
        }
        if a.pad_kb > 0 {
            conn.execute(
                "INSERT INTO pad(b) VALUES (randomblob(?1))",
                [a.pad_kb as i64 * 1024],
            )
            .expect("pad");
        }
        conn.execute_batch("COMMIT").expect("COMMIT");
        writeln!(out, "ack {txn}").expect("stdout");
        out.flush().expect("stdout");
        done += 1;
        next += 1;
        if a.checkpoint_every > 0 && txn.is_multiple_of(a.checkpoint_every) {
            let mode = &a.checkpoint_mode;
            conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))
                .expect("wal_checkpoint");
        }
        if a.reopen_every > 0 && txn.is_multiple_of(a.reopen_every) {
            bop_tests::close(conn);
            conn = connect(&a);
        }
    }
}
