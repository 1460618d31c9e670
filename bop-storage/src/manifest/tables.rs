//! Value layouts of the manifest's state tables: the one authoritative
//! description (mirrored in docs/FORMAT.md). Keys and `meta` are in
//! `keys.rs`; the change log, cursors and journal in their own modules.
//!
//! Keys are big-endian so that LMDB's byte-wise order is numeric order; all
//! values are little-endian.
//!
//! ```text
//! segments key: segment id  u64 BE   value: first_lsn u64 | capacity_bytes u64
//! chunks   key: chunk id    u64 BE   value: page_count u32 | live_pages u32
//! pages    key: page no     u32 BE   value: chunk id u64 | slot u32 | crc32c u32
//! ```
//!
//! `chunks` and `pages` are per database: the main database's tables are
//! named `chunks` and `pages`, database N's `chunks.N` and `pages.N`.

use std::path::Path;

use crate::error::Result;
use crate::types::{le, ChunkId, Lsn, PageNo, SegmentId};

use super::keys::bad;
pub use super::keys::{decode_u32, decode_u64, key_u32, key_u64, meta_key, per_db};

/// Version of the store layout as a whole (manifest tables, file kinds).
/// 3 added the `changes`, `cursors` and `journal` tables; a version 2 store
/// is upgraded in place at open (`Manifest::open`).
pub const FORMAT_VERSION: u32 = 3;

/// Databases a store holds at most, besides its main one.
pub const DATABASES_MAX: u16 = 255;

/// Names of the store-wide LMDB tables (the per-database ones are
/// `chunks[.N]` and `pages[.N]`).
pub const STORE_TABLES: [&str; 5] = ["meta", "segments", "changes", "cursors", "journal"];

// Value offsets, tied to the lengths below.
const SEG_FIRST_LSN: usize = 0;
const SEG_CAPACITY: usize = 8;
const SEG_VALUE_LEN: usize = 16;
const _: () = assert!(SEG_CAPACITY + 8 == SEG_VALUE_LEN);
const CHUNK_PAGE_COUNT: usize = 0;
const CHUNK_LIVE: usize = 4;
const CHUNK_VALUE_LEN: usize = 8;
const _: () = assert!(CHUNK_LIVE + 4 == CHUNK_VALUE_LEN);
const PAGE_CHUNK: usize = 0;
const PAGE_SLOT: usize = 8;
const PAGE_CRC: usize = 12;
const PAGE_VALUE_LEN: usize = 16;
const _: () = assert!(PAGE_SLOT == PAGE_CHUNK + 8 && PAGE_CRC + 4 == PAGE_VALUE_LEN);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentMeta {
    pub id: SegmentId,
    pub first_lsn: Lsn,
    pub capacity_bytes: u64,
}

impl SegmentMeta {
    pub fn encode_value(&self) -> [u8; SEG_VALUE_LEN] {
        let mut b = [0u8; SEG_VALUE_LEN];
        le::put_u64(&mut b, SEG_FIRST_LSN, self.first_lsn.0);
        le::put_u64(&mut b, SEG_CAPACITY, self.capacity_bytes);
        b
    }
    pub fn decode(k: &[u8], v: &[u8], path: &Path) -> Result<SegmentMeta> {
        let k: [u8; 8] = k.try_into().map_err(|_| bad(path, "segment key"))?;
        if v.len() != SEG_VALUE_LEN {
            return Err(bad(path, "segment value"));
        }
        Ok(SegmentMeta {
            id: SegmentId(u64::from_be_bytes(k)),
            first_lsn: Lsn(le::u64_at(v, SEG_FIRST_LSN)),
            capacity_bytes: le::u64_at(v, SEG_CAPACITY),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkMeta {
    pub id: ChunkId,
    pub page_count: u32,
    pub live_pages: u32,
}

impl ChunkMeta {
    pub fn encode_value(&self) -> [u8; CHUNK_VALUE_LEN] {
        let mut b = [0u8; CHUNK_VALUE_LEN];
        le::put_u32(&mut b, CHUNK_PAGE_COUNT, self.page_count);
        le::put_u32(&mut b, CHUNK_LIVE, self.live_pages);
        b
    }
    pub fn decode(k: &[u8], v: &[u8], path: &Path) -> Result<ChunkMeta> {
        let k: [u8; 8] = k.try_into().map_err(|_| bad(path, "chunk key"))?;
        if v.len() != CHUNK_VALUE_LEN {
            return Err(bad(path, "chunk value"));
        }
        Ok(ChunkMeta {
            id: ChunkId(u64::from_be_bytes(k)),
            page_count: le::u32_at(v, CHUNK_PAGE_COUNT),
            live_pages: le::u32_at(v, CHUNK_LIVE),
        })
    }
}

/// Where one page lives: a slot of a page chunk, with its checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageLoc {
    pub chunk: ChunkId,
    pub slot: u32,
    pub crc: u32,
}

impl PageLoc {
    pub fn encode_value(&self) -> [u8; PAGE_VALUE_LEN] {
        let mut b = [0u8; PAGE_VALUE_LEN];
        le::put_u64(&mut b, PAGE_CHUNK, self.chunk.0);
        le::put_u32(&mut b, PAGE_SLOT, self.slot);
        le::put_u32(&mut b, PAGE_CRC, self.crc);
        b
    }
    pub fn decode(k: &[u8], v: &[u8], path: &Path) -> Result<(PageNo, PageLoc)> {
        let k: [u8; 4] = k.try_into().map_err(|_| bad(path, "page key"))?;
        if v.len() != PAGE_VALUE_LEN {
            return Err(bad(path, "page value"));
        }
        Ok((
            PageNo(u32::from_be_bytes(k)),
            PageLoc {
                chunk: ChunkId(le::u64_at(v, PAGE_CHUNK)),
                slot: le::u32_at(v, PAGE_SLOT),
                crc: le::u32_at(v, PAGE_CRC),
            },
        ))
    }
}
