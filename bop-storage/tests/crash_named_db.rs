//! The crash scenario of `crash_chunk_deletion.rs` in a named database of
//! the store (its chunks live in `chunks-<N>/`, its journal intents carry
//! its id): a crash at every file operation and manifest commit of a
//! checkpoint that deletes a chunk, then a second one. See `crash_support`.

mod crash_support;

use std::sync::Arc;

use bop_storage::io::sim::SimFs;
use bop_storage::page_store::PageStoreConfig;
use bop_storage::StoreOptions;
use crash_support::*;

#[test]
fn crash_inside_a_named_database_checkpoint() {
    let opts = |fs: &SimFs| StoreOptions {
        io: Arc::new(fs.clone()),
        page_store: PageStoreConfig {
            chunk_bytes_max: 8 * PAGE as u64,
            ..Default::default()
        },
        ..Default::default()
    };
    let sum = run(&Scenario {
        name: "named database checkpoint",
        opts: &opts,
        setup: &|store| {
            assert_ne!(store.db_id(), bop_storage::DbId::MAIN);
            let pages: Model = (1..=16).map(|p| (p, p as u8)).collect();
            write_pages(store, &pages).unwrap();
            store.db_sync().unwrap();
            pages
        },
        step: &|store, before| {
            let new: Model = (1..=8)
                .chain(17..=20)
                .map(|p| (p, 0x40 | p as u8))
                .collect();
            let mut after = before.clone();
            after.extend(&new);
            let r = write_pages(store, &new).and_then(|_| store.db_sync());
            (vec![after], r)
        },
        read: &read_pages,
        path_filter: "chunks-1",
        db: Some("orders"),
    });
    assert!(sum.ended_before > 0 && sum.ended_after > 0, "{sum:?}");
    assert!(sum.journal_files_removed > 0, "{sum:?}");
}
