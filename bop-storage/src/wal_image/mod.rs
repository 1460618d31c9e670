//! The WAL image: the bytes of SQLite's `-wal` file as bop keeps them, in
//! the record log.
//!
//! SQLite believes it writes a `-wal` file. bop keeps that file's image as
//! log records: each record is one committed transaction, a contiguous byte
//! range of the image (SQLite's own frame headers and pages, and the 32-byte
//! WAL header when the range starts at offset 0, which starts a new
//! *generation* of the image). Frames of a transaction that is still open
//! are held in `pending` and served from there; they become a record when
//! the transaction is sealed (see [`WalImage::seal`]).
//!
//! Invariants:
//! 1. `committed.records` are the current generation, contiguous from
//!    offset 0: `records[0].wal_offset == 0` and each starts where the
//!    previous ends; `committed.end` is where the last one ends (0 when
//!    empty). They change only under the image lock *and* the `committed`
//!    lock, so [`CommittedView`] can read them with the second alone.
//! 2. `pending` covers `[pending_start, pending_start + pending_len())` and
//!    `pending_start` is `committed.end`, or 0 when the open transaction
//!    restarted the image.
//! 3. `commit_end`, when set, is the end of the last frame whose header
//!    SQLite wrote (as one 24-byte write) with a non-zero "database size"
//!    field: a hint where a transaction ends. `commit_written` says a
//!    write ending there followed (SQLite wrote its page), or the header
//!    was written over the same bytes with its page already there. A seal
//!    ends there when both hold; otherwise (a sync in the middle of a
//!    padding frame, a layered VFS writing whole sectors, which never
//!    gives the hint) at the last whole commit frame in `pending` whose
//!    salts and checksum SQLite's recovery would accept (`sealable_end`).
//!    The frame after it, when `pending` holds part of one (a padding
//!    frame SQLite finishes after its sync), stays in `pending`.
//! 4. When `frames_known`, `frames` lists every frame of `records` in order
//!    (page number and commit size, read from SQLite's frame headers),
//!    `wal_header` is the header of `records[0]`, and each record's
//!    `last_cksum` is its last frame's checksum: what a wal-index needs,
//!    so SQLite can be spared reading the whole image again at open
//!    ([`WalImage::wal_index_seed`]).
//! 5. `committed.restarting` is true whenever the open transaction
//!    restarts the image (`pending_start == 0`) while records exist: then
//!    bytes below `committed.end` may be the open transaction's, and only
//!    the [`WalImage`] (under the image lock) can say which.
//!
//! Files: `committed.rs` holds the committed records, readable without
//! the image lock ([`CommittedView`]); `frame_cache.rs` does the reads
//! planned here and there, from the page cache when a durable commit put
//! its pages there. SQLite's frame format is read with `wal_format.rs`.
//!
//! Lock order: the image lock (the store's `Mutex<WalImage>`), then
//! `committed`; nothing is taken under `committed`, and no I/O runs under
//! it. A reader that takes `committed` alone ([`CommittedView::plan_read`])
//! never waits for a commit's I/O, which happens under the image lock
//! only. Under the image lock, a commit takes the record log's lock
//! (`SharedLog`, through `log`).

use crate::cache::{self, CacheKey};
use crate::error::{Result, StorageError};
use crate::log::record::RECORD_HEADER_LEN;
use crate::log::{RecordLoc, RecoveredRecord, SharedLog};
use crate::manifest::Manifest;
use crate::page_store::PageStore;
use crate::types::DbId;
use crate::types::Lsn;
use crate::wal_format::{frame_cksum, parse_record, FrameCheck, GenerationState};
use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

mod committed;
mod frame_cache;
mod retained;

pub use committed::CommittedView;
use committed::{Committed, ImageRecord};
pub use frame_cache::{frame_cache_hits, FrameCache, RecordRead, CACHE_AT_COMMIT_RECORD_MAX_BYTES};
pub(crate) use retained::apply_generation;
use retained::Retained;

pub use crate::wal_format::{
    FrameInfo, RecordFrames, SQLITE_FRAME_HEADER_LEN, SQLITE_WAL_HEADER_LEN,
};

/// Capacity of the pending buffer kept between transactions.
const PENDING_KEEP_BYTES: usize = 8 << 20;

/// What a wal-index is built from: the image's WAL header, every frame in
/// order, and the checksum of the last frame (invariant 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalIndexSeed {
    pub header: [u8; SQLITE_WAL_HEADER_LEN as usize],
    pub frames: Vec<FrameInfo>,
    pub last_cksum: [u32; 2],
}

