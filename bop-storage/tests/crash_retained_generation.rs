//! A crash at every step of a WAL restart that retains the old generation
//! (its records stay in the log, its checkpointed pages pending: no
//! publish), the new generation's commit and checkpoint, and the WAL
//! deletion whose publish moves the base past both (the retained records
//! reached `publish_defer_log_bytes_max`). After reopen the database SQLite
//! sees (the database image with the WAL image's frames over it) is
//! exactly the one before the new commit or the one after it: recovery
//! applies a retained generation's frames to the page store before it
//! builds the WAL image from the newest one. See `crash_support` for the
//! other checks.

mod common;
mod crash_support;

use std::sync::Arc;

use bop_storage::io::sim::SimFs;
use bop_storage::page_store::PageStoreConfig;
use bop_storage::{Store, StoreOptions};
use common::{WalWriter, FRAME};
use crash_support::*;

/// SQLite's checkpoint of the whole WAL image: its pages into the
/// database, then the database's sync.
fn checkpoint(store: &Store, effective: &Model) -> bop_storage::Result<()> {
    write_pages(store, effective)?;
    store.db_sync()
}

#[test]
fn crash_inside_a_retained_restart() {
    // The first generation (12 frames) fits the bound on retained log
    // bytes; with the second (2 frames) they do not.
    let bound = 32 + 13 * FRAME;
    let opts = move |fs: &SimFs| StoreOptions {
        io: Arc::new(fs.clone()),
        page_store: PageStoreConfig {
            publish_defer_log_bytes_max: bound,
            ..Default::default()
        },
        ..Default::default()
    };
    let sum = run(&Scenario {
        name: "retained restart",
        opts: &opts,
        // One generation, committed, not checkpointed.
        setup: &|store| {
            let mut wal = WalWriter::start(store);
            let first: Vec<(u32, u8)> = (1..=8).map(|p| (p, 0x11)).collect();
            wal.txn(store, &first, 8);
            let second: Vec<(u32, u8)> = (1..=4).map(|p| (p, 0x22)).collect();
            wal.txn(store, &second, 8);
            read_effective(store)
        },
        step: &|store, before| {
            let mut after = before.clone();
            after.insert(5, 0x33);
            after.insert(6, 0x33);
            let r = (|| {
                checkpoint(store, before)?;
                let s = store.stats();
                // The restart: a new generation's first commit retains the
                // old one.
                let mut wal = WalWriter::try_start(store)?;
                wal.try_txn(store, &[(5, 0x33), (6, 0x33)], 8)?;
                let s2 = store.stats();
                assert_eq!(
                    s2.wal_image.generations_retained,
                    s.wal_image.generations_retained + 1
                );
                // (Its one manifest commit begins the open's epoch.)
                assert_eq!(
                    s2.pages.chunks_written, s.pages.chunks_written,
                    "no publish"
                );
                assert!(s2.pages.pending_pages >= 8);
                checkpoint(store, &after)?;
                // The deletion: past the bound, one publish of everything.
                store.wal_image_delete()?;
                let s3 = store.stats();
                assert_eq!(s3.wal_image.retained_bytes, 0);
                assert_eq!(s3.pages.pending_pages, 0);
                Ok(())
            })();
            (vec![before.clone(), after], r)
        },
        read: &read_effective,
        path_filter: "",
        db: None,
    });
    assert!(sum.ended_before > 0 && sum.ended_after > 0, "{sum:?}");
}
