//! The page store: the SQLite main database image, kept as checksummed page
//! chunks (`chunks/`) located through the manifest's page index.
//!
//! Writes (from SQLite checkpoints) gather in memory; at most
//! `chunk_bytes_max` bytes of pages are held before they are written out as
//! a chunk.
//! Nothing becomes part of the store until [`PageStore::publish`] commits
//! the new chunks and page locations in one manifest transaction, so a crash
//! leaves the previously published image intact.
//!
//! Invariants:
//! 1. `index[p-1]` is the newest location of page `p` that is not in
//!    `pending`; pages `> db_pages` have no location and no pending entry.
//! 2. A chunk's `live` equals the number of index entries that point at it;
//!    a chunk with `live == 0` is deleted at the next publish.
//! 3. `dirty` lists every page whose index entry changed since the last
//!    publish (including removal by truncate).
//! 4. Every chunk file exists and is synced before the manifest refers to it;
//!    chunk files the manifest does not list are removed at open.
//! 5. Journal (`manifest/journal.rs`): a chunk file is created only inside a
//!    range of ids reserved by a "chunks in flight" intent (settled by the
//!    publish that uses up its range, or when the store closes: a database
//!    that closes hands its intents to the store, `PageStore::hand_over`,
//!    and its next open in the same store continues them), and removed
//!    only under a
//!    "delete chunks"
//!    intent (settled once the unlinks are durable: by the next sync of
//!    `chunks/`, which the next publish of a new chunk or the store's close
//!    does),
//!    so the replay at open
//!    finds every file a crash left; the scan at open is a backstop.
//!
//! Lock poisoning. As everywhere in the engine, a lock a panic poisoned is
//! used on (its guard recovered), never unwrapped into a second panic, and
//! writes after the panic are refused by the store's failed state. `inner`
//! is taken only through `PageStore::read`, which recovers the guard, and
//! `PageStore::write`, which refuses once poisoned. A panic can poison it
//! only while it is write-locked (`write_page`, `truncate`, `publish`,
//! `hand_over`, `adopt`), and in those the calls that can panic short of a
//! broken invariant are the file system's and the manifest's. They come
//! before the in-memory changes that depend on them (a spill writes and
//! syncs its chunk file, then records it in `chunks`, then points the index
//! at it, and only then empties `pending`), so a panic leaves `Inner` as a
//! reader needs it: every indexed page in an existing, synced chunk, pages
//! not yet written out still in `pending`, which reads consult first; at
//! worst a chunk file or a chunk-id reservation the journal replays at the
//! next open (invariant 5). Reads therefore go on after a panic and return
//! the newest image. What a panic may leave out of step is the in-memory
//! state against the manifest (for example a publish committed but `dirty`
//! not cleared), so nothing is changed or made durable any more: once
//! `inner` is poisoned every change is refused with
//! [`StorageError::Failed`], which [`Store`](crate::Store)'s write path
//! turns into the store's failed state (the front ends' panic guards fail
//! the store already). The next open starts from the manifest, where a
//! publish is one transaction: all of a checkpoint or none of it.

pub mod chunk;
mod fd_cache;

use fd_cache::FdCache;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::cache::{self, CacheKey};
use crate::error::{Result, StorageError};
use crate::io::{IoBackend, OpenMode};
use crate::manifest::{ChunkMeta, JournalId, Manifest, ManifestState, PageLoc, PublishBatch};
use crate::types::{ChunkId, Lsn, PageNo};

/// Small chunks tolerated before they are merged (see `compact`).
const SMALL_CHUNKS_MAX: usize = 8;

#[derive(Clone, Copy, Debug)]
pub struct PageStoreConfig {
    /// Most bytes of pages gathered in memory before they are written out
    /// as one chunk (at least one page).
    pub chunk_bytes_max: u64,
    /// Most chunk files kept open at once.
    pub open_chunks_max: usize,
    /// Most bytes of checkpointed pages whose publish a sync of the
    /// database may leave to the WAL's restart (`Store::db_sync`): they
    /// stay in memory until then.
    pub publish_defer_bytes_max: u64,
    /// Most bytes of log records of earlier WAL generations kept instead
    /// of publishing their checkpointed pages at a WAL restart
    /// (`wal_image/retained.rs`); also bounds what recovery re-applies.
    pub publish_defer_log_bytes_max: u64,
}

