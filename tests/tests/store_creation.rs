//! Store creation through SQLite: a store is built in a temporary
//! directory beside it and renamed into place, so a store directory always
//! has its manifest; a directory holding a store's parts without one is
//! refused, never replaced by a new empty store; a temporary directory a
//! dead creator left is removed by the next creation.

use bop_tests::{close, open, tempdir, try_open_with};

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn a_store_without_its_manifest_is_refused_not_recreated() {
    let dir = tempdir();
    let store = dir.path().join("app.db");
    let conn = open(&store);
    conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    close(conn);
    std::fs::remove_dir_all(store.join("manifest")).unwrap();
    let before = names(&store);
    assert!(before.contains(&"wal".to_owned()), "{before:?}");
    let e = try_open_with(&store, &[]).expect_err("a store without its manifest opens");
    let msg = bop_rusqlite::last_error().unwrap_or_default();
    assert!(
        msg.contains("manifest/data.mdb is missing") && msg.contains("damaged"),
        "{e}: {msg}"
    );
    assert_eq!(names(&store), before, "the damaged store was changed");
    assert!(!store.join("manifest").exists());
}

#[test]
fn creation_leaves_only_the_store_and_removes_a_dead_creators_leftover() {
    let dir = tempdir();
    // A creation cut short by a crash: its process is gone, its manifest
    // torn (LMDB's meta pages are garbage).
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let leftover = dir.path().join(format!(".app.db.bop-creating.{dead}"));
    std::fs::create_dir_all(leftover.join("manifest")).unwrap();
    std::fs::create_dir_all(leftover.join("wal")).unwrap();
    std::fs::write(leftover.join("LOCK"), b"").unwrap();
    std::fs::write(leftover.join("manifest").join("data.mdb"), vec![0xa5; 8192]).unwrap();
    // A creation under way in a live process (pid 1), not yet holding its
    // LOCK: left alone.
    let live = dir.path().join(".app.db.bop-creating.1");
    std::fs::create_dir_all(&live).unwrap();

    let conn = open(&dir.path().join("app.db"));
    conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    assert_eq!(names(dir.path()), [".app.db.bop-creating.1", "app.db"]);
    close(conn);
    std::fs::remove_dir(&live).unwrap();
    // A second store beside it: again nothing else is left.
    let conn = open(&dir.path().join("other.db"));
    close(conn);
    assert_eq!(names(dir.path()), ["app.db", "other.db"]);
    let conn = open(&dir.path().join("app.db"));
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    close(conn);
}
