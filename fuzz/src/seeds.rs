//! The seed corpus: small valid and near-valid inputs for every target.
//! `tests/gen_corpus.rs` writes them to `corpus/<target>/`.

use bop_storage::log::record::{RecordHeader, RECORD_HEADER_LEN};
use bop_storage::log::segment::SegmentHeader;
use bop_storage::manifest::tables::{key_u32, key_u64, ChunkMeta, PageLoc, SegmentMeta};
use bop_storage::page_store::chunk;
use bop_storage::{ChunkId, DbId, Epoch, Lsn, PageNo, SegmentId};

use crate::recovery::{self, FIX_CRC, HEADER, TEMPLATE_B, WRITE_AFTER};

/// (target, seed name, bytes)
pub type Seed = (&'static str, String, Vec<u8>);

fn record_header(lsn: u64, payload_len: u32) -> Vec<u8> {
    let h = RecordHeader {
        db: DbId::MAIN,
        lsn: Lsn(lsn),
        durable_lsn: Lsn(lsn.saturating_sub(1)),
        wal_offset: 32,
        payload_len,
        payload_crc: 0x1234_5678,
        epoch: Epoch(2),
    };
    let mut b = vec![0u8; RECORD_HEADER_LEN];
    h.encode(&mut b);
    b
}

pub fn all() -> Vec<Seed> {
    let mut out: Vec<Seed> = Vec::new();
    let mut add = |t: &'static str, name: &str, b: Vec<u8>| out.push((t, name.to_string(), b));

    // log_record
    add("log_record", "valid", record_header(7, 4120));
    add("log_record", "valid_empty_payload", record_header(1, 0));
    add(
        "log_record",
        "valid_max_len",
        record_header(u64::MAX, u32::MAX),
    );
    add("log_record", "zeros", vec![0; RECORD_HEADER_LEN]);
    let mut bad = record_header(7, 4120);
    bad[44] ^= 1;
    add("log_record", "bad_crc", bad);
    let mut v2 = record_header(7, 4120);
    v2[4] = 2;
    let crc = crc32c::crc32c(&v2[..44]);
    v2[44..48].copy_from_slice(&crc.to_le_bytes());
    add("log_record", "version_2", v2);

    // log_segment_header
    let sh = SegmentHeader {
        id: SegmentId(1),
        first_lsn: Lsn(1),
        capacity_bytes: 1 << 20,
    }
    .encode();
    add("log_segment_header", "valid_44", sh[..44].to_vec());
    add("log_segment_header", "valid_4096", sh.clone());
    add("log_segment_header", "short", sh[..43].to_vec());
    let mut bad = sh[..44].to_vec();
    bad[20] ^= 0x80;
    add("log_segment_header", "bad_crc", bad);

    // log_segment_index
    {
        use bop_storage::log::segment_index::{EntryHead, IndexBuilder};
        use bop_storage::wal_format::{FrameInfo, RecordFrames};
        let mut ix = IndexBuilder::new(SegmentId(3), Lsn(10));
        let head = |wal_offset, payload_len| EntryHead {
            db: bop_storage::DbId(0),
            epoch: bop_storage::Epoch(2),
            wal_offset,
            payload_len,
            payload_crc: 0x1234,
        };
        let frames = RecordFrames {
            header: Some([7; 32]),
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
            last_cksum: [1, 2],
        };
        ix.push(&head(0, 32 + 2 * 4120), Some(&frames));
        ix.push(&head(8272, 4120), None);
        let good = ix.finish();
        add("log_segment_index", "two_records", good.clone());
        add(
            "log_segment_index",
            "empty",
            IndexBuilder::new(SegmentId(1), Lsn(1)).finish(),
        );
        add(
            "log_segment_index",
            "truncated",
            good[..good.len() - 9].to_vec(),
        );
        let mut bad = good.clone();
        bad[40] ^= 4;
        add("log_segment_index", "bad_crc", bad);
    }

    // chunk_index
    let p1 = vec![0x11u8; 512];
    let p2 = vec![0x22u8; 512];
    let (img, _) = chunk::encode(ChunkId(5), 512, &[(PageNo(3), &p1), (PageNo(9), &p2)]);
    add("chunk_index", "two_slots", img[..64 + 16].to_vec());
    let (img0, _) = chunk::encode(ChunkId(1), 4096, &[]);
    add("chunk_index", "empty", img0[..64].to_vec());
    add("chunk_index", "truncated_table", img[..64 + 12].to_vec());
    let mut big = img[..64 + 16].to_vec();
    big[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
    let crc = crc32c::crc32c(&big[..32]);
    big[32..36].copy_from_slice(&crc.to_le_bytes());
    add("chunk_index", "huge_count_valid_header_crc", big);

    // chunk_roundtrip: selector, count, id(8), flip(4), xor, pgnos, fill
    let mut r = vec![0u8, 2];
    r.extend_from_slice(&7u64.to_le_bytes());
    r.extend_from_slice(&40u32.to_le_bytes());
    r.push(0x5a);
    r.extend_from_slice(&1u32.to_le_bytes());
    r.extend_from_slice(&2u32.to_le_bytes());
    r.extend_from_slice(b"page contents");
    add("chunk_roundtrip", "two_pages_512", r);
    add("chunk_roundtrip", "no_pages", vec![3, 0]);
    let mut r = vec![7u8, 8];
    r.extend_from_slice(&u64::MAX.to_le_bytes());
    r.extend_from_slice(&u32::MAX.to_le_bytes());
    r.push(0xff);
    add("chunk_roundtrip", "eight_pages_64k", r);

    // manifest_values: key length, key, value
    let mv = |k: &[u8], v: &[u8]| {
        let mut b = vec![k.len() as u8];
        b.extend_from_slice(k);
        b.extend_from_slice(v);
        b
    };
    let seg = SegmentMeta {
        id: SegmentId(3),
        first_lsn: Lsn(10),
        capacity_bytes: 16 << 20,
    };
    add(
        "manifest_values",
        "segment",
        mv(&key_u64(3), &seg.encode_value()),
    );
    let ch = ChunkMeta {
        id: ChunkId(4),
        page_count: 10,
        live_pages: 7,
    };
    add(
        "manifest_values",
        "chunk",
        mv(&key_u64(4), &ch.encode_value()),
    );
    let pl = PageLoc {
        chunk: ChunkId(4),
        slot: 2,
        crc: 0xabcd,
    };
    add(
        "manifest_values",
        "page",
        mv(&key_u32(1), &pl.encode_value()),
    );
    add(
        "manifest_values",
        "u32",
        mv(b"page_size", &4096u32.to_le_bytes()),
    );
    add(
        "manifest_values",
        "u64",
        mv(b"checkpoint_lsn", &5u64.to_le_bytes()),
    );
    add("manifest_values", "empty", vec![]);

    // vfs_params
    for (name, s) in [
        (
            "all",
            "page_size=8192&max_txn_mb=5&log_segment_mb=16&vfs=bop",
        ),
        (
            "sqlite_keys",
            "vfs=bop&mode=rwc&cache=shared&psow=1&nolock=1&immutable=0",
        ),
        ("bad_page_size", "page_size=3000"),
        ("out_of_range", "max_txn_mb=0&log_segment_mb=4097"),
        ("unknown", "pagesize=4096"),
        ("spaces", "page_size= 65536 "),
        ("huge", "page_size=18446744073709551616"),
        (
            "log_bounds",
            "log_buffer_kb=128&log_busy_ms=0&log_sync_retries=5&nolock=1",
        ),
        ("log_bounds_bad", "log_buffer_kb=63&log_sync_retries=17"),
        (
            "older_names",
            "wal_buffer_kb=128&wal_busy_ms=0&wal_sync_retries=5&wal_segment_mb=2",
        ),
        ("cache", "cache_mb=16&io=std"),
        ("cache_bad", "cache_mb=1048577"),
        ("ckpt", "ckpt_wal_mb=0&ckpt_age_s=86400&ckpt_warn_s=3"),
        ("ckpt_bad", "ckpt_age_s=86401"),
        ("io", "io=direct-required"),
    ] {
        add("vfs_params", name, s.as_bytes().to_vec());
    }

    // log_recovery: flags byte, then the record area (or header + area)
    for (tb, tname) in [(0u8, "a"), (TEMPLATE_B, "b")] {
        let t = recovery::template(tb != 0);
        let body = &t.body;
        let with = |flags: u8, b: &[u8]| {
            let mut v = vec![flags | tb];
            v.extend_from_slice(b);
            v
        };
        add("log_recovery", &format!("{tname}_intact"), with(0, body));
        add(
            "log_recovery",
            &format!("{tname}_intact_write_after"),
            with(WRITE_AFTER, body),
        );
        add(
            "log_recovery",
            &format!("{tname}_fixcrc"),
            with(FIX_CRC | WRITE_AFTER, body),
        );
        add(
            "log_recovery",
            &format!("{tname}_empty"),
            with(WRITE_AFTER, &[]),
        );
        let mut h = t.seg_header[..44].to_vec();
        h.extend_from_slice(body);
        add(
            "log_recovery",
            &format!("{tname}_header"),
            with(HEADER | FIX_CRC, &h),
        );
        // torn tail: last record cut in half
        add(
            "log_recovery",
            &format!("{tname}_torn"),
            with(WRITE_AFTER, &body[..body.len() - 300]),
        );
        // damaged middle record payload
        let mut d = body.clone();
        let second = 48 + u32::from_le_bytes(d[32..36].try_into().unwrap()) as usize;
        d[second + 48 + 100] ^= 0xff;
        add("log_recovery", &format!("{tname}_damaged_2"), with(0, &d));
        // second record's header zeroed
        let mut z = body.clone();
        z[second..second + 48].fill(0);
        add(
            "log_recovery",
            &format!("{tname}_zeroed_2"),
            with(WRITE_AFTER, &z),
        );
        // last record from a future epoch (checksums recomputed by FIX_CRC)
        let mut e = body.clone();
        let mut pos = 0;
        let mut last = 0;
        while pos + 48 <= e.len() {
            last = pos;
            pos += 48 + u32::from_le_bytes(e[pos + 32..pos + 36].try_into().unwrap()) as usize;
        }
        e[last + 40..last + 44].copy_from_slice(&99u32.to_le_bytes());
        add(
            "log_recovery",
            &format!("{tname}_future_epoch"),
            with(FIX_CRC | WRITE_AFTER, &e),
        );
    }
    out
}
