//! Differential testing: the same random SQL (`bop_tests::sqlgen`) runs on
//! stock SQLite (a plain database file in WAL mode, page size 4096) and on
//! bop, statement by statement. For every statement the outcomes must
//! agree: success or failure (and the extended error code), every returned
//! row (floats bit-exact), `changes()`, `last_insert_rowid()` and whether
//! the connection is in autocommit mode. Every few hundred statements,
//! outside transactions, and at the end, every connection on both sides is
//! closed and reopened (for bop that shuts its engine down and recovers
//! the store) and a canonical dump of the two databases must be equal and
//! `PRAGMA integrity_check` must answer `ok` on both.
//!
//! Seeds 1..=N run (N from `BOP_DIFF_SEEDS`, default 12, 3000 statements
//! each) on as many threads
//! as there are cores; `BOP_DIFF_SEED=S` runs only seed S;
//! `BOP_DIFF_STMTS=N` changes the number of statements per seed. The seed
//! picks the setup: two interleaved connections per engine on odd seeds, a
//! 10-page cache (so big transactions spill frames before their commit) on
//! multiples of 3, `synchronous=FULL` on seeds ending in 4 or 9, 1 MiB bop
//! log segments (instead of 16) on seeds that are 2 modulo 4.
//!
//! On a mismatch the test panics with the seed, the statement index and the
//! statement, and writes the statements run so far to
//! `$TMPDIR/bop-diff-<seed>.sql`; `BOP_DIFF_REPLAY=<that file>` replays it
//! (test `replay`) to check a hand-minimized sequence. `BOP_DIFF_KEEP=1`
//! writes that file for passing seeds too.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bop_tests::sqlgen::{Compare, Config, Generator, Stmt};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

/// A returned value. Text is kept as bytes (SQLite can return text that is
/// not UTF-8, e.g. `CAST(x'ff' AS TEXT)`), reals as their bits so that the
/// comparison is bit-exact.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Val {
    Null,
    Int(i64),
    Real(u64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl From<ValueRef<'_>> for Val {
    fn from(v: ValueRef<'_>) -> Val {
        match v {
            ValueRef::Null => Val::Null,
            ValueRef::Integer(i) => Val::Int(i),
            ValueRef::Real(f) => Val::Real(f.to_bits()),
            ValueRef::Text(t) => Val::Text(t.to_vec()),
            ValueRef::Blob(b) => Val::Blob(b.to_vec()),
        }
    }
}

impl std::fmt::Display for Val {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn short(b: &[u8]) -> String {
            let s = String::from_utf8_lossy(&b[..b.len().min(40)]).into_owned();
            if b.len() > 40 {
                format!("{s}...({} bytes)", b.len())
            } else {
                s
            }
        }
        match self {
            Val::Null => write!(f, "NULL"),
            Val::Int(i) => write!(f, "{i}"),
            Val::Real(bits) => write!(f, "{:?}r", f64::from_bits(*bits)),
            Val::Text(t) => write!(f, "'{}'", short(t)),
            Val::Blob(b) => {
                let h: String = b.iter().take(16).map(|x| format!("{x:02x}")).collect();
                write!(f, "x'{h}'{}", if b.len() > 16 { "..." } else { "" })?;
                write!(f, "({} bytes)", b.len())
            }
        }
    }
}

type Rows = Vec<Vec<Val>>;

#[derive(Debug)]
enum Outcome {
    Rows(Rows),
    /// Extended result code and message (the message is not compared).
    Error(i32, String),
}

impl Outcome {
    fn ok(&self) -> bool {
        matches!(self, Outcome::Rows(_))
    }
}

fn error_code(e: &rusqlite::Error) -> i32 {
    e.sqlite_error().map_or(-1, |f| f.extended_code)
}

/// Runs one statement, collecting every row.
fn run(conn: &Connection, sql: &str) -> Outcome {
    let mut stmt = match conn.prepare(sql) {
        Ok(s) => s,
        Err(e) => return Outcome::Error(error_code(&e), e.to_string()),
    };
    let n = stmt.column_count();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    loop {
        match rows.next() {
            Ok(Some(r)) => {
                let row = (0..n)
                    .map(|i| Val::from(r.get_ref(i).expect("column in range")))
                    .collect();
                out.push(row);
            }
            Ok(None) => return Outcome::Rows(out),
            Err(e) => return Outcome::Error(error_code(&e), e.to_string()),
        }
    }
}

