//! A crash at every step of a small checkpoint whose publish waits for the
//! WAL's deletion (`Store::db_sync` defers it while the WAL image's
//! records hold the pages): the checkpoint's page writes, its sync (which
//! makes the records durable and publishes nothing), and SQLite's deletion
//! of the `-wal` file, whose one manifest commit publishes the pages and
//! moves the database's base past the records. At every point the
//! database SQLite sees (the database image with the WAL image's frames
//! over it) is unchanged after reopen: the pages are in the records until
//! the commit that publishes them makes the records unreachable. See
//! `crash_support` for the other checks.

mod common;
mod crash_support;

use std::sync::Arc;

use bop_storage::io::sim::SimFs;
use bop_storage::page_store::PageStoreConfig;
use bop_storage::StoreOptions;
use common::WalWriter;
use crash_support::*;

#[test]
fn crash_inside_a_deferred_publish() {
    // No generation retained: the deletion publishes (retained ones are
    // `crash_retained_generation.rs`).
    let opts = |fs: &SimFs| StoreOptions {
        io: Arc::new(fs.clone()),
        page_store: PageStoreConfig {
            publish_defer_log_bytes_max: 0,
            ..Default::default()
        },
        ..Default::default()
    };
    let sum = run(&Scenario {
        name: "deferred publish",
        opts: &opts,
        // Two committed transactions in the WAL image, nothing checkpointed.
        setup: &|store| {
            let mut wal = WalWriter::start(store);
            let first: Vec<(u32, u8)> = (1..=8).map(|p| (p, 0x11)).collect();
            wal.txn(store, &first, 8);
            let second: Vec<(u32, u8)> = (1..=4).map(|p| (p, 0x22)).collect();
            wal.txn(store, &second, 8);
            read_effective(store)
        },
        // SQLite's checkpoint at close: the pages into the database, its
        // sync, then the deletion of the WAL.
        step: &|store, before| {
            let deferred = store.stats().pages.publishes_deferred;
            let r = write_pages(store, before)
                .and_then(|_| store.db_sync())
                .and_then(|_| {
                    assert_eq!(
                        store.stats().pages.publishes_deferred,
                        deferred + 1,
                        "a small checkpoint's publish waits for the WAL's deletion"
                    );
                    assert!(store.stats().pages.pending_pages > 0);
                    store.wal_image_delete()
                });
            if r.is_ok() {
                assert_eq!(store.stats().pages.pending_pages, 0);
                assert_eq!(store.stats().wal_image_frames, 0);
            }
            (vec![before.clone()], r)
        },
        read: &read_effective,
        path_filter: "",
        db: None,
    });
    // Two manifest commits per run (the chunk-id reservation, then the
    // publish with the base move), under each of the three crash modes;
    // a publish at the sync would add a third.
    assert_eq!(sum.commit_points, 3 * 2, "{sum:?}");
    assert!(sum.journal_files_removed > 0, "{sum:?}");
}
