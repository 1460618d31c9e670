//! Space stays bounded under repeated checkpoints that overwrite random
//! pages: sparse chunks are compacted, emptied chunks are deleted, and the
//! data read back is always the newest.

use std::collections::HashMap;

use bop_storage::page_store::PageStoreConfig;
use bop_storage::{Store, StoreOptions};

const PAGE: usize = 4096;
const CHUNK_PAGES: u64 = 64;

fn chunk_bytes(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path.join("chunks"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn chunks_stay_within_twice_the_live_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let opts = StoreOptions {
        page_store: PageStoreConfig {
            chunk_bytes_max: CHUNK_PAGES * PAGE as u64,
            ..Default::default()
        },
        ..Default::default()
    };
    let store = Store::open_shared(&path, &opts).unwrap();
    let db_pages = 400u32;
    let mut expect: HashMap<u32, u8> = HashMap::new();
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..60u32 {
        let writes = if round == 0 {
            db_pages
        } else {
            1 + (next() % 90) as u32
        };
        for i in 0..writes {
            let p = if round == 0 {
                i + 1
            } else {
                1 + (next() % u64::from(db_pages)) as u32
            };
            let fill = (next() % 251) as u8;
            store
                .db_write(u64::from(p - 1) * PAGE as u64, &vec![fill; PAGE])
                .unwrap();
            expect.insert(p, fill);
        }
        store.db_sync().unwrap();
        let live = u64::from(db_pages) * PAGE as u64;
        // Compaction keeps every published chunk at least half live, except
        // what one publish could not move yet (one chunk's worth) and the
        // per-chunk headers.
        let bound = 2 * live + 2 * CHUNK_PAGES * PAGE as u64 + 64 * 4096;
        let used = chunk_bytes(&path);
        assert!(
            used <= bound,
            "round {round}: {used} bytes of chunks for {live} live bytes"
        );
    }
    drop(store);
    let store = Store::open_shared(&path, &opts).unwrap();
    let mut buf = vec![0u8; PAGE];
    for (p, fill) in expect {
        store
            .db_read(u64::from(p - 1) * PAGE as u64, &mut buf)
            .unwrap();
        assert!(buf.iter().all(|&b| b == fill), "page {p}");
    }
}

#[test]
fn many_small_checkpoints_keep_few_chunk_files_and_few_open_handles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.db");
    let opts = StoreOptions {
        page_store: PageStoreConfig {
            chunk_bytes_max: CHUNK_PAGES * PAGE as u64,
            open_chunks_max: 4,
            ..Default::default()
        },
        ..Default::default()
    };
    let store = Store::open_shared(&path, &opts).unwrap();
    let db_pages = 300u32;
    let mut expect: HashMap<u32, u8> = HashMap::new();
    for round in 0..400u32 {
        // A checkpoint of a few pages: each one writes a small chunk.
        for i in 0..3 {
            let p = 1 + (round * 7 + i * 101) % db_pages;
            let fill = (round % 250) as u8 + 1;
            store
                .db_write(u64::from(p - 1) * PAGE as u64, &vec![fill; PAGE])
                .unwrap();
            expect.insert(p, fill);
        }
        store.db_sync().unwrap();
        let files = std::fs::read_dir(path.join("chunks")).unwrap().count();
        // Chunks holding at least half a chunk of live pages, plus the
        // small ones tolerated before a merge, plus this publish's two.
        let bound = (db_pages as usize).div_ceil(CHUNK_PAGES as usize / 2) + 8 + 2;
        assert!(
            files <= bound,
            "round {round}: {files} chunk files (bound {bound})"
        );
    }
    let mut buf = vec![0u8; PAGE];
    for (p, fill) in &expect {
        store
            .db_read(u64::from(p - 1) * PAGE as u64, &mut buf)
            .unwrap();
        assert!(buf.iter().all(|b| b == fill), "page {p}");
    }
    let s = store.stats().pages;
    assert!(s.chunk_files_open <= 4, "{s:?}");
    assert!(
        s.chunk_file_evictions > 0,
        "reads went through the bounded cache: {s:?}"
    );
}
