//! Side-by-side comparison of bop and stock SQLite: the same bundled SQLite
//! library, WAL mode, page size 4096, same machine, same run. Every
//! workload runs alternately A B A B (B A in odd rounds) and the ratio of
//! medians is printed: for rates bop / stock (above 1 means bop is faster),
//! for times bop / stock (below 1 means bop is faster).
//!
//! `cargo run --release -p bop-benches --bin compare -- --rounds 5`
//! `cargo run --release -p bop-benches --bin compare -- --short` (CI)

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bop_benches::{
    bulk_load, disk_bytes, many_writers, median, open, open_with, percentile_us, point_reads,
    process_write_bytes, single_row_commits, Engine,
};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Alternating rounds per workload.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Scale down for a quick check (CI).
    #[arg(long)]
    short: bool,
    /// Only workloads whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Single-row commits per round of the FULL workload (NORMAL runs five
    /// times as many); default 2000 (200 with --short). The first commits
    /// of a fresh database grow stock SQLite's `-wal` file, which costs it
    /// metadata writes; more commits weigh its steady state (the file
    /// reused after each checkpoint) more.
    #[arg(long)]
    commits: Option<usize>,
    /// Run one engine only (`bop` or `stock`), for profiling: no ratio.
    #[arg(long, value_parser = ["bop", "stock"])]
    engine: Option<String>,
    /// Run the large-database comparison instead: a database of this many
    /// GiB (1000-byte rows), loaded, scanned and read at random.
    #[arg(long)]
    large_gb: Option<f64>,
    /// Internal: write rows with checkpoints off, then exit without closing.
    #[arg(long, hide = true, num_args = 3, value_names = ["ENGINE", "DIR", "ROWS"])]
    crash_writer: Option<Vec<String>>,
    /// Profiling aid: open a database the crash writer left, run the first
    /// query (`point` or `count`) and print its time in ms.
    #[arg(long, hide = true, num_args = 4, value_names = ["ENGINE", "DIR", "ROWS", "QUERY"])]
    first_query: Option<Vec<String>>,
}

#[derive(Clone, Copy, PartialEq)]
enum Better {
    Higher,
    Lower,
}

/// One measurement of a workload on an engine, in a fresh directory.
type Measure = Box<dyn Fn(Engine, &Path) -> f64>;

struct Workload {
    name: String,
    unit: &'static str,
    better: Better,
    run: Measure,
}

struct Scale {
    commits: usize,
    bulk_rows: usize,
    reads: usize,
    wal_rows: usize,
    many_secs: f64,
    /// Rounds of the open + work + close workloads.
    open_cycles: usize,
}

fn engine_from(s: &str) -> Engine {
    if s == "bop" {
        Engine::Bop
    } else {
        Engine::Stock
    }
}

fn crash_writer(args: &[String]) -> ! {
    let engine = engine_from(&args[0]);
    let dir = Path::new(&args[1]);
    let rows: usize = args[2].parse().expect("rows");
    // Checkpoints off in both engines (bop's background policy too): the
    // WAL holds every row when the process dies.
    let c = open_with(
        engine,
        dir,
        "crash.db",
        "NORMAL",
        "ckpt_wal_mb=0&ckpt_age_s=0",
    );
    c.pragma_update(None, "wal_autocheckpoint", 0)
        .expect("autocheckpoint");
    bulk_load(&c, 1, rows, 1000);
    // Exit without closing: the WAL keeps every row, as after a crash.
    std::process::exit(0);
}

/// Opens the database the crash writer left and runs the first query: a
/// point read of the row in the middle (`point`: the time until the
/// database answers) or a count of every row (which reads every page);
/// returns its time in ms.
fn first_query(e: Engine, d: &Path, rows: usize, point: bool) -> f64 {
    let t = Instant::now();
    let c = open(e, d, "crash.db", "NORMAL");
    if point {
        let key = (rows / 2) as i64;
        let v: Vec<u8> = c
            .query_row("SELECT v FROM kv WHERE k = ?1", [key], |r| r.get(0))
            .expect("query");
        assert_eq!(v.len(), 100);
    } else {
        let n: i64 = c
            .query_row("SELECT count(*) FROM kv", [], |r| r.get(0))
            .expect("query");
        assert_eq!(n as usize, rows);
    }
    t.elapsed().as_secs_f64() * 1e3
}

