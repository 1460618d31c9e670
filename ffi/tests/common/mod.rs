//! Helpers shared by the integration tests: finding `libbop.so` and the
//! system tools, compiling the C programs under `tests/c/`, running
//! commands and parsing their `key=value` output.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// How to get the system packages these tests need.
pub const APT_HINT: &str = "install them with `apt-get install -y sqlite3 libsqlite3-dev gcc g++`";

/// `ffi/`.
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace root (`ffi/..`).
pub fn workspace_root() -> PathBuf {
    manifest_dir().join("..")
}

/// `include/`.
pub fn include_dir() -> PathBuf {
    workspace_root().join("include")
}

/// `ffi/tests/c/NAME`.
pub fn c_source(name: &str) -> PathBuf {
    manifest_dir().join("tests").join("c").join(name)
}

/// The directory holding the release `libbop.so`: the profile directory of
/// this test binary (`<target>/release/deps/..`), else
/// `$CARGO_TARGET_DIR/release`, else `<workspace>/target/release`.
pub fn release_dir() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(profile) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
    {
        if profile.file_name() == Some(OsStr::new("release")) {
            candidates.push(profile);
        }
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| option_env!("CARGO_TARGET_DIR").map(PathBuf::from));
    if let Some(dir) = target_dir {
        let dir = if dir.is_relative() {
            workspace_root().join(dir)
        } else {
            dir
        };
        candidates.push(dir.join("release"));
    }
    candidates.push(workspace_root().join("target").join("release"));
    for dir in &candidates {
        if dir.join("libbop.so").is_file() {
            return dir.canonicalize().unwrap_or_else(|_| dir.clone());
        }
    }
    panic!(
        "libbop.so not found in any of {candidates:?}: run `cargo build --release` \
         (or `cargo build --release -p bop-ffi`) first"
    );
}

/// `<target>/release/libbop.so`. Panics if it is missing or older than a
/// source file it is built from (`cargo test` does not rebuild it).
pub fn libbop() -> PathBuf {
    let lib = release_dir().join("libbop.so");
    let built = modified(&lib).expect("libbop.so has a modification time");
    for crate_dir in ["ffi", "bop-frontend", "bop-vfs", "bop-storage"] {
        let src = workspace_root().join(crate_dir).join("src");
        if let Some((path, time)) = newest_file(&src) {
            assert!(
                time <= built,
                "{} is older than {}: run `cargo build --release` first",
                lib.display(),
                path.display()
            );
        }
    }
    lib
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}

/// The most recently modified file under `dir` (recursively), if any.
fn newest_file(dir: &Path) -> Option<(PathBuf, std::time::SystemTime)> {
    let mut newest: Option<(PathBuf, std::time::SystemTime)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let candidate = if path.is_dir() {
            newest_file(&path)
        } else {
            modified(&path).map(|t| (path, t))
        };
        if let Some((p, t)) = candidate {
            if newest.as_ref().is_none_or(|(_, n)| t > *n) {
                newest = Some((p, t));
            }
        }
    }
    newest
}

/// `<target>/release/libbop`: the name SQLite's extension loader takes
/// (it appends `.so`).
pub fn libbop_without_suffix() -> PathBuf {
    libbop().with_extension("")
}

/// The full path of `program` (a path, or a name looked up on PATH);
/// panics with an installation hint if it is missing.
pub fn require_program(program: &str) -> PathBuf {
    find_program(program).unwrap_or_else(|| {
        panic!("required program `{program}` not found; {APT_HINT}");
    })
}

/// The full path of `program`, if present.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let p = Path::new(program);
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Panics with an installation hint unless the SQLite development headers
/// are installed.
pub fn require_sqlite_headers() {
    for header in ["sqlite3.h", "sqlite3ext.h"] {
        let path = Path::new("/usr/include").join(header);
        assert!(
            path.is_file(),
            "{} not found (SQLite development headers); {APT_HINT}",
            path.display()
        );
    }
}

/// Runs `cmd` (with `stdin` as its standard input), returning its output.
pub fn run(cmd: &mut Command, stdin: Option<&str>) -> Output {
    use std::io::Write;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input.as_bytes())
            .unwrap_or_else(|e| panic!("writing stdin of {cmd:?}: {e}"));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {cmd:?}: {e}"))
}

/// Formats an output for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `cmd` and panics (showing its output) unless it exits with 0.
/// Returns stdout.
pub fn run_ok(cmd: &mut Command, stdin: Option<&str>) -> String {
    let output = run(cmd, stdin);
    assert!(
        output.status.success(),
        "{cmd:?} failed\n{}",
        describe(&output)
    );
    String::from_utf8(output.stdout).expect("stdout is UTF-8")
}

/// Compiles the C program `tests/c/SOURCE` into `out_dir`, against
/// `include/bop.h`, the system SQLite and, if `link_bop`, libbop.so (with
/// an rpath so it runs without LD_LIBRARY_PATH). Warnings are errors.
pub fn compile_c(source: &str, out_dir: &Path, link_bop: bool) -> PathBuf {
    let gcc = require_program("gcc");
    require_sqlite_headers();
    let exe = out_dir.join(source.trim_end_matches(".c"));
    let mut cmd = Command::new(gcc);
    cmd.args([
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-O1",
        "-o",
    ])
    .arg(&exe)
    .arg(c_source(source))
    .arg("-I")
    .arg(include_dir());
    if link_bop {
        let release = libbop().parent().expect("a directory").to_path_buf();
        cmd.arg("-L")
            .arg(&release)
            .arg("-lbop")
            .arg(format!("-Wl,-rpath,{}", release.display()));
    }
    cmd.arg("-lsqlite3");
    run_ok(&mut cmd, None);
    exe
}

/// Parses `key=value` lines (other lines are ignored; later keys win).
pub fn key_values(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Asserts `map[key] == expected`, showing the whole output otherwise.
pub fn assert_kv(map: &BTreeMap<String, String>, key: &str, expected: &str, stdout: &str) {
    assert_eq!(
        map.get(key).map(String::as_str),
        Some(expected),
        "key `{key}`; full output:\n{stdout}"
    );
}

/// A fresh temporary directory.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("bop-ffi-test")
        .tempdir()
        .expect("create a temporary directory")
}
