//! Builds SQLite's wal-index (the `-shm` content) for a WAL image bop
//! already knows frame by frame, so SQLite does not rebuild it by reading
//! every frame of the WAL again when a database is first opened in a
//! process (after a crash that is the whole WAL: SQLite's `walIndexRecover`).
//!
//! The layout is SQLite's, as `walIndexRecover` leaves it (sqlite.org
//! walformat.html, "The WAL-Index Format"; all integers in native byte
//! order, regions of `REGION_BYTES`):
//!
//! ```text
//! region 0:  0  WalIndexHdr (48 bytes), first copy
//!           48  WalIndexHdr, second copy
//!           96  WalCkptInfo (40 bytes): nBackfill, aReadMark[5], aLock[8],
//!               nBackfillAttempted, notUsed0
//!          136  page numbers of frames 1..=4062 (u32 each)
//!        16384  hash table: 8192 u16 slots
//! region k:  0  page numbers of the next 4096 frames; 16384 hash table
//!
//! WalIndexHdr: 0 iVersion (3007000), 4 unused, 8 iChange, 12 isInit (1),
//!   13 bigEndCksum, 14 szPage (65536 as 1), 16 mxFrame, 20 nPage,
//!   24 aFrameCksum[2], 32 aSalt[2] (the WAL header's bytes 16..24),
//!   40 aCksum[2] (SQLite's checksum of bytes 0..40, native words)
//! ```
//!
//! A frame's slot: key `(pgno * 383) & 8191`, then the next free slot; the
//! slot holds the frame's index within its region (1-based). Frames are
//! inserted in log order, as SQLite's recovery does, so the tables come
//! out byte for byte the same (`tests/tests/wal_index_prebuilt.rs`
//! compares them with the `-shm` stock SQLite builds).

use bop_storage::wal_format::checksum;
use bop_storage::wal_image::WalIndexSeed;

pub const REGION_BYTES: usize = 32768;
const HDR_BYTES: usize = 48;
const CKPT_INFO_AT: usize = 2 * HDR_BYTES;
const CKPT_INFO_BYTES: usize = 40;
const WALINDEX_HDR_SIZE: usize = CKPT_INFO_AT + CKPT_INFO_BYTES;
const HASHTABLE_NPAGE: usize = 4096;
const HASHTABLE_NSLOT: usize = 2 * HASHTABLE_NPAGE;
const HASHTABLE_HASH_1: u32 = 383;
const HASHTABLE_NPAGE_ONE: usize = HASHTABLE_NPAGE - WALINDEX_HDR_SIZE / 4;
const HASH_AT: usize = HASHTABLE_NPAGE * 4;
const WAL_NREADER: usize = 5;
const READMARK_NOT_USED: u32 = 0xffff_ffff;
const WALINDEX_VERSION: u32 = 3_007_000;

const H_VERSION: usize = 0;
const H_CHANGE: usize = 8;
const H_IS_INIT: usize = 12;
const H_BIG_END: usize = 13;
const H_PAGE_SIZE: usize = 14;
const H_MX_FRAME: usize = 16;
const H_NPAGE: usize = 20;
const H_FRAME_CKSUM: usize = 24;
const H_SALT: usize = 32;
const H_CKSUM: usize = 40;
const C_NBACKFILL: usize = 0;
const C_READMARK: usize = 4;
const C_ATTEMPTED: usize = 32;

const _: () = assert!(H_CKSUM + 8 == HDR_BYTES);
const _: () = assert!(C_READMARK + 4 * WAL_NREADER + 8 == C_ATTEMPTED);
const _: () = assert!(C_ATTEMPTED + 8 == CKPT_INFO_BYTES);
const _: () = assert!(WALINDEX_HDR_SIZE == 136);
const _: () = assert!(HASH_AT + 2 * HASHTABLE_NSLOT == REGION_BYTES);

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

