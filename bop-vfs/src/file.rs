//! Safe per-handle logic of the two kinds of bop files: the main database
//! (served by the page store) and the virtual `-wal` file.

use std::ffi::c_int;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::checkpointer;
use crate::errors::{to_code, Op};
use crate::locks::ConnId;
use crate::shm::ShmHolder;
use crate::sys::*;
use crate::vfs::DbShared;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// SQLite's WAL_WRITE_LOCK slot in the wal-index lock array.
const WAL_WRITE_LOCK: usize = 0;
/// SQLite's WAL_CKPT_LOCK slot.
const WAL_CKPT_LOCK: usize = 1;
/// How long an application's checkpoint waits for bop's background one.
const CKPT_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether slots `[offset, offset + n)` include the WAL write lock.
fn covers_write_lock(offset: usize, n: usize) -> bool {
    (offset..offset + n).contains(&WAL_WRITE_LOCK)
}

/// What one open bop file handle is.
#[derive(Debug)]
pub enum BopFile {
    Main(MainFile),
    Wal(WalFile),
}

#[derive(Debug)]
pub struct MainFile {
    pub db: Arc<DbShared>,
    pub id: ConnId,
    pub level: c_int,
    pub shm: ShmHolder,
    /// Opened by bop's checkpointer, not by the application.
    internal: bool,
}

#[derive(Debug)]
pub struct WalFile {
    pub db: Arc<DbShared>,
}

/// Result of SQLITE_FCNTL_PRAGMA.
pub enum PragmaOutcome {
    NotFound,
    Answer(Option<String>),
    Refuse(String),
}

impl MainFile {
    pub fn new(db: Arc<DbShared>) -> MainFile {
        let internal = checkpointer::opening_internal();
        if !internal {
            db.ckpt.file_opened();
        }
        MainFile {
            db,
            id: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
            level: SQLITE_LOCK_NONE,
            shm: ShmHolder::default(),
            internal,
        }
    }

    /// After a commit: the checkpoint policy looks at the WAL's size.
    fn after_commit(&self) {
        let store = &self.db.store;
        checkpointer::after_commit(
            &self.db,
            store.wal_image_size(),
            store.wal_image_generation(),
        );
    }

    pub fn shm_lock(&mut self, offset: usize, n: usize, flags: c_int) -> c_int {
        let releasing_writer = flags & SQLITE_SHM_UNLOCK != 0
            && covers_write_lock(offset, n)
            && self.shm.excl_mask & (1 << WAL_WRITE_LOCK) != 0;
        let taking_writer = flags & SQLITE_SHM_LOCK != 0
            && flags & SQLITE_SHM_EXCLUSIVE != 0
            && covers_write_lock(offset, n);
        if taking_writer {
            // Backpressure: a new transaction starts only when the WAL's
            // unsynced buffer has room (bounded wait, then SQLITE_BUSY,
            // which SQLite's busy handler retries).
            if let Err(e) = self.db.store.admit_writer() {
                return to_code(&e, Op::Write);
            }
        }
        let mut rc = SQLITE_OK;
        if releasing_writer {
            // The write transaction is over: seal its frames into one WAL
            // record before another writer can start.
            match self.db.store.end_write_transaction() {
                Ok(()) => self.after_commit(),
                Err(e) => rc = to_code(&e, Op::Write),
            }
        }
        let mut lrc = self.db.shm.lock(self.id, &mut self.shm, offset, n, flags);
        if lrc == SQLITE_BUSY
            && !self.internal
            && flags & SQLITE_SHM_LOCK != 0
            && flags & SQLITE_SHM_EXCLUSIVE != 0
            && (offset..offset + n).contains(&WAL_CKPT_LOCK)
            && self.db.ckpt.wait_idle(CKPT_WAIT_MAX)
        {
            // The application's checkpoint met bop's background one, which
            // never waits for anything: wait for it to end and try again,
            // so an application without a busy handler does not see a
            // SQLITE_BUSY it would not get without bop.
            lrc = self.db.shm.lock(self.id, &mut self.shm, offset, n, flags);
        }
        if taking_writer && lrc == SQLITE_OK {
            self.db.store.begin_write_transaction();
        }
        if rc == SQLITE_OK {
            lrc
        } else {
            rc
        }
    }