impl Default for PageStoreConfig {
    fn default() -> Self {
        PageStoreConfig {
            chunk_bytes_max: 16 << 20,
            open_chunks_max: 128,
            publish_defer_bytes_max: 1 << 20,
            publish_defer_log_bytes_max: 4 << 20,
        }
    }
}

impl PageStoreConfig {
    fn chunk_pages_max(&self, page_size: u32) -> usize {
        (self.chunk_bytes_max / u64::from(page_size)).max(1) as usize
    }
}

#[derive(Debug)]
struct ChunkFile {
    path: PathBuf,
    data_offset: u64,
    page_count: u32,
    live: u32,
    published: bool,
}

#[derive(Debug)]
struct Inner {
    db_pages: u32,
    published_db_pages: u32,
    index: Vec<Option<PageLoc>>,
    chunks: HashMap<ChunkId, ChunkFile>,
    pending: BTreeMap<u32, Box<[u8]>>,
    dirty: BTreeSet<u32>,
    live_changed: BTreeSet<ChunkId>,
    next_chunk_id: ChunkId,
    /// Pages moved by compaction since open.
    pages_compacted: u64,
    /// Chunks deleted (no live page left) since open.
    chunks_deleted: u64,
    /// Chunk files written, and syncs of `chunks/`, since open.
    chunks_written: u64,
    dir_syncs: u64,
    /// Journal intents reserving the chunk ids written since the last
    /// publish (invariant 5), and the end of the reserved range.
    in_flight: Vec<JournalId>,
    reserved_end: u64,
    /// "Delete chunks" intents whose unlinks are done but not yet durable:
    /// settled after the next sync of the directory (invariant 5).
    unlinked: Vec<JournalId>,
}

/// Counters readable through the stats surface.
#[derive(Clone, Copy, Debug, Default)]
pub struct PageStoreStats {
    pub db_pages: u32,
    pub chunks: usize,
    pub pending_pages: usize,
    pub pages_compacted: u64,
    pub chunks_deleted: u64,
    /// Since open: chunk files written (one per checkpoint, compaction
    /// included, unless it exceeds `chunk_bytes_max`) and syncs of the
    /// chunks directory.
    pub chunks_written: u64,
    pub chunk_dir_syncs: u64,
    /// Chunk files open now, opened since open, and closed to stay in bound.
    pub chunk_files_open: usize,
    pub chunk_file_opens: u64,
    pub chunk_file_evictions: u64,
    /// Chunk files the scan at open removed (the journal's replay missed
    /// them; expected 0).
    pub stray_chunks_removed: u64,
    /// Syncs of the database that left their publish to the WAL's restart
    /// (`PageStoreConfig::publish_defer_bytes_max`).
    pub publishes_deferred: u64,
}

/// Journal intents of a closed database's page store, kept by its store
/// until the database reopens or the store closes (invariant 5).
#[derive(Debug)]
pub struct ChunkIntents {
    /// The chunk-id reservation (its intents) and the end of its range.
    in_flight: Vec<JournalId>,
    reserved_end: u64,
    /// "Delete chunks" intents whose unlinks are done, not yet durable.
    unlinked: Vec<JournalId>,
    dir: PathBuf,
    io: Arc<dyn IoBackend>,
}

impl ChunkIntents {
    /// Settles the intents (the store is closing; no chunk file of this
    /// database is in flight): syncs the chunk directory if unlinks wait
    /// for it, then marks every intent done for the manifest's next
    /// transaction. A failed sync leaves them to the replay at the next
    /// open.
    pub fn settle(self, manifest: &Manifest) {
        if !self.unlinked.is_empty() {
            if let Err(e) = self.io.sync_dir(&self.dir) {
                tracing::warn!(error = %e, "syncing the chunks directory at close");
                return;
            }
        }
        for id in self.unlinked.into_iter().chain(self.in_flight) {
            manifest.journal_done(id);
        }
    }
}

