//! Creating a store directory atomically, so that a power cut during
//! creation leaves either no store or a whole one, never a store that
//! cannot open (a torn `manifest/data.mdb`) or a directory without its
//! manifest.
//!
//! The store is built in a temporary directory next to it,
//! `<parent>/.<name>.bop-creating.<pid>`: its process lock `LOCK` (taken
//! first, and kept: it becomes the store's lock), the manifest (LMDB's
//! commit syncs `data.mdb`), and the empty `wal/` and `chunks/`. Every
//! directory of it is synced, the temporary directory is renamed to the
//! store's name, and the parent is synced. Renaming over an empty directory
//! replaces it; when another process created the store first (the name
//! holds a store), the temporary directory is removed and the existing
//! store opened.
//!
//! A temporary directory a cut or a killed process left behind is removed
//! by the next creation of the same store: when its `LOCK` can be locked
//! (its creator is gone) or, without a `LOCK`, when the process its name
//! carries no longer runs.
//!
//! The manifest and `LOCK` live outside the I/O trait, on the real file
//! system; every directory operation goes through the store's
//! [`IoBackend`] too, so a simulated one ([`crate::io::sim::SimFs`])
//! models what a power cut does to the directories.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};
use crate::io::{IoBackend, StdBackend};
use crate::manifest::{Manifest, ManifestConfig};

/// The infix of a store's temporary directory while it is created.
const CREATING: &str = ".bop-creating.";

/// The directories a store's directory operations go to: the store's I/O
/// backend, and the real file system too when the backend is simulated
/// (the manifest and `LOCK` live there).
fn backends(io: &dyn IoBackend) -> Vec<&dyn IoBackend> {
    if io.real_directories() {
        vec![io]
    } else {
        vec![io, &StdBackend]
    }
}

/// What a new store is made of.
pub(crate) struct NewStore<'a> {
    pub io: &'a dyn IoBackend,
    pub page_size: u32,
    pub manifest: ManifestConfig,
    /// The store's directories: the manifest's first, then the others
    /// (the record log's, the main database's chunks).
    pub subdirs: [&'a str; 3],
}

/// Creates the store at `path` (which holds no store; its parent exists)
/// atomically. Returns the store's process lock when this call created it,
/// `None` when another process created it first.
pub(crate) fn create_store(path: &Path, new: &NewStore) -> Result<Option<File>> {
    let (parent, name) = split(path)?;
    let io = new.io;
    remove_abandoned(io, &parent, &name);
    let tmp = parent.join(format!(".{name}{CREATING}{}", std::process::id()));
    let lock = match build(&tmp, new) {
        Ok(lock) => lock,
        Err(e) => {
            remove(io, &tmp);
            return Err(e);
        }
    };
    let mut renamed = true;
    for b in backends(io) {
        match b.rename(&tmp, path) {
            Ok(()) => {}
            Err(StorageError::Io { source, .. })
                if matches!(
                    source.raw_os_error(),
                    Some(libc::ENOTEMPTY) | Some(libc::EEXIST)
                ) =>
            {
                // Another process created the store first.
                renamed = false;
                break;
            }
            Err(e) => {
                remove(io, &tmp);
                return Err(e);
            }
        }
    }
    if !renamed {
        drop(lock);
        remove(io, &tmp);
        return Ok(None);
    }
    for b in backends(io) {
        b.sync_dir(&parent)?;
    }
    Ok(Some(lock))
}

/// The store's parent directory and name.
fn split(path: &Path) -> Result<(PathBuf, String)> {
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        StorageError::Config(format!(
            "{}: a store path must end in a UTF-8 name",
            path.display()
        ))
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.to_owned()))
}

/// Builds the whole store in `tmp`, every part of it durable; returns its
/// process lock, held.
fn build(tmp: &Path, new: &NewStore) -> Result<File> {
    let io = new.io;
    // A leftover of this process's own earlier attempt.
    remove(io, tmp);
    std::fs::create_dir(tmp).map_err(|e| StorageError::io("mkdir", tmp, e))?;
    let lock = lock_new(tmp)?;
    let subdirs = new.subdirs.map(|d| tmp.join(d));
    for b in backends(io) {
        b.create_dir_all(tmp)?;
        for d in &subdirs {
            b.create_dir_all(d)?;
        }
    }
    // Creating the manifest commits its first state; LMDB syncs `data.mdb`.
    // Closed here: the store opens it again under its final name.
    drop(Manifest::open_with(
        &subdirs[0],
        true,
        new.page_size,
        new.manifest,
    )?);
    lock.sync_all()
        .map_err(|e| StorageError::io("fsync", tmp.join("LOCK"), e))?;
    for b in backends(io) {
        for d in &subdirs {
            b.sync_dir(d)?;
        }
        b.sync_dir(tmp)?;
    }
    Ok(lock)
}

/// Creates `<dir>/LOCK` and takes its lock (nobody else can hold it yet).
fn lock_new(dir: &Path) -> Result<File> {
    let lock_path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&lock_path)
        .map_err(|e| StorageError::io("create", &lock_path, e))?;
    if !try_flock(&file) {
        return Err(StorageError::Locked {
            path: dir.to_path_buf(),
        });
    }
    Ok(file)
}

/// Takes the exclusive lock of `file` without waiting.
fn try_flock(file: &File) -> bool {
    // SAFETY: flock takes a valid open descriptor and no pointers.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Removes the temporary directories that creations of `<parent>/<name>`
/// by processes that are gone left behind (see the module's comment).
fn remove_abandoned(io: &dyn IoBackend, parent: &Path, name: &str) {
    let prefix = format!(".{name}{CREATING}");
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.filter_map(|e| e.ok()) {
        let file_name = e.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let dir = e.path();
        if creator_gone(&dir, pid) {
            tracing::warn!(dir = %dir.display(), "removing the temporary directory of a store creation that did not complete");
            remove(io, &dir);
        }
    }
}

/// Removes a temporary directory (best effort: a leftover is removed by the
/// next creation).
fn remove(io: &dyn IoBackend, dir: &Path) {
    for b in backends(io) {
        let _ = b.remove_dir_all(dir);
    }
}

/// Whether the process that built the temporary directory `dir` is gone.
fn creator_gone(dir: &Path, pid: i32) -> bool {
    if pid == std::process::id() as i32 {
        // This process's earlier attempt (creations of one path in a
        // process do not overlap).
        return true;
    }
    match File::open(dir.join("LOCK")) {
        Ok(f) => try_flock(&f),
        Err(_) => {
            // SAFETY: kill with signal 0 only checks that `pid` exists.
            let rc = unsafe { libc::kill(pid, 0) };
            rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
        }
    }
}