    /// Seals the just-committed transaction into a WAL record.
    pub fn commit_phase_two(&self) -> c_int {
        match self.db.store.commit_phase_two() {
            Ok(()) => {
                self.after_commit();
                SQLITE_OK
            }
            Err(e) => to_code(&e, Op::Write),
        }
    }

    pub fn pragma(&self, name: &str, arg: Option<&str>) -> PragmaOutcome {
        match name.to_ascii_lowercase().as_str() {
            "journal_mode" => match arg {
                Some(mode) if !mode.eq_ignore_ascii_case("wal") => PragmaOutcome::Refuse(format!(
                    "bop: journal_mode={mode} is not supported; bop databases always use WAL mode"
                )),
                _ => PragmaOutcome::NotFound,
            },
            "bop_stats" => {
                let s = self.db.store.stats();
                PragmaOutcome::Answer(Some(
                    format!(
                        "records={} record_bytes={} wal_sync_calls={} generations={} pending_bytes_peak={} \
                     log_segments={} segments_created={} segments_recycled={} segments_prepared={} \
                     segment_indexes_written={} segments_indexed_at_open={} recovery_bytes_scanned={} records_skipped_at_open={} \
                     records_verified_on_first_read={} frames_cached_at_commit={} \
                     wal_frame_cache_hits={} wal_image_records={} \
                     wal_image_frames={} next_lsn={} durable_lsn={} \
                     db_pages={} chunks={} pending_pages={} pages_compacted={} chunks_deleted={} \
                     chunk_files_open={} chunk_file_opens={} chunk_file_evictions={}",
                        s.wal_image.records,
                        s.wal_image.record_bytes,
                        s.wal_image.syncs,
                        s.wal_image.generations,
                        s.wal_image.pending_bytes_peak,
                        s.log_segments,
                        s.log.segments_created,
                        s.log.segments_recycled,
                        s.log.segments_prepared,
                        s.log.segment_indexes_written,
                        s.log.segments_indexed_at_open,
                        s.log.recovery_bytes_scanned,
                        s.log.records_skipped_at_open,
                        bop_storage::log::lazy_verifications(),
                        s.wal_image.frames_cached_at_commit,
                        bop_storage::wal_image::frame_cache_hits(),
                        s.wal_image_records,
                        s.wal_image_frames,
                        s.next_lsn,
                        s.durable_lsn,
                        s.pages.db_pages,
                        s.pages.chunks,
                        s.pages.pending_pages,
                        s.pages.pages_compacted,
                        s.pages.chunks_deleted,
                        s.pages.chunk_files_open,
                        s.pages.chunk_file_opens,
                        s.pages.chunk_file_evictions
                    ) + &flush_stats(&s)
                        + &manifest_stats(&s)
                        + &ckpt_stats(&self.db),
                ))
            }
            "bop_verify" => match self.db.store.verify() {
                Ok(r) => PragmaOutcome::Answer(Some(format!(
                    "ok pages={} records={}",
                    r.pages_checked, r.records_checked
                ))),
                Err(e) => PragmaOutcome::Refuse(e.to_string()),
            },
            _ => PragmaOutcome::NotFound,
        }
    }
}