/// Rows of a query that must succeed.
fn query(conn: &Connection, sql: &str, who: &str) -> Rows {
    match run(conn, sql) {
        Outcome::Rows(r) => r,
        Outcome::Error(c, m) => panic!("{who}: `{sql}` failed: {m} (code {c})"),
    }
}

fn show_rows(rows: &Rows, limit: usize) -> String {
    let mut s = String::new();
    for r in rows.iter().take(limit) {
        let cells: Vec<String> = r.iter().map(|v| v.to_string()).collect();
        let _ = writeln!(s, "    ({})", cells.join(", "));
    }
    if rows.len() > limit {
        let _ = writeln!(s, "    ... {} rows in all", rows.len());
    }
    s
}

fn show(o: &Outcome) -> String {
    match o {
        Outcome::Rows(r) => format!("ok, {} rows\n{}", r.len(), show_rows(r, 5)),
        Outcome::Error(c, m) => format!("error {c}: {m}"),
    }
}

/// Why two outcomes differ, or None if they agree under `cmp`.
fn differ(a: &Outcome, b: &Outcome, cmp: Compare) -> Option<String> {
    match (a, b) {
        (Outcome::Error(ca, _), Outcome::Error(cb, _)) => {
            (ca != cb).then(|| format!("different error codes {ca} and {cb}"))
        }
        (Outcome::Rows(ra), Outcome::Rows(rb)) => {
            if cmp == Compare::SuccessOnly {
                return None;
            }
            let (mut ra, mut rb) = (ra.clone(), rb.clone());
            if cmp == Compare::Unordered {
                ra.sort();
                rb.sort();
            }
            if ra.len() != rb.len() {
                return Some(format!("{} rows vs {} rows", ra.len(), rb.len()));
            }
            let i = ra.iter().zip(&rb).position(|(x, y)| x != y)?;
            Some(format!(
                "row {i} differs:\n  stock: {}  bop:   {}",
                show_rows(&vec![ra[i].clone()], 1),
                show_rows(&vec![rb[i].clone()], 1)
            ))
        }
        _ => Some("one engine succeeded, the other failed".into()),
    }
}

/// Per-seed setup derived from the seed.
#[derive(Clone, Copy, Debug)]
struct Setup {
    connections: usize,
    cache_size: i64,
    synchronous: &'static str,
    /// bop's log segment size in MiB (small: segments fill and roll over).
    log_segment_mb: u32,
}

impl Setup {
    fn of(seed: u64) -> Setup {
        Setup {
            connections: if seed % 2 == 1 { 2 } else { 1 },
            cache_size: if seed.is_multiple_of(3) { 10 } else { -2000 },
            synchronous: if seed % 5 == 4 { "FULL" } else { "NORMAL" },
            log_segment_mb: if seed % 4 == 2 { 1 } else { 16 },
        }
    }

    fn header(&self) -> String {
        format!(
            "# connections={} cache_size={} synchronous={} log_segment_mb={}",
            self.connections, self.cache_size, self.synchronous, self.log_segment_mb
        )
    }

    fn parse(line: &str) -> Option<Setup> {
        let mut s = Setup::of(0);
        for kv in line.strip_prefix("# ")?.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "connections" => s.connections = v.parse().ok()?,
                "cache_size" => s.cache_size = v.parse().ok()?,
                "log_segment_mb" | "wal_segment_mb" => s.log_segment_mb = v.parse().ok()?,
                "synchronous" => s.synchronous = if v == "FULL" { "FULL" } else { "NORMAL" },
                _ => return None,
            }
        }
        Some(s)
    }
}

/// Both engines: the stock SQLite file and the bop store, each with
/// `setup.connections` connections.
struct Pair {
    seed: u64,
    setup: Setup,
    dir: tempfile::TempDir,
    stock: Vec<Connection>,
    bop: Vec<Connection>,
    /// Statements run so far, for reproduction.
    log: Vec<String>,
    index: usize,
    reopens: usize,
}

fn configure(c: &Connection, setup: Setup) {
    c.busy_timeout(Duration::ZERO).expect("busy_timeout");
    c.execute_batch(&format!(
        "PRAGMA cache_size = {}; PRAGMA synchronous = {};",
        setup.cache_size, setup.synchronous
    ))
    .expect("per-connection pragmas");
}

