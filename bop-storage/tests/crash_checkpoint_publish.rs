//! A crash at every step of a checkpoint's publish — chunk file creation,
//! write and sync (a spill mid-checkpoint and the last chunk at publish),
//! the chunk directory's sync, the journal's reservation commit and the
//! publish commit — under a process kill, a power cut losing everything
//! unsynced, and a random partial one. The store reopens to exactly the
//! image before or after the checkpoint (after, if it returned), verified,
//! with no chunk file the manifest does not list, each removed by the
//! journal replay (see `crash_support`).

mod crash_support;

use std::sync::Arc;

use bop_storage::io::sim::SimFs;
use bop_storage::page_store::PageStoreConfig;
use bop_storage::StoreOptions;
use crash_support::*;

#[test]
fn crash_inside_checkpoint_publish() {
    let opts = |fs: &SimFs| StoreOptions {
        io: Arc::new(fs.clone()),
        page_store: PageStoreConfig {
            chunk_bytes_max: 16 * PAGE as u64,
            ..Default::default()
        },
        ..Default::default()
    };
    let sum = run(&Scenario {
        name: "checkpoint publish",
        opts: &opts,
        setup: &|store| {
            let pages: Model = (1..=16).map(|p| (p, p as u8)).collect();
            write_pages(store, &pages).unwrap();
            store.db_sync().unwrap();
            pages
        },
        // 24 new pages: one chunk spilled at 16, the rest at publish; no
        // chunk becomes sparse, so nothing is compacted or deleted.
        step: &|store, before| {
            let new: Model = (17..=40).map(|p| (p, 0x80 | p as u8)).collect();
            let mut after = before.clone();
            after.extend(&new);
            let r = write_pages(store, &new).and_then(|_| store.db_sync());
            (vec![after], r)
        },
        read: &read_pages,
        path_filter: "chunks",
        db: None,
    });
    assert!(sum.ended_before > 0 && sum.ended_after > 0, "{sum:?}");
    assert!(
        sum.journal_files_removed > 0,
        "some crash left chunk files only the journal knew: {sum:?}"
    );
}
