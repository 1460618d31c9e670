//! Log segment file layout: the one authoritative description.
//!
//! A segment of the record log is a preallocated file
//! `<store>/wal/<id:016x>.seg` (the directory name and the magic `BOPWALSG`
//! predate the term "record log" and are kept, so existing stores open).
//! Its first `SEGMENT_HEADER_LEN` bytes are the header; records (see
//! `record.rs`) follow back to back from `SEGMENT_HEADER_LEN`. The
//! unwritten rest of a preallocated segment reads as zeros, which ends the
//! scan.
//!
//! ```text
//! offset size field
//!      0    8 magic          b"BOPWALSG"
//!      8    2 version        SEGMENT_VERSION
//!     10    2 reserved       0
//!     12    4 reserved       0
//!     16    8 segment_id
//!     24    8 first_lsn      LSN of the first record the segment holds
//!     32    8 capacity_bytes preallocated length of the file
//!     40    4 header_crc     crc32c of bytes 0..40
//!     44 4052 zero
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Result, StorageError};
use crate::io::IoFile;
use crate::types::{le, Lsn, SegmentId};

pub const SEGMENT_MAGIC: [u8; 8] = *b"BOPWALSG";
pub const SEGMENT_VERSION: u16 = 1;
/// Records start here; 4096 keeps them aligned for direct I/O later.
pub const SEGMENT_HEADER_LEN: u64 = 4096;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_SEGMENT_ID: usize = 16;
const OFF_FIRST_LSN: usize = 24;
const OFF_CAPACITY: usize = 32;
const OFF_HEADER_CRC: usize = 40;
const HEADER_USED: usize = 44;
const _: () = assert!(OFF_VERSION == OFF_MAGIC + 8);
const _: () = assert!(OFF_SEGMENT_ID == OFF_VERSION + 8);
const _: () = assert!(OFF_FIRST_LSN == OFF_SEGMENT_ID + 8);
const _: () = assert!(OFF_CAPACITY == OFF_FIRST_LSN + 8);
const _: () = assert!(OFF_HEADER_CRC == OFF_CAPACITY + 8);
const _: () = assert!(HEADER_USED as u64 <= SEGMENT_HEADER_LEN);

/// File name of a segment inside the record log's directory (`wal/`).
pub fn segment_file_name(id: SegmentId) -> String {
    format!("{:016x}.seg", id.0)
}

/// Parses a segment file name back into its id.
pub fn parse_segment_file_name(name: &str) -> Option<SegmentId> {
    let hex = name.strip_suffix(".seg")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(SegmentId)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub id: SegmentId,
    pub first_lsn: Lsn,
    pub capacity_bytes: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; SEGMENT_HEADER_LEN as usize];
        b[OFF_MAGIC..OFF_MAGIC + 8].copy_from_slice(&SEGMENT_MAGIC);
        le::put_u16(&mut b, OFF_VERSION, SEGMENT_VERSION);
        le::put_u64(&mut b, OFF_SEGMENT_ID, self.id.0);
        le::put_u64(&mut b, OFF_FIRST_LSN, self.first_lsn.0);
        le::put_u64(&mut b, OFF_CAPACITY, self.capacity_bytes);
        let crc = crc32c::crc32c(&b[..OFF_HEADER_CRC]);
        le::put_u32(&mut b, OFF_HEADER_CRC, crc);
        b
    }

    pub fn decode(b: &[u8], path: &Path) -> Result<SegmentHeader> {
        if b.len() < HEADER_USED || b[OFF_MAGIC..OFF_MAGIC + 8] != SEGMENT_MAGIC {
            return Err(StorageError::corrupt(
                path,
                0,
                "not a bop log segment (bad magic)",
            ));
        }
        if crc32c::crc32c(&b[..OFF_HEADER_CRC]) != le::u32_at(b, OFF_HEADER_CRC) {
            return Err(StorageError::corrupt(
                path,
                0,
                "segment header checksum mismatch",
            ));
        }
        let version = le::u16_at(b, OFF_VERSION);
        if version != SEGMENT_VERSION {
            return Err(StorageError::Format {
                path: path.to_path_buf(),
                what: format!("segment format version {version} is not supported (this build reads {SEGMENT_VERSION})"),
            });
        }
        Ok(SegmentHeader {
            id: SegmentId(le::u64_at(b, OFF_SEGMENT_ID)),
            first_lsn: Lsn(le::u64_at(b, OFF_FIRST_LSN)),
            capacity_bytes: le::u64_at(b, OFF_CAPACITY),
        })
    }
}

/// An open segment file.
#[derive(Debug)]
pub struct Segment {
    pub header: SegmentHeader,
    pub path: PathBuf,
    pub file: Arc<dyn IoFile>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_flips() {
        let h = SegmentHeader {
            id: SegmentId(9),
            first_lsn: Lsn(100),
            capacity_bytes: 1 << 20,
        };
        let bytes = h.encode();
        let p = Path::new("x.seg");
        assert_eq!(SegmentHeader::decode(&bytes, p).unwrap(), h);
        for i in 0..HEADER_USED {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(SegmentHeader::decode(&bad, p).is_err(), "byte {i}");
        }
    }

    #[test]
    fn names_round_trip() {
        let id = SegmentId(0xabc);
        assert_eq!(parse_segment_file_name(&segment_file_name(id)), Some(id));
        assert_eq!(parse_segment_file_name("foo.seg"), None);
    }
}