/// Runs the crash writer in a child process, then the first query.
fn crash_then_first_query(e: Engine, d: &Path, rows: usize, point: bool) -> f64 {
    let status = std::process::Command::new(std::env::current_exe().expect("exe"))
        .arg("--crash-writer")
        .args([e.name(), d.to_str().expect("utf-8"), &rows.to_string()])
        .status()
        .expect("crash writer");
    assert!(status.success());
    first_query(e, d, rows, point)
}

/// Bytes the process wrote to storage per row while `work` writes `rows`
/// rows on a new database, through a final TRUNCATE checkpoint and close.
/// The database has its table and one committed row first, so each
/// engine's one-time cost of its first WAL commit (stock creates its
/// `-wal` file; bop zero-fills its first 8 MiB log segment) is outside the
/// count: `first_commit_kib` reports it.
fn write_amplification(
    e: Engine,
    d: &Path,
    synchronous: &str,
    rows: usize,
    work: impl FnOnce(&rusqlite::Connection),
) -> f64 {
    let c = open(e, d, "wamp.db", synchronous);
    c.execute("INSERT INTO kv(k, v) VALUES (0, zeroblob(100))", [])
        .expect("first row");
    let before = process_write_bytes();
    work(&c);
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    drop(c);
    (process_write_bytes() - before) as f64 / rows as f64
}

/// KiB the process wrote to storage to create a database, commit one row
/// (FULL) and close it: the one-time cost of a new database.
fn first_commit_kib(e: Engine, d: &Path) -> f64 {
    let before = process_write_bytes();
    let c = open_with(e, d, "first.db", "FULL", "close_grace_ms=0");
    c.execute("INSERT INTO kv(k, v) VALUES (1, zeroblob(100))", [])
        .expect("first row");
    drop(c);
    (process_write_bytes() - before) as f64 / 1024.0
}

/// Opens an existing database as an application would: no pragmas, the
/// library's defaults (WAL mode persists in the database; `synchronous`
/// is FULL).
fn open_plain(e: Engine, d: &Path, name: &str) -> rusqlite::Connection {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_URI;
    match e {
        Engine::Stock => rusqlite::Connection::open_with_flags(d.join(name), flags),
        Engine::Bop => rusqlite::Connection::open_with_flags(
            format!("file:{}?vfs=bop", d.join(name).display()),
            flags,
        ),
    }
    .expect("open")
}

/// Mean time in ms of `cycles` rounds of open + `work` + close on an
/// existing database (1000 rows, closed), after `cycles / 10` rounds of
/// warm-up: the steady state of a process that opens the database for
/// each request.
fn open_work_close(
    e: Engine,
    d: &Path,
    cycles: usize,
    work: impl Fn(&rusqlite::Connection, usize),
) -> f64 {
    let c = open(e, d, "oc.db", "FULL");
    bulk_load(&c, 1, 1000, 1000);
    drop(c);
    let round = |i: usize| {
        let c = open_plain(e, d, "oc.db");
        work(&c, i);
        c.close().expect("close");
    };
    for i in 0..cycles / 10 {
        round(i);
    }
    let t = Instant::now();
    for i in 0..cycles {
        round(cycles + i);
    }
    t.elapsed().as_secs_f64() * 1e3 / cycles as f64
}

/// Open + one statement + close on an existing database, per round.
fn open_close_workloads(cycles: usize) -> Vec<Workload> {
    let mut w = Vec::new();
    w.push(Workload {
        name: "open + one query + close, existing db".into(),
        unit: "ms",
        better: Better::Lower,
        run: Box::new(move |e, d| {
            open_work_close(e, d, cycles, |c, _| {
                let n: i64 = c
                    .query_row("SELECT count(*) FROM kv", [], |r| r.get(0))
                    .expect("query");
                assert_eq!(n, 1000);
            })
        }),
    });
    w.push(Workload {
        name: "open + one insert + close, existing db".into(),
        unit: "ms",
        better: Better::Lower,
        run: Box::new(move |e, d| {
            open_work_close(e, d, cycles, |c, i| {
                c.execute(
                    "INSERT INTO kv(k, v) VALUES (?1, zeroblob(100))",
                    [10_000_000 + i as i64],
                )
                .expect("insert");
            })
        }),
    });
    w
}

