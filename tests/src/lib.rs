//! Shared helpers for the end-to-end tests.
//!
//! Every test opens databases through the `bop` VFS with a `file:` URI whose
//! path names the store directory bop creates. The helpers here build those
//! URIs, open connections, walk store directories and generate the
//! deterministic data the crash tests recompute.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

pub mod layered_vfs;
pub mod sqlgen;

/// Registers the `bop` VFS (idempotent) and panics if that fails.
pub fn register() {
    bop_rusqlite::register().expect("registering the bop VFS");
}

/// The flags every test opens with.
pub fn flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_URI
}

/// Percent-encodes the characters that would end or change a URI path.
fn uri_path(path: &Path) -> String {
    let s = path.to_str().expect("test paths are UTF-8");
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            '&' => out.push_str("%26"),
            '=' => out.push_str("%3d"),
            ' ' => out.push_str("%20"),
            c => out.push(c),
        }
    }
    out
}

/// `file:<dir>/<name>?vfs=bop`
pub fn store_uri(dir: &Path, name: &str) -> String {
    uri(&dir.join(name), &[])
}

/// `file:<path>?vfs=bop&k=v...`
pub fn uri(path: &Path, params: &[(&str, &str)]) -> String {
    let mut u = format!("file:{}?vfs=bop", uri_path(path));
    for (k, v) in params {
        u.push('&');
        u.push_str(k);
        u.push('=');
        u.push_str(v);
    }
    u
}

/// Opens the store at `path` through bop, with URI parameters.
pub fn try_open_with(path: &Path, params: &[(&str, &str)]) -> rusqlite::Result<Connection> {
    register();
    Connection::open_with_flags(uri(path, params), flags())
}

/// Opens the store at `path` through bop, panicking on error.
pub fn open(path: &Path) -> Connection {
    open_with(path, &[])
}

/// Opens the store at `path` through bop with URI parameters, panicking on
/// error.
pub fn open_with(path: &Path, params: &[(&str, &str)]) -> Connection {
    match try_open_with(path, params) {
        Ok(c) => c,
        Err(e) => panic!(
            "opening {} through bop failed: {e} (bop last_error: {:?})",
            uri(path, params),
            bop_rusqlite::last_error()
        ),
    }
}

/// Closes a connection, panicking with the error if SQLite refuses.
pub fn close(conn: Connection) {
    if let Err((_, e)) = conn.close() {
        panic!("closing a connection failed: {e}");
    }
}

/// A fresh temporary directory for one test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("bop-e2e-")
        .tempdir()
        .expect("creating a temporary directory")
}

/// The SQLite error code of a rusqlite error, if it is a SQLite failure.
pub fn code(e: &rusqlite::Error) -> Option<ErrorCode> {
    e.sqlite_error_code()
}

/// The value of `key` in `PRAGMA bop_stats` (a number).
pub fn stat(conn: &Connection, key: &str) -> u64 {
    let s: String = conn
        .query_row("PRAGMA bop_stats", [], |r| r.get(0))
        .expect("bop_stats");
    s.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} not in {s}"))
        .parse()
        .unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// Runs `PRAGMA integrity_check` and asserts it answers exactly `ok`.
pub fn assert_integrity(conn: &Connection) {
    let mut stmt = conn
        .prepare("PRAGMA integrity_check")
        .expect("preparing integrity_check");
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("running integrity_check")
        .collect::<rusqlite::Result<_>>()
        .expect("reading integrity_check");
    assert_eq!(rows, vec!["ok".to_string()], "PRAGMA integrity_check");
}

/// `PRAGMA journal_mode` as text.
pub fn journal_mode(conn: &Connection) -> String {
    conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("PRAGMA journal_mode")
}

/// One entry of a directory walk: path relative to the root, and whether it
/// is a directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub rel: PathBuf,
    pub is_dir: bool,
}

