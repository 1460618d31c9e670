//! Key and value layouts of the manifest tables: the one authoritative
//! description (mirrored in docs/FORMAT.md).
//!
//! Keys are big-endian so that LMDB's byte-wise order is numeric order; all
//! values are little-endian.
//!
//! ```text
//! meta     key: ASCII name            value: see meta_key (u32/u64 LE, or u8)
//!          per-database keys end in `.<db id>` for databases other than
//!          the main one (`db_pages.3`); `db.<name>` -> db id u32 LE
//!          registers a named database
//! segments key: segment id  u64 BE   value: first_lsn u64 | capacity_bytes u64
//! chunks   key: chunk id    u64 BE   value: page_count u32 | live_pages u32
//! pages    key: page no     u32 BE   value: chunk id u64 | slot u32 | crc32c u32
//! ```
//!
//! `chunks` and `pages` are per database: the main database's tables are
//! named `chunks` and `pages`, database N's `chunks.N` and `pages.N`.

use std::path::Path;

use crate::error::{Result, StorageError};
use crate::types::{le, ChunkId, Lsn, PageNo, SegmentId};

/// Version of the store layout as a whole (manifest tables, file kinds).
pub const FORMAT_VERSION: u32 = 2;

/// Databases a store holds at most, besides its main one.
pub const DATABASES_MAX: u16 = 255;

pub mod meta_key {
    pub const FORMAT_VERSION: &[u8] = b"format_version";
    pub const PAGE_SIZE: &[u8] = b"page_size";
    pub const DB_PAGES: &[u8] = b"db_pages";
    pub const NEXT_CHUNK_ID: &[u8] = b"next_chunk_id";
    pub const NEXT_SEGMENT_ID: &[u8] = b"next_segment_id";
    pub const CHECKPOINT_LSN: &[u8] = b"checkpoint_lsn";
    pub const EPOCH: &[u8] = b"epoch";
    pub const CLEAN_SHUTDOWN: &[u8] = b"clean_shutdown";
    /// crc32c over every other meta entry (see `manifest::meta_crc`).
    pub const META_CRC: &[u8] = b"meta_crc";
    /// Table digests (see `manifest/digest.rs`).
    pub const DIGEST_SEGMENTS: &[u8] = b"digest_segments";
    pub const DIGEST_CHUNKS: &[u8] = b"digest_chunks";
    pub const DIGEST_PAGES: &[u8] = b"digest_pages";
    /// Next id for a named database.
    pub const NEXT_DB_ID: &[u8] = b"next_db_id";
    /// Prefix of the keys that register named databases (`db.<name>`).
    pub const DB_PREFIX: &[u8] = b"db.";
}

/// The name of a per-database meta key or table: `base` for the main
/// database, `base.<id>` for the others.
pub fn per_db(base: &[u8], db: crate::types::DbId) -> Vec<u8> {
    let mut k = base.to_vec();
    if db != crate::types::DbId::MAIN {
        k.extend_from_slice(format!(".{}", db.0).as_bytes());
    }
    k
}

pub fn key_u64(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

pub fn key_u32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

fn bad(path: &Path, what: &str) -> StorageError {
    StorageError::corrupt(path, 0, format!("manifest value malformed: {what}"))
}

pub fn decode_u32(v: &[u8], path: &Path) -> Result<u32> {
    v.try_into()
        .map(u32::from_le_bytes)
        .map_err(|_| bad(path, "u32"))
}

pub fn decode_u64(v: &[u8], path: &Path) -> Result<u64> {
    v.try_into()
        .map(u64::from_le_bytes)
        .map_err(|_| bad(path, "u64"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentMeta {
    pub id: SegmentId,
    pub first_lsn: Lsn,
    pub capacity_bytes: u64,
}

impl SegmentMeta {
    pub fn encode_value(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        le::put_u64(&mut b, 0, self.first_lsn.0);
        le::put_u64(&mut b, 8, self.capacity_bytes);
        b
    }
    pub fn decode(k: &[u8], v: &[u8], path: &Path) -> Result<SegmentMeta> {
        let k: [u8; 8] = k.try_into().map_err(|_| bad(path, "segment key"))?;
        if v.len() != 16 {
            return Err(bad(path, "segment value"));
        }
        Ok(SegmentMeta {
            id: SegmentId(u64::from_be_bytes(k)),
            first_lsn: Lsn(le::u64_at(v, 0)),
            capacity_bytes: le::u64_at(v, 8),
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
    pub fn encode_value(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        le::put_u32(&mut b, 0, self.page_count);
        le::put_u32(&mut b, 4, self.live_pages);
        b
    }
    pub fn decode(k: &[u8], v: &[u8], path: &Path) -> Result<ChunkMeta> {
        let k: [u8; 8] = k.try_into().map_err(|_| bad(path, "chunk key"))?;
        if v.len() != 8 {
            return Err(bad(path, "chunk value"));
        }
        Ok(ChunkMeta {
            id: ChunkId(u64::from_be_bytes(k)),
            page_count: le::u32_at(v, 0),
            live_pages: le::u32_at(v, 4),
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
    pub fn encode_value(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        le::put_u64(&mut b, 0, self.chunk.0);
        le::put_u32(&mut b, 8, self.slot);
        le::put_u32(&mut b, 12, self.crc);
        b
    }
    pub fn decode(k: &[u8], v: &[u8], path: &Path) -> Result<(PageNo, PageLoc)> {
        let k: [u8; 4] = k.try_into().map_err(|_| bad(path, "page key"))?;
        if v.len() != 16 {
            return Err(bad(path, "page value"));
        }
        Ok((
            PageNo(u32::from_be_bytes(k)),
            PageLoc {
                chunk: ChunkId(le::u64_at(v, 0)),
                slot: le::u32_at(v, 8),
                crc: le::u32_at(v, 12),
            },
        ))
    }
}
