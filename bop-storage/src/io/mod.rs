//! All file I/O of the engine goes through [`IoBackend`] and [`IoFile`], so
//! tests can substitute a backend that injects faults (lost unsynced writes,
//! torn writes, EIO, ENOSPC) and the engine can run on buffered I/O
//! ([`StdBackend`]), direct I/O for the record log ([`DirectBackend`]) or
//! io_uring ([`UringBackend`]). [`select`] picks one from a mode name
//! (`BOP_IO`, the `io=` URI parameter).

pub mod aligned;
pub mod direct;
pub mod select;
pub mod sim;
mod std_backend;
pub mod uring;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::Result;

pub use direct::{DirectBackend, DirectMode};
pub use select::{backend, default_backend, IoMode};
pub use std_backend::StdBackend;
pub use uring::UringBackend;

/// How a file is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Open an existing file for reading and writing.
    Existing,
    /// Create a new file; fails if it exists.
    CreateNew,
    /// Open read-only.
    ReadOnly,
}

/// One open file. Positional I/O only: no shared cursor, so one handle is
/// safe to use from several threads at once.
pub trait IoFile: Send + Sync + std::fmt::Debug {
    /// The path the file was opened with (for error messages).
    fn path(&self) -> &Path;
    /// Reads exactly `buf.len()` bytes at `offset`; a short file is an error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        if self.read_at(buf, offset)? < buf.len() {
            return Err(crate::error::StorageError::io(
                "read",
                self.path(),
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "short read"),
            ));
        }
        Ok(())
    }
    /// Reads up to `buf.len()` bytes at `offset`, returning how many were read
    /// (less only at end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize>;
    /// Writes all of `buf` at `offset` (one call where the kernel allows).
    fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<()>;
    /// Writes `bufs` back to back from `offset`, with the guarantees of one
    /// `write_all_at` of their concatenation: a gathered write (`pwritev`)
    /// where the backend has one, so callers need not copy the parts into
    /// one buffer. The default writes each part in turn.
    fn write_all_vectored_at(&self, bufs: &[&[u8]], offset: u64) -> Result<()> {
        let mut at = offset;
        for b in bufs {
            self.write_all_at(b, at)?;
            at += b.len() as u64;
        }
        Ok(())
    }
    /// Makes the file's data durable (fdatasync).
    fn sync_data(&self) -> Result<()>;
    /// Reserves disk space for `len_bytes` without changing visible data.
    fn allocate(&self, len_bytes: u64) -> Result<()>;
    /// Sets the file length.
    fn truncate(&self, len_bytes: u64) -> Result<()>;
    /// Current length in bytes.
    fn len_bytes(&self) -> Result<u64>;

    /// The alignment (of both offset and length, in bytes) a write needs to
    /// go to the device without a read-modify-write. Writes of any offset
    /// and length are always accepted (except by a simulated file set up to
    /// refuse them, see [`sim::SimFs::set_log_alignment`]); an unaligned one
    /// just costs more. 1 for buffered files.
    fn write_alignment(&self) -> usize {
        1
    }

    /// Writes all of `buf` at `offset` through the page cache, whatever the
    /// alignment: for writes that must reach the kernel now (so they
    /// survive the process) but are synced later, like commits under
    /// `synchronous=NORMAL`. Equal to `write_all_at` for buffered files; a
    /// direct-I/O file writes through its buffered descriptor (Linux keeps
    /// the two coherent: a later direct write of the range first writes
    /// back and drops the cached pages).
    fn write_cached_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.write_all_at(buf, offset)
    }

    /// Writes all of `buf` at `offset` and makes durable, before returning
    /// `Ok`, **this write and every write to this file that completed
    /// before the call** (through this handle or any other), exactly as
    /// [`write_all_at`](Self::write_all_at) followed by
    /// [`sync_data`](Self::sync_data) would. A backend may implement it
    /// with fewer system calls (io_uring: one submission of a write linked
    /// to an fdatasync) but never with weaker guarantees (for example a FUA
    /// write alone, which leaves earlier writes in the device's volatile
    /// cache). The default is those two calls.
    ///
    /// On `Err` nothing is promised: part of `buf` may have been written,
    /// and earlier writes may or may not be durable (the same as a failed
    /// fdatasync).
    fn write_durable_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        count(&STATS.durable_writes);
        self.write_all_at(buf, offset)?;
        self.sync_data()
    }

    /// Whether [`write_durable_at`](Self::write_durable_at) fuses the write
    /// and the sync (true for io_uring). The record log then uses it for a
    /// write that a sync of the same file follows at once (its sync
    /// leader's first write, a large record under `synchronous=FULL`);
    /// elsewhere it writes, then syncs. False by default: two calls in one
    /// gain nothing, and the record log's leader would hold other writers
    /// of the file back for the sync's duration too.
    fn fuses_durable_writes(&self) -> bool {
        false
    }
}

