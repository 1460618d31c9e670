//! The bound on a deferred publish (`PageStoreConfig::
//! publish_defer_bytes_max`): a checkpoint of at most that many bytes of
//! pages, while the WAL image holds their records, is published with the
//! WAL's restart instead of at its sync; one page more is published at
//! the sync, as is a page the records hold no frame for, and any write
//! without records under it.

mod common;

use std::sync::Arc;

use bop_storage::page_store::PageStoreConfig;
use bop_storage::{Store, StoreOptions};
use common::{WalWriter, PAGE};

const BOUND_PAGES: u32 = 4;

fn open(path: &std::path::Path) -> Arc<Store> {
    Store::open_shared(
        path,
        &StoreOptions {
            page_store: PageStoreConfig {
                publish_defer_bytes_max: u64::from(BOUND_PAGES * PAGE),
                // No generation retained at a WAL deletion: it publishes.
                publish_defer_log_bytes_max: 0,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .unwrap()
}

/// Commits `pages` pages into a new WAL image, checkpoints them (writes and
/// syncs the database image) and returns (deferred, manifest commits) of
/// the sync.
fn checkpoint(store: &Store, pages: u32, fill: u8) -> (u64, u64) {
    let txn: Vec<(u32, u8)> = (1..=pages).map(|p| (p, fill)).collect();
    WalWriter::start(store).txn(store, &txn, pages.max(8));
    for p in 1..=pages {
        store
            .db_write(
                u64::from(p - 1) * u64::from(PAGE),
                &vec![fill; PAGE as usize],
            )
            .unwrap();
    }
    let s0 = store.stats();
    store.db_sync().unwrap();
    let s1 = store.stats();
    (
        s1.pages.publishes_deferred - s0.pages.publishes_deferred,
        s1.manifest.commits - s0.manifest.commits,
    )
}

#[test]
fn a_checkpoint_at_the_bound_waits_and_one_page_more_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.bop"));
    // At the bound: nothing committed to the manifest at the sync.
    let (deferred, commits) = checkpoint(&store, BOUND_PAGES, 0x11);
    assert_eq!((deferred, commits), (1, 0));
    assert_eq!(store.stats().pages.pending_pages, BOUND_PAGES as usize);
    // The WAL's restart publishes them, with the base, in one commit.
    let c0 = store.stats().manifest.commits;
    store.wal_image_delete().unwrap();
    assert_eq!(store.stats().pages.pending_pages, 0);
    assert!(store.stats().manifest.commits - c0 >= 1);
    // One page over: published at the sync.
    let (deferred, commits) = checkpoint(&store, BOUND_PAGES + 1, 0x22);
    assert_eq!(deferred, 0);
    assert!(commits >= 1, "published at the sync");
    assert_eq!(store.stats().pages.pending_pages, 0);
    store.wal_image_delete().unwrap();
    // Pages the records hold no frame for are published at the sync.
    WalWriter::start(&store).txn(&store, &[(1, 0x44)], 8);
    store
        .db_write(u64::from(PAGE) * 5, &vec![0x55; PAGE as usize])
        .unwrap();
    let d0 = store.stats().pages.publishes_deferred;
    store.db_sync().unwrap();
    assert_eq!(store.stats().pages.publishes_deferred, d0);
    assert_eq!(store.stats().pages.pending_pages, 0);
    store.wal_image_delete().unwrap();
    // Without records under them (the WAL image is empty), pages written to
    // the database are published at its sync, whatever their size.
    store.db_write(0, &vec![0x33; PAGE as usize]).unwrap();
    let d0 = store.stats().pages.publishes_deferred;
    store.db_sync().unwrap();
    assert_eq!(store.stats().pages.publishes_deferred, d0);
    assert_eq!(store.stats().pages.pending_pages, 0);
    drop(store);
    // Everything survived a close and reopen.
    let store = open(&dir.path().join("s.bop"));
    let mut buf = vec![0u8; PAGE as usize];
    store.db_read(0, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0x33));
    store.db_read(u64::from(PAGE) * 4, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0x22));
}

/// The bound on retained WAL generations
/// (`PageStoreConfig::publish_defer_log_bytes_max`): a restart retains the
/// old generation while the retained records stay within it, and publishes
/// (moving the base past every retained generation) once they would not.
#[test]
fn a_restart_retains_generations_up_to_the_log_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.bop");
    // Two generations of 2 frames each fit; a third does not.
    let gen_bytes = 32 + 2 * common::FRAME;
    let store = Store::open_shared(
        &path,
        &StoreOptions {
            page_store: PageStoreConfig {
                publish_defer_log_bytes_max: 2 * gen_bytes,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .unwrap();
    let generation = |fill: u8| {
        WalWriter::start(&store).txn(&store, &[(1, fill), (2, fill)], 2);
        for p in 1..=2u32 {
            store
                .db_write(
                    u64::from(p - 1) * u64::from(PAGE),
                    &vec![fill; PAGE as usize],
                )
                .unwrap();
        }
        store.db_sync().unwrap();
    };
    generation(0x11);
    let c0 = store.stats().manifest.commits;
    generation(0x22);
    let s = store.stats();
    assert_eq!(s.wal_image.generations_retained, 1);
    assert_eq!(s.wal_image.retained_bytes, gen_bytes);
    generation(0x33);
    let s = store.stats();
    assert_eq!(s.wal_image.generations_retained, 2);
    assert_eq!(s.wal_image.retained_bytes, 2 * gen_bytes, "at the bound");
    assert_eq!(s.pages.chunks_written, 0, "nothing published yet");
    generation(0x44);
    let s = store.stats();
    assert_eq!(
        s.wal_image.generations_retained, 2,
        "past the bound: published"
    );
    assert_eq!(s.wal_image.retained_bytes, 0);
    assert!(s.manifest.commits > c0);
    assert_eq!(s.pages.chunks_written, 1);
    let mut buf = vec![0u8; PAGE as usize];
    store.db_read(0, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0x44));
}
