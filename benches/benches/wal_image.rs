//! criterion micro-benchmarks of the engine below SQLite: the WAL image of
//! a `bop_storage::Store` driven directly with SQLite-style WAL frames, the
//! way the VFS drives it.
//!
//! - `append`: one 1-page transaction sealed into a log record, no sync
//!   (SQLite releasing its write lock under `synchronous=NORMAL`).
//! - `durable commit`: one 1-page transaction, then `wal_image_sync`
//!   (fdatasync).
//! - `record read`: one page read from a random committed record.
//! - `recovery scan`: opening a store whose record log holds 2000 one-page
//!   records left by a crash (`halt`), and closing it.

use std::path::Path;
use std::sync::Arc;

use bop_storage::{Store, StoreOptions};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use tempfile::TempDir;

const PAGE: u32 = 4096;
const FRAME: u64 = 24 + PAGE as u64;
/// The WAL image restarts (a new header at offset 0, as SQLite does after a
/// checkpoint) once it holds this many frames, so a long run does not grow
/// the WAL without end.
const RESTART_FRAMES: u64 = 1000;
/// Committed one-page records the read benchmark picks from.
const READ_FRAMES: u64 = 1000;
/// One-page records the recovery benchmark's WAL holds.
const RECOVERY_RECORDS: u64 = 2000;

fn tempdir() -> TempDir {
    tempfile::Builder::new()
        .prefix("bop-wal-bench")
        .tempdir_in("/tmp")
        .expect("tempdir")
}

fn open(path: &Path) -> Arc<Store> {
    Store::open_shared(path, &StoreOptions::default()).expect("open store")
}

/// Writes one SQLite-style transaction of `pages` (page number, fill byte)
/// at frame `first_frame` (1-based) and returns the next frame number.
/// Frame 1 also writes the 32-byte WAL header, as SQLite does.
/// (A copy of `write_txn` in `bop-storage/tests/common.rs`.)
fn write_txn(store: &Store, first_frame: u64, pages: &[(u32, u8)], db_size: u32) -> u64 {
    if first_frame == 1 {
        let mut hdr = [0u8; 32];
        hdr[..4].copy_from_slice(&0x377f0682u32.to_be_bytes());
        hdr[8..12].copy_from_slice(&PAGE.to_be_bytes());
        store.wal_image_write(0, &hdr).expect("wal header");
    }
    let mut frame_no = first_frame;
    for (i, (pgno, fill)) in pages.iter().enumerate() {
        let off = 32 + (frame_no - 1) * FRAME;
        let mut fh = [0u8; 24];
        fh[..4].copy_from_slice(&pgno.to_be_bytes());
        if i + 1 == pages.len() {
            fh[4..8].copy_from_slice(&db_size.to_be_bytes());
        }
        store.wal_image_write(off, &fh).expect("frame header");
        store
            .wal_image_write(off + 24, &vec![*fill; PAGE as usize])
            .expect("frame page");
        frame_no += 1;
    }
    frame_no
}

/// The fill byte of frame `frame_no`'s page.
fn fill_of(frame_no: u64) -> u8 {
    (frame_no % 251) as u8 + 1
}

/// One 1-page transaction as the VFS drives it: admission, the write lock,
/// the frames. Returns the next frame, restarting the image when it is full.
fn one_page_txn(store: &Store, frame: u64) -> u64 {
    store.admit_writer().expect("admit");
    store.begin_write_transaction();
    let next = write_txn(store, frame, &[(1, fill_of(frame))], 1);
    if next > RESTART_FRAMES {
        1
    } else {
        next
    }
}

/// Reads the page of frame `frame_no` into `buf`.
fn read_frame(store: &Store, frame_no: u64, buf: &mut [u8]) {
    let n = store
        .wal_image_read(32 + (frame_no - 1) * FRAME + 24, buf)
        .expect("wal read");
    assert_eq!(n, buf.len(), "frame {frame_no} is inside the WAL image");
}

/// Copies a store directory (files and subdirectories).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("dir entry");
        let dst = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).expect("copy");
        }
    }
}

