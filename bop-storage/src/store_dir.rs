//! A store directory: the parts its databases share, and how to open a
//! store ([`StoreOptions`]).
//!
//! ```text
//! <path>/LOCK          process lock (flock), holds the owner's pid
//! <path>/manifest/     LMDB environment: the store's and every database's tables
//! <path>/wal/          the record log, shared by the databases   <id:016x>.seg
//! <path>/chunks/       page chunks of the main database   <id:016x>.chunk
//! <path>/chunks-<N>/   page chunks of named database N
//! ```
//!
//! (`wal/` is named from before the term "record log"; the name stays so
//! existing stores open: [`LOG_DIR`].)
//!
//! A store holds its *main* database (opened by the store's path) and up
//! to `DATABASES_MAX` named ones (`<path>/<name>` to the VFS). They share
//! the process lock, the manifest, the record log with its flush
//! controller (so their commits share syncs), and the failed state: a
//! failure of the record log fails every database of the store.
//!
//! A new store is built beside its path and renamed into place
//! (`store_create.rs`), so a store directory always has its manifest; a
//! directory holding a store's parts without one is refused, never taken
//! for a new store.
//!
//! One `StoreDir` is open per path in a process; each open database
//! (`store.rs`, the layer above) holds it, and the last one to close shuts
//! it down (the record log's end marker, sync, clean-shutdown flag).
//!
//! Each open is an epoch (its number is in every record it appends). An
//! open after a clean shutdown with nothing to recover defers its epoch to
//! its first change (`Manifest::defer_epoch`): an open that only reads
//! writes nothing, and its close has nothing to mark, since the manifest
//! still says "shut down cleanly" and the record log is as that shutdown
//! left it. Any other open (a new store, a crash, journal intents to
//! replay) begins its epoch at once.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::error::{Result, StorageError};
use crate::fail::FailState;
use crate::io::IoBackend;
use crate::log::segment::segment_file_name;
use crate::log::{LogConfig, RecordLog, SharedLog};
use crate::manifest::{Manifest, ManifestConfig, ReplayReport};
use crate::open_once::OpenOnce;
use crate::page_store::chunk::chunk_file_name;
use crate::page_store::{ChunkIntents, PageStoreConfig};
use crate::store_create::{create_store, NewStore};
use crate::types::{DbId, Epoch};

pub const DEFAULT_PAGE_SIZE: u32 = 4096;
pub const DEFAULT_MAX_TXN_BYTES: u64 = 1 << 30;

/// How to open a store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Page size for a new store; for an existing one it must match if set.
    pub page_size: Option<u32>,
    /// Create the store if it does not exist.
    pub create: bool,
    /// When creating, also create missing parent directories of the
    /// store's path. Off by default: as in SQLite, a path whose parent
    /// directory is missing cannot be opened (a typo never creates a tree).
    pub create_parents: bool,
    pub log: LogConfig,
    pub page_store: PageStoreConfig,
    /// Largest transaction (bytes of SQLite WAL frames) held before commit.
    pub max_txn_bytes: u64,
    pub io: Arc<dyn IoBackend>,
    /// Map size and change-log bounds of the manifest.
    pub manifest: ManifestConfig,
    /// How long the store stays open in the process after its last
    /// database closes, so that an open soon after is cheap (`linger.rs`);
    /// 0 closes it at once. At most [`CLOSE_GRACE_MAX_MS`]; the engine's
    /// default is 0, the SQLite front ends' [`CLOSE_GRACE_DEFAULT_MS`].
    pub close_grace_ms: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            page_size: None,
            create: true,
            create_parents: false,
            log: LogConfig::default(),
            page_store: PageStoreConfig::default(),
            max_txn_bytes: DEFAULT_MAX_TXN_BYTES,
            io: crate::io::default_backend(),
            manifest: ManifestConfig::default(),
            close_grace_ms: 0,
        }
    }
}

/// The record log's directory inside a store (`<store>/wal/`). The name
/// predates the term "record log" and stays, so existing stores open.
pub const LOG_DIR: &str = "wal";

/// How long an opener waits for the process lock (another store handle in
/// this process may be closing) before reporting the store as locked; a
/// store lingering in another process (its `LOCK` says so) is waited for
/// [`CLOSE_GRACE_MAX_MS`] longer.
const LOCK_WAIT_MAX_MS: u64 = 250;

/// Largest `close_grace_ms`. Another process opening a lingering store
/// waits up to this long (plus the usual lock wait) for it, so it bounds
/// that hand-over; one second covers a script's back-to-back commands.
pub const CLOSE_GRACE_MAX_MS: u64 = 1000;