/// The manifest's part of `PRAGMA bop_stats`: change log, cursors (each
/// as `cursor.<name>.lag`, with `.lagged=1` when it fell behind the bound),
/// journal, map, whether the previous open ended cleanly, and the files the
/// sweeps at open still found (the journal's replay should leave none).
fn manifest_stats(s: &bop_storage::StoreStats) -> String {
    let m = &s.manifest;
    let mut out = format!(
        " manifest_format={} manifest_upgraded_from={} previous_shutdown_clean={} \
         change_log_entries={} change_first_seq={} change_last_seq={} changes_appended={} \
         changes_truncated={} cursors={} cursors_lagged={} cursor_lag_events={} \
         journal_pending={} journal_written={} journal_settled={} journal_replayed={} \
         journal_files_removed={} manifest_map_bytes={} manifest_map_grows={} \
         stray_chunks_removed={} log_stray_segments_removed={}",
        m.format_version,
        m.upgraded_from,
        u8::from(m.previous_shutdown_clean),
        m.change_log_entries,
        m.change_first_seq,
        m.change_last_seq,
        m.changes_appended,
        m.changes_truncated,
        m.cursors.len(),
        m.cursors_lagged,
        m.cursor_lag_events,
        m.journal_pending,
        m.journal_written,
        m.journal_settled,
        m.journal_replayed,
        m.journal_files_removed,
        m.map_size_bytes,
        m.map_grows,
        s.pages.stray_chunks_removed,
        s.log_stray_segments_removed,
    );
    for c in &m.cursors {
        out.push_str(&format!(" cursor.{}.lag={}", c.name, c.lag));
        if c.lagged {
            out.push_str(&format!(" cursor.{}.lagged=1", c.name));
        }
    }
    out
}

/// The checkpoint policy's part of `PRAGMA bop_stats`.
fn ckpt_stats(db: &DbShared) -> String {
    let c = &db.ckpt.counters;
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    format!(
        " wal_image_bytes={} wal_age_ms={} ckpt_requests={} ckpt_runs={} ckpt_complete={} \
         ckpt_incomplete={} ckpt_busy={} ckpt_errors={} ckpt_blocked_warnings={} \
         wal_index_prebuilt_frames={}",
        db.store.wal_image_size(),
        db.ckpt.wal_age().map_or(0, |a| a.as_millis()),
        l(&c.requests),
        l(&c.runs),
        l(&c.complete),
        l(&c.incomplete),
        l(&c.busy),
        l(&c.errors),
        l(&c.blocked_warnings),
        db.wal_index_prebuilt_frames,
    )
}

/// The WAL pipeline's part of `PRAGMA bop_stats`: backend, watermarks,
/// bounds, retries, panics and latency percentiles.
fn flush_stats(s: &bop_storage::StoreStats) -> String {
    let f = &s.flush;
    let mut out = format!(
        " io_backend={} written_lsn={} unsynced_bytes={} unsynced_bytes_peak={} log_buffer_bytes={} \
         log_syncs={} sync_errors={} sync_retries={} background_flushes={} flush_requests={} flush_queue_full={} \
         backpressure_waits={} backpressure_rejections={} large_records={} worker_panics={}",
        s.io_backend,
        f.written_lsn,
        f.unsynced_bytes,
        f.unsynced_bytes_peak,
        f.buffer_bytes,
        f.syncs,
        f.sync_errors,
        f.sync_retries,
        f.background_flushes,
        f.background_requests,
        f.background_queue_full,
        f.backpressure_waits,
        f.backpressure_rejections,
        f.large_records,
        f.worker_panics,
    );
    for (name, h) in [
        ("append", &f.append),
        ("write", &f.write),
        ("sync", &f.sync),
        ("commit", &f.commit),
    ] {
        out.push(' ');
        out.push_str(&h.render(name));
    }
    let io = bop_storage::io_stats();
    out.push_str(&format!(
        " io_direct_writes={} io_rmw_writes={} io_bounce_allocs_over_pool={} io_direct_fallbacks={} \
         io_uring_submissions={} io_uring_fallbacks={} log_base_min={}",
        io.direct_writes,
        io.rmw_writes,
        io.bounce_allocs_over_pool,
        io.direct_fallbacks,
        io.uring_submissions,
        io.uring_fallbacks,
        s.log_base_min,
    ));
    let c = &s.cache;
    out.push_str(&format!(
        " cache_capacity_bytes={} cache_bytes={} cache_entries={} cache_hits={} cache_misses={} \
         cache_inserts={} cache_evictions={} cache_removals={} cache_scan_skips={}",
        c.capacity_bytes,
        c.bytes,
        c.entries,
        c.hits,
        c.misses,
        c.inserts,
        c.evictions,
        c.removals,
        c.scan_skips,
    ));
    if let Some(p) = &f.last_panic {
        out.push_str(&format!(" last_panic={p:?}", p = p.to_string()));
    }
    out
}

