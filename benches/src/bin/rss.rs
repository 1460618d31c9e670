//! The memory bound of many writers: WRITERS threads, each hammering its own
//! database of one bop store (or, with `--stock`, its own stock SQLite
//! file) with small transactions for SECS seconds, while the process RSS
//! is sampled every 100 ms. Prints the peak against the bound computed from
//! the configured buffer sizes, and exits with status 1 if the peak went
//! over it.
//!
//! `rss [WRITERS] [SECS] [--stock]` (defaults 100 and 60). With
//! `RSS_DEBUG=1`, bop runs also print `PRAGMA bop_stats` of db0 and db1.
//!
//! Workload per writer: single-row commits, with every tenth transaction
//! inserting 100 rows; even writers run `synchronous=NORMAL`, odd ones
//! `FULL`; every connection sets `PRAGMA cache_size=-2000` (2000 KiB).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bop_benches::{open, Engine};
use clap::Parser;
use rusqlite::{params, Connection};

/// SQLite page cache per connection, in KiB (`PRAGMA cache_size=-2000`,
/// SQLite's default, set explicitly so the number is known).
const CACHE_KIB: u64 = 2000;
/// Capacity of the pending transaction buffer bop keeps per database between
/// transactions: `PENDING_KEEP_BYTES` in `bop-storage/src/log.rs` (private
/// there, so mirrored here). The buffer only grows to the largest
/// transaction seen, and is shrunk back to this after each one.
const PENDING_KEEP_BYTES: u64 = 8 << 20;
// bop also gathers the pages a checkpoint (or the compaction riding on its
// publish) writes in memory, up to `PageStoreConfig::chunk_bytes_max`, and
// writes them as a chunk with one gathered write straight from there
// (`PageStore::spill`): up to chunk_bytes_max per database, freed when the
// chunk is written. A configured per-database bound like the pending
// buffer's, so the bound counts it. And the process-wide page cache holds
// at most its configured capacity (`cache_mb`, 64 MiB by default).

/// Memory of one writer beyond its page cache and bop's buffers: the
/// stack its thread touches (tens of KiB), the SQLite connection (lookaside
/// 1200 slots ≈ 150 KiB, schema, prepared statements), and the 32 KiB
/// wal-index region (heap for bop, a mapped `-shm` file for stock).
const PER_WRITER_OVERHEAD: u64 = 512 << 10;
/// Process-wide slack above the RSS measured before opening anything:
/// glibc's malloc keeps freed memory in its arenas (up to 8 per core, each
/// holding back up to its trim threshold), the flush pool and segment
/// preparer threads and their stacks, and the touched pages of the
/// manifest's LMDB map.
const PROCESS_SLACK: u64 = 64 << 20;
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

#[derive(Parser)]
#[command(about = "Peak RSS of many writers against the configured memory bound")]
struct Args {
    /// Writer threads, one database each.
    #[arg(default_value_t = 100)]
    writers: usize,
    /// Seconds of writing.
    #[arg(default_value_t = 60.0)]
    secs: f64,
    /// Stock SQLite files instead of one bop store.
    #[arg(long)]
    stock: bool,
}

/// The process's resident set size from `/proc/self/status`, in bytes:
/// (VmRSS, RssAnon, RssFile + RssShmem).
fn rss() -> (u64, u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/self/status"))
            * 1024
    };
    (
        field("VmRSS"),
        field("RssAnon"),
        field("RssFile") + field("RssShmem"),
    )
}