/// The `close_grace_ms` the SQLite front ends use when none is given:
/// long enough for back-to-back opens (a shell script calling `sqlite3`,
/// a request per connection), short enough that another process waits
/// little for the store.
pub const CLOSE_GRACE_DEFAULT_MS: u64 = 100;

/// What follows the pid in `LOCK` while the store lingers (`linger.rs`).
const LINGERING_TAG: &str = " lingering";

#[derive(Debug)]
pub struct StoreDir {
    pub(crate) path: PathBuf,
    pub(crate) manifest: Arc<Manifest>,
    pub(crate) log: Arc<SharedLog>,
    pub(crate) fail: Arc<FailState>,
    /// Log segment files the sweep at open removed (see `ScanReport`).
    pub(crate) stray_segments_removed: u64,
    /// How long the store lingers after its last database closes.
    pub(crate) close_grace: Duration,
    /// Journal intents of closed databases' page stores, continued by
    /// their next open and settled when the store closes
    /// (`PageStore::hand_over`).
    chunk_intents: Mutex<HashMap<DbId, ChunkIntents>>,
    lock: File,
}

fn registry() -> &'static OpenOnce<StoreDir> {
    static REG: OnceLock<OpenOnce<StoreDir>> = OnceLock::new();
    REG.get_or_init(Default::default)
}

/// Whether `path` holds a bop store.
pub fn is_store(path: &Path) -> bool {
    path.join("manifest").join("data.mdb").exists()
}

/// Whether `path` holds a bop store's manifest; an error (not `false`)
/// when that cannot be told, such as a store directory the process may not
/// read: opening then fails with the path and the cause, rather than taking
/// the directory for something else.
fn manifest_present(path: &Path) -> Result<bool> {
    let data = path.join("manifest").join("data.mdb");
    match std::fs::metadata(&data) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        // A path whose parent is a plain file: not a store.
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(false),
        Err(e) => Err(StorageError::io("open", data, e)),
    }
}

/// Whether a database name can name a database inside a store: it must not
/// collide with what bop keeps in the store directory.
pub fn validate_db_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        && !name.starts_with('.')
        && !matches!(name, "LOCK" | "manifest" | LOG_DIR)
        && !name.starts_with("chunks");
    if ok {
        Ok(())
    } else {
        Err(StorageError::Config(format!(
            "database name {name:?}: use 1 to 64 letters, digits, '_', '-' or '.', not starting with '.', \
             and not LOCK, manifest, wal or chunks*"
        )))
    }
}

impl StoreDir {
    /// Opens (or creates) the store directory at `path`, once per process.
    /// (`Store` first revives a store lingering after its last close:
    /// `linger.rs`.)
    pub fn open_shared(path: &Path, opts: &StoreOptions) -> Result<Arc<StoreDir>> {
        if opts.close_grace_ms > CLOSE_GRACE_MAX_MS {
            return Err(StorageError::Config(format!(
                "close_grace_ms={}: at most {CLOSE_GRACE_MAX_MS}",
                opts.close_grace_ms
            )));
        }
        registry().get_or_open(path, || StoreDir::open(path, opts).map(Arc::new))
    }

    /// Whether `<path>/LOCK` is still the file this store holds locked.
    /// False once the store's directory was removed or replaced behind
    /// its back (a copy restored over it while it was open or lingering):
    /// the path then belongs to another store, perhaps open in another
    /// process, and this one must neither be revived for it nor write
    /// there when it closes.
    pub(crate) fn owns_path(&self) -> bool {
        let Ok(held) = self.lock.metadata() else {
            return false;
        };
        std::fs::metadata(self.path.join("LOCK"))
            .is_ok_and(|m| m.dev() == held.dev() && m.ino() == held.ino())
    }

    /// Says in `LOCK` whether the store lingers (another process then
    /// waits longer for it).
    pub(crate) fn mark_lingering(&self, lingering: bool) {
        let pid = std::process::id().to_string();
        let text = if lingering { pid + LINGERING_TAG } else { pid };
        let _ = self.lock.write_all_at(text.as_bytes(), 0);
        let _ = self.lock.set_len(text.len() as u64);
    }