/// Every file and directory under `root` (not `root` itself), sorted.
pub fn walk(root: &Path) -> Vec<Entry> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<Entry>) {
        let rd =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for ent in rd {
            let ent = ent.expect("directory entry");
            let path = ent.path();
            let ft = ent.file_type().expect("file type");
            out.push(Entry {
                rel: path.strip_prefix(root).expect("under root").to_path_buf(),
                is_dir: ft.is_dir(),
            });
            if ft.is_dir() {
                go(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    go(root, root, &mut out);
    out.sort();
    out
}

/// Asserts that `store` is a bop store directory holding only bop's own
/// files (LOCK, manifest/, wal/*.{seg,spare,idx}, chunks/*.chunk) and that no file in it
/// is a SQLite database, journal or WAL.
pub fn assert_store_layout(store: &Path) {
    assert!(
        store.is_dir(),
        "{} must be a directory (the bop store)",
        store.display()
    );
    for e in walk(store) {
        let parts: Vec<&str> = e
            .rel
            .components()
            .map(|c| c.as_os_str().to_str().expect("UTF-8 names"))
            .collect();
        let ok = match (parts.as_slice(), e.is_dir) {
            (["LOCK"], false) => true,
            (["manifest" | "wal" | "chunks"], true) => true,
            (["manifest", "data.mdb" | "lock.mdb"], false) => true,
            (["wal", f], false) => {
                f.ends_with(".seg") || f.ends_with(".spare") || f.ends_with(".idx")
            }
            (["chunks", f], false) => f.ends_with(".chunk"),
            _ => false,
        };
        assert!(
            ok,
            "unexpected entry in the bop store {}: {:?}",
            store.display(),
            e
        );
        if !e.is_dir {
            let mut head = [0u8; 16];
            let mut f = std::fs::File::open(store.join(&e.rel)).expect("open store file");
            let n = f.read(&mut head).expect("read store file");
            assert!(
                !head[..n].starts_with(b"SQLite format 3"),
                "{} is a plain SQLite database file",
                e.rel.display()
            );
        }
    }
    for sub in ["manifest", "wal", "chunks"] {
        assert!(
            store.join(sub).is_dir(),
            "{} has no {sub}/",
            store.display()
        );
    }
    assert!(
        store.join("LOCK").is_file(),
        "{} has no LOCK",
        store.display()
    );
}

/// The directory holding the release build of the workspace
/// (`$CARGO_TARGET_DIR/release` or `<workspace>/target/release`).
pub fn release_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            let d = if d.is_relative() {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(d)
            } else {
                d
            };
            d.join("release")
        }
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join("release"),
    }
}

/// The loadable extension `libbop.so`; panics with instructions if it has
/// not been built.
pub fn libbop() -> PathBuf {
    let so = release_dir().join("libbop.so");
    assert!(
        so.is_file(),
        "{} is missing: run `cargo build --release` in the workspace first \
         (the SQL script tests load the extension into the sqlite3 CLI)",
        so.display()
    );
    so.canonicalize().expect("canonical path of libbop.so")
}

/// Waits up to `timeout` for `f` to return `Some`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends SIGKILL to a child process and reaps it.
pub fn kill9(child: &mut std::process::Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) with a pid we spawned and have not reaped yet (the
    // `Child` is still alive until `wait` below), so the pid cannot have been
    // reused by another process.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH),
        "kill -9 {pid}: {}",
        std::io::Error::last_os_error()
    );
    let _ = child.wait().expect("waiting for the killed child");
}

/// Deterministic data for the crash and corruption tests: every value is a
/// function of the transaction id and the row index, so a checker can
/// recompute what a transaction wrote.
pub mod crashdata {
    /// The crash tests' table.
    pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS t(\
        txn INTEGER NOT NULL, idx INTEGER NOT NULL, n INTEGER NOT NULL, \
        val BLOB NOT NULL, PRIMARY KEY(txn, idx)) WITHOUT ROWID";