impl Pair {
    fn new(seed: u64, setup: Setup) -> Pair {
        let dir = bop_tests::tempdir();
        let mut p = Pair {
            seed,
            setup,
            dir,
            stock: Vec::new(),
            bop: Vec::new(),
            log: vec![setup.header()],
            index: 0,
            reopens: 0,
        };
        p.open();
        p
    }

    fn stock_path(&self) -> PathBuf {
        self.dir.path().join("stock.db")
    }

    fn bop_path(&self) -> PathBuf {
        self.dir.path().join("bop.db")
    }

    fn open(&mut self) {
        let fresh = !self.stock_path().exists();
        for i in 0..self.setup.connections {
            let s = Connection::open_with_flags(
                self.stock_path(),
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            )
            .expect("opening the stock SQLite database");
            if fresh && i == 0 {
                s.execute_batch("PRAGMA page_size = 4096;")
                    .expect("page_size");
                let mode: String = s
                    .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                    .expect("journal_mode=WAL");
                assert_eq!(mode, "wal");
            }
            configure(&s, self.setup);
            let seg = self.setup.log_segment_mb.to_string();
            let b = bop_tests::open_with(&self.bop_path(), &[("log_segment_mb", &seg)]);
            configure(&b, self.setup);
            self.stock.push(s);
            self.bop.push(b);
        }
        for (c, who) in [(&self.stock[0], "stock"), (&self.bop[0], "bop")] {
            assert_eq!(
                bop_tests::journal_mode(c),
                "wal",
                "{who} must be in WAL mode"
            );
            let ps: i64 = c
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .expect("page_size");
            assert_eq!(ps, 4096, "{who} page size");
        }
    }

    fn close(&mut self) {
        for c in self.stock.drain(..).chain(self.bop.drain(..)) {
            bop_tests::close(c);
        }
    }

    /// Writes the statements run so far to `$TMPDIR/bop-diff-<seed>.sql`.
    fn save_log(&self) -> String {
        let path = std::env::temp_dir().join(format!("bop-diff-{}.sql", self.seed));
        match std::fs::write(&path, self.log.join("\n") + "\n") {
            Ok(()) => format!("statements so far written to {}", path.display()),
            Err(e) => format!("could not write {}: {e}", path.display()),
        }
    }

    /// Writes the log for reproduction and panics with `msg`.
    fn fail(&self, msg: String) -> ! {
        let saved = self.save_log();
        panic!(
            "differential mismatch: seed {} ({:?}), statement #{}:\n{msg}\n{saved}\n\
             (bop last_error: {:?}; rerun with BOP_DIFF_SEED={})",
            self.seed,
            self.setup,
            self.index,
            bop_rusqlite::last_error(),
            self.seed
        );
    }

