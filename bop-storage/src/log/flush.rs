//! The write and flush controllers: how the bytes written to the record log
//! become durable, within bounds.
//!
//! **Writes.** Records are appended to the active segment under the record
//! log's lock ([`Flusher::write_record`]): the bytes go into the *unsynced
//! buffer*. A commit under `synchronous=NORMAL` writes them to the file at
//! once (so it survives the process being killed, as SQLite's do); a
//! commit under FULL, which waits for a sync anyway, leaves them in the
//! buffer, and the sync's leader writes everything buffered with one call
//! before it syncs: commits that meet share the write as well as the sync.
//! When the file wants aligned writes (direct I/O), each write covers
//! whole aligned blocks of the buffer, rewriting the partial block at the
//! tail.
//!
//! **Syncs** of commits run outside the image lock and the record log's
//! lock, one at a time per record log, by a *leader*: the committer that
//! needs them first under `synchronous=FULL` ([`Flusher::wait_durable`];
//! commits that arrive while a sync is running wait for it and then share
//! the next one), or a flush worker from the process-wide pool once the
//! buffer passes half its bound (commits under `synchronous=NORMAL` go on
//! filling the buffer meanwhile).
//!
//! **Fused write and sync.** Where the segment file fuses a write with
//! the sync after it ([`IoFile::fuses_durable_writes`]: io_uring submits
//! them as one linked pair), the leader's first write and its sync are one
//! [`IoFile::write_durable_at`] of a copy of the buffer, made without
//! holding the state lock, as a direct write is (invariant 4); so are a
//! large record's write and sync. A failed fused call is a failed sync:
//! it is retried as below, by a rewrite and then a sync.
//!
//! [`IoFile::fuses_durable_writes`]: crate::io::IoFile::fuses_durable_writes
//! [`IoFile::write_durable_at`]: crate::io::IoFile::write_durable_at
//!
//! **Retries.** A failed `fdatasync` is retried at most
//! `FlushConfig::retries_max` times with exponential backoff. Each retry
//! first *rewrites* the unsynced buffer: after a writeback error Linux may
//! have dropped the dirty pages, so a second `fdatasync` that succeeds
//! proves nothing about them. When the retries are spent the store fails:
//! it refuses writes with the error, and every waiting committer gets it.
//!
//! **Bounds.** The buffer holds at most `unsynced_max_bytes` plus one
//! record (a record larger than half the bound is written from the caller's
//! memory: synced on its own under FULL, by the next sync under NORMAL). A
//! writer that finds the buffer full waits for a flush at most
//! `backpressure_wait_max_ms` before it may start a transaction, then gets
//! [`StorageError::Busy`] (SQLITE_BUSY): never unbounded memory. The worker
//! pool has a fixed number of threads and a bounded queue (each record log
//! is queued at most once).
//!
//! Invariants (the state behind `Flusher::st`):
//! 1. `durable <= written`; every record up to `written` is in the file.
//! 2. `buf` holds exactly the segment's bytes `[buf_start, buf_start +
//!    buf.len())`, `buf_start` is a multiple of `ALIGN`, everything below
//!    `buf_start` is durable, and everything below `file_end` is in the
//!    file (bytes from `file_end` on are only in the buffer, waiting for a
//!    leader to write them).
//! 3. At most one sync runs at a time (`syncing`); only its leader changes
//!    `buf_start` or `durable`, and `set_segment` runs only with no sync
//!    running and nothing unsynced.
//! 4. Writes of one block land in the order of their content: every write
//!    is made under `st` from the buffer's current bytes, except a
//!    leader's write of a copy (`writing`: a direct write, or a write
//!    fused with its sync), during which no one else writes the file
//!    (appenders still fill the buffer; a NORMAL commit's write waits).
//! 5. Everything below `buf_start` is durable, except while
//!    `unsynced_outside` is set (a large NORMAL record was written from the
//!    caller's memory): then a sync that fails fails the store at once,
//!    because the bytes it would have to rewrite are not in the buffer.
//!
//! Lock order: the image lock, then the record log's lock
//! (`SharedLog::inner`), then `Flusher::st`. A leader never holds `st`
//! while it syncs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::buffer::{align_down, align_up, AlignedVec, ALIGN};
use super::segment::Segment;
use crate::error::{Result, StorageError};
use crate::fail::FailState;
use crate::metrics::{Histogram, HistogramSnapshot};
use crate::panic::PanicReport;
use crate::types::Lsn;

