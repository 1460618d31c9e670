//! Loads libbop.so into Debian's Python (`/usr/bin/python3`: the python3
//! first on PATH here lacks `enable_load_extension`) and uses the VFS
//! through the standard `sqlite3` module.

mod common;

use std::process::Command;

use common::*;

const PYTHON: &str = "/usr/bin/python3";

const SCRIPT: &str = r#"
import sqlite3, sys

lib, path = sys.argv[1], sys.argv[2]
uri = f"file:{path}?vfs=bop"

loader = sqlite3.connect(":memory:")
loader.enable_load_extension(True)
loader.load_extension(lib)
loader.enable_load_extension(False)

c = sqlite3.connect(uri, uri=True)
print("set_journal_mode=" + c.execute("PRAGMA journal_mode=WAL").fetchone()[0])
c.execute("CREATE TABLE kv(k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
with c:
    c.executemany("INSERT INTO kv VALUES (?, ?)", [(f"k{i}", i) for i in range(500)])
with c:
    c.execute("UPDATE kv SET v = v * 2 WHERE v % 2 = 0")
c.close()

c = sqlite3.connect(uri, uri=True)
print("count=%d" % c.execute("SELECT count(*) FROM kv").fetchone())
print("sum=%d" % c.execute("SELECT sum(v) FROM kv").fetchone())
print("k7=%d" % c.execute("SELECT v FROM kv WHERE k = 'k7'").fetchone())
print("k8=%d" % c.execute("SELECT v FROM kv WHERE k = 'k8'").fetchone())
print("journal_mode=" + c.execute("PRAGMA journal_mode").fetchone()[0])
print("integrity_check=" + c.execute("PRAGMA integrity_check").fetchone()[0])
c.close()

# The library stays loaded after the loading connection closes
# (SQLITE_OK_LOAD_PERMANENTLY), and loading it again is harmless.
loader.close()
again = sqlite3.connect(":memory:")
again.enable_load_extension(True)
again.load_extension(lib)
again.close()
c = sqlite3.connect(uri, uri=True)
print("after_reload_count=%d" % c.execute("SELECT count(*) FROM kv").fetchone())
c.close()
print("done")
"#;

/// Sum of the `v` column written by the script.
fn expected_sum() -> i64 {
    (0..500i64)
        .map(|i| if i % 2 == 0 { i * 2 } else { i })
        .sum()
}

#[test]
fn python_loads_the_extension_and_uses_the_vfs() {
    let python = require_program(PYTHON);
    let lib = libbop_without_suffix();
    let dir = temp_dir();
    let db = dir.path().join("p.db");
    let stdout = run_ok(
        Command::new(python)
            .arg("-c")
            .arg(SCRIPT)
            .arg(&lib)
            .arg(&db),
        None,
    );
    let kv = key_values(&stdout);
    let check = |key: &str, expected: &str| assert_kv(&kv, key, expected, &stdout);
    check("set_journal_mode", "wal");
    check("count", "500");
    check("sum", &expected_sum().to_string());
    check("k7", "7");
    check("k8", "16");
    check("journal_mode", "wal");
    check("integrity_check", "ok");
    check("after_reload_count", "500");
    assert!(stdout.ends_with("done\n"), "output:\n{stdout}");
}

#[test]
fn python_without_the_extension_has_no_bop_vfs() {
    let python = require_program(PYTHON);
    let dir = temp_dir();
    let script = "import sqlite3, sys\n\
                  try:\n    sqlite3.connect(f'file:{sys.argv[1]}?vfs=bop', uri=True)\n    print('opened')\n\
                  except sqlite3.OperationalError as e:\n    print('error=' + str(e))\n";
    let stdout = run_ok(
        Command::new(python)
            .arg("-c")
            .arg(script)
            .arg(dir.path().join("n.db")),
        None,
    );
    assert_eq!(stdout, "error=no such vfs: bop\n");
}
