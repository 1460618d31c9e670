//! The record log itself ([`RecordLog`]): opening it (the steps of
//! recovery, `recovery.rs`), appending records, rolling to a new segment,
//! and dropping the segments no database needs. Its flushing is in
//! `flush.rs`; the store's databases share it through `shared.rs`.
//!
//! Invariants (asserted in debug builds where cheap):
//! 1. Records carry consecutive LSNs; within a segment they are back to back
//!    from `SEGMENT_HEADER_LEN`; a segment's first record has its header's
//!    `first_lsn`.
//! 2. A segment is synced before the next one is created, so only the last
//!    segment can hold unsynced records, and a torn tail can only be there.
//! 3. `durable_lsn <= written_lsn < next_lsn` (the watermarks live in the
//!    flush controller, `flush.rs`); every record written carries the
//!    `durable_lsn` known at the time, so recovery can tell a torn tail
//!    (nothing after it was ever durable) from damage to durable data.
//! 4. Every segment file in the manifest exists; files in the log's
//!    directory (`<store>/wal/`) that the manifest does not list are
//!    leftovers of a crash and are removed at open, except up to
//!    `SPARE_SEGMENTS_MAX` spares (`<id>.spare`: dropped segments of the
//!    standard size kept for reuse) and the index files (`<id>.idx`) of
//!    listed segments.
//! 5. A segment index file exists only for a sealed segment (synced, with
//!    a successor) and describes exactly its records; recovery trusts one
//!    only after checking it against the segment and its successor
//!    (`segment_index.rs`).
//! 6. A record is appended only once its epoch is begun durably in the
//!    manifest (`Manifest::ensure_epoch`): recovery refuses records of the
//!    epoch it opens in or later.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::flush::{FlushConfig, FlushStats, Flusher};
use super::preparer::{spare_file_name, zero_fill, Preparer, Spare, SPARE_SEGMENTS_MAX};
use super::record::{RecordHeader, RecordLoc, RECORD_HEADER_LEN};
use super::recovery::{self, RecoveredRecord, Scan, ScanReport};
use super::segment::{segment_file_name, Segment, SegmentHeader, SEGMENT_HEADER_LEN};
use super::segment_index::{index_path, remove_index, EntryHead, IndexBuilder};
use crate::error::{Result, StorageError};
use crate::fail::FailState;
use crate::io::{IoBackend, OpenMode};
use crate::manifest::{Manifest, ManifestState, SegmentMeta};
use crate::types::{DbId, Epoch, Lsn, SegmentId};
use crate::wal_format::RecordFrames;

/// Tuning of the record log.
#[derive(Clone, Copy, Debug)]
pub struct LogConfig {
    /// Preallocated size of a segment file. A record larger than this gets a
    /// segment of its own, sized to fit.
    pub segment_bytes: u64,
    /// Bounds and retries of flushing (see `flush.rs`).
    pub flush: FlushConfig,
}

/// Capacity of a store's first log segment (at most `segment_bytes`).
pub const FIRST_SEGMENT_BYTES: u64 = 1 << 20;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 8 << 20,
            flush: FlushConfig::default(),
        }
    }
}

/// The record log of a store: its segments and where appends go. Owned by
/// [`SharedLog`](super::SharedLog), under the record log's lock
/// (`SharedLog::inner`).
#[derive(Debug)]
pub struct RecordLog {
    pub(super) dir: PathBuf,
    pub(super) io: Arc<dyn IoBackend>,
    pub(super) config: LogConfig,
    /// Ordered by id (and so by LSN).
    pub(super) segments: Vec<Arc<Segment>>,
    /// Next write position in the last segment.
    pub(super) append_offset: u64,
    pub(super) next_lsn: Lsn,
    pub(super) epoch: Epoch,
    pub(super) next_segment_id: SegmentId,
    /// Writes records and makes them durable (the written and durable
    /// watermarks live there).
    pub(super) flusher: Arc<Flusher>,
    /// The next append starts a new segment (recovery continued the log at
    /// the checkpoint LSN, past records lost below it).
    pub(super) roll_first: bool,
    /// Dropped segments kept for reuse (`<id>.spare`): their blocks are
    /// already written, so overwriting them needs no extent conversion and a
    /// durable append costs about half of one into fresh space.
    pub(super) spares: Vec<Spare>,
    /// Writes the next spare in the background (see `preparer.rs`).
    pub(super) preparer: Arc<Preparer>,
    /// The index of the last segment, record by record, written beside it
    /// when it is sealed (`segment_index.rs`); `None` when it is not known
    /// whole (then the segment is scanned at open, as without an index).
    pub(super) index: Option<IndexBuilder>,
    pub(super) stats: LogStats,
}

