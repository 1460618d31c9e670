//! A database of a store ([`Store`]): the API the front ends call. Its
//! WAL image (`wal_image/`) lives in the store's record log (shared with
//! the store's other databases), its checkpointed pages in its own page
//! store, and what the store contains in the store's manifest. The parts a
//! store's databases share, and how to open one ([`StoreOptions`]), are in
//! `store_dir.rs`, with the directory layout.
//!
//! Lock order: the image lock (`image`) before the record log's lock
//! (`SharedLog::inner`), before the page store's lock. The committed
//! image's lock (`committed`, inside the WAL image) is taken under the
//! image lock or alone, and nothing is taken under it. The manifest is
//! only written while holding the image lock or from `db_sync` (page store
//! lock inside).
//!
//! One process owns a store at a time (an exclusive `flock` on `LOCK`);
//! within the process, [`Store::open_shared`] hands every opener of a
//! database the same `Arc<Store>`.

use crate::open_once::OpenOnce;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::error::{Result, StorageError};
use crate::log::{FlushStats, Flusher};
use crate::manifest::{Change, CursorInfo, Manifest, ManifestStats};
use crate::page_store::{PageStore, PageStoreStats};
use crate::store_dir::StoreDir;
pub use crate::store_dir::{StoreOptions, DEFAULT_MAX_TXN_BYTES, DEFAULT_PAGE_SIZE};
use crate::types::{DbId, PageNo};
use crate::wal_image::{CommittedView, WalImage, WalImageStats};

/// What [`Store::verify`] checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub pages_checked: u64,
    pub records_checked: u64,
}

/// A snapshot of the store's counters.
#[derive(Clone, Debug, Default)]
pub struct StoreStats {
    pub wal_image: WalImageStats,
    pub pages: PageStoreStats,
    pub log_segments: usize,
    pub log: crate::log::LogStats,
    pub wal_image_records: usize,
    pub wal_image_frames: u64,
    pub next_lsn: u64,
    pub durable_lsn: u64,
    /// The oldest record the record log keeps (the lowest base of the
    /// store's databases).
    pub log_base_min: u64,
    /// Writes, syncs, watermarks, bounds and latency histograms of the
    /// record log.
    pub flush: FlushStats,
    /// Name of the I/O backend.
    pub io_backend: String,
    /// The manifest: change log, cursors, journal, map, last shutdown.
    pub manifest: ManifestStats,
    /// Log segment files the sweep at open removed because the manifest
    /// did not list them (a roll cut short; the journal replay handles
    /// dropped segments).
    pub log_stray_segments_removed: u64,
    /// The process-wide page cache (shared by every database).
    pub cache: crate::cache::CacheStats,
}

pub struct Store {
    /// The database's path: the store's for its main database,
    /// `<store>/<name>` for a named one.
    path: PathBuf,
    dir: Arc<StoreDir>,
    db: DbId,
    pages: PageStore,
    image: Mutex<WalImage>,
    /// The WAL image's committed records, read without the image lock.
    committed: CommittedView,
    /// Changes only while the database is empty (see
    /// [`Store::db_write`]).
    page_size: AtomicU32,
    /// An empty database shows SQLite its page size in the header bytes
    /// SQLite reads at open (the page size was asked for: the `page_size`
    /// option, or a page size other than the default in the manifest), so
    /// SQLite creates the database with it.
    page_size_fixed: bool,
    io_name: String,
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

pub use crate::store_dir::is_store;

impl Store {
    /// Opens (or creates) the store at `path` and its main database,
    /// sharing one instance per database within the process.
    pub fn open_shared(path: &Path, opts: &StoreOptions) -> Result<Arc<Store>> {
        Self::open_db_shared(path, None, opts)
    }

    /// Opens (or creates) database `name` of the store at `store_path`
    /// (`None`: the main database). The store is created if needed.
    pub fn open_db_shared(
        store_path: &Path,
        name: Option<&str>,
        opts: &StoreOptions,
    ) -> Result<Arc<Store>> {
        let key = match name {
            None => store_path.to_path_buf(),
            Some(n) => store_path.join(n),
        };
        let store = registry().get_or_open(&key, || {
            Store::open(store_path, name, key.clone(), opts).map(Arc::new)
        })?;
        if let Some(ps) = opts.page_size {
            if ps != store.page_size() {
                return Err(StorageError::Config(format!(
                    "page_size={ps} does not match the store's page size {}",
                    store.page_size()
                )));
            }
        }
        Ok(store)
    }

