//! All file I/O of the engine goes through [`IoBackend`] and [`IoFile`], so
//! tests can substitute a backend that injects faults (lost unsynced
//! writes, torn writes, EIO, ENOSPC) and later issues can add direct I/O and
//! io_uring behind the same interface.

pub mod sim;
mod std_backend;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Result;

pub use std_backend::StdBackend;

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
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()>;
    /// Reads up to `buf.len()` bytes at `offset`, returning how many were read
    /// (less only at end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize>;
    /// Writes all of `buf` at `offset` (one call where the kernel allows).
    fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<()>;
    /// Makes the file's data durable (fdatasync).
    fn sync_data(&self) -> Result<()>;
    /// Reserves disk space for `len_bytes` without changing visible data.
    fn allocate(&self, len_bytes: u64) -> Result<()>;
    /// Sets the file length.
    fn truncate(&self, len_bytes: u64) -> Result<()>;
    /// Current length in bytes.
    fn len_bytes(&self) -> Result<u64>;
    /// The alignment (offset and length) writes need to avoid a
    /// read-modify-write; 1 when any write is fine.
    fn write_alignment(&self) -> usize {
        1
    }
}

/// A file system: the only way the engine touches paths.
pub trait IoBackend: Send + Sync + std::fmt::Debug {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Arc<dyn IoFile>>;
    fn remove_file(&self, path: &Path) -> Result<()>;
    /// Renames a file atomically (durable once its directory is synced).
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    fn create_dir_all(&self, path: &Path) -> Result<()>;
    /// Makes a directory's entries (creations, removals) durable.
    fn sync_dir(&self, path: &Path) -> Result<()>;
    /// The files directly inside `dir`.
    fn list_dir(&self, dir: &Path) -> Result<Vec<PathBuf>>;
    fn exists(&self, path: &Path) -> bool;
}
