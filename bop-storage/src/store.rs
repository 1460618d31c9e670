//! A store: one SQLite database kept in bop's WAL, page store and manifest,
//! in a directory:
//!
//! ```text
//! <path>/LOCK        process lock (flock), holds the owner's pid
//! <path>/manifest/   LMDB environment (data.mdb, lock.mdb)
//! <path>/wal/        WAL segments  <id:016x>.seg
//! <path>/chunks/     page chunks   <id:016x>.chunk
//! ```
//!
//! Lock order: `log` before the page store's lock. The manifest is only
//! written while holding `log` or from `db_sync` (page store lock inside).
//!
//! One process owns a store at a time (an exclusive `flock` on `LOCK`);
//! within the process, [`Store::open_shared`] hands every opener the same
//! `Arc<Store>`.

use crate::open_once::OpenOnce;
use std::fs::File;
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use crate::error::{Result, StorageError};
use crate::io::IoBackend;
use crate::log::{empty_database_page1, LogStats, SqliteLog};
use crate::manifest::Manifest;
use crate::page_store::{PageStore, PageStoreConfig, PageStoreStats};
use crate::types::{Epoch, PageNo};
use crate::wal::{Wal, WalConfig};

pub const DEFAULT_PAGE_SIZE: u32 = 4096;
pub const DEFAULT_MAX_TXN_BYTES: u64 = 1 << 30;
/// How long an opener waits for the process lock (another store handle in
/// this process may be closing) before reporting the store as locked.
const LOCK_WAIT_MAX_MS: u64 = 250;

/// How to open a store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Page size for a new store; for an existing one it must match if set.
    pub page_size: Option<u32>,
    /// Create the store if it does not exist.
    pub create: bool,
    pub wal: WalConfig,
    pub page_store: PageStoreConfig,
    /// Largest transaction (bytes of SQLite WAL frames) held before commit.
    pub max_txn_bytes: u64,
    pub io: Arc<dyn IoBackend>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            page_size: None,
            create: true,
            wal: WalConfig::default(),
            page_store: PageStoreConfig::default(),
            max_txn_bytes: DEFAULT_MAX_TXN_BYTES,
            io: crate::io::default_backend(),
        }
    }
}

/// What [`Store::verify`] checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub pages_checked: u64,
    pub records_checked: u64,
}

/// A snapshot of the store's counters.
#[derive(Clone, Debug, Default)]
pub struct StoreStats {
    pub log: LogStats,
    pub pages: PageStoreStats,
    pub wal_segments: usize,
    pub wal: crate::wal::WalStats,
    pub wal_records_live: usize,
    pub wal_frames: u64,
    pub next_lsn: u64,
    pub durable_lsn: u64,
}

pub struct Store {
    path: PathBuf,
    manifest: Manifest,
    pages: PageStore,
    log: Mutex<SqliteLog>,
    page_size: u32,
    /// Set after a write path failed (the reason and the OS error number
    /// behind it, if any); the store then refuses writes.
    failed: Mutex<Option<(String, Option<i32>)>>,
    /// `failed` is set (checked first, so the write path takes no lock).
    failed_flag: std::sync::atomic::AtomicBool,
    _lock: File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn registry() -> &'static OpenOnce<Store> {
    static REG: OnceLock<OpenOnce<Store>> = OnceLock::new();
    REG.get_or_init(Default::default)
}

/// Checks that a page size is one SQLite accepts.
pub fn validate_page_size(page_size: u32) -> Result<()> {
    if (512..=65536).contains(&page_size) && page_size.is_power_of_two() {
        Ok(())
    } else {
        Err(StorageError::Config(format!(
            "page_size={page_size}: must be a power of two from 512 to 65536"
        )))
    }
}

/// Whether `path` holds a bop store.
pub fn is_store(path: &Path) -> bool {
    path.join("manifest").join("data.mdb").exists()
}