    /// Runs `s` on both engines and compares. Returns whether it succeeded,
    /// whether connection 0 is in autocommit mode afterwards, and how many
    /// rows it returned.
    fn exec(&mut self, s: &Stmt) -> (bool, bool, usize) {
        self.index += 1;
        self.log.push(format!("{}\t{}", s.conn, s.sql));
        let t0 = Instant::now();
        let a = run(&self.stock[s.conn], &s.sql);
        let t1 = Instant::now();
        let b = run(&self.bop[s.conn], &s.sql);
        if let Some(ms) = env_u64("BOP_DIFF_SLOW_MS") {
            let (ta, tb) = (t1 - t0, t1.elapsed());
            if ta + tb >= Duration::from_millis(ms) {
                println!(
                    "seed {} #{}: stock {:.0?} bop {:.0?}: {}",
                    self.seed,
                    self.index,
                    ta,
                    tb,
                    &s.sql[..s.sql.len().min(300)]
                );
            }
        }
        let sql_shown: String = if s.sql.len() > 3000 {
            let mut end = 3000;
            while !s.sql.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}... ({} bytes)", &s.sql[..end], s.sql.len())
        } else {
            s.sql.clone()
        };
        if let Some(why) = differ(&a, &b, s.compare) {
            self.fail(format!(
                "connection {}: {sql_shown}\n{why}\nstock: {}\nbop:   {}",
                s.conn,
                show(&a),
                show(&b)
            ));
        }
        if s.tags.contains(&"integrity_check") {
            if let Outcome::Rows(r) = &a {
                if r != &vec![vec![Val::Text(b"ok".to_vec())]] {
                    self.fail(format!("{sql_shown} is not ok:\n{}", show_rows(r, 10)));
                }
            }
        }
        for c in 0..self.setup.connections {
            let (sa, sb) = (&self.stock[c], &self.bop[c]);
            let state_a = (sa.changes(), sa.last_insert_rowid(), sa.is_autocommit());
            let state_b = (sb.changes(), sb.last_insert_rowid(), sb.is_autocommit());
            if state_a != state_b {
                self.fail(format!(
                    "connection {}: {sql_shown}\nafter it, connection {c} (changes, \
                     last_insert_rowid, autocommit) differ: stock {state_a:?}, bop {state_b:?}",
                    s.conn
                ));
            }
        }
        if self.setup.connections > 1 && !self.stock[1].is_autocommit() {
            self.fail("connection 1 left autocommit mode".into());
        }
        let nrows = match &a {
            Outcome::Rows(r) => r.len(),
            Outcome::Error(..) => 0,
        };
        (a.ok(), self.stock[0].is_autocommit(), nrows)
    }

    /// Closes and reopens every connection on both engines, then compares
    /// the canonical dumps and checks integrity.
    fn reopen_and_compare(&mut self) {
        self.log.push("#REOPEN".into());
        self.close();
        self.open();
        self.reopens += 1;
        self.compare_dumps("after reopening");
    }

    fn compare_dumps(&self, when: &str) {
        let a = dump(&self.stock[0], "stock");
        let b = dump(&self.bop[0], "bop");
        for (name, ra) in &a {
            let Some(rb) = b.get(name) else {
                self.fail(format!("{when}: {name} exists on stock only"));
            };
            if let Some(why) = differ(
                &Outcome::Rows(ra.clone()),
                &Outcome::Rows(rb.clone()),
                Compare::Rows,
            ) {
                self.fail(format!("{when}: dump of {name} differs: {why}"));
            }
        }
        if let Some(name) = b.keys().find(|k| !a.contains_key(*k)) {
            self.fail(format!("{when}: {name} exists on bop only"));
        }
        for (c, who) in [(&self.stock[0], "stock"), (&self.bop[0], "bop")] {
            let r = query(c, "PRAGMA integrity_check", who);
            if r != vec![vec![Val::Text(b"ok".to_vec())]] {
                self.fail(format!(
                    "{when}: {who} integrity_check:\n{}",
                    show_rows(&r, 10)
                ));
            }
        }
    }
}

/// The canonical dump: `sqlite_schema` (without root pages), then for each
/// table by name every row, ordered by all columns; plus the page and
/// freelist counts.
fn dump(conn: &Connection, who: &str) -> BTreeMap<String, Rows> {
    let mut out = BTreeMap::new();
    out.insert(
        "sqlite_schema".to_string(),
        query(
            conn,
            "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name",
            who,
        ),
    );
    for p in ["page_count", "freelist_count"] {
        out.insert(
            format!("PRAGMA {p}"),
            query(conn, &format!("PRAGMA {p}"), who),
        );
    }
    let tables = query(
        conn,
        "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name",
        who,
    );
    for t in tables {
        let Val::Text(name) = &t[0] else {
            panic!("{who}: table name {:?}", t[0])
        };
        let name = String::from_utf8(name.clone()).expect("UTF-8 table name");
        let n = conn
            .prepare(&format!("SELECT * FROM \"{name}\""))
            .unwrap_or_else(|e| panic!("{who}: SELECT * FROM {name}: {e}"))
            .column_count();
        let order: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        let rows = query(
            conn,
            &format!("SELECT * FROM \"{name}\" ORDER BY {}", order.join(", ")),
            who,
        );
        out.insert(format!("table {name}"), rows);
    }
    out
}

