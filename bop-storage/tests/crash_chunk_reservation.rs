//! A crash at every step of a checkpoint that writes more chunk files than
//! one journal reservation covers (64 ids): the reservation made when the
//! store was created runs out mid-checkpoint, a second one is committed
//! before the next chunk file exists, and the publish settles the used-up
//! one. Every leftover chunk file, on either side of the boundary, is
//! removed by the journal replay (see `crash_support` for the checks).

mod crash_support;

use std::sync::Arc;

use bop_storage::io::sim::SimFs;
use bop_storage::manifest::CHUNK_RESERVATION;
use bop_storage::page_store::PageStoreConfig;
use bop_storage::StoreOptions;
use crash_support::*;

/// Pages of the checkpoint: more chunk files than one reservation covers.
const PAGES: u32 = CHUNK_RESERVATION as u32 + 4;

#[test]
fn crash_across_a_chunk_reservation_boundary() {
    let opts = |fs: &SimFs| StoreOptions {
        io: Arc::new(fs.clone()),
        // One page per chunk file.
        page_store: PageStoreConfig {
            chunk_bytes_max: PAGE as u64,
            ..Default::default()
        },
        ..Default::default()
    };
    let sum = run(&Scenario {
        name: "chunk reservation boundary",
        opts: &opts,
        setup: &|store| {
            let pages: Model = [(1, 1)].into();
            write_pages(store, &pages).unwrap();
            store.db_sync().unwrap();
            pages
        },
        step: &|store, before| {
            let new: Model = (2..=PAGES).map(|p| (p, p as u8)).collect();
            let mut after = before.clone();
            after.extend(&new);
            let r = write_pages(store, &new).and_then(|_| store.db_sync());
            if r.is_ok() {
                let m = store.stats().manifest;
                assert!(m.journal_written >= 1 && m.journal_settled >= 1, "{m:?}");
            }
            (vec![after], r)
        },
        read: &read_pages,
        path_filter: "chunks",
        db: None,
    });
    // Per crash mode: the reservation before the first chunk file, the one
    // at the boundary, and the publish.
    assert_eq!(sum.commit_points, 3 * 3, "{sum:?}");
    assert!(sum.journal_files_removed > 0, "{sum:?}");
}
