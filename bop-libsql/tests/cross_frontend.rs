//! One store, two front ends, one format: what libSQL writes through bop's
//! virtual WAL (standard SQLite WAL frames in the store's WAL image) is read
//! by stock SQLite (Debian's sqlite3 CLI with bop loaded as an extension,
//! the VFS front end, whose WAL recovery re-validates every frame checksum),
//! and the reverse, including libSQL continuing a WAL image stock SQLite
//! wrote. The CLI is a separate process: libSQL and system SQLite are never
//! linked together.

mod common;
use bop_libsql::Value;
use common::{checkpoint, conn};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn release_dir() -> PathBuf {
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
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release"),
    }
}

/// `target/release/libbop` (without `.so`), built by `cargo build --release`.
fn libbop() -> String {
    let so = release_dir().join("libbop.so");
    assert!(
        so.is_file(),
        "{} is missing: run `cargo build --release` in the workspace first",
        so.display()
    );
    let so = so.canonicalize().unwrap();
    so.to_str().unwrap().strip_suffix(".so").unwrap().to_owned()
}

/// Runs `script` in the sqlite3 CLI on the store through the bop VFS.
fn cli(store: &Path, script: &str) -> String {
    let mut child = Command::new("sqlite3")
        .args([
            "-bail",
            "-cmd",
            &format!(".load {}", libbop()),
            "-cmd",
            &format!(".open file:{}?vfs=bop", store.display()),
            ":memory:",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sqlite3 CLI (apt-get install -y sqlite3)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "sqlite3 failed: {stderr}"
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fingerprint_sql() -> &'static str {
    "SELECT count(*), sum(a), sum(length(b)), total(c) FROM t;"
}

fn fingerprint(c: &bop_libsql::Connection) -> String {
    let r = c.query(fingerprint_sql(), &[]).unwrap();
    let v: Vec<String> = r[0]
        .iter()
        .map(|v| match v {
            Value::Integer(i) => i.to_string(),
            Value::Real(x) => format!("{x:.1}"),
            other => format!("{other:?}"),
        })
        .collect();
    v.join("|")
}

#[test]
fn libsql_writes_stock_sqlite_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("x.db");
    {
        let c = conn(&store);
        c.execute_batch(
            "PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=20;
             CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB, c REAL);
             CREATE INDEX tc ON t(c);",
        )
        .unwrap();
        for i in 0..200 {
            c.execute(
                "INSERT INTO t VALUES (?, randomblob(?1 % 700), ?1 * 0.5)",
                &[Value::Integer(i)],
            )
            .unwrap();
        }
        // Some pages in the page store, the rest only in the WAL image.
        checkpoint(&c, "PASSIVE");
        // A spilling transaction with frames rewritten in place.
        c.execute_batch(
            "BEGIN;
             WITH RECURSIVE s(i) AS (SELECT 1000 UNION ALL SELECT i + 1 FROM s WHERE i < 4999)
             INSERT INTO t SELECT i, randomblob(300), i * 0.25 FROM s;
             UPDATE t SET b = randomblob(200) WHERE a < 1500;
             COMMIT;
             DELETE FROM t WHERE a % 5 = 0;",
        )
        .unwrap();
        let frames = common::stat(&c, "wal_image_frames");
        assert!(frames > 100, "the WAL image holds {frames} frames");
        let fp = fingerprint(&c);
        drop(c);
        // Stock SQLite recovers the WAL image (checking every frame's
        // salts and checksums) and sees exactly the same data.
        let out = cli(
            &store,
            &format!(
                ".mode list\nPRAGMA integrity_check;\n{}\n",
                fingerprint_sql().replace("total(c)", "printf('%.1f', total(c))")
            ),
        );
        assert_eq!(out, format!("ok\n{fp}\n"));
    }
    // Stock SQLite checkpointed and deleted its WAL at close; libSQL reads
    // the result.
    let c = conn(&store);
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 3360);
    assert_eq!(
        c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
        Some("ok")
    );
}

#[test]
fn stock_sqlite_writes_libsql_reads_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("y.db");
    // Stock SQLite writes and leaves its WAL image in the store (no
    // checkpoint at close).
    cli(
        &store,
        ".dbconfig no_ckpt_on_close on
         PRAGMA wal_autocheckpoint=0;
         CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB, c REAL);
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 3000)
         INSERT INTO t SELECT i, randomblob(100 + i % 500), i * 1.5 FROM s;
         INSERT INTO t VALUES (5000, x'00', 0.0);
         INSERT INTO t VALUES (5001, x'0102', 0.5);
         ",
    );
    let c = conn(&store);
    assert!(
        common::stat(&c, "wal_image_frames") > 10,
        "the store holds stock SQLite's WAL image"
    );
    assert_eq!(c.query_i64("SELECT count(*) FROM t").unwrap(), 3002);
    assert_eq!(
        c.query_string("PRAGMA integrity_check").unwrap().as_deref(),
        Some("ok")
    );
    // libSQL appends to stock SQLite's WAL generation (its salts, its
    // checksum chain), then stock SQLite reads that again.
    c.execute_batch(
        "PRAGMA wal_autocheckpoint=0;
         INSERT INTO t VALUES (6000, randomblob(4000), 1.0);
         UPDATE t SET c = c + 1 WHERE a % 3 = 0;
         DELETE FROM t WHERE a BETWEEN 100 AND 199;",
    )
    .unwrap();
    let fp = fingerprint(&c);
    drop(c);
    let out = cli(
        &store,
        &format!(
            ".output /dev/null\n.dbconfig no_ckpt_on_close on\n.output\n.mode list\nPRAGMA integrity_check;\n{}\n",
            fingerprint_sql().replace("total(c)", "printf('%.1f', total(c))")
        ),
    );
    assert_eq!(out, format!("ok\n{fp}\n"));
}