fn rss_bytes() -> u64 {
    rss().0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// A value of `PRAGMA bop_stats` (`key=value` words).
fn stat(stats: &str, key: &str) -> Option<u64> {
    stats
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

fn bop_stats(c: &Connection) -> String {
    c.query_row("PRAGMA bop_stats", [], |r| r.get(0))
        .unwrap_or_default()
}

/// One transaction of `rows` rows from key `k` (a single-row autocommit
/// when `rows == 1`) through `insert`, a statement of `c`.
fn txn(
    c: &Connection,
    insert: &mut rusqlite::Statement<'_>,
    k: i64,
    rows: i64,
    value: &[u8],
) -> rusqlite::Result<()> {
    if rows == 1 {
        insert.execute(params![k, value])?;
        return Ok(());
    }
    c.execute_batch("BEGIN")?;
    for i in 0..rows {
        insert.execute(params![k + i, value])?;
    }
    c.execute_batch("COMMIT")
}

#[derive(Default)]
struct WriterResult {
    commits: u64,
    errors: u64,
    first_error: Option<String>,
    /// bop's largest pending transaction buffer of this database.
    pending_peak: u64,
}

fn writer(
    engine: Engine,
    dir: PathBuf,
    i: usize,
    ready: Arc<Barrier>,
    stop: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
) -> WriterResult {
    let name = match engine {
        Engine::Bop => format!("rss.bop/db{i}"),
        Engine::Stock => format!("rss{i}.db"),
    };
    let sync = if i.is_multiple_of(2) {
        "NORMAL"
    } else {
        "FULL"
    };
    let c = open(engine, &dir, &name, sync);
    c.pragma_update(None, "cache_size", -(CACHE_KIB as i64))
        .expect("cache_size");
    c.busy_timeout(Duration::from_secs(10))
        .expect("busy_timeout");
    let mut insert = c
        .prepare("INSERT INTO kv(k, v) VALUES (?1, ?2)")
        .expect("prepare");
    let value = [0x5au8; 100];
    let mut res = WriterResult::default();
    let mut k = 1i64;
    ready.wait();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let rows = if (n + 1).is_multiple_of(10) { 100 } else { 1 };
        match txn(&c, &mut insert, k, rows, &value) {
            Ok(()) => {
                res.commits += 1;
                commits.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                res.errors += 1;
                if res.first_error.is_none() {
                    res.first_error = Some(format!("db{i}: {e}"));
                }
                // Leave no transaction open after a failed commit.
                let _ = c.execute_batch("ROLLBACK");
            }
        }
        k += rows;
        n += 1;
    }
    drop(insert);
    if engine == Engine::Bop {
        res.pending_peak = stat(&bop_stats(&c), "pending_bytes_peak").unwrap_or(0);
        if i < 2 && std::env::var_os("RSS_DEBUG").is_some() {
            eprintln!("db{i}: {}", bop_stats(&c));
        }
    }
    res
}

fn main() {
    let args = Args::parse();
    let engine = if args.stock {
        Engine::Stock
    } else {
        Engine::Bop
    };
    let w = args.writers as u64;
    let baseline = rss_bytes();
    let dir = tempfile::Builder::new()
        .prefix("bop-rss")
        .tempdir_in("/tmp")
        .expect("tempdir");
    // bop: the store and its main database (named databases live in it).
    let main_db = (engine == Engine::Bop).then(|| open(engine, dir.path(), "rss.bop", "NORMAL"));

    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(Barrier::new(args.writers + 1));
    let threads: Vec<_> = (0..args.writers)
        .map(|i| {
            let (d, ready, stop, commits) = (
                dir.path().to_path_buf(),
                ready.clone(),
                stop.clone(),
                commits.clone(),
            );
            std::thread::Builder::new()
                .name(format!("writer{i}"))
                .spawn(move || writer(engine, d, i, ready, stop, commits))
                .expect("spawn")
        })
        .collect();
    ready.wait();
    let opened = rss_bytes();

    // Sample until the end; the warm-up is the first tenth (1 to 5 s).
    let run = Duration::from_secs_f64(args.secs);
    let warm_up = Duration::from_secs_f64((args.secs / 10.0).clamp(1.0, 5.0)).min(run);
    let report_every = run / 10;
    let start = Instant::now();
    let (mut peak, mut peak_at, mut peak_split) = (opened, Duration::ZERO, (0, 0));
    let mut after_warm_up = None;
    let mut next_report = report_every;
    let mut last = opened;
    loop {
        let t = start.elapsed();
        if t >= run {
            break;
        }
        std::thread::sleep(SAMPLE_EVERY.min(run - t));
        let t = start.elapsed();
        let (now, anon, file) = rss();
        last = now;
        if last > peak {
            (peak, peak_at, peak_split) = (last, t, (anon, file));
        }
        if after_warm_up.is_none() && t >= warm_up {
            after_warm_up = Some(last);
        }
        if t >= next_report {
            println!(
                "  t={:5.1}s rss={:7.1} MiB commits={}",
                t.as_secs_f64(),
                mib(last),
                commits.load(Ordering::Relaxed)
            );
            next_report += report_every;
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let results: Vec<WriterResult> = threads
        .into_iter()
        .map(|t| t.join().expect("writer panicked"))
        .collect();
    let total: u64 = results.iter().map(|r| r.commits).sum();
    let errors: u64 = results.iter().map(|r| r.errors).sum();
    let pending_peak = results.iter().map(|r| r.pending_peak).max().unwrap_or(0);

    // The bound, from the configured buffer sizes.
    let (stores, pending_keep, gather, wal_buf) = match engine {
        Engine::Bop => {
            // The buffer holds at most 1.5 × `unsynced_max_bytes` plus one
            // record of at most half the bound (a larger one is written
            // from the caller's memory): 2 × the bound (flush.rs,
            // "Bounds"). Its memory is kept between flushes and grows in
            // powers of two, so it is at most that; a direct-I/O leader's
            // copy of the blocks it writes is as large again.
            let max = bop_storage::log::FlushConfig::default().unsynced_max_bytes;
            let gather = bop_storage::page_store::PageStoreConfig::default().chunk_bytes_max;
            (1u64, PENDING_KEEP_BYTES, gather, 2 * 2 * max)
        }
        // Stock SQLite writes frames straight to its -wal file, and
        // checkpoints from its page cache.
        Engine::Stock => (0, 0, 0, 0),
    };
    let cache = CACHE_KIB * 1024;
    let page_cache = match engine {
        Engine::Bop => bop_storage::cache::global().stats().capacity_bytes,
        Engine::Stock => 0,
    };
    let constant = baseline + PROCESS_SLACK + page_cache;
    let per_writer = pending_keep + gather + cache + PER_WRITER_OVERHEAD;
    let bound = w * per_writer + stores * wal_buf + constant;

    println!(
        "{} writers on {}, {:.1} s: {} commits ({:.0}/s), {} failed",
        w,
        match engine {
            Engine::Bop => "one bop store",
            Engine::Stock => "stock SQLite files",
        },
        elapsed.as_secs_f64(),
        total,
        total as f64 / elapsed.as_secs_f64(),
        errors
    );
    if let Some(e) = results.iter().find_map(|r| r.first_error.as_ref()) {
        println!("  first error: {e}");
    }
    println!("RSS (MiB):");
    println!("  before opening          {:8.1}", mib(baseline));
    println!("  all databases open      {:8.1}", mib(opened));
    println!(
        "  after warm-up ({:.1} s)   {:8.1}",
        warm_up.as_secs_f64(),
        mib(after_warm_up.unwrap_or(last))
    );
    println!(
        "  peak (at {:.1} s)         {:8.1}  (anonymous {:.1}, file-backed {:.1})",
        peak_at.as_secs_f64(),
        mib(peak),
        mib(peak_split.0),
        mib(peak_split.1)
    );
    println!("  at the end              {:8.1}", mib(last));
    println!(
        "  peak per writer above the baseline: {:.0} KiB",
        (peak - baseline.min(peak)) as f64 / 1024.0 / w.max(1) as f64
    );
    if let Some(m) = &main_db {
        let s = bop_stats(m);
        let get = |k| stat(&s, k).map_or("?".into(), |v| format!("{:.2} MiB", mib(v)));
        println!(
            "bop: largest pending transaction buffer {:.2} MiB; WAL unsynced peak {}, WAL buffer {}; backpressure waits {} rejections {}",
            mib(pending_peak),
            get("unsynced_bytes_peak"),
            get("log_buffer_bytes"),
            stat(&s, "backpressure_waits").unwrap_or(0),
            stat(&s, "backpressure_rejections").unwrap_or(0),
        );
    }
    println!("Bound (MiB) = writers × (pending keep + checkpoint gather + SQLite cache + per-writer overhead) + stores × WAL buffer + bop page cache + constant");
    println!(
        "  = {w} × ({:.2} + {:.2} + {:.2} + {:.2}) + {stores} × {:.2} + {:.1} + ({:.1} baseline + {:.1} slack)",
        mib(pending_keep),
        mib(gather),
        mib(cache),
        mib(PER_WRITER_OVERHEAD),
        mib(wal_buf),
        mib(page_cache),
        mib(baseline),
        mib(PROCESS_SLACK),
    );
    println!("  = {:.1} MiB", mib(bound));
    let under = |b: u64| {
        if peak <= b {
            "stayed under"
        } else {
            "EXCEEDED"
        }
    };
    let ok = peak <= bound;
    println!(
        "peak RSS {:.1} MiB {} the bound {:.1} MiB ({:.0}% of it)",
        mib(peak),
        under(bound),
        mib(bound),
        100.0 * peak as f64 / bound as f64
    );
    let narrow = bound - w * gather;
    println!(
        "  (without the checkpoint gather term: {} {:.1} MiB, {:.0}%)",
        under(narrow),
        mib(narrow),
        100.0 * peak as f64 / narrow as f64
    );
    drop(main_db);
    if !ok {
        std::process::exit(1);
    }
}