/// Counters of the record log.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogStats {
    pub segments_created: u64,
    pub segments_recycled: u64,
    pub segments_prepared: u64,
    /// Index files written for sealed segments.
    pub segment_indexes_written: u64,
    /// Sealed segments recovery took from their index without reading them.
    pub segments_indexed_at_open: u64,
    /// Bytes of segments recovery read and verified at open.
    pub recovery_bytes_scanned: u64,
    /// Records below the checkpoint that recovery skipped at open because
    /// one of them was damaged (the records after them were kept).
    pub records_skipped_at_open: u64,
}

impl RecordLog {
    /// Opens the record log of a store in `dir`, verifying all of it (see
    /// `recovery.rs`, which defines the steps). Returns the log, ready for
    /// appends in epoch `epoch`; the records at or above the lowest base of
    /// the store's databases, in LSN order; and what recovery found.
    pub fn open(
        dir: PathBuf,
        io: Arc<dyn IoBackend>,
        config: LogConfig,
        manifest: &Manifest,
        state: &ManifestState,
        epoch: Epoch,
        fail: Arc<FailState>,
    ) -> Result<(RecordLog, Vec<RecoveredRecord>, ScanReport)> {
        crate::io::create_dir_durable(io.as_ref(), &dir)?;
        // Find the segments.
        let (spares, stray_segments_removed) =
            recovery::sweep_unlisted_files(io.as_ref(), &dir, config.segment_bytes, state)?;
        let mut segments = recovery::open_listed_segments(io.as_ref(), &dir, state)?;
        // Trust or rebuild their indexes, and scan them: resume past damage
        // below the checkpoint; end the log at a torn tail; refuse damage
        // to durable records.
        let scanned = Scan::new(io.as_ref(), &dir, &segments, state, epoch).run()?;
        let mut report = scanned.report;
        report.stray_segments_removed = stray_segments_removed;
        // Cut the torn tail: drop the segments past the end.
        recovery::drop_segments_past_end(io.as_ref(), &dir, manifest, &mut segments, scanned.end)?;
        // Continue at the checkpoint, past records lost below it, if any.
        let (next_lsn, roll_first) = recovery::continue_at_checkpoint(scanned.next_lsn, state);
        let append_offset = scanned
            .end
            .map(|(_, off)| off)
            .unwrap_or(SEGMENT_HEADER_LEN);
        // Everything recovery read back is on disk now.
        let flusher = Flusher::new(config.flush, fail, Lsn(next_lsn.0 - 1));
        if let Some(last) = segments.last() {
            flusher.set_segment(last.clone(), append_offset)?;
        }
        let log = RecordLog {
            dir,
            io,
            config,
            segments,
            append_offset,
            next_lsn,
            epoch,
            next_segment_id: state.next_segment_id,
            flusher,
            roll_first,
            spares,
            preparer: Default::default(),
            index: if roll_first { None } else { scanned.index },
            stats: LogStats {
                segments_indexed_at_open: report.segments_indexed,
                recovery_bytes_scanned: report.bytes_scanned,
                records_skipped_at_open: report.records_skipped_below_checkpoint,
                ..Default::default()
            },
        };
        Ok((log, scanned.records, report))
    }

    pub fn next_lsn(&self) -> Lsn {
        self.next_lsn
    }

    pub fn durable_lsn(&self) -> Lsn {
        self.flusher.durable_lsn()
    }

    pub fn written_lsn(&self) -> Lsn {
        self.flusher.written_lsn()
    }

