//! A crash at every step of a publish that deletes a chunk (all its pages
//! overwritten): the new chunk's creation, write and sync, the directory
//! sync, the publish commit (which journals the deletion), the unlink, the
//! directory sync that makes it durable, and the commit that settles the
//! journal entry. Unlinks not yet durable come back after a power cut; the
//! journal replay removes them (see `crash_support` for what is checked).

mod crash_support;

use std::sync::Arc;

use bop_storage::io::sim::SimFs;
use bop_storage::page_store::PageStoreConfig;
use bop_storage::StoreOptions;
use crash_support::*;

#[test]
fn crash_inside_chunk_deletion() {
    let opts = |fs: &SimFs| StoreOptions {
        io: Arc::new(fs.clone()),
        page_store: PageStoreConfig {
            chunk_bytes_max: 8 * PAGE as u64,
            ..Default::default()
        },
        ..Default::default()
    };
    let sum = run(&Scenario {
        name: "chunk deletion",
        opts: &opts,
        // Two full chunks: pages 1-8 and 9-16.
        setup: &|store| {
            let pages: Model = (1..=16).map(|p| (p, p as u8)).collect();
            write_pages(store, &pages).unwrap();
            store.db_sync().unwrap();
            pages
        },
        // Every page of the first chunk rewritten: it has no live page left
        // and is deleted by the publish; then a second publish settles the
        // deletion's journal entry in its transaction.
        step: &|store, before| {
            let new: Model = (1..=8).map(|p| (p, 0x40 | p as u8)).collect();
            let mut mid = before.clone();
            mid.extend(&new);
            let again: Model = [(16, 0x5a)].into();
            let mut after = mid.clone();
            after.extend(&again);
            let r = write_pages(store, &new)
                .and_then(|_| store.db_sync())
                .and_then(|_| write_pages(store, &again))
                .and_then(|_| store.db_sync());
            (vec![mid, after], r)
        },
        read: &read_pages,
        path_filter: "chunks",
        db: None,
    });
    assert!(sum.journal_files_removed > 0, "{sum:?}");
}