#[derive(Default)]
struct Stats {
    statements: usize,
    failed: usize,
    rows: usize,
    reopens: usize,
    /// Successful statements per tag.
    tags: BTreeMap<&'static str, usize>,
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

const DEFAULT_SEEDS: u64 = 12;
const DEFAULT_STMTS: usize = 3000;
const REOPEN_EVERY: usize = 600;

fn run_seed(seed: u64, stmts: usize) -> Stats {
    let start = Instant::now();
    let setup = Setup::of(seed);
    let mut pair = Pair::new(seed, setup);
    let mut gen = Generator::new(
        seed,
        Config {
            connections: setup.connections,
            ..Config::default()
        },
    );
    let mut stats = Stats::default();
    let mut reopen_due = false;
    for i in 0..stmts {
        if i > 0 && i % REOPEN_EVERY == 0 {
            reopen_due = true;
        }
        if reopen_due && !gen.in_transaction() {
            pair.reopen_and_compare();
            gen.reopened();
            reopen_due = false;
        }
        let s = gen.next_stmt();
        let (ok, autocommit, nrows) = pair.exec(&s);
        gen.observe(ok, autocommit);
        stats.statements += 1;
        stats.rows += nrows;
        if ok {
            for t in &s.tags {
                *stats.tags.entry(t).or_default() += 1;
            }
        } else {
            stats.failed += 1;
        }
    }
    for _ in 0..3 {
        let Some(s) = gen.end_transaction() else {
            break;
        };
        let (ok, autocommit, _) = pair.exec(&s);
        gen.observe(ok, autocommit);
        stats.statements += 1;
    }
    assert!(
        !gen.in_transaction(),
        "seed {seed}: could not end the transaction"
    );
    // The live databases first, then after a restart of both.
    pair.compare_dumps("at the end, before reopening");
    pair.reopen_and_compare();
    let pages = query(&pair.bop[0], "PRAGMA page_count", "bop");
    if std::env::var_os("BOP_DIFF_KEEP").is_some() {
        println!("seed {seed}: {}", pair.save_log());
    }
    let store = pair.bop_path();
    pair.close();
    bop_tests::assert_store_layout(&store);
    stats.reopens = pair.reopens;
    println!(
        "seed {seed} ({:?}): {} statements ({} failed on both engines), {} rows compared, \
         {} tables and {} pages at the end, {} reopens, {:.1}s",
        setup,
        stats.statements,
        stats.failed,
        stats.rows,
        gen.tables(),
        pages[0][0],
        stats.reopens,
        start.elapsed().as_secs_f64()
    );
    stats
}

#[test]
fn stock_sqlite_and_bop_agree_on_random_sql() {
    let seeds: Vec<u64> = match env_u64("BOP_DIFF_SEED") {
        Some(s) => vec![s],
        None => (1..=env_u64("BOP_DIFF_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect(),
    };
    let stmts = env_u64("BOP_DIFF_STMTS").map_or(DEFAULT_STMTS, |n| n as usize);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(seeds.len())
        .max(1);
    // Register before the workers start: two threads racing through a
    // process's first `register()` can see it return before the VFS is
    // registered ("no such vfs: bop").
    bop_tests::register();
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let all = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                if failed.load(Ordering::SeqCst) {
                    break;
                }
                let Some(&seed) = seeds.get(next.fetch_add(1, Ordering::SeqCst)) else {
                    break;
                };
                println!("differential: seed {seed} starting ({:?})", Setup::of(seed));
                match std::panic::catch_unwind(|| run_seed(seed, stmts)) {
                    Ok(st) => all.lock().expect("stats").push(st),
                    Err(e) => {
                        failed.store(true, Ordering::SeqCst);
                        std::panic::resume_unwind(e);
                    }
                }
            });
        }
    });
    let all = all.into_inner().expect("stats");
    let total: usize = all.iter().map(|s| s.statements).sum();
    let failed_stmts: usize = all.iter().map(|s| s.failed).sum();
    let rows: usize = all.iter().map(|s| s.rows).sum();
    let mut tags: BTreeMap<&str, usize> = BTreeMap::new();
    for st in &all {
        for (t, n) in &st.tags {
            *tags.entry(t).or_default() += n;
        }
    }
    println!(
        "differential: {} seeds, {total} statements ({failed_stmts} failed on both), \
         {rows} rows compared, {:.1}s",
        all.len(),
        start.elapsed().as_secs_f64()
    );
    println!("successful statements by kind: {tags:?}");
    // The stream must be mostly valid SQL, or it tests little.
    assert!(
        failed_stmts * 4 < total,
        "{failed_stmts} of {total} statements failed: the generator's schema model is off"
    );
    assert!(
        rows > total,
        "queries returned only {rows} rows in {total} statements"
    );
    // With the default amount of work, every kind of statement must have
    // run successfully at least once.
    if total >= 10_000 {
        for t in [
            "create_table",
            "integer_primary_key",
            "without_rowid",
            "unique",
            "strict",
            "create_table_as",
            "create_index",
            "index_multi",
            "index_partial",
            "drop_index",
            "drop_table",
            "create_view",
            "alter_add_column",
            "insert",
            "insert_multi",
            "insert_or_replace",
            "insert_select",
            "recursive",
            "upsert",
            "big_value",
            "update",
            "delete",
            "select",
            "join",
            "group_by",
            "aggregate",
            "subquery",
            "compound",
            "window",
            "begin",
            "commit",
            "rollback",
            "savepoint",
            "release",
            "rollback_to",
            "vacuum",
            "checkpoint",
            "integrity_check",
        ] {
            assert!(
                tags.get(t).copied().unwrap_or(0) > 0,
                "no successful `{t}` statement in {total} statements"
            );
        }
    }
}

