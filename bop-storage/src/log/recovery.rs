//! Opening the record log: verify every segment and record, keep
//! everything up to the last whole record, cut a torn tail, and refuse
//! damaged durable data. `RecordLog::open` (`record_log.rs`) runs the
//! steps defined here, in order:
//!
//! 1. `sweep_unlisted_files`: remove the files of `wal/` the manifest
//!    does not list, keeping spares (invariant 4 of `record_log.rs`).
//! 2. `open_listed_segments`: open every segment the manifest lists and
//!    check its header against the manifest.
//! 3. `Scan::run`: go through the segments in LSN order. A sealed
//!    segment whose index file checks out is trusted and not read at all
//!    (`segment_index.rs`; its records are verified at first read); any
//!    other segment is read and verified record by record, and its index
//!    rebuilt (kept for the last segment, which is written when it is
//!    sealed).
//! 4. `drop_segments_past_end`: cut the log where the scan ended it; the
//!    segments after hold nothing trusted.
//! 5. `continue_at_checkpoint`: where appends continue, never below the
//!    checkpoint.
//!
//! A record that fails verification ends the log. It is a torn tail unless
//! some later valid record (same or newer epoch) says, through its
//! `durable_lsn`, that the failed record had been made durable, or the
//! store was shut down cleanly (then nothing can be torn); in both cases the
//! store is corrupt and opening fails with the file and offset. A failed
//! record below the checkpoint (no database needs it) does not end the log:
//! the scan resumes past the damage at the next valid record in the segment
//! numbered at most the checkpoint LSN (`find_resume_point`).
//!
//! Segments are read a window at a time (`RECOVERY_WINDOW_BYTES`, or one
//! record when a record is larger), so the scan's memory is bounded
//! whatever the log's size. Past the end of the log, the rest of the
//! segment is read only to look for a record proving the failed one
//! durable, and not after a clean shutdown.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::preparer::{Spare, SPARE_SEGMENTS_MAX};
use super::record::{HeaderDefect, RecordHeader, RecordLoc, RECORD_HEADER_LEN, RECORD_MAGIC};
use super::segment::{
    parse_segment_file_name, segment_file_name, Segment, SegmentHeader, SEGMENT_HEADER_LEN,
};
use super::segment_index::{self, parse_index_file_name, remove_index, IndexBuilder, IndexEntry};
use crate::error::{Result, StorageError};
use crate::io::{IoBackend, OpenMode};
use crate::manifest::{Manifest, ManifestState};
use crate::types::{DbId, Epoch, Lsn, SegmentId};
use crate::wal_format::{parse_record, GenerationState, RecordFrames};

/// A record found by recovery at or above the lowest base of the store's
/// databases.
#[derive(Clone, Debug)]
pub struct RecoveredRecord {
    pub db: DbId,
    pub loc: RecordLoc,
    /// Where the record's payload starts in its database's WAL image.
    pub wal_offset: u64,
    /// What the record's payload says of SQLite's frames (read while the
    /// payload was in memory for verification; `None` when unreadable).
    pub frames: Option<RecordFrames>,
}

/// What the scan learned.
#[derive(Debug, Default)]
pub struct ScanReport {
    pub records: usize,
    /// Where a torn tail was cut (`None` when the log ended cleanly).
    pub torn_tail_at: Option<(PathBuf, u64)>,
    /// Segment files (not spares) the sweep removed: left by a roll cut
    /// short, or missed by the journal's replay.
    pub stray_segments_removed: u64,
    /// Sealed segments taken from their index files, not read.
    pub segments_indexed: u64,
    /// Bytes of segments read and verified.
    pub bytes_scanned: u64,
    /// Records below the checkpoint skipped because one of them was
    /// damaged (the records after them were recovered).
    pub records_skipped_below_checkpoint: u64,
}