    fn open(
        store_path: &Path,
        name: Option<&str>,
        path: PathBuf,
        opts: &StoreOptions,
    ) -> Result<Store> {
        if let Some(ps) = opts.page_size {
            validate_page_size(ps)?;
        }
        // A lingering store is held while the registry finds it; then
        // this database holds it.
        let _revived = crate::linger::revive(store_path);
        let dir = StoreDir::open_shared(store_path, opts)?;
        let page_size = opts.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        let db = match name {
            None => DbId::MAIN,
            Some(n) => dir.database(n, opts.create, page_size)?,
        };
        let state = dir.manifest.load_db(db)?;
        if let Some(ps) = opts.page_size {
            if ps != state.page_size {
                return Err(StorageError::Config(format!(
                    "page_size={ps} does not match the store's page size {}",
                    state.page_size
                )));
            }
        }
        let pages = PageStore::open(
            dir.chunk_dir(db),
            opts.io.clone(),
            opts.page_store,
            &state,
            dir.manifest.clone(),
        )?;
        if let Some(intents) = dir.take_chunk_intents(db) {
            pages.adopt(intents, &dir.manifest);
        }
        // A new database is empty (size 0) until SQLite first writes it,
        // as a new SQLite file is: SQLite's `PRAGMA page_size` and
        // `auto_vacuum` before the first table and `VACUUM INTO` work.
        let mut recovered = dir.log.take_recovered(db);
        apply_retained(&dir, db, &mut recovered, state.page_size, &pages)?;
        let image = WalImage::new(
            dir.log.clone(),
            db,
            recovered,
            state.page_size,
            opts.max_txn_bytes,
        )?;
        Ok(Store {
            path,
            dir,
            db,
            pages,
            committed: image.view(),
            image: Mutex::new(image),
            page_size: AtomicU32::new(state.page_size),
            page_size_fixed: opts.page_size.is_some() || state.page_size != DEFAULT_PAGE_SIZE,
            io_name: opts.io.name().to_owned(),
        })
    }

    /// The record log's flush controller (commits wait on it without the
    /// image lock).
    fn flusher(&self) -> &Flusher {
        self.dir.log.flusher()
    }

    /// This database's id within its store.
    pub fn db_id(&self) -> DbId {
        self.db
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn page_size(&self) -> u32 {
        self.page_size.load(Ordering::Relaxed)
    }

    /// The first write to an empty database sets its page size, when it
    /// is one whole page of a page size SQLite accepts (SQLite chose it
    /// with `PRAGMA page_size` or `VACUUM INTO` before writing). The
    /// manifest records it with the database's first publish.
    fn adopt_page_size(&self, offset: u64, len: usize) -> Result<()> {
        let old = self.page_size();
        let Ok(ps) = u32::try_from(len) else {
            return Ok(());
        };
        if ps == old
            || validate_page_size(ps).is_err()
            || !offset.is_multiple_of(u64::from(ps))
            || self.pages.db_pages() != 0
        {
            return Ok(());
        }
        // Lock order: the image lock before the page store's.
        let mut image = self.image();
        if !image.set_page_size_while_empty(ps) {
            return Ok(());
        }
        if !self.pages.set_page_size_while_empty(ps)? {
            image.set_page_size_while_empty(old);
            return Ok(());
        }
        self.page_size.store(ps, Ordering::Relaxed);
        tracing::debug!(path = %self.path.display(), page_size = ps, "empty database takes SQLite's page size");
        Ok(())
    }

    /// What an empty database's file holds for SQLite: nothing, except the
    /// page size bytes of the header when the page size was asked for.
    fn empty_read(&self, offset: u64, buf: &mut [u8]) -> usize {
        buf.fill(0);
        if self.page_size_fixed {
            let ps = self.page_size();
            let encoded: u16 = if ps == 65536 { 1 } else { ps as u16 };
            for (at, byte) in [
                (16u64, encoded.to_be_bytes()[0]),
                (17, encoded.to_be_bytes()[1]),
            ] {
                if let Some(i) = at.checked_sub(offset).filter(|&i| i < buf.len() as u64) {
                    buf[i as usize] = byte;
                }
            }
        }
        0
    }

    fn image(&self) -> MutexGuard<'_, WalImage> {
        self.image.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_writable(&self) -> Result<()> {
        self.dir.fail.check()
    }

    fn set_failed(&self, reason: String, errno: Option<i32>) {
        self.dir.fail.set(reason, errno);
    }

    /// Runs a write-path step; a failure puts the store in the failed state.
    fn guarded<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.check_writable()?;
        let r = f();
        if let Err(e) = &r {
            if !matches!(
                e,
                StorageError::Limit(_)
                    | StorageError::Config(_)
                    | StorageError::Busy(_)
                    | StorageError::Refused(_)
            ) {
                tracing::error!(error = %e, "store write path failed; refusing further writes");
                self.set_failed(e.to_string(), e.raw_os_error());
            }
        }
        r
    }

