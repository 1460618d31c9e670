//! Workloads shared by the comparison harness and the criterion benches.
//! Each runs the same SQL on a connection, whatever stores it.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags};

/// Which storage a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Stock SQLite: a plain file in WAL mode.
    Stock,
    /// The same SQLite library over the bop VFS.
    Bop,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Stock => "stock",
            Engine::Bop => "bop",
        }
    }
}

/// Opens `dir/name` on `engine` with `synchronous` and the same page size.
pub fn open(engine: Engine, dir: &Path, name: &str, synchronous: &str) -> Connection {
    open_with(engine, dir, name, synchronous, "")
}

/// [`open`] with extra URI parameters for bop (`key=value&...`; ignored
/// for stock SQLite).
pub fn open_with(
    engine: Engine,
    dir: &Path,
    name: &str,
    synchronous: &str,
    bop_params: &str,
) -> Connection {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = match engine {
        Engine::Stock => {
            let c = Connection::open_with_flags(dir.join(name), flags).expect("open stock");
            c.pragma_update(None, "page_size", 4096).expect("page_size");
            let mode: String = c
                .pragma_query_value(None, "journal_mode", |r| r.get(0))
                .expect("mode");
            if mode != "wal" {
                c.pragma_update(None, "journal_mode", "wal").expect("wal");
            }
            c
        }
        Engine::Bop => {
            bop_rusqlite::register().expect("register bop");
            let mut uri = format!("file:{}?vfs=bop&page_size=4096", dir.join(name).display());
            if !bop_params.is_empty() {
                uri.push('&');
                uri.push_str(bop_params);
            }
            Connection::open_with_flags(uri, flags).expect("open bop")
        }
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .expect("synchronous");
    conn.execute_batch("CREATE TABLE IF NOT EXISTS kv(k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
        .expect("schema");
    conn
}

/// `n` single-row commits; returns per-commit latencies.
pub fn single_row_commits(conn: &Connection, first_key: i64, n: usize) -> Vec<Duration> {
    let mut stmt = conn
        .prepare("INSERT INTO kv(k, v) VALUES (?1, ?2)")
        .expect("prepare");
    let value = vec![0x5au8; 100];
    (0..n)
        .map(|i| {
            let t = Instant::now();
            if let Err(e) = stmt.execute(params![first_key + i as i64, value]) {
                panic!("insert: {e} ({:?})", bop_rusqlite::last_error());
            }
            t.elapsed()
        })
        .collect()
}

/// Loads `rows` 100-byte rows in transactions of `per_txn`.
pub fn bulk_load(conn: &Connection, first_key: i64, rows: usize, per_txn: usize) -> Duration {
    let t = Instant::now();
    let value = vec![0xa5u8; 100];
    let mut k = first_key;
    let mut left = rows;
    while left > 0 {
        let n = left.min(per_txn);
        let tx = conn.unchecked_transaction().expect("begin");
        {
            let mut stmt = tx
                .prepare("INSERT INTO kv(k, v) VALUES (?1, ?2)")
                .expect("prepare");
            for _ in 0..n {
                stmt.execute(params![k, value]).expect("insert");
                k += 1;
            }
        }
        tx.commit().expect("commit");
        left -= n;
    }
    t.elapsed()
}

/// `n` point reads of random keys in `[1, keys]`.
pub fn point_reads(conn: &Connection, keys: i64, n: usize, seed: u64) -> Duration {
    let mut stmt = conn
        .prepare("SELECT length(v) FROM kv WHERE k = ?1")
        .expect("prepare");
    let mut x = seed | 1;
    let t = Instant::now();
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = 1 + (x % keys as u64) as i64;
        let _: i64 = stmt.query_row([k], |r| r.get(0)).expect("read");
    }
    t.elapsed()
}

/// Median of a sample.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Percentile (0..=100) of latencies, in microseconds.
pub fn percentile_us(lat: &[Duration], pct: f64) -> f64 {
    let mut v: Vec<f64> = lat.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let idx = ((pct / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[idx]
}

/// The many-databases workload: `dbs` databases, one writer thread each,
/// single-row commits under FULL. bop opens the databases of one store
/// (`many.bop/db<i>`), which share its WAL and so its syncs; stock opens a
/// file each. Once every database is open and has committed once,
/// `window` runs (it sleeps the measured time and may observe the run);
/// returns the commits made during it, and what `window` returned.
pub fn many_writers<T>(
    engine: Engine,
    dir: &Path,
    dbs: usize,
    window: impl FnOnce() -> T,
) -> (u64, T) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Barrier};
    let total = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(dbs + 1));
    let _store = (engine == Engine::Bop).then(|| open(engine, dir, "many.bop", "FULL"));
    let threads: Vec<_> = (0..dbs)
        .map(|i| {
            let (total, stop, ready, dir) = (
                total.clone(),
                stop.clone(),
                ready.clone(),
                dir.to_path_buf(),
            );
            std::thread::spawn(move || {
                let name = match engine {
                    Engine::Bop => format!("many.bop/db{i}"),
                    Engine::Stock => format!("many{i}.db"),
                };
                let c = open(engine, &dir, &name, "FULL");
                single_row_commits(&c, 0, 1); // the first commit creates files
                ready.wait();
                let mut k = 1;
                while !stop.load(Ordering::Relaxed) {
                    single_row_commits(&c, k, 1);
                    k += 1;
                    total.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    ready.wait();
    let start = total.load(Ordering::Relaxed);
    let seen = window();
    let n = total.load(Ordering::Relaxed) - start;
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("writer");
    }
    (n, seen)
}

/// Bytes this process has caused to be sent to storage so far
/// (`write_bytes` of `/proc/self/io`: counted when pages are dirtied, and
/// for direct I/O when submitted; every thread of the process).
pub fn process_write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("write_bytes: "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Disk space used by the files under `dir` (allocated blocks).
pub fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in entries.flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            total += disk_bytes(&e.path());
        } else {
            total += m.blocks() * 512;
        }
    }
    total
}