/// Step 1 (invariant 4): removes the files of `dir` the manifest does not
/// list: segments and index files of unlisted segments, and spares beyond
/// `SPARE_SEGMENTS_MAX` or of another size than `segment_bytes`.
/// Returns the spares kept and how many segment files were removed.
pub(super) fn sweep_unlisted_files(
    io: &dyn IoBackend,
    dir: &Path,
    segment_bytes: u64,
    state: &ManifestState,
) -> Result<(Vec<Spare>, u64)> {
    let mut spares = Vec::new();
    let mut stray_segments_removed = 0;
    for path in io.list_dir(dir)? {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let known = parse_segment_file_name(name)
            .or_else(|| parse_index_file_name(name))
            .is_some_and(|id| state.segments.iter().any(|s| s.id == id));
        if name.ends_with(".spare") && spares.len() < SPARE_SEGMENTS_MAX {
            let file = io.open_log(&path, OpenMode::Existing)?;
            if file.len_bytes()? == segment_bytes {
                spares.push((path, file));
                continue;
            }
        }
        if !known {
            tracing::info!(path = %path.display(), "removing a record-log file the manifest does not list");
            io.remove_file(&path)?;
            if name.ends_with(".seg") {
                stray_segments_removed += 1;
            }
        }
    }
    Ok((spares, stray_segments_removed))
}

/// Step 2: opens every segment the manifest lists, in order, and checks
/// that its header agrees with the manifest.
pub(super) fn open_listed_segments(
    io: &dyn IoBackend,
    dir: &Path,
    state: &ManifestState,
) -> Result<Vec<Arc<Segment>>> {
    let mut segments = Vec::new();
    for meta in &state.segments {
        let path = dir.join(segment_file_name(meta.id));
        let file = io.open_log(&path, OpenMode::Existing)?;
        let len = file.len_bytes()?;
        let mut head = vec![0u8; (SEGMENT_HEADER_LEN.min(len)) as usize];
        file.read_exact_at(&mut head, 0)?;
        let header = SegmentHeader::decode(&head, &path)?;
        if header.id != meta.id || header.first_lsn != meta.first_lsn {
            return Err(StorageError::corrupt(
                &path,
                0,
                format!(
                    "segment header (id {}, first {}) disagrees with the manifest (id {}, first {})",
                    header.id.0, header.first_lsn, meta.id.0, meta.first_lsn
                ),
            ));
        }
        segments.push(Arc::new(Segment { header, path, file }));
    }
    Ok(segments)
}

/// What the scan found (step 3).
pub(super) struct Scanned {
    /// The records at or above the lowest base, in LSN order.
    pub records: Vec<RecoveredRecord>,
    pub report: ScanReport,
    /// The LSN after the last record kept.
    pub next_lsn: Lsn,
    /// Where the log ends: (segment, offset); `None` when there is no
    /// segment.
    pub end: Option<(usize, u64)>,
    /// The index of the last segment scanned, record by record; `None`
    /// when it is not known whole (records were skipped).
    pub index: Option<IndexBuilder>,
}

/// Step 3: the scan along the segments, in LSN order.
pub(super) struct Scan<'a> {
    io: &'a dyn IoBackend,
    dir: &'a Path,
    segments: &'a [Arc<Segment>],
    state: &'a ManifestState,
    /// This open's epoch: no record can be from it or a later one.
    epoch: Epoch,
    reader: WindowReader,
    /// The LSN the next record must carry.
    expected: Lsn,
    /// The epoch of the last record accepted (epochs never decrease).
    last_epoch: Epoch,
    /// Per database, the frame size and salts of its image's generation.
    generations: HashMap<DbId, GenerationState>,
    /// The index of the segment being scanned (the last one's is kept
    /// for appends, and written when it is sealed).
    index: Option<IndexBuilder>,
    records: Vec<RecoveredRecord>,
    report: ScanReport,
}

/// What follows a record that failed verification.
enum AfterFailure {
    /// The scan resumes at this offset of the segment (past damage below
    /// the checkpoint).
    ResumeAt(u64),
    /// The log continues in the next segment.
    NextSegment,
    /// The log ends at the failed record.
    LogEnd,
}