/// Counters of the WAL image.
#[derive(Clone, Copy, Debug, Default)]
pub struct WalImageStats {
    pub records: u64,
    pub record_bytes: u64,
    /// Pages durable commits copied into the page cache when sealed.
    pub frames_cached_at_commit: u64,
    /// Calls of `seal_for_sync`: SQLite's xSync of the WAL (durable commits).
    pub sync_calls: u64,
    pub generations: u64,
    /// Generations kept in the log at their restart instead of published
    /// (`retained.rs`), and the log bytes retained now (filled in by
    /// [`WalImage::stats`]).
    pub generations_retained: u64,
    pub retained_bytes: u64,
    pub pending_bytes: u64,
    pub pending_bytes_peak: u64,
}

#[derive(Debug)]
pub struct WalImage {
    /// The store's record log, shared with its other databases.
    pub(crate) log: Arc<SharedLog>,
    /// This database within the store.
    pub(crate) db: DbId,
    /// Invariants 1 and 5.
    committed: Arc<RwLock<Committed>>,
    frame_cache: FrameCache,
    /// The page cache key of the newest frame of each page this image put
    /// there when sealing (one entry per page of the current generation,
    /// at most: bounded like `frames`).
    cached_frames: HashMap<u32, CacheKey>,
    /// `RECORD_HEADER_LEN` bytes of room, then the pending image bytes, so a
    /// sealed transaction is written with one call and no copy.
    pending: Vec<u8>,
    pending_start: u64,
    commit_end: Option<u64>,
    /// A write ending at `commit_end` came after its header: SQLite wrote
    /// that frame's page (invariant 3).
    commit_written: bool,
    frame_len: u64,
    max_txn_bytes: u64,
    /// Invariant 4.
    frames: Vec<FrameInfo>,
    wal_header: Option<[u8; SQLITE_WAL_HEADER_LEN as usize]>,
    frames_known: bool,
    generation: GenerationState,
    /// Earlier generations kept in the log (invariants 6 and 7).
    retained: Retained,
    /// The `-wal` file exists (opened or holding records).
    pub exists: bool,
    /// The thread of the connection holding SQLite's WAL write lock, when
    /// SQLite uses shared-memory locks (not in `locking_mode=EXCLUSIVE`).
    /// Only that thread may seal: another connection's xSync (a concurrent
    /// checkpointer) must not seal a transaction whose commit frame is
    /// written but whose frame checksums SQLite is still rewriting.
    pub writer: Option<std::thread::ThreadId>,
    pub stats: WalImageStats,
}

impl WalImage {
    pub fn new(
        log: Arc<SharedLog>,
        db: DbId,
        recovered: Vec<RecoveredRecord>,
        page_size: u32,
        max_txn_bytes: u64,
    ) -> Result<WalImage> {
        // Keep the newest generation: from the last record at offset 0.
        let start = recovered.iter().rposition(|r| r.wal_offset == 0);
        let mut records = Vec::new();
        let mut end = 0;
        let mut frames = Vec::new();
        let mut wal_header = None;
        let mut frames_known = true;
        if let Some(start) = start {
            for r in &recovered[start..] {
                if r.wal_offset != end {
                    return Err(StorageError::corrupt(
                        &r.loc.segment.path,
                        r.loc.payload_offset,
                        format!(
                            "log record {} continues the WAL image at {} instead of {end}",
                            r.loc.lsn, r.wal_offset
                        ),
                    ));
                }
                end += u64::from(r.loc.payload_len);
                let mut last_cksum = [0, 0];
                match &r.frames {
                    Some(f) if frames_known => {
                        if r.wal_offset == 0 {
                            wal_header = f.header;
                        }
                        frames.extend_from_slice(&f.frames);
                        last_cksum = f.last_cksum;
                    }
                    _ => frames_known = false,
                }
                records.push(ImageRecord {
                    wal_offset: r.wal_offset,
                    loc: r.loc.clone(),
                    last_cksum,
                    pages_cached: false,
                });
            }
        } else if let Some(r) = recovered.first() {
            return Err(StorageError::corrupt(
                &r.loc.segment.path,
                r.loc.payload_offset,
                "log records do not start a WAL image (none is at offset 0)",
            ));
        }
        let exists = !records.is_empty();
        if !frames_known {
            frames.clear();
            wal_header = None;
        }
        let mut generation = GenerationState::default();
        if let Some(h) = &wal_header {
            generation.resume(h);
        }
        Ok(WalImage {
            log,
            db,
            committed: Arc::new(RwLock::new(Committed {
                records,
                end,
                restarting: false,
            })),
            frame_cache: FrameCache {
                owner: cache::next_owner_id(),
                page_len: page_size as usize,
            },
            cached_frames: HashMap::new(),
            pending: vec![0; RECORD_HEADER_LEN],
            pending_start: end,
            commit_end: None,
            commit_written: false,
            frame_len: SQLITE_FRAME_HEADER_LEN + u64::from(page_size),
            max_txn_bytes,
            frames,
            wal_header,
            frames_known,
            generation,
            retained: Retained::default(),
            exists,
            writer: None,
            stats: WalImageStats::default(),
        })
    }

