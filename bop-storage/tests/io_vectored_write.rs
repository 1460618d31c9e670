//! A gathered write (`IoFile::write_all_vectored_at`, how page chunks are
//! written) puts every part back to back at the right offsets on every
//! backend, with more parts than one `pwritev` takes (IOV_MAX = 1024) and
//! empty parts among them.

use std::sync::Arc;

use bop_storage::io::sim::SimFs;
use bop_storage::io::{backend, DirectMode, IoBackend, IoMode, OpenMode};

fn parts() -> Vec<Vec<u8>> {
    (0..2500u32)
        .map(|i| {
            let len = match i % 7 {
                0 => 0,
                1 => 1,
                2 => 4096,
                _ => (i as usize * 37) % 5000,
            };
            (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
        })
        .collect()
}

fn check(io: Arc<dyn IoBackend>, dir: &std::path::Path, n: usize) {
    let path = dir.join(format!("v{n}-{}.chunk", io.name()));
    io.create_dir_all(dir).unwrap();
    let file = io.open(&path, OpenMode::CreateNew).unwrap();
    let parts = parts();
    let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
    let offset = 4096 * 3 + 17;
    file.write_all_vectored_at(&refs, offset).unwrap();
    let expected: Vec<u8> = parts.concat();
    assert!(expected.len() > 2 << 20, "{}", expected.len());
    let mut got = vec![0u8; expected.len()];
    file.read_exact_at(&mut got, offset).unwrap();
    assert!(got == expected, "{}: gathered write differs", io.name());
    assert_eq!(
        file.len_bytes().unwrap(),
        offset + expected.len() as u64,
        "{}",
        io.name()
    );
}

#[test]
fn gathered_writes_land_back_to_back_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let modes = [
        (IoMode::Std, "std"),
        (IoMode::Direct(DirectMode::Optional), "direct"),
        (IoMode::Uring, "uring"),
    ];
    for (n, (mode, name)) in modes.into_iter().enumerate() {
        let io = backend(mode).unwrap();
        // Each backend itself: io_uring works here, no fallback to std.
        assert_eq!(io.name(), name);
        check(io, dir.path(), n);
    }
    check(Arc::new(SimFs::new()), dir.path(), 9);
}
