//! LMDB map growth: a manifest opened with a 1 MiB map takes a checkpoint
//! whose page index needs several times that (MDB_MAP_FULL inside the
//! publish); the map is grown under the manifest's gate and the publish
//! retried, nothing is lost, and the store reopens with the small setting.

use std::sync::Arc;

use bop_storage::io::sim::SimFs;
use bop_storage::manifest::ManifestConfig;
use bop_storage::page_store::PageStoreConfig;
use bop_storage::{Store, StoreOptions};

const PAGE: usize = 512;
const PAGES: u32 = 40_000;

#[test]
fn a_full_map_grows_and_the_write_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grow.db");
    let fs = SimFs::new();
    let opts = StoreOptions {
        page_size: Some(PAGE as u32),
        io: Arc::new(fs.clone()),
        page_store: PageStoreConfig {
            chunk_bytes_max: 4 << 20,
            ..Default::default()
        },
        manifest: ManifestConfig {
            map_size_bytes: 1 << 20,
            ..Default::default()
        },
        ..Default::default()
    };
    let store = Store::open_shared(&path, &opts).unwrap();
    let m = store.stats().manifest;
    assert_eq!((m.map_size_bytes, m.map_grows), (1 << 20, 0), "{m:?}");
    // Reading the change log while the map grows is safe (the gate).
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            for _ in 0..200 {
                store.manifest().change_log_bounds().unwrap();
            }
        })
    };
    for p in 1..=PAGES {
        store
            .db_write(u64::from(p - 1) * PAGE as u64, &[(p % 251) as u8; PAGE])
            .unwrap();
    }
    store.db_sync().unwrap();
    reader.join().unwrap();
    let m = store.stats().manifest;
    assert!(m.map_grows >= 1, "{m:?}");
    assert!(m.map_size_bytes >= 2 << 20, "{m:?}");
    drop(store);
    let store = Store::open_shared(&path, &opts).unwrap();
    let mut buf = [0u8; PAGE];
    for p in (1..=PAGES).step_by(97).chain([PAGES]) {
        store
            .db_read(u64::from(p - 1) * PAGE as u64, &mut buf)
            .unwrap();
        assert!(buf.iter().all(|&b| b == (p % 251) as u8), "page {p}");
    }
    assert_eq!(store.verify().unwrap().pages_checked, u64::from(PAGES));
    // More growth after reopen (LMDB took the file's size as the map).
    for p in 1..=PAGES {
        store
            .db_write(u64::from(p - 1) * PAGE as u64, &[7; PAGE])
            .unwrap();
    }
    store.db_sync().unwrap();
    store.verify().unwrap();
}