/// Bounds and retry policy of one record log's flushing.
#[derive(Clone, Copy, Debug)]
pub struct FlushConfig {
    /// Bytes written but not yet synced, at most (plus one record).
    pub unsynced_max_bytes: u64,
    /// Retries of a failed sync before the store fails.
    pub retries_max: u32,
    /// Backoff before the first retry; doubled for each next one.
    pub retry_backoff_base_ms: u64,
    /// How long a writer waits for room in a full buffer before it gets
    /// SQLITE_BUSY.
    pub backpressure_wait_max_ms: u64,
}

impl Default for FlushConfig {
    fn default() -> Self {
        FlushConfig {
            unsynced_max_bytes: 4 << 20,
            retries_max: 4,
            retry_backoff_base_ms: 2,
            backpressure_wait_max_ms: 2000,
        }
    }
}

/// Threads of the process-wide flush pool.
pub const FLUSH_THREADS: usize = 2;
/// Queued background flushes at most (each record log is queued at most
/// once).
pub const FLUSH_QUEUE_MAX: usize = 1024;

/// Counters and histograms of one record log's writes and syncs.
#[derive(Debug, Default)]
pub struct FlushMetrics {
    pub syncs: AtomicU64,
    pub sync_errors: AtomicU64,
    pub sync_retries: AtomicU64,
    pub background_flushes: AtomicU64,
    /// Background flushes handed to the pool (at most one queued per record
    /// log, none while a sync runs).
    pub background_requests: AtomicU64,
    pub background_queue_full: AtomicU64,
    pub backpressure_waits: AtomicU64,
    pub backpressure_rejections: AtomicU64,
    pub large_records: AtomicU64,
    pub unsynced_bytes_peak: AtomicU64,
    pub worker_panics: AtomicU64,
    /// One `write` call of the record log (a record, or a rewrite).
    pub write: Histogram,
    /// One `fdatasync` of the record log, or one write fused with it.
    pub sync: Histogram,
    /// Appending one record (copy, write, and any inline flush).
    pub append: Histogram,
    /// A durable commit: SQLite's xSync of its WAL, sealing included.
    pub commit: Histogram,
}

/// A snapshot of [`FlushMetrics`] and the watermarks.
#[derive(Clone, Debug, Default)]
pub struct FlushStats {
    pub written_lsn: u64,
    pub durable_lsn: u64,
    pub unsynced_bytes: u64,
    pub unsynced_bytes_peak: u64,
    pub buffer_bytes: u64,
    pub syncs: u64,
    pub sync_errors: u64,
    pub sync_retries: u64,
    pub background_flushes: u64,
    pub background_requests: u64,
    pub background_queue_full: u64,
    pub backpressure_waits: u64,
    pub backpressure_rejections: u64,
    pub large_records: u64,
    pub worker_panics: u64,
    /// The last worker panic: message, location and backtrace.
    pub last_panic: Option<PanicReport>,
    pub write: HistogramSnapshot,
    pub sync: HistogramSnapshot,
    pub append: HistogramSnapshot,
    pub commit: HistogramSnapshot,
}

#[derive(Debug, Default)]
struct FlushState {
    seg: Option<Arc<Segment>>,
    /// Bytes below `buf_start` were written but not synced (a large record
    /// of a NORMAL commit, and what preceded it): a failed sync cannot be
    /// retried by rewriting them, so it fails the store (invariant 5).
    unsynced_outside: bool,
    /// Write alignment of `seg`'s file (1: writes are exact).
    align: u64,
    buf: AlignedVec,
    buf_start: u64,
    /// Buffer bytes below this file offset are written to the file.
    file_end: u64,
    /// The last record appended (in the buffer, maybe not yet in the file).
    written: Lsn,
    durable: Lsn,
    syncing: bool,
    /// Committers waiting for a sync (their LSN and thread). The leader
    /// wakes only those its sync covered, and hands leadership to one of
    /// the rest: no thundering herd on `st`.
    waiters: Vec<(Lsn, std::thread::Thread)>,
    /// Bytes were written since the running or last sync started (records
    /// or an end marker).
    dirty: bool,
    /// A commit wrote through the page cache (`synchronous=NORMAL`) since the
    /// last sync started. Writes of one block must land in the order of their
    /// content, so every write of the segment happens under this lock; a
    /// direct write (tens of µs) would then stall those commits, so the
    /// leader writes its batch through the page cache too.
    cached_since_sync: bool,
    /// A leader is writing a copy of the buffer's blocks from `file_end`
    /// without this lock (a direct write, or a write fused with its sync).
    /// Nothing else writes the file meanwhile: a concurrent write of the
    /// tail block could land before the older copy and be undone
    /// (invariant 4).
    writing: bool,
    /// The leader's aligned copy of the blocks it writes.
    scratch: AlignedVec,
    /// The file's bytes `[align_down(file_end), file_end)` were last written
    /// by `write_pending_cached`, so their page is in the page cache (or was
    /// written back before being evicted): the next cached write may start
    /// at `file_end` instead of rewriting them. Any other write (a direct
    /// write drops the cached page) clears it.
    tail_cached: bool,
    last_panic: Option<PanicReport>,
}

