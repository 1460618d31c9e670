//! bop's VFS sends the message behind each error code it returns to
//! `sqlite3_log` (the sink bop-frontend gets at registration), so an
//! application with a logger set up sees why an open or a pragma failed,
//! not only SQLite's generic text.

use std::ffi::c_int;
use std::sync::Mutex;

use bop_tests::{open, tempdir, try_open_with};

static LOG: Mutex<Vec<(c_int, String)>> = Mutex::new(Vec::new());

fn collect(code: c_int, msg: &str) {
    LOG.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((code, msg.to_owned()));
}

/// Whether a message with `code` containing every one of `needles` was
/// logged.
fn logged(code: c_int, needles: &[&str]) -> bool {
    LOG.lock()
        .unwrap()
        .iter()
        .any(|(c, m)| *c == code && needles.iter().all(|n| m.contains(n)))
}

#[test]
fn errors_reach_sqlite_log() {
    // SAFETY: the first SQLite call of this process (config_log must come
    // before sqlite3_initialize); the callback makes no SQLite call.
    unsafe { rusqlite::trace::config_log(Some(collect)) }.expect("config_log");
    let dir = tempdir();
    let path = dir.path().join("log.db");

    // An unknown URI parameter: the open fails with SQLITE_CANTOPEN.
    let e = try_open_with(&path, &[("bop_no_such_param", "1")]).unwrap_err();
    assert_eq!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::CannotOpen));
    assert!(
        logged(14, &["unknown URI parameter", "bop_no_such_param"]),
        "{:?}",
        LOG.lock().unwrap()
    );

    // A refused pragma: SQLITE_ERROR with bop's reason.
    let c = open(&path);
    c.execute_batch("PRAGMA journal_mode=DELETE").unwrap_err();
    assert!(
        logged(1, &["journal_mode=DELETE is not supported"]),
        "{:?}",
        LOG.lock().unwrap()
    );
}
