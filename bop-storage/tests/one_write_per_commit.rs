//! A commit is written to the WAL with one write call, whatever its size,
//! and a FULL commit costs one data sync. Counted through the I/O trait.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bop_storage::io::{IoBackend, IoFile, OpenMode, StdBackend};
use bop_storage::{Store, StoreOptions};
use common::*;

#[derive(Debug, Default)]
struct Counts {
    wal_writes: AtomicUsize,
    wal_syncs: AtomicUsize,
}

#[derive(Debug)]
struct Counting {
    inner: StdBackend,
    counts: Arc<Counts>,
}

#[derive(Debug)]
struct CountingFile {
    inner: Arc<dyn IoFile>,
    counts: Arc<Counts>,
    is_wal: bool,
}

impl IoFile for CountingFile {
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> bop_storage::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> bop_storage::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> bop_storage::Result<()> {
        if self.is_wal {
            self.counts.wal_writes.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> bop_storage::Result<()> {
        if self.is_wal {
            self.counts.wal_syncs.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.sync_data()
    }
    fn allocate(&self, len: u64) -> bop_storage::Result<()> {
        self.inner.allocate(len)
    }
    fn truncate(&self, len: u64) -> bop_storage::Result<()> {
        self.inner.truncate(len)
    }
    fn len_bytes(&self) -> bop_storage::Result<u64> {
        self.inner.len_bytes()
    }
}

impl IoBackend for Counting {
    fn open(&self, path: &Path, mode: OpenMode) -> bop_storage::Result<Arc<dyn IoFile>> {
        Ok(Arc::new(CountingFile {
            inner: self.inner.open(path, mode)?,
            counts: self.counts.clone(),
            is_wal: path.extension().is_some_and(|e| e == "seg"),
        }))
    }
    fn remove_file(&self, path: &Path) -> bop_storage::Result<()> {
        self.inner.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> bop_storage::Result<()> {
        self.inner.rename(from, to)
    }
    fn create_dir_all(&self, path: &Path) -> bop_storage::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> bop_storage::Result<()> {
        self.inner.sync_dir(path)
    }
    fn list_dir(&self, dir: &Path) -> bop_storage::Result<Vec<PathBuf>> {
        self.inner.list_dir(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
}

#[test]
fn a_commit_is_one_write_and_one_sync() {
    let dir = tempfile::tempdir().unwrap();
    let counts = Arc::new(Counts::default());
    let opts = StoreOptions {
        io: Arc::new(Counting {
            inner: StdBackend,
            counts: counts.clone(),
        }),
        ..Default::default()
    };
    let store = Store::open_shared(&dir.path().join("c.db"), &opts).unwrap();
    // The first commit creates the segment (header write + sync): measure
    // from the second commit on.
    let mut f = write_txn(&store, 1, &[(1, 1)], 1);
    store.wal_sync().unwrap();
    let (w0, s0) = (
        counts.wal_writes.load(Ordering::SeqCst),
        counts.wal_syncs.load(Ordering::SeqCst),
    );
    let pages: Vec<(u32, u8)> = (1..=50).map(|p| (p, p as u8)).collect();
    f = write_txn(&store, f, &pages, 50);
    store.wal_sync().unwrap();
    assert_eq!(
        counts.wal_writes.load(Ordering::SeqCst) - w0,
        1,
        "50 frames, one write"
    );
    assert_eq!(counts.wal_syncs.load(Ordering::SeqCst) - s0, 1, "one sync");
    // NORMAL: sealed at the end of the write transaction, no sync.
    write_txn(&store, f, &[(2, 2)], 50);
    store.end_write_transaction().unwrap();
    assert_eq!(counts.wal_writes.load(Ordering::SeqCst) - w0, 2);
    assert_eq!(counts.wal_syncs.load(Ordering::SeqCst) - s0, 1);
    assert_eq!(read_frame(&store, 30), vec![29u8; PAGE as usize]);
}
