//! The C side of libbop.so: the `sqlite3_api_routines` slot indexes, the
//! exported symbols, `include/bop.h`, and C programs linking the system
//! SQLite and libbop.so.
//!
//! Needs `gcc`, `nm` and the SQLite headers (`apt-get install -y sqlite3
//! libsqlite3-dev`), and a release build (`cargo build --release`).

mod common;

#[path = "../src/api_slots.rs"]
mod api_slots;

use std::process::Command;

use common::*;

#[test]
fn api_slot_indexes_match_sqlite3ext_h() {
    let dir = temp_dir();
    let exe = compile_c("api_slots.c", dir.path(), false);
    let stdout = run_ok(&mut Command::new(exe), None);
    let from_c = key_values(&stdout);
    assert_eq!(from_c.len(), api_slots::ALL.len(), "output:\n{stdout}");
    for (name, index) in api_slots::ALL {
        assert_kv(&from_c, name, &index.to_string(), &stdout);
    }
    // bop.h refuses the same SQLite versions as the extension does.
    let header = std::fs::read_to_string(include_dir().join("bop.h")).expect("read bop.h");
    let check = format!(
        "#if SQLITE_VERSION_NUMBER < {}",
        api_slots::MIN_SQLITE_VERSION_NUMBER
    );
    assert!(header.contains(&check), "bop.h lacks `{check}`");
}

#[test]
fn exports_entry_points_and_needs_no_sqlite_symbols() {
    let nm = require_program("nm");
    let lib = libbop();
    let undefined = run_ok(
        Command::new(&nm).args(["-D", "--undefined-only"]).arg(&lib),
        None,
    );
    let sqlite_undefined: Vec<&str> = undefined
        .lines()
        .filter(|l| l.contains("sqlite3"))
        .collect();
    assert!(
        sqlite_undefined.is_empty(),
        "libbop.so must not need SQLite symbols: {sqlite_undefined:?}"
    );

    let defined = run_ok(
        Command::new(&nm).args(["-D", "--defined-only"]).arg(&lib),
        None,
    );
    let exported: Vec<&str> = defined
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    for symbol in [
        "sqlite3_bop_init",
        "sqlite3_extension_init",
        "bop_register_vfs",
        "bop_last_error",
        "bop_version",
    ] {
        assert!(
            exported.contains(&symbol),
            "{symbol} not exported: {exported:?}"
        );
    }
}

#[test]
fn entry_point_contracts() {
    let dir = temp_dir();
    let exe = compile_c("entry_points.c", dir.path(), true);
    let stdout = run_ok(&mut Command::new(exe), None);
    let kv = key_values(&stdout);
    let check = |key: &str, expected: &str| assert_kv(&kv, key, expected, &stdout);
    let contains = |key: &str, needle: &str| {
        let value = kv.get(key).map(String::as_str).unwrap_or("");
        assert!(
            value.contains(needle),
            "`{key}` should contain {needle:?}; full output:\n{stdout}"
        );
    };

    check("version", env!("CARGO_PKG_VERSION"));

    check("null_api.rc", "21");
    contains("null_api.last_error", "api is NULL");
    check("null_log.rc", "21");
    contains("null_log.last_error", "api->log is NULL");

    check("init_null_routines.rc", "1");
    check("init_null_routines.err", "(null)");
    contains(
        "init_null_routines.last_error",
        "without sqlite3_api_routines",
    );

    check("init_old_sqlite.rc", "1");
    contains("init_old_sqlite.err", "SQLite 3.30.0 is too old");
    contains("init_old_sqlite.err", "3.31.0");
    contains("init_old_sqlite.last_error", "SQLite 3.30.0 is too old");

    check("init_null_slot.rc", "1");
    contains("init_null_slot.err", "uri_key is NULL");
    check("init_null_errmsg.rc", "1");

    check("registered_before", "0");
    check("init_ok.rc", "256");
    check("init_ok.err", "(null)");
    check("init_ok.last_error", "(null)");
    check("extension_init_ok.rc", "256");
    check("registered_after", "1");
    check("default_after_init", "unix");

    check("register.rc", "0");
    check("register.last_error", "(null)");
    check("register_default.rc", "0");
    check("default_after_register_default", "bop");
    assert!(stdout.ends_with("done\n"), "output:\n{stdout}");
}

#[test]
fn smoke_c_program_links_sqlite_and_libbop() {
    let dir = temp_dir();
    let exe = compile_c("smoke.c", dir.path(), true);
    let db = dir.path().join("c.db");
    let stdout = run_ok(Command::new(exe).arg(&db), None);
    let kv = key_values(&stdout);
    let check = |key: &str, expected: &str| assert_kv(&kv, key, expected, &stdout);
    check("bop_version", env!("CARGO_PKG_VERSION"));
    check("register", "0");
    check("vfs_found", "1");
    check("default_vfs", "unix");
    check("set_journal_mode", "wal");
    check("count", "1000");
    check("sum", "500500");
    check("row500", "row-500");
    check("journal_mode", "wal");
    check("integrity_check", "ok");
    check("bad_param_open_failed", "1");
    let bad_param_error = kv.get("bad_param_error").map_or("", String::as_str);
    assert!(
        bad_param_error.contains("bop_no_such_param"),
        "bop_last_error() should name the refused URI parameter; output:\n{stdout}"
    );
    check("register_again", "0");
    assert!(stdout.ends_with("done\n"), "output:\n{stdout}");
}

#[test]
fn header_builds_as_cxx_and_without_sqlite_h() {
    require_sqlite_headers();
    let gcc = require_program("gcc");
    // Only the helper needs sqlite3.h.
    let source = "#define BOP_NO_REGISTER_HELPER\n#include <bop.h>\n\
                  int main(void) { return bop_version() == 0; }\n";
    run_ok(
        Command::new(&gcc)
            .args([
                "-std=c99",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-fsyntax-only",
            ])
            .arg("-I")
            .arg(include_dir())
            .args(["-x", "c", "-"]),
        Some(source),
    );
    // Without sqlite3.h and without the opt-out: a clear #error.
    let output = run(
        Command::new(&gcc)
            .args(["-fsyntax-only", "-I"])
            .arg(include_dir())
            .args(["-x", "c", "-"]),
        Some("#include <bop.h>\n"),
    );
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("include <sqlite3.h> before <bop.h>"),
        "{}",
        describe(&output)
    );
    // C++ (g++ comes with build-essential, as gcc does).
    let gxx = require_program("g++");
    let source = "#include <sqlite3.h>\n#include <bop.h>\n\
                  int main() { return bop_register(0); }\n";
    run_ok(
        Command::new(gxx)
            .args([
                "-std=c++11",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-fsyntax-only",
            ])
            .arg("-I")
            .arg(include_dir())
            .args(["-x", "c++", "-"]),
        Some(source),
    );
}