    /// Gives the image another page size while it holds nothing (the
    /// database's page size changed before its first write); returns
    /// whether the image's page size is now `page_size`.
    pub fn set_page_size_while_empty(&mut self, page_size: u32) -> bool {
        let empty = self.committed().records.is_empty()
            && self.committed_end() == 0
            && self.pending.len() == RECORD_HEADER_LEN
            && self.commit_end.is_none();
        if empty {
            self.frame_cache.page_len = page_size as usize;
            self.frame_len = SQLITE_FRAME_HEADER_LEN + u64::from(page_size);
        }
        empty || self.frame_cache.page_len == page_size as usize
    }

    /// The committed image, read under the image lock.
    fn committed(&self) -> RwLockReadGuard<'_, Committed> {
        self.committed.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The committed image, changed under the image lock (invariant 1).
    fn committed_mut(&self) -> RwLockWriteGuard<'_, Committed> {
        self.committed.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A handle that reads committed bytes without the image lock.
    pub fn view(&self) -> CommittedView {
        CommittedView {
            committed: self.committed.clone(),
            frames: self.frame_cache,
        }
    }

    /// Copies the pages of a record just written into the page cache
    /// (`payload` is the record's image bytes, starting at WAL offset
    /// `wal_offset`).
    fn cache_frames(&mut self, loc: &RecordLoc, wal_offset: u64, payload_len: usize) {
        let payload = &self.pending[RECORD_HEADER_LEN..RECORD_HEADER_LEN + payload_len];
        let end = wal_offset + payload_len as u64;
        let mut frame = wal_offset.max(SQLITE_WAL_HEADER_LEN);
        debug_assert!((frame - SQLITE_WAL_HEADER_LEN).is_multiple_of(self.frame_len));
        while frame + self.frame_len <= end {
            let header_at = (frame - wal_offset) as usize;
            let pgno = u32::from_be_bytes(
                payload[header_at..header_at + 4]
                    .try_into()
                    .expect("4 bytes"),
            );
            let within = frame + SQLITE_FRAME_HEADER_LEN - wal_offset;
            let page = &payload[within as usize..within as usize + self.frame_cache.page_len];
            let key = self.frame_cache.key(loc, within);
            let older = self.cached_frames.insert(pgno, key);
            cache::global().replace(older.as_ref(), key, page);
            self.stats.frames_cached_at_commit += 1;
            frame += self.frame_len;
        }
    }

    /// Drops the page cache entries of the generation SQLite is done with.
    fn forget_cached_frames(&mut self) {
        for (_, key) in self.cached_frames.drain() {
            cache::global().remove(&key);
        }
        // Do not keep the memory of one huge generation for ever.
        self.cached_frames.shrink_to(1024);
    }

    fn committed_end(&self) -> u64 {
        self.committed().end
    }

    fn pending_len(&self) -> u64 {
        (self.pending.len() - RECORD_HEADER_LEN) as u64
    }

    fn pending_active(&self) -> bool {
        self.pending.len() > RECORD_HEADER_LEN
    }

    /// Size of the `-wal` file as SQLite sees it.
    pub fn size(&self) -> u64 {
        let end = self.committed_end();
        if self.pending_active() {
            end.max(self.pending_start + self.pending_len())
        } else {
            end
        }
    }