/// A file system: the only way the engine touches paths.
///
/// The directory operations default to the real file system (as
/// [`StdBackend`] does them); only a simulated file system overrides them.
pub trait IoBackend: Send + Sync + std::fmt::Debug {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Arc<dyn IoFile>>;
    fn remove_file(&self, path: &Path) -> Result<()> {
        StdBackend.remove_file(path)
    }
    /// Renames a file atomically (durable once its directory is synced).
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        StdBackend.rename(from, to)
    }
    fn create_dir_all(&self, path: &Path) -> Result<()> {
        StdBackend.create_dir_all(path)
    }
    /// Removes a directory and everything under it; a missing one is no
    /// error. Durable once its parent is synced.
    fn remove_dir_all(&self, path: &Path) -> Result<()> {
        StdBackend.remove_dir_all(path)
    }
    /// Makes a directory's entries (creations, removals) durable.
    fn sync_dir(&self, path: &Path) -> Result<()> {
        StdBackend.sync_dir(path)
    }
    /// Whether this backend's directories are the real file system's
    /// (every backend but a simulated one). The parts of a store that live
    /// outside this trait (the LMDB manifest, `LOCK`) are on the real file
    /// system; when this is false, store creation makes their directories
    /// there as well as through the backend.
    fn real_directories(&self) -> bool {
        true
    }
    /// The files directly inside `dir`.
    fn list_dir(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        StdBackend.list_dir(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        StdBackend.exists(path)
    }

    /// Opens a segment file of the record log (`*.seg`, `*.spare`,
    /// `prepared-*.spare`): written sequentially, read rarely, so a backend
    /// may bypass the kernel's page cache for it (see [`DirectBackend`]).
    /// Same semantics as [`open`](Self::open); check
    /// [`IoFile::write_alignment`] on the result.
    fn open_log(&self, path: &Path, mode: OpenMode) -> Result<Arc<dyn IoFile>> {
        self.open(path, mode)
    }

    /// A short name for statistics and logs: "std", "direct", "uring",
    /// "sim"; "custom" for a backend that does not say.
    fn name(&self) -> &'static str {
        "custom"
    }
}

/// Process-wide I/O counters (all backends add to them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Writes issued on an O_DIRECT descriptor (each `pwrite`).
    pub direct_writes: u64,
    /// Direct writes that needed a read-modify-write of partial blocks.
    pub rmw_writes: u64,
    /// Bounce buffers allocated because the bounded pool was exhausted.
    pub bounce_allocs_over_pool: u64,
    /// Files that asked for direct I/O and got buffered I/O (filesystem
    /// refused O_DIRECT at open or at the first write).
    pub direct_fallbacks: u64,
    /// io_uring submissions (one per `io_uring_enter` that submitted).
    pub uring_submissions: u64,
    /// Times the io_uring backend was asked for and std used instead.
    pub uring_fallbacks: u64,
    /// Calls of [`IoFile::write_durable_at`] (the record log makes them
    /// only on files that [fuse](IoFile::fuses_durable_writes) them).
    pub durable_writes: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub direct_writes: AtomicU64,
    pub rmw_writes: AtomicU64,
    pub bounce_allocs_over_pool: AtomicU64,
    pub direct_fallbacks: AtomicU64,
    pub uring_submissions: AtomicU64,
    pub uring_fallbacks: AtomicU64,
    pub durable_writes: AtomicU64,
}

pub(crate) static STATS: Counters = Counters {
    direct_writes: AtomicU64::new(0),
    rmw_writes: AtomicU64::new(0),
    bounce_allocs_over_pool: AtomicU64::new(0),
    direct_fallbacks: AtomicU64::new(0),
    uring_submissions: AtomicU64::new(0),
    uring_fallbacks: AtomicU64::new(0),
    durable_writes: AtomicU64::new(0),
};

pub(crate) fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A snapshot of the process-wide I/O counters.
pub fn io_stats() -> IoStats {
    let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
    IoStats {
        direct_writes: l(&STATS.direct_writes),
        rmw_writes: l(&STATS.rmw_writes),
        bounce_allocs_over_pool: l(&STATS.bounce_allocs_over_pool),
        direct_fallbacks: l(&STATS.direct_fallbacks),
        uring_submissions: l(&STATS.uring_submissions),
        uring_fallbacks: l(&STATS.uring_fallbacks),
        durable_writes: l(&STATS.durable_writes),
    }
}

/// Creates `path` and its missing ancestors, and makes each new entry
/// durable: syncs the parent of every directory it created, deepest first.
/// A directory that already exists is left alone (and not synced).
pub fn create_dir_durable(io: &dyn IoBackend, path: &Path) -> Result<()> {
    let missing: Vec<&Path> = path.ancestors().take_while(|a| !io.exists(a)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    io.create_dir_all(path)?;
    for dir in missing {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            io.sync_dir(parent)?;
        }
    }
    Ok(())
}
