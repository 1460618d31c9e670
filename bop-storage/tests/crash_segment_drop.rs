//! A crash at every step of dropping log segments when SQLite restarts its
//! WAL: the new generation's record (write, sync), the `drop_segments`
//! commit (which journals the files), the renames to spares and unlinks,
//! and the directory sync that makes them durable. The WAL image after
//! reopen is exactly the old generation or exactly the new one (the new one
//! if its commit returned); no segment file is left that the manifest does
//! not list (spares aside). See `crash_support` for the other checks.

mod common;
mod crash_support;

use std::sync::Arc;

use bop_storage::io::sim::SimFs;
use bop_storage::log::LogConfig;
use bop_storage::{Store, StoreOptions};
use common::{read_frame, write_txn};
use crash_support::*;

/// The WAL image: frame number -> fill byte of its page.
fn read_wal(store: &Store) -> Model {
    (1..=store.stats().wal_image_frames)
        .map(|f| {
            let page = read_frame(store, f);
            assert!(page.iter().all(|&b| b == page[0]), "frame {f} is torn");
            (f as u32, page[0])
        })
        .collect()
}

/// One generation of `txns` 8-page transactions, each committed under FULL.
fn generation(store: &Store, fill: u8, txns: u32) -> bop_storage::Result<Model> {
    let mut f = 1;
    let mut model = Model::new();
    for _ in 0..txns {
        let pages: Vec<(u32, u8)> = (1..=8).map(|p| (p, fill)).collect();
        let next = write_txn(store, f, &pages, 8);
        for frame in f..next {
            model.insert(frame as u32, fill);
        }
        f = next;
        store.wal_image_sync()?;
    }
    Ok(model)
}

#[test]
fn crash_inside_segment_drop() {
    let opts = |fs: &SimFs| StoreOptions {
        io: Arc::new(fs.clone()),
        log: LogConfig {
            segment_bytes: 1 << 20,
            ..Default::default()
        },
        ..Default::default()
    };
    let sum = run(&Scenario {
        name: "segment drop",
        opts: &opts,
        // About 2.3 MB of records: three segments.
        setup: &|store| {
            let m = generation(store, 0x11, 70).unwrap();
            assert_eq!(store.stats().log_segments, 3);
            m
        },
        // The first commit of a new generation drops the two full segments.
        step: &|store, _| {
            let pages: Vec<(u32, u8)> = (1..=8).map(|p| (p, 0x22)).collect();
            let after: Model = (1..=8).map(|f| (f, 0x22)).collect();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                write_txn(store, 1, &pages, 8);
            }));
            let r = match r {
                Ok(()) => store.wal_image_sync(),
                // `write_txn` unwraps: a crash inside it ends the step.
                Err(_) => Err(bop_storage::StorageError::Invariant("crashed".into())),
            };
            if r.is_ok() {
                assert_eq!(store.stats().log_segments, 1);
            }
            // SQLite restarts its WAL only after a complete checkpoint, so
            // the old generation is in the page store once the new one
            // begins: the database's base in the record log moves before the new record (deferred
            // to the FULL commit's sync) is durable, and a crash between
            // the two leaves an empty image — the checkpointed database —
            // losing only the commit that had not returned.
            (vec![Model::new(), after], r)
        },
        read: &read_wal,
        path_filter: "/wal",
        db: None,
    });
    assert!(sum.ended_before > 0 && sum.ended_after > 0, "{sum:?}");
    assert!(sum.journal_replays > 0, "{sum:?}");
}
