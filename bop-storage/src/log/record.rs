//! Log record layout: the one authoritative description; and
//! [`RecordLoc`], where a written record's payload lives and how it is
//! read back, verified.
//!
//! A record of the record log holds one committed SQLite transaction: a
//! contiguous byte range of its database's WAL image (SQLite's own 24-byte
//! frame headers and pages, plus the 32-byte WAL header when the range
//! starts at offset 0). `wal_offset` is where that range starts in the
//! WAL image, an offset in SQLite's WAL.
//!
//! ```text
//! offset size field
//!      0    4 magic        b"BOPR"
//!      4    2 version      RECORD_VERSION
//!      6    2 db           database of the store the record belongs to (0: the
//!                          store's main database)
//!      8    8 lsn          this record's LSN; records are consecutive
//!     16    8 durable_lsn  highest LSN known durable when written (0: none)
//!     24    8 wal_offset   offset of the payload in the database's WAL image
//!     32    4 payload_len  bytes of payload that follow the header
//!     36    4 payload_crc  crc32c of the payload
//!     40    4 epoch        store open counter when written
//!     44    4 header_crc   crc32c of bytes 0..44
//!     48    - payload
//! ```
//! All integers are little-endian.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::segment::Segment;
use crate::error::{Result, StorageError};
use crate::types::{le, DbId, Epoch, Lsn};

pub const RECORD_MAGIC: [u8; 4] = *b"BOPR";
pub const RECORD_VERSION: u16 = 1;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 4;
const OFF_DB: usize = 6;
const OFF_LSN: usize = 8;
const OFF_DURABLE: usize = 16;
const OFF_WAL_OFFSET: usize = 24;
const OFF_PAYLOAD_LEN: usize = 32;
const OFF_PAYLOAD_CRC: usize = 36;
const OFF_EPOCH: usize = 40;
const OFF_HEADER_CRC: usize = 44;
pub const RECORD_HEADER_LEN: usize = 48;

const _: () = assert!(OFF_VERSION == OFF_MAGIC + 4);
const _: () = assert!(OFF_DB == OFF_VERSION + 2);
const _: () = assert!(OFF_LSN == OFF_DB + 2);
const _: () = assert!(OFF_DURABLE == OFF_LSN + 8);
const _: () = assert!(OFF_WAL_OFFSET == OFF_DURABLE + 8);
const _: () = assert!(OFF_PAYLOAD_LEN == OFF_WAL_OFFSET + 8);
const _: () = assert!(OFF_PAYLOAD_CRC == OFF_PAYLOAD_LEN + 4);
const _: () = assert!(OFF_EPOCH == OFF_PAYLOAD_CRC + 4);
const _: () = assert!(OFF_HEADER_CRC == OFF_EPOCH + 4);
const _: () = assert!(RECORD_HEADER_LEN == OFF_HEADER_CRC + 4);

/// The decoded fixed part of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub db: DbId,
    pub lsn: Lsn,
    pub durable_lsn: Lsn,
    pub wal_offset: u64,
    pub payload_len: u32,
    pub payload_crc: u32,
    pub epoch: Epoch,
}

/// Why a header did not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderDefect {
    /// All-zero bytes: the end of the written part of a preallocated segment.
    Empty,
    BadMagic,
    BadVersion(u16),
    BadChecksum,
}

impl RecordHeader {
    /// Writes the header into `out[..RECORD_HEADER_LEN]`.
    pub fn encode(&self, out: &mut [u8]) {
        let b = &mut out[..RECORD_HEADER_LEN];
        b[OFF_MAGIC..OFF_MAGIC + 4].copy_from_slice(&RECORD_MAGIC);
        le::put_u16(b, OFF_VERSION, RECORD_VERSION);
        le::put_u16(b, OFF_DB, self.db.0);
        le::put_u64(b, OFF_LSN, self.lsn.0);
        le::put_u64(b, OFF_DURABLE, self.durable_lsn.0);
        le::put_u64(b, OFF_WAL_OFFSET, self.wal_offset);
        le::put_u32(b, OFF_PAYLOAD_LEN, self.payload_len);
        le::put_u32(b, OFF_PAYLOAD_CRC, self.payload_crc);
        le::put_u32(b, OFF_EPOCH, self.epoch.0);
        let crc = crc32c::crc32c(&b[..OFF_HEADER_CRC]);
        le::put_u32(b, OFF_HEADER_CRC, crc);
    }