impl<'a> Scan<'a> {
    pub(super) fn new(
        io: &'a dyn IoBackend,
        dir: &'a Path,
        segments: &'a [Arc<Segment>],
        state: &'a ManifestState,
        epoch: Epoch,
    ) -> Scan<'a> {
        let expected = segments
            .first()
            .map(|s| s.header.first_lsn)
            .unwrap_or(state.log_base_max);
        Scan {
            io,
            dir,
            segments,
            state,
            epoch,
            reader: WindowReader::default(),
            expected,
            last_epoch: Epoch(0),
            generations: HashMap::new(),
            index: None,
            records: Vec::new(),
            report: ScanReport::default(),
        }
    }

    /// Takes each segment from its index or scans it, until the log ends.
    pub(super) fn run(mut self) -> Result<Scanned> {
        let segments = self.segments;
        let mut end = None;
        for (si, seg) in segments.iter().enumerate() {
            self.check_continuity(si, seg)?;
            if self.take_from_index(si, seg) {
                continue;
            }
            if let Some(pos) = self.scan_segment(si, seg)? {
                end = Some((si, pos));
                break;
            }
        }
        self.report.bytes_scanned = self.reader.bytes_read;
        Ok(Scanned {
            records: self.records,
            report: self.report,
            next_lsn: self.expected,
            end,
            index: self.index,
        })
    }

    /// Checks that segment `si` starts where the log continues. A segment
    /// is created only after its predecessor is synced and with the next
    /// LSN; a gap means lost durable records, unless every record in the
    /// gap is below the checkpoint (already in the page store: see
    /// [`continue_at_checkpoint`]).
    fn check_continuity(&mut self, si: usize, seg: &Segment) -> Result<()> {
        let first = seg.header.first_lsn;
        if first == self.expected {
            return Ok(());
        }
        let gap_below_checkpoint = first > self.expected && first <= self.state.log_base_max;
        if (self.records.is_empty() && si == 0) || gap_below_checkpoint {
            self.expected = first;
            return Ok(());
        }
        Err(StorageError::corrupt(
            &seg.path,
            0,
            format!(
                "segment starts at {} but the log continues at {}",
                first, self.expected
            ),
        ))
    }

    /// Trusts the index of sealed segment `si` if it checks out
    /// ([`load_index`]): takes its records without reading the segment
    /// (they are verified when first read). Returns whether it did.
    fn take_from_index(&mut self, si: usize, seg: &Arc<Segment>) -> bool {
        let Some(next) = self.segments.get(si + 1) else {
            return false;
        };
        let Some(entries) = load_index(
            self.io,
            self.dir,
            seg,
            next.header.first_lsn,
            self.last_epoch,
            self.epoch,
        ) else {
            return false;
        };
        let mut pos = SEGMENT_HEADER_LEN;
        for (i, e) in entries.into_iter().enumerate() {
            let h = e.head;
            let lsn = Lsn(seg.header.first_lsn.0 + i as u64);
            let loc = RecordLoc {
                lsn,
                segment: seg.clone(),
                payload_offset: pos + RECORD_HEADER_LEN as u64,
                payload_len: h.payload_len,
                payload_crc: h.payload_crc,
                unverified: Some(Arc::new(AtomicBool::new(false))),
            };
            // Later records of the same generation are parsed with this
            // one's header.
            if h.wal_offset == 0 {
                let g = self.generations.entry(h.db).or_default();
                *g = GenerationState::default();
                if let Some(header) = e.frames.as_ref().and_then(|f| f.header.as_ref()) {
                    g.resume(header);
                }
            }
            if lsn >= self.state.log_base_min {
                self.records.push(RecoveredRecord {
                    db: h.db,
                    loc,
                    wal_offset: h.wal_offset,
                    frames: e.frames,
                });
            }
            self.report.records += 1;
            pos += RECORD_HEADER_LEN as u64 + u64::from(h.payload_len);
            self.last_epoch = h.epoch;
        }
        self.expected = next.header.first_lsn;
        self.report.segments_indexed += 1;
        true
    }

    /// Reads and verifies segment `si` record by record, rebuilding its
    /// index. Returns the offset where the log ends in it, or `None` when
    /// the log continues in the next segment.
    fn scan_segment(&mut self, si: usize, seg: &Arc<Segment>) -> Result<Option<u64>> {
        self.reader.start(seg)?;
        self.index = Some(IndexBuilder::new(seg.header.id, seg.header.first_lsn));
        let mut pos = SEGMENT_HEADER_LEN;
        loop {
            match verify_at(
                &mut self.reader,
                pos,
                self.expected,
                self.last_epoch,
                self.epoch,
            )? {
                Ok(h) => pos = self.accept(seg, pos, &h)?,
                Err(defect) => match self.after_failure(si, seg, pos, defect)? {
                    AfterFailure::ResumeAt(at) => pos = at,
                    AfterFailure::NextSegment => return Ok(None),
                    AfterFailure::LogEnd => return Ok(Some(pos)),
                },
            }
        }
    }

    /// Takes the verified record `h` at `pos`; returns where the next one
    /// starts.
    fn accept(&mut self, seg: &Arc<Segment>, pos: u64, h: &RecordHeader) -> Result<u64> {
        let loc = RecordLoc {
            lsn: h.lsn,
            segment: seg.clone(),
            payload_offset: pos + RECORD_HEADER_LEN as u64,
            payload_len: h.payload_len,
            payload_crc: h.payload_crc,
            unverified: None,
        };
        if h.lsn >= self.state.log_base_min {
            let payload = self
                .reader
                .get(pos + RECORD_HEADER_LEN as u64, h.payload_len as usize)?
                .expect("verified just now");
            let frames = parse_record(
                self.generations.entry(h.db).or_default(),
                h.wal_offset,
                payload,
            );
            if let Some(ix) = &mut self.index {
                ix.push(&entry_head(h), frames.as_ref());
            }
            self.records.push(RecoveredRecord {
                db: h.db,
                loc,
                wal_offset: h.wal_offset,
                frames,
            });
        } else if let Some(ix) = &mut self.index {
            ix.push(&entry_head(h), None);
        }
        self.report.records += 1;
        self.expected = h.lsn.next();
        self.last_epoch = h.epoch;
        Ok(pos + h.record_len())
    }

    /// Decides what follows the record at `pos` of segment `si` that
    /// failed verification with `defect`.
    fn after_failure(
        &mut self,
        si: usize,
        seg: &Segment,
        pos: u64,
        defect: HeaderDefect,
    ) -> Result<AfterFailure> {
        let below_checkpoint = self.expected < self.state.log_base_min;
        if below_checkpoint {
            if let Some(at) = self.resume_past_damage(seg, pos, defect)? {
                return Ok(AfterFailure::ResumeAt(at));
            }
        }
        let next_continues = self.segments.get(si + 1).is_some_and(|next| {
            let first = next.header.first_lsn;
            first == self.expected || (first > self.expected && first <= self.state.log_base_max)
        });
        if next_continues && (defect == HeaderDefect::Empty || below_checkpoint) {
            // A clean end of a full segment, or a tail that only held
            // records the checkpoint covers.
            return Ok(AfterFailure::NextSegment);
        }
        self.end_log(si, seg, pos, defect, below_checkpoint)?;
        Ok(AfterFailure::LogEnd)
    }

    /// A damaged record the checkpoint covers: no database needs it, but
    /// the records after it in this segment may be needed. Finds the next
    /// valid record whose predecessors are all below the checkpoint and
    /// returns its offset; the records skipped are counted.
    fn resume_past_damage(
        &mut self,
        seg: &Segment,
        pos: u64,
        defect: HeaderDefect,
    ) -> Result<Option<u64>> {
        let Some((at, lsn)) = find_resume_point(
            &mut self.reader,
            pos,
            self.expected,
            self.state.log_base_min,
            self.last_epoch,
            self.epoch,
        )?
        else {
            return Ok(None);
        };
        tracing::warn!(path = %seg.path.display(), offset = pos, ?defect, resume_at = at, "damaged log records below the checkpoint skipped");
        self.report.records_skipped_below_checkpoint += lsn.0 - self.expected.0;
        // Entries are missing: this segment's index is not known whole (it
        // is scanned at open).
        self.index = None;
        self.expected = lsn;
        Ok(Some(at))
    }

    /// The log ends at `pos` of segment `si`, where a record failed with
    /// `defect`: a torn tail, which is cut, or damage to durable data,
    /// which fails the open with the file and offset. (Damage below the
    /// checkpoint does not matter: those records are in the page store.)
    fn end_log(
        &mut self,
        si: usize,
        seg: &Segment,
        pos: u64,
        defect: HeaderDefect,
        below_checkpoint: bool,
    ) -> Result<()> {
        let expected = self.expected;
        // After a clean shutdown every record was synced and the end marked
        // with zeros: the log ends at the mark, and nothing past it can
        // prove anything.
        let clean_end = self.state.clean_shutdown && defect == HeaderDefect::Empty;
        let successor = if below_checkpoint || clean_end {
            None
        } else {
            find_durable_successor(
                &mut self.reader,
                self.segments,
                si,
                pos,
                expected,
                self.last_epoch,
            )?
        };
        if self.state.clean_shutdown && !below_checkpoint && defect != HeaderDefect::Empty {
            // Every record was synced before the last clean close: nothing
            // can be torn, so this is damage.
            return Err(StorageError::corrupt(
                &seg.path,
                pos,
                format!(
                    "log record {expected} is damaged ({defect:?}) in a store that was shut down cleanly"
                ),
            ));
        }
        if let Some((si2, off2, h2)) = successor {
            return Err(StorageError::corrupt(
                &seg.path,
                pos,
                format!(
                    "log record {} is damaged ({defect:?}) but log record {} in {} at offset {} shows it was durable",
                    expected,
                    h2.lsn,
                    self.segments[si2].path.display(),
                    off2
                ),
            ));
        }
        if defect != HeaderDefect::Empty {
            tracing::warn!(path = %seg.path.display(), offset = pos, ?defect, "cut the torn tail of the record log");
            self.report.torn_tail_at = Some((seg.path.clone(), pos));
        }
        Ok(())
    }
}

