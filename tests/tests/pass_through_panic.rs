//! Every method bop's VFS passes through to the default VFS (xDlOpen,
//! xDlError, xDlSym, xDlClose, xRandomness, xSleep, xCurrentTime,
//! xGetLastError, xCurrentTimeInt64) runs in bop's panic guard: a panic in
//! one is an error value and a message in `last_error`, never an unwind
//! into SQLite (which aborts the process). The panic comes from the test
//! hook `bop_vfs::testing::panic_in_next_pass_through`; each method is
//! called through the `sqlite3_vfs` bop registered, as SQLite calls it.

use std::ffi::{c_char, c_int};

use rusqlite::ffi;

fn bop_vfs() -> *mut ffi::sqlite3_vfs {
    bop_tests::register();
    // SAFETY: a NUL-terminated name; SQLite is initialized by registration.
    let v = unsafe { ffi::sqlite3_vfs_find(c"bop".as_ptr()) };
    assert!(!v.is_null(), "the bop VFS is registered");
    v
}

/// Arms the hook, runs `call` (one method call) and checks the message.
fn panics_in(method: &str, call: impl FnOnce()) {
    bop_vfs::testing::panic_in_next_pass_through();
    call();
    let msg = bop_rusqlite::last_error().unwrap_or_default();
    assert!(
        msg.contains(&format!("internal error (panic) in {method}:"))
            && msg.contains("test panic in the pass-through"),
        "{method}: {msg}"
    );
}

#[test]
fn a_panic_in_a_pass_through_method_is_an_error_not_an_abort() {
    let v = bop_vfs();
    // SAFETY: `v` is bop's process-lifetime sqlite3_vfs; every call passes
    // valid buffers of the sizes given. With the hook armed a method panics
    // before it reaches the default VFS, so the null handles passed then
    // are never used.
    unsafe {
        let m = &*v;
        let mut buf = [0 as c_char; 256];
        let n = buf.len() as c_int;

        // Without the hook, each answers as the default VFS does.
        let mut ms: ffi::sqlite3_int64 = 0;
        assert_eq!(m.xCurrentTimeInt64.unwrap()(v, &mut ms), ffi::SQLITE_OK);
        assert!(ms > 0);
        assert_eq!(m.xRandomness.unwrap()(v, 16, buf.as_mut_ptr()), 16);

        panics_in("xCurrentTimeInt64", || {
            assert_eq!(m.xCurrentTimeInt64.unwrap()(v, &mut ms), ffi::SQLITE_ERROR)
        });
        let mut days = 0f64;
        panics_in("xCurrentTime", || {
            assert_eq!(m.xCurrentTime.unwrap()(v, &mut days), ffi::SQLITE_ERROR)
        });
        panics_in("xGetLastError", || {
            assert_eq!(
                m.xGetLastError.unwrap()(v, n, buf.as_mut_ptr()),
                ffi::SQLITE_ERROR
            )
        });
        panics_in("xRandomness", || {
            assert_eq!(m.xRandomness.unwrap()(v, 16, buf.as_mut_ptr()), 0)
        });
        panics_in("xSleep", || assert_eq!(m.xSleep.unwrap()(v, 1), 0));
        panics_in("xDlOpen", || {
            assert!(m.xDlOpen.unwrap()(v, c"libnothing.so".as_ptr()).is_null())
        });
        panics_in("xDlError", || m.xDlError.unwrap()(v, n, buf.as_mut_ptr()));
        panics_in("xDlSym", || {
            assert!(m.xDlSym.unwrap()(v, std::ptr::null_mut(), c"f".as_ptr()).is_none())
        });
        panics_in("xDlClose", || m.xDlClose.unwrap()(v, std::ptr::null_mut()));

        // The hook fires once: the next calls reach the default VFS again.
        assert_eq!(m.xCurrentTime.unwrap()(v, &mut days), ffi::SQLITE_OK);
        assert!(days > 2_400_000.0, "a Julian day number: {days}");
        assert_eq!(m.xRandomness.unwrap()(v, 16, buf.as_mut_ptr()), 16);
    }

    // And the process goes on using bop.
    let dir = bop_tests::tempdir();
    let c = bop_tests::open(&dir.path().join("after.db"));
    c.execute_batch("CREATE TABLE t(a); INSERT INTO t VALUES (1);")
        .unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}
