//! Fuzz targets for every decoder of bop's on-disk formats, for the VFS's
//! URI parameters, and for the record log's recovery as a whole.
//!
//! Each target is a plain function of the input bytes. The cargo-fuzz
//! binaries in `fuzz_targets/` call them; `tests/corpus.rs` replays the
//! committed corpus through them on stable Rust; `seeds` builds that corpus.
//!
//! Every target checks more than "does not panic": decoders that succeed
//! must agree with their encoders (round trips), and the record log's recovery is
//! compared against a small reference model of the record scan.

use std::path::Path;

use bop_storage::log::record::{RecordHeader, RECORD_HEADER_LEN};
use bop_storage::log::segment::SegmentHeader;
use bop_storage::manifest::tables::{self, ChunkMeta, PageLoc, SegmentMeta};
use bop_storage::page_store::chunk;
use bop_storage::{ChunkId, PageNo, StoreOptions};

pub mod recovery;
pub mod seeds;

pub use recovery::log_recovery;

/// Every target, by name (the names of `fuzz_targets/*.rs` and of the
/// corpus directories).
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("log_record", log_record),
    ("log_segment_header", log_segment_header),
    ("log_segment_index", log_segment_index),
    ("chunk_index", chunk_index),
    ("chunk_roundtrip", chunk_roundtrip),
    ("manifest_values", manifest_values),
    ("vfs_params", vfs_params),
    ("log_recovery", log_recovery),
];

/// `RecordHeader::decode` on arbitrary bytes.
///
/// `decode` slices `&b[..RECORD_HEADER_LEN]` and so panics on shorter
/// input; its only caller (`verify_at` in recovery) checks the length first.
/// The target keeps that contract.
pub fn log_record(data: &[u8]) {
    if data.len() < RECORD_HEADER_LEN {
        return;
    }
    let Ok(h) = RecordHeader::decode(data) else {
        return;
    };
    assert_eq!(h.record_len(), 48 + u64::from(h.payload_len));
    let mut buf = [0u8; RECORD_HEADER_LEN];
    h.encode(&mut buf);
    assert_eq!(RecordHeader::decode(&buf), Ok(h), "re-encoded header");
    // encode writes flags = 0; apart from the reserved flags (and the
    // header checksum that covers them) the bytes must be the input's.
    if data[6..8] == [0, 0] {
        assert_eq!(
            &buf[..],
            &data[..RECORD_HEADER_LEN],
            "encode(decode(x)) == x"
        );
    } else {
        assert_eq!(&buf[..6], &data[..6]);
        assert_eq!(&buf[8..44], &data[8..44]);
    }
}

/// `SegmentHeader::decode` on arbitrary bytes (any length).
pub fn log_segment_header(data: &[u8]) {
    let path = Path::new("fuzz.seg");
    let Ok(h) = SegmentHeader::decode(data, path) else {
        return;
    };
    let enc = h.encode();
    assert_eq!(SegmentHeader::decode(&enc, path).ok(), Some(h));
    // Reserved bytes 10..16 are covered by the checksum but not decoded.
    assert_eq!(&enc[..10], &data[..10]);
    assert_eq!(&enc[16..40], &data[16..40]);
}

/// `segment_index::decode` on arbitrary bytes, for the segment id and first
/// LSN the bytes themselves state (so well-formed inputs get past the
/// header): an index that decodes describes records that fit the segment,
/// and encoding its entries again gives the same bytes.
pub fn log_segment_index(data: &[u8]) {
    use bop_storage::log::segment_index::{decode, IndexBuilder};
    use bop_storage::{Lsn, SegmentId};
    const CAPACITY: u64 = 8 << 20;
    if data.len() < 32 {
        return;
    }
    let id = SegmentId(u64::from_le_bytes(data[16..24].try_into().unwrap()));
    let first = Lsn(u64::from_le_bytes(data[24..32].try_into().unwrap()));
    let Some(entries) = decode(data, id, first, CAPACITY) else {
        return;
    };
    let used: u64 = entries
        .iter()
        .map(|e| RECORD_HEADER_LEN as u64 + u64::from(e.head.payload_len))
        .sum();
    assert!(4096 + used <= CAPACITY);
    let mut b = IndexBuilder::new(id, first);
    for e in &entries {
        b.push(&e.head, e.frames.as_ref());
    }
    assert_eq!(b.finish(), data);
}