    // ----- the main database image -----

    /// Size of the database image in bytes.
    pub fn db_size(&self) -> u64 {
        u64::from(self.pages.db_pages()) * u64::from(self.page_size())
    }

    /// Reads the database image; returns the bytes that were inside it (the
    /// rest of `buf` is zeroed).
    pub fn db_read(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let ps = u64::from(self.page_size());
        let size = self.db_size();
        if size == 0 {
            return Ok(self.empty_read(offset, buf));
        }
        if offset.is_multiple_of(ps) && buf.len() as u64 == ps {
            let pgno = PageNo((offset / ps + 1) as u32);
            return Ok(if self.pages.read_page(pgno, buf)? {
                buf.len()
            } else {
                0
            });
        }
        let mut page = vec![0u8; ps as usize];
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
            self.adopt_page_size(offset, data.len())?;
            let ps = u64::from(self.page_size());
            if offset.is_multiple_of(ps) && data.len() as u64 == ps {
                return self
                    .pages
                    .write_page(PageNo((offset / ps + 1) as u32), data);
            }
            let mut page = vec![0u8; ps as usize];
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

    /// Sets the database image's size. An empty database only shrinks: a
    /// layered VFS may turn SQLite's size hint into a truncate that grows
    /// the file before its first write (SQLite's crash-test VFS does), and
    /// a page counted then would fix the page size before SQLite's first
    /// page chose it (`Store::adopt_page_size`); the write that follows
    /// grows the database anyway.
    pub fn db_truncate(&self, size: u64) -> Result<()> {
        if self.pages.db_pages() == 0 {
            return Ok(());
        }
        self.guarded(|| {
            self.pages
                .truncate(size.div_ceil(u64::from(self.page_size())) as u32)
        })
    }

    /// Makes the database image durable: publishes checkpointed pages, or
    /// defers that publish to the WAL's restart or deletion.
    ///
    /// While the WAL image holds records, the pages a checkpoint writes are
    /// copies of frames in them, and the records are replayed after a crash
    /// until the database's base moves past them; that move is the publish
    /// of `WalImage::reset` (a truncate to 0, a delete) or of a restart,
    /// which carries the pending pages too. So once the records are
    /// durable, a small checkpoint (no chunk file spilled, at most
    /// `publish_defer_bytes_max` of pages, every page one the records hold
    /// a frame for) needs no manifest commit of its own: at the last close,
    /// SQLite's checkpoint and its deletion of the WAL cost one manifest
    /// commit, not two. Pages written otherwise are published here.
    pub fn db_sync(&self) -> Result<()> {
        self.guarded(|| {
            let mut image = self.image();
            let deferrable = self.pages.deferrable_pending();
            if deferrable.is_some_and(|pgnos| image.holds_frames_for(&pgnos)) {
                let target = image.seal_for_durability(&self.dir.manifest, &self.pages)?;
                drop(image);
                self.pages.note_publish_deferred();
                return self.flusher().wait_durable(target);
            }
            if image.has_retained() {
                // The publish moves the base past them (under the image
                // lock, which keeps them as they are).
                return image.publish_all(&self.dir.manifest, &self.pages);
            }
            // Outside the image lock: commits go on beside a large publish.
            drop(image);
            self.pages.publish(&self.dir.manifest)
        })
    }

    // ----- the SQLite WAL image -----

    /// Frames in the WAL image SQLite sees (committed ones).
    pub fn wal_image_frames(&self) -> u64 {
        self.image().frame_count()
    }

    /// What a wal-index of the committed WAL image is built from, when bop
    /// knows every frame of it and no transaction is open (see
    /// `wal_image::WalIndexSeed`).
    pub fn wal_index_seed(&self) -> Option<crate::wal_image::WalIndexSeed> {
        self.image().wal_index_seed()
    }

    /// How many times SQLite has restarted this database's WAL since open
    /// (a new generation: its oldest frame is new).
    pub fn wal_image_generation(&self) -> u64 {
        self.image().stats.generations
    }

    pub fn wal_image_exists(&self) -> bool {
        self.image().exists
    }

    /// SQLite opened the `-wal` file: the database is in WAL mode from now
    /// on. What SQLite wrote before in rollback mode (a new database's first
    /// transaction) is published first, so no WAL record is ever durable
    /// without the pages under it (with `synchronous=OFF` SQLite does not
    /// sync the database file at that commit).
    pub fn wal_image_mark_open(&self) -> Result<()> {
        let mut image = self.image();
        self.publish_rollback_writes(&mut image)?;
        image.exists = true;
        Ok(())
    }

    /// Publishes what SQLite wrote to the database file in rollback mode
    /// (a new database's first transaction, or a connection in
    /// `locking_mode=EXCLUSIVE` since then), before the WAL takes over: when
    /// the WAL image holds no record, unpublished pages are not a
    /// checkpoint's (those are published before the WAL restarts).
    /// Call when the WAL is opened, under the image lock.
    fn publish_rollback_writes(&self, image: &mut WalImage) -> Result<()> {
        if image.record_count() == 0 && self.pages.has_unpublished() {
            // Not copies of frames: past any retained generation (its
            // invariant 7).
            self.guarded(|| image.publish_all(&self.dir.manifest, &self.pages))?;
        }
        Ok(())
    }

    /// `Store::publish_rollback_writes`, for a front end that replaces
    /// the WAL (libSQL's virtual WAL).
    pub fn publish_before_wal(&self) -> Result<()> {
        self.publish_rollback_writes(&mut self.image())
    }

    pub fn wal_image_size(&self) -> u64 {
        self.image().size()
    }

    /// Reads the WAL image. A read inside one committed record (what a
    /// reader's snapshot holds) takes neither the image lock nor memory.
    pub fn wal_image_read(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let frames = self.committed.frames;
        if let Some(r) = self.committed.plan_read(offset, buf.len()) {
            frames.read(&r, buf)?;
            return Ok(buf.len());
        }
        let mut reads = Vec::new();
        let n = self.image().plan_read(offset, buf, &mut reads);
        for r in reads {
            frames.read(&r, &mut buf[r.buf_at..r.buf_at + r.len])?;
        }
        Ok(n)
    }

    pub fn wal_image_write(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.guarded(|| self.image().write(offset, data))
    }

    /// Whether a writer may start a transaction now (call before taking
    /// SQLite's WAL write lock): waits a bounded time for room in the record
    /// log's unsynced buffer, then fails with `StorageError::Busy`.
    pub fn admit_writer(&self) -> Result<()> {
        self.flusher().admit()
    }

    /// SQLite took its WAL write lock on this thread.
    pub fn begin_write_transaction(&self) {
        self.image().writer = Some(std::thread::current().id());
    }

    /// Seals a complete pending transaction into a log record (no sync):
    /// called when SQLite releases its WAL write lock.
    pub fn end_write_transaction(&self) -> Result<()> {
        self.guarded(|| {
            let mut image = self.image();
            image.writer = None;
            image.seal(&self.dir.manifest, &self.pages)
        })
    }

    /// SQLite finished a commit (SQLITE_FCNTL_COMMIT_PHASETWO): seal it,
    /// unless another thread's transaction is in progress (then this commit
    /// was sealed when its write lock was released).
    pub fn commit_phase_two(&self) -> Result<()> {
        self.guarded(|| {
            let mut image = self.image();
            if image.may_seal() {
                image.seal(&self.dir.manifest, &self.pages)?;
            }
            Ok(())
        })
    }

    /// Seals and makes the WAL image durable (SQLite's xSync on the `-wal`
    /// file): the commit of `synchronous=FULL`. The wait for durability happens
    /// outside the image lock, so readers and other databases go on, and
    /// commits that meet here share one sync.
    pub fn wal_image_sync(&self) -> Result<()> {
        let started = std::time::Instant::now();
        self.guarded(|| {
            let target = self
                .image()
                .seal_for_sync(&self.dir.manifest, &self.pages)?;
            self.flusher().wait_durable(target)
        })?;
        self.flusher().metrics.commit.record(started.elapsed());
        Ok(())
    }

    pub fn wal_image_truncate(&self, size: u64) -> Result<()> {
        self.guarded(|| self.image().truncate(&self.dir.manifest, &self.pages, size))
    }

    /// SQLite deleted the `-wal` file (after a complete checkpoint).
    pub fn wal_image_delete(&self) -> Result<()> {
        self.guarded(|| {
            let mut image = self.image();
            image.reset(&self.dir.manifest, &self.pages)?;
            image.exists = false;
            Ok(())
        })
    }

    pub fn stats(&self) -> StoreStats {
        let image = self.image();
        StoreStats {
            wal_image: image.stats(),
            pages: self.pages.stats(),
            log_segments: image.log.segment_count(),
            log: image.log.next_lsn_and_stats().1,
            wal_image_records: image.record_count(),
            wal_image_frames: image.frame_count(),
            next_lsn: image.log.next_lsn().0,
            log_base_min: image.log.min_base().0,
            durable_lsn: image.log.durable_lsn().0,
            flush: self.flusher().stats(),
            io_backend: self.io_name.clone(),
            log_stray_segments_removed: self.dir.stray_segments_removed,
            manifest: self.dir.manifest.stats().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "reading the manifest's stats failed");
                ManifestStats::default()
            }),
            cache: crate::cache::global().stats(),
        }
    }

    // ----- the manifest's change log (shared by the store's databases) -----

    /// The store's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.dir.manifest
    }

    /// Registers change-log cursor `name` (see `Manifest::register_cursor`).
    pub fn register_cursor(&self, name: &str) -> Result<CursorInfo> {
        self.dir.manifest.register_cursor(name)
    }

    /// Up to `max` changes after cursor `name`'s acknowledged one.
    pub fn read_changes(&self, name: &str, max: usize) -> Result<Vec<(u64, Change)>> {
        self.dir.manifest.read_changes(name, max)
    }

    /// Acknowledges the changes up to `seq` for cursor `name`.
    pub fn ack_changes(&self, name: &str, seq: u64) -> Result<()> {
        self.dir.manifest.ack(name, seq)
    }

    pub fn drop_cursor(&self, name: &str) -> Result<bool> {
        self.dir.manifest.drop_cursor(name)
    }

    pub fn cursors(&self) -> Result<Vec<CursorInfo>> {
        self.dir.manifest.cursors()
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

    /// Verifies every checksum of the store: each page the page index points
    /// at, and each log record of the current WAL image. (Segment and record
    /// headers were verified when the store opened.)
    pub fn verify(&self) -> Result<VerifyReport> {
        let pages_checked = self.pages.verify_all()?;
        let records = self.image().record_locs();
        // A record sealed by a FULL commit may still wait in the flush
        // buffer for its leader's write: check what is on disk.
        if let Some(last) = records.last() {
            self.flusher().wait_durable(last.lsn)?;
        }
        for r in &records {
            r.verify()?;
        }
        Ok(VerifyReport {
            pages_checked,
            records_checked: records.len() as u64,
        })
    }

    fn shutdown(&mut self) -> Result<()> {
        // Hand the image's records back to the record log, so reopening this
        // database while the store stays open finds it.
        let image = self.image.get_mut().unwrap_or_else(|p| p.into_inner());
        if self.dir.fail.is_failed() {
            // After a failure (or halt) leave the disk as it is: the next
            // open recovers from the durable state.
            self.dir.log.give_back(self.db, image.take_records());
            return Ok(());
        }
        // Published, past any retained generation, before the image's
        // records go back to the record log for the next open. The store's
        // record log is ended and synced when its last database closes
        // (`StoreDir`).
        let published = image.publish_all(&self.dir.manifest, &self.pages);
        self.dir.log.give_back(self.db, image.take_records());
        published?;
        if let Some(intents) = self.pages.hand_over() {
            self.dir.keep_chunk_intents(self.db, intents);
        }
        Ok(())
    }
}