fn workloads(s: &Scale) -> Vec<Workload> {
    let commits = s.commits;
    let bulk_rows = s.bulk_rows;
    let reads = s.reads;
    let wal_rows = s.wal_rows;
    let many_secs = s.many_secs;
    let cycles = s.open_cycles;
    let mut w: Vec<Workload> = vec![
        Workload {
            name: "single-row commits, synchronous=FULL".into(),
            unit: "commits/s",
            better: Better::Higher,
            run: Box::new(move |e, d| {
                let c = open(e, d, "full.db", "FULL");
                let lat = single_row_commits(&c, 1, commits);
                LATENCIES.with(|l| l.borrow_mut().push((e, lat.clone())));
                commits as f64 / lat.iter().map(Duration::as_secs_f64).sum::<f64>()
            }),
        },
        Workload {
            name: "single-row commits, synchronous=NORMAL".into(),
            unit: "commits/s",
            better: Better::Higher,
            run: Box::new(move |e, d| {
                let c = open(e, d, "normal.db", "NORMAL");
                let lat = single_row_commits(&c, 1, commits * 5);
                (commits * 5) as f64 / lat.iter().map(Duration::as_secs_f64).sum::<f64>()
            }),
        },
        Workload {
            name: "bulk load, 1000-row transactions".into(),
            unit: "rows/s",
            better: Better::Higher,
            run: Box::new(move |e, d| {
                let c = open(e, d, "bulk.db", "NORMAL");
                bulk_rows as f64 / bulk_load(&c, 1, bulk_rows, 1000).as_secs_f64()
            }),
        },
        Workload {
            name: "point reads, warm".into(),
            unit: "reads/s",
            better: Better::Higher,
            run: Box::new(move |e, d| {
                let c = open(e, d, "reads.db", "NORMAL");
                bulk_load(&c, 1, bulk_rows, 10_000);
                let _ = point_reads(&c, bulk_rows as i64, reads / 10, 7);
                reads as f64 / point_reads(&c, bulk_rows as i64, reads, 11).as_secs_f64()
            }),
        },
        Workload {
            name: "point reads beside a committing writer".into(),
            unit: "reads/s",
            better: Better::Higher,
            run: Box::new(move |e, d| {
                let c = open(e, d, "mixed.db", "NORMAL");
                bulk_load(&c, 1, bulk_rows, 10_000);
                drop(c);
                let stop = Arc::new(AtomicBool::new(false));
                let dir = d.to_path_buf();
                let writer = {
                    let stop = stop.clone();
                    std::thread::spawn(move || {
                        let c = open(e, &dir, "mixed.db", "NORMAL");
                        let mut k = 10_000_000i64;
                        while !stop.load(Ordering::Relaxed) {
                            single_row_commits(&c, k, 10);
                            k += 10;
                        }
                    })
                };
                let r = open(e, d, "mixed.db", "NORMAL");
                let _ = point_reads(&r, bulk_rows as i64, reads / 10, 3);
                let t = point_reads(&r, bulk_rows as i64, reads, 5);
                stop.store(true, Ordering::Relaxed);
                writer.join().expect("writer");
                reads as f64 / t.as_secs_f64()
            }),
        },
        Workload {
            name: format!("checkpoint of a {wal_rows}-row WAL"),
            unit: "ms",
            better: Better::Lower,
            run: Box::new(move |e, d| {
                // bop's background checkpointer off: this measures the
                // checkpoint of the whole WAL, as for stock.
                let c = open_with(e, d, "ckpt.db", "NORMAL", "ckpt_wal_mb=0&ckpt_age_s=0");
                c.pragma_update(None, "wal_autocheckpoint", 0)
                    .expect("autocheckpoint");
                bulk_load(&c, 1, wal_rows, 1000);
                let t = Instant::now();
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .expect("checkpoint");
                t.elapsed().as_secs_f64() * 1e3
            }),
        },
        Workload {
            name: format!("first query after a crash, {wal_rows}-row WAL"),
            unit: "ms",
            better: Better::Lower,
            run: Box::new(move |e, d| crash_then_first_query(e, d, wal_rows, true)),
        },
        Workload {
            name: format!("count(*) after a crash, {wal_rows}-row WAL"),
            unit: "ms",
            better: Better::Lower,
            run: Box::new(move |e, d| crash_then_first_query(e, d, wal_rows, false)),
        },
    ];
    w.extend(open_close_workloads(cycles));
    // Amplification: bytes the process wrote to storage (from the first
    // commit through the final checkpoint and close) per byte of row data
    // committed (key 8 + value 100 bytes a row); and disk space used after
    // close per byte of the database image (page_count x page_size).
    let row_bytes = 108.0;
    w.push(Workload {
        name: "write amplification, bulk load + checkpoint".into(),
        unit: "x",
        better: Better::Lower,
        run: Box::new(move |e, d| {
            write_amplification(e, d, "NORMAL", bulk_rows, |c| {
                bulk_load(c, 1, bulk_rows, 1000);
            }) / row_bytes
        }),
    });
    w.push(Workload {
        name: "write amplification, single-row FULL commits".into(),
        unit: "x",
        better: Better::Lower,
        run: Box::new(move |e, d| {
            write_amplification(e, d, "FULL", commits, |c| {
                single_row_commits(c, 1, commits);
            }) / row_bytes
        }),
    });
    w.push(Workload {
        name: "KiB written: new database, one FULL commit, close (one-time)".into(),
        unit: "KiB",
        better: Better::Lower,
        run: Box::new(first_commit_kib),
    });
    w.push(Workload {
        name: "space amplification after bulk load, closed".into(),
        unit: "x",
        better: Better::Lower,
        run: Box::new(move |e, d| {
            // Closed for real: with the close grace the store would still
            // be open when its size is measured (spare segments kept).
            let c = open_with(e, d, "samp.db", "NORMAL", "close_grace_ms=0");
            bulk_load(&c, 1, bulk_rows, 1000);
            let pages: i64 = c
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .expect("page_count");
            drop(c);
            disk_bytes(d) as f64 / (pages as f64 * 4096.0)
        }),
    });
    for dbs in [1usize, 4, 16, 64] {
        w.push(Workload {
            name: format!("{dbs} databases, one writer each, FULL"),
            unit: "commits/s",
            better: Better::Higher,
            run: Box::new(move |e, d| {
                let (n, ()) = many_writers(e, d, dbs, || {
                    std::thread::sleep(Duration::from_secs_f64(many_secs))
                });
                n as f64 / many_secs
            }),
        });
    }
    w
}