/// Replays a statement file written on a mismatch (`BOP_DIFF_REPLAY=path`);
/// without the variable there is nothing to replay and the test only checks
/// that the replay parser reads a small inline script.
#[test]
fn replay() {
    let text = match std::env::var_os("BOP_DIFF_REPLAY") {
        Some(p) => std::fs::read_to_string(Path::new(&p)).expect("reading the replay file"),
        None => "# connections=2 cache_size=10 synchronous=NORMAL\n\
                 0\tCREATE TABLE t(a INTEGER PRIMARY KEY, b)\n\
                 0\tBEGIN\n\
                 0\tWITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 2000) \
                 INSERT INTO t(b) SELECT zeroblob(x % 700) FROM r\n\
                 1\tSELECT count(*) FROM t\n\
                 0\tCOMMIT\n\
                 #REOPEN\n\
                 1\tSELECT count(*), sum(length(b)) FROM t\n"
            .to_string(),
    };
    let mut lines = text.lines();
    let setup = lines
        .next()
        .and_then(Setup::parse)
        .expect("the first line is the setup header");
    let mut pair = Pair::new(u64::MAX, setup);
    let mut n = 0;
    for line in lines {
        if line == "#REOPEN" {
            pair.reopen_and_compare();
            continue;
        }
        let (conn, sql) = line.split_once('\t').expect("<conn>\\t<sql>");
        let s = Stmt {
            conn: conn.parse().expect("connection number"),
            sql: sql.to_string(),
            compare: if sql.contains("wal_checkpoint") {
                Compare::SuccessOnly
            } else if sql.contains(" RETURNING ") {
                Compare::Unordered
            } else {
                Compare::Rows
            },
            tags: if sql.contains("integrity_check") {
                vec!["integrity_check"]
            } else {
                Vec::new()
            },
        };
        pair.exec(&s);
        n += 1;
    }
    pair.compare_dumps("after the replay");
    pair.reopen_and_compare();
    if std::env::var_os("BOP_DIFF_REPLAY").is_none() {
        assert_eq!(n, 6);
        let r = query(&pair.bop[1], "SELECT count(*) FROM t", "bop");
        assert_eq!(r, vec![vec![Val::Int(2000)]]);
    }
    println!("replayed {n} statements: both engines agree");
    pair.close();
}

/// The comparison itself: equal floats compare bit-exactly, rows compare in
/// order unless unordered, errors compare by code.
#[test]
fn comparison_is_strict() {
    let r = |v: Vec<Val>| Outcome::Rows(vec![v]);
    assert!(differ(
        &r(vec![Val::Real(0.0f64.to_bits())]),
        &r(vec![Val::Real((-0.0f64).to_bits())]),
        Compare::Rows
    )
    .is_some());
    assert!(differ(
        &r(vec![Val::Int(1)]),
        &r(vec![Val::Real(1.0f64.to_bits())]),
        Compare::Rows
    )
    .is_some());
    assert!(differ(
        &r(vec![Val::Text(b"a".to_vec())]),
        &r(vec![Val::Blob(b"a".to_vec())]),
        Compare::Rows
    )
    .is_some());
    let two = |a: i64, b: i64| Outcome::Rows(vec![vec![Val::Int(a)], vec![Val::Int(b)]]);
    assert!(differ(&two(1, 2), &two(2, 1), Compare::Rows).is_some());
    assert!(differ(&two(1, 2), &two(2, 1), Compare::Unordered).is_none());
    assert!(differ(&two(1, 2), &two(3, 4), Compare::SuccessOnly).is_none());
    assert!(differ(
        &two(1, 2),
        &Outcome::Error(1, "x".into()),
        Compare::SuccessOnly
    )
    .is_some());
    assert!(differ(
        &Outcome::Error(19, "a".into()),
        &Outcome::Error(19, "b".into()),
        Compare::Rows
    )
    .is_none());
    assert!(differ(
        &Outcome::Error(19, "a".into()),
        &Outcome::Error(1, "a".into()),
        Compare::Rows
    )
    .is_some());
}
