//! The buffered std backend: `pread`/`pwrite` through the page cache and
//! `fdatasync` for durability.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{IoBackend, IoFile, OpenMode};
use crate::error::{Result, StorageError};

#[derive(Debug, Default, Clone, Copy)]
pub struct StdBackend;

#[derive(Debug)]
pub(crate) struct StdFile {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
}

impl IoFile for StdFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        read_full(&self.file, &self.path, buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.file
            .write_all_at(buf, offset)
            .map_err(|e| StorageError::io("write", &self.path, e))
    }

    fn write_all_vectored_at(&self, bufs: &[&[u8]], offset: u64) -> Result<()> {
        write_all_vectored(&self.file, &self.path, bufs, offset)
    }

    fn sync_data(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| StorageError::io("fdatasync", &self.path, e))
    }

    fn allocate(&self, len_bytes: u64) -> Result<()> {
        allocate(&self.file, &self.path, len_bytes)
    }

    fn truncate(&self, len_bytes: u64) -> Result<()> {
        truncate(&self.file, &self.path, len_bytes)
    }

    fn len_bytes(&self) -> Result<u64> {
        len_bytes(&self.file, &self.path)
    }
}

/// Reads up to `buf.len()` bytes at `offset`, fewer only at end of file.
pub(crate) fn read_full(file: &File, path: &Path, buf: &mut [u8], offset: u64) -> Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StorageError::io("read", path, e)),
        }
    }
    Ok(done)
}

/// Writes `bufs` back to back from `offset` with `pwritev` (at most
/// `IOV_MAX` parts per call), going on after short writes.
pub(crate) fn write_all_vectored(
    file: &File,
    path: &Path,
    bufs: &[&[u8]],
    offset: u64,
) -> Result<()> {
    const IOV_MAX: usize = 1024;
    let mut parts: Vec<&[u8]> = bufs.iter().copied().filter(|b| !b.is_empty()).collect();
    let mut first = 0;
    let mut at = offset;
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(IOV_MAX.min(parts.len()));
    while first < parts.len() {
        iov.clear();
        iov.extend(parts[first..].iter().take(IOV_MAX).map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        }));
        // SAFETY: every iovec points into a live `&[u8]` of `parts` (which
        // outlives the call) with its exact length; pwritev only reads them,
        // and the descriptor is open for the lifetime of `file`.
        let rc = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                iov.as_ptr(),
                iov.len() as libc::c_int,
                at as libc::off_t,
            )
        };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(StorageError::io("write", path, err));
        }
        if rc == 0 {
            return Err(StorageError::io(
                "write",
                path,
                std::io::Error::new(std::io::ErrorKind::WriteZero, "pwritev wrote nothing"),
            ));
        }
        let mut n = rc as usize;
        at += n as u64;
        // Skip what was written: whole parts, then the front of one.
        while n > 0 {
            let len = parts[first].len();
            if n >= len {
                n -= len;
                first += 1;
            } else {
                parts[first] = &parts[first][n..];
                n = 0;
            }
        }
    }
    Ok(())
}

/// `fallocate(0, len)`, or setting the length where the filesystem has no
/// fallocate. Shared by every backend on real files.
pub(crate) fn allocate(file: &File, path: &Path, len_bytes: u64) -> Result<()> {
    // SAFETY: the descriptor is open for the lifetime of `file`; fallocate
    // takes no pointers.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len_bytes as libc::off_t) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        // Filesystems without fallocate: fall back to setting the length.
        Some(libc::EOPNOTSUPP) => truncate(file, path, len_bytes),
        _ => Err(StorageError::io("fallocate", path, err)),
    }
}

pub(crate) fn truncate(file: &File, path: &Path, len_bytes: u64) -> Result<()> {
    file.set_len(len_bytes)
        .map_err(|e| StorageError::io("truncate", path, e))
}

pub(crate) fn len_bytes(file: &File, path: &Path) -> Result<u64> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| StorageError::io("stat", path, e))
}

/// Opens `path` as the engine's [`OpenMode`] says, with extra `open(2)`
/// flags (`O_DIRECT`).
pub(crate) fn open_file(path: &Path, mode: OpenMode, custom_flags: i32) -> Result<File> {
    let mut opts = OpenOptions::new();
    match mode {
        OpenMode::Existing => opts.read(true).write(true),
        OpenMode::CreateNew => opts.read(true).write(true).create_new(true),
        OpenMode::ReadOnly => opts.read(true),
    };
    opts.custom_flags(custom_flags | libc::O_CLOEXEC);
    opts.open(path)
        .map_err(|e| StorageError::io("open", path, e))
}

impl IoBackend for StdBackend {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Arc<dyn IoFile>> {
        let file = open_file(path, mode, 0)?;
        Ok(Arc::new(StdFile {
            file,
            path: path.to_path_buf(),
        }))
    }

    fn name(&self) -> &'static str {
        "std"
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("unlink", path, e)),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        std::fs::rename(from, to).map_err(|e| StorageError::io("rename", from, e))
    }

    fn create_dir_all(&self, path: &Path) -> Result<()> {
        std::fs::create_dir_all(path).map_err(|e| StorageError::io("mkdir", path, e))
    }

    fn remove_dir_all(&self, path: &Path) -> Result<()> {
        match std::fs::remove_dir_all(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("rmdir", path, e)),
        }
    }

    fn sync_dir(&self, path: &Path) -> Result<()> {
        let dir = File::open(path).map_err(|e| StorageError::io("open dir", path, e))?;
        dir.sync_all()
            .map_err(|e| StorageError::io("fsync dir", path, e))
    }

    fn list_dir(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let rd = std::fs::read_dir(dir).map_err(|e| StorageError::io("readdir", dir, e))?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| StorageError::io("readdir", dir, e))?;
            out.push(entry.path());
        }
        out.sort();
        Ok(out)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}