/// The wal-index regions for `seed`, or `None` when its header is not one
/// SQLite accepts (SQLite then builds the index itself, as it would).
pub fn build(seed: &WalIndexSeed) -> Option<Vec<Box<[u64]>>> {
    let page_size = bop_storage::wal_format::header_page_size(&seed.header)?;
    let last = seed.frames.last()?;
    let mx_frame = u32::try_from(seed.frames.len()).ok()?;
    let region_count = frame_region(seed.frames.len()) + 1;
    let mut regions = vec![vec![0u8; REGION_BYTES]; region_count];

    // The header: fields, then SQLite's checksum over the first 40 bytes
    // in native word order.
    let mut h = [0u8; HDR_BYTES];
    put32(&mut h, H_VERSION, WALINDEX_VERSION);
    put32(&mut h, H_CHANGE, 0);
    h[H_IS_INIT] = 1;
    h[H_BIG_END] = u8::from(seed.header[3] & 1 == 1);
    let sz = ((page_size & 0xff00) | (page_size >> 16)) as u16;
    h[H_PAGE_SIZE..H_PAGE_SIZE + 2].copy_from_slice(&sz.to_ne_bytes());
    put32(&mut h, H_MX_FRAME, mx_frame);
    put32(&mut h, H_NPAGE, last.db_pages);
    put32(&mut h, H_FRAME_CKSUM, seed.last_cksum[0]);
    put32(&mut h, H_FRAME_CKSUM + 4, seed.last_cksum[1]);
    h[H_SALT..H_SALT + 8].copy_from_slice(&seed.header[16..24]);
    let ck = checksum(cfg!(target_endian = "big"), &h[..H_CKSUM], [0, 0]);
    put32(&mut h, H_CKSUM, ck[0]);
    put32(&mut h, H_CKSUM + 4, ck[1]);
    let r0 = &mut regions[0];
    r0[..HDR_BYTES].copy_from_slice(&h);
    r0[HDR_BYTES..2 * HDR_BYTES].copy_from_slice(&h);

    // The checkpoint information of a freshly recovered WAL.
    let ci = &mut r0[CKPT_INFO_AT..WALINDEX_HDR_SIZE];
    put32(ci, C_NBACKFILL, 0);
    for i in 0..WAL_NREADER {
        let mark = match i {
            0 => 0,
            1 => mx_frame,
            _ => READMARK_NOT_USED,
        };
        put32(ci, C_READMARK + 4 * i, mark);
    }
    put32(ci, C_ATTEMPTED, mx_frame);

    // Page numbers and hash tables, frame by frame in log order.
    for (i, f) in seed.frames.iter().enumerate() {
        let frame = i + 1;
        let k = frame_region(frame);
        let (pgno_at, zero) = if k == 0 {
            (WALINDEX_HDR_SIZE, 0)
        } else {
            (0, HASHTABLE_NPAGE_ONE + (k - 1) * HASHTABLE_NPAGE)
        };
        let idx = frame - zero;
        let r = &mut regions[k];
        put32(r, pgno_at + 4 * ((idx - 1) & (HASHTABLE_NPAGE - 1)), f.pgno);
        let mut key = (f.pgno.wrapping_mul(HASHTABLE_HASH_1) as usize) & (HASHTABLE_NSLOT - 1);
        loop {
            let at = HASH_AT + 2 * key;
            if r[at] == 0 && r[at + 1] == 0 {
                r[at..at + 2].copy_from_slice(&(idx as u16).to_ne_bytes());
                break;
            }
            key = (key + 1) & (HASHTABLE_NSLOT - 1);
        }
    }
    Some(
        regions
            .into_iter()
            .map(|r| {
                r.chunks_exact(8)
                    .map(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")))
                    .collect()
            })
            .collect(),
    )
}

/// The region holding frame `frame` (1-based); SQLite's `walFramePage`.
fn frame_region(frame: usize) -> usize {
    (frame + HASHTABLE_NPAGE - HASHTABLE_NPAGE_ONE - 1) / HASHTABLE_NPAGE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_map_to_regions_as_sqlite_does() {
        assert_eq!(frame_region(1), 0);
        assert_eq!(frame_region(HASHTABLE_NPAGE_ONE), 0);
        assert_eq!(frame_region(HASHTABLE_NPAGE_ONE + 1), 1);
        assert_eq!(frame_region(HASHTABLE_NPAGE_ONE + HASHTABLE_NPAGE), 1);
        assert_eq!(frame_region(HASHTABLE_NPAGE_ONE + HASHTABLE_NPAGE + 1), 2);
    }
}
