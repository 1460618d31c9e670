//! Safe VFS logic: which names belong to bop, opening stores, and the
//! per-database state shared by every connection in the process.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use bop_storage::io::IoBackend;
use bop_storage::open_once::OpenOnce;
use bop_storage::{is_store, StorageError, Store, StoreOptions};

use crate::checkpointer::{self, CkptState};
use crate::locks::DbLocks;
use crate::shm::Shm;
use crate::uri::Params;

/// Everything connections to one database in this process share.
#[derive(Debug)]
pub struct DbShared {
    pub store: Arc<Store>,
    pub locks: DbLocks,
    pub shm: Shm,
    /// The checkpoint policy's state (`checkpointer.rs`).
    pub ckpt: Arc<CkptState>,
    /// Frames of the wal-index bop built for `shm` at open (0: SQLite
    /// builds it from the WAL image).
    pub wal_index_prebuilt_frames: u64,
}

impl DbShared {
    /// The VFS's own counters in `PRAGMA bop_stats`, after the engine's:
    /// the WAL image's size and age, the checkpoint policy's counters, and
    /// the wal-index bop built at open.
    pub fn vfs_stats(&self) -> Vec<(&'static str, u64)> {
        let age = self.ckpt.wal_age().map_or(0, |a| a.as_millis() as u64);
        let mut out = vec![
            ("wal_image_bytes", self.store.wal_image_size()),
            ("wal_age_ms", age),
        ];
        out.extend(self.ckpt.counters.pairs());
        out.push(("wal_index_prebuilt_frames", self.wal_index_prebuilt_frames));
        out
    }
}

/// Whether bop hands SQLite a prebuilt wal-index at open (tests turn it
/// off to compare with SQLite's own recovery).
static PREBUILD_WAL_INDEX: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

pub fn set_prebuild_wal_index(on: bool) {
    PREBUILD_WAL_INDEX.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The wal-index a new [`DbShared`] starts with: built from the frames the
/// store knows, when it knows them all (`wal_index.rs`).
fn initial_shm(store: &Store) -> (Shm, u64) {
    if PREBUILD_WAL_INDEX.load(std::sync::atomic::Ordering::Relaxed) {
        if let Some(seed) = store.wal_index_seed() {
            if let Some(regions) = crate::wal_index::build(&seed) {
                return (Shm::with_regions(regions), seed.frames.len() as u64);
            }
        }
    }
    (Shm::default(), 0)
}

fn registry() -> &'static OpenOnce<DbShared> {
    static REG: OnceLock<OpenOnce<DbShared>> = OnceLock::new();
    REG.get_or_init(Default::default)
}

/// Which database a path names: a store directory names the store's main
/// database; `<store>/<name>` inside an existing store names the store's
/// database `name`, when `name` is a valid database name. Any other path
/// inside a store (`<store>/.hidden`, `<store>/...`, `<store>/a/b`,
/// `<store>/manifest`) is refused, so no store is ever created inside
/// another. Returns the store path and the name.
pub fn resolve(path: &Path) -> Result<(PathBuf, Option<String>), StorageError> {
    if is_store(path) {
        return Ok((path.to_path_buf(), None));
    }
    let Some(store) = path.ancestors().skip(1).find(|a| is_store(a)) else {
        return Ok((path.to_path_buf(), None));
    };
    let name = path.file_name().and_then(|n| n.to_str());
    let why = match name {
        Some(name) if path.parent() == Some(store) => {
            match bop_storage::store_dir::validate_db_name(name) {
                Ok(()) => return Ok((store.to_path_buf(), Some(name.to_owned()))),
                Err(e) => e.to_string(),
            }
        }
        _ => "a database inside a store is named <store>/<name>".to_owned(),
    };
    Err(StorageError::io(
        "open",
        path,
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "this path is inside the bop store {} but names none of its databases: {why}",
                store.display()
            ),
        ),
    ))
}

