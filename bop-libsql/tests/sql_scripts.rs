//! The workspace's SQL scripts (`tests/sql/NAME.sql`, or `NAME.1.sql`,
//! `NAME.2.sql`, ... run in order by new connections against one store),
//! run through libSQL on bop, must print exactly `NAME[.k].expected` — the
//! same output stock SQLite prints for them through the bop VFS and on a
//! plain file (`tests/tests/sql_scripts.rs`).

mod common;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn sql_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/sql")
}

#[test]
fn sql_scripts_through_libsql() {
    let mut groups: BTreeMap<String, Vec<(u32, PathBuf)>> = BTreeMap::new();
    for e in std::fs::read_dir(sql_dir()).unwrap() {
        let p = e.unwrap().path();
        let f = p.file_name().unwrap().to_str().unwrap().to_owned();
        let Some(stem) = f.strip_suffix(".sql") else {
            continue;
        };
        let (name, k) = match stem.split_once('.') {
            Some((n, k)) => (n.to_owned(), k.parse().unwrap()),
            None => (stem.to_owned(), 0),
        };
        groups.entry(name).or_default().push((k, p));
    }
    assert!(groups.len() >= 5, "found {} script groups", groups.len());
    for (name, mut phases) in groups {
        phases.sort();
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s.db");
        for (_, sql) in phases {
            let script = std::fs::read_to_string(&sql).unwrap();
            let expected = std::fs::read_to_string(sql.with_extension("expected")).unwrap();
            let c = common::conn(&store);
            let out = c
                .run_script(&script)
                .unwrap_or_else(|e| panic!("{name}: {}: {e}", sql.display()));
            assert_eq!(out, expected, "{name}: output of {} differs", sql.display());
        }
    }
}