impl Drop for MainFile {
    fn drop(&mut self) {
        self.db.shm.release_all(self.id, &mut self.shm);
        let mut level = self.level;
        self.db.locks.unlock(self.id, &mut level, SQLITE_LOCK_NONE);
        if !self.internal {
            // The application's last close waits for a running background
            // checkpoint (which holds the store open).
            self.db.ckpt.file_closed();
        }
    }
}

impl BopFile {
    pub fn store(&self) -> &bop_storage::Store {
        match self {
            BopFile::Main(m) => &m.db.store,
            BopFile::Wal(w) => &w.db.store,
        }
    }

    pub fn read(&mut self, buf: &mut [u8], offset: u64) -> c_int {
        let r = match self {
            BopFile::Main(m) => m.db.store.db_read(offset, buf),
            BopFile::Wal(w) => w.db.store.wal_image_read(offset, buf),
        };
        match r {
            Ok(n) if n == buf.len() => SQLITE_OK,
            Ok(_) => SQLITE_IOERR_SHORT_READ,
            Err(e) => to_code(&e, Op::Read),
        }
    }

    pub fn write(&mut self, data: &[u8], offset: u64) -> c_int {
        let r = match self {
            BopFile::Main(m) => m.db.store.db_write(offset, data),
            BopFile::Wal(w) => w.db.store.wal_image_write(offset, data),
        };
        r.map_or_else(|e| to_code(&e, Op::Write), |_| SQLITE_OK)
    }

    pub fn truncate(&mut self, size: u64) -> c_int {
        let r = match self {
            BopFile::Main(m) => m.db.store.db_truncate(size),
            BopFile::Wal(w) => w.db.store.wal_image_truncate(size),
        };
        r.map_or_else(|e| to_code(&e, Op::Truncate), |_| SQLITE_OK)
    }

    pub fn sync(&mut self) -> c_int {
        let r = match self {
            BopFile::Main(m) => m.db.store.db_sync(),
            BopFile::Wal(w) => w.db.store.wal_image_sync(),
        };
        r.map_or_else(|e| to_code(&e, Op::Sync), |_| SQLITE_OK)
    }

    pub fn size(&self) -> u64 {
        match self {
            BopFile::Main(m) => m.db.store.db_size(),
            BopFile::Wal(w) => w.db.store.wal_image_size(),
        }
    }

    pub fn lock(&mut self, want: c_int) -> c_int {
        match self {
            // The checkpointer's own connection never closes the last
            // handle (it runs only while the application has the database
            // open), so at close SQLite's attempt at EXCLUSIVE (to
            // checkpoint and delete the WAL) fails anyway: it must not hold
            // PENDING meanwhile, which would make the application's readers
            // starting a transaction get SQLITE_BUSY.
            BopFile::Main(m) if m.internal && want == SQLITE_LOCK_EXCLUSIVE => {
                m.db.locks.lock_if_alone(m.id, &mut m.level, want)
            }
            BopFile::Main(m) => m.db.locks.lock(m.id, &mut m.level, want),
            BopFile::Wal(_) => SQLITE_OK,
        }
    }

    pub fn unlock(&mut self, to: c_int) -> c_int {
        if let BopFile::Main(m) = self {
            m.db.locks.unlock(m.id, &mut m.level, to);
        }
        SQLITE_OK
    }

    pub fn check_reserved(&self) -> bool {
        match self {
            BopFile::Main(m) => m.db.locks.reserved(),
            BopFile::Wal(_) => false,
        }
    }

    pub fn device_characteristics(&self) -> c_int {
        // Writes never disturb bytes outside their range, even on power loss.
        SQLITE_IOCAP_POWERSAFE_OVERWRITE
    }
}
