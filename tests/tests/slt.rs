//! A small sqllogictest runner, and the scripts in `tests/slt/*.test` run
//! through it on both stock SQLite (a plain database file in WAL mode, page
//! size 4096) and bop. Both must produce exactly the expected results.
//!
//! The format is sqllogictest's classic one. Records are separated by blank
//! lines; `#` starts a comment line.
//!
//! ```text
//! statement ok            the SQL (up to the next blank line) must succeed
//! statement error         ... must fail
//! query <types> [<sort>]  the SQL, then `----`, then the expected values,
//!                         one per line, row after row
//! hash-threshold <n>      accepted and ignored
//! halt                    stops the script
//! reopen                  (extension) closes the connection and opens the
//!                         database again; for bop this restarts its engine
//! ```
//!
//! `<types>` has one letter per column: `I` integer, `T` text, `R` real
//! (printed `%.3f`). NULL prints `NULL`, an empty string `(empty)`, and in
//! text every character outside printable ASCII prints `@`. `<sort>` is
//! `nosort` (the default), `rowsort` (rows sorted as lists of printed
//! values) or `valuesort` (every printed value sorted on its own).

use std::path::{Path, PathBuf};

use bop_tests::layered_vfs::{self, Writes};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sort {
    No,
    Row,
    Value,
}

#[derive(Debug)]
enum Record {
    Statement {
        line: usize,
        ok: bool,
        sql: String,
    },
    Query {
        line: usize,
        types: Vec<char>,
        sort: Sort,
        sql: String,
        expected: Vec<String>,
    },
    Reopen,
}

/// Parses a script; errors name the line.
fn parse(text: &str) -> Result<Vec<Record>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        let lineno = i + 1;
        i += 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        // The SQL: lines up to a blank line (or `----` for queries).
        let take_sql = |i: &mut usize, query: bool| -> Result<(String, bool), String> {
            let mut sql = Vec::new();
            while *i < lines.len() {
                let l = lines[*i].trim_end();
                if l.trim().is_empty() {
                    break;
                }
                *i += 1;
                if query && l == "----" {
                    return Ok((sql.join("\n"), true));
                }
                sql.push(l);
            }
            if sql.is_empty() {
                return Err(format!("line {lineno}: record without SQL"));
            }
            Ok((sql.join("\n"), false))
        };
        match words.as_slice() {
            ["statement", kind] => {
                let ok = match *kind {
                    "ok" => true,
                    "error" => false,
                    k => return Err(format!("line {lineno}: unknown statement kind {k:?}")),
                };
                let (sql, _) = take_sql(&mut i, false)?;
                out.push(Record::Statement {
                    line: lineno,
                    ok,
                    sql,
                });
            }
            ["query", types, rest @ ..] => {
                let types: Vec<char> = types.chars().collect();
                if types.is_empty() || types.iter().any(|c| !matches!(c, 'I' | 'T' | 'R')) {
                    return Err(format!("line {lineno}: bad column types {types:?}"));
                }
                let sort = match rest.first() {
                    None | Some(&"nosort") => Sort::No,
                    Some(&"rowsort") => Sort::Row,
                    Some(&"valuesort") => Sort::Value,
                    Some(s) => return Err(format!("line {lineno}: unknown sort mode {s:?}")),
                };
                let (sql, has_results) = take_sql(&mut i, true)?;
                let mut expected = Vec::new();
                if has_results {
                    while i < lines.len() && !lines[i].trim().is_empty() {
                        expected.push(lines[i].trim_end().to_string());
                        i += 1;
                    }
                }
                out.push(Record::Query {
                    line: lineno,
                    types,
                    sort,
                    sql,
                    expected,
                });
            }
            ["hash-threshold", _] => {}
            ["halt"] => break,
            ["reopen"] => out.push(Record::Reopen),
            _ => return Err(format!("line {lineno}: unknown record {line:?}")),
        }
    }
    Ok(out)
}

/// SQLite's conversion of text to a number: the longest numeric prefix.
fn text_number(t: &[u8]) -> f64 {
    let s = String::from_utf8_lossy(t);
    let s = s.trim_start();
    let numeric = s
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E')))
        .unwrap_or(s.len());
    let mut end = 0;
    for i in 1..=numeric {
        if s[..i].parse::<f64>().is_ok() {
            end = i;
        }
    }
    s[..end].parse().unwrap_or(0.0)
}

fn printable(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "(empty)".into();
    }
    bytes
        .iter()
        .map(|&b| {
            if (b' '..=b'~').contains(&b) {
                b as char
            } else {
                '@'
            }
        })
        .collect()
}

