//! The manifest's change log and cursors with real LMDB: every kind of
//! change is logged in order with strictly increasing sequence numbers
//! (across reopen), a cursor reads and acknowledges, the log is truncated
//! below the slowest cursor (or to a tail without one), and a cursor that
//! falls past `change_log_max_entries` is marked lagged exactly at the
//! bound and gets `CursorLagged` naming it. Also: the clean-shutdown marker
//! is reported, and an open after a clean shutdown begins its epoch with
//! its first change.

mod common;

use bop_storage::manifest::{Change, ManifestConfig};
use bop_storage::{DbId, StorageError, Store, StoreOptions};
use common::write_txn;

fn opts(max: u64, tail: u64) -> StoreOptions {
    StoreOptions {
        manifest: ManifestConfig {
            change_log_max_entries: max,
            change_log_tail_entries: tail,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn checkpoint(store: &Store, page: u32, fill: u8) {
    store
        .db_write(u64::from(page - 1) * 4096, &vec![fill; 4096])
        .unwrap();
    store.db_sync().unwrap();
}

fn kinds(changes: &[(u64, Change)]) -> Vec<&'static str> {
    changes
        .iter()
        .map(|(_, c)| match c {
            Change::SegmentAdded { .. } => "segment added",
            Change::SegmentsDropped { .. } => "segments dropped",
            Change::Published { .. } => "published",
            Change::DatabaseRegistered { .. } => "database registered",
            Change::EpochBegun { .. } => "epoch begun",
            Change::CleanShutdown { .. } => "clean shutdown",
        })
        .collect()
}

fn assert_consecutive(changes: &[(u64, Change)], after: u64) {
    for (i, (seq, _)) in changes.iter().enumerate() {
        assert_eq!(*seq, after + 1 + i as u64, "{changes:?}");
    }
}

#[test]
fn every_change_is_logged_in_order_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let o = opts(100_000, 1_000);
    let store = Store::open_shared(&path, &o).unwrap();
    // The store's creation: epoch 1 begun (a new database is empty:
    // nothing is published until SQLite writes it).
    let history = store.manifest().changes_after(0, 100).unwrap();
    assert_eq!(kinds(&history), ["epoch begun"]);
    let reg = store.register_cursor("replica").unwrap();
    assert_eq!(reg.acked, 1);
    assert_eq!(store.register_cursor("replica").unwrap(), reg, "idempotent");

    checkpoint(&store, 2, 0xaa);
    write_txn(&store, 1, &[(1, 1), (2, 2)], 2);
    store.wal_image_sync().unwrap();
    let named = Store::open_db_shared(&path, Some("orders"), &o).unwrap();
    drop(named);
    // A new generation moves the WAL base (no segment to drop: there is
    // only the one being appended to).
    write_txn(&store, 1, &[(3, 3)], 3);
    store.wal_image_sync().unwrap();

    let got = store.read_changes("replica", 100).unwrap();
    assert_consecutive(&got, 1);
    assert_eq!(
        kinds(&got),
        [
            "published",
            "segment added",
            "database registered",
            "segments dropped"
        ]
    );
    match &got[0].1 {
        Change::Published {
            db,
            db_pages,
            pages_changed,
            chunks_added,
            ..
        } => {
            assert_eq!((*db, *db_pages, *pages_changed), (DbId::MAIN, 2, 1));
            assert_eq!(chunks_added.len(), 1);
        }
        c => panic!("{c:?}"),
    }
    match &got[2].1 {
        Change::DatabaseRegistered { db, name, .. } => {
            assert_eq!((db.0, name.as_str()), (1, "orders"))
        }
        c => panic!("{c:?}"),
    }
    match &got[3].1 {
        Change::SegmentsDropped { base, .. } => assert_eq!(base.unwrap().0, DbId::MAIN),
        c => panic!("{c:?}"),
    }
    // Reading does not move the cursor; acknowledging does, and the
    // entries no cursor needs go.
    assert_eq!(store.read_changes("replica", 2).unwrap(), got[..2].to_vec());
    let last = got.last().unwrap().0;
    store.ack_changes("replica", last).unwrap();
    let s = store.stats().manifest;
    assert_eq!(
        (s.change_log_entries, s.change_last_seq),
        (0, last),
        "{s:?}"
    );
    assert!(s.changes_truncated >= last, "{s:?}");
    assert!(store.read_changes("replica", 10).unwrap().is_empty());
    assert!(matches!(
        store.ack_changes("replica", last + 5),
        Err(StorageError::Config(_))
    ));
    assert!(matches!(
        store.read_changes("nobody", 1),
        Err(StorageError::Config(_))
    ));

    // Clean close, reopen: the sequence continues; the marker is reported.
    // The new epoch begins with the first change (an open that only reads
    // writes nothing), in that change's commit and before it.
    drop(store);
    let store = Store::open_shared(&path, &o).unwrap();
    let got = store.read_changes("replica", 100).unwrap();
    assert_consecutive(&got, last);
    assert_eq!(kinds(&got), ["clean shutdown"]);
    assert!(store.stats().manifest.previous_shutdown_clean);
    checkpoint(&store, 2, 0xbb);
    let got = store.read_changes("replica", 100).unwrap();
    assert_consecutive(&got, last);
    assert_eq!(kinds(&got), ["clean shutdown", "epoch begun", "published"]);
    assert!(matches!(
        got[1].1,
        Change::EpochBegun {
            previous_clean: true,
            ..
        }
    ));
    assert!(store.stats().manifest.previous_shutdown_clean);
    let last = got.last().unwrap().0;
    store.ack_changes("replica", last).unwrap();

    // A crash (no clean shutdown): the next open says so.
    store.halt();
    drop(store);
    let store = Store::open_shared(&path, &o).unwrap();
    let got = store.read_changes("replica", 100).unwrap();
    assert_eq!(kinds(&got), ["epoch begun"], "no clean shutdown logged");
    assert!(matches!(
        got[0].1,
        Change::EpochBegun {
            previous_clean: false,
            ..
        }
    ));
    assert!(!store.stats().manifest.previous_shutdown_clean);
    assert!(store.drop_cursor("replica").unwrap());
    assert!(!store.drop_cursor("replica").unwrap());
    assert!(store.cursors().unwrap().is_empty());
}

#[test]
fn without_cursors_only_a_tail_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tail.db");
    let store = Store::open_shared(&path, &opts(100, 5)).unwrap();
    for i in 0..20u8 {
        checkpoint(&store, 1 + u32::from(i % 4), i);
    }
    let s = store.stats().manifest;
    assert_eq!(s.change_log_entries, 5, "{s:?}");
    assert_eq!(s.change_first_seq, s.change_last_seq - 4, "{s:?}");
    assert_eq!(s.change_last_seq, 21, "1 at creation + 20 publishes: {s:?}");
}

