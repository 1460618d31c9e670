//! `bop verify PATH` opens a store and checks its pages' and log records'
//! checksums: it passes on a healthy store and fails, naming the file and
//! offset, on a flipped byte.

use std::process::Command;

use rusqlite::{Connection, OpenFlags};

fn make_store(path: &std::path::Path) {
    bop_rusqlite::register().unwrap();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI;
    let c = Connection::open_with_flags(format!("file:{}?vfs=bop", path.display()), flags).unwrap();
    c.execute_batch(
        "CREATE TABLE t(a, b);
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 5000)
         INSERT INTO t SELECT x, printf('%0100d', x) FROM n;",
    )
    .unwrap();
    c.close().unwrap(); // checkpoints into page chunks
}

fn bop(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bop"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn verify_passes_on_a_healthy_store_and_names_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    make_store(&path);
    let out = bop(&["verify".as_ref(), path.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("ok: "), "{stdout}");
    let pages: u64 = stdout.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(pages > 100, "{stdout}");

    let chunk = std::fs::read_dir(path.join("chunks"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&chunk).unwrap();
    let at = bytes.len() - 1000; // inside the last page
    bytes[at] ^= 0x20;
    std::fs::write(&chunk, &bytes).unwrap();
    let out = bop(&["verify".as_ref(), path.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&chunk.display().to_string()) && stderr.contains("checksum mismatch"),
        "{stderr}"
    );
}

#[test]
fn verify_refuses_what_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = bop(&["verify".as_ref(), dir.path().as_os_str()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a bop store"));
}
