//! The C API: a C program compiled against include/bop_libsql.h and linked
//! with libbop_libsql.so opens a store, writes and reads, twice (the second
//! run sees the first run's row).

use std::path::{Path, PathBuf};
use std::process::Command;

fn release_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            let d = if d.is_relative() {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(d)
            } else {
                d
            };
            d.join("release")
        }
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release"),
    }
}

#[test]
fn c_program_uses_the_library() {
    let lib = release_dir();
    assert!(
        lib.join("libbop_libsql.so").is_file(),
        "{}/libbop_libsql.so is missing: run `cargo build --release` first",
        lib.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("app");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("gcc")
        .arg(manifest.join("tests/c/app.c"))
        .arg(format!("-I{}", manifest.join("../include").display()))
        .arg(format!("-L{}", lib.display()))
        .arg("-lbop_libsql")
        .arg(format!(
            "-Wl,-rpath,{}",
            lib.canonicalize().unwrap().display()
        ))
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("gcc (apt-get install -y gcc)");
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = dir.path().join("c.db");
    for n in 1..=2 {
        let out = Command::new(&exe).arg(&store).output().unwrap();
        assert!(
            out.status.success(),
            "run {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("{n}|from C\nwal\nerror: no such table: missing\n")
        );
    }
}
