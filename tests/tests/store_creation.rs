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

/// The order of the system calls that create a store (the probe binary
/// creating one through SQLite, traced by strace): the manifest's
/// `data.mdb` is created and synced by LMDB, its directory `manifest/` and
/// the temporary store directory are synced, the directory is renamed to
/// the store's name, and the parent is synced. This is how the manifest's
/// directory entries (which LMDB creates with its own system calls,
/// outside bop's I/O layer) become durable, and why a torn `data.mdb` can
/// never be found under the store's name.
#[test]
fn creation_syncs_the_manifest_and_every_directory_before_and_after_the_rename() {
    let dir = tempdir();
    let store = dir.path().join("app.db");
    let log = dir.path().join("strace.log");
    let out = std::process::Command::new("strace")
        .args(["-f", "-y", "-o"])
        .arg(&log)
        .args([
            "-e",
            "trace=openat,fsync,fdatasync,rename,renameat,renameat2",
            env!("CARGO_BIN_EXE_probe"),
        ])
        .arg(&store)
        .output()
        .expect("running strace (apt-get install strace)");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 0");
    let trace = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    let lines: Vec<&str> = trace.lines().collect();
    let tmp = format!("{}/.app.db.bop-creating.", dir.path().display());
    let parent = dir.path().display().to_string();
    let at = |what: &str, f: &dyn Fn(&str) -> bool| {
        lines
            .iter()
            .position(|l| f(l))
            .unwrap_or_else(|| panic!("no {what} in the trace:\n{trace}"))
    };
    let create = at("creation of data.mdb", &|l| {
        l.contains("openat(")
            && l.contains(&tmp)
            && l.contains("/manifest/data.mdb\", O_RDWR|O_CREAT")
    });
    let data_sync = at("sync of data.mdb", &|l| {
        l.contains("fdatasync(") && l.contains(&tmp) && l.contains("/manifest/data.mdb>")
    });
    let manifest_sync = at("sync of manifest/", &|l| {
        l.starts_with(|c: char| c.is_ascii_digit())
            && l.contains(" fsync(")
            && l.contains(&tmp)
            && l.contains("/manifest>)")
    });
    let tmp_sync = at("sync of the temporary directory", &|l| {
        l.contains(" fsync(")
            && l.contains(&tmp)
            && l.split('<').nth(1).is_some_and(|p| {
                let p = p.trim_end_matches(|c| c != '>').trim_end_matches('>');
                p.starts_with(&tmp) && !p[tmp.len()..].contains('/')
            })
    });
    let rename = at("rename", &|l| {
        l.contains("rename") && l.contains(&tmp) && l.contains(&format!("\"{parent}/app.db\""))
    });
    let parent_sync = at("sync of the parent", &|l| {
        l.contains(" fsync(") && l.contains(&format!("<{parent}>)"))
    });
    assert!(
        create < data_sync
            && data_sync < manifest_sync
            && manifest_sync < tmp_sync
            && tmp_sync < rename
            && rename < parent_sync,
        "order: create {create}, data sync {data_sync}, manifest/ sync {manifest_sync}, \
         store directory sync {tmp_sync}, rename {rename}, parent sync {parent_sync}:\n{trace}"
    );
}
