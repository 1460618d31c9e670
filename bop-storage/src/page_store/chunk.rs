//! Page chunk file layout: the one authoritative description.
//!
//! A chunk `chunks/<id:016x>.chunk` holds `page_count` pages written by one
//! checkpoint in one sequential write, and is never modified afterwards.
//!
//! ```text
//! offset        size            field
//!      0           8            magic        b"BOPCHUNK"
//!      8           2            version      CHUNK_VERSION
//!     10           2            reserved     0
//!     12           4            page_size
//!     16           8            chunk_id
//!     24           4            page_count
//!     28           4            table_crc    crc32c of the slot table
//!     32           4            header_crc   crc32c of bytes 0..32
//!     36          28            zero
//!     64   8*page_count         slot table: page_no u32 | page crc32c u32
//!      …                        zero padding to a multiple of 4096
//! data_offset  page_size*count  pages, slot order
//! ```
//! The manifest's `pages` table also holds each page's crc32c; a read
//! verifies the page against it. The slot table makes a chunk checkable
//! offline without the manifest.

use std::path::Path;

use crate::error::{Result, StorageError};
use crate::types::{le, ChunkId, PageNo};

pub const CHUNK_MAGIC: [u8; 8] = *b"BOPCHUNK";
pub const CHUNK_VERSION: u16 = 1;
const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_PAGE_SIZE: usize = 12;
const OFF_CHUNK_ID: usize = 16;
const OFF_PAGE_COUNT: usize = 24;
const OFF_TABLE_CRC: usize = 28;
const OFF_HEADER_CRC: usize = 32;
pub const CHUNK_HEADER_LEN: usize = 64;
const SLOT_LEN: usize = 8;
const ALIGN: usize = 4096;
const _: () = assert!(OFF_VERSION == OFF_MAGIC + 8);
const _: () = assert!(OFF_PAGE_SIZE == OFF_VERSION + 4);
const _: () = assert!(OFF_CHUNK_ID == OFF_PAGE_SIZE + 4);
const _: () = assert!(OFF_PAGE_COUNT == OFF_CHUNK_ID + 8);
const _: () = assert!(OFF_TABLE_CRC == OFF_PAGE_COUNT + 4);
const _: () = assert!(OFF_HEADER_CRC == OFF_TABLE_CRC + 4);
const _: () = assert!(OFF_HEADER_CRC + 4 <= CHUNK_HEADER_LEN);

pub fn chunk_file_name(id: ChunkId) -> String {
    format!("{:016x}.chunk", id.0)
}

pub fn parse_chunk_file_name(name: &str) -> Option<ChunkId> {
    let hex = name.strip_suffix(".chunk")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(ChunkId)
}

/// Offset of the first page in a chunk of `page_count` pages.
pub fn data_offset(page_count: u32) -> u64 {
    let table_end = CHUNK_HEADER_LEN + SLOT_LEN * page_count as usize;
    table_end.div_ceil(ALIGN) as u64 * ALIGN as u64
}

/// Builds the head of a chunk (header, slot table, padding: the first
/// [`data_offset`] bytes); the pages follow it in slot order. Returns the
/// head and each page's crc32c in slot order.
pub fn encode_head(id: ChunkId, page_size: u32, pages: &[(PageNo, &[u8])]) -> (Vec<u8>, Vec<u32>) {
    let count = pages.len() as u32;
    let mut head = vec![0u8; data_offset(count) as usize];
    let mut crcs = Vec::with_capacity(pages.len());
    for (slot, (pgno, data)) in pages.iter().enumerate() {
        debug_assert_eq!(data.len(), page_size as usize);
        let crc = crc32c::crc32c(data);
        crcs.push(crc);
        let t = CHUNK_HEADER_LEN + slot * SLOT_LEN;
        le::put_u32(&mut head, t, pgno.0);
        le::put_u32(&mut head, t + 4, crc);
    }
    head[OFF_MAGIC..OFF_MAGIC + 8].copy_from_slice(&CHUNK_MAGIC);
    le::put_u16(&mut head, OFF_VERSION, CHUNK_VERSION);
    le::put_u32(&mut head, OFF_PAGE_SIZE, page_size);
    le::put_u64(&mut head, OFF_CHUNK_ID, id.0);
    le::put_u32(&mut head, OFF_PAGE_COUNT, count);
    let table_crc =
        crc32c::crc32c(&head[CHUNK_HEADER_LEN..CHUNK_HEADER_LEN + SLOT_LEN * pages.len()]);
    le::put_u32(&mut head, OFF_TABLE_CRC, table_crc);
    let header_crc = crc32c::crc32c(&head[..OFF_HEADER_CRC]);
    le::put_u32(&mut head, OFF_HEADER_CRC, header_crc);
    (head, crcs)
}