fn lag_of(store: &Store, name: &str) -> (u64, bool) {
    let c = store
        .cursors()
        .unwrap()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap();
    (c.lag, c.lagged)
}

#[test]
fn a_slow_cursor_is_marked_lagged_exactly_past_the_bound() {
    const MAX: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lag.db");
    let store = Store::open_shared(&path, &opts(MAX, 5)).unwrap();
    let slow = store.register_cursor("slow").unwrap();
    store.register_cursor("fast").unwrap();
    // Up to the bound: the slow cursor keeps every change it has not
    // acknowledged; the fast one acknowledges as it goes.
    for i in 0..MAX {
        checkpoint(&store, 1, i as u8);
        let seen = store.read_changes("fast", 10).unwrap();
        store.ack_changes("fast", seen.last().unwrap().0).unwrap();
    }
    assert_eq!(lag_of(&store, "slow"), (MAX, false));
    assert_eq!(store.stats().manifest.change_log_entries, MAX);
    let all = store.read_changes("slow", 1000).unwrap();
    assert_eq!(all.len() as u64, MAX);
    assert_consecutive(&all, slow.acked);
    // One change more: the log stays within its bound, and the slow cursor
    // is lagged.
    checkpoint(&store, 1, 0xff);
    let s = store.stats().manifest;
    assert_eq!(s.change_log_entries, MAX, "{s:?}");
    assert_eq!((s.cursors_lagged, s.cursor_lag_events), (1, 1), "{s:?}");
    assert_eq!(lag_of(&store, "slow"), (MAX + 1, true));
    match store.read_changes("slow", 10) {
        Err(StorageError::CursorLagged {
            cursor,
            acked,
            oldest,
        }) => {
            assert_eq!((cursor.as_str(), acked), ("slow", slow.acked));
            assert_eq!(oldest, s.change_first_seq);
            assert_eq!(oldest, slow.acked + 2);
        }
        r => panic!("expected CursorLagged, got {r:?}"),
    }
    assert!(matches!(
        store.ack_changes("slow", slow.acked + 1),
        Err(StorageError::CursorLagged { .. })
    ));
    // The lagged cursor no longer holds the log back; the fast one reads on.
    let seen = store.read_changes("fast", 10).unwrap();
    assert_eq!(seen.len(), 1);
    store.ack_changes("fast", seen[0].0).unwrap();
    assert_eq!(store.stats().manifest.change_log_entries, 0);
    // Resync: drop and register again, at the end of the log.
    store.drop_cursor("slow").unwrap();
    let again = store.register_cursor("slow").unwrap();
    assert!(!again.lagged && again.acked == seen[0].0);
    checkpoint(&store, 1, 1);
    assert_eq!(store.read_changes("slow", 10).unwrap().len(), 1);
    // The lag state survives reopen.
    drop(store);
    let store = Store::open_shared(&path, &opts(MAX, 5)).unwrap();
    assert_eq!(store.cursors().unwrap().len(), 2);
}