/// Recovery of retained WAL generations (`wal_image/retained.rs`): the
/// records of `db` before its newest generation are generations SQLite
/// had checkpointed whole; their frames are applied to the page store and
/// published, with the base moved to the newest generation, in one
/// manifest transaction. Leaves the newest generation in `recovered`.
fn apply_retained(
    dir: &StoreDir,
    db: DbId,
    recovered: &mut Vec<crate::log::RecoveredRecord>,
    page_size: u32,
    pages: &PageStore,
) -> Result<()> {
    let Some(newest) = recovered.iter().rposition(|r| r.wal_offset == 0) else {
        return Ok(());
    };
    if newest == 0 {
        return Ok(());
    }
    let older: Vec<_> = recovered.drain(..newest).collect();
    let mut start = 0;
    for i in 1..=older.len() {
        if i == older.len() || older[i].wal_offset == 0 {
            crate::wal_image::apply_generation(&older[start..i], page_size, pages)?;
            start = i;
        }
    }
    let base = recovered[0].loc.lsn;
    pages.publish_with_base(&dir.manifest, Some(base))?;
    dir.log.set_base(&dir.manifest, db, base, true, true)?;
    tracing::info!(
        db = db.0,
        records = older.len(),
        "applied retained WAL generations at open"
    );
    Ok(())
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(path = %self.path.display(), error = %e, "closing the database failed; the next open recovers");
            return;
        }
        // The store's last database: the store may linger for its grace.
        crate::linger::linger(&self.dir);
    }
}