    /// splitmix64
    pub fn mix(mut x: u64) -> u64 {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    /// How many rows transaction `txn` inserts (1..=`max_rows`).
    pub fn rows_in(txn: u64, max_rows: u64) -> u64 {
        1 + mix(txn ^ 0x5eed_0000_0000_0000) % max_rows
    }

    /// The value of row `idx` of transaction `txn`: mostly 16..=300 bytes,
    /// about one row in 200 a blob of 8 KiB..=40 KiB (overflow pages).
    pub fn value(txn: u64, idx: u64) -> Vec<u8> {
        let h = mix(txn.wrapping_mul(1_000_003) ^ mix(idx));
        let len = if matches!(h % 200, 0) {
            8192 + (mix(h) % (32 * 1024 + 1)) as usize
        } else {
            16 + (mix(h) % 285) as usize
        };
        let mut out = Vec::with_capacity(len + 8);
        let mut s = h;
        while out.len() < len {
            s = mix(s);
            out.extend_from_slice(&s.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// Checks the crash table in `conn`: the transaction ids present are
    /// exactly `1..=k`, each transaction has all its rows (`rows_in`), and
    /// the values of transactions `content_from..=k` equal the recomputed
    /// ones. Returns `k` (0 when the table does not exist yet).
    pub fn verify(conn: &rusqlite::Connection, max_rows: u64, content_from: u64) -> u64 {
        let exists: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 't'",
                [],
                |r| r.get(0),
            )
            .expect("reading the schema");
        if exists == 0 {
            return 0;
        }
        let mut stmt = conn
            .prepare(
                "SELECT txn, count(*), min(n), max(n), min(idx), max(idx) \
                 FROM t GROUP BY txn ORDER BY txn",
            )
            .expect("prepare");
        let groups: Vec<[i64; 6]> = stmt
            .query_map([], |r| {
                Ok([
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ])
            })
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("reading transactions");
        for (i, g) in groups.iter().enumerate() {
            let txn = i as u64 + 1;
            assert_eq!(
                g[0] as u64, txn,
                "transaction ids are not a prefix 1..=k: {txn} missing"
            );
            let n = rows_in(txn, max_rows) as i64;
            assert_eq!(
                [g[1], g[2], g[3], g[4], g[5]],
                [n, n, n, 0, n - 1],
                "transaction {txn} is incomplete or wrong (count, min n, max n, min idx, max idx)"
            );
        }
        let k = groups.len() as u64;
        let mut rows = conn
            .prepare("SELECT idx, val FROM t WHERE txn = ?1 ORDER BY idx")
            .expect("prepare");
        for txn in content_from.max(1)..=k {
            let vals: Vec<(i64, Vec<u8>)> = rows
                .query_map([txn as i64], |r| Ok((r.get(0)?, r.get(1)?)))
                .expect("query")
                .collect::<rusqlite::Result<_>>()
                .expect("reading rows");
            for (idx, val) in vals {
                assert!(
                    val == value(txn, idx as u64),
                    "transaction {txn} row {idx}: value differs from the recomputed one"
                );
            }
        }
        k
    }
}

/// A child process (one of this crate's binaries) whose stdout lines are
/// collected by a thread.
pub struct Child {
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Child {
    /// Spawns `bin` with `args`, stdout and stderr piped.
    pub fn spawn(bin: &str, args: &[&std::ffi::OsStr]) -> Child {
        use std::io::BufRead;
        let mut child = std::process::Command::new(bin)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {bin}: {e}"));
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            sink.lock().expect("stderr lock").push_str(&s);
        });
        Child {
            child,
            lines: rx,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Waits up to `timeout` for a line equal to `want`, collecting lines.
    pub fn wait_line(&mut self, want: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let hit = l == want;
                    self.seen.push(l);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Whether the child has exited on its own.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// What the child wrote to stderr so far (complete once it is reaped
    /// and the pipe is drained).
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// SIGKILLs the child, reaps it, and returns every stdout line it
    /// printed.
    pub fn kill9(mut self) -> Vec<String> {
        kill9(&mut self.child);
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(10)) {
            self.seen.push(l);
        }
        self.seen
    }
}
