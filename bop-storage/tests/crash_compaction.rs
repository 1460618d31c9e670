//! A crash at every step of a checkpoint that compacts: the checkpoint's
//! own chunks, the reads of the sparse chunks' live pages, the chunk they
//! are moved into, the directory sync, the publish commit (which drops the
//! emptied chunks and journals their deletion), the unlinks and the
//! directory sync after them. See `crash_support` for what is checked.

mod crash_support;

use std::sync::Arc;

use bop_storage::io::sim::SimFs;
use bop_storage::page_store::PageStoreConfig;
use bop_storage::StoreOptions;
use crash_support::*;

#[test]
fn crash_inside_compaction() {
    let opts = |fs: &SimFs| StoreOptions {
        io: Arc::new(fs.clone()),
        page_store: PageStoreConfig {
            chunk_bytes_max: 16 * PAGE as u64,
            ..Default::default()
        },
        ..Default::default()
    };
    let sum = run(&Scenario {
        name: "compaction",
        opts: &opts,
        // Four full chunks of 16 pages.
        setup: &|store| {
            let pages: Model = (1..=64).map(|p| (p, p as u8)).collect();
            write_pages(store, &pages).unwrap();
            store.db_sync().unwrap();
            pages
        },
        // 12 pages of each of the first two chunks rewritten: both keep 4
        // live pages of 16, so the publish moves those into a new chunk and
        // deletes the two.
        step: &|store, before| {
            let new: Model = (1..=12)
                .chain(17..=28)
                .map(|p| (p, 0xc0 | p as u8))
                .collect();
            let mut after = before.clone();
            after.extend(&new);
            let compacted = store.stats().pages.pages_compacted;
            let r = write_pages(store, &new).and_then(|_| store.db_sync());
            if r.is_ok() {
                let s = store.stats().pages;
                assert_eq!(s.pages_compacted - compacted, 8, "{s:?}");
            }
            (vec![after], r)
        },
        read: &read_pages,
        path_filter: "chunks",
        db: None,
    });
    assert!(sum.ended_before > 0 && sum.ended_after > 0, "{sum:?}");
    assert!(sum.journal_files_removed > 0, "{sum:?}");
}