/// Opens (or joins) the database `path` names (see [`resolve`]). Opening
/// one database never waits for another's open.
pub fn open_main(
    path: &Path,
    params: &Params,
    create: bool,
) -> Result<Arc<DbShared>, StorageError> {
    let db = registry().get_or_open(path, || {
        // A bad BOP_IO is an open error with its message, not a panic in
        // the default options.
        bop_storage::io::select::env_mode()?;
        let mut opts = StoreOptions {
            create,
            ..Default::default()
        };
        params.apply(&mut opts)?;
        let (store_path, name) = resolve(path)?;
        // A test's override wins over the io= parameter.
        if let Some(io) = io_override(&store_path) {
            opts.io = io;
        }
        let store = Store::open_db_shared(&store_path, name.as_deref(), &opts)?;
        let (shm, wal_index_prebuilt_frames) = initial_shm(&store);
        let db = Arc::new(DbShared {
            store,
            locks: DbLocks::default(),
            shm,
            ckpt: CkptState::new(params.checkpoint_config(), path),
            wal_index_prebuilt_frames,
        });
        checkpointer::register(&db.ckpt, &db.store);
        Ok::<_, StorageError>(db)
    })?;
    params.apply_process_wide();
    if let Some(ps) = params.page_size {
        if ps != db.store.page_size() {
            return Err(StorageError::Config(format!(
                "page_size={ps} does not match the store's page size {}",
                db.store.page_size()
            )));
        }
    }
    Ok(db)
}

fn io_overrides() -> &'static Mutex<HashMap<PathBuf, Arc<dyn IoBackend>>> {
    static IO: OnceLock<Mutex<HashMap<PathBuf, Arc<dyn IoBackend>>>> = OnceLock::new();
    IO.get_or_init(Default::default)
}

fn io_override(path: &Path) -> Option<Arc<dyn IoBackend>> {
    io_overrides()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(path)
        .cloned()
}

/// Routes the I/O of the store at `path` (when it is next opened) through
/// `io`, or back to the default backend with `None`.
pub fn set_store_io(path: &Path, io: Option<Arc<dyn IoBackend>>) {
    // A store lingering in its close grace would be revived with the old
    // backend: close it, so the next open uses this one.
    bop_storage::linger::close(path);
    let mut m = io_overrides().lock().unwrap_or_else(|p| p.into_inner());
    match io {
        Some(io) => m.insert(path.to_path_buf(), io),
        None => m.remove(path),
    };
}

/// The open database a name refers to, if it is `<db>` or `<db>-suffix`.
pub fn find_open(path: &Path) -> Option<Arc<DbShared>> {
    registry().get(path)
}

/// What a file name is to bop.
#[derive(Debug, PartialEq, Eq)]
pub enum NameKind {
    /// A bop store directory (existing or open).
    Store,
    /// `<store>-wal`
    Wal(PathBuf),
    /// `<store>-journal`: a new database's first transaction runs in
    /// rollback mode; its journal is kept in memory (`file.rs`).
    Journal(PathBuf),
    /// Anything else: handled by the default VFS.
    Other,
}

pub fn classify(name: &str) -> NameKind {
    let is_bop =
        |p: &Path| find_open(p).is_some() || is_store(p) || matches!(resolve(p), Ok((_, Some(_))));
    if let Some(base) = name.strip_suffix("-wal") {
        let base = PathBuf::from(base);
        if is_bop(&base) {
            return NameKind::Wal(base);
        }
    }
    if let Some(base) = name.strip_suffix("-journal") {
        let base = PathBuf::from(base);
        if is_bop(&base) {
            return NameKind::Journal(base);
        }
    }
    if is_bop(Path::new(name)) {
        return NameKind::Store;
    }
    NameKind::Other
}

/// Absolute, lexically normalized path (symlinks are not resolved, so the
/// result does not depend on what exists yet).
pub fn full_pathname(name: &str) -> std::io::Result<PathBuf> {
    let p = Path::new(name);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_pathname_normalizes() {
        assert_eq!(full_pathname("/a/./b/../c").unwrap(), PathBuf::from("/a/c"));
        assert!(full_pathname("x.db").unwrap().is_absolute());
    }
}
