//! `bop changes` and `bop cursors`: an operator reads the manifest's change
//! log, follows it with a cursor, acknowledges, and sees the lag.

use std::process::Command;

fn bop(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bop"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn changes_and_cursors_for_operators() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let store = bop_storage::Store::open_shared(&path, &Default::default()).unwrap();
    store.register_cursor("ops").unwrap();
    store.db_write(0, &vec![7u8; 4096]).unwrap();
    store.db_sync().unwrap();
    drop(store);
    let p = path.as_os_str();

    let (ok, out, err) = bop(&["changes".as_ref(), p]);
    assert!(ok, "{err}");
    // Entry 1 (creation: epoch begun; a new database is empty, nothing
    // is published) was truncated: the cursor had it.
    assert!(
        out.lines().next().unwrap().starts_with("2\tPublished"),
        "{out}"
    );
    assert!(out.contains("CleanShutdown"), "{out}");

    let (ok, out, _) = bop(&["cursors".as_ref(), p]);
    assert!(ok);
    assert!(out.starts_with("ops\tacked=1\t"), "{out}");

    let (ok, out, err) = bop(&[
        "changes".as_ref(),
        p,
        "--cursor".as_ref(),
        "ops".as_ref(),
        "--ack".as_ref(),
    ]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("2\tPublished"), "{out}");
    assert!(err.contains("acknowledged"), "{err}");
    // Acknowledged: only what the last two opens logged is left.
    let (_, out, _) = bop(&["changes".as_ref(), p, "--cursor".as_ref(), "ops".as_ref()]);
    assert!(!out.contains("Published"), "{out}");

    let (ok, _, err) = bop(&[
        "changes".as_ref(),
        p,
        "--cursor".as_ref(),
        "nobody".as_ref(),
    ]);
    assert!(!ok && err.contains("no change-log cursor"), "{err}");
}