    fn open(path: &Path, opts: &StoreOptions) -> Result<StoreDir> {
        let mut lock = None;
        if !manifest_present(path)? {
            if !opts.create {
                return Err(StorageError::io(
                    "open",
                    path,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no bop store here"),
                ));
            }
            check_parent(path, opts.create_parents)?;
            refuse_non_store(path)?;
            lock = create_store(
                path,
                &NewStore {
                    io: opts.io.as_ref(),
                    page_size: opts.page_size.unwrap_or(DEFAULT_PAGE_SIZE),
                    manifest: opts.manifest,
                    subdirs: ["manifest", LOG_DIR, "chunks"],
                },
            )?;
        }
        let exists = lock.is_none();
        let lock = match lock {
            Some(l) => take_lock(l),
            None => lock_process(path)?,
        };
        let page_size = opts.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        let manifest = Arc::new(Manifest::open_with(
            &path.join("manifest"),
            false,
            page_size,
            opts.manifest,
        )?);
        let state = manifest.load()?;
        if !state.clean_shutdown {
            tracing::warn!(path = %path.display(), "store was not shut down cleanly (a crash); recovering");
        }
        // Unfinished multi-step work first: before the record log and the
        // page stores look at their directories.
        let log_dir = path.join(LOG_DIR);
        let replay = manifest.replay_journal(
            opts.io.as_ref(),
            &|db, chunk| chunk_dir_of(path, db).join(chunk_file_name(chunk)),
            &|segment| log_dir.join(segment_file_name(segment)),
        )?;
        if replay != ReplayReport::default() {
            tracing::warn!(path = %path.display(), intents = replay.intents, files_removed = replay.files_removed, "replayed the manifest journal");
        }
        let epoch = Epoch(state.epoch.0 + 1);
        if exists && state.clean_shutdown && replay == ReplayReport::default() {
            // Nothing to recover: the epoch begins with the first change
            // (`Manifest::defer_epoch`), so an open that only reads
            // writes nothing.
            manifest.defer_epoch(epoch);
        } else {
            manifest.begin_epoch(epoch)?;
        }
        let fail = Arc::new(FailState::new(path.to_path_buf()));
        let (log, recovered, report) = RecordLog::open(
            log_dir,
            opts.io.clone(),
            opts.log,
            &manifest,
            &state,
            epoch,
            fail.clone(),
        )?;
        if let Some((file, offset)) = &report.torn_tail_at {
            tracing::warn!(file = %file.display(), offset, "recovered to the last whole commit; a torn tail was cut");
        }
        let log = Arc::new(SharedLog::new(log, recovered, manifest.db_bases()?));
        Ok(StoreDir {
            path: path.to_path_buf(),
            manifest,
            log,
            fail,
            stray_segments_removed: report.stray_segments_removed,
            close_grace: Duration::from_millis(opts.close_grace_ms),
            chunk_intents: Mutex::new(HashMap::new()),
            lock,
        })
    }

    /// The id of the named database `name`, registering it (with
    /// `page_size`) if `create` and it does not exist.
    pub fn database(&self, name: &str, create: bool, page_size: u32) -> Result<DbId> {
        validate_db_name(name)?;
        if let Some((_, id)) = self
            .manifest
            .databases()?
            .into_iter()
            .find(|(n, _)| n == name)
        {
            return Ok(id);
        }
        if !create {
            return Err(StorageError::io(
                "open",
                self.path.join(name),
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no database of that name in the store",
                ),
            ));
        }
        // Registered at the record log's next LSN: no record of the new
        // database can be older.
        let base = self.log.next_lsn();
        let id = self.manifest.register_db(name, page_size, base)?;
        self.log.add_database(id);
        Ok(id)
    }

    /// Where database `db` keeps its page chunks.
    pub fn chunk_dir(&self, db: DbId) -> PathBuf {
        chunk_dir_of(&self.path, db)
    }

    /// The store's manifest (change log, cursors, journal, stats).
    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.manifest
    }

    /// Keeps a closed database's page-store intents (see `chunk_intents`).
    pub(crate) fn keep_chunk_intents(&self, db: DbId, intents: ChunkIntents) {
        let old = self
            .chunk_intents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(db, intents);
        // One `Store` per database at a time (the registry): a second
        // hand-over comes only after a take. Settle rather than lose one.
        if let Some(old) = old {
            old.settle(&self.manifest);
        }
    }

    /// The intents database `db`'s last page store handed over, if any.
    pub(crate) fn take_chunk_intents(&self, db: DbId) -> Option<ChunkIntents> {
        self.chunk_intents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&db)
    }

    fn shutdown(&self) -> Result<()> {
        if self.fail.is_failed() {
            // After a failure (or halt) leave the disk as it is: the next
            // open recovers from the durable state.
            return Ok(());
        }
        if !self.owns_path() {
            // The directory was replaced: its files are not this store's
            // (those are unlinked), and a clean close would delete spare
            // segments and sync by path in another store.
            tracing::warn!(path = %self.path.display(), "the store's directory was replaced while it was open; closing without writing to it");
            return Ok(());
        }
        if self.manifest.epoch_is_pending() {
            // Nothing written since the last clean shutdown: the record
            // log is as it left it, and the manifest still says clean.
            return Ok(());
        }
        let intents =
            std::mem::take(&mut *self.chunk_intents.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, i) in intents {
            i.settle(&self.manifest);
        }
        self.log.close()?;
        // Its transaction also removes the intents settled above.
        self.manifest.mark_clean_shutdown()
    }
}