/// Step 4: drops the segments after the end of the log (segment `end.0`):
/// they hold nothing trusted. Their index files go first, then the
/// manifest forgets them, then the files go.
pub(super) fn drop_segments_past_end(
    io: &dyn IoBackend,
    dir: &Path,
    manifest: &Manifest,
    segments: &mut Vec<Arc<Segment>>,
    end: Option<(usize, u64)>,
) -> Result<()> {
    let keep = end.map(|(si, _)| si + 1).unwrap_or(segments.len());
    if keep >= segments.len() {
        return Ok(());
    }
    let extra: Vec<SegmentId> = segments[keep..].iter().map(|s| s.header.id).collect();
    for id in &extra {
        remove_index(io, dir, *id)?;
    }
    let deletion = manifest.drop_segments(&extra, None)?;
    for s in segments.drain(keep..) {
        io.remove_file(&s.path)?;
    }
    if let Some(intent) = deletion {
        io.sync_dir(dir)?;
        manifest.journal_done(intent);
    }
    Ok(())
}

/// Step 5: the LSN appends continue at after a scan that ended at
/// `next_lsn`, and whether the next append must start a new segment.
/// Records below the checkpoint may have been lost unsynced (they are in
/// the page store). New records must never be numbered below the
/// checkpoint, or the next open would skip them: the log continues at the
/// checkpoint, in a new segment so LSNs stay consecutive within every
/// segment.
pub(super) fn continue_at_checkpoint(next_lsn: Lsn, state: &ManifestState) -> (Lsn, bool) {
    let roll_first = next_lsn < state.log_base_max;
    (next_lsn.max(state.log_base_max), roll_first)
}

