//! Segment index files: what a sealed log segment holds, so that opening a
//! store does not read and checksum every record of every segment.
//!
//! When the record log rolls to a new segment, the old one is synced (it is
//! sealed: nothing is appended to it again) and its index is written beside
//! it as `<segment id:016x>.idx`: one entry per record, and for records
//! that carry SQLite frames, the frames a wal-index needs. The file is not
//! synced and is never required: recovery uses it only when it checks out
//! (magic, version, checksum, segment id and first LSN, records back to
//! back inside the segment, and its last LSN followed exactly by the next
//! segment's first), and scans the segment otherwise. Records taken from an
//! index are verified when first read (`RecordLoc::read`), not at open.
//!
//! ```text
//! offset size field                     (all integers little-endian)
//!      0    8 magic          b"BOPWIDX\0"
//!      8    2 version        INDEX_VERSION
//!     10    2 reserved       0
//!     12    4 record_count
//!     16    8 segment_id
//!     24    8 first_lsn      LSN of the first record (the segment's)
//!     32    - entries, one per record in LSN order:
//!             0  2 db
//!             2  1 flags      bit 0: frames known; bit 1: WAL header present
//!             3  1 reserved
//!             4  4 epoch
//!             8  8 wal_offset
//!            16  4 payload_len
//!            20  4 payload_crc
//!            24  -  when frames are known: frame_count u32, last_cksum
//!                   2 x u32, the 32-byte SQLite WAL header (bit 1), then
//!                   frame_count x (pgno u32, db_pages u32)
//!   end-4   4 crc32c of every byte before it
//! ```
//! Record `i` starts at `SEGMENT_HEADER_LEN` plus the lengths of the
//! records before it (`RECORD_HEADER_LEN + payload_len` each).

use std::path::{Path, PathBuf};

use super::record::RECORD_HEADER_LEN;
use super::segment::SEGMENT_HEADER_LEN;
use crate::error::Result;
use crate::io::IoBackend;
use crate::types::{le, DbId, Epoch, Lsn, SegmentId};
use crate::wal_format::{FrameInfo, RecordFrames, SQLITE_WAL_HEADER_LEN};

pub const INDEX_MAGIC: [u8; 8] = *b"BOPWIDX\0";
pub const INDEX_VERSION: u16 = 1;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_COUNT: usize = 12;
const OFF_SEGMENT_ID: usize = 16;
const OFF_FIRST_LSN: usize = 24;
const INDEX_HEADER_LEN: usize = 32;
const _: () = assert!(OFF_VERSION == OFF_MAGIC + 8);
const _: () = assert!(OFF_COUNT == OFF_VERSION + 4);
const _: () = assert!(OFF_SEGMENT_ID == OFF_COUNT + 4);
const _: () = assert!(OFF_FIRST_LSN == OFF_SEGMENT_ID + 8);
const _: () = assert!(INDEX_HEADER_LEN == OFF_FIRST_LSN + 8);

const E_DB: usize = 0;
const E_FLAGS: usize = 2;
const E_EPOCH: usize = 4;
const E_WAL_OFFSET: usize = 8;
const E_PAYLOAD_LEN: usize = 16;
const E_PAYLOAD_CRC: usize = 20;
const ENTRY_LEN: usize = 24;
const _: () = assert!(E_EPOCH == E_FLAGS + 2);
const _: () = assert!(E_WAL_OFFSET == E_EPOCH + 4);
const _: () = assert!(E_PAYLOAD_LEN == E_WAL_OFFSET + 8);
const _: () = assert!(E_PAYLOAD_CRC == E_PAYLOAD_LEN + 4);
const _: () = assert!(ENTRY_LEN == E_PAYLOAD_CRC + 4);
const FRAMES_HEAD_LEN: usize = 12;
const FRAME_LEN: usize = 8;

const FLAG_FRAMES: u8 = 1;
const FLAG_HEADER: u8 = 2;

/// File name of segment `id`'s index.
pub fn index_file_name(id: SegmentId) -> String {
    format!("{:016x}.idx", id.0)
}

/// The segment id an index file name names.
pub fn parse_index_file_name(name: &str) -> Option<SegmentId> {
    let hex = name.strip_suffix(".idx")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
        .map(SegmentId)
}

