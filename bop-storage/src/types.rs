//! Newtypes that carry units, so sizes, counts, indexes and log positions are
//! never confused with one another.

use std::fmt;

/// Log sequence number of a record of the record log. Starts at 1; 0 means
/// "none".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    pub const NONE: Lsn = Lsn(0);
    pub const FIRST: Lsn = Lsn(1);
    pub fn next(self) -> Lsn {
        Lsn(self.0 + 1)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lsn {}", self.0)
    }
}

/// A SQLite page number: 1-based, as in SQLite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageNo(pub u32);

impl PageNo {
    /// Zero-based slot in the page index.
    pub fn index(self) -> usize {
        debug_assert!(self.0 >= 1, "page numbers are 1-based");
        (self.0 - 1) as usize
    }
}

/// Identifier of a database within a store. The store's own database (the
/// one named by the store path) is `DbId::MAIN`; the others are numbered
/// from 1 as they are created. Fits in the 16-bit field of a log record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DbId(pub u16);

impl DbId {
    pub const MAIN: DbId = DbId(0);
}

impl fmt::Display for DbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "db {}", self.0)
    }
}

/// Identifier of a segment file of the record log (`wal/<id>.seg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId(pub u64);

/// Identifier of a page chunk file (`chunks/<id>.chunk`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkId(pub u64);

/// Counter bumped on every open of a store; written into each log record so
/// that records left behind a recovered torn tail can never be mistaken for
/// new ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub u32);

/// Little-endian field helpers shared by every on-disk layout.
pub(crate) mod le {
    pub fn u16_at(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes(b[off..off + 2].try_into().expect("2 bytes"))
    }
    pub fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
    }
    pub fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
    }
    pub fn put_u16(b: &mut [u8], off: usize, v: u16) {
        b[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }
    pub fn put_u32(b: &mut [u8], off: usize, v: u32) {
        b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    pub fn put_u64(b: &mut [u8], off: usize, v: u64) {
        b[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }
}