fn entry_head(h: &RecordHeader) -> segment_index::EntryHead {
    segment_index::EntryHead {
        db: h.db,
        epoch: h.epoch,
        wal_offset: h.wal_offset,
        payload_len: h.payload_len,
        payload_crc: h.payload_crc,
    }
}

/// The entries of `seg`'s index file, if it checks out: its own checks
/// (`segment_index::decode`), records that end exactly where the next
/// segment's first LSN says, and epochs that never decrease and are older
/// than this open. Anything else (no file, a stale or torn one) means the
/// segment is scanned.
fn load_index(
    io: &dyn IoBackend,
    dir: &std::path::Path,
    seg: &Segment,
    next_first_lsn: Lsn,
    last_epoch: Epoch,
    current_epoch: Epoch,
) -> Option<Vec<IndexEntry>> {
    let path = segment_index::index_path(dir, seg.header.id);
    if !io.exists(&path) {
        return None;
    }
    let bytes = (|| {
        let file = io.open(&path, OpenMode::ReadOnly)?;
        let len = file.len_bytes()?;
        // An index is always smaller than its segment: anything larger is
        // not one, and is not read into memory.
        if len > seg.header.capacity_bytes {
            return Err(StorageError::corrupt(
                &path,
                0,
                "index larger than its segment",
            ));
        }
        let mut bytes = vec![0u8; len as usize];
        file.read_exact_at(&mut bytes, 0)?;
        Ok::<_, StorageError>(bytes)
    })()
    .ok()?;
    let entries = segment_index::decode(
        &bytes,
        seg.header.id,
        seg.header.first_lsn,
        seg.header.capacity_bytes,
    )?;
    let ends_at = Lsn(seg.header.first_lsn.0 + entries.len() as u64);
    let mut epoch = last_epoch;
    for e in &entries {
        if e.head.epoch < epoch || e.head.epoch >= current_epoch {
            return None;
        }
        epoch = e.head.epoch;
    }
    (ends_at == next_first_lsn).then_some(entries)
}

