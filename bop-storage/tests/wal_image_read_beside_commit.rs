//! A reader of committed WAL frames does not wait while the writer seals a
//! commit (the commit's I/O runs under the log lock; committed records are
//! read through their own lock), and the writer of a transaction that
//! restarts the image still reads back its own frames, not the old
//! generation's bytes at the same offsets.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bop_storage::{Store, StoreOptions};
use common::*;

/// Holds log segment writes while `closed` is set, and says when one waits.
#[derive(Debug, Default)]
struct Gate {
    closed: AtomicBool,
    waiting: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    fn pass(&self) {
        if !self.closed.load(Ordering::SeqCst) {
            return;
        }
        let mut w = self.waiting.lock().unwrap();
        *w = true;
        self.changed.notify_all();
        while self.closed.load(Ordering::SeqCst) {
            w = self
                .changed
                .wait_timeout(w, Duration::from_millis(10))
                .unwrap()
                .0;
        }
        *w = false;
    }

    fn wait_for_writer(&self) {
        let mut w = self.waiting.lock().unwrap();
        while !*w {
            w = self.changed.wait(w).unwrap();
        }
    }

    fn open(&self) {
        self.closed.store(false, Ordering::SeqCst);
        self.changed.notify_all();
    }
}

impl SegmentHooks for Gate {
    fn before_write(&self) {
        self.pass();
    }
}

#[test]
fn a_reader_of_committed_frames_does_not_wait_for_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(Gate::default());
    let opts = StoreOptions {
        io: Arc::new(HookedBackend(gate.clone())),
        ..Default::default()
    };
    let store = Store::open_shared(&dir.path().join("r.db"), &opts).unwrap();
    let next = write_txn(&store, 1, &[(1, 7), (2, 8)], 2);
    store.end_write_transaction().unwrap();

    // The next commit's write (under the log lock) is held at the gate.
    gate.closed.store(true, Ordering::SeqCst);
    write_txn(&store, next, &[(3, 9)], 3);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || store.end_write_transaction())
    };
    gate.wait_for_writer();

    let (tx, rx) = mpsc::channel();
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            tx.send((read_frame(&store, 1), read_frame(&store, 2)))
                .unwrap();
        })
    };
    let got = rx.recv_timeout(Duration::from_secs(10));
    gate.open();
    writer.join().unwrap().unwrap();
    reader.join().unwrap();
    let (f1, f2) = got.expect("the read of committed frames waited for the commit's write");
    assert_eq!(f1, vec![7u8; PAGE as usize]);
    assert_eq!(f2, vec![8u8; PAGE as usize]);
    // The held commit landed.
    assert_eq!(read_frame(&store, 3), vec![9u8; PAGE as usize]);
}

#[test]
fn a_transaction_restarting_the_image_reads_its_own_frames() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("g.db")).unwrap();
    write_txn(&store, 1, &[(1, 0xA1), (2, 0xA2), (3, 0xA3)], 3);
    store.end_write_transaction().unwrap();
    assert_eq!(read_frame(&store, 2), vec![0xA2u8; PAGE as usize]);
    let generation = store.wal_image_generation();

    // SQLite restarts the WAL: a new header at offset 0, then frames over
    // the old generation's offsets, not committed yet.
    let mut hdr = [0u8; 32];
    hdr[..4].copy_from_slice(&0x377f0682u32.to_be_bytes());
    hdr[8..12].copy_from_slice(&PAGE.to_be_bytes());
    hdr[12..16].copy_from_slice(&1u32.to_be_bytes());
    store.wal_image_write(0, &hdr).unwrap();
    let mut fh = [0u8; 24];
    fh[..4].copy_from_slice(&5u32.to_be_bytes());
    store.wal_image_write(32, &fh).unwrap();
    store
        .wal_image_write(32 + 24, &[0xB5; PAGE as usize])
        .unwrap();
    // The writer reads its spilled frame back: its bytes, not the old ones.
    assert_eq!(read_frame(&store, 1), vec![0xB5u8; PAGE as usize]);
    let mut h = [0u8; 32];
    store.wal_image_read(0, &mut h).unwrap();
    assert_eq!(h, hdr, "the new header");

    // The commit frame; sealed, the new generation is what every reader sees.
    fh[..4].copy_from_slice(&6u32.to_be_bytes());
    fh[4..8].copy_from_slice(&6u32.to_be_bytes());
    store.wal_image_write(32 + FRAME, &fh).unwrap();
    store
        .wal_image_write(32 + FRAME + 24, &[0xB6; PAGE as usize])
        .unwrap();
    store.end_write_transaction().unwrap();
    assert_eq!(store.wal_image_generation(), generation + 1);
    assert_eq!(read_frame(&store, 1), vec![0xB5u8; PAGE as usize]);
    assert_eq!(read_frame(&store, 2), vec![0xB6u8; PAGE as usize]);
    let mut past = vec![0xFFu8; PAGE as usize];
    let n = store
        .wal_image_read(32 + 2 * FRAME + 24, &mut past)
        .unwrap();
    assert_eq!(n, 0, "the old generation's third frame is gone");
    assert!(past.iter().all(|&b| b == 0));
}
