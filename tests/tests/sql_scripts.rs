//! SQL scripts through Debian's `sqlite3` CLI with bop loaded as an
//! extension: `tests/sql/NAME.sql` (or `NAME.1.sql`, `NAME.2.sql`, ... run
//! in order, each by a new CLI process, against one store) must print
//! exactly `NAME[.k].expected`. Each script also runs against a plain
//! SQLite file in WAL mode, which must print the same, so the expectations
//! are SQLite's and not bop's. Scripts named `fresh_*` start from a new,
//! empty plain file instead (not yet in WAL mode), as a new bop database
//! is: what SQLite does before the first table (`PRAGMA page_size`,
//! `auto_vacuum`) must come out the same.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bop_tests::{assert_store_layout, kill9, libbop, tempdir};

fn sql_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sql")
}

/// The phases of a script group, in order: `NAME.sql` or `NAME.<k>.sql`.
fn phases(name: &str) -> Vec<(PathBuf, PathBuf)> {
    let mut out: Vec<(u32, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(sql_dir()).unwrap() {
        let p = e.unwrap().path();
        let f = p.file_name().unwrap().to_str().unwrap().to_string();
        let Some(stem) = f.strip_suffix(".sql") else {
            continue;
        };
        if stem == name {
            out.push((0, p));
        } else if let Some(k) = stem.strip_prefix(name).and_then(|r| r.strip_prefix('.')) {
            out.push((k.parse().expect("phase number"), p));
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no tests/sql/{name}.sql");
    out.into_iter()
        .map(|(_, p)| {
            let exp = p.with_extension("expected");
            assert!(exp.is_file(), "{} has no {}", p.display(), exp.display());
            (p, exp)
        })
        .collect()
}

fn sqlite3_cli() -> &'static str {
    let ok = Command::new("sqlite3")
        .arg("-version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the sqlite3 command-line shell is not installed: `apt-get install -y sqlite3` \
         (CI installs it)"
    );
    "sqlite3"
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs the CLI with `args`, the script on stdin, with a time limit.
fn run(args: &[String], script: &Path) -> Run {
    let input = std::fs::read(script).unwrap();
    let mut child = Command::new(sqlite3_cli())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning sqlite3");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // A CLI that bails out early closes its stdin: ignore EPIPE.
        let _ = stdin.write_all(&input);
    });
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        so.read_to_string(&mut s).unwrap();
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        se.read_to_string(&mut s).unwrap();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            kill9(&mut child);
            panic!(
                "sqlite3 {args:?} < {} did not finish in 120 s",
                script.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    writer.join().unwrap();
    Run {
        ok: status.success(),
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

fn check(run: &Run, expected: &Path, what: &str) {
    let exp = std::fs::read_to_string(expected).unwrap();
    assert!(
        run.ok && run.stderr.is_empty(),
        "{what}: sqlite3 failed\n--- stderr\n{}--- stdout\n{}",
        run.stderr,
        run.stdout
    );
    assert_eq!(
        run.stdout,
        exp,
        "{what}: output differs from {}",
        expected.display()
    );
}

fn run_group(name: &str) {
    let phases = phases(name);
    let lib = libbop();
    let lib = lib
        .to_str()
        .unwrap()
        .strip_suffix(".so")
        .unwrap()
        .to_string();

    // Through bop.
    let dir = tempdir();
    let store = dir.path().join("s.db");
    let bop_args = vec![
        "-bail".to_string(),
        "-cmd".into(),
        format!(".load {lib}"),
        "-cmd".into(),
        format!(".open file:{}?vfs=bop", store.display()),
        ":memory:".into(),
    ];
    for (sql, exp) in &phases {
        let r = run(&bop_args, sql);
        check(&r, exp, &format!("bop: {}", sql.display()));
        assert_store_layout(&store);
        let entries: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, ["s.db"], "only the store next to it");
    }

    // Plain SQLite in WAL mode (or new and empty), same scripts, same
    // output.
    let plain_dir = tempdir();
    let plain = plain_dir.path().join("plain.db");
    let mut plain_args = vec![
        "-bail".to_string(),
        "-cmd".into(),
        format!(".open {}", plain.display()),
    ];
    if !name.starts_with("fresh_") {
        for cmd in [".output /dev/null", "PRAGMA journal_mode=wal;", ".output"] {
            plain_args.extend(["-cmd".into(), cmd.into()]);
        }
    }
    plain_args.push(":memory:".into());
    for (sql, exp) in &phases {
        let r = run(&plain_args, sql);
        check(&r, exp, &format!("plain SQLite: {}", sql.display()));
    }
}

macro_rules! script_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_group(stringify!($name));
            }
        )*

        /// Every script in tests/sql belongs to a test above.
        #[test]
        fn every_script_is_run() {
            let known = [$(stringify!($name)),*];
            for e in std::fs::read_dir(sql_dir()).unwrap() {
                let f = e.unwrap().file_name().into_string().unwrap();
                let group = f.split('.').next().unwrap();
                assert!(known.contains(&group), "tests/sql/{f} is not run by any test");
            }
        }
    };
}

script_tests!(
    basic,
    bigtxn,
    vacuum,
    savepoints,
    pragmas,
    reopen,
    fresh_page_size,
    fresh_page_size_64k,
    fresh_page_size_512,
    fresh_auto_vacuum,
    fresh_incremental_vacuum,
    fresh_rollback,
);

#[test]
fn cli_refuses_other_journal_modes() {
    let lib = libbop();
    let lib = lib
        .to_str()
        .unwrap()
        .strip_suffix(".so")
        .unwrap()
        .to_string();
    let dir = tempdir();
    let store = dir.path().join("s.db");
    let script = dir.path().join("jm.sql");
    std::fs::write(&script, "CREATE TABLE t(x);\nPRAGMA journal_mode=delete;\n").unwrap();
    let r = run(
        &[
            "-bail".into(),
            "-cmd".into(),
            format!(".load {lib}"),
            "-cmd".into(),
            format!(".open file:{}?vfs=bop", store.display()),
            ":memory:".into(),
        ],
        &script,
    );
    assert!(
        !r.ok,
        "journal_mode=delete must fail: stdout {:?}",
        r.stdout
    );
    let err = r.stderr.to_lowercase();
    assert!(
        err.contains("bop") || err.contains("wal"),
        "the error should mention bop or WAL: {}",
        r.stderr
    );
}