impl Drop for StoreDir {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(path = %self.path.display(), error = %e, "closing the store failed; the next open recovers");
        }
    }
}

/// Where database `db` of the store at `path` keeps its page chunks.
fn chunk_dir_of(path: &Path, db: DbId) -> PathBuf {
    if db == DbId::MAIN {
        path.join("chunks")
    } else {
        path.join(format!("chunks-{}", db.0))
    }
}

/// Refuses to create a store whose parent directory is missing, unless
/// `create_parents` asks for it (then creates it).
fn check_parent(path: &Path, create_parents: bool) -> Result<()> {
    let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    if parent.is_dir() {
        return Ok(());
    }
    if create_parents {
        return std::fs::create_dir_all(parent).map_err(|e| StorageError::io("mkdir", parent, e));
    }
    let why = if parent.exists() {
        format!("{} is not a directory", parent.display())
    } else {
        format!(
            "its parent directory {} does not exist (bop creates it only with the URI parameter \
             create_parents=1)",
            parent.display()
        )
    };
    Err(StorageError::io(
        "create",
        path,
        std::io::Error::new(std::io::ErrorKind::NotFound, why),
    ))
}

/// Refuses to create a store at `path` when something is there: a file, or
/// a directory that is not empty. A directory holding a store's parts
/// without its manifest is a damaged store, never taken for a new one:
/// creating one over it would silently lose every commit it held.
fn refuse_non_store(path: &Path) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let refuse = |what: String| {
        Err(StorageError::Format {
            path: path.to_path_buf(),
            what,
        })
    };
    if !meta.is_dir() && !std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return refuse(
            "exists and is not a bop store directory (is it a plain SQLite file?)".into(),
        );
    }
    let mut names: Vec<String> = std::fs::read_dir(path)
        .map_err(|e| StorageError::io("open", path, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    let bop_parts = names.iter().any(|n| {
        matches!(n.as_str(), "LOCK" | "manifest" | LOG_DIR | "chunks") || n.starts_with("chunks-")
    });
    if bop_parts {
        return refuse(format!(
            "holds parts of a bop store ({}) but not its manifest (manifest/data.mdb is missing): \
             the store is damaged; bop does not create a new store over it",
            names.join(", ")
        ));
    }
    refuse("directory is not empty and holds no bop store".into())
}

/// Writes this process's id into a store's process lock it holds.
fn take_lock(file: File) -> File {
    write_pid(&file);
    file
}

/// Takes the exclusive process lock on `<path>/LOCK`.
fn lock_process(path: &Path) -> Result<File> {
    let lock_path = path.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| StorageError::io("open", &lock_path, e))?;
    let mut waited_ms = 0;
    loop {
        // SAFETY: flock takes a valid open descriptor and no pointers.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(StorageError::io("flock", &lock_path, err));
        }
        if waited_ms >= lock_wait_max_ms(&file) {
            return Err(StorageError::Locked {
                path: path.to_path_buf(),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
        waited_ms += 10;
    }
    Ok(take_lock(file))
}

/// How long to wait for the process lock whose holder wrote `file`: a
/// lingering store closes within its grace.
fn lock_wait_max_ms(file: &File) -> u64 {
    let mut text = [0u8; 32];
    let n = file.read_at(&mut text, 0).unwrap_or(0);
    if text[..n].ends_with(LINGERING_TAG.as_bytes()) {
        LOCK_WAIT_MAX_MS + CLOSE_GRACE_MAX_MS
    } else {
        LOCK_WAIT_MAX_MS
    }
}

/// Writes this process's id into the held `LOCK` file (for people; nothing
/// reads it), unless it is there already (a reopen by this process). It
/// is written in place and then cut to length, never truncated to zero
/// first: ext4 flushes a file that was truncated to zero when it is
/// closed, which would cost every close of the store a write-back.
fn write_pid(file: &File) {
    let pid = std::process::id().to_string();
    let mut old = [0u8; 24];
    let n = file.read_at(&mut old, 0).unwrap_or(0);
    if old[..n] == *pid.as_bytes() {
        return;
    }
    let _ = file.write_all_at(pid.as_bytes(), 0);
    let _ = file.set_len(pid.len() as u64);
}