#[derive(Debug)]
pub struct PageStore {
    /// The database whose pages these are.
    db: crate::types::DbId,
    /// This instance's id in the process-wide page cache's keys.
    cache_owner: u64,
    /// The last cache miss (chunk id, slot) and how many misses in a row
    /// were the next slot of the same chunk: a long run is a sequential
    /// scan, whose pages are cached only into free room.
    last_miss: std::sync::Mutex<(u64, u32, u32)>,
    dir: PathBuf,
    io: Arc<dyn IoBackend>,
    /// Changes only while the database is empty and unpublished
    /// ([`PageStore::set_page_size_while_empty`]).
    page_size: AtomicU32,
    config: PageStoreConfig,
    /// Taken only through `read` (recovers a poisoned guard) and `write`
    /// (refuses once poisoned): the lock-poisoning policy in the module
    /// documentation.
    inner: RwLock<Inner>,
    /// Open chunk handles, bounded. Lock order: `inner`, then `files`.
    files: FdCache,
    /// Journals chunk ids before their files are created (invariant 5).
    journal: Arc<Manifest>,
    stray_chunks_removed: u64,
    /// Syncs of the database whose publish waited for a later one.
    publishes_deferred: AtomicU64,
}

impl PageStore {
    pub fn open(
        dir: PathBuf,
        io: Arc<dyn IoBackend>,
        config: PageStoreConfig,
        state: &ManifestState,
        journal: Arc<Manifest>,
    ) -> Result<PageStore> {
        crate::io::create_dir_durable(io.as_ref(), &dir)?;
        let mut stray_chunks_removed = 0;
        for path in io.list_dir(&dir)? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let known = chunk::parse_chunk_file_name(name)
                .is_some_and(|id| state.chunks.iter().any(|c| c.id == id));
            if !known {
                tracing::info!(path = %path.display(), "removing chunk file not listed in the manifest");
                io.remove_file(&path)?;
                stray_chunks_removed += 1;
            }
        }
        let mut chunks = HashMap::new();
        for meta in &state.chunks {
            let path = dir.join(chunk::chunk_file_name(meta.id));
            // Check the header now; the handle is reopened on demand.
            let file = io.open(&path, OpenMode::ReadOnly)?;
            let data_offset = chunk::data_offset(meta.page_count);
            let mut head = vec![0u8; data_offset as usize];
            file.read_exact_at(&mut head, 0)?;
            let idx = chunk::decode_index(&head, &path)?;
            if idx.id != meta.id
                || idx.slots.len() != meta.page_count as usize
                || idx.page_size != state.page_size
            {
                return Err(StorageError::corrupt(
                    &path,
                    0,
                    "chunk header disagrees with the manifest",
                ));
            }
            drop(file);
            chunks.insert(
                meta.id,
                ChunkFile {
                    path,
                    data_offset,
                    page_count: meta.page_count,
                    live: 0,
                    published: true,
                },
            );
        }
        let mut index = vec![None; state.db_pages as usize];
        for (pgno, loc) in &state.pages {
            if pgno.0 == 0 || pgno.0 > state.db_pages {
                continue; // stale entry beyond the end; dropped at next publish
            }
            let Some(c) = chunks.get_mut(&loc.chunk) else {
                return Err(StorageError::corrupt(
                    &dir,
                    0,
                    format!("page {} refers to missing chunk {}", pgno.0, loc.chunk.0),
                ));
            };
            if loc.slot >= c.page_count {
                return Err(StorageError::corrupt(
                    &c.path,
                    0,
                    format!("page {} slot out of range", pgno.0),
                ));
            }
            c.live += 1;
            index[pgno.index()] = Some(*loc);
        }
        Ok(PageStore {
            db: state.db,
            cache_owner: cache::next_owner_id(),
            last_miss: std::sync::Mutex::new((u64::MAX, 0, 0)),
            dir,
            files: FdCache::new(io.clone(), config.open_chunks_max),
            journal,
            stray_chunks_removed,
            publishes_deferred: AtomicU64::new(0),
            io,
            page_size: AtomicU32::new(state.page_size),
            config,
            inner: RwLock::new(Inner {
                db_pages: state.db_pages,
                published_db_pages: state.db_pages,
                index,
                chunks,
                pending: BTreeMap::new(),
                dirty: BTreeSet::new(),
                live_changed: BTreeSet::new(),
                next_chunk_id: state.next_chunk_id,
                pages_compacted: 0,
                chunks_deleted: 0,
                chunks_written: 0,
                dir_syncs: 0,
                in_flight: Vec::new(),
                reserved_end: 0,
                unlinked: Vec::new(),
            }),
        })
    }

    pub fn page_size(&self) -> u32 {
        self.page_size.load(Ordering::Relaxed)
    }

    /// Gives an empty database another page size (SQLite chose one before
    /// its first write): only while it holds no page, written or
    /// published. Returns whether the page size is now `page_size`.
    pub fn set_page_size_while_empty(&self, page_size: u32) -> Result<bool> {
        let g = self.write()?;
        // Chunks written for a transaction that was then undone (truncated
        // to nothing) hold no live page: they are deleted at the next
        // publish, whatever their page size.
        let empty = g.db_pages == 0
            && g.published_db_pages == 0
            && g.pending.is_empty()
            && g.chunks.values().all(|c| c.live == 0);
        if empty {
            self.page_size.store(page_size, Ordering::Relaxed);
        }
        Ok(empty || self.page_size() == page_size)
    }

    /// Locks `inner` to read, also after a panic poisoned it (see the
    /// module documentation: a panic leaves it readable).
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Locks `inner` to change it; refused once a panic poisoned it (see
    /// the module documentation).
    fn write(&self) -> Result<RwLockWriteGuard<'_, Inner>> {
        self.inner.write().map_err(|_| StorageError::Failed {
            path: self.dir.parent().unwrap_or(&self.dir).to_path_buf(),
            reason: format!(
                "a panic interrupted a change to the page store {}; it refuses changes \
                 until the store is reopened",
                self.dir.display()
            ),
            errno: None,
        })
    }

    /// Whether writes since the last publish wait for the next one.
    pub fn has_unpublished(&self) -> bool {
        let g = self.read();
        !g.pending.is_empty()
            || !g.dirty.is_empty()
            || !g.live_changed.is_empty()
            || g.db_pages != g.published_db_pages
    }

    /// Whether the writes since the last publish may wait for a later one
    /// (if their pages are durable elsewhere, which the caller checks): none went to
    /// a chunk file yet, and the pending pages take at most
    /// `publish_defer_bytes_max`.
    /// Returns the pending pages' numbers then.
    pub fn deferrable_pending(&self) -> Option<Vec<u32>> {
        let g = self.read();
        let bytes = g.pending.len() as u64 * u64::from(self.page_size());
        (bytes <= self.config.publish_defer_bytes_max && g.chunks.values().all(|c| c.published))
            .then(|| g.pending.keys().copied().collect())
    }

    /// `PageStoreConfig::publish_defer_log_bytes_max`.
    pub fn defer_log_bytes_max(&self) -> u64 {
        self.config.publish_defer_log_bytes_max
    }

    /// Counts a sync of the database that left its publish for later.
    pub fn note_publish_deferred(&self) {
        self.publishes_deferred.fetch_add(1, Ordering::Relaxed);
    }

    /// Current size of the database image in pages (including unpublished
    /// checkpoint writes).
    pub fn db_pages(&self) -> u32 {
        self.read().db_pages
    }

    pub fn stats(&self) -> PageStoreStats {
        let g = self.read();
        PageStoreStats {
            db_pages: g.db_pages,
            chunks: g.chunks.len(),
            pending_pages: g.pending.len(),
            pages_compacted: g.pages_compacted,
            chunks_deleted: g.chunks_deleted,
            chunks_written: g.chunks_written,
            chunk_dir_syncs: g.dir_syncs,
            chunk_files_open: self.files.counters().0,
            chunk_file_opens: self.files.counters().1,
            chunk_file_evictions: self.files.counters().2,
            stray_chunks_removed: self.stray_chunks_removed,
            publishes_deferred: self.publishes_deferred.load(Ordering::Relaxed),
        }
    }

    /// Reads page `pgno` into `buf` (exactly one page): from the page
    /// cache, or with one positional read from its chunk, verified against
    /// its checksum and then cached. Pages past the end read as zeros and
    /// return `false`.
    pub fn read_page(&self, pgno: PageNo, buf: &mut [u8]) -> Result<bool> {
        debug_assert_eq!(buf.len(), self.page_size() as usize);
        let (file, path, offset, crc, key) = {
            let g = self.read();
            if pgno.0 == 0 || pgno.0 > g.db_pages {
                buf.fill(0);
                return Ok(false);
            }
            if let Some(p) = g.pending.get(&pgno.0) {
                buf.copy_from_slice(p);
                return Ok(true);
            }
            let Some(loc) = g.index[pgno.index()] else {
                buf.fill(0);
                return Ok(true);
            };
            // A chunk's slot never changes: a cached copy is never stale.
            let key = CacheKey {
                owner: self.cache_owner,
                chunk: loc.chunk.0,
                slot: loc.slot,
            };
            if cache::global().get(&key, buf) {
                return Ok(true);
            }
            let c = g
                .chunks
                .get(&loc.chunk)
                .expect("invariant 2: indexed chunk is open");
            // The handle is taken under the lock: a publish that deletes the
            // chunk waits for the lock, and an open handle survives unlink.
            (
                self.files.get(loc.chunk, &c.path)?,
                c.path.clone(),
                c.data_offset + u64::from(loc.slot) * u64::from(self.page_size()),
                loc.crc,
                key,
            )
        };
        file.read_exact_at(buf, offset)?;
        let actual = crc32c::crc32c(buf);
        if actual != crc {
            return Err(StorageError::corrupt(
                path,
                offset,
                format!(
                    "page {} checksum mismatch (stored {crc:08x}, computed {actual:08x})",
                    pgno.0
                ),
            ));
        }
        if self.sequential_miss(key.chunk, key.slot) {
            cache::global().insert_if_room(key, buf);
        } else {
            cache::global().insert(key, buf);
        }
        Ok(true)
    }

    /// Records a cache miss; true once it is the 32nd or later in a row to
    /// read the next slot of one chunk (a sequential scan).
    fn sequential_miss(&self, chunk: u64, slot: u32) -> bool {
        const SCAN_RUN: u32 = 32;
        let mut m = self.last_miss.lock().unwrap_or_else(|p| p.into_inner());
        let run = if m.0 == chunk && slot == m.1.wrapping_add(1) {
            m.2.saturating_add(1)
        } else {
            0
        };
        *m = (chunk, slot, run);
        run >= SCAN_RUN
    }

    /// Writes one whole page (checkpoint backfill).
    pub fn write_page(&self, pgno: PageNo, data: &[u8]) -> Result<()> {
        debug_assert_eq!(data.len(), self.page_size() as usize);
        let mut g = self.write()?;
        g.pending.insert(pgno.0, data.into());
        if pgno.0 > g.db_pages {
            g.db_pages = pgno.0;
            let n = pgno.0 as usize;
            g.index.resize(n, None);
        }
        if g.pending.len() >= self.config.chunk_pages_max(self.page_size()) {
            self.spill(&mut g)?;
        }
        Ok(())
    }

    /// Shrinks (or grows, with zero pages) the database image.
    pub fn truncate(&self, db_pages: u32) -> Result<()> {
        let mut g = self.write()?;
        let g = &mut *g;
        g.pending.retain(|&p, _| p <= db_pages);
        for p in (db_pages as usize)..g.index.len() {
            if let Some(loc) = g.index[p].take() {
                let c = g.chunks.get_mut(&loc.chunk).expect("invariant 2");
                c.live -= 1;
                g.live_changed.insert(loc.chunk);
                g.dirty.insert(p as u32 + 1);
            }
        }
        g.index.resize(db_pages as usize, None);
        g.db_pages = db_pages;
        Ok(())
    }

    /// Writes the pending pages as a new (unpublished) chunk.
    fn spill(&self, g: &mut Inner) -> Result<()> {
        if g.pending.is_empty() {
            return Ok(());
        }
        let id = g.next_chunk_id;
        let pages: Vec<(PageNo, &[u8])> = g
            .pending
            .iter()
            .map(|(&p, d)| (PageNo(p), &d[..]))
            .collect();
        let (head, crcs) = chunk::encode_head(id, self.page_size(), &pages);
        let count = pages.len() as u32;
        if id.0 >= g.reserved_end {
            // Invariant 5: journaled before the file exists.
            let (intent, end) = self.journal.reserve_chunks(self.db, id)?;
            g.in_flight.push(intent);
            g.reserved_end = end.0;
        }
        let path = self.dir.join(chunk::chunk_file_name(id));
        let file = self.io.open(&path, OpenMode::CreateNew)?;
        // One gathered write straight from the gathered pages: no image of
        // the chunk is built in memory.
        let mut parts: Vec<&[u8]> = Vec::with_capacity(pages.len() + 1);
        parts.push(&head);
        parts.extend(pages.iter().map(|(_, d)| *d));
        let written = file
            .write_all_vectored_at(&parts, 0)
            .and_then(|_| file.sync_data());
        if let Err(e) = written {
            let _ = self.io.remove_file(&path);
            return Err(e);
        }
        // The chunk is recorded before the index points at it, and the
        // pages leave `pending` last: a panic in between leaves every page
        // readable (see the module documentation).
        g.next_chunk_id = ChunkId(id.0 + 1);
        g.chunks_written += 1;
        self.files.insert(id, file);
        g.chunks.insert(
            id,
            ChunkFile {
                path,
                data_offset: chunk::data_offset(count),
                page_count: count,
                live: count,
                published: false,
            },
        );
        g.live_changed.insert(id);
        for (slot, &p) in g.pending.keys().enumerate() {
            let loc = PageLoc {
                chunk: id,
                slot: slot as u32,
                crc: crcs[slot],
            };
            if let Some(old) = g.index[p as usize - 1].replace(loc) {
                let c = g.chunks.get_mut(&old.chunk).expect("invariant 2");
                c.live -= 1;
                g.live_changed.insert(old.chunk);
            }
            g.dirty.insert(p);
        }
        g.pending.clear();
        Ok(())
    }

    /// Reads the page at `loc` and verifies it (caller holds the lock).
    fn read_at(&self, g: &Inner, pgno: u32, loc: PageLoc, buf: &mut [u8]) -> Result<()> {
        let c = g
            .chunks
            .get(&loc.chunk)
            .expect("invariant 2: indexed chunk is open");
        let offset = c.data_offset + u64::from(loc.slot) * u64::from(self.page_size());
        self.files
            .get(loc.chunk, &c.path)?
            .read_exact_at(buf, offset)?;
        let actual = crc32c::crc32c(buf);
        if actual != loc.crc {
            return Err(StorageError::corrupt(
                &c.path,
                offset,
                format!(
                    "page {pgno} checksum mismatch (stored {:08x}, computed {actual:08x})",
                    loc.crc
                ),
            ));
        }
        Ok(())
    }

    /// Space bound: moves the live pages of the sparsest published chunks
    /// (less than half live) into `pending`, at most one chunk's worth per
    /// call, so the next spill writes them in the same chunk as the pages
    /// being published (one chunk file, one sync) and the emptied chunks
    /// are deleted by this publish. Keeps the page store within about twice
    /// the size of the live pages. Pages already in `pending` are newer
    /// than their chunk's copy: they are not live there any more, and are
    /// not copied.
    fn compact(&self, g: &mut Inner) -> Result<()> {
        let mut overwritten: HashMap<ChunkId, u32> = HashMap::new();
        for &p in g.pending.keys() {
            if let Some(Some(loc)) = g.index.get(p as usize - 1) {
                *overwritten.entry(loc.chunk).or_default() += 1;
            }
        }
        let live = |id: &ChunkId, c: &ChunkFile| {
            c.live
                .saturating_sub(overwritten.get(id).copied().unwrap_or(0))
        };
        let budget = self.config.chunk_pages_max(self.page_size());
        // Chunks with few live pages (each small checkpoint writes one) are
        // merged once there are more than SMALL_CHUNKS_MAX of them: every
        // other chunk holds at least half a chunk of live pages, so there
        // are at most about live pages / (chunk / 2) + SMALL_CHUNKS_MAX + 2
        // chunk files (tested in `page_store_space.rs`).
        let small = |live: u32| (live as usize) < budget / 2;
        let small_count = g
            .chunks
            .iter()
            .filter(|(id, c)| c.published && live(id, c) > 0 && small(live(id, c)))
            .count();
        let merge_small = small_count > SMALL_CHUNKS_MAX;
        let mut sparse: Vec<(u32, ChunkId)> = g
            .chunks
            .iter()
            .filter(|(id, c)| {
                let live = live(id, c);
                c.published
                    && live > 0
                    && (u64::from(live) * 2 < u64::from(c.page_count)
                        || (merge_small && small(live)))
            })
            .map(|(id, c)| (live(id, c), *id))
            .collect();
        if sparse.is_empty() {
            return Ok(());
        }
        sparse.sort_unstable();
        let mut chosen = Vec::new();
        let mut total = 0usize;
        for (live, id) in sparse {
            if total + live as usize > budget {
                break;
            }
            total += live as usize;
            chosen.push(id);
        }
        if chosen.is_empty() {
            return Ok(());
        }
        let chosen: std::collections::HashSet<ChunkId> = chosen.into_iter().collect();
        let mut buf = vec![0u8; self.page_size() as usize];
        for p in 0..g.index.len() {
            let Some(loc) = g.index[p] else { continue };
            if !chosen.contains(&loc.chunk) || g.pending.contains_key(&(p as u32 + 1)) {
                continue;
            }
            self.read_at(g, p as u32 + 1, loc, &mut buf)?;
            g.pending.insert(p as u32 + 1, buf.as_slice().into());
        }
        tracing::debug!(
            chunks = chosen.len(),
            pages = total,
            "compacting sparse chunks"
        );
        g.pages_compacted += total as u64;
        Ok(())
    }

    /// Reads and verifies every page the index points at; returns how many.
    pub fn verify_all(&self) -> Result<u64> {
        let g = self.read();
        let mut buf = vec![0u8; self.page_size() as usize];
        let mut checked = 0;
        for (i, loc) in g.index.iter().enumerate() {
            if let Some(loc) = loc {
                self.read_at(&g, i as u32 + 1, *loc, &mut buf)?;
                checked += 1;
            }
        }
        Ok(checked)
    }

    /// Makes every write so far part of the durable store, atomically.
    pub fn publish(&self, manifest: &Manifest) -> Result<()> {
        self.publish_with_base(manifest, None)
    }

    /// [`PageStore::publish`], moving the database's base in the record log
    /// to `base` in the same manifest transaction (a WAL restart: the
    /// records below `base` are the generation these pages complete).
    pub fn publish_with_base(&self, manifest: &Manifest, base: Option<Lsn>) -> Result<()> {
        let mut g = self.write()?;
        if !g.pending.is_empty() || !g.dirty.is_empty() {
            // Only when this publish carries a checkpoint: compaction rides
            // along with real work (in the same chunk file) and never runs
            // on an idle store.
            self.compact(&mut g)?;
        }
        self.spill(&mut g)?;
        if base.is_none()
            && g.dirty.is_empty()
            && g.live_changed.is_empty()
            && g.db_pages == g.published_db_pages
        {
            return Ok(());
        }
        let g = &mut *g;
        let mut batch = PublishBatch {
            db: self.db,
            // The first pages published fix the database's page size.
            page_size: (g.published_db_pages == 0 && g.db_pages > 0).then(|| self.page_size()),
            db_pages: g.db_pages,
            next_chunk_id: g.next_chunk_id,
            base,
            ..Default::default()
        };
        // Invariant 5: a reservation with ids left serves the next
        // checkpoints too (one journal write per CHUNK_RESERVATION chunk
        // files, not per checkpoint); used-up ones are settled here.
        let keep = g.next_chunk_id.0 < g.reserved_end;
        batch.settles = match g.in_flight.split_last() {
            Some((_, used_up)) if keep => used_up.to_vec(),
            _ => g.in_flight.clone(),
        };
        for id in &g.live_changed {
            let c = &g.chunks[id];
            if c.live == 0 {
                batch.removed_chunks.push(*id);
            } else if c.published {
                batch.chunk_live_updates.push((*id, c.live));
            } else {
                batch.new_chunks.push(ChunkMeta {
                    id: *id,
                    page_count: c.page_count,
                    live_pages: c.live,
                });
            }
        }
        for &p in &g.dirty {
            let loc = g.index.get(p as usize - 1).copied().flatten();
            batch.pages.push((PageNo(p), loc));
        }
        if !batch.new_chunks.is_empty() {
            // The new chunk files' directory entries are durable before
            // the manifest names them, and so are the unlinks of earlier
            // publishes: their intents go in this publish's transaction.
            self.io.sync_dir(&self.dir)?;
            g.dir_syncs += 1;
            for intent in g.unlinked.drain(..) {
                manifest.journal_done(intent);
            }
        }
        let deletion = manifest.publish(&batch)?;
        g.in_flight.retain(|id| !batch.settles.contains(id));
        if g.in_flight.is_empty() {
            g.reserved_end = 0;
        }
        for id in &batch.new_chunks {
            g.chunks.get_mut(&id.id).expect("new chunk").published = true;
        }
        for id in &batch.removed_chunks {
            if let Some(c) = g.chunks.remove(id) {
                g.chunks_deleted += 1;
                self.files.remove(*id);
                // Readers that cloned the file handle finish on the unlinked inode.
                self.io.remove_file(&c.path)?;
            }
        }
        if let Some(intent) = deletion {
            // Settled once the unlinks are durable: by the next sync of the
            // directory (the next publish of a chunk, or the close), not
            // one more sync per publish. A crash before it leaves the
            // intent for the replay at open, which finds the files gone
            // or removes them again.
            g.unlinked.push(intent);
        }
        g.dirty.clear();
        g.live_changed.clear();
        g.published_db_pages = g.db_pages;
        Ok(())
    }

    /// Hands the journal intents this page store holds (its chunk-id
    /// reservation, and deletions whose unlinks are not yet durable) to
    /// whoever outlives it: call after the last publish, when the database
    /// closes. The store keeps them (`StoreDir`), so that reopening the
    /// database while the store is open continues the same reservation
    /// (no journal write for the next checkpoint) and the store's close
    /// settles them ([`ChunkIntents::settle`]). Unsettled intents are never
    /// wrong: the journal's replay at the next open finishes them.
    ///
    /// After a panic (the lock poisoned), or with writes not yet published,
    /// nothing is handed over: the replay at the next open settles it.
    pub fn hand_over(&self) -> Option<ChunkIntents> {
        let Ok(mut g) = self.write() else { return None };
        if !(g.pending.is_empty() && g.dirty.is_empty() && g.live_changed.is_empty()) {
            return None;
        }
        Some(ChunkIntents {
            in_flight: std::mem::take(&mut g.in_flight),
            reserved_end: std::mem::take(&mut g.reserved_end),
            unlinked: std::mem::take(&mut g.unlinked),
            dir: self.dir.clone(),
            io: self.io.clone(),
        })
    }

    /// Takes over the intents an earlier page store of this database
    /// handed over ([`PageStore::hand_over`]). A reservation is continued
    /// while its range still has ids ahead of the next chunk; a used-up
    /// one is settled with the next manifest transaction.
    pub fn adopt(&self, intents: ChunkIntents, manifest: &Manifest) {
        let Ok(mut g) = self.write() else { return };
        if g.next_chunk_id.0 < intents.reserved_end {
            g.in_flight = intents.in_flight;
            g.reserved_end = intents.reserved_end;
        } else {
            for id in intents.in_flight {
                manifest.journal_done(id);
            }
        }
        g.unlinked.extend(intents.unlinked);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