    /// Decodes and verifies a header (not the payload).
    pub fn decode(b: &[u8]) -> Result<RecordHeader, HeaderDefect> {
        let b = &b[..RECORD_HEADER_LEN];
        if b.iter().all(|&x| x == 0) {
            return Err(HeaderDefect::Empty);
        }
        if b[OFF_MAGIC..OFF_MAGIC + 4] != RECORD_MAGIC {
            return Err(HeaderDefect::BadMagic);
        }
        if crc32c::crc32c(&b[..OFF_HEADER_CRC]) != le::u32_at(b, OFF_HEADER_CRC) {
            return Err(HeaderDefect::BadChecksum);
        }
        let version = le::u16_at(b, OFF_VERSION);
        if version != RECORD_VERSION {
            return Err(HeaderDefect::BadVersion(version));
        }
        Ok(RecordHeader {
            db: DbId(le::u16_at(b, OFF_DB)),
            lsn: Lsn(le::u64_at(b, OFF_LSN)),
            durable_lsn: Lsn(le::u64_at(b, OFF_DURABLE)),
            wal_offset: le::u64_at(b, OFF_WAL_OFFSET),
            payload_len: le::u32_at(b, OFF_PAYLOAD_LEN),
            payload_crc: le::u32_at(b, OFF_PAYLOAD_CRC),
            epoch: Epoch(le::u32_at(b, OFF_EPOCH)),
        })
    }

    /// Total on-disk length of the record.
    pub fn record_len(&self) -> u64 {
        RECORD_HEADER_LEN as u64 + u64::from(self.payload_len)
    }
}

/// Where a record's payload lives.
#[derive(Clone, Debug)]
pub struct RecordLoc {
    pub lsn: Lsn,
    pub segment: Arc<Segment>,
    /// Offset of the payload (after the record header) in the segment file.
    pub payload_offset: u64,
    pub payload_len: u32,
    pub payload_crc: u32,
    /// Set for a record recovery took from a segment index without reading
    /// it (`segment_index.rs`): the flag turns true once the whole payload
    /// has been read and its checksum matched, which the first read does.
    /// `None`: verified when written or when recovery scanned it.
    pub unverified: Option<Arc<AtomicBool>>,
}

impl RecordLoc {
    /// Re-reads the whole payload and checks its checksum, a bounded
    /// chunk at a time (`VERIFY_CHUNK_BYTES`), whatever the record's size.
    pub fn verify(&self) -> Result<()> {
        let len = u64::from(self.payload_len);
        let mut buf = vec![0u8; VERIFY_CHUNK_BYTES.min(len) as usize];
        let mut crc = 0u32;
        let mut at = 0u64;
        while at < len {
            let n = VERIFY_CHUNK_BYTES.min(len - at) as usize;
            self.read_raw(&mut buf[..n], at)?;
            crc = crc32c::crc32c_append(crc, &buf[..n]);
            at += n as u64;
        }
        if crc != self.payload_crc {
            return Err(StorageError::corrupt(
                &self.segment.path,
                self.payload_offset,
                format!("log record {} payload checksum mismatch", self.lsn),
            ));
        }
        if let Some(flag) = &self.unverified {
            flag.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Reads `buf.len()` payload bytes starting `offset` bytes into the
    /// payload. A record not verified yet is verified whole first, so no
    /// byte of a damaged record is ever returned.
    pub fn read(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        if let Some(flag) = &self.unverified {
            if !flag.load(Ordering::Acquire) {
                // (Two first readers may both verify: harmless.)
                self.verify()?;
                LAZY_VERIFICATIONS.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.read_raw(buf, offset)
    }

    fn read_raw(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        debug_assert!(offset + buf.len() as u64 <= u64::from(self.payload_len));
        self.segment
            .file
            .read_exact_at(buf, self.payload_offset + offset)
    }
}

/// Bytes a record's verification reads at a time.
const VERIFY_CHUNK_BYTES: u64 = 1 << 20;

/// Records verified at their first read (taken from a segment index at
/// open), in this process.
static LAZY_VERIFICATIONS: AtomicU64 = AtomicU64::new(0);

pub fn lazy_verifications() -> u64 {
    LAZY_VERIFICATIONS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordHeader {
        RecordHeader {
            db: DbId(5),
            lsn: Lsn(7),
            durable_lsn: Lsn(6),
            wal_offset: 32,
            payload_len: 4120,
            payload_crc: 0xdead_beef,
            epoch: Epoch(3),
        }
    }

    #[test]
    fn header_round_trips() {
        let mut buf = [0u8; RECORD_HEADER_LEN];
        sample().encode(&mut buf);
        assert_eq!(RecordHeader::decode(&buf), Ok(sample()));
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let mut buf = [0u8; RECORD_HEADER_LEN];
        sample().encode(&mut buf);
        for byte in 0..RECORD_HEADER_LEN {
            for bit in 0..8 {
                let mut bad = buf;
                bad[byte] ^= 1 << bit;
                assert!(RecordHeader::decode(&bad).is_err(), "flip {byte}:{bit}");
            }
        }
    }

    #[test]
    fn zeros_are_empty() {
        assert_eq!(
            RecordHeader::decode(&[0u8; RECORD_HEADER_LEN]),
            Err(HeaderDefect::Empty)
        );
    }
}
