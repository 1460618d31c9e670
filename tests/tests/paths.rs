//! Which paths open a bop database, and which are refused as SQLite
//! refuses them: a missing parent directory (SQLITE_CANTOPEN unless the
//! URI parameter `create_parents=1` asks bop to create it), and paths
//! inside a store that are not a valid database name.

use bop_tests::{close, code, open, open_with, tempdir, try_open_with, uri};
use rusqlite::ErrorCode;

fn last_error() -> String {
    bop_rusqlite::last_error().unwrap_or_default()
}

#[test]
fn missing_parent_directory_is_cantopen() {
    let dir = tempdir();
    let path = dir.path().join("missing").join("deeper").join("app.db");
    let e = try_open_with(&path, &[]).expect_err("a missing parent refuses the open");
    assert_eq!(code(&e), Some(ErrorCode::CannotOpen), "{e}");
    let msg = last_error();
    assert!(
        msg.contains("does not exist") && msg.contains("create_parents=1"),
        "{msg}"
    );
    assert!(
        !dir.path().join("missing").exists(),
        "a refused open created directories"
    );
}

#[test]
fn attach_with_missing_parent_directory_is_cantopen() {
    let dir = tempdir();
    let conn = open(&dir.path().join("main.db"));
    let target = dir.path().join("nope").join("other.db");
    let e = conn
        .execute(&format!("ATTACH '{}' AS o", uri(&target, &[])), [])
        .expect_err("attaching under a missing parent fails");
    assert_eq!(code(&e), Some(ErrorCode::CannotOpen), "{e}");
    assert!(
        !dir.path().join("nope").exists(),
        "a refused ATTACH created directories"
    );
    close(conn);
}

#[test]
fn create_parents_opts_in_to_creating_missing_parents() {
    let dir = tempdir();
    let path = dir.path().join("a").join("b").join("app.db");
    let conn = open_with(&path, &[("create_parents", "1")]);
    conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (42);")
        .unwrap();
    close(conn);
    assert!(path.join("manifest").join("data.mdb").is_file());
    // The store now exists: it opens without the parameter.
    let conn = open(&path);
    let x: i64 = conn.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(x, 42);
    close(conn);
    // Attaching under a missing parent works with the parameter too.
    let conn = open(&path);
    let other = dir.path().join("c").join("other.db");
    conn.execute(
        &format!("ATTACH '{}' AS o", uri(&other, &[("create_parents", "1")])),
        [],
    )
    .unwrap();
    conn.execute_batch("CREATE TABLE o.u(y)").unwrap();
    close(conn);
    assert!(other.join("manifest").join("data.mdb").is_file());
}

/// The entries of a directory, sorted, recursively (relative paths).
fn tree(dir: &std::path::Path) -> Vec<String> {
    bop_tests::walk(dir)
        .into_iter()
        .map(|e| e.rel.display().to_string())
        .filter(|r| !r.starts_with("wal/") && !r.starts_with("chunks/"))
        .collect()
}

#[test]
fn paths_inside_a_store_name_a_database_or_are_refused() {
    let dir = tempdir();
    let store = dir.path().join("app.db");
    let conn = open(&store);
    conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    let before = tree(&store);
    for bad in [
        ".hidden", "...", "..x", "manifest", "wal", "LOCK", "chunks", "chunks-1",
    ] {
        let path = store.join(bad);
        for params in [&[][..], &[("create_parents", "1")][..]] {
            let e = try_open_with(&path, params).expect_err(bad);
            assert_eq!(code(&e), Some(ErrorCode::CannotOpen), "{bad}: {e}");
            let msg = last_error();
            assert!(msg.contains("inside the bop store"), "{bad}: {msg}");
        }
    }
    let deep = store.join("sub").join("x.db");
    let e = try_open_with(&deep, &[("create_parents", "1")]).expect_err("nested path");
    assert_eq!(code(&e), Some(ErrorCode::CannotOpen), "{e}");
    assert!(last_error().contains("<store>/<name>"), "{}", last_error());
    assert_eq!(tree(&store), before, "a refused path changed the store");
    // A valid name with dots inside opens a named database of the store.
    let named = open(&store.join("a..b"));
    named
        .execute_batch("CREATE TABLE u(y); INSERT INTO u VALUES (2);")
        .unwrap();
    close(named);
    let after = tree(&store);
    assert!(
        after
            .iter()
            .all(|e| before.contains(e) || e.starts_with("chunks-")),
        "a named database adds only its chunk directory: {after:?}"
    );
    assert!(!store.join("a..b").exists());
    close(conn);
    let named = open(&store.join("a..b"));
    let y: i64 = named
        .query_row("SELECT y FROM u", [], |r| r.get(0))
        .unwrap();
    assert_eq!(y, 2);
    close(named);
}

/// Runs the probe (`tests/src/bin/probe.rs`) on `store` as an unprivileged
/// user (uid and gid 65534; root reads through mode 000), and returns its
/// answer line.
fn probe_unprivileged(store: &std::path::Path) -> String {
    let probe = env!("CARGO_BIN_EXE_probe");
    // SAFETY: geteuid takes no arguments and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let out = if root {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", probe])
            .arg(store)
            .output()
    } else {
        std::process::Command::new(probe).arg(store).output()
    }
    .expect("running the probe");
    assert!(out.status.success(), "probe failed: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Hands `path` and everything under it to uid/gid 65534 when running as
/// root, so only the mode bits a test sets refuse that user.
fn give_to_probe_user(path: &std::path::Path) {
    // SAFETY: as above.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let st = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn unreadable_store_is_cantopen_naming_path_and_cause() {
    let dir = tempdir();
    chmod(dir.path(), 0o755);
    let store = dir.path().join("app.db");
    let conn = open(&store);
    conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    close(conn);
    give_to_probe_user(&store);
    // The probe user opens the store while it is readable: the refusals
    // below come from the modes, not from the user.
    assert_eq!(probe_unprivileged(&store), "ok 1");

    chmod(&store, 0o000);
    let answer = probe_unprivileged(&store);
    chmod(&store, 0o755);
    assert!(answer.starts_with("err Some(CannotOpen)"), "{answer}");
    assert!(answer.contains("Permission denied"), "{answer}");
    assert!(answer.contains(&store.display().to_string()), "{answer}");

    let data = store.join("manifest").join("data.mdb");
    chmod(&data, 0o000);
    let answer = probe_unprivileged(&store);
    chmod(&data, 0o644);
    assert!(answer.starts_with("err Some(CannotOpen)"), "{answer}");
    assert!(answer.contains("Permission denied"), "{answer}");
    assert!(answer.contains(&data.display().to_string()), "{answer}");

    // Nothing was changed: the store still opens, with its row.
    assert_eq!(probe_unprivileged(&store), "ok 1");
}
