//! Side-by-side comparison of bop and stock SQLite (the same bundled SQLite
//! library, WAL mode, page size 4096, same machine, same run). Runs every
//! workload alternately A B A B and prints the ratio of medians
//! (bop / stock for throughput: higher is better for bop).
//!
//! `cargo run --release -p bop-benches --bin compare -- --rounds 5`

use bop_benches::{
    bulk_load, median, open, percentile_us, point_reads, single_row_commits, Engine,
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
}

struct Row {
    name: &'static str,
    unit: &'static str,
    stock: Vec<f64>,
    bop: Vec<f64>,
}

fn main() {
    let args = Args::parse();
    let commits = if args.short { 200 } else { 2000 };
    let bulk_rows = if args.short { 20_000 } else { 200_000 };
    let reads = if args.short { 20_000 } else { 200_000 };
    let mut rows = vec![
        Row {
            name: "single-row commits, synchronous=FULL",
            unit: "commits/s",
            stock: vec![],
            bop: vec![],
        },
        Row {
            name: "single-row commits, synchronous=NORMAL",
            unit: "commits/s",
            stock: vec![],
            bop: vec![],
        },
        Row {
            name: "bulk load, 1000-row transactions (NORMAL)",
            unit: "rows/s",
            stock: vec![],
            bop: vec![],
        },
        Row {
            name: "point reads (warm)",
            unit: "reads/s",
            stock: vec![],
            bop: vec![],
        },
    ];
    let mut lat_full: [Vec<std::time::Duration>; 2] = [vec![], vec![]];
    for round in 0..args.rounds {
        for slot in 0..2 {
            // A B in even rounds, B A in odd ones.
            let engine = if (round + slot) % 2 == 0 {
                Engine::Stock
            } else {
                Engine::Bop
            };
            let dir = tempfile::tempdir().expect("tempdir");
            let push = |r: &mut Row, v: f64| match engine {
                Engine::Stock => r.stock.push(v),
                Engine::Bop => r.bop.push(v),
            };
            let c = open(engine, dir.path(), "full.db", "FULL");
            let lat = single_row_commits(&c, 1, commits);
            let secs: f64 = lat.iter().map(|d| d.as_secs_f64()).sum();
            push(&mut rows[0], commits as f64 / secs);
            lat_full[(engine == Engine::Bop) as usize].extend(lat);
            drop(c);
            let c = open(engine, dir.path(), "normal.db", "NORMAL");
            let lat = single_row_commits(&c, 1, commits);
            let secs: f64 = lat.iter().map(|d| d.as_secs_f64()).sum();
            push(&mut rows[1], commits as f64 / secs);
            drop(c);
            let c = open(engine, dir.path(), "bulk.db", "NORMAL");
            let t = bulk_load(&c, 1, bulk_rows, 1000);
            push(&mut rows[2], bulk_rows as f64 / t.as_secs_f64());
            let _ = point_reads(&c, bulk_rows as i64, reads / 10, 7); // warm
            let t = point_reads(&c, bulk_rows as i64, reads, 11 + round as u64);
            push(&mut rows[3], reads as f64 / t.as_secs_f64());
            drop(c);
        }
    }
    println!(
        "bop vs stock SQLite ({} rounds, alternating; ratio = bop / stock of medians)",
        args.rounds
    );
    println!(
        "{:<44} {:>10} {:>10} {:>7}",
        "workload", "stock", "bop", "ratio"
    );
    for r in &rows {
        let (s, b) = (median(r.stock.clone()), median(r.bop.clone()));
        println!(
            "{:<44} {:>10.0} {:>10.0} {:>6.2}x  ({})",
            r.name,
            s,
            b,
            b / s,
            r.unit
        );
    }
    for (i, name) in ["stock", "bop"].iter().enumerate() {
        let l = &lat_full[i];
        println!(
            "FULL commit latency {name:>5}: p50 {:.0} us  p99 {:.0} us  p99.9 {:.0} us",
            percentile_us(l, 50.0),
            percentile_us(l, 99.0),
            percentile_us(l, 99.9)
        );
    }
}