    /// Records SQLite writing `data` at `offset` of the `-wal` file.
    ///
    /// A VFS layered over bop may rewrite whole sectors around SQLite's
    /// writes: bytes already committed (and the WAL header at offset 0)
    /// rewritten unchanged are accepted and skipped; a write that would
    /// change committed bytes is refused ([`StorageError::Refused`]), and
    /// only that write fails.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        if offset == 0 && !self.is_current_header(data)? {
            // A new WAL header: the open transaction restarts the image.
            self.pending.truncate(RECORD_HEADER_LEN);
            self.pending_start = 0;
            self.commit_end = None;
            let mut c = self.committed_mut();
            c.restarting = !c.records.is_empty();
        } else if !self.pending_active() {
            let end = {
                let mut c = self.committed_mut();
                c.restarting = false;
                c.end
            };
            self.pending_start = end;
        }
        let skip = self.committed_prefix_unchanged(offset, data)?;
        let (offset, data) = (offset + skip as u64, &data[skip..]);
        if data.is_empty() {
            return Ok(());
        }
        let rel = (offset - self.pending_start) as usize;
        let end = rel + data.len();
        if end as u64 > self.max_txn_bytes {
            return Err(StorageError::Limit(format!(
                "transaction exceeds max_txn_bytes ({} bytes); raise the limit (URI parameter max_txn_mb) or commit in smaller transactions",
                self.max_txn_bytes
            )));
        }
        let need = RECORD_HEADER_LEN + end;
        // A commit header written again over the same bytes, its page
        // already there (the libSQL front end writes a transaction's frames
        // in one write, then the commit frame's header on its own): the
        // cumulative checksum in it covers that page.
        let rewritten_whole = data.len() as u64 == SQLITE_FRAME_HEADER_LEN
            && self.pending.get(RECORD_HEADER_LEN + rel..need) == Some(data)
            && self.pending_len() >= rel as u64 + self.frame_len;
        if self.pending.len() < need {
            self.pending.resize(need, 0);
        }
        self.pending[RECORD_HEADER_LEN + rel..need].copy_from_slice(data);
        self.stats.pending_bytes = self.pending_len();
        self.stats.pending_bytes_peak = self.stats.pending_bytes_peak.max(self.stats.pending_bytes);
        // A frame header with a non-zero "database size after commit" field
        // ends a transaction; the write that ends at its frame's end, its page.
        let write_end = offset + data.len() as u64;
        if data.len() as u64 == SQLITE_FRAME_HEADER_LEN
            && offset >= SQLITE_WAL_HEADER_LEN
            && (offset - SQLITE_WAL_HEADER_LEN).is_multiple_of(self.frame_len)
            && u32::from_be_bytes(data[4..8].try_into().expect("4 bytes")) != 0
        {
            let frame_end = offset + self.frame_len;
            if self.commit_end.is_none_or(|e| frame_end > e) {
                self.commit_end = Some(frame_end);
                self.commit_written = rewritten_whole;
            }
        } else if self.commit_end == Some(write_end) {
            self.commit_written = true;
        }
        Ok(())
    }

    /// Whether `data`, written at offset 0, begins with the header of the
    /// current generation (a layered VFS rewriting the first sector), not
    /// a new header that restarts the image. SQLite never restarts with
    /// the same header (salt-1 grows by one); a header SQLite would not
    /// accept is taken as a restart, as before.
    fn is_current_header(&self, data: &[u8]) -> Result<bool> {
        const H: usize = SQLITE_WAL_HEADER_LEN as usize;
        if data.len() < H || self.size() < H as u64 {
            return Ok(false);
        }
        let mut current = [0u8; H];
        self.read_exact_at(0, &mut current)?;
        Ok(data[..H] == current && FrameCheck::from_header(&current).is_some())
    }

    /// How many leading bytes of a write of `data` at `offset` fall below
    /// `pending_start` (committed, or being restarted past): they must equal
    /// what is there.
    fn committed_prefix_unchanged(&self, offset: u64, data: &[u8]) -> Result<usize> {
        if offset >= self.pending_start {
            return Ok(0);
        }
        let n = ((self.pending_start - offset) as usize).min(data.len());
        let mut now = vec![0u8; n];
        self.read_exact_at(offset, &mut now)?;
        match now.iter().zip(&data[..n]).position(|(a, b)| a != b) {
            None => Ok(n),
            Some(i) => Err(StorageError::Refused(format!(
                "a write of {} bytes at WAL offset {offset} would change committed byte {} (committed up to {}); a VFS layered over bop may rewrite committed bytes only unchanged",
                data.len(),
                offset + i as u64,
                self.pending_start
            ))),
        }
    }

    /// Reads `buf.len()` bytes of the image at `offset` under the image
    /// lock; they must lie inside the image.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut reads = Vec::new();
        let n = self.plan_read(offset, buf, &mut reads);
        for r in reads {
            self.frame_cache
                .read(&r, &mut buf[r.buf_at..r.buf_at + r.len])?;
        }
        if n < buf.len() {
            return Err(StorageError::Invariant(format!(
                "reading {} bytes at WAL offset {offset}: the image ends at {}",
                buf.len(),
                self.size()
            )));
        }
        Ok(())
    }

    /// The frame check of the image's current generation: from the header
    /// in `pending` when the open transaction restarts the image, else
    /// from the generation state, else read from the image.
    fn frame_check(&self) -> Result<Option<FrameCheck>> {
        const H: usize = SQLITE_WAL_HEADER_LEN as usize;
        let check = if self.pending_start == 0 {
            let Some(h) = self.pending.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + H) else {
                return Ok(None);
            };
            FrameCheck::from_header(h.try_into().expect("32 bytes"))
        } else if let Some(c) = self.generation.check() {
            Some(c)
        } else {
            let mut h = [0u8; H];
            self.read_exact_at(0, &mut h)?;
            FrameCheck::from_header(&h)
        };
        Ok(check.filter(|c| c.frame_len == self.frame_len))
    }

    /// Whether the frame ending at `end` lies in `pending` and is a commit
    /// frame SQLite's recovery accepts (see [`FrameCheck::is_valid_commit`]).
    fn is_sealable_commit(&self, check: &FrameCheck, end: u64) -> Result<bool> {
        let start = end - self.frame_len;
        if start < self.pending_start.max(SQLITE_WAL_HEADER_LEN)
            || end > self.pending_start + self.pending_len()
        {
            return Ok(false);
        }
        let at = |o: u64| RECORD_HEADER_LEN + (o - self.pending_start) as usize;
        let frame = &self.pending[at(start)..at(end)];
        if frame[4..8] == [0; 4] {
            return Ok(false); // not a commit frame
        }
        let prev = if start == SQLITE_WAL_HEADER_LEN {
            check.header_cksum()
        } else if start - self.frame_len >= self.pending_start {
            frame_cksum(&self.pending[at(start - self.frame_len)..at(start)])
        } else if let Some(r) = self
            .committed()
            .records
            .last()
            .filter(|_| self.frames_known)
        {
            r.last_cksum
        } else {
            let mut h = [0u8; SQLITE_FRAME_HEADER_LEN as usize];
            self.read_exact_at(start - self.frame_len, &mut h)?;
            frame_cksum(&h)
        };
        Ok(check.is_valid_commit(frame, prev))
    }

    /// Where the pending bytes can be sealed: the end of the last whole,
    /// valid commit frame in them. SQLite may sync in the middle of a
    /// frame (padding a commit to the sector size of a VFS that does not
    /// claim power-safe overwrite: `walWriteToLog` syncs at the sector
    /// boundary, then writes the rest of that padding frame), and a
    /// layered VFS may write whole sectors, so neither the extent of
    /// `pending` nor the commit header last written is trusted alone.
    fn sealable_end(&self) -> Result<Option<u64>> {
        if !self.pending_active() {
            return Ok(None);
        }
        let written = self.pending_start + self.pending_len();
        if let Some(e) = self
            .commit_end
            .filter(|&e| self.commit_written && e <= written)
        {
            // SQLite's own order of writes: header, then page.
            return Ok(Some(e));
        }
        let Some(check) = self.frame_check()? else {
            // No header SQLite would accept: the frame header seen last.
            return Ok(self.commit_end.filter(|&e| e <= written));
        };
        if let Some(e) = self.commit_end {
            if self.is_sealable_commit(&check, e)? {
                return Ok(Some(e));
            }
        }
        let first = self.pending_start.max(SQLITE_WAL_HEADER_LEN);
        if written < first + self.frame_len {
            return Ok(None);
        }
        let mut end = first + (written - first) / self.frame_len * self.frame_len;
        while end > first {
            if Some(end) != self.commit_end && self.is_sealable_commit(&check, end)? {
                return Ok(Some(end));
            }
            end -= self.frame_len;
        }
        Ok(None)
    }

    /// Plans a read of `buf.len()` bytes at `offset`: bytes of the open
    /// transaction are copied now (under the image lock); bytes in records
    /// are returned as reads to do after the lock is released (records are
    /// immutable and their segment stays open while a `RecordLoc` lives).
    /// Returns how many bytes are inside the file (the rest is zeroed).
    pub fn plan_read(&self, offset: u64, buf: &mut [u8], out: &mut Vec<RecordRead>) -> usize {
        let size = self.size();
        let c = self.committed();
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            if pos >= size {
                buf[done..].fill(0);
                return done;
            }
            let pend_end = self.pending_start + self.pending_len();
            if self.pending_active() && pos >= self.pending_start && pos < pend_end {
                let n = ((pend_end - pos) as usize).min(buf.len() - done);
                let from = RECORD_HEADER_LEN + (pos - self.pending_start) as usize;
                buf[done..done + n].copy_from_slice(&self.pending[from..from + n]);
                done += n;
                continue;
            }
            let i = c.records.partition_point(|r| r.wal_offset <= pos) - 1;
            let r = &c.records[i];
            let within = pos - r.wal_offset;
            let n = (u64::from(r.loc.payload_len).saturating_sub(within) as usize)
                .min(buf.len() - done);
            if n == 0 {
                // Records not contiguous (invariant 1 broken): end the read
                // here rather than loop.
                debug_assert!(false, "invariant 1: no record holds WAL offset {pos}");
                buf[done..].fill(0);
                return done;
            }
            out.push(RecordRead {
                loc: r.loc.clone(),
                within,
                buf_at: done,
                len: n,
                pages_cached: r.pages_cached,
            });
            done += n;
        }
        done
    }

    /// Turns the pending transaction, if it is complete, into one log record
    /// written with one call. Frames after the commit frame (left over from
    /// a rolled-back transaction) are discarded.
    pub fn seal(&mut self, manifest: &Manifest, pages: &PageStore) -> Result<()> {
        self.seal_inner(manifest, pages, false)
    }

    /// Seals like [`WalImage::seal`]; with `defer_write` the record may
    /// wait in the flush buffer for the sync the caller waits for next.
    fn seal_inner(
        &mut self,
        manifest: &Manifest,
        pages: &PageStore,
        defer_write: bool,
    ) -> Result<()> {
        let Some(commit_end) = self.sealable_end()? else {
            return Ok(());
        };
        let len = (commit_end - self.pending_start) as usize;
        // The frame after the commit, when SQLite is still writing it (a
        // padding frame split at a sync point), stays pending: it is sealed
        // with the next commit. Anything further (frames of a transaction
        // that rolled back) is discarded.
        let carry_end = (self.pending_start + self.pending_len()).min(commit_end + self.frame_len);
        let carried =
            self.pending[RECORD_HEADER_LEN + len..][..(carry_end - commit_end) as usize].to_vec();
        let carried_commit = self.commit_end.take().filter(|&e| e > commit_end);
        self.pending.truncate(RECORD_HEADER_LEN + len);
        let restart = self.pending_start == 0;
        let base_recorded = if restart && !self.committed().records.is_empty() {
            self.end_generation(manifest, pages)?
        } else {
            false
        };
        // Read the frame headers now (a few per commit); applied below once
        // the record is written.
        let mut generation = self.generation;
        let parsed = parse_record(
            &mut generation,
            self.pending_start,
            &self.pending[RECORD_HEADER_LEN..],
        );
        let result = self.log.append(
            manifest,
            self.db,
            &mut self.pending,
            self.pending_start,
            defer_write,
            parsed.as_ref(),
        );
        let pending_start = self.pending_start;
        let mut pages_cached = false;
        if let Ok(loc) = &result {
            if restart {
                self.forget_cached_frames();
            }
            if defer_write && len as u64 <= CACHE_AT_COMMIT_RECORD_MAX_BYTES {
                self.cache_frames(loc, pending_start, len);
                pages_cached = true;
            }
        }
        self.pending.truncate(RECORD_HEADER_LEN);
        // Do not keep the memory of one huge transaction for ever.
        self.pending.shrink_to(PENDING_KEEP_BYTES);
        self.stats.pending_bytes = 0;
        let loc = result?;
        self.stats.records += 1;
        self.stats.record_bytes += len as u64;
        if restart {
            self.stats.generations += 1;
            // Release the old records first so their segments can be reused.
            let had_old = !self.committed_mut().take().is_empty();
            self.frames.clear();
            self.wal_header = None;
            self.frames_known = true;
            if had_old && base_recorded {
                // Recorded above (the base there is at most `loc.lsn`, and
                // this database has no record between the two). A retained
                // generation keeps the base where it is (invariant 6).
                self.log.set_base(manifest, self.db, loc.lsn, true, true)?;
            }
        }
        debug_assert_eq!(pending_start, self.committed_end(), "invariant 1");
        self.generation = generation;
        let mut last_cksum = [0, 0];
        match parsed {
            Some(f) if self.frames_known => {
                if restart {
                    self.wal_header = f.header;
                }
                self.frames.extend_from_slice(&f.frames);
                last_cksum = f.last_cksum;
            }
            _ => {
                self.frames_known = false;
                self.frames = Vec::new();
                self.wal_header = None;
            }
        }
        let end = pending_start + len as u64;
        {
            let mut c = self.committed_mut();
            c.records.push(ImageRecord {
                wal_offset: pending_start,
                loc,
                last_cksum,
                pages_cached,
            });
            c.end = end;
            debug_assert!(!c.restarting, "invariant 5");
        }
        self.pending_start = end;
        self.pending.extend_from_slice(&carried);
        self.commit_end = carried_commit;
        self.commit_written = false;
        self.stats.pending_bytes = self.pending_len();
        self.exists = true;
        Ok(())
    }

    /// Whether the calling thread may seal: it holds the write lock, or no
    /// one holds it through shared memory (exclusive locking mode).
    pub fn may_seal(&self) -> bool {
        self.writer.is_none_or(|t| t == std::thread::current().id())
    }

    /// Seals (if this thread may) and returns the LSN that must become
    /// durable: the caller waits for it outside the image lock.
    pub fn seal_for_sync(&mut self, manifest: &Manifest, pages: &PageStore) -> Result<Lsn> {
        self.stats.sync_calls += 1;
        self.seal_for_durability(manifest, pages)
    }

    /// The generation in the image ends (a restart's first record is being
    /// sealed; SQLite checkpointed all of it: it restarts only then). Either
    /// it is retained (its records stay in the log, its pages pending:
    /// `retained.rs`), or everything checkpointed is published and the
    /// database's base moved past its records (and the retained ones) in
    /// one manifest transaction, before the new generation's record exists
    /// (it gets a later LSN). A crash between the two leaves an empty WAL
    /// image over the checkpointed pages: the same database. Returns
    /// whether the base moved.
    fn end_generation(&mut self, manifest: &Manifest, pages: &PageStore) -> Result<bool> {
        if self.may_retain(pages) {
            self.retain_generation();
            return Ok(false);
        }
        pages.publish_with_base(manifest, Some(self.log.next_lsn()))?;
        self.retained.clear();
        Ok(true)
    }

    /// Payload bytes of the current generation's records.
    fn record_bytes(&self) -> u64 {
        self.committed()
            .records
            .iter()
            .map(|r| u64::from(r.loc.payload_len))
            .sum()
    }

    /// Whether the current generation, complete (SQLite checkpointed all of
    /// it), may be retained instead of published: the image knows its
    /// frames, the pending pages are few and all copies of retained or
    /// current frames (invariant 7), and the retained records stay within
    /// `publish_defer_log_bytes_max`.
    fn may_retain(&self, pages: &PageStore) -> bool {
        if !self.frames_known {
            return false;
        }
        if self.retained.bytes + self.record_bytes() > pages.defer_log_bytes_max() {
            return false;
        }
        pages
            .deferrable_pending()
            .is_some_and(|pgnos| self.holds_frames_for(&pgnos))
    }

    /// Adds the current generation to the retained ones (call before its
    /// records leave the image).
    fn retain_generation(&mut self) {
        let first = self.committed().records.first().map(|r| r.loc.lsn);
        if let Some(first) = first {
            self.retained.first_lsn.get_or_insert(first);
        }
        self.retained.bytes += self.record_bytes();
        self.retained
            .pgnos
            .extend(self.frames.iter().map(|f| f.pgno));
        self.stats.generations_retained += 1;
    }

    /// The image's counters, with the log bytes retained now.
    pub fn stats(&self) -> WalImageStats {
        WalImageStats {
            retained_bytes: self.retained.bytes,
            ..self.stats
        }
    }

    /// Whether earlier generations are retained (`retained.rs`).
    pub fn has_retained(&self) -> bool {
        !self.retained.is_empty()
    }

    /// Publishes every pending page and moves the database's base past the
    /// retained generations (to the current generation's first record, or
    /// past every record when the image is empty) in one manifest
    /// transaction; a plain publish when nothing is retained.
    pub fn publish_all(&mut self, manifest: &Manifest, pages: &PageStore) -> Result<()> {
        if self.retained.is_empty() {
            return pages.publish(manifest);
        }
        let first = self.committed().records.first().map(|r| r.loc.lsn);
        let base = first.unwrap_or_else(|| self.log.next_lsn());
        pages.publish_with_base(manifest, Some(base))?;
        self.log
            .set_base(manifest, self.db, base, first.is_some(), true)?;
        self.retained.clear();
        Ok(())
    }

    /// Whether every page in `pgnos` has a frame in the image's records or
    /// a retained generation's (known only when the image knows its
    /// frames, invariant 4), and the image holds records: the pages a
    /// checkpoint writes to the database are copies of such frames.
    pub fn holds_frames_for(&self, pgnos: &[u32]) -> bool {
        if !self.frames_known || self.committed().records.is_empty() {
            return false;
        }
        // Few pages (a deferrable checkpoint's), many frames: look for the
        // pages, not a set of every frame.
        let mut missing: std::collections::HashSet<u32> = pgnos
            .iter()
            .copied()
            .filter(|p| !self.retained.pgnos.contains(p))
            .collect();
        for f in self.frames.iter().rev() {
            if missing.is_empty() {
                break;
            }
            missing.remove(&f.pgno);
        }
        missing.is_empty()
    }

    /// [`WalImage::seal_for_sync`] without counting a sync of SQLite's:
    /// what a deferred publish waits for (`Store::db_sync`).
    pub fn seal_for_durability(&mut self, manifest: &Manifest, pages: &PageStore) -> Result<Lsn> {
        if self.may_seal() {
            self.seal_inner(manifest, pages, true)?;
        }
        Ok(self.log.written_lsn())
    }

    /// Empties the image (SQLite truncated the `-wal` file to 0 or deleted
    /// it). Its generation is retained (`retained.rs`), or checkpointed
    /// pages are published and the database's base moved past the image's
    /// records in one manifest transaction: the records are never replayed
    /// again once the pages they made are durable.
    pub fn reset(&mut self, manifest: &Manifest, pages: &PageStore) -> Result<()> {
        let had_records = !self.committed().records.is_empty();
        if had_records && self.may_retain(pages) {
            // Kept in the log; published with a later publish (invariant 6).
            self.retain_generation();
        } else {
            let base = (had_records || !self.retained.is_empty()).then(|| self.log.next_lsn());
            pages.publish_with_base(manifest, base)?;
            if let Some(base) = base {
                self.log.set_base(manifest, self.db, base, false, true)?;
            }
            self.retained.clear();
        }
        self.pending.truncate(RECORD_HEADER_LEN);
        self.commit_end = None;
        self.committed_mut().take();
        self.frames.clear();
        self.forget_cached_frames();
        self.wal_header = None;
        self.frames_known = true;
        self.pending_start = 0;
        Ok(())
    }

    /// SQLite truncated the `-wal` file to `size` bytes.
    pub fn truncate(&mut self, manifest: &Manifest, pages: &PageStore, size: u64) -> Result<()> {
        if size == 0 {
            return self.reset(manifest, pages);
        }
        if self.pending_active()
            && size < self.pending_start + self.pending_len()
            && size >= self.pending_start
        {
            let keep = (size - self.pending_start) as usize;
            self.pending.truncate(RECORD_HEADER_LEN + keep);
            if self.commit_end.is_some_and(|e| e > size) {
                self.commit_end = None;
            }
        }
        // Committed frames of the current generation are never cut: SQLite
        // only truncates frames it no longer needs (journal_size_limit).
        Ok(())
    }

    /// Takes the records of the current image (the database is closing).
    pub fn take_records(&mut self) -> Vec<RecoveredRecord> {
        self.forget_cached_frames();
        let records = self.committed_mut().take();
        let known = self.frames_known;
        let all_frames = std::mem::take(&mut self.frames);
        let mut header = self.wal_header.take();
        let mut next_frame = 0usize;
        let frame_len = self.frame_len;
        records
            .into_iter()
            .map(|r| {
                let frames = known.then(|| {
                    let body = u64::from(r.loc.payload_len)
                        - if r.wal_offset == 0 {
                            SQLITE_WAL_HEADER_LEN
                        } else {
                            0
                        };
                    let n = (body / frame_len) as usize;
                    let f = all_frames[next_frame..next_frame + n].to_vec();
                    next_frame += n;
                    RecordFrames {
                        header: if r.wal_offset == 0 {
                            header.take()
                        } else {
                            None
                        },
                        frames: f,
                        last_cksum: r.last_cksum,
                    }
                });
                RecoveredRecord {
                    db: self.db,
                    loc: r.loc,
                    wal_offset: r.wal_offset,
                    frames,
                }
            })
            .collect()
    }

    /// What a wal-index of the committed image is built from, when bop
    /// knows every frame of it (invariant 4) and no transaction is open.
    pub fn wal_index_seed(&self) -> Option<WalIndexSeed> {
        if !self.frames_known || self.pending_active() {
            return None;
        }
        let last_cksum = self.committed().records.last()?.last_cksum;
        debug_assert_eq!(self.frames.len() as u64, self.frame_count(), "invariant 4");
        Some(WalIndexSeed {
            header: self.wal_header?,
            frames: self.frames.clone(),
            last_cksum,
        })
    }

    /// The records of the current image (for verification outside the lock).
    pub fn record_locs(&self) -> Vec<RecordLoc> {
        self.committed()
            .records
            .iter()
            .map(|r| r.loc.clone())
            .collect()
    }

    pub fn frame_count(&self) -> u64 {
        self.committed_end().saturating_sub(SQLITE_WAL_HEADER_LEN) / self.frame_len
    }

    pub fn record_count(&self) -> usize {
        self.committed().records.len()
    }
}