fn append(c: &mut Criterion) {
    let dir = tempdir();
    let store = open(dir.path());
    let mut frame = 1;
    // Once, outside the measurement: the sealed record is readable.
    let first = frame;
    frame = one_page_txn(&store, frame);
    store.end_write_transaction().expect("seal");
    assert_eq!(store.stats().wal_image.records, 1, "one record sealed");
    let mut buf = vec![0u8; PAGE as usize];
    read_frame(&store, first, &mut buf);
    assert!(buf.iter().all(|&b| b == fill_of(first)));
    let mut ran = false;
    c.bench_function("append", |b| {
        ran = true;
        b.iter(|| {
            frame = one_page_txn(&store, frame);
            store.end_write_transaction().expect("seal");
        })
    });
    // (A filter that skips the benchmark never runs its closure.)
    assert!(
        !ran || store.stats().wal_image.records > 1,
        "the benchmark sealed records"
    );
}

fn durable_commit(c: &mut Criterion) {
    let dir = tempdir();
    let store = open(dir.path());
    let mut frame = 1;
    frame = one_page_txn(&store, frame);
    store.wal_image_sync().expect("sync");
    store.end_write_transaction().expect("end");
    let s = store.stats();
    assert!(s.flush.written_lsn > 0, "a record was written");
    assert_eq!(s.flush.durable_lsn, s.flush.written_lsn, "and is durable");
    assert!(s.flush.syncs >= 1, "a sync ran");
    c.bench_function("durable commit", |b| {
        b.iter(|| {
            frame = one_page_txn(&store, frame);
            store.wal_image_sync().expect("sync");
            store.end_write_transaction().expect("end");
        })
    });
}

fn record_read(c: &mut Criterion) {
    let dir = tempdir();
    let store = open(dir.path());
    let mut frame = 1;
    for _ in 0..READ_FRAMES {
        store.begin_write_transaction();
        frame = write_txn(&store, frame, &[(1, fill_of(frame))], 1);
        store.end_write_transaction().expect("seal");
    }
    store.wal_image_sync().expect("sync");
    assert_eq!(store.stats().wal_image_records, READ_FRAMES as usize);
    let mut buf = vec![0u8; PAGE as usize];
    read_frame(&store, READ_FRAMES, &mut buf);
    assert!(buf.iter().all(|&b| b == fill_of(READ_FRAMES)));
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    c.bench_function("record read", |b| {
        b.iter(|| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = 1 + x % READ_FRAMES;
            read_frame(&store, f, &mut buf);
            assert_eq!(buf[PAGE as usize - 1], fill_of(f));
        })
    });
}

fn recovery_scan(c: &mut Criterion) {
    // The prepared store: RECOVERY_RECORDS one-page records, synced, then
    // the store stops dead as in a crash, so every open scans and recovers.
    let prepared = tempdir();
    {
        let store = open(prepared.path());
        let mut frame = 1;
        for _ in 0..RECOVERY_RECORDS {
            store.begin_write_transaction();
            frame = write_txn(&store, frame, &[(1, fill_of(frame))], 1);
            store.end_write_transaction().expect("seal");
        }
        store.wal_image_sync().expect("sync");
        store.halt();
    }
    let fresh = || {
        let d = tempdir();
        copy_dir(prepared.path(), d.path());
        d
    };
    // Once: the copy recovers every record and the last page.
    {
        let d = fresh();
        let store = open(d.path());
        assert_eq!(store.stats().wal_image_records, RECOVERY_RECORDS as usize);
        assert_eq!(store.wal_image_size(), 32 + RECOVERY_RECORDS * FRAME);
        let mut buf = vec![0u8; PAGE as usize];
        read_frame(&store, RECOVERY_RECORDS, &mut buf);
        assert!(buf.iter().all(|&b| b == fill_of(RECOVERY_RECORDS)));
    }
    c.bench_function("recovery scan", |b| {
        b.iter_batched(
            fresh,
            |d| {
                drop(open(d.path()));
                // Returned so the directory is removed outside the timing.
                d
            },
            BatchSize::PerIteration,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = append, durable_commit, record_read, recovery_scan
}
criterion_main!(benches);