pub fn index_path(dir: &Path, id: SegmentId) -> PathBuf {
    dir.join(index_file_name(id))
}

/// The fixed part of an index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryHead {
    pub db: DbId,
    pub epoch: Epoch,
    pub wal_offset: u64,
    pub payload_len: u32,
    pub payload_crc: u32,
}

/// One record as an index describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub head: EntryHead,
    pub frames: Option<RecordFrames>,
}

/// The index of the segment being appended to, built record by record.
#[derive(Debug)]
pub struct IndexBuilder {
    buf: Vec<u8>,
    count: u32,
}

impl IndexBuilder {
    pub fn new(segment_id: SegmentId, first_lsn: Lsn) -> IndexBuilder {
        let mut buf = vec![0u8; INDEX_HEADER_LEN];
        buf[OFF_MAGIC..OFF_MAGIC + 8].copy_from_slice(&INDEX_MAGIC);
        le::put_u16(&mut buf, OFF_VERSION, INDEX_VERSION);
        le::put_u64(&mut buf, OFF_SEGMENT_ID, segment_id.0);
        le::put_u64(&mut buf, OFF_FIRST_LSN, first_lsn.0);
        IndexBuilder { buf, count: 0 }
    }

    pub fn push(&mut self, e: &EntryHead, frames: Option<&RecordFrames>) {
        let at = self.buf.len();
        self.buf.resize(at + ENTRY_LEN, 0);
        let b = &mut self.buf[at..];
        le::put_u16(b, E_DB, e.db.0);
        let mut flags = 0;
        if let Some(f) = frames {
            flags |= FLAG_FRAMES;
            if f.header.is_some() {
                flags |= FLAG_HEADER;
            }
        }
        b[E_FLAGS] = flags;
        le::put_u32(b, E_EPOCH, e.epoch.0);
        le::put_u64(b, E_WAL_OFFSET, e.wal_offset);
        le::put_u32(b, E_PAYLOAD_LEN, e.payload_len);
        le::put_u32(b, E_PAYLOAD_CRC, e.payload_crc);
        if let Some(f) = frames {
            let mut head = [0u8; FRAMES_HEAD_LEN];
            le::put_u32(&mut head, 0, f.frames.len() as u32);
            le::put_u32(&mut head, 4, f.last_cksum[0]);
            le::put_u32(&mut head, 8, f.last_cksum[1]);
            self.buf.extend_from_slice(&head);
            if let Some(h) = &f.header {
                self.buf.extend_from_slice(h);
            }
            for fr in &f.frames {
                self.buf.extend_from_slice(&fr.pgno.to_le_bytes());
                self.buf.extend_from_slice(&fr.db_pages.to_le_bytes());
            }
        }
        self.count += 1;
    }

    pub fn len_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The file's bytes.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = self.buf.clone();
        le::put_u32(&mut out, OFF_COUNT, self.count);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }
}