impl FlushState {
    fn unsynced_bytes(&self) -> u64 {
        self.buf.len() as u64
    }

    /// Writes `[from, to)` of the segment from the buffer (whole aligned
    /// blocks when the file wants them).
    fn write_range(&mut self, from: u64, to: u64, hist: &Histogram) -> Result<()> {
        let seg = self.seg.clone().expect("a segment is set before writes");
        debug_assert!(from >= self.buf_start && to <= self.buf_start + self.buf.len() as u64);
        let (from, to) = if self.align > 1 {
            (align_down(from, self.align), align_up(to, self.align))
        } else {
            (from, to)
        };
        let rel = |v: u64| (v - self.buf_start) as usize;
        let (a, b) = (rel(from), rel(to));
        let bytes = self.buf.padded(a, b);
        self.tail_cached = false;
        hist.time(|| seg.file.write_all_at(bytes, from))
    }

    fn end(&self) -> u64 {
        self.buf_start + self.buf.len() as u64
    }

    /// Writes the buffered bytes not yet in the file through the page
    /// cache (a NORMAL commit: in the kernel now, synced later), as whole
    /// 4 KiB blocks from the buffer: a partial block whose page is not
    /// cached would make the kernel read it from disk first (after direct
    /// writes, or once the page was evicted).
    fn write_pending_cached(&mut self, hist: &Histogram) -> Result<()> {
        let (from, to) = (self.file_end, self.end());
        if from < to {
            let seg = self.seg.clone().expect("a segment is set before writes");
            let a = ALIGN as u64;
            // The head of the first block is skipped when this path wrote
            // it (its page is cached); the tail is padded to a whole block.
            let wfrom = if self.tail_cached {
                from
            } else {
                align_down(from, a)
            };
            let wto = align_up(to, a);
            let (ra, rb) = (
                (wfrom - self.buf_start) as usize,
                (wto - self.buf_start) as usize,
            );
            let bytes = self.buf.padded(ra, rb);
            self.tail_cached = false;
            hist.time(|| seg.file.write_cached_at(bytes, wfrom))?;
            self.file_end = to;
            self.tail_cached = true;
        }
        Ok(())
    }

    /// Writes the buffered bytes not yet in the file (invariant 2).
    fn write_pending(&mut self, hist: &Histogram) -> Result<()> {
        let (from, to) = (self.file_end, self.end());
        if from < to {
            self.write_range(from, to, hist)?;
            self.file_end = to;
        }
        Ok(())
    }
}

/// The flush controller of one record log. See the module documentation.
#[derive(Debug)]
pub struct Flusher {
    st: Mutex<FlushState>,
    changed: Condvar,
    cfg: FlushConfig,
    fail: Arc<FailState>,
    /// Mirrors of the watermarks, readable without the lock.
    written_lsn: AtomicU64,
    durable_lsn: AtomicU64,
    /// Mirror of the buffer's length, for the writers' fast paths.
    unsynced: AtomicU64,
    queued: AtomicBool,
    /// Mirror of `FlushState::syncing` (written under `st`): while a sync
    /// runs, writers do not queue background flushes (its leader checks
    /// the buffer again when it ends), so a long sync does not turn into
    /// one wake-up of a pool thread per commit.
    sync_running: AtomicBool,
    /// This flusher, for the pool's queue (which holds only `Weak`s, so a
    /// queued flush never keeps a closed store alive).
    me: Weak<Flusher>,
    pub metrics: FlushMetrics,
}

