//! Pages moved to the page store survive reopen; a flipped bit in a chunk
//! is reported with the chunk file and offset, never returned as data.

mod common;
use common::*;

#[test]
fn published_pages_survive_reopen_and_flips_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    {
        let store = open(&path).unwrap();
        for p in 1..=8u32 {
            store
                .db_write(
                    u64::from(p - 1) * u64::from(PAGE),
                    &vec![p as u8; PAGE as usize],
                )
                .unwrap();
        }
        store.db_sync().unwrap();
    }
    let store = open(&path).unwrap();
    assert_eq!(store.db_size(), 8 * u64::from(PAGE));
    let mut buf = vec![0u8; PAGE as usize];
    store.db_read(5 * u64::from(PAGE), &mut buf).unwrap();
    assert_eq!(buf, vec![6u8; PAGE as usize]);
    drop(store);

    let mut chunks: Vec<_> = std::fs::read_dir(path.join("chunks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    chunks.sort();
    let chunk = chunks.last().unwrap().clone();
    let mut bytes = std::fs::read(&chunk).unwrap();
    // Pages start at 4096 in a chunk of 8 pages; page 6 is slot 5.
    let at = 4096 + 5 * PAGE as usize + 17;
    bytes[at] ^= 0x04;
    std::fs::write(&chunk, &bytes).unwrap();

    let store = open(&path).unwrap();
    let err = store
        .db_read(5 * u64::from(PAGE), &mut buf)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&chunk.display().to_string()), "{err}");
    assert!(err.contains("checksum mismatch"), "{err}");
    // Other pages still read.
    store.db_read(4 * u64::from(PAGE), &mut buf).unwrap();
    assert_eq!(buf, vec![5u8; PAGE as usize]);
}

#[test]
fn unpublished_chunks_are_swept_and_never_visible() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    {
        let store = open(&path).unwrap();
        store.db_write(0, &vec![9u8; PAGE as usize]).unwrap();
        store.db_sync().unwrap();
    }
    // A chunk file the manifest never heard of (a crash between writing a
    // chunk and publishing it).
    let stray = path.join("chunks").join(format!("{:016x}.chunk", 999));
    std::fs::write(&stray, b"partial").unwrap();
    let store = open(&path).unwrap();
    assert!(!stray.exists(), "stray chunk removed at open");
    let mut buf = vec![0u8; PAGE as usize];
    store.db_read(0, &mut buf).unwrap();
    assert_eq!(buf, vec![9u8; PAGE as usize]);
}

#[test]
fn in_process_handles_share_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let a = open(&path).unwrap();
    let b = open(&path).unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&a, &b),
        "one store per path per process"
    );
}