    pub fn flusher(&self) -> &Arc<Flusher> {
        &self.flusher
    }

    pub fn flush_stats(&self) -> FlushStats {
        self.flusher.stats()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn stats(&self) -> LogStats {
        LogStats {
            segments_prepared: self
                .preparer
                .prepared
                .load(std::sync::atomic::Ordering::Relaxed),
            ..self.stats
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one record with a single write call. `buf` holds
    /// `RECORD_HEADER_LEN` bytes of room followed by the payload; the header
    /// is filled in here. Returns where the payload landed. The record is
    /// written (it survives the process) but not yet durable: see
    /// [`Flusher::wait_durable`].
    ///
    /// With `defer_write` (the caller waits for durability next, as a
    /// commit under FULL does) the record may stay in the flush buffer
    /// until the sync's leader writes it: no one can read it before then,
    /// because SQLite publishes a commit only after its sync returns.
    pub fn append(
        &mut self,
        manifest: &Manifest,
        db: DbId,
        buf: &mut [u8],
        wal_offset: u64,
        defer_write: bool,
        frames: Option<&RecordFrames>,
    ) -> Result<RecordLoc> {
        let flusher = self.flusher.clone();
        flusher
            .metrics
            .append
            .time(|| self.append_inner(manifest, db, buf, wal_offset, defer_write, frames))
    }

    fn append_inner(
        &mut self,
        manifest: &Manifest,
        db: DbId,
        buf: &mut [u8],
        wal_offset: u64,
        defer_write: bool,
        frames: Option<&RecordFrames>,
    ) -> Result<RecordLoc> {
        let payload_len = u32::try_from(buf.len() - RECORD_HEADER_LEN)
            .map_err(|_| StorageError::Limit("a log record is limited to 4 GiB".into()))?;
        // The record carries this open's epoch: it must be durable first
        // (a store opened after a clean shutdown begins it here).
        manifest.ensure_epoch()?;
        let needed = buf.len() as u64;
        let fits = !self.roll_first
            && self
                .segments
                .last()
                .is_some_and(|s| self.append_offset + needed <= s.header.capacity_bytes);
        if !fits {
            self.roll(manifest, needed)?;
        }
        let large = needed > self.flusher.large_record_bytes();
        let hard_bound = self.flusher.config().unsynced_max_bytes * 3 / 2;
        if !large && self.flusher.unsynced_bytes() + needed > hard_bound {
            // Writers are admitted only below the bound (`Flusher::admit`),
            // but one that bypasses admission (no shared-memory locks) must
            // not grow the buffer without end: flush it here.
            self.flusher.sync_all()?;
        }
        let header = RecordHeader {
            db,
            lsn: self.next_lsn,
            durable_lsn: self.flusher.durable_lsn(),
            wal_offset,
            payload_len,
            payload_crc: crc32c::crc32c(&buf[RECORD_HEADER_LEN..]),
            epoch: self.epoch,
        };
        header.encode(buf);
        let segment = self.segments.last().expect("rolled above").clone();
        if large && defer_write {
            // FULL: written and synced on its own.
            self.flusher
                .write_large(buf, self.append_offset, header.lsn)?;
        } else if large {
            // NORMAL: written now, synced later.
            self.flusher
                .write_large_cached(buf, self.append_offset, header.lsn)?;
        } else {
            self.flusher
                .write_record(buf, self.append_offset, header.lsn, !defer_write)?;
        }
        let loc = RecordLoc {
            lsn: header.lsn,
            segment,
            payload_offset: self.append_offset + RECORD_HEADER_LEN as u64,
            payload_len,
            payload_crc: header.payload_crc,
            unverified: None,
        };
        if let Some(index) = &mut self.index {
            let head = EntryHead {
                db,
                epoch: self.epoch,
                wal_offset,
                payload_len,
                payload_crc: header.payload_crc,
            };
            index.push(&head, frames);
        }
        self.append_offset += needed;
        self.maybe_prepare();
        self.next_lsn = header.lsn.next();
        debug_assert!(
            self.durable_lsn() <= self.written_lsn() && self.written_lsn() < self.next_lsn
        );
        Ok(loc)
    }

    /// Once the active segment is half full, makes sure a spare will be
    /// ready for the next roll.
    fn maybe_prepare(&mut self) {
        let Some(seg) = self.segments.last() else {
            return;
        };
        if !self.spares.is_empty() || self.append_offset * 2 < seg.header.capacity_bytes {
            return;
        }
        let n = self.stats.segments_created + self.stats.segments_recycled;
        let path = self
            .dir
            .join(format!("prepared-{:016x}-{n}.spare", seg.header.id.0));
        self.preparer.start(
            self.io.clone(),
            self.dir.clone(),
            path,
            self.config.segment_bytes,
        );
    }

    /// At a clean close: deletes the spare segments (up to two, plus one
    /// being prepared: 8 MiB each by default), so a closed store holds no
    /// preallocated space beyond its active segment. The next open prepares
    /// spares again when a segment is half full. Waits (bounded) for a
    /// preparation in flight.
    pub fn drop_spares(&mut self) -> Result<()> {
        self.preparer.wait_idle(std::time::Duration::from_secs(10));
        let mut spares = std::mem::take(&mut self.spares);
        spares.extend(self.preparer.take());
        for (path, file) in spares {
            drop(file);
            self.io.remove_file(&path)?;
        }
        Ok(())
    }

    /// Marks the end of the log for a clean shutdown: zeros where the next
    /// record header would go, so the next open finds a clean end there and
    /// never reads what a cut torn tail may have left beyond it (after a
    /// clean shutdown any damaged record is corruption). Call before `sync`.
    pub fn mark_end(&mut self) -> Result<()> {
        if let Some(seg) = self.segments.last() {
            if self.append_offset + RECORD_HEADER_LEN as u64 <= seg.header.capacity_bytes {
                self.flusher
                    .mark_end(self.append_offset, RECORD_HEADER_LEN)?;
            }
        }
        Ok(())
    }

    /// Makes every written record (and end marker) durable.
    pub fn sync(&mut self) -> Result<()> {
        self.flusher.sync_everything()
    }

    /// Starts a new segment with room for at least `needed` bytes.
    fn roll(&mut self, manifest: &Manifest, needed: u64) -> Result<()> {
        // The old segment ends cleanly (a reused segment holds old records
        // past its end) and is durable before the next exists (invariant 2).
        self.mark_end()?;
        self.sync()?;
        if let (Some(index), Some(old)) = (self.index.take(), self.segments.last()) {
            self.write_index(old.header.id, &index);
        }
        const ROUND: u64 = 1 << 20;
        let want = SEGMENT_HEADER_LEN + needed;
        // A store's first segment (none before it, no spare) is small: a
        // new database then writes 1 MiB of zeros, not a whole segment
        // (most databases of a many-database host stay small). It is not
        // reused; the segments after it have the standard size, prepared
        // in the background once it is half full.
        let standard = if self.segments.is_empty() && self.spares.is_empty() {
            self.config.segment_bytes.min(FIRST_SEGMENT_BYTES)
        } else {
            self.config.segment_bytes
        };
        let capacity = standard.max(want.div_ceil(ROUND) * ROUND);
        let id = self.next_segment_id;
        let header = SegmentHeader {
            id,
            first_lsn: self.next_lsn,
            capacity_bytes: capacity,
        };
        let path = self.dir.join(segment_file_name(id));
        let spare = if capacity == self.config.segment_bytes {
            self.spares.pop().or_else(|| self.preparer.take())
        } else {
            None
        };
        let recycled = spare.is_some();
        let file = match spare {
            Some((spare_path, file)) => {
                self.io.rename(&spare_path, &path)?;
                file
            }
            None => self.io.open_log(&path, OpenMode::CreateNew)?,
        };
        let made = (|| {
            if !recycled {
                // No spare at hand: the first segment of a store, a record
                // larger than a segment, or a roll faster than the
                // background preparation. Preallocate, and zero-fill a
                // standard-size segment so commits overwrite written blocks
                // (a one-time cost; later segments come prepared).
                file.allocate(capacity)?;
                if capacity == standard {
                    zero_fill(file.as_ref(), SEGMENT_HEADER_LEN, capacity)?;
                }
            }
            // A recycled segment still holds old records past the header:
            // their LSNs are below this segment's first LSN, so recovery
            // never takes them for new ones.
            file.write_all_at(&header.encode(), 0)?;
            file.sync_data()?;
            self.io.sync_dir(&self.dir)?;
            manifest.add_segment(&SegmentMeta {
                id,
                first_lsn: header.first_lsn,
                capacity_bytes: capacity,
            })
        })();
        if let Err(e) = made {
            // Not registered: remove it so no half-made segment lingers.
            let _ = self.io.remove_file(&path);
            return Err(e);
        }
        self.next_segment_id = SegmentId(id.0 + 1);
        if recycled {
            self.stats.segments_recycled += 1;
        } else {
            self.stats.segments_created += 1;
        }
        self.index = Some(IndexBuilder::new(id, header.first_lsn));
        let segment = Arc::new(Segment { header, path, file });
        self.flusher
            .set_segment(segment.clone(), SEGMENT_HEADER_LEN)?;
        self.segments.push(segment);
        self.append_offset = SEGMENT_HEADER_LEN;
        self.roll_first = false;
        Ok(())
    }

    /// Records database `db`'s new base in the manifest (its log records
    /// below it are never replayed again) and drops the segments that hold
    /// only records below `min_base`, the lowest base of all databases. The
    /// last segment is kept for appends. With `recorded` the manifest holds
    /// the base already (`PageStore::publish_with_base`): nothing is written
    /// unless a segment goes.
    pub fn drop_before(
        &mut self,
        manifest: &Manifest,
        db_base: (DbId, Lsn),
        min_base: Lsn,
        recorded: bool,
    ) -> Result<()> {
        let base = min_base;
        let mut drop_count = 0;
        while drop_count + 1 < self.segments.len()
            && self.segments[drop_count + 1].header.first_lsn <= base
        {
            drop_count += 1;
        }
        if drop_count == 0 && recorded {
            return Ok(());
        }
        let ids: Vec<SegmentId> = self.segments[..drop_count]
            .iter()
            .map(|s| s.header.id)
            .collect();
        // The indexes go first: a crash after this leaves segments that
        // are scanned at open, never an index without its segment.
        for id in &ids {
            remove_index(self.io.as_ref(), &self.dir, *id)?;
        }
        let deletion = manifest.drop_segments(&ids, Some(db_base))?;
        for seg in self.segments.drain(..drop_count).collect::<Vec<_>>() {
            let reusable = seg.header.capacity_bytes == self.config.segment_bytes
                && self.spares.len() < SPARE_SEGMENTS_MAX;
            match Arc::try_unwrap(seg) {
                Ok(seg) if reusable => {
                    let spare = self.dir.join(spare_file_name(seg.header.id));
                    self.io.rename(&seg.path, &spare)?;
                    self.spares.push((spare, seg.file));
                }
                // Not reusable, or someone still reads it: unlink (an open
                // handle keeps the inode until it is done).
                Ok(seg) => self.io.remove_file(&seg.path)?,
                Err(seg) => self.io.remove_file(&seg.path)?,
            }
        }
        if let Some(intent) = deletion {
            // Unlinks and renames are durable: the journal may forget them.
            self.io.sync_dir(&self.dir)?;
            manifest.journal_done(intent);
        }
        Ok(())
    }

    /// Writes a sealed segment's index beside it. Not synced, and never
    /// required: a failure is logged and leaves the segment to be scanned.
    fn write_index(&mut self, id: SegmentId, index: &IndexBuilder) {
        let path = index_path(&self.dir, id);
        let written = (|| {
            remove_index(self.io.as_ref(), &self.dir, id)?;
            let file = self.io.open(&path, OpenMode::CreateNew)?;
            file.write_all_at(&index.finish(), 0)
        })();
        match written {
            Ok(()) => self.stats.segment_indexes_written += 1,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "segment index not written; the segment will be scanned at open");
                let _ = self.io.remove_file(&path);
            }
        }
    }
}