/// Bytes of a segment read per call during recovery.
pub const RECOVERY_WINDOW_BYTES: usize = 1 << 20;

/// Reads one segment at a time through one reused buffer: a window of
/// `RECOVERY_WINDOW_BYTES` (or one record, when larger) at a time.
#[derive(Default)]
struct WindowReader {
    file: Option<Arc<dyn crate::io::IoFile>>,
    len: u64,
    buf: Vec<u8>,
    /// Segment offset of `buf[0]`; `buf` holds `filled` valid bytes.
    at: u64,
    filled: usize,
    bytes_read: u64,
}

impl WindowReader {
    fn start(&mut self, seg: &Segment) -> Result<()> {
        self.file = Some(seg.file.clone());
        self.len = seg.file.len_bytes()?;
        self.at = 0;
        self.filled = 0;
        Ok(())
    }

    /// `n` bytes at `pos` of the segment, or `None` past its end.
    fn get(&mut self, pos: u64, n: usize) -> Result<Option<&[u8]>> {
        if pos + n as u64 > self.len {
            return Ok(None);
        }
        let inside = pos >= self.at && pos + n as u64 <= self.at + self.filled as u64;
        if !inside {
            let want = n.max(RECOVERY_WINDOW_BYTES).min((self.len - pos) as usize);
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            let file = self.file.as_ref().expect("started");
            file.read_exact_at(&mut self.buf[..want], pos)?;
            self.bytes_read += want as u64;
            self.at = pos;
            self.filled = want;
        }
        let from = (pos - self.at) as usize;
        Ok(Some(&self.buf[from..from + n]))
    }

    /// Gives back the memory of a window grown for a large record.
    fn shrink(&mut self) {
        if self.buf.len() > RECOVERY_WINDOW_BYTES {
            self.buf = Vec::new();
            self.filled = 0;
        }
    }
}

