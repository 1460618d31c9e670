//! Helpers shared by bop-libsql's tests.
#![allow(dead_code)]

use bop_libsql::{open, Connection, OpenFlags};
use std::path::Path;

pub fn conn(path: &Path) -> Connection {
    open(path, OpenFlags::default()).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// One counter of `PRAGMA bop_stats`.
pub fn stat(c: &Connection, key: &str) -> u64 {
    let s = c.query_string("PRAGMA bop_stats").unwrap().unwrap();
    s.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {s}"))
        .parse()
        .unwrap()
}

/// `PRAGMA wal_checkpoint(mode)`: (busy, log frames, checkpointed frames).
pub fn checkpoint(c: &Connection, mode: &str) -> (i64, i64, i64) {
    let r = c
        .query(&format!("PRAGMA wal_checkpoint({mode})"), &[])
        .unwrap();
    let v: Vec<i64> = r[0].iter().map(|v| v.as_i64().unwrap()).collect();
    (v[0], v[1], v[2])
}

/// Copies a store directory (files and subdirectories).
pub fn copy_dir(from: &Path, to: &Path) {
    // A store lingering after its last connection closed (the close
    // grace) is still open: close it, so the copy is a store shut down
    // cleanly rather than a crash image.
    bop_storage::linger::close(from);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}
