//! Loads libbop.so into Debian's `sqlite3` shell (SQLite 3.40.1) with
//! `.load` and opens databases through the VFS with `.open`.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// `sqlite3 -batch -bail -cmd '.load LIB' -cmd '.open file:DB?vfs=bop' :memory:`
fn shell_with_bop(db: &Path) -> Command {
    let mut cmd = Command::new(require_program("sqlite3"));
    cmd.args(["-batch", "-bail", "-cmd"])
        .arg(format!(".load \"{}\"", libbop_without_suffix().display()))
        .arg("-cmd")
        .arg(format!(".open \"file:{}?vfs=bop\"", db.display()))
        .arg(":memory:");
    cmd
}

#[test]
fn cli_loads_the_extension_and_reopens() {
    let dir = temp_dir();
    let x = dir.path().join("x.db");
    let y = dir.path().join("y.db");
    let lib = libbop_without_suffix();
    let script = format!(
        r#"PRAGMA journal_mode=WAL;
CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT NOT NULL);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100)
INSERT INTO t(b) SELECT 'v' || x FROM c;
COMMIT;
SELECT 'x_count=' || count(*) FROM t;
.open "file:{y}?vfs=bop"
PRAGMA journal_mode=WAL;
CREATE TABLE u(v);
INSERT INTO u VALUES (42);
SELECT 'y_value=' || v FROM u;
.load "{lib}"
.open "file:{x}?vfs=bop"
SELECT 'x_reopened_count=' || count(*) FROM t;
SELECT 'x_b50=' || b FROM t WHERE a = 50;
SELECT 'x_journal_mode=' || journal_mode FROM pragma_journal_mode;
SELECT 'x_integrity=' || integrity_check FROM pragma_integrity_check;
"#,
        x = x.display(),
        y = y.display(),
        lib = lib.display(),
    );
    let stdout = run_ok(&mut shell_with_bop(&x), Some(&script));
    let kv = key_values(&stdout);
    let check = |key: &str, expected: &str| assert_kv(&kv, key, expected, &stdout);
    assert!(stdout.starts_with("wal\n"), "output:\n{stdout}");
    check("x_count", "100");
    check("y_value", "42");
    check("x_reopened_count", "100");
    check("x_b50", "v50");
    check("x_journal_mode", "wal");
    check("x_integrity", "ok");

    // A second process sees both databases.
    let script = format!(
        r#"SELECT 'x_count=' || count(*) FROM t;
SELECT 'x_integrity=' || integrity_check FROM pragma_integrity_check;
.open "file:{y}?vfs=bop"
SELECT 'y_value=' || v FROM u;
"#,
        y = y.display()
    );
    let stdout = run_ok(&mut shell_with_bop(&x), Some(&script));
    let kv = key_values(&stdout);
    let check = |key: &str, expected: &str| assert_kv(&kv, key, expected, &stdout);
    check("x_count", "100");
    check("x_integrity", "ok");
    check("y_value", "42");
}

#[test]
fn cli_without_the_extension_has_no_bop_vfs() {
    let dir = temp_dir();
    let output = run(
        Command::new(require_program("sqlite3"))
            .args(["-batch", "-bail", "-cmd"])
            .arg(format!(
                ".open \"file:{}?vfs=bop\"",
                dir.path().join("n.db").display()
            ))
            .arg(":memory:"),
        Some("SELECT 1;\n"),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no such vfs: bop"), "{}", describe(&output));
}
