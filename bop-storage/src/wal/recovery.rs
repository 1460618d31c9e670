//! Opening the WAL: verify every segment and record, keep everything up to
//! the last whole record, cut a torn tail, and refuse damaged durable data.
//!
//! A record that fails verification ends the log. It is a torn tail unless
//! some later valid record (same or newer epoch) says, through its
//! `durable_lsn`, that the failed record had been made durable, or the
//! store was shut down cleanly (then nothing can be torn); in both cases the
//! store is corrupt and opening fails with the file and offset.

use std::path::PathBuf;
use std::sync::Arc;

use super::flush::Flusher;
use super::record::{HeaderDefect, RecordHeader, RECORD_HEADER_LEN, RECORD_MAGIC};
use super::segment::{parse_segment_file_name, Segment, SegmentHeader, SEGMENT_HEADER_LEN};
use super::writer::{RecordLoc, Wal, WalConfig, SPARE_SEGMENTS_MAX};
use crate::error::{Result, StorageError};
use crate::fail::FailState;
use crate::io::{IoBackend, OpenMode};
use crate::manifest::{Manifest, ManifestState};
use crate::types::{DbId, Epoch, Lsn, SegmentId};

/// A record found by recovery at or above the WAL base.
#[derive(Clone, Debug)]
pub struct RecoveredRecord {
    pub db: DbId,
    pub loc: RecordLoc,
    pub wal_offset: u64,
}

/// What the scan learned.
#[derive(Debug, Default)]
pub struct ScanReport {
    pub records: usize,
    /// Bytes of a torn tail that were cut (0 when the log ended cleanly).
    pub torn_tail_at: Option<(PathBuf, u64)>,
}

impl Wal {
    /// Opens the WAL of a store, verifying all of it.
    pub fn open(
        dir: PathBuf,
        io: Arc<dyn IoBackend>,
        config: WalConfig,
        manifest: &Manifest,
        state: &ManifestState,
        epoch: Epoch,
        fail: Arc<FailState>,
    ) -> Result<(Wal, Vec<RecoveredRecord>, ScanReport)> {
        io.create_dir_all(&dir)?;
        // Invariant 4: sweep files the manifest does not know (keeping spares).
        let mut spares = Vec::new();
        for path in io.list_dir(&dir)? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let known = parse_segment_file_name(name)
                .is_some_and(|id| state.segments.iter().any(|s| s.id == id));
            if name.ends_with(".spare") && spares.len() < SPARE_SEGMENTS_MAX {
                let file = io.open_log(&path, OpenMode::Existing)?;
                if file.len_bytes()? == config.segment_bytes {
                    spares.push((path, file));
                    continue;
                }
            }
            if !known {
                tracing::info!(path = %path.display(), "removing WAL file not listed in the manifest");
                io.remove_file(&path)?;
            }
        }

        let mut segments = Vec::new();
        let mut images = Vec::new();
        for meta in &state.segments {
            let path = dir.join(super::segment::segment_file_name(meta.id));
            let file = io.open_log(&path, OpenMode::Existing)?;
            let len = file.len_bytes()?;
            let mut image = vec![0u8; len as usize];
            file.read_exact_at(&mut image, 0)?;
            let header = SegmentHeader::decode(&image, &path)?;
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
            images.push(image);
        }