impl Flusher {
    /// A flusher whose record log has everything up to `durable` on disk.
    pub fn new(cfg: FlushConfig, fail: Arc<FailState>, durable: Lsn) -> Arc<Flusher> {
        Arc::new_cyclic(|me| Flusher {
            st: Mutex::new(FlushState {
                written: durable,
                durable,
                align: 1,
                ..Default::default()
            }),
            changed: Condvar::new(),
            cfg,
            fail,
            written_lsn: AtomicU64::new(durable.0),
            durable_lsn: AtomicU64::new(durable.0),
            unsynced: AtomicU64::new(0),
            queued: AtomicBool::new(false),
            sync_running: AtomicBool::new(false),
            me: me.clone(),
            metrics: FlushMetrics::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, FlushState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn config(&self) -> FlushConfig {
        self.cfg
    }

    pub fn durable_lsn(&self) -> Lsn {
        Lsn(self.durable_lsn.load(Ordering::Acquire))
    }

    pub fn written_lsn(&self) -> Lsn {
        Lsn(self.written_lsn.load(Ordering::Acquire))
    }

    pub fn unsynced_bytes(&self) -> u64 {
        self.unsynced.load(Ordering::Acquire)
    }

    /// Publishes the buffer's length (call under `st` after it changes).
    fn note_len(&self, st: &FlushState) {
        self.unsynced.store(st.unsynced_bytes(), Ordering::Release);
    }

    /// Records larger than this are written and synced on their own.
    pub fn large_record_bytes(&self) -> u64 {
        self.cfg.unsynced_max_bytes / 2
    }

    /// Makes `seg` the segment appends go to, continuing at `offset`.
    /// Everything before must be durable (a roll syncs first).
    pub fn set_segment(&self, seg: Arc<Segment>, offset: u64) -> Result<()> {
        let mut st = self.lock();
        if st.syncing || st.dirty || st.durable != st.written {
            return Err(StorageError::Invariant(
                "invariant 3: a new log segment while records are unsynced".into(),
            ));
        }
        let align = seg.file.write_alignment().max(1) as u64;
        if !(ALIGN as u64).is_multiple_of(align) {
            return Err(StorageError::Config(format!(
                "{}: write alignment {align} is larger than bop's {ALIGN}",
                seg.path.display()
            )));
        }
        // Invariant 2: the buffer starts at the aligned block holding
        // `offset`, with the bytes already there.
        let start = align_down(offset, ALIGN as u64);
        let mut tail = vec![0u8; (offset - start) as usize];
        if !tail.is_empty() {
            seg.file.read_exact_at(&mut tail, start)?;
        }
        st.buf.truncate(0);
        st.buf.extend_from_slice(&tail);
        st.buf_start = start;
        st.file_end = offset;
        st.tail_cached = false;
        st.align = align;
        st.seg = Some(seg);
        self.note_len(&st);
        Ok(())
    }

    /// Appends a record that starts at `offset` of the current segment;
    /// with `write_now`, writes it (and anything buffered before it) to the
    /// file. Called under the record log's lock, with room checked by the
    /// caller.
    pub fn write_record(&self, rec: &[u8], offset: u64, lsn: Lsn, write_now: bool) -> Result<()> {
        let mut st = self.lock();
        if offset != st.end() {
            return Err(StorageError::Invariant(format!(
                "invariant 2: a log record at offset {offset} but the buffer ends at {}",
                st.end()
            )));
        }
        st.buf.extend_from_slice(rec);
        st.written = lsn;
        st.dirty = true;
        self.note_len(&st);
        if write_now {
            // On an error the bytes stay buffered (the store fails; a
            // leader would write them again).
            while st.writing {
                st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            st.cached_since_sync = true;
            st.write_pending_cached(&self.metrics.write)?;
        }
        self.written_lsn.store(lsn.0, Ordering::Release);
        let unsynced = st.unsynced_bytes();
        self.metrics
            .unsynced_bytes_peak
            .fetch_max(unsynced, Ordering::Relaxed);
        drop(st);
        if unsynced >= self.cfg.unsynced_max_bytes / 2 {
            self.request_background();
        }
        Ok(())
    }

    /// Writes a large record straight from the caller's memory and syncs it
    /// (after syncing everything before it), so the buffer never holds it.
    pub fn write_large(&self, rec: &[u8], offset: u64, lsn: Lsn) -> Result<()> {
        self.sync_all()?;
        self.metrics.large_records.fetch_add(1, Ordering::Relaxed);
        let seg = self.lock().seg.clone().expect("a segment is set");
        let end = offset + rec.len() as u64;
        let mut attempt = 0;
        loop {
            let r = if seg.file.fuses_durable_writes() {
                self.metrics
                    .sync
                    .time(|| seg.file.write_durable_at(rec, offset))
            } else {
                self.metrics
                    .write
                    .time(|| seg.file.write_all_at(rec, offset))
                    .and_then(|_| self.metrics.sync.time(|| seg.file.sync_data()))
            };
            self.metrics.syncs.fetch_add(1, Ordering::Relaxed);
            match r {
                Ok(()) => break,
                Err(e) => self.retry_or_fail(&mut attempt, e, &seg)?,
            }
        }
        let mut st = self.lock();
        // The tail block of the record starts the buffer again.
        let start = align_down(end, ALIGN as u64);
        let from = (start.max(offset) - offset) as usize;
        let mut head = vec![0u8; (start.max(offset) - start) as usize];
        if !head.is_empty() {
            seg.file.read_exact_at(&mut head, start)?;
        }
        st.buf.truncate(0);
        st.buf.extend_from_slice(&head);
        st.tail_cached = false;
        st.buf.extend_from_slice(&rec[from..]);
        st.buf_start = start;
        st.file_end = end;
        self.note_len(&st);
        st.written = lsn;
        st.durable = lsn;
        self.written_lsn.store(lsn.0, Ordering::Release);
        self.durable_lsn.store(lsn.0, Ordering::Release);
        let wake = Self::waiters_to_wake(&mut st, false);
        drop(st);
        self.changed.notify_all();
        wake.iter().for_each(std::thread::Thread::unpark);
        Ok(())
    }

    /// Writes a large record of a NORMAL commit through the page cache,
    /// straight from the caller's memory and without syncing it (durable at
    /// the next sync, which is requested now), as SQLite's NORMAL does. The
    /// buffer restarts at the record's tail block (invariant 5).
    pub fn write_large_cached(&self, rec: &[u8], offset: u64, lsn: Lsn) -> Result<()> {
        self.metrics.large_records.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        // The buffer is replaced below: no sync or unlocked write may be
        // using it.
        while st.syncing || st.writing {
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        self.fail.check()?;
        if offset != st.end() {
            return Err(StorageError::Invariant(format!(
                "invariant 2: a large log record at offset {offset} but the buffer ends at {}",
                st.end()
            )));
        }
        st.cached_since_sync = true;
        st.write_pending_cached(&self.metrics.write)?;
        let seg = st.seg.clone().expect("a segment is set before writes");
        let end = offset + rec.len() as u64;
        let start = align_down(end, ALIGN as u64);
        debug_assert!(start >= offset, "a large record spans more than a block");
        st.tail_cached = false;
        self.metrics
            .write
            .time(|| seg.file.write_cached_at(rec, offset))?;
        st.buf.truncate(0);
        st.buf.extend_from_slice(&rec[(start - offset) as usize..]);
        st.buf_start = start;
        st.file_end = end;
        st.tail_cached = true;
        st.unsynced_outside = true;
        st.dirty = true;
        st.written = lsn;
        self.written_lsn.store(lsn.0, Ordering::Release);
        self.note_len(&st);
        drop(st);
        self.request_background();
        Ok(())
    }

    /// Writes zeros over the `len` bytes at `offset` (the end marker a
    /// clean shutdown or a roll leaves), without making them part of the log.
    pub fn mark_end(&self, offset: u64, len: usize) -> Result<()> {
        let mut st = self.lock();
        if st.seg.is_none() {
            return Ok(());
        }
        while st.writing {
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        let keep = st.buf.len();
        debug_assert_eq!(offset, st.buf_start + keep as u64);
        st.buf.extend_from_slice(&vec![0u8; len]);
        let r = st.write_range(offset, offset + len as u64, &self.metrics.write);
        st.buf.truncate(keep);
        st.dirty = true;
        r
    }

    /// Makes everything written durable, end markers included.
    pub fn sync_everything(&self) -> Result<()> {
        let mut st = self.lock();
        loop {
            if !st.dirty && !st.syncing {
                return Ok(());
            }
            self.fail.check()?;
            if !st.syncing {
                self.lead_sync(st)?;
                st = self.lock();
                continue;
            }
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Makes every written record durable.
    pub fn sync_all(&self) -> Result<()> {
        self.wait_durable(self.written_lsn())
    }

    /// Returns once every record up to `lsn` (which must be written) is
    /// durable: syncs as the leader, or waits for the running sync and then
    /// syncs if it did not cover `lsn`.
    pub fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        loop {
            if self.durable_lsn() >= lsn {
                return Ok(());
            }
            self.fail.check()?;
            let mut st = self.lock();
            debug_assert!(lsn <= st.written, "waiting for an unwritten record");
            if st.durable >= lsn {
                return Ok(());
            }
            if !st.syncing {
                return self.lead_sync(st);
            }
            st.waiters.push((lsn, std::thread::current()));
            drop(st);
            // Woken when a sync covers `lsn` or this thread is to lead the
            // next one (a spurious wake just loops).
            std::thread::park();
        }
    }

    /// Takes the waiters to wake: first one the last sync did not cover
    /// (to lead the next sync at once), then those it covered; with `all`,
    /// every waiter (after a failure). Wake them with [`wake`] after
    /// releasing `st`.
    fn waiters_to_wake(st: &mut FlushState, all: bool) -> Vec<std::thread::Thread> {
        let durable = st.durable;
        let mut next_leader = None;
        let mut covered = Vec::new();
        st.waiters.retain(|(lsn, t)| {
            if all || *lsn <= durable {
                covered.push(t.clone());
                false
            } else {
                if next_leader.is_none() {
                    next_leader = Some(t.clone());
                }
                true
            }
        });
        next_leader.into_iter().chain(covered).collect()
    }

    /// Waits until a writer may start a transaction: the buffer has room,
    /// or a flush makes some within `backpressure_wait_max_ms`.
    pub fn admit(&self) -> Result<()> {
        if self.unsynced_bytes() < self.cfg.unsynced_max_bytes {
            return Ok(());
        }
        let mut st = self.lock();
        if st.unsynced_bytes() < self.cfg.unsynced_max_bytes {
            return Ok(());
        }
        self.metrics
            .backpressure_waits
            .fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_millis(self.cfg.backpressure_wait_max_ms);
        loop {
            self.fail.check()?;
            if st.unsynced_bytes() < self.cfg.unsynced_max_bytes {
                return Ok(());
            }
            if !st.syncing {
                drop(st);
                self.request_background();
                st = self.lock();
            }
            let now = Instant::now();
            if now >= deadline {
                self.metrics
                    .backpressure_rejections
                    .fetch_add(1, Ordering::Relaxed);
                return Err(StorageError::Busy(format!(
                    "the record log has {} unsynced bytes (bound unsynced_max_bytes={}) and a flush did not make room within {} ms",
                    st.unsynced_bytes(),
                    self.cfg.unsynced_max_bytes,
                    self.cfg.backpressure_wait_max_ms
                )));
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Syncs as the leader: everything written when it starts becomes
    /// durable, or the store fails.
    fn lead_sync(&self, mut st: MutexGuard<'_, FlushState>) -> Result<()> {
        let Some(seg) = st.seg.clone() else {
            // Nothing was ever written in this open.
            st.durable = st.written;
            st.dirty = false;
            return Ok(());
        };
        let upto = st.written;
        let end = st.end();
        self.set_syncing(&mut st, true);
        st.dirty = false;
        let outside = std::mem::take(&mut st.unsynced_outside);
        // Resets `syncing` if the write or the sync panics, so waiters do
        // not hang. Created before `st` moves into the first write: a panic
        // there releases `st` in that call's frame, before this guard
        // locks it again.
        let guard = SyncingGuard(self);
        let mut first_write = Some(self.leader_first_write(st, &seg));
        let mut attempt = 0;
        let result = loop {
            let r = match first_write.take() {
                Some(Ok(Wrote::Synced)) => Ok(()),
                Some(Err(e)) => Err(e),
                Some(Ok(Wrote::Written)) | None => self.metrics.sync.time(|| seg.file.sync_data()),
            };
            self.metrics.syncs.fetch_add(1, Ordering::Relaxed);
            match r {
                Ok(()) => break Ok(()),
                Err(e) => {
                    if outside {
                        // Invariant 5: the unsynced bytes below the buffer
                        // cannot be rewritten; no retry could prove them.
                        self.metrics.sync_errors.fetch_add(1, Ordering::Relaxed);
                        let reason = format!(
                            "making {} durable failed, with a large record of a NORMAL commit written but not in the buffer to write again: {e}",
                            seg.path.display()
                        );
                        break Err(self.fail_permanently(reason, e));
                    }
                    if let Err(e) = self.retry_or_fail(&mut attempt, e, &seg) {
                        break Err(e);
                    }
                    // Rewrite everything unsynced before syncing again; a
                    // failed rewrite fails this attempt (the sync after it
                    // would prove nothing).
                    let mut st = self.lock();
                    let (from, to) = (st.buf_start, st.end());
                    let rewritten = st.write_range(from, to, &self.metrics.write);
                    if rewritten.is_ok() {
                        st.file_end = to;
                    }
                    first_write = Some(rewritten.map(|()| Wrote::Written));
                }
            }
        };
        std::mem::forget(guard);
        let mut st = self.lock();
        self.set_syncing(&mut st, false);
        if result.is_err() {
            st.dirty = true;
        } else {
            // Invariants 1 and 2: what the sync covered is durable; the
            // buffer keeps only the block holding its end, and after.
            st.durable = st.durable.max(upto);
            self.durable_lsn.store(st.durable.0, Ordering::Release);
            let drop_bytes = (align_down(end, ALIGN as u64) - st.buf_start) as usize;
            // The memory stays allocated up to the bound (a burst under
            // NORMAL fills it again at once; reallocating means page
            // faults on every byte), and is given back above it.
            st.buf
                .drain_front(drop_bytes, self.cfg.unsynced_max_bytes as usize);
            st.buf_start += drop_bytes as u64;
            self.note_len(&st);
        }
        let wake = Self::waiters_to_wake(&mut st, result.is_err());
        let refill = st.unsynced_bytes() >= self.cfg.unsynced_max_bytes / 2;
        drop(st);
        self.changed.notify_all();
        wake.iter().for_each(std::thread::Thread::unpark);
        if refill && result.is_ok() {
            // Writers did not queue a flush while this one ran.
            self.request_background();
        }
        result
    }

    /// The leader's first write: everything buffered goes to the file in
    /// one write, direct (when the file wants it) unless NORMAL commits are
    /// active, and fused with the sync where the file fuses them. Takes
    /// `st` and releases it before any write made without the lock.
    fn leader_first_write(
        &self,
        mut st: MutexGuard<'_, FlushState>,
        seg: &Segment,
    ) -> Result<Wrote> {
        if std::mem::take(&mut st.cached_since_sync) {
            st.write_pending_cached(&self.metrics.write)
                .map(|()| Wrote::Written)
        } else if seg.file.fuses_durable_writes() {
            // The sync is part of the call: never under the lock.
            drop(st);
            self.write_copy_unlocked(Wrote::Synced)
        } else if st.align == 1 {
            st.write_pending(&self.metrics.write)
                .map(|()| Wrote::Written)
        } else {
            // A direct write takes tens of µs: write a copy without the
            // lock, so commits go on filling the buffer (invariant 4).
            drop(st);
            self.write_copy_unlocked(Wrote::Written)
        }
    }

    /// Sets `syncing` and its mirror (under `st`).
    fn set_syncing(&self, st: &mut FlushState, on: bool) {
        st.syncing = on;
        self.sync_running.store(on, Ordering::Release);
    }

    /// Writes the buffer's blocks from `file_end` to its end, as they are
    /// now, from a copy and without holding `st` during the write; with
    /// `Wrote::Synced`, fused with a sync of the file (nothing to write:
    /// no sync, `Wrote::Written`).
    fn write_copy_unlocked(&self, how: Wrote) -> Result<Wrote> {
        let mut st = self.lock();
        let (from, to) = (st.file_end, st.end());
        if from >= to {
            return Ok(Wrote::Written);
        }
        let seg = st.seg.clone().expect("a segment is set before writes");
        let a = st.align;
        let (wf, wt) = (align_down(from, a), align_up(to, a));
        let (ra, rb) = ((wf - st.buf_start) as usize, (wt - st.buf_start) as usize);
        let mut scratch = std::mem::take(&mut st.scratch);
        scratch.truncate(0);
        let bytes = st.buf.padded(ra, rb);
        scratch.extend_from_slice(bytes);
        st.writing = true;
        st.tail_cached = false;
        drop(st);
        let bytes = scratch.as_slice();
        let r = match how {
            Wrote::Written => self.metrics.write.time(|| seg.file.write_all_at(bytes, wf)),
            Wrote::Synced => self
                .metrics
                .sync
                .time(|| seg.file.write_durable_at(bytes, wf)),
        };
        let mut st = self.lock();
        st.writing = false;
        if r.is_ok() {
            st.file_end = st.file_end.max(to);
        }
        st.scratch = scratch;
        drop(st);
        self.changed.notify_all();
        r.map(|()| how)
    }

    /// Fails the store for good with `reason`; returns `e` for the caller.
    fn fail_permanently(&self, reason: String, e: StorageError) -> StorageError {
        tracing::error!(%reason, "flushing the record log failed permanently; the store refuses writes");
        self.fail.set(reason, e.raw_os_error());
        e
    }

    /// After a failed write or sync: sleeps the backoff and returns `Ok` to
    /// retry, or fails the store when the retries are spent.
    fn retry_or_fail(&self, attempt: &mut u32, e: StorageError, seg: &Segment) -> Result<()> {
        self.metrics.sync_errors.fetch_add(1, Ordering::Relaxed);
        if *attempt >= self.cfg.retries_max || self.fail.is_failed() {
            let reason = format!(
                "making {} durable failed {} times; giving up: {e}",
                seg.path.display(),
                *attempt + 1
            );
            return Err(self.fail_permanently(reason, e));
        }
        let backoff_ms = self.cfg.retry_backoff_base_ms << (*attempt).min(16);
        tracing::warn!(error = %e, attempt = *attempt + 1, backoff_ms, "syncing the record log failed; rewriting and retrying");
        *attempt += 1;
        self.metrics.sync_retries.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(backoff_ms));
        Ok(())
    }

    /// Asks the pool for a background flush (at most one queued per record
    /// log).
    fn request_background(&self) {
        if self.sync_running.load(Ordering::Acquire) || self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.me.clone();
        match pool().try_send(me) {
            Ok(()) => {
                self.metrics
                    .background_requests
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                // The writer flushes inline at the bound instead.
                self.queued.store(false, Ordering::Release);
                self.metrics
                    .background_queue_full
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// One background flush (on a pool thread).
    fn background_flush(&self) {
        self.queued.store(false, Ordering::Release);
        let st = self.lock();
        if st.syncing || !st.dirty || self.fail.is_failed() {
            return;
        }
        self.metrics
            .background_flushes
            .fetch_add(1, Ordering::Relaxed);
        // Errors fail the store inside; waiters see them.
        let _ = self.lead_sync(st);
    }

    /// A flush worker panicked: the store fails safe with the report.
    fn worker_panicked(&self, report: PanicReport) {
        tracing::error!(%report, backtrace = report.backtrace.as_deref().unwrap_or(""), "record log flush worker panicked; the store refuses writes");
        self.metrics.worker_panics.fetch_add(1, Ordering::Relaxed);
        self.fail
            .set(format!("record log flush worker {report}"), None);
        let mut st = self.lock();
        self.set_syncing(&mut st, false);
        st.last_panic = Some(report);
        let wake = Self::waiters_to_wake(&mut st, true);
        drop(st);
        self.changed.notify_all();
        wake.iter().for_each(std::thread::Thread::unpark);
    }

    pub fn stats(&self) -> FlushStats {
        let st = self.lock();
        let m = &self.metrics;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FlushStats {
            written_lsn: st.written.0,
            durable_lsn: st.durable.0,
            unsynced_bytes: st.unsynced_bytes(),
            unsynced_bytes_peak: l(&m.unsynced_bytes_peak),
            buffer_bytes: st.buf.capacity_bytes() as u64,
            syncs: l(&m.syncs),
            sync_errors: l(&m.sync_errors),
            sync_retries: l(&m.sync_retries),
            background_flushes: l(&m.background_flushes),
            background_requests: l(&m.background_requests),
            background_queue_full: l(&m.background_queue_full),
            backpressure_waits: l(&m.backpressure_waits),
            backpressure_rejections: l(&m.backpressure_rejections),
            large_records: l(&m.large_records),
            worker_panics: l(&m.worker_panics),
            last_panic: st.last_panic.clone(),
            write: m.write.snapshot(),
            sync: m.sync.snapshot(),
            append: m.append.snapshot(),
            commit: m.commit.snapshot(),
        }
    }
}

/// What a leader's first write did: wrote the bytes, or wrote them and
/// synced the file in the same call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wrote {
    Written,
    Synced,
}

/// Resets `syncing` and wakes waiters if a leader unwinds mid-sync.
struct SyncingGuard<'a>(&'a Flusher);

impl Drop for SyncingGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        self.0.set_syncing(&mut st, false);
        let wake = Flusher::waiters_to_wake(&mut st, true);
        drop(st);
        self.0.changed.notify_all();
        wake.iter().for_each(std::thread::Thread::unpark);
    }
}

type Job = Weak<Flusher>;

/// The process-wide flush pool: `FLUSH_THREADS` threads, started on first
/// use, fed through a queue bounded at `FLUSH_QUEUE_MAX`.
fn pool() -> &'static SyncSender<Job> {
    static POOL: OnceLock<SyncSender<Job>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = sync_channel::<Job>(FLUSH_QUEUE_MAX);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..FLUSH_THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("bop-flush-{i}"))
                .spawn(move || worker(&rx));
            if let Err(e) = spawned {
                // Without workers, writers flush inline at the bound.
                tracing::error!(error = %e, "cannot start a record log flush thread");
            }
        }
        tx
    })
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let Some(f) = job.upgrade() else { continue };
        if let Err(report) = crate::panic::catch(|| f.background_flush()) {
            f.worker_panicked(report);
        }
    }
}