/// One value printed as column type `ty`.
fn format_value(v: ValueRef<'_>, ty: char) -> String {
    match (v, ty) {
        (ValueRef::Null, _) => "NULL".into(),
        (ValueRef::Integer(i), 'I') => i.to_string(),
        (ValueRef::Real(f), 'I') => (f.trunc() as i64).to_string(),
        (ValueRef::Text(t) | ValueRef::Blob(t), 'I') => (text_number(t).trunc() as i64).to_string(),
        (ValueRef::Integer(i), 'R') => format!("{:.3}", i as f64),
        (ValueRef::Real(f), 'R') => format!("{f:.3}"),
        (ValueRef::Text(t) | ValueRef::Blob(t), 'R') => format!("{:.3}", text_number(t)),
        (ValueRef::Integer(i), _) => i.to_string(),
        (ValueRef::Real(f), _) => format!("{f}"),
        (ValueRef::Text(t) | ValueRef::Blob(t), _) => printable(t),
    }
}

/// Runs a query, printing every value by its column type.
fn run_query(conn: &Connection, sql: &str, types: &[char]) -> Result<Vec<Vec<String>>, String> {
    let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
    let n = stmt.column_count();
    if n != types.len() {
        return Err(format!(
            "the query returns {n} columns, the record declares {}",
            types.len()
        ));
    }
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(|e| e.to_string())? {
        let row = (0..n)
            .map(|i| format_value(r.get_ref(i).expect("column in range"), types[i]))
            .collect();
        out.push(row);
    }
    Ok(out)
}

/// Runs a statement to completion, discarding any rows.
fn run_statement(conn: &Connection, sql: &str) -> Result<(), String> {
    let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
    let mut rows = stmt.raw_query();
    while rows.next().map_err(|e| e.to_string())?.is_some() {}
    Ok(())
}

/// Which database the script runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Stock,
    Bop,
    /// bop under a VFS layered over it (`bop_tests::layered_vfs`): this
    /// sector size, no power-safe overwrite, writes reaching bop this way.
    Layered(i32, Writes),
}

fn open(engine: Engine, dir: &Path) -> Connection {
    match engine {
        Engine::Stock => {
            let path = dir.join("stock.db");
            let fresh = !path.exists();
            let c = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            )
            .expect("opening the stock SQLite database");
            if fresh {
                c.execute_batch("PRAGMA page_size = 4096;")
                    .expect("page_size");
                let mode: String = c
                    .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                    .expect("journal_mode=WAL");
                assert_eq!(mode, "wal");
            }
            c
        }
        Engine::Bop => bop_tests::open(&dir.join("bop.db")),
        Engine::Layered(sector, writes) => {
            let c = layered_vfs::open(&dir.join("bop.db"), layered_vfs::vfs(sector, writes));
            // A new database takes its page size from SQLite, which raises
            // its default to a large sector size (as over the unix VFS); the
            // scripts' expected results (free-list counts, page counts)
            // assume 4096-byte pages, so ask for them before the first table.
            c.pragma_update(None, "page_size", 4096)
                .expect("page_size=4096");
            c
        }
    }
}

/// Runs a script on a fresh database of `engine`. Returns every failure
/// (empty: the script passed).
fn run_script(text: &str, engine: Engine) -> Vec<String> {
    let records = match parse(text) {
        Ok(r) => r,
        Err(e) => return vec![format!("parse error: {e}")],
    };
    let dir = bop_tests::tempdir();
    let mut conn = open(engine, dir.path());
    let mut failures = Vec::new();
    for rec in &records {
        match rec {
            Record::Reopen => {
                bop_tests::close(conn);
                conn = open(engine, dir.path());
            }
            Record::Statement { line, ok, sql } => match (run_statement(&conn, sql), ok) {
                (Ok(()), true) | (Err(_), false) => {}
                (Ok(()), false) => failures.push(format!(
                    "line {line}: expected an error, got success\n{sql}"
                )),
                (Err(e), true) => failures.push(format!("line {line}: failed: {e}\n{sql}")),
            },
            Record::Query {
                line,
                types,
                sort,
                sql,
                expected,
            } => {
                let rows = match run_query(&conn, sql, types) {
                    Ok(r) => r,
                    Err(e) => {
                        failures.push(format!("line {line}: query failed: {e}\n{sql}"));
                        continue;
                    }
                };
                let got: Vec<String> = match sort {
                    Sort::No => rows.into_iter().flatten().collect(),
                    Sort::Row => {
                        let mut rows = rows;
                        rows.sort();
                        rows.into_iter().flatten().collect()
                    }
                    Sort::Value => {
                        let mut v: Vec<String> = rows.into_iter().flatten().collect();
                        v.sort();
                        v
                    }
                };
                if &got != expected {
                    failures.push(format!(
                        "line {line}: wrong result\n{sql}\nexpected:\n{}\ngot:\n{}",
                        expected.join("\n"),
                        got.join("\n")
                    ));
                }
            }
        }
    }
    bop_tests::close(conn);
    if engine != Engine::Stock {
        bop_tests::assert_store_layout(&dir.path().join("bop.db"));
    }
    failures
}