/// `chunk::decode_index` on arbitrary bytes: header, slot table.
pub fn chunk_index(data: &[u8]) {
    let Ok(idx) = chunk::decode_index(data, Path::new("fuzz.chunk")) else {
        return;
    };
    let count = u32::from_le_bytes(data[24..28].try_into().unwrap());
    assert_eq!(idx.slots.len(), count as usize);
    assert!(data.len() >= 64 + 8 * idx.slots.len());
    let off = chunk::data_offset(count);
    assert_eq!(off % 4096, 0);
    assert!(off >= 64 + 8 * u64::from(count));
    for (i, (pgno, crc)) in idx.slots.iter().enumerate() {
        let t = 64 + 8 * i;
        assert_eq!(pgno.0.to_le_bytes(), data[t..t + 4]);
        assert_eq!(crc.to_le_bytes(), data[t + 4..t + 8]);
    }
}

/// Little cursor over fuzz input that never fails (yields zeros at the end).
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }
}

/// `chunk::encode` then `chunk::decode_index` must give the pages back, and
/// one corrupted byte of the header or slot table must be detected.
///
/// Input: page-size selector, page count, chunk id, a corruption position,
/// then per page its number; the rest of the input is the page contents
/// (repeated to fill every page).
pub fn chunk_roundtrip(data: &[u8]) {
    let mut inp = Input { data };
    let page_size = 512u32 << (inp.u8() % 8); // 512..=65536
    let count = usize::from(inp.u8() % 9);
    let id = ChunkId(inp.u64());
    let flip_at = inp.u32();
    let flip_xor = inp.u8() | 1;
    let pgnos: Vec<PageNo> = (0..count).map(|_| PageNo(inp.u32())).collect();
    let fill = inp.take(usize::MAX);
    let pages: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let mut p = vec![0u8; page_size as usize];
            if !fill.is_empty() {
                for (j, b) in p.iter_mut().enumerate() {
                    *b = fill[(i * 7 + j) % fill.len()] ^ (i as u8);
                }
            }
            p
        })
        .collect();
    let refs: Vec<(PageNo, &[u8])> = pgnos
        .iter()
        .zip(&pages)
        .map(|(n, p)| (*n, p.as_slice()))
        .collect();
    let (img, crcs) = chunk::encode(id, page_size, &refs);
    let off = chunk::data_offset(count as u32) as usize;
    assert_eq!(off % 4096, 0);
    assert_eq!(img.len(), off + count * page_size as usize);
    let path = Path::new("fuzz.chunk");
    let idx = chunk::decode_index(&img, path).expect("encoded chunk decodes");
    assert_eq!(idx.id, id);
    assert_eq!(idx.page_size, page_size);
    assert_eq!(idx.slots.len(), count);
    for (i, (pgno, crc)) in idx.slots.iter().enumerate() {
        assert_eq!(*pgno, pgnos[i]);
        assert_eq!(*crc, crcs[i]);
        assert_eq!(*crc, crc32c::crc32c(&pages[i]));
        let d = off + i * page_size as usize;
        assert_eq!(&img[d..d + page_size as usize], &pages[i][..]);
    }
    // Truncating inside the slot table must be detected.
    let table_end = 64 + 8 * count;
    if count > 0 {
        let cut = 64 + (flip_at as usize % (table_end - 64));
        assert!(
            chunk::decode_index(&img[..cut], path).is_err(),
            "cut at {cut}"
        );
    }
    // One damaged byte in the checksummed part (bytes 0..36 and the slot
    // table; 36..64 are reserved and not covered) must be detected.
    let covered = 36 + (table_end - 64);
    let k = flip_at as usize % covered;
    let at = if k < 36 { k } else { 64 + (k - 36) };
    let mut bad = img.clone();
    bad[at] ^= flip_xor;
    assert!(
        chunk::decode_index(&bad, path).is_err(),
        "corrupted byte {at} (xor {flip_xor:#x}) was not detected"
    );
}