/// Builds the complete image of a chunk: header, slot table, pages.
/// Returns the image and each page's crc32c in slot order.
pub fn encode(id: ChunkId, page_size: u32, pages: &[(PageNo, &[u8])]) -> (Vec<u8>, Vec<u32>) {
    let (mut img, crcs) = encode_head(id, page_size, pages);
    img.reserve(page_size as usize * pages.len());
    for (_, data) in pages {
        img.extend_from_slice(data);
    }
    (img, crcs)
}

/// A decoded chunk header and slot table.
#[derive(Debug, Clone)]
pub struct ChunkIndex {
    pub id: ChunkId,
    pub page_size: u32,
    pub slots: Vec<(PageNo, u32)>,
}

/// Decodes and verifies header and slot table from the start of a chunk.
pub fn decode_index(img: &[u8], path: &Path) -> Result<ChunkIndex> {
    let bad = |off: usize, what: &str| StorageError::corrupt(path, off as u64, what.to_string());
    if img.len() < CHUNK_HEADER_LEN || img[..8] != CHUNK_MAGIC {
        return Err(bad(0, "not a bop page chunk (bad magic)"));
    }
    if crc32c::crc32c(&img[..OFF_HEADER_CRC]) != le::u32_at(img, OFF_HEADER_CRC) {
        return Err(bad(0, "chunk header checksum mismatch"));
    }
    let version = le::u16_at(img, OFF_VERSION);
    if version != CHUNK_VERSION {
        return Err(StorageError::Format {
            path: path.to_path_buf(),
            what: format!("chunk format version {version} is not supported"),
        });
    }
    let count = le::u32_at(img, OFF_PAGE_COUNT) as usize;
    let table_end = CHUNK_HEADER_LEN + SLOT_LEN * count;
    if img.len() < table_end {
        return Err(bad(CHUNK_HEADER_LEN, "chunk slot table truncated"));
    }
    if crc32c::crc32c(&img[CHUNK_HEADER_LEN..table_end]) != le::u32_at(img, OFF_TABLE_CRC) {
        return Err(bad(CHUNK_HEADER_LEN, "chunk slot table checksum mismatch"));
    }
    let slots = (0..count)
        .map(|i| {
            let t = CHUNK_HEADER_LEN + i * SLOT_LEN;
            (PageNo(le::u32_at(img, t)), le::u32_at(img, t + 4))
        })
        .collect();
    Ok(ChunkIndex {
        id: ChunkId(le::u64_at(img, OFF_CHUNK_ID)),
        page_size: le::u32_at(img, OFF_PAGE_SIZE),
        slots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let a = vec![1u8; 512];
        let b = vec![2u8; 512];
        let (img, crcs) = encode(ChunkId(5), 512, &[(PageNo(3), &a), (PageNo(9), &b)]);
        let idx = decode_index(&img, Path::new("c")).unwrap();
        assert_eq!(idx.id, ChunkId(5));
        assert_eq!(idx.slots, vec![(PageNo(3), crcs[0]), (PageNo(9), crcs[1])]);
        let off = data_offset(2) as usize;
        assert_eq!(&img[off + 512..off + 1024], &b[..]);
        assert_eq!(off % 4096, 0);
    }

    #[test]
    fn header_and_table_flips_are_detected() {
        let a = vec![7u8; 512];
        let (img, _) = encode(ChunkId(1), 512, &[(PageNo(1), &a)]);
        for i in 0..(CHUNK_HEADER_LEN + SLOT_LEN) {
            if (36..CHUNK_HEADER_LEN).contains(&i) {
                continue; // reserved zero bytes are not covered
            }
            let mut bad = img.clone();
            bad[i] ^= 1;
            assert!(decode_index(&bad, Path::new("c")).is_err(), "byte {i}");
        }
    }
}