thread_local! {
    static LATENCIES: std::cell::RefCell<Vec<(Engine, Vec<Duration>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Peak RSS of the process since the last [`reset_peak_rss`], in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Resets the kernel's peak RSS mark (`/proc/self/clear_refs`, value 5).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The large-database comparison: load, full scan, random reads and peak
/// RSS, both engines alternately, medians.
fn large(gb: f64, rounds: usize) {
    const ROW: usize = 1000;
    let rows = (gb * (1u64 << 30) as f64 / ROW as f64) as i64;
    let reads = 100_000usize;
    println!(
        "large database: {gb} GiB ({rows} rows of {ROW} bytes, 10,000-row transactions, NORMAL), {rounds} rounds alternating"
    );
    let names = [
        ("load (MiB/s)", Better::Higher),
        ("full scan (MiB/s)", Better::Higher),
        ("random point reads (reads/s)", Better::Higher),
        ("peak RSS of the run (MiB)", Better::Lower),
    ];
    let mut results: Vec<[Vec<f64>; 2]> = names.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    for round in 0..rounds {
        for slot in 0..2 {
            let engine = if (round + slot) % 2 == 0 {
                Engine::Stock
            } else {
                Engine::Bop
            };
            let dir = tempfile::tempdir().expect("tempdir");
            reset_peak_rss();
            let c = open(engine, dir.path(), "large.db", "NORMAL");
            let value = vec![0x5au8; ROW];
            let t = Instant::now();
            let mut k = 0i64;
            while k < rows {
                let tx = c.unchecked_transaction().expect("begin");
                {
                    let mut st = tx
                        .prepare("INSERT INTO kv(k, v) VALUES (?1, ?2)")
                        .expect("prepare");
                    for _ in 0..10_000.min(rows - k) {
                        k += 1;
                        st.execute(rusqlite::params![k, value]).expect("insert");
                    }
                }
                tx.commit().expect("commit");
            }
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .expect("checkpoint");
            let mib = (rows as f64 * ROW as f64) / (1u64 << 20) as f64;
            let load = mib / t.elapsed().as_secs_f64();
            let t = Instant::now();
            let total: i64 = c
                .query_row("SELECT sum(length(v)) FROM kv", [], |r| r.get(0))
                .expect("scan");
            assert_eq!(total, rows * ROW as i64);
            let scan = mib / t.elapsed().as_secs_f64();
            let rd = reads as f64 / point_reads(&c, rows, reads, 11).as_secs_f64();
            drop(c);
            let rss = peak_rss_mib();
            let i = usize::from(engine == Engine::Bop);
            for (r, v) in results.iter_mut().zip([load, scan, rd, rss]) {
                r[i].push(v);
            }
        }
    }
    println!(
        "{:<48} {:>12} {:>12} {:>8}",
        "workload", "stock", "bop", "ratio"
    );
    for ((name, better), [stock, bop]) in names.iter().zip(results) {
        let (s, b) = (median(stock), median(bop));
        let note = match better {
            Better::Higher => "higher is better",
            Better::Lower => "lower is better",
        };
        println!("{name:<48} {s:>12.1} {b:>12.1} {:>7.2}x  ({note})", b / s);
    }
}

fn main() {
    let args = Args::parse();
    if let Some(a) = &args.crash_writer {
        crash_writer(a);
    }
    if let Some(a) = &args.first_query {
        let ms = first_query(
            engine_from(&a[0]),
            Path::new(&a[1]),
            a[2].parse().expect("rows"),
            a[3] == "point",
        );
        println!("first query: {ms:.1} ms");
        return;
    }
    if let Some(gb) = args.large_gb {
        large(gb, args.rounds);
        return;
    }
    let mut scale = if args.short {
        Scale {
            commits: 200,
            bulk_rows: 20_000,
            reads: 20_000,
            wal_rows: 20_000,
            many_secs: 0.5,
            open_cycles: 50,
        }
    } else {
        Scale {
            commits: 2000,
            bulk_rows: 200_000,
            reads: 200_000,
            wal_rows: 200_000,
            many_secs: 3.0,
            open_cycles: 500,
        }
    };
    if let Some(c) = args.commits {
        scale.commits = c;
    }
    println!(
        "bop vs stock SQLite, {} rounds alternating; ratio = bop / stock of medians ({})",
        args.rounds,
        if args.short { "short" } else { "full" }
    );
    println!(
        "{:<48} {:>12} {:>12} {:>8}",
        "workload", "stock", "bop", "ratio"
    );
    for w in workloads(&scale) {
        if args
            .only
            .as_ref()
            .is_some_and(|o| !w.name.contains(o.as_str()))
        {
            continue;
        }
        let (mut stock, mut bop) = (Vec::new(), Vec::new());
        for round in 0..args.rounds {
            for slot in 0..2 {
                let engine = if (round + slot) % 2 == 0 {
                    Engine::Stock
                } else {
                    Engine::Bop
                };
                if args.engine.as_deref().is_some_and(|e| e != engine.name()) {
                    continue;
                }
                let dir = tempfile::tempdir().expect("tempdir");
                let v = (w.run)(engine, dir.path());
                match engine {
                    Engine::Stock => stock.push(v),
                    Engine::Bop => bop.push(v),
                }
            }
        }
        let median_or_nan = |v: Vec<f64>| if v.is_empty() { f64::NAN } else { median(v) };
        let (s, b) = (median_or_nan(stock), median_or_nan(bop));
        let note = match w.better {
            Better::Higher => "higher is better",
            Better::Lower => "lower is better",
        };
        println!(
            "{:<48} {:>12.1} {:>12.1} {:>7.2}x  {} ({note})",
            w.name,
            s,
            b,
            b / s,
            w.unit
        );
    }
    LATENCIES.with(|l| {
        for engine in [Engine::Stock, Engine::Bop] {
            let all: Vec<Duration> = l
                .borrow()
                .iter()
                .filter(|(e, _)| *e == engine)
                .flat_map(|(_, v)| v.clone())
                .collect();
            if !all.is_empty() {
                println!(
                    "FULL commit latency {:>5}: p50 {:.0} us  p99 {:.0} us  p99.9 {:.0} us",
                    engine.name(),
                    percentile_us(&all, 50.0),
                    percentile_us(&all, 99.0),
                    percentile_us(&all, 99.9)
                );
            }
        }
    });
}