        let mut report = ScanReport::default();
        let mut records = Vec::new();
        let mut expected = segments
            .first()
            .map(|s| s.header.first_lsn)
            .unwrap_or(state.wal_base_max);
        let mut last_epoch = Epoch(0);
        let mut end: Option<(usize, u64)> = None; // (segment index, offset) where appends continue
        'segments: for (si, seg) in segments.iter().enumerate() {
            let image = &images[si];
            if seg.header.first_lsn != expected {
                // A segment is created only after its predecessor is synced
                // and with the next LSN; a gap means lost durable records,
                // unless every record in the gap is below the checkpoint
                // (already in the page store: see `next_lsn` below).
                let gap_below_checkpoint =
                    seg.header.first_lsn > expected && seg.header.first_lsn <= state.wal_base_max;
                if (records.is_empty() && si == 0) || gap_below_checkpoint {
                    expected = seg.header.first_lsn;
                } else {
                    return Err(StorageError::corrupt(
                        &seg.path,
                        0,
                        format!(
                            "segment starts at {} but the log continues at {}",
                            seg.header.first_lsn, expected
                        ),
                    ));
                }
            }
            let mut pos = SEGMENT_HEADER_LEN;
            loop {
                match verify_at(image, pos, expected, last_epoch, epoch) {
                    Ok(h) => {
                        let loc = RecordLoc {
                            lsn: h.lsn,
                            segment: seg.clone(),
                            payload_offset: pos + RECORD_HEADER_LEN as u64,
                            payload_len: h.payload_len,
                            payload_crc: h.payload_crc,
                        };
                        if h.lsn >= state.wal_base_min {
                            records.push(RecoveredRecord {
                                db: h.db,
                                loc,
                                wal_offset: h.wal_offset,
                            });
                        }
                        report.records += 1;
                        expected = h.lsn.next();
                        last_epoch = h.epoch;
                        pos += h.record_len();
                    }
                    Err(defect) => {
                        let below_checkpoint = expected < state.wal_base_min;
                        let next_continues = segments.get(si + 1).is_some_and(|next| {
                            let first = next.header.first_lsn;
                            first == expected || (first > expected && first <= state.wal_base_max)
                        });
                        if next_continues && (defect == HeaderDefect::Empty || below_checkpoint) {
                            // A clean end of a full segment, or a tail that
                            // only held records the checkpoint covers.
                            continue 'segments;
                        }
                        // The log ends here. Torn tail or damage? (Damage
                        // below the checkpoint does not matter: those
                        // records are in the page store.)
                        let successor = if below_checkpoint {
                            None
                        } else {
                            find_durable_successor(&images, si, pos, expected, last_epoch)
                        };
                        if state.clean_shutdown
                            && !below_checkpoint
                            && defect != HeaderDefect::Empty
                        {
                            // Every record was synced before the last clean
                            // close: nothing can be torn, so this is damage.
                            return Err(StorageError::corrupt(
                                &seg.path,
                                pos,
                                format!(
                                    "WAL record {expected} is damaged ({defect:?}) in a store that was shut down cleanly"
                                ),
                            ));
                        }
                        if let Some((si2, off2, h2)) = successor {
                            return Err(StorageError::corrupt(
                                &seg.path,
                                pos,
                                format!(
                                    "WAL record {} is damaged ({defect:?}) but {} in {} at offset {} shows it was durable",
                                    expected,
                                    h2.lsn,
                                    segments[si2].path.display(),
                                    off2
                                ),
                            ));
                        }
                        if defect != HeaderDefect::Empty {
                            tracing::warn!(path = %seg.path.display(), offset = pos, ?defect, "cut torn WAL tail");
                            report.torn_tail_at = Some((seg.path.clone(), pos));
                        }
                        end = Some((si, pos));
                        break 'segments;
                    }
                }
            }
        }

        // Segments after the cut hold nothing trusted: drop them.
        let keep = end.map(|(si, _)| si + 1).unwrap_or(segments.len());
        if keep < segments.len() {
            let extra: Vec<SegmentId> = segments[keep..].iter().map(|s| s.header.id).collect();
            manifest.drop_segments(&extra, None)?;
            for s in segments.drain(keep..) {
                io.remove_file(&s.path)?;
            }
        }
        let append_offset = end.map(|(_, off)| off).unwrap_or(SEGMENT_HEADER_LEN);
        // Records below the checkpoint may have been lost unsynced (they are
        // in the page store). New records must never be numbered below the
        // checkpoint, or the next open would skip them: continue at the
        // checkpoint, in a new segment so LSNs stay consecutive within
        // every segment.
        let roll_first = expected < state.wal_base_max;
        let expected = expected.max(state.wal_base_max);
        let written = Lsn(expected.0 - 1);
        // Everything recovery read back is on disk now.
        let flusher = Flusher::new(config.flush, fail, written);
        if let Some(last) = segments.last() {
            flusher.set_segment(last.clone(), append_offset)?;
        }
        let wal = Wal {
            dir,
            io,
            config,
            segments,
            append_offset,
            next_lsn: expected,
            epoch,
            next_segment_id: state.next_segment_id,
            flusher,
            roll_first,
            spares,
            preparer: Default::default(),
            stats: Default::default(),
        };
        Ok((wal, records, report))
    }
}

/// Verifies the record at `pos` of a segment image.
fn verify_at(
    image: &[u8],
    pos: u64,
    expected: Lsn,
    last_epoch: Epoch,
    current_epoch: Epoch,
) -> Result<RecordHeader, HeaderDefect> {
    let start = pos as usize;
    if start + RECORD_HEADER_LEN > image.len() {
        return Err(HeaderDefect::Empty);
    }
    let h = RecordHeader::decode(&image[start..])?;
    // Epochs never decrease along the log, and no record can come from an
    // open that has not happened yet.
    if h.lsn != expected || h.epoch < last_epoch || h.epoch >= current_epoch {
        return Err(HeaderDefect::BadMagic);
    }
    let body = start + RECORD_HEADER_LEN;
    let end = body + h.payload_len as usize;
    if end > image.len() || crc32c::crc32c(&image[body..end]) != h.payload_crc {
        return Err(HeaderDefect::BadChecksum);
    }
    Ok(h)
}

/// Looks past a failed record for a valid record that proves the failed one
/// was durable.
fn find_durable_successor(
    images: &[Vec<u8>],
    from_segment: usize,
    from_pos: u64,
    failed: Lsn,
    last_epoch: Epoch,
) -> Option<(usize, u64, RecordHeader)> {
    let finder = memchr::memmem::Finder::new(&RECORD_MAGIC);
    for (si, image) in images.iter().enumerate().skip(from_segment) {
        let mut start = if si == from_segment {
            from_pos as usize + 1
        } else {
            SEGMENT_HEADER_LEN as usize
        };
        while start + RECORD_HEADER_LEN <= image.len() {
            // (A vectorised search: the rest of a reused segment is megabytes
            // of old records and zeros.)
            let Some(found) = finder.find(&image[start..]) else {
                break;
            };
            let at = start + found;
            if at + RECORD_HEADER_LEN > image.len() {
                break;
            }
            if let Ok(h) = RecordHeader::decode(&image[at..]) {
                if h.lsn > failed && h.durable_lsn >= failed && h.epoch >= last_epoch {
                    return Some((si, at as u64, h));
                }
            }
            start = at + 1;
        }
    }
    None
}