/// The manifest table decoders on an arbitrary key and value.
///
/// Input: byte 0 = key length (mod 17), then the key, then the value.
pub fn manifest_values(data: &[u8]) {
    let mut inp = Input { data };
    let klen = usize::from(inp.u8() % 17);
    let k = inp.take(klen);
    let v = inp.take(usize::MAX);
    let p = Path::new("fuzz/manifest");

    match tables::decode_u32(v, p) {
        Ok(x) => assert_eq!(x.to_le_bytes(), v),
        Err(_) => assert_ne!(v.len(), 4),
    }
    match tables::decode_u64(v, p) {
        Ok(x) => assert_eq!(x.to_le_bytes(), v),
        Err(_) => assert_ne!(v.len(), 8),
    }
    match SegmentMeta::decode(k, v, p) {
        Ok(m) => {
            assert_eq!(tables::key_u64(m.id.0), k);
            assert_eq!(m.encode_value(), v);
        }
        Err(_) => assert!(k.len() != 8 || v.len() != 16),
    }
    match ChunkMeta::decode(k, v, p) {
        Ok(m) => {
            assert_eq!(tables::key_u64(m.id.0), k);
            assert_eq!(m.encode_value(), v);
        }
        Err(_) => assert!(k.len() != 8 || v.len() != 8),
    }
    match PageLoc::decode(k, v, p) {
        Ok((n, loc)) => {
            assert_eq!(tables::key_u32(n.0), k);
            assert_eq!(loc.encode_value(), v);
        }
        Err(_) => assert!(k.len() != 4 || v.len() != 16),
    }
}

/// `bop_vfs::Params::parse` on URI-style `key=value&key=value` text.
pub fn vfs_params(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(&str, &str)> = text
        .split('&')
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .collect();
    let Ok(p) = bop_vfs::Params::parse(pairs.iter().copied()) else {
        return;
    };
    if let Some(ps) = p.page_size {
        assert!(
            bop_storage::validate_page_size(ps).is_ok(),
            "page_size {ps}"
        );
    }
    if let Some(mb) = p.max_txn_mb {
        assert!((1..=65536).contains(&mb));
    }
    if let Some(mb) = p.log_segment_mb {
        assert!((1..=4096).contains(&mb));
    }
    if let Some(kb) = p.log_buffer_kb {
        assert!((64..=1 << 20).contains(&kb));
    }
    if let Some(ms) = p.log_busy_ms {
        assert!(ms <= 600_000);
    }
    if let Some(n) = p.log_sync_retries {
        assert!(n <= 16);
    }
    if let Some(mb) = p.cache_mb {
        assert!(mb <= bop_storage::cache::CAPACITY_MB_MAX);
    }
    if let Some(mb) = p.ckpt_wal_mb {
        assert!(mb <= 65536);
    }
    for s in [p.ckpt_age_s, p.ckpt_warn_s].into_iter().flatten() {
        assert!(s <= 86400);
    }
    if let Some(ms) = p.close_grace_ms {
        assert!(ms <= 1000);
    }
    let mut opts = StoreOptions::default();
    p.apply(&mut opts).expect("applying accepted parameters");
    assert_eq!(opts.page_size, p.page_size);
    // Parsing what was accepted again gives the same result.
    let mut again: Vec<(String, String)> = [
        p.page_size.map(|v| ("page_size", u64::from(v))),
        p.max_txn_mb.map(|v| ("max_txn_mb", v)),
        p.log_segment_mb.map(|v| ("log_segment_mb", v)),
        p.log_buffer_kb.map(|v| ("log_buffer_kb", v)),
        p.log_busy_ms.map(|v| ("log_busy_ms", v)),
        p.log_sync_retries.map(|v| ("log_sync_retries", v)),
        p.cache_mb.map(|v| ("cache_mb", v)),
        p.ckpt_wal_mb.map(|v| ("ckpt_wal_mb", v)),
        p.ckpt_age_s.map(|v| ("ckpt_age_s", v)),
        p.ckpt_warn_s.map(|v| ("ckpt_warn_s", v)),
        p.close_grace_ms.map(|v| ("close_grace_ms", v)),
        p.create_parents.then_some(("create_parents", 1)),
    ]
    .into_iter()
    .flatten()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(mode) = p.io {
        again.push(("io".to_string(), mode.to_string()));
    }
    let q = bop_vfs::Params::parse(again.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .expect("re-parse");
    assert_eq!(p, q);
}