/// Builds page 1 of an empty database in WAL mode: SQLite sees a valid,
/// empty database whose header already selects WAL (bytes 18 and 19 = 2).
pub fn empty_database_page1(page_size: u32) -> Vec<u8> {
    let mut p = vec![0u8; page_size as usize];
    p[..16].copy_from_slice(b"SQLite format 3\0");
    let encoded_size: u16 = if page_size == 65536 {
        1
    } else {
        page_size as u16
    };
    p[16..18].copy_from_slice(&encoded_size.to_be_bytes());
    p[18] = 2; // file format write version: WAL
    p[19] = 2; // file format read version: WAL
    p[21] = 64; // max embedded payload fraction
    p[22] = 32; // min embedded payload fraction
    p[23] = 32; // leaf payload fraction
    p[24..28].copy_from_slice(&1u32.to_be_bytes()); // change counter
    p[28..32].copy_from_slice(&1u32.to_be_bytes()); // database size in pages
    p[92..96].copy_from_slice(&1u32.to_be_bytes()); // version-valid-for
    p[96..100].copy_from_slice(&3_040_001u32.to_be_bytes()); // SQLITE_VERSION_NUMBER
                                                             // B-tree page header of the empty sqlite_schema table: a leaf table page.
    p[100] = 0x0d;
    let content_start: u16 = if page_size == 65536 {
        0
    } else {
        page_size as u16
    };
    p[105..107].copy_from_slice(&content_start.to_be_bytes());
    p
}