impl Store {
    /// Opens (or creates) the store at `path`, sharing one instance per path
    /// within the process.
    pub fn open_shared(path: &Path, opts: &StoreOptions) -> Result<Arc<Store>> {
        let store = registry().get_or_open(path, || Store::open(path, opts).map(Arc::new))?;
        if let Some(ps) = opts.page_size {
            if ps != store.page_size {
                return Err(StorageError::Config(format!(
                    "page_size={ps} does not match the store's page size {}",
                    store.page_size
                )));
            }
        }
        Ok(store)
    }

    fn open(path: &Path, opts: &StoreOptions) -> Result<Store> {
        if let Some(ps) = opts.page_size {
            validate_page_size(ps)?;
        }
        let exists = is_store(path);
        if !exists {
            if !opts.create {
                return Err(StorageError::io(
                    "open",
                    path,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no bop store here"),
                ));
            }
            if path.exists() && !path.is_dir() {
                return Err(StorageError::Format {
                    path: path.to_path_buf(),
                    what: "exists and is not a bop store directory (is it a plain SQLite file?)"
                        .into(),
                });
            }
            if path.is_dir() && !holds_only_bop_entries(path) {
                return Err(StorageError::Format {
                    path: path.to_path_buf(),
                    what: "directory is not empty and holds no bop store".into(),
                });
            }
            // The store directory holds LOCK and the LMDB manifest, which
            // live outside the I/O trait; WAL and chunks go through it.
            std::fs::create_dir_all(path).map_err(|e| StorageError::io("mkdir", path, e))?;
        }
        let lock = lock_process(path)?;
        let page_size = opts.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        let manifest = Manifest::open(&path.join("manifest"), !exists, page_size)?;
        let state = manifest.load()?;
        if let Some(ps) = opts.page_size {
            if ps != state.page_size {
                return Err(StorageError::Config(format!(
                    "page_size={ps} does not match the store's page size {}",
                    state.page_size
                )));
            }
        }
        if !state.clean_shutdown {
            tracing::info!(path = %path.display(), "store was not shut down cleanly; recovering");
        }
        let epoch = Epoch(state.epoch.0 + 1);
        manifest.begin_epoch(epoch)?;
        let pages = PageStore::open(
            path.join("chunks"),
            opts.io.clone(),
            opts.page_store,
            &state,
        )?;
        if state.db_pages == 0 {
            // A new store (or one whose creation was cut short before its
            // first page was published).
            pages.write_page(PageNo(1), &empty_database_page1(state.page_size))?;
            pages.publish(&manifest)?;
        }
        let (wal, recovered, report) = Wal::open(
            path.join("wal"),
            opts.io.clone(),
            opts.wal,
            &manifest,
            &state,
            epoch,
        )?;
        if let Some((file, offset)) = &report.torn_tail_at {
            tracing::warn!(file = %file.display(), offset, "recovered to the last whole commit; a torn tail was cut");
        }
        let log = SqliteLog::new(wal, recovered, state.page_size, opts.max_txn_bytes)?;
        Ok(Store {
            path: path.to_path_buf(),
            manifest,
            pages,
            log: Mutex::new(log),
            page_size: state.page_size,
            failed: Mutex::new(None),
            failed_flag: Default::default(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    fn log(&self) -> MutexGuard<'_, SqliteLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_writable(&self) -> Result<()> {
        if !self.failed_flag.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        match &*self.failed.lock().unwrap_or_else(|p| p.into_inner()) {
            None => Ok(()),
            Some((reason, errno)) => Err(StorageError::Failed {
                path: self.path.clone(),
                reason: reason.clone(),
                errno: *errno,
            }),
        }
    }

    fn set_failed(&self, reason: String, errno: Option<i32>) {
        *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some((reason, errno));
        self.failed_flag
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Runs a write-path step; a failure puts the store in the failed state.
    fn guarded<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.check_writable()?;
        let r = f();
        if let Err(e) = &r {
            if !matches!(e, StorageError::Limit(_) | StorageError::Config(_)) {
                tracing::error!(error = %e, "store write path failed; refusing further writes");
                self.set_failed(e.to_string(), e.raw_os_error());
            }
        }
        r
    }

    // ----- the main database image -----

    /// Size of the database image in bytes.
    pub fn db_size(&self) -> u64 {
        u64::from(self.pages.db_pages()) * u64::from(self.page_size)
    }

    /// Reads the database image; returns the bytes that were inside it (the
    /// rest of `buf` is zeroed).
    pub fn db_read(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let ps = u64::from(self.page_size);
        let size = self.db_size();
        if offset.is_multiple_of(ps) && buf.len() as u64 == ps {
            let pgno = PageNo((offset / ps + 1) as u32);
            return Ok(if self.pages.read_page(pgno, buf)? {
                buf.len()
            } else {
                0
            });
        }
        let mut page = vec![0u8; self.page_size as usize];
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            if pos >= size {
                buf[done..].fill(0);
                return Ok(done);
            }
            let pgno = PageNo((pos / ps + 1) as u32);
            self.pages.read_page(pgno, &mut page)?;
            let within = (pos % ps) as usize;
            let n = (page.len() - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&page[within..within + n]);
            done += n;
        }
        Ok(done)
    }

    /// Writes the database image (SQLite does so only when checkpointing).
    pub fn db_write(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.guarded(|| {
            let ps = u64::from(self.page_size);
            if offset.is_multiple_of(ps) && data.len() as u64 == ps {
                return self
                    .pages
                    .write_page(PageNo((offset / ps + 1) as u32), data);
            }
            let mut page = vec![0u8; self.page_size as usize];
            let mut done = 0usize;
            while done < data.len() {
                let pos = offset + done as u64;
                let pgno = PageNo((pos / ps + 1) as u32);
                self.pages.read_page(pgno, &mut page)?;
                let within = (pos % ps) as usize;
                let n = (page.len() - within).min(data.len() - done);
                page[within..within + n].copy_from_slice(&data[done..done + n]);
                self.pages.write_page(pgno, &page)?;
                done += n;
            }
            Ok(())
        })
    }

    pub fn db_truncate(&self, size: u64) -> Result<()> {
        self.guarded(|| {
            self.pages
                .truncate(size.div_ceil(u64::from(self.page_size)) as u32);
            Ok(())
        })
    }

    /// Makes the database image durable: publishes checkpointed pages.
    pub fn db_sync(&self) -> Result<()> {
        self.guarded(|| self.pages.publish(&self.manifest))
    }

    // ----- the SQLite WAL image -----

    pub fn wal_exists(&self) -> bool {
        self.log().exists
    }

    pub fn wal_mark_open(&self) {
        self.log().exists = true;
    }

    pub fn wal_size(&self) -> u64 {
        self.log().size()
    }

    pub fn wal_read(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let mut reads = Vec::new();
        let n = self.log().plan_read(offset, buf, &mut reads);
        for r in reads {
            r.loc.read(&mut buf[r.buf_at..r.buf_at + r.len], r.within)?;
        }
        Ok(n)
    }

    pub fn wal_write(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.guarded(|| self.log().write(offset, data))
    }

    /// SQLite took its WAL write lock on this thread.
    pub fn begin_write_transaction(&self) {
        self.log().writer = Some(std::thread::current().id());
    }

    /// Seals a complete pending transaction into a WAL record (no sync):
    /// called when SQLite releases its WAL write lock.
    pub fn end_write_transaction(&self) -> Result<()> {
        self.guarded(|| {
            let mut log = self.log();
            log.writer = None;
            log.seal(&self.manifest, &self.pages)
        })
    }

    /// SQLite finished a commit (SQLITE_FCNTL_COMMIT_PHASETWO): seal it,
    /// unless another thread's transaction is in progress (then this commit
    /// was sealed when its write lock was released).
    pub fn commit_phase_two(&self) -> Result<()> {
        self.guarded(|| {
            let mut log = self.log();
            if log.may_seal() {
                log.seal(&self.manifest, &self.pages)?;
            }
            Ok(())
        })
    }

    /// Seals and makes the WAL durable (SQLite's xSync on the `-wal` file).
    pub fn wal_sync(&self) -> Result<()> {
        self.guarded(|| self.log().sync(&self.manifest, &self.pages))
    }

    pub fn wal_truncate(&self, size: u64) -> Result<()> {
        self.guarded(|| self.log().truncate(&self.manifest, &self.pages, size))
    }

    /// SQLite deleted the `-wal` file (after a complete checkpoint).
    pub fn wal_delete(&self) -> Result<()> {
        self.guarded(|| {
            let mut log = self.log();
            log.reset(&self.manifest, &self.pages)?;
            log.exists = false;
            Ok(())
        })
    }

    pub fn stats(&self) -> StoreStats {
        let log = self.log();
        StoreStats {
            log: log.stats,
            pages: self.pages.stats(),
            wal_segments: log.wal.segment_count(),
            wal: log.wal.stats(),
            wal_records_live: log.record_count(),
            wal_frames: log.frame_count(),
            next_lsn: log.wal.next_lsn().0,
            durable_lsn: log.wal.durable_lsn().0,
        }
    }

    /// Puts the store in the failed state: it refuses writes until it is
    /// reopened (used when a panic interrupted a write path).
    pub fn fail(&self, reason: String) {
        tracing::error!(%reason, "store failed; refusing further writes");
        self.set_failed(reason, None);
    }

    /// Stops the store dead, as a crash would: every later write is refused
    /// and closing does nothing. For tests that simulate power cuts.
    pub fn halt(&self) {
        self.set_failed("halted".into(), None);
    }

    /// Verifies every checksum of the store: each page the page index
    /// points at, and each WAL record of the current image. (Segment and
    /// record headers were verified when the store opened.)
    pub fn verify(&self) -> Result<VerifyReport> {
        let pages_checked = self.pages.verify_all()?;
        let records = self.log().record_locs();
        for r in &records {
            r.verify()?;
        }
        Ok(VerifyReport {
            pages_checked,
            records_checked: records.len() as u64,
        })
    }

    fn shutdown(&self) -> Result<()> {
        if self
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            // After a failure (or halt) leave the disk as it is: the next
            // open recovers from the durable state.
            return Ok(());
        }
        let mut log = self.log();
        self.pages.publish(&self.manifest)?;
        log.wal.mark_end()?;
        log.wal.sync()?;
        self.manifest.mark_clean_shutdown()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(path = %self.path.display(), error = %e, "closing the store failed; the next open recovers");
        }
    }
}

/// Whether a directory holds nothing but what bop itself creates (a store
/// whose creation was cut short may have left some of it).
fn holds_only_bop_entries(path: &Path) -> bool {
    std::fs::read_dir(path)
        .map(|d| {
            d.filter_map(|e| e.ok()).all(|e| {
                matches!(
                    e.file_name().to_str(),
                    Some("LOCK" | "manifest" | "wal" | "chunks")
                )
            })
        })
        .unwrap_or(false)
}

/// Takes the exclusive process lock on `<path>/LOCK`.
fn lock_process(path: &Path) -> Result<File> {
    let lock_path = path.join("LOCK");
    let mut file = std::fs::OpenOptions::new()
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
        if waited_ms >= LOCK_WAIT_MAX_MS {
            return Err(StorageError::Locked {
                path: path.to_path_buf(),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
        waited_ms += 10;
    }
    let _ = file.set_len(0);
    let _ = write!(file, "{}", std::process::id());
    Ok(file)
}