/// Verifies the record at `pos` of the reader's segment.
fn verify_at(
    reader: &mut WindowReader,
    pos: u64,
    expected: Lsn,
    last_epoch: Epoch,
    current_epoch: Epoch,
) -> Result<Result<RecordHeader, HeaderDefect>> {
    let Some(head) = reader.get(pos, RECORD_HEADER_LEN)? else {
        return Ok(Err(HeaderDefect::Empty));
    };
    let h = match RecordHeader::decode(head) {
        Ok(h) => h,
        Err(d) => return Ok(Err(d)),
    };
    // Epochs never decrease along the log, and no record can come from an
    // open that has not happened yet.
    if h.lsn != expected || h.epoch < last_epoch || h.epoch >= current_epoch {
        return Ok(Err(HeaderDefect::BadMagic));
    }
    let ok = match reader.get(pos + RECORD_HEADER_LEN as u64, h.payload_len as usize)? {
        Some(payload) => crc32c::crc32c(payload) == h.payload_crc,
        None => false,
    };
    if !ok {
        reader.shrink();
        return Ok(Err(HeaderDefect::BadChecksum));
    }
    Ok(Ok(h))
}

/// The first record header at or after `from` in the reader's segment
/// (found by its magic, decoding with a valid header checksum) that `want`
/// accepts, with its offset. Reads window by window; windows overlap by a
/// header, so no header is missed at a window's edge.
fn next_header(
    reader: &mut WindowReader,
    from: u64,
    want: impl Fn(&RecordHeader) -> bool,
) -> Result<Option<(u64, RecordHeader)>> {
    let finder = memchr::memmem::Finder::new(&RECORD_MAGIC);
    let mut start = from;
    while start + RECORD_HEADER_LEN as u64 <= reader.len {
        let n = (RECOVERY_WINDOW_BYTES as u64).min(reader.len - start) as usize;
        let window = reader.get(start, n)?.expect("inside the segment");
        // (A vectorised search: the rest of a reused segment is megabytes
        // of old records and zeros.)
        let mut at = 0;
        while let Some(found) = finder.find(&window[at..]) {
            at += found;
            if at + RECORD_HEADER_LEN > window.len() {
                break;
            }
            if let Ok(h) = RecordHeader::decode(&window[at..]) {
                if want(&h) {
                    return Ok(Some((start + at as u64, h)));
                }
            }
            at += 1;
        }
        if start + n as u64 >= reader.len {
            break;
        }
        // The next window starts a header's length before this one's end.
        start += (n - (RECORD_HEADER_LEN - 1)) as u64;
    }
    Ok(None)
}

/// Looks past a damaged record below the checkpoint, in the same segment,
/// for the next valid record (header and payload) numbered after it and at
/// most `base_min`: every record in between is below the checkpoint, so
/// the scan may resume there. Returns its offset and LSN.
fn find_resume_point(
    reader: &mut WindowReader,
    from_pos: u64,
    failed: Lsn,
    base_min: Lsn,
    last_epoch: Epoch,
    current_epoch: Epoch,
) -> Result<Option<(u64, Lsn)>> {
    let mut from = from_pos + 1;
    while let Some((at, h)) = next_header(reader, from, |h| h.lsn > failed && h.lsn <= base_min)? {
        // The whole record, payload included, must check out.
        if verify_at(reader, at, h.lsn, last_epoch, current_epoch)?.is_ok() {
            return Ok(Some((at, h.lsn)));
        }
        from = at + 1;
    }
    Ok(None)
}

/// Looks past a failed record for a valid record that proves the failed one
/// was durable, through the rest of the segments.
fn find_durable_successor(
    reader: &mut WindowReader,
    segments: &[Arc<Segment>],
    from_segment: usize,
    from_pos: u64,
    failed: Lsn,
    last_epoch: Epoch,
) -> Result<Option<(usize, u64, RecordHeader)>> {
    for (si, seg) in segments.iter().enumerate().skip(from_segment) {
        reader.start(seg)?;
        let from = if si == from_segment {
            from_pos + 1
        } else {
            SEGMENT_HEADER_LEN
        };
        let proves =
            |h: &RecordHeader| h.lsn > failed && h.durable_lsn >= failed && h.epoch >= last_epoch;
        if let Some((at, h)) = next_header(reader, from, proves)? {
            return Ok(Some((si, at, h)));
        }
    }
    Ok(None)
}