/// The entries of an index file that checks out for segment `id` starting
/// at `first_lsn` with `capacity` bytes, or `None`.
pub fn decode(
    bytes: &[u8],
    id: SegmentId,
    first_lsn: Lsn,
    capacity: u64,
) -> Option<Vec<IndexEntry>> {
    if bytes.len() < INDEX_HEADER_LEN + 4 {
        return None;
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().ok()?)
        || body[OFF_MAGIC..OFF_MAGIC + 8] != INDEX_MAGIC
        || le::u16_at(body, OFF_VERSION) != INDEX_VERSION
        || le::u64_at(body, OFF_SEGMENT_ID) != id.0
        || le::u64_at(body, OFF_FIRST_LSN) != first_lsn.0
    {
        return None;
    }
    let count = le::u32_at(body, OFF_COUNT) as usize;
    let mut entries = Vec::with_capacity(count.min(body.len() / ENTRY_LEN));
    let mut at = INDEX_HEADER_LEN;
    let mut offset = SEGMENT_HEADER_LEN;
    for _ in 0..count {
        let b = body.get(at..at + ENTRY_LEN)?;
        at += ENTRY_LEN;
        let flags = b[E_FLAGS];
        let payload_len = le::u32_at(b, E_PAYLOAD_LEN);
        offset += RECORD_HEADER_LEN as u64 + u64::from(payload_len);
        if offset > capacity {
            return None;
        }
        let frames = if flags & FLAG_FRAMES != 0 {
            let head = body.get(at..at + FRAMES_HEAD_LEN)?;
            at += FRAMES_HEAD_LEN;
            let n = le::u32_at(head, 0) as usize;
            let last_cksum = [le::u32_at(head, 4), le::u32_at(head, 8)];
            let header = if flags & FLAG_HEADER != 0 {
                let h = body.get(at..at + SQLITE_WAL_HEADER_LEN as usize)?;
                at += SQLITE_WAL_HEADER_LEN as usize;
                Some(h.try_into().ok()?)
            } else {
                None
            };
            let raw = body.get(at..at.checked_add(n.checked_mul(FRAME_LEN)?)?)?;
            at += raw.len();
            let frames = raw
                .chunks_exact(FRAME_LEN)
                .map(|f| FrameInfo {
                    pgno: le::u32_at(f, 0),
                    db_pages: le::u32_at(f, 4),
                })
                .collect();
            Some(RecordFrames {
                header,
                frames,
                last_cksum,
            })
        } else {
            None
        };
        entries.push(IndexEntry {
            head: EntryHead {
                db: DbId(le::u16_at(b, E_DB)),
                epoch: Epoch(le::u32_at(b, E_EPOCH)),
                wal_offset: le::u64_at(b, E_WAL_OFFSET),
                payload_len,
                payload_crc: le::u32_at(b, E_PAYLOAD_CRC),
            },
            frames,
        });
    }
    (at == body.len()).then_some(entries)
}

/// Removes segment `id`'s index file, if there is one.
pub(super) fn remove_index(io: &dyn IoBackend, dir: &Path, id: SegmentId) -> Result<()> {
    let path = index_path(dir, id);
    if io.exists(&path) {
        io.remove_file(&path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<IndexEntry> {
        vec![
            IndexEntry {
                head: EntryHead {
                    db: DbId(0),
                    epoch: Epoch(3),
                    wal_offset: 0,
                    payload_len: 32 + 2 * 4120,
                    payload_crc: 7,
                },
                frames: Some(RecordFrames {
                    header: Some([9; 32]),
                    frames: vec![
                        FrameInfo {
                            pgno: 1,
                            db_pages: 0,
                        },
                        FrameInfo {
                            pgno: 2,
                            db_pages: 2,
                        },
                    ],
                    last_cksum: [5, 6],
                }),
            },
            IndexEntry {
                head: EntryHead {
                    db: DbId(4),
                    epoch: Epoch(3),
                    wal_offset: 4152,
                    payload_len: 100,
                    payload_crc: 8,
                },
                frames: None,
            },
        ]
    }

    #[test]
    fn round_trips_and_refuses_what_does_not_check_out() {
        let mut b = IndexBuilder::new(SegmentId(7), Lsn(40));
        for e in entries() {
            b.push(&e.head, e.frames.as_ref());
        }
        let bytes = b.finish();
        let cap = 8 << 20;
        assert_eq!(decode(&bytes, SegmentId(7), Lsn(40), cap), Some(entries()));
        assert_eq!(
            decode(&bytes, SegmentId(8), Lsn(40), cap),
            None,
            "other segment"
        );
        assert_eq!(
            decode(&bytes, SegmentId(7), Lsn(41), cap),
            None,
            "other first LSN"
        );
        assert_eq!(
            decode(&bytes, SegmentId(7), Lsn(40), 8000),
            None,
            "past the capacity"
        );
        for cut in [0, 10, bytes.len() - 1] {
            assert_eq!(decode(&bytes[..cut], SegmentId(7), Lsn(40), cap), None);
        }
        let mut bad = bytes.clone();
        bad[40] ^= 1;
        assert_eq!(decode(&bad, SegmentId(7), Lsn(40), cap), None, "checksum");
        assert_eq!(
            parse_index_file_name(&index_file_name(SegmentId(7))),
            Some(SegmentId(7))
        );
        assert_eq!(parse_index_file_name("0000000000000007.seg"), None);
    }
}