fn scripts() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("slt");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    out.sort();
    out
}

#[test]
fn every_script_passes_on_stock_sqlite_and_on_bop() {
    let scripts = scripts();
    assert!(
        scripts.len() >= 6,
        "expected at least 6 scripts in tests/slt, found {}",
        scripts.len()
    );
    let mut failures = Vec::new();
    for path in &scripts {
        let text = std::fs::read_to_string(path).expect("reading the script");
        let records = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let queries = records
            .iter()
            .filter(|r| matches!(r, Record::Query { .. }))
            .count();
        assert!(queries >= 5, "{}: only {queries} queries", path.display());
        for engine in [Engine::Stock, Engine::Bop] {
            let f = run_script(&text, engine);
            println!(
                "{} on {engine:?}: {} records, {} failures",
                path.file_name().expect("file name").to_string_lossy(),
                records.len(),
                f.len()
            );
            for x in f {
                failures.push(format!("{} on {engine:?}: {x}", path.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The scripts through a VFS layered over bop that makes SQLite pad every
/// commit to 512, 4096 or 65536-byte sectors, with SQLite's writes passed
/// as they are, widened to whole sectors, or held until the next sync.
#[test]
fn every_script_passes_through_a_layered_vfs() {
    let mut failures = Vec::new();
    for path in &scripts() {
        let text = std::fs::read_to_string(path).expect("reading the script");
        for sector in [512, 4096, 65536] {
            for writes in [Writes::AsIs, Writes::WholeSectors, Writes::UntilSync] {
                let engine = Engine::Layered(sector, writes);
                for x in run_script(&text, engine) {
                    failures.push(format!("{} on {engine:?}: {x}", path.display()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The runner itself must catch wrong results, unexpected successes and
/// failures, and column-count mismatches, and honour the sort modes.
#[test]
fn runner_reports_every_kind_of_mismatch() {
    let base = "statement ok\nCREATE TABLE t(a INTEGER, b TEXT)\n\n\
                statement ok\nINSERT INTO t VALUES (2, 'x'), (10, ''), (1, NULL)\n\n";
    let pass = format!(
        "{base}query IT nosort\nSELECT a, b FROM t ORDER BY a\n----\n1\nNULL\n2\nx\n10\n(empty)\n\n\
         query IT rowsort\nSELECT a, b FROM t\n----\n1\nNULL\n10\n(empty)\n2\nx\n\n\
         query I valuesort\nSELECT a FROM t\n----\n1\n10\n2\n\n\
         query RIT nosort\nSELECT 1, 2.9, x'41000a42'\n----\n1.000\n2\nA@@B\n\n\
         query I nosort\nSELECT a FROM t WHERE a > 100\n----\n\n\
         statement error\nINSERT INTO nosuch VALUES (1)\n"
    );
    for engine in [Engine::Stock, Engine::Bop] {
        assert_eq!(run_script(&pass, engine), Vec::<String>::new());
    }
    let bad = [
        "query I nosort\nSELECT a FROM t ORDER BY a\n----\n1\n10\n2\n",
        "query I rowsort\nSELECT a FROM t\n----\n1\n2\n10\n",
        "query II nosort\nSELECT a FROM t\n----\n1\n2\n10\n",
        "query T nosort\nSELECT b FROM t WHERE a = 10\n----\n\n",
        "query R nosort\nSELECT 0.1234\n----\n0.124\n",
        "statement error\nINSERT INTO t VALUES (3, 'y')\n",
        "statement ok\nINSERT INTO t VALUES (1, 2, 3)\n",
        "query I nosort\nSELECT * FROM nosuch\n----\n1\n",
        "bogus record\n",
    ];
    for b in bad {
        let script = format!("{base}{b}");
        for engine in [Engine::Stock, Engine::Bop] {
            let f = run_script(&script, engine);
            assert_eq!(
                f.len(),
                1,
                "{engine:?} must report exactly one failure for:\n{b}\ngot {f:?}"
            );
        }
    }
}
