//! An invalid `BOP_IO` fails an open with a message naming it, instead of
//! a panic. (Its own test binary: the variable is process-wide.)

use bop_tests::{tempdir, try_open_with};

#[test]
fn an_invalid_bop_io_fails_the_open_with_a_clear_message() {
    std::env::set_var("BOP_IO", "turbo");
    let dir = tempdir();
    let path = dir.path().join("x.db");
    let e = try_open_with(&path, &[]).unwrap_err();
    let msg = bop_rusqlite::last_error().unwrap_or_default();
    assert!(
        msg.contains("BOP_IO") && msg.contains("turbo") && !msg.contains("panic"),
        "{e}: {msg}"
    );
    assert!(!path.exists(), "no store is created");
}
